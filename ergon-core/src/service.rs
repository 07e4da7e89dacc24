//! Services: capabilities a task calls (an HTTP API, a model, a store), injected by name.
//!
//! A `[services.NAME]` table goes through three stages, like a connector's:
//!
//! ```text
//! ServiceKind::configure (load time, no I/O) ──▶ ConfiguredService (knows its ServiceType)
//!   ──plan: tasks' lookups type-checked──▶ ConfiguredService::build(BuildContext) (run time, async)
//!   ──▶ ServiceHandle in every Context that lists it ──▶ Service::health (readiness, validate
//!   --connect) ──▶ Service::close (at shutdown, in reverse build order)
//! ```
//!
//! **Retries.** The step envelope owns the retries of a step. A service makes one try per
//! call and returns a categorized [`TaskError`] (with a retry-after hint when the other
//! side gave one), and the envelope retries the step. A service that retries on its own
//! (ergon-services' stack with `retry.max_attempts > 1`) returns its last error as
//! non-retryable, and never waits past [`attempt_deadline`](crate::envelope::attempt_deadline).
//! Do not wrap service calls in [`run_fn`](crate::envelope::run_fn) inside a step: that
//! would be a second retry owner.

use std::any::{Any, TypeId};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::error::TaskError;

/// A capability injected into tasks and reached with
/// [`Context::service`](crate::Context::service) by its concrete type.
///
/// # Examples
///
/// ```
/// use ergon_core::Service;
///
/// struct Rates { eur_per_usd: f64 }
/// impl Service for Rates {}
/// ```
#[async_trait]
pub trait Service: Send + Sync + 'static {
    /// Checks that the service can reach what it wraps (`validate --connect`,
    /// `/health/ready`). Keep it cheap: it runs every few seconds while a run is served.
    async fn health(&self) -> Result<(), TaskError> {
        Ok(())
    }

    /// Releases what the service holds (connections, background tasks); called once at
    /// shutdown, after every worker has ended, in the reverse order of building.
    async fn close(&self) -> Result<(), TaskError> {
        Ok(())
    }
}

/// Builds the service of one `[services.NAME]` at run time (what a
/// [`ServiceKind`](crate::config::ServiceKind) configures).
///
/// `build` may do I/O (connect, warm a pool); it runs once per run, before any worker
/// starts, and a failure stops the run (exit 1). The service's type is known before it is
/// built, so the plan checks that tasks ask for it by its type.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use ergon_core::service::{BuildContext, BuildService, ConfiguredService, ServiceType};
/// use ergon_core::{Service, TaskError};
///
/// struct Rates { eur_per_usd: f64 }
/// impl Service for Rates {}
///
/// struct BuildRates;
/// impl BuildService for BuildRates {
///     type Service = Rates;
///     async fn build(&self, _cx: BuildContext) -> Result<Arc<Rates>, TaskError> {
///         Ok(Arc::new(Rates { eur_per_usd: 0.9 }))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let configured = ConfiguredService::new(BuildRates);
/// assert_eq!(configured.service_type(), ServiceType::of::<Rates>());
/// let handle = configured.build(BuildContext::new("rates")).await.unwrap();
/// let cx = ergon_core::Context::builder("t").service_handle("rates", handle).build();
/// assert_eq!(cx.service::<Rates>("rates").unwrap().eur_per_usd, 0.9);
/// # }
/// ```
pub trait BuildService: Send + Sync + 'static {
    /// The service this builds.
    type Service: Service;

    /// Builds the service.
    ///
    /// # Errors
    ///
    /// Whatever stops the service from starting; the run stops before any worker starts.
    fn build(
        &self,
        cx: BuildContext,
    ) -> impl Future<Output = Result<Arc<Self::Service>, TaskError>> + Send;
}

/// The type of service a [`ConfiguredService`] builds, to check lookups before building.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceType {
    id: TypeId,
    name: &'static str,
}

impl ServiceType {
    /// The type `S`.
    pub fn of<S: Service>() -> Self {
        Self {
            id: TypeId::of::<S>(),
            name: std::any::type_name::<S>(),
        }
    }

    /// The Rust type's path, for messages.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// A decoded and validated `[services.NAME]`: its type, and how to build it.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct ConfiguredService {
    build: Arc<dyn ErasedBuild>,
    service_type: ServiceType,
}

impl ConfiguredService {
    /// Wraps a builder.
    pub fn new<B: BuildService>(build: B) -> Self {
        Self {
            build: Arc::new(build),
            service_type: ServiceType::of::<B::Service>(),
        }
    }

    /// The type of service it builds.
    pub fn service_type(&self) -> ServiceType {
        self.service_type
    }

