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
//! The checkpoints are `PASSIVE`: they never wait for, nor block, a writer or a reader.
//! Readers still see every commit (they read the log); a crash loses nothing (what is
//! not checkpointed yet is replayed from the log when the file is opened next).

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use rusqlite::Connection;

/// The shortest time between two checkpoints of one file: under load a checkpoint then
/// covers the commits of this long (about as many pages as SQLite's default threshold).
const EVERY: Duration = Duration::from_millis(100);

/// The size the log is truncated back to when a checkpoint has emptied it: a burst may
/// grow it, and the file need not keep that size.
pub(super) const LOG_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The thread checkpointing one file, told of the commits on its connection; it stops
/// once the last handle is dropped.
#[derive(Clone)]
pub(super) struct Checkpoints {
    commits: SyncSender<()>,
}

impl Checkpoints {
    /// Opens a connection to `path` (a file in WAL mode) for checkpoints and starts the
    /// thread that runs them. `None` when either cannot be done (logged): the writing
    /// connection then keeps SQLite's own checkpoints.
    pub fn start(path: &Path) -> Option<Checkpoints> {
        let name = path.display().to_string();
        let connection = Connection::open(path)
            .inspect_err(|err| {
                tracing::warn!(database = %name, error = %err, "Cannot open a connection for checkpoints; commits will run them");
            })
            .ok()?;
        let (commits, told) = sync_channel(1);
        std::thread::Builder::new()
            .name("ergon-checkpoint".into())
            .spawn(move || run(&connection, &name, &told))
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
fn run(connection: &Connection, path: &str, commits: &Receiver<()>) {
    let mut failing = false;
    while commits.recv().is_ok() {
        match connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
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
}
