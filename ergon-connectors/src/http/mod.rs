//! `type = "http"`: transactions sent to an HTTP endpoint, and polled from one.
//!
//! The client is the `http` service's ([`ergon_services::http::client`]: rustls on `ring`
//! for `https://`, `headers`, `auth` that never shows), and answers mean what they mean
//! to that service ([`ergon_services::http::answer`]): one mapping for both.
//!
//! * **Dispatch**: each transaction is sent with `method` (`POST` or `PUT`) to `url`, its
//!   payload as the body (`content-type: application/json`) and its id in the
//!   idempotency header (`Idempotency-Key`); with `batch = true`, one request per dispatch
//!   call carries a JSON array of the payloads and a key derived from every id. A
//!   dispatch is confirmed when every request got a 2xx (or 3xx) answer. A 4xx is a
//!   business error (never retried); a 5xx, 429 (with its `Retry-After` hint), 408 or no
//!   answer is a retryable system error, and the engine retries the dispatch: requests
//!   that had passed are sent again with the same key, for the endpoint to recognise.
//! * **Fetch** polls `url` with `GET` (plus the cursor and `limit_param` as query
//!   parameters). The answer is a JSON array, or an object holding it at `items`; each
//!   element is one transaction, its exact bytes as payload, its id from `id_field`. One
//!   page is out at a time: the next is polled once every transaction of the current one
//!   is settled, and only then does the cursor advance (see
//!   [`CursorConfig`] for where it comes from).
//! * **Receipts** are the page a transaction came in. **Settle**: `Ack` and `Drop` count
//!   the transaction settled; `DeadLetter` first appends it to the `dead_letter` file,
//!   encoded as the `file` connector writes dead letters; `Requeue` gives it back to its
//!   page, delivered again before the next poll with its delivery count raised.
//! * **Health**: `GET health_url` (default `url`) must answer below 500.
//!
//! # Delivery
//!
//! Dispatch is at least once: a retried dispatch sends again what had passed, with the
//! same idempotency key. Fetch is at least once **only with `cursor_file`**: the cursor is
//! written there once a page is settled, and a restart polls from it, so a page cut off by
//! a crash is polled and delivered again. Without `cursor_file` the cursor lives in
//! memory: a restart begins at `start_cursor` again (pages already settled come again), and
//! a page the endpoint no longer serves cannot be recovered. A poll source cannot tell the
//! endpoint what was settled: an endpoint polled without `cursor` decides alone what each
//! poll returns. A page with no next cursor is the last one: once settled, later fetches
//! return nothing (a finite run ends); after a restart it is delivered again.
//!
//! # Examples
//!
//! ```no_run
//! use ergon_connectors::http::{HttpConnector, HttpConnectorConfig};
//! use ergon_core::{Connector, Transaction};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ergon_core::TaskError> {
//! let partner = HttpConnector::new("partner", &HttpConnectorConfig::new("https://partner.example/orders"))?;
//! partner.dispatch(&[Transaction::new("o-1", r#"{"id":"o-1"}"#)]).await?;
//! # Ok(()) }
//! ```

mod config;
mod dispatch;
mod poll;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use ergon_core::config::{ConfigEnv, ConfigIssue, ConnectorKind, MakeConnector, decode};
use ergon_core::{Connector, Delivery, SettleOutcome, Settlement, TaskError, Transaction};
use ergon_services::http::answer;
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};

pub use config::{CursorConfig, DispatchMethod, HttpConnectorConfig};

use crate::file::dead_letter;
use crate::file::writer::Appender;
use poll::{PageReceipt, Poller};

/// The `http` connector kind (`type = "http"`); see [`HttpConnectorConfig`] for its keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpKind;

