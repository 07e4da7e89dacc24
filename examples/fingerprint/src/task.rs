//! The `fingerprint` task: a blocking hybrid that reads a record with several documents and
//! emits one fingerprint record (a stretched SHA-256 per document) to the output.
//!
//! Why blocking: each record costs milliseconds of pure CPU, which on the async runtime
//! would stall every other transaction of the worker. As a blocking task it runs on its
//! own `loop.concurrency` threads. Why rayon inside: the documents of one record are
//! hashed in parallel (`par_iter`), so a big record finishes sooner even when few records
//! are in flight; when many are, rayon's pool and the task's threads simply share the cores.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use ergon_core::{BlockingHybrid, Context, TaskError, Transaction};

use crate::digest::stretched_sha256;

/// `[tasks.NAME.settings]` of the task.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// SHA-256 rounds per document (>= 1): the cost knob.
    rounds: u32,
}

/// One input record.
#[derive(Debug, Deserialize)]
struct Record {
    id: String,
    documents: Vec<String>,
}

/// One output record: what was fingerprinted and the digests, in document order.
#[derive(Debug, Serialize)]
struct Fingerprints<'a> {
    id: &'a str,
    rounds: u32,
    digests: Vec<String>,
}

/// The task: settings are read once per worker.
pub struct Fingerprint {
    rounds: u32,
}

impl Fingerprint {
    /// Builds the task from its settings.
    ///
    /// # Errors
    ///
    /// Missing or invalid settings (`rounds` must be at least 1).
    pub fn from_context(cx: &Context) -> Result<Self, TaskError> {
        let settings: Settings = cx.settings()?;
        if settings.rounds == 0 {
            return Err(TaskError::business(format!(
                "tasks.{}.settings.rounds: must be at least 1",
                cx.task_name()
            )));
        }
        Ok(Self {
            rounds: settings.rounds,
        })
    }
}

impl BlockingHybrid for Fingerprint {
    fn process_transaction(
        &self,
        _cx: &Context,
        tx: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError> {
        let record: Record = tx.json()?;
        if record.documents.is_empty() {
            return Err(TaskError::business(format!(
                "record {} has no documents to fingerprint",
                record.id
            )));
        }
        let digests = record
            .documents
            .par_iter()
            .map(|document| stretched_sha256(document.as_bytes(), self.rounds))
            .collect();
        let out = Fingerprints {
            id: &record.id,
            rounds: self.rounds,
            digests,
        };
        Ok(vec![
            tx.child(format!("{}/fingerprint", record.id), "")
                .json(&out)?
                .build(),
        ])
    }
}
