//! Role-erased task launching: the registry stores one [`Launch`] per implementation, which
//! knows its role, decodes its policy, and runs workers monomorphized for the task type.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use ergon_core::config::{ConfigIssue, decode};
use ergon_core::envelope::AttemptHook;
use ergon_core::lifecycle::{self, TransactionOutcome};
use ergon_core::runner::{ConsumeLoop, LimitBudget, LoopEnd, WorkerStats};
use ergon_core::{Consumer, ConsumerPolicy, Context, TaskError, Transaction};

/// The role a task plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Consumes transactions from an input connector.
    Consumer,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Consumer => "consumer",
        })
    }
}

/// How a task's code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// `async fn` methods on the tokio runtime.
    Async,
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Model::Async => "async",
        })
    }
}

/// What one worker needs besides its context.
pub(crate) struct WorkerRun {
    pub policy: Arc<ConsumerPolicy>,
    pub limit: Option<Arc<LimitBudget>>,
    pub stats: Arc<WorkerStats>,
    pub shutdown: CancellationToken,
}

/// A registered task implementation, with its type erased.
pub(crate) trait Launch: Send + Sync {
    fn role(&self) -> Role;
    fn model(&self) -> Model;
    /// Decodes and validates the `policy` table of this role.
    fn policy(&self, table: serde_json::Value) -> Result<Arc<ConsumerPolicy>, ConfigIssue>;
    /// Builds one instance, to check the settings at `validate` time.
    fn check(&self, cx: &Context) -> Result<(), TaskError>;
    /// Runs one worker until its loop ends.
    fn worker(&self, cx: Context, run: WorkerRun)
    -> BoxFuture<'static, Result<LoopEnd, TaskError>>;
    /// Runs one transaction through the whole lifecycle without settling it.
    fn process_one<'a>(
        &'a self,
        cx: &'a Context,
        policy: &'a ConsumerPolicy,
        tx: &'a Transaction,
        hook: &'a mut (dyn AttemptHook + Send),
    ) -> BoxFuture<'a, Result<TransactionOutcome, TaskError>>;
}

pub(crate) struct ConsumerLaunch<T, F> {
    factory: Arc<F>,
    task: PhantomData<fn() -> T>,
}

impl<T, F> ConsumerLaunch<T, F> {
    pub(crate) fn new(factory: F) -> Self {
        Self {
            factory: Arc::new(factory),
            task: PhantomData,
        }
    }
}

impl<T, F> Launch for ConsumerLaunch<T, F>
where
    T: Consumer,
    F: Fn(&Context) -> Result<T, TaskError> + Send + Sync + 'static,
{
    fn role(&self) -> Role {
        Role::Consumer
    }

    fn model(&self) -> Model {
        Model::Async
    }

    fn policy(&self, table: serde_json::Value) -> Result<Arc<ConsumerPolicy>, ConfigIssue> {
        let policy: ConsumerPolicy = decode(table)?;
        policy.validate()?;
        Ok(Arc::new(policy))
    }

    fn check(&self, cx: &Context) -> Result<(), TaskError> {
        (self.factory)(cx).map(drop)
    }

    fn worker(
        &self,
        cx: Context,
        run: WorkerRun,
    ) -> BoxFuture<'static, Result<LoopEnd, TaskError>> {
        let factory = self.factory.clone();
        Box::pin(async move {
            let task = Arc::new(factory(&cx)?);
            ConsumeLoop::new(task, cx, run.policy)
                .limit(run.limit)
                .stats(run.stats)
                .shutdown(run.shutdown)
                .run()
                .await
        })
    }

    fn process_one<'a>(
        &'a self,
        cx: &'a Context,
        policy: &'a ConsumerPolicy,
        tx: &'a Transaction,
        hook: &'a mut (dyn AttemptHook + Send),
    ) -> BoxFuture<'a, Result<TransactionOutcome, TaskError>> {
        Box::pin(async move {
            let task = (self.factory)(cx)?;
            Ok(lifecycle::run(&task, cx, policy, tx, hook).await)
        })
    }
}
