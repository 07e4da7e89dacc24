//! What the runner tells people while and after it runs.

pub mod progress;
pub mod summary;
