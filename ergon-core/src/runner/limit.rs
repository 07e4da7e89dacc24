//! The `limit` of a task, shared by its workers so that it is exact across them.

use std::sync::atomic::{AtomicU64, Ordering};

/// How many more transactions a task may fetch. Workers reserve before each fetch and give
/// back what the fetch did not use, so no transaction beyond the limit is ever fetched.
///
/// # Examples
///
/// ```
/// use ergon_core::runner::LimitBudget;
///
/// let budget = LimitBudget::new(250);
/// assert_eq!(budget.reserve(100), 100);
/// assert_eq!(budget.reserve(100), 100);
/// assert_eq!(budget.reserve(100), 50);
/// budget.give_back(20); // the last fetch returned only 30
/// assert_eq!(budget.reserve(100), 20);
/// assert_eq!(budget.reserve(100), 0);
/// ```
#[derive(Debug)]
pub struct LimitBudget {
    remaining: AtomicU64,
}

impl LimitBudget {
    /// A budget of `limit` transactions.
    pub fn new(limit: u64) -> Self {
        Self {
            remaining: AtomicU64::new(limit),
        }
    }

    /// Takes up to `want` from the budget and returns how many were granted (0 when spent).
    pub fn reserve(&self, want: usize) -> usize {
        let mut granted = 0;
        let _ = self
            .remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                granted = left.min(want as u64);
                Some(left - granted)
            });
        granted as usize
    }

    /// Returns `unused` reserved transactions to the budget.
    pub fn give_back(&self, unused: usize) {
        if unused > 0 {
            self.remaining.fetch_add(unused as u64, Ordering::AcqRel);
        }
    }
}
