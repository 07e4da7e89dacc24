//! The registry: the task implementations, connector kinds and service kinds this binary
//! offers. The TOML names them; nothing is found by link-time magic.

use std::collections::BTreeMap;
use std::sync::Arc;

use ergon_core::config::{ConnectorKind, ServiceKind};
use ergon_core::lifecycle::{ConsumerLifecycle, HybridLifecycle, Lifecycle, ProducerLifecycle};
use ergon_core::{
    BlockingConsumer, BlockingHybrid, BlockingProducer, Consumer, Context, Hybrid, Producer,
    TaskError,
};

use crate::launch::{Bind, Launch, Model, Role, RoleLaunch, on_pool};

/// What this binary can run.
///
/// # Examples
///
/// ```no_run
/// use ergon_core::{Consumer, Context, TaskError, Transaction};
/// use ergon_runner::Registry;
///
/// struct Audit;
/// impl Consumer for Audit {
///     type Output = ();
///     async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<(), TaskError> {
///         println!("{}", tx.id());
///         Ok(())
///     }
/// }
///
/// fn main() -> std::process::ExitCode {
///     ergon_runner::run(Registry::with_builtins().consumer("audit", |_cx| Ok(Audit)))
/// }
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    pub(crate) tasks: BTreeMap<String, Arc<dyn Launch>>,
    pub(crate) connectors: BTreeMap<&'static str, Arc<dyn ConnectorKind>>,
    pub(crate) services: BTreeMap<&'static str, Arc<dyn ServiceKind>>,
    /// Custom expansions of DAG nodes (`expand = { custom = "NAME" }`).
    #[cfg(feature = "journal")]
    pub(crate) expanders: ergon_journal::run::Expanders,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry with the built-in task implementations (`forward`) and the connector
    /// and service kinds of this build.
    pub fn with_builtins() -> Self {
        let mut registry = Self::new().consumer("forward", |_cx| Ok(crate::builtin::Forward));
        #[cfg(feature = "journal")]
        {
            registry = registry.consumer(
                crate::workflows::START_RUN,
                crate::workflows::StartRun::from_context,
            );
        }
        for kind in ergon_connectors::kinds() {
            registry = registry.connector_kind(kind);
        }
        for kind in ergon_services::kinds() {
            registry = registry.service_kind(kind);
        }
        registry
    }

    /// Registers a consumer implementation under `name` (the `type` of `[tasks.X]`).
    ///
    /// `factory` builds one instance per worker from the task's context: read settings
    /// and services there; reach connectors only from the role methods (`validate` calls
    /// the factory without connectors to check the settings). The same holds for every
    /// role below.
    pub fn consumer<T, F>(self, name: &str, factory: F) -> Self
    where
        T: Consumer,
        F: Fn(&Context) -> Result<T, TaskError> + Send + Sync + 'static,
    {
        self.task(
            name,
            Role::Consumer,
            Model::Async,
            factory,
            |task, _, _, _| Ok(ConsumerLifecycle::new(Arc::new(task))),
        )
    }

    /// Registers a producer implementation under `name`.
    pub fn producer<T, F>(self, name: &str, factory: F) -> Self
    where
        T: Producer,
        F: Fn(&Context) -> Result<T, TaskError> + Send + Sync + 'static,
    {
        self.task(
            name,
            Role::Producer,
            Model::Async,
            factory,
            |task, _, _, _| Ok(ProducerLifecycle::new(Arc::new(task))),
        )
    }

    /// Registers a hybrid implementation under `name`.
    pub fn hybrid<T, F>(self, name: &str, factory: F) -> Self
    where
        T: Hybrid,
        F: Fn(&Context) -> Result<T, TaskError> + Send + Sync + 'static,
    {
        self.task(
            name,
            Role::Hybrid,
            Model::Async,
            factory,
            |task, _, _, _| Ok(HybridLifecycle::new(Arc::new(task))),
        )
    }

    /// Registers a blocking consumer under `name`; each worker runs it on a thread pool of
    /// its own with `loop.concurrency` threads.
    pub fn blocking_consumer<T, F>(self, name: &str, factory: F) -> Self
    where
        T: BlockingConsumer,
        F: Fn(&Context) -> Result<T, TaskError> + Send + Sync + 'static,
    {
        self.task(
            name,
            Role::Consumer,
            Model::Blocking,
            factory,
            |task, cx, policy, stats| Ok(ConsumerLifecycle::new(on_pool(task, cx, policy, stats)?)),
        )
    }

    /// Registers a blocking producer under `name` (its own thread pool, as above).
    pub fn blocking_producer<T, F>(self, name: &str, factory: F) -> Self
    where
        T: BlockingProducer,
        F: Fn(&Context) -> Result<T, TaskError> + Send + Sync + 'static,
    {
        self.task(
            name,
            Role::Producer,
            Model::Blocking,
            factory,
            |task, cx, policy, stats| Ok(ProducerLifecycle::new(on_pool(task, cx, policy, stats)?)),
        )
    }

    /// Registers a blocking hybrid under `name` (its own thread pool, as above).
    pub fn blocking_hybrid<T, F>(self, name: &str, factory: F) -> Self
    where
        T: BlockingHybrid,
        F: Fn(&Context) -> Result<T, TaskError> + Send + Sync + 'static,
    {
        self.task(
            name,
            Role::Hybrid,
            Model::Blocking,
            factory,
            |task, cx, policy, stats| Ok(HybridLifecycle::new(on_pool(task, cx, policy, stats)?)),
        )
    }

    fn task<T, L, F>(
        mut self,
        name: &str,
        role: Role,
        model: Model,
        factory: F,
        bind: Bind<T, L>,
    ) -> Self
    where
        T: Send + 'static,
        L: Lifecycle,
        L::Policy: serde::de::DeserializeOwned,
        F: Fn(&Context) -> Result<T, TaskError> + Send + Sync + 'static,
    {
        let launch = RoleLaunch::new(role, model, factory, bind);
        self.tasks.insert(name.to_owned(), Arc::new(launch));
        self
    }

    /// Registers `expander` as `name`: a node declared `expand = { custom = "NAME" }`
    /// runs once per item it returns. It receives the node's template context (`input`,
    /// `results`, `run`) and returns the items, or an error that fails the node.
    ///
    /// ```
    /// use ergon_runner::Registry;
    /// use serde_json::Value;
    ///
    /// let registry = Registry::with_builtins().expander("by_paragraph", |context: &Value| {
    ///     let text = context["input"]["text"].as_str().ok_or("the input has no text")?;
    ///     Ok(text.split("\n\n").map(Value::from).collect())
    /// });
    /// ```
    #[cfg(feature = "journal")]
    #[must_use]
    pub fn expander<F>(mut self, name: &str, expander: F) -> Self
    where
        F: Fn(&serde_json::Value) -> Result<Vec<serde_json::Value>, String> + Send + Sync + 'static,
    {
        self.expanders = self.expanders.with(name, Arc::new(expander));
        self
    }

    /// Registers a connector kind (its `name()` is the `type` in `[connectors.X]`).
    pub fn connector_kind(mut self, kind: Arc<dyn ConnectorKind>) -> Self {
        self.connectors.insert(kind.name(), kind);
        self
    }

    /// Registers a service kind (its `name()` is the `type` in `[services.X]`).
    pub fn service_kind(mut self, kind: Arc<dyn ServiceKind>) -> Self {
        self.services.insert(kind.name(), kind);
        self
    }

    /// Names of the registered task implementations.
    pub fn task_names(&self) -> impl Iterator<Item = &str> {
        self.tasks.keys().map(String::as_str)
    }

    /// Names of the registered connector kinds.
    pub fn connector_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.connectors.keys().copied()
    }

    /// Names of the registered service kinds.
    pub fn service_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.services.keys().copied()
    }
}
