//! The `http` service and its stack against a real HTTP/1.1 server on loopback, scripted
//! per request and counting what it receives: every count below is what reached the wire.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::time::Instant;

use ergon_core::envelope::run_fn;
use ergon_core::policy::RetryPolicy;
use ergon_core::service::{BuildContext, ServiceTelemetry};
use ergon_core::telemetry::names;
use ergon_core::{Category, Service as _, TaskError};
use ergon_services::http::{Http, HttpConfig};
use ergon_services::stack::{BreakerState, CircuitBreaker, RateLimit, StackConfig, StackRetry};

/// One scripted answer.
#[derive(Clone)]
struct Reply {
    status: u16,
    retry_after: Option<&'static str>,
    delay: Duration,
}

fn reply(status: u16) -> Reply {
    Reply {
        status,
        retry_after: None,
        delay: Duration::ZERO,
    }
}

fn busy(retry_after: &'static str) -> Reply {
    Reply {
        retry_after: Some(retry_after),
        ..reply(429)
    }
}

fn slow(status: u16, delay_ms: u64) -> Reply {
    Reply {
        delay: Duration::from_millis(delay_ms),
        ..reply(status)
    }
}

/// What the server saw.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    arrivals: Mutex<Vec<Instant>>,
}

impl Seen {
    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Serves request n (0-based, in arrival order) with `script[n]`, the last entry once the
/// script has run out. Every connection carries one request (`connection: close`).
async fn server(script: Vec<Reply>) -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Seen::default());
    let counting = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let (seen, script) = (counting.clone(), script.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let n = seen.requests.fetch_add(1, Ordering::SeqCst);
                seen.arrivals.lock().unwrap().push(Instant::now());
                let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
                let reply = script[n.min(script.len() - 1)].clone();
                tokio::time::sleep(reply.delay).await;
                let body = format!("answer {n}");
                let extra = reply
                    .retry_after
                    .map(|v| format!("retry-after: {v}\r\n"))
                    .unwrap_or_default();
                let text = format!(
                    "HTTP/1.1 {} Scripted\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
                    reply.status,
                    body.len()
                );
                seen.in_flight.fetch_sub(1, Ordering::SeqCst);
                let _ = socket.write_all(text.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, seen)
}

fn http(url: &str, stack: StackConfig, telemetry: &ServiceTelemetry) -> Arc<Http> {
    let config = HttpConfig {
        base_url: url.to_owned(),
        stack,
        ..HttpConfig::default()
    };
    let cx = BuildContext::new("api").with_telemetry(telemetry.clone());
    Arc::new(Http::new(&config, &cx).unwrap())
}

fn retrying(max_attempts: u32) -> StackConfig {
    StackConfig {
        retry: StackRetry {
            max_attempts,
            backoff: Duration::from_millis(10),
            ..StackRetry::default()
        },
        ..StackConfig::default()
    }
}

fn step_policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        backoff: Duration::from_millis(1),
        ..RetryPolicy::default()
    }
}

#[tokio::test]
async fn the_retry_layer_honours_retry_after_then_succeeds() {
    let (url, seen) = server(vec![busy("1"), reply(500), reply(200)]).await;
    let api = http(&url, retrying(3), &ServiceTelemetry::default());
    let started = Instant::now();
    let answer = api.get("/rates").await.unwrap();
    let took = started.elapsed();
    assert_eq!(answer.status, 200);
    assert_eq!(&answer.body[..], b"answer 2");
    assert_eq!(seen.requests(), 3, "429, 500, then 200");
    assert!(
        took >= Duration::from_secs(1),
        "Retry-After: 1 honoured: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn a_stack_that_retries_is_the_only_retry_owner() {
    let (url, seen) = server(vec![reply(500)]).await;
    let api = http(&url, retrying(3), &ServiceTelemetry::default());
    // A step allowing 3 attempts calls a service allowing 3 tries: 3 requests, not 9.
    let outcome = run_fn("process", &step_policy(3), |_| {
        let api = api.clone();
        async move { api.get("/rates").await }
    })
    .await;
    let err = outcome.result.unwrap_err();
    assert_eq!(outcome.attempts, 1, "the step is not retried on top: {err}");
    assert_eq!(seen.requests(), 3);
    assert!(!err.is_retryable());
    assert!(
        err.chain().to_string().contains("gave up after 3 tries"),
        "{}",
        err.chain()
    );
}

#[tokio::test]
async fn without_stack_retries_the_step_envelope_retries_and_honours_the_hint() {
    let (url, seen) = server(vec![busy("0.3"), reply(200)]).await;
    let api = http(&url, StackConfig::default(), &ServiceTelemetry::default());
    let started = Instant::now();
    let outcome = run_fn("process", &step_policy(3), |_| {
        let api = api.clone();
        async move { api.get("/rates").await }
    })
    .await;
    assert!(outcome.result.is_ok());
    assert_eq!((outcome.attempts, seen.requests()), (2, 2));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "the envelope waited for the hint: {took:?}"
    );
}

