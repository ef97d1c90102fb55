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
use super::{mkdir_p, Cx};
use crate::engine::Engine;
use crate::error::Error;
use std::path::PathBuf;

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
    let spec = drun(
        cx,
        &step,
        &image,
        cmd.clone(),
        vec![format!("{}:/opt/gotools", dir.display())],
        vec!["GOBIN=/opt/gotools/bin".into()],
        false,
    );
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
