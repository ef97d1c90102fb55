//! **Image assembly**: the image step's own builder. imgforge writes the image itself, as ko
//! does, instead of running `docker build`: each `COPY`/`ADD`/`RUN mkdir -p` of the rendered
//! Dockerfile becomes one deterministic layer tar, the other instructions become fields of the
//! image config, and the engine loads the result (`POST /images/load`, a `docker save`-format
//! archive holding only the new layers: the engine already has the base image's layers and
//! reuses them by chain ID).
//!
//! Why: the classic builder of Docker Engine 20.10 runs one container per instruction and stamps
//! every layer and the config with the time of the build, so each build gets a new image ID
//! even from identical payloads. An assembled image's ID is the sha256 of a config whose every
//! byte comes from the inputs: the base image (by ID), the payload, the Dockerfile, the labels
//! and `SOURCE_DATE_EPOCH` (`created`, every mtime). Two builds of one tree on two machines with
//! the same base images give the same image ID.
//!
//! What it assembles (the instructions of Fabric 1.4's peer, orderer, ccenv and buildenv
//! templates): one `FROM` (no `AS`, no `--platform`), `ENV`, `LABEL`, `CMD`, `ENTRYPOINT`,
//! `EXPOSE`, `VOLUME`, `WORKDIR` (of an existing directory), `USER`, `STOPSIGNAL`, `COPY` and
//! `ADD` of files and directories of the build context without flags or wildcards (`ADD` of a
//! local `.tar` or `.tar.bz2` unpacks it, as Docker does), and `RUN mkdir -p PATH…`. Variables
//! (`$NAME`, `${NAME}`) are replaced as Docker does. Anything else — a multi-stage build (the
//! tools image), another `RUN`, `ARG`, `COPY --from`, a URL, a gzip archive — is left to
//! `docker build` ([`Recipe::read`] says why, and the image step reports it).
//!
//! Docker's rules kept: `COPY file DEST` writes `DEST/file` when `DEST` ends in `/` or is a
//! directory (in the base image or made by an earlier instruction), else the file `DEST`; a
//! directory source copies its content; missing parent directories are made `0755 root`;
//! existing ones keep their mode and owner; files keep their permission bits and belong to
//! `0:0`; an archive's entries keep theirs. `ENTRYPOINT` clears a `CMD` inherited from the
//! base image.

use crate::archive::HashingWriter;
use crate::dockerfile::{self, Instruction};
use crate::engine::{BaseImageConfig, HistoryEntry, PathStat};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// One instruction the assembler carries out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Env(String),
    Label(String),
    Cmd(Args),
    Entrypoint(Args),
    Expose(String),
    Volume(String),
    Workdir(String),
    User(String),
    StopSignal(String),
    Copy {
        srcs: Vec<String>,
        dest: String,
        add: bool,
    },
    Mkdir(Vec<String>),
}

/// Exec or shell form of `CMD`/`ENTRYPOINT`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Args {
    Exec(Vec<String>),
    Shell(String),
}

impl Args {
    fn of(i: &Instruction) -> Args {
        match i.json_args() {
            Some(a) => Args::Exec(a),
            None => Args::Shell(i.rest.clone()),
        }
    }

    fn argv(&self) -> Vec<String> {
        match self {
            Args::Exec(a) => a.clone(),
            Args::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
        }
    }
}

/// A Dockerfile the assembler can build: its base image and instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The `FROM` image reference.
    pub from: String,
    ops: Vec<(Op, String)>,
}

/// Characters that make a `RUN` line more than `mkdir -p` of plain paths.
const SHELL_SPECIAL: &[char] = &[
    ';', '&', '|', '<', '>', '`', '(', ')', '*', '?', '[', '{', '~', '"', '\'', '\\', '#', '!',
];

