//! # ergon-connectors
//!
//! The built-in connectors: where transactions come from and where they go. Each one is a
//! [`ConnectorKind`] that a `[connectors.NAME]` table selects with its `type`, and each
//! lives in its own module, with its config (the reference for its TOML keys) apart from
//! its runtime code.
//!
//! ```text
//!  [connectors.NAME] ──ConnectorKind::configure──▶ MakeConnector (one per NAME: the state
//!                                                   its workers share)
//!                     ──MakeConnector::connect(worker)──▶ Connector: fetch, settle, dispatch
//! ```
//!
//! `ergon-runner` registers every kind [`kinds`] returns; register them yourself
//! (`Registry::connector_kind`) to pick only some.
//!
//! ## `type = "memory"` ([`memory`])
//!
//! An in-process queue ([`ergon_core::memory::MemoryConnector`]) shared by every worker and
//! every task that names the same `[connectors.NAME]`: one task dispatches into it and
//! another consumes from it. Nothing survives the process. No keys besides `type`.
//!
//! ```toml
//! [connectors.handoff]
//! type = "memory"
//! ```
//!
//! ## `type = "file"` ([`file`](mod@file))
//!
//! JSON lines. As an input, each non-blank line is one transaction (id `FILE:LINE`,
//! metadata `file.path` and `file.line`), read lazily and shared by the connector's
//! workers, so `workers = 4` reads each line once; a line that is not JSON is still
//! delivered, so the task rejects it and it is dead-lettered with its original bytes.
//! Failed transactions are appended to the dead-letter file as one JSON object each. As an
//! output, each dispatched payload is appended as one line.
//!
//! ```toml
//! [connectors.orders]
//! type = "file"
//! path = "orders.jsonl"                 # relative to the config file
//! dead_letter = "out/rejected.jsonl"    # default: orders.dead.jsonl beside `path`
//! id_field = "id"                       # optional: ids from this JSON field
//! ```
//!
//! The keys and their defaults are documented on [`file::FileConfig`].
//!
//! ## `type = "local"` ([`local`])
//!
//! The embedded durable queue: a named queue in an SQLite file (WAL), with leases
//! (visibility timeout, delivery count), coalesced acks, group-committed dispatches and a
//! dead-letter table; several workers and processes can share one file. The keys are
//! documented on [`local::LocalConfig`]; `ergon-runner queue` feeds and inspects it.
//!
//! ```toml
//! [connectors.orders]
//! type = "local"
//! path = "data/queue.db"                # relative to the config file
//! lease = "30s"
//! ```
//!
//! ## `type = "rabbitmq"` ([`rabbitmq`])
//!
//! A RabbitMQ queue: consumed with manual, coalesced acknowledgements and a prefetch;
//! dispatches published persistent with publisher confirms; dead letters rejected to the
//! queue's dead-letter exchange or published to a queue of their own with the error in
//! headers; reconnection with capped backoff. The keys are documented on
//! [`rabbitmq::RabbitConfig`].
//!
//! ```toml
//! [connectors.orders]
//! type = "rabbitmq"
//! url = "amqp://app:${RABBIT_PASSWORD}@rabbit:5672/%2f"
//! queue = "orders"
//! prefetch = 500
//! ```
//!
//! ## `type = "postgres"` ([`postgres`](mod@postgres))
//!
//! A queue in a PostgreSQL table, shared by runners on many machines: claims with
//! `FOR UPDATE SKIP LOCKED` under leases (an expired lease makes the row claimable again),
//! coalesced acks (`on_ack = "delete"` or `"mark_done"`), a dead-letter table with the
//! failure, batched dispatches that `NOTIFY` waiting fetches (a `LISTEN`ing connection
//! wakes them instead of polling). The schema and tables are created on first use. The
//! keys are documented on [`postgres::PostgresConfig`].
//!
//! ```toml
//! [connectors.orders]
//! type = "postgres"
//! url = "postgres://app:${PG_PASSWORD}@db:5432/app"
//! schema = "ergon"
//! lease = "30s"
//! ```
//!
//! ## `type = "redis_streams"` ([`redis_streams`])
//!
//! A Redis stream as a work queue: read through a consumer group (`XREADGROUP`), entries
//! acknowledged with coalesced `XACK`s (and deleted), those of a dead consumer taken over
//! after `claim_idle` (`XAUTOCLAIM`) with their delivery count, dead letters added to a
//! dead-letter stream with the failure; dispatches added with pipelined `XADD`s. The keys
//! are documented on [`redis_streams::RedisStreamsConfig`].
//!
//! ```toml
//! [connectors.orders]
//! type = "redis_streams"
//! url = "redis://127.0.0.1:6379"
//! stream = "orders"
//! claim_idle = "30s"
//! ```
//!
//! ## `type = "http"` ([`http`](mod@http))
//!
//! An HTTP endpoint: dispatches are `POST`ed (or `PUT`) one transaction per request, or
//! a JSON array per dispatch (`batch = true`), with the id in an idempotency header and
//! confirmed on 2xx; an input polls the endpoint with `GET` for a JSON array, page by
//! page, the cursor advanced once a page is settled (kept in `cursor_file` across
//! restarts). 4xx is a business error, 5xx / 429 / no answer a retryable system error,
//! as for the `http` service. The keys are documented on [`http::HttpConnectorConfig`].
//!
//! ```toml
//! [connectors.partner]
//! type = "http"
//! url = "https://partner.example.com/v1/orders"
//! auth = { bearer = "${PARTNER_TOKEN}" }
//! cursor = { param = "after", from = "last_id" }
//! ```
//!
//! ## Feature flags
//!
//! All are on by default; turn default features off to build only what you use.
//!
//! * `memory`: the [`memory`] connector.
//! * `file`: the [`file`](mod@file) connector (adds `tokio`, whose blocking pool runs the file I/O).
//! * `local`: the [`local`] connector (adds `rusqlite` with SQLite bundled).
//! * `rabbitmq`: the [`rabbitmq`] connector (adds `lapin`, with rustls on `ring` for
//!   `amqps://`).
//! * `redis-streams`: the [`redis_streams`] connector (adds `redis` with its tokio
//!   connection manager, no TLS).
//! * `http`: the [`http`](mod@http) connector (adds `ergon-services`' HTTP client:
//!   `reqwest` with rustls on `ring`; needs `file` for its dead letters).
//! * `postgres`: the [`postgres`](mod@postgres) connector (adds `tokio-postgres` and
//!   `deadpool-postgres`, no TLS).
//!
//! [`ConnectorKind`]: ergon_core::config::ConnectorKind

