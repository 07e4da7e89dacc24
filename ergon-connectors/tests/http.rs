//! The `http` connector against an HTTP/1.1 server on loopback (and one over TLS), which
//! records every request and answers as each test scripts it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;

use ergon_connectors::http::{
    CursorConfig, DispatchMethod, HttpConnector, HttpConnectorConfig, HttpKind,
};
use ergon_core::config::secret::Secret;
use ergon_core::config::{ConfigEnv, ConnectorKind as _};
use ergon_core::{Category, Connector, Failure, SettleOutcome, Settlement, Transaction};
use ergon_services::http::Auth;

/// A request as the server saw it.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: status, extra header lines, body.
type Answer = (u16, String, String);

type Handler = Arc<dyn Fn(usize, &Request) -> Answer + Send + Sync>;

/// The server's record of requests.
type Log = Arc<Mutex<Vec<Request>>>;

/// Serves every request with `handler(n, request)` (n: 0-based arrival order), keeping
/// connections alive. Returns the base URL (`http://127.0.0.1:PORT`) and the log.
async fn server(
    handler: impl Fn(usize, &Request) -> Answer + Send + Sync + 'static,
) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log: Log = Arc::default();
    let (handler, seen): (Handler, Log) = (Arc::new(handler), log.clone());
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::spawn(serve(socket, handler.clone(), seen.clone()));
        }
    });
    (url, log)
}

