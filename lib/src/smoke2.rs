//! **smoke for Fabric 2.x/3.x**: proves that a 2.x/3.x image set works as a network, the way
//! [`crate::smoke`] does for 1.4, with what replaced the 1.4 flows: channel participation (no
//! system channel; 3.x has none) and the `_lifecycle` chaincode flow.
//!
//! | phase | what runs |
//! |---|---|
//! | preflight | every image the run needs is in the engine: `$(DOCKER_NS)/fabric-{tools,peer,orderer}:$(TWO_DIGIT_VERSION)` and the chaincode builder and runtime the built peer will ask for (`core.yaml`'s `chaincode.builder: $(DOCKER_NS)/fabric-ccenv:$(TWO_DIGIT_VERSION)` and `chaincode.golang.runtime: $(DOCKER_NS)/fabric-baseos:$(TWO_DIGIT_VERSION)`, substituted from the peer's own `peer version` metadata as Fabric v2.5.13 `core/chaincode/platforms/util/utils.go` does, or `CORE_CHAINCODE_BUILDER` / `CORE_CHAINCODE_GOLANG_RUNTIME`); all missing ones are named at once; then the chaincode module is assembled from the tree's `vendor/` ([`assemble_chaincode`]) — all before anything starts |
//! | artefacts | `cryptogen generate` and `configtxgen -outputBlock` (an application channel's genesis block: one orderer org with one etcdraft consenter, one peer org) in the tools image |
//! | start | the orderer (no bootstrap channel, channel participation on, admin endpoint and a TLS cluster listener on free ports) and one peer, `--network host` on 127.0.0.1 |
//! | channel | `osnadmin channel join` (until the orderer is the raft leader), `peer channel join` |
//! | package, install, approve, commit | `peer lifecycle chaincode …` of imgforge's chaincode; at install the peer builds it in ccenv with Fabric's own build script (`go build -mod=vendor`: the module carries its `vendor/`) and an image from baseos |
//! | invoke, query | `init a 100 b 200` and `move a b 10`, each waiting for the commit; `query a` must return 90 |
//!
//! With [`SmokeOptions::ccaas`] (Fabric 2.5+) the chaincode runs as a service: before the
//! network, a chaincode-server image of the smoke chaincode ([`server_chaincode_source`], the
//! same vendored module) is built with [`crate::chaincode::server::build`] as
//! `<run id>-ccserver:latest`; the package is a CCaaS package ([`ccaas_package`]: type `ccaas`
//! for the peer's built-in `ccaas_builder`, or `external` with
//! [`SmokeOptions::ccs_builder`], whose `/go/bin/*` the peer gets as the first
//! `chaincode.externalBuilders` entry of a copy of its own core.yaml, [`add_external_builder`]);
//! install must report imgforge's package ID and show the builder in the peer's log; after
//! commit the server container starts on 127.0.0.1 (`CHAINCODE_ID`,
//! `CHAINCODE_SERVER_ADDRESS`), and its log must show that it answered `init`, `move`, `query`.
//!
//! Teardown is [`crate::smoke`]'s: the orderer and peer, the chaincode build container (its
//! command names the chaincode's module path, which carries the run id), the chaincode container
//! and image (named after the run's `CORE_PEER_NETWORKID`; with `--ccaas`, the server's
//! container and image, named after the run id) and the temporary directory — on
//! success, failure and cancellation — unless [`SmokeOptions::keep`] is set.

use crate::config::BuildVars;
use crate::engine::docker::DockerEngine;
use crate::engine::{Engine, RunSpec};
use crate::error::Error;
use crate::event::{Event, Reporter};
use crate::smoke::{field, free_port, Network, SmokeOptions, SmokeReport};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// imgforge's smoke chaincode (Go, `fabric-chaincode-go` shim), with `{{SHIM}}`, `{{PEER}}` and
/// `{{RESP}}` for the import paths and response type of the tree's shim ([`Shim`]).
pub const CHAINCODE_TEMPLATE: &str = include_str!("../assets/smoke2-chaincode/main.go.in");

/// The chaincode's label and name on the channel.
const LABEL: &str = "smokecc_1.0";

/// Fabric's `twoDigitVersion` (`core/chaincode/platforms/util/utils.go`, v2.5.13): the leading
/// `v` trimmed, cut at the last dot; `latest` stays `latest`.
pub fn two_digit_version(version: &str) -> String {
    let v = version.trim_start_matches('v');
    if v == "latest" {
        return v.to_string();
    }
    match v.rfind('.') {
        Some(i) => v[..i].to_string(),
        None => v.to_string(),
    }
}

/// The chaincode builder and runtime image a 2.x/3.x peer asks for, from its `peer version`
/// output and the `CORE_CHAINCODE_*` overrides in `env` (the peer's environment), and the peer's
/// version.
///
/// Errors: a line the derivation needs is missing from the output (not a 2.x/3.x peer).
pub fn chaincode_images(
    peer_version: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, String, String), String> {
    let need = |n: &str| {
        field(peer_version, n).ok_or_else(|| {
            format!("`peer version` does not print {n:?}: is this a Fabric 2.x/3.x peer?")
        })
    };
    let version = need("Version")?;
    let ns = need("Docker Namespace")?;
    let two = two_digit_version(version);
    let builder = env("CORE_CHAINCODE_BUILDER").unwrap_or(format!("{ns}/fabric-ccenv:{two}"));
    let runtime =
        env("CORE_CHAINCODE_GOLANG_RUNTIME").unwrap_or(format!("{ns}/fabric-baseos:{two}"));
    Ok((builder, runtime, version.to_string()))
}

/// The shim a Fabric tree vendors: 2.x trees `fabric-chaincode-go` with `fabric-protos-go`,
/// 3.x trees `fabric-chaincode-go/v2` with `fabric-protos-go-apiv2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shim {
    /// Import path of the shim package.
    pub shim: &'static str,
    /// Import path of the peer protos package (`Response`).
    pub peer: &'static str,
    /// The chaincode methods' return type in that shim.
    pub response: &'static str,
}

const SHIMS: [Shim; 2] = [
    Shim {
        shim: "github.com/hyperledger/fabric-chaincode-go/v2/shim",
        peer: "github.com/hyperledger/fabric-protos-go-apiv2/peer",
        response: "*pb.Response",
    },
    Shim {
        shim: "github.com/hyperledger/fabric-chaincode-go/shim",
        peer: "github.com/hyperledger/fabric-protos-go/peer",
        response: "pb.Response",
    },
];

/// The smoke chaincode's source for `shim`.
pub fn chaincode_source(shim: &Shim) -> String {
    CHAINCODE_TEMPLATE
        .replace("{{SHIM}}", shim.shim)
        .replace("{{PEER}}", shim.peer)
        .replace("{{RESP}}", shim.response)
}

/// One module of a `vendor/modules.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorModule {
    /// Module path.
    pub path: String,
    /// Version.
    pub version: String,
    /// The `go` version of its `## …; go X` annotation, if any.
    pub go: Option<String>,
    /// Its vendored packages, in file order.
    pub packages: Vec<String>,
}

/// Parse a `vendor/modules.txt` (as `go mod vendor` writes it).
///
/// Errors: a replaced module (`=>`), a package line before any module.
pub fn parse_modules_txt(text: &str) -> Result<Vec<VendorModule>, String> {
    let mut mods: Vec<VendorModule> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(ann) = line.strip_prefix("## ") {
            if let Some(m) = mods.last_mut() {
                m.go = ann
                    .split(';')
                    .find_map(|a| a.trim().strip_prefix("go ").map(|g| g.trim().to_string()));
            }
        } else if let Some(head) = line.strip_prefix("# ") {
            if head.contains("=>") {
                return Err(format!(
                    "replaced module `{head}`: the smoke chaincode copies modules as vendored, without replacements"
                ));
            }
            let mut f = head.split_whitespace();
            let (Some(path), Some(version)) = (f.next(), f.next()) else {
                return Err(format!("module line `# {head}` has no version"));
            };
            mods.push(VendorModule {
                path: path.into(),
                version: version.into(),
                go: None,
                packages: Vec::new(),
            });
        } else if line.starts_with('#') {
            continue;
        } else {
            let Some(m) = mods.last_mut() else {
                return Err(format!(
                    "package `{line}` before any `# module version` line"
                ));
            };
            m.packages.push(line.to_string());
        }
    }
    Ok(mods)
}

/// The import paths a Go source file declares (its `import` lines, single or grouped, with or
/// without a name), in order. Declarations after the imports are not read.
pub fn go_imports(src: &str) -> Vec<String> {
    let quoted = |l: &str| {
        let l = l.split("//").next().unwrap_or("");
        let a = l.find('"')?;
        let b = l[a + 1..].find('"')?;
        Some(l[a + 1..a + 1 + b].to_string())
    };
    let mut out = Vec::new();
    let mut in_block = false;
    for line in src.lines().map(str::trim) {
        if in_block {
            if line.starts_with(')') {
                in_block = false;
            } else if let Some(p) = quoted(line) {
                out.push(p);
            }
        } else if let Some(rest) = line.strip_prefix("import") {
            let rest = rest.trim_start();
            if rest.starts_with('(') {
                in_block = !rest.contains(')');
                if let Some(p) = quoted(rest) {
                    out.push(p);
                }
            } else if let Some(p) = quoted(rest) {
                out.push(p);
            }
        } else if ["func ", "type ", "var ", "const "]
            .iter()
            .any(|d| line.starts_with(d))
        {
            break;
        }
    }
    out
}

