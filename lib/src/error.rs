//! The library's error type. Every variant says what was wrong, what was expected, and — through
//! [`Error::hints`] — what to do. The library never prints and never exits; the CLI renders
//! the cause chain and the hints.

use crate::archive::ArchiveError;
use crate::config::ConfigError;
use crate::engine::EngineError;
use crate::spec::SpecError;
use crate::steps::render::UnknownToken;
use std::path::PathBuf;

/// Any failure of an imgforge operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad build variables (names, namespaces, tags).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A payload spec is unknown or malformed.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The engine failed during a step.
    #[error("{step}: {source}")]
    Engine {
        /// Step identifier, e.g. `compile/peer`.
        step: String,
        /// What the engine said.
        #[source]
        source: EngineError,
    },
    /// Writing an archive failed.
    #[error("{step}: {source}")]
    Archive {
        /// Step identifier.
        step: String,
        /// The archive error.
        #[source]
        source: ArchiveError,
    },
    /// A template uses an unknown token.
    #[error(transparent)]
    Template(#[from] UnknownToken),
    /// A file operation failed.
    #[error("{step}: {action} {}: {source}", path.display())]
    Io {
        /// Step identifier.
        step: String,
        /// What was being done ("write", "copy", "read").
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A step's input is missing or unusable; `hint` says how to provide it.
    #[error("{step}: {message}")]
    Input {
        /// Step identifier.
        step: String,
        /// What is wrong.
        message: String,
        /// What to do.
        hint: String,
    },
    /// Another run holds the build directory and the caller asked not to wait.
    #[error("{holder} is building in {} (its lock is held)", dir.display())]
    Busy {
        /// The build directory.
        dir: PathBuf,
        /// Who holds it ("imgforge pid 123").
        holder: String,
    },
    /// Base images the build needs are not in the engine (nothing is pulled). Exit code 2.
    #[error("{step}: {} not in the Docker engine (imgforge never pulls): {}", if missing.len() == 1 { "image is" } else { "images are" }, missing.iter().map(|m| m.reference.as_str()).collect::<Vec<_>>().join(", "))]
    MissingImages {
        /// The step that checked.
        step: String,
        /// Every missing image, with the command that makes it.
        missing: Vec<MissingImage>,
    },
    /// A disk filled up during `step` (ENOSPC, on this host or in the engine's storage): not
    /// the source's fault. Exit code 1.
    #[error("{step}: no space left on {where_} ({detail})")]
    NoSpace {
        /// Step identifier.
        step: String,
        /// The full place: a directory, or "the Docker engine's storage".
        where_: String,
        /// What to free or move, e.g. "`df -h /work/build`; or set BUILD_DIR to another disk".
        hint: String,
        /// The error as it was reported (compiler output, I/O error).
        detail: String,
    },
    /// A fault inside imgforge (a panic in a step, a background task that died, a broken
    /// invariant): not the user's input and not the build's failure. Exit code 1.
    #[error("internal error in {step}: {message}")]
    Internal {
        /// Step identifier (`compile/peer`), or `imgforge` outside any step.
        step: String,
        /// The panic message or the broken invariant.
        message: String,
    },
    /// The user interrupted the build (Ctrl-C). Containers imgforge started were removed.
    #[error("interrupted; the containers imgforge started were removed")]
    Cancelled,
}

/// A base image that is not in the engine, and how to make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingImage {
    /// The image reference looked up, e.g. `hyperledger/fabric-baseos:amd64-0.4.22`.
    pub reference: String,
    /// The command that makes it, e.g. `imgforge baseos --debootstrap bookworm`.
    pub command: String,
}

