//! Progress events: the library's only way of telling the outside world what it is doing.
//!
//! The library prints nothing. Every step reports through a [`Reporter`]; the CLI turns the
//! events into `indicatif` progress bars, plain lines, or JSON lines (`--json`). Tests use
//! [`Recorder`] to assert on what happened (e.g. that a cached step did no work).

use serde::Serialize;
use std::sync::Mutex;

/// One thing that happened during a build. Serialised with a `"event"` tag in snake case,
/// e.g. `{"event":"step_started","step":"compile/peer","detail":"go install ..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A step started doing work. `step` is `<kind>/<target>`, e.g. `compile/peer`.
    StepStarted {
        /// Step identifier.
        step: String,
        /// What it does, in one line (command, output path).
        detail: String,
    },
    /// A step finished successfully after `elapsed_ms` milliseconds of wall time.
    StepFinished {
        /// Step identifier.
        step: String,
        /// Wall time in milliseconds.
        elapsed_ms: u64,
        /// One-line summary of the result (path and size, image ID …).
        summary: String,
    },
    /// A step did no work because its result is already there.
    StepFresh {
        /// Step identifier.
        step: String,
        /// Why it is fresh (e.g. "image with content key 3fa2… exists").
        reason: String,
    },
    /// A step must run; `reason` says why (as cargo's "dirty" reasons).
    StepStale {
        /// Step identifier.
        step: String,
        /// Why it must run.
        reason: crate::fingerprint::StaleReason,
    },
    /// One line of output of a child process (compiler, `docker build` step).
    Log {
        /// Step identifier.
        step: String,
        /// The line, without its trailing newline.
        line: String,
    },
    /// Something the user should know that is not an error (a skipped socket in a rootfs,
    /// a template taken from the source tree).
    Notice {
        /// Step identifier.
        step: String,
        /// The notice.
        message: String,
    },
    /// An image reference was created or moved to an image.
    Tagged {
        /// Full reference, `repository:tag`.
        reference: String,
        /// Image ID (`sha256:…`).
        id: String,
    },
}

impl Event {
    /// The step this event belongs to.
    pub fn step(&self) -> &str {
        match self {
            Event::StepStarted { step, .. }
            | Event::StepFinished { step, .. }
            | Event::StepFresh { step, .. }
            | Event::StepStale { step, .. }
            | Event::Log { step, .. }
            | Event::Notice { step, .. } => step,
            Event::Tagged { .. } => "tag",
        }
    }
}

/// Receives events. Implementations must be cheap and must not block for long: events are
/// sent from the build's tasks as they happen.
pub trait Reporter: Send + Sync {
    /// Called once per event, in the order the events happen within one step.
    fn event(&self, event: &Event);
}

/// A reporter that drops every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _event: &Event) {}
}

/// A reporter that keeps every event in memory, for tests and for embedding tools that want
/// the whole log after the fact.
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    /// A copy of the events recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().expect("recorder lock").clone()
    }
}

impl Reporter for Recorder {
    fn event(&self, event: &Event) {
        self.events
            .lock()
            .expect("recorder lock")
            .push(event.clone());
    }
}
