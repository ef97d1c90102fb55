//! Validation of Docker/OCI image reference parts (namespaces, repository
//! names, tags, digests) before imgforge renders templates or calls the
//! Docker Engine.
//!
//! The grammar is the one of distribution/reference (Docker's Go library),
//! as in distribution/reference `regexp.go`:
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [domain "/"] remote-name
//! domain           := host [":" port]            ; port = [0-9]+
//! host             := domain-name | "[" IPv6 "]"  ; IPv6 = [a-fA-F0-9:]+
//! domain-name      := domain-component ("." domain-component)*
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! remote-name      := path-component ("/" path-component)*
//! path-component   := [a-z0-9]+ (separator [a-z0-9]+)*
//! separator        := [._] | "__" | "-"+
//! tag              := [\w][\w.-]{0,127}
//! digest           := algorithm ":" hex
//! ```
//!
//! plus the rules of distribution/reference `normalize.go` and
//! `reference.go`: the repository path (without domain) is at most 255
//! characters, counting the `library/` prefix Docker adds to single-component
//! Docker Hub names; the first component of a name is a domain only if it
//! contains `.` or `:` or equals `localhost`; a bare 64-character hexadecimal
//! name is rejected because it reads as an image ID.
//!
//! Deliberate differences from Docker (all of them stricter, so any name or
//! tag accepted here is accepted by Docker):
//!
//! * Docker also treats a first component containing upper case (`Acme/peer`)
//!   as a registry host called `Acme`. That is almost always a mistyped
//!   namespace, so here it is reported as "repository name must be lowercase"
//!   (write `acme:5000/peer` or `acme.example.com/peer` for a real host).
//! * A first component with `.` or `:` is always a registry host here, so
//!   `ex_ample.com/x` has an invalid host name; Docker falls back to reading
//!   it as a path without a domain.
//! * Whitespace, control and non-ASCII characters are always rejected with a
//!   dedicated message: they would inject lines into a generated Dockerfile.
//! * [`ImageRef::parse`] rejects digests (`@sha256:…`) with "digests are not
//!   supported here", since imgforge tags the images it builds; use
//!   [`validate_digest`] to check a digest on its own.
//! * [`ImageRef::parse`] also rejects a 64-hex repository name followed by a
//!   tag.
//!
//! Why this is hand-written: oci-spec's `distribution::Reference` (which
//! oci-client re-exports) was run with Docker's distribution/reference over
//! the case table in the tests (`case_table`: Docker's own test inputs and
//! imgforge's). It agrees with Docker except that it has no IPv6 hosts, lets
//! non-ASCII letters into tags, accepts a bare 64-hex name and upper-case
//! sha256 hex, and reads `UPPER/x` as a Docker Hub path and `ex_ample.com/x`
//! as registry `ex_ample.com`. Above all it answers only yes or no, while
//! every problem reported here names the offending character and its
//! position; a wrapper would need the walk below anyway. The table keeps
//! oci-spec's verdict on each input, so an oci-spec upgrade that changes one
//! shows up there.

// `ReferenceError` is 128 bytes; its shape (owned field, value, problem and
// hint) is the public API, and errors are only built on the cold path.
#![allow(clippy::result_large_err)]

use std::fmt;
use std::ops::Range;

/// Longest repository path (without domain), as in distribution/reference
/// `reference.go` (`NameTotalLengthMax`).
pub const MAX_REPOSITORY_PATH_LEN: usize = 255;

/// Longest tag, as in distribution/reference `regexp.go` (`[\w][\w.-]{0,127}`).
pub const MAX_TAG_LEN: usize = 128;

/// Prefix Docker adds to single-component Docker Hub names (`peer` becomes
/// `docker.io/library/peer`), as in distribution/reference `normalize.go`.
const OFFICIAL_REPO_PREFIX: &str = "library/";

/// A validated image reference: `repository` (possibly with domain) and
/// optional tag.
///
/// Shape: `name[:tag]` where `name` is `[host[:port]/]path`, as in
/// distribution/reference `regexp.go`. Digests are not part of it; see
/// [`ImageRef::parse`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageRef {
    /// Repository name, including the registry domain when one was given,
    /// e.g. `hyperledger/fabric-peer` or `localhost:5000/ns/peer`.
    pub repository: String,
    /// Tag after the last `:` of the last path component, e.g.
    /// `amd64-1.4.12`; `None` when the reference has no tag.
    pub tag: Option<String>,
}

impl ImageRef {
    /// Parse and validate `name[:tag]`, e.g. `hyperledger/fabric-peer:1.4.12`,
    /// `localhost:5000/ns/peer:tag` or `[::1]:5000/ns/peer`, following the
    /// reference grammar as in distribution/reference `regexp.go`.
    ///
    /// The tag is whatever follows the first `:` after the last `/`, so the
    /// `:` of a registry port is never mistaken for a tag separator; as in
    /// Docker, `test.com:5000` (no `/`) is repository `test.com` with tag
    /// `5000`.
    ///
    /// # Errors
    ///
    /// A [`ReferenceError`] naming `field` when the value is empty, contains
    /// whitespace or control characters, contains a digest (`@…`: "digests
    /// are not supported here"), has an empty repository or tag around the
    /// `:`, or when the repository (see [`validate_repository`]) or the tag
    /// (see [`validate_tag`]) is invalid. Positions are byte offsets in
    /// `value`.
    pub fn parse(field: &str, value: &str) -> Result<ImageRef, ReferenceError> {
        finish(Kind::Reference, field, value, check_reference(value))
    }
}

impl fmt::Display for ImageRef {
    /// Writes `repository:tag`, or `repository` when there is no tag.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tag {
            Some(tag) => write!(f, "{}:{}", self.repository, tag),
            None => f.write_str(&self.repository),
        }
    }
}

/// Error naming the setting (`field`, e.g. "DOCKER_NS"), the offending value,
/// the byte position of the first bad char when known, what was expected, and
/// a hint.
///
/// Shape of the message: `FIELD="value" is not a valid WHAT: PROBLEM`; the
/// hint is not part of the message and should be shown separately. The rules
/// behind each problem are as in distribution/reference `regexp.go`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}={value:?} is not a valid {what}: {problem}")]
pub struct ReferenceError {
    /// Name of the setting that held the value, e.g. `DOCKER_NS`.
    pub field: String,
    /// The rejected value, unchanged.
    pub value: String,
    /// What the value should have been: `namespace`, `repository name`,
    /// `tag`, `image reference` or `digest`.
    pub what: &'static str,
    /// What is wrong, e.g. `character 'P' at position 0 is not allowed:
    /// repository name must be lowercase`.
    pub problem: String,
    /// Byte offset in `value` of the first offending character, when known.
    pub position: Option<usize>,
    /// A suggested fix, e.g. `use "acme"`, when one is known.
    pub hint: Option<String>,
}

/// Validate a namespace as used in `$(DOCKER_NS)/fabric-peer`: an optional
/// domain (`host[:port]`) followed by zero or more path components, e.g.
/// "hyperledger", "acme", "registry.example.com:5000/team",
/// "localhost:5000/a/b". Empty is an error. Must not end or start with '/'.
///
/// Shape: `[domain][/path-component]*`, as in distribution/reference
/// `regexp.go`. The first component is the domain when it contains `.` or `:`
/// or is `localhost`, even when it is the only component (the caller appends
/// `/name`, after which Docker reads it as a domain); so `localhost:5000` and
/// `registry.example.com` are valid namespaces. Every valid namespace joined
/// with `/fabric-peer` is a valid repository for [`validate_repository`]
/// (provided the joined path stays within 255 characters).
///
/// # Errors
///
/// A [`ReferenceError`] when the value is empty, starts or ends with `/`,
/// contains whitespace, control characters or a digest, has an invalid
/// domain, port or path component (upper case, bad character, bad
/// separator, empty component), or a path longer than 255 characters.
pub fn validate_namespace(field: &str, value: &str) -> Result<(), ReferenceError> {
    finish(Kind::Namespace, field, value, check_namespace(value))
}

/// Validate a tag (e.g. DOCKER_TAG "amd64-1.4.12-snapshot-56c2b126e").
///
/// Shape: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, as in distribution/reference
/// `regexp.go`.
///
/// # Errors
///
/// A [`ReferenceError`] when the tag is empty, contains whitespace or control
/// characters, starts with something other than a letter, digit or `_`,
/// contains another character than letters, digits, `_`, `.`, `-`, or is
/// longer than 128 characters.
pub fn validate_tag(field: &str, value: &str) -> Result<(), ReferenceError> {
    let checked = precheck(value, Kind::Tag).and_then(|()| check_tag(value, 0..value.len()));
    finish(Kind::Tag, field, value, checked)
}

/// Validate a repository name that may include a domain, e.g.
/// "hyperledger/fabric-peer", "fabric-peer" or "localhost:5000/ns/peer".
///
/// Shape: `[domain/]path-component(/path-component)*` without tag or digest,
/// as in distribution/reference `regexp.go`; the first component is a domain
/// only when it contains `.` or `:` or is `localhost` and is followed by `/`.
///
/// # Errors
///
/// A [`ReferenceError`] when the name is empty, contains whitespace, control
/// characters, a tag (`:` after the last `/`) or a digest, has an invalid
/// domain or path component, has a path longer than 255 characters (counting
/// Docker's implicit `library/` prefix for single-component names), or is a
/// bare 64-character hexadecimal string.
pub fn validate_repository(field: &str, value: &str) -> Result<(), ReferenceError> {
    finish(Kind::Repository, field, value, check_repository(value))
}

