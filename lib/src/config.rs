//! Build variables, resolved once, with Make's names and meanings.
//!
//! Every variable that Fabric's `Makefile` and `docker-env.mk` feed into image builds is resolved
//! here, in this order of precedence (first wins):
//!
//! | origin     | example                                                  |
//! |------------|----------------------------------------------------------|
//! | `flag`     | `--docker-ns acme` or `DOCKER_NS=acme` on the command line |
//! | `env`      | `DOCKER_NS=acme imgforge peer`                           |
//! | `makefile` | `BASE_VERSION = 1.4.12` in the source tree's `Makefile`  |
//! | `git`      | `EXTRA_VERSION` = `git rev-parse --short HEAD` of the tree |
//! | `derived`  | `DOCKER_TAG` = `$(ARCH)-$(PROJECT_VERSION)`              |
//! | `default`  | `DOCKER_NS` = `hyperledger`                              |
//!
//! Values and derivations follow Fabric release-1.4 (`Makefile`, `docker-env.mk`); see
//! `shared/spec/fabric-flow.md` §1. Namespaces and tags are validated against Docker's image
//! reference grammar before anything runs ([`crate::reference`]).

use crate::reference::{validate_namespace, validate_tag, ReferenceError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where a resolved value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A command-line flag or `NAME=VALUE` argument.
    Flag,
    /// The environment variable of the same name.
    Env,
    /// An assignment in the source tree's `Makefile` (or `docker-env.mk`).
    Makefile,
    /// The source tree's git repository.
    Git,
    /// Computed from other variables, as the Makefile computes it.
    Derived,
    /// imgforge's default (Fabric's default where it has one).
    Default,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Origin::Flag => "flag",
            Origin::Env => "env",
            Origin::Makefile => "Makefile",
            Origin::Git => "git",
            Origin::Derived => "derived",
            Origin::Default => "default",
        };
        f.write_str(s)
    }
}

impl Origin {
    /// Where the value was set, in words for error messages ("set on the command line").
    pub fn describe(&self) -> &'static str {
        match self {
            Origin::Flag => "set on the command line",
            Origin::Env => "set in the environment",
            Origin::Makefile => "read from the tree's Makefile",
            Origin::Git => "read from the tree's git repository",
            Origin::Derived => "derived from other variables",
            Origin::Default => "imgforge's default",
        }
    }
}

/// One resolved variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Var {
    /// The value, exactly as used.
    pub value: String,
    /// Where it came from.
    pub origin: Origin,
}

/// Every variable name imgforge understands, in the order `imgforge config` prints them.
pub const VAR_NAMES: &[&str] = &[
    "BASE_VERSION",
    "FABRIC_VER",
    "PREV_VERSION",
    "BASEIMAGE_RELEASE",
    "EXTRA_VERSION",
    "PROJECT_VERSION",
    "TWO_DIGIT_VERSION",
    "ARCH",
    "DOCKER_NS",
    "BASE_DOCKER_NS",
    "DOCKER_TAG",
    "BASE_DOCKER_TAG",
    "BASE_DOCKER_LABEL",
    "GO_TAGS",
    "DOCKER_DYNAMIC_LINK",
    "BUILD_DIR",
    "CHAINTOOL_URL",
];

/// Fabric's Go import path root, `PKGNAME` in the Makefile.
pub const PKGNAME: &str = "github.com/hyperledger/fabric";

/// What the caller knows before resolution: explicit settings and the environment.
#[derive(Debug, Clone, Default)]
pub struct VarInputs {
    /// Values given on the command line (flags or `NAME=VALUE`), by Make variable name.
    pub flags: BTreeMap<String, String>,
    /// The process environment (or a test's stand-in), by name. Only names in
    /// [`VAR_NAMES`] are read.
    pub env: BTreeMap<String, String>,
}

impl VarInputs {
    /// Inputs with the given flags and the real process environment.
    pub fn from_process_env(flags: BTreeMap<String, String>) -> Self {
        let env = std::env::vars()
            .filter(|(k, _)| VAR_NAMES.contains(&k.as_str()))
            .collect();
        VarInputs { flags, env }
    }
}

/// Errors found while resolving variables. Each names the variable, the value and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A name given with `NAME=VALUE` or a flag is not one imgforge knows.
    #[error("unknown variable {name}: expected one of {}", VAR_NAMES.join(", "))]
    UnknownVariable {
        /// The name given.
        name: String,
    },
    /// A namespace or tag is not valid in a Docker image reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A value that must be a plain token holds characters that would break a Dockerfile or
    /// the compiler command line.
    #[error("{name}={value:?} is not valid: {problem}")]
    Invalid {
        /// Variable name.
        name: String,
        /// The offending value.
        value: String,
        /// What is wrong and what is expected.
        problem: String,
    },
    /// A variable the user set (or the tree gave) makes a derived tag invalid, e.g.
    /// `EXTRA_VERSION="a+b"` in `DOCKER_TAG` = `$(ARCH)-$(BASE_VERSION)-snapshot-$(EXTRA_VERSION)`.
    #[error("{input}={value:?} ({}) makes {derived} invalid: {source}", origin.describe())]
    Derived {
        /// The input variable that holds the offending part.
        input: String,
        /// Its value.
        value: String,
        /// Where that value came from.
        origin: Origin,
        /// The derived variable (`DOCKER_TAG`, `BASE_DOCKER_TAG`).
        derived: String,
        /// What is wrong with the derived value.
        #[source]
        source: ReferenceError,
    },
    /// The source directory does not exist or is not a directory.
    #[error("source tree {path} does not exist or is not a directory: pass --source DIR pointing at a Fabric checkout")]
    NoSource {
        /// The path given.
        path: PathBuf,
    },
}

