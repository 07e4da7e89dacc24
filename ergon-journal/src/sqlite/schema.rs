//! The journal's tables in an SQLite file, and how a connection to it is opened.
//!
//! The tables are [`crate::tables`]'s, keyed without a rowid where SQLite allows it.

use std::path::Path;

use ergon_connectors::local::{Database, SCHEMA};

use crate::tables::{Dialect, tables};

/// SQLite's words: `INTEGER PRIMARY KEY` is the rowid, and tables keyed by their
/// primary key store no rowid.
const SQLITE: Dialect = Dialect {
    serial_key: "INTEGER PRIMARY KEY",
    keyed_table: " WITHOUT ROWID",
};

/// Opens (creating when missing) the journal at `path` on the connection this process
/// writes the file with ([`Database::open`]: the journal hands continuations to the
/// queues in its own commits), with the `local` queue's tables and the journal's.
pub(super) fn open(path: &Path) -> rusqlite::Result<Database> {
    Database::open(path, &schema())
}

/// Opens the journal at `path` on a connection of its own, for reads that must not wait
/// behind the writer ([`Database::open_private`]).
pub(super) fn open_reader(path: &Path) -> rusqlite::Result<Database> {
    Database::open_private(path, &schema())
}

fn schema() -> String {
    format!("{SCHEMA}{}", tables(&SQLITE))
}