/// Validate a digest such as `sha256:<64 hex digits>`.
///
/// Shape: `algorithm ":" hex` with algorithm
/// `[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*` and hex
/// `[0-9a-fA-F]{32,}`, as in distribution/reference `regexp.go`; `sha256`,
/// `sha384` and `sha512` need exactly 64, 96 and 128 lowercase hex digits, as
/// in go-digest. This is the grammar only: Docker's go-digest also refuses
/// upper-case algorithm names (`SHA256:…`) and algorithms it has no
/// implementation for (`custom:…`).
///
/// # Errors
///
/// A [`ReferenceError`] when the value is empty, contains whitespace or
/// control characters, has no `:`, or has an invalid algorithm or hex part.
pub fn validate_digest(field: &str, value: &str) -> Result<(), ReferenceError> {
    finish(Kind::Digest, field, value, check_digest(value))
}

// ---------------------------------------------------------------------------
// Internals. Every position is a byte offset in the complete value.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Namespace,
    Repository,
    Tag,
    Reference,
    Digest,
}

impl Kind {
    fn what(self) -> &'static str {
        match self {
            Kind::Namespace => "namespace",
            Kind::Repository => "repository name",
            Kind::Tag => "tag",
            Kind::Reference => "image reference",
            Kind::Digest => "digest",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Kind::Namespace => "e.g. \"hyperledger\" or \"registry.example.com:5000/team\"",
            Kind::Repository => "e.g. \"hyperledger/fabric-peer\"",
            Kind::Tag => "e.g. \"latest\" or \"amd64-1.4.12\"",
            Kind::Reference => "e.g. \"hyperledger/fabric-peer:latest\"",
            Kind::Digest => "e.g. \"sha256:\" followed by 64 hex digits",
        }
    }
}

#[derive(Debug)]
struct Problem {
    problem: String,
    position: Option<usize>,
    hint: Option<String>,
    /// The problem is upper case in a repository path: a lowercase hint is
    /// computed from the whole value.
    uppercase: bool,
}

impl Problem {
    fn new(problem: impl Into<String>) -> Self {
        Problem {
            problem: problem.into(),
            position: None,
            hint: None,
            uppercase: false,
        }
    }

    fn at(mut self, position: usize) -> Self {
        self.position = Some(position);
        self
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    fn maybe_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

fn finish<T>(
    kind: Kind,
    field: &str,
    value: &str,
    checked: Result<T, Problem>,
) -> Result<T, ReferenceError> {
    checked.map_err(|p| {
        let hint = match p.hint {
            Some(hint) => Some(hint),
            None if p.uppercase => lowercase_hint(kind, value),
            None => None,
        };
        ReferenceError {
            field: field.to_owned(),
            value: value.to_owned(),
            what: kind.what(),
            problem: p.problem,
            position: p.position,
            hint,
        }
    })
}

/// `use "<value with its repository path lowercased>"`, if that is valid.
fn lowercase_hint(kind: Kind, value: &str) -> Option<String> {
    let candidate = match kind {
        Kind::Namespace => lowercase_path(value, true),
        Kind::Repository => lowercase_path(value, false),
        Kind::Reference => {
            let (end, _) = split_tag(value);
            lowercase_path(&value[..end], false) + &value[end..]
        }
        Kind::Tag | Kind::Digest => return None,
    };
    let valid = match kind {
        Kind::Namespace => check_namespace(&candidate).is_ok(),
        Kind::Repository => check_repository(&candidate).is_ok(),
        _ => check_reference(&candidate).is_ok(),
    };
    valid.then(|| format!("use {candidate:?}"))
}

fn lowercase_path(name: &str, namespace: bool) -> String {
    let (_, path) = split_domain(name, namespace);
    let mut out = name[..path.start].to_owned();
    out.push_str(&name[path].to_ascii_lowercase());
    out
}

/// Empty value, whitespace and control characters: checked first for every
/// kind of value.
fn precheck(value: &str, kind: Kind) -> Result<(), Problem> {
    if value.is_empty() {
        return Err(Problem::new("empty value").hint(kind.example()));
    }
    match value
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || c.is_control())
    {
        Some((i, c)) => Err(Problem::new(format!(
            "character {c:?} at position {i} is whitespace or a control character, \
             which is never allowed (it would inject lines into a generated Dockerfile)"
        ))
        .at(i)
        .hint("remove it; look for a stray space or a trailing newline")),
        None => Ok(()),
    }
}

fn check_no_digest(value: &str) -> Result<(), Problem> {
    match value.find('@') {
        Some(i) => Err(Problem::new(format!(
            "digests are not supported here ('@' at position {i})"
        ))
        .at(i)
        .hint(format!(
            "remove {:?} and refer to the image by tag",
            &value[i..]
        ))),
        None => Ok(()),
    }
}

fn check_not_image_id(name: &str) -> Result<(), Problem> {
    if name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(Problem::new(
            "a repository name cannot be a 64-character hexadecimal string (that is an image ID)",
        )
        .at(0)
        .hint("use a name such as \"hyperledger/fabric-peer\""));
    }
    Ok(())
}

fn check_namespace(value: &str) -> Result<(), Problem> {
    precheck(value, Kind::Namespace)?;
    check_no_digest(value)?;
    let trimmed_hint = || {
        let t = value.trim_matches('/');
        (!t.is_empty() && check_namespace(t).is_ok()).then(|| format!("use {t:?}"))
    };
    if value.starts_with('/') {
        return Err(Problem::new("namespace must not start with '/'")
            .at(0)
            .maybe_hint(trimmed_hint()));
    }
    if value.ends_with('/') {
        return Err(Problem::new(
            "namespace must not end with '/' (the image name is appended after a '/')",
        )
        .at(value.len() - 1)
        .maybe_hint(trimmed_hint()));
    }
    check_name(value, value.len(), true)
}

fn check_repository(value: &str) -> Result<(), Problem> {
    precheck(value, Kind::Repository)?;
    check_no_digest(value)?;
    check_not_image_id(value)?;
    check_name(value, value.len(), false)
}

fn check_reference(value: &str) -> Result<ImageRef, Problem> {
    precheck(value, Kind::Reference)?;
    check_no_digest(value)?;
    let (end, tag) = split_tag(value);
    if end == 0 {
        return Err(Problem::new("empty repository name before ':'")
            .at(0)
            .hint(Kind::Reference.example()));
    }
    check_not_image_id(&value[..end])?;
    check_name(value, end, false)?;
    let tag = match tag {
        None => None,
        Some(range) if range.is_empty() => {
            return Err(Problem::new("empty tag after ':'").at(end).hint(format!(
                "remove the ':' or add a tag, e.g. \"{}:latest\"",
                &value[..end]
            )));
        }
        Some(range) => {
            check_tag(value, range.clone())?;
            Some(value[range].to_owned())
        }
    };
    Ok(ImageRef {
        repository: value[..end].to_owned(),
        tag,
    })
}

/// End of the name and range of the tag: the tag follows the first `:` after
/// the last `/`.
fn split_tag(value: &str) -> (usize, Option<Range<usize>>) {
    let after_slash = value.rfind('/').map_or(0, |i| i + 1);
    match value[after_slash..].find(':') {
        Some(j) => {
            let colon = after_slash + j;
            (colon, Some(colon + 1..value.len()))
        }
        None => (value.len(), None),
    }
}

fn looks_like_domain(component: &str) -> bool {
    component.contains(['.', ':']) || component == "localhost"
}

/// Ranges of the domain (if any) and of the path within `name`. For a
/// namespace, a lone first component that looks like a domain is the domain.
fn split_domain(name: &str, namespace: bool) -> (Option<Range<usize>>, Range<usize>) {
    match name.find('/') {
        Some(i) if looks_like_domain(&name[..i]) => (Some(0..i), i + 1..name.len()),
        None if namespace && looks_like_domain(name) => {
            (Some(0..name.len()), name.len()..name.len())
        }
        _ => (None, 0..name.len()),
    }
}

/// Check `value[..end]` as `[domain/]path`; a namespace may be domain-only.
fn check_name(value: &str, end: usize, namespace: bool) -> Result<(), Problem> {
    let name = &value[..end];
    let (domain, path) = split_domain(name, namespace);
    if let Some(domain) = &domain {
        check_domain(value, domain.clone())?;
    }
    if namespace && path.is_empty() && domain.is_some() {
        return Ok(());
    }
    check_path(value, path.clone())?;
    let implicit_library = !namespace
        && !value[path.clone()].contains('/')
        && domain.is_none_or(|d| matches!(&value[d], "docker.io" | "index.docker.io"));
    check_path_len(path, implicit_library)
}

