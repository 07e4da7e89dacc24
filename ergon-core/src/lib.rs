//! # ergon-core
//!
//! The model and the engines of ergon, with no I/O of its own.
//!
//! ## The data flow
//!
//! ```text
//!  input Connector (or a producer's own generator)
//!    ──fetch(batch)──▶ ConsumeLoop ──≤ concurrency in flight──▶ the task's lifecycle:
//!      consumer: process ──▶ success
//!      producer: prepare ──▶ dispatch (output confirms) ──▶ success
//!      hybrid:   process ──▶ prepare × n ──▶ dispatch (output confirms) ──▶ success
//!    ──ok──▶ settle: Ack
//!    ──a step failed for good──▶ exception ──▶ settle: DeadLetter | Requeue | Drop (policy)
//! ```
//!
//! Read the modules in that order:
//!
//! * [`transaction`]: the [`Transaction`], immutable and cheap to clone, with lineage.
//! * [`error`]: [`TaskError`] and its [`Category`] (business, system, timeout).
//! * [`policy`]: one policy per role ([`ConsumerPolicy`], [`ProducerPolicy`],
//!   [`HybridPolicy`]) with the [`RetryPolicy`](policy::RetryPolicy) of each step.
//! * [`envelope`]: [`run_fn`](envelope::run_fn), the retry / timeout / backoff envelope
//!   every step runs in; [`concurrency`]: `run_concurrently`.
//! * [`task`]: the roles you implement, async ([`Consumer`], [`Producer`], [`Hybrid`]) or
//!   blocking ([`BlockingConsumer`], [`BlockingProducer`], [`BlockingHybrid`]);
//!   [`context`]: what a task can reach.
//! * [`connector`]: the [`Connector`] trait and the [`Settlement`] the engine decides;
//!   [`delivery`]: a fetched [`Transaction`] with the receipt it is settled by;
//!   [`memory`]: the in-process connector; [`queue_admin`]: stats and dead letters of a
//!   connector's queue, for the `queue` commands.
//! * [`step`] (fetch, dispatch), [`lifecycle`] (each role's steps), [`journal`] (the
//!   durable record of each completion, written before it is settled), [`settle`]: one
//!   transaction's path.
//! * [`runner`]: the [`ConsumeLoop`](runner::ConsumeLoop) that drives every role, and the
//!   [`ThreadPool`](runner::ThreadPool) blocking tasks run on.
//! * [`workflow`]: what a task asks the journal for — spawn children, park a
//!   continuation until they are done, wait for them in a step, cancel them.
//! * [`observe`]: the [`Observer`](observe::Observer) the engine reports to (loop, batch,
//!   transaction, step, attempt, settlement), whose default does nothing;
//!   [`telemetry`]: attribute names, the timing switch, lock-free histograms.
//!
//! ## Feature flags
//!
//! * `test-util`: [`test_util`], scripted connectors to test tasks and the engine.

pub mod concurrency;
pub mod config;
pub mod connector;
pub mod context;
pub mod delivery;
pub mod envelope;
pub mod error;
pub mod journal;
pub mod lifecycle;
pub mod memory;
pub mod observe;
pub mod policy;
pub mod queue_admin;
pub mod runner;
pub mod service;
pub mod settle;
pub mod step;
pub mod sync;
pub mod task;
pub mod telemetry;
#[cfg(feature = "test-util")]
pub mod test_util;
pub mod transaction;
pub mod workflow;

/// The attribute [`Connector`], [`config::MakeConnector`] and [`Service`] implementations
/// are written with, re-exported so that a connector or service author needs no
/// `async-trait` dependency of their own: `#[ergon_core::async_trait]`. (Tasks use native
/// `async fn` in traits and need nothing.)
pub use async_trait::async_trait;
pub use connector::{Connector, Failure, SettleOutcome, Settlement};
pub use context::Context;
pub use delivery::Delivery;
pub use error::{Category, TaskError};
pub use policy::{ConsumerPolicy, HybridPolicy, ProducerPolicy};
pub use service::Service;
pub use task::{BlockingConsumer, BlockingHybrid, BlockingProducer, Consumer, Hybrid, Producer};
pub use transaction::Transaction;
