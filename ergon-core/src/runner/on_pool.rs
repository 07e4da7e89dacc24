//! Blocking tasks in async roles: [`OnPool`] runs each method of a blocking role trait on
//! the task's [`ThreadPool`], so the async lifecycles, envelopes and loop drive blocking
//! tasks unchanged (one engine, two execution models).

use std::sync::Arc;

use super::ThreadPool;
use crate::context::Context;
use crate::envelope;
use crate::error::TaskError;
use crate::observe;
use crate::task::{BlockingConsumer, BlockingHybrid, BlockingProducer, Consumer, Hybrid, Producer};
use crate::transaction::Transaction;

/// A blocking task bound to its thread pool; implements the async role of its blocking
/// role ([`Consumer`] for a [`BlockingConsumer`], and so on).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use ergon_core::runner::{ConsumeLoop, OnPool, ThreadPool, WorkerStats};
/// use ergon_core::test_util::ScriptedConnector;
/// use ergon_core::{BlockingConsumer, ConsumerPolicy, Context, TaskError, Transaction};
///
/// struct Count;
/// impl BlockingConsumer for Count {
///     type Output = usize;
///     fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<usize, TaskError> {
///         Ok(tx.payload().len())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let stats = Arc::new(WorkerStats::default());
/// let pool = ThreadPool::new("count", 2, stats.clone()).unwrap();
/// let input = Arc::new(ScriptedConnector::with_count(5));
/// let cx = Context::builder("count").input(input.clone()).build();
/// let task = Arc::new(OnPool::new(Arc::new(Count), pool));
/// ConsumeLoop::consumer(task, cx, Arc::new(ConsumerPolicy::default())).stats(stats).run().await.unwrap();
/// assert_eq!(input.acked().len(), 5);
/// # }
/// ```
pub struct OnPool<T> {
    task: Arc<T>,
    pool: ThreadPool,
}

impl<T: Send + Sync + 'static> OnPool<T> {
    /// `task`, whose methods will run on `pool`.
    pub fn new(task: Arc<T>, pool: ThreadPool) -> Self {
        Self { task, pool }
    }

    /// Runs `call` with the task, a context and a transaction on the pool.
    async fn call<R: Send + 'static>(
        &self,
        cx: &Context,
        tx: &Transaction,
        call: impl FnOnce(&T, &Context, &Transaction) -> Result<R, TaskError> + Send + 'static,
    ) -> Result<R, TaskError> {
        let (task, cx, tx) = (self.task.clone(), cx.clone(), tx.clone());
        // The attempt, and the scope it is observed in, go with the call to its thread.
        let (attempt, scope) = (envelope::current_attempt(), observe::current());
        self.pool
            .run(move || {
                observe::on_thread(scope, || {
                    envelope::on_thread(attempt, || call(&task, &cx, &tx))
                })
            })
            .await
    }
}

impl<T: BlockingConsumer> Consumer for OnPool<T> {
    type Output = Arc<T::Output>;

    async fn process_transaction(
        &self,
        cx: &Context,
        tx: &Transaction,
    ) -> Result<Self::Output, TaskError> {
        self.call(cx, tx, |task, cx, tx| {
            task.process_transaction(cx, tx).map(Arc::new)
        })
        .await
    }

    async fn handle_process_success(
        &self,
        cx: &Context,
        tx: &Transaction,
        output: &Self::Output,
    ) -> Result<(), TaskError> {
        let output = output.clone();
        self.call(cx, tx, move |task, cx, tx| {
            task.handle_process_success(cx, tx, &output)
        })
        .await
    }

    fn journal_output(&self, output: &Self::Output) -> Option<serde_json::Value> {
        self.task.journal_output(output)
    }

    async fn handle_process_exception(
        &self,
        cx: &Context,
        tx: &Transaction,
        error: &TaskError,
    ) -> Result<(), TaskError> {
        let error = error.flattened();
        self.call(cx, tx, move |task, cx, tx| {
            task.handle_process_exception(cx, tx, &error)
        })
        .await
    }
}

impl<T: BlockingProducer> Producer for OnPool<T> {
    async fn generate_transactions(
        &self,
        cx: &Context,
        max: usize,
    ) -> Result<Vec<Transaction>, TaskError> {
        let (task, cx) = (self.task.clone(), cx.clone());
        self.pool
            .run(move || task.generate_transactions(&cx, max))
            .await
    }

    async fn prepare_transaction(
        &self,
        cx: &Context,
        tx: &Transaction,
    ) -> Result<Transaction, TaskError> {
        self.call(cx, tx, |task, cx, tx| task.prepare_transaction(cx, tx))
            .await
    }

    async fn handle_prepare_success(
        &self,
        cx: &Context,
        tx: &Transaction,
        prepared: &Transaction,
    ) -> Result<(), TaskError> {
        let prepared = prepared.clone();
        self.call(cx, tx, move |task, cx, tx| {
            task.handle_prepare_success(cx, tx, &prepared)
        })
        .await
    }

    async fn handle_prepare_exception(
        &self,
        cx: &Context,
        tx: &Transaction,
        error: &TaskError,
    ) -> Result<(), TaskError> {
        let error = error.flattened();
        self.call(cx, tx, move |task, cx, tx| {
            task.handle_prepare_exception(cx, tx, &error)
        })
        .await
    }
}

impl<T: BlockingHybrid> Hybrid for OnPool<T> {
    async fn process_transaction(
        &self,
        cx: &Context,
        tx: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError> {
        self.call(cx, tx, |task, cx, tx| task.process_transaction(cx, tx))
            .await
    }

    async fn prepare_transaction(
        &self,
        cx: &Context,
        inbound: &Transaction,
        outbound: &Transaction,
    ) -> Result<Transaction, TaskError> {
        let outbound = outbound.clone();
        self.call(cx, inbound, move |task, cx, inbound| {
            task.prepare_transaction(cx, inbound, &outbound)
        })
        .await
    }

    async fn handle_process_success(
        &self,
        cx: &Context,
        tx: &Transaction,
        dispatched: &[Transaction],
    ) -> Result<(), TaskError> {
        let dispatched = dispatched.to_vec();
        self.call(cx, tx, move |task, cx, tx| {
            task.handle_process_success(cx, tx, &dispatched)
        })
        .await
    }

    async fn handle_process_exception(
        &self,
        cx: &Context,
        tx: &Transaction,
        error: &TaskError,
    ) -> Result<(), TaskError> {
        let error = error.flattened();
        self.call(cx, tx, move |task, cx, tx| {
            task.handle_process_exception(cx, tx, &error)
        })
        .await
    }
}
