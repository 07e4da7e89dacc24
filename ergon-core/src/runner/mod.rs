//! The engines that drive tasks: the async consume loop, its counters and the shared limit.

mod async_loop;
mod limit;
mod stats;

pub use async_loop::{ConsumeLoop, LoopEnd};
pub use limit::LimitBudget;
pub use stats::{StatsSnapshot, WorkerStats};
