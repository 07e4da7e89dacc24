//! What the journal's tests on both backends share: the backend a test runs on
//! ([`Backend`], [`on_both_backends!`]), a journal there whose tasks' inputs the test
//! reads ([`TestJournal`]), and its tables, read directly ([`Tables`]).
//!
//! On SQLite the tasks read local queues in the journal's own file: what a commit hands
//! over is in them once it commits. On PostgreSQL (feature `postgres`, a schema of its
//! own per test) they read in-process `memory` queues, which the relay dispatches the
//! outbox to once the commit is durable ([`Tables::handed_over`]).
//!
//! Included with `#[path = "common/backends.rs"] mod backends;`, at the test crate's root
//! (the macro names `crate::backends`).

#[cfg(feature = "postgres")]
#[path = "mod.rs"]
mod postgres;
#[path = "sqlite.rs"]
mod sqlite;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ergon_core::Connector;
use ergon_journal::{DurableJournal, Routes, Settings};

/// The backends every test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    /// The journal in an SQLite file, whose local queues the tasks read.
    Sqlite,
    /// The journal in PostgreSQL, relaying to in-process `memory` queues.
    #[cfg(feature = "postgres")]
    Postgres,
}

/// Runs each named test (an `async fn(Backend)` at the crate's root) on both backends:
/// `NAME::sqlite`, and `NAME::postgres` with the feature `postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn sqlite() {
                super::$name($crate::backends::Backend::Sqlite).await;
            }

            #[cfg(feature = "postgres")]
            #[tokio::test(flavor = "multi_thread")]
            async fn postgres() {
                super::$name($crate::backends::Backend::Postgres).await;
            }
        }
    )*};
}
pub(crate) use on_both_backends;

/// A test's journal on one backend, the inputs of the tasks it hands transactions to, and
/// its tables.
pub struct TestJournal {
    /// The journal.
    pub journal: Arc<DurableJournal>,
    /// Each task's input, by task, as the task's workers read it.
    pub inputs: BTreeMap<String, Arc<dyn Connector>>,
    /// Where the journal's tables are read directly.
    pub tables: Tables,
}

impl TestJournal {
    /// A journal whose `tasks` each read an input of their name, with the settings
    /// `settings` makes of the routes to them: on SQLite in a fresh file, on PostgreSQL in
    /// a fresh schema `{test}_{pid}` (the schemas of `test` left behind dropped first, so
    /// no test's name may be another's followed by `_`).
    pub async fn open(
        backend: Backend,
        test: &str,
        tasks: &[&str],
        settings: impl FnOnce(Routes) -> Settings,
    ) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join(format!("{test}.db"));
                let routes = tasks.iter().fold(Routes::new(), |r, t| r.queue(*t, *t));
                let journal = DurableJournal::sqlite(&path, settings(routes)).unwrap();
                let mut inputs = BTreeMap::new();
                for task in tasks {
                    let input: Arc<dyn Connector> = sqlite::open_queue(&path, task).await;
                    inputs.insert((*task).to_owned(), input);
                }
                Self {
                    journal: Arc::new(journal),
                    inputs,
                    tables: Tables::Sqlite { path, _dir: dir },
                }
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                let routes = tasks.iter().fold(Routes::new(), |r, t| r.relay(*t));
                on_postgres::open(test, tasks, settings(routes)).await
            }
        }
    }
}

/// Where the journal's tables are read directly.
pub enum Tables {
    /// The journal's SQLite file.
    Sqlite {
        /// The file.
        path: PathBuf,
        /// Holds the file.
        _dir: tempfile::TempDir,
    },
    /// The test's schema, through a connection of its own.
    #[cfg(feature = "postgres")]
    Postgres {
        /// The connection.
        admin: tokio_postgres::Client,
        /// The schema.
        schema: String,
    },
}

impl Tables {
    /// Waits until what the journal committed is in the tasks' inputs: at once on SQLite
    /// (the same commit), once the relay has emptied the outbox on PostgreSQL.
    pub async fn handed_over(&self) {
        match self {
            Tables::Sqlite { .. } => {}
            #[cfg(feature = "postgres")]
            Tables::Postgres { .. } => {
                for _ in 0..1_000 {
                    if self.count("ergon_outbox", "true").await == 0 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                panic!("the relay did not empty the outbox in 10 s");
            }
        }
    }

    /// The rows of `table` that match `condition` (SQL both dialects read alike).
    pub async fn count(&self, table: &str, condition: &str) -> i64 {
        match self {
            Tables::Sqlite { path, .. } => {
                let sql = format!("SELECT count(*) FROM {table} WHERE {condition}");
                read(path).query_row(&sql, [], |row| row.get(0)).unwrap()
            }
            #[cfg(feature = "postgres")]
            Tables::Postgres { admin, schema } => {
                let sql = format!("SELECT count(*) FROM {schema}.{table} WHERE {condition}");
                admin.query_one(&sql, &[]).await.unwrap().get(0)
            }
        }
    }
}

/// A connection to the SQLite journal at `path`, beside its writer.
pub fn read(path: &Path) -> rusqlite::Connection {
    let db = rusqlite::Connection::open(path).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db
}

/// The PostgreSQL journal of a test.
#[cfg(feature = "postgres")]
mod on_postgres {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use ergon_connectors::memory::MemoryKind;
    use ergon_core::config::{ConfigEnv, ConnectorKind, MakeConnector};
    use ergon_journal::{DurableJournal, Settings};
    use serde_json::json;

    use super::{Tables, TestJournal, postgres};

    /// A journal with `settings` on a fresh schema named after `test`, relaying to an
    /// in-process queue per task of `tasks`, which are the tasks' inputs.
    pub(super) async fn open(test: &str, tasks: &[&str], settings: Settings) -> TestJournal {
        let schema = format!("{test}_{}", std::process::id());
        let admin = postgres::connect().await;
        postgres::drop_schemas(&admin, test).await;
        let queues: BTreeMap<String, Arc<dyn MakeConnector>> = tasks
            .iter()
            .map(|task| ((*task).to_owned(), memory_queue(task)))
            .collect();
        let mut inputs = BTreeMap::new();
        for (task, queue) in &queues {
            inputs.insert(task.clone(), queue.connect(0).await.unwrap());
        }
        let url = postgres::postgres_url();
        let journal = DurableJournal::postgres(&url, &schema, settings, queues)
            .await
            .unwrap();
        TestJournal {
            journal: Arc::new(journal),
            inputs,
            tables: Tables::Postgres { admin, schema },
        }
    }

    /// An in-process queue for `task`, as the runner makes one from `type = "memory"`.
    fn memory_queue(task: &str) -> Arc<dyn MakeConnector> {
        let env = ConfigEnv {
            name: task.to_owned(),
            base_dir: ".".into(),
        };
        let maker = MemoryKind.configure(json!({}), &env).unwrap();
        assert!(maker.takes_dispatches());
        maker
    }
}
