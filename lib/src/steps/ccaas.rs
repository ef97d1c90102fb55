//! **ccaas**: Fabric's chaincode-as-a-service builder (`detect`, `build`, `release`), which the
//! 2.5/3.x peer image carries at `/opt/hyperledger/ccaas_builder/bin`.
//!
//! Replaces Fabric v2.5.13/v3.1.0 Makefile target `ccaasbuilder` (run by the peer's builder
//! stage, `RUN make ccaasbuilder`):
//!
//! ```make
//! ccaasbuilder/%: ccaasbuilder-clean
//!     @mkdir -p release/$(platform)/builders/ccaas/bin
//!     cd ccaas_builder && go test -v ./cmd/detect && GOOS=$(GOOS) GOARCH=$(GOARCH) go build -buildvcs=false -o ../release/$(platform)/builders/ccaas/bin/ ./cmd/detect/
//!     # the same for ./cmd/build and ./cmd/release
//! ```
//!
//! | input | output |
//! |---|---|
//! | the tree's `ccaas_builder/`, the build image (its Go and `/usr/share/gocode`) | `$(BUILD_DIR)/ccaas_builder/bin/{detect,build,release}` |
//!
//! `ccaas_builder/` is a Go module of its own (`go 1.16`, requiring gomega, otiai10/copy and
//! pkg/errors) that Fabric does not vendor: `make ccaasbuilder` downloads its modules, and
//! offline module mode fails (a `go 1.16` module needs gomega's whole graph). imgforge builds it
//! in GOPATH mode instead, over Debian's packaged sources of its two non-test imports
//! (`golang-github-otiai10-copy-dev` 1.2.0, whose `Copy(src, dest string, opt ...Options)`
//! fits the `copy.Copy(a, b)` calls, and `golang-github-pkg-errors-dev` 0.9.1, the version
//! go.mod names), installed in the build image under `/usr/share/gocode`:
//!
//! ```sh
//! GO111MODULE=off GOPATH=/opt/imgforge/gopath:/usr/share/gocode GOTOOLCHAIN=local CGO_ENABLED=0 \
//!   go build -buildvcs=false -o OUT/ github.com/hyperledger/fabric/ccaas_builder/cmd/{detect,build,release}
//! ```
//!
//! The same kind builds hyperledgendary/fabric-ccs-builder (`module
//! hyperledgendary/fabric-ext-builder/v2`, `go 1.16`, `cmd/{build,detect,release}` importing only
//! `github.com/otiai10/copy`; its Dockerfile runs `go install -v ./cmd/...` in `golang:1.14.4-alpine3.12`)
//! and any builder module of that shape: when the source directory is not a Fabric tree with
//! `ccaas_builder/`, its own `go.mod` names the module and the directory is mounted at
//! `$GOPATH/src/<module path>` ([`BuilderModule::find`]). Every import of the module's non-test
//! Go files must be the standard library, the module itself or one of [`DEBIAN_GO_PACKAGES`]:
//! anything else is named before anything runs (imgforge downloads nothing).
//!
//! Differences: otiai10/copy 1.2.0 instead of go.mod's v1.6.0 (the two calls behave the same
//! for the directories and files the builder copies); `go test` is not run (Fabric's Docker
//! build context drops `*_test.go` through `.dockerignore`, so its `go test` tests nothing
//! there either); `CGO_ENABLED=0` (the programs use no cgo: static binaries).

use super::{mkdir_p, Cx, Input, Op, Output, PayloadFile, PayloadKind, Planner, Produced};
use crate::config::PKGNAME;
use crate::engine::{Engine, RunSpec};
use crate::error::Error;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use std::path::PathBuf;

/// The builder's programs, in the order Fabric's Makefile builds them.
pub const PROGRAMS: &[&str] = &["detect", "build", "release"];

