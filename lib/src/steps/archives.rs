//! **archives**: the `tar.bz2` payload files, deterministic.
//!
//! Replaces these Fabric release-1.4 Makefile rules:
//!
//! ```make
//! $(BUILD_DIR)/sampleconfig.tar.bz2: $(shell find sampleconfig -type f)
//!     (cd sampleconfig && tar -jc *) > $@
//! $(BUILD_DIR)/goshim.tar.bz2: $(GOSHIM_DEPS)     # GOSHIM_DEPS = scripts/goListFiles.sh …/core/chaincode/shim
//!     tar -jhc -C $(GOPATH)/src $(patsubst $(GOPATH)/src/%,%,$(GOSHIM_DEPS)) > $@
//! $(BUILD_DIR)/gotools.tar.bz2: $(BUILD_DIR)/docker/gotools
//!     (cd $</bin && tar -jc *) > $@
//! ```
//!
//! | output | input |
//! |---|---|
//! | `$(BUILD_DIR)/sampleconfig.tar.bz2` | `sampleconfig/` of the tree |
//! | `$(BUILD_DIR)/goshim.tar.bz2` | `go list` of the shim's deps, run in the baseimage; their `.go/.c/.h/.s` files |
//! | `$(BUILD_DIR)/gotools.tar.bz2` | `$(BUILD_DIR)/docker/gotools/bin/*` |
//!
//! Unlike `tar`, entries are sorted, owned by 0:0 and carry one fixed mtime
//! (`SOURCE_DATE_EPOCH`, else the tree's HEAD commit time), so the same tree gives the same
//! bytes. Files are written to a temporary file and renamed: a failure leaves no partial archive.

use super::compile::drun;
use super::{
    files_only, mkdir_p, Cx, Input, Op, Output, PayloadFile, PayloadKind, Planner, Produced,
};
use crate::archive::{
    finish_parallel_bzip2, goshim_entries, parallel_bzip2_encoder, write_atomic,
    write_file_list_archive, write_tree_archive, ArchiveError, ArchiveOptions,
};
use crate::config::PKGNAME;
use crate::engine::Engine;
use crate::error::Error;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The fingerprint input of every archive: its entries' mtime (`SOURCE_DATE_EPOCH`, else the
/// tree's HEAD commit time).
fn mtime_input<E: Engine>(cx: &Cx<'_, E>) -> Input {
    Input::Value {
        name: "var:SOURCE_DATE_EPOCH".into(),
        value: cx.mtime().to_string(),
    }
}

/// The id of the step that writes archive `file`.
fn archive_id(file: &str) -> String {
    format!("archives/{file}")
}

/// Plan the archive step `make(file, $(BUILD_DIR)/<file>)` for payload file `file`.
fn plan_archive<E: Engine, S: Op<E>>(
    p: &mut Planner<'_, '_, E>,
    file: &str,
    make: impl FnOnce(String, PathBuf) -> S,
) -> PayloadFile {
    let out = p.cx.build_dir().join(file);
    p.add(make(file.to_string(), out.clone()));
    PayloadFile {
        path: out,
        producer: archive_id(file),
    }
}

/// Payload kind `tree-archive`: `$(BUILD_DIR)/<file>` = deterministic tar.bz2 of a directory
/// of the tree (`sampleconfig.tar.bz2`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeArchive {
    /// Directory relative to the tree root.
    pub tree: String,
}

impl PayloadKind for TreeArchive {
    const KIND: &'static str = "tree-archive";

    fn plan<E: Engine>(self, file: &str, p: &mut Planner<'_, '_, E>) -> Result<PayloadFile, Error> {
        Ok(plan_archive(p, file, |file, out| TreeArchiveStep {
            tree: self.tree,
            file,
            out,
        }))
    }
}

/// The step `archives/<file>` of a [`TreeArchive`].
#[derive(Debug, Clone)]
pub struct TreeArchiveStep {
    /// Directory relative to the tree root.
    pub tree: String,
    /// Output file name.
    pub file: String,
    /// `$(BUILD_DIR)/<file>`.
    pub out: PathBuf,
}

impl<E: Engine> Op<E> for TreeArchiveStep {
    fn id(&self) -> String {
        archive_id(&self.file)
    }

    fn outputs(&self) -> Vec<Output> {
        vec![Output::Path(self.out.clone())]
    }

