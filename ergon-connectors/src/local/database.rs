//! The connection to a queue's SQLite file, opened with the discipline every user of the
//! file shares, and the one way it writes: [`Database::write`].
//!
//! One process keeps **one writing connection per file**, shared by everything that
//! writes to it there: the queue's fetches, acks and appends (every worker's), and the
//! journal's commits. Two reasons. A connection that begins a transaction after another
//! connection committed drops its whole page cache (SQLite cannot tell which pages
//! changed), so two connections taking turns read every page again from the file on each
//! turn; and a connection that finds the write lock taken naps before it tries again,
//! while a turn taken on the shared connection starts the moment the last one commits.
//! Processes sharing the file still take turns on SQLite's lock ([`wait_for_lock`]).
//!
//! The shared connection leaves checkpoints of the write-ahead log to a thread of its
//! own ([`checkpoint`](super::checkpoint)), so that no commit copies the log back into
//! the file while every writer of the process waits behind it.
//!
//! Readers that must not wait behind writes (the journal's lookups, the commands) open a
//! connection of their own with [`Database::open_private`]: WAL lets them read beside the
//! writer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};
use std::time::Duration;

use ergon_core::sync::lock;
use rusqlite::Connection;

use super::checkpoint::{Checkpoints, LOG_SIZE_LIMIT};

/// A handle on a database file's connection: this process's shared one
/// ([`Database::open`]) or a private one ([`Database::open_private`]).
///
/// # Examples
///
/// ```
/// use ergon_connectors::local::Database;
///
/// let dir = tempfile::tempdir()?;
/// let db = Database::open(&dir.path().join("queue.db"), "CREATE TABLE IF NOT EXISTS t (x)")?;
/// let write = db.write()?;
/// write.execute("INSERT INTO t VALUES (1)", [])?;
/// write.commit()?;
/// let n: i64 = db.read().query_row("SELECT count(*) FROM t", [], |row| row.get(0))?;
/// assert_eq!(n, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Database {
    shared: Arc<Shared>,
}

/// A connection and, on the shared one, the thread that checkpoints its file.
struct Shared {
    connection: Arc<Mutex<Connection>>,
    checkpoints: Option<Checkpoints>,
}

/// An open write transaction (`BEGIN IMMEDIATE`) on a [`Database`], holding its
/// connection; it rolls back when dropped without [`Write::commit`].
pub struct Write<'a> {
    connection: MutexGuard<'a, Connection>,
    checkpoints: Option<&'a Checkpoints>,
    open: bool,
}

/// Prepared statements a connection keeps: the queue's and the journal's, with room.
const STATEMENTS: usize = 64;

impl Database {
    /// This process's connection to the database at `path`, opened (and the file created)
    /// on first use with the discipline every user of the file shares — WAL, so readers
    /// never wait for the writer; `synchronous = NORMAL`, so a commit survives the process
    /// being killed — and `schema` run on it (`CREATE … IF NOT EXISTS` statements); a
    /// thread checkpoints the file after its commits.
    ///
    /// # Errors
    ///
    /// The file cannot be opened or created, or is not an SQLite database.
    pub fn open(path: &Path, schema: &str) -> rusqlite::Result<Database> {
        static OPEN: LazyLock<Mutex<HashMap<PathBuf, Weak<Shared>>>> =
            LazyLock::new(Default::default);
        let mut open = lock(&OPEN);
        let key = std::fs::canonicalize(path).ok();
        let shared = key
            .as_ref()
            .and_then(|key| open.get(key))
            .and_then(Weak::upgrade);
        let database = match shared {
            Some(shared) => Database { shared },
            None => {
                let connection = Arc::new(Mutex::new(connect(path)?));
                let checkpoints = Checkpoints::start(path, Arc::downgrade(&connection));
                if checkpoints.is_some() {
                    let connection = lock(&connection);
                    connection.pragma_update(None, "wal_autocheckpoint", 0)?;
                    connection.pragma_update(None, "journal_size_limit", LOG_SIZE_LIMIT)?;
                }
                let database = Database::new(connection, checkpoints);
                let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
                open.retain(|_, shared| shared.strong_count() > 0);
                open.insert(key, Arc::downgrade(&database.shared));
                database
            }
        };
        drop(open);
        database.create(schema)?;
        Ok(database)
    }

    /// A connection to the database at `path` of its own, shared with nothing else in the
    /// process, opened like [`Database::open`]'s.
    ///
    /// # Errors
    ///
    /// The file cannot be opened or created, or is not an SQLite database.
    pub fn open_private(path: &Path, schema: &str) -> rusqlite::Result<Database> {
        let database = Database::new(Arc::new(Mutex::new(connect(path)?)), None);
        database.create(schema)?;
        Ok(database)
    }

    fn new(connection: Arc<Mutex<Connection>>, checkpoints: Option<Checkpoints>) -> Database {
        Database {
            shared: Arc::new(Shared {
                connection,
                checkpoints,
            }),
        }
    }

