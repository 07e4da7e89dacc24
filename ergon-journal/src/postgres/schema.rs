//! The journal's tables in PostgreSQL: the shared ones ([`crate::tables`]), plus
//! `ergon_outbox`: what the journal hands over, written in the commit that decides it and
//! deleted once the relay has dispatched it.
//!
//! Everything lives in one schema (`[journal] schema`, default `public`), created when
//! missing; several runners creating it at once take turns on an advisory lock.

use tokio_postgres::Client;

use crate::tables::{Dialect, tables};

/// Takes the advisory lock every journal writer takes for its commit (and schema
/// creation takes too), until the end of the transaction: one writer at a time across processes, as
/// SQLite's `BEGIN IMMEDIATE`, so that a wait registered while its members complete
/// elsewhere cannot miss one of them. It is keyed by the schema (a plain SQL name,
/// checked when opened), so journals in different schemas of one database do not wait
/// for each other.
pub(super) fn writer_lock(schema: &str) -> String {
    format!("SELECT pg_advisory_xact_lock(1701996399, hashtext('{schema}'))")
}

/// What a commit notifies: `outbox` when it wrote to the outbox (relays wake too), else
/// an empty payload (in-step waits wake).
pub(super) const OUTBOX_PAYLOAD: &str = "outbox";

/// Notifies `channel` with `payload` and commits.
pub(super) fn notify_and_commit(channel: &str, payload: &str) -> String {
    format!("SELECT pg_notify('{channel}', '{payload}'); COMMIT")
}

/// PostgreSQL's words for the shared tables ([`crate::tables`]).
const POSTGRES: Dialect = Dialect {
    serial_key: "BIGSERIAL PRIMARY KEY",
    keyed_table: "",
};

/// The outbox: what a commit hands over, until the relay has dispatched it.
const OUTBOX: &str = "
CREATE TABLE IF NOT EXISTS ergon_outbox (
    seq BIGSERIAL PRIMARY KEY,
    task TEXT NOT NULL,
    tx_id TEXT NOT NULL,
    payload BYTEA NOT NULL,
    metadata TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ergon_outbox_tx ON ergon_outbox (tx_id);
";

/// Creates `schema` and the journal's tables in it when missing.
pub(super) async fn create(client: &mut Client, schema: &str) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.batch_execute(&writer_lock(schema)).await?;
    tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .await?;
    tx.batch_execute(&tables(&POSTGRES)).await?;
    tx.batch_execute(OUTBOX).await?;
    tx.commit().await
}
