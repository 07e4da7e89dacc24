//! A finished span as the engine records it: ids, two ticks and typed fields, with no
//! attribute list built (a message id is kept inline when short, see [`MessageId`]).
//! The exporter turns it into OpenTelemetry attributes ([`SpanRecord::attributes`]) off
//! the engine's threads.

use std::time::Duration;

use ergon_core::Category;
use ergon_core::telemetry::names;
use opentelemetry::trace::{Link, SpanId, Status};
use opentelemetry::{KeyValue, Value};

use super::clock::Tick;
use super::ids::SpanIds;
use super::message_id::MessageId;

/// A finished span.
#[derive(Clone, Debug)]
pub struct SpanRecord {
    /// Its identity.
    pub ids: SpanIds,
    /// Its parent.
    pub parent: Parent,
    /// Its name (`transaction`, `attempt`, or the step's name for a step).
    pub name: &'static str,
    /// When it started.
    pub start: Tick,
    /// When it ended.
    pub end: Tick,
    /// What it describes.
    pub fields: Fields,
    /// The category of the error that ended it, if one did.
    pub error: Option<Category>,
}

/// A span's parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parent {
    /// None: the span starts its trace.
    Root,
    /// A span of this process.
    Local(SpanId),
    /// A span of another process, named by a `traceparent`.
    Remote(SpanId),
}

impl Parent {
    /// The parent's span id ([`SpanId::INVALID`] for a root).
    pub fn span_id(self) -> SpanId {
        match self {
            Parent::Root => SpanId::INVALID,
            Parent::Local(id) | Parent::Remote(id) => id,
        }
    }

    /// Whether the parent is in another process.
    pub fn is_remote(self) -> bool {
        matches!(self, Parent::Remote(_))
    }
}

/// What a span describes, typed, so that recording it builds no attribute list.
#[derive(Clone, Debug)]
pub enum Fields {
    /// A fetched batch of `size` transactions.
    Batch {
        /// Transactions in the batch.
        size: usize,
    },
    /// One transaction.
    Transaction {
        /// Its worker's loop (the loop span's id), whose attributes it shares (task,
        /// system, destination): they travel once per [`SpanBatch`](crate::SpanBatch)
        /// rather than with each transaction, so recording one touches no counter shared
        /// with the exporter's thread.
        loop_id: u64,
        /// `messaging.message.id`.
        message_id: MessageId,
        /// `messaging.operation.type`.
        operation: &'static str,
        /// `ergon.settlement`, once decided.
        settlement: Option<&'static str>,
        /// The batch it came in, when its parent is remote (boxed: rare, and spans are
        /// copied whole).
        batch: Option<Box<SpanIds>>,
    },
    /// A step under its retry policy.
    Step {
        /// `ergon.policy.max_attempts`.
        max_attempts: u32,
        /// `ergon.policy.timeout_ms`.
        timeout: Duration,
        /// For the fetch step: the transactions asked for.
        fetch_size: Option<usize>,
        /// The id of the step's only attempt, when it had one: that attempt is recorded
        /// with its step (same times, same error) and exported as a span of its own
        /// ([`SpanRecord::inline_attempt`]) — one record instead of two per step on the
        /// hot path.
        attempt: Option<SpanId>,
    },
    /// One attempt of a step.
    Attempt {
        /// `ergon.attempt`, 1-based.
        number: u32,
    },
    /// Anything else (spans made once per worker or task), as ready attributes.
    Attributes(Vec<KeyValue>),
}

impl SpanRecord {
    /// The span's attributes, with `error.type` and `ergon.error.category` when it failed;
    /// a transaction's start with `shared`, its loop's
    /// ([`SpanBatch::shared`](crate::SpanBatch::shared)).
    pub fn attributes(&self, shared: &[KeyValue]) -> Vec<KeyValue> {
        let mut attributes = match &self.fields {
            Fields::Batch { size } => vec![KeyValue::new(names::BATCH_SIZE, count(*size))],
            Fields::Transaction {
                loop_id: _,
                message_id,
                operation,
                settlement,
                batch: _,
            } => {
                let mut list = Vec::with_capacity(shared.len() + 5);
                list.extend_from_slice(shared);
                list.push(KeyValue::new(
                    names::MESSAGE_ID,
                    message_id.as_str().to_owned(),
                ));
                list.push(KeyValue::new(names::OPERATION_TYPE, *operation));
                if let Some(settlement) = settlement {
                    list.push(KeyValue::new(names::SETTLEMENT, *settlement));
                }
                list
            }
            Fields::Step {
                max_attempts,
                timeout,
                fetch_size,
                attempt: _,
            } => {
                let mut list = vec![
                    KeyValue::new(names::STEP, self.name),
                    KeyValue::new(names::MAX_ATTEMPTS, i64::from(*max_attempts)),
                    KeyValue::new(
                        names::TIMEOUT_MS,
                        i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX),
                    ),
                ];
                if let Some(size) = fetch_size {
                    list.push(KeyValue::new(names::OPERATION_TYPE, "receive"));
                    list.push(KeyValue::new(names::BATCH_SIZE, count(*size)));
                }
                list
            }
            Fields::Attempt { number } => {
                vec![KeyValue::new(names::ATTEMPT, i64::from(*number))]
            }
            Fields::Attributes(list) => list.clone(),
        };
        if let Some(category) = self.error {
            let category = Value::from(category.as_str());
            attributes.push(KeyValue::new(names::ERROR_TYPE, category.clone()));
            attributes.push(KeyValue::new(names::ERROR_CATEGORY, category));
        }
        attributes
    }

    /// The attempt recorded with this step, as a record of its own (see [`Fields::Step`]).
    pub fn inline_attempt(&self) -> Option<SpanRecord> {
        let Fields::Step {
            attempt: Some(span_id),
            ..
        } = self.fields
        else {
            return None;
        };
        Some(SpanRecord {
            ids: SpanIds {
                trace_id: self.ids.trace_id,
                span_id,
            },
            parent: Parent::Local(self.ids.span_id),
            name: "attempt",
            start: self.start,
            end: self.end,
            fields: Fields::Attempt { number: 1 },
            error: self.error,
        })
    }

    /// `Error` when an error ended the span, with its category as the description.
    pub fn status(&self) -> Status {
        match self.error {
            Some(category) => Status::error(category.as_str()),
            None => Status::Unset,
        }
    }

    /// A transaction continuing a remote trace links to the batch it came in.
    pub fn links(&self) -> Vec<Link> {
        match &self.fields {
            Fields::Transaction {
                batch: Some(batch), ..
            } => vec![Link::with_context(batch.span_context())],
            _ => Vec::new(),
        }
    }
}

/// A count as a span attribute: OpenTelemetry integers are `i64`.
pub fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
