//! `[journal.events]`: the progress of DAG runs (node and run transitions) published to
//! Redis, after the journal's commit that made them (feature `run-events`).
//!
//! ```text
//! journal writer thread ──publish: try_send, never waits──▶ queue (QUEUE_CAPACITY events)
//!                                    full: dropped, counted, one warning a minute
//! queue ──drain task──▶ one pipeline per batch: XADD key MAXLEN ~ n * field value …
//!                                             | PUBLISH channel {json}
//!         Redis away: the batch waits, reconnecting with capped backoff
//! ```
//!
//! Best effort by design: coordination never reads these events, so a slow or absent
//! Redis costs events, never a commit. At the end of a run the runner waits a little
//! ([`RedisEvents::flush`]) for what is queued to reach Redis.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ergon_core::config::secret::SecretUrl;
use ergon_core::policy::RetryPolicy;
use ergon_journal::EventSink;
use ergon_journal::config::{EventsConfig, EventsMode};
use ergon_journal::run::RunEvent;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Pipeline, RedisError, RetryMethod};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};

/// How many events wait for Redis at most; more are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 10_000;

/// The most events sent in one pipeline, and so the most held out of the queue while
/// Redis is away.
pub const BATCH: usize = 256;

/// How long connecting, and each pipeline's answer, may take.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A warning that events were dropped comes at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The waits between attempts while Redis is away: 100ms doubling to 5s, jittered (only
/// the backoff fields are read).
const RECONNECT: RetryPolicy = RetryPolicy {
    max_attempts: 1,
    timeout: IO_TIMEOUT,
    backoff: Duration::from_millis(100),
    backoff_multiplier: 2.0,
    backoff_cap: Duration::from_secs(5),
    jitter: 0.2,
};

/// The publisher of `[journal.events]`: the journal's [`EventSink`], queueing events for
/// a task that sends them to Redis ([`start`](Self::start)).
pub struct RedisEvents {
    queue: mpsc::Sender<RunEvent>,
    /// The sending side, until [`start`](Self::start) spawns it.
    drain: Mutex<Option<Drain>>,
    /// Events queued so far.
    queued: AtomicU64,
    /// Events sent or given up so far, raised by the drain task after each batch.
    handled: watch::Receiver<u64>,
    dropped: Arc<Dropped>,
}

impl RedisEvents {
    /// The publisher of `config`, not started: nothing is sent until
    /// [`start`](Self::start); publishing before only queues.
    ///
    /// # Errors
    ///
    /// A URL redis-rs cannot read (the error names the problem, never the URL).
    pub fn new(config: &EventsConfig) -> Result<Self, RedisError> {
        let client = Client::open(config.url.expose())?;
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let (handled_tx, handled) = watch::channel(0);
        let dropped = Arc::new(Dropped::default());
        let drain = Drain {
            queue: receiver,
            client,
            url: config.url.clone(),
            target: Target {
                mode: config.mode,
                key: config.stream.clone(),
                maxlen: config.maxlen,
            },
            handled: handled_tx,
            dropped: dropped.clone(),
        };
        Ok(Self {
            queue,
            drain: Mutex::new(Some(drain)),
            queued: AtomicU64::new(0),
            handled,
            dropped,
        })
    }

    /// Spawns the task that sends the queued events, on the current tokio runtime; once
    /// (later calls do nothing).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn start(&self) {
        let drain = self
            .drain
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(drain) = drain {
            tokio::spawn(drain.run());
        }
    }

    /// Waits, at most `within`, until every event queued so far has been sent (or given
    /// up: refused by Redis); whether they all were.
    pub async fn flush(&self, within: Duration) -> bool {
        let queued = self.queued.load(Ordering::Acquire);
        let mut handled = self.handled.clone();
        let all_handled = handled.wait_for(|handled| *handled >= queued);
        matches!(tokio::time::timeout(within, all_handled).await, Ok(Ok(_)))
    }

    /// How many events were dropped so far: the queue was full, or Redis refused them.
    pub fn dropped(&self) -> u64 {
        self.dropped.total.load(Ordering::Relaxed)
    }
}

impl EventSink for RedisEvents {
    fn publish(&self, events: Vec<RunEvent>) {
        let mut dropped = 0;
        for event in events {
            match self.queue.try_send(event) {
                Ok(()) => {
                    self.queued.fetch_add(1, Ordering::Release);
                }
                Err(TrySendError::Full(_) | TrySendError::Closed(_)) => dropped += 1,
            }
        }
        if dropped > 0 {
            self.dropped
                .count(dropped, "the queue is full: Redis is slow or away");
        }
    }
}

/// Dropped events: the total, and those not reported by a warning yet.
#[derive(Default)]
struct Dropped {
    total: AtomicU64,
    unreported: Mutex<Unreported>,
}

