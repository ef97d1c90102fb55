//! What the engine says: container output cut into lines, and the messages of a build.
//!
//! Container logs arrive in frames that split lines (and UTF-8 characters) anywhere; the
//! classic builder's stream carries one JSON message per object, as moby's
//! `pkg/jsonmessage.JSONMessage` (`stream`, `status`, `aux`, `errorDetail` and the deprecated
//! `error`). This module turns both into plain text lines and verdicts, with bounded memory.

use bollard::models::BuildInfo;
use bytes::BytesMut;
use std::collections::VecDeque;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, Decoder};

/// Longest line kept, in bytes; the rest of a longer line is dropped up to its newline.
pub const MAX_LINE: usize = 64 * 1024;
/// Lines of output kept for error messages.
pub const TAIL_LINES: usize = 30;

/// Bytes in, lines out: `\n`-delimited (a trailing `\r` is dropped), decoded as UTF-8 once a
/// whole line is in (so a character split across frames stays intact; invalid bytes become
/// U+FFFD), terminal escape sequences removed (`strip-ansi-escapes`). A line longer than
/// [`MAX_LINE`] bytes keeps its first `MAX_LINE` bytes and ends with a note that it was cut;
/// memory stays bounded by `MAX_LINE` whatever the input. The last [`TAIL_LINES`] lines are
/// kept for error messages.
pub struct LineDecoder {
    codec: AnyDelimiterCodec,
    buf: BytesMut,
    tail: VecDeque<String>,
}

impl Default for LineDecoder {
    fn default() -> Self {
        LineDecoder {
            codec: AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), Vec::new(), MAX_LINE),
            buf: BytesMut::new(),
            tail: VecDeque::with_capacity(TAIL_LINES),
        }
    }
}

/// Text of one line: lossy UTF-8, no trailing `\r`, no escape sequences.
fn clean(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    strip_ansi_escapes::strip_str(String::from_utf8_lossy(bytes))
}

impl LineDecoder {
    /// Feed bytes; returns the lines they complete.
    pub fn feed(&mut self, data: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(data);
        let mut lines = Vec::new();
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(line)) => lines.push(self.keep(clean(&line))),
                Ok(None) => break,
                Err(AnyDelimiterCodecError::MaxChunkLengthExceeded) => {
                    // The codec now discards up to the next newline; keep the head.
                    let head = clean(&self.buf[..MAX_LINE]);
                    lines.push(
                        self.keep(format!("{head} [imgforge: line cut at {MAX_LINE} bytes]")),
                    );
                }
                Err(AnyDelimiterCodecError::Io(_)) => break,
            }
        }
        lines
    }

    /// The last line if it had no newline.
    pub fn finish(&mut self) -> Option<String> {
        // `feed` has taken every complete line, so what is left has no newline.
        let last = match self.codec.decode_eof(&mut self.buf) {
            Ok(Some(line)) if !line.is_empty() => Some(self.keep(clean(&line))),
            _ => None,
        };
        self.buf.clear();
        last
    }

    /// Remember `line` in the tail; returns it.
    pub fn keep(&mut self, line: String) -> String {
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.clone());
        line
    }

    /// The last [`TAIL_LINES`] lines seen, oldest first.
    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }
}

/// Remove terminal escape sequences from `s` (as `strip-ansi-escapes`).
pub fn strip_ansi(s: &str) -> String {
    strip_ansi_escapes::strip_str(s)
}

/// What one message of a classic-builder build stream means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildMessage {
    /// Output text (`stream`, or `status` as when a base image is pulled); may hold several
    /// lines or part of one.
    Text(String),
    /// `aux.ID`: the ID of the image the build made (sent before the final "Successfully built").
    ImageId(String),
    /// The build failed: `errorDetail.message`, else the deprecated `error` field, else the
    /// error code.
    Failed(String),
    /// A message with none of the fields above (an engine newer than imgforge, or an error in a
    /// field imgforge cannot see): counted, so that a build that ends without an image can say
    /// so.
    Unknown,
}

/// Interpret one build-stream message as bollard decodes it. A message can carry text and an
/// error at once; the error wins (its text is the same, as moby's `FormatError` writes both).
pub fn interpret(info: &BuildInfo) -> BuildMessage {
    if let Some(detail) = &info.error_detail {
        return BuildMessage::Failed(match (&detail.message, detail.code) {
            (Some(m), _) if !m.is_empty() => m.clone(),
            (_, Some(code)) => format!("the engine reported error code {code} without a message"),
            _ => "the engine reported an error without a message".into(),
        });
    }
    if let Some(id) = info.aux.as_ref().and_then(|a| a.id.clone()) {
        return BuildMessage::ImageId(id);
    }
    if let Some(text) = &info.stream {
        return BuildMessage::Text(text.clone());
    }
    if let Some(status) = &info.status {
        let mut line = status.clone();
        if let Some(id) = &info.id {
            line = format!("{id}: {line}");
        }
        return BuildMessage::Text(format!("{line}\n"));
    }
    BuildMessage::Unknown
}

