//! The whole flow for one Fabric image, as a graph of steps with explained freshness.
//!
//! [`plan`] turns a payload spec into steps ([`Op`]s: what `make peer-docker` would run, and in
//! which order); [`explain`] says for each whether it is fresh or why it is stale, without
//! running anything (`imgforge plan`); [`build`] runs the stale ones — steps that do not depend
//! on each other (compile, archives, render, chaintool) at the same time — and records their
//! fingerprints (`fingerprint` module).
//!
//! The pipeline knows steps only by what they declare ([`Op::deps`], [`Op::inputs`],
//! [`Op::outputs`]): it resolves the declared inputs into fingerprints, checks the declared
//! outputs, and never asks what kind of step it runs.
//!
//! ```text
//! render/<name> ───────────────────────────────────────────────┐
//! compile/<bin> · archives/<file> · gotools · chaintool ─▶ payload/<name> ─▶ image/<name>
//! ```

use crate::archive::ArchiveError;
use crate::engine::{Engine, LABEL_FINGERPRINT};
use crate::error::Error;
use crate::event::Event;
use crate::fingerprint::files::{list_files, FileDigests};
use crate::fingerprint::{compare, Fingerprint, Freshness, StaleReason, Store};
use crate::spec::ImageSpec;
use crate::steps::{image, payload, registry, render, Cx, Input, Op, Output, Planner, Produced};
use crate::task::check;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Key of the image ID in a recorded image step's outputs.
const IMAGE_ID: &str = "image_id";

/// Bumped when a step's behaviour changes, so old fingerprints do not count as fresh.
const STEP_VERSION: &str = "4";

/// File suffixes of Go build inputs (what `go install` and `go list` read).
const GO_SUFFIXES: &[&str] = &[
    ".go", ".c", ".h", ".s", ".S", ".syso", ".cc", ".cpp", ".hh", ".hpp",
];

/// The steps of one image, in a valid order.
pub type Plan<E> = Vec<Box<dyn Op<E>>>;

/// What a finished image build produced.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// Image name (`peer`).
    pub name: String,
    /// Image ID (empty when the image step was not part of the run).
    pub id: String,
    /// References now pointing at it.
    pub references: Vec<String>,
    /// The rendered Dockerfile.
    pub dockerfile: PathBuf,
    /// The payload directory.
    pub payload: PathBuf,
    /// Steps that ran (the others were fresh).
    pub ran: Vec<String>,
}

/// The steps that build `spec`, in a valid order: `render/<name>`, the steps each payload
/// entry's kind plans ([`registry`]), `payload/<name>`, `image/<name>`. Pure: reads nothing,
/// runs nothing.
///
/// # Errors
///
/// [`Error::Input`] (step `spec`) for a payload kind imgforge does not know, for parameters
/// that do not fit their kind, and for steps whose dependencies are missing or form a cycle.
pub fn plan<E: Engine>(cx: &Cx<'_, E>, spec: &ImageSpec) -> Result<Plan<E>, Error> {
    let build = cx.build_dir();
    let name = &spec.image;
    let dir = build.join("image").join(name);
    let mut p = Planner::new(cx, name);
    p.add(render::Render {
        name: name.clone(),
        template: spec.template.clone(),
        own: spec.own_template(),
        out: dir.join("Dockerfile"),
    });
    let kinds = registry::<E>();
    let mut files = Vec::new();
    for e in &spec.payload {
        let kind = kinds
            .iter()
            .find(|k| k.name == e.kind)
            .ok_or_else(|| Error::Input {
                step: "spec".into(),
                message: format!(
                    "{}: payload file {} has kind {:?}: expected one of {}",
                    spec.origin(),
                    e.file,
                    e.kind,
                    kinds.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
                ),
                hint: "fix the payload spec".into(),
            })?;
        files.push((e.file.clone(), (kind.plan)(&e.params, &e.file, &mut p)?));
    }
    p.add(payload::Payload {
        name: name.clone(),
        files,
        out: dir.join("payload"),
    });
    p.add(image::Image::new(cx, spec));
    let ops = p.finish();
    check_graph(spec, &ops)?;
    Ok(ops)
}

/// Every dependency is a step of the plan, planned before the step that needs it: the order
/// of the plan is then a valid run order, and there is no cycle.
fn check_graph<E: Engine>(spec: &ImageSpec, ops: &[Box<dyn Op<E>>]) -> Result<(), Error> {
    let ids: Vec<String> = ops.iter().map(|o| o.id()).collect();
    for (i, op) in ops.iter().enumerate() {
        for d in op.deps() {
            match ids.iter().position(|x| *x == d) {
                Some(j) if j < i => {}
                Some(_) => {
                    return Err(Error::Input {
                        step: "spec".into(),
                        message: format!(
                            "{}: step {} depends on {d}, which comes after it (dependency cycle or order)",
                            spec.origin(),
                            ids[i]
                        ),
                        hint: "list the payload entries in an order where each step's dependencies come first".into(),
                    })
                }
                None => {
                    return Err(Error::Input {
                        step: "spec".into(),
                        message: format!(
                            "{}: step {} depends on {d}, which is not planned",
                            spec.origin(),
                            ids[i]
                        ),
                        hint: "this is a bug in the step's module".into(),
                    })
                }
            }
        }
    }
    Ok(())
}

