//! `type = "spool"`: a directory of files, one transaction per file — a connector written
//! outside ergon's crates, against the same contract the built-in ones implement.
//!
//! ```text
//! <path>/ready/        waiting: drop files here (or dispatch to the spool)
//! <path>/processing/   claimed by a fetch, until settled
//! <path>/dead/         dead letters: <id> (the payload) and <id>.failure.json
//! <path>/tmp/          dispatches being written
//! ```
//!
//! * **Fetch** claims the oldest ready files by renaming them into `processing/`; the
//!   [receipt](ergon_core::Delivery) is the claimed path. The file name is the
//!   transaction id; the delivery count travels in the name (`order-7@2`), not in the
//!   transaction's metadata (see `dir.rs`).
//! * **Settle**: `Ack` and `Drop` delete the file, `Requeue` moves it back to `ready/`
//!   with its count, `DeadLetter` moves it to `dead/` with the failure beside it. A
//!   claimed file that is gone when settled is [stale](SettleOutcome::Stale).
//! * **Drained**: nothing in `ready/` and nothing in `processing/`.
//! * **Crash**: a process that dies leaves its claims in `processing/`; the next one
//!   returns them to `ready/` before its first fetch, so each is delivered again with
//!   its count + 1, and `transaction.max_deliveries` ends a message that kills the
//!   process every time.
//! * **Dispatch** writes each payload to `tmp/` and links it into `ready/` (never
//!   replacing a waiting file): metadata is not kept.

mod config;
mod dir;

use std::sync::Arc;

use ergon_core::async_trait;
use ergon_core::config::{ConfigEnv, ConfigIssue, ConnectorKind, MakeConnector, decode};
use ergon_core::{Connector, Delivery, SettleOutcome, Settlement, TaskError, Transaction};
use tokio::sync::OnceCell;

pub use config::SpoolConfig;
use dir::{Claim, Dir, Done, Fetched};

/// The `spool` connector kind: register it with
/// `Registry::connector_kind(Arc::new(SpoolKind))`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpoolKind;

impl ConnectorKind for SpoolKind {
    fn name(&self) -> &'static str {
        "spool"
    }

    /// Decodes and checks the table, without I/O (this also runs for `validate`).
    fn configure(
        &self,
        table: serde_json::Value,
        env: &ConfigEnv,
    ) -> Result<Arc<dyn MakeConnector>, ConfigIssue> {
        let config: SpoolConfig = decode(table)?;
        config.validate()?;
        Ok(Arc::new(MakeSpool {
            dir: Dir::new(config.resolved(env)),
            max_bytes: config.max_bytes,
            recovered: Arc::new(OnceCell::new()),
        }))
    }
}

/// Shared by the workers of one `[connectors.NAME]`.
struct MakeSpool {
    dir: Dir,
    max_bytes: u64,
    /// The crash recovery, run once by the first fetch of any worker (every fetch waits
    /// for it, so it returns only a dead process's claims). Not at connect: `validate
    /// --connect` connects too, and must not take the claims of a process running now.
    recovered: Arc<OnceCell<()>>,
}

#[async_trait]
impl MakeConnector for MakeSpool {
    async fn connect(&self, _worker: usize) -> Result<Arc<dyn Connector>, TaskError> {
        let dir = self.dir.clone();
        blocking(&self.dir, "cannot create", move || dir.create()).await?;
        Ok(Arc::new(SpoolConnector {
            dir: self.dir.clone(),
            max_bytes: self.max_bytes,
            recovered: self.recovered.clone(),
        }))
    }
}

/// One worker's handle on a spool directory.
pub struct SpoolConnector {
    dir: Dir,
    max_bytes: u64,
    recovered: Arc<OnceCell<()>>,
}

impl SpoolConnector {
    /// Returns the claims a previous process left in `processing/` to `ready/`, once.
    async fn recover(&self) -> Result<(), TaskError> {
        self.recovered
            .get_or_try_init(|| async {
                let dir = self.dir.clone();
                let returned = blocking(&self.dir, "cannot recover", move || dir.recover()).await?;
                if returned > 0 {
                    tracing::warn!(
                        spool = %self.dir.root().display(),
                        returned,
                        "Returned the claims of a previous process to the spool"
                    );
                }
                Ok::<_, TaskError>(())
            })
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl Connector for SpoolConnector {
    async fn fetch(&self, max: usize) -> Result<Vec<Delivery>, TaskError> {
        self.recover().await?;
        let (dir, max_bytes) = (self.dir.clone(), self.max_bytes);
        let fetched = blocking(&self.dir, "cannot fetch from", move || {
            dir.claim(max, max_bytes)
        })
        .await?;
        let mut deliveries = Vec::with_capacity(fetched.len());
        for fetched in fetched {
            match fetched {
                Fetched::Delivery(tx, claim) => deliveries.push(Delivery::new(tx, claim)),
                Fetched::TooLarge { id, bytes } => tracing::warn!(
                    spool = %self.dir.root().display(),
                    id,
                    bytes,
                    "Dead-lettered a file larger than max_bytes"
                ),
            }
        }
        Ok(deliveries)
    }

    async fn settle(
        &self,
        delivery: &Delivery,
        settlement: &Settlement,
    ) -> Result<SettleOutcome, TaskError> {
        let Some(claim) = delivery.receipt::<Claim>().cloned() else {
            return Err(TaskError::system(format!(
                "transaction {} was not fetched from a spool",
                delivery.id()
            ))
            .non_retryable());
        };
        let (dir, settlement) = (self.dir.clone(), settlement.clone());
        let done = blocking(&self.dir, "cannot settle in", move || match &settlement {
            Settlement::Ack | Settlement::Drop(_) => dir.remove(&claim),
            Settlement::Requeue => dir.requeue(&claim),
            Settlement::DeadLetter(failure) => {
                dir.dead_letter(&claim.file, &claim.id, claim.deliveries, failure)
            }
        })
        .await?;
        Ok(match done {
            Done::Performed => SettleOutcome::Performed,
            Done::Stale => SettleOutcome::Stale,
        })
    }

    async fn drained(&self) -> Result<bool, TaskError> {
        let dir = self.dir.clone();
        blocking(&self.dir, "cannot read", move || dir.is_drained()).await
    }

    async fn dispatch(&self, transactions: &[Transaction]) -> Result<(), TaskError> {
        for tx in transactions {
            if let Err(why) = dir::check_id(tx.id()) {
                return Err(TaskError::business(format!(
                    "transaction id {:?} cannot name a spool file: it {why}",
                    tx.id()
                )));
            }
        }
        let (dir, transactions) = (self.dir.clone(), transactions.to_vec());
        blocking(&self.dir, "cannot write to", move || {
            transactions.iter().try_for_each(|tx| dir.append(tx))
        })
        .await
    }

    async fn health(&self) -> Result<(), TaskError> {
        let dir = self.dir.clone();
        blocking(&self.dir, "cannot reach", move || dir.check()).await
    }
}

/// Runs file I/O off the async workers; an I/O error is a (retryable) system error
/// naming the spool.
async fn blocking<T: Send + 'static>(
    dir: &Dir,
    what: &str,
    op: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, TaskError> {
    let root = dir.root().display().to_string();
    match tokio::task::spawn_blocking(op).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(TaskError::system(format!("spool {root}: {what} it")).with_source(err)),
        Err(err) => Err(TaskError::system(format!(
            "spool {root}: {what} it: panicked: {err}"
        ))),
    }
}