impl Recipe {
    /// The recipe of Dockerfile `text`.
    ///
    /// # Errors
    ///
    /// Why the assembler cannot build it, naming the line and instruction (`line 12: RUN make
    /// …: only RUN mkdir -p is assembled`): the image step then runs `docker build`.
    pub fn read(text: &str) -> Result<Recipe, String> {
        let mut from = None;
        let mut ops = Vec::new();
        for i in dockerfile::parse(text) {
            let at = |why: &str| {
                let mut shown = i.text();
                if shown.len() > 60 {
                    let cut = (0..=60)
                        .rev()
                        .find(|n| shown.is_char_boundary(*n))
                        .unwrap_or(0);
                    shown.truncate(cut);
                    shown.push('…');
                }
                format!("line {}: {shown}: {why}", i.line)
            };
            let flags = i.rest.starts_with("--");
            let op = match i.keyword.as_str() {
                "FROM" => {
                    if from.is_some() {
                        return Err(at("a multi-stage build is not assembled"));
                    }
                    let words: Vec<&str> = i.rest.split_whitespace().collect();
                    if words.iter().any(|w| w.eq_ignore_ascii_case("as")) {
                        return Err(at("a multi-stage build (FROM … AS) is not assembled"));
                    }
                    if words.len() != 1 || flags {
                        return Err(at("only FROM IMAGE is assembled"));
                    }
                    from = Some(words[0].to_string());
                    continue;
                }
                _ if from.is_none() => return Err(at("an instruction before FROM")),
                "ENV" => Op::Env(i.rest.clone()),
                "LABEL" => Op::Label(i.rest.clone()),
                "CMD" => Op::Cmd(Args::of(&i)),
                "ENTRYPOINT" => Op::Entrypoint(Args::of(&i)),
                "EXPOSE" => Op::Expose(i.rest.clone()),
                "VOLUME" => Op::Volume(i.rest.clone()),
                "WORKDIR" => Op::Workdir(i.rest.clone()),
                "USER" => Op::User(i.rest.clone()),
                "STOPSIGNAL" => Op::StopSignal(i.rest.clone()),
                "COPY" | "ADD" if flags => {
                    return Err(at("flags (--from, --chown …) are not assembled"))
                }
                "COPY" | "ADD" => {
                    let words = match i.json_args() {
                        Some(w) => w,
                        None => dockerfile::shell_words(&i.rest).map_err(|e| at(&e))?,
                    };
                    if words.len() < 2 {
                        return Err(at("needs a source and a destination"));
                    }
                    let (dest, srcs) = words.split_last().expect("two words");
                    for s in srcs {
                        if s.contains(['*', '?', '[']) || s.contains("://") {
                            return Err(at("wildcards and URLs are not assembled"));
                        }
                    }
                    Op::Copy {
                        srcs: srcs.to_vec(),
                        dest: dest.clone(),
                        add: i.keyword == "ADD",
                    }
                }
                "RUN" => {
                    let words: Vec<&str> = i.rest.split_whitespace().collect();
                    let plain = !i.rest.contains(SHELL_SPECIAL);
                    if i.json_args().is_some()
                        || !plain
                        || words.len() < 3
                        || words[0] != "mkdir"
                        || words[1] != "-p"
                        || words[2..].iter().any(|w| w.starts_with('-'))
                    {
                        return Err(at("only RUN mkdir -p PATH… is assembled"));
                    }
                    Op::Mkdir(words[2..].iter().map(|w| w.to_string()).collect())
                }
                other => return Err(at(&format!("{other} is not assembled"))),
            };
            ops.push((op, i.text()));
        }
        Ok(Recipe {
            from: from.ok_or("no FROM instruction")?,
            ops,
        })
    }

    /// Every absolute path whose type, mode and owner in the base image the assembly needs:
    /// each destination and each of its parents, with the variables of `base_env` and the
    /// recipe's `ENV`s replaced.
    ///
    /// # Errors
    ///
    /// An unsupported variable reference ([`dockerfile::expand`]).
    pub fn paths_to_stat(&self, base_env: &[String]) -> Result<Vec<String>, String> {
        let mut env = base_env.to_vec();
        let mut workdir = "/".to_string();
        let mut out = std::collections::BTreeSet::new();
        let add = |p: &str, out: &mut std::collections::BTreeSet<String>| {
            let mut cur = PathBuf::from("/");
            for c in Path::new(p).components().skip(1) {
                cur.push(c);
                out.insert(cur.display().to_string());
            }
        };
        for (op, _) in &self.ops {
            match op {
                Op::Env(rest) => apply_env(&mut env, rest)?,
                Op::Workdir(w) => {
                    workdir = absolute(&workdir, &dockerfile::expand(w, &env)?);
                    add(&workdir, &mut out);
                }
                Op::Copy { srcs, dest, .. } => {
                    let d = absolute(&workdir, &dockerfile::expand(dest, &env)?);
                    add(&d, &mut out);
                    for s in srcs {
                        let name = Path::new(s)
                            .file_name()
                            .map(|n| n.to_string_lossy().to_string());
                        if let Some(n) = name {
                            add(&format!("{d}/{n}"), &mut out);
                        }
                    }
                }
                Op::Mkdir(paths) => {
                    for p in paths {
                        add(&absolute(&workdir, &dockerfile::expand(p, &env)?), &mut out);
                    }
                }
                _ => {}
            }
        }
        Ok(out.into_iter().collect())
    }
}

/// Apply an `ENV` instruction's pairs to `env` (`NAME=value`; a name set again is replaced in
/// place, as Docker does).
fn apply_env(env: &mut Vec<String>, rest: &str) -> Result<(), String> {
    // values are expanded with the variables before this instruction
    let mut pairs = Vec::new();
    for (k, v) in dockerfile::pairs(rest)? {
        pairs.push((k, dockerfile::expand(&v, env)?));
    }
    for (k, v) in pairs {
        let entry = format!("{k}={v}");
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map(|(n, _)| n) == Some(k.as_str()))
        {
            Some(e) => *e = entry,
            None => env.push(entry),
        }
    }
    Ok(())
}

