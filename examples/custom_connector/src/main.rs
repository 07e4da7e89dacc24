//! A user's own ergon binary with a connector of its own: the `spool` connector kind
//! (a directory of files, one transaction per file) and a `record` task, registered next
//! to ergon's built-ins. Everything else — the CLI, the TOML, policies, retries,
//! `max_deliveries`, the summary — is ergon's.
//!
//! ```sh
//! cargo run -p custom_connector -- --config examples/custom_connector/tasks.toml
//! ```

use std::sync::Arc;

use ergon_runner::Registry;

mod record;
mod spool;

fn main() -> std::process::ExitCode {
    ergon_runner::run(
        Registry::with_builtins()
            .connector_kind(Arc::new(spool::SpoolKind))
            .blocking_consumer("record", record::Record::from_context),
    )
}
