//! The context a task receives: its injected connectors, services and settings.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::de::DeserializeOwned;

use crate::connector::Connector;
use crate::error::TaskError;
use crate::journal::Journal;
use crate::service::{Service, ServiceType};
use crate::transaction::Transaction;

pub use crate::service::ServiceHandle;

/// What a task can reach: built by the runner from the TOML, passed to every role method.
///
/// Cheap to clone. Misconfiguration found through it (a missing connector, a service of
/// another type) is a non-retryable system error naming what is missing.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use ergon_core::{Context, Service};
/// use serde::Deserialize;
///
/// struct Rates;
/// impl Service for Rates {}
///
/// #[derive(Deserialize)]
/// struct Settings { max_total: f64 }
///
/// let cx = Context::builder("orders")
///     .service("rates", Arc::new(Rates))
///     .settings(serde_json::json!({ "max_total": 500.0 }))
///     .build();
/// let rates: Arc<Rates> = cx.service("rates")?;
/// assert_eq!(cx.settings::<Settings>()?.max_total, 500.0);
/// assert!(cx.service::<Rates>("missing").is_err());
/// # Ok::<(), ergon_core::TaskError>(())
/// ```
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    task: Arc<str>,
    worker: usize,
    workers: usize,
    base_dir: PathBuf,
    input: Option<Arc<dyn Connector>>,
    output: Option<Arc<dyn Connector>>,
    services: BTreeMap<String, Slot>,
    settings: serde_json::Value,
    input_endpoint: Option<Endpoint>,
    journal: Option<Arc<dyn Journal>>,
    /// Tags every outbound transaction carries (`produces`).
    produces: Arc<[String]>,
    /// Lookups that found a declared service of the asked type (check context only).
    unbuilt_lookups: AtomicUsize,
}

/// What telemetry calls the input: `messaging.system` and `messaging.destination.name`.
#[derive(Debug, Clone)]
struct Endpoint {
    system: Arc<str>,
    destination: Arc<str>,
}

/// A service as a context holds it: built, or only declared (the plan's check context).
#[derive(Clone, Debug)]
enum Slot {
    Built(ServiceHandle),
    Declared {
        service_type: ServiceType,
        /// The key that binds it, e.g. `tasks.orders.services.0`.
        key: String,
        /// Its `type` in the file, e.g. `http`.
        kind: String,
    },
}

impl Context {
    /// Starts a context for the task named `task`.
    pub fn builder(task: impl Into<Arc<str>>) -> ContextBuilder {
        ContextBuilder(Inner {
            task: task.into(),
            worker: 0,
            workers: 1,
            base_dir: PathBuf::from("."),
            input: None,
            output: None,
            services: BTreeMap::new(),
            settings: serde_json::Value::Object(Default::default()),
            input_endpoint: None,
            journal: None,
            produces: Arc::new([]),
            unbuilt_lookups: AtomicUsize::new(0),
        })
    }

    /// The task's name in the TOML (`[tasks.NAME]`).
    pub fn task_name(&self) -> &str {
        &self.inner.task
    }

    /// The shared task name, for failure records.
    pub fn task_name_arc(&self) -> &Arc<str> {
        &self.inner.task
    }

    /// The index of the worker running this context (0-based).
    pub fn worker(&self) -> usize {
        self.inner.worker
    }

    /// How many workers the task runs (`workers = N`): with [`Context::worker`], what a
    /// producer generating its own transactions partitions its source by, since each
    /// worker calls `generate_transactions` with its own state.
    ///
    /// ```
    /// use ergon_core::Context;
    ///
    /// // Worker 1 of 3 takes every third number, starting at 1.
    /// let cx = Context::builder("numbers").worker(1).workers(3).build();
    /// let mine: Vec<u64> = (0..10).filter(|n| *n as usize % cx.workers() == cx.worker()).collect();
    /// assert_eq!(mine, [1, 4, 7]);
    /// ```
    pub fn workers(&self) -> usize {
        self.inner.workers
    }

    /// `path` resolved as connector paths are: relative to the config file's directory
    /// (an absolute path is kept). For paths in a task's `settings`, so that they mean the
    /// same wherever the runner is started from.
    ///
    /// ```
    /// use std::path::Path;
    /// use ergon_core::Context;
    ///
    /// let cx = Context::builder("t").base_dir("/etc/ergon").build();
    /// assert_eq!(cx.resolve_path("rules.json"), Path::new("/etc/ergon/rules.json"));
    /// assert_eq!(cx.resolve_path("/tmp/x"), Path::new("/tmp/x"));
    /// ```
    pub fn resolve_path(&self, path: impl AsRef<Path>) -> PathBuf {
        crate::config::resolve(&self.inner.base_dir, path.as_ref())
    }

