//! Role-erased task launching: the registry stores one [`Launch`] per implementation, which
//! knows its role and execution model, decodes its policy, and runs workers monomorphized
//! for the task type in its role.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use ergon_core::config::{ConfigIssue, decode};
use ergon_core::envelope::AttemptHook;
use ergon_core::lifecycle::{Lifecycle, TransactionOutcome};
use ergon_core::policy::{LoopPolicy, RolePolicy};
use ergon_core::runner::{
    ConsumeLoop, LimitBudget, LoopEnd, OnPool, RunQuiet, ThreadPool, WorkerStats,
};
use ergon_core::{Context, TaskError, Transaction};

/// The role a task plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Consumes transactions from an input connector.
    Consumer,
    /// Produces transactions (its own, or from an input) to an output connector.
    Producer,
    /// Consumes one transaction and produces zero or more to an output connector.
    Hybrid,
}

impl Role {
    /// Whether the role cannot run without an input connector.
    pub fn needs_input(self) -> bool {
        matches!(self, Role::Consumer | Role::Hybrid)
    }

    /// Whether the role cannot run without an output connector.
    pub fn needs_output(self) -> bool {
        matches!(self, Role::Producer | Role::Hybrid)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Consumer => "consumer",
            Role::Producer => "producer",
            Role::Hybrid => "hybrid",
        })
    }
}

/// How a task's code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// `async fn` methods on the tokio runtime.
    Async,
    /// Plain methods on the task's own thread pool (`loop.concurrency` threads per worker).
    Blocking,
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Model::Async => "async",
            Model::Blocking => "blocking",
        })
    }
}

/// A role's policy, decoded and validated once at plan time, with its type erased.
#[derive(Clone)]
pub(crate) struct AnyPolicy {
    policy: Arc<dyn Any + Send + Sync>,
    /// The loop part, which the manager reads for the task-wide limit.
    pub loop_policy: LoopPolicy,
}

impl AnyPolicy {
    fn new<P: RolePolicy>(policy: P) -> Self {
        Self {
            loop_policy: policy.loop_policy().clone(),
            policy: Arc::new(policy),
        }
    }

    fn get<P: RolePolicy>(&self) -> Arc<P> {
        self.policy
            .clone()
            .downcast::<P>()
            .unwrap_or_else(|_| unreachable!("a launch only receives the policy it decoded"))
    }
}

/// What one worker needs besides its context.
pub(crate) struct WorkerRun {
    pub policy: AnyPolicy,
    pub limit: Option<Arc<LimitBudget>>,
    pub stats: Arc<WorkerStats>,
    pub shutdown: CancellationToken,
    /// Shared by every worker of a run with a journal: its finite loops end together.
    pub quiet: Option<Arc<RunQuiet>>,
}

/// A registered task implementation, with its type erased.
pub(crate) trait Launch: Send + Sync {
    fn role(&self) -> Role;
    fn model(&self) -> Model;
    /// Decodes and validates the `policy` table of this role.
    fn policy(&self, table: serde_json::Value) -> Result<AnyPolicy, ConfigIssue>;
    /// Builds one instance, to check the settings at `validate` time.
    fn check(&self, cx: &Context) -> Result<(), TaskError>;
    /// Runs one worker until its loop ends.
    fn worker(&self, cx: Context, run: WorkerRun)
    -> BoxFuture<'static, Result<LoopEnd, TaskError>>;
    /// Runs one transaction through the whole lifecycle without settling it.
    fn process_one<'a>(
        &'a self,
        cx: &'a Context,
        policy: &'a AnyPolicy,
        tx: &'a Transaction,
        hook: &'a mut (dyn AttemptHook + Send),
    ) -> BoxFuture<'a, Result<TransactionOutcome, TaskError>>;
}

/// Puts a task built by the user's factory into its role (and on its pool, if blocking).
pub(crate) type Bind<T, L> =
    fn(T, &Context, &<L as Lifecycle>::Policy, &Arc<WorkerStats>) -> Result<L, TaskError>;

/// The one [`Launch`] of every role and model: `F` builds the task, `bind` puts it in
/// its lifecycle `L`.
pub(crate) struct RoleLaunch<T, L: Lifecycle, F> {
    role: Role,
    model: Model,
    factory: Arc<F>,
    bind: Bind<T, L>,
    task: PhantomData<fn() -> T>,
}

impl<T, L: Lifecycle, F> RoleLaunch<T, L, F> {
    pub(crate) fn new(role: Role, model: Model, factory: F, bind: Bind<T, L>) -> Self {
        Self {
            role,
            model,
            factory: Arc::new(factory),
            bind,
            task: PhantomData,
        }
    }
}

impl<T, L, F> Launch for RoleLaunch<T, L, F>
where
    T: Send + 'static,
    L: Lifecycle,
    L::Policy: serde::de::DeserializeOwned,
    F: Fn(&Context) -> Result<T, TaskError> + Send + Sync + 'static,
{
    fn role(&self) -> Role {
        self.role
    }

    fn model(&self) -> Model {
        self.model
    }

    fn policy(&self, table: serde_json::Value) -> Result<AnyPolicy, ConfigIssue> {
        let policy: L::Policy = decode(table)?;
        policy.validate()?;
        Ok(AnyPolicy::new(policy))
    }

    fn check(&self, cx: &Context) -> Result<(), TaskError> {
        (self.factory)(cx).map(drop)
    }

    fn worker(
        &self,
        cx: Context,
        run: WorkerRun,
    ) -> BoxFuture<'static, Result<LoopEnd, TaskError>> {
        let (factory, bind) = (self.factory.clone(), self.bind);
        Box::pin(async move {
            let policy = run.policy.get::<L::Policy>();
            let lifecycle = bind(factory(&cx)?, &cx, &policy, &run.stats)?;
            ConsumeLoop::new(Arc::new(lifecycle), cx, policy)
                .limit(run.limit)
                .stats(run.stats)
                .shutdown(run.shutdown)
                .quiet(run.quiet)
                .run()
                .await
        })
    }

    fn process_one<'a>(
        &'a self,
        cx: &'a Context,
        policy: &'a AnyPolicy,
        tx: &'a Transaction,
        hook: &'a mut (dyn AttemptHook + Send),
    ) -> BoxFuture<'a, Result<TransactionOutcome, TaskError>> {
        Box::pin(async move {
            let policy = policy.get::<L::Policy>();
            let stats = Arc::new(WorkerStats::default());
            let lifecycle = (self.bind)((self.factory)(cx)?, cx, &policy, &stats)?;
            Ok(lifecycle.run(cx, &policy, tx, None, hook).await)
        })
    }
}

/// Binds a blocking task to a new pool of `loop.concurrency` threads named after the task
/// and worker.
pub(crate) fn on_pool<T: Send + Sync + 'static>(
    task: T,
    cx: &Context,
    policy: &impl RolePolicy,
    stats: &Arc<WorkerStats>,
) -> Result<Arc<OnPool<T>>, TaskError> {
    let name = format!("{}-{}", cx.task_name(), cx.worker());
    let threads = policy.loop_policy().concurrency;
    let pool = ThreadPool::new(&name, threads, stats.clone()).map_err(|err| {
        TaskError::system(format!(
            "task {}: cannot start {threads} blocking threads",
            cx.task_name()
        ))
        .with_source(err)
        .non_retryable()
    })?;
    Ok(Arc::new(OnPool::new(Arc::new(task), pool)))
}
