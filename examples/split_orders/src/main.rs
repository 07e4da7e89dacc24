//! The split_orders binary: ergon's whole CLI with the `split_order` hybrid task.
//!
//! ```sh
//! cargo run -p split_orders -- --config examples/split_orders/tasks.toml
//! ```

mod split;

fn main() -> std::process::ExitCode {
    ergon_runner::run(
        ergon_runner::Registry::with_builtins().hybrid("split_order", |_cx| Ok(split::SplitOrder)),
    )
}