    /// The input's `messaging.system` (its connector kind), when the runner named it.
    pub fn input_system(&self) -> Option<&str> {
        self.inner.input_endpoint.as_ref().map(|e| &*e.system)
    }

    /// The input's `messaging.destination.name` (its connector's name in the TOML), when
    /// the runner named it.
    pub fn input_destination(&self) -> Option<&str> {
        self.inner.input_endpoint.as_ref().map(|e| &*e.destination)
    }

    /// The tags every transaction this task sends carries (`produces = [...]` in its
    /// table): added to what its dispatch step sends and to what it spawns.
    pub fn produces(&self) -> &[String] {
        &self.inner.produces
    }

    /// `transactions` carrying the task's [`produces`](Self::produces) tags; `None` when
    /// it produces none (nothing to copy).
    pub(crate) fn tagged(&self, transactions: &[Transaction]) -> Option<Vec<Transaction>> {
        if self.inner.produces.is_empty() {
            return None;
        }
        let tags = &self.inner.produces;
        Some(transactions.iter().map(|tx| tx.with_tags(tags)).collect())
    }

    /// The journal completions are recorded in, when the runner has one (`[journal]`).
    pub(crate) fn journal(&self) -> Option<&Arc<dyn Journal>> {
        self.inner.journal.as_ref()
    }

    /// The input connector (`input = "..."` in the task's table): the engine's alone. A
    /// task sees each transaction, never its delivery, and cannot settle it — it never
    /// acks, by construction.
    ///
    /// # Errors
    ///
    /// When the task has no input connector.
    pub(crate) fn input(&self) -> Result<&Arc<dyn Connector>, TaskError> {
        self.inner
            .input
            .as_ref()
            .ok_or_else(|| self.missing("input"))
    }

    /// The output connector (`output = "..."` in the task's table).
    ///
    /// # Errors
    ///
    /// When the task has no output connector.
    pub fn output(&self) -> Result<&Arc<dyn Connector>, TaskError> {
        self.inner
            .output
            .as_ref()
            .ok_or_else(|| self.missing("output"))
    }

