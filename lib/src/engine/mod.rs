//! The container engine: the only part of imgforge that talks to Docker.
//!
//! [`Engine`] is a small interface (in the spirit of ko's `publish.Interface`): run a build
//! container, build an image from a streamed context, import a root filesystem, tag, inspect,
//! list and remove. [`docker::DockerEngine`] implements it with `bollard` against a real Docker
//! Engine. Every container imgforge starts carries the labels [`LABEL_MANAGED`] and
//! [`LABEL_SESSION`] and is removed on success, on error and on cancellation.

pub mod docker;
pub mod endpoint;
#[cfg(test)]
pub mod fake;
pub mod ship;
pub mod stream;

use crate::event::Reporter;
use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// Label set on every container and image imgforge creates (value `true`).
pub const LABEL_MANAGED: &str = "org.imgforge.managed";
/// Label with the id of the imgforge process that created a container (random per process).
pub const LABEL_SESSION: &str = "org.imgforge.session";
/// Label with the path of the lease file of the imgforge process that created a container: the
/// process holds an exclusive lock on it for as long as it lives (see
/// [`docker::DockerEngine::sweep_orphans`]).
pub const LABEL_LEASE: &str = "org.imgforge.lease";
/// Label with the step that created a container or image (`compile/peer`, `image/peer`).
pub const LABEL_STEP: &str = "org.imgforge.step";
/// Label with the fingerprint key of a Fabric image build (freshness of the image step).
pub const LABEL_FINGERPRINT: &str = "org.imgforge.fingerprint";
/// Label with the content key of an image (base-image factory cache).
pub const LABEL_CONTENT_KEY: &str = "org.imgforge.content-key";

/// A container to run to completion (a `docker run --rm` of the Makefile's `DRUN`).
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    /// Step that runs it, for events and labels.
    pub step: String,
    /// Image reference.
    pub image: String,
    /// Command and arguments (no shell).
    pub cmd: Vec<String>,
    /// Environment, `NAME=value`.
    pub env: Vec<String>,
    /// Bind mounts, `host-path:container-path[:ro]`; host paths must be absolute.
    pub binds: Vec<String>,
    /// Working directory in the container.
    pub workdir: Option<String>,
    /// `uid[:gid]` to run as.
    pub user: Option<String>,
    /// Keep stdout lines in [`RunOutput::stdout`] instead of reporting them as log events.
    pub capture_stdout: bool,
    /// Use the host's network (`--network host`), for containers that talk to each other on
    /// 127.0.0.1 (the network check); else the engine's default network.
    pub network_host: bool,
    /// Container paths of [`binds`](Self::binds) whose content the run produces. On a local
    /// engine nothing is done (the bind mount is the output); on a remote engine
    /// ([`Engine::is_remote`]) every other bind is copied into the container before the start,
    /// these start as empty directories owned by [`user`](Self::user) and are copied back into
    /// their host directories after a successful run, as `docker cp` does (existing files
    /// there are replaced, nothing else is removed).
    pub outputs: Vec<String>,
    /// Container paths of binds that only make the run faster (Go's build cache): on a remote
    /// engine they start as empty directories owned by [`user`](Self::user) and are neither
    /// copied in nor back.
    pub caches: Vec<String>,
    /// Absolute host paths below a bind's host path that a remote engine is not sent (the build
    /// directory inside the tree, `.git`): what a bind mount would show there is not needed.
    pub not_shipped: Vec<PathBuf>,
}

/// What a finished container produced.
#[derive(Debug, Clone, Default)]
pub struct RunOutput {
    /// Captured stdout lines (only with [`RunSpec::capture_stdout`]).
    pub stdout: Vec<String>,
}

