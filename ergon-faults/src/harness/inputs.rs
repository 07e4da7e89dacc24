//! The input connectors the suite faults (local, RabbitMQ, PostgreSQL, Redis Streams):
//! a connector table on a queue / stream of its own per scenario run, how many deliveries
//! a runner can hold unsettled (the duplicate bound of a kill), and the cleanup.
//!
//! Addresses default to the loopback services and can be overridden with
//! `ERGON_FAULTS_RABBITMQ_URL`, `ERGON_FAULTS_PG_URL` and `ERGON_FAULTS_REDIS_URL`.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::{Error, Result};

/// The PostgreSQL schema of the suite's queues.
const PG_SCHEMA: &str = "ergon_faults";

/// Acks are coalesced and flushed at every 256 (local, PostgreSQL, Redis): at most this
/// many processed deliveries wait for their ack when a runner dies.
const ACK_BATCH: usize = 256;

/// RabbitMQ's `prefetch` as the suite sets it: deliveries outstanding per worker.
const RABBITMQ_PREFETCH: usize = 256;

/// How soon what a killed runner held is delivered again (lease, `claim_idle`).
const LEASE: &str = "2s";

/// An input connector type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// `type = "local"`: the embedded SQLite queue.
    Local,
    /// `type = "rabbitmq"`: a quorum queue on the loopback broker.
    RabbitMq,
    /// `type = "postgres"`: a queue in a PostgreSQL table.
    Postgres,
    /// `type = "redis_streams"`: a Redis stream read by a consumer group.
    RedisStreams,
}

impl Input {
    /// Every input connector, in the order scenarios run them.
    pub const ALL: [Self; 4] = [
        Self::Local,
        Self::RabbitMq,
        Self::Postgres,
        Self::RedisStreams,
    ];

    /// Its short name in scenario names (`local`, `rabbitmq`, `postgres`, `redis`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::RabbitMq => "rabbitmq",
            Self::Postgres => "postgres",
            Self::RedisStreams => "redis",
        }
    }

    /// The address of its loopback service (none for the embedded queue), from the
    /// environment or the default.
    pub fn default_url(self) -> Option<String> {
        let (var, default) = match self {
            Self::Local => return None,
            Self::RabbitMq => (
                "ERGON_FAULTS_RABBITMQ_URL",
                "amqp://guest:guest@127.0.0.1:5672/%2f",
            ),
            Self::Postgres => (
                "ERGON_FAULTS_PG_URL",
                "postgres://postgres@127.0.0.1:5432/test",
            ),
            Self::RedisStreams => ("ERGON_FAULTS_REDIS_URL", "redis://127.0.0.1:6379"),
        };
        Some(std::env::var(var).unwrap_or_else(|_| default.to_owned()))
    }

    /// The most deliveries one worker can hold unsettled when it is killed: what it may
    /// have processed and written without its ack reaching the transport, so at most this
    /// many come again per kill and worker (the at-least-once duplicate bound).
    pub fn held_per_worker(self, concurrency: usize, batch_size: usize) -> usize {
        match self {
            Self::RabbitMq => RABBITMQ_PREFETCH,
            Self::Local | Self::Postgres | Self::RedisStreams => {
                concurrency + 2 * batch_size + ACK_BATCH
            }
        }
    }
}

/// What `queue stats` of a queue says is still there for consumers: ready to deliver,
/// or delivered and not settled (the second also by [`unsettled`]). Counts a transport
/// does not show are 0.
pub fn remaining(stats: &BTreeMap<String, u64>) -> u64 {
    let get = |key: &str| stats.get(key).copied().unwrap_or(0);
    // local: ready, in_flight, expired; postgres: ready, in_flight; rabbitmq: ready
    // (unacked deliveries of a closed connection are ready again); redis: length (acked
    // entries are deleted).
    get("ready") + get("in_flight") + get("expired") + get("length")
}

/// What `queue stats` of a queue shows delivered and not settled: `in_flight` (local,
/// PostgreSQL), `pending` (Redis); RabbitMQ shows none once its consumers are gone.
pub fn unsettled(stats: &BTreeMap<String, u64>) -> u64 {
    let get = |key: &str| stats.get(key).copied().unwrap_or(0);
    get("in_flight") + get("pending")
}