impl ConnectorKind for HttpKind {
    fn name(&self) -> &'static str {
        "http"
    }

    fn configure(
        &self,
        table: serde_json::Value,
        env: &ConfigEnv,
    ) -> Result<Arc<dyn MakeConnector>, ConfigIssue> {
        let config: HttpConnectorConfig = decode(table)?;
        config.validate()?;
        Ok(Arc::new(Configured {
            name: env.name.clone(),
            config: config.resolved(env),
            made: std::sync::Mutex::new(None),
        }))
    }
}

/// A validated table: the connector (its client: `ca_file` is read) is made at the first
/// `connect`, and shared by every worker (one page out at a time).
struct Configured {
    name: String,
    config: HttpConnectorConfig,
    made: std::sync::Mutex<Option<HttpConnector>>,
}

#[async_trait]
impl MakeConnector for Configured {
    async fn connect(&self, _worker: usize) -> Result<Arc<dyn Connector>, TaskError> {
        let mut made = ergon_core::sync::lock(&self.made);
        let connector = match &*made {
            Some(connector) => connector.clone(),
            None => made
                .insert(HttpConnector::new(&self.name, &self.config)?)
                .clone(),
        };
        Ok(Arc::new(connector))
    }
}

/// An HTTP endpoint as an output, an input or both; see the [module docs](self).
///
/// Cheap to clone: clones share the client, the page out and the counters.
#[derive(Clone)]
pub struct HttpConnector {
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    url: String,
    health_url: String,
    method: reqwest::Method,
    batch: bool,
    idempotency_header: HeaderName,
    client: reqwest::Client,
    poller: Poller,
    dead_letters: Arc<Appender>,
    acked: AtomicU64,
    dead_lettered: AtomicU64,
}

impl std::fmt::Debug for HttpConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConnector")
            .field("name", &self.shared.name)
            .field("url", &self.shared.url)
            .finish_non_exhaustive()
    }
}

impl HttpConnector {
    /// The connector named `name` for `config` (paths already resolved; validated here).
    /// No request is made.
    ///
    /// # Errors
    ///
    /// A non-retryable system error for an invalid config or a client that cannot be
    /// built (an unreadable `ca_file`).
    pub fn new(name: &str, config: &HttpConnectorConfig) -> Result<Self, TaskError> {
        config.validate().map_err(|issue| {
            TaskError::system(format!("connector `{name}`: {issue}")).non_retryable()
        })?;
        let client = config
            .client_options()
            .build(&format!("connector `{name}`"))?;
        let method = match config.method {
            DispatchMethod::Post => reqwest::Method::POST,
            DispatchMethod::Put => reqwest::Method::PUT,
        };
        let dead_letter = config
            .dead_letter
            .clone()
            .unwrap_or_else(|| format!("{name}.dead.jsonl").into());
        Ok(Self {
            shared: Arc::new(Shared {
                name: name.to_owned(),
                url: config.url.clone(),
                health_url: config
                    .health_url
                    .clone()
                    .unwrap_or_else(|| config.url.clone()),
                method,
                batch: config.batch,
                idempotency_header: HeaderName::from_bytes(config.idempotency_header.as_bytes())
                    .expect("validated"),
                client,
                poller: Poller::new(name, config)?,
                dead_letters: Arc::new(Appender::new(dead_letter)),
                acked: AtomicU64::new(0),
                dead_lettered: AtomicU64::new(0),
            }),
        })
    }

    /// Polled transactions acked so far.
    pub fn acked(&self) -> u64 {
        self.shared.acked.load(Relaxed)
    }

    /// Polled transactions written to the dead-letter file so far.
    pub fn dead_lettered(&self) -> u64 {
        self.shared.dead_lettered.load(Relaxed)
    }

    /// One dispatch request: `body` with idempotency key `key`.
    async fn send(&self, body: Bytes, key: &str, what: String) -> Result<(), TaskError> {
        let shared = &self.shared;
        let mut request = shared
            .client
            .request(shared.method.clone(), &shared.url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body);
        match HeaderValue::from_str(key) {
            Ok(value) => request = request.header(shared.idempotency_header.clone(), value),
            Err(_) => {
                return Err(TaskError::business(format!(
                    "{what}: the id cannot be sent in header {}",
                    shared.idempotency_header
                )));
            }
        }
        answer::exchange(&what, request).await.map(drop)
    }
}

