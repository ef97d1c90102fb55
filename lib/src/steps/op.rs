//! What a step is to the pipeline: an [`Op`] that declares its inputs and outputs and runs
//! itself.
//!
//! As BuildKit's solver ops (`CacheMap` + `Exec` per op) and cargo's `Unit`: the pipeline
//! ([`crate::pipeline`]) schedules ops by their [`Op::deps`], turns each one's declared
//! [`Input`]s into its fingerprint, checks its declared [`Output`]s for freshness, and calls
//! [`Op::run`] only when something changed. It never asks what kind of step an op is.
//!
//! A step declares the values it builds its command from with [`crate::config::BuildVars::traced`]:
//! the same function makes the command and, run over traced variables, the list of variables
//! the fingerprint holds, so the two cannot drift apart.
//!
//! Payload entries of a spec (`kind = "binary"`, …) are turned into ops by the kinds in
//! [`registry`]: one line per kind, each pointing at the module that implements it.

use super::Cx;
use crate::engine::{Engine, TreeContext};
use crate::error::Error;
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::path::PathBuf;

/// One input of a step's fingerprint, declared by the step and resolved by the pipeline.
/// Names are those of [`crate::fingerprint::Fingerprint::inputs`] (`var:`, `file:`, `image:`,
/// `output:`, `step:`, `template`).
#[derive(Debug, Clone)]
pub enum Input {
    /// A build variable by Make name: `var:<NAME>` = its value.
    Var(String),
    /// A value the step computed (its parameters, a template digest): `name` = `value`.
    Value {
        /// Full input name, e.g. `step:package`.
        name: String,
        /// Its value.
        value: String,
    },
    /// Every Go build input of the tree (`.go .c .h .s …`, less the build dir):
    /// `file:<relative path>` = content digest. Walked once per run, shared by every step.
    GoSources,
    /// One file: `name` = sha256 of its content. A missing file is an error of the step.
    File {
        /// Input name, e.g. `output:render/peer` or `step:chaintool`.
        name: String,
        /// The file.
        path: PathBuf,
    },
    /// Every file under a directory: `<prefix>#<relative path>` = content digest, followed by
    /// ` <octal mode>` when `modes`.
    Dir {
        /// Name prefix, e.g. `output:gotools`.
        prefix: String,
        /// The directory.
        path: PathBuf,
        /// Whether permission bits count.
        modes: bool,
    },
    /// A directory of the tree archived as it is (`sampleconfig`): `file:<tree>/<rel>` =
    /// type, mode, link target or content digest of every entry. A link that leaves the
    /// directory is the step's error.
    TreeEntries {
        /// Directory relative to the tree root.
        tree: String,
        /// Its absolute path.
        root: PathBuf,
    },
    /// The repository-root build context (`context = "tree"`): `file:<rel>` of every entry
    /// the context archive sends (the tree less `.dockerignore` and the build dir).
    Context(TreeContext),
    /// A base image by spec name (`baseos`, `baseimage`): `image:<reference>` = its image ID
    /// (`missing` when absent). The pipeline also checks before any work that it is in the
    /// engine ([`crate::pipeline::preflight_all`]).
    BaseImage(String),
    /// The first line of a host program's output (the host `go version` of a native build):
    /// `name` = that output.
    HostCommand {
        /// Input name.
        name: String,
        /// Program.
        program: String,
        /// Its arguments.
        args: Vec<String>,
    },
}

impl Input {
    /// [`Input::Var`] for every variable `make` reads from `vars`: run the function that makes
    /// a step's command (or values) over traced variables, so the fingerprint names exactly
    /// what the command is made of.
    pub fn vars_read_by<T>(
        vars: &crate::config::BuildVars,
        make: impl FnOnce(&crate::config::BuildVars) -> T,
    ) -> Vec<Input> {
        let (traced, reads) = vars.traced();
        make(&traced);
        reads.names().into_iter().map(Input::Var).collect()
    }
}

/// The run of a step that produces only files: `work`, then nothing to give back.
pub fn files_only<'a, T>(
    work: impl std::future::Future<Output = Result<T, Error>> + Send + 'a,
) -> BoxFuture<'a, Result<Produced, Error>> {
    Box::pin(async move {
        work.await?;
        Ok(Produced::default())
    })
}

