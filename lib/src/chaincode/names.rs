//! The names a Fabric v1.4.12 peer gives to chaincode containers and images, and their
//! verification.
//!
//! Mirrors `core/container/dockercontroller/dockercontroller.go` and
//! `core/container/ccintf/ccintf.go` at tag `v1.4.12`:
//!
//! ```text
//! CCID.GetName()          <name>-<version>            (<name> alone if the version is empty)
//! preFormatImageName      <networkId>-<peerId>-<GetName>
//!                         (an empty networkId or peerId is left out together with its '-')
//! GetVMName               sanitize(preFormatImageName)                     -> container name
//! GetVMNameForDocker      lowercase(sanitize(pre) + "-" + hex(sha256(pre))) -> image name,
//!                         rejected unless it matches ^[a-z0-9]+(([._-][a-z0-9]+)+)?$
//! sanitize                every character outside [a-zA-Z0-9-_.] becomes '-'
//! ```
//!
//! `networkId` is the peer's `peer.networkId` (`CORE_PEER_NETWORKID`; `dev` in the
//! `sampleconfig/core.yaml` that the images ship, no default in code) and `peerId` its
//! `peer.id` (`CORE_PEER_ID`). For example network `dev`, peer `peer0.org1.example.com`,
//! chaincode `mycc` version `1.0` give the container `dev-peer0.org1.example.com-mycc-1.0` and
//! the image `dev-peer0.org1.example.com-mycc-1.0-384f11f484b9302df90b453200cfb25174305fce8f53f4e94d45ee3b6cab0ce9`.
//!
//! # Verification
//!
//! An image name ends in the sha256 of the *unsanitized* prefix. Sanitizing and lowercasing
//! lose information (`Peer0` and `peer0` both become `peer0`; `peer:0`, `peer*0` and `peer-0`
//! all become `peer-0`), so a name is verified by finding an unsanitized prefix that hashes to
//! the suffix. [`parse_image_name`] tries, in this order:
//!
//! 1. every candidate [`ChaincodeId`] in the [`Hints`] (all four parts known);
//! 2. every [`PeerIdentity`] in the [`Hints`]: the original network id and peer id, followed by
//!    the rest of the sanitized name taken as it is;
//! 3. no knowledge at all: the sanitized prefix taken as it is.
//!
//! So **without hints** exactly those images verify whose network id, peer id, chaincode name
//! and version consisted only of lowercase ASCII letters, digits, `.`, `_` and `-` — the usual
//! case (`dev`, `peer0.org1.example.com`, `mycc`, `1.0`). An uppercase letter or any other
//! character (`Peer0`, `peer0:7051`, `1.0+build`) in the network id or peer id needs that id
//! as a [`PeerIdentity`] hint (`--network-id`/`--peer-id`, spelled exactly as the peer had it);
//! in the chaincode name or version it needs the full [`ChaincodeId`] as a candidate (for
//! example from `peer chaincode list --installed`). Nothing else verifies: nothing is guessed.
//!
//! A container name carries no hash. [`parse_container_name`] verifies it only if a candidate
//! [`ChaincodeId`] gives exactly that name, or together with the image the container runs
//! (Docker reports it), when that image verifies and its prefix sanitizes to the container name.
//!
//! The split of a verified prefix into network id, peer id, chaincode name and version is
//! ambiguous (every part may contain `-`, and lscc allows `-` in names and versions), so it is
//! only reported from the hints that agree with the prefix ([`Match`]), never worked out.
//!
//! Ids are Rust strings, so valid UTF-8; as Go's `regexp` does, one character (not one byte)
//! outside the allowed set becomes one `-`.

use sha2::{Digest, Sha256};

/// Number of hex digits of the sha256 suffix of an image name.
pub const HASH_HEX_LEN: usize = 64;

/// The network id of Fabric's `sampleconfig/core.yaml` (`peer.networkId: dev`), which the peer
/// images ship as their default configuration; the peer has no default in code (an unset
/// `peer.networkId` is empty, and `preFormatImageName` then leaves it out).
pub const DEFAULT_NETWORK_ID: &str = "dev";

/// The docker image regexp `imageRegExp` of Fabric's
/// `core/container/dockercontroller/dockercontroller.go`, for messages.
pub const IMAGE_NAME_PATTERN: &str = "^[a-z0-9]+(([._-][a-z0-9]+)+)?$";

/// A chaincode as a peer names it: `DockerVM.NetworkID`, `DockerVM.PeerID` and `ccintf.CCID`
/// (`Name`, `Version`) of Fabric's `core/container/dockercontroller/dockercontroller.go` and
/// `core/container/ccintf/ccintf.go`. The strings are the peer's, unsanitized.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChaincodeId {
    /// `peer.networkId` (`CORE_PEER_NETWORKID`); may be empty.
    pub network_id: String,
    /// `peer.id` (`CORE_PEER_ID`); may be empty.
    pub peer_id: String,
    /// The chaincode name (`CCID.Name`).
    pub name: String,
    /// The chaincode version (`CCID.Version`); may be empty.
    pub version: String,
}

impl ChaincodeId {
    /// A chaincode id from its four parts.
    pub fn new(
        network_id: impl Into<String>,
        peer_id: impl Into<String>,
        name: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        ChaincodeId {
            network_id: network_id.into(),
            peer_id: peer_id.into(),
            name: name.into(),
            version: version.into(),
        }
    }

    /// The peer part (network id and peer id).
    pub fn peer(&self) -> PeerIdentity {
        PeerIdentity::new(&self.network_id, &self.peer_id)
    }

    /// `<name>-<version>`, or `<name>` if the version is empty: `CCID.GetName` of Fabric's
    /// `core/container/ccintf/ccintf.go`.
    pub fn ccid_name(&self) -> String {
        if self.version.is_empty() {
            self.name.clone()
        } else {
            format!("{}-{}", self.name, self.version)
        }
    }

