//! The spool directory on disk: every state change is one `rename`, so a process killed
//! at any point leaves each file whole in exactly one of `ready/`, `processing/` or
//! `dead/`.
//!
//! A file's name is its transaction id, followed by `@N` once it has been delivered `N`
//! times (`order-7`, then `order-7@1` while claimed, `order-7@1` again in `ready/` after a
//! requeue, `order-7@2` at the next claim). The count lives in the name so that a claim,
//! a requeue and a crash recovery each move it with the file in one atomic step.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use ergon_core::{Failure, Transaction};
use serde::Serialize;

/// The receipt of one delivery: the claimed file (only this connector reads it).
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    /// `processing/<id>@<deliveries>`.
    pub(crate) file: PathBuf,
    pub(crate) id: String,
    pub(crate) deliveries: u32,
}

/// What a fetch found: deliveries, and files too large to deliver (already dead-lettered).
pub(crate) enum Fetched {
    Delivery(Transaction, Claim),
    TooLarge { id: String, bytes: u64 },
}

/// What a settlement did.
pub(crate) enum Done {
    Performed,
    /// The claimed file is gone: not ours any more (see [`Dir::recover`]).
    Stale,
}

/// The four subdirectories of one spool.
#[derive(Debug, Clone)]
pub(crate) struct Dir {
    root: PathBuf,
    ready: PathBuf,
    processing: PathBuf,
    dead: PathBuf,
    tmp: PathBuf,
}

/// One dead letter's failure, written as `dead/<id>.failure.json` beside its payload.
#[derive(Serialize)]
struct FailureRecord<'a> {
    id: &'a str,
    deliveries: u32,
    task: &'a str,
    step: &'a str,
    category: &'a str,
    error: &'a str,
    attempts: u32,
    failed_at: String,
}

