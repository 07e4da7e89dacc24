//! What the journal's SQLite tests share: the local queues in the journal's own file,
//! read as the tasks the journal hands transactions to read them.
//!
//! Included by `common/backends.rs` (apart from `common/mod.rs`, whose PostgreSQL helpers
//! only the `postgres` tests use).

use std::path::Path;
use std::sync::Arc;

use ergon_connectors::local::{LocalConfig, LocalConnector};

/// Local queue `name` in the SQLite journal's file at `path`.
pub async fn open_queue(path: &Path, name: &str) -> Arc<LocalConnector> {
    let connector =
        LocalConnector::open(path.to_path_buf(), name.to_owned(), &LocalConfig::default())
            .await
            .unwrap();
    Arc::new(connector)
}