fn check_domain(value: &str, range: Range<usize>) -> Result<(), Problem> {
    let domain = &value[range.clone()];
    let start = range.start;
    let port_start = if domain.starts_with('[') {
        let Some(close) = domain.find(']') else {
            return Err(Problem::new("IPv6 address is missing its closing ']'").at(start));
        };
        let ip = &domain[1..close];
        if ip.is_empty() {
            return Err(Problem::new("empty IPv6 address \"[]\"").at(start + 1));
        }
        if let Some((i, c)) = ip
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_hexdigit() || c == ':'))
        {
            let p = start + 1 + i;
            return Err(Problem::new(format!(
                "character {c:?} at position {p} is not allowed in an IPv6 address \
                 (allowed: hexadecimal digits and ':')"
            ))
            .at(p));
        }
        match domain[close + 1..].chars().next() {
            None => None,
            Some(':') => Some(start + close + 2),
            Some(c) => {
                let p = start + close + 1;
                return Err(Problem::new(format!(
                    "character {c:?} at position {p} is not allowed after an IPv6 address \
                     (expected ':' and a port)"
                ))
                .at(p));
            }
        }
    } else {
        let host_end = domain.find(':').unwrap_or(domain.len());
        check_host_name(value, start..start + host_end)?;
        (host_end < domain.len()).then_some(start + host_end + 1)
    };
    match port_start {
        Some(p) => check_port(value, p..range.end),
        None => Ok(()),
    }
}

fn check_host_name(value: &str, range: Range<usize>) -> Result<(), Problem> {
    let host = &value[range.clone()];
    if host.is_empty() {
        return Err(Problem::new("empty registry host name before ':'").at(range.start));
    }
    if let Some((i, c)) = host
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    {
        let p = range.start + i;
        return Err(Problem::new(format!(
            "character {c:?} at position {p} is not allowed in a registry host name \
             (allowed: letters, digits, '-' and '.')"
        ))
        .at(p));
    }
    let mut start = range.start;
    for component in host.split('.') {
        let end = start + component.len();
        if component.is_empty() {
            return Err(if start == range.start {
                Problem::new("registry host name must not start with '.'").at(start)
            } else if start == range.end {
                Problem::new("registry host name must not end with '.'").at(start - 1)
            } else {
                Problem::new(format!(
                    "registry host name has an empty component (\"..\" at position {})",
                    start - 1
                ))
                .at(start)
            });
        }
        if component.starts_with('-') || component.ends_with('-') {
            let p = if component.starts_with('-') {
                start
            } else {
                end - 1
            };
            return Err(Problem::new(format!(
                "registry host name component {component:?} must start and end with a letter or digit"
            ))
            .at(p));
        }
        start = end + 1;
    }
    Ok(())
}

fn check_port(value: &str, range: Range<usize>) -> Result<(), Problem> {
    let port = &value[range.clone()];
    if port.is_empty() {
        return Err(Problem::new("empty port after ':'").at(range.start - 1));
    }
    match port.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, c)) => {
            let p = range.start + i;
            Err(Problem::new(format!(
                "character {c:?} at position {p} is not allowed in a registry port (digits only)"
            ))
            .at(p))
        }
        None => Ok(()),
    }
}

fn check_path(value: &str, range: Range<usize>) -> Result<(), Problem> {
    let mut start = range.start;
    for component in value[range.clone()].split('/') {
        let end = start + component.len();
        if component.is_empty() {
            return Err(if start == 0 {
                Problem::new("empty path component: the name must not start with '/'").at(0)
            } else if start == range.end {
                Problem::new("empty path component: the name must not end with '/'").at(start - 1)
            } else {
                Problem::new(format!(
                    "empty path component (\"//\" at position {})",
                    start - 1
                ))
                .at(start)
            });
        }
        check_path_component(value, start..end)?;
        start = end + 1;
    }
    Ok(())
}

fn is_separator(b: u8) -> bool {
    matches!(b, b'.' | b'_' | b'-')
}

/// Length of the longest valid separator at the start of `run` (a run of
/// separator characters): `.`, `_`, `__` or `-`+.
fn valid_separator_prefix(run: &[u8]) -> usize {
    match run {
        [b'-', ..] => run.iter().take_while(|&&b| b == b'-').count(),
        [b'_', b'_', ..] => 2,
        _ => 1,
    }
}

fn check_path_component(value: &str, range: Range<usize>) -> Result<(), Problem> {
    let component = &value[range.clone()];
    for (i, c) in component.char_indices() {
        let p = range.start + i;
        match c {
            'a'..='z' | '0'..='9' | '.' | '_' | '-' => {}
            'A'..='Z' => {
                let mut problem = Problem::new(format!(
                    "character {c:?} at position {p} is not allowed: repository name must be lowercase"
                ))
                .at(p);
                problem.uppercase = true;
                return Err(problem);
            }
            ':' => {
                return Err(Problem::new(format!(
                    "character ':' at position {p} is not allowed in a repository path \
                     (a tag belongs after the complete repository name, a port after a registry host)"
                ))
                .at(p)
                .hint("give the tag in its own setting, such as DOCKER_TAG"));
            }
            _ => {
                return Err(Problem::new(format!(
                    "character {c:?} at position {p} is not allowed in a repository path \
                     (allowed: a-z, 0-9 and the separators '.', '_', '__', '-')"
                ))
                .at(p));
            }
        }
    }
    let bytes = component.as_bytes();
    if is_separator(bytes[0]) {
        return Err(Problem::new(format!(
            "path component {component:?} must start with a lowercase letter or digit"
        ))
        .at(range.start));
    }
    if is_separator(bytes[bytes.len() - 1]) {
        return Err(Problem::new(format!(
            "path component {component:?} must end with a lowercase letter or digit"
        ))
        .at(range.end - 1));
    }
    let mut i = 0;
    while i < bytes.len() {
        if !is_separator(bytes[i]) {
            i += 1;
            continue;
        }
        let run_start = i;
        while i < bytes.len() && is_separator(bytes[i]) {
            i += 1;
        }
        let run = &bytes[run_start..i];
        let valid = valid_separator_prefix(run);
        if valid != run.len() {
            return Err(Problem::new(format!(
                "separator {:?} in path component {component:?} is not allowed",
                &component[run_start..i]
            ))
            .at(range.start + run_start + valid)
            .hint("separators are '.', '_', '__' or one or more '-', between lowercase letters or digits"));
        }
    }
    Ok(())
}

fn check_path_len(range: Range<usize>, implicit_library: bool) -> Result<(), Problem> {
    let prefix = if implicit_library {
        OFFICIAL_REPO_PREFIX.len()
    } else {
        0
    };
    let len = range.len();
    if len + prefix <= MAX_REPOSITORY_PATH_LEN {
        return Ok(());
    }
    let problem = if implicit_library {
        format!(
            "repository path is {len} characters ({} with the \"library/\" prefix Docker adds \
             to single-component names), at most {MAX_REPOSITORY_PATH_LEN} are allowed",
            len + prefix
        )
    } else {
        format!(
            "repository path is {len} characters, at most {MAX_REPOSITORY_PATH_LEN} are allowed"
        )
    };
    Err(Problem::new(problem)
        .at(range.start + MAX_REPOSITORY_PATH_LEN - prefix)
        .hint("shorten the repository path"))
}

/// Check a non-empty tag at `value[range]`.
fn check_tag(value: &str, range: Range<usize>) -> Result<(), Problem> {
    let tag = &value[range.clone()];
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.char_indices();
    if let Some((_, first)) = chars.next() {
        if !is_word(first) {
            return Err(Problem::new(format!(
                "tag {tag:?} must start with a letter, digit or '_'"
            ))
            .at(range.start));
        }
    }
    if let Some((i, c)) = chars.find(|&(_, c)| !(is_word(c) || c == '.' || c == '-')) {
        let p = range.start + i;
        return Err(Problem::new(format!(
            "character {c:?} at position {p} is not allowed in a tag \
             (allowed: letters, digits, '_', '.', '-')"
        ))
        .at(p));
    }
    if tag.len() > MAX_TAG_LEN {
        return Err(Problem::new(format!(
            "tag is {} characters, at most {MAX_TAG_LEN} are allowed",
            tag.len()
        ))
        .at(range.start + MAX_TAG_LEN)
        .hint(format!(
            "shorten the tag to at most {MAX_TAG_LEN} characters"
        )));
    }
    Ok(())
}

