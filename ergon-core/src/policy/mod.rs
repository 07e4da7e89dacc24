//! Policies: how each step is retried, bounded and backed off, and how the loop runs.
//!
//! Policies are plain serde structs with safe defaults. They come from the `policy` table
//! of a task in the TOML; every field is optional and unknown keys are rejected. Each role
//! has its own policy ([`ConsumerPolicy`], [`ProducerPolicy`], [`HybridPolicy`]) built from
//! the same parts, so a consumer's table cannot carry a `prepare` step by mistake.
//! Durations are human strings such as `"250ms"`, `"2s"` or `"1m 30s"`, at most 30 days
//! ([`duration::MAX`]); every size and count has a documented maximum too (the `MAX_*`
//! constants of each part), checked by `validate`.
//!
//! ```toml
//! [tasks.orders.policy.loop]
//! concurrency = 64
//! limit = 10000
//!
//! [tasks.orders.policy.process.retry]
//! max_attempts = 5
//! timeout = "2s"
//! backoff = "100ms"
//! backoff_multiplier = 2.0
//! backoff_cap = "5s"
//! jitter = 0.2
//! ```

mod consumer;
pub mod duration;
mod hybrid;
mod parts;
mod producer;
mod retry;

pub use consumer::ConsumerPolicy;
pub use hybrid::HybridPolicy;
pub use parts::{
    EmptyFetchPolicy, FailureAction, FetchPolicy, LoopPolicy, StepPolicy, TransactionPolicy,
};
pub use producer::ProducerPolicy;
pub use retry::RetryPolicy;

use crate::config::ConfigIssue;

/// What the loop needs from any role's policy, and its validation.
pub trait RolePolicy: Send + Sync + 'static {
    /// Concurrency, limit, timeout, streaming, drain.
    fn loop_policy(&self) -> &LoopPolicy;
    /// Batch size, fetch retries, empty-fetch backoff.
    fn fetch_policy(&self) -> &FetchPolicy;
    /// Retries of each settlement.
    fn settle_policy(&self) -> &RetryPolicy;
    /// The budget of the steps before the exception step (`transaction.timeout`).
    fn budget(&self) -> Option<std::time::Duration>;
    /// Most deliveries of one transaction (`transaction.max_deliveries`; 0: unbounded).
    fn max_deliveries(&self) -> u32;
    /// Retries of the exception step.
    fn exception_policy(&self) -> &RetryPolicy;
    /// What happens to a failed transaction after its exception step.
    fn on_failure(&self) -> FailureAction;
    /// Checks every part; the error path is relative to the `policy` table.
    ///
    /// # Errors
    ///
    /// The first offending field, with what is allowed.
    fn validate(&self) -> Result<(), ConfigIssue>;
}

/// Implements [`RolePolicy`] for a role policy with `loop`, `fetch`, `transaction` and the
/// listed step fields (validated in that order).
macro_rules! role_policy {
    ($policy:ty: $($step:ident),+) => {
        impl $crate::policy::RolePolicy for $policy {
            fn loop_policy(&self) -> &$crate::policy::LoopPolicy {
                &self.r#loop
            }

            fn fetch_policy(&self) -> &$crate::policy::FetchPolicy {
                &self.fetch
            }

            fn settle_policy(&self) -> &$crate::policy::RetryPolicy {
                &self.settle.retry
            }

            fn budget(&self) -> Option<std::time::Duration> {
                self.transaction.timeout
            }

            fn max_deliveries(&self) -> u32 {
                self.transaction.max_deliveries
            }

            fn exception_policy(&self) -> &$crate::policy::RetryPolicy {
                &self.exception.retry
            }

            fn on_failure(&self) -> $crate::policy::FailureAction {
                self.on_failure
            }

            fn validate(&self) -> Result<(), $crate::config::ConfigIssue> {
                super::parts::validate_parts(
                    &self.r#loop,
                    &self.fetch,
                    &self.transaction,
                    &[$((stringify!($step), &self.$step)),+],
                )
            }
        }
    };
}
use role_policy;