/// An image build from a context directory (the Makefile's `docker build -t … $(@D)`).
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// Step that builds it.
    pub step: String,
    /// Directory whose whole content is the build context (`Dockerfile` at its root).
    pub context_dir: PathBuf,
    /// The reference to build as (`repository:tag`).
    pub reference: String,
    /// Labels added to the image (besides the ones in the Dockerfile).
    pub labels: BTreeMap<String, String>,
    /// `--build-arg`s (imgforge passes the proxy variables, as `docker-env.mk`'s
    /// `DOCKER_BUILD_FLAGS` does; Docker predefines them, so no `ARG` is needed).
    pub build_args: BTreeMap<String, String>,
    /// When set, the context is this source tree (filtered by its `.dockerignore`) and the
    /// Dockerfile is `context_dir/Dockerfile` added to it; else the context is `context_dir`.
    pub tree: Option<TreeContext>,
}

/// `text` (a Dockerfile) with `labels` added to its last instruction when that is a `LABEL`
/// (the two lines the render step appends, as Fabric's Makefile does), else as one `LABEL`
/// instruction at the end. Values are double-quoted with `"`, `\` and `$` escaped, so the
/// builder neither splits nor expands them.
///
/// Why: labels given through the build API's `labels` parameter cost the classic builder of
/// Docker Engine 20.10 one step — one container and one commit — per label (seen on this
/// engine: `Step 8/10 : LABEL org.imgforge.fingerprint=…`, `Step 9/10 : LABEL
/// org.imgforge.managed=true`, …), where Fabric's Makefile build has 7 steps for the peer.
pub fn dockerfile_with_labels(text: &str, labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return text.to_string();
    }
    let quote = |v: &str| {
        let mut q = String::from('"');
        for c in v.chars() {
            if matches!(c, '"' | '\\' | '$') {
                q.push('\\');
            }
            q.push(c);
        }
        q.push('"');
        q
    };
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{}={}", quote(k), quote(v)))
        .collect();
    let body = text.trim_end_matches(['\n', ' ', '\t', '\r']);
    // the last instruction: from the line after the last one that does not continue
    let lines: Vec<&str> = body.lines().collect();
    let mut start = lines.len();
    while start > 0 {
        let prev = lines[start - 1];
        let continued = start >= 2 && lines[start - 2].trim_end().ends_with('\\');
        start -= 1;
        let t = prev.trim_start();
        if !continued && !t.is_empty() && !t.starts_with('#') {
            break;
        }
    }
    let last_is_label = lines
        .get(start)
        .and_then(|l| l.split_whitespace().next())
        .is_some_and(|w| w.eq_ignore_ascii_case("LABEL"));
    if last_is_label {
        format!("{body} \\\n      {}\n", pairs.join(" \\\n      "))
    } else {
        format!("{body}\nLABEL {}\n", pairs.join(" \\\n      "))
    }
}

/// A repository-root build context ([`crate::archive::write_context_archive`]).
#[derive(Debug, Clone)]
pub struct TreeContext {
    /// The source tree.
    pub root: PathBuf,
    /// Its `.dockerignore`.
    pub ignore: crate::dockerignore::DockerIgnore,
    /// Directories below `root` never sent (imgforge's own build dir).
    pub skip: Vec<PathBuf>,
    /// Member name of the Dockerfile in the context (`-f` of `docker build`).
    pub dockerfile: String,
}

/// Writes an uncompressed layer tar into the given writer; runs on a blocking thread.
pub type LayerProducer = Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()> + Send>;

/// An image import from a root filesystem tar stream (`docker import`).
pub struct ImportSpec {
    /// Step that imports it.
    pub step: String,
    /// Repository of the new image.
    pub repository: String,
    /// Tag of the new image.
    pub tag: String,
    /// Dockerfile instructions applied to the config (`ENV …`, `WORKDIR …`, `LABEL …`, `CMD …`).
    pub changes: Vec<String>,
    /// Writes the uncompressed layer tar; runs on a blocking thread while the upload streams.
    pub producer: LayerProducer,
}

/// What imgforge needs to know about an image in the engine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageInfo {
    /// Image ID, `sha256:…`.
    pub id: String,
    /// Tags pointing at it, `repository:tag`.
    pub repo_tags: Vec<String>,
    /// Config labels.
    pub labels: BTreeMap<String, String>,
    /// Config env.
    pub env: Vec<String>,
    /// Config working dir.
    pub workdir: String,
    /// Number of filesystem layers (0 when unknown, e.g. from an image list).
    pub layers: usize,
    /// The image's comment: `docker import` sets `Imported from -`; a Dockerfile build sets none.
    pub comment: String,
}