/// The paths among `outputs`.
fn paths(outputs: &[Output]) -> impl Iterator<Item = &PathBuf> {
    outputs.iter().filter_map(|o| match o {
        Output::Path(p) => Some(p),
        Output::Image { .. } => None,
    })
}

/// The image reference among `outputs`, if the step builds an image.
fn image_output(outputs: &[Output]) -> Option<&str> {
    outputs.iter().find_map(|o| match o {
        Output::Image { reference } => Some(reference.as_str()),
        Output::Path(_) => None,
    })
}

/// Computes fingerprints; shared by the steps of one run.
struct Fingerprinter {
    digests: Arc<FileDigests>,
    go_sources: tokio::sync::OnceCell<BTreeMap<String, String>>,
    images: Mutex<HashMap<String, Option<String>>>,
    store: Store,
    build_dir: PathBuf,
}

fn io_err(step: &str, path: &Path, e: std::io::Error) -> Error {
    Error::archive(
        step,
        ArchiveError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    )
}

impl Fingerprinter {
    fn new(build_dir: &Path) -> Self {
        Fingerprinter {
            digests: Arc::new(FileDigests::load(
                &build_dir.join(".imgforge/stat-cache.json"),
            )),
            go_sources: tokio::sync::OnceCell::new(),
            images: Mutex::new(HashMap::new()),
            store: Store::new(build_dir),
            build_dir: build_dir.to_path_buf(),
        }
    }

    /// Digests of the tree's Go build inputs (`file:<relative path>`), computed once per run.
    async fn go_sources<E: Engine>(
        &self,
        cx: &Cx<'_, E>,
        step: &str,
    ) -> Result<&BTreeMap<String, String>, Error> {
        self.go_sources
            .get_or_try_init(|| async {
                let (src, build, name) = (cx.source(), cx.build_dir(), step.to_string());
                self.offload(cx, step, move |d, cancel| {
                    let step = name.as_str();
                    let files = list_files(&src, GO_SUFFIXES, &[build])
                        .map_err(|e| io_err(step, &src, e))?;
                    let mut map = BTreeMap::new();
                    for f in files {
                        check(cancel)?;
                        let abs = src.join(&f);
                        map.insert(format!("file:{}", f.display()), digest(d, step, &abs)?);
                    }
                    Ok(map)
                })
                .await
            })
            .await
    }

