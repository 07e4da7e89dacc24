//! The plan: a config file checked against the registry. Everything that can be wrong
//! with a config is found here, before any worker starts (`validate` stops after it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ergon_core::Context;
use ergon_core::config::{ConfigEnv, ConfigIssue, MakeConnector, check_count};
use ergon_core::journal::Journal;
use ergon_core::policy::LoopPolicy;

use crate::config::{ConfigError, LoadedConfig, TaskConfig};
use crate::launch::{AnyPolicy, Launch, Model, Role};
use crate::registry::Registry;
use crate::services::{RunningServices, ServiceRef};
use crate::telemetry::TelemetryConfig;

/// A checked config, ready to run.
pub struct Plan {
    /// The config file.
    pub file: PathBuf,
    /// The tasks, in name order.
    pub tasks: Vec<Arc<TaskPlan>>,
    /// Every `[connectors.NAME]`, in name order (`validate --connect` opens them all).
    pub(crate) connectors: Vec<ConnectorRef>,
    /// Every `[services.NAME]`, in name order (the order they are built in).
    pub(crate) services: Vec<ServiceRef>,
    /// `[telemetry]`, checked.
    pub telemetry: TelemetryConfig,
    /// `[journal]`, checked; `None` without one (or with `record = "off"`).
    #[cfg(feature = "journal")]
    pub journal: Option<crate::journal::JournalPlan>,
}

/// One connector a task uses.
#[derive(Clone)]
pub(crate) struct ConnectorRef {
    pub name: String,
    pub kind: &'static str,
    pub make: Arc<dyn MakeConnector>,
}

/// One checked `[tasks.NAME]`.
pub struct TaskPlan {
    /// The task's name.
    pub name: String,
    /// Its registered implementation.
    pub implementation: String,
    /// Independent worker loops.
    pub workers: usize,
    pub(crate) launch: Arc<dyn Launch>,
    pub(crate) input: Option<ConnectorRef>,
    pub(crate) output: Option<ConnectorRef>,
    pub(crate) services: Vec<ServiceRef>,
    pub(crate) policy: AnyPolicy,
    pub(crate) settings: serde_json::Value,
    /// The tags its outbound transactions carry (`produces`).
    pub(crate) produces: Vec<String>,
    /// The config file's directory: what the task's relative paths resolve from.
    pub(crate) base_dir: PathBuf,
}

impl TaskPlan {
    /// The context of worker `worker`, with connectors opened and services built by the
    /// caller (`services` holds at least this task's).
    pub(crate) fn context(
        &self,
        worker: usize,
        input: Option<Arc<dyn ergon_core::Connector>>,
        output: Option<Arc<dyn ergon_core::Connector>>,
        services: &RunningServices,
        journal: Option<Arc<dyn Journal>>,
    ) -> Context {
        let mut builder = self.builder(worker, input, output);
        if let Some(journal) = journal {
            builder = builder.journal(journal);
        }
        for service in &self.services {
            if let Some(handle) = services.get(&service.name) {
                builder = builder.service_handle(service.name.clone(), handle.clone());
            }
        }
        builder.build()
    }

    /// The plan's check context: no connectors, services declared with their types.
    fn check_context(&self) -> Context {
        let mut builder = self.builder(0, None, None);
        for (index, service) in self.services.iter().enumerate() {
            builder = builder.declared_service(
                service.name.clone(),
                service.configured.service_type(),
                format!("tasks.{}.services.{index}", self.name),
                service.kind,
            );
        }
        builder.build()
    }

    /// The services this task lists, in the order listed.
    pub(crate) fn services(&self) -> &[ServiceRef] {
        &self.services
    }

    fn builder(
        &self,
        worker: usize,
        input: Option<Arc<dyn ergon_core::Connector>>,
        output: Option<Arc<dyn ergon_core::Connector>>,
    ) -> ergon_core::context::ContextBuilder {
        let mut builder = Context::builder(self.name.as_str())
            .worker(worker)
            .workers(self.workers)
            .base_dir(self.base_dir.clone())
            .settings(self.settings.clone())
            .produces(self.produces.iter().cloned());
        if let Some(input) = input {
            builder = builder.input(input);
        }
        if let Some(named) = &self.input {
            builder = builder.input_endpoint(named.kind, &named.name);
        }
        if let Some(output) = output {
            builder = builder.output(output);
        }
        builder
    }