/// The Go import paths the build image carries as Debian source packages under
/// `/usr/share/gocode/src`, with the package: `payload-specs/v2/baseimage.toml` installs them
/// (trixie `golang-github-otiai10-copy-dev` 1.2.0, `golang-github-pkg-errors-dev` 0.9.1;
/// `shared/spec/fabric2-flow.md` §4).
pub const DEBIAN_GO_PACKAGES: &[(&str, &str)] = &[
    ("github.com/otiai10/copy", "golang-github-otiai10-copy-dev"),
    ("github.com/pkg/errors", "golang-github-pkg-errors-dev"),
];

/// Where the builder's Go sources are and the import path they are built under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuilderModule {
    /// The module's directory: the tree's `ccaas_builder/`, or the source directory itself.
    pub root: PathBuf,
    /// Its import path in GOPATH mode: `github.com/hyperledger/fabric/ccaas_builder`, or the
    /// `module` line of its go.mod (`hyperledgendary/fabric-ext-builder/v2`).
    pub import_path: String,
    /// Whether it is Fabric's `ccaas_builder/` of a 2.5/3.x tree.
    pub fabric_tree: bool,
}

/// A directory that holds no builder module, or a builder that needs what the build image lacks.
#[derive(Debug, thiserror::Error)]
pub enum BuilderError {
    /// Neither a Fabric tree with `ccaas_builder/` nor a builder module.
    #[error("{} is neither a Fabric 2.5/3.x tree (ccaas_builder/cmd/detect) nor an external builder module (go.mod with a module line, and cmd/detect, cmd/build, cmd/release as fabric-ccs-builder has): {missing}", dir.display())]
    NotABuilder {
        /// The directory given.
        dir: PathBuf,
        /// What was not found.
        missing: String,
    },
    /// A non-test Go file imports a package that is neither the standard library, the module,
    /// nor one of [`DEBIAN_GO_PACKAGES`].
    #[error("{} imports {import:?}, which cannot be had offline: the build image carries only the standard library and {} (Debian packages), and imgforge downloads nothing", file.display(), DEBIAN_GO_PACKAGES.iter().map(|(p, d)| format!("{p} ({d})")).collect::<Vec<_>>().join(", "))]
    Unavailable {
        /// The Go file.
        file: PathBuf,
        /// The import path.
        import: String,
    },
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl BuilderError {
    /// As the crate's [`Error::Input`] of `step`, with what to do.
    pub fn into_error(self, step: &str) -> Error {
        let hint = match &self {
            BuilderError::NotABuilder { .. } => "give a Fabric v2.5.x/v3.x checkout, or a checkout of github.com/hyperledgendary/fabric-ccs-builder".to_string(),
            BuilderError::Unavailable { import, .. } => format!("drop the import of {import}, or add its Debian package (golang-…-dev) to the build image's include list (payload-specs/v2/baseimage.toml) and DEBIAN_GO_PACKAGES"),
            BuilderError::Io { .. } => "check the directory's permissions".to_string(),
        };
        Error::Input {
            step: step.to_string(),
            message: self.to_string(),
            hint,
        }
    }
}

impl BuilderModule {
    /// The builder module of source directory `src`: a Fabric tree's `ccaas_builder/` (import
    /// path `github.com/hyperledger/fabric/ccaas_builder`, as the Makefile builds it from inside
    /// the tree), else `src` itself when its go.mod has a `module` line and it has
    /// `cmd/{detect,build,release}` (fabric-ccs-builder's layout).
    ///
    /// # Errors
    ///
    /// [`BuilderError::NotABuilder`] naming what is missing.
    pub fn find(src: &std::path::Path) -> Result<BuilderModule, BuilderError> {
        let fabric = src.join("ccaas_builder");
        if fabric.join("cmd/detect").is_dir() {
            return Ok(BuilderModule {
                root: fabric,
                import_path: format!("{PKGNAME}/ccaas_builder"),
                fabric_tree: true,
            });
        }
        let not = |missing: String| BuilderError::NotABuilder {
            dir: src.to_path_buf(),
            missing,
        };
        let gomod = std::fs::read_to_string(src.join("go.mod"))
            .map_err(|_| not("no go.mod (and no ccaas_builder/)".into()))?;
        if gomod
            .lines()
            .any(|l| l.trim() == format!("module {PKGNAME}"))
        {
            return Err(not(
                "the Fabric tree has no ccaas_builder/cmd/detect (Fabric 2.4.x and later have it)"
                    .into(),
            ));
        }
        let module = gomod
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("module ")
                    .map(|m| m.trim().trim_matches('"').to_string())
            })
            .filter(|m| !m.is_empty() && !m.contains(char::is_whitespace))
            .ok_or_else(|| not("its go.mod has no module line".into()))?;
        let absent: Vec<String> = PROGRAMS
            .iter()
            .filter(|p| !src.join("cmd").join(p).is_dir())
            .map(|p| format!("cmd/{p}"))
            .collect();
        if !absent.is_empty() {
            return Err(not(format!("module {module} has no {}", absent.join(", "))));
        }
        Ok(BuilderModule {
            root: src.to_path_buf(),
            import_path: module,
            fabric_tree: false,
        })
    }

    /// The Go files the build reads: every `.go` file but `_test.go`, outside directories the
    /// go command ignores (`.`/`_` prefixed, `testdata`) and `vendor/`; sorted.
    fn go_files(&self) -> Result<Vec<PathBuf>, BuilderError> {
        let mut out = Vec::new();
        let mut dirs = vec![self.root.clone()];
        while let Some(d) = dirs.pop() {
            let rd = std::fs::read_dir(&d).map_err(|source| BuilderError::Io {
                path: d.clone(),
                source,
            })?;
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let path = e.path();
                let ft = e.file_type().map_err(|source| BuilderError::Io {
                    path: path.clone(),
                    source,
                })?;
                if ft.is_dir() {
                    if !(name.starts_with('.')
                        || name.starts_with('_')
                        || name == "testdata"
                        || name == "vendor")
                    {
                        dirs.push(path);
                    }
                } else if name.ends_with(".go") && !name.ends_with("_test.go") {
                    out.push(path);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Check that every import of the module's Go files can be had offline: the standard
    /// library (a first path element without a dot), the module itself, or one of
    /// [`DEBIAN_GO_PACKAGES`] (or a package below one).
    ///
    /// # Errors
    ///
    /// [`BuilderError::Unavailable`] for the first import that cannot, naming the file.
    pub fn check_imports(&self) -> Result<(), BuilderError> {
        for f in self.go_files()? {
            let text = std::fs::read_to_string(&f).map_err(|source| BuilderError::Io {
                path: f.clone(),
                source,
            })?;
            for import in go_imports(&text) {
                let under = |p: &str| import == p || import.starts_with(&format!("{p}/"));
                let std = !import.split('/').next().unwrap_or("").contains('.');
                let ok = under(&self.import_path)
                    || DEBIAN_GO_PACKAGES.iter().any(|(p, _)| under(p))
                    || (std && import != "C");
                if !ok {
                    return Err(BuilderError::Unavailable { file: f, import });
                }
            }
        }
        Ok(())
    }
}

/// The import paths of a Go source file: its `import "p"`, `import name "p"` and `import ( … )`
/// declarations (before the first other top-level declaration; comments skipped).
pub fn go_imports(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut in_comment = false;
    for raw in text.lines() {
        let mut line = raw.trim();
        if in_comment {
            match line.find("*/") {
                Some(i) => {
                    in_comment = false;
                    line = line[i + 2..].trim();
                }
                None => continue,
            }
        }
        if let Some(i) = line.find("//") {
            line = line[..i].trim();
        }
        if let Some(i) = line.find("/*") {
            if !line[i..].contains("*/") {
                in_comment = true;
            }
            line = line[..i].trim();
        }
        let quoted = |l: &str| {
            let a = l.find('"')?;
            let b = l[a + 1..].find('"')?;
            Some(l[a + 1..a + 1 + b].to_string())
        };
        if in_block {
            if line.starts_with(')') {
                in_block = false;
            } else if let Some(q) = quoted(line) {
                out.push(q);
            }
        } else if let Some(rest) = line.strip_prefix("import") {
            let rest = rest.trim();
            if rest.starts_with('(') {
                in_block = !rest.contains(')');
                if let Some(q) = quoted(rest) {
                    out.push(q);
                }
            } else if let Some(q) = quoted(rest) {
                out.push(q);
            }
        } else if line.starts_with("func ")
            || line.starts_with("var ")
            || line.starts_with("type ")
            || line.starts_with("const ")
        {
            break;
        }
    }
    out
}

/// The step's id (one step builds all three programs).
const ID: &str = "compile/ccaas_builder";
/// GOPATH of the build container: the tree's `ccaas_builder` is mounted at
/// `$GOPATH/src/github.com/hyperledger/fabric/ccaas_builder`.
const GOPATH: &str = "/opt/imgforge/gopath";
/// Where `$(BUILD_DIR)/ccaas_builder` is mounted.
const OUT: &str = "/opt/imgforge/out";
/// Where `$(BUILD_DIR)/gocache` is mounted (`GOCACHE`).
const CACHE: &str = "/opt/imgforge/cache";

/// Payload kind `ccaas-builder`: one of Fabric's ccaas builder programs (the payload file's
/// name: `detect`, `build` or `release`). No parameters.
///
/// ```toml
/// [[payload]]
/// file = "detect"
/// kind = "ccaas-builder"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CcaasBuilder {}

impl PayloadKind for CcaasBuilder {
    const KIND: &'static str = "ccaas-builder";

    fn plan<E: Engine>(self, file: &str, p: &mut Planner<'_, '_, E>) -> Result<PayloadFile, Error> {
        if !PROGRAMS.contains(&file) {
            return Err(Error::Input {
                step: "spec".into(),
                message: format!(
                    "payload file {file:?} of kind ccaas-builder: expected one of {}",
                    PROGRAMS.join(", ")
                ),
                hint: "name the payload file after the builder program it is".into(),
            });
        }
        let dir = p.cx.build_dir().join("ccaas_builder");
        p.add(Ccaas {
            dir: dir.clone(),
            module: BuilderModule::find(&p.cx.source()).ok(),
        });
        Ok(PayloadFile {
            path: dir.join("bin").join(file),
            producer: ID.into(),
        })
    }
}

/// The step `compile/ccaas_builder`.
#[derive(Debug, Clone)]
pub struct Ccaas {
    /// `$(BUILD_DIR)/ccaas_builder`: the programs land in `bin/`.
    pub dir: PathBuf,
    /// The builder module of the source directory (`None`: there is none; preflight says why).
    pub module: Option<BuilderModule>,
}

impl Ccaas {
    fn module(&self) -> BuilderModule {
        self.module.clone().unwrap_or_else(|| BuilderModule {
            root: PathBuf::from("ccaas_builder"),
            import_path: format!("{PKGNAME}/ccaas_builder"),
            fabric_tree: true,
        })
    }
}

/// The command and environment of the build container for the builder module at
/// `import_path` (Fabric's: `github.com/hyperledger/fabric/ccaas_builder`).
pub fn invocation(import_path: &str) -> (Vec<String>, Vec<String>) {
    let mut cmd = vec![
        "go".to_string(),
        "build".to_string(),
        "-buildvcs=false".to_string(),
        "-o".to_string(),
        format!("{OUT}/.new/"),
    ];
    cmd.extend(PROGRAMS.iter().map(|p| format!("{import_path}/cmd/{p}")));
    let env = vec![
        "GO111MODULE=off".to_string(),
        format!("GOPATH={GOPATH}:/usr/share/gocode"),
        "GOFLAGS=".to_string(),
        "GOPROXY=off".to_string(),
        "GOTOOLCHAIN=local".to_string(),
        "CGO_ENABLED=0".to_string(),
        format!("GOCACHE={CACHE}"),
        "HOME=/tmp".to_string(),
    ];
    (cmd, env)
}

impl<E: Engine> Op<E> for Ccaas {
    fn id(&self) -> String {
        ID.into()
    }

    fn outputs(&self) -> Vec<Output> {
        PROGRAMS
            .iter()
            .map(|p| Output::Path(self.dir.join("bin").join(p)))
            .collect()
    }

    fn inputs(&self, cx: &Cx<'_, E>) -> Result<Vec<Input>, Error> {
        let m = self.module();
        let (cmd, env) = invocation(&m.import_path);
        let mut inputs = Vec::new();
        if m.fabric_tree {
            inputs.push(Input::Dir {
                prefix: "file:ccaas_builder".into(),
                path: cx.source().join("ccaas_builder"),
                modes: false,
            });
        } else {
            // a checkout of its own: its entries but .git and what the go command ignores
            let mut entries: Vec<(String, bool)> = std::fs::read_dir(&m.root)
                .map_err(|e| Error::io(ID, "read", &m.root, e))?
                .flatten()
                .map(|e| {
                    let dir = e.file_type().is_ok_and(|t| t.is_dir());
                    (e.file_name().to_string_lossy().to_string(), dir)
                })
                .filter(|(n, _)| !n.starts_with('.') && !n.starts_with('_'))
                .collect();
            entries.sort();
            for (name, dir) in entries {
                let path = m.root.join(&name);
                inputs.push(if dir {
                    Input::Dir {
                        prefix: format!("file:{name}"),
                        path,
                        modes: false,
                    }
                } else {
                    Input::File {
                        name: format!("file:{name}"),
                        path,
                    }
                });
            }
        }
        inputs.push(Input::Value {
            name: "step:command".into(),
            value: format!("{} {}", env.join(" "), cmd.join(" ")),
        });
        inputs.push(Input::BaseImage("baseimage".into()));
        Ok(inputs)
    }

    fn preflight(&self, cx: &Cx<'_, E>) -> Result<(), Error> {
        match BuilderModule::find(&cx.source()) {
            Ok(m) => m.check_imports().map_err(|e| e.into_error(ID)),
            Err(e) => Err(Error::Input {
                step: ID.into(),
                message: format!(
                    "{e}; the peer image carries Fabric's ccaas builder (Fabric 2.4.x and later)"
                ),
                hint: "check out a tree with ccaas_builder/ (v2.5.x, v3.x), or give a spec without the ccaas-builder entries (`--specs DIR`)".into(),
            }),
        }
    }

    fn run<'a>(
        &'a self,
        cx: &'a Cx<'a, E>,
        _fp: &'a str,
    ) -> BoxFuture<'a, Result<Produced, Error>> {
        Box::pin(async move {
            build(cx, self).await?;
            Ok(Produced::default())
        })
    }
}

