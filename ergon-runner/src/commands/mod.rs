//! One module per CLI command.

#[cfg(feature = "journal")]
pub mod journal;
pub mod list;
pub mod process;
pub mod queue;
pub mod run;
#[cfg(feature = "journal")]
pub mod runs;
#[cfg(feature = "journal")]
pub mod trace;
pub mod validate;
