//! **tree-file**: one file of the source tree as a payload file.
//!
//! Replaces the single-file `COPY`s of Fabric 2.x/3.x runtime stages (v2.5.13
//! `images/peer/Dockerfile`: `COPY --from=builder sampleconfig/core.yaml
//! ${FABRIC_CFG_PATH}/core.yaml`; `images/orderer/Dockerfile`: `sampleconfig/orderer.yaml`,
//! `sampleconfig/configtx.yaml`), whose builder stage holds the tree (`ADD . .`).
//!
//! | input | output |
//! |---|---|
//! | `<tree>/<path>` | `$(BUILD_DIR)/tree-files/<file>` (written under a temporary name, renamed) |
//!
//! A path that is, or goes through, a symbolic link leaving the tree is refused.

use super::{mkdir_p, Cx, Input, Op, Output, PayloadFile, PayloadKind, Planner, Produced};
use crate::engine::Engine;
use crate::error::Error;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use std::path::PathBuf;

/// Payload kind `tree-file`: a copy of one file of the tree.
///
/// ```toml
/// [[payload]]
/// file = "core.yaml"
/// kind = "tree-file"
/// path = "sampleconfig/core.yaml"    # relative to the tree root
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeFile {
    /// File relative to the tree root.
    pub path: String,
}

impl PayloadKind for TreeFile {
    const KIND: &'static str = "tree-file";

    fn plan<E: Engine>(self, file: &str, p: &mut Planner<'_, '_, E>) -> Result<PayloadFile, Error> {
        let rel = std::path::Path::new(&self.path);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(Error::Input {
                step: "spec".into(),
                message: format!(
                    "payload file {file}: path {:?} is not a path inside the tree",
                    self.path
                ),
                hint: "write it relative to the tree root, without `..`, e.g. \"sampleconfig/core.yaml\"".into(),
            });
        }
        let op = CopyTreeFile {
            file: file.to_string(),
            path: self.path,
            out: p.cx.build_dir().join("tree-files").join(file),
        };
        let pf = PayloadFile {
            path: op.out.clone(),
            producer: format!("tree-file/{file}"),
        };
        p.add(op);
        Ok(pf)
    }
}

/// The step `tree-file/<file>`.
#[derive(Debug, Clone)]
pub struct CopyTreeFile {
    /// Payload file name.
    pub file: String,
    /// Path relative to the tree root.
    pub path: String,
    /// `$(BUILD_DIR)/tree-files/<file>`.
    pub out: PathBuf,
}

impl CopyTreeFile {
    /// The file in the tree, checked: a regular file, not reached through a link that leaves
    /// the tree.
    fn source<E: Engine>(&self, cx: &Cx<'_, E>) -> Result<PathBuf, Error> {
        let step = format!("tree-file/{}", self.file);
        let src = cx.source();
        let p = src.join(&self.path);
        let missing = |what: String| {
            Error::Input {
            step: step.clone(),
            message: format!("{} {what}", p.display()),
            hint: format!(
                "the payload spec copies {} of the tree into the image: check the tree, or the spec",
                self.path
            ),
        }
        };
        let real =
            std::fs::canonicalize(&p).map_err(|e| missing(format!("cannot be read: {e}")))?;
        let root = std::fs::canonicalize(&src).unwrap_or(src);
        if !real.starts_with(&root) {
            return Err(missing(format!(
                "resolves to {}, outside the tree",
                real.display()
            )));
        }
        if !real.is_file() {
            return Err(missing("is not a regular file".into()));
        }
        Ok(real)
    }
}

impl<E: Engine> Op<E> for CopyTreeFile {
    fn id(&self) -> String {
        format!("tree-file/{}", self.file)
    }

    fn outputs(&self) -> Vec<Output> {
        vec![Output::Path(self.out.clone())]
    }

    fn inputs(&self, cx: &Cx<'_, E>) -> Result<Vec<Input>, Error> {
        Ok(vec![Input::File {
            name: format!("file:{}", self.path),
            path: self.source(cx)?,
        }])
    }

    fn preflight(&self, cx: &Cx<'_, E>) -> Result<(), Error> {
        self.source(cx).map(|_| ())
    }

    fn run<'a>(
        &'a self,
        cx: &'a Cx<'a, E>,
        _fp: &'a str,
    ) -> BoxFuture<'a, Result<Produced, Error>> {
        Box::pin(async move {
            let step = <Self as Op<E>>::id(self);
            let src = self.source(cx)?;
            let dir = self.out.parent().expect("under the build dir");
            mkdir_p(&step, dir)?;
            let t = cx.start(&step, format!("copy {}", self.path));
            let tmp = dir.join(format!(".{}.imgforge-tmp", self.file));
            std::fs::copy(&src, &tmp).map_err(|e| Error::io(&step, "copy", &src, e))?;
            std::fs::rename(&tmp, &self.out)
                .map_err(|e| Error::io(&step, "move into place", &tmp, e))?;
            t.finish(self.out.display().to_string());
            Ok(Produced::default())
        })
    }
}
