//! [`Engine`] for a real Docker Engine, through `bollard`.
//!
//! Connection follows Docker's conventions ([`super::endpoint`]): `DOCKER_HOST` (`unix://`,
//! `tcp://`, `ssh://`), `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH` for TLS, else
//! `unix:///var/run/docker.sock`. The API version is negotiated with the daemon (imgforge works
//! with Engine API ≥ 1.41). On a remote engine, bind mounts become copies ([`super::ship`]).

use super::stream::{interpret, strip_ansi, BuildMessage, LineDecoder};
use super::*;
use crate::archive::ArchiveOptions;
use crate::event::{Event, Reporter};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, BuildImageOptionsBuilder, CreateContainerOptionsBuilder,
    CreateImageOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
    TagImageOptionsBuilder,
};
use bollard::Docker;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Chunk size of streamed uploads, in bytes; with [`UPLOAD_QUEUE`] this bounds the memory an
/// upload uses (4 × 256 KiB).
const UPLOAD_CHUNK: usize = 256 * 1024;
/// Chunks in flight between the archive writer thread and the HTTP body.
const UPLOAD_QUEUE: usize = 4;

/// A Docker Engine reached through bollard.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    host: String,
    endpoint: super::endpoint::Endpoint,
    session: String,
    lease: std::sync::Arc<Lease>,
}

/// A run's lease: a file under [`lease_dir`] that this process holds an exclusive lock on
/// (`flock`) for as long as it lives. The kernel drops the lock when the process ends, however
/// it ends (SIGKILL included), so "the lock can be taken" means "its owner is gone" — on this
/// machine, whatever PID namespace or hostname either process has. The file is removed on drop.
#[derive(Debug)]
struct Lease {
    path: PathBuf,
    _file: std::fs::File,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where leases live: `$TMPDIR/imgforge-leases-<uid>` (mode 0700).
fn lease_dir() -> PathBuf {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    std::env::temp_dir().join(format!("imgforge-leases-{uid}"))
}

/// A new random session id (16 hex digits): no pid, no hostname, so it means nothing outside
/// this process and cannot collide across PID namespaces.
fn new_session_id() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.update(t.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    let local = 0u8;
    h.update((&local as *const u8 as usize).to_le_bytes());
    if let Ok(b) = std::fs::read("/proc/sys/kernel/random/uuid") {
        h.update(b);
    }
    hex::encode(&h.finalize()[..8])
}

impl Lease {
    fn take(session: &str) -> io::Result<Lease> {
        let dir = lease_dir();
        std::fs::create_dir_all(&dir)?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        let path = dir.join(format!("{session}.lease"));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok(Lease { path, _file: file })
    }
}

/// What a lease file says about the run that labelled a container with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// Its lock is held: the run is alive.
    Alive,
    /// The file exists and its lock is free: the run ended without cleaning up.
    Dead,
    /// No such file here (another machine or mount namespace, or a cleaned temp dir): unknown.
    Unknown,
}

/// Check the lease at `path`; for a dead owner, the lock is returned held, so that two sweepers
/// do not both act on it.
fn lease_owner(path: &Path) -> (Owner, Option<std::fs::File>) {
    // only files that look like our leases are ever opened
    let ours = path.extension().is_some_and(|e| e == "lease")
        && path
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|n| n.to_string_lossy().starts_with("imgforge-leases-"));
    if !ours || !path.is_absolute() {
        return (Owner::Unknown, None);
    }
    let Ok(f) = std::fs::OpenOptions::new().read(true).open(path) else {
        return (Owner::Unknown, None);
    };
    match f.try_lock() {
        Ok(()) => (Owner::Dead, Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => (Owner::Alive, None),
        Err(std::fs::TryLockError::Error(_)) => (Owner::Unknown, None),
    }
}

/// A client for `endpoint` (nothing is sent yet).
fn open(endpoint: &super::endpoint::Endpoint) -> Result<Docker, bollard::errors::Error> {
    use super::endpoint::Endpoint;
    const TIMEOUT: u64 = 120;
    match endpoint {
        Endpoint::Unix(h) => Docker::connect_with_unix(h, TIMEOUT, bollard::API_DEFAULT_VERSION),
        Endpoint::Tcp { host, tls: None } => {
            Docker::connect_with_http(host, TIMEOUT, bollard::API_DEFAULT_VERSION)
        }
        Endpoint::Tcp {
            host,
            tls: Some(files),
        } => Docker::connect_with_ssl(
            host,
            &files.key(),
            &files.cert(),
            &files.ca(),
            TIMEOUT,
            bollard::API_DEFAULT_VERSION,
        ),
        Endpoint::Ssh(h) => {
            Docker::connect_with_ssh(h, TIMEOUT, bollard::API_DEFAULT_VERSION, None)
        }
    }
}

/// `e` and its chain of causes: the transport's own reason (a TLS alert, a refused
/// connection) is at the end of the chain, behind "client error (Connect)".
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        cause = c.source();
    }
    message
}

fn unreachable(endpoint: &super::endpoint::Endpoint, e: impl std::error::Error) -> EngineError {
    use super::endpoint::Endpoint;
    let host = endpoint.host();
    let message = with_causes(&e);
    let hint = if message.contains("ermission denied") {
        "your user may not use the Docker socket: run as root or join the `docker` group"
            .to_string()
    } else {
        match endpoint {
            Endpoint::Unix(_) => format!(
                "is the Docker daemon running? (`systemctl start docker`); set DOCKER_HOST if it listens elsewhere (now {})",
                if std::env::var("DOCKER_HOST").is_ok() { "from DOCKER_HOST" } else { "the default socket" }
            ),
            Endpoint::Tcp { tls: Some(files), .. } => format!(
                "TLS with the client certificate of {}: the daemon must accept {} (signed by a CA it trusts) and present a certificate for this host name that {} verifies; check DOCKER_HOST and the daemon's --tlsverify/--tlscacert",
                files.describe(),
                files.cert().display(),
                files.ca().display()
            ),
            Endpoint::Tcp { tls: None, .. } => "plain HTTP (DOCKER_TLS_VERIFY is not set): if the daemon listens with TLS, set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH to the directory with ca.pem, cert.pem and key.pem".to_string(),
            Endpoint::Ssh(_) => "through `ssh` (its config, agent and known_hosts) running `docker system dial-stdio` on the remote host: check that `ssh HOST docker version` works".to_string(),
        }
    };
    EngineError::Unreachable {
        host: host.to_string(),
        message,
        hint,
    }
}

fn api(op: impl Into<String>, e: bollard::errors::Error) -> EngineError {
    let message = match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => {
            format!("{message} (HTTP {status_code})")
        }
        other => with_causes(&other),
    };
    EngineError::Api {
        op: op.into(),
        message,
    }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Force-removes a container when dropped while still armed (`id` is `Some`).
struct RemoveOnDrop {
    docker: Docker,
    id: Option<String>,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let (Some(id), Ok(rt)) = (self.id.take(), tokio::runtime::Handle::try_current()) {
            let docker = self.docker.clone();
            rt.spawn(async move {
                let opts = RemoveContainerOptionsBuilder::default()
                    .force(true)
                    .v(true)
                    .build();
                let _ = docker.remove_container(&id, Some(opts)).await;
            });
        }
    }
}