/// A queue (or stream) of its own for one scenario run: the connector table that names
/// it, and its removal.
#[derive(Clone, Debug)]
pub struct Queue {
    input: Input,
    name: String,
    url: Option<String>,
}

impl Queue {
    /// A queue of `input` named after `scenario`, the process and the time, so that runs
    /// never see each other's data.
    pub fn new(input: Input, scenario: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        Self {
            input,
            name: format!("faults-{scenario}-{}-{nanos}", std::process::id()),
            url: input.default_url(),
        }
    }

    /// The same queue reached at `url` instead (e.g. through the suite's TCP proxy).
    #[must_use]
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Its connector type.
    pub fn input(&self) -> Input {
        self.input
    }

    /// The queue's (stream's) name in its transport.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `[connectors.CONNECTOR]` on this queue, with a short lease (what a killed runner
    /// held comes back within seconds) and dead letters kept where `queue dead-letters`
    /// reads them; `extra`: more keys of the table, as TOML lines.
    pub fn table(&self, connector: &str, extra: &str) -> String {
        let name = &self.name;
        let url = self.url.as_deref().unwrap_or_default();
        let keys = match self.input {
            Input::Local => format!(
                "type = \"local\"\npath = \"queue.db\"\nqueue = \"{name}\"\nlease = \"{LEASE}\"\n"
            ),
            Input::RabbitMq => format!(
                "type = \"rabbitmq\"\nurl = \"{url}\"\nqueue = \"{name}\"\nprefetch = {RABBITMQ_PREFETCH}\n\
                 declare = {{ kind = \"quorum\" }}\ndead_letter = {{ queue = \"{name}.dead\" }}\n"
            ),
            Input::Postgres => format!(
                "type = \"postgres\"\nurl = \"{url}\"\nschema = \"{PG_SCHEMA}\"\nqueue = \"{name}\"\nlease = \"{LEASE}\"\n"
            ),
            Input::RedisStreams => format!(
                "type = \"redis_streams\"\nurl = \"{url}\"\nstream = \"{name}\"\nclaim_idle = \"{LEASE}\"\n"
            ),
        };
        format!("[connectors.{connector}]\n{keys}{extra}\n")
    }

    /// Removes the queue and its dead letters from their transport (nothing to do for the
    /// local queue: it lives in the deployment's directory).
    ///
    /// # Errors
    ///
    /// The transport cannot be reached.
    pub fn remove(&self) -> Result<()> {
        let name = &self.name;
        match self.input {
            Input::Local => Ok(()),
            Input::RabbitMq => {
                for queue in [name.clone(), format!("{name}.dead")] {
                    tool("rabbitmqctl", &["-q", "delete_queue", &queue])?;
                }
                Ok(())
            }
            Input::Postgres => {
                let url = self.url.as_deref().unwrap_or_default();
                let sql = format!(
                    "DELETE FROM {PG_SCHEMA}.ergon_queue WHERE queue = '{name}'; \
                     DELETE FROM {PG_SCHEMA}.ergon_dead_letter WHERE queue = '{name}';"
                );
                tool("psql", &["-q", "-v", "ON_ERROR_STOP=1", url, "-c", &sql])
            }
            Input::RedisStreams => {
                let url = self.url.as_deref().unwrap_or_default();
                let client = redis::Client::open(url).map_err(|err| Error::Service {
                    service: format!("Redis at {url}"),
                    message: err.to_string(),
                })?;
                let mut conn = client.get_connection().map_err(|err| Error::Service {
                    service: format!("Redis at {url}"),
                    message: err.to_string(),
                })?;
                redis::cmd("DEL")
                    .arg(name)
                    .arg(format!("{name}:dead"))
                    .query::<()>(&mut conn)
                    .map_err(|err| Error::Service {
                        service: format!("Redis DEL {name}"),
                        message: err.to_string(),
                    })
            }
        }
    }
}

/// Runs a service's command-line tool (`rabbitmqctl`, `psql`, `pg_ctlcluster`) to its end.
pub(crate) fn tool(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(Error::io(format!("running {program}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Service {
            service: format!("{program} {}", args.first().copied().unwrap_or_default()),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}