    /// The unsanitized name both container and image names derive from:
    /// `DockerVM.preFormatImageName` of Fabric's
    /// `core/container/dockercontroller/dockercontroller.go`, i.e.
    /// [`PeerIdentity::prefix`] followed by [`ChaincodeId::ccid_name`].
    pub fn pre_format_image_name(&self) -> String {
        self.peer().prefix() + &self.ccid_name()
    }
}

/// The peer part of a [`ChaincodeId`]: `DockerVM.NetworkID` and `DockerVM.PeerID` of Fabric's
/// `core/container/dockercontroller/dockercontroller.go`, unsanitized.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerIdentity {
    /// `peer.networkId` (`CORE_PEER_NETWORKID`); may be empty.
    pub network_id: String,
    /// `peer.id` (`CORE_PEER_ID`); may be empty.
    pub peer_id: String,
}

impl PeerIdentity {
    /// A peer identity from a network id and a peer id.
    pub fn new(network_id: impl Into<String>, peer_id: impl Into<String>) -> Self {
        PeerIdentity {
            network_id: network_id.into(),
            peer_id: peer_id.into(),
        }
    }

    /// What `DockerVM.preFormatImageName` (Fabric's
    /// `core/container/dockercontroller/dockercontroller.go`) puts before the chaincode's
    /// `CCID.GetName()`: `<networkId>-<peerId>-`, `<networkId>-`, `<peerId>-` or nothing,
    /// depending on which of the two are non-empty.
    pub fn prefix(&self) -> String {
        match (self.network_id.is_empty(), self.peer_id.is_empty()) {
            (false, false) => format!("{}-{}-", self.network_id, self.peer_id),
            (false, true) => format!("{}-", self.network_id),
            (true, false) => format!("{}-", self.peer_id),
            (true, true) => String::new(),
        }
    }
}

/// Why the peer would not name a chaincode image this way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// `DockerVM.GetVMNameForDocker` of Fabric's
    /// `core/container/dockercontroller/dockercontroller.go` returns "Error constructing Docker
    /// VM Name. '…' breaks Docker's repository naming rules".
    #[error(
        "the chaincode image name `{image_name}` (from `{prefix}`) breaks Docker's repository \
         naming rules: expected lowercase letters and digits separated by single '.', '_' or \
         '-' ({IMAGE_NAME_PATTERN}); a Fabric v1.4.12 peer refuses to build this chaincode \
         (GetVMNameForDocker) — change the network id, peer id, chaincode name or version so \
         that none of them starts or ends with '.', '_', '-' or a character outside \
         [a-zA-Z0-9._-], and no two such characters meet"
    )]
    BreaksRepositoryRules {
        /// The name that was computed.
        image_name: String,
        /// The unsanitized `preFormatImageName` it was computed from.
        prefix: String,
    },
}

/// Replace every character outside `[a-zA-Z0-9-_.]` by `-`: `vmRegExp.ReplaceAllString(…, "-")`
/// in Fabric's `core/container/dockercontroller/dockercontroller.go` (one `-` per character,
/// as Go's `regexp` matches runes).
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if is_sanitized_char(c) { c } else { '-' })
        .collect()
}

fn is_sanitized_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Whether `s` matches `imageRegExp` (`^[a-z0-9]+(([._-][a-z0-9]+)+)?$`) of Fabric's
/// `core/container/dockercontroller/dockercontroller.go`: lowercase ASCII letters and digits,
/// separated by single `.`, `_` or `-`, neither first nor last.
pub fn matches_image_regexp(s: &str) -> bool {
    // Start as if after a separator: an empty name or a leading separator fails.
    let mut after_separator = true;
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' => after_separator = false,
            b'.' | b'_' | b'-' if !after_separator => after_separator = true,
            _ => return false,
        }
    }
    !after_separator
}

/// The container name: `DockerVM.GetVMName` of Fabric's
/// `core/container/dockercontroller/dockercontroller.go`, i.e. [`sanitize`] of
/// [`ChaincodeId::pre_format_image_name`], case preserved. (`ccidToContainerID`'s replacement
/// of `:` by `_` never applies: sanitizing already removed every `:`.)
pub fn container_name(id: &ChaincodeId) -> String {
    sanitize(&id.pre_format_image_name())
}

/// The image (repository) name, without tag; Docker adds `:latest`:
/// `DockerVM.GetVMNameForDocker` of Fabric's
/// `core/container/dockercontroller/dockercontroller.go`, i.e.
/// `lowercase(sanitize(pre) + "-" + hex(sha256(pre)))` where `pre` is
/// [`ChaincodeId::pre_format_image_name`], and an error unless that matches
/// [`IMAGE_NAME_PATTERN`].
pub fn image_name(id: &ChaincodeId) -> Result<String, NameError> {
    let prefix = id.pre_format_image_name();
    let image_name = image_name_unchecked(&prefix);
    if matches_image_regexp(&image_name) {
        Ok(image_name)
    } else {
        Err(NameError::BreaksRepositoryRules { image_name, prefix })
    }
}

/// `lowercase(sanitize(prefix) + "-" + hex(sha256(prefix)))`, unchecked.
fn image_name_unchecked(prefix: &str) -> String {
    let mut name = sanitize(prefix);
    name.make_ascii_lowercase();
    name.push('-');
    name.push_str(&prefix_hash(prefix));
    name
}

fn prefix_hash(prefix: &str) -> String {
    hex::encode(Sha256::digest(prefix.as_bytes()))
}

