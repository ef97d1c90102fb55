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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binary {
    /// Import path relative to `github.com/hyperledger/fabric`.
    pub package: String,
}

impl PayloadKind for Binary {
    const KIND: &'static str = "binary";

    fn plan<E: Engine>(self, file: &str, p: &mut Planner<'_, '_, E>) -> Result<PayloadFile, Error> {
        let native = p.cx.options.native;
        let dir = if native { "bin" } else { "docker/bin" };
        let op = Compile {
            file: file.to_string(),
            package: self.package,
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
    /// Package relative to `PKGNAME`.
    pub package: String,
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
                value: self.package.clone(),
            },
        ];
        // the variables the command is made of, read by the very function that makes it
        if self.native {
            inputs.extend(Input::vars_read_by(cx.vars, |v| {
                native_args(v, &self.package)
            }));
            // the host toolchain is an input of a native build
            inputs.push(Input::HostCommand {
                name: "step:native".into(),
                program: "go".into(),
                args: vec!["version".into()],
            });
        } else {
            inputs.extend(Input::vars_read_by(cx.vars, |v| command(v, &self.package)));
            inputs.push(Input::BaseImage("baseimage".into()));
        }
        Ok(inputs)
    }

    fn run<'a>(
        &'a self,
        cx: &'a Cx<'a, E>,
        _fp: &'a str,
    ) -> BoxFuture<'a, Result<Produced, Error>> {
        files_only(compile(cx, &self.file, &self.package))
    }
}

/// The command run in the baseimage: `go install -tags "$(GO_TAGS)" -ldflags
/// "$(DOCKER_GO_LDFLAGS)" $(PKGNAME)/<package>`, as Fabric release-1.4 Makefile rule
/// `$(BUILD_DIR)/docker/bin/%`.
pub fn command(vars: &BuildVars, package: &str) -> Vec<String> {
    vec![
        "go".to_string(),
        "install".to_string(),
        "-tags".to_string(),
        vars.get("GO_TAGS").to_string(),
        "-ldflags".to_string(),
        vars.docker_go_ldflags(),
        format!("{PKGNAME}/{package}"),
    ]
}

/// Arguments of the host `go` for `--native`: `make peer` (the native path) uses `GO_LDFLAGS`,
/// without the static-link flags.
pub fn native_args(vars: &BuildVars, package: &str) -> Vec<String> {
    vec![
        "install".to_string(),
        "-tags".to_string(),
        vars.get("GO_TAGS").to_string(),
        "-ldflags".to_string(),
        vars.go_ldflags(),
        format!("{PKGNAME}/{package}"),
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
        capture_stdout: false,
        network_host: false,
    }
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
    package: &str,
) -> Result<PathBuf, Error> {
    if cx.options.native {
        return compile_native(cx, name, package).await;
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
    let cmd = command(cx.vars, package);
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
        capture_stdout: false,
        network_host: false,
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
    package: &str,
) -> Result<PathBuf, Error> {
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
    let args = native_args(cx.vars, package);
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
