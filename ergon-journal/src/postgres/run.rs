//! DAG runs in the PostgreSQL writer's commits: the same transitions as the SQLite
//! journal's (`crate::sqlite`'s `run`), decided by the same [`Run`], under the writer
//! lock every commit holds (one commit at a time across machines, so a run's row is read
//! and written back by one commit at a time). What a run hands over joins the commit's
//! queue, and so the outbox the relay dispatches.

use ergon_core::Transaction;
use ergon_core::journal::dag::{PlannedNode, RunStart};
use tokio_postgres::Error;

use super::workflow::Commit;
use crate::handover;
use crate::run::{Definition, ItemResult, Run};
use crate::{rows, tables};

/// The error a node withdrawn by its run's timeout records.
const TIMED_OUT: &str = "cancelled: its run timed out";

impl<'a> Commit<'a> {
    /// Starts `start` unless its id is known; returns 1 if it is new.
    pub async fn start_run(&mut self, start: &RunStart) -> Result<usize, Error> {
        let definition = Definition {
            workflow: start.workflow.clone(),
            plan: start.plan.clone(),
            input: start.input.clone(),
            on_complete: start.on_complete.clone(),
            max_parallel: start.max_parallel,
        };
        let runs: &'a crate::events::RunSettings = self.runs;
        let mut run = match Run::new(start.run_id.clone(), definition, &runs.expanders, self.now) {
            Ok(run) => run,
            Err(err) => {
                tracing::error!(run_id = %start.run_id, error = %err, "Run not started");
                return Ok(0);
            }
        };
        let inserted = self
            .tx
            .execute(
                "INSERT INTO ergon_run (run_id, workflow, status, owner_task, owner_id,
                     owner_metadata, definition, state, nodes_total, nodes_done, nodes_failed,
                     deadline_ms, created_at)
                 VALUES ($1, $2, 'running', $3, $4, $5, '', '', 0, 0, 0, $6, $7)
                 ON CONFLICT (run_id) DO NOTHING",
                &[
                    &start.run_id,
                    &start.workflow,
                    &start.owner_task,
                    &start.owner.id(),
                    &ergon_connectors::local::metadata_json(start.owner.metadata()),
                    &start.deadline_ms,
                    &self.now,
                ],
            )
            .await?;
        if inserted == 0 {
            return Ok(0);
        }
        run.start();
        self.apply_run(run, &start.owner).await?;
        Ok(1)
    }

    /// Adds `nodes` to run `run_id`; returns 1 if they were added.
    pub async fn extend_run(
        &mut self,
        run_id: &str,
        nodes: &[PlannedNode],
    ) -> Result<usize, Error> {
        let Some((mut run, owner)) = self.load_run(run_id).await? else {
            return Ok(0);
        };
        if let Err(err) = run.extend(nodes.to_vec()) {
            tracing::warn!(run_id, error = %err, "Run not extended");
            return Ok(0);
        }
        self.apply_run(run, &owner).await?;
        Ok(1)
    }

    /// Advances the runs whose nodes this commit's completions ended, in the order they
    /// completed (after the completions are written, so a join reads its items).
    pub async fn advance_runs(&mut self) -> Result<(), Error> {
        let ended = std::mem::take(&mut self.runs_ended);
        for step in ended {
            let Some((mut run, owner)) = self.load_run(&step.run_id).await? else {
                continue;
            };
            let (run_id, task) = (step.run_id.clone(), step.task.clone());
            if let Some(node) = run.take(step) {
                let results = self.item_results(&run_id, &node, &task).await?;
                run.join(&node, results);
            }
            self.apply_run(run, &owner).await?;
        }
        Ok(())
    }

    /// Times out every running run whose deadline has passed; returns how many.
    pub async fn time_out_runs(&mut self) -> Result<usize, Error> {
        let due: Vec<String> = self
            .tx
            .query(
                "SELECT run_id FROM ergon_run
                 WHERE status = 'running' AND deadline_ms IS NOT NULL AND deadline_ms <= $1",
                &[&self.now],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        for run_id in &due {
            if let Some((mut run, owner)) = self.load_run(run_id).await? {
                run.time_out();
                self.apply_run(run, &owner).await?;
            }
        }
        Ok(due.len())
    }

    /// Run `run_id` and its owner, while it is running.
    async fn load_run(&self, run_id: &str) -> Result<Option<(Run<'a>, Transaction)>, Error> {
        let runs: &'a crate::events::RunSettings = self.runs;
        let row = self
            .tx
            .query_opt(
                "SELECT definition, state, owner_id, owner_metadata FROM ergon_run
                 WHERE run_id = $1 AND status = 'running'",
                &[&run_id],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (definition, state): (String, String) = (row.get(0), row.get(1));
        let (owner_id, owner_metadata): (String, String) = (row.get(2), row.get(3));
        match Run::load(
            run_id.to_owned(),
            &definition,
            &state,
            &runs.expanders,
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
    async fn item_results(
        &self,
        run_id: &str,
        node: &str,
        task: &str,
    ) -> Result<Vec<ItemResult>, Error> {
        let statement = self.tx.prepare_cached(tables::RUN_ITEMS).await?;
        self.tx
            .query(&statement, &[&run_id, &node, &task])
            .await?
            .iter()
            .map(rows::item_result)
            .collect()
    }

    /// Applies what `run` decided, as children of `owner`: its hand-overs join the
    /// commit's queue, its withdrawals cancel queued nodes, its row is written back.
    async fn apply_run(&mut self, run: Run<'_>, owner: &Transaction) -> Result<(), Error> {
        let writes = run.writes(owner, self.now);
        let row = &writes.row;
        if !writes.items.is_empty() {
            let nodes: Vec<&str> = writes.items.iter().map(|i| i.0.as_str()).collect();
            let indexes: Vec<i64> = writes.items.iter().map(|i| i64::from(i.1)).collect();
            let keys: Vec<&str> = writes.items.iter().map(|i| i.2.as_str()).collect();
            self.tx
                .execute(
                    "INSERT INTO ergon_run_item (run_id, node, idx, item_key)
                     SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::text[])
                     ON CONFLICT DO NOTHING",
                    &[&row.run_id, &nodes, &indexes, &keys],
                )
                .await?;
        }
        if !writes.withdraw.is_empty() {
            let ids: Vec<String> = writes.withdraw.iter().map(|(_, id)| id.clone()).collect();
            self.cancel_queued(owner.id(), Some(&ids), TIMED_OUT)
                .await?;
        }
        let statement = self.tx.prepare_cached(tables::SAVE_RUN).await?;
        self.tx
            .execute(
                &statement,
                &[
                    &row.run_id,
                    &row.status,
                    &row.definition,
                    &row.state,
                    &row.nodes_total,
                    &row.nodes_done,
                    &row.nodes_failed,
                    &row.finished_at,
                ],
            )
            .await?;
        for (task, tx, edge) in writes.handovers {
            self.queued.push((task, tx, edge, None));
        }
        self.events.extend(writes.events);
        Ok(())
    }
}
