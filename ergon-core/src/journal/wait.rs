//! What waits are made of: members, quorum, which statuses count, and what a wait ends
//! with.
//!
//! A wait is a set of members (transactions in tasks), each flipping once from pending
//! to terminal; it is decided when enough of them count (`quorum` over `counts`), when
//! that can no longer happen, or at its deadline — whichever comes first, once.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::TaskError;
use crate::transaction::Transaction;

/// A transaction in a task: what a wait waits for (what [`spawn`](crate::Context::spawn)
/// returns).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The task it runs in.
    pub task: String,
    /// The transaction id.
    pub id: String,
}

impl Member {
    /// Transaction `id` in `task`.
    pub fn new(task: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            task: task.into(),
            id: id.into(),
        }
    }
}

/// How many counted members decide a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quorum {
    /// Every member (`wait_for_all`, `when_all`): zero members decide it at once.
    All,
    /// One member (`wait_for_any`, `when_any`).
    Any,
    /// At least this many.
    AtLeast(u32),
}

impl Quorum {
    /// How many counted members it needs out of `total`.
    pub fn needed(self, total: u32) -> u32 {
        match self {
            Quorum::All => total,
            Quorum::Any => total.min(1),
            Quorum::AtLeast(n) => n,
        }
    }
}

/// Which terminal members count towards the quorum (the status filter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Counts {
    /// Every terminal member: succeeded, failed or cancelled.
    #[default]
    Terminal,
    /// Succeeded members only: a wait for all whose member failed can no longer be met,
    /// and is decided at once as [`WaitOutcome::Unsatisfiable`].
    Succeeded,
    /// Failed members only (`failed` or `cancelled`).
    Failed,
}

impl Counts {
    /// `terminal`, `succeeded`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Counts::Terminal => "terminal",
            Counts::Succeeded => "succeeded",
            Counts::Failed => "failed",
        }
    }

    /// The filter called `name` ([`Counts::as_str`]).
    pub fn named(name: &str) -> Option<Counts> {
        match name {
            "terminal" => Some(Counts::Terminal),
            "succeeded" => Some(Counts::Succeeded),
            "failed" => Some(Counts::Failed),
            _ => None,
        }
    }

    /// Whether a member that ended in `status` (`succeeded`, `failed`, `cancelled`)
    /// counts.
    pub fn counts(self, status: &str) -> bool {
        match self {
            Counts::Terminal => true,
            Counts::Succeeded => status == "succeeded",
            Counts::Failed => status != "succeeded",
        }
    }
}

/// How a wait was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitOutcome {
    /// Its quorum was met.
    Satisfied,
    /// Its deadline passed first; the members that completed are in the result.
    TimedOut,
    /// Too many members ended in a status that does not count for the quorum to be met.
    Unsatisfiable,
}

impl WaitOutcome {
    /// The decision of a wait with `total` members, `done` of them terminal and
    /// `counted` of those counting, needing `needed`: `None` while undecided.
    pub fn decide(total: u32, done: u32, counted: u32, needed: u32) -> Option<WaitOutcome> {
        if counted >= needed {
            Some(WaitOutcome::Satisfied)
        } else if counted + (total - done.min(total)) < needed {
            Some(WaitOutcome::Unsatisfiable)
        } else {
            None
        }
    }

    /// `satisfied`, `timed_out`, `unsatisfiable`.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitOutcome::Satisfied => "satisfied",
            WaitOutcome::TimedOut => "timed_out",
            WaitOutcome::Unsatisfiable => "unsatisfiable",
        }
    }
}

/// A member as a wait sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberState {
    /// The task it runs in.
    pub task: String,
    /// The transaction id.
    pub id: String,
    /// `succeeded`, `failed`, `cancelled`, or `pending` while it is not terminal.
    pub status: String,
    /// Its output, when its task records one
    /// ([`journal_output`](crate::Consumer::journal_output)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// The error of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl MemberState {
    /// Whether it succeeded.
    pub fn succeeded(&self) -> bool {
        self.status == "succeeded"
    }

    /// Its output decoded as `T`; `None` when it has none.
    ///
    /// # Errors
    ///
    /// A business error when the output does not decode as `T`.
    pub fn output_as<T: DeserializeOwned>(&self) -> Result<Option<T>, TaskError> {
        self.output
            .as_ref()
            .map(|output| {
                T::deserialize(output).map_err(|err| {
                    TaskError::business(format!(
                        "the output of {} in task {} does not decode",
                        self.id, self.task
                    ))
                    .with_source(err)
                })
            })
            .transpose()
    }
}

/// What an in-step wait returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waited {
    /// How it was decided.
    pub outcome: WaitOutcome,
    /// Every member, in the order asked.
    pub members: Vec<MemberState>,
}

/// A parked wait: registered by a task's step, decided by the journal, continued by
/// another task. It holds no worker slot, and it survives restarts (its deadline is
/// stored).
#[derive(Debug, Clone)]
pub struct Park {
    /// The task registering it.
    pub owner_task: String,
    /// The transaction registering it: the continuation is its child.
    pub owner: Transaction,
    /// Its key, unique in the journal; also the id of its continuation.
    pub key: String,
    /// What it waits for.
    pub members: Vec<Member>,
    /// How many counted members decide it.
    pub quorum: Quorum,
    /// Which members count.
    pub counts: Counts,
    /// When it is decided as timed out, in Unix milliseconds.
    pub deadline_ms: Option<i64>,
    /// The task its continuation is sent to, with payload `{"previous_task_id",
    /// "previous_task", "outcome", "total", "statuses": {"succeeded": n, …}, "members":
    /// [MemberState…]}`; above 1,000 members, those that succeeded without an output are
    /// counted in `statuses` but not listed.
    pub then: String,
}