    /// The service named `name` (listed in the task's `services`), as its concrete type.
    ///
    /// In the plan's check context (services declared, not built: see
    /// [`ContextBuilder::declared_service`]) a lookup of the right type checks the type and
    /// then fails with a non-retryable error the plan recognizes
    /// ([`Context::unbuilt_lookups`]): the plan checks a task's factory up to its first
    /// service lookup, so read settings before services in a factory.
    ///
    /// # Errors
    ///
    /// When no such service was injected, or it is not an `S` (in a check context the
    /// message starts with the binding key, e.g. `tasks.orders.services.0: `).
    pub fn service<S: Service>(&self, name: &str) -> Result<Arc<S>, TaskError> {
        let slot = self.inner.services.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.inner.services.keys().map(String::as_str).collect();
            TaskError::system(format!(
                "task {} has no service named {name:?} (injected: {known:?}); list it in `services`",
                self.inner.task
            ))
            .non_retryable()
        })?;
        let wanted = ServiceType::of::<S>();
        match slot {
            Slot::Built(handle) => handle.concrete.clone().downcast::<S>().map_err(|_| {
                TaskError::system(format!(
                    "service {name:?} of task {} is a {}, not a {}",
                    self.inner.task,
                    handle.service_type.name(),
                    wanted.name()
                ))
                .non_retryable()
            }),
            Slot::Declared {
                service_type,
                key,
                kind,
            } => {
                if *service_type != wanted {
                    return Err(TaskError::system(format!(
                        "{key}: service `{name}` is of type `{kind}` ({}), but the task uses it as a {}",
                        service_type.name(),
                        wanted.name()
                    ))
                    .non_retryable());
                }
                self.inner.unbuilt_lookups.fetch_add(1, Ordering::Relaxed);
                Err(TaskError::system(format!(
                    "{key}: service `{name}` is checked, not built, at plan time"
                ))
                .non_retryable())
            }
        }
    }

    /// How many [`service`](Context::service) lookups found a declared, unbuilt service of
    /// the asked type (in the plan's check context; always 0 in a running task's).
    pub fn unbuilt_lookups(&self) -> usize {
        self.inner.unbuilt_lookups.load(Ordering::Relaxed)
    }

    /// Every injected, built service, by name.
    pub fn services(&self) -> impl Iterator<Item = (&str, &ServiceHandle)> {
        self.inner
            .services
            .iter()
            .filter_map(|(k, slot)| match slot {
                Slot::Built(handle) => Some((k.as_str(), handle)),
                Slot::Declared { .. } => None,
            })
    }

    /// The task's `settings` table, decoded into `T` the way every config table is
    /// ([`decode`](crate::config::decode)).
    ///
    /// # Errors
    ///
    /// A non-retryable system error naming the bad key when the table does not fit `T`.
    pub fn settings<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        crate::config::decode(self.inner.settings.clone()).map_err(|issue| {
            let issue = issue
                .under("settings")
                .under(&format!("tasks.{}", self.inner.task));
            TaskError::system(issue.to_string()).non_retryable()
        })
    }

    fn missing(&self, role: &str) -> TaskError {
        TaskError::system(format!(
            "task {} has no {role} connector; set `{role} = \"...\"` in [tasks.{}]",
            self.inner.task, self.inner.task
        ))
        .non_retryable()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("task", &self.inner.task)
            .field("worker", &self.inner.worker)
            .field("input", &self.inner.input.is_some())
            .field("output", &self.inner.output.is_some())
            .field("services", &self.inner.services)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Context`]; see [`Context::builder`].
#[must_use]
pub struct ContextBuilder(Inner);

impl ContextBuilder {
    /// Sets the worker index.
    pub fn worker(mut self, worker: usize) -> Self {
        self.0.worker = worker;
        self
    }

    /// Sets how many workers the task runs (default 1).
    pub fn workers(mut self, workers: usize) -> Self {
        self.0.workers = workers.max(1);
        self
    }

    /// Sets the directory relative paths resolve from: the config file's (default `.`).
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.0.base_dir = dir.into();
        self
    }

    /// Sets the input connector.
    pub fn input(mut self, connector: Arc<dyn Connector>) -> Self {
        self.0.input = Some(connector);
        self
    }

    /// Names the input for telemetry: its `system` (connector kind, e.g. `rabbitmq`) and
    /// `destination` (connector name).
    pub fn input_endpoint(mut self, system: &str, destination: &str) -> Self {
        self.0.input_endpoint = Some(Endpoint {
            system: system.into(),
            destination: destination.into(),
        });
        self
    }

    /// Sets the journal the task's completions are recorded in before they are settled
    /// (see [`crate::journal`]).
    pub fn journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.0.journal = Some(journal);
        self
    }

    /// Sets the tags every transaction the task sends carries (`produces = [...]`): those
    /// it dispatches to its output and those it spawns. Children of those children inherit
    /// them, as every tag ([`Transaction::child`](crate::Transaction::child)).
    pub fn produces(mut self, tags: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.0.produces = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the output connector.
    pub fn output(mut self, connector: Arc<dyn Connector>) -> Self {
        self.0.output = Some(connector);
        self
    }

    /// Injects a service under `name`.
    pub fn service<S: Service>(self, name: impl Into<String>, service: Arc<S>) -> Self {
        self.service_handle(name, ServiceHandle::new(service))
    }

    /// Injects an already wrapped service under `name`.
    pub fn service_handle(mut self, name: impl Into<String>, handle: ServiceHandle) -> Self {
        self.0.services.insert(name.into(), Slot::Built(handle));
        self
    }

    /// Declares, without building it, the service `name` of type `service_type` (its
    /// `type` in the file is `kind`), bound by the config key `key`: the plan's check
    /// context, where [`Context::service`] checks lookups' types against it.
    pub fn declared_service(
        mut self,
        name: impl Into<String>,
        service_type: ServiceType,
        key: impl Into<String>,
        kind: impl Into<String>,
    ) -> Self {
        self.0.services.insert(
            name.into(),
            Slot::Declared {
                service_type,
                key: key.into(),
                kind: kind.into(),
            },
        );
        self
    }

    /// Sets the task's settings table.
    pub fn settings(mut self, settings: serde_json::Value) -> Self {
        self.0.settings = settings;
        self
    }

    /// Finishes the context.
    pub fn build(self) -> Context {
        Context {
            inner: Arc::new(self.0),
        }
    }
}
