//! `type = "postgres"`: a durable queue in a PostgreSQL table, shared by any number of
//! workers and runner processes on any number of machines.
//!
//! The schema (`schema`, default `ergon`, created on first use with its tables) holds one
//! queue table for all its queues, told apart by the `queue` column, and one dead-letter
//! table (see [`PostgresConfig`] for the keys).
//!
//! * **Dispatch** inserts a batch in one statement (arrays `unnest`ed in order) and
//!   notifies the schema's channel (`ergon_queue_<schema>`, the queue's name as payload)
//!   in the same commit.
//! * **Fetch** claims up to `max` of the oldest claimable rows in one statement:
//!   `UPDATE … WHERE seq IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n) RETURNING …`, which
//!   sets the row's lease (invisible until `now() + lease`, stamped with a random token)
//!   and counts the delivery. Concurrent claims skip each other's rows, so several
//!   workers and processes share a queue and each row goes to one of them. The receipt is
//!   the row and the token; [`Transaction::deliveries`] is the row's count (requeues,
//!   expired leases, killed runners all count). When nothing is claimable, the fetch
//!   waits up to `fetch_wait` for a notification (a dedicated connection `LISTEN`s) and
//!   claims once more: a dispatch from anywhere wakes it within a round trip, and nothing
//!   polls faster than `fetch_wait`.
//! * **Settle**, always only under the lease that fetched the row (a row whose lease ran
//!   out and was claimed again answers [`SettleOutcome::Stale`]):
//!   `Ack` deletes the row (`on_ack = "delete"`) or stamps it done (`"mark_done"`);
//!   `Drop` deletes it. Both are coalesced into one statement per `ack_interval` or per
//!   256 settlements, and flushed at close; an ack lost in a crash means a redelivery. An
//!   ack whose lease is about to run out (within `ack_interval` plus a second) is written
//!   at once instead, so that a stale one is reported as such. `Requeue` makes the row
//!   claimable at once. `DeadLetter` moves it, with [`Failure::to_json`], its delivery
//!   count and `failed_at`, to `ergon_dead_letter` in one statement.
//! * **Drained** (the end of a finite run): after this worker's acks are written, no row
//!   of the queue is claimable or leased (rows leased elsewhere may come back).
//! * **Outage** (the database restarting, down, or ending the connections): a fetch or a
//!   drained check that cannot reach it logs once, waits `fetch_wait` and answers an
//!   empty batch / not drained, so the run waits for the database and resumes by itself
//!   (as with a broker that restarts; a finite run is bounded by its `loop.timeout`).
//!   [`Connector::health`] fails meanwhile. Settlements go through their retry envelope;
//!   one that cannot be written leaves its row to come back when its lease runs out.
//!
//! At least once: nothing is removed before its ack, and a runner killed with rows in
//! flight has them claimed again when their lease runs out. In the normal case each row
//! is processed once, whichever of the processes sharing the queue claims it.
//!
//! [`Failure::to_json`]: ergon_core::Failure::to_json

mod admin;
mod config;
mod database;
mod listen;
mod schema;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use ergon_core::config::{ConfigEnv, ConfigIssue, ConnectorKind, MakeConnector, decode};
use ergon_core::queue_admin::QueueAdmin;
use ergon_core::sync::lock;
use ergon_core::transaction::Metadata;
use ergon_core::{Connector, Delivery, SettleOutcome, Settlement, TaskError, Transaction};

pub use config::{OnAck, PostgresConfig};

use crate::ack_flusher::NotedAcks;
use database::Database;
use listen::Listener;

/// Settlements waiting beyond this many are flushed at once.
const ACK_BATCH: usize = 256;

/// An ack is coalesced only while its lease has at least `ack_interval` plus this left.
const LEASE_MARGIN: Duration = Duration::from_secs(1);

/// The `postgres` connector kind (`type = "postgres"`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresKind;

impl ConnectorKind for PostgresKind {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn configure(
        &self,
        table: serde_json::Value,
        env: &ConfigEnv,
    ) -> Result<Arc<dyn MakeConnector>, ConfigIssue> {
        let config: PostgresConfig = decode(table)?;
        config.validate()?;
        let queue = config.queue.clone().unwrap_or_else(|| env.name.clone());
        Ok(Arc::new(MakePostgres { config, queue }))
    }
}

