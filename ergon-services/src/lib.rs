//! # ergon-services
//!
//! Capabilities a task calls, injected by name from `[services.NAME]` tables and reached
//! with `cx.service::<T>("NAME")`. Services own protocol and transport; tasks only call
//! them. Each is built asynchronously before the run's workers start, checked by
//! `validate --connect` and `/health/ready`, and closed at shutdown.
//!
//! | `type`      | service                 | feature     |
//! |-------------|-------------------------|-------------|
//! | `memory_kv` | [`kv::MemoryKv`]        | `memory-kv` |
//! | `http`      | [`http::Http`]          | `http`      |
//! | `llm`       | [`llm::Llm`]            | `llm`       |
//! | `postgres`  | [`postgres::Postgres`]  | `postgres`  |
//!
//! Services that call out put each call behind a [`stack`] of tower layers (deadline,
//! retry, circuit breaker, rate limit, concurrency limit, timeout), in one fixed order,
//! configured in the service's `stack` table.
//!
//! ```toml
//! [services.seen_orders]
//! type = "memory_kv"
//! max_entries = 100000
//!
//! [services.rates]
//! type = "http"
//! base_url = "http://rates.internal:8080"
//! stack = { timeout = "2s", circuit_breaker = { failures = 5, open_for = "30s" } }
//!
//! [tasks.orders]
//! services = ["seen_orders", "rates"]
//! ```

use std::sync::Arc;

use ergon_core::config::ServiceKind;

#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "memory-kv")]
pub mod kv;
#[cfg(feature = "llm")]
pub mod llm;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod stack;

/// The built-in service kinds enabled by this build's features (the runner registers them).
pub fn kinds() -> Vec<Arc<dyn ServiceKind>> {
    vec![
        #[cfg(feature = "memory-kv")]
        Arc::new(kv::MemoryKvKind),
        #[cfg(feature = "http")]
        Arc::new(http::HttpKind),
        #[cfg(feature = "llm")]
        Arc::new(llm::LlmKind),
        #[cfg(feature = "postgres")]
        Arc::new(postgres::PostgresKind),
    ]
}