/// Run `producer` on a blocking thread and expose what it writes as a byte stream: the writer
/// is a [`SyncIoBridge`](tokio_util::io::SyncIoBridge) over a [`tokio::io::duplex`] pipe of
/// [`UPLOAD_QUEUE`] × [`UPLOAD_CHUNK`] bytes, read by a
/// [`ReaderStream`](tokio_util::io::ReaderStream) in chunks of `UPLOAD_CHUNK`, so the producer
/// stalls when the engine reads slower and memory stays bounded. When the producer fails, the
/// stream ends with that error (not with a clean end of a truncated body). The join handle
/// yields the producer's result; the counter is the bytes the stream has handed on.
fn stream_from_writer<F>(
    producer: F,
) -> (
    impl Stream<Item = io::Result<Bytes>> + Send + 'static,
    tokio::task::JoinHandle<io::Result<()>>,
    std::sync::Arc<AtomicU64>,
)
where
    F: FnOnce(&mut dyn io::Write) -> io::Result<()> + Send + 'static,
{
    // a duplex pipe used one way: when the engine stops reading (the body is dropped), the
    // producer's next write fails with BrokenPipe instead of waiting forever
    let (reader, writer) = tokio::io::duplex(UPLOAD_QUEUE * UPLOAD_CHUNK);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<io::Error>();
    let handle = tokio::task::spawn_blocking(move || {
        let mut w =
            io::BufWriter::with_capacity(UPLOAD_CHUNK, tokio_util::io::SyncIoBridge::new(writer));
        let r = producer(&mut w).and_then(|_| io::Write::flush(&mut w));
        // Close the pipe also after an error, so the reader sees the end before the error item.
        // (`into_parts` drops unflushed bytes.)
        let (mut bridge, _) = w.into_parts();
        let r = r.and(bridge.shutdown());
        if let Err(e) = &r {
            // the reader sees this after the bytes written so far
            let _ = done_tx.send(io::Error::new(e.kind(), e.to_string()));
        }
        r
    });
    let sent = std::sync::Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let data =
        tokio_util::io::ReaderStream::with_capacity(reader, UPLOAD_CHUNK).inspect(move |chunk| {
            if let Ok(c) = chunk {
                counter.fetch_add(c.len() as u64, Ordering::Relaxed);
            }
        });
    // after the data: the producer's error, if it had one (a dropped sender means success)
    let end = futures_util::stream::once(done_rx).filter_map(|r| async move { r.ok().map(Err) });
    (data.chain(end), handle, sent)
}

/// What a [`stream_from_writer`] producer ended with, as an engine error about `what`: its
/// own I/O error, or its panic (the stream may then be truncated at a chunk boundary).
fn producer_result(
    what: String,
    produced: Result<io::Result<()>, tokio::task::JoinError>,
) -> Result<(), EngineError> {
    match produced {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(EngineError::Stream { what, source }),
        Err(e) => Err(EngineError::Stream {
            what,
            source: io::Error::other(e.to_string()),
        }),
    }
}

