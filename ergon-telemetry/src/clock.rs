//! Span timestamps: raw CPU ticks on the hot path, wall-clock times at export.
//!
//! A traced transaction reads the clock about six times; `SystemTime::now` costs ~25 ns
//! a read, a TSC read through `quanta` ~7 ns. Ticks become [`SystemTime`]s only when a
//! span is exported, against an anchor (a tick and the wall-clock time it was read at)
//! renewed every minute, so the TSC's drift against NTP never builds up.

use std::sync::{Mutex, OnceLock};

use ergon_core::observe::Scope;
use std::time::{Duration, Instant, SystemTime};

/// How long one anchor is used before it is read again.
const ANCHOR_LIFETIME: Duration = Duration::from_secs(60);

/// A moment, as a raw clock reading: cheap to take, turned into wall-clock time later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tick(u64);

impl Tick {
    /// Now.
    #[inline]
    pub fn now() -> Tick {
        Tick(clock().raw())
    }

    /// The raw reading (kept in a [`Scope`]).
    pub fn raw(self) -> u64 {
        self.0
    }

    /// The start tick of a scope of ergon-telemetry's (its fourth word).
    pub fn of_scope(scope: &Scope) -> Tick {
        Tick(scope.words()[3])
    }

    /// A tick read earlier, from its raw reading (zero: none).
    pub(crate) fn from_raw(raw: u64) -> Option<Tick> {
        (raw != 0).then_some(Tick(raw))
    }

    /// The wall-clock time of this tick.
    pub fn to_system_time(self) -> SystemTime {
        let (raw, wall) = anchor();
        let clock = clock();
        if self.0 >= raw {
            wall + clock.delta(raw, self.0)
        } else {
            wall - clock.delta(self.0, raw)
        }
    }
}

fn clock() -> &'static quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

/// The current anchor: a raw reading and the wall-clock time taken with it.
fn anchor() -> (u64, SystemTime) {
    static ANCHOR: Mutex<Option<(u64, SystemTime, Instant)>> = Mutex::new(None);
    let mut anchor = ANCHOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match *anchor {
        Some((raw, wall, taken)) if taken.elapsed() < ANCHOR_LIFETIME => (raw, wall),
        _ => {
            let (raw, wall) = (clock().raw(), SystemTime::now());
            *anchor = Some((raw, wall, Instant::now()));
            (raw, wall)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_become_wall_clock_times_in_order() {
        let before = SystemTime::now();
        let first = Tick::now();
        std::thread::sleep(Duration::from_millis(20));
        let second = Tick::now();
        let after = SystemTime::now();
        let (a, b) = (first.to_system_time(), second.to_system_time());
        let slack = Duration::from_millis(5);
        assert!(a + slack >= before && b <= after + slack, "{a:?} {b:?}");
        let between = b.duration_since(a).unwrap();
        assert!(between >= Duration::from_millis(15), "{between:?}");
    }
}
