//! The journal's writer in one process: a task that commits requests in groups, decides
//! the waits whose deadline has come, and cuts the fan-in groups whose timeout has.
//!
//! As the SQLite writer ([`crate::sqlite`]): it takes the first request, then everything
//! that queued up behind it (at most [`MAX_GROUP`]), and commits them in one transaction
//! ([`Commit`]), under the writer lock that orders commits across processes. Each sender
//! hears back once its group is durable; in-step waiters and the relay are woken, here
//! and (by `NOTIFY`, sent on commit) in every process listening to the journal.
//!
//! Between requests it sleeps until the earliest stored deadline, at most [`BACKSTOP`]:
//! another process may have stored an earlier one, and a deadline that passed while no
//! runner was up fires at the first look (late, never lost).
//!
//! A lost connection fails the group it was committing (the engine retries a completion
//! under its settle policy, and requeues it when the journal stays away); the next group
//! takes a new connection from the pool.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Client, Pool};
use ergon_core::journal::now_ms;
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedReceiver;

use super::workflow::{Commit, NEXT_DEADLINE};
use super::{Place, fan_in, reader};
use crate::events::RunSettings;
use crate::metrics::JournalMetrics;
use crate::request::{Pending, Request, earliest};
use crate::routes::Routes;

/// The most requests one commit takes.
const MAX_GROUP: usize = 1_024;

/// The longest the writer sleeps without looking at the stored deadlines.
const BACKSTOP: Duration = Duration::from_secs(1);

/// How often the writer purges records older than the retention.
const PURGE_EVERY: Duration = Duration::from_secs(3_600);

/// The writer task's state.
pub(super) struct Writer {
    pub pool: Pool,
    pub place: Arc<Place>,
    pub routes: Arc<Routes>,
    pub max_output: usize,
    pub retention: Duration,
    /// Woken after each commit: in-step waiters read their members again.
    pub committed: Arc<Notify>,
    /// Woken after a commit that wrote to the outbox.
    pub relay: Arc<Notify>,
    /// Begins a commit and takes the writer lock ([`super::schema::writer_lock`]).
    pub begin: String,
    /// Notifies the journal's channel of a commit, and commits.
    pub notify_commit: String,
    /// Notifies the journal's channel of a commit that wrote to the outbox, and commits.
    pub notify_outbox: String,
    pub metrics: Arc<JournalMetrics>,
    /// Expanders, limits and the event sink of DAG runs.
    pub runs: RunSettings,
}

/// What failed: the pool (no connection) or a statement.
#[derive(Debug)]
enum Failed {
    Pool(deadpool_postgres::PoolError),
    Sql(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for Failed {
    fn from(err: tokio_postgres::Error) -> Self {
        Failed::Sql(err)
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Pool(err) => write!(f, "no connection: {err}"),
            Failed::Sql(err) => match err.as_db_error() {
                Some(db) => write!(f, "{}: {}", db.code().code(), db.message()),
                None => write!(f, "{err}"),
            },
        }
    }
}

impl Writer {
    /// Commits what `queue` brings until every sender is gone.
    pub async fn run(self, mut queue: UnboundedReceiver<Pending>) {
        let mut client: Option<Client> = None;
        let mut purged = None::<Instant>;
        let mut group = Vec::with_capacity(MAX_GROUP);
        let mut deadline = self.next_deadline(&mut client).await;
        loop {
            if !self.retention.is_zero() && purged.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                self.purge_expired().await;
                purged = Some(Instant::now());
            }
            let sleep = deadline.map_or(BACKSTOP, |at: i64| {
                let ms = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
                Duration::from_millis(ms).min(BACKSTOP)
            });
            let looked = tokio::select! {
                first = queue.recv() => match first {
                    Some(first) => {
                        group.push(first);
                        false
                    }
                    None => return,
                },
                () = tokio::time::sleep(sleep) => true,
            };
            while group.len() < MAX_GROUP {
                match queue.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            let now = now_ms();
            if group.is_empty() {
                if looked {
                    // Another process may have stored an earlier deadline.
                    deadline = self.next_deadline(&mut client).await;
                }
                if deadline.is_none_or(|at| at > now) {
                    continue;
                }
            }
            let due = deadline.is_some_and(|at| at <= now);
            let committed = self.commit(&mut client, &group, (now, due, deadline)).await;
            let replies = match &committed {
                Ok((counts, _)) => counts.iter().map(|n| Ok(*n)).collect(),
                Err(err) => {
                    // Its transaction may be open: the connection goes, not back to the pool.
                    drop(client.take().map(deadpool_postgres::Object::take));
                    let message = format!("journal {}: cannot commit: {err}", self.place);
                    vec![Err(message); group.len()]
                }
            };
            for (pending, reply) in group.drain(..).zip(replies) {
                // A sender that gave up (its worker was cut off) needs no answer.
                let _ = pending.done.send(reply);
            }
            match committed {
                Ok((_, next)) => {
                    self.committed.notify_waiters();
                    deadline = next;
                }
                Err(err) => {
                    tracing::warn!(journal = %self.place, error = %err, "Journal commit failed");
                    deadline = Some(now_ms().saturating_add(1_000));
                }
            }
        }
    }

