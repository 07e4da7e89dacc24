//! `memory_kv`: an in-process key-value store shared by every task that lists it.
//!
//! Use it for lookups and de-duplication within one process. It is not durable and not
//! shared between processes.

mod config;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ergon_core::config::{ConfigEnv, ConfigIssue, ServiceKind, decode};
use ergon_core::service::{BuildContext, BuildService, ConfiguredService};
use ergon_core::sync::lock;
use ergon_core::{Service, TaskError};

pub use config::MemoryKvConfig;

/// An in-process key-value store of strings.
///
/// # Examples
///
/// ```
/// use ergon_services::kv::{MemoryKv, MemoryKvConfig};
///
/// let kv = MemoryKv::new(MemoryKvConfig::default());
/// assert!(kv.insert_new("order-7", "seen")?);
/// assert!(!kv.insert_new("order-7", "seen again")?);
/// assert_eq!(kv.get("order-7").as_deref(), Some("seen"));
/// # Ok::<(), ergon_core::TaskError>(())
/// ```
#[derive(Debug)]
pub struct MemoryKv {
    config: MemoryKvConfig,
    entries: Mutex<HashMap<String, String>>,
}

impl MemoryKv {
    /// An empty store.
    pub fn new(config: MemoryKvConfig) -> Self {
        Self {
            config,
            entries: Mutex::default(),
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.lock().get(key).cloned()
    }

    /// Sets `key` to `value`, replacing any previous value.
    ///
    /// # Errors
    ///
    /// A system error when the store is full (`max_entries`) and `key` is new.
    pub fn set(&self, key: &str, value: &str) -> Result<(), TaskError> {
        let mut entries = self.lock();
        if !entries.contains_key(key) {
            self.check_room(entries.len())?;
        }
        entries.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    /// Sets `key` to `value` only if it is absent; returns whether it was inserted.
    ///
    /// # Errors
    ///
    /// A system error when the store is full (`max_entries`).
    pub fn insert_new(&self, key: &str, value: &str) -> Result<bool, TaskError> {
        let mut entries = self.lock();
        if entries.contains_key(key) {
            return Ok(false);
        }
        self.check_room(entries.len())?;
        entries.insert(key.to_owned(), value.to_owned());
        Ok(true)
    }

    /// Removes `key`; returns its value.
    pub fn remove(&self, key: &str) -> Option<String> {
        self.lock().remove(key)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check_room(&self, len: usize) -> Result<(), TaskError> {
        if len >= self.config.max_entries {
            return Err(TaskError::system(format!(
                "memory_kv is full ({} entries); raise max_entries",
                self.config.max_entries
            ))
            .non_retryable());
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, String>> {
        lock(&self.entries)
    }
}

impl Service for MemoryKv {}

/// The `memory_kv` service kind.
#[derive(Debug, Default)]
pub struct MemoryKvKind;

impl ServiceKind for MemoryKvKind {
    fn name(&self) -> &'static str {
        "memory_kv"
    }

    fn configure(
        &self,
        table: serde_json::Value,
        _env: &ConfigEnv,
    ) -> Result<ConfiguredService, ConfigIssue> {
        let config: MemoryKvConfig = decode(table)?;
        config.validate()?;
        Ok(ConfiguredService::new(config))
    }
}

/// A `memory_kv` is built from its config alone.
impl BuildService for MemoryKvConfig {
    type Service = MemoryKv;

    async fn build(&self, _cx: BuildContext) -> Result<Arc<MemoryKv>, TaskError> {
        Ok(Arc::new(MemoryKv::new(self.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_store_refuses_new_keys_but_updates_existing_ones() {
        let kv = MemoryKv::new(MemoryKvConfig { max_entries: 2 });
        kv.set("a", "1").unwrap();
        assert!(kv.insert_new("b", "2").unwrap());
        let err = kv.insert_new("c", "3").unwrap_err();
        assert!(err.to_string().contains("max_entries"), "{err}");
        kv.set("a", "updated").unwrap();
        assert_eq!(kv.get("a").as_deref(), Some("updated"));
        assert_eq!(kv.remove("b").as_deref(), Some("2"));
        assert_eq!(kv.len(), 1);
    }

    #[tokio::test]
    async fn the_kind_rejects_unknown_keys_and_zero_capacity() {
        let env = ConfigEnv {
            name: "seen".into(),
            base_dir: ".".into(),
        };
        let err = MemoryKvKind
            .configure(serde_json::json!({ "max_entrie": 3 }), &env)
            .unwrap_err();
        assert_eq!(err.path, "max_entrie");
        let err = MemoryKvKind
            .configure(serde_json::json!({ "max_entries": 0 }), &env)
            .unwrap_err();
        assert_eq!(err.path, "max_entries");
        let configured = MemoryKvKind.configure(serde_json::json!({}), &env).unwrap();
        let handle = configured.build(BuildContext::new("seen")).await.unwrap();
        let cx = ergon_core::Context::builder("t")
            .service_handle("seen", handle)
            .build();
        assert!(cx.service::<MemoryKv>("seen").is_ok());
    }
}