/// The names read from a [`BuildVars::traced`] copy.
#[derive(Debug, Clone)]
pub struct VarReads(std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>);

impl VarReads {
    /// The names read so far, sorted.
    pub fn names(&self) -> Vec<String> {
        self.0.lock().expect("lock").iter().cloned().collect()
    }
}

/// The resolved variables, by Make name, each with its origin.
#[derive(Debug, Clone, Serialize)]
pub struct BuildVars {
    vars: BTreeMap<String, Var>,
    /// The source tree these were resolved for, if any.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// Names read through [`BuildVars::get`], when this is a [`BuildVars::traced`] copy.
    #[serde(skip)]
    reads: Option<std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>>,
}

impl BuildVars {
    /// Value of `name`. Panics if `name` is not in [`VAR_NAMES`]: every name there is always set.
    pub fn get(&self, name: &str) -> &str {
        if let Some(reads) = &self.reads {
            reads.lock().expect("lock").insert(name.to_string());
        }
        &self
            .vars
            .get(name)
            .unwrap_or_else(|| panic!("variable {name} is not resolved"))
            .value
    }

    /// A copy that records every name read through [`BuildVars::get`], and the record.
    ///
    /// A step builds its command from traced variables to declare exactly the variables the
    /// command depends on as fingerprint inputs ([`crate::steps::Input::Var`]): one function
    /// makes both, so they cannot drift apart.
    pub fn traced(&self) -> (BuildVars, VarReads) {
        let reads = std::sync::Arc::new(std::sync::Mutex::new(Default::default()));
        let mut copy = self.clone();
        copy.reads = Some(reads.clone());
        (copy, VarReads(reads))
    }

    /// Value and origin of `name`, if it is a known variable.
    pub fn var(&self, name: &str) -> Option<&Var> {
        self.vars.get(name)
    }

    /// One-line notices for facts the tree did not give and a default replaced: a tree whose
    /// `Makefile` has no `BASE_VERSION` (imgforge's default is used), a tree without git
    /// (`EXTRA_VERSION` and with it the binaries' `CommitSHA` are empty). Empty when no
    /// source tree was given or the user set the variable.
    pub fn notices(&self) -> Vec<String> {
        let (Some(src), Some(base), Some(extra)) = (
            self.source.as_ref(),
            self.var("BASE_VERSION"),
            self.var("EXTRA_VERSION"),
        ) else {
            return Vec::new();
        };
        let mut notes = Vec::new();
        // a 2.x/3.x tree has no BASE_VERSION by design (builds stop on it with their own error)
        if base.origin == Origin::Default && fabric_line(src) == FabricLine::V1 {
            notes.push(format!(
                "{} sets no BASE_VERSION: using imgforge's default {} (set BASE_VERSION=… to choose)",
                src.join("Makefile").display(),
                base.value
            ));
        }
        if extra.origin == Origin::Default {
            notes.push(format!(
                "no git commit found for {} (not a git work tree, or git is not installed): EXTRA_VERSION and the binaries' CommitSHA are empty and tags have no -snapshot- part (set EXTRA_VERSION=… to choose)",
                src.display()
            ));
        }
        notes
    }

    /// All variables in [`VAR_NAMES`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Var)> {
        VAR_NAMES.iter().map(move |n| (*n, &self.vars[*n]))
    }

    /// The same variables with the user information of any URL in a value masked
    /// ([`crate::redact::redact`]), for showing them (`imgforge config`).
    pub fn redacted(&self) -> BuildVars {
        let mut out = self.clone();
        for v in out.vars.values_mut() {
            v.value = crate::redact::redact(&v.value);
        }
        out
    }

    /// `DOCKER_DYNAMIC_LINK` as a boolean (`true` unless the value is `false`).
    pub fn dynamic_link(&self) -> bool {
        self.get("DOCKER_DYNAMIC_LINK") != "false"
    }

    /// The build directory, absolute: `BUILD_DIR` joined to the source tree.
    pub fn build_dir(&self) -> PathBuf {
        let b = Path::new(self.get("BUILD_DIR"));
        match &self.source {
            Some(src) if b.is_relative() => src.join(b),
            _ => b.to_path_buf(),
        }
    }

    /// Go linker flags `-X $(PKGNAME)/common/metadata.*`, exactly as Fabric release-1.4's
    /// `GO_LDFLAGS` (`METADATA_VAR`: Version, CommitSHA, BaseVersion, BaseDockerLabel,
    /// DockerNamespace, BaseDockerNamespace, in that order), followed by the static-link
    /// flags of `docker-env.mk` when `DOCKER_DYNAMIC_LINK=false`.
    pub fn docker_go_ldflags(&self) -> String {
        let mut flags = self.go_ldflags();
        if !self.dynamic_link() {
            flags.push_str(" -linkmode external -extldflags '-static -lpthread'");
        }
        flags
    }

    /// `GO_LDFLAGS` of Fabric release-1.4's Makefile: the metadata `-X` flags only, as the
    /// native `make peer` path uses them.
    pub fn go_ldflags(&self) -> String {
        let meta = [
            ("Version", "BASE_VERSION"),
            ("CommitSHA", "EXTRA_VERSION"),
            ("BaseVersion", "BASEIMAGE_RELEASE"),
            ("BaseDockerLabel", "BASE_DOCKER_LABEL"),
            ("DockerNamespace", "DOCKER_NS"),
            ("BaseDockerNamespace", "BASE_DOCKER_NS"),
        ];
        meta.iter()
            .map(|(sym, var)| format!("-X {PKGNAME}/common/metadata.{sym}={}", self.get(var)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Reference of a Fabric image repository: `$(DOCKER_NS)/fabric-<name>`.
    pub fn repository(&self, name: &str) -> String {
        format!("{}/fabric-{name}", self.get("DOCKER_NS"))
    }

    /// Reference of a base image: `$(BASE_DOCKER_NS)/fabric-<name>:$(BASE_DOCKER_TAG)`.
    pub fn base_image(&self, name: &str) -> String {
        format!(
            "{}/fabric-{name}:{}",
            self.get("BASE_DOCKER_NS"),
            self.get("BASE_DOCKER_TAG")
        )
    }
}

/// Go architecture names (`GOARCH`) that `ARCH` may take.
pub const GO_ARCHES: &[&str] = &[
    "amd64", "arm64", "s390x", "ppc64le", "386", "arm", "riscv64", "mips64le", "loong64",
];

/// Map a machine name (`uname -m`) to Go's GOARCH naming, as Fabric ≥1.3 does with
/// `go env GOARCH`.
pub fn go_arch(machine: &str) -> &str {
    match machine {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64le" => "ppc64le",
        "i686" | "i386" => "386",
        other => other,
    }
}

/// Read simple assignments (`NAME = value`, `NAME ?= value`, `NAME := value`) from a Makefile.
/// Values that reference other variables (`$(…)`) are skipped: imgforge derives those itself.
/// Returns an empty map when the file does not exist.
pub fn read_makefile_vars(path: &Path) -> std::io::Result<BTreeMap<String, String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with(['\t', '#', ' ']) {
            continue;
        }
        let Some(eq) = line.find('=') else { continue };
        let (lhs, rhs) = line.split_at(eq);
        let name = lhs.trim_end_matches(['?', ':', '+']).trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            || lhs.ends_with('+')
        {
            continue;
        }
        let value = rhs[1..].trim();
        if value.contains("$(") || value.contains("${") {
            continue;
        }
        out.entry(name.to_string())
            .or_insert_with(|| value.to_string());
    }
    Ok(out)
}

