//! An in-memory [`Engine`] for unit tests of the step graph: no daemon, no containers.
//! Build containers "run" by writing the file a real `go install` would write into the bind
//! mount of `/opt/gopath/bin` or `/opt/gotools/bin`; steps can be made to fail or to block
//! until cancelled. End-to-end tests never use it.
//!
//! [`FakeEngine::deterministic`] makes what it writes a function of what it was asked to do
//! (a binary's bytes digest the container's command, environment, image and mounts; an image
//! ID digests the build's reference, labels, build arguments and context),
//! and [`FakeEngine::effects`] lists those requests per step: a test can then tell, without
//! trusting the fingerprints under test, which steps would do something else.

use super::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// What the fake does when a step's container runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Exit non-zero.
    Fail,
    /// Run until cancelled.
    Block,
    /// Panic (a bug in the code that runs the step).
    Panic,
}

/// The fake engine.
#[derive(Debug, Default)]
pub struct FakeEngine {
    images: Mutex<HashMap<String, ImageInfo>>,
    behaviour: Mutex<HashMap<String, Behaviour>>,
    runs: Mutex<Vec<String>>,
    live: AtomicUsize,
    counter: AtomicUsize,
    deterministic: bool,
    effects: Mutex<Vec<(String, String)>>,
}

impl FakeEngine {
    /// An engine holding the base images `references` (e.g. `hyperledger/fabric-baseimage:amd64-0.4.22`).
    pub fn with_images(references: &[&str]) -> Self {
        let f = FakeEngine::default();
        for (i, r) in references.iter().enumerate() {
            f.images.lock().unwrap().insert(
                r.to_string(),
                ImageInfo {
                    id: format!("sha256:base{i}"),
                    repo_tags: vec![r.to_string()],
                    layers: 1,
                    ..Default::default()
                },
            );
        }
        f
    }

    /// As [`FakeEngine::with_images`], and what it writes depends only on what it is asked to
    /// do (see the module doc), never on how many requests came before.
    pub fn deterministic(references: &[&str]) -> Self {
        let mut f = FakeEngine::with_images(references);
        f.deterministic = true;
        f
    }

    /// Give `reference` a new image ID (the base image was rebuilt).
    pub fn rebuild_image(&self, reference: &str) {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        self.images.lock().unwrap().insert(
            reference.to_string(),
            ImageInfo {
                id: format!("sha256:rebuilt{n}"),
                repo_tags: vec![reference.to_string()],
                layers: 1,
                ..Default::default()
            },
        );
    }

    /// Every request made so far, by step: `run …` (image, command, environment, mounts,
    /// working directory, user), `build …` (reference, labels less the fingerprint, build
    /// arguments, tree context, digest of the context directory) and `tag …`; each step's
    /// requests sorted.
    pub fn effects(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (step, e) in self.effects.lock().unwrap().iter() {
            out.entry(step.clone()).or_default().push(e.clone());
        }
        for v in out.values_mut() {
            v.sort();
        }
        out
    }

    fn record(&self, step: &str, effect: String) {
        self.effects
            .lock()
            .unwrap()
            .push((step.to_string(), effect));
    }

    /// Make the container of `step` behave as `b`.
    pub fn set(&self, step: &str, b: Behaviour) {
        self.behaviour.lock().unwrap().insert(step.to_string(), b);
    }

    /// Steps whose containers ran, in order.
    pub fn runs(&self) -> Vec<String> {
        self.runs.lock().unwrap().clone()
    }

    /// Containers started and not yet removed.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

/// Digest of every file under `dir` (relative names and contents, in name order); `-` when
/// it cannot be read.
fn dir_digest(dir: &Path) -> String {
    let mut text = String::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let Ok(e) = e else { return "-".into() };
        if e.file_type().is_file() {
            let body = std::fs::read(e.path()).unwrap_or_default();
            let rel = e.path().strip_prefix(dir).unwrap_or(e.path());
            text.push_str(&format!(
                "{} {}\n",
                rel.display(),
                crate::fingerprint::files::sha256_hex(&body)
            ));
        }
    }
    crate::fingerprint::files::sha256_hex(text.as_bytes())
}

fn host_dir(binds: &[String], container: &str) -> Option<PathBuf> {
    binds.iter().find_map(|b| {
        let mut parts = b.split(':');
        let (host, cont) = (parts.next()?, parts.next()?);
        (cont == container).then(|| PathBuf::from(host))
    })
}