#[tokio::test]
async fn a_retry_that_would_end_past_the_step_deadline_is_not_started() {
    let (url, seen) = server(vec![busy("1"), reply(200)]).await;
    let api = http(&url, retrying(3), &ServiceTelemetry::default());
    let started = Instant::now();
    let outcome = run_fn(
        "process",
        &RetryPolicy::once(Duration::from_millis(400)),
        |_| {
            let api = api.clone();
            async move { api.get("/rates").await }
        },
    )
    .await;
    let err = outcome.result.unwrap_err();
    assert_eq!(seen.requests(), 1);
    assert!(!err.is_retryable(), "{err}");
    assert!(
        err.to_string().contains("no time left in the step attempt"),
        "{err}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "gave up at once"
    );
}

#[tokio::test]
async fn slow_answers_time_out_per_try_and_never_outlive_the_attempt() {
    let (url, seen) = server(vec![slow(200, 500)]).await;
    let per_try = StackConfig {
        timeout: Duration::from_millis(100),
        ..retrying(2)
    };
    let api = http(&url, per_try, &ServiceTelemetry::default());
    let started = Instant::now();
    let err = api.get("/slow").await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(seen.requests(), 2, "two tries, each cut at 100ms");
    assert!(
        err.chain().to_string().contains("timed out after 100ms"),
        "{}",
        err.chain()
    );
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(450),
        "{took:?}"
    );

    // One try of up to 10 s inside a step attempt of 150 ms ends with the attempt.
    let api = http(&url, StackConfig::default(), &ServiceTelemetry::default());
    let started = Instant::now();
    let outcome = run_fn(
        "process",
        &RetryPolicy::once(Duration::from_millis(150)),
        |_| {
            let api = api.clone();
            async move { api.get("/slow").await }
        },
    )
    .await;
    assert_eq!(outcome.result.unwrap_err().category(), Category::Timeout);
    assert_eq!(seen.requests(), 3);
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn business_answers_are_neither_retried_nor_counted_by_the_breaker() {
    let (url, seen) = server(vec![reply(404)]).await;
    let stack = StackConfig {
        circuit_breaker: Some(CircuitBreaker {
            failures: 1,
            open_for: Duration::from_secs(30),
        }),
        ..retrying(3)
    };
    let api = http(&url, stack, &ServiceTelemetry::default());
    for _ in 0..3 {
        let err = api.get("/missing").await.unwrap_err();
        assert_eq!(err.category(), Category::Business, "{err}");
    }
    assert_eq!(seen.requests(), 3, "one try per call");
    assert_eq!(api.breaker_state(), Some(BreakerState::Closed));
}

#[tokio::test]
async fn the_rate_limit_spaces_tries_for_every_caller() {
    let (url, seen) = server(vec![reply(200)]).await;
    let stack = StackConfig {
        rate_limit: Some(RateLimit {
            requests: 2,
            per: Duration::from_millis(200),
        }),
        ..StackConfig::default()
    };
    let api = http(&url, stack, &ServiceTelemetry::default());
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.get("/").await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(seen.requests(), 6);
    let mut arrivals = seen.arrivals.lock().unwrap().clone();
    arrivals.sort();
    let at = |i: usize| arrivals[i] - arrivals[0];
    assert!(
        at(1) < Duration::from_millis(100),
        "two in the first window: {:?}",
        at(1)
    );
    assert!(
        at(2) >= Duration::from_millis(180),
        "third waits a window: {:?}",
        at(2)
    );
    assert!(
        at(4) >= Duration::from_millis(380),
        "fifth waits two: {:?}",
        at(4)
    );
}