/// What [`assemble_chaincode`] made.
#[derive(Debug, Clone)]
pub struct AssembledChaincode {
    /// The shim the tree vendors.
    pub shim: Shim,
    /// Vendored packages copied, and the modules they belong to.
    pub packages: usize,
    /// Modules in the chaincode's `go.mod` and `vendor/modules.txt`.
    pub modules: usize,
}

/// Write into `dest` a Go module `module_path` holding imgforge's smoke chaincode and a
/// `vendor/` made from the Fabric `tree`'s own: the packages the shim and the peer protos import,
/// transitively (every non-test `.go` file's imports, so build constraints can only add), each
/// with the files directly in its directory but `*_test.go`, plus each module's root
/// `LICENSE*`/`NOTICE*`; a `vendor/modules.txt` listing exactly those packages under their
/// modules (all `## explicit`, with the tree's `go` annotations); a `go.mod` with the tree's `go`
/// line requiring those modules at the tree's versions. `go build -mod=vendor` then needs no
/// network; `go.sum` is not read in vendor mode.
///
/// Errors (the message says what was expected): no go.mod or vendor/modules.txt in the tree, no
/// `fabric-chaincode-go` in it, a listed package missing from `vendor/`, I/O.
pub fn assemble_chaincode(
    tree: &Path,
    module_path: &str,
    dest: &Path,
) -> Result<AssembledChaincode, String> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let gomod = read(&tree.join("go.mod"))?;
    let go = gomod
        .lines()
        .find_map(|l| l.trim().strip_prefix("go ").map(|v| v.trim().to_string()))
        .ok_or_else(|| format!("{} has no `go` line", tree.join("go.mod").display()))?;
    let vendor = tree.join("vendor");
    let mods = parse_modules_txt(&read(&vendor.join("modules.txt"))?)?;
    let owner: BTreeMap<&str, usize> = mods
        .iter()
        .enumerate()
        .flat_map(|(i, m)| m.packages.iter().map(move |p| (p.as_str(), i)))
        .collect();
    let shim = *SHIMS
        .iter()
        .find(|s| owner.contains_key(s.shim) && owner.contains_key(s.peer))
        .ok_or_else(|| {
            format!(
                "{} lists neither {} with {} nor {} with {}: the smoke chaincode is built from the tree's own vendored shim",
                vendor.join("modules.txt").display(),
                SHIMS[1].shim,
                SHIMS[1].peer,
                SHIMS[0].shim,
                SHIMS[0].peer
            )
        })?;
    // the package closure, through vendored packages only (the standard library is not vendored)
    let mut want: BTreeSet<String> = BTreeSet::new();
    let mut queue: Vec<String> = vec![shim.shim.into(), shim.peer.into()];
    while let Some(pkg) = queue.pop() {
        if want.contains(&pkg) || !owner.contains_key(pkg.as_str()) {
            continue;
        }
        let dir = vendor.join(&pkg);
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            format!(
                "{}: {e} (vendor/modules.txt lists package {pkg}, so vendor/ should hold it)",
                dir.display()
            )
        })?;
        for e in entries {
            let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".go") && !name.ends_with("_test.go") && e.path().is_file() {
                queue.extend(go_imports(&read(&e.path())?));
            }
        }
        want.insert(pkg);
    }
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to.parent().expect("parent"))
            .and_then(|_| std::fs::copy(from, to).map(|_| ()))
            .map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))
    };
    let out_vendor = dest.join("vendor");
    let mut used: BTreeSet<usize> = BTreeSet::new();
    for pkg in &want {
        used.insert(owner[pkg.as_str()]);
        let dir = vendor.join(pkg);
        for e in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_file() && !name.ends_with("_test.go") {
                copy(&e.path(), &out_vendor.join(pkg).join(&name))?;
            }
        }
    }
    for &i in &used {
        let root = vendor.join(&mods[i].path);
        if let Ok(entries) = std::fs::read_dir(&root) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if e.path().is_file() && (name.starts_with("LICENSE") || name.starts_with("NOTICE"))
                {
                    copy(&e.path(), &out_vendor.join(&mods[i].path).join(&name))?;
                }
            }
        }
    }
    let direct: BTreeSet<usize> = [owner[shim.shim], owner[shim.peer]].into();
    let mut modules_txt = String::new();
    let mut require = String::new();
    for &i in &used {
        let m = &mods[i];
        modules_txt.push_str(&format!("# {} {}\n## explicit", m.path, m.version));
        if let Some(g) = &m.go {
            modules_txt.push_str(&format!("; go {g}"));
        }
        modules_txt.push('\n');
        for p in m.packages.iter().filter(|p| want.contains(*p)) {
            modules_txt.push_str(p);
            modules_txt.push('\n');
        }
        require.push_str(&format!(
            "\t{} {}{}\n",
            m.path,
            m.version,
            if direct.contains(&i) {
                ""
            } else {
                " // indirect"
            }
        ));
    }
    let write = |name: &str, text: &str| {
        let p = dest.join(name);
        std::fs::create_dir_all(p.parent().expect("parent"))
            .and_then(|_| std::fs::write(&p, text))
            .map_err(|e| format!("write {}: {e}", p.display()))
    };
    write(
        "go.mod",
        &format!("module {module_path}\n\ngo {go}\n\nrequire (\n{require})\n"),
    )?;
    write("vendor/modules.txt", &modules_txt)?;
    write("main.go", &chaincode_source(&shim))?;
    Ok(AssembledChaincode {
        shim,
        packages: want.len(),
        modules: used.len(),
    })
}

/// The package ID `peer lifecycle chaincode install` reports: `<label>:<hex sha256 of the
/// package file>` (Fabric v2.5.13 `core/chaincode/persistence` `PackageID`).
pub fn package_id(label: &str, package: &[u8]) -> String {
    format!("{label}:{}", hex::encode(Sha256::digest(package)))
}

/// The `func main` of the smoke chaincode as a service ([`server_chaincode_source`]), with
/// `{{RESP}}` for the shim's response type.
pub const SERVER_MAIN_TEMPLATE: &str = include_str!("../assets/smoke2-chaincode/server_main.go.in");

/// The smoke chaincode's source for `shim`, run as a service: [`chaincode_source`] with its
/// `func main` replaced by one that starts the shim's `ChaincodeServer` at
/// `CHAINCODE_SERVER_ADDRESS` with `CCID` = `CHAINCODE_ID`, TLS off, and logs on stderr each
/// call it answers (`smoke chaincode server: answered move (tx …)`).
pub fn server_chaincode_source(shim: &Shim) -> String {
    let src = chaincode_source(shim);
    let head = src
        .find("func main() {")
        .map_or(src.as_str(), |i| &src[..i]);
    format!(
        "{head}{}",
        SERVER_MAIN_TEMPLATE.replace("{{RESP}}", shim.response)
    )
}

/// The name of fabric-ccs-builder's entry in the peer's `chaincode.externalBuilders`.
pub const CCS_BUILDER_NAME: &str = "ccs-builder";

/// Where the peer finds fabric-ccs-builder's `bin/{detect,build,release}` (the run's work
/// directory is mounted at `/w`).
pub const CCS_BUILDER_PATH: &str = "/w/ccs-builder";

