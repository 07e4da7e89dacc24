//! `type = "redis_streams"`: a Redis stream as a work queue, read by a consumer group,
//! with [redis-rs](redis) over reconnecting connections (`ConnectionManager`).
//!
//! * **Entries**: fields `id`, `payload` (raw bytes) and `metadata` (a JSON object); the
//!   layout is documented in `entry.rs` and on the crate's README section. An entry
//!   missing a field is still delivered (no payload: an empty one), so a malformed entry
//!   is dead-lettered by its task, never lost and never blocking the group.
//! * **Group**: created on first use at the start of the stream (`XGROUP CREATE … 0
//!   MKSTREAM`; an existing group is left as it is), so a new group sees every entry the
//!   stream already holds. Each worker is a consumer of its own (`consumer-<worker>`).
//! * **Fetch**: first, every `claim_idle / 2`, the entries other consumers have held
//!   unsettled for longer than `claim_idle` are taken over (`XAUTOCLAIM`, continuing its
//!   cursor until a scan is complete): how the entries of a crashed worker come back.
//!   Then new entries (`XREADGROUP … >`, waiting up to `block` when none is there and
//!   nothing was claimed). Reads use a connection of their own, so that a waiting read
//!   never delays acknowledgements or dispatches.
//! * **Delivery count** ([`Transaction::deliveries`], bounded by
//!   `transaction.max_deliveries`): Redis counts deliveries per entry in the group's
//!   pending list. A new entry read with `>` is delivery 1 (no extra command); a claimed
//!   entry's count is read from the pending list (`XPENDING <stream> <group> <id> <id> 1`,
//!   pipelined, one round trip per claimed batch), which `XAUTOCLAIM` incremented. A
//!   requeued entry is a new entry carrying the deliveries it had (`deliveries` field),
//!   added to the count. So the count is exact across requeues, crashes and reclaims.
//! * **Settle**: the receipt is the entry's id. `Ack` and `Drop` are coalesced: one
//!   `XACK` with many ids (and one `XDEL` of them with `delete_on_ack`, the default, so
//!   that the stream does not grow forever), in one `MULTI`, sent every `ack_interval`,
//!   at once when 256 wait, and at close; an ack that fails to send is kept for the next
//!   flush. `Requeue` adds a copy of the entry at the tail of the stream with its delivery
//!   count, and acknowledges (and deletes) the original; `DeadLetter` adds the entry's
//!   fields with `failure` ([`Failure::to_json`](ergon_core::Failure::to_json)),
//!   `deliveries` and `failed_at` to the dead-letter stream and acknowledges (and deletes)
//!   the original. Both run as one Lua script: all or nothing, and only if the entry is
//!   still pending; one already acknowledged (a consumer that claimed it after
//!   `claim_idle` finished it) is [stale](SettleOutcome::Stale) and nothing is added.
//! * **Dispatch**: one `XADD` per transaction (`MAXLEN ~ maxlen` when set), pipelined: one
//!   round trip per batch, done when Redis answered every one.
//! * **Drained** (the end of a finite run): after this worker's acks are sent, the group
//!   has nothing pending (delivered and unsettled, by any consumer) and nothing
//!   undelivered (`XINFO GROUPS`' `pending` and `lag`, Redis 7; an `XRANGE` past the
//!   group's position when the lag is unknown).
//! * **Health**: `PING`. **Admin** ([`MakeConnector::admin`]): stream length, pending,
//!   lag and dead letters; the dead letters, decoded; requeueing them.
//!
//! At least once: an entry is acknowledged only after its settlement; a worker that dies
//! leaves its entries pending, and another consumer takes them over after `claim_idle`.
//! A transaction slower than `claim_idle` may be delivered a second time while the first
//! is still running: set `claim_idle` above the slowest transaction.
//!
//! Files: `config.rs` (the TOML table, [`RedisStreamsConfig`]), `entry.rs` (entries to
//! transactions and back), `commands.rs` (commands shared with the admin), `admin.rs`
//! (the `queue` commands), this file (the connector and its ack flusher).

mod admin;
mod commands;
mod config;
mod entry;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::streams::StreamPendingCountReply;
use redis::{RedisError, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use ergon_core::config::{ConfigEnv, ConfigIssue, ConnectorKind, MakeConnector, decode};
use ergon_core::queue_admin::QueueAdmin;
use ergon_core::sync::lock;
use ergon_core::{Connector, Delivery, SettleOutcome, Settlement, TaskError, Transaction};

use crate::ack_flusher::NotedAcks;
pub use config::RedisStreamsConfig;
use entry::Entry;

/// Acknowledgements waiting beyond this many are sent at once.
const ACK_BATCH: usize = 256;

/// The `redis_streams` connector kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct RedisStreamsKind;

impl ConnectorKind for RedisStreamsKind {
    fn name(&self) -> &'static str {
        "redis_streams"
    }

    fn configure(
        &self,
        table: serde_json::Value,
        env: &ConfigEnv,
    ) -> Result<Arc<dyn MakeConnector>, ConfigIssue> {
        let config: RedisStreamsConfig = decode(table)?;
        config.validate()?;
        Ok(Arc::new(MakeRedisStreams {
            config: Arc::new(config),
            name: env.name.clone(),
        }))
    }
}

