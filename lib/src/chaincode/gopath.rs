//! **The code package of a Go chaincode, from a GOPATH**: what `peer chaincode package -p
//! <import path>` (and `install`) puts into a `ChaincodeDeploymentSpec`, assembled by the same
//! rules as the Fabric v1.4.12 peer CLI, so that `imgforge chaincode build --path` builds from
//! the very code the peer would get.
//!
//! Facts (Fabric v1.4.12, `core/chaincode/platforms/golang/`):
//!
//! | rule | where |
//! |---|---|
//! | the chaincode lives in the **first** GOPATH entry, `$GOPATH[0]/src/<path>`, which must be a directory | `package.go` `getCodeFromFS`, `platforms/util/utils.go` `IsCodeExist`, `platform.go` `getGopath` |
//! | `go list -f '{{ join .Imports "\n"}}' <path>` with the client's `go env`, GOPATH = every GOPATH entry | `platform.go` `GetDeploymentPayload`, `list.go` `listImports`, `env.go` `getGoEnv` |
//! | imports dropped: the two packages ccenv provides (`github.com/hyperledger/fabric/core/chaincode/shim`, `…/protos/peer`), the pseudo-package `C`, any that exists under `$GOROOT/src` | `GetDeploymentPayload` (`provided`, `pseudo`, the GOROOT loop) |
//! | each import kept, and `go list -f '{{ join .Deps "\n"}}'` of it, is a dependency (only first-order imports are filtered: a kept import's deps may be the shim) | `GetDeploymentPayload`, `list.go` `listDeps` |
//! | a dependency found as a directory `<gopath>/src/<dep>` in any GOPATH entry is packaged; others (GOROOT) are skipped silently | `GetDeploymentPayload` ("we cheat") |
//! | per package: only the files directly in its directory, plus its `META-INF` subtree (any path that starts with `<dir>/META-INF`); files whose extension is `.c .h .s .go .yaml .json` | `package.go` `findSource`, `isMetadataDir`, `includeFileTypes` |
//! | entry name `src/<pkg>/<file>`; files of packages outside `<path>` and outside every `vendor` directory of `<path>`'s ancestors are moved to `src/<path>/vendor/…` (string-prefix tests) | `platform.go` `vendorDependencies` |
//! | entries sorted by name; META-INF files of the package renamed to `META-INF/…`, hidden ones skipped, each validated | `GetDeploymentPayload`, `ccmetadata/validators.go` `ValidateMetadataFile` |
//! | tar header: regular file, mode `0100644`, uid/gid 500, times zero; gzip | `core/container/util/writer.go` `WriteStreamToPackage`, `GetDeploymentPayload` |
//!
//! `go list` runs in a container of the builder image (the resolved ccenv, Go in GOPATH mode,
//! `GO111MODULE=off`) with the GOPATH entries bind-mounted read-only at their own paths and
//! the results read from stdout, so the host needs no Go. Its GOROOT stands for the client's.
//!
//! Differences from the peer's bytes: the tar's user and group names are empty (Go's
//! `tar.FileInfoHeader` writes the file owner's name as the client's machine knows it) and
//! the gzip stream is flate2's, not Go's `compress/flate`; the entries, their names, order,
//! modes, ids and contents are the peer's. A symlink is packaged as the file it points to, as
//! the peer does (`filepath.Walk` sees the link, `os.Open` follows it). imgforge also refuses a
//! package that is not `main` (the peer packages it, and its build fails later).