struct MakePostgres {
    config: PostgresConfig,
    queue: String,
}

#[async_trait]
impl MakeConnector for MakePostgres {
    async fn connect(&self, _worker: usize) -> Result<Arc<dyn Connector>, TaskError> {
        let connector = PostgresConnector::connect(&self.config, &self.queue).await?;
        Ok(Arc::new(connector))
    }

    /// A PostgreSQL queue fetches what is dispatched into it.
    fn takes_dispatches(&self) -> bool {
        true
    }

    /// The queue's depths and its dead-letter table.
    async fn admin(&self) -> Result<Option<Arc<dyn QueueAdmin>>, TaskError> {
        let admin = admin::PostgresAdmin::open(&self.config, &self.queue).await?;
        Ok(Some(Arc::new(admin)))
    }
}

/// A PostgreSQL queue's receipt: the row, the claim's token, and when its lease ends.
#[derive(Debug, Clone, Copy)]
struct Lease {
    seq: i64,
    token: i64,
    /// The lease's end as this process sees it (measured from before the claim).
    until: Instant,
}

/// An ack or drop waiting to be written.
#[derive(Debug, Clone, Copy)]
struct Settled {
    seq: i64,
    token: i64,
    /// Delete the row (a drop, or `on_ack = "delete"`), else mark it done.
    delete: bool,
}

/// One worker's connection to a PostgreSQL queue (see the module docs).
pub struct PostgresConnector {
    shared: Arc<Shared>,
    listener: Listener,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    db: Database,
    config: PostgresConfig,
    /// Acks and drops not written yet.
    acks: NotedAcks<Settled>,
    flush_now: Notify,
    closed: CancellationToken,
    /// Whether the last fetch or drained check found the database out of reach.
    away: AtomicBool,
}

impl PostgresConnector {
    /// Connects to `queue` as `config` says: creates the schema and tables when missing,
    /// starts the listener and the ack writer.
    ///
    /// # Errors
    ///
    /// A malformed URL (non-retryable), a database that cannot be reached, tables that
    /// cannot be created, a `LISTEN` that fails.
    pub async fn connect(
        config: &PostgresConfig,
        queue: &str,
    ) -> Result<PostgresConnector, TaskError> {
        let db = Database::open(config, queue, config.pool_size).await?;
        let listener = Listener::start(
            db.config.clone(),
            db.channel.clone(),
            db.queue.clone(),
            db.place.clone(),
        )
        .await?;
        let shared = Arc::new(Shared {
            db,
            config: config.clone(),
            acks: NotedAcks::new(),
            flush_now: Notify::new(),
            closed: CancellationToken::new(),
            away: AtomicBool::new(false),
        });
        let flusher = tokio::spawn(flush_acks(shared.clone()));
        Ok(PostgresConnector {
            shared,
            listener,
            flusher: Mutex::new(Some(flusher)),
        })
    }

    /// Claims up to `max` rows (see the module docs).
    async fn claim(&self, max: usize) -> Result<Vec<Delivery>, TaskError> {
        let db = &self.shared.db;
        let lease = self.shared.config.lease;
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let token = fastrand::i64(1..);
        let until = Instant::now() + lease;
        let rows = db
            .query(
                "cannot claim rows",
                &db.sql.claim,
                &[&db.queue, &max, &lease_ms, &token],
            )
            .await?;
        // `RETURNING` follows no order: oldest first, as claimed.
        let mut claimed: Vec<(i64, &tokio_postgres::Row)> =
            rows.iter().map(|row| (row.get(0), row)).collect();
        claimed.sort_unstable_by_key(|(seq, _)| *seq);
        Ok(claimed
            .into_iter()
            .map(|(seq, row)| Delivery::new(transaction(row), Lease { seq, token, until }))
            .collect())
    }