struct MakeRedisStreams {
    config: Arc<RedisStreamsConfig>,
    name: String,
}

#[async_trait]
impl MakeConnector for MakeRedisStreams {
    async fn connect(&self, worker: usize) -> Result<Arc<dyn Connector>, TaskError> {
        let connector =
            RedisStreamsConnector::connect(self.config.clone(), &self.name, worker).await?;
        Ok(Arc::new(connector))
    }

    /// What is added to the stream is what its group reads.
    fn takes_dispatches(&self) -> bool {
        true
    }

    async fn admin(&self) -> Result<Option<Arc<dyn QueueAdmin>>, TaskError> {
        let admin = admin::StreamAdmin::connect(self.config.clone(), &self.name).await?;
        Ok(Some(Arc::new(admin)))
    }
}

/// One worker's consumer of a Redis stream (see the module docs).
pub struct RedisStreamsConnector {
    shared: Arc<Shared>,
    flusher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What the connector and its ack flusher share.
struct Shared {
    config: Arc<RedisStreamsConfig>,
    /// `[connectors.NAME]`, for errors and logs.
    name: String,
    group: String,
    consumer: String,
    dead_letter_stream: String,
    /// Blocking reads and claims.
    reader: ConnectionManager,
    /// Everything else: acks, settlements, dispatches, checks.
    writer: ConnectionManager,
    /// Whether the group is known to exist (reset when Redis says it does not).
    group_ready: AtomicBool,
    claim: Mutex<Claim>,
    /// Ids acknowledged but not sent yet.
    acks: NotedAcks<String>,
    flush_now: Notify,
    closed: CancellationToken,
}

/// Where the reclaiming scan is.
struct Claim {
    /// `XAUTOCLAIM`'s cursor: `0-0` starts a scan.
    cursor: String,
    /// When the next scan may start.
    next_at: Instant,
}

impl RedisStreamsConnector {
    /// Connects worker `worker` of `[connectors.<name>]`: its consumer is
    /// `<consumer>-<worker>` in the group (see [`RedisStreamsConfig::consumer`]).
    ///
    /// # Errors
    ///
    /// Redis cannot be reached (a system error naming the connector and the server).
    pub async fn connect(
        config: Arc<RedisStreamsConfig>,
        name: &str,
        worker: usize,
    ) -> Result<Self, TaskError> {
        let fail = |err: RedisError| {
            TaskError::system(format!(
                "redis_streams {name}: cannot connect to {}",
                config.url
            ))
            .with_source(err)
        };
        // A read waits up to `block` for Redis to answer at all.
        let reader = commands::connect(&config, config.block + config.command_timeout)
            .await
            .map_err(fail)?;
        let writer = commands::connect(&config, config.command_timeout)
            .await
            .map_err(fail)?;
        let consumer = config.consumer.clone().unwrap_or_else(default_consumer);
        let shared = Arc::new(Shared {
            group: config.group.clone().unwrap_or_else(|| name.to_owned()),
            consumer: format!("{consumer}-{worker}"),
            dead_letter_stream: config.dead_letter_stream(),
            name: name.to_owned(),
            reader,
            writer,
            group_ready: AtomicBool::new(false),
            claim: Mutex::new(Claim {
                cursor: "0-0".to_owned(),
                next_at: Instant::now(),
            }),
            acks: NotedAcks::new(),
            flush_now: Notify::new(),
            closed: CancellationToken::new(),
            config,
        });
        let flusher = tokio::spawn(flush_acks(shared.clone()));
        Ok(Self {
            shared,
            flusher: Mutex::new(Some(flusher)),
        })
    }

    /// This worker's consumer name in the group.
    pub fn consumer(&self) -> &str {
        &self.shared.consumer
    }
}

/// `<hostname>-<pid>`: unique per process on a machine, and telling which one it was.
fn default_consumer() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ergon".to_owned());
    format!("{host}-{}", std::process::id())
}

