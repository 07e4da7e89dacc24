//! Whether durations are measured.
//!
//! Counters are always kept (an uncontended atomic add each); durations need two clock
//! reads per step, so they are measured only while something reads them (the runner's
//! metrics endpoint or OTLP metrics export turn this on).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns duration measurement on or off for the whole process.
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Relaxed);
}

/// Whether durations are measured.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// Starts a measurement when timing is on.
#[inline]
pub(crate) fn start() -> Option<std::time::Instant> {
    enabled().then(std::time::Instant::now)
}

/// Microseconds since `started`, saturating at `u32::MAX` (71 minutes).
#[inline]
pub(crate) fn micros_since(started: std::time::Instant) -> u32 {
    u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX)
}