/// `core` (a peer's `core.yaml`) with an external builder `name` at `path` listed first under
/// `chaincode.externalBuilders`, in the list's own indentation; the rest of the text unchanged.
/// `externalBuilders: []` (v2.2) becomes a one-entry list. The peer tries the builders in order
/// and takes the first whose `bin/detect` exits 0 (Fabric v2.5.13
/// `core/container/externalbuilder`); each needs a `name` and an absolute `path`
/// (`core/peer/config.go`). No `propagateEnvironment`: fabric-ccs-builder reads no variables
/// (the peer passes the builders only `LD_LIBRARY_PATH`, `LIBPATH`, `PATH`, `TMPDIR` and those
/// listed).
///
/// Errors: no top-level `chaincode:` or no `externalBuilders` key under it, or a builder of that
/// name already listed.
pub fn add_external_builder(core: &str, name: &str, path: &str) -> Result<String, String> {
    let lines: Vec<&str> = core.split('\n').collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let start = lines
        .iter()
        .position(|l| l.trim_end() == "chaincode:")
        .ok_or("core.yaml has no top-level `chaincode:` section")?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| !l.trim().is_empty() && indent(l) == 0 && !l.starts_with('#'))
        .map_or(lines.len(), |i| start + 1 + i);
    let key = (start + 1..end)
        .find(|&i| lines[i].trim_start().starts_with("externalBuilders:"))
        .ok_or("core.yaml has no `chaincode.externalBuilders`")?;
    let k = indent(lines[key]);
    let rest = lines[key].trim_start()["externalBuilders:".len()..].trim();
    let mut out: Vec<String> = lines[..key].iter().map(|l| l.to_string()).collect();
    let item = |ind: usize| {
        [
            format!("{}- name: {name}", " ".repeat(ind)),
            format!("{}  path: {path}", " ".repeat(ind)),
        ]
    };
    if rest == "[]" || rest.is_empty() {
        // the first list item after the key, if the list is a block
        let first = (key + 1..end).find(|&i| {
            let t = lines[i].trim_start();
            !t.is_empty() && !t.starts_with('#')
        });
        let first =
            first.filter(|&i| lines[i].trim_start().starts_with('-') && indent(lines[i]) >= k);
        if rest == "[]" && first.is_some() {
            return Err("core.yaml's `externalBuilders: []` is followed by list items".into());
        }
        for i in first.into_iter().flat_map(|f| f..end) {
            let t = lines[i].trim_start();
            if t.trim_start_matches("- ").trim() == format!("name: {name}") {
                return Err(format!(
                    "core.yaml already lists an external builder named {name}"
                ));
            }
        }
        out.push(format!("{}externalBuilders:", " ".repeat(k)));
        match first {
            Some(f) => {
                out.extend(lines[key + 1..f].iter().map(|l| l.to_string()));
                out.extend(item(indent(lines[f])));
                out.extend(lines[f..].iter().map(|l| l.to_string()));
            }
            None => {
                out.extend(item(k + 4));
                out.extend(lines[key + 1..].iter().map(|l| l.to_string()));
            }
        }
        Ok(out.join("\n"))
    } else {
        Err(format!(
            "core.yaml's `externalBuilders: {rest}` is not a block list imgforge can add to"
        ))
    }
}

/// The CCaaS package of the smoke chaincode for `builder` (`ccaas`: the peer's built-in
/// `ccaas_builder`; `external`: fabric-ccs-builder), the server at `127.0.0.1:<port>`, no TLS,
/// made with [`crate::chaincode::ccaas::package`]; and its package ID.
///
/// Errors: the package cannot be made (a bug: the inputs are imgforge's own).
pub fn ccaas_package(
    builder: crate::chaincode::ccaas::BuilderType,
    port: u16,
) -> Result<(Vec<u8>, String), String> {
    use crate::chaincode::ccaas;
    let bytes = ccaas::package(&ccaas::PackageSpec::plain(
        LABEL,
        builder,
        &format!("127.0.0.1:{port}"),
    ))
    .map_err(|e| e.to_string())?;
    let id = ccaas::package_id(LABEL, &bytes);
    Ok((bytes, id))
}

const CRYPTO_CONFIG: &str = r#"OrdererOrgs:
  - Name: Orderer
    Domain: example.com
    EnableNodeOUs: true
    Specs:
      - Hostname: orderer
        SANS: [127.0.0.1, localhost]
PeerOrgs:
  - Name: Org1
    Domain: org1.example.com
    EnableNodeOUs: true
    Template:
      Count: 1
      SANS: [127.0.0.1, localhost]
    Users:
      Count: 1
"#;

/// The orderer's TLS material (cryptogen's layout), for its cluster listener and the consenter.
const ORDERER_TLS: &str =
    "/w/crypto-config/ordererOrganizations/example.com/orderers/orderer.example.com/tls";

/// One orderer org with one etcdraft consenter, one peer org, V2_0 capabilities (valid for 2.x
/// and 3.x) and the `_lifecycle` policies (Fabric v2.5.13 `sampleconfig/configtx.yaml` shapes,
/// cut down). `{OP}`, `{CP}` and `{PP}` are the orderer's, its cluster listener's and the peer's
/// ports; `{TLS}` is [`ORDERER_TLS`].
const CONFIGTX: &str = r#"Organizations:
  - &OrdererOrg
    Name: OrdererOrg
    ID: OrdererMSP
    MSPDir: crypto-config/ordererOrganizations/example.com/msp
    OrdererEndpoints: [127.0.0.1:{OP}]
    Policies:
      Readers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
      Writers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
      Admins: {Type: Signature, Rule: "OR('OrdererMSP.admin')"}
  - &Org1
    Name: Org1MSP
    ID: Org1MSP
    MSPDir: crypto-config/peerOrganizations/org1.example.com/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('Org1MSP.admin', 'Org1MSP.peer', 'Org1MSP.client')"}
      Writers: {Type: Signature, Rule: "OR('Org1MSP.admin', 'Org1MSP.client')"}
      Admins: {Type: Signature, Rule: "OR('Org1MSP.admin')"}
      Endorsement: {Type: Signature, Rule: "OR('Org1MSP.peer')"}
    AnchorPeers:
      - Host: 127.0.0.1
        Port: {PP}
Capabilities:
  Channel: &ChannelCapabilities {V2_0: true}
  Orderer: &OrdererCapabilities {V2_0: true}
  Application: &ApplicationCapabilities {V2_0: true}
Application: &ApplicationDefaults
  Organizations:
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
    LifecycleEndorsement: {Type: ImplicitMeta, Rule: "MAJORITY Endorsement"}
    Endorsement: {Type: ImplicitMeta, Rule: "MAJORITY Endorsement"}
  Capabilities: *ApplicationCapabilities
Orderer: &OrdererDefaults
  OrdererType: etcdraft
  EtcdRaft:
    Consenters:
      - Host: 127.0.0.1
        Port: {CP}
        ClientTLSCert: {TLS}/server.crt
        ServerTLSCert: {TLS}/server.crt
  BatchTimeout: 250ms
  BatchSize: {MaxMessageCount: 10, AbsoluteMaxBytes: 99 MB, PreferredMaxBytes: 512 KB}
  Organizations:
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
    BlockValidation: {Type: ImplicitMeta, Rule: "ANY Writers"}
Channel: &ChannelDefaults
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
  Capabilities: *ChannelCapabilities
Profiles:
  Channel:
    <<: *ChannelDefaults
    Orderer:
      <<: *OrdererDefaults
      Organizations: [*OrdererOrg]
      Capabilities: *OrdererCapabilities
    Application:
      <<: *ApplicationDefaults
      Organizations: [*Org1]
      Capabilities: *ApplicationCapabilities
"#;

/// The loopback ports of one run, chosen free at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// Orderer (clients, deliver).
    pub orderer: u16,
    /// Orderer admin endpoint (`osnadmin`).
    pub admin: u16,
    /// Orderer cluster listener (etcdraft, TLS).
    pub cluster: u16,
    /// Orderer operations endpoint.
    pub orderer_ops: u16,
    /// Peer.
    pub peer: u16,
    /// Peer's chaincode listener.
    pub chaincode: u16,
    /// Peer operations endpoint.
    pub peer_ops: u16,
}

fn configtx(p: &Ports) -> String {
    CONFIGTX
        .replace("{OP}", &p.orderer.to_string())
        .replace("{CP}", &p.cluster.to_string())
        .replace("{PP}", &p.peer.to_string())
        .replace("{TLS}", ORDERER_TLS)
}