/// Engine failures, each with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The daemon could not be reached.
    #[error("cannot connect to the Docker daemon at {host}: {message}\nhint: {hint}")]
    Unreachable {
        /// The host tried (`unix:///var/run/docker.sock`, `DOCKER_HOST`).
        host: String,
        /// The transport error.
        message: String,
        /// What to check.
        hint: String,
    },
    /// The connection settings (`DOCKER_HOST`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`) are
    /// unusable; nothing was sent.
    #[error("{what}\nhint: {hint}")]
    Config {
        /// What is wrong, naming the variable.
        what: String,
        /// What to set.
        hint: String,
    },
    /// A remote engine cannot do what was asked (e.g. a container that needs this host's
    /// files or network).
    #[error("{what} needs the Docker Engine on this host, but DOCKER_HOST={host} may be another host\nhint: {hint}")]
    NotLocal {
        /// What was asked.
        what: String,
        /// The `DOCKER_HOST` value.
        host: String,
        /// What to do instead.
        hint: String,
    },
    /// The daemon answered with an error.
    #[error("Docker Engine API {op} failed: {message}")]
    Api {
        /// The operation, e.g. `create container from hyperledger/fabric-baseimage:amd64-0.4.22`.
        op: String,
        /// The daemon's message.
        message: String,
    },
    /// A build container exited non-zero.
    #[error("`{cmd}` in {image} exited with code {code}; last lines of output:\n{}", log_tail.join("\n"))]
    ContainerExit {
        /// Image the container ran.
        image: String,
        /// The command, shell-quoted for display.
        cmd: String,
        /// Exit code.
        code: i64,
        /// Last lines of stdout and stderr.
        log_tail: Vec<String>,
    },
    /// `docker build` failed.
    #[error("building {reference} failed: {message}; last lines of the build:\n{}", log_tail.join("\n"))]
    BuildFailed {
        /// Reference being built.
        reference: String,
        /// The daemon's error.
        message: String,
        /// Last lines of build output.
        log_tail: Vec<String>,
    },
    /// Writing the streamed context or layer failed.
    #[error("streaming {what} to the engine failed: {source}")]
    Stream {
        /// Context or layer.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Cancelled (Ctrl-C); containers were removed.
    #[error("cancelled")]
    Cancelled,
}