/// `p` made absolute against `workdir` and normalised (`.`/`..`, repeated `/`, no trailing `/`).
fn absolute(workdir: &str, p: &str) -> String {
    let joined = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("{workdir}/{p}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// What is known of a path of the image being assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Dir { mode: u32, uid: u64, gid: u64 },
    Other,
}

/// A layer written to a file.
#[derive(Debug)]
pub struct Layer {
    /// The uncompressed layer tar.
    pub file: PathBuf,
    /// `sha256:` of its bytes.
    pub diff_id: String,
    /// The instruction that made it.
    pub created_by: String,
}

/// An image assembled on disk, ready to be loaded.
#[derive(Debug)]
pub struct Assembled {
    /// The image config (JSON); the image ID is `sha256:` of these bytes.
    pub config: Vec<u8>,
    /// The new layers, lowest first (the base image's come before them).
    pub layers: Vec<Layer>,
    /// Base layers' diff IDs.
    pub base_diff_ids: Vec<String>,
}

impl Assembled {
    /// The image ID the engine will give it: `sha256:` of the config.
    pub fn image_id(&self) -> String {
        format!(
            "sha256:{}",
            crate::fingerprint::files::sha256_hex(&self.config)
        )
    }

    /// Write the `docker load` archive: `manifest.json`, the config, and the new layers (the
    /// base layers are named in the manifest and left out: the engine has them). Entries are
    /// written in that order with fixed headers; layers are streamed from their files.
    ///
    /// # Errors
    ///
    /// Reading a layer file or writing `out`.
    pub fn write_archive(&self, out: &mut dyn Write) -> io::Result<()> {
        let config_name = format!("{}.json", &self.image_id()["sha256:".len()..]);
        let layer_name = |d: &str| format!("{}/layer.tar", d.trim_start_matches("sha256:"));
        let layers: Vec<String> = self
            .base_diff_ids
            .iter()
            .map(|d| layer_name(d))
            .chain(self.layers.iter().map(|l| layer_name(&l.diff_id)))
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!([{
            "Config": config_name,
            "RepoTags": null,
            "Layers": layers,
        }]))?;
        let mut b = tar::Builder::new(out);
        let put = |b: &mut tar::Builder<&mut dyn Write>, name: &str, len: u64, r: &mut dyn Read| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(len);
            h.set_mtime(0);
            b.append_data(&mut h, name, r)
        };
        put(
            &mut b,
            "manifest.json",
            manifest.len() as u64,
            &mut &manifest[..],
        )?;
        put(
            &mut b,
            &config_name,
            self.config.len() as u64,
            &mut &self.config[..],
        )?;
        for l in &self.layers {
            let mut f = std::fs::File::open(&l.file)?;
            let len = f.metadata()?.len();
            put(&mut b, &layer_name(&l.diff_id), len, &mut f)?;
        }
        b.finish()
    }
}

/// The image config as `docker load` reads it (Docker's image spec v1.2, a superset of OCI's
/// image configuration), fields in a fixed order so the bytes depend only on the values.
#[derive(Serialize)]
struct ConfigJson<'a> {
    architecture: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
    config: RunConfig,
    created: String,
    history: Vec<HistoryEntry>,
    os: &'a str,
    rootfs: RootFs,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    typ: &'static str,
    diff_ids: Vec<String>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    user: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    exposed_ports: BTreeMap<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    volumes: BTreeMap<String, serde_json::Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    working_dir: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_signal: Option<String>,
}

/// Everything [`assemble`] reads.
pub struct Inputs<'a> {
    /// The recipe.
    pub recipe: &'a Recipe,
    /// The `FROM` image.
    pub base: &'a BaseImageConfig,
    /// [`PathStat`]s in the base of [`Recipe::paths_to_stat`].
    pub stats: &'a BTreeMap<String, Option<PathStat>>,
    /// The build context directory (`COPY`/`ADD` sources are relative to it).
    pub context: &'a Path,
    /// Labels added last (imgforge's own: fingerprint, step, managed).
    pub labels: &'a BTreeMap<String, String>,
    /// `created` and every mtime, in seconds (`SOURCE_DATE_EPOCH`).
    pub mtime: u64,
    /// Where to write the layer files.
    pub work_dir: &'a Path,
}

/// Why an assembly failed: the assembler cannot build this (the caller falls back to `docker
/// build`), or a file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// A reason to leave the image to `docker build`.
    #[error("{0}")]
    Unsupported(String),
    /// A file of the context or a layer file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> AssembleError + '_ {
    move |source| AssembleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One layer being written: its entries, parents first, each path once.
struct LayerWriter {
    builder: tar::Builder<HashingWriter<std::io::BufWriter<std::fs::File>>>,
    file: PathBuf,
    written: std::collections::BTreeSet<String>,
    mtime: u64,
}

impl LayerWriter {
    fn new(dir: &Path, n: usize, mtime: u64) -> Result<Self, AssembleError> {
        let file = dir.join(format!("layer-{n}.tar"));
        let f = std::fs::File::create(&file).map_err(io_at(&file))?;
        let mut builder = tar::Builder::new(HashingWriter::new(std::io::BufWriter::new(f)));
        builder.mode(tar::HeaderMode::Deterministic);
        builder.follow_symlinks(false);
        Ok(LayerWriter {
            builder,
            file,
            written: Default::default(),
            mtime,
        })
    }

