//! The engines that drive tasks: the consume loop (async, for every role), the thread
//! pool of blocking tasks, a producer's own source, the counters and the shared limit.

mod async_loop;
mod batches;
mod generated;
mod limit;
mod on_pool;
mod quiet;
mod stats;
mod thread_pool;

pub use async_loop::{ConsumeLoop, LoopEnd};
pub(crate) use generated::Generated;
pub use limit::LimitBudget;
pub use on_pool::OnPool;
pub use quiet::RunQuiet;
pub use stats::{HistogramsSnapshot, StatsSnapshot, WorkerStats};
pub use thread_pool::ThreadPool;
