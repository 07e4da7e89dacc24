//! The journal's state transitions in PostgreSQL: those of the SQLite journal
//! ([`crate::sqlite`]'s `workflow`), applied to a whole group at once.
//!
//! A commit holds the writer lock ([`super::schema::WRITER_LOCK`]) and sends each kind of
//! change as one statement over arrays (`unnest`), so a group of 500 completions costs a
//! handful of round trips, not a thousand:
//!
//! 1. completions upsert their nodes (the first terminal record stands) and queue their
//!    `on_complete` continuations; the nodes they made terminal flip their memberships;
//! 2. parks register their waits (members terminal already count at once), cancellations
//!    flip their parent's queued children cancelled, spawns queue their children;
//! 3. the waits whose members flipped take the flips as one update each, and fire when
//!    decided; so do the waits past their deadline;
//! 4. the nodes made terminal (completed or cancelled) add their items to the tagged
//!    fan-ins collecting them, and the groups touched cut their batches, queued to the
//!    consumers like continuations ([`super::fan_in`]);
//! 5. what was queued becomes `queued` nodes, and the new ones rows of the outbox, which
//!    the relay dispatches once the commit is durable.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;

use deadpool_postgres::ClientWrapper;
use ergon_connectors::local::metadata_json;
use ergon_core::journal::{Completion, Counts, MemberState, Park, WaitOutcome};
use tokio_postgres::Error;

use super::fan_in::{Expecting, Terminal};
use crate::events::RunSettings;
use crate::fan_in::Groups;
use crate::fan_in::Lineage;
use crate::handover::{self, Decided, Edge, LISTED};
use crate::metrics::JournalMetrics;
use crate::routes::Routes;
use crate::rows;
use crate::run::{NodeEnded, RunEvent};
use crate::tables::{self, COMPLETION_COLUMNS, COMPLETION_CONFLICT};

/// The error a node cancelled by its parent records: a cancelled child delivered later
/// is settled with it, without running.
pub(crate) const CANCELLED: &str = "cancelled by its parent (cancel_children)";

/// One writer transaction (begun on `tx` by the writer): what it has applied and what it
/// still has to write.
pub(super) struct Commit<'a> {
    pub tx: &'a ClientWrapper,
    pub routes: &'a Routes,
    pub max_output: usize,
    pub now: i64,
    pub metrics: &'a JournalMetrics,
    /// Memberships flipped so far, by wait: (succeeded, failed or cancelled).
    flipped: BTreeMap<i64, (i64, i64)>,
    /// Transactions to hand over at the end of the commit, with the request that spawned
    /// each (continuations and batches have none).
    pub(super) queued: Vec<(String, ergon_core::Transaction, Edge, Option<usize>)>,
    /// The fan-in groups touched so far, cut once the commit's requests are applied
    /// ([`Commit::cut_batches`]).
    pub(super) groups: Groups,
    /// The producers completed in this commit whose groups learn how many items to
    /// expect once the commit's spawns are queued ([`Commit::cut_batches`]).
    pub(super) expecting: Vec<Expecting>,
    /// Expanders and limits of DAG runs.
    pub(super) runs: &'a RunSettings,
    /// Nodes of runs this commit's completions ended, for [`Commit::advance_runs`].
    pub(super) runs_ended: Vec<NodeEnded>,
    /// The run and node transitions of this commit, published once it is durable.
    pub(super) events: Vec<RunEvent>,
}

