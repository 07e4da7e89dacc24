//! Poison messages among good ones: not JSON (nor UTF-8), too large, a task that panics,
//! a task that aborts the whole process. Each must end in the dead letters with its
//! original bytes — the first three after one attempt (business errors and panics are not
//! retried), the abort after `max_deliveries` deliveries, each crashing the runner, which
//! is started again — and every good message must still get through: the queue is never
//! blocked. Known limit (reported as `collateral`): the good messages a crashing runner
//! held beside the aborting poison are delivered again with it after each crash, reach
//! `max_deliveries` with it and are dead-lettered too (bytes intact, `queue
//! requeue-dead` brings them back); the scenario bounds them by what a runner holds.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::harness::dead_letters::{self, DeadLetter};
use crate::harness::{
    Error, INBOX, Input, Pipeline, Queue, Report, Result, Suite, Tally, Tuning, ids,
};

/// `poison_local`.
pub fn local(suite: &Suite, name: &'static str) -> Result<Report> {
    poison(suite, name, Input::Local)
}

/// `poison_rabbitmq`.
pub fn rabbitmq(suite: &Suite, name: &'static str) -> Result<Report> {
    poison(suite, name, Input::RabbitMq)
}

/// `poison_postgres`.
pub fn postgres(suite: &Suite, name: &'static str) -> Result<Report> {
    poison(suite, name, Input::Postgres)
}

/// `poison_redis`.
pub fn redis(suite: &Suite, name: &'static str) -> Result<Report> {
    poison(suite, name, Input::RedisStreams)
}

/// `relay` rejects payloads above this many bytes.
const MAX_PAYLOAD: usize = 64 * 1024;

/// Deliveries before a transaction is dead-lettered unprocessed.
const MAX_DELIVERIES: u32 = 3;

/// A poison message: its kind (in the report) and its exact bytes (one line).
struct Poison {
    kind: &'static str,
    bytes: Vec<u8>,
    /// Whether it crashes the runner (dead-lettered by `max_deliveries`, not by a step).
    crashes: bool,
}

/// The four poisons.
fn poisons() -> Vec<Poison> {
    let large = format!(
        "{{\"id\":\"p-large\",\"pad\":\"{}\"}}",
        "x".repeat(4 * MAX_PAYLOAD)
    );
    vec![
        Poison {
            kind: "not_json",
            bytes: b"not json \xff\xfe {\"id\":\"p-not-json\"".to_vec(),
            crashes: false,
        },
        Poison {
            kind: "too_large",
            bytes: large.into_bytes(),
            crashes: false,
        },
        Poison {
            kind: "panic",
            bytes: br#"{"id":"p-panic","poison":"panic"}"#.to_vec(),
            crashes: false,
        },
        Poison {
            kind: "abort",
            bytes: br#"{"id":"p-abort","poison":"abort"}"#.to_vec(),
            crashes: true,
        },
    ]
}

