//! Checkpoints of a database file's write-ahead log, off the writers' path.
//!
//! In WAL mode a commit appends pages to the log, and a checkpoint copies them back
//! into the database file. SQLite's default runs the checkpoint inside the commit that
//! takes the log past 1,000 pages: that commit then copies thousands of pages and waits
//! for two `fsync`s, and every writer sharing the connection waits behind it (measured
//! on `journal_cost`: 0.56 s of the journal writer's 2.1 s went to commits, 0.23 s with
//! no checkpoint in them). The shared writing connection turns that off, and a thread of
//! its own checkpoints instead, after commits, at most every [`EVERY`].
//!
//! The checkpoints are `PASSIVE`: they never wait for a writer or a reader. Readers
//! still see every commit (they read the log); a crash loses nothing (what is not
//! checkpointed yet is replayed from the log when the file is opened next).
//!
//! A log restarts from its beginning only when a write begins after a checkpoint copied
//! all of it, which writes that never pause do not allow: each checkpoint copies what
//! was there when it began, and commits meanwhile append more. The log then grows for as
//! long as the load lasts (measured: 400 MB in 3 s of `journal_cost`), each commit
//! appending to a growing file (the kernel allocating pages and blocks for it). So once
//! a checkpoint leaves a log of [`RESTART_AT`] pages or more, the thread holds this
//! process's writers back for a second one, which copies only what the first left
//! (the commits made while it ran), and the next write starts the log again.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use ergon_core::sync::lock;
use rusqlite::Connection;

/// The shortest time between two checkpoints of one file: under load a checkpoint then
/// covers the commits of this long (about as many pages as SQLite's default threshold).
const EVERY: Duration = Duration::from_millis(100);

/// The size the log is truncated back to when a checkpoint has emptied it: a burst may
/// grow it, and the file need not keep that size.
pub(super) const LOG_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The pages a log may hold after a checkpoint before writers are held back for the
/// second one that lets it restart (SQLite's default checkpoint threshold).
const RESTART_AT: i64 = 1_000;

/// The thread checkpointing one file, told of the commits on its connection; it stops
/// once the last handle is dropped.
#[derive(Clone)]
pub(super) struct Checkpoints {
    commits: SyncSender<()>,
}

impl Checkpoints {
    /// Opens a connection to `path` (a file in WAL mode) for checkpoints and starts the
    /// thread that runs them; `writers` is this process's writing connection to the file,
    /// held while a checkpoint lets the log restart. `None` when either cannot be done
    /// (logged): the writing connection then keeps SQLite's own checkpoints.
    pub fn start(path: &Path, writers: Weak<Mutex<Connection>>) -> Option<Checkpoints> {
        let name = path.display().to_string();
        let connection = Connection::open(path)
            .inspect_err(|err| {
                tracing::warn!(database = %name, error = %err, "Cannot open a connection for checkpoints; commits will run them");
            })
            .ok()?;
        let (commits, told) = sync_channel(1);
        std::thread::Builder::new()
            .name("ergon-checkpoint".into())
            .spawn(move || run(&connection, &name, &told, &writers))
            .inspect_err(|err| {
                tracing::warn!(database = %path.display(), error = %err, "Cannot start the checkpoint thread; commits will run checkpoints");
            })
            .ok()?;
        Some(Checkpoints { commits })
    }

    /// Notes a commit: a checkpoint follows (one note stands for any number of commits).
    pub fn committed(&self) {
        // Full: a checkpoint is noted already. Disconnected: the thread has ended, which
        // it does only once every handle is gone.
        let _ = self.commits.try_send(());
    }
}

/// Checkpoints `connection` after each note of a commit, at most every [`EVERY`], until
/// every sender is gone. A failure is logged once per streak: the next checkpoint tries
/// again, and the log keeps every commit meanwhile.
fn run(
    connection: &Connection,
    path: &str,
    commits: &Receiver<()>,
    writers: &Weak<Mutex<Connection>>,
) {
    let mut failing = false;
    while commits.recv().is_ok() {
        match checkpoint(connection, writers) {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(
                    database = path,
                    "Checkpoints of the write-ahead log work again"
                );
            }
            Ok(()) => {}
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(database = path, error = %err, "Cannot checkpoint the write-ahead log; trying again after the next commit");
            }
            Err(_) => {}
        }
        std::thread::sleep(EVERY);
    }
}

/// Copies the log into the file; when it holds [`RESTART_AT`] pages or more, copies
/// again with `writers` held back, so that the next write restarts it.
fn checkpoint(connection: &Connection, writers: &Weak<Mutex<Connection>>) -> rusqlite::Result<()> {
    if passive(connection)? < RESTART_AT {
        return Ok(());
    }
    let Some(writers) = writers.upgrade() else {
        return Ok(());
    };
    let _held = lock(&writers);
    passive(connection).map(drop)
}

/// A `PASSIVE` checkpoint; returns how many pages the log holds.
fn passive(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::Database;

    /// The shared connection runs no checkpoint itself, so what reaches the database
    /// file (rather than staying in the log) was copied there by the thread.
    #[test]
    fn commits_on_the_shared_connection_reach_the_file_without_a_commit_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        let db = Database::open(&path, "CREATE TABLE IF NOT EXISTS t (x BLOB)").unwrap();
        let threshold: i64 = db
            .read()
            .query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
            .unwrap();
        assert_eq!(
            threshold, 0,
            "commits must not checkpoint on the shared connection"
        );
        let before = std::fs::metadata(&path).unwrap().len();
        for _ in 0..50 {
            let write = db.write().unwrap();
            write
                .execute("INSERT INTO t VALUES (zeroblob(4000))", [])
                .unwrap();
            write.commit().unwrap();
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        let grown = loop {
            let now = std::fs::metadata(&path).unwrap().len();
            if now >= before + 50 * 4000 || Instant::now() > deadline {
                break now;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert!(
            grown >= before + 50 * 4000,
            "the database file holds {grown} bytes (it held {before}): no checkpoint copied the 50 commits into it"
        );
    }

    /// The log's checkpoint sequence number (bytes 12..16 of its header), which SQLite
    /// increments each time the log restarts from its beginning.
    fn log_restarts(path: &std::path::Path) -> u32 {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let header = std::fs::read(wal).unwrap_or_default();
        header
            .get(12..16)
            .map_or(0, |seq| u32::from_be_bytes(seq.try_into().unwrap()))
    }

    /// A log only restarts when a write begins after a checkpoint copied all of it, which
    /// a busy writer never leaves time for: the log would grow for as long as the writes
    /// go on (measured: 400 MB in 3 s of `journal_cost`), and every commit would append
    /// to a growing file. The thread lets it restart under writes that never pause.
    #[test]
    fn the_log_restarts_under_writes_that_never_pause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        let db = Database::open(&path, "CREATE TABLE IF NOT EXISTS t (x BLOB)").unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let write = db.write().unwrap();
                    write
                        .execute("INSERT INTO t VALUES (zeroblob(8000))", [])
                        .unwrap();
                    write
                        .execute("DELETE FROM t WHERE rowid <= last_insert_rowid() - 10", [])
                        .unwrap();
                    write.commit().unwrap();
                }
            })
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        let restarts = loop {
            let restarts = log_restarts(&path);
            if restarts >= 3 || Instant::now() > deadline {
                break restarts;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
        assert!(
            restarts >= 3,
            "the log restarted {restarts} times in 20 s of writes: it grows for as long as they go on"
        );
    }
}