/// A membership to flip: task, transaction id, new state, whether its node has an
/// output.
type Flip = (String, String, &'static str, bool);

impl<'a> Commit<'a> {
    pub(super) fn new(
        tx: &'a ClientWrapper,
        routes: &'a Routes,
        max_output: usize,
        now: i64,
        metrics: &'a JournalMetrics,
        runs: &'a RunSettings,
    ) -> Self {
        Self {
            tx,
            routes,
            max_output,
            now,
            metrics,
            flipped: BTreeMap::new(),
            queued: Vec::new(),
            groups: Groups::new(),
            expecting: Vec::new(),
            runs,
            runs_ended: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Records `completions`; those that made their node terminal queue their
    /// continuations, flip their memberships and add their fan-in items. A duplicate in
    /// the group changes nothing, as in separate commits.
    pub async fn complete(&mut self, completions: &[&Completion]) -> Result<(), Error> {
        let mut seen = HashSet::new();
        let batch: Vec<&Completion> = completions
            .iter()
            .copied()
            .filter(|c| seen.insert((c.transaction.id(), &*c.task)))
            .collect();
        if batch.is_empty() {
            return Ok(());
        }
        // Once per completion: an output over the cap is logged once.
        let outputs: Vec<Option<&str>> = batch
            .iter()
            .map(|c| handover::capped_output(c, self.max_output))
            .collect();
        let mut columns = CompletionColumns::default();
        for (c, output) in batch.iter().zip(&outputs) {
            columns.push(c, *output);
        }
        let statement = self.tx.prepare_cached(&COMPLETE).await?;
        let changed: HashSet<(String, String)> = self
            .tx
            .query(&statement, &columns.params())
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let mut flips = Vec::new();
        let mut terminals = Vec::new();
        for (c, output) in batch.into_iter().zip(outputs) {
            let (id, task) = (c.transaction.id(), &*c.task);
            if !changed.contains(&(id.to_owned(), task.to_owned())) {
                continue;
            }
            let (status, failure) = handover::status_of(&c.settlement);
            for on_complete in self.routes.continuations_of(task) {
                if on_complete.when.matches(failure.is_none()) {
                    let next = handover::continuation(c, &on_complete.task, output);
                    self.queued
                        .push((on_complete.task.clone(), next, Edge::Then, None));
                }
            }
            self.runs_ended.extend(NodeEnded::of(c, status, output));
            flips.push((task.to_owned(), id.to_owned(), status, output.is_some()));
            terminals.push(Terminal {
                task,
                node: Lineage::of(&c.transaction),
                status,
                children: c.children,
            });
        }
        self.flip(&flips).await?;
        self.fan_in(&terminals).await
    }

    /// Queues `children` for `target`, counted for request `request`.
    pub fn spawn(&mut self, request: usize, target: &str, children: &[ergon_core::Transaction]) {
        for child in children {
            self.queued
                .push((target.to_owned(), child.clone(), Edge::Spawn, Some(request)));
        }
    }

    /// Registers `park` (unless registered already) and decides it at once when its
    /// members already allow.
    pub async fn park(&mut self, park: &Park) -> Result<(), Error> {
        let registered = self
            .tx
            .query_opt(
                "INSERT INTO ergon_wait (key, owner_task, owner_id, owner_metadata, counts,
                     needed, total, done, counted, deadline_ms, then_task, created_at)
                 VALUES ($1, $2, $3, $4, $5, 0, 0, 0, 0, $6, $7, $8)
                 ON CONFLICT (key) DO NOTHING RETURNING wait_id",
                &[
                    &park.key,
                    &park.owner_task,
                    &park.owner.id(),
                    &metadata_json(park.owner.metadata()),
                    &park.counts.as_str(),
                    &park.deadline_ms,
                    &park.then,
                    &self.now,
                ],
            )
            .await?;
        let Some(wait_id) = registered.map(|row| row.get::<_, i64>(0)) else {
            return Ok(());
        };
        let ids: Vec<&str> = park.members.iter().map(|m| m.id.as_str()).collect();
        let tasks: Vec<&str> = park.members.iter().map(|m| m.task.as_str()).collect();
        let positions: Vec<i64> = (0..park.members.len() as i64).collect();
        self.tx
            .execute(
                "INSERT INTO ergon_wait_member (wait_id, tx_id, task, position, state, with_output)
                 SELECT $1, u.tx_id, u.task, u.position, COALESCE(n.status, 'pending'),
                     COALESCE(n.output IS NOT NULL, false)
                 FROM unnest($2::text[], $3::text[], $4::int8[]) AS u(tx_id, task, position)
                 LEFT JOIN ergon_node n ON n.tx_id = u.tx_id AND n.task = u.task
                     AND n.status IN ('succeeded', 'failed', 'cancelled')
                 ON CONFLICT DO NOTHING",
                &[&wait_id, &ids, &tasks, &positions],
            )
            .await?;
        let (total, done, succeeded, counted) = self.tally(wait_id, park.counts).await?;
        let needed = park.quorum.needed(total);
        let counters: [i64; 5] = [needed, total, done, succeeded, counted].map(i64::from);
        self.tx
            .execute(
                "UPDATE ergon_wait SET needed = $2, total = $3, done = $4, succeeded = $5,
                     counted = $6
                 WHERE wait_id = $1",
                &[
                    &wait_id,
                    &counters[0],
                    &counters[1],
                    &counters[2],
                    &counters[3],
                    &counters[4],
                ],
            )
            .await?;
        match WaitOutcome::decide(total, done, counted, needed) {
            Some(outcome) => self.fire(wait_id, outcome).await,
            None => Ok(()),
        }
    }

    /// Flips the queued children of `parent` cancelled (adding their fan-in items) and
    /// takes back the ones the relay has not dispatched yet; returns how many. A
    /// cancelled child that was dispatched already is settled as cancelled when it is
    /// delivered, without running (the journal looks children up:
    /// [`ergon_core::journal::Journal::looks_up`]).
    pub async fn cancel_children(&mut self, parent: &str) -> Result<usize, Error> {
        self.cancel_queued(parent, None, CANCELLED).await
    }

    /// [`Commit::cancel_children`] for the children of `parent` among `ids` (all when
    /// `None`), recording `reason` as their error: a timed-out run withdraws its nodes so.
    pub(super) async fn cancel_queued(
        &mut self,
        parent: &str,
        ids: Option<&[String]>,
        reason: &str,
    ) -> Result<usize, Error> {
        let cancelled: Vec<(String, String, String, String)> = self
            .tx
            .query(
                "UPDATE ergon_node SET status = 'cancelled', settlement = 'drop',
                     failed_step = 'process', error_category = 'business', error = $3,
                     finished_at = $2
                 WHERE parent_id = $1 AND status = 'queued'
                     AND ($4::text[] IS NULL OR tx_id = ANY($4))
                 RETURNING task, tx_id, root_id, tags",
                &[&parent, &self.now, &reason, &ids],
            )
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
            .collect();
        if cancelled.is_empty() {
            return Ok(0);
        }
        let ids: Vec<&str> = cancelled.iter().map(|(_, id, ..)| id.as_str()).collect();
        self.tx
            .execute("DELETE FROM ergon_outbox WHERE tx_id = ANY($1)", &[&ids])
            .await?;
        let flips: Vec<Flip> = cancelled
            .iter()
            .map(|(task, id, ..)| (task.clone(), id.clone(), "cancelled", false))
            .collect();
        self.flip(&flips).await?;
        let terminals: Vec<Terminal<'_>> = cancelled
            .iter()
            .map(|(task, id, root_id, tags)| Terminal {
                task,
                node: Lineage {
                    id,
                    parent_id: Some(parent),
                    root_id,
                    tags,
                },
                status: "cancelled",
                children: 0,
            })
            .collect();
        self.fan_in(&terminals).await?;
        Ok(cancelled.len())
    }

    /// Fires, as timed out, every wait whose deadline has passed; returns how many.
    pub async fn fire_due(&mut self) -> Result<usize, Error> {
        let due: Vec<i64> = self
            .tx
            .query(
                "SELECT wait_id FROM ergon_wait
                 WHERE fired_at IS NULL AND deadline_ms IS NOT NULL AND deadline_ms <= $1",
                &[&self.now],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        for wait_id in &due {
            self.fire(*wait_id, WaitOutcome::TimedOut).await?;
        }
        Ok(due.len())
    }

    /// Flips the pending memberships of `flips`; their waits take them in
    /// [`Commit::decide`].
    async fn flip(&mut self, flips: &[Flip]) -> Result<(), Error> {
        if flips.is_empty() {
            return Ok(());
        }
        let tasks: Vec<&str> = flips.iter().map(|f| f.0.as_str()).collect();
        let ids: Vec<&str> = flips.iter().map(|f| f.1.as_str()).collect();
        let states: Vec<&str> = flips.iter().map(|f| f.2).collect();
        let outputs: Vec<bool> = flips.iter().map(|f| f.3).collect();
        let statement = self.tx.prepare_cached(FLIP).await?;
        for row in self
            .tx
            .query(&statement, &[&ids, &tasks, &states, &outputs])
            .await?
        {
            let delta = self.flipped.entry(row.get(0)).or_default();
            if row.get::<_, &str>(1) == "succeeded" {
                delta.0 += 1;
            } else {
                delta.1 += 1;
            }
        }
        Ok(())
    }

    /// Counts the memberships flipped in this commit into their waits (one statement),
    /// and fires the waits that decides.
    pub async fn decide(&mut self) -> Result<(), Error> {
        let flipped = std::mem::take(&mut self.flipped);
        if flipped.is_empty() {
            return Ok(());
        }
        let waits: Vec<i64> = flipped.keys().copied().collect();
        let succeeded: Vec<i64> = flipped.values().map(|d| d.0).collect();
        let failed: Vec<i64> = flipped.values().map(|d| d.1).collect();
        let statement = self.tx.prepare_cached(DECIDE).await?;
        let open = self
            .tx
            .query(&statement, &[&waits, &succeeded, &failed])
            .await?;
        for row in open {
            let [total, done, counted, needed] =
                [1, 2, 3, 4].map(|i| u32::try_from(row.get::<_, i64>(i)).unwrap_or(u32::MAX));
            if let Some(outcome) = WaitOutcome::decide(total, done, counted, needed) {
                self.fire(row.get(0), outcome).await?;
            }
        }
        Ok(())
    }

    /// Members, terminal members, succeeded members and counted members of a wait.
    async fn tally(&self, wait_id: i64, counts: Counts) -> Result<(u32, u32, u32, u32), Error> {
        let (mut total, mut done, mut succeeded, mut counted) = (0, 0, 0, 0);
        for row in self
            .tx
            .query(
                "SELECT state, count(*) FROM ergon_wait_member WHERE wait_id = $1 GROUP BY state",
                &[&wait_id],
            )
            .await?
        {
            let state: &str = row.get(0);
            let n = u32::try_from(row.get::<_, i64>(1)).unwrap_or(u32::MAX);
            total += n;
            if state != "pending" {
                done += n;
                if state == "succeeded" {
                    succeeded += n;
                }
                if counts.counts(state) {
                    counted += n;
                }
            }
        }
        Ok((total, done, succeeded, counted))
    }

    /// Decides wait `wait_id` (once) and queues its continuation.
    async fn fire(&mut self, wait_id: i64, outcome: WaitOutcome) -> Result<(), Error> {
        let fired = self
            .tx
            .query_opt(
                "UPDATE ergon_wait SET fired_at = $2, outcome = $3
                 WHERE wait_id = $1 AND fired_at IS NULL
                 RETURNING key, owner_task, owner_id, owner_metadata, then_task, total, done,
                     succeeded, created_at",
                &[&wait_id, &self.now, &outcome.as_str()],
            )
            .await?;
        let Some(row) = fired else {
            return Ok(());
        };
        let count = |i| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
        let (total, done, succeeded) = (count(5), count(6), count(7));
        self.metrics
            .count_decided(outcome, self.now - row.get::<_, i64>(8));
        let members = self.wait_members(wait_id, total <= LISTED).await?;
        let decided = Decided {
            key: row.get(0),
            owner_task: row.get(1),
            owner_id: row.get(2),
            owner_metadata: row.get(3),
            outcome,
            total,
            done,
            succeeded,
            members,
        };
        self.queued
            .push((row.get(4), decided.continuation(), Edge::Then, None));
        Ok(())
    }

    /// The members of wait `wait_id`, in the order they were given, as its continuation
    /// receives them: every member when `all`, else only those that did not succeed or
    /// have an output.
    async fn wait_members(&self, wait_id: i64, all: bool) -> Result<Vec<MemberState>, Error> {
        let statement = self
            .tx
            .prepare_cached(&tables::wait_members(all, '$'))
            .await?;
        self.tx
            .query(&statement, &[&wait_id])
            .await?
            .iter()
            .map(rows::member_state)
            .collect()
    }

    /// Writes what the commit queued: `queued` nodes, and for each new one a row of the
    /// outbox. Returns how many new children each spawn request (by index) made, and
    /// how many rows the outbox took.
    pub async fn hand_over(mut self) -> Result<(HashMap<usize, usize>, u64), Error> {
        let queued = std::mem::take(&mut self.queued);
        let queued: Vec<_> = queued
            .into_iter()
            .filter(|(task, tx, _, _)| {
                let takes = self.routes.takes(task);
                if !takes {
                    // The plan and the calls check targets before anything is written.
                    tracing::error!(
                        task = task.as_str(),
                        message_id = tx.id(),
                        "No input to hand this transaction to; dropped"
                    );
                }
                takes
            })
            .collect();
        if queued.is_empty() {
            return Ok((HashMap::new(), 0));
        }
        let ids: Vec<&str> = queued.iter().map(|q| q.1.id()).collect();
        let tasks: Vec<&str> = queued.iter().map(|q| q.0.as_str()).collect();
        let parents: Vec<Option<&str>> = queued.iter().map(|q| q.1.parent_id()).collect();
        let roots: Vec<&str> = queued.iter().map(|q| q.1.root_id()).collect();
        let tags: Vec<&str> = queued.iter().map(|q| handover::tags(&q.1)).collect();
        let traces: Vec<Option<&str>> = queued.iter().map(|q| handover::trace_id(&q.1)).collect();
        let edges: Vec<&str> = queued.iter().map(|q| q.2.as_str()).collect();
        let statement = self.tx.prepare_cached(QUEUE).await?;
        let new: HashSet<(String, String)> = self
            .tx
            .query(
                &statement,
                &[
                    &ids, &tasks, &parents, &roots, &tags, &traces, &edges, &self.now,
                ],
            )
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let mut spawned = HashMap::new();
        let mut first = HashSet::new();
        let mut outbox = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (task, tx, _, request) in &queued {
            let key = (tx.id().to_owned(), task.clone());
            if !new.contains(&key) || !first.insert(key) {
                continue;
            }
            if let Some(request) = request {
                *spawned.entry(*request).or_default() += 1;
            }
            outbox.0.push(task.as_str());
            outbox.1.push(tx.id());
            outbox.2.push(tx.payload().as_ref());
            outbox.3.push(metadata_json(tx.metadata()));
        }
        let rows = outbox.0.len() as u64;
        if rows > 0 {
            let statement = self.tx.prepare_cached(OUTBOX).await?;
            self.tx
                .execute(&statement, &[&outbox.0, &outbox.1, &outbox.2, &outbox.3])
                .await?;
        }
        Ok((spawned, rows))
    }
}

/// The columns of a group's completions, one array each.
#[derive(Default)]
struct CompletionColumns<'c> {
    ids: Vec<&'c str>,
    tasks: Vec<&'c str>,
    parents: Vec<Option<&'c str>>,
    roots: Vec<&'c str>,
    tags: Vec<&'c str>,
    statuses: Vec<&'static str>,
    settlements: Vec<&'static str>,
    attempts: Vec<i64>,
    deliveries: Vec<i64>,
    children: Vec<i64>,
    steps: Vec<Option<&'static str>>,
    categories: Vec<Option<&'static str>>,
    errors: Vec<Option<&'c str>>,
    outputs: Vec<Option<&'c str>>,
    traces: Vec<Option<&'c str>>,
    started: Vec<i64>,
    finished: Vec<i64>,
}

impl<'c> CompletionColumns<'c> {
    fn push(&mut self, c: &'c Completion, output: Option<&'c str>) {
        let t = &c.transaction;
        let (status, failure) = handover::status_of(&c.settlement);
        self.ids.push(t.id());
        self.tasks.push(&c.task);
        self.parents.push(t.parent_id());
        self.roots.push(t.root_id());
        self.tags.push(handover::tags(t));
        self.statuses.push(status);
        self.settlements.push(c.settlement.as_str());
        self.attempts.push(i64::from(c.attempts));
        self.deliveries.push(i64::from(t.deliveries()));
        self.children.push(i64::from(c.children));
        self.steps.push(failure.map(|f| f.step));
        self.categories.push(failure.map(|f| f.category.as_str()));
        self.errors.push(failure.map(|f| f.message.as_str()));
        self.outputs.push(output);
        self.traces.push(handover::trace_id(t));
        self.started.push(c.started_at_ms);
        self.finished.push(c.finished_at_ms);
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 17] {
        [
            &self.ids,
            &self.tasks,
            &self.parents,
            &self.roots,
            &self.tags,
            &self.statuses,
            &self.settlements,
            &self.attempts,
            &self.deliveries,
            &self.children,
            &self.steps,
            &self.categories,
            &self.errors,
            &self.outputs,
            &self.traces,
            &self.started,
            &self.finished,
        ]
    }
}

/// Inserts or completes a group's nodes; the update applies only to a node not yet
/// terminal. Returns the nodes it wrote.
static COMPLETE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO ergon_node ({COMPLETION_COLUMNS})
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::text[], $8::int8[], $9::int8[], $10::int8[], $11::text[],
             $12::text[], $13::text[], $14::text[], $15::text[], $16::int8[], $17::int8[])
         {COMPLETION_CONFLICT}
         RETURNING tx_id, task"
    )
});