    fn header(&self, kind: tar::EntryType, mode: u32, uid: u64, gid: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(self.mtime);
        h.set_size(0);
        h
    }

    /// `path` relative to `/` as a member name (`usr/local/bin/`).
    fn member(path: &str, dir: bool) -> String {
        let rel = path.trim_start_matches('/');
        if dir {
            format!("{rel}/")
        } else {
            rel.to_string()
        }
    }

    fn dir(&mut self, path: &str, mode: u32, uid: u64, gid: u64) -> io::Result<()> {
        if path == "/" || !self.written.insert(path.to_string()) {
            return Ok(());
        }
        let mut h = self.header(tar::EntryType::Directory, mode, uid, gid);
        self.builder
            .append_data(&mut h, Self::member(path, true), io::empty())
    }

    fn file(&mut self, path: &str, mode: u32, len: u64, data: &mut dyn Read) -> io::Result<()> {
        self.written.insert(path.to_string());
        let mut h = self.header(tar::EntryType::Regular, mode, 0, 0);
        h.set_size(len);
        self.builder
            .append_data(&mut h, Self::member(path, false), data)
    }

    fn symlink(&mut self, path: &str, target: &Path, uid: u64, gid: u64) -> io::Result<()> {
        self.written.insert(path.to_string());
        let mut h = self.header(tar::EntryType::Symlink, 0o777, uid, gid);
        self.builder
            .append_link(&mut h, Self::member(path, false), target)
    }

    fn finish(self, created_by: String) -> Result<Layer, AssembleError> {
        let file = self.file.clone();
        let hashing = self.builder.into_inner().map_err(io_at(&file))?;
        let (mut w, digest, _) = hashing.finish();
        w.flush().map_err(io_at(&file))?;
        Ok(Layer {
            file,
            diff_id: format!("sha256:{digest}"),
            created_by,
        })
    }
}

/// The state of the image's filesystem as far as the assembly knows it.
struct Tree<'a> {
    stats: &'a BTreeMap<String, Option<PathStat>>,
    made: BTreeMap<String, Known>,
}

impl Tree<'_> {
    fn get(&self, path: &str) -> Option<Known> {
        if path == "/" {
            return Some(Known::Dir {
                mode: 0o755,
                uid: 0,
                gid: 0,
            });
        }
        if let Some(k) = self.made.get(path) {
            return Some(*k);
        }
        match self.stats.get(path) {
            Some(Some(s)) if s.dir && !s.symlink => Some(Known::Dir {
                mode: s.mode,
                uid: s.uid,
                gid: s.gid,
            }),
            Some(Some(_)) => Some(Known::Other),
            _ => None,
        }
    }

    /// Every parent of `path` in `layer`, top down: existing directories with their mode and
    /// owner (as a copy-up keeps them), missing ones `0755 root`.
    fn parents(&mut self, layer: &mut LayerWriter, path: &str) -> Result<(), AssembleError> {
        let p = Path::new(path);
        let ancestors: Vec<String> = p
            .ancestors()
            .skip(1)
            .map(|a| a.display().to_string())
            .filter(|a| a != "/" && !a.is_empty())
            .collect();
        for a in ancestors.iter().rev() {
            self.ensure_dir(layer, a)?;
        }
        Ok(())
    }

    fn ensure_dir(&mut self, layer: &mut LayerWriter, path: &str) -> Result<(), AssembleError> {
        match self.get(path) {
            Some(Known::Dir { mode, uid, gid }) => layer.dir(path, mode, uid, gid),
            Some(Known::Other) => {
                return Err(AssembleError::Unsupported(format!(
                    "{path} is a file or a link in the base image, and a directory is needed there"
                )))
            }
            None => {
                self.made.insert(
                    path.to_string(),
                    Known::Dir {
                        mode: 0o755,
                        uid: 0,
                        gid: 0,
                    },
                );
                layer.dir(path, 0o755, 0, 0)
            }
        }
        .map_err(io_at(&layer.file))
    }
}