fn check_digest(value: &str) -> Result<(), Problem> {
    precheck(value, Kind::Digest)?;
    let Some(colon) = value.find(':') else {
        return Err(
            Problem::new("missing ':' between the algorithm and the hex digits")
                .hint(Kind::Digest.example()),
        );
    };
    let algorithm = &value[..colon];
    if algorithm.is_empty() {
        return Err(Problem::new("empty digest algorithm before ':'").at(0));
    }
    let mut expect_letter = true;
    for (i, c) in algorithm.char_indices() {
        if expect_letter {
            if !c.is_ascii_alphabetic() {
                return Err(Problem::new(format!(
                    "character {c:?} at position {i} is not allowed in a digest algorithm \
                     (each algorithm component must start with a letter)"
                ))
                .at(i));
            }
            expect_letter = false;
        } else if matches!(c, '-' | '_' | '+' | '.') {
            expect_letter = true;
        } else if !c.is_ascii_alphanumeric() {
            return Err(Problem::new(format!(
                "character {c:?} at position {i} is not allowed in a digest algorithm \
                 (allowed: letters, digits and the separators '-', '_', '+', '.')"
            ))
            .at(i));
        }
    }
    if expect_letter {
        return Err(Problem::new(format!(
            "digest algorithm {algorithm:?} must not end with a separator"
        ))
        .at(colon - 1));
    }
    let hex = &value[colon + 1..];
    if hex.is_empty() {
        return Err(Problem::new("empty hex digits after ':'").at(colon));
    }
    if let Some((i, c)) = hex.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        let p = colon + 1 + i;
        return Err(Problem::new(format!(
            "character {c:?} at position {p} is not a hexadecimal digit"
        ))
        .at(p));
    }
    let required = match algorithm {
        "sha256" => Some(64),
        "sha384" => Some(96),
        "sha512" => Some(128),
        _ => None,
    };
    match required {
        Some(n) if hex.len() != n => Err(Problem::new(format!(
            "{algorithm} digest has {} hex digits, exactly {n} are required",
            hex.len()
        ))
        .maybe_hint((hex.len() > n).then(|| format!("remove the {} extra digits", hex.len() - n)))),
        Some(_) => match hex.char_indices().find(|(_, c)| c.is_ascii_uppercase()) {
            Some((i, c)) => {
                let p = colon + 1 + i;
                Err(Problem::new(format!(
                    "character {c:?} at position {p} is upper case: \
                     {algorithm} digests use lowercase hex digits"
                ))
                .at(p)
                .hint(format!("use {:?}", value.to_ascii_lowercase())))
            }
            None => Ok(()),
        },
        None if hex.len() < 32 => Err(Problem::new(format!(
            "digest has {} hex digits, at least 32 are required",
            hex.len()
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: &str = "FIELD";

    fn hex64() -> String {
        "0123456789abcdef".repeat(4)
    }

    /// Assert `result` is an error whose problem contains `fragment` and whose
    /// position is `position`; returns the error for further checks.
    fn assert_err<T: std::fmt::Debug>(
        label: &str,
        value: &str,
        result: Result<T, ReferenceError>,
        fragment: &str,
        position: Option<usize>,
    ) -> ReferenceError {
        let err = match result {
            Ok(ok) => panic!("{label}({value:?}) unexpectedly accepted: {ok:?}"),
            Err(err) => err,
        };
        assert!(
            err.problem.contains(fragment),
            "{label}({value:?}): problem {:?} lacks {fragment:?}",
            err.problem
        );
        assert_eq!(
            err.position, position,
            "{label}({value:?}): position ({err})"
        );
        assert_eq!(err.field, F);
        assert_eq!(err.value, value);
        err
    }

    const VALID_NAMESPACES: &[&str] = &[
        "hyperledger",
        "acme",
        "registry.example.com:5000/team",
        "localhost:5000/a/b",
        "localhost",
        "localhost:5000",
        "localhost/ns",
        "registry.example.com",
        "Registry.Example.COM/team",
        "[::1]:5000",
        "[::1]:5000/ns",
        "[fe80::1]/ns",
        "my-org",
        "my--org",
        "a_b",
        "a__b",
        "a.b",
        "0",
        "example.com/a/b/c",
        "docker.io/library",
        "a-1.b-2.example:1/x9",
    ];

    #[test]
    fn namespaces_valid() {
        for ns in VALID_NAMESPACES {
            if let Err(e) = validate_namespace(F, ns) {
                panic!("namespace {ns:?} rejected: {e}");
            }
        }
    }

    #[test]
    fn namespace_joined_with_image_name_is_a_valid_repository() {
        for ns in VALID_NAMESPACES {
            let repository = format!("{ns}/fabric-peer");
            if let Err(e) = validate_repository(F, &repository) {
                panic!("{repository:?} rejected: {e}");
            }
            let parsed = ImageRef::parse(F, &format!("{repository}:amd64-1.4.12"))
                .unwrap_or_else(|e| panic!("{repository:?}:amd64-1.4.12 rejected: {e}"));
            assert_eq!(parsed.repository, repository);
            assert_eq!(parsed.tag.as_deref(), Some("amd64-1.4.12"));
        }
    }

    #[test]
    fn namespaces_invalid() {
        let cases: &[(&str, &str, Option<usize>)] = &[
            ("", "empty value", None),
            (
                "Acme",
                "character 'A' at position 0 is not allowed: repository name must be lowercase",
                Some(0),
            ),
            (
                "acme/Team",
                "character 'T' at position 5 is not allowed: repository name must be lowercase",
                Some(5),
            ),
            ("LOCALHOST/x", "repository name must be lowercase", Some(0)),
            ("acme/", "namespace must not end with '/'", Some(4)),
            ("/acme", "namespace must not start with '/'", Some(0)),
            ("/", "namespace must not start with '/'", Some(0)),
            (
                "ns//team",
                "empty path component (\"//\" at position 2)",
                Some(3),
            ),
            (
                "acme\n",
                "'\\n' at position 4 is whitespace or a control character",
                Some(4),
            ),
            (
                "ac me",
                "' ' at position 2 is whitespace or a control character",
                Some(2),
            ),
            (
                "\tacme",
                "would inject lines into a generated Dockerfile",
                Some(0),
            ),
            ("acme\u{7f}", "whitespace or a control character", Some(4)),
            (
                "acme/pe..er",
                "separator \"..\" in path component \"pe..er\" is not allowed",
                Some(8),
            ),
            ("pe___er", "separator \"___\"", Some(4)),
            ("acme/pe._er", "separator \"._\"", Some(8)),
            // A lone component with '.' is a registry host once "/name" is appended.
            (
                "pe..er",
                "registry host name has an empty component",
                Some(3),
            ),
            (
                "-peer",
                "path component \"-peer\" must start with a lowercase letter or digit",
                Some(0),
            ),
            (
                "peer-",
                "path component \"peer-\" must end with a lowercase letter or digit",
                Some(4),
            ),
            (
                "acme/_x",
                "must start with a lowercase letter or digit",
                Some(5),
            ),
            (
                "acme/team:1.0",
                "character ':' at position 9 is not allowed in a repository path",
                Some(9),
            ),
            ("acme@sha256:abc", "digests are not supported here", Some(4)),
            (
                "ns/caf\u{e9}",
                "character '\u{e9}' at position 6 is not allowed in a repository path",
                Some(6),
            ),
            (
                "localhost:50a0/x",
                "character 'a' at position 12 is not allowed in a registry port",
                Some(12),
            ),
            ("localhost:/x", "empty port after ':'", Some(9)),
            (":5000/x", "empty registry host name before ':'", Some(0)),
            (
                "-bad.com/a",
                "registry host name component \"-bad\" must start and end",
                Some(0),
            ),
            (
                "bad-.com/a",
                "registry host name component \"bad-\"",
                Some(3),
            ),
            (
                "a..b/x",
                "registry host name has an empty component",
                Some(2),
            ),
            (
                ".a/x",
                "registry host name must not start with '.'",
                Some(0),
            ),
            ("a./x", "registry host name must not end with '.'", Some(1)),
            (
                "ex_ample.com/a",
                "character '_' at position 2 is not allowed in a registry host name",
                Some(2),
            ),
            ("[::1", "IPv6 address is missing its closing ']'", Some(0)),
            ("[]:5000/a", "empty IPv6 address", Some(1)),
            (
                "[::g]/a",
                "character 'g' at position 3 is not allowed in an IPv6 address",
                Some(3),
            ),
            (
                "[::1]x/a",
                "character 'x' at position 5 is not allowed after an IPv6 address",
                Some(5),
            ),
            ("[::1]:/a", "empty port after ':'", Some(5)),
        ];
        for &(value, fragment, position) in cases {
            let err = assert_err(
                "validate_namespace",
                value,
                validate_namespace(F, value),
                fragment,
                position,
            );
            assert_eq!(err.what, "namespace");
        }
    }

    #[test]
    fn tags_invalid() {
        let long = "a".repeat(129);
        let long_bad_start = format!("-{}", "a".repeat(200));
        let cases: &[(&str, &str, Option<usize>)] = &[
            ("", "empty value", None),
            (
                "-x",
                "tag \"-x\" must start with a letter, digit or '_'",
                Some(0),
            ),
            (
                ".x",
                "tag \".x\" must start with a letter, digit or '_'",
                Some(0),
            ),
            (
                &long,
                "tag is 129 characters, at most 128 are allowed",
                Some(128),
            ),
            (
                &long_bad_start,
                "must start with a letter, digit or '_'",
                Some(0),
            ),
            (
                "1.0\n",
                "'\\n' at position 3 is whitespace or a control character",
                Some(3),
            ),
            ("1 0", "whitespace or a control character", Some(1)),
            (
                "a:b",
                "character ':' at position 1 is not allowed in a tag",
                Some(1),
            ),
            (
                "a/b",
                "character '/' at position 1 is not allowed in a tag",
                Some(1),
            ),
            (
                "v+1",
                "character '+' at position 1 is not allowed in a tag",
                Some(1),
            ),
            ("\u{e9}", "must start with a letter, digit or '_'", Some(0)),
        ];
        for &(value, fragment, position) in cases {
            let err = assert_err(
                "validate_tag",
                value,
                validate_tag(F, value),
                fragment,
                position,
            );
            assert_eq!(err.what, "tag");
        }
    }

    #[test]
    fn tag_length_boundary() {
        assert!(validate_tag(F, &"t".repeat(MAX_TAG_LEN)).is_ok());
        let err = validate_tag(F, &"t".repeat(MAX_TAG_LEN + 1)).unwrap_err();
        assert_eq!(
            err.problem,
            "tag is 129 characters, at most 128 are allowed"
        );
    }

    #[test]
    fn repositories_invalid() {
        let hex = hex64();
        let upper_hex = hex.to_ascii_uppercase();
        let cases: &[(&str, &str, Option<usize>)] = &[
            ("", "empty value", None),
            (
                "Peer",
                "character 'P' at position 0 is not allowed: repository name must be lowercase",
                Some(0),
            ),
            (
                "hyperledger/fabric-Peer",
                "character 'P' at position 19",
                Some(19),
            ),
            ("Acme/peer", "repository name must be lowercase", Some(0)),
            (&upper_hex, "repository name must be lowercase", Some(10)),
            ("pe..er", "separator \"..\"", Some(3)),
            ("pe___er", "separator \"___\"", Some(4)),
            ("pe_-er", "separator \"_-\"", Some(3)),
            (
                "-peer",
                "must start with a lowercase letter or digit",
                Some(0),
            ),
            (
                "peer-",
                "must end with a lowercase letter or digit",
                Some(4),
            ),
            (
                "ns//peer",
                "empty path component (\"//\" at position 2)",
                Some(3),
            ),
            (
                "/peer",
                "empty path component: the name must not start with '/'",
                Some(0),
            ),
            (
                "peer/",
                "empty path component: the name must not end with '/'",
                Some(4),
            ),
            (
                "localhost:5000/",
                "the name must not end with '/'",
                Some(14),
            ),
            (
                "localhost:5000//p",
                "empty path component (\"//\" at position 14)",
                Some(15),
            ),
            (&hex, "cannot be a 64-character hexadecimal string", Some(0)),
            (
                "peer:1.0",
                "character ':' at position 4 is not allowed in a repository path",
                Some(4),
            ),
            ("peer@sha256:0", "digests are not supported here", Some(4)),
            ("pe er", "whitespace or a control character", Some(2)),
            ("peer\r\n", "whitespace or a control character", Some(4)),
            ("peer\0", "whitespace or a control character", Some(4)),
            (
                "ns/pe%er",
                "character '%' at position 5 is not allowed in a repository path",
                Some(5),
            ),
        ];
        for &(value, fragment, position) in cases {
            let err = assert_err(
                "validate_repository",
                value,
                validate_repository(F, value),
                fragment,
                position,
            );
            assert_eq!(err.what, "repository name");
        }
    }

    #[test]
    fn repository_length_boundary() {
        let ok = "a/".repeat(127) + "a";
        assert_eq!(ok.len(), 255);
        assert!(validate_repository(F, &ok).is_ok());

        let just_over = "a/".repeat(127) + "ab";
        assert_eq!(just_over.len(), 256);
        let err = validate_repository(F, &just_over).unwrap_err();
        assert_eq!(
            err.problem,
            "repository path is 256 characters, at most 255 are allowed"
        );
        assert_eq!(err.position, Some(255));

        let too_long = "a/".repeat(128) + "a";
        assert_eq!(too_long.len(), 257);
        let err = validate_repository(F, &too_long).unwrap_err();
        assert!(err.problem.contains("257 characters"), "{err}");

        // The domain does not count towards the limit.
        let with_domain = format!("localhost:5000/{ok}");
        assert!(validate_repository(F, &with_domain).is_ok());
        assert!(ImageRef::parse(F, &format!("{with_domain}:t")).is_ok());
        let err = ImageRef::parse(F, &format!("localhost:5000/{too_long}:t")).unwrap_err();
        assert!(err.problem.contains("257 characters"), "{err}");
        assert_eq!(err.position, Some(15 + 255));

        // Namespaces obey the same limit.
        assert!(validate_namespace(F, &ok).is_ok());
        assert!(validate_namespace(F, &too_long).is_err());
    }

    #[test]
    fn repository_length_counts_docker_library_prefix() {
        let single_ok = "a".repeat(247);
        assert!(validate_repository(F, &single_ok).is_ok());
        let single_over = "a".repeat(248);
        let err = validate_repository(F, &single_over).unwrap_err();
        assert!(
            err.problem.contains("256 with the \"library/\" prefix"),
            "{err}"
        );
        assert_eq!(err.position, Some(247));
        let hub = format!("docker.io/{single_over}");
        assert!(validate_repository(F, &hub).is_err());
        // With another registry, or a multi-component path, there is no prefix.
        assert!(validate_repository(F, &format!("localhost/{single_over}")).is_ok());
        assert!(validate_repository(F, &format!("a/{single_over}")).is_ok());
    }

    #[test]
    fn parse_valid() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("hyperledger/fabric-peer", "hyperledger/fabric-peer", None),
            (
                "hyperledger/fabric-peer:amd64-1.4.12",
                "hyperledger/fabric-peer",
                Some("amd64-1.4.12"),
            ),
            (
                "localhost:5000/ns/peer:tag",
                "localhost:5000/ns/peer",
                Some("tag"),
            ),
            ("localhost:5000/ns/peer", "localhost:5000/ns/peer", None),
            ("test.com:5000", "test.com", Some("5000")),
            ("localhost:5000", "localhost", Some("5000")),
            ("[::1]:5000/ns/peer", "[::1]:5000/ns/peer", None),
            ("[::1]:5000/ns/peer:1.0", "[::1]:5000/ns/peer", Some("1.0")),
            ("peer:_x", "peer", Some("_x")),
        ];
        for &(value, repository, tag) in cases {
            let parsed =
                ImageRef::parse(F, value).unwrap_or_else(|e| panic!("{value:?} rejected: {e}"));
            assert_eq!(parsed.repository, repository, "{value:?}");
            assert_eq!(parsed.tag.as_deref(), tag, "{value:?}");
            assert_eq!(parsed.to_string(), value, "Display round trip");
        }
    }

    #[test]
    fn parse_invalid() {
        let digest_ref = format!("hyperledger/fabric-peer@sha256:{}", hex64());
        let tagged_digest = format!("peer:1.0@sha256:{}", hex64());
        let hex_tagged = format!("{}:latest", hex64());
        let long_tag = format!("localhost:5000/ns/peer:{}", "t".repeat(129));
        let cases: &[(&str, &str, Option<usize>)] = &[
            ("", "empty value", None),
            ("peer:", "empty tag after ':'", Some(4)),
            (":tag", "empty repository name before ':'", Some(0)),
            (
                "peer:-x",
                "tag \"-x\" must start with a letter, digit or '_'",
                Some(5),
            ),
            (
                "Peer:1.0",
                "character 'P' at position 0 is not allowed: repository name must be lowercase",
                Some(0),
            ),
            (
                &digest_ref,
                "digests are not supported here ('@' at position 23)",
                Some(23),
            ),
            (&tagged_digest, "digests are not supported here", Some(8)),
            ("ns//peer:1", "empty path component", Some(3)),
            (
                "peer:1.0\n",
                "'\\n' at position 8 is whitespace or a control character",
                Some(8),
            ),
            (
                "peer:a:b",
                "character ':' at position 6 is not allowed in a tag",
                Some(6),
            ),
            (
                "[::1]:5000",
                "character '[' at position 0 is not allowed in a repository path",
                Some(0),
            ),
            (
                "localhost:50x0/ns/peer:1",
                "not allowed in a registry port",
                Some(12),
            ),
            ("pe..er:1", "separator \"..\"", Some(3)),
            ("peer/:1", "the name must not end with '/'", Some(4)),
            (
                &hex_tagged,
                "cannot be a 64-character hexadecimal string",
                Some(0),
            ),
            (
                &long_tag,
                "tag is 129 characters, at most 128 are allowed",
                Some(23 + 128),
            ),
        ];
        for &(value, fragment, position) in cases {
            let err = assert_err(
                "ImageRef::parse",
                value,
                ImageRef::parse(F, value),
                fragment,
                position,
            );
            assert_eq!(err.what, "image reference");
        }
    }

    #[test]
    fn hints() {
        type Check = fn(&str, &str) -> Result<(), ReferenceError>;
        fn parse(field: &str, value: &str) -> Result<(), ReferenceError> {
            ImageRef::parse(field, value).map(drop)
        }
        let cases: &[(Check, &str, Option<&str>)] = &[
            (validate_namespace, "Acme", Some("use \"acme\"")),
            (validate_namespace, "acme/Team", Some("use \"acme/team\"")),
            (validate_namespace, "Registry.Example.com/Team", Some("use \"Registry.Example.com/team\"")),
            (validate_namespace, "acme/", Some("use \"acme\"")),
            (validate_namespace, "/acme/", Some("use \"acme\"")),
            (validate_namespace, "/", None),
            (validate_namespace, "Acme/pe..er", None),
            (validate_repository, "Peer", Some("use \"peer\"")),
            (validate_repository, "LOCALHOST/Peer", Some("use \"localhost/peer\"")),
            (validate_repository, "localhost:5000/Ns/Peer", Some("use \"localhost:5000/ns/peer\"")),
            (parse, "Peer:Latest", Some("use \"peer:Latest\"")),
            (parse, "peer:", Some("remove the ':' or add a tag, e.g. \"peer:latest\"")),
            (parse, "peer@sha256:ab", Some("remove \"@sha256:ab\" and refer to the image by tag")),
            (validate_tag, "", Some("e.g. \"latest\" or \"amd64-1.4.12\"")),
            (validate_tag, "x\n", Some("remove it; look for a stray space or a trailing newline")),
            (validate_repository, "pe___er", Some("separators are '.', '_', '__' or one or more '-', between lowercase letters or digits")),
        ];
        for &(check, value, hint) in cases {
            let err = check(F, value).expect_err(value);
            assert_eq!(err.hint.as_deref(), hint, "{value:?}: {err}");
        }
    }

    #[test]
    fn error_display_names_field_value_and_problem() {
        let err = validate_namespace("DOCKER_NS", "Acme").unwrap_err();
        assert_eq!(
            err.to_string(),
            "DOCKER_NS=\"Acme\" is not a valid namespace: \
             character 'A' at position 0 is not allowed: repository name must be lowercase"
        );
        let err = validate_tag("DOCKER_TAG", "1.4\nRUN rm -rf /").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("DOCKER_TAG=\"1.4\\nRUN rm -rf /\" is not a valid tag: "),
            "{err}"
        );
    }

    #[test]
    fn image_ref_display() {
        let tagged = ImageRef {
            repository: "hyperledger/fabric-peer".into(),
            tag: Some("1.4.12".into()),
        };
        assert_eq!(tagged.to_string(), "hyperledger/fabric-peer:1.4.12");
        let untagged = ImageRef {
            repository: "localhost:5000/peer".into(),
            tag: None,
        };
        assert_eq!(untagged.to_string(), "localhost:5000/peer");
    }

    #[test]
    fn digests() {
        let hex = hex64();
        for valid in [
            format!("sha256:{hex}"),
            format!("sha512:{hex}{hex}"),
            format!("multihash+base58.v2:{}", &hex[..32]),
            format!("custom:{}", hex.to_ascii_uppercase()),
        ] {
            if let Err(e) = validate_digest(F, &valid) {
                panic!("digest {valid:?} rejected: {e}");
            }
        }
        let upper = format!("sha256:{}", hex.to_ascii_uppercase());
        let long = format!("sha256:{hex}0");
        let short = format!("sha256:{}", &hex[..63]);
        let cases: &[(String, &str, Option<usize>)] = &[
            (String::new(), "empty value", None),
            (hex.clone(), "missing ':'", None),
            (format!(":{hex}"), "empty digest algorithm", Some(0)),
            (
                format!("1sha:{hex}"),
                "character '1' at position 0",
                Some(0),
            ),
            (
                format!("sha+:{hex}"),
                "must not end with a separator",
                Some(3),
            ),
            (
                format!("sha+1:{hex}"),
                "character '1' at position 4",
                Some(4),
            ),
            (
                format!("sh/a:{hex}"),
                "character '/' at position 2",
                Some(2),
            ),
            ("sha256:".to_owned(), "empty hex digits", Some(6)),
            (
                format!("sha256:{}g", &hex[..63]),
                "'g' at position 70 is not a hexadecimal digit",
                Some(70),
            ),
            (
                short,
                "sha256 digest has 63 hex digits, exactly 64 are required",
                None,
            ),
            (long, "sha256 digest has 65 hex digits", None),
            (
                upper,
                "character 'A' at position 17 is upper case",
                Some(17),
            ),
            (
                format!("custom:{}", &hex[..31]),
                "digest has 31 hex digits, at least 32 are required",
                None,
            ),
            (
                format!("sha256:{hex}\n"),
                "whitespace or a control character",
                Some(71),
            ),
        ];
        for (value, fragment, position) in cases {
            let err = assert_err(
                "validate_digest",
                value,
                validate_digest(F, value),
                fragment,
                *position,
            );
            assert_eq!(err.what, "digest");
        }
    }

    // -----------------------------------------------------------------------
    // The case table: Docker's verdicts against oci-spec's and imgforge's.

    /// The question a row of the case table asks.
    #[derive(Debug, Clone, Copy)]
    enum Check {
        /// [`ImageRef::parse`]; Docker: `ParseNormalizedNamed`.
        Ref,
        /// [`validate_repository`]; Docker: `ParseNormalizedNamed`, neither tagged
        /// nor digested.
        Repo,
        /// [`validate_namespace`]; Docker: `ParseNormalizedNamed` of the value joined
        /// with `/fabric-peer`.
        Ns,
        /// [`validate_tag`]; Docker: `WithTag`.
        Tag,
        /// [`validate_digest`]; Docker: go-digest `Parse` with sha256, sha384 and
        /// sha512 registered.
        Digest,
    }
    use Check::*;

    fn imgforge_accepts(check: Check, value: &str) -> bool {
        match check {
            Ref => ImageRef::parse(F, value).is_ok(),
            Repo => validate_repository(F, value).is_ok(),
            Ns => validate_namespace(F, value).is_ok(),
            Tag => validate_tag(F, value).is_ok(),
            Digest => validate_digest(F, value).is_ok(),
        }
    }

    /// The same question put to oci-spec's `distribution::Reference` (which
    /// oci-client re-exports): a namespace is joined with `/fabric-peer`, a tag
    /// is parsed as `x:TAG` and a digest as `x@DIGEST`.
    fn oci_spec_accepts(check: Check, value: &str) -> bool {
        use oci_spec::distribution::Reference;
        let parse = |s: &str| s.parse::<Reference>().ok();
        match check {
            Ref => parse(value).is_some(),
            Repo => {
                // oci-spec fills in the tag "latest", so look for a tag or digest in the text.
                let last = &value[value.rfind('/').map_or(0, |i| i + 1)..];
                parse(value).is_some() && !last.contains(':') && !value.contains('@')
            }
            Ns => parse(&format!("{value}/fabric-peer")).is_some(),
            Tag => parse(&format!("x:{value}"))
                .is_some_and(|r| r.tag() == Some(value) && r.digest().is_none()),
            Digest => parse(&format!("x@{value}")).is_some_and(|r| r.digest() == Some(value)),
        }
    }

    /// Rows `(check, verdicts, input)`. The verdicts are three letters, `Y`
    /// accepted or `N` rejected, in the order Docker, oci-spec, imgforge. Docker's
    /// were recorded with distribution/reference at commit 0965666 (Go, outside
    /// this repository); oci-spec's and imgforge's are checked by `case_table`.
    /// A comment names the reason of each disagreement.
    ///
    /// Docker's rows are the inputs of its `reference_test.go` (TestReferenceParse,
    /// TestWithNameFailure), `normalize_test.go` (TestValidateReferenceName,
    /// TestValidateRemoteName) and `regexp_test.go` (the domain cases as
    /// namespaces, the name, reference and identifier cases as references).
    #[rustfmt::skip]
    const DOCKER_CASES: &[(Check, &str, &str)] = &[
        (Ref,    "YYY", "test_com"),
        (Ref,    "YYY", "test.com:tag"),
        (Ref,    "YYY", "test.com:5000"),
        (Ref,    "YYY", "test.com/repo:tag"),
        (Ref,    "YYY", "test:5000/repo"),
        (Ref,    "YYY", "test:5000/repo:tag"),
        (Ref,    "YYN", "test:5000/repo@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"), // digest refused by policy
        (Ref,    "YYN", "test:5000/repo:tag@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"), // digest refused by policy
        (Ref,    "NNN", ""),
        (Ref,    "NNN", ":justtag"),
        (Ref,    "NNN", "@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
        (Ref,    "NNN", "repo@sha256:ffffffffffffffffffffffffffffffffff"),
        (Ref,    "NNN", "validname@invaliddigest:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
        (Ref,    "YYN", "validname@sha512:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"), // digest refused by policy
        (Ref,    "NNN", "Uppercase:tag"),
        (Ref,    "YYN", "Uppercase/lowercase:tag"), // upper-case first component
        (Ref,    "NNN", "test:5000/Uppercase/lowercase:tag"),
        (Ref,    "YYY", "lowercase:Uppercase"),
        (Ref,    "NNN", "aa/asdf$$^/aa"),
        (Ref,    "YYY", "sub-dom1.foo.com/bar/baz/quux"),
        (Ref,    "YYY", "sub-dom1.foo.com/bar/baz/quux:some-long-tag"),
        (Ref,    "YYY", "b.gcr.io/test.example.com/my-app:test.example.com"),
        (Ref,    "YYY", "xn--n3h.com/myimage:xn--n3h.com"),
        (Ref,    "YYN", "xn--7o8h.com/myimage:xn--7o8h.com@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"), // digest refused by policy
        (Ref,    "YYY", "foo_bar.com:8080"),
        (Ref,    "YYY", "foo/foo_bar.com:8080"),
        (Ref,    "YYY", "192.168.1.1"),
        (Ref,    "YYY", "192.168.1.1:tag"),
        (Ref,    "YYY", "192.168.1.1:5000"),
        (Ref,    "YYY", "192.168.1.1/repo"),
        (Ref,    "YYY", "192.168.1.1:5000/repo"),
        (Ref,    "YYY", "192.168.1.1:5000/repo:5050"),
        (Ref,    "NNN", "[2001:db8::1]"),
        (Ref,    "NNN", "[2001:db8::1]:5000"),
        (Ref,    "NNN", "[2001:db8::1]:tag"),
        (Ref,    "YNY", "[2001:db8::1]/repo"), // IPv6 host
        (Ref,    "YNY", "[2001:db8:1:2:3:4:5:6]/repo:tag"), // IPv6 host
        (Ref,    "YNY", "[2001:db8::1]:5000/repo"), // IPv6 host
        (Ref,    "YNY", "[2001:db8::1]:5000/repo:tag"), // IPv6 host
        (Ref,    "YNN", "[2001:db8::1]:5000/repo@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"), // digest refused by policy; IPv6
        (Ref,    "YNN", "[2001:db8::1]:5000/repo:tag@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"), // digest refused by policy; IPv6
        (Ref,    "YNY", "[2001:db8::]:5000/repo"), // IPv6 host
        (Ref,    "YNY", "[::1]:5000/repo"), // IPv6 host
        (Ref,    "NNN", "[fe80::1%eth0]:5000/repo"),
        (Ref,    "NNN", "[fe80::1%@invalidzone]:5000/repo"),
        (Ref,    "YYY", "example.com/repo:tag"),
        (Ref,    "YYY", "docker/docker"),
        (Ref,    "YYY", "library/debian"),
        (Ref,    "YYY", "debian"),
        (Ref,    "YYY", "localhost/library/debian"),
        (Ref,    "YYY", "localhost/debian"),
        (Ref,    "YYN", "LOCALDOMAIN/library/debian"), // upper-case first component
        (Ref,    "YYN", "LOCALDOMAIN/debian"), // upper-case first component
        (Ref,    "YYY", "docker.io/docker/docker"),
        (Ref,    "YYY", "docker.io/library/debian"),
        (Ref,    "YYY", "docker.io/debian"),
        (Ref,    "YYY", "index.docker.io/docker/docker"),
        (Ref,    "YYY", "index.docker.io/library/debian"),
        (Ref,    "YYY", "index.docker.io/debian"),
        (Ref,    "YYY", "127.0.0.1:5000/docker/docker"),
        (Ref,    "YYY", "127.0.0.1:5000/library/debian"),
        (Ref,    "YYY", "127.0.0.1:5000/debian"),
        (Ref,    "YYY", "192.168.0.1"),
        (Ref,    "YYY", "192.168.0.1:80"),
        (Ref,    "YYY", "192.168.0.1:8/debian"),
        (Ref,    "YYY", "192.168.0.2:25000/debian"),
        (Ref,    "YYY", "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev"),
        (Ref,    "YNY", "[fc00::1]:5000/docker"), // IPv6 host
        (Ref,    "YNY", "[fc00::1]:5000/docker/docker"), // IPv6 host
        (Ref,    "YNY", "[fc00:1:2:3:4:5:6:7]:5000/library/debian"), // IPv6 host
        (Ref,    "YYY", "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"),
        (Ref,    "YYN", "Docker/docker"), // upper-case first component
        (Ref,    "YYN", "DOCKER/docker"), // upper-case first component
        (Ref,    "NNN", "https://github.com/docker/docker"),
        (Ref,    "NNN", "docker/Docker"),
        (Ref,    "NNN", "-docker"),
        (Ref,    "NNN", "-docker/docker"),
        (Ref,    "NNN", "-docker.io/docker/docker"),
        (Ref,    "NNN", "docker///docker"),
        (Ref,    "NNN", "docker.io/docker/Docker"),
        (Ref,    "NNN", "docker.io/docker///docker"),
        (Ref,    "NNN", "[fc00::1]"),
        (Ref,    "NNN", "[fc00::1]:5000"),
        (Ref,    "NNN", "fc00::1:5000/debian"),
        (Ref,    "NNN", "[fe80::1%eth0]:5000/debian"),
        (Ref,    "NNN", "[2001:db8:3:4::192.0.2.33]:5000/debian"),
        (Ref,    "NYN", "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"), // 64-hex name
        (Ref,    "YYY", "docker-rules/docker"),
        (Ref,    "YYY", "docker---rules/docker"),
        (Ref,    "YYY", "doc/docker"),
        (Ref,    "YYY", "d/docker"),
        (Ref,    "YYY", "jess/t"),
        (Ref,    "YYY", "dock__er/docker"),
        (Ref,    "NNN", "docker-/docker"),
        (Ref,    "NNN", "-docker-/docker"),
        (Ref,    "NNN", "____/____"),
        (Ref,    "NNN", "_docker/_docker"),
        (Ref,    "NNN", "dock..er/docker"),
        (Ref,    "NNN", "dock_.er/docker"),
        (Ref,    "NNN", "dock-.er/docker"),
        (Ref,    "NNN", "docker/"),
        (Ref,    "NNN", "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker"),
        (Ns,     "YYY", "test.com"),
        (Ns,     "YYY", "test.com:10304"),
        (Ns,     "NNN", "test.com:http"),
        (Ns,     "YYY", "localhost"),
        (Ns,     "YYY", "localhost:8080"),
        (Ns,     "YYY", "a"),
        (Ns,     "YYY", "a.b"),
        (Ns,     "YYY", "ab.cd.com"),
        (Ns,     "YYY", "a-b.com"),
        (Ns,     "NNN", "-ab.com"),
        (Ns,     "NNN", "ab-.com"),
        (Ns,     "YYY", "ab.c-om"),
        (Ns,     "NNN", "ab.-com"),
        (Ns,     "NNN", "ab.com-"),
        (Ns,     "YYY", "0101.com"),
        (Ns,     "YYY", "001a.com"),
        (Ns,     "YYY", "b.gbc.io:443"),
        (Ns,     "YYY", "b.gbc.io"),
        (Ns,     "YYY", "xn--n3h.com"),
        (Ns,     "YYY", "Asdf.com"),
        (Ns,     "YYY", "192.168.1.1:75050"),
        (Ns,     "YYY", "192.168.1.1:750050"),
        (Ns,     "YNY", "[fd00:1:2::3]:75050"), // IPv6 host
        (Ns,     "NNN", "[fd00:1:2::3]75050"),
        (Ns,     "NNN", "[fd00:1:2::3]::75050"),
        (Ns,     "NNN", "[fd00:1:2::3%eth0]:75050"),
        (Ns,     "YNY", "[fd00123123123]:75050"), // IPv6 host
        (Ns,     "YNY", "[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:75050"), // IPv6 host
        (Ns,     "YNY", "[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:750505"), // IPv6 host
        (Ns,     "NNN", "fd00:1:2::3:75050"),
        (Ref,    "YYY", "short"),
        (Ref,    "YYY", "simple/name"),
        (Ref,    "YYY", "library/ubuntu"),
        (Ref,    "YYY", "docker/stevvooe/app"),
        (Ref,    "YYY", "aa/aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb"),
        (Ref,    "YYY", "aa/aa/bb/bb/bb"),
        (Ref,    "YYY", "a/a/a/a"),
        (Ref,    "NNN", "a/a/a/a/"),
        (Ref,    "NNN", "a//a/a"),
        (Ref,    "YYY", "a"),
        (Ref,    "YYY", "a/aa"),
        (Ref,    "YYY", "a/aa/a"),
        (Ref,    "YYY", "foo.com"),
        (Ref,    "NNN", "foo.com/"),
        (Ref,    "YYY", "foo.com:8080/bar"),
        (Ref,    "NNN", "foo.com:http/bar"),
        (Ref,    "YYY", "foo.com/bar"),
        (Ref,    "YYY", "foo.com/bar/baz"),
        (Ref,    "YYY", "localhost:8080/bar"),
        (Ref,    "YYY", "blog.foo.com/bar/baz"),
        (Ref,    "NNN", "a^a"),
        (Ref,    "NNN", "asdf$$^/aa"),
        (Ref,    "YYY", "aa-a/a"),
        (Ref,    "NNN", "a-/a/a/a"),
        (Ref,    "NNN", "foo.com/a-/a/a"),
        (Ref,    "NNN", "-foo/bar"),
        (Ref,    "NNN", "foo/bar-"),
        (Ref,    "NNN", "foo-/bar"),
        (Ref,    "NNN", "foo/-bar"),
        (Ref,    "NNN", "_foo/bar"),
        (Ref,    "YYY", "foo_bar"),
        (Ref,    "YYY", "foo_bar.com"),
        (Ref,    "NNN", "foo_bar.com:8080/app"),
        (Ref,    "YYY", "foo.com/foo_bar"),
        (Ref,    "NNN", "docker_/docker_"),
        (Ref,    "YYY", "b.gcr.io/test.example.com/my-app"),
        (Ref,    "YYY", "xn--n3h.com/myimage"),
        (Ref,    "YYY", "xn--7o8h.com/myimage"),
        (Ref,    "YYY", "example.com/xn--7o8h.com/myimage"),
        (Ref,    "YYY", "example.com/some_separator__underscore/myimage"),
        (Ref,    "NNN", "example.com/__underscore/myimage"),
        (Ref,    "NNN", "example.com/..dots/myimage"),
        (Ref,    "NNN", "example.com/.dots/myimage"),
        (Ref,    "NNN", "example.com/nodouble..dots/myimage"),
        (Ref,    "NNN", "docker./docker"),
        (Ref,    "NNN", ".docker/docker"),
        (Ref,    "NNN", "do..cker/docker"),
        (Ref,    "NNN", "do__cker:8080/docker"),
        (Ref,    "YYY", "do__cker/docker"),
        (Ref,    "YYY", "registry.io/foo/project--id.module--name.ver---sion--name"),
        (Ref,    "YYY", "Asdf.com/foo/bar"),
        (Ref,    "NNN", "Foo/FarB"),
        (Ref,    "YYY", "registry.com:8080/myapp:tag"),
        (Ref,    "YYN", "registry.com:8080/myapp@sha256:be178c0543eb17f5f3043021c9e5fcf30285e557a4fc309cce97ff9ca6182912"), // digest refused by policy
        (Ref,    "YYN", "registry.com:8080/myapp:tag2@sha256:be178c0543eb17f5f3043021c9e5fcf30285e557a4fc309cce97ff9ca6182912"), // digest refused by policy
        (Ref,    "NNN", "registry.com:8080/myapp@sha256:badbadbadbad"),
        (Ref,    "NNN", "registry.com:8080/myapp:invalid~tag"),
        (Ref,    "NNN", "bad_hostname.com:8080/myapp:tag"),
        (Ref,    "YYN", "localhost:8080/name@sha256:be178c0543eb17f5f3043021c9e5fcf30285e557a4fc309cce97ff9ca6182912"), // digest refused by policy
        (Ref,    "NNN", "localhost:http/name@sha256:be178c0543eb17f5f3043021c9e5fcf30285e557a4fc309cce97ff9ca6182912"),
        (Ref,    "YYN", "localhost@sha256:be178c0543eb17f5f3043021c9e5fcf30285e557a4fc309cce97ff9ca6182912"), // digest refused by policy
        (Ref,    "NNN", "registry.com:8080/myapp@bad"),
        (Ref,    "NNN", "registry.com:8080/myapp@2bad"),
        (Ref,    "NYN", "da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf9821"), // 64-hex name
        (Ref,    "NNN", "7EC43B381E5AEFE6E04EFB0B3F0693FF2A4A50652D64AEC573905F2DB5889A1C"),
        (Ref,    "YYY", "da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf"),
        (Ref,    "YYY", "sha256:da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf9821"),
        (Ref,    "YYY", "da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf98218482"),
    ];

    /// imgforge's own rows, in the same shape as [`DOCKER_CASES`].
    #[rustfmt::skip]
    const IMGFORGE_CASES: &[(Check, &str, &str)] = &[
        (Repo,   "YYY", "hyperledger/fabric-peer"),
        (Repo,   "YYY", "fabric-peer"),
        (Repo,   "YYY", "localhost"),
        (Repo,   "YYY", "test.com"),
        (Repo,   "YYY", "localhost/fabric-peer"),
        (Repo,   "YYY", "localhost:5000/ns/peer"),
        (Repo,   "YNY", "[::1]:5000/ns/peer"), // IPv6 host
        (Repo,   "YYY", "test.com/peer"),
        (Repo,   "YYY", "pe__er"),
        (Repo,   "YYY", "pe--er"),
        (Repo,   "YYY", "pe---er"),
        (Repo,   "YYY", "pe.er"),
        (Repo,   "YYY", "pe_er"),
        (Repo,   "YYY", "a.b_c__d-e--f"),
        (Repo,   "YYY", "0/1/2"),
        (Repo,   "YYY", "Localhost.Example:5000/p"),
        (Tag,    "YYY", "latest"),
        (Tag,    "YYY", "amd64-1.4.12-snapshot-56c2b126e"),
        (Tag,    "YYY", "_x"),
        (Tag,    "YYY", "1.4"),
        (Tag,    "YYY", "a.b-c_D"),
        (Tag,    "YYY", "5000"),
        (Ref,    "YYN", "UPPER/x"), // upper-case first component
        (Ref,    "YYN", "Acme/peer"), // upper-case first component
        (Ref,    "NYN", "peer:\u{e9}"), // non-ASCII tag
        (Tag,    "NYN", "\u{e9}"), // non-ASCII tag
        (Ref,    "YYN", "ex_ample.com/x"), // '_' in a would-be host
        (Ns,     "YYN", "Acme"), // upper-case first component
        (Ns,     "YYN", "foo_bar.com"), // '_' in a would-be host
        (Ns,     "YYN", "a.b_c__d-e--f"), // '_' in a would-be host
        (Ns,     "YYY", "Registry.Example.COM/team"),
        (Ns,     "YNY", "[::1]:5000"), // IPv6 host
        (Ns,     "YNY", "[fe80::1]/ns"), // IPv6 host
        (Ns,     "NNN", "[::1"),
        (Ns,     "NNN", "pe..er"),
        (Ns,     "NNN", "acme/"),
        (Ns,     "NNN", "/acme"),
        (Ref,    "NNN", "[::1]:5000"),
        (Ref,    "YNY", "[::1]:5000/ns/peer:1.0"), // IPv6 host
        (Ref,    "NNN", "peer:1.0\n"),
        (Ref,    "NNN", "pe er"),
        (Ref,    "NNN", "peer:"),
        (Ref,    "NNN", "peer:a:b"),
        (Ref,    "NNN", "Peer:Latest"),
        (Repo,   "NNN", "peer:1.0"),
        (Tag,    "NNN", "1.0\n"),
        (Tag,    "NNN", "-x"),
        (Tag,    "NNN", "v+1"),
    ];

    /// Rows with long or computed inputs, in the same shape.
    #[rustfmt::skip]
    fn computed_cases() -> Vec<(Check, &'static str, String)> {
        vec![
            (Ref,    "NNN", format!("domain/{}:tag", "a".repeat(256))),
            (Ref,    "YYY", format!("{}a:tag-puts-this-over-max", "a/".repeat(127))),
            (Ref,    "YYY", format!("example.com/{}:tag", "a".repeat(255))),
            (Ref,    "NNN", format!("example.com/{}", "a".repeat(256))),
            (Ref,    "NNN", format!("{}a", "a/".repeat(128))),
            (Repo,   "YYY", format!("ns/{}", hex64())),
            (Repo,   "YYY", hex64()[..63].to_owned()),
            (Repo,   "NYN", hex64()), // 64-hex name
            (Repo,   "NNN", hex64().to_ascii_uppercase()),
            (Ref,    "YYN", format!("{}:latest", hex64())), // 64-hex name
            (Repo,   "YYY", "a".repeat(247)),
            (Repo,   "NNN", "a".repeat(248)),
            (Repo,   "NNN", format!("docker.io/{}", "a".repeat(248))),
            (Repo,   "YYY", format!("localhost/{}", "a".repeat(248))),
            (Ns,     "NNY", "a".repeat(248)), // namespace checked alone
            (Tag,    "YYY", "A".repeat(128)),
            (Tag,    "NNN", "a".repeat(129)),
            (Digest, "YYY", format!("sha256:{}", hex64())),
            (Digest, "NYN", format!("sha256:{}", hex64().to_ascii_uppercase())), // upper-case sha256 hex
            (Digest, "NNN", format!("sha256:{}", &hex64()[..63])),
            (Digest, "NNN", format!("sha256:{}0", hex64())),
            (Digest, "YYY", format!("sha384:{}{}", hex64(), &hex64()[..32])),
            (Digest, "YYY", format!("sha512:{}{}", hex64(), hex64())),
            (Digest, "NNY", format!("custom:{}", &hex64()[..32])), // algorithm: grammar only
            (Digest, "NNN", format!("custom:{}", &hex64()[..31])),
            (Digest, "NNY", format!("multihash+base58.v2:{}", &hex64()[..32])), // algorithm: grammar only
            (Digest, "NNY", format!("SHA256:{}", hex64())), // algorithm: grammar only
            (Digest, "NNN", format!("1sha:{}", hex64())),
            (Digest, "NNN", hex64()),
            (Ref,    "YYN", format!("peer@sha256:{}", hex64())), // digest refused by policy
        ]
    }

    /// Every row of the case table gets the verdicts it records from oci-spec and
    /// from imgforge, and imgforge never accepts a name or tag that Docker
    /// rejects. When an oci-spec upgrade changes a verdict this fails and names
    /// the row.
    #[test]
    fn case_table() {
        let rows = DOCKER_CASES
            .iter()
            .chain(IMGFORGE_CASES)
            .map(|&(check, verdicts, value)| (check, verdicts, value.to_owned()))
            .chain(computed_cases());
        let mut wrong = Vec::new();
        for (check, verdicts, value) in rows {
            let expected: Vec<bool> = verdicts.chars().map(|c| c == 'Y').collect();
            let [docker, oci, ours] = expected[..] else {
                panic!("{value:?}: bad verdicts {verdicts:?}");
            };
            let got = (
                oci_spec_accepts(check, &value),
                imgforge_accepts(check, &value),
            );
            if got != (oci, ours) {
                wrong.push(format!(
                    "{check:?} {value:?}: expected oci-spec {oci}, imgforge {ours}; got {got:?}"
                ));
            }
            // Stricter than Docker, never looser: a namespace is checked alone (not
            // joined with an image name), and a digest's algorithm by grammar only.
            if ours && !docker && matches!(check, Ref | Repo | Tag) {
                wrong.push(format!(
                    "{check:?} {value:?}: accepted, but Docker rejects it"
                ));
            }
        }
        assert!(wrong.is_empty(), "case table:\n{}", wrong.join("\n"));
    }
}
