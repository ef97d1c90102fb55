//! **compile**: `go install` of a Fabric program inside `fabric-baseimage`.
//!
//! Replaces Fabric release-1.4 Makefile rule `$(BUILD_DIR)/docker/bin/%`:
//!
//! ```make
//! $(DRUN) -v $(abspath $(BUILD_DIR)/docker/bin):/opt/gopath/bin \
//!     -v $(abspath $(BUILD_DIR)/docker/$(TARGET)/pkg):/opt/gopath/pkg \
//!     -v $(abspath $(BUILD_DIR)/docker/gocache):/opt/gopath/cache -e GOCACHE=/opt/gopath/cache \
//!     $(BASE_DOCKER_NS)/fabric-baseimage:$(BASE_DOCKER_TAG) \
//!     go install -tags "$(GO_TAGS)" -ldflags "$(DOCKER_GO_LDFLAGS)" $(pkgmap.$(@F))
//! ```
//!
//! | input | output |
//! |---|---|
//! | the tree (bind-mounted at `/opt/gopath/src/github.com/hyperledger/fabric`), `GO_TAGS`, `DOCKER_GO_LDFLAGS` | `$(BUILD_DIR)/docker/bin/<name>` |
//!
//! Differences from the Makefile: `--user` is `uid:gid`, not just the uid; `GO111MODULE=off`
//! is set because Go ≥ 1.16 would otherwise look for a `go.mod` in a GOPATH-era tree; `HOME`
//! is `/tmp` so a uid without a passwd entry can run `go`.

use super::{
    files_only, mkdir_p, Cx, Input, Op, Output, PayloadFile, PayloadKind, Planner, Produced,
    CONTAINER_SRC,
};
use crate::config::{BuildVars, PKGNAME};
use crate::engine::{Engine, RunSpec};
use crate::error::Error;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use std::path::PathBuf;

/// Payload kind `binary`: a Go program of the tree compiled in the baseimage
/// (`$(BUILD_DIR)/docker/bin/<file>`, or `$(BUILD_DIR)/bin/<file>` with `--native`).
///
/// ```toml
/// [[payload]]
/// file = "peer"
/// kind = "binary"
/// package = "peer"     # relative to github.com/hyperledger/fabric
/// ```
///
/// A program the Makefile builds with a `GO_LDFLAGS` of its own (a target-specific variable:
/// `configtxgen: GO_LDFLAGS=-X $(pkgmap.$(@F))/metadata.CommitSHA=$(EXTRA_VERSION)` in
/// release-1.4) says so with `ldflags`, where `{PKG}` is the program's import path and
/// `{VAR}` a build variable:
///
/// ```toml
/// ldflags = "-X {PKG}/metadata.CommitSHA={EXTRA_VERSION}"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binary {
    /// Import path relative to `github.com/hyperledger/fabric`.
    pub package: String,
    /// `GO_LDFLAGS` in place of the Makefile's metadata flags (`{PKG}`, `{VAR}` expanded).
    #[serde(default)]
    pub ldflags: Option<String>,
}

/// What a `binary` entry compiles: the package, and its own `GO_LDFLAGS` template if the
/// Makefile gives it one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Import path relative to `PKGNAME`.
    pub package: String,
    /// [`Binary::ldflags`].
    pub ldflags: Option<String>,
}

impl Program {
    /// A program with the Makefile's metadata flags.
    pub fn new(package: &str) -> Program {
        Program {
            package: package.to_string(),
            ldflags: None,
        }
    }

    /// `GO_LDFLAGS` of this program: [`BuildVars::go_ldflags`], or its own template with `{PKG}`
    /// (`$(PKGNAME)/<package>`) and `{VAR}`s replaced — reading only the variables it names.
    pub fn go_ldflags(&self, vars: &BuildVars) -> String {
        let Some(t) = &self.ldflags else {
            return vars.go_ldflags();
        };
        crate::spec::expand_placeholders(t, |n| match n {
            "PKG" => Some(format!("{PKGNAME}/{}", self.package)),
            n if crate::config::VAR_NAMES.contains(&n) => Some(vars.get(n).to_string()),
            _ => None,
        })
    }

    /// [`Program::go_ldflags`] plus the static-link flags of `docker-env.mk` when
    /// `DOCKER_DYNAMIC_LINK=false`, as [`BuildVars::docker_go_ldflags`].
    pub fn docker_go_ldflags(&self, vars: &BuildVars) -> String {
        let mut flags = self.go_ldflags(vars);
        if !vars.dynamic_link() {
            flags.push_str(" -linkmode external -extldflags '-static -lpthread'");
        }
        flags
    }
}