use super::build::Package;
use crate::engine::{Engine, EngineError, RunSpec};
use crate::error::Error;
use crate::steps::Cx;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The packages ccenv provides, dropped from the first-order imports (`platform.go`
/// `GetDeploymentPayload`, `provided`).
pub const PROVIDED: [&str; 2] = [
    "github.com/hyperledger/fabric/core/chaincode/shim",
    "github.com/hyperledger/fabric/protos/peer",
];

/// Go's pseudo-packages, dropped from the imports (`GetDeploymentPayload`, `pseudo`).
pub const PSEUDO: [&str; 1] = ["C"];

/// The file extensions `findSource` packages (`package.go` `includeFileTypes`; case matters).
pub const INCLUDE_EXTENSIONS: [&str; 6] = [".c", ".h", ".s", ".go", ".yaml", ".json"];

/// What is wrong with a `--path` / `--gopath` chaincode, or with its files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GopathError {
    /// The import path is not a plain relative Go import path.
    #[error("chaincode path {path:?} is not a Go import path: {why}")]
    BadPath {
        /// The path given.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// No GOPATH entry to look in.
    #[error("no GOPATH: {why}")]
    NoGopath {
        /// Why.
        why: String,
    },
    /// `$GOPATH[0]/src/<path>` does not exist, or is not a directory.
    #[error("chaincode path {path:?} is not in GOPATH: {} {what}", dir.display())]
    NotFound {
        /// The import path.
        path: String,
        /// The directory looked for.
        dir: PathBuf,
        /// "does not exist" / "is not a directory" / "is a symbolic link …".
        what: String,
    },
    /// The package is not a command.
    #[error("chaincode path {path:?} is package {name:?}, not a main package: the peer builds it with `go build -o …/chaincode`, which needs `package main`")]
    NotMain {
        /// The import path.
        path: String,
        /// Its package name.
        name: String,
    },
    /// `go list` failed in the builder.
    #[error("`go list` of {path:?} failed in {image}:\n{output}")]
    GoList {
        /// The package listed.
        path: String,
        /// The builder image.
        image: String,
        /// Its last lines of output.
        output: String,
    },
    /// `go list` printed something imgforge cannot read.
    #[error("`go list` of {path:?} printed no {what}")]
    GoListOutput {
        /// The package listed.
        path: String,
        /// What was missing.
        what: &'static str,
    },
    /// Walking or reading a package directory failed.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A META-INF file the peer refuses (`ccmetadata.ValidateMetadataFile`).
    #[error("metadata file {name} ({}): {why}", path.display())]
    Metadata {
        /// The name in the package (`META-INF/…`).
        name: String,
        /// The file.
        path: PathBuf,
        /// What the peer would say.
        why: String,
    },
}

impl GopathError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            GopathError::BadPath { .. } => "give the import path as `peer chaincode package -p` takes it, e.g. `github.com/example/mycc` (relative to $GOPATH/src)".into(),
            GopathError::NoGopath { .. } => "pass --gopath DIR (the directory holding src/), or set GOPATH".into(),
            GopathError::NotFound { .. } => "the chaincode must be at $GOPATH/src/<path> in the first GOPATH entry, as for `peer chaincode package`; check --path and --gopath".into(),
            GopathError::NotMain { .. } => "give the import path of the chaincode's main package (the one that calls shim.Start)".into(),
            GopathError::GoList { .. } | GopathError::GoListOutput { .. } => "every package the chaincode imports must be in GOPATH (or be the shim ccenv provides); check the output above".into(),
            GopathError::Read { .. } => "check the file's permissions".into(),
            GopathError::Metadata { .. } => "the peer accepts only CouchDB index definitions under META-INF/statedb/couchdb/indexes/ (or …/collections/<name>/indexes/); fix or remove the file".into(),
        }
    }

    /// As the library's [`Error`] of `step`.
    pub fn into_error(self, step: &str) -> Error {
        Error::Input {
            step: step.to_string(),
            hint: self.hint(),
            message: self.to_string(),
        }
    }
}

/// The import path as the peer uses it: no scheme, no leading `/`, no `.`/`..` or empty
/// element (one trailing `/` is dropped, as `platform.go` `decodeUrl` does for the build).
///
/// # Errors
///
/// [`GopathError::BadPath`].
pub fn check_import_path(path: &str) -> Result<String, GopathError> {
    let bad = |why| GopathError::BadPath {
        path: path.to_string(),
        why,
    };
    let p = path.strip_suffix('/').unwrap_or(path);
    if p.is_empty() {
        return Err(bad("it is empty"));
    }
    if p.contains("://") {
        return Err(bad(
            "a URL: the 1.4 peer packages only code that is in GOPATH",
        ));
    }
    if p.starts_with('/') {
        return Err(bad(
            "it is absolute; expected a path relative to $GOPATH/src",
        ));
    }
    if p.contains('\\') || p.chars().any(char::is_whitespace) {
        return Err(bad("it contains a backslash or white space"));
    }
    if p.split('/').any(|e| e.is_empty() || e == "." || e == "..") {
        return Err(bad("it has an empty, `.` or `..` element"));
    }
    Ok(p.to_string())
}

/// The GOPATH entries as the Go tool finds them: `$GOPATH` split at `:` (empty entries
/// skipped), else `$HOME/go` (`go help gopath`). Entries must be absolute, as the Go tool
/// requires.
///
/// # Errors
///
/// [`GopathError::NoGopath`]: a relative entry, or neither GOPATH nor HOME set.
pub fn default_gopath(env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<PathBuf>, GopathError> {
    if let Some(v) = env("GOPATH").filter(|v| !v.is_empty()) {
        let entries: Vec<PathBuf> = v
            .split(':')
            .filter(|e| !e.is_empty())
            .map(PathBuf::from)
            .collect();
        if let Some(rel) = entries.iter().find(|e| !e.is_absolute()) {
            return Err(GopathError::NoGopath {
                why: format!(
                    "GOPATH entry {} is relative; the Go tool requires absolute entries",
                    rel.display()
                ),
            });
        }
        if !entries.is_empty() {
            return Ok(entries);
        }
    }
    match env("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(vec![Path::new(&h).join("go")]),
        None => Err(GopathError::NoGopath {
            why: "GOPATH and HOME are unset".into(),
        }),
    }
}

/// The first-order imports that are packaged with their dependencies: all but the ones ccenv
/// provides ([`PROVIDED`]), the pseudo-packages ([`PSEUDO`]) and those under GOROOT
/// (`platform.go` `GetDeploymentPayload`, the `filter` of `imports`).
pub fn filter_imports(imports: &[String], in_goroot: &dyn Fn(&str) -> bool) -> Vec<String> {
    imports
        .iter()
        .filter(|p| {
            !PROVIDED.contains(&p.as_str()) && !PSEUDO.contains(&p.as_str()) && !in_goroot(p)
        })
        .cloned()
        .collect()
}

/// The dependency set: each kept import and each of its `go list` deps, without `""`
/// (`GetDeploymentPayload`, `deps`).
pub fn dependency_set(deps_of: &BTreeMap<String, Vec<String>>) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for (pkg, deps) in deps_of {
        all.insert(pkg.clone());
        all.extend(deps.iter().cloned());
    }
    all.remove("");
    all
}

