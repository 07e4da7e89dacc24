//! `redis_consume`: entries pre-added to a Redis stream, consumed and acked by a no-op task
//! at concurrency 64 through the engine (the `redis_streams` connector, its defaults:
//! acks coalesced into one `XACK` + `XDEL` per flush), against the best raw loop with the
//! same client: `XREADGROUP … COUNT 256` batches, the previous batch's `XACK` + `XDEL`
//! pipelined beside the next read on one multiplexed connection.
//!
//! Both variants start from the same stream, filled before the clock starts through the
//! connector's dispatch, and must leave it empty with nothing pending. Line (printed by
//! [`amqp::parent`]): `bench redis_consume msgs= msgs_per_s= raw_msgs_per_s= ratio=`.

use ergon_connectors::redis_streams::{RedisStreamsConfig, RedisStreamsConnector};
use redis::Value;
use redis::aio::ConnectionManager;
use redis::streams::StreamInfoGroupsReply;

use super::*;

/// The server (`ERGON_BENCH_REDIS_URL` overrides).
fn url() -> String {
    std::env::var("ERGON_BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The consumer group of both variants.
const GROUP: &str = "bench";
/// Transactions in flight in the engine.
const CONCURRENCY: usize = 64;
/// Entries per read, in both loops.
const BATCH: usize = 256;
/// Entries consumed by the warm-up of each child before its timed run.
const WARM_UP: u64 = 5_000;

fn config(stream: &str) -> RedisStreamsConfig {
    RedisStreamsConfig {
        url: url().as_str().into(),
        stream: stream.to_owned(),
        group: Some(GROUP.to_owned()),
        ..RedisStreamsConfig::default()
    }
}

async fn connection() -> Result<ConnectionManager, String> {
    let client = ::redis::Client::open(url()).map_err(|e| e.to_string())?;
    ConnectionManager::new(client)
        .await
        .map_err(|e| format!("Redis is not reachable at {}: {e}", url()))
}

/// Measures one variant: a warm-up, then the timed run, on a stream of this process.
pub(super) fn child(variant: &str) -> Result<Sample, String> {
    let n = env_or("ERGON_BENCH_TX", 100_000);
    let stream = format!("ergon-bench-redis-{}", std::process::id());
    runtime().block_on(async {
        let mut conn = connection().await?;
        let _: () = ::redis::cmd("DEL")
            .arg(&stream)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let filler = RedisStreamsConnector::connect(Arc::new(config(&stream)), "bench", 99)
            .await
            .map_err(|e| e.chain().to_string())?;
        let mut elapsed = Duration::ZERO;
        for run in [WARM_UP.min(n), n] {
            amqp::fill(&filler, run).await?;
            elapsed = match variant {
                "engine" => engine(&stream, run).await?,
                "raw" => raw(&mut conn, &stream, run).await?,
                other => return Err(format!("unknown variant {other:?}")),
            };
            let (left, pending) = left(&mut conn, &stream).await?;
            if left != 0 || pending != 0 {
                return Err(format!(
                    "{left} of {run} entries left in the stream, {pending} pending"
                ));
            }
        }
        filler.close().await.map_err(|e| e.chain().to_string())?;
        let _: () = ::redis::cmd("DEL")
            .arg(&stream)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(amqp::sample(n, elapsed))
    })
}

/// Entries left in the stream, and entries pending in the group.
async fn left(conn: &mut ConnectionManager, stream: &str) -> Result<(u64, u64), String> {
    let len: u64 = ::redis::cmd("XLEN")
        .arg(stream)
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())?;
    let groups: StreamInfoGroupsReply = ::redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())?;
    let pending = groups.groups.iter().map(|g| g.pending as u64).sum();
    Ok((len, pending))
}

/// The engine: one consume loop of concurrency 64 until `n` are done.
async fn engine(stream: &str, n: u64) -> Result<Duration, String> {
    let input = Arc::new(
        RedisStreamsConnector::connect(Arc::new(config(stream)), "bench", 0)
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

/// The raw loop: read a batch; acknowledge and delete it while reading the next.
async fn raw(conn: &mut ConnectionManager, stream: &str, n: u64) -> Result<Duration, String> {
    let created: Result<(), ::redis::RedisError> = ::redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Err(err) if err.code() != Some("BUSYGROUP") => return Err(err.to_string()),
        _ => {}
    }
    let read = |conn: ConnectionManager| async move {
        let mut conn = conn;
        let reply: Value = ::redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg("raw")
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(100)
            .arg("STREAMS")
            .arg(stream)
            .arg(">")
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(entry_ids(reply))
    };
    let ack = |conn: ConnectionManager, ids: Vec<Vec<u8>>| async move {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = conn;
        ::redis::pipe()
            .atomic()
            .cmd("XACK")
            .arg(stream)
            .arg(GROUP)
            .arg(&ids)
            .ignore()
            .cmd("XDEL")
            .arg(stream)
            .arg(&ids)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    };
    let started = Instant::now();
    let mut count = 0;
    let mut previous = Vec::new();
    while count < n {
        let (acked, ids) = tokio::join!(
            ack(conn.clone(), std::mem::take(&mut previous)),
            read(conn.clone())
        );
        acked?;
        let ids = ids?;
        count += ids.len() as u64;
        previous = ids;
    }
    ack(conn.clone(), previous).await?;
    Ok(started.elapsed())
}

/// The ids of the entries of an `XREADGROUP` reply, `[[stream, [[id, [field, value, ...]],
/// ...]]]`, read straight from the reply (redis-rs's `StreamReadReply` copies the reply and
/// builds two hash maps per entry); the fields are only looked at.
fn entry_ids(reply: Value) -> Vec<Vec<u8>> {
    let Value::Array(streams) = reply else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for stream in streams {
        let Value::Array(mut pair) = stream else {
            continue;
        };
        let Some(Value::Array(entries)) = pair.pop() else {
            continue;
        };
        for entry in entries {
            let Value::Array(mut entry) = entry else {
                continue;
            };
            let fields = entry.pop();
            std::hint::black_box(&fields);
            if let Some(Value::BulkString(id)) = entry.pop() {
                ids.push(id);
            }
        }
    }
    ids
}
