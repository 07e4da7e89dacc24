//! What an HTTP exchange means for the caller: the one mapping from answers (and failures
//! to get one) to results that every HTTP caller of ergon shares (the `http` and `llm`
//! services, the `http` connector).
//!
//! | answer                               | result |
//! |--------------------------------------|--------|
//! | 1xx–3xx (3xx after redirects)        | `Ok(HttpResponse)` |
//! | 429, 503 with `Retry-After`          | retryable system error with the hint ([`TaskError::retry_after`]) |
//! | 5xx, 408, no answer (connect, reset) | retryable system error |
//! | other 4xx                            | business error (never retried) |
//!
//! `Retry-After` is read in seconds (`"2"`; fractions such as `"0.5"` are accepted); the
//! HTTP-date form is ignored. Error messages name the request (`POST http://host/path`)
//! and quote the start of the answer's body; they never carry request headers, so
//! credentials stay out of them.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;

use ergon_core::TaskError;

/// A successful answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code (below 400).
    pub status: u16,
    /// The answer's headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// The body decoded as JSON.
    ///
    /// # Errors
    ///
    /// A business error naming the target type and quoting the start of the body when it
    /// does not decode.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, TaskError> {
        decode_json(&self.body)
    }
}

/// `bytes` decoded as JSON into `T`.
///
/// # Errors
///
/// A business error naming `T` and quoting the first 200 bytes, with serde's error as its
/// source.
pub fn decode_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, TaskError> {
    serde_json::from_slice(bytes).map_err(|err| {
        TaskError::business(format!(
            "the answer is not a {}: {}",
            std::any::type_name::<T>(),
            excerpt(bytes)
        ))
        .with_source(err)
    })
}

/// Sends `request` and maps what comes back (see the module docs); `what` names the
/// request in errors (`"POST http://host/path"`).
///
/// # Errors
///
/// A retryable system error when no answer came or its body could not be read, else what
/// [`classify`] makes of the answer.
pub async fn exchange(
    what: &str,
    request: reqwest::RequestBuilder,
) -> Result<HttpResponse, TaskError> {
    let answer = request
        .send()
        .await
        .map_err(|err| TaskError::system(what.to_owned()).with_source(err.without_url()))?;
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    let body = answer.bytes().await.map_err(|err| {
        TaskError::system(format!("{what}: reading the answer")).with_source(err.without_url())
    })?;
    classify(what, status, headers, body)
}

/// An answer as a result (see the module docs).
///
/// # Errors
///
/// A status of 400 or more, as the table in the module docs says.
pub fn classify(
    what: &str,
    status: u16,
    headers: HeaderMap,
    body: Bytes,
) -> Result<HttpResponse, TaskError> {
    if status < 400 {
        return Ok(HttpResponse {
            status,
            headers,
            body,
        });
    }
    let message = format!("{what}: HTTP {status} {}", excerpt(&body));
    if status == 429 || status == 408 || status >= 500 {
        let err = TaskError::system(message);
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        Err(match retry_after {
            Some(wait) => err.with_retry_after(wait),
            None => err,
        })
    } else {
        Err(TaskError::business(message))
    }
}

/// The first 200 bytes of `body`, as text.
pub fn excerpt(body: &[u8]) -> String {
    let end = body.len().min(200);
    let mut text = String::from_utf8_lossy(&body[..end]).into_owned();
    if body.len() > end {
        text.push('…');
    }
    text
}

/// `Retry-After` in seconds, fractions accepted.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(
        status: u16,
        retry_after: Option<&str>,
        body: &'static [u8],
    ) -> Result<HttpResponse, TaskError> {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert(reqwest::header::RETRY_AFTER, value.parse().unwrap());
        }
        classify("GET x", status, headers, Bytes::from_static(body))
    }

    #[test]
    fn answers_map_to_categories_and_hints() {
        let err = answer(429, Some("1"), b"").unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
        assert!(answer(502, None, b"").unwrap_err().is_retryable());
        assert!(answer(408, None, b"").unwrap_err().is_retryable());
        let err = answer(404, None, b"no such rate").unwrap_err();
        assert_eq!(err.category(), ergon_core::Category::Business);
        assert!(err.to_string().contains("HTTP 404 no such rate"), "{err}");
        assert_eq!(answer(204, None, b"").unwrap().status, 204);
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 0.25 "),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn a_body_that_does_not_decode_is_named_and_quoted() {
        let err = decode_json::<Vec<u32>>(b"{\"oops\"").unwrap_err();
        assert_eq!(err.category(), ergon_core::Category::Business);
        let text = err.to_string();
        assert!(
            text.contains("Vec<u32>") && text.contains("{\"oops\""),
            "{text}"
        );
        assert!(excerpt(&[b'a'; 300]).ends_with('…'));
    }
}
