//! The fingerprint binary: ergon's whole CLI with the blocking `fingerprint` task.
//!
//! ```sh
//! cargo run --release -p fingerprint -- --config examples/fingerprint/tasks.toml
//! ```

mod digest;
mod task;

fn main() -> std::process::ExitCode {
    ergon_runner::run(
        ergon_runner::Registry::with_builtins()
            .blocking_hybrid("fingerprint", task::Fingerprint::from_context),
    )
}
