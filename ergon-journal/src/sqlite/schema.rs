//! The journal's tables in an SQLite file, and how a connection to it is opened.
//!
//! ```text
//! ergon_node         one row per (transaction, task): lineage, status (queued while a
//!                    spawned child or a continuation waits; then succeeded, failed or
//!                    cancelled), settlement, attempts, deliveries, children, error, output,
//!                    edge (how the journal reached it: `spawn`, `then`)
//! ergon_wait         a parked wait: owner, quorum, counters, deadline, continuation task,
//!                    fired_at (set once)
//! ergon_wait_member  what it waits for: each member flips from pending once
//! ```

use std::path::Path;

use rusqlite::Connection;

/// The primary key of `ergon_node` leads with the transaction id, so `get ID` and the
/// redelivery lookup read one index range.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ergon_node (
    tx_id TEXT NOT NULL,
    task TEXT NOT NULL,
    parent_id TEXT,
    root_id TEXT NOT NULL,
    tags TEXT NOT NULL,
    status TEXT NOT NULL,
    settlement TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    deliveries INTEGER NOT NULL,
    children INTEGER NOT NULL,
    failed_step TEXT,
    error_category TEXT,
    error TEXT,
    output TEXT,
    trace_id TEXT,
    edge TEXT,
    started_at INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    PRIMARY KEY (tx_id, task)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ergon_node_parent ON ergon_node (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS ergon_node_root ON ergon_node (root_id);
CREATE INDEX IF NOT EXISTS ergon_node_finished ON ergon_node (finished_at);
CREATE INDEX IF NOT EXISTS ergon_node_queued ON ergon_node (task) WHERE status = 'queued';
CREATE TABLE IF NOT EXISTS ergon_wait (
    wait_id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    owner_task TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    owner_metadata TEXT NOT NULL,
    counts TEXT NOT NULL,
    needed INTEGER NOT NULL,
    total INTEGER NOT NULL,
    done INTEGER NOT NULL,
    succeeded INTEGER NOT NULL DEFAULT 0,
    counted INTEGER NOT NULL,
    deadline_ms INTEGER,
    then_task TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    fired_at INTEGER,
    outcome TEXT
);
CREATE INDEX IF NOT EXISTS ergon_wait_due ON ergon_wait (deadline_ms)
    WHERE fired_at IS NULL AND deadline_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS ergon_wait_member (
    wait_id INTEGER NOT NULL,
    tx_id TEXT NOT NULL,
    task TEXT NOT NULL,
    position INTEGER NOT NULL,
    state TEXT NOT NULL,
    with_output INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (wait_id, tx_id, task)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ergon_wait_member_pending ON ergon_wait_member (tx_id, task)
    WHERE state = 'pending';
";

/// Opens (creating when missing) the journal at `path`, with the `local` queue's
/// discipline and tables ([`ergon_connectors::local::connect`]: the journal hands
/// continuations to those queues in its own commits), and the journal's tables.
pub(super) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let db = ergon_connectors::local::connect(path)?;
    db.execute_batch(SCHEMA)?;
    Ok(db)
}
