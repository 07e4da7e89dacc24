//! The workflow calls a task makes through its [`Context`]: spawn children into other
//! tasks, park a continuation until they are done (no worker slot held), wait for them
//! inside a step (slot held, timeout required), cancel the ones still queued.
//!
//! Every call goes through the task's journal (`[journal]`), which records children and
//! waits durably and decides each wait once, in the commit that completes its last
//! member. Without a journal these calls fail with a non-retryable error naming the
//! task. See `examples/fan_out`, `examples/saga`, `examples/scatter_gather`.
//!
//! ```no_run
//! # use std::time::Duration;
//! # use ergon_core::{Context, TaskError, Transaction};
//! # async fn split(cx: &Context, tx: &Transaction) -> Result<(), TaskError> {
//! // Deterministic child ids: a parent that runs again spawns nothing twice.
//! let children = (0..3).map(|n| tx.child(format!("{}/item/{n}", tx.id()), "{}").build());
//! let members = cx.spawn_all("process_item", children.collect()).await?;
//! // Park the fan-in: `fan_in` receives every member's status and output once all are done.
//! cx.when_all(tx, members).timeout(Duration::from_secs(300)).then("fan_in").await
//! # }
//! ```

mod run;

use std::sync::Arc;
use std::time::Duration;

use crate::context::Context;
use crate::error::TaskError;
use crate::journal::{
    Counts, Journal, Member, MemberState, Park, Quorum, WaitOutcome, Waited, deadline_in,
};
use crate::transaction::Transaction;

impl Context {
    /// The journal, or an error saying that `call` needs one.
    pub(crate) fn journal_for(&self, call: &str) -> Result<&Arc<dyn Journal>, TaskError> {
        self.journal().ok_or_else(|| {
            TaskError::system(format!(
                "task {} calls `{call}`, which needs a `[journal]` in the config",
                self.task_name()
            ))
            .non_retryable()
        })
    }

    /// Sends `child` to task `target`'s input, recorded in the journal as a child of its
    /// parent (build it with [`Transaction::child`]). Spawning an id the journal knows
    /// already does nothing, so use deterministic ids. Returns the member to wait for.
    ///
    /// # Errors
    ///
    /// No journal, `target` is not a task the journal can hand transactions to, or the
    /// journal cannot commit.
    pub async fn spawn(&self, target: &str, child: Transaction) -> Result<Member, TaskError> {
        let member = Member::new(target, child.id());
        self.spawn_all(target, vec![child]).await?;
        Ok(member)
    }

    /// [`spawn`](Self::spawn) for many children, in one commit. Children carry the
    /// task's `produces` tags ([`Context::produces`]).
    ///
    /// # Errors
    ///
    /// See [`spawn`](Self::spawn).
    pub async fn spawn_all(
        &self,
        target: &str,
        children: Vec<Transaction>,
    ) -> Result<Vec<Member>, TaskError> {
        let journal = self.journal_for("spawn")?;
        let children = self.tagged(&children).unwrap_or(children);
        let members = children
            .iter()
            .map(|child| Member::new(target, child.id()))
            .collect();
        journal.spawn(self.task_name(), target, children).await?;
        Ok(members)
    }