async fn serve(mut socket: impl AsyncRead + AsyncWrite + Unpin, handler: Handler, log: Log) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.lines();
        let mut start = lines.next().unwrap_or_default().split(' ');
        let (method, target) = (
            start.next().unwrap_or_default(),
            start.next().unwrap_or_default(),
        );
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let request = Request {
            method: method.to_owned(),
            target: target.to_owned(),
            headers,
            body: buf[head_end..head_end + length].to_vec(),
        };
        buf.drain(..head_end + length);
        let (status, extra, body) = {
            let mut log = log.lock().unwrap();
            let answer = handler(log.len(), &request);
            log.push(request);
            answer
        };
        let text = format!(
            "HTTP/1.1 {status} Scripted\r\ncontent-length: {}\r\n{extra}\r\n{body}",
            body.len()
        );
        if socket.write_all(text.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn ok(body: impl Into<String>) -> Answer {
    (200, String::new(), body.into())
}

fn connector(config: HttpConnectorConfig) -> HttpConnector {
    HttpConnector::new("partner", &config).unwrap()
}

fn txs(ids: &[&str]) -> Vec<Transaction> {
    ids.iter()
        .map(|id| Transaction::new(*id, format!(r#"{{"id":"{id}","amount": 1.50}}"#)))
        .collect()
}

#[tokio::test]
async fn each_transaction_is_posted_with_its_id_as_idempotency_key() {
    let (url, log) = server(|_, _| ok("")).await;
    let partner = connector(HttpConnectorConfig {
        headers: [("x-client".to_owned(), "ergon".to_owned())].into(),
        auth: Some(Auth::Bearer(Secret::new("t0ken"))),
        ..HttpConnectorConfig::new(format!("{url}/orders"))
    });
    partner.dispatch(&txs(&["o-1", "o-2"])).await.unwrap();

    let mut log = log.lock().unwrap().clone();
    log.sort_by_key(|r| r.header("idempotency-key").map(str::to_owned));
    assert_eq!(log.len(), 2);
    for (request, id) in log.iter().zip(["o-1", "o-2"]) {
        assert_eq!(
            (request.method.as_str(), request.target.as_str()),
            ("POST", "/orders")
        );
        assert_eq!(request.header("Idempotency-Key"), Some(id));
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("x-client"), Some("ergon"));
        assert_eq!(request.header("authorization"), Some("Bearer t0ken"));
        assert_eq!(
            request.body,
            format!(r#"{{"id":"{id}","amount": 1.50}}"#).into_bytes(),
            "the payload byte for byte"
        );
    }
    assert!(!format!("{partner:?}").contains("t0ken"));
}

#[tokio::test]
async fn a_batch_is_one_json_array_with_one_key() {
    let (url, log) = server(|_, _| (201, String::new(), String::new())).await;
    let partner = connector(HttpConnectorConfig {
        method: DispatchMethod::Put,
        batch: true,
        idempotency_header: "X-Request-Key".into(),
        ..HttpConnectorConfig::new(format!("{url}/orders/batch"))
    });
    let batch = txs(&["o-1", "o-2", "o-3"]);
    partner.dispatch(&batch).await.unwrap();
    partner.dispatch(&batch).await.unwrap();

    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2, "one request per dispatch");
    assert_eq!(log[0].method, "PUT");
    let body: serde_json::Value = serde_json::from_slice(&log[0].body).unwrap();
    assert_eq!(body.as_array().unwrap().len(), 3);
    assert_eq!(body[2]["id"], "o-3");
    let key = log[0].header("x-request-key").unwrap();
    assert_eq!(key.len(), 64, "a SHA-256 of the ids: {key}");
    assert_eq!(
        log[1].header("x-request-key"),
        Some(key),
        "a retry sends the same key"
    );
}

#[tokio::test]
async fn a_500_is_retryable_and_the_retry_passes_with_the_same_key() {
    let (url, log) = server(|n, _| match n {
        0 => (500, String::new(), "busy".into()),
        1 => (429, "retry-after: 2\r\n".into(), String::new()),
        _ => ok(""),
    })
    .await;
    let partner = connector(HttpConnectorConfig::new(format!("{url}/orders")));
    let one = txs(&["o-9"]);
    let err = partner.dispatch(&one).await.unwrap_err();
    assert_eq!(err.category(), Category::System);
    assert!(err.is_retryable(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("partner") && text.contains("o-9") && text.contains("HTTP 500"),
        "{text}"
    );
    let err = partner.dispatch(&one).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
    partner.dispatch(&one).await.unwrap();
    let log = log.lock().unwrap();
    assert!(
        log.iter()
            .all(|r| r.header("idempotency-key") == Some("o-9"))
    );
}

#[tokio::test]
async fn a_400_is_a_business_error_that_is_not_retried() {
    let (url, _) = server(|_, request| {
        if request.header("idempotency-key") == Some("bad") {
            (400, String::new(), "amount missing".into())
        } else {
            (503, String::new(), String::new())
        }
    })
    .await;
    let partner = connector(HttpConnectorConfig::new(format!("{url}/orders")));
    let err = partner.dispatch(&txs(&["bad", "other"])).await.unwrap_err();
    assert_eq!(err.category(), Category::Business, "{err}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("amount missing"), "{err}");
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/orders", listener.local_addr().unwrap());
    drop(listener);
    let partner = connector(HttpConnectorConfig::new(url));
    let err = partner.dispatch(&txs(&["o-1"])).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(partner.health().await.is_err());
}

/// A feed of `n` items with ids 1..=n: `GET /feed?after=<id>&limit=<k>` answers the next
/// `k` after `id` as a bare JSON array.
fn feed(n: u64) -> impl Fn(usize, &Request) -> Answer {
    move |_, request| {
        let query = request.target.split_once('?').map(|(_, q)| q).unwrap_or("");
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse::<u64>().ok())
        };
        let after = param("after").unwrap_or(0);
        let limit = param("limit").unwrap_or(100);
        let items: Vec<serde_json::Value> = (after + 1..=n.min(after + limit))
            .map(|id| json!({ "id": id, "n": id * 10 }))
            .collect();
        ok(serde_json::to_string(&items).unwrap())
    }
}

fn failure() -> Failure {
    Failure {
        task: "import".into(),
        step: "process",
        category: Category::Business,
        message: "n is odd".into(),
        attempts: 1,
    }
}

#[tokio::test]
async fn fetch_pages_through_a_cursor_advanced_only_by_settling() {
    let dir = tempfile::tempdir().unwrap();
    let (url, log) = server(feed(5)).await;
    let config = HttpConnectorConfig {
        cursor: Some(CursorConfig::default()),
        limit_param: Some("limit".into()),
        cursor_file: Some(dir.path().join("state/partner.cursor")),
        dead_letter: Some(dir.path().join("partner.dead.jsonl")),
        ..HttpConnectorConfig::new(format!("{url}/feed"))
    };
    let partner = connector(config.clone());

    let page = partner.fetch(2).await.unwrap();
    let ids: Vec<&str> = page.iter().map(|d| d.id()).collect();
    assert_eq!(ids, ["1", "2"]);
    assert_eq!(&page[0].payload()[..], br#"{"id":1,"n":10}"#);
    assert!(
        partner.fetch(2).await.unwrap().is_empty(),
        "the page is still out"
    );
    assert!(!partner.drained().await.unwrap());
    assert_eq!(log.lock().unwrap().len(), 1, "no poll while a page is out");

    // Requeued: handed out again, with its delivery count raised.
    partner
        .settle(&page[1], &Settlement::Requeue)
        .await
        .unwrap();
    partner.settle(&page[0], &Settlement::Ack).await.unwrap();
    let again = partner.fetch(2).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id(), again[0].deliveries()), ("2", 2));
    assert_eq!(
        partner
            .settle(&again[0], &Settlement::DeadLetter(failure()))
            .await
            .unwrap(),
        SettleOutcome::Performed
    );
    let dead = std::fs::read_to_string(dir.path().join("partner.dead.jsonl")).unwrap();
    assert_eq!(
        ergon_connectors::jsonl::payload_of(dead.trim()).unwrap(),
        br#"{"id":2,"n":20}"#
    );
    assert!(dead.contains("n is odd"));

    // The page is settled: the cursor moved to its last id, and was written down.
    let page = partner.fetch(2).await.unwrap();
    assert_eq!(page.iter().map(|d| d.id()).collect::<Vec<_>>(), ["3", "4"]);
    assert_eq!(log.lock().unwrap()[1].target, "/feed?after=2&limit=2");
    let cursor_file = dir.path().join("state/partner.cursor");
    assert_eq!(std::fs::read_to_string(&cursor_file).unwrap(), "2");
    partner.settle(&page[0], &Settlement::Ack).await.unwrap();

    // A restart with page 3–4 half settled polls it again from the written cursor.
    let restarted = connector(config.clone());
    let page = restarted.fetch(10).await.unwrap();
    assert_eq!(
        page.iter().map(|d| d.id()).collect::<Vec<_>>(),
        ["3", "4", "5"]
    );
    for delivery in &page {
        restarted.settle(delivery, &Settlement::Ack).await.unwrap();
    }
    assert_eq!(std::fs::read_to_string(&cursor_file).unwrap(), "5");
    assert!(restarted.fetch(10).await.unwrap().is_empty());
    assert!(restarted.drained().await.unwrap(), "an empty page: drained");
    assert_eq!(
        log.lock().unwrap().last().unwrap().target,
        "/feed?after=5&limit=10"
    );
    assert_eq!(restarted.acked(), 3);
}

#[tokio::test]
async fn a_wrapped_page_gives_its_next_cursor_and_null_ends_the_input() {
    let (url, log) = server(|_, request| {
        let body = if request.target.ends_with("cursor=c2") {
            json!({ "data": { "orders": [{ "ref": "b" }] }, "next": null })
        } else {
            json!({ "data": { "orders": [{ "ref": "a" }, { "no_ref": true }] }, "next": "c2" })
        };
        ok(body.to_string())
    })
    .await;
    let partner = connector(HttpConnectorConfig {
        id_field: "ref".into(),
        items: "/data/orders".into(),
        cursor: Some(CursorConfig {
            param: "cursor".into(),
            from: "/next".into(),
        }),
        start_cursor: Some("c1".into()),
        ..HttpConnectorConfig::new(format!("{url}/orders"))
    });
    let page = partner.fetch(10).await.unwrap();
    assert_eq!(page[0].id(), "a");
    assert!(
        page[1].id().ends_with("/orders?cursor=c1#0.1"),
        "an element without an id is still delivered: {}",
        page[1].id()
    );
    for delivery in &page {
        partner.settle(delivery, &Settlement::Ack).await.unwrap();
    }
    let page = partner.fetch(10).await.unwrap();
    assert_eq!(page[0].id(), "b");
    partner.settle(&page[0], &Settlement::Ack).await.unwrap();
    assert!(partner.fetch(10).await.unwrap().is_empty());
    assert!(partner.drained().await.unwrap());
    assert_eq!(log.lock().unwrap().len(), 2, "no poll after the last page");
}

#[tokio::test]
async fn a_refused_poll_stops_the_worker_and_a_failing_one_is_retried() {
    let (url, _) = server(|n, _| match n {
        0 => (502, String::new(), String::new()),
        1 => ok(r#"{"unexpected": 1}"#),
        _ => (401, String::new(), "who are you".into()),
    })
    .await;
    let partner = connector(HttpConnectorConfig::new(format!("{url}/feed")));
    assert!(partner.fetch(1).await.unwrap_err().is_retryable());
    let err = partner.fetch(1).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("/items"), "{err}");
    let err = partner.fetch(1).await.unwrap_err();
    assert!(
        !err.is_retryable() && err.to_string().contains("HTTP 401"),
        "{err}"
    );
}

#[tokio::test]
async fn the_kind_checks_keys_and_workers_share_one_page() {
    let (url, log) = server(feed(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let env = ConfigEnv {
        name: "partner".into(),
        base_dir: dir.path().into(),
    };
    let issue = HttpKind
        .configure(json!({ "url": url, "methd": "PUT" }), &env)
        .err()
        .unwrap();
    assert_eq!(issue.path, "methd");
    let issue = HttpKind
        .configure(
            json!({ "url": url, "auth": { "basic": { "user": "", "password": "p" } } }),
            &env,
        )
        .err()
        .unwrap();
    assert_eq!(issue.path, "auth.basic.user");

    let make = HttpKind
        .configure(json!({ "url": format!("{url}/feed"), "cursor": {} }), &env)
        .unwrap();
    let (one, two) = (
        make.connect(0).await.unwrap(),
        make.connect(1).await.unwrap(),
    );
    let page = one.fetch(2).await.unwrap();
    let rest = two.fetch(10).await.unwrap();
    assert_eq!(
        page.len() + rest.len(),
        3,
        "one page, split between the workers"
    );
    for delivery in page.iter().chain(&rest) {
        two.settle(delivery, &Settlement::DeadLetter(failure()))
            .await
            .unwrap();
    }
    assert_eq!(log.lock().unwrap().len(), 1);
    let dead = std::fs::read_to_string(dir.path().join("partner.dead.jsonl")).unwrap();
    assert_eq!(
        dead.lines().count(),
        3,
        "the default dead-letter file, beside the config"
    );
}

/// An HTTPS server on loopback with the test certificate (`tests/tls/`).
async fn tls_server(requests: Arc<AtomicU64>) -> u16 {
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler: Handler = Arc::new(move |_, _| {
        requests.fetch_add(1, Ordering::SeqCst);
        ok("")
    });
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (acceptor, handler) = (acceptor.clone(), handler.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve(tls, handler, Log::default()).await;
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn https_is_verified_against_the_ca_file() {
    let requests = Arc::new(AtomicU64::new(0));
    let port = tls_server(requests.clone()).await;
    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls/ca.pem");
    let trusting = connector(HttpConnectorConfig {
        ca_file: Some(ca),
        ..HttpConnectorConfig::new(format!("https://localhost:{port}/orders"))
    });
    trusting.dispatch(&txs(&["o-1"])).await.unwrap();
    trusting.health().await.unwrap();
    assert_eq!(requests.load(Ordering::SeqCst), 2);

    let untrusting = connector(HttpConnectorConfig::new(format!(
        "https://localhost:{port}/orders"
    )));
    let err = untrusting.dispatch(&txs(&["o-1"])).await.unwrap_err();
    assert!(err.is_retryable(), "an unknown issuer is refused: {err}");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        2,
        "nothing reached the server"
    );
}