/// What a step produces, checked for freshness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A file or directory: recorded by content digest after the step succeeded; a missing
    /// or changed one makes the step stale.
    Path(PathBuf),
    /// An image built under `reference` (the first tag): recorded by image ID; fresh only while
    /// that very image is in the engine carrying the step's fingerprint label.
    Image {
        /// The reference named when it is missing.
        reference: String,
    },
}

/// What a step's run (or its reuse when fresh) gives back to the caller.
#[derive(Debug, Clone, Default)]
pub struct Produced {
    /// The image built or reused: its ID and the references pointing at it.
    pub image: Option<(String, Vec<String>)>,
}

/// A step of the flow: declares what it reads and writes, and does its work.
///
/// Implementations are plain values (`'static`), one per module of [`crate::steps`].
pub trait Op<E: Engine>: Any + Send + Sync {
    /// Identifier, `<module>/<name>` (`compile/peer`, `archives/goshim.tar.bz2`, `gotools`):
    /// names the step in events, errors, `plan` and the fingerprint store.
    fn id(&self) -> String;

    /// Steps that must finish first (by id).
    fn deps(&self) -> Vec<String> {
        Vec::new()
    }

    /// What the step produces.
    fn outputs(&self) -> Vec<Output>;

    /// What the step reads, for its fingerprint. Cheap and without side effects: no engine
    /// call, no walk (the pipeline resolves [`Input`]s); it may read a small file (a template).
    ///
    /// # Errors
    ///
    /// The step's own error when an input cannot be named (no template, an invalid tag).
    fn inputs(&self, cx: &Cx<'_, E>) -> Result<Vec<Input>, Error>;

    /// Checks that need no engine, run before any step starts (a missing `--chaintool`, an
    /// invalid tag), so bad input fails at once and not after minutes of compiling.
    ///
    /// # Errors
    ///
    /// [`Error::Input`] or [`Error::Config`] naming what is wrong.
    fn preflight(&self, _cx: &Cx<'_, E>) -> Result<(), Error> {
        Ok(())
    }

    /// Checks that need the engine but run nothing (inspecting an image), run before any step
    /// starts and after the base images were found: a build image whose Go is older than the
    /// tree's go.mod asks for. Nothing by default.
    ///
    /// # Errors
    ///
    /// [`Error::Input`] naming what is wrong; the engine's error.
    fn preflight_engine<'a>(&'a self, _cx: &'a Cx<'a, E>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    /// Do the work. `fingerprint` is the key of the step's current fingerprint (the image step
    /// labels its image with it).
    fn run<'a>(
        &'a self,
        cx: &'a Cx<'a, E>,
        fingerprint: &'a str,
    ) -> BoxFuture<'a, Result<Produced, Error>>;

    /// The step is fresh: give back what it produced last time (the image step re-points its
    /// tags at the recorded image `image_id`). Does nothing by default.
    fn reuse<'a>(
        &'a self,
        _cx: &'a Cx<'a, E>,
        _image_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Produced, Error>> {
        Box::pin(async { Ok(Produced::default()) })
    }
}

/// A payload file of an image and the step that makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFile {
    /// Where the producing step writes it.
    pub path: PathBuf,
    /// The producing step's id.
    pub producer: String,
}

/// Collects the ops of one image, in order, while payload kinds add theirs.
pub struct Planner<'c, 'a, E: Engine> {
    /// The build's context (variables and options decide paths).
    pub cx: &'c Cx<'a, E>,
    /// The image being planned.
    pub image: String,
    ops: Vec<Box<dyn Op<E>>>,
}

impl<'c, 'a, E: Engine> Planner<'c, 'a, E> {
    /// An empty plan.
    pub fn new(cx: &'c Cx<'a, E>, image: &str) -> Self {
        Planner {
            cx,
            image: image.to_string(),
            ops: Vec::new(),
        }
    }

    /// Add `op` unless an op with its id is already planned (two payload files made by one
    /// step: the step runs once).
    pub fn add(&mut self, op: impl Op<E>) {
        let id = op.id();
        if !self.ops.iter().any(|o| o.id() == id) {
            self.ops.push(Box::new(op));
        }
    }

