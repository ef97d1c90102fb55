//! The steps of Fabric's image flow, one module each, named after what they do:
//!
//! ```text
//!  compile ──┐                       (go install in fabric-baseimage)
//!  gotools ──┤                       (protoc-gen-go from vendor/)
//!  chaintool ┼─▶ payload ─┐          (build/image/<name>/payload)
//!  archives ─┘            ├─▶ image  (docker build + tags)
//!  render ────────────────┘          (Dockerfile.in → Dockerfile)
//! ```
//!
//! The Fabric 2.x/3.x line (`payload-specs/v2/`) adds three kinds: [`gomod`] (`go build
//! -mod=vendor` of `./cmd/<name>` in the trixie build image, the 2.x metadata flags),
//! [`ccaas`] (Fabric's ccaas builder, or a builder module such as fabric-ccs-builder, GOPATH
//! mode over Debian's Go packages) and
//! [`tree_file`] (one file of the tree, as `COPY sampleconfig/core.yaml`).
//!
//! Each module starts with the Makefile rule it replaces and an inputs → outputs table, and
//! implements its step as an [`Op`] (what it reads, what it writes, how it runs); payload
//! kinds of specs (`kind = "binary"`, …) are registered in [`registry`].

pub mod archives;
pub mod ccaas;
pub mod chaintool;
pub mod compile;
pub mod gomod;
pub mod gotools;
pub mod image;
mod op;
pub mod payload;
pub mod render;
pub mod tree_file;

pub use op::{
    check_kind, files_only, kind_names, registry, Input, KindEntry, Op, Output, PayloadFile,
    PayloadKind, Planner, Produced,
};

use crate::config::BuildVars;
use crate::engine::Engine;
use crate::error::Error;
use crate::event::{Event, Reporter};
use std::path::PathBuf;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Path inside build containers where the Fabric tree is bind-mounted
/// (`-v $(abspath .):/opt/gopath/src/$(PKGNAME)` in `docker-env.mk`'s `DRUN`).
pub const CONTAINER_SRC: &str = "/opt/gopath/src/github.com/hyperledger/fabric";

/// The proxy variables: the six that `docker-env.mk` forwards into build containers and
/// `docker build` (`--build-arg`), first, then the rest of Docker's predefined proxy build
/// arguments (`FTP_PROXY`, `ALL_PROXY`; Dockerfile reference, "Predefined ARGs"), which the
/// engine also keeps out of `docker history` unless a Dockerfile declares them.
pub const PROXY_VARS: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "no_proxy",
    "NO_PROXY",
    "ftp_proxy",
    "FTP_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

/// Options that are not Make variables.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Template to use instead of the tree's `images/<name>/Dockerfile.in` and imgforge's own.
    pub template: Option<PathBuf>,
    /// chaintool program to put into ccenv instead of downloading `CHAINTOOL_URL`.
    pub chaintool: Option<PathBuf>,
    /// Compile on the host with the host's `go` instead of in fabric-baseimage (`make peer`).
    pub native: bool,
    /// Prefer imgforge's own template over the tree's.
    pub builtin_template: bool,
    /// Archive mtime in seconds (`SOURCE_DATE_EPOCH`); `None` = the tree's HEAD commit time, else 0.
    pub source_date_epoch: Option<u64>,
    /// When another run holds the build directory, fail at once ([`Error::Busy`]) instead of
    /// waiting for it.
    pub no_wait: bool,
    /// Build every image with `docker build` (the engine's classic builder) instead of
    /// assembling it ([`crate::assemble`]), as Fabric's Makefile does.
    pub docker_build: bool,
}

/// What every step gets: the variables, the engine, where to report, and the cancel token.
pub struct Cx<'a, E: Engine> {
    /// Resolved build variables (the tree is `vars.source`).
    pub vars: &'a BuildVars,
    /// Options that are not Make variables.
    pub options: &'a BuildOptions,
    /// The container engine.
    pub engine: &'a E,
    /// Event sink.
    pub reporter: &'a dyn Reporter,
    /// Cancelled on Ctrl-C.
    pub cancel: &'a CancellationToken,
}

