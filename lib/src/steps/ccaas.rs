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
        p.add(Ccaas { dir: dir.clone() });
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
}

/// The command and environment of the build container.
pub fn invocation() -> (Vec<String>, Vec<String>) {
    let mut cmd = vec![
        "go".to_string(),
        "build".to_string(),
        "-buildvcs=false".to_string(),
        "-o".to_string(),
        format!("{OUT}/.new/"),
    ];
    cmd.extend(
        PROGRAMS
            .iter()
            .map(|p| format!("{PKGNAME}/ccaas_builder/cmd/{p}")),
    );
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
        let (cmd, env) = invocation();
        Ok(vec![
            Input::Dir {
                prefix: "file:ccaas_builder".into(),
                path: cx.source().join("ccaas_builder"),
                modes: false,
            },
            Input::Value {
                name: "step:command".into(),
                value: format!("{} {}", env.join(" "), cmd.join(" ")),
            },
            Input::BaseImage("baseimage".into()),
        ])
    }

    fn preflight(&self, cx: &Cx<'_, E>) -> Result<(), Error> {
        let dir = cx.source().join("ccaas_builder");
        if !dir.join("cmd/detect").is_dir() {
            return Err(Error::Input {
                step: ID.into(),
                message: format!(
                    "{} has no ccaas_builder/cmd/detect: the peer image carries Fabric's ccaas builder (Fabric 2.4.x and later)",
                    cx.source().display()
                ),
                hint: "check out a tree with ccaas_builder/ (v2.5.x, v3.x), or give a spec without the ccaas-builder entries (`--specs DIR`)".into(),
            });
        }
        Ok(())
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
    let (cmd, mut env) = invocation();
    env.extend(cx.proxy_env());
    let spec = RunSpec {
        step: ID.into(),
        image: image.clone(),
        cmd: cmd.clone(),
        env,
        binds: vec![
            format!(
                "{}:{GOPATH}/src/{PKGNAME}/ccaas_builder:ro",
                cx.source().join("ccaas_builder").display()
            ),
            format!("{}:{OUT}", op.dir.display()),
            format!("{}:{CACHE}", cache.display()),
        ],
        workdir: Some(format!("{GOPATH}/src/{PKGNAME}/ccaas_builder")),
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
        let (cmd, env) = invocation();
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
}