    /// Builds the service.
    ///
    /// # Errors
    ///
    /// The builder's error.
    pub async fn build(&self, cx: BuildContext) -> Result<ServiceHandle, TaskError> {
        self.build.build(cx).await
    }
}

impl fmt::Debug for ConfiguredService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConfiguredService({})", self.service_type.name)
    }
}

/// [`BuildService`] with its type erased.
trait ErasedBuild: Send + Sync {
    fn build(&self, cx: BuildContext) -> BoxFuture<'_, Result<ServiceHandle, TaskError>>;
}

impl<B: BuildService> ErasedBuild for B {
    fn build(&self, cx: BuildContext) -> BoxFuture<'_, Result<ServiceHandle, TaskError>> {
        Box::pin(async move { BuildService::build(self, cx).await.map(ServiceHandle::new) })
    }
}

/// What a service is built with: its name, the run's shutdown signal, and where it
/// reports its metrics.
#[derive(Debug, Clone)]
pub struct BuildContext {
    name: Arc<str>,
    shutdown: CancellationToken,
    telemetry: ServiceTelemetry,
}

impl BuildContext {
    /// The context of the service named `name`, with a shutdown signal of its own and
    /// metrics nobody reads (tests, tools); the runner sets both with the methods below.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            shutdown: CancellationToken::new(),
            telemetry: ServiceTelemetry::default(),
        }
    }

    /// Uses the run's shutdown signal.
    #[must_use]
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Reports metrics to `telemetry`.
    #[must_use]
    pub fn with_telemetry(mut self, telemetry: ServiceTelemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// The service's name in the file (`[services.NAME]`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Cancelled when the run starts shutting down (stop background work, refuse long
    /// waits).
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// A gauge of this service named `name` (e.g. `ergon.service.circuit_breaker.state`),
    /// exported with the label `ergon.service` = the service's name. Set it at will.
    pub fn gauge(&self, name: &'static str, help: &'static str) -> Arc<AtomicU64> {
        self.telemetry
            .register(&self.name, name, help, MetricKind::Gauge)
    }

    /// A counter of this service (monotonic; add to it), labelled as [`gauge`](Self::gauge).
    pub fn counter(&self, name: &'static str, help: &'static str) -> Arc<AtomicU64> {
        self.telemetry
            .register(&self.name, name, help, MetricKind::Counter)
    }
}

/// Where services register their metrics; the runner's exporters read them.
///
/// Cheap to clone (shared). Nothing is recorded for an exporter: a reading loads the
/// atomics the services set.
#[derive(Debug, Clone, Default)]
pub struct ServiceTelemetry {
    metrics: Arc<Mutex<Vec<ServiceMetric>>>,
}

/// Whether a service metric is a gauge or a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A value now.
    Gauge,
    /// A monotonic count.
    Counter,
}

/// One registered service metric.
#[derive(Debug, Clone)]
pub struct ServiceMetric {
    /// The service's name (`[services.NAME]`).
    pub service: Arc<str>,
    /// The metric's name.
    pub name: &'static str,
    /// What it measures.
    pub help: &'static str,
    /// Gauge or counter.
    pub kind: MetricKind,
    value: Arc<AtomicU64>,
}

impl ServiceMetric {
    /// Its value now.
    pub fn value(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

impl ServiceTelemetry {
    fn register(
        &self,
        service: &Arc<str>,
        name: &'static str,
        help: &'static str,
        kind: MetricKind,
    ) -> Arc<AtomicU64> {
        let value = Arc::new(AtomicU64::new(0));
        crate::sync::lock(&self.metrics).push(ServiceMetric {
            service: service.clone(),
            name,
            help,
            kind,
            value: value.clone(),
        });
        value
    }

    /// Every metric registered so far, in registration order.
    pub fn metrics(&self) -> Vec<ServiceMetric> {
        crate::sync::lock(&self.metrics).clone()
    }
}

/// A built service as stored in a context: usable by concrete type and as a [`Service`].
#[derive(Clone)]
pub struct ServiceHandle {
    pub(crate) concrete: Arc<dyn Any + Send + Sync>,
    service: Arc<dyn Service>,
    pub(crate) service_type: ServiceType,
}

impl ServiceHandle {
    /// Wraps a service.
    pub fn new<S: Service>(service: Arc<S>) -> Self {
        Self {
            concrete: service.clone(),
            service,
            service_type: ServiceType::of::<S>(),
        }
    }

    /// The service through its trait (health checks, close).
    pub fn service(&self) -> &Arc<dyn Service> {
        &self.service
    }

    /// Its type.
    pub fn service_type(&self) -> ServiceType {
        self.service_type
    }
}

impl fmt::Debug for ServiceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.service_type.name)
    }
}