/// Good ids with the poisons spread among them, through `input`; the runner started
/// again after each crash until a run ends by itself.
fn poison(suite: &Suite, name: &'static str, input: Input) -> Result<Report> {
    let count = suite.profile.pick(200, 2_000);
    let limit = Duration::from_secs(suite.profile.pick(120, 600));
    let tuning = Tuning {
        concurrency: 4,
        batch_size: 8,
        max_deliveries: MAX_DELIVERIES,
        max_payload: MAX_PAYLOAD,
        ..Tuning::default()
    };
    let pipeline = Pipeline::new(suite, Queue::new(input, name), tuning)?;
    let sent = ids::numbered("o", count);
    let poisons = poisons();
    let good = ids::json_lines(&sent);
    let good: Vec<&str> = good.lines().collect();
    let mut feed = Vec::new();
    let every = count / (poisons.len() + 1);
    for (n, line) in good.iter().enumerate() {
        if n > 0
            && n % every == 0
            && let Some(poison) = poisons.get(n / every - 1)
        {
            feed.extend_from_slice(&poison.bytes);
            feed.push(b'\n');
        }
        feed.extend_from_slice(line.as_bytes());
        feed.push(b'\n');
    }
    pipeline.feed_bytes(&feed)?;

    // Each abort crashes the runner: start it again until a run ends by itself.
    let mut crashes = 0;
    let most_runs = MAX_DELIVERIES as usize + 3;
    loop {
        let mut runner = pipeline.drain()?;
        let exit = runner.wait(limit)?;
        if exit.code() == Some(0) {
            break;
        }
        crashes += 1;
        if crashes >= most_runs {
            return Err(Error::Exit {
                what: format!("{crashes} runs of drain"),
                got: exit.describe(),
                expected: "code 0 once the aborting poison is dead-lettered".to_owned(),
                stderr: runner.stderr_tail(),
            });
        }
    }

    let dead = dead_letters::list(pipeline.deployment(), INBOX, 10_000)?;
    // Good messages leased beside the aborting poison are delivered again after each of
    // its crashes too, so they reach max_deliveries with it: a known limit, bounded by
    // what a crashed runner holds, and recoverable (their exact bytes are dead letters).
    let collateral: BTreeSet<String> = dead
        .iter()
        .filter(|letter| !poisons.iter().any(|p| p.bytes == letter.payload))
        .filter_map(|letter| {
            let value: serde_json::Value = serde_json::from_slice(&letter.payload).ok()?;
            Some(value["id"].as_str()?.to_owned())
        })
        .collect();
    let out = pipeline.seen()?;
    let tally = Tally::of(&sent, &out);
    let lost: Vec<&String> = sent
        .iter()
        .filter(|id| !out.contains_key(*id) && !collateral.contains(*id))
        .collect();
    let bound = crashes * pipeline.held_per_kill();
    let mut report = Report::new(name)
        .field("sent", tally.sent)
        .field("unique", tally.unique)
        .field("lost", lost.len())
        .field("duplicated", tally.duplicated)
        .field("bound", bound)
        .field("collateral", collateral.len())
        .field("poisons", poisons.len())
        .field("dead_letters", dead.len())
        .field("crashes", crashes)
        .check(lost.is_empty(), || {
            let sample: Vec<&str> = lost.iter().take(5).map(|id| id.as_str()).collect();
            format!("{} lost (neither out nor dead-lettered), e.g. {}", lost.len(), sample.join(","))
        })
        .check(tally.duplicated <= bound, || {
            format!("{} duplicates above the bound {bound}", tally.duplicated)
        })
        .check(collateral.len() <= bound, || {
            format!("{} good messages dead-lettered beside the aborting poison, above the bound {bound}", collateral.len())
        })
        .check(crashes == MAX_DELIVERIES as usize, || {
            format!("the aborting poison crashed {crashes} runs, expected max_deliveries = {MAX_DELIVERIES}")
        });
    for poison in &poisons {
        report = check_dead_letter(report, poison, &dead, crashes);
    }
    Ok(report)
}

/// Checks that `poison` is dead-lettered, byte for byte, after the attempts or
/// deliveries its kind calls for: once, or once more per crash that came before the ack
/// of its dead letter reached the transport (dead letters are at least once too).
fn check_dead_letter(
    report: Report,
    poison: &Poison,
    dead: &[DeadLetter],
    crashes: usize,
) -> Report {
    let kind = poison.kind;
    let found: Vec<&DeadLetter> = dead.iter().filter(|l| l.payload == poison.bytes).collect();
    let Some(letter) = found.first() else {
        return report.check(false, || {
            format!("poison {kind}: no dead letter with its exact bytes")
        });
    };
    let report = report.check(found.len() <= 1 + crashes, || {
        format!(
            "poison {kind}: {} dead letters, expected at most 1 + {crashes} crashes",
            found.len()
        )
    });
    if poison.crashes {
        report.check(letter.deliveries > MAX_DELIVERIES, || {
            format!(
                "poison {kind}: dead-lettered after {} deliveries, expected more than {MAX_DELIVERIES} ({})",
                letter.deliveries,
                letter.error()
            )
        })
    } else {
        report.check(letter.attempts() == 1, || {
            format!(
                "poison {kind}: dead-lettered after {} attempts, expected 1 ({})",
                letter.attempts(),
                letter.error()
            )
        })
    }
}