impl Error {
    /// Lines of advice for the user, rendered after the error as `hint: …`.
    pub fn hints(&self) -> Vec<String> {
        match self {
            Error::Config(ConfigError::Reference(r)) => r.hint.iter().cloned().collect(),
            Error::Config(ConfigError::UnknownVariable { .. }) => {
                vec!["`imgforge config` lists every variable with its value and origin".into()]
            }
            Error::Input { hint, .. } => vec![hint.clone()],
            Error::Template(_) => vec![
                "pass --template FILE to use another template, or fix the token in the template".into(),
            ],
            Error::Engine { step, source: EngineError::ContainerExit { .. } } => vec![match step.split('/').next() {
                Some("compile") | Some("gotools") => "the lines above are the compiler's: fix the source, or the variables that reach it (GO_TAGS, DOCKER_DYNAMIC_LINK)".into(),
                Some("archives") => "`go list` failed in the baseimage: is the tree a GOPATH-era Fabric checkout (no go.mod) with its vendor/ directory?".into(),
                Some("check") => "the new base image does not work: check the root filesystem (for baseimage it needs golang-go, gcc, libc6-dev, git)".into(),
                _ => "the lines above are the command's output".into(),
            }],
            Error::MissingImages { missing, .. } => {
                let mut h: Vec<String> = missing
                    .iter()
                    .map(|m| format!("make {} with `{}` (or `--rootfs DIR` instead of --debootstrap)", m.reference, m.command))
                    .collect();
                h.push("or set BASE_DOCKER_NS / BASEIMAGE_RELEASE / ARCH to images you have (`docker images '*/fabric-base*'`)".into());
                h
            }
            Error::NoSpace { hint, .. } => vec![hint.clone()],
            Error::Internal { .. } => vec![
                "this is a bug in imgforge, not in your input: please report it with the command you ran; the build dir keeps what was done, and nothing was recorded as fresh".into(),
            ],
            Error::Busy { .. } => vec![
                "wait for it (run without --no-wait), or use another BUILD_DIR to build in parallel".into(),
            ],
            _ => Vec::new(),
        }
    }

    /// Process exit code for this error (the README's table):
    ///
    /// | code | meaning |
    /// |---|---|
    /// | 2 | bad input or configuration: variables, specs, templates, a missing base image, an engine that cannot be reached, a file that is missing or unreadable, a link that leaves its tree, a file type an archive cannot hold |
    /// | 130 | interrupted (the CLI turns it into 128 + the signal: 130, 143, 129) |
    /// | 1 | the build failed (compiler, `docker build`, the engine's own errors, a full disk), another run holds the build dir (`--no-wait`), or an internal error (a bug in imgforge: "internal error in STEP") |
    pub fn exit_code(&self) -> i32 {
        use std::io::ErrorKind as K;
        let bad_file = |e: &std::io::Error| {
            matches!(
                e.kind(),
                K::NotFound
                    | K::PermissionDenied
                    | K::ReadOnlyFilesystem
                    | K::NotADirectory
                    | K::IsADirectory
                    | K::InvalidInput
            )
        };
        match self {
            Error::Config(_)
            | Error::Spec(_)
            | Error::Template(_)
            | Error::Input { .. }
            | Error::MissingImages { .. } => 2,
            Error::Cancelled
            | Error::Engine {
                source: EngineError::Cancelled,
                ..
            } => 130,
            Error::Engine {
                source:
                    EngineError::Unreachable { .. }
                    | EngineError::Config { .. }
                    | EngineError::NotLocal { .. },
                ..
            } => 2,
            Error::Archive { source, .. } => match source {
                ArchiveError::EscapingSymlink { .. }
                | ArchiveError::Unsupported { .. }
                | ArchiveError::InvalidName { .. } => 2,
                ArchiveError::Io { source, .. } if bad_file(source) => 2,
                _ => 1,
            },
            Error::Io { source, .. } if bad_file(source) => 2,
            _ => 1,
        }
    }

    /// Attach a step name to an engine error, turning cancellation into [`Error::Cancelled`].
    pub fn engine(step: &str, source: EngineError) -> Error {
        match source {
            EngineError::Cancelled => Error::Cancelled,
            source => Error::Engine {
                step: step.to_string(),
                source,
            },
        }
    }

    /// A fault inside imgforge during `step`: a panic payload (`Box<dyn Any>` from
    /// `catch_unwind` or a [`tokio::task::JoinError`]) or a broken invariant, as text.
    pub fn internal(step: &str, message: impl Into<String>) -> Error {
        Error::Internal {
            step: step.to_string(),
            message: message.into(),
        }
    }

    /// The text of a panic payload (`&str` or `String`; anything else is "a panic").
    pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .map_or_else(|| "a panic".into(), |m| format!("panicked: {m}"))
    }

    /// The [`Error`] for a background task of `step` that did not return: a panic is an
    /// [`Error::Internal`], a task cancelled by the runtime (shutdown) is [`Error::Cancelled`].
    pub fn join(step: &str, e: tokio::task::JoinError) -> Error {
        if e.is_cancelled() {
            return Error::Cancelled;
        }
        match e.try_into_panic() {
            Ok(payload) => Error::internal(step, Error::panic_message(payload.as_ref())),
            Err(e) => Error::internal(step, e.to_string()),
        }
    }

    /// Attach a step name to an archive error.
    pub fn archive(step: &str, source: ArchiveError) -> Error {
        Error::Archive {
            step: step.to_string(),
            source,
        }
    }

    /// An I/O error on `path` during `step`.
    pub fn io(
        step: &str,
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Error {
        Error::Io {
            step: step.to_string(),
            action,
            path: path.into(),
            source,
        }
    }
}
