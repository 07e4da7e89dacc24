//! The quickstart binary: ergon's whole CLI with the `order_validation` task registered.
//!
//! ```sh
//! cargo run -p quickstart -- --config examples/quickstart/tasks.toml
//! ```

mod order;
mod validation;

fn main() -> std::process::ExitCode {
    ergon_runner::run(ergon_runner::Registry::with_builtins().hybrid(
        "order_validation",
        validation::OrderValidation::from_context,
    ))
}
