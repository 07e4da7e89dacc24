//! The journal's tables in an SQLite file, and how a connection to it is opened.
//!
//! The tables are [`crate::tables`]'s, keyed without a rowid where SQLite allows it.

use std::path::Path;

use rusqlite::Connection;

use crate::tables::{Dialect, tables};

/// SQLite's words: `INTEGER PRIMARY KEY` is the rowid, and tables keyed by their
/// primary key store no rowid.
const SQLITE: Dialect = Dialect {
    serial_key: "INTEGER PRIMARY KEY",
    keyed_table: " WITHOUT ROWID",
};

/// Opens (creating when missing) the journal at `path`, with the `local` queue's
/// discipline and tables ([`ergon_connectors::local::connect`]: the journal hands
/// continuations to those queues in its own commits), and the journal's tables.
pub(super) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let db = ergon_connectors::local::connect(path)?;
    db.execute_batch(&tables(&SQLITE))?;
    Ok(db)
}
