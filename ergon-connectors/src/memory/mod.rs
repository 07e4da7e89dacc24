//! `type = "memory"`: an in-process queue shared by every task and worker that names it.
//!
//! The queue is [`ergon_core::memory::MemoryConnector`]; this module makes it a kind the
//! TOML can name. [`MemoryKind::configure`](ergon_core::config::ConnectorKind::configure)
//! creates one queue per `[connectors.NAME]`, and every
//! [`connect`](ergon_core::config::MakeConnector::connect) returns that same queue, so
//! one task can dispatch into it and another consume from it within a process.
//!
//! # Examples
//!
//! ```
//! use ergon_connectors::memory::MemoryKind;
//! use ergon_core::config::{ConfigEnv, ConnectorKind};
//! use ergon_core::Transaction;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let env = ConfigEnv { name: "handoff".into(), base_dir: ".".into() };
//! let make = MemoryKind.configure(serde_json::json!({}), &env)?;
//! let producer = make.connect(0).await?;
//! let consumer = make.connect(1).await?;
//! producer.dispatch(&[Transaction::new("a", "{}")]).await?;
//! assert_eq!(consumer.fetch(10).await?.len(), 1);
//! # Ok(()) }
//! ```

mod config;

use std::sync::Arc;

use async_trait::async_trait;
use ergon_core::config::{ConfigEnv, ConfigIssue, ConnectorKind, MakeConnector, decode};
use ergon_core::memory::MemoryConnector;
use ergon_core::{Connector, TaskError};

pub use config::MemoryConfig;

/// The `memory` connector kind (`type = "memory"`).
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryKind;

impl ConnectorKind for MemoryKind {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn configure(
        &self,
        table: serde_json::Value,
        _env: &ConfigEnv,
    ) -> Result<Arc<dyn MakeConnector>, ConfigIssue> {
        let config: MemoryConfig = decode(table)?;
        config.validate()?;
        Ok(Arc::new(SharedQueue(Arc::new(MemoryConnector::new()))))
    }
}

/// The one queue of a `[connectors.NAME]`, handed to each of its workers.
struct SharedQueue(Arc<MemoryConnector>);

#[async_trait]
impl MakeConnector for SharedQueue {
    async fn connect(&self, _worker: usize) -> Result<Arc<dyn Connector>, TaskError> {
        Ok(self.0.clone())
    }

    /// The shared queue fetches what is pushed to it.
    fn takes_dispatches(&self) -> bool {
        true
    }
}