    /// Runs a settlement `statement` (`$1` seq, `$2` token, `extra` after) now: performed
    /// if it found its row under its lease, else stale.
    async fn settle_now(
        &self,
        what: &str,
        statement: &str,
        lease: Lease,
        extra: Option<&String>,
    ) -> Result<SettleOutcome, TaskError> {
        let db = &self.shared.db;
        let changed = match extra {
            None => {
                db.execute(what, statement, &[&lease.seq, &lease.token])
                    .await?
            }
            Some(extra) => {
                db.execute(what, statement, &[&lease.seq, &lease.token, extra])
                    .await?
            }
        };
        Ok(under_lease(changed == 1))
    }

    /// Waits out an outage: an error saying the database is out of reach
    /// ([`database::unreachable`]) is logged once per outage, waited on for `fetch_wait`
    /// and answered with `quiet` (an empty batch, not drained), so the loop goes on and
    /// resumes when the database is back. Other errors are returned as they are.
    async fn through_outage<T>(
        &self,
        result: Result<T, TaskError>,
        quiet: T,
    ) -> Result<T, TaskError> {
        let place = &self.shared.db.place;
        match result {
            Ok(value) => {
                if self.shared.away.swap(false, Relaxed) {
                    tracing::info!(queue = %place, "Database reachable again; fetching");
                }
                Ok(value)
            }
            Err(err) if database::unreachable(&err) => {
                if !self.shared.away.swap(true, Relaxed) {
                    tracing::warn!(queue = %place, error = %err.chain(), "Database out of reach; waiting for it");
                }
                tokio::time::sleep(self.shared.config.fetch_wait).await;
                Ok(quiet)
            }
            Err(err) => Err(err),
        }
    }
}

#[async_trait]
impl Connector for PostgresConnector {
    /// Claims what is claimable; when nothing is, waits up to `fetch_wait` for a
    /// notification and claims once more. Out of reach, the database is waited for (see
    /// the module docs).
    async fn fetch(&self, max: usize) -> Result<Vec<Delivery>, TaskError> {
        let mut heard = self.listener.subscribe();
        heard.borrow_and_update();
        match self.claim(max).await {
            Ok(claimed) if claimed.is_empty() => {}
            claimed => return self.through_outage(claimed, Vec::new()).await,
        }
        let _ = tokio::time::timeout(self.shared.config.fetch_wait, heard.changed()).await;
        self.through_outage(self.claim(max).await, Vec::new()).await
    }

    async fn settle(
        &self,
        delivery: &Delivery,
        settlement: &Settlement,
    ) -> Result<SettleOutcome, TaskError> {
        let Some(&lease) = delivery.receipt::<Lease>() else {
            return Err(TaskError::system(format!(
                "{}: transaction {} was not fetched from this queue",
                self.shared.db.place,
                delivery.transaction().id()
            ))
            .non_retryable());
        };
        let sql = &self.shared.db.sql;
        match settlement {
            Settlement::Ack | Settlement::Drop(_) => {
                let delete = matches!(settlement, Settlement::Drop(_))
                    || self.shared.config.on_ack == OnAck::Delete;
                let margin = self.shared.config.ack_interval + LEASE_MARGIN;
                if lease.until.saturating_duration_since(Instant::now()) <= margin {
                    let statement = if delete {
                        &sql.delete_one
                    } else {
                        &sql.mark_done_one
                    };
                    return self.settle_now("cannot ack", statement, lease, None).await;
                }
                let noted = self.shared.acks.note(Settled {
                    seq: lease.seq,
                    token: lease.token,
                    delete,
                });
                if noted >= ACK_BATCH {
                    self.shared.flush_now.notify_one();
                }
                Ok(SettleOutcome::Performed)
            }
            Settlement::Requeue => {
                self.settle_now("cannot requeue", &sql.requeue, lease, None)
                    .await
            }
            Settlement::DeadLetter(failure) => {
                let failure = failure.to_json().to_string();
                self.settle_now(
                    "cannot dead-letter",
                    &sql.dead_letter,
                    lease,
                    Some(&failure),
                )
                .await
            }
        }
    }

    /// Drained when, after this worker's acks are written, the queue holds no row that
    /// is claimable or leased (by any worker or process). Never while the database is out
    /// of reach.
    async fn drained(&self) -> Result<bool, TaskError> {
        let check = async {
            flush(&self.shared).await?;
            let db = &self.shared.db;
            let depths = db
                .query("cannot read the depths", &db.sql.depths, &[&db.queue])
                .await?;
            let (ready, in_flight): (i64, i64) = (depths[0].get(0), depths[0].get(1));
            Ok(ready == 0 && in_flight == 0)
        };
        self.through_outage(check.await, false).await
    }