/// Assemble the image of `inputs` into layer files under `inputs.work_dir` and a config.
/// Runs on a blocking thread (reads the context, writes layers).
///
/// # Errors
///
/// [`AssembleError::Unsupported`] when a detail only `docker build` handles shows up (a
/// destination whose parent is a link, a gzip archive, a variable form), [`AssembleError::Io`]
/// for a missing source or a write error.
pub fn assemble(inputs: &Inputs<'_>) -> Result<Assembled, AssembleError> {
    let unsupported = AssembleError::Unsupported;
    let base = inputs.base;
    let mut run = RunConfig {
        user: base.user.clone(),
        exposed_ports: base
            .exposed_ports
            .iter()
            .map(|p| (p.clone(), serde_json::json!({})))
            .collect(),
        env: base.env.clone(),
        entrypoint: base.entrypoint.clone(),
        cmd: base.cmd.clone(),
        volumes: base
            .volumes
            .iter()
            .map(|v| (v.clone(), serde_json::json!({})))
            .collect(),
        working_dir: base.working_dir.clone(),
        labels: base.labels.clone(),
        stop_signal: base.stop_signal.clone(),
    };
    let created = crate::engine::docker::rfc3339(inputs.mtime as i64);
    let mut history = base.history.clone();
    let mut layers = Vec::new();
    let mut tree = Tree {
        stats: inputs.stats,
        made: BTreeMap::new(),
    };
    let mut cmd_set = false;
    for (op, text) in &inputs.recipe.ops {
        let workdir = if run.working_dir.is_empty() {
            "/".to_string()
        } else {
            run.working_dir.clone()
        };
        let expand = |s: &str| dockerfile::expand(s, &run.env).map_err(unsupported);
        let mut layer = None;
        match op {
            Op::Env(rest) => apply_env(&mut run.env, rest).map_err(unsupported)?,
            Op::Label(rest) => {
                for (k, v) in dockerfile::pairs(&expand(rest)?).map_err(unsupported)? {
                    run.labels.insert(k, v);
                }
            }
            Op::Cmd(a) => {
                run.cmd = Some(a.argv());
                cmd_set = true;
            }
            Op::Entrypoint(a) => {
                run.entrypoint = Some(a.argv());
                if !cmd_set {
                    run.cmd = None;
                }
            }
            Op::Expose(rest) => {
                for p in dockerfile::shell_words(&expand(rest)?).map_err(unsupported)? {
                    let p = if p.contains('/') {
                        p
                    } else {
                        format!("{p}/tcp")
                    };
                    run.exposed_ports.insert(p, serde_json::json!({}));
                }
            }
            Op::Volume(rest) => {
                let r = expand(rest)?;
                let vols = match serde_json::from_str::<Vec<String>>(r.trim()) {
                    Ok(v) => v,
                    Err(_) => dockerfile::shell_words(&r).map_err(unsupported)?,
                };
                for v in vols {
                    run.volumes.insert(v, serde_json::json!({}));
                }
            }
            Op::Workdir(w) => {
                let dir = absolute(&workdir, &expand(w)?);
                if !matches!(tree.get(&dir), Some(Known::Dir { .. })) {
                    return Err(unsupported(format!(
                        "WORKDIR {dir} does not exist in the base image (docker build makes it)"
                    )));
                }
                run.working_dir = dir;
            }
            Op::User(u) => run.user = expand(u)?,
            Op::StopSignal(s) => run.stop_signal = Some(expand(s)?),
            Op::Mkdir(paths) => {
                let mut l = LayerWriter::new(inputs.work_dir, layers.len(), inputs.mtime)?;
                for p in paths {
                    let p = absolute(&workdir, &expand(p)?);
                    tree.parents(&mut l, &p)?;
                    tree.ensure_dir(&mut l, &p)?;
                }
                layer = Some(l);
            }
            Op::Copy { srcs, dest, add } => {
                let raw_dest = expand(dest)?;
                let dest = absolute(&workdir, &raw_dest);
                let into_dir = raw_dest.ends_with('/')
                    || srcs.len() > 1
                    || matches!(tree.get(&dest), Some(Known::Dir { .. }));
                let mut l = LayerWriter::new(inputs.work_dir, layers.len(), inputs.mtime)?;
                for s in srcs {
                    let src = inputs.context.join(expand(s)?);
                    let meta = std::fs::symlink_metadata(&src).map_err(io_at(&src))?;
                    if meta.is_dir() {
                        tree.parents(&mut l, &dest)?;
                        tree.ensure_dir(&mut l, &dest)?;
                        copy_dir(&mut tree, &mut l, &src, &dest)?;
                    } else if *add && archive_kind(&src)?.is_some() {
                        tree.parents(&mut l, &dest)?;
                        tree.ensure_dir(&mut l, &dest)?;
                        unpack(&mut tree, &mut l, &src, &dest)?;
                    } else {
                        let name = src.file_name().unwrap_or_default().to_string_lossy();
                        let target = if into_dir {
                            format!("{}/{name}", dest.trim_end_matches('/'))
                        } else {
                            dest.clone()
                        };
                        tree.parents(&mut l, &target)?;
                        copy_file(&mut tree, &mut l, &src, &meta, &target)?;
                    }
                }
                layer = Some(l);
            }
        }
        let (empty_layer, created_by) = (layer.is_none(), format!("imgforge: {text}"));
        if let Some(l) = layer {
            layers.push(l.finish(created_by.clone())?);
        }
        history.push(HistoryEntry {
            created: created.clone(),
            created_by,
            comment: String::new(),
            empty_layer,
        });
    }
    for (k, v) in inputs.labels {
        run.labels.insert(k.clone(), v.clone());
    }
    let diff_ids = base
        .diff_ids
        .iter()
        .cloned()
        .chain(layers.iter().map(|l| l.diff_id.clone()))
        .collect();
    let config = ConfigJson {
        architecture: &base.architecture,
        variant: base.variant.as_deref(),
        config: run,
        created,
        history,
        os: &base.os,
        rootfs: RootFs {
            typ: "layers",
            diff_ids,
        },
    };
    Ok(Assembled {
        config: serde_json::to_vec(&config).expect("a config serializes"),
        layers,
        base_diff_ids: base.diff_ids.clone(),
    })
}