/// The operations imgforge needs from a container engine.
pub trait Engine: Send + Sync + 'static {
    /// Check that the engine answers; returns a one-line description (version, API version).
    fn ping(&self) -> impl Future<Output = Result<String, EngineError>> + Send;

    /// True when the engine may be on another host (`DOCKER_HOST=tcp://…` or `ssh://…`): bind
    /// mounts of this host's paths are then copied in and out instead (see
    /// [`RunSpec::outputs`]).
    fn is_remote(&self) -> bool {
        false
    }

    /// Look an image up; `Ok(None)` when it does not exist.
    fn inspect_image(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<Option<ImageInfo>, EngineError>> + Send;

    /// Run a container to completion: create (labelled), start, stream its output as `Log`
    /// events, wait, and remove it in every case. A non-zero exit is
    /// [`EngineError::ContainerExit`] with the last lines of output.
    fn run(
        &self,
        spec: &RunSpec,
        reporter: &dyn Reporter,
        cancel: &CancellationToken,
    ) -> impl Future<Output = Result<RunOutput, EngineError>> + Send;

    /// Build an image from a context directory streamed as an uncompressed tar (bounded
    /// memory, no temporary file) and return its ID after confirming it by inspection.
    fn build(
        &self,
        spec: &BuildSpec,
        reporter: &dyn Reporter,
        cancel: &CancellationToken,
    ) -> impl Future<Output = Result<String, EngineError>> + Send;

    /// Import a root filesystem tar as a one-layer image and return its ID.
    fn import(
        &self,
        spec: ImportSpec,
        reporter: &dyn Reporter,
        cancel: &CancellationToken,
    ) -> impl Future<Output = Result<String, EngineError>> + Send;

    /// Point `repository:tag` at image `id`.
    fn tag(
        &self,
        id: &str,
        repository: &str,
        tag: &str,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Images carrying label `key=value`.
    fn images_with_label(
        &self,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<Vec<ImageInfo>, EngineError>> + Send;

    /// Remove an image reference or ID (`force` removes all its tags).
    fn remove_image(
        &self,
        reference: &str,
        force: bool,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// IDs of containers (running or not) carrying label `key=value`.
    fn containers_with_label(
        &self,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<Vec<String>, EngineError>> + Send;

    /// Force-remove a container (with its anonymous volumes); a missing one is not an error.
    fn remove_container(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Stop a running container as `docker stop` does: SIGTERM, then SIGKILL after
    /// `timeout_secs`; a stopped or missing one is not an error.
    fn stop_container(
        &self,
        id: &str,
        timeout_secs: u32,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Every image of the engine (`docker images -a`): ID and tags.
    fn list_images(&self) -> impl Future<Output = Result<Vec<ImageInfo>, EngineError>> + Send;

    /// Every container of the engine, running or not (`docker ps -a`).
    fn list_containers(
        &self,
    ) -> impl Future<Output = Result<Vec<ContainerInfo>, EngineError>> + Send;

    /// What an image assembled on top of `reference` needs of it: its ID, platform, layer
    /// diff IDs, run configuration and history. `None` when the image is not in the engine.
    fn image_config(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<Option<BaseImageConfig>, EngineError>> + Send;

    /// Type, mode and owner of each of `paths` (absolute) in the filesystem of image
    /// `reference` (`None`: it does not exist), as `docker cp` sees it from a container that is
    /// created for the question and never started; that container is removed before returning.
    fn stat_paths(
        &self,
        step: &str,
        reference: &str,
        paths: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, Option<PathStat>>, EngineError>> + Send;

    /// Load an image archive in `docker save` format written by `producer` (`POST
    /// /images/load`, as `docker load`); returns what the engine says it loaded: the
    /// references of the archive's `RepoTags`, else the image ID (`sha256:…`). Layers the
    /// engine has already (by chain ID) may be left out of the archive.
    fn load(
        &self,
        step: &str,
        producer: LayerProducer,
        reporter: &dyn Reporter,
    ) -> impl Future<Output = Result<Vec<String>, EngineError>> + Send;

    /// Push `reference` (`registry/repository:tag`) to its registry (`POST
    /// /images/{name}/push`, as `docker push`), with `credentials` when given; reports the
    /// registry's progress as log lines of `step`. Returns the manifest digest the registry
    /// answered (`sha256:…`).
    fn push(
        &self,
        step: &str,
        reference: &str,
        credentials: Option<RegistryCredentials>,
        reporter: &dyn Reporter,
    ) -> impl Future<Output = Result<String, EngineError>> + Send;

    /// Write the `docker save` archive of `references` (`GET /images/get`) to `out` as it
    /// arrives; returns the number of bytes.
    fn save(
        &self,
        references: &[String],
        out: &mut (dyn Write + Send),
    ) -> impl Future<Output = Result<u64, EngineError>> + Send;
}

/// Credentials for a registry, as the Docker CLI reads them from `~/.docker/config.json`.
#[derive(Clone, PartialEq, Eq)]
pub enum RegistryCredentials {
    /// User name and password (or token used as password).
    UsernamePassword(String, String),
    /// An identity token (OAuth refresh token).
    IdentityToken(String),
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryCredentials::UsernamePassword(u, _) => {
                write!(f, "UsernamePassword({u:?}, ***)")
            }
            RegistryCredentials::IdentityToken(_) => write!(f, "IdentityToken(***)"),
        }
    }
}

/// An image's configuration as the assembler builds on it ([`crate::assemble`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseImageConfig {
    /// Image ID, `sha256:…`.
    pub id: String,
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `linux`.
    pub os: String,
    /// CPU variant (`v8`), if any.
    pub variant: Option<String>,
    /// The layers' diff IDs (`sha256:` of each uncompressed layer), lowest first.
    pub diff_ids: Vec<String>,
    /// `Env`, `NAME=value`.
    pub env: Vec<String>,
    /// `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `WorkingDir`.
    pub working_dir: String,
    /// `User`.
    pub user: String,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
    /// `ExposedPorts` keys (`7050/tcp`).
    pub exposed_ports: Vec<String>,
    /// `Volumes` keys.
    pub volumes: Vec<String>,
    /// `StopSignal`.
    pub stop_signal: Option<String>,
    /// History, oldest first.
    pub history: Vec<HistoryEntry>,
}

/// One entry of an image's history.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HistoryEntry {
    /// RFC 3339 time.
    pub created: String,
    /// The instruction or command that made it.
    pub created_by: String,
    /// A comment (`Imported from -`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// No layer of its own (metadata only).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// The type, mode and owner of a path in an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathStat {
    /// A directory (else a file, link or other).
    pub dir: bool,
    /// A symbolic link.
    pub symlink: bool,
    /// Permission bits (with setuid, setgid, sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
}

/// A container as the engine lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Container ID.
    pub id: String,
    /// Name, without Docker's leading `/`.
    pub name: String,
    /// The image as given when it was created (a reference, or an ID).
    pub image: String,
    /// `running`, `exited`, `created`, …
    pub state: String,
}

/// Quote a command for display the way a POSIX shell would need it (`shlex`): an argument
/// with spaces or shell metacharacters is quoted, an empty one is `''`. An argument holding a
/// NUL byte (which no shell can pass) is shown in Rust's debug quoting instead.
pub fn shell_join(cmd: &[String]) -> String {
    cmd.iter()
        .map(|a| shlex::try_quote(a).map_or_else(|_| format!("{a:?}"), |q| q.into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::dockerfile_with_labels;
    use std::collections::BTreeMap;

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("org.imgforge.fingerprint".to_string(), "ab12".to_string()),
            ("org.imgforge.step".to_string(), "image/peer".to_string()),
            ("odd".to_string(), "a \"b\" $c \\d".to_string()),
        ])
    }

    #[test]
    fn labels_join_the_rendered_label_instruction() {
        let rendered = "FROM x\nCMD [\"peer\"]\nLABEL org.hyperledger.fabric.version=1.4.12 \\\n      org.hyperledger.fabric.base.version=0.4.22\n";
        let out = dockerfile_with_labels(rendered, &labels());
        assert_eq!(
            out,
            "FROM x\nCMD [\"peer\"]\nLABEL org.hyperledger.fabric.version=1.4.12 \\\n      org.hyperledger.fabric.base.version=0.4.22 \\\n      \"odd\"=\"a \\\"b\\\" \\$c \\\\d\" \\\n      \"org.imgforge.fingerprint\"=\"ab12\" \\\n      \"org.imgforge.step\"=\"image/peer\"\n"
        );
        // one LABEL instruction: as many as before
        let count = |t: &str| t.lines().filter(|l| l.starts_with("LABEL")).count();
        assert_eq!(count(&out), count(rendered));
    }

    #[test]
    fn labels_get_their_own_instruction_after_anything_else() {
        for (text, tail) in [
            (
                "FROM x\nCMD [\"a\", \\\n  \"b\"]\n",
                "CMD [\"a\", \\\n  \"b\"]\nLABEL ",
            ),
            (
                "FROM x\nLABEL a=b\nCMD c\n# LABEL in a comment\n\n",
                "CMD c\n# LABEL in a comment\nLABEL ",
            ),
            ("FROM x\nRUN echo LABEL\n", "RUN echo LABEL\nLABEL "),
        ] {
            let out = dockerfile_with_labels(text, &labels());
            assert!(out.contains(tail), "{out}");
            assert!(
                out.ends_with("\"org.imgforge.step\"=\"image/peer\"\n"),
                "{out}"
            );
        }
        assert_eq!(
            dockerfile_with_labels("FROM x\n", &BTreeMap::new()),
            "FROM x\n"
        );
    }
}
