//! Tagged fan-in in the SQLite journal: the transitions of [`crate::fan_in`], inside the
//! writer's transaction.
//!
//! A terminal node adds its items (once: `ON CONFLICT DO NOTHING` on the item's key, so
//! a duplicate completion adds nothing); a producer's completion, or a batch group that
//! closed, fixes how many items a group expects. The groups touched are held in memory
//! for the commit and decided once at its end ([`Transition::cut_batches`]): every batch
//! due is cut — the range of positions it took recorded (items are written once, never
//! marked), its transaction queued to the consumer — and each group written back once,
//! however many of its items arrived in the commit. Groups whose timeout passed are cut
//! by the writer's deadline pass ([`Transition::cut_due`]).

use ergon_core::journal::ConsumedResult;
use rusqlite::{OptionalExtension, params};

use super::workflow::Transition;
use crate::fan_in::{self, GroupKey, GroupState, Groups, Item, Lineage, Touched};
use crate::handover::Edge;
use crate::request::earliest;
use crate::rows;
use crate::tables;

impl Transition<'_> {
    /// Adds the items terminal node `node` of `task` (`status`) brings to the fan-ins
    /// collecting it, and, when `task` produces consumed tags, fixes how many items the
    /// groups it keys expect: its `children` and the children it spawned into their `from`
    /// tasks.
    pub(super) fn fan_in(
        &self,
        task: &str,
        node: Lineage<'_>,
        status: &str,
        children: u32,
    ) -> rusqlite::Result<()> {
        for item in fan_in::items(self.routes, task, node, status) {
            self.collect(&item, task, node.id)?;
        }
        for group in fan_in::expected_from_producer(self.routes, task, node) {
            let spawned = self.spawned_into(node.id, &group.consumer)?;
            self.expect(group, node.root_id, u64::from(children) + spawned)?;
        }
        Ok(())
    }

    /// Children of `parent` spawned into a task `consumer` collects from.
    fn spawned_into(&self, parent: &str, consumer: &str) -> rusqlite::Result<u64> {
        let from = self
            .routes
            .consumes_of(consumer)
            .map(|consumes| serde_json::to_string(&consumes.from).unwrap_or_default())
            .unwrap_or_default();
        self.db
            .prepare_cached(
                "SELECT count(*) FROM ergon_node WHERE parent_id = ?1 AND edge = 'spawn'
                     AND task IN (SELECT value FROM json_each(?2))",
            )?
            .query_row(params![parent, from], |row| row.get(0))
    }

    /// The group `group` as this commit holds it, read on first touch (a new group
    /// descends from `root_id`).
    fn touch<'g>(
        &self,
        groups: &'g mut Groups,
        group: &GroupKey,
        root_id: &str,
    ) -> rusqlite::Result<&'g mut Touched> {
        if !groups.contains_key(group) {
            let stored = self
                .db
                .prepare_cached(
                    "SELECT root_id, arrived, unbatched, expected, deep, closed, next_seq,
                         deadline_ms, next_position
                     FROM ergon_fanin_group WHERE consumer = ?1 AND tag = ?2 AND group_key = ?3",
                )?
                .query_row(params![group.consumer, group.tag, group.key], |row| {
                    Ok(Touched {
                        root_id: row.get(0)?,
                        state: GroupState {
                            arrived: row.get(1)?,
                            unbatched: row.get(2)?,
                            expected: row.get(3)?,
                            deep: row.get(4)?,
                            closed: row.get(5)?,
                            next_seq: row.get(6)?,
                        },
                        deadline_ms: row.get(7)?,
                        timed_out: false,
                        next_position: row.get(8)?,
                    })
                })
                .optional()?;
            let touched = stored.unwrap_or_else(|| Touched::new(root_id));
            groups.insert(group.clone(), touched);
        }
        Ok(groups.get_mut(group).expect("inserted above"))
    }

    /// Adds `item` (transaction `id` of `task`) to its group, unless it is in already.
    fn collect(&self, item: &Item, task: &str, id: &str) -> rusqlite::Result<()> {
        let mut groups = self.groups.borrow_mut();
        let touched = self.touch(&mut groups, &item.group, &item.root_id)?;
        let inserted = self
            .db
            .prepare_cached(
                "INSERT INTO ergon_fanin_item (consumer, tag, task, tx_id, group_key, position,
                     included, arrived_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                item.group.consumer,
                item.group.tag,
                task,
                id,
                item.group.key,
                touched.state.arrived,
                item.included,
                self.now,
            ])?;
        if inserted == 0 {
            return Ok(());
        }
        let consumes = self.routes.consumes_of(&item.group.consumer);
        touched.arrive(item, fan_in::deadline(consumes, self.now));
        Ok(())
    }

    /// Group `group` expects `expected` items.
    fn expect(&self, group: GroupKey, root_id: &str, expected: u64) -> rusqlite::Result<()> {
        let mut groups = self.groups.borrow_mut();
        let touched = self.touch(&mut groups, &group, root_id)?;
        touched.state.expected = Some(expected);
        Ok(())
    }

    /// Cuts, in every group of a fan-in this process runs whose timeout has passed, what
    /// is unbatched; returns how many groups. (Another process sharing the file may run
    /// other fan-ins: their groups are theirs to cut.)
    pub(super) fn cut_due(&self) -> rusqlite::Result<usize> {
        let due: Vec<(String, String, String)> = self
            .db
            .prepare_cached(
                "SELECT consumer, tag, group_key FROM ergon_fanin_group
                 WHERE deadline_ms IS NOT NULL AND deadline_ms <= ?1
                     AND consumer IN (SELECT value FROM json_each(?2))",
            )?
            .query_map(params![self.now, self.routes.consumers_json()], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut groups = self.groups.borrow_mut();
        for (consumer, tag, key) in &due {
            let group = GroupKey {
                consumer: consumer.clone(),
                tag: tag.clone(),
                key: key.clone(),
            };
            self.touch(&mut groups, &group, "")?.timed_out = true;
        }
        Ok(due.len())
    }

    /// Cuts the batches due in the groups this commit touched, queues them to their
    /// consumers, and writes each group back once; returns the earliest deadline stored.
    /// A group that closed fixes the expected count of the fan-ins collecting its
    /// consumer's results, which are decided in turn.
    ///
    /// Groups are taken out one at a time, so that a group still waiting in the commit
    /// takes the expected count a closing group fixes (rather than a stale read of it).
    pub(super) fn cut_batches(&self) -> rusqlite::Result<Option<i64>> {
        let mut next = None;
        loop {
            let popped = self.groups.borrow_mut().pop_first();
            let Some((group, touched)) = popped else {
                return Ok(next);
            };
            next = earliest(next, self.decide_group(&group, touched)?);
        }
    }

    /// Cuts what `group` is due and writes it back; returns its deadline.
    fn decide_group(
        &self,
        group: &GroupKey,
        mut touched: Touched,
    ) -> rusqlite::Result<Option<i64>> {
        let Some(consumes) = self.routes.consumes_of(&group.consumer) else {
            // Unreached: a commit touches only the groups of the routes' fan-ins.
            return Ok(None);
        };
        let before = touched.state;
        let cuts = fan_in::cuts(&before, u64::from(consumes.batch_size), touched.timed_out);
        for cut in &cuts {
            let results = self.claim(group, &mut touched, cut)?;
            let batch = fan_in::batch_transaction(group, &touched.root_id, cut, &results);
            self.emit(&group.consumer, &batch, Edge::Batch)?;
            self.metrics.count_batch(cut.reason);
        }
        touched.state = fan_in::after(&before, &cuts);
        if touched.state.unbatched == 0 {
            touched.deadline_ms = None;
        } else if !cuts.is_empty() || touched.timed_out {
            touched.deadline_ms = self.oldest_deadline(group, &touched, consumes.timeout)?;
        }
        self.store_group(group, &touched)?;
        if touched.state.closed && !before.closed {
            let batches = touched.state.next_seq;
            for next in fan_in::expected_from_batches(self.routes, group) {
                self.expect(next, &touched.root_id, batches)?;
            }
        }
        Ok(touched.deadline_ms)
    }

    /// Takes the oldest `cut.size` unbatched items of `group` (held as `touched`) into
    /// batch `cut.seq`: records the range of positions it took and moves the group's
    /// next position past it; returns their results, in the order they arrived.
    fn claim(
        &self,
        group: &GroupKey,
        touched: &mut Touched,
        cut: &fan_in::Cut,
    ) -> rusqlite::Result<Vec<ConsumedResult>> {
        let first = touched.next_position;
        let mut end = first;
        let results: Vec<ConsumedResult> = self
            .db
            .prepare_cached(&tables::unbatched_items('?'))?
            .query_map(
                params![group.consumer, group.tag, group.key, first, cut.size],
                |row| {
                    let position: u64 = row.get(5)?;
                    Ok((rows::member_state(row)?, position))
                },
            )?
            .map(|row| {
                row.map(|(result, position)| {
                    end = position + 1;
                    result
                })
            })
            .collect::<Result<_, _>>()?;
        self.db
            .prepare_cached(&tables::INSERT_BATCH.replace('$', "?"))?
            .execute(params![
                fan_in::batch_id(group, cut.seq),
                group.consumer,
                group.tag,
                group.key,
                first,
                end,
                self.now,
            ])?;
        touched.next_position = end;
        Ok(results)
    }

    /// When the oldest unbatched item of `group` (held as `touched`) times out.
    fn oldest_deadline(
        &self,
        group: &GroupKey,
        touched: &Touched,
        timeout: Option<std::time::Duration>,
    ) -> rusqlite::Result<Option<i64>> {
        let Some(timeout) = timeout else {
            return Ok(None);
        };
        let oldest: Option<i64> = self
            .db
            .prepare_cached(&tables::OLDEST_UNBATCHED.replace('$', "?"))?
            .query_row(
                params![group.consumer, group.tag, group.key, touched.next_position],
                |row| row.get(0),
            )
            .optional()?;
        let timeout = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        Ok(oldest.map(|at| at.saturating_add(timeout)))
    }

    fn store_group(&self, group: &GroupKey, touched: &Touched) -> rusqlite::Result<()> {
        let state = &touched.state;
        self.db
            .prepare_cached(&tables::STORE_GROUP.replace('$', "?"))?
            .execute(params![
                group.consumer,
                group.tag,
                group.key,
                touched.root_id,
                state.arrived,
                state.unbatched,
                state.expected,
                state.deep,
                state.closed,
                state.next_seq,
                touched.deadline_ms,
                self.now,
                touched.next_position,
            ])?;
        Ok(())
    }
}
