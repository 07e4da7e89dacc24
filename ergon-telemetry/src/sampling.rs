//! Which batches are traced.
//!
//! Head sampling, decided once per fetched batch with probability `ratio`: a traced
//! batch gets its fetch, batch, transaction, step and attempt spans; an untraced one gets
//! none, so 1 % sampling costs about 1 % of full tracing (an SDK sampler alone would still
//! build every span before dropping it). A transaction that carries a `traceparent`
//! follows that parent's sampled flag instead, so traces stay whole across services.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The ratio's bits as an `f64`; 1.0 by default.
static RATIO: AtomicU64 = AtomicU64::new(0x3FF0_0000_0000_0000);

/// Sets the share of batches traced, clamped to `0.0..=1.0` (the runner sets it from
/// `[telemetry] sampling_ratio` or `OTEL_TRACES_SAMPLER_ARG`).
pub fn set_ratio(ratio: f64) {
    let ratio = if ratio.is_nan() {
        1.0
    } else {
        ratio.clamp(0.0, 1.0)
    };
    RATIO.store(ratio.to_bits(), Relaxed);
}

/// The share of batches traced.
pub fn ratio() -> f64 {
    f64::from_bits(RATIO.load(Relaxed))
}

/// Decides whether the next batch is traced.
pub fn sample_batch() -> bool {
    let ratio = ratio();
    ratio >= 1.0 || (ratio > 0.0 && fastrand::f64() < ratio)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_is_clamped_and_sampling_follows_it() {
        set_ratio(3.0);
        assert_eq!(ratio(), 1.0);
        assert!((0..100).all(|_| sample_batch()));
        set_ratio(0.0);
        assert!((0..100).all(|_| !sample_batch()));
        set_ratio(0.5);
        let sampled = (0..10_000).filter(|_| sample_batch()).count();
        assert!((4_000..6_000).contains(&sampled), "{sampled}");
        set_ratio(1.0);
    }
}
