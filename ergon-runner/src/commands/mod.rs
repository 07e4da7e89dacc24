//! One module per CLI command.

pub mod list;
pub mod process;
pub mod run;
pub mod validate;