    fn inputs(&self, cx: &Cx<'_, E>) -> Result<Vec<Input>, Error> {
        // every entry the archiver writes: type, mode, link target, content
        Ok(vec![
            Input::TreeEntries {
                tree: self.tree.clone(),
                root: cx.source().join(&self.tree),
            },
            mtime_input(cx),
        ])
    }

    fn run<'a>(
        &'a self,
        cx: &'a Cx<'a, E>,
        _fp: &'a str,
    ) -> BoxFuture<'a, Result<Produced, Error>> {
        files_only(sampleconfig(cx, &self.tree, &self.file))
    }
}

/// Payload kind `source-tree`: `$(BUILD_DIR)/<file>` = an uncompressed tar of the whole
/// source tree less its `.dockerignore` and imgforge's build dir — what `ADD .` puts into an
/// image when the repository root is the build context (`make tools-docker`), as a payload file,
/// so the image can be assembled.
///
/// ```toml
/// [[payload]]
/// file = "tree.tar"
/// kind = "source-tree"
/// exclude = [".git"]     # more .dockerignore lines, after the tree's own
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTree {
    /// `.dockerignore` patterns added after the tree's own.
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl PayloadKind for SourceTree {
    const KIND: &'static str = "source-tree";

    fn plan<E: Engine>(self, file: &str, p: &mut Planner<'_, '_, E>) -> Result<PayloadFile, Error> {
        Ok(plan_archive(p, file, |file, out| SourceTreeStep {
            file,
            out,
            exclude: self.exclude,
        }))
    }
}

/// The step `archives/<file>` of a [`SourceTree`].
#[derive(Debug, Clone)]
pub struct SourceTreeStep {
    /// Output file name.
    pub file: String,
    /// `$(BUILD_DIR)/<file>`.
    pub out: PathBuf,
    /// `.dockerignore` patterns added after the tree's own.
    pub exclude: Vec<String>,
}

impl SourceTreeStep {
    /// The tree as archived: less its `.dockerignore`, [`SourceTreeStep::exclude`] and the
    /// build dir.
    fn context<E: Engine>(&self, cx: &Cx<'_, E>) -> Result<crate::engine::TreeContext, Error> {
        let step = archive_id(&self.file);
        let mut tc = super::image::source_context(cx, &step)?;
        tc.ignore = tc.ignore.with(&self.exclude).map_err(|e| Error::Input {
            step,
            message: format!("exclude of payload file {}: {e}", self.file),
            hint: "fix the pattern (Docker's .dockerignore syntax) in the payload spec".into(),
        })?;
        Ok(tc)
    }
}

impl<E: Engine> Op<E> for SourceTreeStep {
    fn id(&self) -> String {
        archive_id(&self.file)
    }

    fn outputs(&self) -> Vec<Output> {
        vec![Output::Path(self.out.clone())]
    }

    fn inputs(&self, cx: &Cx<'_, E>) -> Result<Vec<Input>, Error> {
        // every entry the archive holds: the tree less .dockerignore and the build dir
        Ok(vec![
            Input::Context(self.context(cx)?),
            Input::Value {
                name: "step:exclude".into(),
                value: self.exclude.join("\n"),
            },
            mtime_input(cx),
        ])
    }

    fn run<'a>(
        &'a self,
        cx: &'a Cx<'a, E>,
        _fp: &'a str,
    ) -> BoxFuture<'a, Result<Produced, Error>> {
        files_only(async move {
            let step = archive_id(&self.file);
            let tc = self.context(cx)?;
            let t = cx.start(
                &step,
                format!(
                    "tar -c of {} less its .dockerignore → {}",
                    tc.root.display(),
                    self.out.display()
                ),
            );
            if let Some(p) = self.out.parent() {
                mkdir_p(&step, p)?;
            }
            let (dest, mtime) = (self.out.clone(), cx.mtime());
            let size = blocking(&step, move || {
                write_atomic(&dest, |w| {
                    crate::archive::write_context_archive(
                        &tc.root,
                        w,
                        &ArchiveOptions { mtime },
                        &tc.ignore,
                        &tc.skip,
                        &[],
                    )?;
                    Ok(())
                })
            })
            .await?;
            t.finish(format!("{} ({size} bytes)", self.out.display()));
            Ok(())
        })
    }
}

/// Payload kind `goshim`: `$(BUILD_DIR)/<file>` = Go sources of `target` and of its
/// dependencies, relative to `$GOPATH/src` (`goshim.tar.bz2`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goshim {
    /// Package directory relative to the tree root, e.g. `core/chaincode/shim`.
    pub target: String,
}

