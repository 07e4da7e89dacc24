//! # ergon-services
//!
//! Capabilities a task calls, injected by name from `[services.NAME]` tables and reached
//! with `cx.service::<T>("NAME")`. Services own protocol and transport; tasks only call
//! them.
//!
//! | `type`      | service                 | feature     |
//! |-------------|-------------------------|-------------|
//! | `memory_kv` | [`kv::MemoryKv`]        | `memory-kv` |
//!
//! ```toml
//! [services.seen_orders]
//! type = "memory_kv"
//! max_entries = 100000
//!
//! [tasks.orders]
//! services = ["seen_orders"]
//! ```

use std::sync::Arc;

use ergon_core::config::ServiceKind;

#[cfg(feature = "memory-kv")]
pub mod kv;

/// The built-in service kinds enabled by this build's features (the runner registers them).
pub fn kinds() -> Vec<Arc<dyn ServiceKind>> {
    vec![
        #[cfg(feature = "memory-kv")]
        Arc::new(kv::MemoryKvKind),
    ]
}
