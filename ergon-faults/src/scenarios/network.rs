//! The runner's connection to RabbitMQ, PostgreSQL or Redis goes through the suite's TCP
//! proxy ([`crate::proxy`]), which faults it while a streaming run works: a cut of
//! [`CUT`] (connections closed, the port refusing), a stall (connections kept, nothing
//! forwarded), resets (TCP RST), then a slow link while the other half of the ids is fed
//! straight to the service.
//!
//! The runner must reconnect after each by itself, lose nothing, and report the cut on its
//! health endpoint meanwhile: `/health/ready` answers 503 during the cut and 200 again
//! after. The report adds `cut_reported` (whether readiness was 503 in the cut), `recovery_ms` (from
//! the link back to the runner ready again and an id at the output), `connections` (how
//! many the proxy accepted: each reconnection adds one), `slow_delivered` and `slow_ms`
//! (the link stays slow until [`SLOW_SHARE`] ids came through it). Duplicates are bounded by what the runner held unsettled at
//! each of the three faults that can end a connection: 3 × [`Pipeline::held_per_kill`].

mod health;

use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use crate::harness::{
    Error, INBOX, Input, Pipeline, Queue, Report, Result, RunnerProcess, Signal, Suite, Tuning,
    ids, wait,
};
use crate::proxy::{Mode, Proxy, SlowLink};
use crate::scenarios::{address, summary};

/// How long the link is cut (at least: until the health endpoint reported it, too).
const CUT: Duration = Duration::from_secs(3);

/// How long the link is reset (every connection, old and new).
const RESET: Duration = Duration::from_secs(1);

/// How many ids must come through the slow link before it is fast again.
const SLOW_SHARE: usize = 200;

/// The slow link: latency on every chunk, and a throttle.
const SLOW_LINK: SlowLink = SlowLink {
    delay: Duration::from_millis(20),
    bytes_per_second: NonZeroU64::new(64 * 1024),
};

/// `fetch.retry.max_attempts` of `drain`: 10 attempts back off over about 40 s. With the
/// default 5 (about 3 s of backoff), a cut of a few seconds exhausts the retries of a
/// connector whose fetch fails while its connection is down (Redis Streams: `cannot claim
/// idle entries: Connection refused`) and the worker stops with exit code 1 for its
/// supervisor to restart, where RabbitMQ's fetch waits while it reconnects.
const FETCH_ATTEMPTS: u32 = 10;

/// How long a runner whose health endpoint went away is given to end.
const ENDING: Duration = Duration::from_secs(30);

/// The longest the runner may take to report, recover or drain.
const LIMIT: Duration = Duration::from_secs(120);

/// RabbitMQ through the proxy.
///
/// # Errors
///
/// A step of the scenario could not be carried out (see [`network`]).
pub fn rabbitmq(suite: &Suite, name: &'static str) -> Result<Report> {
    network(suite, name, Input::RabbitMq)
}

/// PostgreSQL through the proxy.
///
/// # Errors
///
/// A step of the scenario could not be carried out (see [`network`]).
pub fn postgres(suite: &Suite, name: &'static str) -> Result<Report> {
    network(suite, name, Input::Postgres)
}

/// Redis through the proxy.
///
/// # Errors
///
/// A step of the scenario could not be carried out (see [`network`]).
pub fn redis(suite: &Suite, name: &'static str) -> Result<Report> {
    network(suite, name, Input::RedisStreams)
}