/// The `{NAME}`s of an `ldflags` template that are neither `PKG` nor a build variable (an
/// unclosed `{` is one too).
fn unknown_placeholders(t: &str) -> Vec<String> {
    match crate::spec::placeholders(t) {
        None => vec![t[t.rfind('{').unwrap_or(0)..].to_string()],
        Some(names) => names
            .into_iter()
            .filter(|n| *n != "PKG" && !crate::config::VAR_NAMES.contains(n))
            .map(|n| format!("{{{n}}}"))
            .collect(),
    }
}

impl PayloadKind for Binary {
    const KIND: &'static str = "binary";

    fn plan<E: Engine>(self, file: &str, p: &mut Planner<'_, '_, E>) -> Result<PayloadFile, Error> {
        let native = p.cx.options.native;
        let dir = if native { "bin" } else { "docker/bin" };
        if let Some(bad) = self
            .ldflags
            .as_deref()
            .map(unknown_placeholders)
            .filter(|b| !b.is_empty())
        {
            return Err(Error::Input {
                step: "spec".into(),
                message: format!(
                    "payload file {file}: ldflags uses {}, which is neither {{PKG}} nor a build variable",
                    bad.join(", ")
                ),
                hint: format!("use {{PKG}} or one of {{{}}}", crate::config::VAR_NAMES.join("}, {")),
            });
        }
        let op = Compile {
            file: file.to_string(),
            program: Program {
                package: self.package,
                ldflags: self.ldflags,
            },
            native,
            out: p.cx.build_dir().join(dir).join(file),
        };
        let file = PayloadFile {
            path: op.out.clone(),
            producer: format!("compile/{}", op.file),
        };
        p.add(op);
        Ok(file)
    }
}

/// The compile step of one program (`compile/<file>`).
#[derive(Debug, Clone)]
pub struct Compile {
    /// Binary name.
    pub file: String,
    /// What is compiled.
    pub program: Program,
    /// Compile with the host's `go`.
    pub native: bool,
    /// Where the binary lands.
    pub out: PathBuf,
}

impl<E: Engine> Op<E> for Compile {
    fn id(&self) -> String {
        format!("compile/{}", self.file)
    }

    fn outputs(&self) -> Vec<Output> {
        vec![Output::Path(self.out.clone())]
    }

    fn inputs(&self, cx: &Cx<'_, E>) -> Result<Vec<Input>, Error> {
        let mut inputs = vec![
            Input::GoSources,
            Input::Value {
                name: "step:package".into(),
                value: self.program.package.clone(),
            },
        ];
        if let Some(t) = &self.program.ldflags {
            inputs.push(Input::Value {
                name: "step:ldflags".into(),
                value: t.clone(),
            });
        }
        // the variables the command is made of, read by the very function that makes it
        if self.native {
            inputs.extend(Input::vars_read_by(cx.vars, |v| {
                native_args(v, &self.program)
            }));
            // the host toolchain is an input of a native build
            inputs.push(Input::HostCommand {
                name: "step:native".into(),
                program: "go".into(),
                args: vec!["version".into()],
            });
        } else {
            inputs.extend(Input::vars_read_by(cx.vars, |v| command(v, &self.program)));
            inputs.push(Input::BaseImage("baseimage".into()));
        }
        Ok(inputs)
    }

    fn run<'a>(
        &'a self,
        cx: &'a Cx<'a, E>,
        _fp: &'a str,
    ) -> BoxFuture<'a, Result<Produced, Error>> {
        files_only(compile(cx, &self.file, &self.program))
    }
}

/// The command run in the baseimage: `go install -tags "$(GO_TAGS)" -ldflags
/// "$(DOCKER_GO_LDFLAGS)" $(PKGNAME)/<package>`, as Fabric release-1.4 Makefile rule
/// `$(BUILD_DIR)/docker/bin/%`.
pub fn command(vars: &BuildVars, program: &Program) -> Vec<String> {
    vec![
        "go".to_string(),
        "install".to_string(),
        "-tags".to_string(),
        vars.get("GO_TAGS").to_string(),
        "-ldflags".to_string(),
        program.docker_go_ldflags(vars),
        format!("{PKGNAME}/{}", program.package),
    ]
}