    /// Parks a continuation of `owner` until every one of `members` is terminal: see
    /// [`ParkBuilder`].
    pub fn when_all(
        &self,
        owner: &Transaction,
        members: impl IntoIterator<Item = Member>,
    ) -> ParkBuilder<'_> {
        ParkBuilder::new(self, owner, members, Quorum::All)
    }

    /// Parks a continuation of `owner` until one of `members` is terminal.
    pub fn when_any(
        &self,
        owner: &Transaction,
        members: impl IntoIterator<Item = Member>,
    ) -> ParkBuilder<'_> {
        ParkBuilder::new(self, owner, members, Quorum::Any)
    }

    /// Parks a continuation of `owner` until `n` of `members` are terminal.
    pub fn when_at_least(
        &self,
        n: u32,
        owner: &Transaction,
        members: impl IntoIterator<Item = Member>,
    ) -> ParkBuilder<'_> {
        ParkBuilder::new(self, owner, members, Quorum::AtLeast(n))
    }

    /// Waits in this step, holding its worker slot, until every one of `members` is
    /// terminal, or for `timeout` (then the result says [`WaitOutcome::TimedOut`] and lists
    /// what completed). Prefer [`when_all`](Self::when_all), which holds nothing.
    ///
    /// # Errors
    ///
    /// No journal, or it cannot be read.
    pub async fn wait_for_all(
        &self,
        members: &[Member],
        timeout: Duration,
    ) -> Result<Waited, TaskError> {
        self.wait_for(members, Quorum::All, Counts::Terminal, timeout)
            .await
    }

    /// Waits in this step until one of `members` is terminal, or for `timeout`.
    ///
    /// # Errors
    ///
    /// No journal, or it cannot be read.
    pub async fn wait_for_any(
        &self,
        members: &[Member],
        timeout: Duration,
    ) -> Result<Waited, TaskError> {
        self.wait_for(members, Quorum::Any, Counts::Terminal, timeout)
            .await
    }

    /// Waits in this step until `members` meet `quorum` counting `counts`, or for
    /// `timeout`.
    ///
    /// # Errors
    ///
    /// No journal, or it cannot be read.
    pub async fn wait_for(
        &self,
        members: &[Member],
        quorum: Quorum,
        counts: Counts,
        timeout: Duration,
    ) -> Result<Waited, TaskError> {
        let journal = self.journal_for("wait_for")?;
        journal.wait(members, quorum, counts, timeout).await
    }

    /// Spawns `child` into `target` and waits for it in this step (a saga's step). After a
    /// crash the parent runs again: the spawn is skipped (same id) and the wait returns the
    /// journaled result at once.
    ///
    /// # Errors
    ///
    /// Those of [`spawn`](Self::spawn); a `timeout` error when the child is not terminal
    /// within `timeout`.
    pub async fn spawn_and_wait(
        &self,
        target: &str,
        child: Transaction,
        timeout: Duration,
    ) -> Result<MemberState, TaskError> {
        let member = self.spawn(target, child).await?;
        let waited = self
            .wait_for_all(std::slice::from_ref(&member), timeout)
            .await?;
        match (waited.outcome, waited.members.into_iter().next()) {
            (WaitOutcome::Satisfied, Some(state)) => Ok(state),
            _ => Err(TaskError::timeout(timeout)),
        }
    }

    /// Cancels the children of `parent` that are still queued: they are marked
    /// `cancelled` and never run (children already running finish). Returns how many.
    ///
    /// # Errors
    ///
    /// No journal, or it cannot commit.
    pub async fn cancel_children(&self, parent: &Transaction) -> Result<usize, TaskError> {
        let journal = self.journal_for("cancel_children")?;
        journal.cancel_children(parent.id()).await
    }
}

/// A parked continuation being set up: `cx.when_all(tx, members).timeout(..).then("task")`.
///
/// Once the members meet the quorum (or the timeout passes, or the quorum can no longer
/// be met), the journal sends task `then` one transaction, exactly once, with payload
/// `{"previous_task_id", "previous_task", "outcome", "total", "statuses": {"succeeded": n,
/// …}, "members": [{"task", "id", "status", "output", "error"}…]}` (above 1,000 members,
/// those that succeeded without an output are counted, not listed). Nothing holds a worker meanwhile, and the wait survives
/// restarts: its deadline is stored, so a timeout fires after a restart too.
#[must_use = "a wait is registered by `.then(task).await`"]
pub struct ParkBuilder<'a> {
    cx: &'a Context,
    owner: Transaction,
    members: Vec<Member>,
    quorum: Quorum,
    counts: Counts,
    timeout: Option<Duration>,
    key: Option<String>,
}

impl<'a> ParkBuilder<'a> {
    fn new(
        cx: &'a Context,
        owner: &Transaction,
        members: impl IntoIterator<Item = Member>,
        quorum: Quorum,
    ) -> Self {
        Self {
            cx,
            owner: owner.clone(),
            members: members.into_iter().collect(),
            quorum,
            counts: Counts::Terminal,
            timeout: None,
            key: None,
        }
    }

    /// Decides the wait as timed out this long after it is registered.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Counts only members ending in these statuses (default: every terminal member).
    pub fn counting(mut self, counts: Counts) -> Self {
        self.counts = counts;
        self
    }

    /// Names the wait (and its continuation's id). Default:
    /// `{owner id}/{owner task}/then/{task}`, so one transaction parks one wait per
    /// continuation task, however often it runs.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Registers the wait with `task` as its continuation.
    ///
    /// # Errors
    ///
    /// No journal, `task` is not a task the journal can hand transactions to, or the
    /// journal cannot commit.
    pub async fn then(self, task: &str) -> Result<(), TaskError> {
        let journal = self.cx.journal_for("when_all")?;
        let owner_task = self.cx.task_name().to_owned();
        let key = self
            .key
            .unwrap_or_else(|| format!("{}/{owner_task}/then/{task}", self.owner.id()));
        let deadline_ms = self.timeout.map(deadline_in);
        journal
            .park(Park {
                owner_task,
                owner: self.owner,
                key,
                members: self.members,
                quorum: self.quorum,
                counts: self.counts,
                deadline_ms,
                then: task.to_owned(),
            })
            .await
    }
}