/// What the caller knows about the peers and chaincodes whose names are to be verified
/// (see the module documentation for what verifies without any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// Chaincodes that may have been deployed (all four parts, unsanitized).
    pub candidates: Vec<ChaincodeId>,
    /// Peers that may have deployed chaincodes (network id and peer id, unsanitized).
    pub peers: Vec<PeerIdentity>,
}

impl Hints {
    /// No hints: only names whose unsanitized prefix is already sanitized and lowercase verify.
    pub fn none() -> Self {
        Hints::default()
    }

    /// Add a candidate chaincode.
    pub fn candidate(mut self, id: ChaincodeId) -> Self {
        self.candidates.push(id);
        self
    }

    /// Add a peer (network id and peer id).
    pub fn peer(mut self, network_id: impl Into<String>, peer_id: impl Into<String>) -> Self {
        self.peers.push(PeerIdentity::new(network_id, peer_id));
        self
    }

    /// Add every combination of the given network ids and peer ids (`--network-id`,
    /// `--peer-id`, each possibly repeated).
    pub fn peers<N: AsRef<str>, P: AsRef<str>>(
        mut self,
        network_ids: &[N],
        peer_ids: &[P],
    ) -> Self {
        for n in network_ids {
            for p in peer_ids {
                self.peers.push(PeerIdentity::new(n.as_ref(), p.as_ref()));
            }
        }
        self
    }

    /// Every hint that agrees with a verified unsanitized prefix.
    fn matches(&self, prefix: &str) -> Vec<Match> {
        let mut out: Vec<Match> = Vec::new();
        for id in &self.candidates {
            let m = Match::Chaincode(id.clone());
            if id.pre_format_image_name() == prefix && !out.contains(&m) {
                out.push(m);
            }
        }
        for peer in &self.peers {
            let pp = peer.prefix();
            if let Some(rest) = prefix.strip_prefix(pp.as_str()) {
                let m = Match::Peer {
                    peer: peer.clone(),
                    ccid_name: rest.to_string(),
                };
                if !rest.is_empty() && !out.contains(&m) {
                    out.push(m);
                }
            }
        }
        out
    }
}

/// A hint that agrees with a verified name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// A candidate whose `preFormatImageName` is the verified prefix.
    Chaincode(ChaincodeId),
    /// A peer whose part of `preFormatImageName` starts the verified prefix.
    Peer {
        /// The peer.
        peer: PeerIdentity,
        /// The rest of the prefix: the chaincode's `CCID.GetName()`, `<name>-<version>`, not
        /// split (names and versions may both contain `-`).
        ccid_name: String,
    },
}

/// How an image name's unsanitized prefix was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// From a candidate [`ChaincodeId`].
    Candidate,
    /// From a [`PeerIdentity`] and the rest of the name as it is.
    Peer,
    /// From the name alone: the prefix is its own sanitized, lowercase form.
    NameAlone,
}

/// An image name that verifies as made by `DockerVM.GetVMNameForDocker` (Fabric's
/// `core/container/dockercontroller/dockercontroller.go`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedImage {
    /// The repository part of the name (the peer's image name).
    pub repository: String,
    /// The tag, if the name had one. The peer itself only makes `latest`.
    pub tag: Option<String>,
    /// The unsanitized `preFormatImageName` whose sha256 ends the name.
    pub prefix: String,
    /// How the prefix was found.
    pub evidence: Evidence,
    /// Every hint that agrees with the prefix (empty if none does).
    pub matches: Vec<Match>,
}

impl VerifiedImage {
    /// The chaincode, if exactly one candidate agrees with the prefix.
    pub fn chaincode_id(&self) -> Option<&ChaincodeId> {
        single_chaincode(&self.matches)
    }
}

fn single_chaincode(matches: &[Match]) -> Option<&ChaincodeId> {
    let mut ids = matches.iter().filter_map(|m| match m {
        Match::Chaincode(id) => Some(id),
        Match::Peer { .. } => None,
    });
    match (ids.next(), ids.next()) {
        (Some(id), None) => Some(id),
        _ => None,
    }
}

/// Why an image name does not verify as a peer's chaincode image (`GetVMNameForDocker` of
/// Fabric's `core/container/dockercontroller/dockercontroller.go`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRejection {
    /// The name has a digest (`@…`); the peer names images by name only.
    #[error("`{0}` is a digest reference; a peer names chaincode images `<prefix>-<sha256>` without digest")]
    Digest(String),
    /// The tag is not a Docker tag.
    #[error("`{0}` has an invalid tag; expected `<repository>[:<tag>]`")]
    InvalidTag(String),
    /// The repository does not match `imageRegExp`, which every peer image name matches
    /// (it has a registry or namespace, uppercase letters, or misplaced separators).
    #[error(
        "`{0}` does not match {IMAGE_NAME_PATTERN}, which every peer chaincode image name matches"
    )]
    NotPeerImageName(String),
    /// The repository does not end in `-` and 64 lowercase hex digits after a non-empty prefix.
    #[error("`{0}` does not end in `-<64 lowercase hex digits>` (the sha256 a peer appends to chaincode image names)")]
    NoHashSuffix(String),
    /// The name has the right shape, but no unsanitized prefix tried hashes to its suffix.
    #[error(
        "`{repository}` has the shape of a peer chaincode image, but the sha256 of none of the \
         {tried} prefix(es) tried is its suffix: it is not a chaincode image, or the peer's \
         network id, peer id, chaincode name or version had uppercase letters or characters \
         outside [a-z0-9._-] — pass them (--network-id/--peer-id, or the chaincode name and \
         version) to verify it"
    )]
    HashMismatch {
        /// The repository part of the name.
        repository: String,
        /// How many unsanitized prefixes were tried.
        tried: usize,
    },
}

/// The verdict on an image name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageVerdict {
    /// The name verifies as a peer's chaincode image.
    Verified(VerifiedImage),
    /// It does not.
    NotChaincode(ImageRejection),
}