/// Arguments of the host `go` for `--native`: `make peer` (the native path) uses `GO_LDFLAGS`,
/// without the static-link flags.
pub fn native_args(vars: &BuildVars, program: &Program) -> Vec<String> {
    vec![
        "install".to_string(),
        "-tags".to_string(),
        vars.get("GO_TAGS").to_string(),
        "-ldflags".to_string(),
        program.go_ldflags(vars),
        format!("{PKGNAME}/{}", program.package),
    ]
}

/// A build container as `docker-env.mk`'s `DRUN` runs it: the tree bind-mounted at
/// `/opt/gopath/src/github.com/hyperledger/fabric` (read-only when `read_only_source`) and
/// used as working directory, `$(BUILD_DIR)/docker/gocache` at `/opt/gopath/cache`, the Go
/// environment of [`go_env`] plus `extra_env`, `--user` uid:gid, and `extra_binds`.
pub fn drun<E: Engine>(
    cx: &Cx<'_, E>,
    step: &str,
    image: &str,
    cmd: Vec<String>,
    extra_binds: Vec<String>,
    extra_env: Vec<String>,
    read_only_source: bool,
) -> RunSpec {
    let mut binds = vec![
        format!(
            "{}:{CONTAINER_SRC}{}",
            cx.source().display(),
            if read_only_source { ":ro" } else { "" }
        ),
        format!(
            "{}:/opt/gopath/cache",
            cx.build_dir().join("docker/gocache").display()
        ),
    ];
    binds.extend(extra_binds);
    let mut env = go_env(cx);
    env.extend(extra_env);
    RunSpec {
        step: step.to_string(),
        image: image.to_string(),
        cmd,
        env,
        binds,
        workdir: Some(CONTAINER_SRC.to_string()),
        user: Some(cx.user()),
        caches: vec!["/opt/gopath/cache".into()],
        not_shipped: not_shipped(cx),
        ..Default::default()
    }
}

/// What a remote engine is not sent of the tree ([`RunSpec::not_shipped`]): the build
/// directory when it is inside the tree, and `.git` (a GOPATH-mode `go build` reads neither).
pub fn not_shipped<E: Engine>(cx: &Cx<'_, E>) -> Vec<PathBuf> {
    vec![cx.build_dir().to_path_buf(), cx.source().join(".git")]
}

/// Environment shared by every Go build container.
pub fn go_env<E: Engine>(cx: &Cx<'_, E>) -> Vec<String> {
    let mut env = vec![
        "GOCACHE=/opt/gopath/cache".to_string(),
        "GO111MODULE=off".to_string(),
        "GOFLAGS=".to_string(),
        "HOME=/tmp".to_string(),
    ];
    env.extend(cx.proxy_env());
    env
}

/// Compile `package` (relative to `PKGNAME`, e.g. `peer`) into `$(BUILD_DIR)/docker/bin/<name>`
/// and return that path. With `--native`, compiles with the host's `go` into
/// `$(BUILD_DIR)/bin/<name>` instead (the `make peer` path).
///
/// Errors: the base image is missing ([`Error::MissingImages`]); the
/// compiler failed ([`crate::engine::EngineError::ContainerExit`] with the last lines).
pub async fn compile<E: Engine>(
    cx: &Cx<'_, E>,
    name: &str,
    program: &Program,
) -> Result<PathBuf, Error> {
    if cx.options.native {
        return compile_native(cx, name, program).await;
    }
    let step = format!("compile/{name}");
    let image = cx.require_base(&step, "baseimage").await?;
    let build = cx.build_dir();
    let bin = build.join("docker/bin");
    let pkg = build.join(format!("docker/{name}/pkg"));
    let cache = build.join("docker/gocache");
    for d in [&bin, &pkg, &cache] {
        mkdir_p(&step, d)?;
    }
    let cmd = command(cx.vars, program);
    let spec = RunSpec {
        step: step.clone(),
        image: image.clone(),
        cmd: cmd.clone(),
        env: go_env(cx),
        binds: vec![
            format!("{}:{CONTAINER_SRC}", cx.source().display()),
            format!("{}:/opt/gopath/bin", bin.display()),
            format!("{}:/opt/gopath/pkg", pkg.display()),
            format!("{}:/opt/gopath/cache", cache.display()),
        ],
        workdir: Some(CONTAINER_SRC.to_string()),
        user: Some(cx.user()),
        outputs: vec!["/opt/gopath/bin".into()],
        caches: vec!["/opt/gopath/pkg".into(), "/opt/gopath/cache".into()],
        not_shipped: not_shipped(cx),
        ..Default::default()
    };
    let t = cx.start(
        &step,
        format!("{} in {image}", crate::engine::shell_join(&cmd)),
    );
    cx.engine
        .run(&spec, cx.reporter, cx.cancel)
        .await
        .map_err(|e| Error::engine(&step, e))?;
    let out = bin.join(name);
    let meta =
        std::fs::metadata(&out).map_err(|e| Error::io(&step, "find compiled binary", &out, e))?;
    t.finish(format!("{} ({} bytes)", out.display(), meta.len()));
    Ok(out)
}

