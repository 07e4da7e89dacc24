//! DAG runs in the SQLite writer's commits: a start records the run and hands its roots
//! over; a node's completion (in [`Transition::complete`]) advances its run; a deadline
//! times runs out. Each loads the run's row, lets [`Run`] decide, and applies what it
//! decided in the same commit: nodes into their tasks' queues, items remembered,
//! withdrawals, the result to `on_complete`, the row written back.

use ergon_core::Transaction;
use ergon_core::journal::Completion;
use ergon_core::journal::dag::{PlannedNode, RunStart};
use rusqlite::{OptionalExtension, params};

use super::workflow::Transition;
use crate::handover;
use crate::run::{Definition, ItemResult, NodeEnded, Run};
use crate::{rows, tables};

impl Transition<'_> {
    /// Starts `start` unless its id is known; returns 1 if it is new.
    pub fn start_run(&self, start: &RunStart) -> rusqlite::Result<usize> {
        let known: Option<i64> = self
            .db
            .prepare_cached("SELECT 1 FROM ergon_run WHERE run_id = ?1")?
            .query_row([&start.run_id], |row| row.get(0))
            .optional()?;
        if known.is_some() {
            return Ok(0);
        }
        let definition = Definition {
            workflow: start.workflow.clone(),
            plan: start.plan.clone(),
            input: start.input.clone(),
            on_complete: start.on_complete.clone(),
            max_parallel: start.max_parallel,
        };
        let mut run = match Run::new(
            start.run_id.clone(),
            definition,
            &self.runs.expanders,
            self.now,
        ) {
            Ok(run) => run,
            Err(err) => {
                // Checked before it was sent: only a plan that changed meaning gets here.
                tracing::error!(run_id = %start.run_id, error = %err, "Run not started");
                return Ok(0);
            }
        };
        self.db
            .prepare_cached(
                "INSERT INTO ergon_run (run_id, workflow, status, owner_task, owner_id,
                     owner_metadata, definition, state, nodes_total, nodes_done, nodes_failed,
                     deadline_ms, created_at)
                 VALUES (?1, ?2, 'running', ?3, ?4, ?5, '', '', 0, 0, 0, ?6, ?7)",
            )?
            .execute(params![
                start.run_id,
                start.workflow,
                start.owner_task,
                start.owner.id(),
                ergon_connectors::local::metadata_json(start.owner.metadata()),
                start.deadline_ms,
                self.now,
            ])?;
        run.start();
        self.apply(run, &start.owner)?;
        Ok(1)
    }

    /// Adds `nodes` to run `run_id`; returns 1 if they were added (0: the run ended, or
    /// the extension no longer fits its plan).
    pub fn extend_run(&self, run_id: &str, nodes: &[PlannedNode]) -> rusqlite::Result<usize> {
        let Some((mut run, owner)) = self.load_run(run_id)? else {
            return Ok(0);
        };
        if let Err(err) = run.extend(nodes.to_vec()) {
            tracing::warn!(run_id, error = %err, "Run not extended");
            return Ok(0);
        }
        self.apply(run, &owner)?;
        Ok(1)
    }

    /// Advances the run whose node (or item) `c` completed, given its journaled
    /// `status` and `output`. A transaction that only looks like a node (its id is not
    /// the node's) changes nothing.
    pub(super) fn advance_run(
        &self,
        c: &Completion,
        status: &str,
        output: Option<&str>,
    ) -> rusqlite::Result<()> {
        let Some(ended) = NodeEnded::of(c, status, output) else {
            return Ok(());
        };
        let Some((mut run, owner)) = self.load_run(&ended.run_id)? else {
            return Ok(());
        };
        let (run_id, task) = (ended.run_id.clone(), ended.task.clone());
        if let Some(node) = run.take(ended) {
            let results = self.item_results(&run_id, &node, &task)?;
            run.join(&node, results);
        }
        self.apply(run, &owner)
    }

    /// Times out every running run whose deadline has passed; returns how many.
    pub fn time_out_runs(&self) -> rusqlite::Result<usize> {
        let due: Vec<String> = self
            .db
            .prepare_cached(
                "SELECT run_id FROM ergon_run
                 WHERE status = 'running' AND deadline_ms IS NOT NULL AND deadline_ms <= ?1",
            )?
            .query_map([self.now], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for run_id in &due {
            if let Some((mut run, owner)) = self.load_run(run_id)? {
                run.time_out();
                self.apply(run, &owner)?;
            }
        }
        Ok(due.len())
    }

    /// Run `run_id` and its owner, while it is running.
    fn load_run(&self, run_id: &str) -> rusqlite::Result<Option<(Run<'_>, Transaction)>> {
        let row: Option<(String, String, String, String)> = self
            .db
            .prepare_cached(
                "SELECT definition, state, owner_id, owner_metadata FROM ergon_run
                 WHERE run_id = ?1 AND status = 'running'",
            )?
            .query_row([run_id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .optional()?;
        let Some((definition, state, owner_id, owner_metadata)) = row else {
            return Ok(None);
        };
        match Run::load(
            run_id.to_owned(),
            &definition,
            &state,
            &self.runs.expanders,
            self.now,
        ) {
            Ok(run) => Ok(Some((
                run,
                handover::rebuilt(&owner_id, &[], &owner_metadata),
            ))),
            Err(err) => {
                tracing::error!(run_id, error = %err, "Run cannot be advanced");
                Ok(None)
            }
        }
    }

    /// The items of expanded node `node` of run `run_id` (run by `task`), in order.
    fn item_results(
        &self,
        run_id: &str,
        node: &str,
        task: &str,
    ) -> rusqlite::Result<Vec<ItemResult>> {
        self.db
            .prepare_cached(&tables::RUN_ITEMS.replace('$', "?"))?
            .query_map(params![run_id, node, task], |row| rows::item_result(row))?
            .collect()
    }

    /// Applies what `run` decided, as children of `owner`, and writes its row back.
    fn apply(&self, run: Run<'_>, owner: &Transaction) -> rusqlite::Result<()> {
        let writes = run.writes(owner, self.now);
        let mut item = self.db.prepare_cached(
            "INSERT INTO ergon_run_item (run_id, node, idx, item_key) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
        )?;
        for (node, index, key) in &writes.items {
            item.execute(params![writes.row.run_id, node, index, key])?;
        }
        for (task, tx, edge) in &writes.handovers {
            self.emit(task, tx, *edge)?;
        }
        for (task, id) in &writes.withdraw {
            self.cancel_queued(task, id)?;
        }
        self.events.borrow_mut().extend(writes.events);
        let row = &writes.row;
        self.db
            .prepare_cached(tables::SAVE_RUN.replace('$', "?").as_str())?
            .execute(params![
                row.run_id,
                row.status,
                row.definition,
                row.state,
                row.nodes_total,
                row.nodes_done,
                row.nodes_failed,
                row.finished_at,
            ])?;
        Ok(())
    }
}