/// The create request of a container for `spec` with `labels` (`attach`: its output is read).
/// Unix seconds as RFC 3339 (UTC, whole seconds), as image configs write times.
pub fn rfc3339(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// One message of the engine's push stream (Engine API `ImagePush`): what bollard's
/// `PushImageInfo` holds, plus the layer `id` and the final `aux` digest.
#[derive(Debug, serde::Deserialize)]
struct PushMessage {
    id: Option<String>,
    status: Option<String>,
    #[serde(rename = "progressDetail")]
    progress_detail: Option<PushProgressDetail>,
    #[serde(rename = "errorDetail")]
    error_detail: Option<PushErrorDetail>,
    error: Option<String>,
    aux: Option<PushAux>,
}

#[derive(Debug, serde::Deserialize)]
struct PushProgressDetail {
    current: Option<u64>,
    total: Option<u64>,
}

#[derive(Debug, serde::Deserialize)]
struct PushErrorDetail {
    message: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct PushAux {
    #[serde(rename = "Digest")]
    digest: Option<String>,
}

/// Per-layer push progress: one line when a layer starts, at each quarter of its bytes, and
/// when it is pushed or found in the registry (so a 1 GiB layer gives 6 lines, not thousands).
#[derive(Debug, Default)]
struct PushProgress {
    /// layer id -> last reported quarter (0..=4), or 5 once done
    layers: BTreeMap<String, u8>,
    pushed: usize,
    existed: usize,
}

impl PushProgress {
    /// The line to report for a message, if any.
    fn update(
        &mut self,
        id: Option<&str>,
        status: &str,
        detail: Option<PushProgressDetail>,
    ) -> Option<String> {
        let Some(id) = id else {
            // messages about the whole push: "The push refers to repository …", "<tag>: digest: …"
            return Some(status.to_string());
        };
        let layer = self.layers.entry(id.to_string()).or_insert(u8::MAX);
        match status {
            "Pushed" | "Layer already exists" if *layer != 5 => {
                *layer = 5;
                if status == "Pushed" {
                    self.pushed += 1;
                } else {
                    self.existed += 1;
                }
                Some(format!("layer {id}: {}", status.to_lowercase()))
            }
            "Pushing" => {
                let (c, t) =
                    detail.map_or((0, 0), |d| (d.current.unwrap_or(0), d.total.unwrap_or(0)));
                let quarter = (c.min(t) * 4).checked_div(t).unwrap_or(0) as u8;
                (*layer == u8::MAX || (quarter > *layer && *layer != 5)).then(|| {
                    *layer = quarter;
                    if t > 0 {
                        format!(
                            "layer {id}: pushing {} % of {}",
                            quarter as u64 * 25,
                            human_bytes(t)
                        )
                    } else {
                        format!("layer {id}: pushing")
                    }
                })
            }
            s if s.starts_with("Mounted from") && *layer != 5 => {
                *layer = 5;
                self.existed += 1;
                Some(format!("layer {id}: {s}"))
            }
            "Preparing" | "Waiting" => (*layer == u8::MAX).then(|| {
                *layer = 0;
                format!("layer {id}: {}", status.to_lowercase())
            }),
            _ => None,
        }
    }

    fn summary(&self) -> String {
        format!(
            "layers: {} pushed, {} already in the registry",
            self.pushed, self.existed
        )
    }
}

fn human_bytes(n: u64) -> String {
    if n >= 1024 * 1024 {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KiB", n as f64 / 1024.0)
    }
}

/// Percent-encoding of a query value (a tag is `[A-Za-z0-9_.-]`, so this is for safety).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn container_body(
    spec: &RunSpec,
    labels: HashMap<String, String>,
    attach: bool,
) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: Some(spec.cmd.clone()),
        env: Some(spec.env.clone()),
        working_dir: spec.workdir.clone(),
        user: spec.user.clone(),
        labels: Some(labels),
        attach_stdout: attach.then_some(true),
        attach_stderr: attach.then_some(true),
        host_config: Some(HostConfig {
            binds: Some(spec.binds.clone()),
            network_mode: spec.network_host.then(|| "host".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl DockerEngine {
    /// Connect as the Docker CLI would (`DOCKER_HOST`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`),
    /// negotiate the API version and check that the daemon answers.
    ///
    /// Errors: [`EngineError::Unreachable`] naming the host and what to check.
    pub async fn connect() -> Result<Self, EngineError> {
        let endpoint = super::endpoint::Endpoint::from_env(
            &|k| std::env::var(k).ok(),
            std::env::var_os("HOME").map(PathBuf::from),
        )?;
        let host = endpoint.host().to_string();
        let docker = open(&endpoint).map_err(|e| unreachable(&endpoint, e))?;
        let docker = docker
            .with_timeout(Duration::from_secs(3600))
            .negotiate_version()
            .await
            .map_err(|e| unreachable(&endpoint, e))?;
        let session = new_session_id();
        let lease = Lease::take(&session).map_err(|e| EngineError::Api {
            op: format!("create the lease file in {}", lease_dir().display()),
            message: format!(
                "{e} (imgforge marks the containers of a live run with a locked file there; set TMPDIR to a writable directory)"
            ),
        })?;
        Ok(DockerEngine {
            docker,
            host,
            endpoint,
            session,
            lease: std::sync::Arc::new(lease),
        })
    }

    /// Containers (running or not) carrying label `key=value`.
    async fn labelled_containers(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<bollard::models::ContainerSummary>, EngineError> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{key}={value}")])]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| api("list containers", e))
    }

    /// `GET /images/json` with `opts`: ID, tags and labels of each image.
    async fn images(
        &self,
        opts: bollard::query_parameters::ListImagesOptions,
    ) -> Result<Vec<ImageInfo>, EngineError> {
        let list = self
            .docker
            .list_images(Some(opts))
            .await
            .map_err(|e| api("list images", e))?;
        Ok(list
            .into_iter()
            .map(|s| ImageInfo {
                id: s.id,
                repo_tags: s.repo_tags,
                labels: s.labels.into_iter().collect(),
                ..Default::default()
            })
            .collect())
    }

    /// Remove containers left by imgforge runs that ended without cleaning up (SIGKILL, a crash):
    /// those whose [`LABEL_LEASE`] file exists here and whose lock nobody holds. A container
    /// whose lease is held (a live run, in any PID namespace, with any hostname), or whose lease
    /// file is not on this machine (another host on a shared engine), is never touched.
    /// Returns the IDs removed.
    pub async fn sweep_orphans(&self) -> Result<Vec<String>, EngineError> {
        let list = self.labelled_containers(LABEL_MANAGED, "true").await?;
        let mut by_lease: std::collections::BTreeMap<PathBuf, Vec<String>> = Default::default();
        for c in list {
            let (Some(id), Some(labels)) = (c.id, c.labels) else {
                continue;
            };
            if let Some(lease) = labels.get(LABEL_LEASE) {
                by_lease.entry(PathBuf::from(lease)).or_default().push(id);
            }
        }
        let mut removed = Vec::new();
        for (path, ids) in by_lease {
            if path == self.lease.path {
                continue;
            }
            let (owner, lock) = lease_owner(&path);
            if owner != Owner::Dead {
                continue;
            }
            for id in ids {
                self.force_remove(&id).await;
                removed.push(id);
            }
            let _ = std::fs::remove_file(&path);
            drop(lock);
        }
        Ok(removed)
    }

    /// Start a long-running container named `name` and return its ID; the caller removes it
    /// ([`Engine::remove_container`]). With `sweepable` it is labelled like every container
    /// imgforge starts, so the next run sweeps it if this process dies; without (a network the
    /// user asked to keep) it carries no lease and stays until the user removes it.
    ///
    /// Errors: [`EngineError::Api`] naming the image when it cannot be created or started.
    pub async fn start_service(
        &self,
        name: &str,
        spec: &RunSpec,
        sweepable: bool,
    ) -> Result<String, EngineError> {
        let mut labels = self.labels(&spec.step);
        if !sweepable {
            labels.retain(|k, _| k != LABEL_LEASE && k != LABEL_SESSION);
        }
        let body = container_body(spec, labels, false);
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptionsBuilder::default().name(name).build()),
                body,
            )
            .await
            .map_err(|e| api(format!("create container {name} from {}", spec.image), e))?;
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            self.force_remove(&created.id).await;
            return Err(api(format!("start container {name}"), e));
        }
        Ok(created.id)
    }

    /// Whether container `id` is running (`false` when it exited or is gone).
    pub async fn inspect_running(&self, id: &str) -> Result<bool, EngineError> {
        match self.docker.inspect_container(id, None).await {
            Ok(c) => Ok(c.state.and_then(|s| s.running).unwrap_or(false)),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(api(format!("inspect container {id}"), e)),
        }
    }

    /// Everything container `id` printed so far (stdout and stderr, colour sequences removed).
    pub async fn logs_text(&self, id: &str) -> String {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .build();
        let mut logs = self.docker.logs(id, Some(opts));
        let mut text = String::new();
        while let Some(Ok(item)) = logs.next().await {
            text.push_str(&String::from_utf8_lossy(&item.into_bytes()));
        }
        strip_ansi(&text)
    }

    /// Remove (forced) every container whose name starts with `prefix` or whose command
    /// mentions it, and every image whose repository starts with it; returns how many of each.
    /// For what Fabric's peer creates itself: its chaincode containers and images are named
    /// `<network id>-<peer id>-…`, and its unnamed chaincode build container in ccenv runs
    /// `go build … <package>` (so the package path carries the prefix too).
    pub async fn remove_named(&self, prefix: &str) -> (usize, usize) {
        let opts = ListContainersOptionsBuilder::default().all(true).build();
        let mut containers = 0;
        for c in self
            .docker
            .list_containers(Some(opts))
            .await
            .unwrap_or_default()
        {
            let named = c
                .names
                .unwrap_or_default()
                .iter()
                .any(|n| n.trim_start_matches('/').starts_with(prefix))
                || c.command.as_deref().is_some_and(|cmd| cmd.contains(prefix));
            if let (true, Some(id)) = (named, c.id) {
                self.force_remove(&id).await;
                containers += 1;
            }
        }
        let mut images = 0;
        let list = self
            .docker
            .list_images(Some(ListImagesOptionsBuilder::default().build()))
            .await
            .unwrap_or_default();
        for img in list {
            if img.repo_tags.iter().any(|t| t.starts_with(prefix)) {
                let opts = RemoveImageOptionsBuilder::default().force(true).build();
                if self
                    .docker
                    .remove_image(&img.id, Some(opts), None)
                    .await
                    .is_ok()
                {
                    images += 1;
                }
            }
        }
        (containers, images)
    }

    /// The lease file this process holds (value of [`LABEL_LEASE`] on its containers).
    pub fn lease_path(&self) -> &Path {
        &self.lease.path
    }

    /// The daemon address in use.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// This process's session id (value of [`LABEL_SESSION`] on its containers).
    pub fn session(&self) -> &str {
        &self.session
    }

    fn labels(&self, step: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_SESSION.to_string(), self.session.clone()),
            (
                LABEL_LEASE.to_string(),
                self.lease.path.display().to_string(),
            ),
            (LABEL_STEP.to_string(), step.to_string()),
        ])
    }

    async fn force_remove(&self, id: &str) {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        // A container that is already gone is fine; nothing else can be done on this path.
        let _ = self.docker.remove_container(id, Some(opts)).await;
    }

    /// Remote engine: copy every bind of `spec` into the created container `id` (see
    /// [`super::ship`]), reporting what was copied.
    async fn copy_binds_in(
        &self,
        id: &str,
        spec: &RunSpec,
        reporter: &dyn Reporter,
    ) -> Result<(), EngineError> {
        let owner = super::ship::owner(spec.user.as_deref());
        for raw in &spec.binds {
            let bind = super::ship::Bind::parse(raw).ok_or_else(|| EngineError::Api {
                op: format!("copy {raw} to the remote engine"),
                message: "expected an absolute host-path:container-path bind".into(),
            })?;
            // a cache, or an output: nothing in the container reads what is there before the run
            let cache = spec.caches.contains(&bind.container);
            let output = spec.outputs.contains(&bind.container);
            let empty = cache || output;
            let skip = spec.not_shipped.clone();
            let b = bind.clone();
            let counts = std::sync::Arc::new(std::sync::Mutex::new(super::ship::Copied::default()));
            let c = counts.clone();
            let (body, producer, _) = stream_from_writer(move |w| {
                let copied = super::ship::write_bind(w, &b, owner, &skip, empty)?;
                *c.lock().unwrap() = copied;
                Ok(())
            });
            let opts = bollard::query_parameters::UploadToContainerOptionsBuilder::default()
                .path("/")
                .build();
            let what = format!(
                "{} to {} in the container",
                bind.host.display(),
                bind.container
            );
            let sent = self
                .docker
                .upload_to_container(id, Some(opts), bollard::body_try_stream(body))
                .await;
            producer_result(what.clone(), producer.await)?;
            sent.map_err(|e| api(format!("copy {what}"), e))?;
            let copied = *counts.lock().unwrap();
            reporter.event(&Event::Notice {
                step: spec.step.clone(),
                message: if empty {
                    format!(
                        "remote engine ({}): {} starts empty ({})",
                        self.host,
                        bind.container,
                        if output {
                            "an output: copied back after the run"
                        } else {
                            "a cache: not copied"
                        }
                    )
                } else {
                    format!(
                        "remote engine ({}): copied {} into the container at {} ({} entries, {}) instead of bind-mounting it",
                        self.host,
                        bind.host.display(),
                        bind.container,
                        copied.entries,
                        super::ship::mib(copied.bytes)
                    )
                },
            });
        }
        Ok(())
    }

    /// Remote engine: copy the declared outputs of `spec` out of the exited container `id` into
    /// their host directories.
    async fn copy_outputs_back(
        &self,
        id: &str,
        spec: &RunSpec,
        reporter: &dyn Reporter,
    ) -> Result<(), EngineError> {
        for raw in &spec.binds {
            let Some(bind) = super::ship::Bind::parse(raw) else {
                continue;
            };
            if !spec.outputs.contains(&bind.container) {
                continue;
            }
            let opts = bollard::query_parameters::DownloadFromContainerOptionsBuilder::default()
                .path(&bind.container)
                .build();
            let stream = self
                .docker
                .download_from_container(id, Some(opts))
                .map(|r| r.map_err(io::Error::other));
            let reader = tokio_util::io::StreamReader::new(stream);
            let dest = bind.host.clone();
            let what = format!(
                "{} from the container into {}",
                bind.container,
                dest.display()
            );
            let copied = tokio::task::spawn_blocking(move || {
                super::ship::extract_output(tokio_util::io::SyncIoBridge::new(reader), &dest)
            })
            .await
            .map_err(|e| EngineError::Stream {
                what: what.clone(),
                source: io::Error::other(e.to_string()),
            })?
            .map_err(|e| EngineError::Stream {
                what: what.clone(),
                source: e,
            })?;
            reporter.event(&Event::Notice {
                step: spec.step.clone(),
                message: format!(
                    "remote engine ({}): copied {} ({} entries, {})",
                    self.host,
                    what,
                    copied.entries,
                    super::ship::mib(copied.bytes)
                ),
            });
        }
        Ok(())
    }

    async fn run_inner(
        &self,
        id: &str,
        spec: &RunSpec,
        reporter: &dyn Reporter,
    ) -> Result<RunOutput, EngineError> {
        // Attached before the start, so nothing is missed, and raw: the bytes the process
        // wrote, in the frames it wrote them. Following the logs instead goes through the log
        // driver, which cuts lines at 16 KiB and turns a character split there into U+FFFD
        // (fixtures/logs-long-utf8-line.bin).
        let opts = AttachContainerOptionsBuilder::default()
            .stream(true)
            .stdout(true)
            .stderr(true)
            .build();
        let mut logs = self
            .docker
            .attach_container(id, Some(opts))
            .await
            .map_err(|e| api(format!("attach to container from {}", spec.image), e))?
            .output;
        self.docker
            .start_container(id, None)
            .await
            .map_err(|e| api(format!("start container from {}", spec.image), e))?;
        let mut out = LineDecoder::default();
        let mut err = LineDecoder::default();
        let mut stdout = Vec::new();
        let mut tail = LineDecoder::default();
        let mut emit = |line: String, is_stdout: bool, stdout: &mut Vec<String>| {
            if is_stdout && spec.capture_stdout {
                stdout.push(line);
            } else {
                let line = tail.keep(line);
                reporter.event(&Event::Log {
                    step: spec.step.clone(),
                    line,
                });
            }
        };
        while let Some(item) = logs.next().await {
            match item {
                Ok(bollard::container::LogOutput::StdOut { message }) => {
                    for l in out.feed(&message) {
                        emit(l, true, &mut stdout);
                    }
                }
                Ok(other) => {
                    for l in err.feed(&other.into_bytes()) {
                        emit(l, false, &mut stdout);
                    }
                }
                Err(e) => {
                    return Err(api(
                        format!("read output of container from {}", spec.image),
                        e,
                    ))
                }
            }
        }
        if let Some(l) = out.finish() {
            emit(l, true, &mut stdout);
        }
        if let Some(l) = err.finish() {
            emit(l, false, &mut stdout);
        }
        let mut wait = self
            .docker
            .wait_container(id, None::<bollard::query_parameters::WaitContainerOptions>);
        let code = match wait.next().await {
            Some(Ok(r)) => r.status_code,
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(api(format!("wait for container from {}", spec.image), e)),
            None => {
                return Err(EngineError::Api {
                    op: format!("wait for container from {}", spec.image),
                    message: "the engine ended the wait without an exit status (daemon restarted?)"
                        .into(),
                })
            }
        };
        if code != 0 {
            let mut log_tail = tail.tail();
            if spec.capture_stdout {
                let skip = stdout.len().saturating_sub(10);
                log_tail.extend(stdout[skip..].iter().cloned());
            }
            return Err(EngineError::ContainerExit {
                image: spec.image.clone(),
                cmd: shell_join(&spec.cmd),
                code,
                log_tail,
            });
        }
        Ok(RunOutput { stdout })
    }

    async fn build_inner(
        &self,
        spec: &BuildSpec,
        reporter: &dyn Reporter,
    ) -> Result<String, EngineError> {
        let dir = spec.context_dir.clone();
        let tree = spec.tree.clone();
        let dockerfile = tree
            .as_ref()
            .map_or("Dockerfile".to_string(), |t| t.dockerfile.clone());
        let labels: BTreeMap<String, String> = spec
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(self.labels(&spec.step))
            .filter(|(k, _)| k != LABEL_SESSION && k != LABEL_LEASE)
            .collect();
        // The labels go into the Dockerfile's last LABEL instruction, not into the API's
        // `labels`: the classic builder runs one more step (one container) for each of those.
        let rendered = dir.join("Dockerfile");
        let text = std::fs::read_to_string(&rendered).map_err(|e| EngineError::Api {
            op: "build".into(),
            message: format!("cannot read {}: {e}", rendered.display()),
        })?;
        let mut sent_dockerfile = tempfile::NamedTempFile::new().map_err(|e| EngineError::Api {
            op: "build".into(),
            message: format!("cannot write a temporary Dockerfile: {e}"),
        })?;
        io::Write::write_all(
            &mut sent_dockerfile,
            dockerfile_with_labels(&text, &labels).as_bytes(),
        )
        .map_err(|e| EngineError::Api {
            op: "build".into(),
            message: format!("cannot write a temporary Dockerfile: {e}"),
        })?;
        let sent_path = sent_dockerfile.path().to_path_buf();
        let (body, producer, sent) = stream_from_writer(move |w| {
            let opts = ArchiveOptions { mtime: 0 };
            match tree {
                // the payload directory, its Dockerfile replaced by the one with the labels
                None => crate::archive::write_context_archive(
                    &dir,
                    w,
                    &opts,
                    &Default::default(),
                    std::slice::from_ref(&rendered),
                    &[("Dockerfile".to_string(), sent_path)],
                ),
                Some(t) => crate::archive::write_context_archive(
                    &t.root,
                    w,
                    &opts,
                    &t.ignore,
                    &t.skip,
                    &[(t.dockerfile.clone(), sent_path)],
                ),
            }
            .map(|_| ())
            .map_err(|e| io::Error::other(e.to_string()))
        });
        let labels: HashMap<String, String> = HashMap::new();
        let opts = BuildImageOptionsBuilder::default()
            .dockerfile(&dockerfile)
            .t(&spec.reference)
            .rm(true)
            .forcerm(true)
            .labels(&labels)
            .buildargs(
                &spec
                    .build_args
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
            .build();
        let mut stream = self
            .docker
            .build_image(opts, None, Some(bollard::body_try_stream(body)));
        let mut lines = LineDecoder::default();
        let mut image_id = None;
        let mut failure = None;
        let mut unknown = 0usize;
        while let Some(item) = stream.next().await {
            let message = match item {
                Ok(info) => interpret(&info),
                // bollard turns `errorDetail.message` into this error
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    BuildMessage::Failed(error)
                }
                Err(e) => BuildMessage::Failed(api("build", e).to_string()),
            };
            match message {
                BuildMessage::Text(text) => {
                    for line in lines.feed(text.as_bytes()) {
                        reporter.event(&Event::Log {
                            step: spec.step.clone(),
                            line,
                        });
                    }
                }
                BuildMessage::ImageId(id) => image_id = Some(id),
                BuildMessage::Failed(message) => {
                    failure = Some(message);
                    break;
                }
                BuildMessage::Unknown => unknown += 1,
            }
        }
        drop(stream);
        let produced = producer.await;
        if let Some(l) = lines.finish() {
            reporter.event(&Event::Log {
                step: spec.step.clone(),
                line: l,
            });
        }
        // as the Docker CLI's "Sending build context to Docker daemon", after the fact
        reporter.event(&Event::Notice {
            step: spec.step.clone(),
            message: format!(
                "build context: {} bytes sent{}",
                sent.load(Ordering::Relaxed),
                match &spec.tree {
                    Some(t) => format!(" (the tree {} less its .dockerignore)", t.root.display()),
                    None => String::new(),
                }
            ),
        });
        if let Some(message) = failure {
            return Err(EngineError::BuildFailed {
                reference: spec.reference.clone(),
                message,
                log_tail: lines.tail(),
            });
        }
        producer_result(
            format!("build context {}", spec.context_dir.display()),
            produced,
        )?;
        // Success must be proven: the reference must exist and match the reported ID.
        let info =
            self.inspect_image(&spec.reference)
                .await?
                .ok_or_else(|| EngineError::BuildFailed {
                    reference: spec.reference.clone(),
                    message: if unknown > 0 {
                        format!(
                        "the build ended without an image; the engine sent {unknown} message(s) \
                             imgforge cannot read (the engine's error may be among them: run the \
                             same build with `docker build` to see it)"
                    )
                    } else {
                        "the build ended without error but the image is not in the engine".into()
                    },
                    log_tail: lines.tail(),
                })?;
        if let Some(id) = image_id {
            if id != info.id {
                return Err(EngineError::BuildFailed {
                    reference: spec.reference.clone(),
                    message: format!(
                        "the build reported image {id} but {} points at {} (another build raced this one?)",
                        spec.reference, info.id
                    ),
                    log_tail: lines.tail(),
                });
            }
        }
        Ok(info.id)
    }
}