    /// One `INSERT` of the whole batch, in order, notifying waiting fetches at commit.
    async fn dispatch(&self, transactions: &[Transaction]) -> Result<(), TaskError> {
        if transactions.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = transactions.iter().map(Transaction::id).collect();
        let payloads: Vec<&[u8]> = transactions.iter().map(|tx| &tx.payload()[..]).collect();
        let metadata: Vec<String> = transactions
            .iter()
            .map(|tx| serde_json::to_string(tx.metadata()).unwrap_or_else(|_| "{}".to_owned()))
            .collect();
        let db = &self.shared.db;
        db.query(
            "cannot enqueue",
            &db.sql.enqueue,
            &[&db.queue, &ids, &payloads, &metadata, &db.channel],
        )
        .await
        .map(drop)
    }

    /// `SELECT 1` on a pooled connection.
    async fn health(&self) -> Result<(), TaskError> {
        let db = &self.shared.db;
        db.query("cannot run SELECT 1", "SELECT 1", &[])
            .await
            .map(drop)
    }

    /// Stops the ack writer and writes what it had not.
    async fn close(&self) -> Result<(), TaskError> {
        self.shared.closed.cancel();
        let flusher = lock(&self.flusher).take();
        if let Some(flusher) = flusher {
            let _ = flusher.await;
        }
        flush(&self.shared).await
    }
}

/// Writes acks every `ack_interval`, or at once when a batch is waiting.
async fn flush_acks(shared: Arc<Shared>) {
    let failed = |err: &TaskError| {
        tracing::warn!(queue = %shared.db.place, error = %err.chain(), "Acks not written yet; trying again until they are");
    };
    crate::ack_flusher::run(
        shared.config.ack_interval,
        &shared.flush_now,
        &shared.closed,
        || flush(&shared),
        failed,
    )
    .await;
}

/// Writes the pending acks and drops: one statement for deletes, one for marks. On
/// failure they are kept for the next flush (a settlement checks its lease, so writing
/// one late is safe).
async fn flush(shared: &Shared) -> Result<(), TaskError> {
    let db = &shared.db;
    shared
        .acks
        .flush(|settled| async move {
            let (deletes, marks): (Vec<Settled>, Vec<Settled>) =
                settled.into_iter().partition(|s| s.delete);
            let mut unwritten = Vec::new();
            let mut failure = None;
            for (batch, statement) in [(deletes, &db.sql.delete), (marks, &db.sql.mark_done)] {
                if batch.is_empty() {
                    continue;
                }
                let seqs: Vec<i64> = batch.iter().map(|s| s.seq).collect();
                let tokens: Vec<i64> = batch.iter().map(|s| s.token).collect();
                if let Err(err) = db
                    .execute("cannot write acks", statement, &[&seqs, &tokens])
                    .await
                {
                    unwritten.extend(batch);
                    failure.get_or_insert(err);
                }
            }
            match failure {
                None => Ok(()),
                Some(err) => Err((unwritten, err)),
            }
        })
        .await
}

/// A settlement that found its row under the fetching lease was performed; otherwise the
/// lease ran out and another delivery has the row.
fn under_lease(found: bool) -> SettleOutcome {
    if found {
        SettleOutcome::Performed
    } else {
        SettleOutcome::Stale
    }
}

/// A claimed row (`seq, tx_id, payload, metadata, deliveries`) as its transaction.
fn transaction(row: &tokio_postgres::Row) -> Transaction {
    let metadata: &str = row.get(3);
    let metadata: Metadata = if metadata == "{}" {
        Metadata::new()
    } else {
        serde_json::from_str(metadata).unwrap_or_default()
    };
    let payload: Vec<u8> = row.get(2);
    let mut builder = Transaction::builder(row.get::<_, String>(1)).payload(payload);
    for (key, value) in metadata {
        builder = builder.meta(key, value);
    }
    let deliveries: i32 = row.get(4);
    builder
        .build()
        .delivered(u32::try_from(deliveries).unwrap_or(0))
}
