//! Policies: how each step is retried, bounded and backed off, and how the loop runs.
//!
//! Policies are plain serde structs with safe defaults. They come from the `policy` table
//! of a task in the TOML; every field is optional and unknown keys are rejected.
//! Durations are human strings such as `"250ms"`, `"2s"` or `"1m 30s"`.
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
mod retry;

pub use consumer::{
    ConsumerPolicy, EmptyFetchPolicy, FailureAction, FetchPolicy, LoopPolicy, StepPolicy,
    TransactionPolicy,
};
pub use retry::RetryPolicy;