fn image_info(i: bollard::models::ImageInspect) -> ImageInfo {
    let config = i.config.unwrap_or_default();
    ImageInfo {
        id: i.id.unwrap_or_default(),
        repo_tags: i.repo_tags.unwrap_or_default(),
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        env: config.env.unwrap_or_default(),
        workdir: config.working_dir.unwrap_or_default(),
        layers: i.root_fs.and_then(|r| r.layers).map_or(0, |l| l.len()),
        comment: i.comment.unwrap_or_default(),
    }
}

impl Engine for DockerEngine {
    fn is_remote(&self) -> bool {
        self.endpoint.is_remote()
    }
    async fn ping(&self) -> Result<String, EngineError> {
        let v = self
            .docker
            .version()
            .await
            .map_err(|e| unreachable(&self.endpoint, e))?;
        Ok(format!(
            "Docker Engine {} (API {}) at {}",
            v.version.unwrap_or_default(),
            v.api_version.unwrap_or_default(),
            self.host
        ))
    }

    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        match self.docker.inspect_image(reference).await {
            Ok(i) => Ok(Some(image_info(i))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api(format!("inspect image {reference}"), e)),
        }
    }

    async fn run(
        &self,
        spec: &RunSpec,
        reporter: &dyn Reporter,
        cancel: &CancellationToken,
    ) -> Result<RunOutput, EngineError> {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let remote = self.endpoint.is_remote() && !spec.binds.is_empty();
        let body = if remote {
            // an engine on another host cannot see this host's paths: copy them instead
            let local = RunSpec {
                binds: Vec::new(),
                ..spec.clone()
            };
            container_body(&local, self.labels(&spec.step), true)
        } else {
            container_body(spec, self.labels(&spec.step), true)
        };
        let created = self
            .docker
            .create_container(Some(CreateContainerOptionsBuilder::default().build()), body)
            .await
            .map_err(|e| api(format!("create container from {}", spec.image), e))?;
        // From here on the container exists: remove it on every path — also when this future
        // is dropped or a panic unwinds through it (the guard spawns the removal).
        let mut guard = RemoveOnDrop {
            docker: self.docker.clone(),
            id: Some(created.id.clone()),
        };
        let work = async {
            if remote {
                self.copy_binds_in(&created.id, spec, reporter).await?;
            }
            let out = self.run_inner(&created.id, spec, reporter).await?;
            if remote {
                self.copy_outputs_back(&created.id, spec, reporter).await?;
            }
            Ok(out)
        };
        let result = tokio::select! {
            r = work => r,
            _ = cancel.cancelled() => Err(EngineError::Cancelled),
        };
        self.force_remove(&created.id).await;
        guard.id = None;
        result
    }

    async fn build(
        &self,
        spec: &BuildSpec,
        reporter: &dyn Reporter,
        cancel: &CancellationToken,
    ) -> Result<String, EngineError> {
        tokio::select! {
            r = self.build_inner(spec, reporter) => r,
            // Dropping the request makes the daemon cancel the build; forcerm removes its
            // intermediate containers.
            _ = cancel.cancelled() => Err(EngineError::Cancelled),
        }
    }

    async fn import(
        &self,
        spec: ImportSpec,
        reporter: &dyn Reporter,
        cancel: &CancellationToken,
    ) -> Result<String, EngineError> {
        let reference = format!("{}:{}", spec.repository, spec.tag);
        let (body, producer, sent) = stream_from_writer(spec.producer);
        let opts = CreateImageOptionsBuilder::default()
            .from_src("-")
            .repo(&spec.repository)
            .tag(&spec.tag)
            .changes(spec.changes.clone())
            .build();
        let step = spec.step.clone();
        let work = async {
            let mut stream =
                self.docker
                    .create_image(Some(opts), Some(bollard::body_try_stream(body)), None);
            let mut failure = None;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(info) => {
                        if let Some(s) = info.status {
                            reporter.event(&Event::Log {
                                step: step.clone(),
                                line: s,
                            });
                        }
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            // Drop the request first: a producer blocked on a full queue then sees the closed
            // channel instead of waiting for the daemon to hang up.
            drop(stream);
            (failure, producer.await)
        };
        let (failure, produced) = tokio::select! {
            r = work => r,
            _ = cancel.cancelled() => return Err(EngineError::Cancelled),
        };
        // The daemon's own error first: when it stops reading, the writer only sees a closed pipe.
        if let Some(e) = failure {
            return Err(api(format!("import {reference}"), e));
        }
        producer_result(format!("root filesystem layer for {reference}"), produced)?;
        reporter.event(&Event::Notice {
            step: spec.step.clone(),
            message: format!(
                "imported {} MiB layer",
                sent.load(Ordering::Relaxed) / (1024 * 1024)
            ),
        });
        let info = self
            .inspect_image(&reference)
            .await?
            .ok_or_else(|| EngineError::Api {
                op: format!("import {reference}"),
                message: "the import ended without error but the image is not in the engine".into(),
            })?;
        Ok(info.id)
    }

    async fn tag(&self, id: &str, repository: &str, tag: &str) -> Result<(), EngineError> {
        let opts = TagImageOptionsBuilder::default()
            .repo(repository)
            .tag(tag)
            .build();
        self.docker
            .tag_image(id, Some(opts))
            .await
            .map_err(|e| api(format!("tag {id} as {repository}:{tag}"), e))
    }

    async fn images_with_label(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<ImageInfo>, EngineError> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{key}={value}")])]);
        let opts = ListImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        self.images(opts).await
    }

    async fn remove_image(&self, reference: &str, force: bool) -> Result<(), EngineError> {
        let opts = RemoveImageOptionsBuilder::default().force(force).build();
        match self.docker.remove_image(reference, Some(opts), None).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api(format!("remove image {reference}"), e)),
        }
    }

    async fn containers_with_label(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<String>, EngineError> {
        let list = self.labelled_containers(key, value).await?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        self.force_remove(id).await;
        Ok(())
    }

    async fn stop_container(&self, id: &str, timeout_secs: u32) -> Result<(), EngineError> {
        let opts = bollard::query_parameters::StopContainerOptions {
            signal: None,
            t: Some(timeout_secs as i32),
        };
        match self.docker.stop_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // 304: already stopped
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(api(format!("stop container {id}"), e)),
        }
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>, EngineError> {
        let opts = ListImagesOptionsBuilder::default().all(true).build();
        self.images(opts).await
    }

    async fn image_config(&self, reference: &str) -> Result<Option<BaseImageConfig>, EngineError> {
        let info = match self.docker.inspect_image(reference).await {
            Ok(i) => i,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(api(format!("inspect image {reference}"), e)),
        };
        let history = self
            .docker
            .image_history(reference)
            .await
            .map_err(|e| api(format!("history of image {reference}"), e))?;
        let c = info.config.unwrap_or_default();
        let diff_ids = info.root_fs.and_then(|r| r.layers).unwrap_or_default();
        let mut history: Vec<HistoryEntry> = history
            .into_iter()
            .rev()
            .map(|h| HistoryEntry {
                created: rfc3339(h.created),
                created_by: h.created_by,
                comment: h.comment,
                empty_layer: h.size == 0,
            })
            .collect();
        // the engine's history says "size 0" where the image config says "empty_layer"; an
        // empty layer of its own would make the two disagree: keep no history then
        if history.iter().filter(|h| !h.empty_layer).count() != diff_ids.len() {
            history.clear();
        }
        Ok(Some(BaseImageConfig {
            id: info.id.unwrap_or_default(),
            architecture: info.architecture.unwrap_or_default(),
            os: info.os.unwrap_or_default(),
            variant: info.variant,
            diff_ids,
            env: c.env.unwrap_or_default(),
            cmd: c.cmd,
            entrypoint: c.entrypoint,
            working_dir: c.working_dir.unwrap_or_default(),
            user: c.user.unwrap_or_default(),
            labels: c.labels.unwrap_or_default().into_iter().collect(),
            exposed_ports: c.exposed_ports.unwrap_or_default(),
            volumes: c.volumes.unwrap_or_default(),
            stop_signal: c.stop_signal.filter(|s| !s.is_empty()),
            history,
        }))
    }

    async fn stat_paths(
        &self,
        step: &str,
        reference: &str,
        paths: &[String],
    ) -> Result<BTreeMap<String, Option<PathStat>>, EngineError> {
        let spec = RunSpec {
            step: step.to_string(),
            image: reference.to_string(),
            cmd: vec!["true".into()],
            env: Vec::new(),
            ..Default::default()
        };
        let body = container_body(&spec, self.labels(step), false);
        let created = self
            .docker
            .create_container(Some(CreateContainerOptionsBuilder::default().build()), body)
            .await
            .map_err(|e| api(format!("create container from {reference}"), e))?;
        let mut guard = RemoveOnDrop {
            docker: self.docker.clone(),
            id: Some(created.id.clone()),
        };
        let mut out = BTreeMap::new();
        let mut failure = None;
        for p in paths {
            // the first header of `GET /containers/{id}/archive?path=P` is P itself
            let opts = bollard::query_parameters::DownloadFromContainerOptions { path: p.clone() };
            let mut stream = self.docker.download_from_container(&created.id, Some(opts));
            let mut head: Vec<u8> = Vec::new();
            let mut missing = false;
            while head.len() < 512 {
                match stream.next().await {
                    Some(Ok(b)) => head.extend_from_slice(&b),
                    Some(Err(e)) if is_not_found(&e) => {
                        missing = true;
                        break;
                    }
                    Some(Err(e)) => {
                        failure = Some(api(format!("stat {p} in {reference}"), e));
                        break;
                    }
                    None => break,
                }
            }
            drop(stream);
            if failure.is_some() {
                break;
            }
            if missing || head.len() < 512 {
                out.insert(p.clone(), None);
                continue;
            }
            let h = tar::Header::from_byte_slice(&head[..512]);
            let kind = h.entry_type();
            out.insert(
                p.clone(),
                Some(PathStat {
                    dir: kind.is_dir(),
                    symlink: kind.is_symlink(),
                    mode: h.mode().unwrap_or(0o755) & 0o7777,
                    uid: h.uid().unwrap_or(0),
                    gid: h.gid().unwrap_or(0),
                }),
            );
        }
        self.force_remove(&created.id).await;
        guard.id = None;
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    async fn load(
        &self,
        step: &str,
        producer: LayerProducer,
        reporter: &dyn Reporter,
    ) -> Result<Vec<String>, EngineError> {
        let (body, producer, _sent) = stream_from_writer(producer);
        let opts = bollard::query_parameters::ImportImageOptions {
            quiet: true,
            platform: None,
        };
        let mut stream = self.docker.import_image_stream(opts, body, None);
        let mut loaded = Vec::new();
        let mut failure = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(e) = info.error_detail.and_then(|d| d.message) {
                        failure = Some(e);
                        break;
                    }
                    if let Some(s) = info.stream {
                        let s = s.trim().to_string();
                        // "Loaded image ID: sha256:…" (no RepoTags) or "Loaded image: name:tag"
                        if let Some(id) = s
                            .strip_prefix("Loaded image ID: ")
                            .or_else(|| s.strip_prefix("Loaded image: "))
                        {
                            loaded.push(id.to_string());
                        }
                        reporter.event(&Event::Log {
                            step: step.to_string(),
                            line: s,
                        });
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    failure = Some(error);
                    break;
                }
                Err(e) => {
                    failure = Some(api("load", e).to_string());
                    break;
                }
            }
        }
        drop(stream);
        let produced = producer.await;
        if let Some(message) = failure {
            return Err(EngineError::Api {
                op: "load an image archive (POST /images/load)".into(),
                message,
            });
        }
        producer_result(format!("image archive of {step}"), produced)?;
        if loaded.is_empty() {
            return Err(EngineError::Api {
                op: "load an image archive (POST /images/load)".into(),
                message: "the engine did not say which image it loaded".into(),
            });
        }
        Ok(loaded)
    }

    async fn push(
        &self,
        step: &str,
        reference: &str,
        credentials: Option<RegistryCredentials>,
        reporter: &dyn Reporter,
    ) -> Result<String, EngineError> {
        let (name, tag) = match reference.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, Some(t.to_string())),
            _ => (reference, None),
        };
        let creds = credentials.map(|c| match c {
            RegistryCredentials::UsernamePassword(u, p) => bollard::auth::DockerCredentials {
                username: Some(u),
                password: Some(p),
                ..Default::default()
            },
            RegistryCredentials::IdentityToken(t) => bollard::auth::DockerCredentials {
                identitytoken: Some(t),
                ..Default::default()
            },
        });
        // bollard's `push_image` keeps only status and progress of each message and drops the
        // layer `id`, so the push is sent through bollard's public request hook instead: the
        // request of `export_image(name)` (`GET /images/{name}/get`) is turned into
        // `POST /images/{name}/push?tag=…` with the `X-Registry-Auth` header push_image would
        // send, and the engine's own JSON messages are read (Engine API `ImagePush`).
        let auth = match &creds {
            Some(c) => Some(base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                serde_json::to_string(c).map_err(|e| EngineError::Api {
                    op: format!("push {reference}"),
                    message: format!("cannot encode the registry credentials: {e}"),
                })?,
            )),
            None => None,
        };
        let query = tag
            .as_deref()
            .map(|t| format!("?tag={}", percent_encode(t)))
            .unwrap_or_default();
        let client = self.docker.clone().with_request_modifier(move |mut req| {
            let uri = req.uri().clone();
            let Some(base) = uri.path().strip_suffix("/get") else {
                return req;
            };
            let mut parts = uri.clone().into_parts();
            if let Ok(pq) = format!("{base}/push{query}").parse() {
                parts.path_and_query = Some(pq);
                if let Ok(u) = http::Uri::from_parts(parts) {
                    *req.uri_mut() = u;
                    *req.method_mut() = http::Method::POST;
                    if let Some(a) = auth.as_deref().and_then(|a| a.parse().ok()) {
                        req.headers_mut().insert("X-Registry-Auth", a);
                    }
                }
            }
            req
        });
        let mut stream = client.export_image(name);
        let mut progress = PushProgress::default();
        let mut digest = None;
        let mut pending = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| api(format!("push {reference}"), e))?;
            pending.extend_from_slice(&chunk);
            while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=nl).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let m: PushMessage =
                    serde_json::from_slice(&line).map_err(|e| EngineError::Api {
                        op: format!("push {reference}"),
                        message: format!(
                            "unreadable progress message from the engine ({e}): {}",
                            String::from_utf8_lossy(&line)
                        ),
                    })?;
                if let Some(err) = m.error_detail.and_then(|d| d.message).or(m.error) {
                    return Err(EngineError::Api {
                        op: format!("push {reference}"),
                        message: err,
                    });
                }
                if let Some(d) = m.aux.and_then(|a| a.digest) {
                    digest = Some(d);
                }
                let Some(status) = m.status else { continue };
                if let Some(d) = status.split("digest: ").nth(1) {
                    digest = digest.or_else(|| d.split_whitespace().next().map(str::to_string));
                }
                if let Some(line) = progress.update(m.id.as_deref(), &status, m.progress_detail) {
                    reporter.event(&Event::Log {
                        step: step.to_string(),
                        line,
                    });
                }
            }
        }
        reporter.event(&Event::Log {
            step: step.to_string(),
            line: progress.summary(),
        });
        digest.ok_or_else(|| EngineError::Api {
            op: format!("push {reference}"),
            message: "the registry answered no digest".into(),
        })
    }

    async fn save(
        &self,
        references: &[String],
        out: &mut (dyn Write + Send),
    ) -> Result<u64, EngineError> {
        let names: Vec<&str> = references.iter().map(String::as_str).collect();
        let mut stream = self.docker.export_images(&names);
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| api(format!("save {}", references.join(" ")), e))?;
            out.write_all(&chunk).map_err(|e| EngineError::Stream {
                what: "the saved image archive".into(),
                source: e,
            })?;
            n += chunk.len() as u64;
        }
        Ok(n)
    }

    async fn list_containers(&self) -> Result<Vec<ContainerInfo>, EngineError> {
        let opts = ListContainersOptionsBuilder::default().all(true).build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| api("list containers", e))?;
        Ok(list
            .into_iter()
            .map(|c| ContainerInfo {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                image: c.image.unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages of a push as the engine sends them (Engine API 1.41, Docker 20.10): two
    /// layers, one pushed in many progress messages, one already in the registry.
    #[test]
    fn push_progress_is_reported_per_layer_in_quarters() {
        let mut stream = String::from(
            r#"{"status":"The push refers to repository [127.0.0.1:5000/proj/fabric-peer]"}
{"status":"Preparing","progressDetail":{},"id":"5f70bf18a086"}
{"status":"Preparing","progressDetail":{},"id":"a1b2c3d4e5f6"}
{"status":"Waiting","progressDetail":{},"id":"a1b2c3d4e5f6"}
"#,
        );
        for c in (0..=4096).step_by(128) {
            stream.push_str(&format!(
                r#"{{"status":"Pushing","progressDetail":{{"current":{c},"total":4096}},"progress":"[>   ]","id":"5f70bf18a086"}}"#
            ));
            stream.push('\n');
        }
        stream.push_str(
            r#"{"status":"Pushed","progressDetail":{},"id":"5f70bf18a086"}
{"status":"Layer already exists","progressDetail":{},"id":"a1b2c3d4e5f6"}
{"status":"1.4: digest: sha256:0123 size: 739"}
{"progressDetail":{},"aux":{"Tag":"1.4","Digest":"sha256:0123","Size":739}}
"#,
        );
        let mut p = PushProgress::default();
        let mut lines = Vec::new();
        let mut digest = None;
        for l in stream.lines() {
            let m: PushMessage = serde_json::from_str(l).unwrap();
            if let Some(d) = m.aux.and_then(|a| a.digest) {
                digest = Some(d);
            }
            if let Some(status) = m.status {
                lines.extend(p.update(m.id.as_deref(), &status, m.progress_detail));
            }
        }
        assert_eq!(
            lines,
            [
                "The push refers to repository [127.0.0.1:5000/proj/fabric-peer]",
                "layer 5f70bf18a086: preparing",
                "layer a1b2c3d4e5f6: preparing",
                "layer 5f70bf18a086: pushing 25 % of 4.0 KiB",
                "layer 5f70bf18a086: pushing 50 % of 4.0 KiB",
                "layer 5f70bf18a086: pushing 75 % of 4.0 KiB",
                "layer 5f70bf18a086: pushing 100 % of 4.0 KiB",
                "layer 5f70bf18a086: pushed",
                "layer a1b2c3d4e5f6: layer already exists",
                "1.4: digest: sha256:0123 size: 739",
            ]
        );
        assert_eq!(p.summary(), "layers: 1 pushed, 1 already in the registry");
        assert_eq!(digest.as_deref(), Some("sha256:0123"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stream_from_writer_is_bounded_and_complete() {
        let written = std::sync::Arc::new(AtomicU64::new(0));
        let w2 = written.clone();
        let (stream, handle, sent) = stream_from_writer(move |w| {
            let block = vec![7u8; 100_000];
            for _ in 0..100 {
                w.write_all(&block)?;
                w2.fetch_add(block.len() as u64, Ordering::Relaxed);
            }
            Ok(())
        });
        // Nobody reads yet: the producer must stall after the pipe and its buffer are full.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let in_flight = written.load(Ordering::Relaxed);
        assert!(
            in_flight <= ((UPLOAD_QUEUE + 2) * UPLOAD_CHUNK) as u64,
            "{in_flight} bytes buffered"
        );
        assert!(in_flight > 0, "the producer did not start");
        let chunks: Vec<_> = stream.collect().await;
        let total: usize = chunks.iter().map(|c| c.as_ref().unwrap().len()).sum();
        assert_eq!(total, 10_000_000);
        assert_eq!(sent.load(Ordering::Relaxed), 10_000_000);
        handle.await.unwrap().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_that_goes_away_stops_the_producer() {
        let (stream, handle, _) = stream_from_writer(|w| {
            for _ in 0..1000 {
                w.write_all(&[0u8; 100_000])?;
            }
            Ok(())
        });
        let mut stream = Box::pin(stream);
        assert!(stream.next().await.unwrap().is_ok());
        drop(stream); // the engine refused the build and closed the upload
        let r = tokio::time::timeout(Duration::from_secs(30), handle)
            .await
            .expect("the producer must not wait forever for a reader that is gone")
            .unwrap();
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_producer_ends_the_stream_with_its_error() {
        let (stream, handle, _) = stream_from_writer(|w| {
            w.write_all(&[1u8; 300_000])?;
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                "sampleconfig/x vanished",
            ))
        });
        let items: Vec<_> = stream.collect().await;
        let data: usize = items
            .iter()
            .filter_map(|i| i.as_ref().ok())
            .map(|c| c.len())
            .sum();
        assert_eq!(data, 300_000, "what was written before the error is sent");
        let last = items.last().unwrap().as_ref().unwrap_err();
        assert_eq!(last.kind(), io::ErrorKind::NotFound);
        assert!(last.to_string().contains("vanished"));
        assert!(handle.await.unwrap().is_err());
    }

    #[test]
    fn shell_join_quotes() {
        assert_eq!(
            shell_join(&[
                "go".into(),
                "install".into(),
                "-tags".into(),
                "".into(),
                "a b".into()
            ]),
            "go install -tags '' 'a b'"
        );
        // what is shown splits back into the same arguments
        let args: Vec<String> = ["go", "build", "-ldflags", "-X a.B=it's $HOME", "x\"y", ""]
            .map(String::from)
            .to_vec();
        assert_eq!(shlex::split(&shell_join(&args)), Some(args));
        assert_eq!(shell_join(&["a\0b".into()]), r#""a\0b""#);
    }
}

/// A [`DockerEngine`] that connects on first use, so commands that may not need the engine
/// (`imgforge payload --native`, `render`) work without a daemon.
#[derive(Debug, Default)]
pub struct LazyDockerEngine {
    cell: tokio::sync::OnceCell<DockerEngine>,
    read_only: bool,
}

impl LazyDockerEngine {
    /// Not connected yet. On connecting it sweeps the containers of dead runs
    /// ([`DockerEngine::sweep_orphans`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Not connected yet, and connecting changes nothing in the engine (no sweep): for commands
    /// that promise to only look (`plan`, `render`, `config`, `list`).
    pub fn read_only() -> Self {
        LazyDockerEngine {
            read_only: true,
            ..Self::default()
        }
    }

    /// Connect now (or return the existing connection).
    pub async fn get(&self) -> Result<&DockerEngine, EngineError> {
        self.cell
            .get_or_try_init(|| async {
                let e = DockerEngine::connect().await?;
                if !self.read_only {
                    // Best effort: an old daemon or a permission problem must not stop the build.
                    let _ = e.sweep_orphans().await;
                }
                Ok(e)
            })
            .await
    }
}

impl Engine for LazyDockerEngine {
    async fn ping(&self) -> Result<String, EngineError> {
        self.get().await?.ping().await
    }
    fn is_remote(&self) -> bool {
        match self.cell.get() {
            Some(e) => e.is_remote(),
            None => super::endpoint::Endpoint::from_env(
                &|k| std::env::var(k).ok(),
                std::env::var_os("HOME").map(PathBuf::from),
            )
            .is_ok_and(|e| e.is_remote()),
        }
    }
    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        self.get().await?.inspect_image(reference).await
    }
    async fn run(
        &self,
        spec: &RunSpec,
        reporter: &dyn Reporter,
        cancel: &CancellationToken,
    ) -> Result<RunOutput, EngineError> {
        self.get().await?.run(spec, reporter, cancel).await
    }
    async fn build(
        &self,
        spec: &BuildSpec,
        reporter: &dyn Reporter,
        cancel: &CancellationToken,
    ) -> Result<String, EngineError> {
        self.get().await?.build(spec, reporter, cancel).await
    }
    async fn import(
        &self,
        spec: ImportSpec,
        reporter: &dyn Reporter,
        cancel: &CancellationToken,
    ) -> Result<String, EngineError> {
        self.get().await?.import(spec, reporter, cancel).await
    }
    async fn tag(&self, id: &str, repository: &str, tag: &str) -> Result<(), EngineError> {
        self.get().await?.tag(id, repository, tag).await
    }
    async fn images_with_label(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<ImageInfo>, EngineError> {
        self.get().await?.images_with_label(key, value).await
    }
    async fn remove_image(&self, reference: &str, force: bool) -> Result<(), EngineError> {
        self.get().await?.remove_image(reference, force).await
    }
    async fn containers_with_label(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<String>, EngineError> {
        self.get().await?.containers_with_label(key, value).await
    }
    async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        self.get().await?.remove_container(id).await
    }
    async fn stop_container(&self, id: &str, timeout_secs: u32) -> Result<(), EngineError> {
        self.get().await?.stop_container(id, timeout_secs).await
    }
    async fn list_images(&self) -> Result<Vec<ImageInfo>, EngineError> {
        self.get().await?.list_images().await
    }
    async fn list_containers(&self) -> Result<Vec<ContainerInfo>, EngineError> {
        self.get().await?.list_containers().await
    }
    async fn image_config(&self, reference: &str) -> Result<Option<BaseImageConfig>, EngineError> {
        self.get().await?.image_config(reference).await
    }
    async fn stat_paths(
        &self,
        step: &str,
        reference: &str,
        paths: &[String],
    ) -> Result<BTreeMap<String, Option<PathStat>>, EngineError> {
        self.get().await?.stat_paths(step, reference, paths).await
    }
    async fn load(
        &self,
        step: &str,
        producer: LayerProducer,
        reporter: &dyn Reporter,
    ) -> Result<Vec<String>, EngineError> {
        self.get().await?.load(step, producer, reporter).await
    }
    async fn save(
        &self,
        references: &[String],
        out: &mut (dyn Write + Send),
    ) -> Result<u64, EngineError> {
        self.get().await?.save(references, out).await
    }
    async fn push(
        &self,
        step: &str,
        reference: &str,
        credentials: Option<RegistryCredentials>,
        reporter: &dyn Reporter,
    ) -> Result<String, EngineError> {
        self.get()
            .await?
            .push(step, reference, credentials, reporter)
            .await
    }
}
