//! `http`: an HTTP/1.1 client service (reqwest) whose every call runs behind the service
//! [`crate::stack`].
//!
//! Answers become results so the stack and the step envelope can decide:
//!
//! | answer                               | result |
//! |--------------------------------------|--------|
//! | 2xx (and 3xx after redirects)        | `Ok(HttpResponse)` |
//! | 429, 503 with `Retry-After`          | retryable system error with the hint ([`TaskError::retry_after`]) |
//! | 5xx, 408, no answer (connect, reset) | retryable system error |
//! | other 4xx                            | business error (never retried) |
//!
//! `Retry-After` is read in seconds (`"2"`; fractions such as `"0.5"` are accepted); the
//! HTTP-date form is ignored.

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
///     .json(&serde_json::json!({ "id": "o-7" }));
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

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets a JSON body (and its `content-type`).
    #[must_use]
    pub fn json<T: serde::Serialize + ?Sized>(self, body: &T) -> Self {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let mut this = self.header("content-type", "application/json");
        this.body = Some(bytes.into());
        this
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code (2xx).
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// The body decoded as JSON.
    ///
    /// # Errors
    ///
    /// A business error naming the target type when the body does not decode.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, TaskError> {
        serde_json::from_slice(&self.body).map_err(|err| {
            TaskError::business(format!(
                "the answer is not a {}",
                std::any::type_name::<T>()
            ))
            .with_source(err)
        })
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
/// let eur: f64 = rates.get("/rates/EUR").await?.json()?;
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
        let client = reqwest::Client::builder().build().map_err(|err| {
            TaskError::system("cannot create the HTTP client")
                .with_source(err)
                .non_retryable()
        })?;
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

    /// `POST path` with a JSON body.
    ///
    /// # Errors
    ///
    /// As [`Http::call`].
    pub async fn post_json<T: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<HttpResponse, TaskError> {
        self.call(HttpRequest::post(path).json(body)).await
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
        if let Some(left) = self
            .breaker
            .as_ref()
            .and_then(CircuitBreakerLayer::open_for)
        {
            return Err(TaskError::system(format!(
                "service `{}`: circuit breaker open for {left:?} more",
                self.name
            )));
        }
        let url = format!("{}{}", self.base_url, self.health_path);
        let answer = self
            .client
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|err| TaskError::system(format!("GET {url}")).with_source(err))?;
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
        async move {
            let answer = builder
                .send()
                .await
                .map_err(|err| TaskError::system(what.clone()).with_source(err))?;
            let status = answer.status().as_u16();
            let retry_after = answer
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let body = answer.bytes().await.map_err(|err| {
                TaskError::system(format!("{what}: reading the answer")).with_source(err)
            })?;
            classify(&what, status, retry_after, body)
        }
        .boxed()
    }
}

/// An answer as a result (see the module docs).
fn classify(
    what: &str,
    status: u16,
    retry_after: Option<Duration>,
    body: Bytes,
) -> Result<HttpResponse, TaskError> {
    if status < 400 {
        return Ok(HttpResponse { status, body });
    }
    let excerpt = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    let message = format!("{what}: HTTP {status} {excerpt}");
    if status == 429 || status == 408 || status >= 500 {
        let err = TaskError::system(message);
        Err(match retry_after {
            Some(wait) => err.with_retry_after(wait),
            None => err,
        })
    } else {
        Err(TaskError::business(message))
    }
}

/// `Retry-After` in seconds, fractions accepted.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
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
        _env: &ConfigEnv,
    ) -> Result<ConfiguredService, ConfigIssue> {
        let config: HttpConfig = decode(table)?;
        config.validate()?;
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

    #[test]
    fn answers_map_to_categories_and_hints() {
        let err = classify("GET x", 429, Some(Duration::from_secs(1)), Bytes::new()).unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
        let err = classify("GET x", 502, None, Bytes::new()).unwrap_err();
        assert!(err.is_retryable());
        let err = classify("GET x", 404, None, Bytes::from_static(b"no such rate")).unwrap_err();
        assert_eq!(err.category(), ergon_core::Category::Business);
        assert!(err.to_string().contains("HTTP 404 no such rate"), "{err}");
        assert_eq!(
            classify("GET x", 204, None, Bytes::new()).unwrap().status,
            204
        );
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 0.25 "),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
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
            issue(serde_json::json!({ "base_url": "https://x" })),
            "base_url"
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
