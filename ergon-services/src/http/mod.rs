//! `http`: an HTTP/1.1 client service (reqwest, rustls on `ring` for `https://`) whose
//! every call runs behind the service [`crate::stack`].
//!
//! Every request carries the service's `headers` and `auth` ([`client`]). Answers become
//! results so the stack and the step envelope can decide ([`answer`]):
//!
//! | answer                               | result |
//! |--------------------------------------|--------|
//! | 2xx (and 3xx after redirects)        | `Ok(HttpResponse)` |
//! | 429, 503 with `Retry-After`          | retryable system error with the hint ([`TaskError::retry_after`]) |
//! | 5xx, 408, no answer (connect, reset) | retryable system error |
//! | other 4xx                            | business error (never retried) |
//!
//! The JSON helpers ([`Http::get_json`], [`Http::post_json`], [`Http::put_json`],
//! [`HttpResponse::json`]) encode and decode with serde; an answer that does not decode is
//! a business error naming the type and quoting the body.

pub mod answer;
pub mod client;
mod config;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt as _};
use tower::ServiceExt as _;

use ergon_core::config::{ConfigEnv, ConfigIssue, ServiceKind, decode};
use ergon_core::service::{BuildContext, BuildService, ConfiguredService};
use ergon_core::{Service, TaskError};

use crate::stack::{self, BreakerState, CircuitBreakerLayer, Stack};

pub use answer::HttpResponse;
pub use client::{Auth, ClientOptions};
pub use config::HttpConfig;
pub use reqwest::Method;

/// One request: a method, a path appended to `base_url`, headers and a body.
///
/// # Examples
///
/// ```
/// use ergon_services::http::HttpRequest;
///
/// let request = HttpRequest::post("/orders")
///     .header("x-request-id", "o-7")
///     .json(&serde_json::json!({ "id": "o-7" }))
///     .unwrap();
/// assert_eq!(request.path, "/orders");
/// ```
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// Appended to the service's `base_url` (start it with `/`).
    pub path: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<Bytes>,
}

impl HttpRequest {
    /// A request with no headers and no body.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A `GET`.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    /// A `POST`.
    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }

    /// A `PUT`.
    pub fn put(path: impl Into<String>) -> Self {
        Self::new(Method::PUT, path)
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets a JSON body (and its `content-type`).
    ///
    /// # Errors
    ///
    /// A business error naming the type when `body` cannot be written as JSON (a map with
    /// keys that are not strings, say).
    pub fn json<T: serde::Serialize + ?Sized>(self, body: &T) -> Result<Self, TaskError> {
        let bytes = serde_json::to_vec(body).map_err(|err| {
            TaskError::business(format!(
                "{} {}: the body is not JSON ({})",
                self.method,
                self.path,
                std::any::type_name::<T>()
            ))
            .with_source(err)
        })?;
        let mut this = self.header("content-type", "application/json");
        this.body = Some(bytes.into());
        Ok(this)
    }
}

/// The `http` service: reach it with `cx.service::<Http>("NAME")`.
///
/// # Examples
///
/// ```no_run
/// use ergon_core::{Context, TaskError};
/// use ergon_services::http::Http;
///
/// # async fn enrich(cx: &Context) -> Result<(), TaskError> {
/// let rates = cx.service::<Http>("rates")?;
/// let eur: f64 = rates.get_json("/rates/EUR").await?;
/// rates.put_json("/seen/o-7", &serde_json::json!({ "rate": eur })).await?;
/// # let _ = eur; Ok(()) }
/// ```
pub struct Http {
    name: Arc<str>,
    base_url: String,
    health_path: String,
    client: reqwest::Client,
    stack: Stack<HttpRequest, HttpResponse>,
    breaker: Option<CircuitBreakerLayer>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Http {
    /// Builds the service named by `cx` from `config` (no request is made).
    ///
    /// # Errors
    ///
    /// The HTTP client cannot be created.
    pub fn new(config: &HttpConfig, cx: &BuildContext) -> Result<Self, TaskError> {
        let client = config
            .client_options()
            .build(&format!("service `{}`", cx.name()))?;
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        let one_try = OneTry {
            client: client.clone(),
            base_url: base_url.clone().into(),
        };
        let (stack, breaker) = stack::stack(one_try, &config.stack, cx);
        Ok(Self {
            name: cx.name().into(),
            base_url,
            health_path: config.health_path.clone(),
            client,
            stack,
            breaker,
        })
    }

    /// Sends `request` through the stack.
    ///
    /// # Errors
    ///
    /// See the module docs for how answers map to errors; the stack adds timeouts, open
    /// circuits and the final error of its retries.
    pub async fn call(&self, request: HttpRequest) -> Result<HttpResponse, TaskError> {
        self.stack.clone().oneshot(request).await
    }

    /// `GET path`.
    ///
    /// # Errors
    ///
    /// As [`Http::call`].
    pub async fn get(&self, path: &str) -> Result<HttpResponse, TaskError> {
        self.call(HttpRequest::get(path)).await
    }

    /// `GET path`, the answer decoded as JSON into `T`.
    ///
    /// # Errors
    ///
    /// As [`Http::call`], and [`HttpResponse::json`]'s business error.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, TaskError> {
        self.get(path).await?.json()
    }