impl ImageVerdict {
    /// The verified image, if any.
    pub fn verified(&self) -> Option<&VerifiedImage> {
        match self {
            ImageVerdict::Verified(v) => Some(v),
            ImageVerdict::NotChaincode(_) => None,
        }
    }
}

/// Whether `reference` (`<repository>[:<tag>]`, as `docker images` lists it) verifies as an
/// image made by `DockerVM.GetVMNameForDocker` (Fabric's
/// `core/container/dockercontroller/dockercontroller.go`): its repository matches
/// `imageRegExp`, ends in `-<64 lowercase hex digits>`, and those are the sha256 of an
/// unsanitized prefix, tried from the `hints` and then from the name alone, whose sanitized
/// lowercase form is the rest. See the module documentation for which names verify without
/// hints.
pub fn parse_image_name(reference: &str, hints: &Hints) -> ImageVerdict {
    use ImageVerdict::NotChaincode;
    if reference.contains('@') {
        return NotChaincode(ImageRejection::Digest(reference.to_string()));
    }
    let (repository, tag) = match reference.rsplit_once(':') {
        Some((repo, tag)) => {
            if !is_docker_tag(tag) {
                return NotChaincode(ImageRejection::InvalidTag(reference.to_string()));
            }
            (repo, Some(tag.to_string()))
        }
        None => (reference, None),
    };
    if !matches_image_regexp(repository) {
        return NotChaincode(ImageRejection::NotPeerImageName(repository.to_string()));
    }
    let Some((sanitized, hash)) = split_hash(repository) else {
        return NotChaincode(ImageRejection::NoHashSuffix(repository.to_string()));
    };

    let verifies = |prefix: &str| image_name_unchecked(prefix) == repository;
    let mut tried = 0usize;
    let mut found: Option<(String, Evidence)> = None;
    for id in &hints.candidates {
        let prefix = id.pre_format_image_name();
        tried += 1;
        if verifies(&prefix) {
            found = Some((prefix, Evidence::Candidate));
            break;
        }
    }
    if found.is_none() {
        for peer in &hints.peers {
            let pp = peer.prefix();
            let mut spp = sanitize(&pp);
            spp.make_ascii_lowercase();
            let Some(rest) = sanitized.strip_prefix(spp.as_str()) else {
                continue;
            };
            if rest.is_empty() {
                continue;
            }
            let prefix = pp + rest;
            tried += 1;
            if verifies(&prefix) {
                found = Some((prefix, Evidence::Peer));
                break;
            }
        }
    }
    if found.is_none() {
        tried += 1;
        if prefix_hash(sanitized) == hash {
            found = Some((sanitized.to_string(), Evidence::NameAlone));
        }
    }
    match found {
        Some((prefix, evidence)) => ImageVerdict::Verified(VerifiedImage {
            repository: repository.to_string(),
            tag,
            matches: hints.matches(&prefix),
            prefix,
            evidence,
        }),
        None => NotChaincode(ImageRejection::HashMismatch {
            repository: repository.to_string(),
            tried,
        }),
    }
}

/// `<sanitized prefix>-<64 lowercase hex>` → (prefix, hex); the prefix is non-empty.
fn split_hash(repository: &str) -> Option<(&str, &str)> {
    let cut = repository.len().checked_sub(HASH_HEX_LEN + 1)?;
    if cut == 0 || !repository.is_char_boundary(cut) {
        return None;
    }
    let (prefix, dash_hash) = repository.split_at(cut);
    let hash = dash_hash.strip_prefix('-')?;
    hash.bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        .then_some((prefix, hash))
}

/// Docker's tag grammar: `[\w][\w.-]{0,127}`.
fn is_docker_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes[1..]
            .iter()
            .all(|&b| word(b) || b == b'.' || b == b'-')
}

/// A container name that verifies as made by `DockerVM.GetVMName` (Fabric's
/// `core/container/dockercontroller/dockercontroller.go`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedContainer {
    /// The container name, without Docker's leading `/`.
    pub name: String,
    /// The image the container runs, when it was given and verified.
    pub image: Option<VerifiedImage>,
    /// Every hint that agrees with the name: with an image, those that agree with its
    /// prefix; without, the candidates whose container name it is.
    pub matches: Vec<Match>,
}

impl VerifiedContainer {
    /// The chaincode, if exactly one candidate agrees with the name.
    pub fn chaincode_id(&self) -> Option<&ChaincodeId> {
        single_chaincode(&self.matches)
    }
}

/// Why a container name does not verify as a peer's chaincode container (`GetVMName` of
/// Fabric's `core/container/dockercontroller/dockercontroller.go`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerRejection {
    /// The name has characters that sanitizing removes, or is empty.
    #[error(
        "`{0}` has characters outside [a-zA-Z0-9._-], which a peer's container names never have"
    )]
    NotSanitized(String),
    /// The image given does not verify as a chaincode image.
    #[error(
        "the container `{name}` runs `{image}`, which is not a peer chaincode image: {reason}"
    )]
    ImageNotChaincode {
        /// The container name.
        name: String,
        /// The image as given.
        image: String,
        /// Why the image does not verify.
        reason: ImageRejection,
    },
    /// The image verifies, but its prefix does not sanitize to the container name.
    #[error(
        "the container `{name}` runs the chaincode image `{image}`, whose peer would have named \
         the container `{expected}`"
    )]
    NameImageMismatch {
        /// The container name.
        name: String,
        /// The image as given.
        image: String,
        /// The container name that image's prefix gives.
        expected: String,
    },
    /// No image was given and no candidate gives this name.
    #[error(
        "the container name `{0}` carries no hash and no candidate chaincode (network id, peer \
         id, name, version) gives it: pass the image it runs or the chaincode to verify it"
    )]
    Unverified(String),
}