/// Dropped events since the last warning, and when it came.
#[derive(Default)]
struct Unreported {
    count: u64,
    warned_at: Option<Instant>,
}

impl Dropped {
    /// Counts `count` events dropped because of `why`; warns (with every event dropped
    /// since the last warning) unless a warning came in the last minute.
    fn count(&self, count: u64, why: &str) {
        self.total.fetch_add(count, Ordering::Relaxed);
        let mut unreported = self
            .unreported
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        unreported.count += count;
        if unreported
            .warned_at
            .is_none_or(|at| at.elapsed() >= WARN_EVERY)
        {
            tracing::warn!(
                dropped = unreported.count,
                reason = why,
                "Progress events dropped (runs are not affected)"
            );
            unreported.count = 0;
            unreported.warned_at = Some(Instant::now());
        }
    }
}

/// Where and how events are sent.
struct Target {
    mode: EventsMode,
    /// The stream's key or the channel.
    key: String,
    maxlen: u64,
}

impl Target {
    /// One command per event of `batch`: `XADD key MAXLEN ~ n * run_id … workflow … [node
    /// …] status … [error …] at_ms …`, or `PUBLISH channel {json}`.
    fn pipeline(&self, batch: &[RunEvent]) -> Pipeline {
        let mut pipe = redis::pipe();
        for event in batch {
            match self.mode {
                EventsMode::Stream => {
                    let xadd = pipe.cmd("XADD").arg(&self.key);
                    xadd.arg("MAXLEN").arg("~").arg(self.maxlen).arg("*");
                    xadd.arg("run_id").arg(&event.run_id);
                    xadd.arg("workflow").arg(&event.workflow);
                    if let Some(node) = &event.node {
                        xadd.arg("node").arg(node);
                    }
                    xadd.arg("status").arg(event.status);
                    if let Some(error) = &event.error {
                        xadd.arg("error").arg(error);
                    }
                    xadd.arg("at_ms").arg(event.at_ms);
                }
                EventsMode::Channel => {
                    let json = serde_json::to_string(event).unwrap_or_default();
                    pipe.cmd("PUBLISH").arg(&self.key).arg(json);
                }
            }
            pipe.ignore();
        }
        pipe
    }
}

/// The task sending queued events to Redis.
struct Drain {
    queue: mpsc::Receiver<RunEvent>,
    client: Client,
    url: SecretUrl,
    target: Target,
    handled: watch::Sender<u64>,
    dropped: Arc<Dropped>,
}

impl Drain {
    /// Sends batch after batch until the publisher is gone and its queue is empty.
    async fn run(mut self) {
        let mut connection = None;
        let mut batch = Vec::with_capacity(BATCH);
        while self.queue.recv_many(&mut batch, BATCH).await > 0 {
            self.deliver(&mut connection, &batch).await;
            let sent = batch.len() as u64;
            batch.clear();
            self.handled.send_modify(|handled| *handled += sent);
        }
    }

    /// Sends `batch`, reconnecting with backoff while Redis is away; gives it up when
    /// Redis refuses it (it would refuse it again) or when Redis is away and the
    /// publisher is gone (nobody would wait for it).
    async fn deliver(&self, connection: &mut Option<MultiplexedConnection>, batch: &[RunEvent]) {
        let pipe = self.target.pipeline(batch);
        let mut failures = 0;
        loop {
            match self.send(connection, &pipe).await {
                Ok(()) if failures > 0 => {
                    tracing::info!(url = %self.url, "Progress events reach Redis again");
                    return;
                }
                Ok(()) => return,
                Err(err) if matches!(err.retry_method(), RetryMethod::NoRetry) => {
                    let why = format!("Redis refused them: {err}");
                    self.dropped.count(batch.len() as u64, &why);
                    return;
                }
                Err(err) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(url = %self.url, error = %err, "Cannot publish progress events to Redis; retrying (they wait, and are dropped once the queue is full)");
                    }
                    if self.queue.is_closed() {
                        self.dropped
                            .count(batch.len() as u64, "Redis is away and the journal closed");
                        return;
                    }
                    tokio::time::sleep(RECONNECT.jittered_delay_after(failures)).await;
                }
            }
        }
    }

    /// Sends `pipe` on `connection`, connecting first when there is none; the connection
    /// is kept only when it worked.
    async fn send(
        &self,
        connection: &mut Option<MultiplexedConnection>,
        pipe: &Pipeline,
    ) -> Result<(), RedisError> {
        let mut live = match connection.take() {
            Some(live) => live,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(IO_TIMEOUT))
                    .set_response_timeout(Some(IO_TIMEOUT));
                self.client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?
            }
        };
        pipe.query_async::<()>(&mut live).await?;
        *connection = Some(live);
        Ok(())
    }
}