/// Which line of Fabric a source tree belongs to: imgforge builds 1.x trees; 2.x and 3.x trees
/// build their images differently (`images/*/Dockerfile`, Go modules, `FABRIC_VER`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "line", rename_all = "snake_case")]
pub enum FabricLine {
    /// Fabric 1.x: the Makefile sets `BASE_VERSION`; GOPATH builds, `images/*/Dockerfile.in`.
    V1,
    /// Fabric 2.x or 3.x: the Makefile sets `FABRIC_VER` (and no `BASE_VERSION`), or a
    /// `go.mod` declares module `github.com/hyperledger/fabric`.
    V2 {
        /// `FABRIC_VER` of the Makefile, if it has one.
        fabric_ver: Option<String>,
        /// The Go version `go.mod` asks for (`go 1.24.2`), if any.
        go: Option<String>,
    },
}

impl std::fmt::Display for FabricLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FabricLine::V1 => write!(f, "1.x"),
            FabricLine::V2 { fabric_ver, go } => {
                let major = fabric_ver
                    .as_deref()
                    .and_then(|v| v.trim_start_matches('v').split('.').next())
                    .unwrap_or("2");
                let facts: Vec<String> = fabric_ver
                    .iter()
                    .map(|v| format!("FABRIC_VER {v}"))
                    .chain(go.iter().map(|g| format!("go.mod: go {g}")))
                    .collect();
                if facts.is_empty() {
                    write!(f, "{major}.x")
                } else {
                    write!(f, "{major}.x ({})", facts.join(", "))
                }
            }
        }
    }
}

/// The line of the tree at `src` (see [`FabricLine`]): read from its Makefile and `go.mod`.
pub fn fabric_line(src: &Path) -> FabricLine {
    let make = read_makefile_vars(&src.join("Makefile")).unwrap_or_default();
    let gomod = std::fs::read_to_string(src.join("go.mod")).unwrap_or_default();
    let module = gomod
        .lines()
        .any(|l| l.trim() == "module github.com/hyperledger/fabric");
    let go = gomod
        .lines()
        .find_map(|l| l.trim().strip_prefix("go ").map(|v| v.trim().to_string()));
    let fabric_ver = make.get("FABRIC_VER").cloned();
    if !make.contains_key("BASE_VERSION") && (fabric_ver.is_some() || module) {
        FabricLine::V2 { fabric_ver, go }
    } else {
        FabricLine::V1
    }
}

/// `git rev-parse --short HEAD` in `dir`, or `None` when `dir` is not in a git work tree or git
/// is not installed.
pub fn git_short_head(dir: &Path) -> Option<String> {
    git(dir, &["rev-parse", "--short", "HEAD"])
}

