//! Queue administration: what `ergon-runner queue stats | dead-letters | requeue-dead`
//! asks of a connector whose transport keeps dead letters.
//!
//! A connector kind that keeps failed transactions aside (a dead-letter table, queue or
//! stream) answers [`MakeConnector::admin`](crate::config::MakeConnector::admin) with a
//! [`QueueAdmin`]; the `queue` commands then work on it whatever its transport, without
//! consuming anything from its input.
//!
//! Every transport writes the same failure object next to the original bytes
//! ([`Failure::to_json`]), so the dead letters of a local queue, a PostgreSQL table and a
//! Redis stream read the same.

use async_trait::async_trait;

use crate::connector::Failure;
use crate::error::TaskError;

/// What a queue holds now, as named counts in the transport's own terms.
///
/// # Examples
///
/// ```
/// use ergon_core::queue_admin::QueueStats;
///
/// let stats = QueueStats::new("orders").count("ready", 12).count("dead", 1);
/// assert_eq!(stats.to_string(), "queue=orders ready=12 dead=1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    /// The transport's name of the queue (a queue, a table, a stream).
    pub queue: String,
    /// Counts in the order they are shown (`ready`, `in_flight`, `dead`, ...).
    pub counts: Vec<(&'static str, u64)>,
}

impl QueueStats {
    /// No counts yet for `queue`.
    pub fn new(queue: impl Into<String>) -> Self {
        Self {
            queue: queue.into(),
            counts: Vec::new(),
        }
    }

    /// Adds a count.
    #[must_use]
    pub fn count(mut self, name: &'static str, value: u64) -> Self {
        self.counts.push((name, value));
        self
    }
}

/// `queue=NAME name=value ...`, as `queue stats` prints it.
impl std::fmt::Display for QueueStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "queue={}", self.queue)?;
        for (name, value) in &self.counts {
            write!(f, " {name}={value}")?;
        }
        Ok(())
    }
}

/// One dead letter: the original bytes and why they were set aside.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The transaction's id.
    pub id: String,
    /// Deliveries it had when it was dead-lettered.
    pub deliveries: u32,
    /// The failure as stored ([`Failure::to_json`]), `None` if the transport kept none.
    pub failure: Option<serde_json::Value>,
    /// When it was dead-lettered (milliseconds since the Unix epoch), if known.
    pub failed_at_ms: Option<i64>,
    /// The payload, byte for byte as it was delivered.
    pub payload: Vec<u8>,
}

/// The administration of one connector's queue and its dead letters.
///
/// Implementations read and move what the transport holds; none of them delivers a
/// transaction to a task.
#[async_trait]
pub trait QueueAdmin: Send + Sync + 'static {
    /// What the queue and its dead letters hold now.
    async fn stats(&self) -> Result<QueueStats, TaskError>;

    /// The dead letters, oldest first, at most `limit`, left where they are.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, TaskError>;

    /// Puts every dead letter back at the end of the queue (delivery count reset); returns
    /// how many were moved.
    async fn requeue_dead(&self) -> Result<u64, TaskError>;
}

impl Failure {
    /// The failure as every dead-letter store records it:
    /// `{"task", "step", "category", "error", "attempts"}`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ergon_core::{Category, Failure};
    ///
    /// let failure = Failure {
    ///     task: "orders".into(),
    ///     step: "process",
    ///     category: Category::Business,
    ///     message: "no such customer".into(),
    ///     attempts: 1,
    /// };
    /// assert_eq!(failure.to_json()["error"], "no such customer");
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "task": &*self.task,
            "step": self.step,
            "category": self.category.as_str(),
            "error": self.message,
            "attempts": self.attempts,
        })
    }
}
