//! The journal's tables in PostgreSQL: the shared ones ([`crate::tables`]), plus
//! `ergon_outbox`: what the journal hands over, written in the commit that decides it and
//! deleted once the relay has dispatched it.
//!
//! Everything lives in one schema (`[journal] schema`, default `public`), created when
//! missing; several runners creating it at once take turns on an advisory lock.

use tokio_postgres::Client;

use crate::tables::{Dialect, tables};

/// The advisory lock every journal writer takes for its commit (and schema creation
/// takes too): one writer at a time across processes, as SQLite's `BEGIN IMMEDIATE`, so
/// that a wait registered while its members complete elsewhere cannot miss one of them.
/// It is keyed by the schema (`$1`), so journals in different schemas of one database do
/// not wait for each other.
pub(super) const WRITER_LOCK: &str = "SELECT pg_advisory_xact_lock(1701996399, hashtext($1))";

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
    tx.execute(WRITER_LOCK, &[&schema]).await?;
    tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .await?;
    tx.batch_execute(&tables(&POSTGRES)).await?;
    tx.batch_execute(OUTBOX).await?;
    tx.commit().await
}