    /// The planned op `id` of type `T`, added by `make` first if there is none: for a step
    /// several payload entries contribute to (`gotools` builds every tool of the image in one
    /// container). `None` when `id` is taken by an op of another type.
    pub fn shared<T: Op<E>>(&mut self, id: &str, make: impl FnOnce() -> T) -> Option<&mut T> {
        let at = match self.ops.iter().position(|o| o.id() == id) {
            Some(i) => i,
            None => {
                self.ops.push(Box::new(make()));
                self.ops.len() - 1
            }
        };
        let any: &mut dyn Any = self.ops[at].as_mut();
        any.downcast_mut::<T>()
    }

    /// The ops, in the order they were added.
    pub fn finish(self) -> Vec<Box<dyn Op<E>>> {
        self.ops
    }
}

/// A payload entry's kind (`kind = "binary"` in a spec): its parameters, parsed from the
/// entry's other keys with unknown keys refused, and how it plans the step that makes the file.
pub trait PayloadKind: DeserializeOwned {
    /// The `kind` value in specs.
    const KIND: &'static str;

    /// Plan the step(s) that make payload file `file` and say where it will be.
    ///
    /// # Errors
    ///
    /// [`Error::Input`] when the entry cannot be planned.
    fn plan<E: Engine>(
        self,
        file: &str,
        planner: &mut Planner<'_, '_, E>,
    ) -> Result<PayloadFile, Error>;
}

/// A registered payload kind, as function pointers (one entry of [`registry`]).
pub struct KindEntry<E: Engine> {
    /// The `kind` value in specs.
    pub name: &'static str,
    /// Parse the parameters only (spec validation): the parser's message on failure.
    pub check: fn(&toml::Table) -> Result<(), String>,
    /// Parse and plan.
    pub plan: fn(&toml::Table, &str, &mut Planner<'_, '_, E>) -> Result<PayloadFile, Error>,
}

fn parse<K: PayloadKind>(params: &toml::Table) -> Result<K, String> {
    toml::Value::Table(params.clone())
        .try_into::<K>()
        .map_err(|e| e.to_string().trim().to_string())
}

impl<E: Engine> KindEntry<E> {
    /// The entry of kind `K`.
    pub fn of<K: PayloadKind>() -> Self {
        KindEntry {
            name: K::KIND,
            check: |t| parse::<K>(t).map(|_| ()),
            plan: |t, file, planner| {
                let k = parse::<K>(t).map_err(|message| Error::Input {
                    step: "spec".into(),
                    message: format!("payload file {file}: {message}"),
                    hint: "fix the payload spec".into(),
                })?;
                k.plan(file, planner)
            },
        }
    }
}

/// Every payload kind imgforge knows: adding a step kind is a module and a line here.
pub fn registry<E: Engine>() -> Vec<KindEntry<E>> {
    vec![
        KindEntry::of::<super::compile::Binary>(),
        KindEntry::of::<super::archives::TreeArchive>(),
        KindEntry::of::<super::archives::Goshim>(),
        KindEntry::of::<super::gotools::Gotool>(),
        KindEntry::of::<super::archives::GotoolsArchive>(),
        KindEntry::of::<super::archives::SourceTree>(),
        KindEntry::of::<super::chaintool::Chaintool>(),
        KindEntry::of::<super::gomod::ModuleBinary>(),
        KindEntry::of::<super::ccaas::CcaasBuilder>(),
        KindEntry::of::<super::tree_file::TreeFile>(),
    ]
}

/// The kind names of [`registry`], for spec validation and messages.
pub fn kind_names() -> Vec<&'static str> {
    registry::<crate::engine::docker::LazyDockerEngine>()
        .iter()
        .map(|k| k.name)
        .collect()
}

/// Check `params` against kind `kind`: `Err(None)` when the kind is unknown, `Err(Some(msg))`
/// when the parameters do not fit it.
pub fn check_kind(kind: &str, params: &toml::Table) -> Result<(), Option<String>> {
    let reg = registry::<crate::engine::docker::LazyDockerEngine>();
    let k = reg.iter().find(|k| k.name == kind).ok_or(None)?;
    (k.check)(params).map_err(Some)
}