fn env(pairs: &[(&str, String)]) -> Vec<String> {
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The orderer's environment: no system channel, channel participation (2.x says both; 3.x has
/// no such settings, it is the only way), plain gRPC for clients and the admin endpoint, TLS on a
/// separate cluster listener (etcdraft requires it), ledger and WAL under /tmp.
pub fn orderer_env(major: u32, p: &Ports) -> Vec<String> {
    let mut v = env(&[
        ("ORDERER_GENERAL_LISTENADDRESS", "127.0.0.1".into()),
        ("ORDERER_GENERAL_LISTENPORT", p.orderer.to_string()),
        ("ORDERER_GENERAL_LOCALMSPID", "OrdererMSP".into()),
        (
            "ORDERER_GENERAL_LOCALMSPDIR",
            "/w/crypto-config/ordererOrganizations/example.com/orderers/orderer.example.com/msp"
                .into(),
        ),
        ("ORDERER_GENERAL_TLS_ENABLED", "false".into()),
        ("ORDERER_GENERAL_CLUSTER_LISTENADDRESS", "127.0.0.1".into()),
        ("ORDERER_GENERAL_CLUSTER_LISTENPORT", p.cluster.to_string()),
        (
            "ORDERER_GENERAL_CLUSTER_SERVERCERTIFICATE",
            format!("{ORDERER_TLS}/server.crt"),
        ),
        (
            "ORDERER_GENERAL_CLUSTER_SERVERPRIVATEKEY",
            format!("{ORDERER_TLS}/server.key"),
        ),
        (
            "ORDERER_GENERAL_CLUSTER_CLIENTCERTIFICATE",
            format!("{ORDERER_TLS}/server.crt"),
        ),
        (
            "ORDERER_GENERAL_CLUSTER_CLIENTPRIVATEKEY",
            format!("{ORDERER_TLS}/server.key"),
        ),
        (
            "ORDERER_GENERAL_CLUSTER_ROOTCAS",
            format!("[{ORDERER_TLS}/ca.crt]"),
        ),
        (
            "ORDERER_ADMIN_LISTENADDRESS",
            format!("127.0.0.1:{}", p.admin),
        ),
        ("ORDERER_ADMIN_TLS_ENABLED", "false".into()),
        ("ORDERER_FILELEDGER_LOCATION", "/tmp/orderer/ledger".into()),
        (
            "ORDERER_CONSENSUS_WALDIR",
            "/tmp/orderer/etcdraft/wal".into(),
        ),
        (
            "ORDERER_CONSENSUS_SNAPDIR",
            "/tmp/orderer/etcdraft/snapshot".into(),
        ),
        (
            "ORDERER_OPERATIONS_LISTENADDRESS",
            format!("127.0.0.1:{}", p.orderer_ops),
        ),
        ("ORDERER_METRICS_PROVIDER", "disabled".into()),
    ]);
    if major < 3 {
        v.extend(env(&[
            ("ORDERER_GENERAL_BOOTSTRAPMETHOD", "none".into()),
            ("ORDERER_CHANNELPARTICIPATION_ENABLED", "true".into()),
        ]));
    }
    v
}

/// The peer's environment: loopback addresses, the Docker socket of this host (mounted at
/// `/host/var/run/docker.sock`), chaincode containers on the host network. Nothing about
/// chaincode images: the peer finds ccenv and baseos from its own metadata.
pub fn peer_env(network_id: &str, p: &Ports) -> Vec<String> {
    env(&[
        ("CORE_PEER_ID", "peer0.org1.example.com".into()),
        ("CORE_PEER_NETWORKID", network_id.into()),
        ("CORE_PEER_ADDRESS", format!("127.0.0.1:{}", p.peer)),
        ("CORE_PEER_LISTENADDRESS", format!("127.0.0.1:{}", p.peer)),
        (
            "CORE_PEER_CHAINCODEADDRESS",
            format!("127.0.0.1:{}", p.chaincode),
        ),
        (
            "CORE_PEER_CHAINCODELISTENADDRESS",
            format!("127.0.0.1:{}", p.chaincode),
        ),
        (
            "CORE_PEER_GOSSIP_BOOTSTRAP",
            format!("127.0.0.1:{}", p.peer),
        ),
        (
            "CORE_PEER_GOSSIP_EXTERNALENDPOINT",
            format!("127.0.0.1:{}", p.peer),
        ),
        ("CORE_PEER_GOSSIP_USELEADERELECTION", "false".into()),
        ("CORE_PEER_GOSSIP_ORGLEADER", "true".into()),
        ("CORE_PEER_LOCALMSPID", "Org1MSP".into()),
        (
            "CORE_PEER_MSPCONFIGPATH",
            "/w/crypto-config/peerOrganizations/org1.example.com/peers/peer0.org1.example.com/msp"
                .into(),
        ),
        ("CORE_PEER_FILESYSTEMPATH", "/tmp/production".into()),
        (
            "CORE_LEDGER_SNAPSHOTS_ROOTDIR",
            "/tmp/production/snapshots".into(),
        ),
        (
            "CORE_OPERATIONS_LISTENADDRESS",
            format!("127.0.0.1:{}", p.peer_ops),
        ),
        ("CORE_METRICS_PROVIDER", "disabled".into()),
        ("CORE_PEER_TLS_ENABLED", "false".into()),
        (
            "CORE_VM_ENDPOINT",
            "unix:///host/var/run/docker.sock".into(),
        ),
        ("CORE_VM_DOCKER_HOSTCONFIG_NETWORKMODE", "host".into()),
    ])
}

/// Run the 2.x/3.x network check with the images of `vars` (`DOCKER_NS`, `TWO_DIGIT_VERSION`)
/// and the Fabric tree `src` (its `vendor/` makes the chaincode's). Called by
/// [`crate::smoke::smoke`] for a 2.x/3.x tree, after its local-engine check.
///
/// Errors: [`Error::Input`] listing every missing image (nothing started); [`Error::Input`]
/// when the tree's `vendor/` cannot make the chaincode module (nothing started);
/// [`Error::Input`] when a phase fails, with the failing command's output and the peer's and
/// orderer's last error lines; [`Error::Cancelled`]. Teardown runs in every case unless `keep`.
pub async fn smoke(
    engine: &DockerEngine,
    vars: &BuildVars,
    src: &Path,
    opts: &SmokeOptions,
    reporter: &dyn Reporter,
    cancel: &CancellationToken,
) -> Result<SmokeReport, Error> {
    let tag = vars.get("TWO_DIGIT_VERSION");
    let image = |n: &str| format!("{}:{tag}", vars.repository(n));
    let (tools, peer, orderer) = (image("tools"), image("peer"), image("orderer"));
    let inspect = |r: String| async move {
        engine
            .inspect_image(&r)
            .await
            .map(|i| i.is_some())
            .map_err(|e| Error::engine("smoke/preflight", e))
    };
    let mut missing = Vec::new();
    for (r, cmd) in [(&tools, "tools"), (&peer, "peer"), (&orderer, "orderer")] {
        if !inspect(r.clone()).await? {
            missing.push(format!("{r} (imgforge {cmd})"));
        }
    }
    let mut major = 2;
    if !missing.iter().any(|m| m.starts_with(&peer)) {
        let out = engine
            .run(
                &RunSpec {
                    step: "smoke/preflight".into(),
                    image: peer.clone(),
                    cmd: vec!["peer".into(), "version".into()],
                    capture_stdout: true,
                    ..Default::default()
                },
                reporter,
                cancel,
            )
            .await
            .map_err(|e| Error::engine("smoke/preflight", e))?;
        let (builder, runtime, version) = chaincode_images(&out.stdout.join("\n"), &|n| {
            std::env::var(n).ok().filter(|v| !v.is_empty())
        })
        .map_err(|m| Error::Input {
            step: "smoke/preflight".into(),
            message: format!("{peer}: {m}"),
            hint: "build the peer with imgforge from a Fabric 2.x/3.x tree".into(),
        })?;
        let mut nums = version
            .trim_start_matches('v')
            .split('.')
            .map(|n| n.parse::<u32>().ok());
        major = nums.next().flatten().unwrap_or(2);
        let minor = nums.next().flatten().unwrap_or(0);
        if opts.ccaas && opts.ccs_builder.is_none() && (major, minor) < (2, 5) {
            return Err(Error::Input {
                step: "smoke/preflight".into(),
                message: format!("{peer} is Fabric {version}: its image has no built-in ccaas_builder (2.5+); nothing was started"),
                hint: "add --ccs-builder IMAGE (fabric-ccs-builder as an external builder), or use a 2.5+ tree".into(),
            });
        }
        for (r, what, cmd) in [
            (&builder, "builder, chaincode.builder", "imgforge ccenv"),
            (
                &runtime,
                "runtime, chaincode.golang.runtime",
                "imgforge baseos",
            ),
        ] {
            if !inspect(r.clone()).await? {
                missing.push(format!("{r} (the peer's chaincode {what}; {cmd} makes it)"));
            }
        }
    }
    if opts.ccaas {
        // the chaincode-server image is built with the 2.x build image, FROM baseos
        for (r, cmd) in [
            (vars.base_image("baseimage"), "imgforge baseimage"),
            (vars.base_image("baseos"), "imgforge baseos"),
        ] {
            if !inspect(r.clone()).await? && !missing.iter().any(|m| m.starts_with(&r)) {
                missing.push(format!(
                    "{r} (the chaincode-server image's {}; {cmd} --debootstrap trixie makes it)",
                    if cmd.ends_with("baseos") {
                        "base"
                    } else {
                        "build image"
                    }
                ));
            }
        }
        if let Some(r) = &opts.ccs_builder {
            if !inspect(r.clone()).await? {
                missing.push(format!(
                    "{r} (--ccs-builder; `imgforge ccs-builder --source DIR FABRIC_VER=… DOCKER_NS=…` makes it)"
                ));
            }
        }
    }
    if !missing.is_empty() {
        return Err(Error::Input {
            step: "smoke/preflight".into(),
            message: format!("missing images, nothing was started:\n  {}", missing.join("\n  ")),
            hint: format!(
                "build them (`imgforge all --source TREE DOCKER_NS={ns}`, `imgforge baseos --source TREE --debootstrap trixie DOCKER_NS={ns}`), or set DOCKER_NS/FABRIC_VER to the set you have",
                ns = vars.get("DOCKER_NS")
            ),
        });
    }
    let run_id = format!(
        "imgforge-smoke-{}",
        &engine.session()[..8.min(engine.session().len())]
    );
    let mut net = Network {
        engine,
        run_id: run_id.clone(),
        services: Vec::new(),
        keep: opts.keep,
        ports: (0, 0),
    };
    let images = Images {
        tools: &tools,
        peer: &peer,
        orderer: &orderer,
        major,
    };
    // --ccaas: the chaincode-server image, before the network; removed by teardown (its
    // name starts with the run id)
    let ccaas = if opts.ccaas {
        match server_image(engine, vars, src, &run_id, reporter, cancel).await {
            Ok(c) => Some(Ccaas {
                ccs_builder: opts.ccs_builder.clone(),
                ..c
            }),
            Err(e) => {
                net.teardown(reporter).await;
                return Err(e);
            }
        }
    } else {
        None
    };
    let mut admin_port = 0;
    // as in the 1.x smoke: on "address already in use" start over with new ports, up to 3 times
    let mut attempt = 0;
    let (work, result) = loop {
        attempt += 1;
        let work = crate::smoke::work_dir()?;
        // the chaincode's module path carries the run id, so the peer's build container (whose
        // command names it) is found by teardown
        // with --ccaas there is no module for the peer to build: the package is connection.json
        if ccaas.is_none() {
            let cc = assemble_chaincode(
                src,
                &format!("example.com/{run_id}"),
                &work.path().join("cc"),
            )
            .map_err(|m| module_error(src, m))?;
            if attempt == 1 {
                reporter.event(&Event::Notice {
                step: "smoke/chaincode".into(),
                message: format!(
                    "module example.com/{run_id}: main.go on {} and a vendor/ of {} packages from {} modules of {}/vendor",
                    cc.shim.shim,
                    cc.packages,
                    cc.modules,
                    src.display()
                ),
            });
            }
        }
        let r = lifecycle(
            &mut net,
            work.path(),
            &images,
            ccaas.as_ref(),
            &mut admin_port,
            reporter,
            cancel,
        )
        .await
        .map(|mut r| {
            if let Some(c) = &ccaas {
                r.phases.insert(0, ("server-image".into(), c.build_ms));
            }
            r
        });
        match &r {
            Err(e) if attempt < 3 && e.to_string().contains("address already in use") => {
                net.teardown(reporter).await;
                reporter.event(&Event::Notice {
                    step: "smoke/start".into(),
                    message: "a port chosen for the network was taken meanwhile; starting over with new ports".into(),
                });
            }
            _ => break (work, r),
        }
    };
    match (&result, opts.keep) {
        (Ok(r), true) => {
            let dir = work.keep();
            let mut r = r.clone();
            r.kept = Some(format!(
                "orderer at 127.0.0.1:{} (admin endpoint 127.0.0.1:{admin_port}, `osnadmin channel list -o 127.0.0.1:{admin_port}`) and peer at 127.0.0.1:{} (containers {}), channel mychannel, chaincode smokecc (_lifecycle, sequence 1); admin MSP {}/crypto-config/peerOrganizations/org1.example.com/users/Admin@org1.example.com/msp; remove it with `docker rm -f -v $(docker ps -aq --filter name={})`, `docker rmi $(docker images -q '{}-*')` and `rm -rf {}`",
                net.ports.0,
                net.ports.1,
                net.services.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "),
                dir.display(),
                net.run_id,
                net.run_id,
                dir.display()
            ));
            return Ok(r);
        }
        _ => net.teardown(reporter).await,
    }
    result
}

/// The chaincode as a service: the server image built for this run, and how the peer gets it.
struct Ccaas {
    /// Holds the server's module while the run lasts.
    _module: tempfile::TempDir,
    /// `<run id>-ccserver:latest`.
    image: String,
    /// fabric-ccs-builder's image, or the peer's built-in `ccaas_builder`.
    ccs_builder: Option<String>,
    /// Wall time of the image build.
    build_ms: u64,
}

impl Ccaas {
    fn builder(&self) -> (crate::chaincode::ccaas::BuilderType, &'static str) {
        use crate::chaincode::ccaas::BuilderType;
        match self.ccs_builder {
            Some(_) => (BuilderType::External, CCS_BUILDER_NAME),
            None => (BuilderType::Ccaas, "ccaas_builder"),
        }
    }
}

/// The chaincode-server image of the smoke chaincode ([`server_chaincode_source`]) in module
/// `example.com/<run id>` with the tree's vendored shim ([`assemble_chaincode`]), built by
/// [`crate::chaincode::server::build`] (`imgforge chaincode build --ccaas`) in
/// `$(BUILD_DIR)` and tagged `<run id>-ccserver:latest`.
async fn server_image(
    engine: &DockerEngine,
    vars: &BuildVars,
    src: &Path,
    run_id: &str,
    reporter: &dyn Reporter,
    cancel: &CancellationToken,
) -> Result<Ccaas, Error> {
    use crate::chaincode::server;
    let clock = Instant::now();
    let dir = crate::smoke::work_dir()?;
    let module = dir.path().join("smoke2-ccaas");
    let module_path = format!("example.com/{run_id}");
    let cc = assemble_chaincode(src, &module_path, &module).map_err(|m| module_error(src, m))?;
    let main = module.join("main.go");
    std::fs::write(&main, server_chaincode_source(&cc.shim))
        .map_err(|e| Error::io("smoke/chaincode", "write", &main, e))?;
    reporter.event(&Event::Notice {
        step: "smoke/chaincode".into(),
        message: format!(
            "module {module_path}: main.go (a ChaincodeServer) on {} and a vendor/ of {} packages from {} modules of {}/vendor",
            cc.shim.shim,
            cc.packages,
            cc.modules,
            src.display()
        ),
    });
    let image = format!("{run_id}-ccserver:latest");
    let options = crate::steps::BuildOptions::default();
    let cx = crate::steps::Cx {
        vars,
        options: &options,
        engine,
        reporter,
        cancel,
    };
    let built = server::build(
        &cx,
        &server::ServerSpec {
            module,
            package: ".".into(),
            image: image.clone(),
            port: None,
            label: Some(LABEL.into()),
        },
    )
    .await?;
    let build_ms = clock.elapsed().as_millis() as u64;
    reporter.event(&Event::StepFinished {
        step: "smoke/server-image".into(),
        elapsed_ms: build_ms,
        summary: format!("{} ({})", built.reference, built.id),
    });
    Ok(Ccaas {
        _module: dir,
        image,
        ccs_builder: None,
        build_ms,
    })
}

struct Images<'a> {
    tools: &'a str,
    peer: &'a str,
    orderer: &'a str,
    /// The peer's major version (3: no system-channel settings).
    major: u32,
}

