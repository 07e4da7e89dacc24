//! `pg_consume`: rows pre-enqueued in a `postgres` queue, consumed and acked by a no-op
//! task at concurrency 64 through the engine, against the best raw loop with the same
//! client: batched claims (`FOR UPDATE SKIP LOCKED`, the connector's own statement) with
//! the batched delete of the previous batch pipelined beside the next claim.
//!
//! Both variants start from the same queue, filled before the clock starts through the
//! connector's dispatch, and must leave it empty. Each child has a schema of its own,
//! dropped at its end, and analyzes its table once it is filled (outside the clock), as
//! autovacuum would: the server on this machine runs with autovacuum off, a table
//! shared by the runs had collected 3.3 million dead rows, and claims on a table with
//! no statistics ran at 6,800–9,000 msg/s against 37,000–41,000 with them, the raw loop
//! as slowly as the engine (the runs that read 7–8 k in earlier invocations). Line (printed by [`amqp::parent`]):
//! `bench pg_consume msgs= msgs_per_s= raw_msgs_per_s= ratio=`.

use std::future::poll_fn;

use ergon_connectors::postgres::{PostgresConfig, PostgresConnector};
use ergon_core::ConsumerPolicy;
use tokio_postgres::NoTls;

use super::*;

/// The database (`ERGON_BENCH_PG_URL` overrides).
fn url() -> String {
    std::env::var("ERGON_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The schema of this child's queue, created by the connector on first use and
/// dropped at the end of the child.
fn schema() -> String {
    format!("ergon_bench_{}", std::process::id())
}
/// Transactions in flight in the engine.
const CONCURRENCY: usize = 64;
/// Rows per claim, in both loops.
const BATCH: usize = 256;
/// Rows consumed by the warm-up of each child before its timed run.
const WARM_UP: u64 = 5_000;

fn config(queue: &str) -> PostgresConfig {
    PostgresConfig {
        url: url().as_str().into(),
        schema: schema(),
        queue: Some(queue.to_owned()),
        ..PostgresConfig::default()
    }
}

/// Measures one variant: a warm-up, then the timed run, on a queue of this process.
pub(super) fn child(variant: &str) -> Result<Sample, String> {
    let n = env_or("ERGON_BENCH_TX", 100_000);
    let queue = format!("bench-{}", std::process::id());
    runtime().block_on(async {
        let measured = measure(variant, &queue, n).await;
        once(&format!("DROP SCHEMA IF EXISTS {} CASCADE", schema()), &[]).await?;
        measured
    })
}

/// A warm-up, then the timed run of `variant` on `queue`.
async fn measure(variant: &str, queue: &str, n: u64) -> Result<Sample, String> {
    let filler = PostgresConnector::connect(&config(queue), queue)
        .await
        .map_err(|e| e.chain().to_string())?;
    let mut elapsed = Duration::ZERO;
    for run in [WARM_UP.min(n), n] {
        amqp::fill(&filler, run).await?;
        once(&format!("ANALYZE {}.ergon_queue", schema()), &[]).await?;
        elapsed = match variant {
            "engine" => engine(queue, run).await?,
            "raw" => raw(queue, run).await?,
            other => return Err(format!("unknown variant {other:?}")),
        };
        let left = left(queue).await?;
        if left != 0 {
            return Err(format!("{left} of {run} rows were not acked"));
        }
    }
    filler.close().await.map_err(|e| e.chain().to_string())?;
    Ok(amqp::sample(n, elapsed))
}

/// The engine: one consume loop, concurrency 64, batches of 256, until `n` are acked
/// (streaming with a limit, so that it does not wait for the queue to read as drained),
/// the acks written at close; timed from after connecting.
async fn engine(queue: &str, n: u64) -> Result<Duration, String> {
    let input = Arc::new(
        PostgresConnector::connect(&config(queue), queue)
            .await
            .map_err(|e| e.chain().to_string())?,
    );
    let mut policy = ConsumerPolicy::default();
    policy.r#loop.concurrency = CONCURRENCY;
    policy.r#loop.streaming = true;
    policy.r#loop.limit = Some(n);
    policy.fetch.batch_size = BATCH;
    let cx = Context::builder("bench").input(input.clone()).build();
    let started = Instant::now();
    ConsumeLoop::consumer(Arc::new(inmemory::Noop), cx, Arc::new(policy))
        .run()
        .await
        .map_err(|e| e.to_string())?;
    input.close().await.map_err(|e| e.chain().to_string())?;
    Ok(started.elapsed())
}

/// The raw loop: claim a batch; then, pipelined on one connection, delete the batch just
/// claimed while claiming the next; stop when a claim comes back empty. Timed from after
/// connecting and preparing.
async fn raw(queue: &str, n: u64) -> Result<Duration, String> {
    let (client, connection) = url()
        .parse::<tokio_postgres::Config>()
        .map_err(|e| e.to_string())?
        .connect(NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        let mut connection = connection;
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            if message.is_err() {
                break;
            }
        }
    });
    let table = format!("{}.ergon_queue", schema());
    let claim = client
        .prepare(&format!(
            "UPDATE {table} SET visible_at = now() + interval '30 seconds',
                lease = $3, deliveries = deliveries + 1
             WHERE seq IN (SELECT seq FROM {table}
                 WHERE queue = $1 AND done_at IS NULL AND visible_at <= now()
                 ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING seq, tx_id, payload, metadata, deliveries"
        ))
        .await
        .map_err(|e| e.to_string())?;
    let delete = client
        .prepare(&format!("DELETE FROM {table} WHERE seq = ANY($1)"))
        .await
        .map_err(|e| e.to_string())?;
    let batch = BATCH as i64;
    let token = 1_i64;
    let seqs = |rows: &[tokio_postgres::Row]| -> Vec<i64> {
        rows.iter()
            .map(|row| {
                std::hint::black_box(row.get::<_, &[u8]>(2));
                row.get(0)
            })
            .collect()
    };
    let started = Instant::now();
    let mut done = 0_u64;
    let mut claimed = client
        .query(&claim, &[&queue, &batch, &token])
        .await
        .map_err(|e| e.to_string())?;
    while !claimed.is_empty() {
        done += claimed.len() as u64;
        let acked = seqs(&claimed);
        let delete_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&acked];
        let claim_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&queue, &batch, &token];
        let (deleted, next) = tokio::join!(
            client.execute(&delete, &delete_params),
            client.query(&claim, &claim_params)
        );
        deleted.map_err(|e| e.to_string())?;
        claimed = next.map_err(|e| e.to_string())?;
    }
    let elapsed = started.elapsed();
    drop(client);
    let _ = driver.await;
    if done != n {
        return Err(format!("the raw loop consumed {done} of {n} rows"));
    }
    Ok(elapsed)
}

/// Rows of `queue` still in the table.
async fn left(queue: &str) -> Result<i64, String> {
    let sql = format!(
        "SELECT count(*) FROM {}.ergon_queue WHERE queue = $1",
        schema()
    );
    Ok(once(&sql, &[&queue]).await?[0].get(0))
}

/// Runs `statement` on a connection of its own; returns its rows.
async fn once(
    statement: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, String> {
    let (client, connection) = url()
        .parse::<tokio_postgres::Config>()
        .map_err(|e| e.to_string())?
        .connect(NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let rows = client
        .query(statement, params)
        .await
        .map_err(|e| e.to_string())?;
    drop(client);
    let _ = driver.await;
    Ok(rows)
}
