//! An in-memory [`Engine`] for unit tests of the step graph: no daemon, no containers.
//! Build containers "run" by writing the file a real `go install` would write into the bind
//! mount of `/opt/gopath/bin` or `/opt/gotools/bin`; steps can be made to fail or to block
//! until cancelled. End-to-end tests never use it.

use super::*;
use std::collections::HashMap;
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
                let n = self.counter.fetch_add(1, Ordering::SeqCst);
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
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let id = format!("sha256:built{n}");
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
        images.insert(format!("{repository}:{tag}"), info);
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

    async fn remove_image(&self, reference: &str, _force: bool) -> Result<(), EngineError> {
        let mut images = self.images.lock().unwrap();
        let id = images
            .get(reference)
            .map(|i| i.id.clone())
            .unwrap_or_else(|| reference.to_string());
        images.retain(|_, i| i.id != id);
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
}