async fn lifecycle(
    net: &mut Network<'_>,
    work: &Path,
    img: &Images<'_>,
    cc: Option<&Ccaas>,
    admin_port: &mut u16,
    reporter: &dyn Reporter,
    cancel: &CancellationToken,
) -> Result<SmokeReport, Error> {
    let port =
        || free_port().map_err(|e| Error::io("smoke", "find a free port on", "127.0.0.1", e));
    let p = Ports {
        orderer: port()?,
        admin: port()?,
        cluster: port()?,
        orderer_ops: port()?,
        peer: port()?,
        chaincode: port()?,
        peer_ops: port()?,
    };
    // --ccaas: where the chaincode server listens (connection.json's address)
    let server_port = port()?;
    net.ports = (p.orderer, p.peer);
    *admin_port = p.admin;
    let write = |name: &str, text: &str| {
        let f = work.join(name);
        std::fs::write(&f, text).map_err(|e| Error::io("smoke", "write", &f, e))
    };
    write("crypto-config.yaml", CRYPTO_CONFIG)?;
    write("configtx.yaml", &configtx(&p))?;
    let w = format!("{}:/w", work.display());
    let binds = [w.clone()];
    let mut phases = Vec::new();
    let mut clock = Instant::now();
    let mut phase_done = |name: &str, phases: &mut Vec<(String, u64)>| {
        let ms = clock.elapsed().as_millis() as u64;
        reporter.event(&Event::StepFinished {
            step: format!("smoke/{name}"),
            elapsed_ms: ms,
            summary: String::new(),
        });
        phases.push((name.to_string(), ms));
        clock = Instant::now();
    };
    let tools = img.tools;
    net.tools(
        "artefacts",
        tools,
        &[
            "cryptogen",
            "generate",
            "--config=/w/crypto-config.yaml",
            "--output=/w/crypto-config",
        ],
        &[],
        &binds,
        reporter,
        cancel,
    )
    .await?;
    net.tools(
        "artefacts",
        tools,
        &[
            "configtxgen",
            "-profile",
            "Channel",
            "-channelID",
            "mychannel",
            "-outputBlock",
            "/w/mychannel.block",
        ],
        &["FABRIC_CFG_PATH=/w".to_string()],
        &binds,
        reporter,
        cancel,
    )
    .await?;
    phase_done("artefacts", &mut phases);
    let mut peer_extra_env = Vec::new();
    if let Some(ccs) = cc.and_then(|c| c.ccs_builder.as_deref()) {
        // fabric-ccs-builder's binaries into the work dir (mounted into the peer), and the
        // peer's own core.yaml with them listed first under chaincode.externalBuilders
        net.tools(
            "builder",
            ccs,
            &[
                "sh",
                "-c",
                &format!("mkdir -p {CCS_BUILDER_PATH}/bin && cp /go/bin/* {CCS_BUILDER_PATH}/bin/ && ls {CCS_BUILDER_PATH}/bin"),
            ],
            &[],
            &binds,
            reporter,
            cancel,
        )
        .await?;
        net.tools(
            "builder",
            img.peer,
            &[
                "sh",
                "-c",
                "mkdir -p /w/peercfg && cp /etc/hyperledger/fabric/core.yaml /w/peercfg/core.yaml",
            ],
            &[],
            &binds,
            reporter,
            cancel,
        )
        .await?;
        let f = work.join("peercfg/core.yaml");
        let core =
            std::fs::read_to_string(&f).map_err(|e| Error::io("smoke/builder", "read", &f, e))?;
        let edited =
            add_external_builder(&core, CCS_BUILDER_NAME, CCS_BUILDER_PATH).map_err(|m| {
                Error::Input {
                    step: "smoke/builder".into(),
                    message: format!(
                        "{} (the peer image's /etc/hyperledger/fabric/core.yaml): {m}",
                        img.peer
                    ),
                    hint: "use a peer image built from a Fabric 2.x/3.x tree".into(),
                }
            })?;
        std::fs::write(&f, edited).map_err(|e| Error::io("smoke/builder", "write", &f, e))?;
        let bins: Vec<String> = ["detect", "build", "release"]
            .iter()
            .filter(|b| work.join("ccs-builder/bin").join(b).is_file())
            .map(|b| b.to_string())
            .collect();
        if bins.len() < 2 {
            return Err(Error::Input {
                step: "smoke/builder".into(),
                message: format!("{ccs} has no /go/bin/{{detect,build}} (found {bins:?})"),
                hint: "build it with `imgforge ccs-builder --source DIR FABRIC_VER=…`".into(),
            });
        }
        reporter.event(&Event::Notice {
            step: "smoke/builder".into(),
            message: format!(
                "{ccs}'s /go/bin/{{{}}} at {CCS_BUILDER_PATH}/bin; the peer's core.yaml (FABRIC_CFG_PATH=/w/peercfg) lists `{CCS_BUILDER_NAME}` at {CCS_BUILDER_PATH} first under chaincode.externalBuilders",
                bins.join(",")
            ),
        });
        peer_extra_env.push("FABRIC_CFG_PATH=/w/peercfg".to_string());
        phase_done("builder", &mut phases);
    }
    let orderer_spec = RunSpec {
        step: "smoke/orderer".into(),
        image: img.orderer.to_string(),
        cmd: vec!["orderer".into()],
        env: orderer_env(img.major, &p),
        binds: vec![w.clone()],
        network_host: true,
        ..Default::default()
    };
    net.start_service(
        "orderer",
        &orderer_spec,
        "Beginning to serve requests",
        cancel,
    )
    .await?;
    let orderer_id = net
        .services
        .last()
        .map(|(_, id)| id.clone())
        .unwrap_or_default();
    let peer_spec = RunSpec {
        step: "smoke/peer".into(),
        image: img.peer.to_string(),
        cmd: vec!["peer".into(), "node".into(), "start".into()],
        env: [peer_env(&net.run_id, &p), peer_extra_env].concat(),
        binds: vec![
            w.clone(),
            "/var/run/docker.sock:/host/var/run/docker.sock".into(),
        ],
        network_host: true,
        ..Default::default()
    };
    net.start_service("peer", &peer_spec, "Started peer with ID", cancel)
        .await?;
    phase_done("start", &mut phases);
    let admin_env = env(&[
        ("CORE_PEER_LOCALMSPID", "Org1MSP".into()),
        (
            "CORE_PEER_MSPCONFIGPATH",
            "/w/crypto-config/peerOrganizations/org1.example.com/users/Admin@org1.example.com/msp"
                .into(),
        ),
        ("CORE_PEER_ADDRESS", format!("127.0.0.1:{}", p.peer)),
        ("CORE_PEER_TLS_ENABLED", "false".into()),
    ]);
    let o = format!("127.0.0.1:{}", p.orderer);
    let out = net
        .tools(
            "channel",
            tools,
            &[
                "osnadmin",
                "channel",
                "join",
                "--channelID",
                "mychannel",
                "--config-block",
                "/w/mychannel.block",
                "-o",
                &format!("127.0.0.1:{}", p.admin),
            ],
            &[],
            &binds,
            reporter,
            cancel,
        )
        .await?;
    if !out.iter().any(|l| l.contains("Status: 201")) {
        return Err(Error::Input {
            step: "smoke/channel".into(),
            message: format!(
                "osnadmin channel join did not answer `Status: 201`:\n{}{}",
                out.join("\n"),
                net.logs_errors().await
            ),
            hint: "the lines above are Fabric's; `imgforge smoke --keep` leaves the network up to look at it".into(),
        });
    }
    // a one-node raft elects itself after a few ticks; transactions before that are refused
    net.wait_for(
        &orderer_id,
        &format!("{}-orderer", net.run_id),
        "Raft leader changed",
        cancel,
    )
    .await?;
    let peer_cli = |args: &[&str]| {
        let mut v = vec!["peer".to_string()];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    };
    macro_rules! cli {
        ($phase:expr, $($a:expr),+) => {{
            let c = peer_cli(&[$($a),+]);
            let refs: Vec<&str> = c.iter().map(String::as_str).collect();
            net.tools($phase, tools, &refs, &admin_env, &binds, reporter, cancel).await?
        }};
    }
    cli!("channel", "channel", "join", "-b", "/w/mychannel.block");
    phase_done("channel", &mut phases);
    if let Some(c) = cc {
        let (builder, _) = c.builder();
        let (bytes, id) = ccaas_package(builder, server_port).map_err(|m| Error::Input {
            step: "smoke/package".into(),
            message: m,
            hint: "this is a bug in imgforge: the smoke's CCaaS package is its own".into(),
        })?;
        let f = work.join("smokecc.tar.gz");
        std::fs::write(&f, &bytes).map_err(|e| Error::io("smoke/package", "write", &f, e))?;
        reporter.event(&Event::Notice {
            step: "smoke/package".into(),
            message: format!(
                "CCaaS package smokecc.tar.gz (type {}, address 127.0.0.1:{server_port}), package ID {id}",
                builder.as_str()
            ),
        });
    } else {
        cli!(
            "package",
            "lifecycle",
            "chaincode",
            "package",
            "/w/smokecc.tar.gz",
            "--path",
            "/w/cc",
            "--lang",
            "golang",
            "--label",
            LABEL
        );
    }
    let pkg_file = work.join("smokecc.tar.gz");
    let pkg =
        std::fs::read(&pkg_file).map_err(|e| Error::io("smoke/package", "read", &pkg_file, e))?;
    let id = package_id(LABEL, &pkg);
    phase_done("package", &mut phases);
    cli!(
        "install",
        "lifecycle",
        "chaincode",
        "install",
        "/w/smokecc.tar.gz"
    );
    if let Some(c) = cc {
        // the peer's own package ID, and which external builder took the package
        let out = cli!("install", "lifecycle", "chaincode", "queryinstalled");
        let want = format!("Package ID: {id}, Label: {LABEL}");
        if !out.iter().any(|l| l.trim() == want) {
            return Err(Error::Input {
                step: "smoke/install".into(),
                message: format!(
                    "the peer does not list the package imgforge computed ({id}); queryinstalled printed:\n{}",
                    out.join("\n")
                ),
                hint: "the package ID is <label>:<sha256 of the package file>; `imgforge chaincode package --inspect smokecc.tar.gz` (with --keep) shows the package".into(),
            });
        }
        let (_, name) = c.builder();
        let peer_id = net
            .services
            .iter()
            .find(|(n, _)| n.ends_with("-peer"))
            .map(|(_, i)| i.clone())
            .unwrap_or_default();
        let log = net.engine.logs_text(&peer_id).await;
        let tag = format!("externalbuilder.{name}");
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&tag))
            .map(|l| l.find("::").map_or(l, |i| &l[i..]).trim())
            .collect();
        if lines.is_empty() {
            return Err(Error::Input {
                step: "smoke/install".into(),
                message: format!(
                    "the peer's log has no line of the external builder `{name}` after install{}",
                    net.logs_errors().await
                ),
                hint: "`imgforge smoke --keep` leaves the network up to look at the peer's log"
                    .into(),
            });
        }
        reporter.event(&Event::Notice {
            step: "smoke/install".into(),
            message: format!(
                "the peer's package ID is imgforge's ({id}); built by `{name}` ({})",
                lines.join(" ")
            ),
        });
    }
    phase_done("install", &mut phases);
    cli!(
        "approve",
        "lifecycle",
        "chaincode",
        "approveformyorg",
        "-o",
        &o,
        "--channelID",
        "mychannel",
        "--name",
        "smokecc",
        "--version",
        "1.0",
        "--package-id",
        &id,
        "--sequence",
        "1",
        "--waitForEvent"
    );
    phase_done("approve", &mut phases);
    cli!(
        "commit",
        "lifecycle",
        "chaincode",
        "commit",
        "-o",
        &o,
        "--channelID",
        "mychannel",
        "--name",
        "smokecc",
        "--version",
        "1.0",
        "--sequence",
        "1",
        "--waitForEvent"
    );
    phase_done("commit", &mut phases);
    if let Some(c) = cc {
        let spec = RunSpec {
            step: "smoke/ccserver".into(),
            image: c.image.clone(),
            cmd: vec!["chaincode".into()],
            env: vec![
                format!("CHAINCODE_ID={id}"),
                format!("CHAINCODE_SERVER_ADDRESS=127.0.0.1:{server_port}"),
            ],
            network_host: true,
            ..Default::default()
        };
        net.start_service("ccserver", &spec, "listening on", cancel)
            .await?;
        phase_done("server", &mut phases);
    }
    for args in [
        r#"{"Args":["init","a","100","b","200"]}"#,
        r#"{"Args":["move","a","b","10"]}"#,
    ] {
        cli!(
            "invoke",
            "chaincode",
            "invoke",
            "-o",
            &o,
            "-C",
            "mychannel",
            "-n",
            "smokecc",
            "-c",
            args,
            "--waitForEvent"
        );
    }
    phase_done("invoke", &mut phases);
    let out = cli!(
        "query",
        "chaincode",
        "query",
        "-C",
        "mychannel",
        "-n",
        "smokecc",
        "-c",
        r#"{"Args":["query","a"]}"#
    );
    let query = out
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .unwrap_or_default();
    phase_done("query", &mut phases);
    if let (Some(c), "90") = (cc, query.as_str()) {
        // every call was answered by the chaincode service
        let server_id = net
            .services
            .iter()
            .find(|(n, _)| n.ends_with("-ccserver"))
            .map(|(_, i)| i.clone())
            .unwrap_or_default();
        let log = net.engine.logs_text(&server_id).await;
        let answered: Vec<&str> = log
            .lines()
            .filter_map(|l| l.split("answered ").nth(1))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        if answered != ["init", "move", "query"] {
            return Err(Error::Input {
                step: "smoke/query".into(),
                message: format!(
                    "the chaincode server answered {answered:?}, expected [\"init\", \"move\", \"query\"]; its log:\n{log}"
                ),
                hint: "`imgforge smoke --keep` leaves the network up to look at it".into(),
            });
        }
        reporter.event(&Event::Notice {
            step: "smoke/query".into(),
            message: format!(
                "the chaincode server {} answered init, move and query through the peer",
                c.image
            ),
        });
    }
    if query != "90" {
        return Err(Error::Input {
            step: "smoke/query".into(),
            message: format!(
                "query a returned {query:?}, expected \"90\" (init a 100 b 200, move a b 10){}",
                net.logs_errors().await
            ),
            hint: "`imgforge smoke --keep` leaves the network up to look at it".into(),
        });
    }
    Ok(SmokeReport {
        phases,
        query,
        kept: None,
    })
}

