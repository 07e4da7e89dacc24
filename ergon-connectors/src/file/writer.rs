//! Dispatch: appending lines to a file, shared by the connector's workers.
//!
//! An [`Appender`] keeps the file open in append mode and encodes each call's lines into
//! one buffer that it writes at once: a call returns when its lines reached the OS, and a
//! reader of the same file (another task, in streaming mode) never sees half of a call's
//! lines.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use ergon_core::sync::lock;
use ergon_core::{TaskError, Transaction};

/// Lines appended to one file.
pub(crate) struct Appender {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Opened by the first append.
    file: Option<File>,
    /// The lines of the current call.
    buf: Vec<u8>,
    /// The last write failed, maybe halfway through a line: start the next one on a new
    /// line (a blank line is skipped when the file is read).
    torn: bool,
}

impl Appender {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            state: Mutex::default(),
        }
    }

    /// The file appended to.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Blocking: appends the lines `encode` writes into the buffer (each ending with a
    /// newline) in one write, creating the file and its directories when missing.
    ///
    /// # Errors
    ///
    /// What `encode` returns (then nothing is written), or a system error when the file
    /// cannot be opened or written.
    pub(crate) fn append(
        &self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), TaskError>,
    ) -> Result<(), TaskError> {
        let mut state = self.lock();
        let state = &mut *state;
        state.buf.clear();
        if state.torn {
            state.buf.push(b'\n');
        }
        let start = state.buf.len();
        encode(&mut state.buf)?;
        if state.buf.len() == start {
            return Ok(());
        }
        if state.file.is_none() {
            state.file = Some(self.open()?);
        }
        let file = state.file.as_mut().expect("opened above");
        let written = file.write_all(&state.buf);
        if state.buf.capacity() > 1 << 20 {
            // Do not keep a huge batch's buffer for the rest of the run.
            state.buf = Vec::new();
        }
        match written {
            Ok(()) => {
                state.torn = false;
                Ok(())
            }
            Err(err) => {
                state.torn = true;
                // Reopen on the next call: the handle may be what failed.
                state.file = None;
                Err(
                    TaskError::system(format!("cannot write to {}", self.path.display()))
                        .with_source(err),
                )
            }
        }
    }

    /// Blocking: asks the OS to put what was appended on disk.
    pub(crate) fn sync(&self) -> Result<(), TaskError> {
        let state = self.lock();
        match &state.file {
            Some(file) => file.sync_data().map_err(|err| {
                TaskError::system(format!("cannot sync {}", self.path.display())).with_source(err)
            }),
            None => Ok(()),
        }
    }

    fn open(&self) -> Result<File, TaskError> {
        let cannot = |err: io::Error| {
            let fatal = is_final(&err);
            let err =
                TaskError::system(format!("cannot open {} for appending", self.path.display()))
                    .with_source(err);
            if fatal { err.non_retryable() } else { err }
        };
        if let Some(dir) = self.path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(cannot)?;
        }
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(cannot)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves at worst a stale buffer, cleared by the
        // next call.
        lock(&self.state)
    }
}

/// Whether retrying cannot fix an I/O error on opening a file: it would meet the same
/// permissions, or the same directory where a file should be (or the reverse).
pub(crate) fn is_final(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::IsADirectory
            | io::ErrorKind::NotADirectory
    )
}

/// Appends `transaction`'s payload and a newline to `buf`, with its `traceparent` in
/// `trace_field` when one is given (see [`FileConfig::trace_field`](super::FileConfig)).
///
/// A payload must fit on one line. One with line breaks is accepted when it is JSON (they
/// can only be whitespace between its tokens, so removing them leaves the same value, with
/// its keys and numbers as they were); otherwise it is a business error.
pub(crate) fn encode_line(
    buf: &mut Vec<u8>,
    transaction: &Transaction,
    trace_field: Option<&str>,
) -> Result<(), TaskError> {
    let traced = trace_field.and_then(|field| {
        let parent = transaction.meta(ergon_core::transaction::meta::TRACEPARENT)?;
        with_field(transaction.payload(), field, parent)
    });
    let payload: &[u8] = traced.as_deref().unwrap_or(transaction.payload());
    if payload.contains(&b'\n') || payload.contains(&b'\r') {
        if serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_err() {
            return Err(TaskError::business(format!(
                "payload of transaction {} has line breaks and is not JSON: it cannot be one line of a JSON lines file",
                transaction.id()
            )));
        }
        buf.extend(payload.iter().filter(|&&b| b != b'\n' && b != b'\r'));
    } else {
        buf.extend_from_slice(payload);
    }
    buf.push(b'\n');
    Ok(())
}

/// `payload` with `field` set to `value`, when `payload` is a JSON object: inserted first
/// (the payload's own keys keep their order), or, when the field is there already, the
/// object rewritten with the new value.
fn with_field(payload: &[u8], field: &str, value: &str) -> Option<Vec<u8>> {
    let open = payload.iter().position(|b| !b.is_ascii_whitespace())?;
    if payload[open] != b'{' {
        return None;
    }
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(payload).ok()?;
    if object.contains_key(field) {
        object.insert(field.to_owned(), value.into());
        return serde_json::to_vec(&object).ok();
    }
    let mut out = Vec::with_capacity(payload.len() + field.len() + value.len() + 8);
    out.extend_from_slice(&payload[..=open]);
    out.extend(serde_json::to_vec(field).ok()?);
    out.push(b':');
    out.extend(serde_json::to_vec(value).ok()?);
    if !object.is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(&payload[open + 1..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(payload: &str) -> Result<String, TaskError> {
        let mut buf = Vec::new();
        encode_line(&mut buf, &Transaction::new("t", payload.to_owned()), None)?;
        Ok(String::from_utf8(buf).unwrap())
    }

    #[test]
    fn payloads_become_one_line() {
        assert_eq!(line(r#"{"a":1}"#).unwrap(), "{\"a\":1}\n");
        assert_eq!(line("not json").unwrap(), "not json\n");
        assert_eq!(
            line("{\r\n  \"z\": 1.50,\n  \"a\": [1,\n 2]\n}\n").unwrap(),
            "{  \"z\": 1.50,  \"a\": [1, 2]}\n",
            "keys and numbers kept as written"
        );
        let err = line("two\nlines").unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("transaction t"), "{err}");
    }

    #[test]
    fn the_trace_field_carries_the_traceparent_of_json_objects_only() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let traced = |payload: &str| {
            let tx = Transaction::builder("t")
                .payload(payload.to_owned())
                .meta("traceparent", parent)
                .build();
            let mut buf = Vec::new();
            encode_line(&mut buf, &tx, Some("tp")).unwrap();
            String::from_utf8(buf).unwrap()
        };
        assert_eq!(
            traced(r#"{"z":1,"a":2}"#),
            format!("{{\"tp\":\"{parent}\",\"z\":1,\"a\":2}}\n")
        );
        assert_eq!(traced(" {}"), format!(" {{\"tp\":\"{parent}\"}}\n"));
        assert_eq!(
            traced(r#"{"tp":"old","b":1}"#),
            format!("{{\"b\":1,\"tp\":\"{parent}\"}}\n")
        );
        assert_eq!(traced("[1,2]"), "[1,2]\n");
        assert_eq!(traced("plain text"), "plain text\n");
        // Without a traceparent, nothing is added.
        let mut buf = Vec::new();
        encode_line(&mut buf, &Transaction::new("t", "{\"a\":1}"), Some("tp")).unwrap();
        assert_eq!(buf, b"{\"a\":1}\n");
    }
}
