//! The stock `ergon-runner`: the CLI with the built-in connectors and services only.
//! Build your own binary with `ergon_runner::run` to add your task implementations.

fn main() -> std::process::ExitCode {
    ergon_runner::run(ergon_runner::Registry::with_builtins())
}