impl Shared {
    /// A system error naming the connector, its stream and `what` failed.
    fn error(&self, what: &str, err: RedisError) -> TaskError {
        if err.code() == Some("NOGROUP") {
            // The stream or group was deleted: create it again on the next call.
            self.group_ready.store(false, Relaxed);
        }
        TaskError::system(format!(
            "redis_streams {} (stream {}, group {}): {what}",
            self.name, self.config.stream, self.group
        ))
        .with_source(err)
    }

    /// Creates the group once (see the module docs).
    async fn ensure_group(&self) -> Result<(), TaskError> {
        if self.group_ready.load(Relaxed) {
            return Ok(());
        }
        commands::create_group(&mut self.writer.clone(), &self.config.stream, &self.group)
            .await
            .map_err(|err| self.error("cannot create the consumer group", err))?;
        self.group_ready.store(true, Relaxed);
        Ok(())
    }

    /// Takes over up to `max` entries idle longer than `claim_idle`, when a scan is due.
    async fn claim(&self, max: usize) -> Result<Vec<Delivery>, TaskError> {
        let cursor = {
            let claim = lock(&self.claim);
            if Instant::now() < claim.next_at {
                return Ok(Vec::new());
            }
            claim.cursor.clone()
        };
        let config = &self.config;
        let reply: Value = redis::cmd("XAUTOCLAIM")
            .arg(&config.stream)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(config.claim_idle.as_millis() as u64)
            .arg(&cursor)
            .arg("COUNT")
            .arg(max)
            .query_async(&mut self.reader.clone())
            .await
            .map_err(|err| self.error("cannot claim idle entries", err))?;
        let (next, claimed) = entry::claim_reply(reply);
        {
            let mut claim = lock(&self.claim);
            if next == "0-0" {
                claim.next_at = Instant::now() + config.claim_idle / 2;
            }
            claim.cursor = next;
        }
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        // How many times each was delivered, XAUTOCLAIM's included.
        let mut pipe = redis::pipe();
        for entry in &claimed {
            pipe.cmd("XPENDING")
                .arg(&config.stream)
                .arg(&self.group)
                .arg(&entry.entry_id)
                .arg(&entry.entry_id)
                .arg(1);
        }
        let counts: Vec<StreamPendingCountReply> = pipe
            .query_async(&mut self.writer.clone())
            .await
            .map_err(|err| self.error("cannot read the delivery counts", err))?;
        let deliveries = claimed.into_iter().zip(counts).map(|(entry, count)| {
            let times = count.ids.first().map_or(1, |p| p.times_delivered);
            delivery(entry, u32::try_from(times).unwrap_or(u32::MAX))
        });
        Ok(deliveries.collect())
    }

    /// Reads up to `max` new entries, waiting up to `block` when `wait` and none is there.
    async fn read(&self, max: usize, wait: bool) -> Result<Vec<Delivery>, TaskError> {
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(max);
        if wait {
            read.arg("BLOCK")
                .arg(self.config.block.as_millis().max(1) as u64);
        }
        read.arg("STREAMS").arg(&self.config.stream).arg(">");
        let reply: Value = read
            .query_async(&mut self.reader.clone())
            .await
            .map_err(|err| self.error("cannot read", err))?;
        // A new entry is delivered for the first time in the group.
        let entries = entry::read_reply(reply).into_iter();
        Ok(entries.map(|entry| delivery(entry, 1)).collect())
    }

    /// Sends the acknowledgements waiting: one `XACK` (and `XDEL`) in one `MULTI`. Ids
    /// that could not be sent are kept for the next flush.
    async fn flush(&self) -> Result<(), TaskError> {
        self.acks
            .flush(|ids| async move {
                let config = &self.config;
                let mut pipe = redis::pipe();
                pipe.atomic();
                pipe.cmd("XACK")
                    .arg(&config.stream)
                    .arg(&self.group)
                    .arg(&ids)
                    .ignore();
                if config.delete_on_ack {
                    pipe.cmd("XDEL").arg(&config.stream).arg(&ids).ignore();
                }
                let sent: Result<(), RedisError> = pipe.query_async(&mut self.writer.clone()).await;
                sent.map_err(|err| {
                    let what = format!("cannot acknowledge {} entries", ids.len());
                    let err = self.error(&what, err);
                    (ids, err)
                })
            })
            .await
    }
}

/// The delivery of `entry`, delivered `times` by the group.
fn delivery(mut entry: Entry, times: u32) -> Delivery {
    let id = std::mem::take(&mut entry.entry_id);
    let (tx, unread_metadata) = entry.transaction(times);
    Delivery::new(
        tx,
        EntryId {
            id,
            unread_metadata,
        },
    )
}

/// A delivery's receipt: the entry's id in the stream, and its `metadata` field when it
/// could not be read (so that a requeue or a dead letter keeps it as it was).
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntryId {
    id: String,
    unread_metadata: Option<bytes::Bytes>,
}