/// One file of the code package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Its name in the package: `src/<pkg>/<file>` relative to its GOPATH entry (after
    /// [`vendor_dependencies`], maybe under `src/<path>/vendor/`).
    pub name: String,
    /// The file on disk.
    pub path: PathBuf,
    /// Under the package's `META-INF` (`package.go` `isMetadataDir`).
    pub is_metadata: bool,
}

/// Go's `filepath.Ext`: the suffix from the last `.` of the last element (`".go"` for
/// `".go"`), empty when there is none.
pub fn go_ext(name: &str) -> &str {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.rfind('.').map(|i| &base[i..]).unwrap_or("")
}

/// Whether `findSource` takes a file: its extension is one of [`INCLUDE_EXTENSIONS`].
pub fn is_source_file(name: &str) -> bool {
    INCLUDE_EXTENSIONS.contains(&go_ext(name))
}

/// Whether `rel` (a path relative to the package directory, `/`-separated) is in the
/// package's metadata directory: `isMetadataDir` is a string prefix test on
/// `<dir>/META-INF`, so `META-INFO/x` counts too, and `sub/META-INF/x` does not.
pub fn is_metadata(rel: &str) -> bool {
    rel.starts_with("META-INF")
}

/// `findSource(gopath, pkg)` (`package.go`): the files of `<gopath>/src/<pkg>` — those directly
/// in it and those in its `META-INF` subtree — whose extension is one of
/// [`INCLUDE_EXTENSIONS`], keyed by their name `src/<pkg>/…`. Other directories are not
/// entered; links are not followed into (a link is a file by its name).
///
/// # Errors
///
/// [`GopathError::Read`] when a directory that is walked cannot be read (the peer's walk
/// fails too).
pub fn find_source(gopath: &Path, pkg: &str) -> Result<BTreeMap<String, SourceFile>, GopathError> {
    let tld = gopath.join("src").join(pkg);
    let mut out = BTreeMap::new();
    let walk = walkdir::WalkDir::new(&tld)
        .follow_links(false)
        .follow_root_links(false)
        .into_iter()
        .filter_entry(|e| {
            if e.depth() == 0 || !e.file_type().is_dir() {
                return true;
            }
            let rel = e.path().strip_prefix(&tld).unwrap_or(e.path());
            is_metadata(&rel.to_string_lossy())
        });
    for e in walk {
        let e = e.map_err(|err| GopathError::Read {
            path: err.path().unwrap_or(&tld).to_path_buf(),
            source: err
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("walk failed")),
        })?;
        if e.file_type().is_dir() {
            continue;
        }
        let rel = e.path().strip_prefix(&tld).unwrap_or(e.path());
        let rel = rel.to_string_lossy().to_string();
        if e.depth() == 0 || !is_source_file(&rel) {
            continue;
        }
        let name = format!("src/{pkg}/{rel}");
        out.insert(
            name.clone(),
            SourceFile {
                name,
                path: e.path().to_path_buf(),
                is_metadata: is_metadata(&rel),
            },
        );
    }
    Ok(out)
}

/// `vendorDependencies(pkg, files)` (`platform.go`): a file whose name starts with neither
/// `src/<pkg>` nor any `src/<ancestor of pkg>/vendor` (string prefixes, so `src/a/bc` is
/// "inside" `src/a/b`) is renamed `src/<pkg>/vendor/…`.
pub fn vendor_dependencies(pkg: &str, files: &mut [SourceFile]) {
    let mut exclusions = Vec::new();
    let mut prev = String::from("src");
    for element in pkg.split('/') {
        prev = format!("{prev}/{element}");
        exclusions.push(format!("{prev}/vendor"));
    }
    exclusions.push(format!("src/{pkg}"));
    let vendor = format!("src/{pkg}/vendor");
    for f in files.iter_mut() {
        if !exclusions.iter().any(|x| f.name.starts_with(x.as_str())) {
            f.name = f.name.replacen("src", &vendor, 1);
        }
    }
}

/// Go's `filepath.Rel(base, target)` for clean relative `/`-separated paths.
fn rel(base: &str, target: &str) -> String {
    let b: Vec<&str> = base.split('/').collect();
    let t: Vec<&str> = target.split('/').collect();
    let common = b.iter().zip(&t).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<&str> = vec![".."; b.len() - common];
    parts.extend(&t[common..]);
    parts.join("/")
}