impl PayloadKind for Goshim {
    const KIND: &'static str = "goshim";

    fn plan<E: Engine>(self, file: &str, p: &mut Planner<'_, '_, E>) -> Result<PayloadFile, Error> {
        Ok(plan_archive(p, file, |file, out| GoshimStep {
            target: self.target,
            file,
            out,
        }))
    }
}

/// The step `archives/<file>` of a [`Goshim`].
#[derive(Debug, Clone)]
pub struct GoshimStep {
    /// Package directory relative to the tree root.
    pub target: String,
    /// Output file name.
    pub file: String,
    /// `$(BUILD_DIR)/<file>`.
    pub out: PathBuf,
}

impl<E: Engine> Op<E> for GoshimStep {
    fn id(&self) -> String {
        archive_id(&self.file)
    }

    fn outputs(&self) -> Vec<Output> {
        vec![Output::Path(self.out.clone())]
    }

    fn inputs(&self, cx: &Cx<'_, E>) -> Result<Vec<Input>, Error> {
        Ok(vec![
            Input::GoSources,
            Input::Value {
                name: "step:target".into(),
                value: self.target.clone(),
            },
            mtime_input(cx),
            Input::BaseImage("baseimage".into()),
        ])
    }

    fn run<'a>(
        &'a self,
        cx: &'a Cx<'a, E>,
        _fp: &'a str,
    ) -> BoxFuture<'a, Result<Produced, Error>> {
        files_only(goshim(cx, &self.target, &self.file))
    }
}

/// Payload kind `gotools-archive`: `$(BUILD_DIR)/<file>` = every tool of
/// `$(BUILD_DIR)/docker/gotools/bin`, flat (`gotools.tar.bz2`), after the [`super::gotools`]
/// step built `packages`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GotoolsArchive {
    /// The tools to build first (package paths relative to the tree, under `vendor/`).
    pub packages: Vec<String>,
}

impl PayloadKind for GotoolsArchive {
    const KIND: &'static str = "gotools-archive";

    fn plan<E: Engine>(self, file: &str, p: &mut Planner<'_, '_, E>) -> Result<PayloadFile, Error> {
        let tools = super::gotools::plan_tools(p, &self.packages)?;
        let bin = p.cx.build_dir().join(super::gotools::BIN);
        Ok(plan_archive(p, file, |file, out| GotoolsArchiveStep {
            file,
            bin,
            out,
            tools,
        }))
    }
}

/// The step `archives/<file>` of a [`GotoolsArchive`].
#[derive(Debug, Clone)]
pub struct GotoolsArchiveStep {
    /// Output file name.
    pub file: String,
    /// `$(BUILD_DIR)/docker/gotools/bin`.
    pub bin: PathBuf,
    /// `$(BUILD_DIR)/<file>`.
    pub out: PathBuf,
    /// The step that builds the tools.
    pub tools: String,
}

impl<E: Engine> Op<E> for GotoolsArchiveStep {
    fn id(&self) -> String {
        archive_id(&self.file)
    }

    fn deps(&self) -> Vec<String> {
        vec![self.tools.clone()]
    }

    fn outputs(&self) -> Vec<Output> {
        vec![Output::Path(self.out.clone())]
    }

    fn inputs(&self, cx: &Cx<'_, E>) -> Result<Vec<Input>, Error> {
        Ok(vec![
            Input::Dir {
                prefix: format!("output:{}", self.tools),
                path: self.bin.clone(),
                modes: true,
            },
            mtime_input(cx),
        ])
    }

    fn run<'a>(
        &'a self,
        cx: &'a Cx<'a, E>,
        _fp: &'a str,
    ) -> BoxFuture<'a, Result<Produced, Error>> {
        files_only(gotools_archive(cx, &self.bin, &self.file))
    }
}

async fn blocking<T: Send + 'static>(
    step: &str,
    f: impl FnOnce() -> Result<T, ArchiveError> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::join(step, e))?
        .map_err(|e| Error::archive(step, e))
}

