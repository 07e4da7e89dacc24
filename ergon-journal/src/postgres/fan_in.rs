//! Tagged fan-in in the PostgreSQL journal: the transitions of [`crate::fan_in`], inside
//! the writer's commit, over arrays as the rest of [`super::workflow`].
//!
//! The nodes a commit made terminal add their items in one statement (once: an item in
//! already adds nothing, so a duplicate completion changes no group); a producer's
//! completion fixes how many items its groups expect once the commit's spawns are known,
//! and a batch group that closed fixes it for the fan-ins of its consumer's results. The
//! groups touched are held in memory for the commit and decided one by one at its end
//! ([`Commit::cut_batches`], before the hand-over): every batch due is cut — the range
//! of positions it took recorded (items are written once, never marked), its
//! transaction queued to the consumer like a continuation, through the outbox — and each
//! group written back once, however many of
//! its items arrived in the commit. Groups whose timeout passed are cut by the writer's
//! deadline pass ([`Commit::cut_due`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use ergon_core::journal::ConsumedResult;
use tokio_postgres::{Error, Row};

use super::workflow::Commit;
use crate::fan_in::{self, Cut, GroupKey, GroupState, Item, Lineage, Touched};
use crate::handover::Edge;
use crate::request::earliest;
use crate::routes::Routes;
use crate::rows;
use crate::tables;

/// A node this commit made terminal, as the fan-ins see it.
pub(super) struct Terminal<'t> {
    /// The task it ended in.
    pub task: &'t str,
    /// Its id, lineage and tags.
    pub node: Lineage<'t>,
    /// `succeeded`, `failed` or `cancelled`.
    pub status: &'t str,
    /// The outbound transactions its completion confirmed (none for a cancelled child).
    pub children: u32,
}

/// A producer's completion that fixes how many items `group` expects: its `children`
/// and the children it spawned into the group's `from` tasks, counted at the end of the
/// commit, when the commit's own spawns are queued too.
pub(super) struct Expecting {
    group: GroupKey,
    /// The producer's root (a new group's root).
    root_id: String,
    /// The producer's transaction id.
    producer: String,
    children: u32,
}

/// The columns [`stored`] reads, in its order.
const GROUP_COLUMNS: &str = "consumer, tag, group_key, root_id, arrived, unbatched, expected,
    deep, closed, next_seq, deadline_ms, next_position";

/// The stored groups among (consumers, tags, keys).
static TOUCH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {GROUP_COLUMNS} FROM ergon_fanin_group
         WHERE (consumer, tag, group_key) IN
             (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))"
    )
});

/// The groups of the fan-ins `$2` whose oldest unbatched item timed out by `$1`.
static DUE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {GROUP_COLUMNS} FROM ergon_fanin_group
         WHERE deadline_ms IS NOT NULL AND deadline_ms <= $1 AND consumer = ANY($2)"
    )
});

/// Adds items (consumer, tag, task, id, key, the group's items so far, included) that
/// are not in yet, each after those of its group before it, arrived at `$8`; returns the
/// ones added. `NOT EXISTS` leaves out the items in already, so that positions stay
/// dense; `ON CONFLICT` what one statement would repeat.
const COLLECT: &str = "INSERT INTO ergon_fanin_item (consumer, tag, task, tx_id, group_key,
        position, included, arrived_at)
    SELECT u.consumer, u.tag, u.task, u.tx_id, u.group_key,
        u.arrived + row_number() OVER (PARTITION BY u.consumer, u.tag, u.group_key
            ORDER BY u.n) - 1,
        u.included, $8
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[],
        $7::bool[]) WITH ORDINALITY AS u(consumer, tag, task, tx_id, group_key, arrived,
            included, n)
    WHERE NOT EXISTS (SELECT 1 FROM ergon_fanin_item i WHERE i.consumer = u.consumer
        AND i.tag = u.tag AND i.task = u.task AND i.tx_id = u.tx_id)
    ON CONFLICT DO NOTHING
    RETURNING consumer, tag, task, tx_id";

/// How many distinct children each producer (by slot) spawned into the tasks listed
/// for it: those committed (`$1..$3`: slot, producer, task) and those this commit
/// queued (`$4..$6`: slot, child id, task).
const SPAWNED: &str = "SELECT s.slot, count(*) FROM (
        SELECT w.slot, n.tx_id, n.task
        FROM unnest($1::int8[], $2::text[], $3::text[]) AS w(slot, parent_id, task)
        JOIN ergon_node n ON n.parent_id = w.parent_id AND n.task = w.task
            AND n.edge = 'spawn'
        UNION
        SELECT * FROM unnest($4::int8[], $5::text[], $6::text[])
    ) AS s GROUP BY s.slot";

