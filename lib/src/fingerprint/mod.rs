//! Freshness: whether a step must run, decided and explained as a value.
//!
//! As cargo does (`fingerprint/mod.rs`): each step computes a [`Fingerprint`] — a map from
//! named inputs to digests or values (`file:peer/main.go`, `var:DOCKER_NS`,
//! `image:hyperledger/fabric-baseimage:amd64-0.4.22`, `output:compile/peer`) — and compares it
//! with the one stored after its last success under `$(BUILD_DIR)/.imgforge/fp/`. Equal and the
//! outputs still there: the step is fresh and does nothing. Otherwise the stored fingerprint is
//! deleted before the step runs and written again only after it succeeds, so an interrupted
//! build never leaves a false "fresh" behind. The [`StaleReason`] says why, in words
//! ("the file `peer/main.go` changed") and as JSON.
//!
//! Only content digests and relative paths are hashed: no mtimes, no absolute paths.

pub mod files;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The inputs of one step, by name. Names start with a kind: `file:`, `var:`, `image:`,
/// `output:` (another step's output), `template`, `step:` (the step's own parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Input name → digest or value.
    pub inputs: BTreeMap<String, String>,
    /// What the step produced, recorded after it succeeded: output path → sha256 of its
    /// content (`image_id` → the image ID for the image step). Not part of [`Fingerprint::key`];
    /// checked on the next run so that an output changed by someone else (make writing into
    /// the same `.build`, a hand edit, a re-tag) makes the step stale.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
}

impl Fingerprint {
    /// Add one input.
    pub fn add(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.inputs.insert(name.into(), value.into());
    }

    /// sha256 over all inputs (names and values), hex.
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        for (k, v) in &self.inputs {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(v.as_bytes());
            h.update([0]);
        }
        hex::encode(h.finalize())
    }
}

/// Why a step must run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum StaleReason {
    /// No successful run is recorded.
    NeverBuilt,
    /// A source file changed.
    FileChanged {
        /// Path relative to its root.
        path: String,
    },
    /// A source file appeared.
    FileAdded {
        /// Path relative to its root.
        path: String,
    },
    /// A source file disappeared.
    FileRemoved {
        /// Path relative to its root.
        path: String,
    },
    /// A build variable changed.
    VarChanged {
        /// Make name.
        name: String,
        /// Value at the last build.
        old: String,
        /// Value now.
        new: String,
    },
    /// The image a step builds in or FROM changed (or was rebuilt).
    BaseImageChanged {
        /// Image reference.
        reference: String,
    },
    /// The template text changed (or another template is used).
    TemplateChanged,
    /// The output of a step this one depends on changed.
    DependencyChanged {
        /// That step.
        step: String,
    },
    /// A step this one depends on will run first (shown by `plan`).
    DependencyStale {
        /// That step.
        step: String,
    },
    /// A recorded output was changed by something other than this step.
    OutputChanged {
        /// Its path.
        path: String,
    },
    /// A recorded output is gone.
    OutputMissing {
        /// Its path.
        path: String,
    },
    /// The image of a recorded build is no longer in the engine.
    ImageMissing {
        /// The reference that was built.
        reference: String,
    },
    /// Some other input changed.
    InputChanged {
        /// Its name.
        name: String,
    },
}

impl std::fmt::Display for StaleReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StaleReason::NeverBuilt => write!(f, "never built"),
            StaleReason::FileChanged { path } => write!(f, "the file `{path}` changed"),
            StaleReason::FileAdded { path } => write!(f, "the file `{path}` was added"),
            StaleReason::FileRemoved { path } => write!(f, "the file `{path}` was removed"),
            StaleReason::VarChanged { name, old, new } => {
                write!(f, "{name} changed: {old:?} → {new:?}")
            }
            StaleReason::BaseImageChanged { reference } => {
                write!(f, "the image {reference} changed")
            }
            StaleReason::TemplateChanged => write!(f, "the template changed"),
            StaleReason::DependencyChanged { step } => write!(f, "the output of {step} changed"),
            StaleReason::DependencyStale { step } => write!(f, "{step} will run first"),
            StaleReason::OutputMissing { path } => write!(f, "output {path} is missing"),
            StaleReason::OutputChanged { path } => {
                write!(f, "output {path} was changed since imgforge wrote it")
            }
            StaleReason::ImageMissing { reference } => {
                write!(f, "image {reference} is missing in the engine")
            }
            StaleReason::InputChanged { name } => write!(f, "input {name} changed"),
        }
    }
}

/// Fresh (nothing to do) or stale (must run, and why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Freshness {
    /// Inputs and outputs are as after the last successful run.
    Fresh,
    /// Must run.
    Stale {
        /// Why.
        #[serde(flatten)]
        reason: StaleReason,
    },
}