#[async_trait]
impl Connector for HttpConnector {
    async fn fetch(&self, max: usize) -> Result<Vec<Delivery>, TaskError> {
        self.shared.poller.fetch(&self.shared.client, max).await
    }

    async fn settle(
        &self,
        delivery: &Delivery,
        settlement: &Settlement,
    ) -> Result<SettleOutcome, TaskError> {
        let shared = &self.shared;
        let Some(receipt) = delivery.receipt::<PageReceipt>() else {
            return Err(TaskError::system(format!(
                "connector `{}`: transaction {} was not fetched by this connector",
                shared.name,
                delivery.id()
            ))
            .non_retryable());
        };
        match settlement {
            Settlement::Requeue => return Ok(shared.poller.requeue(receipt, delivery)),
            Settlement::Ack => {
                shared.acked.fetch_add(1, Relaxed);
            }
            Settlement::Drop(_) => {}
            Settlement::DeadLetter(failure) => {
                let (transaction, failure) = (delivery.transaction().clone(), failure.clone());
                let appender = shared.dead_letters.clone();
                let failed_at = SystemTime::now();
                tokio::task::spawn_blocking(move || {
                    appender.append(|buf| {
                        dead_letter::encode_record(buf, &transaction, &failure, failed_at)
                    })
                })
                .await
                .map_err(|err| {
                    TaskError::system("dead-letter I/O on the blocking pool failed")
                        .with_source(err)
                })??;
                shared.dead_lettered.fetch_add(1, Relaxed);
            }
        }
        Ok(shared.poller.settled(receipt).await)
    }

    /// Drained when no page is out and the last poll found nothing (or the last page was
    /// settled).
    async fn drained(&self) -> Result<bool, TaskError> {
        Ok(self.shared.poller.drained())
    }

    async fn dispatch(&self, transactions: &[Transaction]) -> Result<(), TaskError> {
        let shared = &self.shared;
        if transactions.is_empty() {
            return Ok(());
        }
        if shared.batch {
            let body = dispatch::batch_body(&shared.name, transactions)?;
            let what = format!(
                "connector `{}`: {} {} ({} transactions from {})",
                shared.name,
                shared.method,
                shared.url,
                transactions.len(),
                transactions[0].id()
            );
            return self
                .send(body, &dispatch::batch_key(transactions), what)
                .await;
        }
        let sends = transactions.iter().map(|tx| {
            let what = format!(
                "connector `{}`: {} {} (transaction {})",
                shared.name,
                shared.method,
                shared.url,
                tx.id()
            );
            self.send(tx.payload().clone(), tx.id(), what)
        });
        let results = futures_util::future::join_all(sends).await;
        match dispatch::worst(results.into_iter().filter_map(Result::err)) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    async fn health(&self) -> Result<(), TaskError> {
        let shared = &self.shared;
        let what = format!("connector `{}`: GET {}", shared.name, shared.health_url);
        let answer = shared
            .client
            .get(&shared.health_url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|err| TaskError::system(what.clone()).with_source(err.without_url()))?;
        if answer.status().is_server_error() {
            return Err(TaskError::system(format!(
                "{what}: HTTP {}",
                answer.status().as_u16()
            )));
        }
        Ok(())
    }

    /// Asks the OS to put the dead letters on disk.
    async fn close(&self) -> Result<(), TaskError> {
        let appender = self.shared.dead_letters.clone();
        tokio::task::spawn_blocking(move || appender.sync())
            .await
            .map_err(|err| TaskError::system("dead-letter sync failed").with_source(err))?
    }
}

#[async_trait]
impl MakeConnector for HttpConnector {
    async fn connect(&self, _worker: usize) -> Result<Arc<dyn Connector>, TaskError> {
        Ok(Arc::new(self.clone()))
    }
}