#[tokio::test]
async fn the_concurrency_limit_caps_tries_in_flight() {
    let (url, seen) = server(vec![slow(200, 100)]).await;
    let stack = StackConfig {
        concurrency: Some(2),
        ..StackConfig::default()
    };
    let api = http(&url, stack, &ServiceTelemetry::default());
    let started = Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.get("/").await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(seen.requests(), 6);
    assert_eq!(seen.max_in_flight.load(Ordering::SeqCst), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "three rounds of two"
    );
}

#[tokio::test]
async fn the_circuit_breaker_opens_rejects_probes_and_closes() {
    let (url, seen) = server(vec![
        reply(500),
        reply(500),
        reply(500),
        slow(200, 150),
        reply(200),
    ])
    .await;
    let open_for = Duration::from_millis(300);
    let stack = StackConfig {
        circuit_breaker: Some(CircuitBreaker {
            failures: 3,
            open_for,
        }),
        ..StackConfig::default()
    };
    let telemetry = ServiceTelemetry::default();
    let api = http(&url, stack, &telemetry);
    let metric = |name: &str| {
        let metrics = telemetry.metrics();
        let found = metrics.iter().find(|m| m.name == name).expect(name);
        assert_eq!(&*found.service, "api");
        found.value()
    };
    assert_eq!(metric(names::CIRCUIT_BREAKER_STATE), 0);

    for _ in 0..3 {
        assert!(api.get("/").await.unwrap_err().is_retryable());
    }
    assert_eq!(seen.requests(), 3);
    assert_eq!(api.breaker_state(), Some(BreakerState::Open));
    assert_eq!(metric(names::CIRCUIT_BREAKER_STATE), 1);
    assert!(api.health().await.is_err(), "an open circuit is unhealthy");

    let rejected = api.get("/").await.unwrap_err();
    assert_eq!(seen.requests(), 3, "rejected without a request");
    assert!(
        rejected.to_string().contains("circuit breaker open"),
        "{rejected}"
    );
    let hint = rejected.retry_after().expect("the time left");
    assert!(
        hint <= open_for && hint > Duration::from_millis(200),
        "{hint:?}"
    );
    assert_eq!(metric(names::CIRCUIT_BREAKER_REJECTED), 1);

    tokio::time::sleep(open_for + Duration::from_millis(20)).await;
    let probing = api.clone();
    let probe = tokio::spawn(async move { probing.get("/").await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(api.breaker_state(), Some(BreakerState::HalfOpen));
    assert_eq!(metric(names::CIRCUIT_BREAKER_STATE), 2);
    let during = api.get("/").await.unwrap_err();
    assert!(
        during.to_string().contains("probe is under way"),
        "{during}"
    );
    assert_eq!(metric(names::CIRCUIT_BREAKER_REJECTED), 2);

    probe.await.unwrap().unwrap();
    assert_eq!(seen.requests(), 4, "one probe");
    assert_eq!(api.breaker_state(), Some(BreakerState::Closed));
    assert_eq!(metric(names::CIRCUIT_BREAKER_STATE), 0);
    api.get("/").await.unwrap();
    assert_eq!(seen.requests(), 5);
    api.health().await.unwrap();
    assert_eq!(seen.requests(), 6, "the health check asked the server");
}

#[tokio::test]
async fn the_retry_layer_waits_out_an_open_circuit_within_its_cap() {
    // Failures open the circuit; the retry layer sees the rejection's hint and waits for
    // the probe instead of hammering.
    let (url, seen) = server(vec![reply(500), reply(500), reply(200)]).await;
    let stack = StackConfig {
        circuit_breaker: Some(CircuitBreaker {
            failures: 2,
            open_for: Duration::from_millis(200),
        }),
        ..retrying(4)
    };
    let api = http(&url, stack, &ServiceTelemetry::default());
    let started = Instant::now();
    api.get("/").await.unwrap();
    assert_eq!(seen.requests(), 3, "500, 500, (rejected), probe 200");
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_retryable_system_error_and_unhealthy() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let api = http(&url, StackConfig::default(), &ServiceTelemetry::default());
    let err: TaskError = api.get("/").await.unwrap_err();
    assert_eq!(err.category(), Category::System);
    assert!(err.is_retryable());
    assert!(api.health().await.is_err());
}
