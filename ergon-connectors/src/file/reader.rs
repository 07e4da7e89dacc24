//! Fetch: the input file's lines become transactions, read lazily by whichever worker asks.
//!
//! One [`Input`] per `[connectors.NAME]` holds the open reader and a queue of transactions
//! ready to hand out (requeued ones, and lines read by a fetch that was cancelled before it
//! returned). Reading happens on tokio's blocking pool under the reader's lock, so the
//! connector's workers never read a line twice; the queue has its own lock, held only to
//! push or pop, so an async worker never waits on the disk.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ergon_core::{TaskError, Transaction};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use super::meta;
use crate::jsonl::{is_blank, trim_newline};
use ergon_core::sync::lock;

/// Read buffer of the input file.
const READ_BUFFER: usize = 64 * 1024;

/// The input side of a file connector, shared by its workers.
pub(crate) struct Input {
    path: PathBuf,
    /// The file name, the first half of each `FILE:LINE` id.
    file_name: String,
    /// The path as shown in `file.path`.
    shown_path: String,
    id_field: Option<String>,
    trace_field: Option<String>,
    /// Opened by the first fetch; locked only on the blocking pool.
    lines: Mutex<Option<Lines>>,
    /// Transactions to hand out before reading more: requeued ones and read-ahead.
    ready: Mutex<VecDeque<Transaction>>,
}

struct Lines {
    reader: BufReader<File>,
    /// The line being read: a last line without its newline waits here for one fetch.
    buf: Vec<u8>,
    /// Lines read so far (blank ones included), so the next one is `number + 1`.
    number: u64,
}

impl Input {
    pub(crate) fn new(
        path: PathBuf,
        id_field: Option<String>,
        trace_field: Option<String>,
    ) -> Self {
        let file_name = path.file_name().map_or_else(
            || path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        Self {
            shown_path: path.display().to_string(),
            file_name,
            path,
            id_field,
            trace_field,
            lines: Mutex::default(),
            ready: Mutex::default(),
        }
    }

    /// Hands out up to `max` ready transactions, oldest first.
    pub(crate) fn take(&self, max: usize) -> Vec<Transaction> {
        let mut ready = lock(&self.ready);
        let n = max.min(ready.len());
        ready.drain(..n).collect()
    }

    /// How many transactions are ready without reading.
    pub(crate) fn ready(&self) -> usize {
        lock(&self.ready).len()
    }

    /// Queues a transaction to be handed out again, before lines not read yet.
    pub(crate) fn requeue(&self, transaction: Transaction) {
        lock(&self.ready).push_back(transaction);
    }

    /// Blocking: reads until `want` transactions are ready or the file ends; returns
    /// whether it reached the end (no complete line left to read for now).
    ///
    /// Transactions read are queued before an error is returned, never lost.
    pub(crate) fn read_ahead(&self, want: usize) -> Result<bool, TaskError> {
        let mut lines = lock(&self.lines);
        if self.ready() >= want {
            return Ok(false);
        }
        let lines = match &mut *lines {
            Some(lines) => lines,
            None => lines.insert(self.open()?),
        };
        loop {
            let ready = self.ready();
            if ready >= want {
                return Ok(false);
            }
            lines
                .reader
                .read_until(b'\n', &mut lines.buf)
                .map_err(|err| {
                    TaskError::system(format!(
                        "cannot read input file {} after line {}",
                        self.path.display(),
                        lines.number
                    ))
                    .with_source(err)
                })?;
            let complete = lines.buf.last() == Some(&b'\n');
            // Without its newline, the line is the end of the file, and it may still be
            // being written: it is handed out only when nothing else is ready.
            if !complete && (lines.buf.is_empty() || ready > 0) {
                return Ok(true);
            }
            lines.number += 1;
            let line = trim_newline(&lines.buf);
            if !is_blank(line) {
                let transaction = self.transaction(line, lines.number);
                lock(&self.ready).push_back(transaction);
            }
            lines.buf.clear();
            if !complete {
                return Ok(true);
            }
        }
    }

    fn open(&self) -> Result<Lines, TaskError> {
        let cannot = |what: &str, err: io::Error| {
            let fatal = super::writer::is_final(&err);
            let err = TaskError::system(format!("{what} {}", self.path.display())).with_source(err);
            if fatal { err.non_retryable() } else { err }
        };
        let file = File::open(&self.path).map_err(|err| {
            if err.kind() == io::ErrorKind::NotFound {
                cannot("input file does not exist:", err)
            } else {
                cannot("cannot open input file", err)
            }
        })?;
        let metadata = file
            .metadata()
            .map_err(|err| cannot("cannot open input file", err))?;
        if metadata.is_dir() {
            return Err(TaskError::system(format!(
                "input file {} is a directory",
                self.path.display()
            ))
            .non_retryable());
        }
        tracing::debug!(path = %self.path.display(), "Opened input file");
        Ok(Lines {
            reader: BufReader::with_capacity(READ_BUFFER, file),
            buf: Vec::new(),
            number: 0,
        })
    }

    fn transaction(&self, line: &[u8], number: u64) -> Transaction {
        let id = self
            .id_field
            .as_deref()
            .and_then(|field| id_from_field(line, field))
            .unwrap_or_else(|| format!("{}:{number}", self.file_name));
        let builder = Transaction::builder(id)
            .payload(line.to_vec())
            .meta(meta::PATH, self.shown_path.as_str())
            .meta(meta::LINE, number.to_string());
        let trace = self
            .trace_field
            .as_deref()
            .and_then(|field| id_from_field(line, field));
        match trace {
            Some(parent) => builder.meta(ergon_core::transaction::meta::TRACEPARENT, parent),
            None => builder,
        }
        .build()
    }

    /// The input file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// The value of the top-level `field` of a JSON object line, when it is a string or an
/// integer; the rest of the line is skipped without being built.
pub(crate) fn id_from_field(line: &[u8], field: &str) -> Option<String> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let id = FieldOf(field).deserialize(&mut de).ok()?;
    de.end().ok()?;
    id
}

struct FieldOf<'f>(&'f str);

impl<'de> DeserializeSeed<'de> for FieldOf<'_> {
    type Value = Option<String>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldOf<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut id = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if id.is_none() && key == self.0 {
                id = match map.next_value::<serde_json::Value>()? {
                    serde_json::Value::String(s) => Some(s),
                    serde_json::Value::Number(n) if !n.is_f64() => Some(n.to_string()),
                    _ => None,
                };
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_a_field() {
        let id = |line: &str| id_from_field(line.as_bytes(), "id");
        assert_eq!(
            id(r#"{"x":[1,{"id":"no"}],"id":"o-1"}"#).as_deref(),
            Some("o-1")
        );
        assert_eq!(id(r#"{"id":42}"#).as_deref(), Some("42"));
        assert_eq!(id(r#"{"id":-7}"#).as_deref(), Some("-7"));
        assert_eq!(id(r#"{"id":1.5}"#), None);
        assert_eq!(id(r#"{"id":null}"#), None);
        assert_eq!(id(r#"{"other":1}"#), None);
        assert_eq!(id(r#"["id"]"#), None);
        assert_eq!(id(r#"{"id":"o-1""#), None);
        assert_eq!(id(r#"{"id":"o-1"} trailing"#), None);
    }
}
