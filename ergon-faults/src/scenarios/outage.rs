//! The broker or the database goes away mid-run and comes back: the run resumes by itself,
//! loses nothing, and a finite run still ends only when its input is drained.
//!
//! Each scenario feeds ids into its transport, starts `drain` (finite: it must end with
//! exit 0 on its own; streaming: half the ids are fed after the outage, and the run is
//! stopped with SIGTERM once every id came out), and once a quarter of the ids are through:
//!
//! * RabbitMQ: the broker's application is stopped (`rabbitmqctl stop_app`) for
//!   [`DOWN`] and started again (`start_app`, `await_startup`); the suite's quorum queues
//!   keep their messages;
//! * PostgreSQL: the cluster serving the suite's URL is stopped (`pg_ctlcluster … stop -m
//!   fast`, which ends every connection) for [`DOWN`] and started again;
//! * Redis: every connection of the runner is killed (`CLIENT KILL ADDR`), found through
//!   `/proc`. The local Redis keeps nothing on disk, so a real restart empties it: the
//!   stream, its consumer group and its pending entries are gone, a loss of the server's
//!   and not ergon's (RELIABILITY.md lists it). The runner's reconnection is what is shown.
//!
//! A service is always brought back by a guard, even when the scenario fails or panics.
//! The report adds `outage_ms` (how long the service was down) and `recovery_ms` (from the
//! service back to the next id at the output). Duplicates are bounded by what the runner
//! held unsettled when its connections went: [`Pipeline::held_per_kill`].

mod down;
mod sockets;

use std::time::{Duration, Instant};

use crate::harness::{
    Error, Input, Pipeline, Queue, Report, Result, Signal, Suite, Tuning, ids, wait,
};
use crate::scenarios::summary;

use down::Down;

/// How long a service stays down.
const DOWN: Duration = Duration::from_secs(3);

/// The longest a run may take to recover and drain after the outage.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

/// RabbitMQ restarted under a finite run.
///
/// # Errors
///
/// A step of the scenario could not be carried out (see [`outage`]).
pub fn rabbitmq_finite(suite: &Suite, name: &'static str) -> Result<Report> {
    outage(suite, name, Fault::RabbitMqRestart, false)
}

/// RabbitMQ restarted under a streaming run.
///
/// # Errors
///
/// A step of the scenario could not be carried out (see [`outage`]).
pub fn rabbitmq_streaming(suite: &Suite, name: &'static str) -> Result<Report> {
    outage(suite, name, Fault::RabbitMqRestart, true)
}

/// PostgreSQL restarted under a finite run.
///
/// # Errors
///
/// A step of the scenario could not be carried out (see [`outage`]).
pub fn postgres_finite(suite: &Suite, name: &'static str) -> Result<Report> {
    outage(suite, name, Fault::PostgresRestart, false)
}

/// PostgreSQL restarted under a streaming run.
///
/// # Errors
///
/// A step of the scenario could not be carried out (see [`outage`]).
pub fn postgres_streaming(suite: &Suite, name: &'static str) -> Result<Report> {
    outage(suite, name, Fault::PostgresRestart, true)
}

/// The runner's Redis connections killed under a finite run.
///
/// # Errors
///
/// A step of the scenario could not be carried out (see [`outage`]).
pub fn redis_finite(suite: &Suite, name: &'static str) -> Result<Report> {
    outage(suite, name, Fault::RedisClientKill, false)
}

/// The runner's Redis connections killed under a streaming run.
///
/// # Errors
///
/// A step of the scenario could not be carried out (see [`outage`]).
pub fn redis_streaming(suite: &Suite, name: &'static str) -> Result<Report> {
    outage(suite, name, Fault::RedisClientKill, true)
}

/// What goes away.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// `rabbitmqctl stop_app`, then `start_app`.
    RabbitMqRestart,
    /// The PostgreSQL cluster stopped, then started.
    PostgresRestart,
    /// `CLIENT KILL` on each of the runner's Redis connections.
    RedisClientKill,
}

impl Fault {
    /// The transport it hits.
    fn input(self) -> Input {
        match self {
            Self::RabbitMqRestart => Input::RabbitMq,
            Self::PostgresRestart => Input::Postgres,
            Self::RedisClientKill => Input::RedisStreams,
        }
    }

    /// Injects the fault on the runner `pid` and returns once the service is back: how
    /// long it was away.
    fn inject(self, pid: u32) -> Result<Duration> {
        let started = Instant::now();
        match self {
            Self::RabbitMqRestart | Self::PostgresRestart => {
                let down = match self {
                    Self::RabbitMqRestart => Down::rabbitmq()?,
                    _ => Down::postgres(&url(Input::Postgres)?)?,
                };
                std::thread::sleep(DOWN);
                down.restore()?;
            }
            Self::RedisClientKill => {
                let killed = sockets::kill_redis_clients(&url(Input::RedisStreams)?, pid)?;
                if killed == 0 {
                    return Err(Error::Output(format!(
                        "the runner (pid {pid}) had no connection to Redis to kill"
                    )));
                }
            }
        }
        Ok(started.elapsed())
    }
}

/// The loopback URL of `input`'s service.
fn url(input: Input) -> Result<String> {
    input
        .default_url()
        .ok_or_else(|| Error::Output(format!("{} has no service URL", input.name())))
}

/// Feeds ids, starts `drain`, injects `fault` a quarter of the way through, and counts.
fn outage(suite: &Suite, name: &'static str, fault: Fault, streaming: bool) -> Result<Report> {
    let count = suite.profile.pick(4_000, 40_000);
    let tuning = Tuning {
        delay_ms: suite.profile.pick(10, 5),
        streaming,
        ..Tuning::default()
    };
    let pipeline = Pipeline::new(suite, Queue::new(fault.input(), name), tuning)?;
    let sent = ids::numbered("o", count);
    // A streaming run gets half its ids after the outage: new work flows after it too.
    let (before, after) = sent.split_at(if streaming { count / 2 } else { count });
    pipeline.feed(&ids::json_lines(before))?;
    let mut drain = pipeline.drain()?;

    let through = |n: usize| {
        let pipeline = &pipeline;
        move || -> Result<Option<usize>> {
            let delivered = pipeline.delivered()?;
            Ok((delivered >= n).then_some(delivered))
        }
    };
    wait::until(
        "a quarter of the ids at the output",
        DRAIN_LIMIT,
        through(before.len() / 4),
    )?;
    let outage = fault.inject(drain.id())?;
    let back = Instant::now();
    let next = (pipeline.delivered()? + 1).min(before.len());
    wait::until(
        "an id at the output after the outage",
        DRAIN_LIMIT,
        through(next),
    )?;
    let recovery = back.elapsed();
    if !after.is_empty() {
        pipeline.feed(&ids::json_lines(after))?;
    }

    let exit = if streaming {
        wait::until("every id at the output", DRAIN_LIMIT, through(count))?;
        drain.signal(Signal::Term)?;
        drain.expect_exit(DRAIN_LIMIT, Signal::Term.exit_code())?
    } else {
        drain.expect_exit(DRAIN_LIMIT, 0)?
    };
    let tally = pipeline.tally(&sent)?;
    Ok(Report::new(name)
        .tally(&tally, pipeline.held_per_kill())
        .field("outage_ms", outage.as_millis())
        .field("recovery_ms", recovery.as_millis())
        .field("processed", summary::drain_field(&exit, "processed"))
        .field("settle_stale", summary::drain_field(&exit, "settle_stale")))
}
