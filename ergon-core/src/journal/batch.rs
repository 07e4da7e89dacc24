//! Tagged fan-in batches: what a consumer with `consumes = { ... }` receives.
//!
//! The journal collects the results of terminal transactions of the `from` tasks that
//! carry a consumed tag, grouped per tag and per root, parent or the whole tag, and cuts
//! them into batches: one transaction each, whose payload is the list of results
//! ([`ConsumedResult`]) and whose metadata says which group it belongs to, its place in it
//! and why it was cut ([`Batch`]). A task reads them with
//! [`Transaction::consumed_results`] and [`Transaction::batch`].
//!
//! ```
//! use ergon_core::Transaction;
//! use ergon_core::journal::CutReason;
//!
//! // What the journal delivers (built here by hand):
//! let batch = Transaction::builder("split-1/aggregate/batch/items/0")
//!     .payload(r#"[{"task":"work","id":"item-1","status":"succeeded","output":{"n":2}},
//!                 {"task":"work","id":"item-2","status":"failed","error":"boom"}]"#)
//!     .meta("ergon.batch.tag", "items")
//!     .meta("ergon.batch.group", "split-1")
//!     .meta("ergon.batch.seq", "0")
//!     .meta("ergon.batch.reason", "complete")
//!     .meta("ergon.batch.size", "2")
//!     .meta("ergon.batch.last", "true")
//!     .build();
//! let results = batch.consumed_results()?;
//! assert_eq!(results.len(), 2);
//! assert_eq!(results[0].output_as::<serde_json::Value>()?.unwrap()["n"], 2);
//! let info = batch.batch().unwrap();
//! assert_eq!((info.seq, info.reason, info.last), (0, CutReason::Complete, true));
//! # Ok::<(), ergon_core::TaskError>(())
//! ```

use serde::{Deserialize, Serialize};

use super::MemberState;
use crate::error::TaskError;
use crate::transaction::Transaction;

/// The metadata keys of a batch transaction.
pub mod meta {
    /// The consumed tag the batch collects.
    pub const TAG: &str = "ergon.batch.tag";
    /// Its group: the root or parent transaction id (`group_by = "root" | "parent"`), or
    /// empty (`group_by = "tag"`).
    pub const GROUP: &str = "ergon.batch.group";
    /// Its place in the group, from 0.
    pub const SEQ: &str = "ergon.batch.seq";
    /// Why it was cut: `full`, `timeout`, `complete`.
    pub const REASON: &str = "ergon.batch.reason";
    /// How many results it holds.
    pub const SIZE: &str = "ergon.batch.size";
    /// `true` when it is the last batch of its group (every expected result is in).
    pub const LAST: &str = "ergon.batch.last";
}

/// Why the journal cut a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CutReason {
    /// It holds `batch_size` results.
    Full,
    /// The oldest result in it waited `timeout`: a partial batch.
    Timeout,
    /// Every result its group expects is in: the rest, as the group's last batch (empty
    /// when the results before it filled whole batches).
    Complete,
}

impl CutReason {
    /// `full`, `timeout`, `complete`.
    pub fn as_str(self) -> &'static str {
        match self {
            CutReason::Full => "full",
            CutReason::Timeout => "timeout",
            CutReason::Complete => "complete",
        }
    }

    /// The reason called `name` ([`CutReason::as_str`]).
    pub fn named(name: &str) -> Option<CutReason> {
        match name {
            "full" => Some(CutReason::Full),
            "timeout" => Some(CutReason::Timeout),
            "complete" => Some(CutReason::Complete),
            _ => None,
        }
    }
}

/// Where a batch stands in its group (the metadata of a batch transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The consumed tag.
    pub tag: String,
    /// The group: a root or parent transaction id, or empty for `group_by = "tag"`.
    pub group: String,
    /// Its place in the group, from 0.
    pub seq: u64,
    /// Why it was cut.
    pub reason: CutReason,
    /// How many results it holds.
    pub size: u64,
    /// Whether it is the last of its group.
    pub last: bool,
}

impl Batch {
    /// The metadata entries that describe this batch on its transaction.
    pub fn metadata(&self) -> [(&'static str, String); 6] {
        [
            (meta::TAG, self.tag.clone()),
            (meta::GROUP, self.group.clone()),
            (meta::SEQ, self.seq.to_string()),
            (meta::REASON, self.reason.as_str().to_owned()),
            (meta::SIZE, self.size.to_string()),
            (meta::LAST, self.last.to_string()),
        ]
    }
}

/// One result in a batch: a terminal transaction of a `from` task, as a wait sees its
/// members (task, id, status, output, error).
pub type ConsumedResult = MemberState;

impl Transaction {
    /// The results a fan-in batch holds (a consumer with `consumes`), in the order they
    /// arrived.
    ///
    /// # Errors
    ///
    /// A non-retryable business error when this is not a batch transaction or its payload
    /// does not decode.
    pub fn consumed_results(&self) -> Result<Vec<ConsumedResult>, TaskError> {
        if self.meta(meta::TAG).is_none() {
            return Err(TaskError::business(format!(
                "transaction {} is not a fan-in batch (no `{}` metadata): \
                 consumed_results is for tasks with `consumes`",
                self.id(),
                meta::TAG
            )));
        }
        self.json()
    }

    /// Where this batch stands in its group; `None` when this is not a batch transaction.
    pub fn batch(&self) -> Option<Batch> {
        let number = |key| self.meta(key).and_then(|value| value.parse().ok());
        Some(Batch {
            tag: self.meta(meta::TAG)?.to_owned(),
            group: self.meta(meta::GROUP).unwrap_or("").to_owned(),
            seq: number(meta::SEQ)?,
            reason: CutReason::named(self.meta(meta::REASON)?)?,
            size: number(meta::SIZE)?,
            last: self.meta(meta::LAST) == Some("true"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_without_batch_metadata_is_not_a_batch() {
        let tx = Transaction::new("t", "[]");
        assert!(tx.batch().is_none());
        let err = tx.consumed_results().unwrap_err();
        assert!(err.to_string().contains("not a fan-in batch"), "{err}");
    }

    #[test]
    fn batch_metadata_round_trips() {
        let batch = Batch {
            tag: "items".into(),
            group: "root-1".into(),
            seq: 7,
            reason: CutReason::Timeout,
            size: 3,
            last: false,
        };
        let tx = batch
            .metadata()
            .into_iter()
            .fold(Transaction::builder("b").payload("[]"), |b, (k, v)| {
                b.meta(k, v)
            })
            .build();
        assert_eq!(tx.batch(), Some(batch));
        assert!(tx.consumed_results().unwrap().is_empty());
    }
}
