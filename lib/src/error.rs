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
    /// The user interrupted the build (Ctrl-C). Containers imgforge started were removed.
    #[error("interrupted; the containers imgforge started were removed")]
    Cancelled,
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
            Error::Engine { source: EngineError::ImageMissing { .. }, .. } => Vec::new(),
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
    /// | 1 | the build failed (compiler, `docker build`, the engine's own errors, a full disk), or another run holds the build dir (`--no-wait`) |
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
            Error::Config(_) | Error::Spec(_) | Error::Template(_) | Error::Input { .. } => 2,
            Error::Cancelled
            | Error::Engine {
                source: EngineError::Cancelled,
                ..
            } => 130,
            Error::Engine {
                source: EngineError::ImageMissing { .. } | EngineError::Unreachable { .. },
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