impl Dir {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self {
            ready: root.join("ready"),
            processing: root.join("processing"),
            dead: root.join("dead"),
            tmp: root.join("tmp"),
            root,
        }
    }

    /// Creates the subdirectories, returns every claimed file to `ready/` (a claim can
    /// only be left over from a process that died: see the module docs), and empties
    /// `tmp/` (half-written dispatches). Returns how many claims were returned.
    pub(crate) fn recover(&self) -> io::Result<usize> {
        self.create()?;
        let mut returned = 0;
        for name in names(&self.processing)? {
            // The name keeps its count: that delivery happened, the next one is count + 1.
            fs::rename(self.processing.join(&name), self.ready.join(&name))?;
            returned += 1;
        }
        for name in names(&self.tmp)? {
            fs::remove_file(self.tmp.join(name))?;
        }
        Ok(returned)
    }

    /// Creates the subdirectories that are missing.
    pub(crate) fn create(&self) -> io::Result<()> {
        for dir in [&self.ready, &self.processing, &self.dead, &self.tmp] {
            fs::create_dir_all(dir)?;
        }
        Ok(())
    }

    /// Claims up to `max` ready files, oldest first, reading each whole.
    pub(crate) fn claim(&self, max: usize, max_bytes: u64) -> io::Result<Vec<Fetched>> {
        let mut ready = Vec::new();
        for name in names(&self.ready)? {
            // A file another worker claimed since the listing simply is not there.
            let Some(modified) = ignore_missing(fs::metadata(self.ready.join(&name)))? else {
                continue;
            };
            ready.push((modified.modified()?, name));
        }
        ready.sort_unstable();

        let mut fetched = Vec::new();
        for (_, name) in ready {
            if fetched.len() == max {
                break;
            }
            let (id, before) = split_count(&name);
            let deliveries = before.saturating_add(1);
            let file = self.processing.join(format!("{id}@{deliveries}"));
            if ignore_missing(fs::rename(self.ready.join(&name), &file))?.is_none() {
                continue;
            }
            let bytes = fs::metadata(&file)?.len();
            if bytes > max_bytes {
                let failure = Failure {
                    task: "spool".into(),
                    step: "fetch",
                    category: ergon_core::Category::Business,
                    message: format!(
                        "the file is {bytes} bytes, more than max_bytes = {max_bytes}"
                    ),
                    attempts: 0,
                };
                self.dead_letter(&file, id, deliveries, &failure)?;
                fetched.push(Fetched::TooLarge {
                    id: id.to_owned(),
                    bytes,
                });
                continue;
            }
            let payload = fs::read(&file)?;
            let transaction = Transaction::new(id, payload).delivered(deliveries);
            let claim = Claim {
                file,
                id: id.to_owned(),
                deliveries,
            };
            fetched.push(Fetched::Delivery(transaction, claim));
        }
        Ok(fetched)
    }

    /// Ack or drop: the file is removed.
    pub(crate) fn remove(&self, claim: &Claim) -> io::Result<Done> {
        Ok(done(ignore_missing(fs::remove_file(&claim.file))?))
    }

    /// Requeue: back to `ready/`, its count in its name.
    pub(crate) fn requeue(&self, claim: &Claim) -> io::Result<Done> {
        let back = self
            .ready
            .join(format!("{}@{}", claim.id, claim.deliveries));
        Ok(done(ignore_missing(fs::rename(&claim.file, back))?))
    }

    /// Dead letter: the failure is written to `dead/<id>.failure.json`, then the payload
    /// moves to `dead/<id>` (so a dead payload always has its failure beside it).
    pub(crate) fn dead_letter(
        &self,
        file: &Path,
        id: &str,
        deliveries: u32,
        failure: &Failure,
    ) -> io::Result<Done> {
        if ignore_missing(fs::metadata(file))?.is_none() {
            return Ok(Done::Stale);
        }
        let record = FailureRecord {
            id,
            deliveries,
            task: &failure.task,
            step: failure.step,
            category: failure.category.as_str(),
            error: &failure.message,
            attempts: failure.attempts,
            failed_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        };
        let json = serde_json::to_vec_pretty(&record).map_err(io::Error::other)?;
        let note = self.dead.join(format!("{id}.failure.json"));
        fs::write(&note, json)?;
        match ignore_missing(fs::rename(file, self.dead.join(id)))? {
            Some(()) => Ok(Done::Performed),
            None => {
                fs::remove_file(note)?;
                Ok(Done::Stale)
            }
        }
    }

    /// Writes one transaction's payload as a new ready file: in `tmp/` first, then linked
    /// into `ready/` (a link never replaces an existing file), so a reader never sees a
    /// half-written file and a waiting transaction is never overwritten.
    pub(crate) fn append(&self, tx: &Transaction) -> io::Result<()> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let id = tx.id();
        let tmp = self.tmp.join(format!(
            "{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let mut file = fs::File::create(&tmp)?;
        file.write_all(tx.payload())?;
        file.sync_data()?;
        drop(file);
        let linked = fs::hard_link(&tmp, self.ready.join(format!("{id}@0")));
        fs::remove_file(&tmp)?;
        linked.map_err(|err| match err.kind() {
            io::ErrorKind::AlreadyExists => io::Error::new(
                err.kind(),
                format!("transaction {id} is already waiting in the spool"),
            ),
            _ => err,
        })
    }

    /// Nothing ready and nothing claimed (by any worker of this process).
    pub(crate) fn is_drained(&self) -> io::Result<bool> {
        Ok(names(&self.ready)?.is_empty() && names(&self.processing)?.is_empty())
    }

    /// Each subdirectory is there and is a directory.
    pub(crate) fn check(&self) -> io::Result<()> {
        for dir in [&self.ready, &self.processing, &self.dead, &self.tmp] {
            if !fs::metadata(dir)?.is_dir() {
                return Err(io::Error::other(format!(
                    "{} is not a directory",
                    dir.display()
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }
}

/// A transaction id usable as a file name: what `dispatch` accepts.
pub(crate) fn check_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() || id.len() > 200 {
        Err("must be 1 to 200 bytes long")
    } else if id.starts_with('.') {
        Err("must not start with '.'")
    } else if id.contains(['/', '\\', '\0']) {
        Err("must not contain '/', '\\' or NUL")
    } else {
        Ok(())
    }
}

/// `order-7@2` → (`order-7`, 2); a name without a count has none yet.
fn split_count(name: &str) -> (&str, u32) {
    match name.rsplit_once('@') {
        Some((id, n))
            if !id.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (id, n.parse().unwrap_or(u32::MAX))
        }
        _ => (name, 0),
    }
}

/// The visible file names of `dir` (names starting with `.` are skipped: editors' and
/// copy tools' temporary files).
fn names(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        match name.into_string() {
            Ok(name) if !name.starts_with('.') => names.push(name),
            _ => {}
        }
    }
    Ok(names)
}

/// `None` for a file that is not there (any more).
fn ignore_missing<T>(result: io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

fn done(found: Option<()>) -> Done {
    match found {
        Some(()) => Done::Performed,
        None => Done::Stale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_the_trailing_at_number() {
        assert_eq!(split_count("order-7"), ("order-7", 0));
        assert_eq!(split_count("order-7@2"), ("order-7", 2));
        assert_eq!(split_count("a@b@3"), ("a@b", 3));
        assert_eq!(split_count("mail@host"), ("mail@host", 0));
        assert_eq!(split_count("@3"), ("@3", 0));
    }

    #[test]
    fn claim_requeue_crash_and_dead_letter_move_the_file_with_its_count() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::new(tmp.path().to_owned());
        dir.recover().unwrap();
        dir.append(&Transaction::new("a", "1")).unwrap();
        assert!(
            dir.append(&Transaction::new("a", "2")).is_err(),
            "never overwritten"
        );

        let claim = |dir: &Dir| match dir.claim(10, 100).unwrap().pop() {
            Some(Fetched::Delivery(tx, claim)) => (tx, claim),
            _ => panic!("one delivery expected"),
        };
        let (tx, first) = claim(&dir);
        assert_eq!(
            (tx.id(), tx.deliveries(), &tx.payload()[..]),
            ("a", 1, &b"1"[..])
        );
        assert!(!dir.is_drained().unwrap(), "claimed");
        assert!(matches!(dir.requeue(&first).unwrap(), Done::Performed));
        assert!(matches!(dir.requeue(&first).unwrap(), Done::Stale));

        let (tx, _) = claim(&dir);
        assert_eq!(tx.deliveries(), 2);
        assert_eq!(dir.recover().unwrap(), 1, "a crash leaves it claimed");

        let (tx, third) = claim(&dir);
        assert_eq!(tx.deliveries(), 3);
        let failure = Failure {
            task: "t".into(),
            step: "process",
            category: ergon_core::Category::Business,
            message: "bad".into(),
            attempts: 1,
        };
        assert!(matches!(
            dir.dead_letter(&third.file, &third.id, 3, &failure)
                .unwrap(),
            Done::Performed
        ));
        assert!(dir.is_drained().unwrap());
        assert_eq!(fs::read(tmp.path().join("dead/a")).unwrap(), b"1");
        let note = fs::read_to_string(tmp.path().join("dead/a.failure.json")).unwrap();
        assert!(
            note.contains("\"deliveries\": 3") && note.contains("\"bad\""),
            "{note}"
        );
    }
}
