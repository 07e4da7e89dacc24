//! The roles a task plays, each in an async and a blocking variant.
//!
//! | role     | async        | blocking             | needs            |
//! |----------|--------------|----------------------|------------------|
//! | consumer | [`Consumer`] | [`BlockingConsumer`] | input            |
//! | producer | [`Producer`] | [`BlockingProducer`] | output (+ input) |
//! | hybrid   | [`Hybrid`]   | [`BlockingHybrid`]   | input and output |
//!
//! Async tasks run on the tokio runtime; blocking ones on a thread pool of their own.

mod blocking;
mod consumer;
mod hybrid;
mod producer;

pub use blocking::{BlockingConsumer, BlockingHybrid, BlockingProducer};
pub use consumer::Consumer;
pub use hybrid::Hybrid;
pub use producer::Producer;