    /// The task's role.
    pub fn role(&self) -> Role {
        self.launch.role()
    }
}

impl Plan {
    /// Checks `loaded` against `registry`.
    ///
    /// # Errors
    ///
    /// The first problem found, naming the file, the key path and what is allowed.
    pub fn build(loaded: &LoadedConfig, registry: &Registry) -> Result<Plan, ConfigError> {
        let file = loaded.file.as_path();
        let config = &loaded.config;
        let env = |name: &str| ConfigEnv {
            name: name.to_owned(),
            base_dir: loaded.base_dir.clone(),
        };

        let services = configure_all(
            file,
            "service",
            &config.services,
            &registry.services,
            |kind, table, name| {
                kind.configure(table, &env(name))
                    .map(|configured| ServiceRef {
                        name: name.to_owned(),
                        kind: kind.name(),
                        configured,
                    })
            },
        )?;
        let connectors = configure_connectors(loaded, registry)?;

        #[cfg(feature = "journal")]
        let workflows = crate::workflows::workflows(loaded)?;
        #[cfg(feature = "journal")]
        let start_tasks = crate::workflows::start_tasks(loaded, &workflows)?;
        #[cfg(not(feature = "journal"))]
        let start_tasks: Vec<(String, TaskConfig)> = Vec::new();
        #[cfg(not(feature = "journal"))]
        if let Some(name) = config.workflows.keys().next() {
            return Err(ConfigError::new(
                file,
                format!("workflows.{name}"),
                "this binary was built without ergon-runner's `journal` feature",
            ));
        }
        let mut tasks = config
            .tasks
            .iter()
            .chain(start_tasks.iter().map(|(name, task)| (name, task)))
            .map(|(name, task)| {
                plan_task(
                    file,
                    &loaded.base_dir,
                    registry,
                    &connectors,
                    &services,
                    name,
                    task,
                )
                .map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        tasks.sort_by(|a, b| a.name.cmp(&b.name));
        config
            .telemetry
            .check()
            .map_err(|(key, message)| ConfigError::new(file, key, message))?;
        #[cfg(not(feature = "journal"))]
        if config.journal.is_some() {
            return Err(ConfigError::new(
                file,
                "journal",
                "this binary was built without ergon-runner's `journal` feature",
            ));
        }
        #[cfg(feature = "journal")]
        let journal = crate::journal::JournalPlan::from_config(loaded, &connectors)?
            .map(|journal| journal.expanders(registry.expanders.clone()));
        #[cfg(feature = "journal")]
        crate::workflows::check_journal(loaded, &workflows, journal.as_ref(), &registry.expanders)?;
        let needs_journal = config.tasks.iter().find_map(|(name, task)| {
            let key = |what| Some((format!("tasks.{name}.{what}"), what));
            match (&task.on_complete, &task.consumes) {
                (Some(_), _) => key("on_complete"),
                (None, Some(_)) => key("consumes"),
                (None, None) => None,
            }
        });
        #[cfg(feature = "journal")]
        let needs_journal = needs_journal.filter(|_| journal.is_none());
        if let Some((key, what)) = needs_journal {
            let sent = if what == "consumes" {
                "a fan-in batch"
            } else {
                "a continuation"
            };
            return Err(ConfigError::new(
                file,
                key,
                format!(
                    "{sent} is sent by the journal: add a `[journal]` table (and build \
                     with ergon-runner's `journal` feature)"
                ),
            ));
        }
        Ok(Plan {
            file: file.to_path_buf(),
            tasks,
            connectors: connectors.into_values().collect(),
            services: services.into_values().collect(),
            telemetry: config.telemetry.clone(),
            #[cfg(feature = "journal")]
            journal,
        })
    }

    /// The tasks named in `names` (all when empty), in the order given.
    ///
    /// # Errors
    ///
    /// A name that is not a task of the file.
    pub fn select(&self, names: &[String]) -> Result<Vec<Arc<TaskPlan>>, ConfigError> {
        if names.is_empty() {
            return Ok(self.tasks.clone());
        }
        names
            .iter()
            .map(|wanted| {
                self.tasks
                    .iter()
                    .find(|t| &t.name == wanted)
                    .cloned()
                    .ok_or_else(|| {
                        ConfigError::new(
                            &self.file,
                            "tasks",
                            format!("no task named `{wanted}`; defined: {}", self.task_list()),
                        )
                    })
            })
            .collect()
    }

    fn task_list(&self) -> String {
        one_of(self.tasks.iter().map(|t| t.name.as_str()))
    }
}

fn plan_task(
    file: &Path,
    base_dir: &Path,
    registry: &Registry,
    connectors: &BTreeMap<String, ConnectorRef>,
    services: &BTreeMap<String, ServiceRef>,
    name: &str,
    task: &TaskConfig,
) -> Result<TaskPlan, ConfigError> {
    let at = format!("tasks.{name}");
    let launch = registry.tasks.get(&task.implementation).ok_or_else(|| {
        ConfigError::new(
            file,
            format!("{at}.type"),
            format!(
                "unknown task implementation `{}`; available in this binary: {}",
                task.implementation,
                one_of(registry.task_names())
            ),
        )
    })?;
    check_count(
        "workers",
        task.workers as u64,
        1,
        TaskConfig::MAX_WORKERS as u64,
    )
    .map_err(|issue| ConfigError::from_issue(file, &at, issue))?;
    let connector =
        |field: &str, wanted: &Option<String>| -> Result<Option<ConnectorRef>, ConfigError> {
            let Some(wanted) = wanted else {
                return Ok(None);
            };
            connectors.get(wanted).cloned().map(Some).ok_or_else(|| {
                ConfigError::new(
                    file,
                    format!("{at}.{field}"),
                    format!(
                        "no connector named `{wanted}`; defined: {}",
                        one_of(connectors.keys().map(String::as_str))
                    ),
                )
            })
        };
    let input = connector("input", &task.input)?;
    let output = connector("output", &task.output)?;
    let role = launch.role();
    for (field, needed, given) in [
        ("input", role.needs_input(), input.is_some()),
        ("output", role.needs_output(), output.is_some()),
    ] {
        if needed && !given {
            return Err(ConfigError::new(
                file,
                format!("{at}.{field}"),
                format!(
                    "a {role} task needs an {field} connector; set `{field}` to one of: {}",
                    one_of(connectors.keys().map(String::as_str))
                ),
            ));
        }
    }
    let injected = task
        .services
        .iter()
        .enumerate()
        .map(|(index, wanted)| {
            services.get(wanted).cloned().ok_or_else(|| {
                ConfigError::new(
                    file,
                    format!("{at}.services.{index}"),
                    format!(
                        "no service named `{wanted}`; defined: {}",
                        one_of(services.keys().map(String::as_str))
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let policy = launch
        .policy(task.policy.clone().unwrap_or_else(empty_table))
        .map_err(|issue| ConfigError::from_issue(file, &format!("{at}.policy"), issue))?;
    check_threads(launch.model(), task.workers, &policy.loop_policy)
        .map_err(|issue| ConfigError::from_issue(file, &format!("{at}.policy"), issue))?;
    let plan = TaskPlan {
        name: name.to_owned(),
        implementation: task.implementation.clone(),
        workers: task.workers,
        launch: launch.clone(),
        input,
        output,
        services: injected,
        policy,
        settings: task.settings.clone().unwrap_or_else(empty_table),
        produces: task.produces.clone(),
        base_dir: base_dir.to_path_buf(),
    };
    let cx = plan.check_context();
    plan.launch
        .check(&cx)
        // A factory that stopped at a service lookup of the right type is checked so far.
        .or_else(|err| {
            if cx.unbuilt_lookups() > 0 {
                Ok(())
            } else {
                Err(err)
            }
        })
        .map_err(|err| {
            let message = err.chain().to_string();
            // Settings errors from `Context::settings` already start with their key path.
            match message.strip_prefix(&format!("{at}.")) {
                Some(rest) => {
                    let (path, message) = rest.split_once(": ").unwrap_or((rest, ""));
                    ConfigError::new(file, format!("{at}.{path}"), message)
                }
                None => ConfigError::new(
                    file,
                    at.clone(),
                    format!("cannot create the task: {message}"),
                ),
            }
        })?;
    Ok(plan)
}

/// A blocking task runs `workers × loop.concurrency` threads: at most
/// [`LoopPolicy::MAX_BLOCKING_THREADS`].
fn check_threads(model: Model, workers: usize, policy: &LoopPolicy) -> Result<(), ConfigIssue> {
    let threads = workers.saturating_mul(policy.concurrency);
    if model == Model::Blocking && threads > LoopPolicy::MAX_BLOCKING_THREADS {
        return Err(ConfigIssue::new(
            "loop.concurrency",
            format!(
                "a blocking task runs workers × loop.concurrency threads ({workers} × {} = {threads} here); at most {}",
                policy.concurrency,
                LoopPolicy::MAX_BLOCKING_THREADS
            ),
        ));
    }
    Ok(())
}

/// Configures every `[connectors.NAME]` of the file (no I/O), by name: what the plan's
/// tasks use, and what the `queue` commands open on their own.
///
/// # Errors
///
/// A table whose `type` is unknown or whose keys its kind rejects.
pub(crate) fn configure_connectors(
    loaded: &LoadedConfig,
    registry: &Registry,
) -> Result<BTreeMap<String, ConnectorRef>, ConfigError> {
    configure_all(
        &loaded.file,
        "connector",
        &loaded.config.connectors,
        &registry.connectors,
        |kind, table, name| {
            let env = ConfigEnv {
                name: name.to_owned(),
                base_dir: loaded.base_dir.clone(),
            };
            kind.configure(table, &env).map(|make| ConnectorRef {
                name: name.to_owned(),
                kind: kind.name(),
                make,
            })
        },
    )
}

/// Configures every `[connectors.X]` or `[services.X]` table with the kind its `type`
/// names.
fn configure_all<K: ?Sized, T>(
    file: &Path,
    what: &str,
    tables: &BTreeMap<String, serde_json::Value>,
    kinds: &BTreeMap<&'static str, Arc<K>>,
    configure: impl Fn(&K, serde_json::Value, &str) -> Result<T, ConfigIssue>,
) -> Result<BTreeMap<String, T>, ConfigError> {
    let available: Vec<&str> = kinds.keys().copied().collect();
    tables
        .iter()
        .map(|(name, table)| {
            let at = format!("{what}s.{name}");
            let (kind, rest) = split_type(file, &at, table, what, &available)?;
            let built = configure(&kinds[kind.as_str()], rest, name)
                .map_err(|issue| ConfigError::from_issue(file, &at, issue))?;
            Ok((name.clone(), built))
        })
        .collect()
}

/// The built-in kinds, `(connector | service, type, the ergon-runner feature building it)`:
/// a `type` a build left out is named with its feature.
const BUILT_IN: &[(&str, &str, &str)] = &[
    ("connector", "memory", "memory"),
    ("connector", "file", "file"),
    ("connector", "local", "local"),
    ("connector", "rabbitmq", "rabbitmq"),
    ("connector", "postgres", "postgres"),
    ("connector", "redis_streams", "redis-streams"),
    ("connector", "http", "http-connector"),
    ("service", "memory_kv", "memory-kv"),
    ("service", "http", "http"),
    ("service", "postgres", "postgres"),
    ("service", "llm", "llm"),
];

/// Splits `type` off a component table and checks it names a registered kind.
fn split_type(
    file: &Path,
    at: &str,
    table: &serde_json::Value,
    what: &str,
    available: &[&str],
) -> Result<(String, serde_json::Value), ConfigError> {
    let mut table = match table {
        serde_json::Value::Object(map) => map.clone(),
        _ => {
            return Err(ConfigError::new(
                file,
                at,
                "must be a table with a `type` key",
            ));
        }
    };
    let kind = match table.remove("type") {
        Some(serde_json::Value::String(kind)) => kind,
        Some(other) => {
            return Err(ConfigError::new(
                file,
                format!("{at}.type"),
                format!(
                    "must be a string, got {other}; available {what} types: {}",
                    one_of(available.iter().copied())
                ),
            ));
        }
        None => {
            return Err(ConfigError::new(
                file,
                at,
                format!(
                    "missing `type`; available {what} types: {}",
                    one_of(available.iter().copied())
                ),
            ));
        }
    };
    if !available.contains(&kind.as_str()) {
        let hint = BUILT_IN
            .iter()
            .find(|(w, k, _)| *w == what && *k == kind)
            .map(|(_, _, feature)| {
                format!(
                    " (`{kind}` is built in behind ergon-runner's cargo feature `{feature}`, \
                     which this binary was built without)"
                )
            })
            .unwrap_or_default();
        return Err(ConfigError::new(
            file,
            format!("{at}.type"),
            format!(
                "unknown {what} type `{kind}`; available: {}{hint}",
                one_of(available.iter().copied())
            ),
        ));
    }
    Ok((kind, serde_json::Value::Object(table)))
}

fn empty_table() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

fn one_of<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}