/// `ccmetadata.ValidateMetadataFile` (`core/chaincode/platforms/ccmetadata/validators.go`):
/// only CouchDB index definitions are accepted, at
/// `META-INF/statedb/couchdb/indexes/….json` or
/// `META-INF/statedb/couchdb/collections/<name>/indexes/….json`, each a JSON object with an
/// `index` (`fields` array, `partial_filter_selector`), and optional string `ddoc`/`name`,
/// `type` `json`.
///
/// # Errors
///
/// The peer's reason, as text.
pub fn validate_metadata(name: &str, bytes: &[u8]) -> Result<(), String> {
    // the two regexps `^META-INF/statedb/couchdb/indexes/.*[.]json` and
    // `^META-INF/statedb/couchdb/collections/[A-Za-z0-9_-]+/indexes/.*[.]json` (unanchored
    // at the end; `.` stops at a newline)
    let has_json = |rest: &str| rest.split('\n').next().unwrap_or("").contains(".json");
    let indexes = name
        .strip_prefix("META-INF/statedb/couchdb/indexes/")
        .is_some_and(has_json);
    let collections = name
        .strip_prefix("META-INF/statedb/couchdb/collections/")
        .and_then(|r| {
            let n = r
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(r.len());
            (n > 0).then(|| &r[n..])
        })
        .and_then(|r| r.strip_prefix("/indexes/"))
        .is_some_and(has_json);
    if !indexes && !collections {
        return Err(format!("metadata file path or name is not supported ({name}): expected META-INF/statedb/couchdb/indexes/*.json or META-INF/statedb/couchdb/collections/<collection>/indexes/*.json"));
    }
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes)
        .map_err(|_| format!("Index metadata file [{name}] is not a valid JSON"))?;
    let invalid = |why: String| {
        format!("Index metadata file [{name}] is not a valid index definition: {why}")
    };
    let mut index = false;
    for (k, val) in &v {
        match k.as_str() {
            "index" => {
                let m = val
                    .as_object()
                    .ok_or_else(|| invalid("Invalid entry, \"index\" must be a JSON".into()))?;
                for (ik, iv) in m {
                    match ik.as_str() {
                        "fields" => {
                            let a = iv.as_array().ok_or_else(|| {
                                invalid("Expecting a JSON array of fields".into())
                            })?;
                            for item in a {
                                if let Some(fm) = item.as_object() {
                                    for (_, sort) in fm {
                                        match sort.as_str() {
                                            Some(s) if matches!(s.to_lowercase().as_str(), "asc" | "desc") => {}
                                            Some(s) => return Err(invalid(format!("Sort must be either \"asc\" or \"desc\".  \"{s}\" was found."))),
                                            None => return Err(invalid("Invalid field definition, fields must be in the form \"fieldname\":\"sort\"".into())),
                                        }
                                    }
                                }
                            }
                        }
                        "partial_filter_selector" => {}
                        other => return Err(invalid(format!("Invalid Entry.  Entry {other}"))),
                    }
                }
                index = true;
            }
            "ddoc" | "name" if !val.is_string() => {
                return Err(invalid(format!("Invalid entry, \"{k}\" must be a string")))
            }
            "ddoc" | "name" => {}
            "type" if val.as_str() != Some("json") => {
                return Err(invalid("Index type must be json".into()))
            }
            "type" => {}
            other => return Err(invalid(format!("Invalid Entry.  Entry {other}"))),
        }
    }
    if !index {
        return Err(invalid(
            "Index definition must include a \"fields\" definition".into(),
        ));
    }
    Ok(())
}

/// One entry of the code package: its name in the tar and the file it holds.
pub type Entry = (String, PathBuf);

/// The code package's entries, in order: `(name in the tar, file)`, after
/// [`vendor_dependencies`], sorting by name, and the META-INF renaming (hidden metadata files
/// skipped and returned apart; the others validated) of `GetDeploymentPayload`.
///
/// # Errors
///
/// [`GopathError::Metadata`], [`GopathError::Read`] (a metadata file that cannot be read).
pub fn entries(
    pkg: &str,
    files: Vec<SourceFile>,
) -> Result<(Vec<Entry>, Vec<String>), GopathError> {
    let mut files = files;
    vendor_dependencies(pkg, &mut files);
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = Vec::new();
    let mut hidden = Vec::new();
    for f in files {
        if !f.is_metadata {
            out.push((f.name, f.path));
            continue;
        }
        let name = rel(&format!("src/{pkg}"), &f.name);
        if name.rsplit('/').next().unwrap_or("").starts_with('.') {
            hidden.push(name);
            continue;
        }
        let bytes = std::fs::read(&f.path).map_err(|e| GopathError::Read {
            path: f.path.clone(),
            source: e,
        })?;
        validate_metadata(&name, &bytes).map_err(|why| GopathError::Metadata {
            name: name.clone(),
            path: f.path.clone(),
            why,
        })?;
        out.push((name, f.path));
    }
    Ok((out, hidden))
}

/// The gzipped tar of `entries` as `WriteStreamToPackage` writes each: a regular file, mode
/// `0100644`, uid/gid 500, mtime 0 (ustar, a GNU long name for names over 255 bytes), the
/// content of the file (links followed). The user and group names stay empty (Go's
/// `tar.FileInfoHeader` looks the owner up on the packaging machine), so the bytes do not depend
/// on who checked the code out.
///
/// # Errors
///
/// [`GopathError::Read`].
pub fn write_code_package(entries: &[Entry]) -> Result<Vec<u8>, GopathError> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    for (name, path) in entries {
        let read = |e| GopathError::Read {
            path: path.clone(),
            source: e,
        };
        let data = std::fs::read(path).map_err(read)?;
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o100644);
        h.set_uid(500);
        h.set_gid(500);
        h.set_mtime(0);
        // Go's writer fills the ustar device fields with octal zeros
        h.set_device_major(0).map_err(read)?;
        h.set_device_minor(0).map_err(read)?;
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, &data[..]).map_err(read)?;
    }
    let gz = b.into_inner().map_err(|e| GopathError::Read {
        path: PathBuf::from("<code package>"),
        source: e,
    })?;
    gz.finish().map_err(|e| GopathError::Read {
        path: PathBuf::from("<code package>"),
        source: e,
    })
}