impl<E: Engine> Cx<'_, E> {
    /// The source tree (callers resolved vars with a source).
    pub fn source(&self) -> PathBuf {
        self.vars.source.clone().expect("a source tree")
    }

    /// `$(BUILD_DIR)`, absolute.
    pub fn build_dir(&self) -> PathBuf {
        self.vars.build_dir()
    }

    /// Create `$(BUILD_DIR)` if needed, with imgforge's marker ([`crate::build_dir::ensure`]).
    ///
    /// Errors: [`Error::Io`] naming the directory and `step`.
    pub fn ensure_build_dir(&self, step: &str) -> Result<(), Error> {
        let dir = self.build_dir();
        crate::build_dir::ensure(&dir, self.vars.source.as_deref())
            .map_err(|e| Error::io(step, "create the build directory", dir, e))
    }

    /// Create `$(BUILD_DIR)` if needed and take its lock ([`crate::build_dir::try_lock`]) for
    /// as long as the returned value lives. While another run holds it, reports a
    /// [`Event::Notice`] once ("waiting for imgforge pid N on DIR") and retries every 200 ms,
    /// until it is free or the build is cancelled; with [`BuildOptions::no_wait`] it fails at
    /// once instead.
    ///
    /// Errors: [`Error::Busy`] (no_wait), [`Error::Cancelled`], [`Error::Io`] when the build
    /// directory or its lock file cannot be made.
    pub async fn lock_build_dir(
        &self,
        step: &str,
    ) -> Result<crate::build_dir::BuildDirLock, Error> {
        use crate::build_dir::{try_lock, LockAttempt};
        let dir = self.build_dir();
        let mut told = false;
        loop {
            self.ensure_build_dir(step)?;
            let d = dir.clone();
            let attempt = tokio::task::spawn_blocking(move || try_lock(&d))
                .await
                .map_err(|e| Error::join(step, e))?
                .map_err(|e| Error::io(step, "lock", crate::build_dir::lock_path(&dir), e))?;
            match attempt {
                LockAttempt::Held(lock) => return Ok(lock),
                LockAttempt::Busy(pid) => {
                    let who = pid.map_or("another imgforge".to_string(), |p| {
                        format!("imgforge pid {p}")
                    });
                    if self.options.no_wait {
                        return Err(Error::Busy {
                            dir: dir.clone(),
                            holder: who,
                        });
                    }
                    if !told {
                        self.reporter.event(&Event::Notice {
                            step: step.to_string(),
                            message: format!(
                                "waiting for {who} on {} (another run is building in it; --no-wait fails instead)",
                                dir.display()
                            ),
                        });
                        told = true;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
                        _ = self.cancel.cancelled() => return Err(Error::Cancelled),
                    }
                }
            }
        }
    }

    /// Archive mtime: `SOURCE_DATE_EPOCH`, else the tree's HEAD commit time, else 0.
    pub fn mtime(&self) -> u64 {
        self.options
            .source_date_epoch
            .or_else(|| {
                self.vars
                    .source
                    .as_deref()
                    .and_then(crate::config::git_commit_time)
            })
            .unwrap_or(0)
    }

    /// Report that `step` starts and time it.
    pub fn start(&self, step: &str, detail: impl Into<String>) -> StepTimer<'_> {
        self.reporter.event(&Event::StepStarted {
            step: step.to_string(),
            detail: detail.into(),
        });
        StepTimer {
            step: step.to_string(),
            started: Instant::now(),
            reporter: self.reporter,
        }
    }

    /// `uid:gid` of this process, for `--user` of build containers (as `DOCKER_RUN_FLAGS`
    /// `--user=$(shell id -u)`, with the group added so files in the build dir stay ours).
    pub fn user(&self) -> String {
        // SAFETY: getuid/getgid cannot fail and have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        format!("{uid}:{gid}")
    }

    /// The proxy variables that are set, as `NAME=value` (docker-env.mk forwards
    /// `http_proxy https_proxy HTTP_PROXY HTTPS_PROXY no_proxy NO_PROXY`).
    pub fn proxy_env(&self) -> Vec<String> {
        PROXY_VARS[..6]
            .iter()
            .filter_map(|n| {
                std::env::var(n)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .map(|v| format!("{n}={v}"))
            })
            .collect()
    }

    /// Make sure every base image in `names` (`baseos`, `baseimage`) is in the engine, before
    /// any work: one error lists all that are missing, each with the command that makes it.
    ///
    /// # Errors
    ///
    /// [`Error::MissingImages`] (exit code 2) naming every missing reference; the engine's
    /// error when it cannot be asked.
    pub async fn require_bases(&self, step: &str, names: &[String]) -> Result<(), Error> {
        let mut missing = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for name in names.iter().filter(|n| seen.insert(n.as_str())) {
            let reference = self.vars.base_image(name);
            if self
                .engine
                .inspect_image(&reference)
                .await
                .map_err(|e| Error::engine(step, e))?
                .is_none()
            {
                missing.push(crate::error::MissingImage {
                    command: self.base_command(name),
                    reference,
                });
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::MissingImages {
                step: step.to_string(),
                missing,
            })
        }
    }

    /// The command that makes base image `name` with this run's settings: the variables that
    /// name it (`BASE_DOCKER_NS`, `BASEIMAGE_RELEASE`, `ARCH`, `BASE_DOCKER_TAG`) are repeated
    /// when they were given on the command line (the environment carries over by itself).
    fn base_command(&self, name: &str) -> String {
        let mut cmd = match self.vars.source.as_deref() {
            // the 2.x/3.x specs: Debian trixie (Go 1.24), named for the tree
            Some(src) if crate::config::fabric_line(src) != crate::config::FabricLine::V1 => {
                format!(
                    "imgforge {name} --source {} --debootstrap trixie",
                    crate::engine::shell_join(&[src.display().to_string()])
                )
            }
            _ => format!("imgforge {name} --debootstrap bookworm"),
        };
        for var in [
            "BASE_DOCKER_NS",
            "BASEIMAGE_RELEASE",
            "ARCH",
            "BASE_DOCKER_TAG",
        ] {
            if let Some(v) = self.vars.var(var) {
                if v.origin == crate::config::Origin::Flag {
                    cmd.push_str(&format!(
                        " {var}={}",
                        crate::engine::shell_join(std::slice::from_ref(&v.value))
                    ));
                }
            }
        }
        cmd
    }

    /// Make sure the base image `name` (`baseos`/`baseimage`) is in the engine; returns its
    /// reference.
    ///
    /// # Errors
    ///
    /// As [`Cx::require_bases`] for the one image.
    pub async fn require_base(&self, step: &str, name: &str) -> Result<String, Error> {
        self.require_bases(step, &[name.to_string()]).await?;
        Ok(self.vars.base_image(name))
    }
}

/// Reports `StepFinished` with the elapsed time.
pub struct StepTimer<'a> {
    step: String,
    started: Instant,
    reporter: &'a dyn Reporter,
}

impl StepTimer<'_> {
    /// The step succeeded with `summary`.
    pub fn finish(self, summary: impl Into<String>) {
        self.reporter.event(&Event::StepFinished {
            step: self.step,
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            summary: summary.into(),
        });
    }
}

/// Create a directory and its parents, as `mkdir -p`.
pub fn mkdir_p(step: &str, dir: &std::path::Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(step, "create directory", dir, e))
}