fn copy_file(
    tree: &mut Tree<'_>,
    l: &mut LayerWriter,
    src: &Path,
    meta: &std::fs::Metadata,
    target: &str,
) -> Result<(), AssembleError> {
    if matches!(tree.get(target), Some(Known::Dir { .. })) {
        return Err(AssembleError::Unsupported(format!(
            "{target} is a directory in the base image"
        )));
    }
    tree.made.insert(target.to_string(), Known::Other);
    if meta.file_type().is_symlink() {
        let t = std::fs::read_link(src).map_err(io_at(src))?;
        return l.symlink(target, &t, 0, 0).map_err(io_at(src));
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
    let mut f = std::fs::File::open(src).map_err(io_at(src))?;
    l.file(target, mode, meta.len(), &mut f).map_err(io_at(src))
}

fn copy_dir(
    tree: &mut Tree<'_>,
    l: &mut LayerWriter,
    src: &Path,
    dest: &str,
) -> Result<(), AssembleError> {
    for e in walkdir::WalkDir::new(src).min_depth(1).sort_by_file_name() {
        let e = e.map_err(|e| AssembleError::Io {
            path: src.to_path_buf(),
            source: e.into(),
        })?;
        let rel = e.path().strip_prefix(src).expect("below src");
        let target = format!("{}/{}", dest.trim_end_matches('/'), rel.display());
        let meta = e.path().symlink_metadata().map_err(io_at(e.path()))?;
        if meta.is_dir() {
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
            tree.made.insert(
                target.clone(),
                Known::Dir {
                    mode,
                    uid: 0,
                    gid: 0,
                },
            );
            l.dir(&target, mode, 0, 0).map_err(io_at(e.path()))?;
        } else {
            copy_file(tree, l, e.path(), &meta, &target)?;
        }
    }
    Ok(())
}

/// `Some("tar")`/`Some("bzip2")` for a local archive `ADD` unpacks (as Docker, by content);
/// gzip and xz are left to `docker build`.
fn archive_kind(p: &Path) -> Result<Option<&'static str>, AssembleError> {
    let mut head = [0u8; 512];
    let mut f = std::fs::File::open(p).map_err(io_at(p))?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]).map_err(io_at(p))? {
            0 => break,
            k => n += k,
        }
    }
    let h = &head[..n];
    if h.starts_with(b"BZh") {
        return Ok(Some("bzip2"));
    }
    if h.starts_with(&[0x1f, 0x8b]) || h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(AssembleError::Unsupported(format!(
            "ADD of {}: gzip and xz archives are left to docker build",
            p.display()
        )));
    }
    if n >= 262 && &h[257..262] == b"ustar" {
        return Ok(Some("tar"));
    }
    Ok(None)
}

