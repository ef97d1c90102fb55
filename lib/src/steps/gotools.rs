//! **gotools**: Go tools built from the tree's `vendor/` inside `fabric-baseimage`.
//!
//! Replaces Fabric release-1.4 Makefile rule `$(BUILD_DIR)/docker/gotools` (which runs
//! `make -f gotools.mk` in the baseimage and builds all nine gotools, five of them with
//! `go get` over the network). imgforge builds only what the payload needs and only from
//! `vendor/`, as gotools.mk does for protoc-gen-go:
//! `GOBIN=$(abspath $(GOTOOLS_BINDIR)) go install ./vendor/github.com/golang/protobuf/protoc-gen-go`.
//!
//! | input | output |
//! |---|---|
//! | the tree's `vendor/<path>` | `$(BUILD_DIR)/docker/gotools/bin/<tool>` |

use super::compile::drun;
use super::{
    files_only, mkdir_p, Cx, Input, Op, Output, PayloadFile, PayloadKind, Planner, Produced,
};
use crate::engine::Engine;
use crate::error::Error;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use std::path::PathBuf;

/// Where the tools land, relative to `$(BUILD_DIR)` (`GOTOOLS_BINDIR` of Fabric's gotools.mk
/// run in the baseimage).
pub const BIN: &str = "docker/gotools/bin";

/// The id of the one step that builds every tool of an image.
pub const ID: &str = "gotools";

/// Payload kind `gotool`: one Go tool built from the tree's `vendor/`
/// (`$(BUILD_DIR)/docker/gotools/bin/<file>`), e.g. `protoc-gen-go`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gotool {
    /// Package path relative to the tree root, starting with `vendor/`.
    pub package: String,
}

impl PayloadKind for Gotool {
    const KIND: &'static str = "gotool";

    fn plan<E: Engine>(self, file: &str, p: &mut Planner<'_, '_, E>) -> Result<PayloadFile, Error> {
        let id = plan_tools(p, std::slice::from_ref(&self.package))?;
        Ok(PayloadFile {
            path: p.cx.build_dir().join(BIN).join(file),
            producer: id,
        })
    }
}

/// Add `packages` to the image's one [`Gotools`] step (planned on first use); returns its id.
///
/// # Errors
///
/// [`Error::Internal`] when another step took the id `gotools`.
pub fn plan_tools<E: Engine>(
    p: &mut Planner<'_, '_, E>,
    packages: &[String],
) -> Result<String, Error> {
    let bin = p.cx.build_dir().join(BIN);
    let step = p
        .shared(ID, || Gotools {
            packages: Vec::new(),
            bin,
        })
        .ok_or_else(|| Error::Internal {
            step: ID.into(),
            message: "two kinds of step planned under the id gotools".into(),
        })?;
    step.packages.extend(packages.iter().cloned());
    step.packages.sort();
    step.packages.dedup();
    Ok(ID.into())
}

/// The step `gotools`: every vendored tool an image needs, in one container.
#[derive(Debug, Clone)]
pub struct Gotools {
    /// Package paths relative to the tree, sorted.
    pub packages: Vec<String>,
    /// `$(BUILD_DIR)/docker/gotools/bin`.
    pub bin: PathBuf,
}

fn tool_name(package: &str) -> &str {
    package.rsplit('/').next().unwrap_or(package)
}

impl<E: Engine> Op<E> for Gotools {
    fn id(&self) -> String {
        ID.into()
    }

    fn outputs(&self) -> Vec<Output> {
        self.packages
            .iter()
            .map(|p| Output::Path(self.bin.join(tool_name(p))))
            .collect()
    }

    fn inputs(&self, _cx: &Cx<'_, E>) -> Result<Vec<Input>, Error> {
        Ok(vec![
            Input::GoSources,
            Input::Value {
                name: "step:packages".into(),
                value: self.packages.join(" "),
            },
            Input::BaseImage("baseimage".into()),
        ])
    }

    fn run<'a>(
        &'a self,
        cx: &'a Cx<'a, E>,
        _fp: &'a str,
    ) -> BoxFuture<'a, Result<Produced, Error>> {
        files_only(gotools(cx, &self.packages))
    }
}

/// Build `packages` (paths relative to the tree, e.g. `vendor/github.com/golang/protobuf/protoc-gen-go`)
/// into `$(BUILD_DIR)/docker/gotools/bin`; returns that directory.
pub async fn gotools<E: Engine>(cx: &Cx<'_, E>, packages: &[String]) -> Result<PathBuf, Error> {
    let step = "gotools".to_string();
    for p in packages {
        if !cx.source().join(p).is_dir() {
            return Err(Error::Input {
                step,
                message: format!("{p} is not in the source tree"),
                hint: "gotools are built offline from the tree's vendor/ directory; check that the tree is complete".into(),
            });
        }
    }
    let image = cx.require_base(&step, "baseimage").await?;
    let dir = cx.build_dir().join("docker/gotools");
    let cache = cx.build_dir().join("docker/gocache");
    mkdir_p(&step, &dir.join("bin"))?;
    mkdir_p(&step, &cache)?;
    let mut cmd = vec!["go".to_string(), "install".to_string()];
    cmd.extend(packages.iter().map(|p| format!("./{p}")));
    let mut spec = drun(
        cx,
        &step,
        &image,
        cmd.clone(),
        vec![format!("{}:/opt/gotools", dir.display())],
        vec!["GOBIN=/opt/gotools/bin".into()],
        false,
    );
    spec.outputs = vec!["/opt/gotools".into()];
    let t = cx.start(
        &step,
        format!("{} in {image}", crate::engine::shell_join(&cmd)),
    );
    cx.engine
        .run(&spec, cx.reporter, cx.cancel)
        .await
        .map_err(|e| Error::engine(&step, e))?;
    let bin = dir.join("bin");
    t.finish(bin.display().to_string());
    Ok(bin)
}
