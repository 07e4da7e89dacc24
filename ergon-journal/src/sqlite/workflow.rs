//! The journal's state transitions, each run inside the writer's transaction, so that
//! what a transition decides and what it emits are one commit:
//!
//! * a **completion** makes its node terminal (once: the first terminal record stands),
//!   sends the task's `on_complete` continuation, and flips the node in every wait that
//!   waits for it — a wait whose quorum is met, or can no longer be met, fires;
//! * a **spawn** records queued children and appends them to their task's queue;
//! * a **park** registers a wait, counting members that are terminal already (it may
//!   fire at once: every child done before the wait, or zero children);
//! * a **cancellation** withdraws a parent's queued children and flips them cancelled;
//! * a **deadline** fires the waits whose time has come, as timed out, cuts the
//!   fan-in groups whose oldest item waited its timeout, and times DAG runs out;
//! * a **run** starts, is extended, and advances when its nodes complete
//!   (`super::run`);
//! * a terminal node of a task a tagged fan-in collects adds its items, and batches are
//!   cut and queued to the consumer (`super::fan_in`).
//!
//! Members flip `pending → status` once (`WHERE state = 'pending'`) and a wait fires once
//! (`WHERE fired_at IS NULL`): a duplicate completion changes nothing, and nothing is
//! decided by a counter that duplicates could push past its target. A wait's counters
//! take the flips of a whole commit at once ([`Transition::decide`], called once the
//! commit's requests are applied): a fan-in of 100,000 children updates its wait once per
//! commit, not once per child. Emitting writes the
//! target's node as `queued` and its row into the target's local queue in the same
//! commit; a node that exists already is not emitted again.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::LazyLock;

use ergon_connectors::local::{self, AcksIn, Lease, NewRow, metadata_json};
use ergon_core::Transaction;
use ergon_core::journal::{Completion, Counts, Park, WaitOutcome};
use rusqlite::{CachedStatement, Connection, OptionalExtension, params};

use crate::events::RunSettings;
use crate::fan_in::{Groups, Lineage};
use crate::handover::{self, Decided, Edge, LISTED};
use crate::metrics::JournalMetrics;
use crate::routes::Routes;
use crate::run::RunEvent;
use crate::tables::{COMPLETION_COLUMNS, COMPLETION_CONFLICT};

/// One writer transaction's view: the connection inside `BEGIN IMMEDIATE`, the routes,
/// the output cap, the commit's clock, and the members flipped so far, by wait.
pub(super) struct Transition<'a> {
    pub db: &'a Connection,
    pub routes: &'a Routes,
    pub max_output: usize,
    pub now: i64,
    pub flipped: RefCell<BTreeMap<i64, Flipped>>,
    /// Whether any wait member is pending in this commit (`None` until asked): when none
    /// is, a completion has no membership to flip.
    pub members_pending: Cell<Option<bool>>,
    /// The fan-in groups touched so far, cut once the commit's requests are applied
    /// ([`Transition::cut_batches`]).
    pub groups: RefCell<Groups>,
    pub metrics: &'a JournalMetrics,
    /// Expanders and limits of DAG runs.
    pub runs: &'a RunSettings,
    /// The run and node transitions of this commit, published once it is durable.
    pub events: RefCell<Vec<RunEvent>>,
    /// The statement recording completions, held for the whole commit: taking it from
    /// the connection's cache would hash its 700-byte text for every completion.
    pub completing: RefCell<Option<CachedStatement<'a>>>,
    /// The acks of deliveries completed in this commit (local queues in this file).
    pub acks: RefCell<AcksIn<'a>>,
}

/// Members of one wait flipped in this commit, by how they ended.
#[derive(Debug, Default)]
pub(super) struct Flipped {
    succeeded: u32,
    /// Failed or cancelled.
    failed: u32,
}

/// Inserts or completes a node; the update applies only to a node not yet terminal.
static COMPLETE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO ergon_node ({COMPLETION_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         {COMPLETION_CONFLICT}"
    )
});