/// Unpack archive `src` (tar or tar.bz2) below `dest` into layer `l`, entries keeping their
/// mode, owner and links, as Docker's `ADD` does.
fn unpack(
    tree: &mut Tree<'_>,
    l: &mut LayerWriter,
    src: &Path,
    dest: &str,
) -> Result<(), AssembleError> {
    let f = std::fs::File::open(src).map_err(io_at(src))?;
    let reader: Box<dyn Read> = match archive_kind(src)? {
        Some("bzip2") => Box::new(bzip2::read::MultiBzDecoder::new(io::BufReader::new(f))),
        _ => Box::new(io::BufReader::new(f)),
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(io_at(src))? {
        let mut entry = entry.map_err(io_at(src))?;
        let name = entry.path().map_err(io_at(src))?.into_owned();
        let rel = absolute("/", &name.display().to_string());
        if rel == "/" {
            continue;
        }
        let target = format!("{}{rel}", dest.trim_end_matches('/'));
        tree.parents(l, &target)?;
        let h = entry.header().clone();
        let (mode, uid, gid) = (
            h.mode().map_err(io_at(src))? & 0o7777,
            h.uid().map_err(io_at(src))?,
            h.gid().map_err(io_at(src))?,
        );
        match h.entry_type() {
            tar::EntryType::Directory => {
                tree.made
                    .insert(target.clone(), Known::Dir { mode, uid, gid });
                l.dir(&target, mode, uid, gid).map_err(io_at(src))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                tree.made.insert(target.clone(), Known::Other);
                l.written.insert(target.clone());
                let mut nh = l.header(tar::EntryType::Regular, mode, uid, gid);
                nh.set_size(h.size().map_err(io_at(src))?);
                nh.set_mtime(h.mtime().unwrap_or(l.mtime));
                l.builder
                    .append_data(&mut nh, LayerWriter::member(&target, false), &mut entry)
                    .map_err(io_at(src))?;
            }
            tar::EntryType::Symlink => {
                let t = entry
                    .link_name()
                    .map_err(io_at(src))?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                tree.made.insert(target.clone(), Known::Other);
                l.symlink(&target, &t, uid, gid).map_err(io_at(src))?;
            }
            other => {
                return Err(AssembleError::Unsupported(format!(
                    "ADD of {}: entry {} is a {other:?}, which only docker build unpacks",
                    src.display(),
                    name.display()
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "FROM acme/fabric-baseos:amd64-0.4.22\n\nENV FABRIC_CFG_PATH /etc/hyperledger/fabric\nRUN mkdir -p /var/hyperledger/production $FABRIC_CFG_PATH\n\nCOPY payload/peer /usr/local/bin\nADD payload/sampleconfig.tar.bz2 $FABRIC_CFG_PATH\n\nCMD [\"peer\", \"node\", \"start\"]\nLABEL org.hyperledger.fabric.version=1.4.12 \\\n      org.hyperledger.fabric.base.version=0.4.22\n";

    fn base() -> BaseImageConfig {
        BaseImageConfig {
            id: "sha256:base".into(),
            architecture: "amd64".into(),
            os: "linux".into(),
            diff_ids: vec![format!("sha256:{}", "a".repeat(64))],
            env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
            cmd: Some(vec!["/bin/bash".into()]),
            history: vec![HistoryEntry {
                created: "2021-01-01T00:00:00Z".into(),
                created_by: "imported".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn stats() -> BTreeMap<String, Option<PathStat>> {
        let dir = |mode| {
            Some(PathStat {
                dir: true,
                symlink: false,
                mode,
                uid: 0,
                gid: 0,
            })
        };
        BTreeMap::from([
            ("/usr".to_string(), dir(0o755)),
            ("/usr/local".into(), dir(0o755)),
            ("/usr/local/bin".into(), dir(0o755)),
            ("/etc".into(), dir(0o755)),
            ("/var".into(), dir(0o755)),
            ("/tmp".into(), dir(0o1777)),
        ])
    }

    /// A context with `payload/peer` (0755) and `payload/sampleconfig.tar.bz2`.
    fn context(peer: &[u8]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("payload");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("peer"), peer).unwrap();
        std::fs::set_permissions(
            p.join("peer"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let cfg = d.path().join("cfg");
        std::fs::create_dir_all(cfg.join("msp")).unwrap();
        std::fs::write(cfg.join("core.yaml"), "peer: {}\n").unwrap();
        let f = std::fs::File::create(p.join("sampleconfig.tar.bz2")).unwrap();
        let mut enc = crate::archive::bzip2_encoder(f);
        crate::archive::write_tree_archive(
            &cfg,
            &mut enc,
            &crate::archive::ArchiveOptions { mtime: 0 },
        )
        .unwrap();
        crate::archive::finish_bzip2(enc).unwrap();
        std::fs::remove_dir_all(cfg).unwrap();
        d
    }

    fn build(ctx: &Path, text: &str, mtime: u64) -> Assembled {
        let recipe = Recipe::read(text).unwrap();
        let work = tempfile::tempdir().unwrap().keep();
        let labels = BTreeMap::from([("org.imgforge.step".to_string(), "image/peer".to_string())]);
        assemble(&Inputs {
            recipe: &recipe,
            base: &base(),
            stats: &stats(),
            context: ctx,
            labels: &labels,
            mtime,
            work_dir: &work,
        })
        .unwrap()
    }

    fn members(l: &Layer) -> Vec<(String, u32, u64)> {
        let mut a = tar::Archive::new(std::fs::File::open(&l.file).unwrap());
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                    e.header().mtime().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn the_peer_template_is_assembled_as_docker_build_would() {
        let ctx = context(b"peer binary");
        let a = build(ctx.path(), PEER, 1_600_000_000);
        let cfg: serde_json::Value = serde_json::from_slice(&a.config).unwrap();
        let c = &cfg["config"];
        assert_eq!(
            c["Env"],
            serde_json::json!([
                "PATH=/usr/local/bin:/usr/bin:/bin",
                "FABRIC_CFG_PATH=/etc/hyperledger/fabric"
            ])
        );
        assert_eq!(c["Cmd"], serde_json::json!(["peer", "node", "start"]));
        assert_eq!(c["Labels"]["org.hyperledger.fabric.version"], "1.4.12");
        assert_eq!(c["Labels"]["org.hyperledger.fabric.base.version"], "0.4.22");
        assert_eq!(c["Labels"]["org.imgforge.step"], "image/peer");
        assert_eq!(cfg["created"], "2020-09-13T12:26:40Z");
        // base layer, then mkdir, COPY, ADD
        assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 4);
        assert_eq!(a.layers.len(), 3);
        let h = cfg["history"].as_array().unwrap();
        assert_eq!(h.len(), 1 + 6);
        assert_eq!(h.iter().filter(|e| e["empty_layer"] != true).count(), 4);
        assert_eq!(
            members(&a.layers[0]),
            [
                ("var/".to_string(), 0o755, 1_600_000_000),
                ("var/hyperledger/".into(), 0o755, 1_600_000_000),
                ("var/hyperledger/production/".into(), 0o755, 1_600_000_000),
                ("etc/".into(), 0o755, 1_600_000_000),
                ("etc/hyperledger/".into(), 0o755, 1_600_000_000),
                ("etc/hyperledger/fabric/".into(), 0o755, 1_600_000_000),
            ]
        );
        // COPY file DIR: into the directory, mode kept
        let copy = members(&a.layers[1]);
        assert_eq!(
            copy.last().unwrap(),
            &("usr/local/bin/peer".to_string(), 0o755, 1_600_000_000)
        );
        // ADD archive: unpacked below the (made) directory
        let add: Vec<String> = members(&a.layers[2]).into_iter().map(|m| m.0).collect();
        assert!(
            add.contains(&"etc/hyperledger/fabric/core.yaml".to_string()),
            "{add:?}"
        );
        assert!(
            add.contains(&"etc/hyperledger/fabric/msp/".to_string()),
            "{add:?}"
        );
    }

    #[test]
    fn the_same_inputs_give_the_same_image_id_and_one_byte_changes_it() {
        let (c1, c2) = (context(b"peer"), context(b"peer"));
        let (a, b) = (build(c1.path(), PEER, 7), build(c2.path(), PEER, 7));
        assert_eq!(a.image_id(), b.image_id(), "two contexts in two places");
        let mut x = Vec::new();
        let mut y = Vec::new();
        a.write_archive(&mut x).unwrap();
        b.write_archive(&mut y).unwrap();
        assert_eq!(x, y, "archives byte for byte");
        assert_ne!(
            build(context(b"peeR").path(), PEER, 7).image_id(),
            a.image_id()
        );
        assert_ne!(build(c1.path(), PEER, 8).image_id(), a.image_id());
    }

    #[test]
    fn what_is_not_assembled_is_named() {
        for (text, want) in [
            ("FROM a AS b\nFROM c\n", "multi-stage"),
            (
                "FROM a\nRUN make peer\n",
                "line 2: RUN make peer: only RUN mkdir -p",
            ),
            (
                "FROM a\nRUN mkdir -p /a && rm -rf /b\n",
                "only RUN mkdir -p",
            ),
            ("FROM a\nCOPY --from=b /x /y\n", "flags"),
            ("FROM a\nADD http://x/y /z\n", "URLs"),
            ("FROM a\nARG X\n", "ARG is not assembled"),
            ("ENV A 1\n", "before FROM"),
            ("", "no FROM"),
        ] {
            let e = Recipe::read(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        assert!(Recipe::read(PEER).is_ok());
    }

    #[test]
    fn copy_into_a_new_path_and_a_file_over_a_directory() {
        let ctx = context(b"x");
        // no such directory in the base and no trailing slash: the file is named DEST
        let a = build(ctx.path(), "FROM a\nCOPY payload/peer /opt/tool\n", 0);
        let m: Vec<String> = members(&a.layers[0]).into_iter().map(|m| m.0).collect();
        assert_eq!(m, ["opt/", "opt/tool"]);
        // trailing slash: into the directory, made 0755
        let a = build(ctx.path(), "FROM a\nCOPY payload/peer /opt/bin/\n", 0);
        let m: Vec<String> = members(&a.layers[0]).into_iter().map(|m| m.0).collect();
        assert_eq!(m, ["opt/", "opt/bin/", "opt/bin/peer"]);
        // an existing directory keeps its mode (/tmp is 1777 in the base)
        let a = build(ctx.path(), "FROM a\nCOPY payload/peer /tmp\n", 0);
        assert_eq!(members(&a.layers[0])[0], ("tmp/".to_string(), 0o1777, 0));
    }

    #[test]
    fn entrypoint_clears_an_inherited_cmd_and_expose_volume_user() {
        let ctx = context(b"x");
        let a = build(
            ctx.path(),
            "FROM a\nENTRYPOINT [\"/x\"]\nEXPOSE 7050 7051/udp\nVOLUME /data\nUSER 500\nENV A=1 B=\"$A 2\"\n",
            0,
        );
        let cfg: serde_json::Value = serde_json::from_slice(&a.config).unwrap();
        let c = &cfg["config"];
        assert_eq!(c["Entrypoint"], serde_json::json!(["/x"]));
        assert!(c.get("Cmd").is_none(), "{c}");
        assert_eq!(
            c["ExposedPorts"],
            serde_json::json!({"7050/tcp": {}, "7051/udp": {}})
        );
        assert_eq!(c["Volumes"], serde_json::json!({"/data": {}}));
        assert_eq!(c["User"], "500");
        // as Docker: one ENV's values see the variables from before it
        assert_eq!(c["Env"][1], "A=1");
        assert_eq!(c["Env"][2], "B= 2");
        assert!(a.layers.is_empty());
    }

    #[test]
    fn paths_to_stat_cover_destinations_and_parents() {
        let r = Recipe::read(PEER).unwrap();
        let p = r.paths_to_stat(&[]).unwrap();
        for want in [
            "/usr",
            "/usr/local",
            "/usr/local/bin",
            "/usr/local/bin/peer",
            "/etc/hyperledger/fabric",
            "/var/hyperledger/production",
        ] {
            assert!(p.contains(&want.to_string()), "{want}: {p:?}");
        }
    }
}