    /// Run file work (walks, hashing) for `step` on the blocking pool, with this run's digest
    /// cache; the wait ends at once when the run is cancelled.
    async fn offload<T, E, F>(&self, cx: &Cx<'_, E>, step: &str, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        E: Engine,
        F: FnOnce(&FileDigests, &CancellationToken) -> Result<T, Error> + Send + 'static,
    {
        let d = self.digests.clone();
        crate::task::blocking(step, cx.cancel, move |cancel| f(&d, &cancel)).await
    }

    async fn image_id<E: Engine>(
        &self,
        cx: &Cx<'_, E>,
        step: &str,
        reference: &str,
    ) -> Result<String, Error> {
        if let Some(id) = self.images.lock().expect("lock").get(reference) {
            return Ok(id.clone().unwrap_or_else(|| "missing".into()));
        }
        let id = cx
            .engine
            .inspect_image(reference)
            .await
            .map_err(|e| Error::engine(step, e))?
            .map(|i| i.id);
        self.images
            .lock()
            .expect("lock")
            .insert(reference.to_string(), id.clone());
        Ok(id.unwrap_or_else(|| "missing".into()))
    }

    /// Digest of an output: a file's content, or for a directory its files' names, modes and
    /// contents. `None` when it does not exist.
    async fn output_digest<E: Engine>(
        &self,
        cx: &Cx<'_, E>,
        step: &str,
        path: &Path,
    ) -> Result<Option<String>, Error> {
        let (s, path) = (step.to_string(), path.to_path_buf());
        self.offload(cx, step, move |d, cancel| {
            output_digest(d, cancel, &s, &path)
        })
        .await
    }

    /// Record what `step` produced (after it succeeded).
    async fn record_outputs<E: Engine>(
        &self,
        cx: &Cx<'_, E>,
        step: &dyn Op<E>,
        fp: &mut Fingerprint,
        image_id: Option<&str>,
    ) -> Result<(), Error> {
        let id = step.id();
        for out in paths(&step.outputs()) {
            if let Some(d) = self.output_digest(cx, &id, out).await? {
                // relative to the build dir: a moved or copied tree must not check the old place
                let key = out.strip_prefix(&self.build_dir).unwrap_or(out);
                fp.outputs.insert(key.display().to_string(), d);
            }
        }
        if let Some(image) = image_id {
            fp.outputs.insert(IMAGE_ID.into(), image.to_string());
        }
        Ok(())
    }

    /// Add one declared input of step `id` to `fp`.
    async fn resolve<E: Engine>(
        &self,
        cx: &Cx<'_, E>,
        id: &str,
        input: Input,
        fp: &mut Fingerprint,
    ) -> Result<(), Error> {
        let s = id.to_string();
        match input {
            Input::Var(name) => fp.add(format!("var:{name}"), cx.vars.get(&name)),
            Input::Value { name, value } => fp.add(name, value),
            Input::GoSources => fp.inputs.extend(self.go_sources(cx, id).await?.clone()),
            Input::File { name, path } => {
                let value = self
                    .offload(cx, id, move |d, _| digest(d, &s, &path))
                    .await?;
                fp.add(name, value);
            }
            Input::Dir {
                prefix,
                path,
                modes,
            } => {
                let entries = self
                    .offload(cx, id, move |d, cancel| {
                        let mut entries = Vec::new();
                        for f in list_files(&path, &[], &[]).map_err(|e| io_err(&s, &path, e))? {
                            check(cancel)?;
                            let abs = path.join(&f);
                            let mut value = digest(d, &s, &abs)?;
                            if modes {
                                value = format!("{value} {:o}", mode(&s, &abs)?);
                            }
                            entries.push((format!("{prefix}#{}", f.display()), value));
                        }
                        Ok(entries)
                    })
                    .await?;
                fp.inputs.extend(entries);
            }
            Input::TreeEntries { tree, root } => {
                let entries = self
                    .offload(cx, id, move |d, cancel| {
                        tree_archive_inputs(d, cancel, &s, &root, &tree)
                    })
                    .await?;
                fp.inputs.extend(entries);
            }
            Input::Context(tree) => {
                let entries = self
                    .offload(cx, id, move |d, cancel| {
                        context_inputs(d, cancel, &s, &tree)
                    })
                    .await?;
                fp.inputs.extend(entries);
            }
            Input::BaseImage(name) => {
                let r = cx.vars.base_image(&name);
                let value = self.image_id(cx, id, &r).await?;
                fp.add(format!("image:{r}"), value);
            }
            Input::HostCommand {
                name,
                program,
                args,
            } => {
                let v = tokio::process::Command::new(&program)
                    .args(&args)
                    .output()
                    .await;
                let v = v
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                    .unwrap_or_default();
                fp.add(name, v);
            }
        }
        Ok(())
    }

    /// The fingerprint of `step` now: its declared inputs, resolved. Reads files and asks the
    /// engine for image IDs; runs nothing.
    async fn fingerprint<E: Engine>(
        &self,
        cx: &Cx<'_, E>,
        step: &dyn Op<E>,
    ) -> Result<Fingerprint, Error> {
        let id = step.id();
        let mut fp = Fingerprint::default();
        fp.add("step:version", STEP_VERSION);
        for input in step.inputs(cx)? {
            self.resolve(cx, &id, input, &mut fp).await?;
        }
        Ok(fp)
    }

    /// Fresh or stale, with the current fingerprint. For a step that builds an image, also the
    /// ID of the image that carries the fingerprint.
    async fn freshness<E: Engine>(
        &self,
        cx: &Cx<'_, E>,
        step: &dyn Op<E>,
    ) -> Result<(Freshness, Fingerprint, Option<String>), Error> {
        let id = step.id();
        let outputs = step.outputs();
        let fp = self.fingerprint(cx, step).await?;
        let stale = |reason| Ok((Freshness::Stale { reason }, fp.clone(), None));
        let Some(old) = self.store.load(&id) else {
            return stale(StaleReason::NeverBuilt);
        };
        for out in paths(&outputs) {
            if !out.exists() {
                return stale(StaleReason::OutputMissing {
                    path: out.display().to_string(),
                });
            }
        }
        if let Some(reason) = compare(&old, &fp) {
            return stale(reason);
        }
        // Outputs must still be what this step wrote (make, or a person, may have replaced them).
        for (path, digest) in old.outputs.iter().filter(|(k, _)| *k != IMAGE_ID) {
            if self
                .output_digest(cx, &id, &self.build_dir.join(path))
                .await?
                .as_ref()
                != Some(digest)
            {
                return stale(StaleReason::OutputChanged { path: path.clone() });
            }
        }
        if let Some(reference) = image_output(&outputs) {
            // The recorded image itself, not any image carrying the label: images built FROM
            // ours inherit its labels.
            let missing = || StaleReason::ImageMissing {
                reference: reference.to_string(),
            };
            let Some(image) = old.outputs.get(IMAGE_ID) else {
                return stale(missing());
            };
            let found = cx
                .engine
                .inspect_image(image)
                .await
                .map_err(|e| Error::engine(&id, e))?;
            return match found {
                Some(img) if img.labels.get(LABEL_FINGERPRINT) == Some(&fp.key()) => {
                    Ok((Freshness::Fresh, fp, Some(img.id)))
                }
                _ => stale(missing()),
            };
        }
        Ok((Freshness::Fresh, fp, None))
    }
}

/// Content digest of `path` (through the run's stat cache), blaming `step`.
fn digest(d: &FileDigests, step: &str, path: &Path) -> Result<String, Error> {
    d.digest(path).map_err(|e| io_err(step, path, e))
}

/// Permission bits (with setuid, setgid, sticky) of `meta`.
fn perm_bits(meta: &std::fs::Metadata) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777
}

/// Permission bits of `path` (following links), blaming `step`.
fn mode(step: &str, path: &Path) -> Result<u32, Error> {
    std::fs::metadata(path)
        .map(|m| perm_bits(&m))
        .map_err(|e| io_err(step, path, e))
}