async fn build<E: Engine>(cx: &Cx<'_, E>, op: &Ccaas) -> Result<(), Error> {
    let image = cx.require_base(ID, "baseimage").await?;
    let cache = cx.build_dir().join("gocache");
    let new = op.dir.join(".new");
    let _ = crate::build_dir::remove_inside(&op.dir, &new);
    for d in [&cache, &new] {
        mkdir_p(ID, d)?;
    }
    let m = op.module();
    let (cmd, mut env) = invocation(&m.import_path);
    env.extend(cx.proxy_env());
    let spec = RunSpec {
        step: ID.into(),
        image: image.clone(),
        cmd: cmd.clone(),
        env,
        binds: vec![
            format!("{}:{GOPATH}/src/{}:ro", m.root.display(), m.import_path),
            format!("{}:{OUT}", op.dir.display()),
            format!("{}:{CACHE}", cache.display()),
        ],
        workdir: Some(format!("{GOPATH}/src/{}", m.import_path)),
        user: Some(cx.user()),
        outputs: vec![OUT.to_string()],
        caches: vec![CACHE.to_string()],
        ..Default::default()
    };
    let t = cx.start(
        ID,
        format!("{} in {image}", crate::engine::shell_join(&cmd)),
    );
    cx.engine
        .run(&spec, cx.reporter, cx.cancel)
        .await
        .map_err(|e| Error::engine(ID, e))?;
    // all three or none: the new directory replaces bin/ as a whole
    for p in PROGRAMS {
        let f = new.join(p);
        if !f.is_file() {
            return Err(Error::io(
                ID,
                "find the compiled program",
                &f,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
    }
    let bin = op.dir.join("bin");
    let old = op.dir.join(".old");
    let _ = crate::build_dir::remove_inside(&op.dir, &old);
    if bin.exists() {
        std::fs::rename(&bin, &old).map_err(|e| Error::io(ID, "move aside", &bin, e))?;
    }
    std::fs::rename(&new, &bin).map_err(|e| Error::io(ID, "move into place", &new, e))?;
    let _ = crate::build_dir::remove_inside(&op.dir, &old);
    t.finish(format!("{}/{{{}}}", bin.display(), PROGRAMS.join(",")));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gopath_mode_over_debian_sources() {
        let (cmd, env) = invocation("github.com/hyperledger/fabric/ccaas_builder");
        assert_eq!(
            cmd[5..],
            [
                "github.com/hyperledger/fabric/ccaas_builder/cmd/detect",
                "github.com/hyperledger/fabric/ccaas_builder/cmd/build",
                "github.com/hyperledger/fabric/ccaas_builder/cmd/release"
            ]
        );
        assert!(env.contains(&"GO111MODULE=off".to_string()));
        assert!(env.contains(&"GOPATH=/opt/imgforge/gopath:/usr/share/gocode".to_string()));
    }

    #[test]
    fn a_builder_module_is_found_by_its_layout_and_its_imports_checked() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let e = BuilderModule::find(root).unwrap_err().to_string();
        assert!(e.contains("no go.mod"), "{e}");
        std::fs::write(
            root.join("go.mod"),
            "module hyperledgendary/fabric-ext-builder/v2\n\ngo 1.16\n",
        )
        .unwrap();
        let e = BuilderModule::find(root).unwrap_err().to_string();
        assert!(
            e.contains("has no cmd/detect, cmd/build, cmd/release"),
            "{e}"
        );
        for p in PROGRAMS {
            std::fs::create_dir_all(root.join("cmd").join(p)).unwrap();
        }
        let m = BuilderModule::find(root).unwrap();
        assert_eq!(m.import_path, "hyperledgendary/fabric-ext-builder/v2");
        assert!(!m.fabric_tree);
        let main = |imports: &str| {
            format!("package main\n\n// import \"x.org/in/comment\"\nimport (\n\t\"fmt\"\n{imports}\n)\n\nfunc main() {{ fmt.Println() }}\n")
        };
        std::fs::write(
            root.join("cmd/release/main.go"),
            main("\t\"github.com/otiai10/copy\"\n\tpe \"github.com/pkg/errors\""),
        )
        .unwrap();
        std::fs::write(
            root.join("cmd/build/main_test.go"),
            main("\t\"github.com/onsi/gomega\""),
        )
        .unwrap();
        std::fs::create_dir_all(root.join("_test")).unwrap();
        std::fs::write(root.join("_test/x.go"), main("\t\"example.com/nope\"")).unwrap();
        m.check_imports().unwrap();
        std::fs::write(
            root.join("cmd/build/main.go"),
            main("\t\"gopkg.in/yaml.v2\""),
        )
        .unwrap();
        let e = m.check_imports().unwrap_err().to_string();
        assert!(
            e.contains("cmd/build/main.go imports \"gopkg.in/yaml.v2\""),
            "{e}"
        );
        assert!(e.contains("golang-github-otiai10-copy-dev"), "{e}");
        // a Fabric tree: its ccaas_builder/
        std::fs::create_dir_all(root.join("ccaas_builder/cmd/detect")).unwrap();
        let m = BuilderModule::find(root).unwrap();
        assert!(m.fabric_tree);
        assert_eq!(m.import_path, "github.com/hyperledger/fabric/ccaas_builder");
    }

    #[test]
    fn go_imports_of_single_and_block_forms() {
        let t = "package x\nimport \"os\"\nimport y \"a.b/c\" // c\nimport (\n  _ \"d.e/f\"\n  /* \"no\" */\n)\nvar v = \"not/an/import\"\n";
        assert_eq!(go_imports(t), ["os", "a.b/c", "d.e/f"]);
    }
}