/// Write a deterministic `tar.bz2` of directory `dir` (entries relative to it, no `./`) to
/// `dest`, atomically. Returns the archive size in bytes.
pub async fn tree_tar_bz2(step: &str, dir: &Path, dest: &Path, mtime: u64) -> Result<u64, Error> {
    if !dir.is_dir() {
        return Err(Error::Input {
            step: step.into(),
            message: format!("{} is not a directory", dir.display()),
            hint:
                "is --source a Fabric tree? it must contain the directory named in the payload spec"
                    .into(),
        });
    }
    if let Some(p) = dest.parent() {
        mkdir_p(step, p)?;
    }
    let (dir, dest) = (dir.to_path_buf(), dest.to_path_buf());
    blocking(step, move || {
        write_atomic(&dest, |w| {
            let mut bz = parallel_bzip2_encoder(w, 0);
            write_tree_archive(&dir, &mut bz, &ArchiveOptions { mtime })?;
            finish_parallel_bzip2(bz)?;
            Ok(())
        })
    })
    .await
}

/// `$(BUILD_DIR)/sampleconfig.tar.bz2` from the tree's `tree` directory (`sampleconfig`).
pub async fn sampleconfig<E: Engine>(
    cx: &Cx<'_, E>,
    tree: &str,
    file: &str,
) -> Result<PathBuf, Error> {
    let step = format!("archives/{file}");
    let dest = cx.build_dir().join(file);
    let t = cx.start(&step, format!("tar -jc of {tree}/ → {}", dest.display()));
    let size = tree_tar_bz2(&step, &cx.source().join(tree), &dest, cx.mtime()).await?;
    t.finish(format!("{} ({size} bytes)", dest.display()));
    Ok(dest)
}

/// `$(BUILD_DIR)/goshim.tar.bz2`: runs `go list -f '{{ join .Deps "\n" }}' $(PKGNAME)/<target>/...`
/// in the baseimage (with `GO111MODULE=off`, without which Go ≥ 1.16 silently lists nothing),
/// then archives every `.go .c .h .s` file under the target and under each dependency that is
/// in the tree, named relative to `$GOPATH/src`, as Fabric's `scripts/goListFiles.sh` (v1.4.2+) does.
pub async fn goshim<E: Engine>(cx: &Cx<'_, E>, target: &str, file: &str) -> Result<PathBuf, Error> {
    let step = format!("archives/{file}");
    if !cx.source().join(target).is_dir() {
        return Err(Error::Input {
            step,
            message: format!("{target} is not in the source tree"),
            hint: "is --source a Fabric tree?".into(),
        });
    }
    let image = cx.require_base(&step, "baseimage").await?;
    let cache = cx.build_dir().join("docker/gocache");
    mkdir_p(&step, &cache)?;
    let cmd = vec![
        "go".to_string(),
        "list".to_string(),
        "-f".to_string(),
        "{{ join .Deps \"\\n\" }}".to_string(),
        format!("{PKGNAME}/{target}/..."),
    ];
    let t = cx.start(
        &step,
        format!("{} in {image}", crate::engine::shell_join(&cmd)),
    );
    let mut spec = drun(cx, &step, &image, cmd, vec![], vec![], true);
    spec.capture_stdout = true;
    let out = cx
        .engine
        .run(&spec, cx.reporter, cx.cancel)
        .await
        .map_err(|e| Error::engine(&step, e))?;
    let deps: Vec<String> = out
        .stdout
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let dest = cx.build_dir().join(file);
    let (src, target, mtime, d) = (cx.source(), target.to_string(), cx.mtime(), dest.clone());
    let (files, size) = blocking(&step, move || {
        let entries = goshim_entries(&src, PKGNAME, &target, &deps)?;
        let n = entries.len();
        let size = write_atomic(&d, |w| {
            let mut bz = parallel_bzip2_encoder(w, 0);
            write_file_list_archive(&entries, &mut bz, &ArchiveOptions { mtime })?;
            finish_parallel_bzip2(bz)?;
            Ok(())
        })?;
        Ok((n, size))
    })
    .await?;
    t.finish(format!("{} ({files} files, {size} bytes)", dest.display()));
    Ok(dest)
}

/// `$(BUILD_DIR)/gotools.tar.bz2`: every file of the gotools `bin` directory, flat.
pub async fn gotools_archive<E: Engine>(
    cx: &Cx<'_, E>,
    bin: &Path,
    file: &str,
) -> Result<PathBuf, Error> {
    let step = format!("archives/{file}");
    let dest = cx.build_dir().join(file);
    let t = cx.start(
        &step,
        format!("tar -jc of {} → {}", bin.display(), dest.display()),
    );
    let size = tree_tar_bz2(&step, bin, &dest, cx.mtime()).await?;
    t.finish(format!("{} ({size} bytes)", dest.display()));
    Ok(dest)
}