/// The verdict on a container name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerVerdict {
    /// The name verifies as a peer's chaincode container.
    Verified(VerifiedContainer),
    /// It does not.
    NotChaincode(ContainerRejection),
}

impl ContainerVerdict {
    /// The verified container, if any.
    pub fn verified(&self) -> Option<&VerifiedContainer> {
        match self {
            ContainerVerdict::Verified(v) => Some(v),
            ContainerVerdict::NotChaincode(_) => None,
        }
    }
}

/// Whether the container `name` (Docker's leading `/` allowed) verifies as made by
/// `DockerVM.GetVMName` (Fabric's `core/container/dockercontroller/dockercontroller.go`).
///
/// A container name carries no hash, so it verifies only:
/// - with `image`, the image the container runs as Docker reports it (the peer creates the
///   container from its `GetVMNameForDocker` image): that image must verify with
///   [`parse_image_name`] and `GetVMName` of its prefix must be `name`. An image ID
///   (`sha256:<64 hex>`, reported once the image's name is gone) carries no name and counts
///   as no image;
/// - without, if a candidate [`ChaincodeId`] of `hints` has exactly this container name.
///
/// [`Hints::peers`] alone never verify a container name (any `dev-peer0-…` would).
pub fn parse_container_name(name: &str, image: Option<&str>, hints: &Hints) -> ContainerVerdict {
    use ContainerVerdict::NotChaincode;
    let name = name.strip_prefix('/').unwrap_or(name);
    if name.is_empty() || !name.chars().all(is_sanitized_char) {
        return NotChaincode(ContainerRejection::NotSanitized(name.to_string()));
    }
    if let Some(image) = image.filter(|i| !is_image_id(i)) {
        let verified = match parse_image_name(image, hints) {
            ImageVerdict::Verified(v) => v,
            ImageVerdict::NotChaincode(reason) => {
                return NotChaincode(ContainerRejection::ImageNotChaincode {
                    name: name.to_string(),
                    image: image.to_string(),
                    reason,
                })
            }
        };
        let expected = sanitize(&verified.prefix);
        if expected != name {
            return NotChaincode(ContainerRejection::NameImageMismatch {
                name: name.to_string(),
                image: image.to_string(),
                expected,
            });
        }
        return ContainerVerdict::Verified(VerifiedContainer {
            name: name.to_string(),
            matches: verified.matches.clone(),
            image: Some(verified),
        });
    }
    let mut matches: Vec<Match> = Vec::new();
    for id in &hints.candidates {
        let m = Match::Chaincode(id.clone());
        if container_name(id) == name && !matches.contains(&m) {
            matches.push(m);
        }
    }
    if matches.is_empty() {
        return NotChaincode(ContainerRejection::Unverified(name.to_string()));
    }
    ContainerVerdict::Verified(VerifiedContainer {
        name: name.to_string(),
        image: None,
        matches,
    })
}