    /// `POST path` with a JSON body.
    ///
    /// # Errors
    ///
    /// As [`Http::call`] and [`HttpRequest::json`].
    pub async fn post_json<T: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<HttpResponse, TaskError> {
        self.call(HttpRequest::post(path).json(body)?).await
    }

    /// `PUT path` with a JSON body.
    ///
    /// # Errors
    ///
    /// As [`Http::call`] and [`HttpRequest::json`].
    pub async fn put_json<T: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<HttpResponse, TaskError> {
        self.call(HttpRequest::put(path).json(body)?).await
    }

    /// The state of the circuit breaker, when one is configured.
    pub fn breaker_state(&self) -> Option<BreakerState> {
        self.breaker.as_ref().map(CircuitBreakerLayer::state)
    }
}

#[async_trait::async_trait]
impl Service for Http {
    /// Unhealthy while the circuit is open; else `GET health_path` (outside the stack)
    /// must answer below 500.
    async fn health(&self) -> Result<(), TaskError> {
        stack::breaker::closed(self.breaker.as_ref(), &self.name)?;
        let url = format!("{}{}", self.base_url, self.health_path);
        let answer = self
            .client
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|err| {
                TaskError::system(format!("GET {url}")).with_source(err.without_url())
            })?;
        if answer.status().is_server_error() {
            return Err(TaskError::system(format!(
                "GET {url}: HTTP {}",
                answer.status().as_u16()
            )));
        }
        Ok(())
    }
}

/// One try of a request: the innermost service of the stack.
#[derive(Clone)]
struct OneTry {
    client: reqwest::Client,
    base_url: Arc<str>,
}

impl tower::Service<HttpRequest> for OneTry {
    type Response = HttpResponse;
    type Error = TaskError;
    type Future = BoxFuture<'static, Result<HttpResponse, TaskError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), TaskError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let url = format!("{}{}", self.base_url, request.path);
        let mut builder = self.client.request(request.method.clone(), &url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let what = format!("{} {url}", request.method);
        async move { answer::exchange(&what, builder).await }.boxed()
    }
}

/// The `http` service kind.
#[derive(Debug, Default)]
pub struct HttpKind;

impl ServiceKind for HttpKind {
    fn name(&self) -> &'static str {
        "http"
    }

    fn configure(
        &self,
        table: serde_json::Value,
        env: &ConfigEnv,
    ) -> Result<ConfiguredService, ConfigIssue> {
        let mut config: HttpConfig = decode(table)?;
        config.validate()?;
        config.ca_file = config.ca_file.map(|path| env.resolve(&path));
        Ok(ConfiguredService::new(config))
    }
}

/// An `http` service is built from its config: the client and the stack, no request.
impl BuildService for HttpConfig {
    type Service = Http;

    async fn build(&self, cx: BuildContext) -> Result<Arc<Http>, TaskError> {
        Http::new(self, &cx).map(Arc::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_https_service_with_headers_and_auth_builds() {
        let config = HttpConfig {
            base_url: "https://rates.example.invalid/api".into(),
            headers: [("x-client".to_owned(), "ergon".to_owned())].into(),
            auth: Some(Auth::Bearer(ergon_core::config::secret::Secret::new(
                "t0ken",
            ))),
            ..HttpConfig::default()
        };
        config.validate().unwrap();
        let http = Http::new(&config, &BuildContext::new("rates")).unwrap();
        assert!(!format!("{http:?} {config:?}").contains("t0ken"));
    }

    #[test]
    fn the_kind_names_bad_keys() {
        let env = ConfigEnv {
            name: "rates".into(),
            base_dir: ".".into(),
        };
        let issue = |table| HttpKind.configure(table, &env).unwrap_err().path;
        assert_eq!(issue(serde_json::json!({})), "base_url");
        assert_eq!(
            issue(serde_json::json!({ "base_url": "ftp://x" })),
            "base_url"
        );
        assert_eq!(
            issue(serde_json::json!({ "base_url": "https://x", "auth": { "bearer": "" } })),
            "auth.bearer"
        );
        assert_eq!(
            issue(serde_json::json!({ "base_url": "https://x", "auth": { "token": "t" } })),
            "auth"
        );
        assert_eq!(
            issue(
                serde_json::json!({ "base_url": "http://x", "stack": { "retry": { "max_attempts": 0 } } })
            ),
            "stack.retry.max_attempts"
        );
        assert_eq!(
            issue(
                serde_json::json!({ "base_url": "http://x", "stack": { "circuit_breaker": { "failurs": 3 } } })
            ),
            "stack.circuit_breaker.failurs"
        );
    }
}
