//! The journal's one writer: a thread that commits requests in groups, and decides the
//! waits whose deadline has come.
//!
//! Requests (completions, spawns, parked waits, cancellations) arrive on a channel; the
//! writer takes the first, then everything that queued up behind it (at most
//! [`MAX_GROUP`]), and applies them in one SQLite transaction ([`Transition`]). Under
//! load a commit covers every request that arrived during the previous one, so its cost
//! is shared without waiting on a timer; a lone request is committed at once. Each
//! sender hears back once its group is durable, and in-step waiters are woken.
//!
//! Between requests the writer sleeps until the earliest stored deadline, at most
//! [`BACKSTOP`]: another process sharing the file may have stored an earlier one, and a
//! deadline that passed while no runner was up fires at the first look (late, never
//! lost). A commit keeps the deadline it knows, made earlier by the deadlines it stores
//! itself (a parked wait's, a run's, a fan-in group's), and reads the stored ones again
//! only after deadlines fired or once per [`BACKSTOP`]: that read costs as much as a
//! group of completions (measured on `journal_cost`).

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use ergon_connectors::local::Database;
use ergon_core::journal::now_ms;
use tokio::sync::Notify;

use super::workflow::{self, Transition};
use crate::events::RunSettings;
use crate::metrics::JournalMetrics;
use crate::request::{Pending, Request, earliest};
use crate::routes::Routes;
use crate::run::RunEvent;

/// The most requests one commit takes.
pub(super) const MAX_GROUP: usize = 1_024;

/// The longest the writer sleeps without looking at the stored deadlines.
const BACKSTOP: Duration = Duration::from_secs(1);

/// How often the writer purges records older than the retention.
const PURGE_EVERY: Duration = Duration::from_secs(3_600);

/// The writer thread's state.
pub(super) struct Writer {
    pub db: Database,
    pub path: PathBuf,
    pub routes: Arc<Routes>,
    pub max_output: usize,
    pub retention: Duration,
    /// Woken after each commit: in-step waiters read their members again.
    pub committed: Arc<Notify>,
    pub metrics: Arc<JournalMetrics>,
    /// Expanders, limits and the event sink of DAG runs.
    pub runs: RunSettings,
}

impl Writer {
    /// Commits what `queue` brings until every sender is gone.
    pub fn run(mut self, queue: Receiver<Pending>) {
        let mut purged = None::<Instant>;
        let mut group = Vec::with_capacity(MAX_GROUP);
        let mut deadline = self.next_deadline();
        let mut read_at = Instant::now();
        loop {
            if !self.retention.is_zero() && purged.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                self.purge_expired();
                purged = Some(Instant::now());
            }
            let until_deadline = deadline.map(|at| {
                Duration::from_millis(u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0))
            });
            match queue.recv_timeout(until_deadline.map_or(BACKSTOP, |d| d.min(BACKSTOP))) {
                Ok(first) => group.push(first),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while group.len() < MAX_GROUP {
                match queue.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            let now = now_ms();
            let due = deadline.is_some_and(|at| at <= now);
            if group.is_empty() && !due {
                deadline = self.next_deadline();
                read_at = Instant::now();
                continue;
            }
            let mut events = Vec::new();
            let committed = self
                .commit(&group, (now, due, deadline), &mut events)
                .map_err(|err| format!("journal {}: cannot commit: {err}", self.path.display()));
            if let (Ok(_), Some(sink)) = (&committed, &self.runs.events)
                && !events.is_empty()
            {
                sink.publish(events);
            }
            for (index, pending) in group.drain(..).enumerate() {
                let reply = committed
                    .as_ref()
                    .map(|(counts, _)| counts[index])
                    .map_err(Clone::clone);
                // A sender that gave up (its worker was cut off) needs no answer.
                let _ = pending.done.send(reply);
            }
            self.committed.notify_waiters();
            match committed {
                Ok((_, next)) if read_at.elapsed() < BACKSTOP => deadline = next,
                // Another process sharing the file may have stored an earlier one.
                Ok(_) | Err(_) => {
                    deadline = self.next_deadline();
                    read_at = Instant::now();
                }
            }
        }
    }

    /// Applies `group` (and, when `due`, the deadlines that have come) in one transaction;
    /// returns each request's answer and the next deadline (`deadline`, or an earlier one
    /// this commit stored; read again after deadlines fired).
    fn commit(
        &mut self,
        group: &[Pending],
        (now, due, deadline): (i64, bool, Option<i64>),
        events: &mut Vec<RunEvent>,
    ) -> rusqlite::Result<(Vec<usize>, Option<i64>)> {
        let tx = self.db.write()?;
        let step = Transition {
            db: &tx,
            routes: &self.routes,
            max_output: self.max_output,
            now,
            flipped: RefCell::default(),
            members_pending: Cell::default(),
            groups: RefCell::default(),
            metrics: &self.metrics,
            runs: &self.runs,
            events: RefCell::default(),
            completing: RefCell::default(),
            acks: RefCell::default(),
        };
        let mut counts = Vec::with_capacity(group.len());
        let mut next = deadline;
        for pending in group {
            counts.push(match &pending.request {
                Request::Complete(completion, lease) => step.complete(completion, *lease)?,
                Request::Spawn { target, children } => step.spawn(target, children)?,
                Request::Park(park) => {
                    next = earliest(next, park.deadline_ms);
                    step.park(park).map(|()| 0)?
                }
                Request::Cancel { parent } => step.cancel_children(parent)?,
                Request::StartRun(start) => {
                    next = earliest(next, start.deadline_ms);
                    step.start_run(start)?
                }
                Request::ExtendRun { run_id, nodes } => step.extend_run(run_id, nodes)?,
            });
        }
        step.decide()?;
        if due {
            let fired = step.fire_due()?;
            if fired > 0 {
                tracing::info!(fired, "Waits past their deadline decided as timed out");
            }
            step.cut_due()?;
            let timed_out = step.time_out_runs()?;
            if timed_out > 0 {
                tracing::info!(timed_out, "Runs past their deadline timed out");
            }
        }
        let cut = step.cut_batches()?;
        next = if due {
            workflow::next_deadline(&tx, &self.routes)?
        } else {
            earliest(next, cut)
        };
        *events = step.events.take();
        drop(step);
        tx.commit()?;
        Ok((counts, next))
    }

    fn next_deadline(&self) -> Option<i64> {
        workflow::next_deadline(&self.db.read(), &self.routes).unwrap_or_else(|err| {
            tracing::warn!(journal = %self.path.display(), error = %err, "Cannot read the next wait deadline");
            Some(now_ms().saturating_add(1_000))
        })
    }

    /// Deletes records that ended more than `retention` ago (logged, never fatal: the next
    /// purge tries again).
    fn purge_expired(&self) {
        let retention_ms = i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        let before = now_ms().saturating_sub(retention_ms);
        match super::reader::purge_before(&self.db, before) {
            Ok(0) => {}
            Ok(purged) => {
                tracing::info!(journal = %self.path.display(), purged, "Purged journal records past their retention")
            }
            Err(err) => {
                tracing::warn!(journal = %self.path.display(), error = %err, "Cannot purge the journal")
            }
        }
    }
}
