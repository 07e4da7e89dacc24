//! Services: capabilities a task calls (an HTTP API, a model, a store), injected by name.

use async_trait::async_trait;

use crate::error::TaskError;

/// A capability injected into tasks and reached with
/// [`Context::service`](crate::Context::service) by its concrete type.
///
/// Services wrap their own calls in the step envelope
/// ([`run_fn`](crate::envelope::run_fn)) so tasks get retries and timeouts for free.
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
    /// Checks that the service can reach what it wraps (`validate --connect`, health).
    async fn health(&self) -> Result<(), TaskError> {
        Ok(())
    }
}
