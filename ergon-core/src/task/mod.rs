//! The roles a task plays. This engine drives the async [`Consumer`].

mod consumer;

pub use consumer::Consumer;
