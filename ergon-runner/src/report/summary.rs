//! The end-of-run summary, printed to stdout as `key=value` pairs (easy to read and grep).

use std::fmt::Write as _;

use ergon_core::runner::LoopEnd;

use crate::manager::RunReport;

/// Renders the summary of a finished run.
///
/// ```text
/// ergon run finished in 0.052s: 20 transactions, 384 tx/s, exit code 0
/// task orders: processed=20 succeeded=15 failed=5 business=4 system=0 timeout=1 retries=3 dispatched=15 dead_lettered=5 requeued=0 dropped=0 exception_failed=0 settle_failed=0 settle_stale=0 abandoned_attempts=0 ended=exhausted
/// ```
///
/// `succeeded`, `dead_lettered`, `requeued` and `dropped` count settlements the transport
/// performed; `settle_stale` counts the ones it could not (the delivery's channel was lost
/// or its lease ran out: the transaction is delivered again).
pub fn render(report: &RunReport) -> String {
    let total: u64 = report.tasks.iter().map(|t| t.stats.processed).sum();
    let seconds = report.wall.as_secs_f64();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ergon run finished in {seconds:.3}s: {total} transactions, {:.0} tx/s, exit code {}{}",
        total as f64 / seconds.max(1e-9),
        report.exit_code(),
        report
            .signal
            .map(|s| format!(" (stopped by {s})"))
            .unwrap_or_default()
    );
    if let Some(error) = &report.error {
        let _ = writeln!(out, "not started: {error}");
    }
    for task in &report.tasks {
        let s = &task.stats;
        let ended: Vec<String> = task
            .workers
            .iter()
            .map(|end| match end {
                Ok(LoopEnd::Exhausted) => "exhausted".to_owned(),
                Ok(LoopEnd::LimitReached) => "limit".to_owned(),
                Ok(LoopEnd::TimedOut) => "timeout".to_owned(),
                Ok(LoopEnd::ShutDown) => "shutdown".to_owned(),
                Err(err) => format!("failed ({err})"),
            })
            .collect();
        let _ = writeln!(
            out,
            "task {}: processed={} succeeded={} failed={} business={} system={} timeout={} retries={} dispatched={} dead_lettered={} requeued={} dropped={} exception_failed={} settle_failed={} settle_stale={} abandoned_attempts={} ended={}",
            task.name,
            s.processed,
            s.succeeded,
            s.failed(),
            s.failed_business,
            s.failed_system,
            s.failed_timeout,
            s.retries,
            s.dispatched,
            s.dead_lettered,
            s.requeued,
            s.dropped,
            s.exception_failed,
            s.settle_failed,
            s.settle_stale,
            s.abandoned_attempts,
            ended.join(",")
        );
    }
    out
}
