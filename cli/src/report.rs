//! Turns library events into terminal output: indicatif spinners on a terminal, plain lines
//! otherwise, JSON lines with `--json`.

use imgforge::event::{Event, Reporter};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

/// How output is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Spinners per running step (stderr is a terminal).
    Progress,
    /// One line per event on stderr.
    Plain,
    /// JSON lines on stdout.
    Json,
}

/// The CLI's reporter.
pub struct CliReporter {
    mode: Mode,
    verbose: bool,
    quiet: bool,
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

fn verb(step: &str) -> &'static str {
    match step.split('/').next().unwrap_or("") {
        "compile" => "Compiling",
        "gotools" => "Building",
        "chaintool" => "Fetching",
        "archives" => "Archiving",
        "render" => "Rendering",
        "payload" => "Assembling",
        "image" => "Building",
        "rootfs" => "Bootstrapping",
        "base" => "Importing",
        "check" => "Checking",
        _ => "Running",
    }
}

impl CliReporter {
    /// Choose the mode from the flags and whether stderr is a terminal.
    pub fn new(json: bool, verbose: bool, quiet: bool) -> Self {
        let mode = if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() && !verbose {
            Mode::Progress
        } else {
            Mode::Plain
        };
        CliReporter {
            mode,
            verbose,
            quiet,
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Print a line without tearing the progress bars.
    pub fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match self.mode {
            Mode::Progress => {
                let _ = self.multi.println(text);
            }
            _ => {
                let _ = writeln!(std::io::stderr(), "{text}");
            }
        }
    }

    /// Remove all bars (before printing an error).
    pub fn clear(&self) {
        for (_, b) in self.bars.lock().expect("lock").drain() {
            b.finish_and_clear();
        }
    }
}

impl Reporter for CliReporter {
    fn event(&self, event: &Event) {
        if self.mode == Mode::Json {
            let mut out = std::io::stdout().lock();
            let _ = serde_json::to_writer(&mut out, event);
            let _ = writeln!(out);
            return;
        }
        match event {
            Event::StepStarted { step, detail } => {
                let text = format!("{:>12} {step}: {detail}", verb(step));
                if self.mode == Mode::Progress && !self.quiet {
                    let bar = self.multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner:.cyan} {prefix:.bold} [{elapsed}] {wide_msg}",
                        )
                        .expect("valid template"),
                    );
                    bar.set_prefix(step.clone());
                    bar.set_message(detail.clone());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    self.bars.lock().expect("lock").insert(step.clone(), bar);
                } else {
                    self.line(&text);
                }
            }
            Event::StepFinished {
                step,
                elapsed_ms,
                summary,
            } => {
                if let Some(bar) = self.bars.lock().expect("lock").remove(step) {
                    bar.finish_and_clear();
                }
                self.line(&format!(
                    "{:>12} {step} in {:.1}s: {summary}",
                    "Finished",
                    *elapsed_ms as f64 / 1000.0
                ));
            }
            Event::StepFresh { step, reason } => {
                self.line(&format!("{:>12} {step}: {reason}", "Fresh"));
            }
            Event::StepStale { step, reason } => {
                self.line(&format!("{:>12} {step}: {reason}", "Stale"));
            }
            Event::Log { step, line } => {
                let bars = self.bars.lock().expect("lock");
                match (self.mode, bars.get(step)) {
                    (Mode::Progress, Some(bar)) => bar.set_message(line.clone()),
                    _ if self.verbose || self.mode == Mode::Plain => {
                        drop(bars);
                        self.line(&format!("{:>12} | {line}", ""));
                    }
                    _ => {}
                }
            }
            Event::Notice { step, message } => {
                self.line(&format!("{:>12} {step}: {message}", "Note"));
            }
            Event::Tagged { reference, id } => {
                self.line(&format!(
                    "{:>12} {reference} ({})",
                    "Tagged",
                    &id[..id.len().min(19)]
                ));
            }
        }
    }
}