/// Flips pending memberships; returns each flipped one's wait and new state.
const FLIP: &str = "UPDATE ergon_wait_member m SET state = u.state, with_output = u.with_output
    FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[])
        AS u(tx_id, task, state, with_output)
    WHERE m.tx_id = u.tx_id AND m.task = u.task AND m.state = 'pending'
    RETURNING m.wait_id, m.state";

/// Adds a commit's flips to the counters of their open waits.
const DECIDE: &str = "UPDATE ergon_wait w SET done = w.done + d.s + d.f,
        succeeded = w.succeeded + d.s,
        counted = w.counted + CASE w.counts WHEN 'terminal' THEN d.s + d.f
            WHEN 'succeeded' THEN d.s ELSE d.f END
    FROM unnest($1::int8[], $2::int8[], $3::int8[]) AS d(wait_id, s, f)
    WHERE w.wait_id = d.wait_id AND w.fired_at IS NULL
    RETURNING w.wait_id, w.total, w.done, w.counted, w.needed";

/// Records handed-over transactions as queued, unless known; returns the new ones.
const QUEUE: &str = "INSERT INTO ergon_node (tx_id, task, parent_id, root_id, tags, status,
        settlement, attempts, deliveries, children, trace_id, started_at, finished_at, edge)
    SELECT u.tx_id, u.task, u.parent_id, u.root_id, u.tags, 'queued', '', 0, 0, 0,
        u.trace_id, $8, $8, u.edge
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::text[]) AS u(tx_id, task, parent_id, root_id, tags, trace_id, edge)
    ON CONFLICT (tx_id, task) DO NOTHING
    RETURNING tx_id, task";

/// Writes the outbox rows of a commit.
const OUTBOX: &str = "INSERT INTO ergon_outbox (task, tx_id, payload, metadata)
    SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[])";

/// The earliest deadline of a wait not yet decided or of the oldest unbatched item of a
/// group of one of the fan-ins `$1` ([`super::fan_in::consumers`]); `LEAST` skips the
/// one that has none.
pub(super) const NEXT_DEADLINE: &str = "SELECT LEAST(
    (SELECT MIN(deadline_ms) FROM ergon_wait WHERE fired_at IS NULL AND deadline_ms IS NOT NULL),
    (SELECT MIN(deadline_ms) FROM ergon_fanin_group
         WHERE deadline_ms IS NOT NULL AND consumer = ANY($1)),
    (SELECT MIN(deadline_ms) FROM ergon_run
         WHERE status = 'running' AND deadline_ms IS NOT NULL))";
