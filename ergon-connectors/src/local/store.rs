//! The queue's table in SQLite: every operation is one short write transaction
//! ([`Database::write`]), so workers and processes sharing the file take turns on its
//! write lock.
//!
//! ```text
//! ergon_queue          seq (order) · queue · id · payload · metadata (JSON) · enqueued_at
//!                      visible_at (ms; later than now while leased) · deliveries · lease
//! ergon_dead_letters   the row as it was, plus task · step · category · error · attempts · failed_at
//! ```
//!
//! The index is `(queue, seq, visible_at)`: a fetch walks the queue in order and skips
//! the few leased rows at its head. (An index led by `visible_at` made every fetch sort
//! all visible rows to find the oldest: 26 k tx/s consumed at 100,000 queued.)

use std::path::Path;
use std::time::Duration;

use rusqlite::{CachedStatement, Connection, params};

use ergon_core::Failure;
use ergon_core::journal::now_ms;

use super::database::Database;

/// One row leased by a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    /// Position in the queue.
    pub seq: i64,
    /// The transaction id.
    pub id: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// The metadata, a JSON object.
    pub metadata: String,
    /// Deliveries so far, this one included.
    pub deliveries: u32,
}

/// A transaction to enqueue.
pub struct NewRow<'a> {
    /// The transaction id.
    pub id: &'a str,
    /// The payload.
    pub payload: &'a [u8],
    /// The metadata as a JSON object.
    pub metadata: String,
}

/// What a queue holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depths {
    /// Waiting to be fetched.
    pub ready: u64,
    /// Leased by a worker, not settled yet, lease not expired.
    pub in_flight: u64,
    /// Leased, but the lease expired: they will be delivered again.
    pub expired: u64,
    /// In the dead-letter table.
    pub dead: u64,
}

/// A dead letter, as `queue dead-letters` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its position when it was queued.
    pub seq: i64,
    /// The transaction id.
    pub id: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// Deliveries made.
    pub deliveries: u32,
    /// Task, step, category, error and attempts of the failure.
    pub failure: String,
    /// When it failed (Unix milliseconds).
    pub failed_at: i64,
}

/// A connection to the database file, for the queue's operations.
pub struct Store {
    db: Database,
}