/// Commit time of HEAD in seconds since the epoch (`git log -1 --format=%ct`), used as the
/// default archive mtime when `SOURCE_DATE_EPOCH` is not set.
pub fn git_commit_time(dir: &Path) -> Option<u64> {
    git(dir, &["log", "-1", "--format=%ct"]).and_then(|s| s.parse().ok())
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// `TWO_DIGIT_VERSION` of a version: a leading `v` dropped, the first two dot-separated parts
/// (Fabric 2.x Makefile: `sed -e 's/^v\(.*\)/\1/' | cut -d '.' -f 1,2`).
pub fn two_digit_of(version: &str) -> String {
    let v = version.strip_prefix('v').unwrap_or(version);
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// Label of a 2.x build image holding the version of its Go (`1.24.4`), read from the root
/// filesystem when the factory made it (`labels_from_files` of `payload-specs/v2/baseimage.toml`).
pub const LABEL_GO_VERSION: &str = "org.imgforge.go.version";

/// The Go version in a `go version` output or a Go `VERSION` file (`go1.24.4`, `go version
/// go1.24.4 linux/amd64`): `1.24.4`.
pub fn parse_go_version(text: &str) -> Option<String> {
    text.split_whitespace()
        .find_map(|w| {
            w.strip_prefix("go")
                .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        })
        .map(str::to_string)
}

/// Whether Go `have` (`1.24.4`) satisfies a go.mod `go` line `need` (`1.24.2`, `1.26`):
/// numeric comparison part by part, missing parts are 0; a pre-release suffix (`1.25rc1`)
/// counts as its numeric prefix.
pub fn go_satisfies(have: &str, need: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> {
        v.split('.')
            .map(|p| {
                let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
                digits.parse().unwrap_or(0)
            })
            .collect()
    };
    let (h, n) = (parts(have), parts(need));
    for i in 0..h.len().max(n.len()) {
        let (a, b) = (
            h.get(i).copied().unwrap_or(0),
            n.get(i).copied().unwrap_or(0),
        );
        if a != b {
            return a > b;
        }
    }
    true
}

/// `(major, minor)` of a version such as `1.4.12` (missing parts are 0).
pub fn two_digit(version: &str) -> (u32, u32) {
    let mut parts = version.split(['.', '-']).map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Default of `DOCKER_DYNAMIC_LINK` by Fabric version: `true` from v1.4.4 (FAB-15026),
/// `false` before (1.3, v1.4.0–v1.4.3; 1.0 always links statically).
pub fn default_dynamic_link(base_version: &str) -> bool {
    let parts: Vec<u32> = base_version
        .split(['.', '-'])
        .take(3)
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    let v = (
        parts.first().copied().unwrap_or(0),
        parts.get(1).copied().unwrap_or(0),
        parts.get(2).copied().unwrap_or(0),
    );
    v >= (1, 4, 4)
}

struct Resolver<'a> {
    inputs: &'a VarInputs,
    makefile: BTreeMap<String, String>,
    vars: BTreeMap<String, Var>,
}

impl Resolver<'_> {
    /// Take `name` from flag, env, Makefile, else `fallback` (value and origin).
    fn set(&mut self, name: &str, fallback: impl FnOnce(&Self) -> (String, Origin)) {
        let v = if let Some(v) = self.inputs.flags.get(name) {
            Var {
                value: v.clone(),
                origin: Origin::Flag,
            }
        } else if let Some(v) = self.inputs.env.get(name) {
            Var {
                value: v.clone(),
                origin: Origin::Env,
            }
        } else if let Some(v) = self.makefile.get(name) {
            Var {
                value: v.clone(),
                origin: Origin::Makefile,
            }
        } else {
            let (value, origin) = fallback(self);
            Var { value, origin }
        };
        self.vars.insert(name.to_string(), v);
    }

    fn get(&self, name: &str) -> &str {
        &self.vars[name].value
    }
}

/// Resolve every variable in [`VAR_NAMES`] for the source tree `source` (may be `None` for the
/// base-image factory, which needs no tree), then validate them.
///
/// Blocking: reads the tree's `Makefile` and runs `git rev-parse` (a few milliseconds); from
/// async code call it before the build starts or through `tokio::task::spawn_blocking`.
///
/// Errors: [`ConfigError::UnknownVariable`] for a flag name that is not a Make variable,
/// [`ConfigError::Reference`] for an invalid namespace or tag, [`ConfigError::Invalid`] for
/// values with whitespace or quotes where the Dockerfile or compiler command would break.
pub fn resolve(source: Option<&Path>, inputs: &VarInputs) -> Result<BuildVars, ConfigError> {
    resolve_line(source, inputs, None)
}

/// [`resolve`] with the line given instead of read from the tree: `Some(true)` resolves the
/// Fabric 2.x/3.x variables (`FABRIC_VER`, bases at `$(DOCKER_NS)/…:$(TWO_DIGIT_VERSION)`) for a
/// directory that is not a Fabric tree — a fabric-ccs-builder checkout, a chaincode module —
/// whose images are made with the 2.x build image and baseos.
///
/// # Errors
///
/// As [`resolve`].
pub fn resolve_line(
    source: Option<&Path>,
    inputs: &VarInputs,
    v2: Option<bool>,
) -> Result<BuildVars, ConfigError> {
    for name in inputs.flags.keys() {
        if !VAR_NAMES.contains(&name.as_str()) {
            return Err(ConfigError::UnknownVariable { name: name.clone() });
        }
    }
    let source = match source {
        Some(s) => {
            if !s.is_dir() {
                return Err(ConfigError::NoSource { path: s.into() });
            }
            Some(std::fs::canonicalize(s).map_err(|_| ConfigError::NoSource { path: s.into() })?)
        }
        None => None,
    };
    let mut makefile = BTreeMap::new();
    if let Some(src) = &source {
        // docker-env.mk first so that the Makefile's own assignments win on a clash.
        for f in ["Makefile", "docker-env.mk"] {
            for (k, v) in read_makefile_vars(&src.join(f)).unwrap_or_default() {
                makefile.entry(k).or_insert(v);
            }
        }
        // release-1.0 tags v1.0.0–v1.0.6 keep BASEIMAGE_RELEASE in a file of its own.
        if !makefile.contains_key("BASEIMAGE_RELEASE") {
            if let Ok(s) = std::fs::read_to_string(src.join(".baseimage-release")) {
                makefile.insert("BASEIMAGE_RELEASE".into(), s.trim().to_string());
            }
        }
    }
    makefile.retain(|k, _| VAR_NAMES.contains(&k.as_str()));
    let mut r = Resolver {
        inputs,
        makefile,
        vars: BTreeMap::new(),
    };
    let d = |v: &str| (v.to_string(), Origin::Default);
    let derived = |v: &str| (v.to_string(), Origin::Derived);
    // Fabric 2.x/3.x (Makefile v2.5.13/v3.1.0): `FABRIC_VER` is the version (no BASE_VERSION);
    // imgforge's BASE_VERSION follows it, so labels and PROJECT_VERSION read as on 1.x.
    let v2 = v2.unwrap_or_else(|| {
        matches!(
            source.as_deref().map(fabric_line),
            Some(FabricLine::V2 { .. })
        )
    });
    if v2 {
        // common/metadata/metadata.go's default Version is "latest"
        r.set("FABRIC_VER", |_| d("latest"));
        r.set("BASE_VERSION", |r| derived(r.get("FABRIC_VER")));
    } else {
        r.set("BASE_VERSION", |_| d("1.4.12"));
        r.set("FABRIC_VER", |r| derived(r.get("BASE_VERSION")));
    }
    r.set("PREV_VERSION", |_| d(""));
    if v2 {
        // no fabric-baseimage release on 2.x: the base images come from Debian trixie
        // (payload-specs/v2), whatever the Fabric version, so one debootstrap serves all trees
        r.set("BASEIMAGE_RELEASE", |_| d("trixie"));
    } else {
        r.set("BASEIMAGE_RELEASE", |_| d("0.4.22"));
    }
    let src_for_git = source.clone();
    r.set("EXTRA_VERSION", |_| {
        match src_for_git.as_deref().and_then(git_short_head) {
            Some(sha) => (sha, Origin::Git),
            None => d(""),
        }
    });
    r.set("PROJECT_VERSION", |r| {
        let (b, e) = (r.get("BASE_VERSION"), r.get("EXTRA_VERSION"));
        if e.is_empty() {
            (b.to_string(), Origin::Derived)
        } else {
            (format!("{b}-snapshot-{e}"), Origin::Derived)
        }
    });
    r.set("TWO_DIGIT_VERSION", |r| {
        // 2.x Makefile: `echo $(FABRIC_VER) | sed -e 's/^v\(.*\)/\1/' | cut -d '.' -f 1,2`;
        // release-1.4: `echo $(BASE_VERSION) | cut -d '.' -f 1,2` (no `v` dropped)
        if v2 {
            (two_digit_of(r.get("FABRIC_VER")), Origin::Derived)
        } else {
            let b = r.get("BASE_VERSION");
            (
                b.split('.').take(2).collect::<Vec<_>>().join("."),
                Origin::Derived,
            )
        }
    });
    r.set("ARCH", |_| {
        (go_arch(std::env::consts::ARCH).to_string(), Origin::Default)
    });
    r.set("DOCKER_NS", |_| d("hyperledger"));
    if v2 {
        // the 2.x peer looks for $(DOCKER_NS)/fabric-baseos:$(TWO_DIGIT_VERSION) (core.yaml
        // chaincode.golang.runtime): the base images live in DOCKER_NS, tagged TWO_DIGIT_VERSION
        r.set("BASE_DOCKER_NS", |r| derived(r.get("DOCKER_NS")));
    } else {
        r.set("BASE_DOCKER_NS", |_| d("hyperledger"));
    }
    r.set("DOCKER_TAG", |r| {
        (
            format!("{}-{}", r.get("ARCH"), r.get("PROJECT_VERSION")),
            Origin::Derived,
        )
    });
    if v2 {
        r.set("BASE_DOCKER_TAG", |r| derived(r.get("TWO_DIGIT_VERSION")));
    } else {
        r.set("BASE_DOCKER_TAG", |r| {
            (
                format!("{}-{}", r.get("ARCH"), r.get("BASEIMAGE_RELEASE")),
                Origin::Derived,
            )
        });
    }
    r.set("BASE_DOCKER_LABEL", |_| d("org.hyperledger.fabric"));
    r.set("GO_TAGS", |_| d(""));
    r.set("DOCKER_DYNAMIC_LINK", |r| {
        // 2.x builds with cgo on (gcc in the builder), linking glibc dynamically
        (
            (v2 || default_dynamic_link(r.get("BASE_VERSION"))).to_string(),
            Origin::Default,
        )
    });
    r.set("BUILD_DIR", |_| d("build"));
    r.set("CHAINTOOL_URL", |_| d(""));
    let vars = BuildVars {
        vars: r.vars,
        source,
        reads: None,
    };
    validate(&vars)?;
    Ok(vars)
}

fn validate(vars: &BuildVars) -> Result<(), ConfigError> {
    validate_namespace("DOCKER_NS", vars.get("DOCKER_NS"))?;
    validate_namespace("BASE_DOCKER_NS", vars.get("BASE_DOCKER_NS"))?;
    // the inputs of the tags first, so that an error names the variable the user set
    for name in ["BASE_VERSION", "BASEIMAGE_RELEASE"] {
        let v = vars.get(name);
        if v.is_empty() {
            return Err(ConfigError::Invalid {
                name: name.into(),
                value: v.into(),
                problem: "must not be empty (it is part of image tags and labels)".into(),
            });
        }
        validate_tag(name, v)?;
    }
    validate_arch(vars)?;
    for name in ["DOCKER_TAG", "BASE_DOCKER_TAG"] {
        if let Err(e) = validate_tag(name, vars.get(name)) {
            return Err(blame_input(vars, name, e));
        }
    }
    let plain = |name: &str, allow_space: bool| -> Result<(), ConfigError> {
        let v = vars.get(name);
        if let Some(c) = v.chars().find(|c| {
            c.is_control() || *c == '"' || *c == '\'' || *c == '\\' || (!allow_space && *c == ' ')
        }) {
            return Err(ConfigError::Invalid {
                name: name.into(),
                value: v.into(),
                problem: format!(
                    "character {c:?} is not allowed: the value goes into a Dockerfile LABEL or the go command line"
                ),
            });
        }
        Ok(())
    };
    if let Some(src) = &vars.source {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let var = &vars.vars["BUILD_DIR"];
        crate::build_dir::check(&var.value, src, home.as_deref()).map_err(|problem| {
            ConfigError::Invalid {
                name: "BUILD_DIR".into(),
                value: var.value.clone(),
                problem: format!("{problem} (BUILD_DIR was {})", var.origin.describe()),
            }
        })?;
    }
    plain("BASE_DOCKER_LABEL", false)?;
    plain("EXTRA_VERSION", false)?;
    plain("GO_TAGS", true)?;
    let dl = vars.get("DOCKER_DYNAMIC_LINK");
    if dl != "true" && dl != "false" {
        return Err(ConfigError::Invalid {
            name: "DOCKER_DYNAMIC_LINK".into(),
            value: dl.into(),
            problem: "expected `true` or `false`".into(),
        });
    }
    Ok(())
}

fn validate_arch(vars: &BuildVars) -> Result<(), ConfigError> {
    let arch = vars.get("ARCH");
    if !GO_ARCHES.contains(&arch) {
        let origin = vars
            .var("ARCH")
            .map(|v| v.origin)
            .unwrap_or(Origin::Default);
        Err(ConfigError::Invalid {
            name: "ARCH".into(),
            value: arch.into(),
            problem: format!(
                "expected Go's architecture name ({}), as Fabric ≥1.3 uses `go env GOARCH`; the value came from {origin}{}",
                GO_ARCHES.join(", "),
                if go_arch(arch) != arch { format!(" (did you mean {}?)", go_arch(arch)) } else { String::new() }
            ),
        })
    } else {
        Ok(())
    }
}

/// The error for a derived tag that is invalid: when the offending character lies in the part
/// an input variable contributed (`DOCKER_TAG` = `$(ARCH)-$(BASE_VERSION)[-snapshot-$(EXTRA_VERSION)]`,
/// `BASE_DOCKER_TAG` = `$(ARCH)-$(BASEIMAGE_RELEASE)`, as in Fabric release-1.4's Makefile),
/// [`ConfigError::Derived`] naming that input; a tag the user set is blamed as itself.
fn blame_input(vars: &BuildVars, derived: &str, e: ReferenceError) -> ConfigError {
    let origin = |n: &str| vars.var(n).map_or(Origin::Default, |v| v.origin);
    if origin(derived) != Origin::Derived {
        return e.into();
    }
    let parts: &[(&str, &str)] = if derived != "DOCKER_TAG" {
        &[("ARCH", "-"), ("BASEIMAGE_RELEASE", "")]
    } else if origin("PROJECT_VERSION") != Origin::Derived {
        &[("ARCH", "-"), ("PROJECT_VERSION", "")]
    } else {
        &[
            ("ARCH", "-"),
            ("BASE_VERSION", "-snapshot-"),
            ("EXTRA_VERSION", ""),
        ]
    };
    // spans of the inputs in the derived value; with no position (too long), the longest
    let mut start = 0;
    let mut spans = Vec::new();
    for (name, sep) in parts {
        let v = vars.get(name);
        spans.push((*name, start..start + v.len()));
        start += v.len() + sep.len();
    }
    let input = match e.position {
        Some(p) => spans.iter().find(|(_, r)| r.contains(&p)).map(|(n, _)| *n),
        None => spans.iter().max_by_key(|(_, r)| r.len()).map(|(n, _)| *n),
    };
    match input {
        Some(input) if !vars.get(input).is_empty() => ConfigError::Derived {
            input: input.into(),
            value: vars.get(input).into(),
            origin: origin(input),
            derived: derived.into(),
            source: e,
        },
        _ => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_that_makes_a_derived_tag_invalid_is_named() {
        let t = tree("BASE_VERSION = 1.4.12\n");
        let err = resolve(Some(t.path()), &inputs(&[("EXTRA_VERSION", "a+b")], &[])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(r#"EXTRA_VERSION="a+b" (set on the command line) makes DOCKER_TAG invalid: DOCKER_TAG="#),
            "{text}"
        );
        assert!(text.contains("'+'"), "{text}");
        let err = resolve(
            Some(t.path()),
            &inputs(&[], &[("BASEIMAGE_RELEASE", "0.4+1")]),
        )
        .unwrap_err();
        // BASEIMAGE_RELEASE is checked as itself before the tag it makes
        assert!(
            err.to_string().starts_with(r#"BASEIMAGE_RELEASE="0.4+1""#),
            "{err}"
        );
        let err = resolve(
            Some(t.path()),
            &inputs(&[("BASE_VERSION", "1.4 beta")], &[]),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with(r#"BASE_VERSION="1.4 beta""#),
            "{err}"
        );
        let t2 = tree("BASE_VERSION = 1.4.12\nPROJECT_VERSION = x\n");
        let err = resolve(
            Some(t2.path()),
            &inputs(&[("PROJECT_VERSION", "1.4+p")], &[]),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with(r#"PROJECT_VERSION="1.4+p""#),
            "{err}"
        );
        // a DOCKER_TAG the user set is blamed as itself
        let err = resolve(Some(t.path()), &inputs(&[("DOCKER_TAG", "a+b")], &[])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(r#"DOCKER_TAG="a+b" is not a valid tag"#),
            "{err}"
        );
    }

    #[test]
    fn defaults_that_replace_missing_facts_are_noticed() {
        let t = tree("BASEIMAGE_RELEASE = 0.4.22\n");
        let v = resolve(Some(t.path()), &inputs(&[], &[])).unwrap();
        let notes = v.notices();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("sets no BASE_VERSION: using imgforge's default 1.4.12"));
        assert!(notes[1].contains("no git commit found"));
        let v = resolve(
            Some(t.path()),
            &inputs(&[("BASE_VERSION", "1.4.3"), ("EXTRA_VERSION", "abc")], &[]),
        )
        .unwrap();
        assert!(v.notices().is_empty(), "{:?}", v.notices());
    }

    fn inputs(flags: &[(&str, &str)], env: &[(&str, &str)]) -> VarInputs {
        VarInputs {
            flags: flags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn tree(makefile: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Makefile"), makefile).unwrap();
        d
    }

    #[test]
    fn makefile_values_and_derivations() {
        let t = tree("BASE_VERSION = 1.4.12\nPREV_VERSION = 1.4.11\nBASEIMAGE_RELEASE=0.4.22\nBUILD_DIR ?= .build\nBASE_DOCKER_TAG=$(ARCH)-$(BASEIMAGE_RELEASE)\n");
        let v = resolve(
            Some(t.path()),
            &inputs(&[("EXTRA_VERSION", "56c2b126e"), ("ARCH", "amd64")], &[]),
        )
        .unwrap();
        assert_eq!(v.get("BASE_VERSION"), "1.4.12");
        assert_eq!(v.var("BASE_VERSION").unwrap().origin, Origin::Makefile);
        assert_eq!(v.get("PROJECT_VERSION"), "1.4.12-snapshot-56c2b126e");
        assert_eq!(v.get("DOCKER_TAG"), "amd64-1.4.12-snapshot-56c2b126e");
        assert_eq!(v.get("BASE_DOCKER_TAG"), "amd64-0.4.22");
        assert_eq!(v.var("BASE_DOCKER_TAG").unwrap().origin, Origin::Derived);
        assert_eq!(v.get("TWO_DIGIT_VERSION"), "1.4");
        // release-1.4's `cut -d'.' -f1,2` keeps a leading `v` (only the 2.x Makefile drops it)
        let vv = resolve(Some(t.path()), &inputs(&[("BASE_VERSION", "v1.4.12")], &[])).unwrap();
        assert_eq!(vv.get("TWO_DIGIT_VERSION"), "v1.4");
        assert_eq!(v.get("BUILD_DIR"), ".build");
        assert_eq!(v.get("DOCKER_DYNAMIC_LINK"), "true");
        assert_eq!(v.repository("peer"), "hyperledger/fabric-peer");
        assert_eq!(
            v.base_image("baseos"),
            "hyperledger/fabric-baseos:amd64-0.4.22"
        );
    }

    #[test]
    fn precedence_flag_over_env_over_makefile() {
        let t = tree("BASE_VERSION = 1.4.12\n");
        let only_env = resolve(Some(t.path()), &inputs(&[], &[("BASE_VERSION", "1.4.3")])).unwrap();
        assert_eq!(only_env.get("BASE_VERSION"), "1.4.3");
        assert_eq!(only_env.var("BASE_VERSION").unwrap().origin, Origin::Env);
        // 1.4.3 predates FAB-15026: static linking by default.
        assert_eq!(only_env.get("DOCKER_DYNAMIC_LINK"), "false");
        let both = resolve(
            Some(t.path()),
            &inputs(&[("BASE_VERSION", "2.0.0")], &[("BASE_VERSION", "1.4.3")]),
        )
        .unwrap();
        assert_eq!(both.get("BASE_VERSION"), "2.0.0");
        assert_eq!(both.var("BASE_VERSION").unwrap().origin, Origin::Flag);
    }

    #[test]
    fn ldflags_exact_as_fabric_1_4_12() {
        let t = tree("BASE_VERSION = 1.4.12\nBASEIMAGE_RELEASE = 0.4.22\n");
        let v = resolve(
            Some(t.path()),
            &inputs(&[("EXTRA_VERSION", "56c2b126e")], &[]),
        )
        .unwrap();
        assert_eq!(v.docker_go_ldflags(), "-X github.com/hyperledger/fabric/common/metadata.Version=1.4.12 -X github.com/hyperledger/fabric/common/metadata.CommitSHA=56c2b126e -X github.com/hyperledger/fabric/common/metadata.BaseVersion=0.4.22 -X github.com/hyperledger/fabric/common/metadata.BaseDockerLabel=org.hyperledger.fabric -X github.com/hyperledger/fabric/common/metadata.DockerNamespace=hyperledger -X github.com/hyperledger/fabric/common/metadata.BaseDockerNamespace=hyperledger");
        let s = resolve(
            Some(t.path()),
            &inputs(
                &[("EXTRA_VERSION", "x"), ("DOCKER_DYNAMIC_LINK", "false")],
                &[],
            ),
        )
        .unwrap();
        assert!(s
            .docker_go_ldflags()
            .ends_with(" -linkmode external -extldflags '-static -lpthread'"));
    }

    #[test]
    fn invalid_values_are_rejected_with_the_name() {
        let t = tree("");
        let e = resolve(Some(t.path()), &inputs(&[("DOCKER_NS", "Acme")], &[])).unwrap_err();
        assert!(e.to_string().contains("DOCKER_NS"), "{e}");
        let e = resolve(
            Some(t.path()),
            &inputs(&[("DOCKER_NS", "acme\nRUN x")], &[]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("DOCKER_NS"), "{e}");
        let e = resolve(Some(t.path()), &inputs(&[("NOPE", "x")], &[])).unwrap_err();
        assert!(matches!(e, ConfigError::UnknownVariable { .. }));
        let e = resolve(
            Some(t.path()),
            &inputs(&[("DOCKER_DYNAMIC_LINK", "yes")], &[]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("true"), "{e}");
        let e = resolve(
            Some(t.path()),
            &inputs(&[("BASE_DOCKER_LABEL", "a b")], &[]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("BASE_DOCKER_LABEL"), "{e}");
        let e = resolve(Some(&t.path().join("missing")), &inputs(&[], &[])).unwrap_err();
        assert!(matches!(e, ConfigError::NoSource { .. }));
    }

    #[test]
    fn no_git_means_release_version() {
        let t = tree("BASE_VERSION = 1.4.12\n");
        let v = resolve(Some(t.path()), &inputs(&[("ARCH", "arm64")], &[])).unwrap();
        // tempdir is not inside a git work tree (unless TMPDIR is), so EXTRA_VERSION is empty.
        if v.var("EXTRA_VERSION").unwrap().origin == Origin::Default {
            assert_eq!(v.get("DOCKER_TAG"), "arm64-1.4.12");
        }
    }

    #[test]
    fn makefile_parser_skips_references_and_recipes() {
        let t = tree("# c\nBASE_VERSION = 1.4.12\nEXTRA_VERSION ?= $(shell git rev-parse --short HEAD)\nall:\n\tBASE_VERSION=9\nGO_TAGS += x\n");
        let m = read_makefile_vars(&t.path().join("Makefile")).unwrap();
        assert_eq!(m.get("BASE_VERSION").unwrap(), "1.4.12");
        assert!(!m.contains_key("EXTRA_VERSION"));
        assert!(!m.contains_key("GO_TAGS"));
    }

    #[test]
    fn dynamic_link_defaults() {
        assert!(!default_dynamic_link("1.3.1"));
        assert!(!default_dynamic_link("1.4.3"));
        assert!(default_dynamic_link("1.4.4"));
        assert!(default_dynamic_link("1.4.12"));
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
    }
}

#[cfg(test)]
mod line_tests {
    use super::*;

    #[test]
    fn a_2x_tree_derives_its_variables_from_fabric_ver() {
        let tree = |makefile: &str| {
            let d = tempfile::tempdir().unwrap();
            std::fs::write(d.path().join("Makefile"), makefile).unwrap();
            d
        };
        let inputs = |flags: &[(&str, &str)], _env: &[(&str, &str)]| VarInputs {
            flags: flags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            env: Default::default(),
        };
        let d = tree("UBUNTU_VER ?= 22.04\nFABRIC_VER ?= 2.5.13\n");
        std::fs::write(
            d.path().join("go.mod"),
            "module github.com/hyperledger/fabric\n\ngo 1.24.2\n",
        )
        .unwrap();
        let v = resolve(Some(d.path()), &inputs(&[("DOCKER_NS", "acme")], &[])).unwrap();
        for (n, want, origin) in [
            ("FABRIC_VER", "2.5.13", Origin::Makefile),
            ("BASE_VERSION", "2.5.13", Origin::Derived),
            ("TWO_DIGIT_VERSION", "2.5", Origin::Derived),
            ("BASE_DOCKER_NS", "acme", Origin::Derived),
            ("BASE_DOCKER_TAG", "2.5", Origin::Derived),
            ("DOCKER_DYNAMIC_LINK", "true", Origin::Default),
        ] {
            assert_eq!(
                v.var(n).map(|x| (x.value.as_str(), x.origin)),
                Some((want, origin)),
                "{n}"
            );
        }
        assert_eq!(v.base_image("baseos"), "acme/fabric-baseos:2.5");
        assert_eq!(two_digit_of("v3.1.0"), "3.1");
        // a 1.x tree: FABRIC_VER follows BASE_VERSION and changes nothing else
        let d = tree("BASE_VERSION = 1.4.12\n");
        let v = resolve(Some(d.path()), &inputs(&[], &[])).unwrap();
        assert_eq!(v.get("FABRIC_VER"), "1.4.12");
        assert_eq!(v.get("BASE_DOCKER_NS"), "hyperledger");
    }

    #[test]
    fn go_versions_compare_numerically() {
        assert!(go_satisfies("1.24.4", "1.24.2"));
        assert!(go_satisfies("1.24.4", "1.24"));
        assert!(go_satisfies("1.24.4", "1.24.0"));
        assert!(!go_satisfies("1.24.4", "1.26.4"));
        assert!(!go_satisfies("1.24.4", "1.25rc1"));
        assert!(go_satisfies("1.100", "1.99.9"));
        assert_eq!(
            parse_go_version("go version go1.24.4 linux/amd64").as_deref(),
            Some("1.24.4")
        );
    }

    #[test]
    fn a_tree_tells_its_line() {
        let d = tempfile::tempdir().unwrap();
        let at = |files: &[(&str, &str)]| {
            for f in ["Makefile", "go.mod"] {
                let _ = std::fs::remove_file(d.path().join(f));
            }
            for (f, t) in files {
                std::fs::write(d.path().join(f), t).unwrap();
            }
            fabric_line(d.path())
        };
        assert_eq!(
            at(&[("Makefile", "BASE_VERSION = 1.4.12\n")]),
            FabricLine::V1
        );
        assert_eq!(
            at(&[]),
            FabricLine::V1,
            "no Makefile: imgforge's defaults (1.4)"
        );
        let v25 = at(&[
            ("Makefile", "FABRIC_VER ?= 2.5.13\nBUILD_DIR ?= build\n"),
            (
                "go.mod",
                "module github.com/hyperledger/fabric\n\ngo 1.24.2\n",
            ),
        ]);
        assert_eq!(
            v25,
            FabricLine::V2 {
                fabric_ver: Some("2.5.13".into()),
                go: Some("1.24.2".into())
            }
        );
        assert_eq!(
            v25.to_string(),
            "2.x (FABRIC_VER 2.5.13, go.mod: go 1.24.2)"
        );
        let v3 = at(&[("Makefile", "FABRIC_VER ?= 3.1.0\n")]);
        assert_eq!(v3.to_string(), "3.x (FABRIC_VER 3.1.0)");
        // a 1.4 tree with a go.mod of its own (a fork) stays 1.x
        assert_eq!(
            at(&[
                ("Makefile", "BASE_VERSION = 1.4.12\n"),
                ("go.mod", "module github.com/hyperledger/fabric\n")
            ]),
            FabricLine::V1
        );
    }
}
