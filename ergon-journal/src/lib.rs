//! # ergon-journal
//!
//! The durable journal of ergon: what became of every transaction in every task — its
//! lineage (parent, root, tags, trace id), status, settlement, attempts, deliveries and
//! error — recorded *before* the transaction is settled (see [`ergon_core::journal`] for
//! where the engine calls it and why that order).
//!
//! * [`config`]: the `[journal]` table ([`JournalConfig`], [`Record`] modes).
//! * [`metrics`]: what it counts for the runner's metrics ([`JournalMetrics`]).
//! * [`node`]: a journaled transaction ([`Node`]) and the [`Filter`] of `list`.
//! * [`routes`]: where the journal hands transactions over (each task's local queue),
//!   each task's `on_complete` continuation, and the tagged fan-ins.
//! * [`fan_in`]: tagged fan-in (`produces`, `consumes`): items, groups, batch cuts.
//! * [`DurableJournal`]: the journal the engine and tasks call, over either store:
//! * [`sqlite`]: the embedded store (its writer commits in groups through the state
//!   transitions — completions, spawns, parked waits, cancellations, deadlines — and
//!   [`SqliteReader`] reads and purges), in the `local` queue's file by default;
//! * `postgres` (feature `postgres`): the store many machines share, with an outbox
//!   relayed to the target tasks' connectors ([`PostgresReader`] reads it).
//!
//! What it guarantees: a completion is durable before its settlement is attempted, so a
//! transaction redelivered after a crash between the two is settled as recorded without
//! running again; recording is at most once per (transaction, task) — the first terminal
//! record stands; a wait is decided once, in the commit of the completion (or the
//! deadline) that decides it, together with the continuation it sends; a tagged fan-in
//! item joins its group once and lands in exactly one batch, cut in the commit of the
//! completion (or deadline) that fills or completes it; what the journal hands over
//! enters the target's local queue in that same commit.

pub mod config;
mod durable;
pub mod events;
pub mod fan_in;
mod handover;
mod in_step;
pub mod metrics;
pub mod node;
#[cfg(feature = "postgres")]
pub mod postgres;
mod read;
mod recording;
mod request;
pub mod routes;
mod rows;
pub mod run;
pub mod sqlite;
mod tables;

pub use config::{JournalConfig, JournalKind, Record, Settings};
pub use durable::DurableJournal;
pub use events::{EventSink, RunSettings};
pub use fan_in::{Consumes, GroupBy};
pub use metrics::JournalMetrics;
pub use node::{Filter, Node, NodeError, Status};
#[cfg(feature = "postgres")]
pub use postgres::PostgresReader;
pub use read::JournalReader;
pub use routes::{OnComplete, Routes, When};
pub use sqlite::SqliteReader;