/// `sha256:<64 hex>` or a bare 64-hex image ID.
fn is_image_id(image: &str) -> bool {
    let hex = image.strip_prefix("sha256:").unwrap_or(image);
    hex.len() == HASH_HEX_LEN && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE_IMAGE: &str = "dev-peer0.org1.example.com-mycc-1.0-384f11f484b9302df90b453200cfb25174305fce8f53f4e94d45ee3b6cab0ce9";

    fn example() -> ChaincodeId {
        ChaincodeId::new("dev", "peer0.org1.example.com", "mycc", "1.0")
    }

    fn sha(s: &str) -> String {
        hex::encode(Sha256::digest(s.as_bytes()))
    }

    fn flip_hex(image: &str, index: usize, delta: u32) -> String {
        let cut = image.len() - HASH_HEX_LEN;
        let mut bytes = image.as_bytes().to_vec();
        let d = (bytes[cut + index] as char).to_digit(16).unwrap();
        bytes[cut + index] = std::char::from_digit((d + delta) % 16, 16).unwrap() as u8;
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn the_documented_example() {
        let id = example();
        assert_eq!(
            id.pre_format_image_name(),
            "dev-peer0.org1.example.com-mycc-1.0"
        );
        assert_eq!(container_name(&id), "dev-peer0.org1.example.com-mycc-1.0");
        assert_eq!(image_name(&id).unwrap(), EXAMPLE_IMAGE);
    }

    // The cases of TestGetVMNameForDocker and TestGetVMName in Fabric v1.4.12's
    // core/container/dockercontroller/dockercontroller_test.go.
    #[test]
    fn fabric_test_cases() {
        let cases = [
            (
                "dev",
                "peer0",
                "mycc",
                "dev-peer0-mycc-1.0",
                "dev-peer0-mycc-1.0",
            ),
            ("", "peer1", "mycc", "peer1-mycc-1.0", "peer1-mycc-1.0"),
            (
                "Dev",
                "Peer0",
                "myCC",
                "dev-peer0-mycc-1.0",
                "Dev-Peer0-myCC-1.0",
            ),
            (
                "Dev$dev",
                "Peer*0",
                "myCC",
                "dev-dev-peer-0-mycc-1.0",
                "Dev$dev-Peer*0-myCC-1.0",
            ),
            ("dev", "", "mycc", "dev-mycc-1.0", "dev-mycc-1.0"),
            (
                "dev",
                "peer0",
                "myCC",
                "dev-peer0-mycc-1.0",
                "dev-peer0-myCC-1.0",
            ),
        ];
        for (net, peer, name, sanitized, hashed) in cases {
            let id = ChaincodeId::new(net, peer, name, "1.0");
            assert_eq!(
                image_name(&id).unwrap(),
                format!("{sanitized}-{}", sha(hashed)),
                "{id:?}"
            );
        }
        let id = ChaincodeId::new("Dev", "Peer0", "myCC", "1.0");
        assert_eq!(container_name(&id), "Dev-Peer0-myCC-1.0");
    }

    #[test]
    fn empty_parts_are_left_out() {
        assert_eq!(
            ChaincodeId::new("", "", "mycc", "1.0").pre_format_image_name(),
            "mycc-1.0"
        );
        assert_eq!(
            ChaincodeId::new("dev", "p", "mycc", "").pre_format_image_name(),
            "dev-p-mycc"
        );
        assert_eq!(PeerIdentity::new("", "").prefix(), "");
    }

    #[test]
    fn sanitizing_odd_characters() {
        assert_eq!(sanitize("peer0.org1:7051"), "peer0.org1-7051");
        assert_eq!(sanitize("a b/c\\d$e*f+g@h#i"), "a-b-c-d-e-f-g-h-i");
        assert_eq!(sanitize("keep-_.AZaz09"), "keep-_.AZaz09");
        // One '-' per character, not per byte, as Go's regexp matches runes.
        assert_eq!(sanitize("péer0"), "p-er0");
        assert_eq!(sanitize("节点"), "--");
        let id = ChaincodeId::new("dev", "Péer:0", "MyCC", "1.0+b");
        assert_eq!(container_name(&id), "dev-P-er-0-MyCC-1.0-b");
        assert_eq!(
            image_name(&id).unwrap(),
            format!("dev-p-er-0-mycc-1.0-b-{}", sha("dev-Péer:0-MyCC-1.0+b"))
        );
    }

    #[test]
    fn image_regexp_grammar() {
        for ok in ["a", "a0", "a.b", "a_b-c.d", "0-0"] {
            assert!(matches_image_regexp(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a--b", "a.-b", "A", "a/b", "a:b", "é"] {
            assert!(!matches_image_regexp(bad), "{bad}");
        }
    }

    #[test]
    fn names_the_peer_refuses() {
        // lscc (core/scc/lscc/lscc.go) accepts these versions (^[A-Za-z0-9_.+-]+$), but the
        // image name then has two separators in a row.
        for version in ["1.0+", "1.0-", "+1", "1..0", "1._0"] {
            let id = ChaincodeId::new("dev", "peer0", "mycc", version);
            let err = image_name(&id).unwrap_err();
            let NameError::BreaksRepositoryRules { image_name, prefix } = &err;
            assert_eq!(prefix, &format!("dev-peer0-mycc-{version}"));
            assert!(!matches_image_regexp(image_name));
            let msg = err.to_string();
            assert!(
                msg.contains(image_name.as_str()) && msg.contains(IMAGE_NAME_PATTERN),
                "{msg}"
            );
        }
        // A peer id starting with a character that becomes '-', and an empty prefix.
        assert!(image_name(&ChaincodeId::new("", "*peer", "mycc", "1")).is_err());
        assert!(image_name(&ChaincodeId::new("", "", "", "")).is_err());
        // Uppercase is lowercased, so it never fails by itself.
        assert!(image_name(&ChaincodeId::new("DEV", "PEER", "CC", "V1")).is_ok());
    }

    #[test]
    fn example_verifies_without_hints() {
        for reference in [EXAMPLE_IMAGE.to_string(), format!("{EXAMPLE_IMAGE}:latest")] {
            let v = parse_image_name(&reference, &Hints::none());
            let v = v.verified().expect("verifies");
            assert_eq!(v.repository, EXAMPLE_IMAGE);
            assert_eq!(v.prefix, "dev-peer0.org1.example.com-mycc-1.0");
            assert_eq!(v.evidence, Evidence::NameAlone);
            assert!(v.matches.is_empty());
            assert_eq!(v.chaincode_id(), None);
        }
        let v = parse_image_name(&format!("{EXAMPLE_IMAGE}:latest"), &Hints::none());
        assert_eq!(v.verified().unwrap().tag.as_deref(), Some("latest"));
    }

    #[test]
    fn hints_split_the_prefix() {
        let hints = Hints::none().peer("dev", "peer0.org1.example.com");
        let v = parse_image_name(EXAMPLE_IMAGE, &hints);
        let v = v.verified().unwrap();
        assert_eq!(
            v.matches,
            vec![Match::Peer {
                peer: PeerIdentity::new("dev", "peer0.org1.example.com"),
                ccid_name: "mycc-1.0".into(),
            }]
        );
        let hints = Hints::none().candidate(example());
        let v = parse_image_name(EXAMPLE_IMAGE, &hints);
        let v = v.verified().unwrap();
        assert_eq!(v.evidence, Evidence::Candidate);
        assert_eq!(v.chaincode_id(), Some(&example()));
    }

    #[test]
    fn uppercase_peer_needs_peer_hint_and_uppercase_chaincode_needs_candidate() {
        let id = ChaincodeId::new("Dev", "Peer0", "mycc", "1.0");
        let image = image_name(&id).unwrap();
        assert!(matches!(
            parse_image_name(&image, &Hints::none()),
            ImageVerdict::NotChaincode(ImageRejection::HashMismatch { .. })
        ));
        // Wrong spelling of the peer id: still no.
        assert!(
            parse_image_name(&image, &Hints::none().peer("dev", "peer0"))
                .verified()
                .is_none()
        );
        let v = parse_image_name(&image, &Hints::none().peers(&["dev", "Dev"], &["Peer0"]));
        let v = v.verified().unwrap();
        assert_eq!(v.evidence, Evidence::Peer);
        assert_eq!(v.prefix, "Dev-Peer0-mycc-1.0");

        let id = ChaincodeId::new("dev", "peer0", "myCC", "1.0");
        let image = image_name(&id).unwrap();
        assert!(
            parse_image_name(&image, &Hints::none().peer("dev", "peer0"))
                .verified()
                .is_none()
        );
        let v = parse_image_name(&image, &Hints::none().candidate(id.clone()));
        assert_eq!(v.verified().unwrap().chaincode_id(), Some(&id));
    }

    #[test]
    fn ambiguous_candidates_are_all_reported() {
        // lscc allows '-' in names and versions: two chaincodes, one name.
        let a = ChaincodeId::new("dev", "peer0", "my-cc", "1");
        let b = ChaincodeId::new("dev", "peer0", "my", "cc-1");
        assert_eq!(image_name(&a).unwrap(), image_name(&b).unwrap());
        let hints = Hints::none().candidate(a.clone()).candidate(b.clone());
        let v = parse_image_name(&image_name(&a).unwrap(), &hints);
        let v = v.verified().unwrap();
        assert_eq!(v.matches, vec![Match::Chaincode(a), Match::Chaincode(b)]);
        assert_eq!(v.chaincode_id(), None);
    }

    #[test]
    fn wrong_hash_does_not_verify() {
        let wrong = flip_hex(EXAMPLE_IMAGE, 0, 1);
        let hints = Hints::none()
            .candidate(example())
            .peer("dev", "peer0.org1.example.com");
        assert_eq!(
            parse_image_name(&wrong, &hints),
            ImageVerdict::NotChaincode(ImageRejection::HashMismatch {
                repository: wrong.clone(),
                tried: 3,
            })
        );
        // The hash of another prefix.
        let other = format!(
            "dev-peer0.org1.example.com-mycc-1.0-{}",
            sha("dev-peer0.org1.example.com-mycc-1.1")
        );
        assert!(parse_image_name(&other, &hints).verified().is_none());
        // The hash of the sanitized prefix with something appended, or of the whole name.
        let other = format!("dev-peer0-mycc-1.0-{}", sha("dev-peer0-mycc-1.0-"));
        assert!(parse_image_name(&other, &Hints::none())
            .verified()
            .is_none());
    }

    #[test]
    fn other_names_do_not_verify() {
        let none = Hints::none();
        type Check = fn(&ImageRejection) -> bool;
        let cases: [(&str, Check); 7] = [
            ("dev-peer0-mycc-1.0", |r| {
                matches!(r, ImageRejection::NoHashSuffix(_))
            }),
            ("dev-something", |r| {
                matches!(r, ImageRejection::NoHashSuffix(_))
            }),
            ("hyperledger/fabric-peer:latest", |r| {
                matches!(r, ImageRejection::NotPeerImageName(_))
            }),
            ("hyperledger/fabric-ccenv", |r| {
                matches!(r, ImageRejection::NotPeerImageName(_))
            }),
            ("localhost:5000/dev-x", |r| {
                matches!(r, ImageRejection::InvalidTag(_))
            }),
            ("busybox@sha256:00", |r| {
                matches!(r, ImageRejection::Digest(_))
            }),
            ("", |r| matches!(r, ImageRejection::NotPeerImageName(_))),
        ];
        for (name, expected) in cases {
            match parse_image_name(name, &none) {
                ImageVerdict::NotChaincode(reason) => {
                    assert!(expected(&reason), "{name}: {reason:?}")
                }
                v => panic!("{name} verified: {v:?}"),
            }
        }
        // A bare hash, uppercase hex, a hash without prefix.
        let h = sha("x");
        for name in [
            h.clone(),
            format!("-{h}"),
            format!("x-{}", h.to_uppercase()),
        ] {
            assert!(
                parse_image_name(&name, &none).verified().is_none(),
                "{name}"
            );
        }
        // Sixty-three hex digits.
        assert!(matches!(
            parse_image_name(&format!("x-{}", &h[1..]), &none),
            ImageVerdict::NotChaincode(ImageRejection::HashMismatch { .. })
                | ImageVerdict::NotChaincode(ImageRejection::NoHashSuffix(_))
        ));
    }

    #[test]
    fn rejection_messages_name_the_value() {
        let ImageVerdict::NotChaincode(r) =
            parse_image_name(&flip_hex(EXAMPLE_IMAGE, 3, 2), &Hints::none())
        else {
            panic!()
        };
        let msg = r.to_string();
        assert!(
            msg.contains("dev-peer0.org1.example.com-mycc-1.0-") && msg.contains("--peer-id"),
            "{msg}"
        );
    }

    #[test]
    fn containers() {
        let id = ChaincodeId::new("Dev", "Peer*0", "mycc", "1.0");
        let name = container_name(&id);
        assert_eq!(name, "Dev-Peer-0-mycc-1.0");
        let image = image_name(&id).unwrap();

        // A name alone verifies only against a candidate.
        assert_eq!(
            parse_container_name(&name, None, &Hints::none()),
            ContainerVerdict::NotChaincode(ContainerRejection::Unverified(name.clone()))
        );
        assert!(
            parse_container_name(&name, None, &Hints::none().peer("Dev", "Peer*0"))
                .verified()
                .is_none()
        );
        let hints = Hints::none().candidate(id.clone());
        let v = parse_container_name(&format!("/{name}"), None, &hints);
        assert_eq!(v.verified().unwrap().chaincode_id(), Some(&id));
        // An image ID is no image.
        let v = parse_container_name(&name, Some(&format!("sha256:{}", sha("x"))), &hints);
        assert!(v.verified().is_some());

        // With its image: verified as far as the image verifies.
        let v = parse_container_name(&name, Some(&image), &Hints::none().peer("Dev", "Peer*0"));
        let v = v.verified().unwrap();
        assert_eq!(v.image.as_ref().unwrap().prefix, "Dev-Peer*0-mycc-1.0");
        // An uppercase chaincode name needs the candidate, even with the image.
        let upper = ChaincodeId::new("Dev", "Peer*0", "myCC", "1.0");
        let upper_image = image_name(&upper).unwrap();
        let upper_name = container_name(&upper);
        let peer_only = Hints::none().peer("Dev", "Peer*0");
        assert!(
            parse_container_name(&upper_name, Some(&upper_image), &peer_only)
                .verified()
                .is_none()
        );
        let v = parse_container_name(
            &upper_name,
            Some(&upper_image),
            &Hints::none().candidate(upper.clone()),
        );
        assert_eq!(v.verified().unwrap().chaincode_id(), Some(&upper));
        let v = parse_container_name(&name, Some(&image), &Hints::none());
        assert!(matches!(
            v,
            ContainerVerdict::NotChaincode(ContainerRejection::ImageNotChaincode { .. })
        ));
        // Clean ids: container and image verify with no hints.
        let v = parse_container_name(
            "dev-peer0.org1.example.com-mycc-1.0",
            Some(&format!("{EXAMPLE_IMAGE}:latest")),
            &Hints::none(),
        );
        assert!(v.verified().is_some());
        // A container with another name running a chaincode image.
        let v = parse_container_name(
            "dev-peer0.org1.example.com-mycc-1.1",
            Some(EXAMPLE_IMAGE),
            &Hints::none(),
        );
        assert!(matches!(
            v,
            ContainerVerdict::NotChaincode(ContainerRejection::NameImageMismatch { .. })
        ));
        // Case matters for container names.
        let v = parse_container_name(
            "DEV-peer0.org1.example.com-mycc-1.0",
            Some(EXAMPLE_IMAGE),
            &Hints::none(),
        );
        assert!(v.verified().is_none());
        // Not a sanitized name.
        assert!(matches!(
            parse_container_name("dev peer", None, &hints),
            ContainerVerdict::NotChaincode(ContainerRejection::NotSanitized(_))
        ));
        assert!(parse_container_name("couchdb0", None, &hints)
            .verified()
            .is_none());
    }

    /// Mostly ids the peer accepts (odd characters between letters and digits), sometimes
    /// anything (which `image_name` may refuse).
    fn ids() -> impl Strategy<Value = ChaincodeId> {
        let network = prop_oneof![
            1 => Just(String::new()),
            6 => "[a-zA-Z0-9]{1,4}([._:*é -][a-zA-Z0-9]{1,4}){0,2}",
            1 => "[a-zA-Z0-9._:*é-]{0,12}",
        ];
        let peer = prop_oneof![
            1 => Just(String::new()),
            6 => "[a-zA-Z0-9]{1,4}([._:*/-][a-zA-Z0-9]{1,4}){0,3}",
            1 => "[a-zA-Z0-9._:*-]{0,16}",
        ];
        // lscc's ChaincodeNameRegExp and ChaincodeVersionRegExp.
        let name = "[a-zA-Z0-9]{1,6}([-_][a-zA-Z0-9]{1,6}){0,2}";
        let version = prop_oneof![
            6 => "[A-Za-z0-9]{1,3}([_.+-][A-Za-z0-9]{1,3}){0,2}",
            1 => "[A-Za-z0-9_.+-]{1,8}",
        ];
        (network, peer, name, version).prop_map(|(n, p, name, v)| ChaincodeId::new(n, p, name, v))
    }

    fn clean_ids() -> impl Strategy<Value = ChaincodeId> {
        (
            "[a-z0-9]{1,4}([._-][a-z0-9]{1,4}){0,2}",
            "[a-z0-9]{1,4}([._-][a-z0-9]{1,4}){0,3}",
            "[a-z0-9]{1,6}([-_][a-z0-9]{1,6}){0,2}",
            "[a-z0-9]{1,3}([._-][a-z0-9]{1,3}){0,2}",
        )
            .prop_map(|(n, p, name, v)| ChaincodeId::new(n, p, name, v))
    }

    proptest! {
        #[test]
        fn image_name_verifies_against_its_id(id in ids(), index in 0..HASH_HEX_LEN, delta in 1u32..16) {
            let image = match image_name(&id) {
                Ok(image) => image,
                Err(NameError::BreaksRepositoryRules { image_name, prefix }) => {
                    prop_assert_eq!(&prefix, &id.pre_format_image_name());
                    prop_assert!(!matches_image_regexp(&image_name));
                    return Ok(());
                }
            };
            prop_assert!(matches_image_regexp(&image));
            prop_assert!(container_name(&id).chars().all(is_sanitized_char));

            let hints = Hints::none().candidate(id.clone());
            let v = parse_image_name(&image, &hints);
            let v = v.verified().expect("verifies against its id");
            prop_assert_eq!(&v.prefix, &id.pre_format_image_name());
            prop_assert!(v.matches.contains(&Match::Chaincode(id.clone())));

            let c = parse_container_name(&container_name(&id), Some(&image), &hints);
            prop_assert!(c.verified().is_some());

            let flipped = flip_hex(&image, index, delta);
            let peer_hints = hints.clone().peer(&id.network_id, &id.peer_id);
            prop_assert!(parse_image_name(&flipped, &peer_hints).verified().is_none());
            prop_assert!(parse_image_name(&flipped, &Hints::none()).verified().is_none());
        }

        #[test]
        fn clean_ids_verify_without_hints(id in clean_ids(), index in 0..HASH_HEX_LEN, delta in 1u32..16) {
            let image = image_name(&id).unwrap();
            let v = parse_image_name(&image, &Hints::none());
            let v = v.verified().expect("verifies without hints");
            prop_assert_eq!(&v.prefix, &id.pre_format_image_name());
            prop_assert_eq!(v.evidence, Evidence::NameAlone);
            let flipped = flip_hex(&image, index, delta);
            prop_assert!(parse_image_name(&flipped, &Hints::none()).verified().is_none());
        }
    }
}