/// The queue's tables, created on first use. Public so that the journal, sharing the
/// file, creates them too before it hands transactions over.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ergon_queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    payload BLOB NOT NULL,
    metadata TEXT NOT NULL,
    enqueued_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 0,
    lease INTEGER
);
CREATE INDEX IF NOT EXISTS ergon_queue_order ON ergon_queue (queue, seq, visible_at);
CREATE TABLE IF NOT EXISTS ergon_dead_letters (
    seq INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    payload BLOB NOT NULL,
    metadata TEXT NOT NULL,
    deliveries INTEGER NOT NULL,
    failure TEXT NOT NULL,
    failed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ergon_dead_letters_queue ON ergon_dead_letters (queue, seq);
";

/// Appends `rows` to `queue`, in order, within the caller's transaction on `db`.
///
/// # Errors
///
/// The insert failed (the caller's transaction should be rolled back).
pub fn append(db: &Connection, queue: &str, rows: &[NewRow<'_>]) -> rusqlite::Result<()> {
    let now = now_ms();
    let mut insert = db.prepare_cached(
        "INSERT INTO ergon_queue (queue, id, payload, metadata, enqueued_at, visible_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?;
    for row in rows {
        insert.execute(params![queue, row.id, row.payload, row.metadata, now])?;
    }
    Ok(())
}

/// Acks made within a transaction of the caller's (the journal's commit, which records a
/// completion and acks its delivery as one step), the statement prepared once for all of
/// them: looking it up in the connection's cache per ack hashes its text every time.
#[derive(Default)]
pub struct AcksIn<'c> {
    delete: Option<CachedStatement<'c>>,
}

impl<'c> AcksIn<'c> {
    /// Deletes the row `seq` if it is still under `lease`, on `db` (inside the caller's
    /// transaction); returns whether it was.
    ///
    /// # Errors
    ///
    /// The delete failed.
    pub fn ack(&mut self, db: &'c Connection, seq: i64, lease: i64) -> rusqlite::Result<bool> {
        let delete = match &mut self.delete {
            Some(delete) => delete,
            None => self.delete.insert(db.prepare_cached(ACK)?),
        };
        Ok(delete.execute(params![seq, lease])? == 1)
    }
}

/// Deletes one acked row, under its lease.
const ACK: &str = "DELETE FROM ergon_queue WHERE seq = ?1 AND lease = ?2";

/// Removes transaction `id` from `queue` unless a worker holds it under a live lease,
/// within the caller's transaction on `db`; returns whether it was there to remove (the
/// journal's `cancel_children`: a pending child is never delivered).
///
/// # Errors
///
/// The delete failed.
pub fn withdraw(db: &Connection, queue: &str, id: &str) -> rusqlite::Result<bool> {
    let mut delete = db.prepare_cached(
        "DELETE FROM ergon_queue WHERE queue = ?1 AND id = ?2 AND visible_at <= ?3",
    )?;
    Ok(delete.execute(params![queue, id, now_ms()])? > 0)
}

impl Store {
    /// Opens (creating when missing) the database at `path` and the queue's tables: see
    /// [`Database::open`].
    ///
    /// # Errors
    ///
    /// The file cannot be opened or created, or is not an SQLite database.
    pub fn open(path: &Path) -> rusqlite::Result<Store> {
        Ok(Store {
            db: Database::open(path, SCHEMA)?,
        })
    }

    /// Appends `rows` to `queue`, in order, in one transaction.
    pub fn enqueue(&mut self, queue: &str, rows: &[NewRow<'_>]) -> rusqlite::Result<()> {
        let tx = self.db.write()?;
        append(&tx, queue, rows)?;
        tx.commit()
    }

    /// Leases up to `max` visible rows of `queue` (the oldest first) for `lease`, under
    /// `token`: they stay invisible to other fetches until settled or expired.
    pub fn lease(
        &mut self,
        queue: &str,
        max: usize,
        lease: Duration,
        token: i64,
    ) -> rusqlite::Result<Vec<Leased>> {
        let now = now_ms();
        let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let tx = self.db.write()?;
        let mut rows = {
            let mut lease = tx.prepare_cached(
                "UPDATE ergon_queue SET visible_at = ?1, deliveries = deliveries + 1, lease = ?2
                 WHERE seq IN (SELECT seq FROM ergon_queue WHERE queue = ?3 AND visible_at <= ?4
                               ORDER BY seq LIMIT ?5)
                 RETURNING seq, id, payload, metadata, deliveries",
            )?;
            let limit = i64::try_from(max).unwrap_or(i64::MAX);
            lease
                .query_map(params![until, token, queue, now, limit], |row| {
                    Ok(Leased {
                        seq: row.get(0)?,
                        id: row.get(1)?,
                        payload: row.get(2)?,
                        metadata: row.get(3)?,
                        deliveries: row.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.commit()?;
        rows.sort_unstable_by_key(|r| r.seq);
        Ok(rows)
    }

    /// Deletes settled rows, each only while it is still under the lease that fetched it.
    /// Returns how many were deleted.
    pub fn ack(&mut self, leased: &[(i64, i64)]) -> rusqlite::Result<usize> {
        self.per_lease(leased, ACK, false)
    }

    /// Makes leased rows visible again at once (a requeue).
    pub fn requeue(&mut self, leased: &[(i64, i64)]) -> rusqlite::Result<usize> {
        self.per_lease(
            leased,
            "UPDATE ergon_queue SET visible_at = ?3, lease = NULL WHERE seq = ?1 AND lease = ?2",
            true,
        )
    }

    /// Runs `sql` once per `(seq, lease)` as `?1`, `?2` (and the time as `?3` when
    /// `with_time`), in one transaction.
    fn per_lease(
        &mut self,
        leased: &[(i64, i64)],
        sql: &str,
        with_time: bool,
    ) -> rusqlite::Result<usize> {
        let now = now_ms();
        let tx = self.db.write()?;
        let mut changed = 0;
        {
            let mut statement = tx.prepare_cached(sql)?;
            for (seq, token) in leased {
                changed += if with_time {
                    statement.execute(params![seq, token, now])?
                } else {
                    statement.execute(params![seq, token])?
                };
            }
        }
        tx.commit()?;
        Ok(changed)
    }

    /// Moves a leased row to the dead letters with its failure, in one transaction.
    /// Returns false when the row is no longer under this lease (another worker has it).
    pub fn dead_letter(
        &mut self,
        seq: i64,
        token: i64,
        failure: &Failure,
    ) -> rusqlite::Result<bool> {
        let tx = self.db.write()?;
        let described = failure.to_json().to_string();
        let moved = tx.execute(
            "INSERT INTO ergon_dead_letters (seq, queue, id, payload, metadata, deliveries, failure, failed_at)
             SELECT seq, queue, id, payload, metadata, deliveries, ?3, ?4 FROM ergon_queue
             WHERE seq = ?1 AND lease = ?2",
            params![seq, token, described, now_ms()],
        )?;
        tx.execute(
            "DELETE FROM ergon_queue WHERE seq = ?1 AND lease = ?2",
            params![seq, token],
        )?;
        tx.commit()?;
        Ok(moved == 1)
    }

    /// Whether the database answers (a health check that reads no rows).
    pub fn ping(&self) -> rusqlite::Result<()> {
        self.db.read().query_row("SELECT 1", [], |_| Ok(()))
    }

    /// What `queue` holds now.
    pub fn depths(&self, queue: &str) -> rusqlite::Result<Depths> {
        let now = now_ms();
        let db = self.db.read();
        let count = |sql: &str| -> rusqlite::Result<u64> {
            let n: i64 = db.query_row(sql, params![queue, now], |row| row.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        let dead: i64 = db.query_row(
            "SELECT count(*) FROM ergon_dead_letters WHERE queue = ?1",
            params![queue],
            |row| row.get(0),
        )?;
        Ok(Depths {
            ready: count(
                "SELECT count(*) FROM ergon_queue WHERE queue = ?1 AND visible_at <= ?2 AND lease IS NULL",
            )?,
            in_flight: count(
                "SELECT count(*) FROM ergon_queue WHERE queue = ?1 AND visible_at > ?2 AND lease IS NOT NULL",
            )?,
            expired: count(
                "SELECT count(*) FROM ergon_queue WHERE queue = ?1 AND visible_at <= ?2 AND lease IS NOT NULL",
            )?,
            dead: u64::try_from(dead).unwrap_or(0),
        })
    }

    /// The dead letters of `queue`, oldest first, at most `limit`.
    pub fn dead_letters(&self, queue: &str, limit: usize) -> rusqlite::Result<Vec<DeadLetter>> {
        let db = self.db.read();
        let mut statement = db.prepare(
            "SELECT seq, id, payload, deliveries, failure, failed_at FROM ergon_dead_letters
             WHERE queue = ?1 ORDER BY seq LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        statement
            .query_map(params![queue, limit], |row| {
                Ok(DeadLetter {
                    seq: row.get(0)?,
                    id: row.get(1)?,
                    payload: row.get(2)?,
                    deliveries: row.get(3)?,
                    failure: row.get(4)?,
                    failed_at: row.get(5)?,
                })
            })?
            .collect()
    }

    /// Puts every dead letter of `queue` back at the end of the queue (delivery count
    /// reset); returns how many.
    pub fn requeue_dead(&mut self, queue: &str) -> rusqlite::Result<usize> {
        let now = now_ms();
        let tx = self.db.write()?;
        let moved = tx.execute(
            "INSERT INTO ergon_queue (queue, id, payload, metadata, enqueued_at, visible_at)
             SELECT queue, id, payload, metadata, ?2, ?2 FROM ergon_dead_letters WHERE queue = ?1 ORDER BY seq",
            params![queue, now],
        )?;
        tx.execute(
            "DELETE FROM ergon_dead_letters WHERE queue = ?1",
            params![queue],
        )?;
        tx.commit()?;
        Ok(moved)
    }
}