/// The files of the code package of `pkg` (chaincode in `gopaths[0]`) and its dependencies
/// `deps`: `findSource` of the chaincode, then of each dependency in every GOPATH entry where
/// `<entry>/src/<dep>` exists (the first entry wins a name found twice).
///
/// # Errors
///
/// [`GopathError::Read`].
pub fn collect(
    gopaths: &[PathBuf],
    pkg: &str,
    deps: &BTreeSet<String>,
) -> Result<Vec<SourceFile>, GopathError> {
    let mut all = find_source(&gopaths[0], pkg)?;
    for dep in deps {
        for g in gopaths {
            if g.join("src").join(dep).exists() {
                for (k, v) in find_source(g, dep)? {
                    all.entry(k).or_insert(v);
                }
            }
        }
    }
    Ok(all.into_values().collect())
}

/// A chaincode to package from a GOPATH.
#[derive(Debug, Clone)]
pub struct GopathChaincode {
    /// Name (`-n`).
    pub name: String,
    /// Version (`-v`).
    pub version: String,
    /// Import path (`-p`).
    pub path: String,
    /// GOPATH entries; the chaincode is in the first.
    pub gopaths: Vec<PathBuf>,
}

/// What [`package`] made, besides the package.
#[derive(Debug, Clone)]
pub struct Packaged {
    /// The package.
    pub package: Package,
    /// The tar entry names, in order.
    pub names: Vec<String>,
}

/// The sh script that prints what `GetDeploymentPayload` asks `go` for, about `$1`: `goroot
/// <GOROOT>`, `name <package name>`, and `import <0|1> <path>` per first-order import (1 when
/// `$GOROOT/src/<path>` exists).
const LIST_IMPORTS: &str = r#"set -e
goroot=$(go env GOROOT)
echo "goroot $goroot"
name=$(go list -f '{{.Name}}' "$1")
echo "name $name"
imports=$(go list -f '{{ join .Imports "\n"}}' "$1")
for i in $imports; do
  if [ -e "$goroot/src/$i" ]; then echo "import 1 $i"; else echo "import 0 $i"; fi
done
"#;

/// Prints `::pkg <p>` and then `go list -f '{{ join .Deps "\n"}}' <p>`, for each argument.
const LIST_DEPS: &str = r#"set -e
for p in "$@"; do
  deps=$(go list -f '{{ join .Deps "\n"}}' "$p")
  echo "::pkg $p"
  printf '%s\n' "$deps"
done
"#;