/// Digest of an output: a file's content, or for a directory its files' names, modes and
/// contents. `None` when it does not exist.
fn output_digest(
    d: &FileDigests,
    cancel: &CancellationToken,
    step: &str,
    path: &Path,
) -> Result<Option<String>, Error> {
    if path.is_file() {
        return digest(d, step, path).map(Some);
    }
    if !path.is_dir() {
        return Ok(None);
    }
    let mut listing = String::new();
    for f in list_files(path, &[], &[]).map_err(|e| io_err(step, path, e))? {
        check(cancel)?;
        let abs = path.join(&f);
        listing.push_str(&format!(
            "{}\0{:o}\0{}\0",
            f.display(),
            mode(step, &abs)?,
            digest(d, step, &abs)?
        ));
    }
    Ok(Some(crate::fingerprint::files::sha256_hex(
        listing.as_bytes(),
    )))
}

/// Inputs of a tree archive (`sampleconfig`): every entry under `root` with its type, mode,
/// link target or content digest, as `file:<tree>/<rel>`. A link that leaves the tree is the
/// step's own error (the archive would refuse it).
fn tree_archive_inputs(
    d: &FileDigests,
    cancel: &CancellationToken,
    id: &str,
    root: &Path,
    tree: &str,
) -> Result<Vec<(String, String)>, Error> {
    let mut entries = Vec::new();
    if !root.is_dir() {
        // the step itself reports the missing directory with a hint
        entries.push((format!("file:{tree}"), "missing".to_string()));
        return Ok(entries);
    }
    let walk = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1);
    for e in walk {
        check(cancel)?;
        let e = e.map_err(|e| io_err(id, root, std::io::Error::other(e)))?;
        let rel = e
            .path()
            .strip_prefix(root)
            .expect("under root")
            .display()
            .to_string();
        let meta = e
            .metadata()
            .map_err(|err| io_err(id, e.path(), std::io::Error::other(err)))?;
        let mode = perm_bits(&meta);
        let value = if e.file_type().is_dir() {
            format!("dir {mode:o}")
        } else if e.file_type().is_symlink() {
            let t = std::fs::read_link(e.path()).map_err(|err| io_err(id, e.path(), err))?;
            // the archive would refuse it: say so here, blaming this step
            if crate::archive::path_escapes(root, Path::new(&rel)) {
                return Err(Error::archive(
                    id,
                    crate::archive::ArchiveError::EscapingSymlink {
                        path: e.path().to_path_buf(),
                        target: t,
                    },
                ));
            }
            format!("link {}", t.display())
        } else {
            format!("{} {mode:o}", digest(d, id, e.path())?)
        };
        entries.push((format!("file:{tree}/{rel}"), value));
    }
    Ok(entries)
}

/// Inputs of a repository-root build context (`context = "tree"`): every entry the context
/// archive sends, as `file:<rel>`.
fn context_inputs(
    d: &FileDigests,
    cancel: &CancellationToken,
    id: &str,
    t: &crate::engine::TreeContext,
) -> Result<Vec<(String, String)>, Error> {
    let mut entries = Vec::new();
    let prune = !t.ignore.has_exceptions();
    let mut walk = walkdir::WalkDir::new(&t.root)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter();
    while let Some(e) = walk.next() {
        check(cancel)?;
        let e = e.map_err(|e| io_err(id, &t.root, std::io::Error::other(e)))?;
        let rel = e.path().strip_prefix(&t.root).expect("under root");
        let skipped = t.skip.iter().any(|s| e.path().starts_with(s));
        let excluded = skipped || t.ignore.is_excluded(rel);
        if excluded {
            if e.file_type().is_dir() && (prune || skipped) {
                walk.skip_current_dir();
            }
            continue;
        }
        let value = if e.file_type().is_dir() {
            "dir".to_string()
        } else if e.file_type().is_symlink() {
            let target = std::fs::read_link(e.path()).map_err(|err| io_err(id, e.path(), err))?;
            format!("link {}", target.display())
        } else {
            let meta = e
                .metadata()
                .map_err(|err| io_err(id, e.path(), std::io::Error::other(err)))?;
            let mode = perm_bits(&meta);
            format!("{} {mode:o}", digest(d, id, e.path())?)
        };
        entries.push((format!("file:{}", rel.display()), value));
    }
    Ok(entries)
}

/// For every step of `spec`, whether it is fresh or why it must run — without running anything
/// (`imgforge plan`). A step after a stale one is reported as
/// [`StaleReason::DependencyStale`]: its inputs are not known until that step has run.
pub async fn explain<E: Engine>(
    cx: &Cx<'_, E>,
    spec: &ImageSpec,
) -> Result<Vec<(String, Freshness)>, Error> {
    let fpr = Fingerprinter::new(&cx.build_dir());
    let mut out: Vec<(String, Freshness)> = Vec::new();
    let mut stale: HashSet<String> = HashSet::new();
    for step in plan(cx, spec)? {
        let id = step.id();
        let f = match step.deps().iter().find(|d| stale.contains(*d)) {
            Some(d) => Freshness::Stale {
                reason: StaleReason::DependencyStale { step: d.clone() },
            },
            None => fpr.freshness(cx, step.as_ref()).await?.0,
        };
        if f != Freshness::Fresh {
            stale.insert(id.clone());
        }
        out.push((id, f));
    }
    // `plan` changes nothing: the digest cache is kept only in a build dir that already exists
    if cx.build_dir().is_dir() {
        let _ = fpr.digests.save();
    }
    Ok(out)
}