async fn compile_native<E: Engine>(
    cx: &Cx<'_, E>,
    name: &str,
    program: &Program,
) -> Result<PathBuf, Error> {
    let package = &program.package;
    let step = format!("compile/{name}");
    let src = cx.source();
    let gopath = src
        .ancestors()
        .nth(4)
        .filter(|_| src.ends_with("src/github.com/hyperledger/fabric"))
        .ok_or_else(|| Error::Input {
            step: step.clone(),
            message: format!(
                "--native needs the tree at $GOPATH/src/{PKGNAME}, but it is at {}",
                src.display()
            ),
            hint:
                "check the tree out into a GOPATH layout, or build in the baseimage (drop --native)"
                    .into(),
        })?
        .to_path_buf();
    let bin = cx.build_dir().join("bin");
    mkdir_p(&step, &bin)?;
    let args = native_args(cx.vars, program);
    let t = cx.start(
        &step,
        format!(
            "go install -ldflags \"{}\" {PKGNAME}/{package} (host)",
            args[4]
        ),
    );
    let out = tokio::process::Command::new("go")
        .args(&args)
        .current_dir(&src)
        .env("GOPATH", &gopath)
        .env("GOBIN", &bin)
        .env("GO111MODULE", "off")
        .env("GOFLAGS", "")
        .env("CGO_CFLAGS", " ")
        .kill_on_drop(true)
        .output();
    // Cancellation drops the child future, and kill_on_drop ends `go`.
    let out = tokio::select! {
        r = out => r,
        _ = cx.cancel.cancelled() => return Err(Error::Cancelled),
    }
        .map_err(|e| Error::Input {
            step: step.clone(),
            message: format!("cannot run the host's `go`: {e}"),
            hint: "install Go (e.g. `apt-get install golang-go`) or build in the baseimage (drop --native)".into(),
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines() {
        cx.reporter.event(&crate::event::Event::Log {
            step: step.clone(),
            line: line.to_string(),
        });
    }
    if !out.status.success() {
        return Err(Error::engine(
            &step,
            crate::engine::EngineError::ContainerExit {
                image: "host".into(),
                cmd: format!("go install {PKGNAME}/{package}"),
                code: out.status.code().unwrap_or(-1) as i64,
                log_tail: stderr
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .map(String::from)
                    .collect(),
            },
        ));
    }
    let path = bin.join(name);
    t.finish(path.display().to_string());
    Ok(path)
}

#[cfg(test)]
mod program_tests {
    use super::*;

    #[test]
    fn a_program_with_its_own_ldflags_reads_only_what_it_names() {
        let mut i = crate::config::VarInputs::default();
        i.flags.insert("EXTRA_VERSION".into(), "abc".into());
        i.flags.insert("ARCH".into(), "amd64".into());
        let v = crate::config::resolve(None, &i).unwrap();
        let tool = Program {
            package: "common/tools/configtxgen".into(),
            ldflags: Some("-X {PKG}/metadata.CommitSHA={EXTRA_VERSION}".into()),
        };
        assert_eq!(
            tool.go_ldflags(&v),
            "-X github.com/hyperledger/fabric/common/tools/configtxgen/metadata.CommitSHA=abc"
        );
        // the fingerprint declares exactly the variables the command reads
        let vars: Vec<String> = Input::vars_read_by(&v, |v| command(v, &tool))
            .into_iter()
            .map(|i| match i {
                Input::Var(n) => n,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(vars, ["DOCKER_DYNAMIC_LINK", "EXTRA_VERSION", "GO_TAGS"]);
        assert!(Program::new("peer")
            .go_ldflags(&v)
            .contains("common/metadata.Version=1.4.12"));
        assert_eq!(
            unknown_placeholders("-X {PKG}/a={EXTRA_VERSION} {NOPE}"),
            ["{NOPE}"]
        );
        assert!(unknown_placeholders("-X {PKG}/a={PROJECT_VERSION}").is_empty());
    }
}