async fn go_list<E: Engine>(
    cx: &Cx<'_, E>,
    step: &str,
    builder: &str,
    c: &GopathChaincode,
    script: &str,
    args: &[String],
) -> Result<Vec<String>, Error> {
    let gopath = c
        .gopaths
        .iter()
        .map(|g| g.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let mut cmd = vec![
        "/bin/sh".to_string(),
        "-c".into(),
        script.into(),
        "sh".into(),
    ];
    cmd.extend(args.iter().cloned());
    let spec = RunSpec {
        step: step.to_string(),
        image: builder.to_string(),
        cmd,
        env: vec![
            "HOME=/tmp".into(),
            "GO111MODULE=off".into(),
            format!("GOPATH={gopath}"),
        ],
        // read-only, at their own paths: `go list` output and errors name the user's paths
        binds: c
            .gopaths
            .iter()
            .filter(|g| g.is_dir())
            .map(|g| format!("{0}:{0}:ro", g.display()))
            .collect(),
        workdir: None,
        user: Some(cx.user()),
        capture_stdout: true,
        // a remote engine gets the sources only: GOPATH-mode `go list` reads nothing else
        not_shipped: c
            .gopaths
            .iter()
            .flat_map(|g| [g.join("pkg"), g.join("bin"), g.join(".git")])
            .collect(),
        ..Default::default()
    };
    match cx.engine.run(&spec, cx.reporter, cx.cancel).await {
        Ok(out) => Ok(out.stdout),
        Err(EngineError::ContainerExit { log_tail, .. }) => Err(GopathError::GoList {
            path: args.join(" "),
            image: builder.to_string(),
            output: log_tail.join("\n"),
        }
        .into_error(step)),
        Err(e) => Err(Error::engine(step, e)),
    }
}

/// The chaincode's import path, checked, once its directory `$GOPATH[0]/src/<path>` is found
/// (`package.go` `getCodeFromFS`, `util.IsCodeExist`): cheap, no engine; [`package`] starts
/// with it.
///
/// # Errors
///
/// [`GopathError::BadPath`], [`GopathError::NoGopath`], [`GopathError::NotFound`].
pub fn locate(c: &GopathChaincode) -> Result<String, GopathError> {
    let path = check_import_path(&c.path)?;
    let first = c.gopaths.first().ok_or_else(|| GopathError::NoGopath {
        why: "no GOPATH entry given".into(),
    })?;
    let dir = first.join("src").join(&path);
    let not_found = |what: &str| GopathError::NotFound {
        path: path.clone(),
        dir: dir.clone(),
        what: what.to_string(),
    };
    match std::fs::symlink_metadata(&dir) {
        Err(_) => Err(not_found("does not exist")),
        Ok(m) if m.file_type().is_symlink() => Err(not_found(
            "is a symbolic link (the peer's filepath.Walk does not follow it and would package no file)",
        )),
        Ok(m) if !m.is_dir() => Err(not_found("is not a directory")),
        Ok(_) => Ok(path),
    }
}

/// Package chaincode `c` as `peer chaincode package -n <name> -v <version> -p <path>` would
/// with GOPATH `c.gopaths` (`platform.go` `GetDeploymentPayload`; see the module docs), running
/// `go list` in `builder` (which must exist).
///
/// # Errors
///
/// [`GopathError`]s as [`Error::Input`] (path not in GOPATH, not main, `go list` failed, a
/// refused META-INF file), the engine's errors.
pub async fn package<E: Engine>(
    cx: &Cx<'_, E>,
    builder: &str,
    c: &GopathChaincode,
) -> Result<Packaged, Error> {
    let step = format!("chaincode/{}-{}", c.name, c.version);
    let path = locate(c).map_err(|e| e.into_error(&step))?;
    let first = &c.gopaths[0];
    let t = cx.start(
        &step,
        format!("go list {path} in {builder} (GOPATH {})", first.display()),
    );
    let out = go_list(
        cx,
        &step,
        builder,
        c,
        LIST_IMPORTS,
        std::slice::from_ref(&path),
    )
    .await?;
    let missing = |what| GopathError::GoListOutput {
        path: path.clone(),
        what,
    };
    let name = out
        .iter()
        .find_map(|l| l.strip_prefix("name "))
        .ok_or_else(|| missing("package name").into_error(&step))?;
    if name != "main" {
        return Err(GopathError::NotMain {
            path: path.clone(),
            name: name.to_string(),
        }
        .into_error(&step));
    }
    let mut imports = Vec::new();
    let mut in_goroot = BTreeSet::new();
    for l in &out {
        if let Some(rest) = l.strip_prefix("import ") {
            let (flag, p) = rest.split_once(' ').unwrap_or(("0", rest));
            imports.push(p.to_string());
            if flag == "1" {
                in_goroot.insert(p.to_string());
            }
        }
    }
    let kept = filter_imports(&imports, &|p| in_goroot.contains(p));
    let mut deps_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if !kept.is_empty() {
        let out = go_list(cx, &step, builder, c, LIST_DEPS, &kept).await?;
        let mut current: Option<String> = None;
        for l in out {
            if let Some(p) = l.strip_prefix("::pkg ") {
                deps_of.entry(p.to_string()).or_default();
                current = Some(p.to_string());
            } else if let Some(p) = &current {
                deps_of
                    .get_mut(p)
                    .expect("inserted")
                    .push(l.trim().to_string());
            }
        }
        if let Some(k) = kept.iter().find(|k| !deps_of.contains_key(*k)) {
            return Err(GopathError::GoListOutput {
                path: k.clone(),
                what: "dependency list",
            }
            .into_error(&step));
        }
    }
    let deps = dependency_set(&deps_of);
    let (gopaths, pkg) = (c.gopaths.clone(), path.clone());
    let (entries, hidden) = tokio::task::spawn_blocking(move || {
        let files = collect(&gopaths, &pkg, &deps)?;
        let (entries, hidden) = entries(&pkg, files)?;
        let code = write_code_package(&entries)?;
        Ok::<_, GopathError>(((entries, code), hidden))
    })
    .await
    .map_err(|e| Error::Internal {
        step: step.clone(),
        message: e.to_string(),
    })?
    .map_err(|e| e.into_error(&step))?;
    for h in hidden {
        cx.reporter.event(&crate::event::Event::Notice {
            step: step.clone(),
            message: format!("ignoring hidden file in metadata directory: {h} (as the peer does)"),
        });
    }
    let (entries, code) = entries;
    t.finish(format!(
        "code package: {} files, {} B gzipped",
        entries.len(),
        code.len()
    ));
    Ok(Packaged {
        package: Package {
            path,
            name: c.name.clone(),
            version: c.version.clone(),
            code,
        },
        names: entries.into_iter().map(|(n, _)| n).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    const INDEX: &str =
        r#"{"index":{"fields":["owner",{"size":"desc"}]},"ddoc":"d","name":"n","type":"json"}"#;

    #[test]
    fn find_source_takes_the_peers_file_set() {
        let g = tempfile::tempdir().unwrap();
        let base = "src/example.com/cc";
        // (file, packaged?, metadata?)
        let table: &[(&str, bool, bool)] = &[
            ("main.go", true, false),
            ("helper.c", true, false),
            ("helper.h", true, false),
            ("asm_amd64.s", true, false),
            ("asm_amd64.S", false, false), // extensions are case-sensitive
            ("conf.yaml", true, false),
            ("conf.yml", false, false),
            ("data.json", true, false),
            ("README.md", false, false),
            ("Makefile", false, false),
            ("main_test.go", true, false), // tests are .go files too
            (".hidden.go", true, false),
            ("sub/inner.go", false, false), // subdirectories are not entered …
            ("vendor/other.org/v/v.go", false, false), // … vendor/ neither (unless a dependency)
            ("META-INF/statedb/couchdb/indexes/idx.json", true, true), // … but the root's META-INF is
            ("META-INF/statedb/couchdb/indexes/notes.txt", false, true), // with the same extensions
            ("META-INFO/x.json", true, true), // a string prefix test, as isMetadataDir
            ("sub/META-INF/statedb/couchdb/indexes/i.json", false, false), // only at the root
        ];
        for (f, _, _) in table {
            write(g.path(), &format!("{base}/{f}"), "x");
        }
        let found = find_source(g.path(), "example.com/cc").unwrap();
        for (f, packaged, meta) in table {
            let name = format!("{base}/{f}");
            match found.get(&name) {
                Some(s) => {
                    assert!(packaged, "{f} was packaged");
                    assert_eq!(s.is_metadata, *meta, "{f}");
                    assert_eq!(s.path, g.path().join(&name));
                }
                None => assert!(!packaged, "{f} was not packaged"),
            }
        }
        assert_eq!(
            found.len(),
            table.iter().filter(|t| t.1).count(),
            "{found:?}"
        );
    }

    #[test]
    fn go_ext_is_filepath_ext() {
        for (name, ext) in [
            ("a.go", ".go"),
            (".go", ".go"),
            ("a.tar.gz", ".gz"),
            ("dir.d/file", ""),
            ("noext", ""),
            ("a.", "."),
        ] {
            assert_eq!(go_ext(name), ext, "{name}");
        }
    }

    #[test]
    fn dependencies_outside_the_package_are_vendored_under_it() {
        let pkg = "example.com/cc";
        // (name before, name after)
        let table = [
            ("src/example.com/cc/main.go", "src/example.com/cc/main.go"),
            ("src/example.com/cc/sub/s.go", "src/example.com/cc/sub/s.go"),
            (
                "src/example.com/cc/vendor/a.org/a/a.go",
                "src/example.com/cc/vendor/a.org/a/a.go",
            ),
            // an ancestor's vendor directory stays where Go finds it
            (
                "src/example.com/vendor/b.org/b/b.go",
                "src/example.com/vendor/b.org/b/b.go",
            ),
            // string prefixes: a sibling whose name extends the package's is not moved
            ("src/example.com/ccx/c.go", "src/example.com/ccx/c.go"),
            (
                "src/other.org/lib/l.go",
                "src/example.com/cc/vendor/other.org/lib/l.go",
            ),
            (
                "src/github.com/hyperledger/fabric/core/chaincode/shim/shim.go",
                "src/example.com/cc/vendor/github.com/hyperledger/fabric/core/chaincode/shim/shim.go",
            ),
        ];
        let mut files: Vec<SourceFile> = table
            .iter()
            .map(|(n, _)| SourceFile {
                name: n.to_string(),
                path: PathBuf::from(n),
                is_metadata: false,
            })
            .collect();
        vendor_dependencies(pkg, &mut files);
        for (f, (_, want)) in files.iter().zip(table) {
            assert_eq!(f.name, want);
        }
    }

    #[test]
    fn imports_ccenv_provides_pseudo_and_goroot_ones_are_dropped() {
        let imports: Vec<String> = [
            "fmt",
            "C",
            "github.com/hyperledger/fabric/core/chaincode/shim",
            "github.com/hyperledger/fabric/protos/peer",
            "github.com/hyperledger/fabric/core/chaincode/shim/ext/cid",
            "github.com/hyperledger/fabric/protos/common",
            "example.com/lib",
            "net/http",
        ]
        .map(String::from)
        .to_vec();
        let goroot = ["fmt", "net/http"];
        assert_eq!(
            filter_imports(&imports, &|p| goroot.contains(&p)),
            vec![
                "github.com/hyperledger/fabric/core/chaincode/shim/ext/cid",
                "github.com/hyperledger/fabric/protos/common",
                "example.com/lib"
            ]
        );
        // deps of a kept import are not filtered (the peer filters first-order imports only)
        let deps = dependency_set(&BTreeMap::from([(
            "example.com/lib".to_string(),
            vec![
                "".to_string(),
                "github.com/hyperledger/fabric/core/chaincode/shim".to_string(),
                "strings".to_string(),
            ],
        )]));
        assert_eq!(
            deps.into_iter().collect::<Vec<_>>(),
            vec![
                "example.com/lib",
                "github.com/hyperledger/fabric/core/chaincode/shim",
                "strings"
            ]
        );
    }

    #[test]
    fn the_package_holds_the_chaincode_its_gopath_deps_and_root_meta_inf() {
        let g = tempfile::tempdir().unwrap();
        let root = g.path();
        write(root, "src/example.com/cc/main.go", "package main");
        write(root, "src/example.com/cc/README.md", "no");
        write(
            root,
            "src/example.com/cc/META-INF/statedb/couchdb/indexes/idx.json",
            INDEX,
        );
        write(
            root,
            "src/example.com/cc/META-INF/statedb/couchdb/indexes/.idx.json",
            INDEX,
        );
        write(root, "src/example.com/lib/lib.go", "package lib");
        write(root, "src/example.com/lib/lib.txt", "no");
        write(root, "src/example.com/lib/internal/x.go", "not a dep");
        write(root, "src/example.com/unused/u.go", "package unused");
        let deps = BTreeSet::from(["example.com/lib".to_string(), "strings".to_string()]);
        let files = collect(&[root.to_path_buf()], "example.com/cc", &deps).unwrap();
        let (entries, hidden) = entries("example.com/cc", files).unwrap();
        let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                // sorted by the name before META-INF's renaming, as the peer does
                "META-INF/statedb/couchdb/indexes/idx.json",
                "src/example.com/cc/main.go",
                "src/example.com/cc/vendor/example.com/lib/lib.go",
            ]
        );
        assert_eq!(hidden, vec!["META-INF/statedb/couchdb/indexes/.idx.json"]);

        let gz = write_code_package(&entries).unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&gz[..]));
        let mut seen = Vec::new();
        for e in tar.entries().unwrap() {
            let mut e = e.unwrap();
            let h = e.header().clone();
            assert_eq!(h.entry_type(), tar::EntryType::Regular);
            assert_eq!(h.mode().unwrap(), 0o100644);
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (500, 500));
            assert_eq!(h.mtime().unwrap(), 0);
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            seen.push((e.path().unwrap().display().to_string(), s));
        }
        assert_eq!(
            seen[1],
            ("src/example.com/cc/main.go".into(), "package main".into())
        );
        assert_eq!(seen.len(), 3);
        // the same files give the same bytes
        assert_eq!(write_code_package(&entries).unwrap(), gz);
    }

    #[test]
    fn meta_inf_files_are_validated_as_the_peer_does() {
        let ok = [
            ("META-INF/statedb/couchdb/indexes/a.json", INDEX),
            (
                "META-INF/statedb/couchdb/collections/c_1-x/indexes/a.json",
                INDEX,
            ),
            (
                "META-INF/statedb/couchdb/indexes/a.json",
                r#"{"index":{"fields":["a"],"partial_filter_selector":{}}}"#,
            ),
        ];
        for (n, b) in ok {
            assert_eq!(validate_metadata(n, b.as_bytes()), Ok(()), "{n} {b}");
        }
        let bad = [
            ("META-INF/other/a.json", INDEX, "not supported"),
            (
                "META-INF/statedb/couchdb/indexes/a.txt",
                INDEX,
                "not supported",
            ),
            (
                "META-INF/statedb/leveldb/indexes/a.json",
                INDEX,
                "not supported",
            ),
            (
                "META-INF/statedb/couchdb/collections//indexes/a.json",
                INDEX,
                "not supported",
            ),
            (
                "META-INF/statedb/couchdb/indexes/a.json",
                "[1]",
                "not a valid JSON",
            ),
            (
                "META-INF/statedb/couchdb/indexes/a.json",
                r#"{"ddoc":"d"}"#,
                "must include",
            ),
            (
                "META-INF/statedb/couchdb/indexes/a.json",
                r#"{"index":{"fields":[{"a":"up"}]}}"#,
                "asc",
            ),
            (
                "META-INF/statedb/couchdb/indexes/a.json",
                r#"{"index":{"fields":"a"}}"#,
                "array",
            ),
            (
                "META-INF/statedb/couchdb/indexes/a.json",
                r#"{"index":{"fields":["a"]},"type":"text"}"#,
                "must be json",
            ),
            (
                "META-INF/statedb/couchdb/indexes/a.json",
                r#"{"index":{"fields":["a"]},"extra":1}"#,
                "Entry extra",
            ),
        ];
        for (n, b, want) in bad {
            let e = validate_metadata(n, b.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{n} {b}: {e}");
        }
        // and a refused file stops the package, naming it
        let g = tempfile::tempdir().unwrap();
        write(g.path(), "src/cc/META-INF/notes.json", "{}");
        write(g.path(), "src/cc/main.go", "package main");
        let files = collect(&[g.path().to_path_buf()], "cc", &BTreeSet::new()).unwrap();
        let e = entries("cc", files).unwrap_err().to_string();
        assert!(e.contains("META-INF/notes.json"), "{e}");
    }

    #[test]
    fn import_paths_and_gopath_are_checked() {
        assert_eq!(
            check_import_path("example.com/cc/").unwrap(),
            "example.com/cc"
        );
        for bad in [
            "",
            "/abs/cc",
            "a/../b",
            "./cc",
            "a//b",
            "https://x/y",
            "a b",
        ] {
            let e = check_import_path(bad).unwrap_err().to_string();
            assert!(e.contains("is not a Go import path"), "{bad}: {e}");
        }
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            default_gopath(&env(&[("GOPATH", "/a::/b"), ("HOME", "/h")])).unwrap(),
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert_eq!(
            default_gopath(&env(&[("HOME", "/h")])).unwrap(),
            vec![PathBuf::from("/h/go")]
        );
        let e = default_gopath(&env(&[("GOPATH", "rel")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("relative"), "{e}");
        assert!(default_gopath(&env(&[])).is_err());
    }
}