/// The smoke chaincode's module could not be made from the tree at `src`.
fn module_error(src: &Path, m: String) -> Error {
    Error::Input {
        step: "smoke/chaincode".into(),
        message: format!(
            "cannot make the smoke chaincode's module from {}: {m}; nothing was started",
            src.display()
        ),
        hint: "point --source at the Fabric 2.x/3.x checkout the images were built from, with its vendor/ directory (`go mod vendor`)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_digit_version_as_fabric_cuts_it() {
        assert_eq!(two_digit_version("2.5.13"), "2.5");
        assert_eq!(two_digit_version("v3.1.0"), "3.1");
        assert_eq!(two_digit_version("latest"), "latest");
        assert_eq!(two_digit_version("3"), "3");
    }

    #[test]
    fn chaincode_images_as_the_2x_peer_derives_them() {
        let v = "peer:\n Version: 2.5.13\n Commit SHA: 0fcc97e\n Go version: go1.24.4\n OS/Arch: linux/amd64\n Chaincode:\n  Base Docker Label: org.hyperledger.fabric\n  Docker Namespace: acme\n";
        let none = |_: &str| None;
        assert_eq!(
            chaincode_images(v, &none).unwrap(),
            (
                "acme/fabric-ccenv:2.5".to_string(),
                "acme/fabric-baseos:2.5".to_string(),
                "2.5.13".to_string()
            )
        );
        let over = |n: &str| (n == "CORE_CHAINCODE_GOLANG_RUNTIME").then(|| "x/base:9".to_string());
        assert_eq!(chaincode_images(v, &over).unwrap().1, "x/base:9");
        let e = chaincode_images("orderer:\n Version: 2.5.13\n", &none).unwrap_err();
        assert!(e.contains("Docker Namespace"), "{e}");
    }

    #[test]
    fn go_imports_reads_single_grouped_and_named_imports() {
        let src = "// c\npackage x\n\nimport \"fmt\"\nimport pb \"a.b/peer\"\nimport (\n\t\"os\"\n\tx \"c.d/e\" // why\n\t_ \"f.g/h\"\n)\nimport (\"one.line/p\")\n\nfunc f() { _ = \"import \\\"no\\\"\" }\nimport \"after/decls\"\n";
        assert_eq!(
            go_imports(src),
            ["fmt", "a.b/peer", "os", "c.d/e", "f.g/h", "one.line/p"]
        );
    }

    #[test]
    fn modules_txt_parses_and_refuses_replacements() {
        let m = parse_modules_txt(
            "# a.b/m v1.0.0\n## explicit; go 1.17\na.b/m/p\na.b/m/q\n# c.d/n v0.2.0\n## explicit\nc.d/n\n",
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].go.as_deref(), Some("1.17"));
        assert_eq!(m[0].packages, ["a.b/m/p", "a.b/m/q"]);
        assert_eq!((m[1].version.as_str(), m[1].go.as_ref()), ("v0.2.0", None));
        assert!(parse_modules_txt("# a v1 => ../a\n")
            .unwrap_err()
            .contains("replaced"));
    }

    fn put(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// A tree vendoring a 2.x-style shim that imports protos and a dep module; an unrelated
    /// module and the dep's unused package stay out, test files too.
    #[test]
    fn assemble_chaincode_copies_the_shims_closure_and_lists_exactly_it() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("tree");
        put(
            &tree,
            "go.mod",
            "module github.com/hyperledger/fabric\n\ngo 1.24.2\n",
        );
        put(
            &tree,
            "vendor/modules.txt",
            "# example.com/dep v1.2.3\n## explicit; go 1.20\nexample.com/dep/a\nexample.com/dep/unused\n# github.com/hyperledger/fabric-chaincode-go v0.0.0-2022\n## explicit; go 1.17\ngithub.com/hyperledger/fabric-chaincode-go/shim\n# github.com/hyperledger/fabric-protos-go v0.2.0\n## explicit; go 1.17\ngithub.com/hyperledger/fabric-protos-go/peer\n# other.org/x v0.1.0\n## explicit\nother.org/x\n",
        );
        let v = "vendor/github.com/hyperledger/";
        put(&tree, &format!("{v}fabric-chaincode-go/shim/shim.go"), "package shim\n\nimport (\n\t\"fmt\"\n\t\"example.com/dep/a\"\n\tpb \"github.com/hyperledger/fabric-protos-go/peer\"\n)\n");
        put(
            &tree,
            &format!("{v}fabric-chaincode-go/shim/shim_test.go"),
            "package shim\nimport \"other.org/x\"\n",
        );
        put(
            &tree,
            &format!("{v}fabric-chaincode-go/LICENSE"),
            "Apache\n",
        );
        put(
            &tree,
            &format!("{v}fabric-protos-go/peer/peer.pb.go"),
            "package peer\n",
        );
        put(
            &tree,
            "vendor/example.com/dep/a/a.go",
            "package a\nimport \"strings\"\n",
        );
        put(&tree, "vendor/example.com/dep/a/a.s", "TEXT\n");
        put(
            &tree,
            "vendor/example.com/dep/unused/u.go",
            "package unused\n",
        );
        put(&tree, "vendor/other.org/x/x.go", "package x\n");
        let dest = t.path().join("cc");
        let a = assemble_chaincode(&tree, "example.com/imgforge-smoke-1", &dest).unwrap();
        assert_eq!(a.shim, SHIMS[1]);
        assert_eq!((a.packages, a.modules), (3, 3));
        let read = |r: &str| std::fs::read_to_string(dest.join(r)).unwrap();
        assert_eq!(
            read("go.mod"),
            "module example.com/imgforge-smoke-1\n\ngo 1.24.2\n\nrequire (\n\texample.com/dep v1.2.3 // indirect\n\tgithub.com/hyperledger/fabric-chaincode-go v0.0.0-2022\n\tgithub.com/hyperledger/fabric-protos-go v0.2.0\n)\n"
        );
        assert_eq!(
            read("vendor/modules.txt"),
            "# example.com/dep v1.2.3\n## explicit; go 1.20\nexample.com/dep/a\n# github.com/hyperledger/fabric-chaincode-go v0.0.0-2022\n## explicit; go 1.17\ngithub.com/hyperledger/fabric-chaincode-go/shim\n# github.com/hyperledger/fabric-protos-go v0.2.0\n## explicit; go 1.17\ngithub.com/hyperledger/fabric-protos-go/peer\n"
        );
        assert!(dest.join("vendor/example.com/dep/a/a.s").is_file());
        assert!(dest
            .join(format!("{v}fabric-chaincode-go/LICENSE"))
            .is_file());
        assert!(!dest
            .join(format!("{v}fabric-chaincode-go/shim/shim_test.go"))
            .exists());
        assert!(!dest.join("vendor/example.com/dep/unused").exists());
        assert!(!dest.join("vendor/other.org").exists());
        let main = read("main.go");
        assert!(
            main.contains("\"github.com/hyperledger/fabric-chaincode-go/shim\""),
            "{main}"
        );
        assert!(
            main.contains(") Invoke(stub shim.ChaincodeStubInterface) pb.Response {"),
            "{main}"
        );
        assert!(!main.contains("{{"), "{main}");
    }

    #[test]
    fn assemble_chaincode_names_what_the_tree_lacks() {
        let t = tempfile::tempdir().unwrap();
        put(
            t.path(),
            "go.mod",
            "module github.com/hyperledger/fabric\n\ngo 1.22.0\n",
        );
        put(
            t.path(),
            "vendor/modules.txt",
            "# example.com/fixdep v0.1.0\n## explicit; go 1.16\nexample.com/fixdep\n",
        );
        let e = assemble_chaincode(t.path(), "m", &t.path().join("cc")).unwrap_err();
        assert!(
            e.contains("fabric-chaincode-go/shim") && e.contains("modules.txt"),
            "{e}"
        );
        std::fs::remove_file(t.path().join("vendor/modules.txt")).unwrap();
        let e = assemble_chaincode(t.path(), "m", &t.path().join("cc")).unwrap_err();
        assert!(e.contains("modules.txt"), "{e}");
    }

    #[test]
    fn v3_template_uses_pointer_responses() {
        let s = chaincode_source(&SHIMS[0]);
        assert!(s.contains("\"github.com/hyperledger/fabric-chaincode-go/v2/shim\""));
        assert!(s.contains("pb \"github.com/hyperledger/fabric-protos-go-apiv2/peer\""));
        assert!(s.contains(") Init(stub shim.ChaincodeStubInterface) *pb.Response {"));
    }

    #[test]
    fn network_config_carries_the_ports() {
        let p = Ports {
            orderer: 7050,
            admin: 7053,
            cluster: 7054,
            orderer_ops: 9443,
            peer: 7051,
            chaincode: 7052,
            peer_ops: 9444,
        };
        let c = configtx(&p);
        assert!(c.contains("OrdererEndpoints: [127.0.0.1:7050]"), "{c}");
        assert!(c.contains("        Port: 7054\n        ClientTLSCert: /w/crypto-config/ordererOrganizations/example.com/orderers/orderer.example.com/tls/server.crt\n"), "{c}");
        assert!(c.contains("        Port: 7051\n"), "{c}");
        assert!(
            ["{OP}", "{CP}", "{PP}", "{TLS}"]
                .iter()
                .all(|t| !c.contains(t)),
            "{c}"
        );
        let o2 = orderer_env(2, &p);
        for want in [
            "ORDERER_GENERAL_BOOTSTRAPMETHOD=none",
            "ORDERER_CHANNELPARTICIPATION_ENABLED=true",
            "ORDERER_ADMIN_LISTENADDRESS=127.0.0.1:7053",
            "ORDERER_GENERAL_CLUSTER_LISTENPORT=7054",
            "ORDERER_GENERAL_LISTENPORT=7050",
        ] {
            assert!(o2.iter().any(|e| e == want), "{want} not in {o2:?}");
        }
        let o3 = orderer_env(3, &p);
        assert!(!o3
            .iter()
            .any(|e| e.contains("BOOTSTRAPMETHOD") || e.contains("CHANNELPARTICIPATION")));
        let pe = peer_env("imgforge-smoke-1", &p);
        for want in [
            "CORE_PEER_NETWORKID=imgforge-smoke-1",
            "CORE_PEER_CHAINCODEADDRESS=127.0.0.1:7052",
            "CORE_VM_DOCKER_HOSTCONFIG_NETWORKMODE=host",
        ] {
            assert!(pe.iter().any(|e| e == want), "{want} not in {pe:?}");
        }
        // the peer finds its chaincode images by itself
        assert!(
            !pe.iter().any(|e| e.starts_with("CORE_CHAINCODE_")),
            "{pe:?}"
        );
    }

    const CORE_2513: &str = "chaincode:\n    # To override this property via env variable use CORE_CHAINCODE_EXTERNALBUILDERS: [{name: x, path: dir1}, {name: y, path: dir2}]\n    # The path must be an absolute path.\n    externalBuilders:\n       - name: ccaas_builder\n         path: /opt/hyperledger/ccaas_builder\n         propagateEnvironment:\n           - CHAINCODE_AS_A_SERVICE_BUILDER_CONFIG\n\n\n    installTimeout: 300s\n\n###\nledger:\n  state: {}\n";

    #[test]
    fn external_builder_goes_first_in_the_lists_indentation() {
        let e = add_external_builder(CORE_2513, "ccs-builder", "/w/ccs-builder").unwrap();
        assert_eq!(
            e,
            CORE_2513.replace(
                "    externalBuilders:\n",
                "    externalBuilders:\n       - name: ccs-builder\n         path: /w/ccs-builder\n"
            )
        );
        // the peer's own entry is untouched, and a second add of the same name is refused
        assert!(e.contains("       - name: ccaas_builder\n         path: /opt/hyperledger/ccaas_builder\n         propagateEnvironment:\n"));
        assert!(add_external_builder(&e, "ccs-builder", "/x")
            .unwrap_err()
            .contains("already"));
    }

    #[test]
    fn external_builder_replaces_an_empty_list_and_needs_the_key() {
        // v2.2's core.yaml
        let core = "peer:\n  id: x\nchaincode:\n    builder: y\n    externalBuilders: []\n    installTimeout: 300s\nvm:\n  endpoint: z\n";
        assert_eq!(
            add_external_builder(core, "b", "/p").unwrap(),
            "peer:\n  id: x\nchaincode:\n    builder: y\n    externalBuilders:\n        - name: b\n          path: /p\n    installTimeout: 300s\nvm:\n  endpoint: z\n"
        );
        // a key of another section does not count
        let e = add_external_builder(
            "chaincode:\n  builder: y\nother:\n  externalBuilders: []\n",
            "b",
            "/p",
        )
        .unwrap_err();
        assert!(e.contains("chaincode.externalBuilders"), "{e}");
        assert!(add_external_builder("vm: {}\n", "b", "/p")
            .unwrap_err()
            .contains("chaincode:"));
    }

    #[test]
    fn ccaas_package_has_the_builders_type_and_the_loopback_address() {
        use crate::chaincode::ccaas::{inspect, BuilderType};
        for (b, t) in [
            (BuilderType::Ccaas, "ccaas"),
            (BuilderType::External, "external"),
        ] {
            let (bytes, id) = ccaas_package(b, 41234).unwrap();
            let i = inspect(&bytes, Some(b));
            assert!(i.problems.is_empty(), "{:?}", i.problems);
            assert_eq!(i.builder_type.as_deref(), Some(t));
            assert_eq!(i.label.as_deref(), Some(LABEL));
            let c = i.connection.unwrap();
            assert_eq!(c["address"], "127.0.0.1:41234");
            assert_eq!(c["tls_required"], false);
            assert_eq!(id, package_id(LABEL, &bytes));
            assert_eq!(i.package_id.as_deref(), Some(id.as_str()));
            // the same bytes every time: the package ID is known before the peer says it
            assert_eq!(ccaas_package(b, 41234).unwrap().0, bytes);
        }
    }

    #[test]
    fn server_source_starts_a_chaincode_server() {
        for shim in SHIMS {
            let s = server_chaincode_source(&shim);
            assert_eq!(s.matches("func main() {").count(), 1, "{s}");
            assert!(s.contains("shim.ChaincodeServer{"), "{s}");
            assert!(s.contains("os.Getenv(\"CHAINCODE_ID\")"), "{s}");
            assert!(s.contains(&format!(
                ") Invoke(stub shim.ChaincodeStubInterface) {} {{",
                shim.response
            )));
            assert!(!s.contains("shim.Start("), "{s}");
            assert!(!s.contains("{{"), "{s}");
        }
    }

    #[test]
    fn package_id_is_label_and_sha256() {
        assert_eq!(
            package_id("smokecc_1.0", b""),
            "smokecc_1.0:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