    /// Applies `group` (and, when `due`, the deadlines that have come) in one transaction;
    /// returns each request's answer and the next deadline (`deadline`, or a parked
    /// wait's or a fan-in group's earlier one; read again after deadlines fired).
    ///
    /// Round trips: one to begin and take the writer lock, one per kind of change, one to
    /// notify and commit.
    async fn commit(
        &self,
        client: &mut Option<Client>,
        group: &[Pending],
        (now, due, deadline): (i64, bool, Option<i64>),
    ) -> Result<(Vec<usize>, Option<i64>), Failed> {
        let db = self.connected(client).await?;
        db.batch_execute(&self.begin).await?;
        let mut step = Commit::new(
            db,
            &self.routes,
            self.max_output,
            now,
            &self.metrics,
            &self.runs,
        );
        let completions: Vec<_> = group
            .iter()
            .filter_map(|pending| match &pending.request {
                Request::Complete(completion, _) => Some(completion),
                _ => None,
            })
            .collect();
        step.complete(&completions).await?;
        let mut counts = vec![0; group.len()];
        let mut next = deadline;
        for (index, pending) in group.iter().enumerate() {
            match &pending.request {
                Request::Complete(..) => {}
                Request::Spawn { target, children } => step.spawn(index, target, children),
                Request::Park(park) => {
                    step.park(park).await?;
                    next = earliest(next, park.deadline_ms);
                }
                Request::Cancel { parent } => counts[index] = step.cancel_children(parent).await?,
                Request::StartRun(start) => {
                    counts[index] = step.start_run(start).await?;
                    next = earliest(next, start.deadline_ms);
                }
                Request::ExtendRun { run_id, nodes } => {
                    counts[index] = step.extend_run(run_id, nodes).await?;
                }
            }
        }
        step.advance_runs().await?;
        step.decide().await?;
        let mut fired = 0;
        if due {
            fired = step.fire_due().await?;
            if fired > 0 {
                tracing::info!(fired, "Waits past their deadline decided as timed out");
            }
            step.cut_due().await?;
            let timed_out = step.time_out_runs().await?;
            if timed_out > 0 {
                tracing::info!(timed_out, "Runs past their deadline timed out");
            }
        }
        let cut = step.cut_batches().await?;
        next = if due {
            let consumers = fan_in::consumers(&self.routes);
            db.query_one(NEXT_DEADLINE, &[&consumers]).await?.get(0)
        } else {
            earliest(next, cut)
        };
        let events = std::mem::take(&mut step.events);
        let (spawned, handed_over) = step.hand_over().await?;
        for (index, new) in spawned {
            counts[index] = new;
        }
        let end = match (handed_over > 0, !group.is_empty() || fired > 0) {
            (true, _) => &self.notify_outbox,
            (false, true) => &self.notify_commit,
            (false, false) => "COMMIT",
        };
        db.batch_execute(end).await?;
        if handed_over > 0 {
            self.relay.notify_one();
        }
        if let Some(sink) = self.runs.events.as_ref().filter(|_| !events.is_empty()) {
            sink.publish(events);
        }
        Ok((counts, next))
    }

    /// The writer's connection: the one it has while it is open, else a new one from
    /// the pool.
    async fn connected<'c>(
        &self,
        client: &'c mut Option<Client>,
    ) -> Result<&'c mut Client, Failed> {
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            *client = None;
        }
        match client {
            Some(client) => Ok(client),
            None => Ok(client.insert(self.pool.get().await.map_err(Failed::Pool)?)),
        }
    }

    /// The earliest deadline of a wait not yet decided or a fan-in group (read without the
    /// writer lock: a hint of when to look again). Unreadable: in a second.
    async fn next_deadline(&self, client: &mut Option<Client>) -> Option<i64> {
        let read = match self.connected(client).await {
            Ok(db) => {
                let consumers = fan_in::consumers(&self.routes);
                db.query_one(NEXT_DEADLINE, &[&consumers])
                    .await
                    .map_err(Failed::Sql)
            }
            Err(err) => Err(err),
        };
        match read {
            Ok(row) => row.get(0),
            Err(err) => {
                tracing::warn!(journal = %self.place, error = %err, "Cannot read the next wait deadline");
                *client = None;
                Some(now_ms().saturating_add(1_000))
            }
        }
    }

    /// Deletes records that ended more than `retention` ago (logged, never fatal: the next
    /// purge tries again).
    async fn purge_expired(&self) {
        let retention_ms = i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        let before = now_ms().saturating_sub(retention_ms);
        let purged = match self.pool.get().await {
            Ok(mut db) => reader::purge_before(&mut db, before)
                .await
                .map_err(Failed::Sql),
            Err(err) => Err(Failed::Pool(err)),
        };
        match purged {
            Ok(0) => {}
            Ok(purged) => {
                tracing::info!(journal = %self.place, purged, "Purged journal records past their retention")
            }
            Err(err) => {
                tracing::warn!(journal = %self.place, error = %err, "Cannot purge the journal")
            }
        }
    }
}