#[async_trait]
impl Connector for RedisStreamsConnector {
    async fn fetch(&self, max: usize) -> Result<Vec<Delivery>, TaskError> {
        let shared = &self.shared;
        shared.ensure_group().await?;
        let mut batch = shared.claim(max).await?;
        if batch.len() < max {
            let fresh = shared.read(max - batch.len(), batch.is_empty()).await?;
            batch.extend(fresh);
        }
        Ok(batch)
    }

    async fn settle(
        &self,
        delivery: &Delivery,
        settlement: &Settlement,
    ) -> Result<SettleOutcome, TaskError> {
        let shared = &self.shared;
        let tx = delivery.transaction();
        let Some(EntryId {
            id: entry_id,
            unread_metadata,
        }) = delivery.receipt::<EntryId>()
        else {
            return Err(TaskError::system(format!(
                "redis_streams {}: transaction {} did not come from this connector",
                shared.name,
                tx.id()
            ))
            .non_retryable());
        };
        let (to, fields, what) = match settlement {
            Settlement::Ack | Settlement::Drop(_) => {
                if shared.acks.note(entry_id.clone()) >= ACK_BATCH {
                    shared.flush_now.notify_one();
                }
                return Ok(SettleOutcome::Performed);
            }
            Settlement::Requeue => (
                shared.config.stream.as_str(),
                entry::requeued(tx, unread_metadata.as_ref()),
                "cannot requeue",
            ),
            Settlement::DeadLetter(failure) => (
                shared.dead_letter_stream.as_str(),
                entry::dead_letter(tx, unread_metadata.as_ref(), failure),
                "cannot dead-letter",
            ),
        };
        let step = commands::Move {
            stream: &shared.config.stream,
            group: &shared.group,
            entry_id,
            delete: shared.config.delete_on_ack,
            to,
            maxlen: shared.config.maxlen,
            fields,
        };
        let moved = commands::move_entry(&mut shared.writer.clone(), step)
            .await
            .map_err(|err| shared.error(&format!("{what} entry {entry_id}"), err))?;
        if moved {
            Ok(SettleOutcome::Performed)
        } else {
            tracing::debug!(connector = %shared.name, id = tx.id(), entry = %entry_id, "Settlement not performed: the entry was acknowledged already");
            Ok(SettleOutcome::Stale)
        }
    }

    /// See the module docs: nothing pending in the group, nothing undelivered.
    async fn drained(&self) -> Result<bool, TaskError> {
        let shared = &self.shared;
        shared.flush().await?;
        shared.ensure_group().await?;
        let mut conn = shared.writer.clone();
        let stream = &shared.config.stream;
        let check = async {
            let Some(group) = commands::group_info(&mut conn, stream, &shared.group).await? else {
                return Ok(false);
            };
            if group.pending > 0 {
                return Ok(false);
            }
            Ok(commands::undelivered(&mut conn, stream, &group).await? == 0)
        };
        check
            .await
            .map_err(|err| shared.error("cannot read the group's state", err))
    }

    async fn dispatch(&self, transactions: &[Transaction]) -> Result<(), TaskError> {
        if transactions.is_empty() {
            return Ok(());
        }
        let shared = &self.shared;
        let mut pipe = redis::pipe();
        for tx in transactions {
            commands::add(
                &mut pipe,
                &shared.config.stream,
                shared.config.maxlen,
                &entry::fields(tx),
            );
        }
        pipe.query_async::<()>(&mut shared.writer.clone())
            .await
            .map_err(|err| shared.error(&format!("cannot add {} entries", transactions.len()), err))
    }

    async fn health(&self) -> Result<(), TaskError> {
        let shared = &self.shared;
        redis::cmd("PING")
            .query_async::<()>(&mut shared.writer.clone())
            .await
            .map_err(|err| shared.error(&format!("{} does not answer", shared.config.url), err))
    }

    async fn close(&self) -> Result<(), TaskError> {
        self.shared.closed.cancel();
        let flusher = lock(&self.flusher).take();
        if let Some(flusher) = flusher {
            let _ = flusher.await;
        }
        self.shared.flush().await
    }
}

/// Sends acknowledgements every `ack_interval`, or at once when a batch is waiting.
async fn flush_acks(shared: Arc<Shared>) {
    let failed = |err: &TaskError| {
        tracing::warn!(connector = %shared.name, error = %err.chain(), "Redis acknowledgements not sent; they are sent with the next flush");
    };
    crate::ack_flusher::run(
        shared.config.ack_interval,
        &shared.flush_now,
        &shared.closed,
        || shared.flush(),
        failed,
    )
    .await;
}