    /// Runs `schema` in one write (nothing when it is empty).
    fn create(&self, schema: &str) -> rusqlite::Result<()> {
        if schema.is_empty() {
            return Ok(());
        }
        let write = self.write()?;
        write.execute_batch(schema)?;
        write.commit()
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE`: the file's lock is taken up front,
    /// never midway), once this process's other writers to the file are done.
    ///
    /// # Errors
    ///
    /// Another process held the lock past the busy timeout, or the file cannot be written.
    pub fn write(&self) -> rusqlite::Result<Write<'_>> {
        let connection = lock(&self.shared.connection);
        connection.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(Write {
            connection,
            checkpoints: self.shared.checkpoints.as_ref(),
            open: true,
        })
    }

    /// The connection, for reads (each statement its own read transaction), once this
    /// process's writers to the file are done.
    pub fn read(&self) -> MutexGuard<'_, Connection> {
        lock(&self.shared.connection)
    }
}

impl Write<'_> {
    /// Commits the transaction and hands the connection to the next writer.
    ///
    /// # Errors
    ///
    /// The commit failed (the transaction is rolled back).
    pub fn commit(mut self) -> rusqlite::Result<()> {
        self.connection.prepare_cached("COMMIT")?.execute([])?;
        self.open = false;
        if let Some(checkpoints) = self.checkpoints {
            checkpoints.committed();
        }
        Ok(())
    }
}

impl std::ops::Deref for Write<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.connection
    }
}

impl Drop for Write<'_> {
    fn drop(&mut self) {
        if self.open && !self.connection.is_autocommit() {
            // Failing to roll back leaves nothing to undo: the connection is closed or
            // the transaction is gone already.
            let _ = self.connection.execute_batch("ROLLBACK");
        }
    }
}

/// Opens a connection to the database at `path` (creating its directory and the file)
/// with the discipline every user of the file shares.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let connection = Connection::open(path)?;
    connection.busy_handler(Some(wait_for_lock))?;
    connection.set_prepared_statement_cache_capacity(STATEMENTS);
    connection.pragma_update(None, "journal_mode", "WAL")?;
    // WAL + NORMAL: a commit survives a process crash (kill -9); only a power loss can
    // take the last commits back, and then at-least-once delivery still holds for
    // everything not acked.
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(connection)
}

/// How long a connection waits for another process to release the file's write lock
/// before giving up with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest nap between two tries at the write lock.
const BUSY_NAP_MAX: Duration = Duration::from_millis(1);

/// SQLite's busy handler: called with how many times the lock was tried; naps and asks
/// for another try until [`BUSY_TIMEOUT`] has passed.
///
/// SQLite's own timeout handler sleeps 1 ms, then 2, 5, 10 … 100 ms between tries:
/// longer than the commits here take (tens of microseconds to a millisecond), so a
/// writer of another process would idle for milliseconds. These naps start at 50 µs and
/// grow to [`BUSY_NAP_MAX`].
fn wait_for_lock(tries: i32) -> bool {
    let tries = u32::try_from(tries).unwrap_or(0);
    let nap = Duration::from_micros(50)
        .saturating_mul(tries + 1)
        .min(BUSY_NAP_MAX);
    // The naps up to the longest one sum to about 10 ms; count the rest at the longest.
    let waited = BUSY_NAP_MAX.saturating_mul(tries.saturating_sub(20));
    if waited >= BUSY_TIMEOUT {
        return false;
    }
    std::thread::sleep(nap);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_shares_one_connection_per_file_however_the_path_is_spelled() {
        let dir = tempfile::tempdir().unwrap();
        let a = Database::open(&dir.path().join("queue.db"), "").unwrap();
        let b = Database::open(&dir.path().join(".").join("queue.db"), "").unwrap();
        let other = Database::open(&dir.path().join("other.db"), "").unwrap();
        let private = Database::open_private(&dir.path().join("queue.db"), "").unwrap();
        assert!(Arc::ptr_eq(&a.shared, &b.shared));
        assert!(!Arc::ptr_eq(&a.shared, &other.shared));
        assert!(!Arc::ptr_eq(&a.shared, &private.shared));
    }

    #[test]
    fn a_write_dropped_without_commit_rolls_back_and_frees_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        let db = Database::open(&path, "CREATE TABLE IF NOT EXISTS t (x INTEGER)").unwrap();
        {
            let write = db.write().unwrap();
            write.execute("INSERT INTO t VALUES (1)", []).unwrap();
        }
        let write = db.write().unwrap();
        write.execute("INSERT INTO t VALUES (2)", []).unwrap();
        write.commit().unwrap();
        let other = Database::open_private(&path, "").unwrap();
        let sum: i64 = other
            .read()
            .query_row("SELECT sum(x) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sum, 2);
    }

    #[test]
    fn the_busy_handler_gives_up_after_the_timeout() {
        assert!(wait_for_lock(0));
        let limit = 20 + u32::try_from(BUSY_TIMEOUT.as_millis()).unwrap();
        assert!(!wait_for_lock(i32::try_from(limit).unwrap()));
        assert!(wait_for_lock(i32::try_from(limit - 1).unwrap()));
    }
}