/// A streaming `drain` of `input` through the proxy, faulted in turn by a cut, a stall,
/// resets and a slow link; every id counted at the end.
fn network(suite: &Suite, name: &'static str, input: Input) -> Result<Report> {
    let url = input
        .default_url()
        .ok_or_else(|| Error::Output(format!("{} has no service URL", input.name())))?;
    let unreadable = || Error::Output(format!("{url} names no IP address and port"));
    let target = address::socket(&url).ok_or_else(unreadable)?;
    let proxy = Proxy::start(target).map_err(Error::io("starting the TCP proxy"))?;
    let proxied = address::through(&url, proxy.address()).ok_or_else(unreadable)?;
    let stall = suite
        .profile
        .pick(Duration::from_secs(3), Duration::from_secs(15));
    let count = suite.profile.pick(4_000, 40_000);
    let tuning = Tuning {
        delay_ms: suite.profile.pick(10, 5),
        streaming: true,
        ..Tuning::default()
    };
    let pipeline = Pipeline::new(suite, Queue::new(input, name).with_url(proxied), tuning)?;
    with_health_endpoint(&pipeline)?;
    let sent = ids::numbered("o", count);
    let (first, second) = sent.split_at(count / 2);
    pipeline.feed(&ids::json_lines(first))?;
    let mut drain = drain_riding_out_the_cut(&pipeline)?;

    let endpoint = wait::until("the health endpoint in the runner's log", LIMIT, || {
        Ok(health::logged_address(&drain.stderr()))
    })?;
    let through = |n: usize| {
        let pipeline = &pipeline;
        move || -> Result<Option<usize>> {
            let delivered = pipeline.delivered()?;
            Ok((delivered >= n).then_some(delivered))
        }
    };
    wait::until("the runner ready", LIMIT, || {
        ready_is(&mut drain, endpoint, 200)
    })?;
    wait::until(
        "a quarter of the ids at the output",
        LIMIT,
        through(first.len() / 4),
    )?;

    // The cut: held until the health endpoint reported it, and at least `CUT`.
    let cut = Instant::now();
    proxy.set(Mode::Drop);
    let reported = wait::until("readiness 503 during the cut", LIMIT, || {
        ready_is(&mut drain, endpoint, 503)
    });
    std::thread::sleep(CUT.saturating_sub(cut.elapsed()));
    proxy.set(Mode::Pass);
    let back = Instant::now();
    let at_back = pipeline.delivered()?;
    wait::until("the runner ready after the cut", LIMIT, || {
        ready_is(&mut drain, endpoint, 200)
    })?;
    wait::until(
        "an id at the output after the cut",
        LIMIT,
        through((at_back + 1).min(first.len())),
    )?;
    let recovery = back.elapsed();

    proxy.set(Mode::Stall);
    std::thread::sleep(stall);
    proxy.set(Mode::Pass);

    proxy.set(Mode::Reset);
    std::thread::sleep(RESET);
    proxy.set(Mode::Pass);
    wait::until("the runner ready after the resets", LIMIT, || {
        ready_is(&mut drain, endpoint, 200)
    })?;

    // The second half is fed straight to the service while the runner's link is slow;
    // the link stays slow until a share of it came through.
    let before_slow = pipeline.delivered()?;
    proxy.set(Mode::Slow(SLOW_LINK));
    let mut feed = feed_direct(&pipeline, &url, &ids::json_lines(second))?;
    let slow = Instant::now();
    let slow_delivered = wait::until(
        "ids through the slow link",
        LIMIT,
        through(before_slow + SLOW_SHARE.min(second.len())),
    )
    .map(|delivered| delivered - before_slow);
    let slow_ms = slow.elapsed().as_millis();
    proxy.set(Mode::Pass);
    feed.expect_exit(LIMIT, 0)?;

    wait::until("every id at the output", LIMIT, through(count))?;
    drain.signal(Signal::Term)?;
    let stdout = drain.expect_exit(LIMIT, Signal::Term.exit_code())?;
    let tally = pipeline.tally(&sent)?;
    Ok(Report::new(name)
        .tally(&tally, 3 * pipeline.held_per_kill())
        .field("fetch_attempts", FETCH_ATTEMPTS)
        .field("cut_reported", if reported.is_ok() { "yes" } else { "no" })
        .field("recovery_ms", recovery.as_millis())
        .field("connections", proxy.accepted())
        .field("slow_delivered", slow_delivered.as_ref().map_or(0, |n| *n))
        .field("slow_ms", slow_ms)
        .field("processed", summary::drain_field(&stdout, "processed"))
        .check(reported.is_ok(), || {
            "the health endpoint never reported the cut (/health/ready stayed 200)".to_owned()
        })
        .check(slow_delivered.is_ok(), || {
            format!("fewer than {SLOW_SHARE} ids came through the slow link in {LIMIT:?}")
        }))
}

/// Whether `/health/ready` answers `code` now; an error when the runner is gone.
///
/// # Errors
///
/// The endpoint cannot be reached (the runner ended: how).
fn ready_is(drain: &mut RunnerProcess, endpoint: SocketAddr, code: u16) -> Result<Option<()>> {
    match health::status(endpoint, "/health/ready") {
        Ok(status) => Ok((status == code).then_some(())),
        // An endpoint that went away is a runner that is ending: say how it ended.
        Err(unreachable) => match drain.wait(ENDING) {
            Ok(exit) => Err(Error::Output(format!(
                "the runner ended ({}) during the faults: {}",
                exit.describe(),
                drain.stderr_tail()
            ))),
            Err(_) => Err(unreachable),
        },
    }
}

/// Starts task `drain` with a fetch retry budget longer than the cut (see
/// [`FETCH_ATTEMPTS`]), not waited for.
fn drain_riding_out_the_cut(pipeline: &Pipeline) -> Result<RunnerProcess> {
    let deployment = pipeline.deployment();
    let mut command = deployment.command(&["run", "drain"]);
    command.env(
        "ERGON__TASKS__DRAIN__POLICY__FETCH__RETRY__MAX_ATTEMPTS",
        FETCH_ATTEMPTS.to_string(),
    );
    RunnerProcess::start(
        command,
        "ergon-faults-runner run drain".to_owned(),
        deployment.path("drain.out"),
        deployment.path("drain.err"),
    )
}

/// Starts task `feed` on `lines` with the inbox at `url` (the service itself, not the
/// proxy), not waited for.
fn feed_direct(pipeline: &Pipeline, url: &str, lines: &str) -> Result<RunnerProcess> {
    let deployment = pipeline.deployment();
    deployment.write("feed.jsonl", lines)?;
    let mut command = deployment.command(&["run", "feed"]);
    command.env(
        format!("ERGON__CONNECTORS__{}__URL", INBOX.to_uppercase()),
        url,
    );
    RunnerProcess::start(
        command,
        "ergon-faults-runner run feed (straight to the service)".to_owned(),
        deployment.path("feed-direct.out"),
        deployment.path("feed-direct.err"),
    )
}

/// Adds a health endpoint on any free loopback port to the pipeline's config (its
/// address is logged at start), with liveness failing after a second without progress.
fn with_health_endpoint(pipeline: &Pipeline) -> Result<()> {
    let deployment = pipeline.deployment();
    let path = deployment.path("tasks.toml");
    let config =
        std::fs::read_to_string(&path).map_err(Error::io(format!("reading {}", path.display())))?;
    deployment.write(
        "tasks.toml",
        format!("{config}\n[telemetry.http]\nport = 0\nstall_after = \"1s\"\n"),
    )
}