impl Engine for FakeEngine {
    async fn ping(&self) -> Result<String, EngineError> {
        Ok("fake".into())
    }

    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        let images = self.images.lock().unwrap();
        Ok(images
            .get(reference)
            .cloned()
            .or_else(|| images.values().find(|i| i.id == reference).cloned()))
    }

    async fn run(
        &self,
        spec: &RunSpec,
        _reporter: &dyn Reporter,
        cancel: &CancellationToken,
    ) -> Result<RunOutput, EngineError> {
        self.runs.lock().unwrap().push(spec.step.clone());
        self.live.fetch_add(1, Ordering::SeqCst);
        let behaviour = self.behaviour.lock().unwrap().get(&spec.step).copied();
        let result = match behaviour {
            Some(Behaviour::Fail) => Err(EngineError::ContainerExit {
                image: spec.image.clone(),
                cmd: shell_join(&spec.cmd),
                code: 2,
                log_tail: vec![format!("{}: failing as told", spec.step)],
            }),
            Some(Behaviour::Block) => {
                cancel.cancelled().await;
                Err(EngineError::Cancelled)
            }
            Some(Behaviour::Panic) => panic!("{}: panicking as told", spec.step),
            None => {
                let effect = format!(
                    "run {} {:?} env={:?} binds={:?} workdir={:?} user={:?}",
                    spec.image, spec.cmd, spec.env, spec.binds, spec.workdir, spec.user
                );
                self.record(&spec.step, effect.clone());
                let n = self.counter.fetch_add(1, Ordering::SeqCst);
                let n = if self.deterministic {
                    crate::fingerprint::files::sha256_hex(effect.as_bytes())
                } else {
                    n.to_string()
                };
                let last = spec.cmd.last().cloned().unwrap_or_default();
                let name = last.rsplit('/').next().unwrap_or("out").to_string();
                if spec.cmd.get(1).map(String::as_str) == Some("install") {
                    let dir = host_dir(&spec.binds, "/opt/gopath/bin")
                        .or_else(|| host_dir(&spec.binds, "/opt/gotools").map(|d| d.join("bin")));
                    if let Some(dir) = dir {
                        std::fs::create_dir_all(&dir).unwrap();
                        std::fs::write(dir.join(&name), format!("fake binary {name} #{n}"))
                            .unwrap();
                    }
                }
                Ok(RunOutput { stdout: Vec::new() })
            }
        };
        self.live.fetch_sub(1, Ordering::SeqCst);
        result
    }

    async fn build(
        &self,
        spec: &BuildSpec,
        _reporter: &dyn Reporter,
        _cancel: &CancellationToken,
    ) -> Result<String, EngineError> {
        let mut labels = spec.labels.clone();
        labels.remove(LABEL_FINGERPRINT);
        let effect = format!(
            "build {} labels={labels:?} args={:?} tree={:?} context={}",
            spec.reference,
            spec.build_args,
            spec.tree.as_ref().map(|t| &t.dockerfile),
            dir_digest(&spec.context_dir)
        );
        self.record(&spec.step, effect.clone());
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        // as a real image ID, it digests every label (the fingerprint too)
        let id = if self.deterministic {
            let fp = spec
                .labels
                .get(LABEL_FINGERPRINT)
                .cloned()
                .unwrap_or_default();
            format!(
                "sha256:{}",
                crate::fingerprint::files::sha256_hex(format!("{effect} {fp}").as_bytes())
            )
        } else {
            format!("sha256:built{n}")
        };
        self.images.lock().unwrap().insert(
            spec.reference.clone(),
            ImageInfo {
                id: id.clone(),
                repo_tags: vec![spec.reference.clone()],
                labels: spec.labels.clone(),
                layers: 2,
                ..Default::default()
            },
        );
        Ok(id)
    }

    async fn import(
        &self,
        _spec: ImportSpec,
        _reporter: &dyn Reporter,
        _cancel: &CancellationToken,
    ) -> Result<String, EngineError> {
        Err(EngineError::Api {
            op: "import".into(),
            message: "not supported by the fake".into(),
        })
    }

    async fn tag(&self, id: &str, repository: &str, tag: &str) -> Result<(), EngineError> {
        let mut images = self.images.lock().unwrap();
        let info = images
            .values()
            .find(|i| i.id == id)
            .cloned()
            .ok_or_else(|| EngineError::Api {
                op: "tag".into(),
                message: format!("no image {id}"),
            })?;
        let step = info.labels.get(LABEL_STEP).cloned().unwrap_or_default();
        images.insert(format!("{repository}:{tag}"), info);
        drop(images);
        self.record(&step, format!("tag {repository}:{tag}"));
        Ok(())
    }

    async fn images_with_label(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<ImageInfo>, EngineError> {
        Ok(self
            .images
            .lock()
            .unwrap()
            .values()
            .filter(|i| i.labels.get(key).map(String::as_str) == Some(value))
            .cloned()
            .collect())
    }

    /// As the engine: a reference whose image has other names is only untagged, unless `force`.
    async fn remove_image(&self, reference: &str, force: bool) -> Result<(), EngineError> {
        let mut images = self.images.lock().unwrap();
        let id = images
            .get(reference)
            .map(|i| i.id.clone())
            .unwrap_or_else(|| reference.to_string());
        let names = images.values().filter(|i| i.id == id).count();
        if !force && names > 1 && images.contains_key(reference) {
            images.remove(reference);
        } else {
            images.retain(|_, i| i.id != id);
        }
        Ok(())
    }

    async fn containers_with_label(
        &self,
        _key: &str,
        _value: &str,
    ) -> Result<Vec<String>, EngineError> {
        Ok(Vec::new())
    }

    async fn remove_container(&self, _id: &str) -> Result<(), EngineError> {
        Ok(())
    }

    async fn stop_container(&self, _id: &str, _timeout_secs: u32) -> Result<(), EngineError> {
        Ok(())
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>, EngineError> {
        let mut by_id: HashMap<String, ImageInfo> = HashMap::new();
        for (r, i) in self.images.lock().unwrap().iter() {
            let e = by_id.entry(i.id.clone()).or_insert_with(|| ImageInfo {
                repo_tags: Vec::new(),
                ..i.clone()
            });
            e.repo_tags.push(r.clone());
        }
        Ok(by_id.into_values().collect())
    }

    async fn list_containers(&self) -> Result<Vec<ContainerInfo>, EngineError> {
        Ok(Vec::new())
    }

    async fn image_config(&self, reference: &str) -> Result<Option<BaseImageConfig>, EngineError> {
        let Some(info) = self.inspect_image(reference).await? else {
            return Ok(None);
        };
        Ok(Some(BaseImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            diff_ids: vec![format!(
                "sha256:{}",
                crate::fingerprint::files::sha256_hex(info.id.as_bytes())
            )],
            env: vec![
                "PATH=/usr/local/bin:/usr/bin:/bin".into(),
                "GOPATH=/opt/gopath".into(),
            ],
            cmd: Some(vec!["/bin/bash".into()]),
            id: info.id,
            ..Default::default()
        }))
    }

    /// The base images of the fake have `/usr/local/bin`, `/etc`, `/var`, `/opt/gopath/src`
    /// and `/tmp` (1777) as directories, and nothing else.
    async fn stat_paths(
        &self,
        _step: &str,
        _reference: &str,
        paths: &[String],
    ) -> Result<BTreeMap<String, Option<PathStat>>, EngineError> {
        let dirs = [
            "/usr",
            "/usr/local",
            "/usr/local/bin",
            "/etc",
            "/var",
            "/opt",
            "/opt/gopath",
            "/opt/gopath/src",
            "/tmp",
        ];
        Ok(paths
            .iter()
            .map(|p| {
                let stat = dirs.contains(&p.as_str()).then_some(PathStat {
                    dir: true,
                    symlink: false,
                    mode: if p == "/tmp" { 0o1777 } else { 0o755 },
                    uid: 0,
                    gid: 0,
                });
                (p.clone(), stat)
            })
            .collect())
    }

    /// Reads the archive as the engine would: the manifest, the config (the image ID is its
    /// sha256), the labels; records `load` with the config less the fingerprint label.
    async fn load(
        &self,
        step: &str,
        producer: LayerProducer,
        _reporter: &dyn Reporter,
    ) -> Result<Vec<String>, EngineError> {
        let mut bytes = Vec::new();
        producer(&mut bytes).map_err(|e| EngineError::Stream {
            what: "image archive".into(),
            source: e,
        })?;
        let mut files: HashMap<String, Vec<u8>> = HashMap::new();
        let mut a = tar::Archive::new(&bytes[..]);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut body).unwrap();
            files.insert(name, body);
        }
        let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        let config_name = manifest[0]["Config"].as_str().unwrap().to_string();
        let config = &files[&config_name];
        let id = format!("sha256:{}", crate::fingerprint::files::sha256_hex(config));
        let mut cfg: serde_json::Value = serde_json::from_slice(config).unwrap();
        let labels: BTreeMap<String, String> =
            serde_json::from_value(cfg["config"]["Labels"].clone()).unwrap_or_default();
        if let Some(l) = cfg["config"]["Labels"].as_object_mut() {
            l.remove(LABEL_FINGERPRINT);
        }
        self.record(step, format!("load {cfg}"));
        self.images.lock().unwrap().insert(
            id.clone(),
            ImageInfo {
                id: id.clone(),
                labels,
                layers: manifest[0]["Layers"].as_array().map_or(0, |l| l.len()),
                ..Default::default()
            },
        );
        Ok(vec![id])
    }

    async fn push(
        &self,
        step: &str,
        reference: &str,
        credentials: Option<RegistryCredentials>,
        _reporter: &dyn Reporter,
    ) -> Result<String, EngineError> {
        let id = self
            .inspect_image(reference)
            .await?
            .ok_or_else(|| EngineError::Api {
                op: format!("push {reference}"),
                message: "no such image".into(),
            })?
            .id;
        self.record(step, format!("push {reference} {credentials:?}"));
        Ok(id)
    }

    async fn save(
        &self,
        _references: &[String],
        _out: &mut (dyn Write + Send),
    ) -> Result<u64, EngineError> {
        Err(EngineError::Api {
            op: "save".into(),
            message: "not supported by the fake".into(),
        })
    }
}
