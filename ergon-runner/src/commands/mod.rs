//! One module per CLI command.

pub mod list;
pub mod process;
#[cfg(feature = "local")]
pub mod queue;
pub mod run;
pub mod validate;