/// Explain the first difference between a stored and a current fingerprint, or `None` when
/// they are equal.
pub fn compare(old: &Fingerprint, new: &Fingerprint) -> Option<StaleReason> {
    if old.inputs == new.inputs {
        return None;
    }
    // A new imgforge explains every other difference: say so first.
    if old.inputs.get("step:version") != new.inputs.get("step:version") {
        return Some(StaleReason::InputChanged {
            name: "imgforge's definition of the step".into(),
        });
    }
    let names: std::collections::BTreeSet<&String> =
        old.inputs.keys().chain(new.inputs.keys()).collect();
    for name in names {
        let (o, n) = (old.inputs.get(name), new.inputs.get(name));
        if o == n {
            continue;
        }
        let (kind, rest) = name.split_once(':').unwrap_or((name.as_str(), ""));
        return Some(match (kind, o, n) {
            ("file", None, Some(_)) => StaleReason::FileAdded { path: rest.into() },
            ("file", Some(_), None) => StaleReason::FileRemoved { path: rest.into() },
            ("file", _, _) => StaleReason::FileChanged { path: rest.into() },
            ("var", _, _) => StaleReason::VarChanged {
                name: rest.into(),
                old: o.cloned().unwrap_or_default(),
                new: n.cloned().unwrap_or_default(),
            },
            ("image", _, _) => StaleReason::BaseImageChanged {
                reference: rest.into(),
            },
            ("template", _, _) => StaleReason::TemplateChanged,
            ("output", _, _) => StaleReason::DependencyChanged { step: rest.into() },
            ("step", _, _) if rest == "template-source" => StaleReason::TemplateChanged,
            _ => StaleReason::InputChanged { name: name.clone() },
        });
    }
    None
}

/// Stored fingerprints: one JSON file per step under `<build dir>/.imgforge/fp/`.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store of build directory `build_dir`.
    pub fn new(build_dir: &Path) -> Store {
        Store {
            dir: build_dir.join(".imgforge/fp"),
        }
    }

    /// The directory holding the fingerprints.
    pub fn dir(&self) -> PathBuf {
        self.dir.clone()
    }

    fn path(&self, step: &str) -> PathBuf {
        self.dir.join(format!("{}.json", step.replace('/', "__")))
    }

    /// The fingerprint recorded after `step`'s last success, if any.
    pub fn load(&self, step: &str) -> Option<Fingerprint> {
        let bytes = std::fs::read(self.path(step)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Forget `step`'s fingerprint (before running it).
    pub fn clear(&self, step: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(step)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Record `fp` for `step` (after it succeeded), atomically.
    pub fn save(&self, step: &str, fp: &Fingerprint) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let bytes = serde_json::to_vec_pretty(fp).map_err(std::io::Error::other)?;
        let path = self.path(step);
        crate::archive::write_atomic(&path, |w| {
            w.write_all(&bytes)
                .map_err(|e| crate::archive::ArchiveError::Io {
                    path: path.clone(),
                    source: e,
                })
        })
        .map(|_| ())
        .map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(pairs: &[(&str, &str)]) -> Fingerprint {
        let mut f = Fingerprint::default();
        for (k, v) in pairs {
            f.add(*k, *v);
        }
        f
    }

    #[test]
    fn compare_names_the_first_difference() {
        let a = fp(&[("file:peer/main.go", "1"), ("var:DOCKER_NS", "hyperledger")]);
        assert_eq!(compare(&a, &a), None);
        let b = fp(&[("file:peer/main.go", "2"), ("var:DOCKER_NS", "hyperledger")]);
        assert_eq!(
            compare(&a, &b),
            Some(StaleReason::FileChanged {
                path: "peer/main.go".into()
            })
        );
        let c = fp(&[("file:peer/main.go", "1"), ("var:DOCKER_NS", "acme")]);
        let r = compare(&a, &c).unwrap();
        assert_eq!(
            r.to_string(),
            "DOCKER_NS changed: \"hyperledger\" → \"acme\""
        );
        let d = fp(&[
            ("file:peer/main.go", "1"),
            ("file:peer/new.go", "9"),
            ("var:DOCKER_NS", "hyperledger"),
        ]);
        assert_eq!(
            compare(&a, &d),
            Some(StaleReason::FileAdded {
                path: "peer/new.go".into()
            })
        );
        assert_eq!(
            compare(&d, &a),
            Some(StaleReason::FileRemoved {
                path: "peer/new.go".into()
            })
        );
        let e = fp(&[("output:compile/peer", "x")]);
        let f = fp(&[("output:compile/peer", "y")]);
        assert_eq!(
            compare(&e, &f).unwrap().to_string(),
            "the output of compile/peer changed"
        );
        assert_ne!(a.key(), b.key());
        assert_eq!(a.key(), a.clone().key());
    }

    #[test]
    fn reasons_serialize_tagged() {
        let r = StaleReason::VarChanged {
            name: "DOCKER_NS".into(),
            old: "a".into(),
            new: "b".into(),
        };
        assert_eq!(
            serde_json::to_string(&Freshness::Stale { reason: r }).unwrap(),
            r#"{"status":"stale","reason":"var_changed","name":"DOCKER_NS","old":"a","new":"b"}"#
        );
    }

    #[test]
    fn store_round_trip_and_clear() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        assert!(s.load("compile/peer").is_none());
        let f = fp(&[("var:GO_TAGS", "")]);
        s.save("compile/peer", &f).unwrap();
        assert_eq!(s.load("compile/peer"), Some(f));
        s.clear("compile/peer").unwrap();
        assert!(s.load("compile/peer").is_none());
        s.clear("compile/peer").unwrap();
    }
}
