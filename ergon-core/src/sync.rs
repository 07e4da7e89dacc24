//! The one way ergon takes a `std::sync::Mutex`.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, using a poisoned one as it is.
///
/// A panic while holding one of ergon's locks cannot leave its state half-updated: every
/// critical section is a single push, pop, swap or counter update, so the state a panic
/// leaves behind is one a later holder can use. Recovering keeps one panicking task from
/// taking every other worker down with it.
///
/// ```
/// use std::sync::Mutex;
/// use ergon_core::sync::lock;
///
/// let queue = Mutex::new(vec![1]);
/// lock(&queue).push(2);
/// assert_eq!(*lock(&queue), [1, 2]);
/// ```
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
