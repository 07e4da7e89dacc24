//! The `queue stats | dead-letters | requeue-dead` commands on a PostgreSQL queue.

use async_trait::async_trait;
use ergon_core::TaskError;
use ergon_core::queue_admin::{DeadLetter, QueueAdmin, QueueStats};

use super::config::PostgresConfig;
use super::database::Database;

/// The administration of one PostgreSQL queue: reads and moves rows, claims none.
pub(super) struct PostgresAdmin {
    db: Database,
}

impl PostgresAdmin {
    /// Connects (one connection) and creates the tables when missing.
    pub(super) async fn open(config: &PostgresConfig, queue: &str) -> Result<Self, TaskError> {
        Ok(Self {
            db: Database::open(config, queue, 1).await?,
        })
    }
}

/// Reads a count column (`count(*)` is a `bigint`).
fn count(row: &tokio_postgres::Row, column: usize) -> u64 {
    u64::try_from(row.get::<_, i64>(column)).unwrap_or(0)
}

#[async_trait]
impl QueueAdmin for PostgresAdmin {
    /// `ready` (claimable now, expired leases included), `in_flight` (under a lease),
    /// `done` (acked with `on_ack = "mark_done"`), `dead`.
    async fn stats(&self) -> Result<QueueStats, TaskError> {
        let db = &self.db;
        let depths = db
            .query("cannot read the depths", &db.sql.depths, &[&db.queue])
            .await?;
        let dead = db
            .query(
                "cannot count the dead letters",
                &db.sql.dead_count,
                &[&db.queue],
            )
            .await?;
        let (depths, dead) = (&depths[0], &dead[0]);
        Ok(QueueStats::new(db.queue.clone())
            .count("ready", count(depths, 0))
            .count("in_flight", count(depths, 1))
            .count("done", count(depths, 2))
            .count("dead", count(dead, 0)))
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, TaskError> {
        let db = &self.db;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = db
            .query(
                "cannot read the dead letters",
                &db.sql.dead_letters,
                &[&db.queue, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| DeadLetter {
                id: row.get(0),
                deliveries: u32::try_from(row.get::<_, i32>(1)).unwrap_or(0),
                failure: row
                    .get::<_, Option<String>>(2)
                    .and_then(|text| serde_json::from_str(&text).ok()),
                failed_at_ms: row.get(3),
                payload: row.get(4),
            })
            .collect())
    }

    async fn requeue_dead(&self) -> Result<u64, TaskError> {
        let db = &self.db;
        let rows = db
            .query(
                "cannot requeue the dead letters",
                &db.sql.requeue_dead,
                &[&db.queue, &db.channel],
            )
            .await?;
        Ok(count(&rows[0], 0))
    }
}
