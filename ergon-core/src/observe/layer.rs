//! Where the engine finds its observer: a `tracing` layer of the current subscriber, found
//! by type, so a run's or a test's subscriber decides, like for log lines.

use std::sync::Arc;

use tracing::Subscriber;
use tracing_subscriber::Layer;

use super::Observer;

/// The `tracing` layer carrying an [`Observer`]: it sees no callback, it is found by type
/// ([`observer`]).
///
/// ```
/// use std::sync::Arc;
/// use ergon_core::observe::{Observer, ObserverLayer, observer};
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// struct Quiet;
/// impl Observer for Quiet {}
///
/// let subscriber = tracing_subscriber::registry().with(ObserverLayer::new(Arc::new(Quiet)));
/// tracing::subscriber::with_default(subscriber, || assert!(observer().is_some()));
/// assert!(observer().is_none());
/// ```
#[derive(Clone)]
pub struct ObserverLayer(Arc<dyn Observer>);

impl ObserverLayer {
    /// The layer that makes `observer` the current subscriber's.
    pub fn new(observer: Arc<dyn Observer>) -> ObserverLayer {
        ObserverLayer(observer)
    }
}

impl std::fmt::Debug for ObserverLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObserverLayer")
    }
}

impl<S: Subscriber> Layer<S> for ObserverLayer {}

/// The observer of the current `tracing` subscriber, if it carries one. `None`: the
/// engine reports nothing (no subscriber, or one without an [`ObserverLayer`]).
pub fn observer() -> Option<Arc<dyn Observer>> {
    tracing::dispatcher::get_default(|dispatch| {
        dispatch
            .downcast_ref::<ObserverLayer>()
            .map(|layer| layer.0.clone())
    })
}