impl Transition<'_> {
    /// Records `c`; when it made the node terminal, sends its continuation and flips the
    /// waits it is a member of. With the `lease` of its delivery (a local queue in this
    /// file), acks it in the same commit: returns 1 if it did (the row was still under
    /// that lease), else 0.
    pub fn complete(&self, c: &Completion, lease: Option<Lease>) -> rusqlite::Result<usize> {
        let acked = match lease {
            Some(lease) => usize::from(self.acks.borrow_mut().ack(
                self.db,
                lease.seq,
                lease.token,
            )?),
            None => 0,
        };
        let t = &c.transaction;
        let (status, failure) = handover::status_of(&c.settlement);
        let output = handover::capped_output(c, self.max_output);
        let mut completing = self.completing.borrow_mut();
        let record = match &mut *completing {
            Some(held) => held,
            None => completing.insert(self.db.prepare_cached(&COMPLETE)?),
        };
        let changed = record.execute(params![
            t.id(),
            &*c.task,
            t.parent_id(),
            t.root_id(),
            handover::tags(t),
            status,
            c.settlement.as_str(),
            c.attempts,
            t.deliveries(),
            c.children,
            failure.map(|f| f.step),
            failure.map(|f| f.category.as_str()),
            failure.map(|f| f.message.as_str()),
            output,
            handover::trace_id(t),
            c.started_at_ms,
            c.finished_at_ms,
        ])?;
        drop(completing);
        if changed == 0 {
            return Ok(acked);
        }
        for on_complete in self.routes.continuations_of(&c.task) {
            if on_complete.when.matches(failure.is_none()) {
                let next = handover::continuation(c, &on_complete.task, output);
                self.emit(&on_complete.task, &next, Edge::Then)?;
            }
        }
        self.flip(&c.task, t.id(), status, output.is_some())?;
        self.fan_in(&c.task, Lineage::of(t), status, c.children)?;
        self.advance_run(c, status, output)?;
        Ok(acked)
    }

    /// Records `children` as queued children and appends the new ones to `target`'s
    /// queue; returns how many were new.
    pub fn spawn(&self, target: &str, children: &[Transaction]) -> rusqlite::Result<usize> {
        let mut new = 0;
        for child in children {
            if self.emit(target, child, Edge::Spawn)? {
                new += 1;
            }
        }
        Ok(new)
    }

    /// Registers `park` (unless registered already) and decides it at once when its
    /// members already allow.
    pub fn park(&self, park: &Park) -> rusqlite::Result<()> {
        let wait_id: Option<i64> = self
            .db
            .prepare_cached(
                "INSERT INTO ergon_wait (key, owner_task, owner_id, owner_metadata, counts,
                     needed, total, done, counted, deadline_ms, then_task, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, 0, 0, ?6, ?7, ?8)
                 ON CONFLICT (key) DO NOTHING RETURNING wait_id",
            )?
            .query_row(
                params![
                    park.key,
                    park.owner_task,
                    park.owner.id(),
                    metadata_json(park.owner.metadata()),
                    park.counts.as_str(),
                    park.deadline_ms,
                    park.then,
                    self.now,
                ],
                |row| row.get(0),
            )
            .optional()?;
        let Some(wait_id) = wait_id else {
            return Ok(());
        };
        // A member may be terminal already (it completed before the wait was parked).
        let mut state_of = self.db.prepare_cached(
            "SELECT status, output IS NOT NULL FROM ergon_node WHERE tx_id = ?1 AND task = ?2
                 AND status IN ('succeeded', 'failed', 'cancelled')",
        )?;
        let mut insert = self.db.prepare_cached(
            "INSERT INTO ergon_wait_member (wait_id, tx_id, task, position, state, with_output)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        )?;
        for (position, member) in park.members.iter().enumerate() {
            let terminal: Option<(String, bool)> = state_of
                .query_row(params![member.id, member.task], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            let (state, with_output) = terminal.unwrap_or_else(|| ("pending".to_owned(), false));
            insert.execute(params![
                wait_id,
                member.id,
                member.task,
                position as i64,
                state,
                with_output
            ])?;
        }
        self.members_pending.set(None);
        let (total, done, succeeded, counted) = self.tally(wait_id, park.counts)?;
        let needed = park.quorum.needed(total);
        self.db
            .prepare_cached(
                "UPDATE ergon_wait SET needed = ?2, total = ?3, done = ?4, succeeded = ?5,
                     counted = ?6
                 WHERE wait_id = ?1",
            )?
            .execute(params![wait_id, needed, total, done, succeeded, counted])?;
        match WaitOutcome::decide(total, done, counted, needed) {
            Some(outcome) => self.fire(wait_id, outcome),
            None => Ok(()),
        }
    }

    /// Withdraws the queued children of `parent` from their queues and flips them
    /// cancelled; returns how many. A child a worker holds is left to finish.
    pub fn cancel_children(&self, parent: &str) -> rusqlite::Result<usize> {
        let queued: Vec<(String, String)> = self
            .db
            .prepare_cached(
                "SELECT tx_id, task FROM ergon_node WHERE parent_id = ?1 AND status = 'queued'",
            )?
            .query_map([parent], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut cancelled = 0;
        for (id, task) in queued {
            cancelled += usize::from(self.cancel_queued(&task, &id)?);
        }
        Ok(cancelled)
    }

    /// Withdraws transaction `id` from task `task`'s queue, if it is still queued there,
    /// and flips it cancelled (in its waits and fan-ins too); returns whether it did.
    pub(super) fn cancel_queued(&self, task: &str, id: &str) -> rusqlite::Result<bool> {
        let node: Option<(Option<String>, String, String)> = self
            .db
            .prepare_cached(
                "SELECT parent_id, root_id, tags FROM ergon_node
                 WHERE tx_id = ?1 AND task = ?2 AND status = 'queued'",
            )?
            .query_row(params![id, task], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?;
        let (Some((parent_id, root_id, tags)), Some(queue)) = (node, self.routes.queue_of(task))
        else {
            return Ok(false);
        };
        if !local::withdraw(self.db, queue, id)? {
            return Ok(false);
        }
        self.db
            .prepare_cached(
                "UPDATE ergon_node SET status = 'cancelled', settlement = 'drop',
                     finished_at = ?3 WHERE tx_id = ?1 AND task = ?2",
            )?
            .execute(params![id, task, self.now])?;
        self.flip(task, id, "cancelled", false)?;
        let node = Lineage {
            id,
            parent_id: parent_id.as_deref(),
            root_id: &root_id,
            tags: &tags,
        };
        self.fan_in(task, node, "cancelled", 0)?;
        Ok(true)
    }

    /// Fires, as timed out, every wait whose deadline has passed; returns how many.
    pub fn fire_due(&self) -> rusqlite::Result<usize> {
        let due: Vec<i64> = self
            .db
            .prepare_cached(
                "SELECT wait_id FROM ergon_wait
                 WHERE fired_at IS NULL AND deadline_ms IS NOT NULL AND deadline_ms <= ?1",
            )?
            .query_map([self.now], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for wait_id in &due {
            self.fire(*wait_id, WaitOutcome::TimedOut)?;
        }
        Ok(due.len())
    }

    /// Flips the pending memberships of (`task`, `id`) to `status`; the waits they
    /// belong to are counted and decided once per commit, by [`Transition::decide`].
    ///
    /// Most completions are members of no wait: whether any member is pending at all is
    /// asked once per commit (and again after a park), and while none is, nothing is
    /// looked up per completion.
    fn flip(&self, task: &str, id: &str, status: &str, with_output: bool) -> rusqlite::Result<()> {
        let pending = match self.members_pending.get() {
            Some(pending) => pending,
            None => {
                let pending = self
                    .db
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM ergon_wait_member WHERE state = 'pending')",
                    )?
                    .query_row([], |row| row.get(0))?;
                self.members_pending.set(Some(pending));
                pending
            }
        };
        if !pending {
            return Ok(());
        }
        let waits: Vec<i64> = self
            .db
            .prepare_cached(
                "SELECT wait_id FROM ergon_wait_member
                 WHERE tx_id = ?1 AND task = ?2 AND state = 'pending'",
            )?
            .query_map(params![id, task], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let mut flip = self.db.prepare_cached(
            "UPDATE ergon_wait_member SET state = ?4, with_output = ?5
             WHERE wait_id = ?1 AND tx_id = ?2 AND task = ?3 AND state = 'pending'",
        )?;
        let mut flipped = self.flipped.borrow_mut();
        for wait_id in waits {
            if flip.execute(params![wait_id, id, task, status, with_output])? == 0 {
                continue;
            }
            let delta = flipped.entry(wait_id).or_default();
            if status == "succeeded" {
                delta.succeeded += 1;
            } else {
                delta.failed += 1;
            }
        }
        Ok(())
    }

    /// Counts the members flipped in this commit into their waits, and fires the waits
    /// that decides: one update per wait, however many of its members completed.
    pub fn decide(&self) -> rusqlite::Result<()> {
        let flipped = std::mem::take(&mut *self.flipped.borrow_mut());
        for (wait_id, delta) in flipped {
            let open: Option<(u32, u32, u32, u32)> = self
                .db
                .prepare_cached(
                    "UPDATE ergon_wait SET done = done + ?2 + ?3, succeeded = succeeded + ?2,
                         counted = counted + CASE counts WHEN 'terminal' THEN ?2 + ?3
                             WHEN 'succeeded' THEN ?2 ELSE ?3 END
                     WHERE wait_id = ?1 AND fired_at IS NULL
                     RETURNING total, done, counted, needed",
                )?
                .query_row(params![wait_id, delta.succeeded, delta.failed], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })
                .optional()?;
            let Some((total, done, counted, needed)) = open else {
                continue;
            };
            if let Some(outcome) = WaitOutcome::decide(total, done, counted, needed) {
                self.fire(wait_id, outcome)?;
            }
        }
        Ok(())
    }

    /// Members, terminal members, succeeded members and counted members of a wait.
    fn tally(&self, wait_id: i64, counts: Counts) -> rusqlite::Result<(u32, u32, u32, u32)> {
        let mut states = self
            .db
            .prepare_cached("SELECT state FROM ergon_wait_member WHERE wait_id = ?1")?;
        let mut rows = states.query([wait_id])?;
        let (mut total, mut done, mut succeeded, mut counted) = (0, 0, 0, 0);
        while let Some(row) = rows.next()? {
            let state: String = row.get(0)?;
            total += 1;
            if state != "pending" {
                done += 1;
                succeeded += u32::from(state == "succeeded");
                counted += u32::from(counts.counts(&state));
            }
        }
        Ok((total, done, succeeded, counted))
    }

    /// Decides wait `wait_id` (once) and sends its continuation.
    fn fire(&self, wait_id: i64, outcome: WaitOutcome) -> rusqlite::Result<()> {
        type Fired = (String, String, String, String, String, (u64, u64, u64, i64));
        let fired: Option<Fired> = self
            .db
            .prepare_cached(
                "UPDATE ergon_wait SET fired_at = ?2, outcome = ?3
                 WHERE wait_id = ?1 AND fired_at IS NULL
                 RETURNING key, owner_task, owner_id, owner_metadata, then_task, total, done,
                     succeeded, created_at",
            )?
            .query_row(params![wait_id, self.now, outcome.as_str()], |row| {
                let counts = (row.get(5)?, row.get(6)?, row.get(7)?, row.get(8)?);
                let texts = (
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                );
                Ok((texts.0, texts.1, texts.2, texts.3, texts.4, counts))
            })
            .optional()?;
        let Some((key, owner_task, owner_id, owner_metadata, then, counts)) = fired else {
            return Ok(());
        };
        let (total, done, succeeded, created_at) = counts;
        self.metrics.count_decided(outcome, self.now - created_at);
        let decided = Decided {
            key,
            owner_task,
            owner_id,
            owner_metadata,
            outcome,
            total,
            done,
            succeeded,
            members: super::reader::wait_members(self.db, wait_id, total <= LISTED)?,
        };
        self.emit(&then, &decided.continuation(), Edge::Then)?;
        Ok(())
    }

    /// Records `tx` as queued in `task`, reached by `edge`, and appends it to that task's
    /// queue, unless the journal knows it already; returns whether it was new.
    pub(super) fn emit(&self, task: &str, tx: &Transaction, edge: Edge) -> rusqlite::Result<bool> {
        let Some(queue) = self.routes.queue_of(task) else {
            // The plan and the calls check targets before anything is written.
            tracing::error!(
                task,
                message_id = tx.id(),
                "No queue to hand this transaction to; dropped"
            );
            return Ok(false);
        };
        let inserted = self
            .db
            .prepare_cached(
                "INSERT INTO ergon_node (tx_id, task, parent_id, root_id, tags, status, settlement,
                     attempts, deliveries, children, trace_id, started_at, finished_at, edge)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'queued', '', 0, 0, 0, ?6, ?7, ?7, ?8)
                 ON CONFLICT (tx_id, task) DO NOTHING",
            )?
            .execute(params![
                tx.id(),
                task,
                tx.parent_id(),
                tx.root_id(),
                handover::tags(tx),
                handover::trace_id(tx),
                self.now,
                edge.as_str(),
            ])?;
        if inserted == 0 {
            return Ok(false);
        }
        let row = NewRow {
            id: tx.id(),
            payload: tx.payload(),
            metadata: metadata_json(tx.metadata()),
        };
        local::append(self.db, queue, &[row])?;
        Ok(true)
    }
}

/// The earliest deadline of a wait not yet decided, of the oldest unbatched item in a
/// group of a fan-in in `routes`, or of a running DAG run.
pub(super) fn next_deadline(db: &Connection, routes: &Routes) -> rusqlite::Result<Option<i64>> {
    db.prepare_cached(
        "SELECT MIN(at) FROM (
             SELECT MIN(deadline_ms) AS at FROM ergon_wait
                 WHERE fired_at IS NULL AND deadline_ms IS NOT NULL
             UNION ALL
             SELECT MIN(deadline_ms) FROM ergon_fanin_group WHERE deadline_ms IS NOT NULL
                 AND consumer IN (SELECT value FROM json_each(?1))
             UNION ALL
             SELECT MIN(deadline_ms) FROM ergon_run
                 WHERE status = 'running' AND deadline_ms IS NOT NULL)",
    )?
    .query_row([routes.consumers_json()], |row| row.get(0))
}