/// Check the inputs that need no engine before any work starts ([`Op::preflight`] of every
/// step: a missing chaintool, an invalid tag), so they are reported at once and not after
/// minutes of compiling.
///
/// # Errors
///
/// The first step's check that fails; [`plan`]'s errors.
pub fn preflight<E: Engine>(cx: &Cx<'_, E>, spec: &ImageSpec) -> Result<(), Error> {
    for step in plan(cx, spec)? {
        step.preflight(cx)?;
    }
    Ok(())
}

/// The base images (`baseos`, `baseimage`) a build of `spec` needs in the engine: every
/// [`Input::BaseImage`] its steps declare (the image's `FROM`; the baseimage when a step runs Go
/// in a container: compile without `--native`, goshim's `go list`, gotools), FROM first.
///
/// # Errors
///
/// [`plan`]'s errors, and a step's when it cannot name its inputs (no template).
pub fn base_images<E: Engine>(cx: &Cx<'_, E>, spec: &ImageSpec) -> Result<Vec<String>, Error> {
    let mut names = vec![spec.base.clone()];
    for step in plan(cx, spec)? {
        for input in step.inputs(cx)? {
            if let Input::BaseImage(n) = input {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
    }
    Ok(names)
}

/// "No space left on device" anywhere in `e` (an I/O error of the host, a container's output,
/// the engine's build error) becomes [`Error::NoSpace`] naming the full place: the build dir
/// when its file system has less than 64 MiB left, else the engine's storage (a container's
/// layer, the build cache). Other errors are returned as they are.
fn no_space(build_dir: &Path, e: Error) -> Error {
    use crate::engine::EngineError as E;
    const NEEDLE: &str = "no space left on device";
    let host_full = |p: &Path| {
        let dir = p.ancestors().find(|a| a.exists()).unwrap_or(p);
        fs4::available_space(dir).is_ok_and(|n| n < 64 << 20)
    };
    let io_full = |err: &std::io::Error| err.kind() == std::io::ErrorKind::StorageFull;
    let (step, detail, path) = match &e {
        Error::Io {
            step, path, source, ..
        } if io_full(source) => (step, source.to_string(), Some(path.clone())),
        Error::Archive {
            step,
            source: ArchiveError::Io { path, source },
        } if io_full(source) => (step, source.to_string(), Some(path.clone())),
        Error::Engine {
            step,
            source: E::ContainerExit { log_tail, .. },
        } if log_tail.iter().any(|l| l.to_lowercase().contains(NEEDLE)) => (
            step,
            log_tail
                .iter()
                .find(|l| l.to_lowercase().contains(NEEDLE))
                .cloned()
                .unwrap_or_default(),
            None,
        ),
        Error::Engine {
            step,
            source: E::BuildFailed { message, .. },
        } if message.to_lowercase().contains(NEEDLE) => (step, message.clone(), None),
        _ => return e,
    };
    // a host I/O error names its own path; a container's or the engine's, the build dir only
    // when that is what is full
    let full = path.or_else(|| host_full(build_dir).then(|| build_dir.to_path_buf()));
    let (where_, hint) = match full {
        Some(p) => {
            let dir = if p.is_dir() { p.clone() } else { p.parent().unwrap_or(&p).to_path_buf() };
            (
                dir.display().to_string(),
                format!("free space there (`df -h {}`), or set BUILD_DIR to a directory on another disk", dir.display()),
            )
        }
        None => (
            "the Docker engine's storage".to_string(),
            "free space where the engine keeps images and containers (`docker system df`; `docker info -f '{{.DockerRootDir}}'` names the directory)".to_string(),
        ),
    };
    Error::NoSpace {
        step: step.clone(),
        where_,
        hint,
        detail,
    }
}

/// Decide and, when stale, run one step; records the fingerprint after success.
async fn step_task<E: Engine>(
    cx: &Cx<'_, E>,
    fpr: &Fingerprinter,
    step: &dyn Op<E>,
) -> Result<(bool, Produced), Error> {
    let id = step.id();
    let (freshness, fp, image_id) = fpr.freshness(cx, step).await?;
    match freshness {
        Freshness::Fresh => {
            cx.reporter.event(&Event::StepFresh {
                step: id.clone(),
                reason: "unchanged since the last build".into(),
            });
            Ok((false, step.reuse(cx, image_id.as_deref()).await?))
        }
        Freshness::Stale { reason } => {
            cx.reporter.event(&Event::StepStale {
                step: id.clone(),
                reason,
            });
            fpr.store
                .clear(&id)
                .map_err(|e| io_err(&id, &fpr.store.dir(), e))?;
            let produced = step.run(cx, &fp.key()).await?;
            // Inputs were fingerprinted before the run: a file edited during the run makes the
            // next run stale, never falsely fresh.
            let mut fp = fp;
            let image = produced.image.as_ref().map(|(i, _)| i.as_str());
            fpr.record_outputs(cx, step, &mut fp, image).await?;
            fpr.store
                .save(&id, &fp)
                .map_err(|e| io_err(&id, &fpr.store.dir(), e))?;
            Ok((true, produced))
        }
    }
}

async fn execute<E: Engine>(
    cx: &Cx<'_, E>,
    spec: &ImageSpec,
    with_image: bool,
) -> Result<BuiltImage, Error> {
    preflight(cx, spec)?;
    let (major_minor, v) = (
        crate::config::two_digit(cx.vars.get("BASE_VERSION")),
        cx.vars.get("BASE_VERSION"),
    );
    if major_minor < (1, 4) {
        cx.reporter.event(&Event::Notice {
            step: format!("image/{}", spec.image),
            message: format!(
                "BASE_VERSION {v} predates 1.4: imgforge follows Fabric release-1.4's Makefile (metadata flags, tags, templates); 1.0 and 1.3 differ (1.3 also sets metadata.Experimental, 1.0 uses ARCH=x86_64 and Version=PROJECT_VERSION)"
            ),
        });
    }
    // one run per build dir: a second one waits (its payloads would overwrite ours)
    let _lock = cx.lock_build_dir(&format!("image/{}", spec.image)).await?;
    let mut steps = plan(cx, spec)?;
    if !with_image {
        steps.retain(|s| image_output(&s.outputs()).is_none());
    }
    let fpr = Fingerprinter::new(&cx.build_dir());
    // Steps run under a child token: on the first failure the others are cancelled and awaited,
    // so their containers are removed before the error is returned.
    let inner = cx.cancel.child_token();
    let icx = Cx {
        vars: cx.vars,
        options: cx.options,
        engine: cx.engine,
        reporter: cx.reporter,
        cancel: &inner,
    };
    let mut done: HashSet<String> = HashSet::new();
    let mut started: HashSet<String> = HashSet::new();
    let mut running = FuturesUnordered::new();
    let mut first_error: Option<Error> = None;
    let mut ran = Vec::new();
    let mut image_result = None;
    loop {
        if first_error.is_none() {
            for s in &steps {
                let id = s.id();
                if !started.contains(&id) && s.deps().iter().all(|d| done.contains(d)) {
                    started.insert(id.clone());
                    let (icx, fpr) = (&icx, &fpr);
                    running.push(async move {
                        let r = crate::task::catch_panic(&id, step_task(icx, fpr, s.as_ref()));
                        let r = r.await.map_err(|e| no_space(&icx.build_dir(), e));
                        (id, r)
                    });
                }
            }
        }
        let Some((id, result)) = running.next().await else {
            break;
        };
        match result {
            Ok((did_run, produced)) => {
                if did_run {
                    ran.push(id.clone());
                }
                if produced.image.is_some() {
                    image_result = produced.image;
                }
                done.insert(id);
            }
            Err(e) => {
                // Keep the first failure: it caused the cancellation of the others.
                if first_error.is_none() {
                    inner.cancel();
                    first_error = Some(e);
                }
            }
        }
    }
    let _ = fpr.digests.save();
    if let Some(e) = first_error {
        return Err(if cx.cancel.is_cancelled() {
            Error::Cancelled
        } else {
            e
        });
    }
    let dir = cx.build_dir().join("image").join(&spec.image);
    let (id, references) = image_result.unwrap_or_default();
    Ok(BuiltImage {
        name: spec.image.clone(),
        id,
        references,
        dockerfile: dir.join("Dockerfile"),
        payload: dir.join("payload"),
        ran,
    })
}

/// Render the Dockerfile and assemble the payload of `spec`, without the image build
/// (`imgforge payload NAME`). Fresh steps are skipped.
pub async fn prepare<E: Engine>(cx: &Cx<'_, E>, spec: &ImageSpec) -> Result<BuiltImage, Error> {
    execute(cx, spec, false).await
}

/// Everything that can fail before any work, for all of `specs` at once: the engine-free
/// checks ([`preflight`]: chaintool, tags) of each, then one look in the engine for the union of
/// their base images, so that one error names every missing image (`imgforge all` checks its
/// five images together). `step` names the check in errors.
///
/// # Errors
///
/// [`preflight`]'s errors; [`Error::MissingImages`] listing every missing base image.
pub async fn preflight_all<E: Engine>(
    cx: &Cx<'_, E>,
    step: &str,
    specs: &[ImageSpec],
) -> Result<(), Error> {
    for spec in specs {
        preflight(cx, spec)?;
    }
    let mut bases: Vec<String> = Vec::new();
    for s in specs {
        bases.extend(base_images(cx, s)?);
    }
    bases.sort();
    bases.dedup();
    cx.require_bases(step, &bases).await?;
    // checks that ask the engine (the build image's Go against the tree's go.mod)
    for s in specs {
        for op in plan(cx, s)? {
            op.preflight_engine(cx).await?;
        }
    }
    Ok(())
}

/// Build one Fabric image: everything `make <name>-docker` does, skipping fresh steps.
pub async fn build<E: Engine>(cx: &Cx<'_, E>, spec: &ImageSpec) -> Result<BuiltImage, Error> {
    // Check the FROM image before any work: no point compiling for minutes to fail at the end.
    preflight_all(
        cx,
        &format!("image/{}", spec.image),
        std::slice::from_ref(spec),
    )
    .await?;
    execute(cx, spec, true).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{resolve, VarInputs};
    use crate::engine::fake::{Behaviour, FakeEngine};
    use crate::event::Recorder;
    use crate::steps::BuildOptions;
    use tokio_util::sync::CancellationToken;

    /// A Fabric-shaped tree with what the peer and ccenv specs read.
    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (p, text) in [
            (
                "Makefile",
                "BASE_VERSION = 1.4.12\nBASEIMAGE_RELEASE = 0.4.22\n",
            ),
            ("peer/main.go", "package main\n"),
            ("core/chaincode/shim/shim.go", "package shim\n"),
            (
                "vendor/github.com/golang/protobuf/protoc-gen-go/main.go",
                "package main\n",
            ),
            ("sampleconfig/core.yaml", "peer: {}\n"),
        ] {
            let f = d.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, text).unwrap();
        }
        d
    }

    fn vars(d: &Path) -> crate::BuildVars {
        let mut i = VarInputs::default();
        i.flags.insert("EXTRA_VERSION".into(), "abc".into());
        i.flags.insert("ARCH".into(), "amd64".into());
        resolve(Some(d), &i).unwrap()
    }

    /// Tree, variables, fake engine and options of one test; `cx()` borrows them.
    struct Harness {
        d: tempfile::TempDir,
        v: crate::BuildVars,
        e: FakeEngine,
        opts: BuildOptions,
        rec: Recorder,
        cancel: CancellationToken,
    }

    impl Harness {
        fn new() -> Self {
            let d = tree();
            Harness {
                v: vars(d.path()),
                d,
                e: engine(),
                opts: BuildOptions {
                    source_date_epoch: Some(0),
                    ..Default::default()
                },
                rec: Recorder::default(),
                cancel: CancellationToken::new(),
            }
        }

        fn cx(&self) -> Cx<'_, FakeEngine> {
            Cx {
                vars: &self.v,
                options: &self.opts,
                engine: &self.e,
                reporter: &self.rec,
                cancel: &self.cancel,
            }
        }
    }

    fn engine() -> FakeEngine {
        FakeEngine::with_images(&[
            "hyperledger/fabric-baseimage:amd64-0.4.22",
            "hyperledger/fabric-baseos:amd64-0.4.22",
        ])
    }

    #[tokio::test]
    async fn second_build_is_a_noop_and_a_source_change_reruns_compile_payload_image() {
        let h = Harness::new();
        let (d, e, cx) = (&h.d, &h.e, h.cx());
        let spec = crate::spec::image_spec("peer").unwrap();
        let first = build(&cx, &spec).await.unwrap();
        assert_eq!(first.ran.len(), 5);
        assert_eq!(first.references.len(), 5);
        let again = build(&cx, &spec).await.unwrap();
        assert!(again.ran.is_empty(), "{:?}", again.ran);
        assert_eq!(again.id, first.id);
        assert_eq!(
            e.runs(),
            ["compile/peer"],
            "a fresh step started a container"
        );
        std::fs::write(d.path().join("peer/main.go"), "package main // changed\n").unwrap();
        let third = build(&cx, &spec).await.unwrap();
        assert_eq!(third.ran, ["compile/peer", "payload/peer", "image/peer"]);
        assert_ne!(third.id, first.id);
    }

    #[tokio::test]
    async fn a_failing_step_cancels_and_awaits_the_others() {
        let mut h = Harness::new();
        h.e.set("gotools", Behaviour::Block);
        h.e.set("archives/goshim.tar.bz2", Behaviour::Fail);
        let chaintool = h.d.path().join("chaintool");
        std::fs::write(&chaintool, "#!/bin/sh\n").unwrap();
        h.opts.chaintool = Some(chaintool);
        let (e, cancel, cx) = (&h.e, &h.cancel, h.cx());
        let spec = crate::spec::image_spec("ccenv").unwrap();
        let err = build(&cx, &spec).await.unwrap_err();
        match err {
            Error::Engine { step, .. } => assert_eq!(step, "archives/goshim.tar.bz2"),
            other => panic!("expected the goshim failure, got {other}"),
        }
        // the blocked gotools container was cancelled and finished before build() returned
        assert_eq!(e.live(), 0);
        assert!(e.runs().contains(&"gotools".to_string()));
        // neither failed nor cancelled steps are recorded as fresh
        let plan = explain(&cx, &spec).await.unwrap();
        for (step, f) in plan {
            if step == "gotools" || step.starts_with("archives/") || step.starts_with("payload/") {
                assert_ne!(
                    f,
                    Freshness::Fresh,
                    "{step} recorded fresh after a failed build"
                );
            }
        }
        assert!(
            !cancel.is_cancelled(),
            "the caller's token must not be cancelled by a step failure"
        );
    }

    #[tokio::test]
    async fn a_panic_in_a_step_is_an_internal_error_naming_it_and_cancels_the_others() {
        let mut h = Harness::new();
        h.e.set("gotools", Behaviour::Block);
        h.e.set("archives/goshim.tar.bz2", Behaviour::Panic);
        let chaintool = h.d.path().join("chaintool");
        std::fs::write(&chaintool, "#!/bin/sh\n").unwrap();
        h.opts.chaintool = Some(chaintool);
        let (e, cx) = (&h.e, h.cx());
        let spec = crate::spec::image_spec("ccenv").unwrap();
        let err = build(&cx, &spec).await.unwrap_err();
        match &err {
            Error::Internal { step, message } => {
                assert_eq!(step, "archives/goshim.tar.bz2");
                assert!(message.contains("panicking as told"), "{message}");
            }
            other => panic!("expected an internal error, got {other}"),
        }
        assert_eq!(err.exit_code(), 1);
        assert!(err.hints()[0].contains("bug in imgforge"));
        // the blocked step was cancelled and awaited (the run returned at all)
        assert!(e.runs().contains(&"gotools".to_string()));
    }

    #[test]
    fn a_full_disk_is_named_and_not_blamed_on_the_source() {
        let d = tempfile::tempdir().unwrap();
        let compile = Error::engine(
            "compile/peer",
            crate::engine::EngineError::ContainerExit {
                image: "x".into(),
                cmd: "go install".into(),
                code: 1,
                log_tail: vec![
                    "go: write /root/.cache/go-build/ab: No space left on device".into(),
                ],
            },
        );
        assert!(
            compile.hints()[0].contains("fix the source"),
            "the compiler's hint before"
        );
        let e = no_space(d.path(), compile);
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            e.to_string(),
            "compile/peer: no space left on the Docker engine's storage (go: write /root/.cache/go-build/ab: No space left on device)"
        );
        assert!(e.hints()[0].contains("docker system df"), "{:?}", e.hints());
        let file = d.path().join("build/sampleconfig.tar.bz2");
        let io = Error::archive(
            "archives/sampleconfig.tar.bz2",
            ArchiveError::Io {
                path: file.clone(),
                source: std::io::Error::from(std::io::ErrorKind::StorageFull),
            },
        );
        let e = no_space(d.path(), io);
        let dir = d.path().join("build").display().to_string();
        assert!(
            e.to_string().starts_with(&format!(
                "archives/sampleconfig.tar.bz2: no space left on {dir} ("
            )),
            "{e}"
        );
        assert!(
            e.hints()[0].contains(&format!("df -h {dir}")),
            "{:?}",
            e.hints()
        );
        // anything else is left alone
        let other = no_space(d.path(), Error::Cancelled);
        assert!(matches!(other, Error::Cancelled));
    }

    #[tokio::test]
    async fn an_image_built_from_ours_is_not_taken_for_ours() {
        let h = Harness::new();
        let (d, e, cx) = (&h.d, &h.e, h.cx());
        let spec = crate::spec::image_spec("peer").unwrap();
        let first = build(&cx, &spec).await.unwrap();
        // a user's image FROM fabric-peer inherits every label, fingerprint included
        let labels = e.inspect_image(&first.id).await.unwrap().unwrap().labels;
        let child = crate::engine::BuildSpec {
            tree: None,
            step: "user".into(),
            context_dir: d.path().into(),
            reference: "user/custom:1".into(),
            labels,
            build_args: Default::default(),
        };
        e.build(&child, &h.rec, &h.cancel).await.unwrap();
        e.remove_image(&first.id, true).await.unwrap();
        let plan = explain(&cx, &spec).await.unwrap();
        let image = plan.iter().find(|(s, _)| s == "image/peer").unwrap();
        assert!(
            matches!(
                &image.1,
                Freshness::Stale {
                    reason: StaleReason::ImageMissing { .. }
                }
            ),
            "{:?}",
            image.1
        );
    }

    #[tokio::test]
    async fn a_tree_without_sampleconfig_gets_the_steps_own_error() {
        let h = Harness::new();
        std::fs::remove_dir_all(h.d.path().join("sampleconfig")).unwrap();
        let cx = h.cx();
        let spec = crate::spec::image_spec("peer").unwrap();
        let plan = explain(&cx, &spec).await.unwrap();
        assert_eq!(plan.len(), 5);
        let err = build(&cx, &spec).await.unwrap_err();
        assert!(err.to_string().contains("sampleconfig"), "{err}");
        assert!(err.hints()[0].contains("Fabric tree"), "{:?}", err.hints());
    }

    #[tokio::test]
    async fn a_chained_link_out_of_sampleconfig_is_refused_by_its_own_step() {
        let h = Harness::new();
        let sc = h.d.path().join("sampleconfig");
        std::fs::create_dir_all(sc.join("a")).unwrap();
        std::os::unix::fs::symlink("..", sc.join("a/l1")).unwrap();
        std::os::unix::fs::symlink("l1/..", sc.join("a/l2")).unwrap();
        let cx = h.cx();
        let spec = crate::spec::image_spec("peer").unwrap();
        for err in [
            explain(&cx, &spec).await.unwrap_err(),
            build(&cx, &spec).await.unwrap_err(),
        ] {
            match &err {
                Error::Archive {
                    step,
                    source: crate::archive::ArchiveError::EscapingSymlink { path, .. },
                } => {
                    assert_eq!(step, "archives/sampleconfig.tar.bz2");
                    assert_eq!(path, &sc.join("a/l2"));
                }
                other => panic!("expected the archive step's EscapingSymlink, got {other}"),
            }
        }
        // the build dir holds no archive of it
        assert!(!h.d.path().join("build/sampleconfig.tar.bz2").exists());
    }
}

/// The freshness table over every built-in spec, step and declared input.
#[cfg(test)]
#[path = "freshness_table.rs"]
mod freshness_table;
