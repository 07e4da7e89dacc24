//! SIGTERM and SIGINT under load: the runner stops fetching, drains what is in flight and
//! exits 143 / 130; what it had not started stays queued and the next run processes it.
//! Nothing is lost and, the drain having settled everything it ran, nothing comes twice.

use std::time::Duration;

use crate::harness::{
    Error, Input, Pipeline, Queue, Report, Result, Signal, Suite, Tuning, ids, inputs, wait,
};

/// `sigterm_local`.
pub fn sigterm_local(suite: &Suite, name: &'static str) -> Result<Report> {
    signal_under_load(suite, name, Input::Local, Signal::Term)
}

/// `sigint_local`.
pub fn sigint_local(suite: &Suite, name: &'static str) -> Result<Report> {
    signal_under_load(suite, name, Input::Local, Signal::Int)
}

/// `sigterm_rabbitmq`.
pub fn sigterm_rabbitmq(suite: &Suite, name: &'static str) -> Result<Report> {
    signal_under_load(suite, name, Input::RabbitMq, Signal::Term)
}

/// `sigterm_postgres`.
pub fn sigterm_postgres(suite: &Suite, name: &'static str) -> Result<Report> {
    signal_under_load(suite, name, Input::Postgres, Signal::Term)
}

/// `sigterm_redis`.
pub fn sigterm_redis(suite: &Suite, name: &'static str) -> Result<Report> {
    signal_under_load(suite, name, Input::RedisStreams, Signal::Term)
}

/// Ids fed into `input`, relayed slowly (work always in flight); `signal` once a quarter
/// is out. Checks the exit code, that nothing is left unsettled and exactly the ids not
/// yet out are still queued, then runs the rest and counts every id once.
fn signal_under_load(
    suite: &Suite,
    name: &'static str,
    input: Input,
    signal: Signal,
) -> Result<Report> {
    let count = suite.profile.pick(2_000, 20_000);
    let limit = Duration::from_secs(suite.profile.pick(120, 600));
    let tuning = Tuning {
        concurrency: 16,
        delay_ms: 20,
        ..Tuning::default()
    };
    let pipeline = Pipeline::new(suite, Queue::new(input, name), tuning)?;
    let sent = ids::numbered("o", count);
    pipeline.feed(&ids::json_lines(&sent))?;

    let mut runner = pipeline.drain()?;
    wait::until("a quarter of the ids out before the signal", limit, || {
        Ok((pipeline.delivered()? >= count / 4).then_some(()))
    })?;
    if let Some(exit) = runner.exited()? {
        return Err(Error::Output(format!(
            "the run ended ({}) before it was signalled",
            exit.describe()
        )));
    }
    runner.signal(signal)?;
    let exit = runner.wait(limit)?;
    let out_at_exit = pipeline.delivered()?;
    let stats = pipeline.deployment().stats(pipeline_connector())?;
    let (remaining, unsettled) = (inputs::remaining(&stats), inputs::unsettled(&stats));
    let expected_remaining = (count - out_at_exit) as u64;

    pipeline
        .drain()?
        .expect_exit(limit, 0)
        .map_err(|err| Error::Output(format!("the run after the signal: {err}")))?;
    let report = Report::new(name)
        .tally(&pipeline.tally(&sent)?, 0)
        .field("signal", signal.name())
        .field("exit", exit.describe())
        .field("out_at_exit", out_at_exit)
        .field("requeued", remaining)
        .check(exit.code() == Some(signal.exit_code()), || {
            format!("SIG{} exited with {}, expected code {}", signal.name(), exit.describe(), signal.exit_code())
        })
        .check(out_at_exit < count, || "the signal came after the run was done".to_owned())
        .check(unsettled == 0, || {
            format!("{unsettled} deliveries left unsettled after the drain")
        })
        .check(remaining == expected_remaining, || {
            format!("{remaining} left in the queue after the drain, expected {expected_remaining} (sent minus out)")
        });
    Ok(report)
}

/// The connector `queue stats` is asked about.
fn pipeline_connector() -> &'static str {
    crate::harness::INBOX
}
