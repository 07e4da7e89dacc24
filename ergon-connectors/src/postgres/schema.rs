//! The queue's tables and the statements the connector runs on them, written once per
//! schema.
//!
//! `ergon_queue` holds every queue of the schema (the `queue` column tells them apart):
//! a row is claimable while `done_at` is null and `visible_at` has passed; a claim moves
//! `visible_at` to the end of the lease, stamps `lease` with the claim's token and counts
//! the delivery. `ergon_dead_letter` keeps failed rows with the failure object.

use tokio_postgres::Client;

/// The tables and the index claims walk (oldest first, claimable rows only).
fn tables(schema: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.ergon_queue (
    seq BIGSERIAL PRIMARY KEY,
    queue TEXT NOT NULL,
    tx_id TEXT NOT NULL,
    payload BYTEA NOT NULL,
    metadata TEXT NOT NULL,
    enqueued_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    visible_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease BIGINT,
    deliveries INTEGER NOT NULL DEFAULT 0,
    done_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS ergon_queue_claimable ON {schema}.ergon_queue (queue, seq)
    WHERE done_at IS NULL;
CREATE TABLE IF NOT EXISTS {schema}.ergon_dead_letter (
    seq BIGSERIAL PRIMARY KEY,
    queue TEXT NOT NULL,
    tx_id TEXT NOT NULL,
    payload BYTEA NOT NULL,
    metadata TEXT NOT NULL,
    deliveries INTEGER NOT NULL,
    enqueued_at TIMESTAMPTZ NOT NULL,
    failure JSONB,
    failed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ergon_dead_letter_queue ON {schema}.ergon_dead_letter (queue, seq);"
    )
}

/// Creates the schema and its tables when missing. Connectors starting together take
/// turns on an advisory lock keyed by the schema (concurrent `CREATE ... IF NOT EXISTS`
/// can otherwise fail on PostgreSQL's catalog).
pub(super) async fn create(client: &mut Client, schema: &str) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.batch_execute(&format!(
        "SELECT pg_advisory_xact_lock(1701996400, hashtext('{schema}'))"
    ))
    .await?;
    tx.batch_execute(&tables(schema)).await?;
    tx.commit().await
}

/// The channel every dispatch into the schema notifies, with the queue's name as payload.
pub(super) fn channel(schema: &str) -> String {
    format!("ergon_queue_{schema}")
}

/// The statements of one schema, formatted once.
#[derive(Debug)]
pub(super) struct Statements {
    /// `$1` queue, `$2` max rows, `$3` lease in ms, `$4` token → seq, tx_id, payload,
    /// metadata, deliveries.
    pub claim: String,
    /// `$1` queue, `$2` ids, `$3` payloads, `$4` metadata, `$5` channel: inserts in order
    /// and notifies once (at commit).
    pub enqueue: String,
    /// `$1` seqs, `$2` tokens: acks by deleting.
    pub delete: String,
    /// `$1` seqs, `$2` tokens: acks by marking done.
    pub mark_done: String,
    /// `$1` seq, `$2` token: one ack by deleting.
    pub delete_one: String,
    /// `$1` seq, `$2` token: one ack by marking done.
    pub mark_done_one: String,
    /// `$1` seq, `$2` token: visible again at once.
    pub requeue: String,
    /// `$1` seq, `$2` token, `$3` failure JSON: moved to the dead letters in one statement.
    pub dead_letter: String,
    /// `$1` queue → ready, in_flight, done.
    pub depths: String,
    /// `$1` queue → dead letters.
    pub dead_count: String,
    /// `$1` queue, `$2` limit → tx_id, deliveries, failure, failed_at (ms), payload.
    pub dead_letters: String,
    /// `$1` queue, `$2` channel: moves every dead letter back (count reset) and notifies.
    pub requeue_dead: String,
}

impl Statements {
    /// The statements on `schema`'s tables.
    pub(super) fn new(schema: &str) -> Self {
        let q = format!("{schema}.ergon_queue");
        let dl = format!("{schema}.ergon_dead_letter");
        let settled = "(seq, lease) IN (SELECT * FROM unnest($1::bigint[], $2::bigint[]))";
        let one = "seq = $1 AND lease = $2";
        Self {
            claim: format!(
                "UPDATE {q} SET visible_at = now() + $3::bigint * interval '1 millisecond',
                    lease = $4, deliveries = deliveries + 1
                 WHERE seq IN (SELECT seq FROM {q}
                     WHERE queue = $1 AND done_at IS NULL AND visible_at <= now()
                     ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED)
                 RETURNING seq, tx_id, payload, metadata, deliveries"
            ),
            enqueue: format!(
                "WITH added AS (
                     INSERT INTO {q} (queue, tx_id, payload, metadata)
                     SELECT $1, t.id, t.payload, t.metadata
                     FROM unnest($2::text[], $3::bytea[], $4::text[]) WITH ORDINALITY
                         AS t(id, payload, metadata, n)
                     ORDER BY t.n
                     RETURNING 1)
                 SELECT pg_notify($5, $1) FROM (SELECT count(*) FROM added) AS c"
            ),
            delete: format!("DELETE FROM {q} WHERE {settled}"),
            mark_done: format!(
                "UPDATE {q} SET done_at = now(), lease = NULL WHERE {settled} AND done_at IS NULL"
            ),
            delete_one: format!("DELETE FROM {q} WHERE {one} AND done_at IS NULL"),
            mark_done_one: format!(
                "UPDATE {q} SET done_at = now(), lease = NULL WHERE {one} AND done_at IS NULL"
            ),
            requeue: format!(
                "UPDATE {q} SET visible_at = now(), lease = NULL
                 WHERE {one} AND done_at IS NULL"
            ),
            dead_letter: format!(
                "WITH moved AS (
                     DELETE FROM {q} WHERE {one} AND done_at IS NULL
                     RETURNING queue, tx_id, payload, metadata, deliveries, enqueued_at)
                 INSERT INTO {dl} (queue, tx_id, payload, metadata, deliveries, enqueued_at, failure)
                 SELECT queue, tx_id, payload, metadata, deliveries, enqueued_at, $3::text::jsonb
                 FROM moved"
            ),
            depths: format!(
                "SELECT count(*) FILTER (WHERE done_at IS NULL AND visible_at <= now()),
                        count(*) FILTER (WHERE done_at IS NULL AND visible_at > now()),
                        count(*) FILTER (WHERE done_at IS NOT NULL)
                 FROM {q} WHERE queue = $1"
            ),
            dead_count: format!("SELECT count(*) FROM {dl} WHERE queue = $1"),
            dead_letters: format!(
                "SELECT tx_id, deliveries, failure::text,
                        (extract(epoch FROM failed_at) * 1000)::bigint, payload
                 FROM {dl} WHERE queue = $1 ORDER BY seq LIMIT $2"
            ),
            requeue_dead: format!(
                "WITH moved AS (
                     DELETE FROM {dl} WHERE queue = $1
                     RETURNING seq, queue, tx_id, payload, metadata, enqueued_at),
                 added AS (
                     INSERT INTO {q} (queue, tx_id, payload, metadata, enqueued_at)
                     SELECT queue, tx_id, payload, metadata, enqueued_at FROM moved ORDER BY seq
                     RETURNING 1)
                 SELECT count(*), pg_notify($2, $1) FROM added"
            ),
        }
    }
}