/// Interpret one raw JSON message of a build stream (as the engine sends it, and as the
/// recorded fixtures hold it). Unlike [`interpret`] on bollard's decoded value this also sees
/// the deprecated top-level `error` field, which bollard drops.
///
/// # Errors
///
/// The text is not a JSON object of the stream's shape (the `serde_json` error).
pub fn interpret_json(raw: &str) -> Result<BuildMessage, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Bare {
        error: Option<String>,
    }
    let info: BuildInfo = serde_json::from_str(raw)?;
    let bare: Bare = serde_json::from_str(raw)?;
    Ok(match (interpret(&info), bare.error) {
        (BuildMessage::Unknown, Some(e)) | (BuildMessage::Text(_), Some(e)) => {
            BuildMessage::Failed(e)
        }
        (m, _) => m,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_lines_crlf_and_tail() {
        let mut s = LineDecoder::default();
        assert_eq!(s.feed(b"a\nb"), vec!["a"]);
        assert_eq!(s.feed(b"c\r\nd"), vec!["bc"]);
        assert_eq!(s.finish().as_deref(), Some("d"));
        assert_eq!(s.finish(), None);
        for i in 0..100 {
            s.feed(format!("{i}\n").as_bytes());
        }
        let t = s.tail();
        assert_eq!(t.len(), TAIL_LINES);
        assert_eq!(t.last().unwrap(), "99");
    }

    #[test]
    fn a_character_split_across_frames_stays_intact() {
        let mut s = LineDecoder::default();
        // "café\n" with the two bytes of "é" in two frames
        assert!(s.feed(b"caf\xc3").is_empty());
        assert_eq!(s.feed(b"\xa9\n"), vec!["café"]);
        // and in the last, unterminated line
        assert!(s.feed(b"na\xc3").is_empty());
        assert!(s.feed(b"\xafve").is_empty());
        assert_eq!(s.finish().as_deref(), Some("naïve"));
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut s = LineDecoder::default();
        assert_eq!(s.feed(b"a\xffb\n"), vec!["a\u{fffd}b"]);
    }

    #[test]
    fn long_lines_are_cut_and_memory_stays_bounded() {
        let mut s = LineDecoder::default();
        let chunk = vec![b'x'; 10_000];
        let mut lines = Vec::new();
        // 1 MB without a newline, then a newline and a normal line
        for _ in 0..100 {
            lines.extend(s.feed(&chunk));
            assert!(
                s.buf.len() <= MAX_LINE + chunk.len(),
                "{} bytes held",
                s.buf.len()
            );
        }
        lines.extend(s.feed(b"tail\nnext\n"));
        assert_eq!(
            lines.len(),
            2,
            "{:?}",
            lines.iter().map(String::len).collect::<Vec<_>>()
        );
        assert!(lines[0].starts_with(&"x".repeat(MAX_LINE)));
        assert!(lines[0].ends_with("[imgforge: line cut at 65536 bytes]"));
        assert!(!lines[0].contains("tail"));
        assert_eq!(lines[1], "next");
    }

    #[test]
    fn colour_sequences_are_removed() {
        let mut s = LineDecoder::default();
        assert_eq!(
            s.feed("\u{1b}[91m/bin/sh: 1: npm: not found\n\u{1b}[0mRemoving\n".as_bytes()),
            vec!["/bin/sh: 1: npm: not found", "Removing"]
        );
    }

    /// A recorded stream: each line of the fixture is one message as the engine sent it.
    fn replay(fixture: &str) -> (Vec<String>, Vec<BuildMessage>) {
        let mut lines = LineDecoder::default();
        let mut out = Vec::new();
        let mut verdicts = Vec::new();
        for raw in fixture.lines().filter(|l| !l.trim().is_empty()) {
            let m = interpret_json(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            match &m {
                BuildMessage::Text(t) => out.extend(lines.feed(t.as_bytes())),
                other => verdicts.push(other.clone()),
            }
        }
        out.extend(lines.finish());
        (out, verdicts)
    }

    #[test]
    fn recorded_successful_build() {
        let (lines, verdicts) = replay(include_str!("fixtures/build-ok.jsonl"));
        assert!(lines.iter().any(|l| l.starts_with("Step 1/")), "{lines:?}");
        assert!(
            lines.iter().any(|l| l.starts_with("Successfully built ")),
            "{lines:?}"
        );
        assert!(lines.iter().all(|l| !l.contains('\u{1b}')));
        let [BuildMessage::ImageId(id)] = &verdicts[..] else {
            panic!("{verdicts:?}")
        };
        assert!(id.starts_with("sha256:"), "{id}");
    }

    #[test]
    fn recorded_failing_run_step() {
        let (lines, verdicts) = replay(include_str!("fixtures/build-run-fails.jsonl"));
        assert!(
            lines.iter().any(|l| l.contains("no-such-command")),
            "{lines:?}"
        );
        let [BuildMessage::Failed(m)] = &verdicts[..] else {
            panic!("{verdicts:?}")
        };
        assert!(m.contains("returned a non-zero code: 127"), "{m}");
    }

    /// The frames of a recorded multiplexed stream (`POST /containers/ID/attach` or
    /// `GET /containers/ID/logs` of a container without a TTY): 8-byte headers, stream type
    /// first, big-endian length last.
    fn frames(mut raw: &[u8]) -> Vec<(u8, &[u8])> {
        let mut out = Vec::new();
        while raw.len() >= 8 {
            let n = u32::from_be_bytes(raw[4..8].try_into().unwrap()) as usize;
            out.push((raw[0], &raw[8..8 + n]));
            raw = &raw[8 + n..];
        }
        assert!(raw.is_empty(), "trailing bytes");
        out
    }

    /// Lines of stdout and stderr from a recorded stream, frame by frame.
    fn decode(raw: &[u8]) -> (Vec<String>, Vec<String>) {
        let (mut out, mut err) = (LineDecoder::default(), LineDecoder::default());
        let (mut o, mut e) = (Vec::new(), Vec::new());
        for (kind, payload) in frames(raw) {
            match kind {
                1 => o.extend(out.feed(payload)),
                _ => e.extend(err.feed(payload)),
            }
        }
        o.extend(out.finish());
        e.extend(err.finish());
        (o, e)
    }

    /// Recorded from a real attach (engine 20.10): `printf 'caf\303'; sleep 0.3; printf
    /// '\251\n'`, a 20 001-byte line of "x" and 10 000 "é", a coloured stderr line and a last
    /// line without a newline. The engine delivered "caf\xc3" and "\xa9\n…" in two frames.
    #[test]
    fn recorded_attach_stream_keeps_split_characters() {
        let raw = include_bytes!("fixtures/attach-split-utf8.bin");
        let f = frames(raw);
        assert!(
            f[0].1.ends_with(b"caf\xc3"),
            "the fixture splits a character"
        );
        let (out, err) = decode(raw);
        let long = format!("x{}", "é".repeat(10_000));
        assert_eq!(
            out,
            vec!["café".to_string(), long, "no newline at end".into()]
        );
        assert_eq!(err, vec!["err line"]);
    }

    /// Why run output is attached and not read from the logs: the log driver (json-file)
    /// cuts lines at 16 KiB and has already replaced the character it split with U+FFFD.
    #[test]
    fn recorded_log_driver_stream_has_lost_the_split_character() {
        let (out, err) = decode(include_bytes!("fixtures/logs-long-utf8-line.bin"));
        assert_eq!(
            out.len(),
            2,
            "{:?}",
            out.iter().map(String::len).collect::<Vec<_>>()
        );
        assert!(out[0].contains('\u{fffd}'));
        assert_eq!(err, vec!["err line"]);
    }

    #[test]
    fn the_deprecated_error_field_alone_is_a_failure() {
        assert_eq!(
            interpret_json(r#"{"error":"no space left on device"}"#).unwrap(),
            BuildMessage::Failed("no space left on device".into())
        );
        // bollard's decoded value cannot carry it: such a message is Unknown, never text
        let info: BuildInfo = serde_json::from_str(r#"{"error":"x"}"#).unwrap();
        assert_eq!(interpret(&info), BuildMessage::Unknown);
        assert_eq!(
            interpret_json(r#"{"errorDetail":{"code":1}}"#).unwrap(),
            BuildMessage::Failed("the engine reported error code 1 without a message".into())
        );
        assert_eq!(
            interpret_json(r#"{"status":"Downloading","id":"abc"}"#).unwrap(),
            BuildMessage::Text("abc: Downloading\n".into())
        );
    }
}