impl Commit<'_> {
    /// Adds the items the nodes of `terminals` bring to the fan-ins collecting them, and
    /// notes the groups whose expected count their completion as producers fixes (counted
    /// by [`Commit::cut_batches`]).
    pub(super) async fn fan_in(&mut self, terminals: &[Terminal<'_>]) -> Result<(), Error> {
        let mut arrivals = Vec::new();
        for t in terminals {
            for item in fan_in::items(self.routes, t.task, t.node, t.status) {
                arrivals.push((item, t.task, t.node.id));
            }
            for group in fan_in::expected_from_producer(self.routes, t.task, t.node) {
                self.expecting.push(Expecting {
                    group,
                    root_id: t.node.root_id.to_owned(),
                    producer: t.node.id.to_owned(),
                    children: t.children,
                });
            }
        }
        self.collect(&arrivals).await
    }

    /// Adds `arrivals` (an item, its node's task and id) to their groups, in one
    /// statement; an item in already adds nothing.
    async fn collect(&mut self, arrivals: &[(Item, &str, &str)]) -> Result<(), Error> {
        if arrivals.is_empty() {
            return Ok(());
        }
        self.touch(
            arrivals
                .iter()
                .map(|(item, ..)| (&item.group, item.root_id.as_str())),
        )
        .await?;
        let mut columns = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for (item, task, id) in arrivals {
            let arrived = self.groups[&item.group].state.arrived;
            columns.0.push(item.group.consumer.as_str());
            columns.1.push(item.group.tag.as_str());
            columns.2.push(*task);
            columns.3.push(*id);
            columns.4.push(item.group.key.as_str());
            columns.5.push(stored_count(arrived));
            columns.6.push(item.included);
        }
        let statement = self.tx.prepare_cached(COLLECT).await?;
        let added = self
            .tx
            .query(
                &statement,
                &[
                    &columns.0, &columns.1, &columns.2, &columns.3, &columns.4, &columns.5,
                    &columns.6, &self.now,
                ],
            )
            .await?;
        let by_key: HashMap<(&str, &str, &str, &str), &Item> = arrivals
            .iter()
            .map(|(item, task, id)| {
                let group = &item.group;
                (
                    (group.consumer.as_str(), group.tag.as_str(), *task, *id),
                    item,
                )
            })
            .collect();
        for row in &added {
            let key: (&str, &str, &str, &str) = (row.get(0), row.get(1), row.get(2), row.get(3));
            let Some(item) = by_key.get(&key) else {
                continue;
            };
            let consumes = self.routes.consumes_of(&item.group.consumer);
            let deadline = fan_in::deadline(consumes, self.now);
            let touched = self.groups.get_mut(&item.group).expect("touched above");
            touched.arrive(item, deadline);
        }
        Ok(())
    }

    /// Holds the groups `keys` (each with the root a new one descends from) in memory,
    /// reading those the commit does not hold yet in one query.
    async fn touch<'k>(
        &mut self,
        keys: impl IntoIterator<Item = (&'k GroupKey, &'k str)>,
    ) -> Result<(), Error> {
        let mut missing: BTreeMap<&GroupKey, &str> = BTreeMap::new();
        for (group, root_id) in keys {
            if !self.groups.contains_key(group) {
                missing.entry(group).or_insert(root_id);
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let consumers: Vec<&str> = missing.keys().map(|g| g.consumer.as_str()).collect();
        let tags: Vec<&str> = missing.keys().map(|g| g.tag.as_str()).collect();
        let keys: Vec<&str> = missing.keys().map(|g| g.key.as_str()).collect();
        let statement = self.tx.prepare_cached(&TOUCH).await?;
        for row in self
            .tx
            .query(&statement, &[&consumers, &tags, &keys])
            .await?
        {
            let (group, touched) = stored(&row);
            self.groups.insert(group, touched);
        }
        for (group, root_id) in missing {
            self.groups
                .entry(group.clone())
                .or_insert_with(|| Touched::new(root_id));
        }
        Ok(())
    }

    /// Group `group` (descending from `root_id`, when new) expects `expected` items.
    async fn expect(&mut self, group: GroupKey, root_id: &str, expected: u64) -> Result<(), Error> {
        self.touch([(&group, root_id)]).await?;
        if let Some(touched) = self.groups.get_mut(&group) {
            touched.state.expected = Some(expected);
        }
        Ok(())
    }

    /// Fixes the expected counts the producers completed in this commit bring: their
    /// outbound children plus the distinct children each spawned into the group's `from`
    /// tasks, committed before or queued in this commit (one query for all).
    async fn count_expected(&mut self) -> Result<(), Error> {
        let expecting = std::mem::take(&mut self.expecting);
        if expecting.is_empty() {
            return Ok(());
        }
        let spawned: HashMap<i64, i64> = {
            let mut committed = (Vec::new(), Vec::new(), Vec::new());
            let mut queued = (Vec::new(), Vec::new(), Vec::new());
            for (slot, e) in (0_i64..).zip(&expecting) {
                let from = self
                    .routes
                    .consumes_of(&e.group.consumer)
                    .map_or(&[][..], |consumes| consumes.from.as_slice());
                for task in from {
                    committed.0.push(slot);
                    committed.1.push(e.producer.as_str());
                    committed.2.push(task.as_str());
                }
                for (task, child, edge, _) in &self.queued {
                    if *edge == Edge::Spawn
                        && child.parent_id() == Some(e.producer.as_str())
                        && from.contains(task)
                    {
                        queued.0.push(slot);
                        queued.1.push(child.id());
                        queued.2.push(task.as_str());
                    }
                }
            }
            let statement = self.tx.prepare_cached(SPAWNED).await?;
            self.tx
                .query(
                    &statement,
                    &[
                        &committed.0,
                        &committed.1,
                        &committed.2,
                        &queued.0,
                        &queued.1,
                        &queued.2,
                    ],
                )
                .await?
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect()
        };
        for (slot, e) in (0_i64..).zip(expecting) {
            let spawned = spawned
                .get(&slot)
                .map_or(0, |n| u64::try_from(*n).unwrap_or(0));
            let expected = u64::from(e.children) + spawned;
            self.expect(e.group, &e.root_id, expected).await?;
        }
        Ok(())
    }

    /// Holds every group of a fan-in of the routes whose timeout has passed as timed out:
    /// [`Commit::cut_batches`] cuts what is unbatched in it.
    pub(super) async fn cut_due(&mut self) -> Result<(), Error> {
        let statement = self.tx.prepare_cached(&DUE).await?;
        let consumers = consumers(self.routes);
        for row in self.tx.query(&statement, &[&self.now, &consumers]).await? {
            let (group, stored) = stored(&row);
            self.groups.entry(group).or_insert(stored).timed_out = true;
        }
        Ok(())
    }

    /// Cuts the batches due in the groups this commit touched, queues them to their
    /// consumers, and writes each group back once; returns the earliest deadline stored.
    /// A group that closed fixes the expected count of the fan-ins collecting its
    /// consumer's results, which are decided in turn. Groups are taken one at a time, so
    /// that such a fan-in still waiting to be decided takes the count in memory, with
    /// the items that arrived in this commit.
    pub(super) async fn cut_batches(&mut self) -> Result<Option<i64>, Error> {
        self.count_expected().await?;
        let mut next = None;
        while let Some((group, touched)) = self.groups.pop_first() {
            next = earliest(next, self.decide_group(group, touched).await?);
        }
        Ok(next)
    }

    /// Cuts the batches `group` is due, writes it back, and returns its deadline.
    async fn decide_group(
        &mut self,
        group: GroupKey,
        mut touched: Touched,
    ) -> Result<Option<i64>, Error> {
        let routes = self.routes;
        let Some(consumes) = routes.consumes_of(&group.consumer) else {
            // Unreached: a commit touches only the groups of the routes' fan-ins (those of
            // a fan-in no longer configured stay as they are, their deadlines ignored).
            return Ok(None);
        };
        let before = touched.state;
        let cuts = fan_in::cuts(&before, u64::from(consumes.batch_size), touched.timed_out);
        for cut in &cuts {
            let results = self.claim(&group, &mut touched, cut).await?;
            let batch = fan_in::batch_transaction(&group, &touched.root_id, cut, &results);
            self.queued
                .push((group.consumer.clone(), batch, Edge::Batch, None));
            self.metrics.count_batch(cut.reason);
        }
        touched.state = fan_in::after(&before, &cuts);
        if touched.state.unbatched == 0 {
            touched.deadline_ms = None;
        } else if !cuts.is_empty() || touched.timed_out {
            touched.deadline_ms = self
                .oldest_deadline(&group, &touched, consumes.timeout)
                .await?;
        }
        self.store_group(&group, &touched).await?;
        if touched.state.closed && !before.closed {
            let batches = touched.state.next_seq;
            for next in fan_in::expected_from_batches(routes, &group) {
                self.expect(next, &touched.root_id, batches).await?;
            }
        }
        Ok(touched.deadline_ms)
    }

    /// Takes the oldest `cut.size` unbatched items of `group` (held as `touched`) into
    /// batch `cut.seq`: records the range of positions it took and moves the group's
    /// next position past it; returns their results, in the order they arrived.
    async fn claim(
        &self,
        group: &GroupKey,
        touched: &mut Touched,
        cut: &Cut,
    ) -> Result<Vec<ConsumedResult>, Error> {
        let first = stored_count(touched.next_position);
        let mut end = first;
        let mut results = Vec::new();
        if cut.size > 0 {
            let statement = self
                .tx
                .prepare_cached(&tables::unbatched_items('$'))
                .await?;
            let size = stored_count(cut.size);
            let rows = self
                .tx
                .query(
                    &statement,
                    &[&group.consumer, &group.tag, &group.key, &first, &size],
                )
                .await?;
            for row in &rows {
                results.push(rows::member_state(row)?);
                end = row.get::<_, i64>(5) + 1;
            }
        }
        let statement = self.tx.prepare_cached(tables::INSERT_BATCH).await?;
        let batch_id = fan_in::batch_id(group, cut.seq);
        self.tx
            .execute(
                &statement,
                &[
                    &batch_id,
                    &group.consumer,
                    &group.tag,
                    &group.key,
                    &first,
                    &end,
                    &self.now,
                ],
            )
            .await?;
        touched.next_position = u64::try_from(end).unwrap_or(0);
        Ok(results)
    }

    /// When the oldest unbatched item of `group` (held as `touched`) times out.
    async fn oldest_deadline(
        &self,
        group: &GroupKey,
        touched: &Touched,
        timeout: Option<std::time::Duration>,
    ) -> Result<Option<i64>, Error> {
        let Some(timeout) = timeout else {
            return Ok(None);
        };
        let statement = self.tx.prepare_cached(tables::OLDEST_UNBATCHED).await?;
        let next = stored_count(touched.next_position);
        let oldest = self
            .tx
            .query_opt(
                &statement,
                &[&group.consumer, &group.tag, &group.key, &next],
            )
            .await?
            .map(|row| row.get::<_, i64>(0));
        let timeout = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        Ok(oldest.map(|at| at.saturating_add(timeout)))
    }

    /// Writes `group` back as `touched` holds it.
    async fn store_group(&self, group: &GroupKey, touched: &Touched) -> Result<(), Error> {
        let state = &touched.state;
        let statement = self.tx.prepare_cached(tables::STORE_GROUP).await?;
        self.tx
            .execute(
                &statement,
                &[
                    &group.consumer,
                    &group.tag,
                    &group.key,
                    &touched.root_id,
                    &stored_count(state.arrived),
                    &stored_count(state.unbatched),
                    &state.expected.map(stored_count),
                    &state.deep,
                    &state.closed,
                    &stored_count(state.next_seq),
                    &touched.deadline_ms,
                    &self.now,
                    &stored_count(touched.next_position),
                ],
            )
            .await?;
        Ok(())
    }
}

/// The consumers of the fan-ins of `routes`: a writer cuts and waits for the groups of
/// those only, so that one whose routes lack a fan-in (a process configured otherwise, a
/// fan-in removed) does not keep waking up for a deadline it leaves to others.
pub(super) fn consumers(routes: &Routes) -> Vec<&str> {
    routes.fan_ins().map(|(consumer, _)| consumer).collect()
}

/// A group read from a row of [`GROUP_COLUMNS`].
fn stored(row: &Row) -> (GroupKey, Touched) {
    let count = |index| u64::try_from(row.get::<_, i64>(index)).unwrap_or(0);
    let group = GroupKey {
        consumer: row.get(0),
        tag: row.get(1),
        key: row.get(2),
    };
    let touched = Touched {
        root_id: row.get(3),
        state: GroupState {
            arrived: count(4),
            unbatched: count(5),
            expected: row
                .get::<_, Option<i64>>(6)
                .map(|n| u64::try_from(n).unwrap_or(0)),
            deep: row.get(7),
            closed: row.get(8),
            next_seq: count(9),
        },
        deadline_ms: row.get(10),
        timed_out: false,
        next_position: count(11),
    };
    (group, touched)
}

/// A count as a BIGINT column holds it.
fn stored_count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
