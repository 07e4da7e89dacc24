//! The services of a run: built before any worker starts, in name order, shared by every
//! task and worker that lists them, closed after every worker has ended, in reverse order.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use ergon_core::TaskError;
use ergon_core::service::{BuildContext, ConfiguredService, ServiceHandle, ServiceTelemetry};

/// One `[services.NAME]` of the plan, configured (not built).
#[derive(Clone, Debug)]
pub(crate) struct ServiceRef {
    /// `NAME`.
    pub name: String,
    /// Its `type`.
    pub kind: &'static str,
    /// How to build it.
    pub configured: ConfiguredService,
}

/// Services built for a run (or a command), by name.
#[derive(Default)]
pub struct RunningServices {
    built: Vec<(String, ServiceHandle)>,
}

impl RunningServices {
    /// Builds `services` (each name once, in the order given), with the run's `shutdown`
    /// signal and `telemetry`. When one fails, those already built are closed (in reverse
    /// order) and the error names the service.
    pub(crate) async fn build<'a>(
        services: impl IntoIterator<Item = &'a ServiceRef>,
        shutdown: &CancellationToken,
        telemetry: &ServiceTelemetry,
    ) -> Result<Self, TaskError> {
        let mut running = Self::default();
        for service in services {
            if running.get(&service.name).is_some() {
                continue;
            }
            let cx = BuildContext::new(service.name.as_str())
                .with_shutdown(shutdown.clone())
                .with_telemetry(telemetry.clone());
            match service.configured.build(cx).await {
                Ok(handle) => running.built.push((service.name.clone(), handle)),
                Err(err) => {
                    running.close().await;
                    return Err(TaskError::system(format!(
                        "cannot build service `{}` ({})",
                        service.name, service.kind
                    ))
                    .with_source(err)
                    .non_retryable());
                }
            }
        }
        Ok(running)
    }

    /// The service built under `name`.
    pub fn get(&self, name: &str) -> Option<&ServiceHandle> {
        self.built.iter().find(|(n, _)| n == name).map(|(_, h)| h)
    }

    /// Every built service, `(name, service)`, in build order.
    pub fn all(&self) -> Vec<(String, Arc<dyn ergon_core::Service>)> {
        self.built
            .iter()
            .map(|(name, handle)| (name.clone(), handle.service().clone()))
            .collect()
    }

    /// Closes every service, the last built first; a failure is logged and the others are
    /// still closed.
    pub async fn close(&self) {
        for (name, handle) in self.built.iter().rev() {
            if let Err(err) = handle.service().close().await {
                tracing::error!(service = %name, error = %err.chain(), "Closing a service failed");
            }
        }
    }
}