#[cfg(any(feature = "local", feature = "postgres", feature = "redis-streams"))]
mod ack_flusher;
#[cfg(feature = "file")]
pub mod file;
#[cfg(feature = "http")]
pub mod http;
pub mod jsonl;
#[cfg(feature = "local")]
pub mod local;
#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
#[cfg(feature = "redis-streams")]
pub mod redis_streams;

use std::sync::Arc;

use ergon_core::config::ConnectorKind;

/// The built-in connector kinds enabled by this build's features, for a runner's registry.
///
/// # Examples
///
/// ```
/// let names: Vec<&str> = ergon_connectors::kinds().iter().map(|k| k.name()).collect();
/// # #[cfg(all(feature = "memory", feature = "file", feature = "local", feature = "rabbitmq"))]
/// assert_eq!(names[..4], ["memory", "file", "local", "rabbitmq"]);
/// ```
pub fn kinds() -> Vec<Arc<dyn ConnectorKind>> {
    let kinds: Vec<Arc<dyn ConnectorKind>> = vec![
        #[cfg(feature = "memory")]
        Arc::new(memory::MemoryKind),
        #[cfg(feature = "file")]
        Arc::new(file::FileKind),
        #[cfg(feature = "local")]
        Arc::new(local::LocalKind),
        #[cfg(feature = "rabbitmq")]
        Arc::new(rabbitmq::RabbitKind),
        #[cfg(feature = "http")]
        Arc::new(http::HttpKind),
        #[cfg(feature = "redis-streams")]
        Arc::new(redis_streams::RedisStreamsKind),
        #[cfg(feature = "postgres")]
        Arc::new(postgres::PostgresKind),
    ];
    kinds
}
