//! `http_dispatch`: generated 100-byte transactions dispatched by a producer through the
//! `http` connector (one `POST` each, the id in `Idempotency-Key`, concurrency 64),
//! against a raw reqwest loop with the same client configuration, the same headers and
//! 64 requests in flight (64 tasks taking the next index from a shared counter).
//!
//! The server is in the child process, on its own thread and single-threaded runtime: a
//! hand-written HTTP/1.1 keep-alive loop that reads each request (head and
//! `content-length` body) and answers `200` with an empty body. Both variants must get
//! `n` answers to the server's count. Line (printed by [`amqp::parent`]):
//! `bench http_dispatch msgs= msgs_per_s= raw_msgs_per_s= ratio= runs=`.

use ergon_connectors::http::{HttpConnector, HttpConnectorConfig};
use ergon_core::ProducerPolicy;
use ergon_services::http::ClientOptions;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;

/// Requests in flight, in both variants.
const CONCURRENCY: usize = 64;
/// Requests of each child's warm-up before its timed run.
const WARM_UP: u64 = 2_000;

/// Measures one variant: a warm-up, then the timed run, against a server of this process.
pub(super) fn child(variant: &str) -> Result<Sample, String> {
    let n = env_or("ERGON_BENCH_TX", 20_000);
    let answered = Arc::new(AtomicU64::new(0));
    let url = serve(answered.clone())?;
    runtime().block_on(async {
        let run = |n: u64| {
            let (url, answered) = (url.clone(), answered.clone());
            async move {
                let before = answered.load(Relaxed);
                let started = Instant::now();
                match variant {
                    "engine" => engine(&url, n).await?,
                    "raw" => raw(&url, n).await?,
                    other => return Err(format!("unknown variant {other:?}")),
                }
                let elapsed = started.elapsed();
                match answered.load(Relaxed) - before {
                    got if got == n => Ok(elapsed),
                    got => Err(format!("the server answered {got} of {n} requests")),
                }
            }
        };
        run(WARM_UP.min(n)).await?;
        let elapsed = run(n).await?;
        Ok(amqp::sample(n, elapsed))
    })
}

/// A producer dispatching `n` generated transactions through the connector.
async fn engine(url: &str, n: u64) -> Result<(), String> {
    let output = Arc::new(
        HttpConnector::new("bench", &HttpConnectorConfig::new(url)).map_err(|e| e.to_string())?,
    );
    let mut policy = ProducerPolicy::default();
    policy.r#loop.concurrency = CONCURRENCY;
    policy.fetch.batch_size = inmemory::BATCH_SIZE;
    let cx = Context::builder("bench").output(output.clone()).build();
    let task = Arc::new(amqp::Publish {
        next: AtomicU64::new(0),
        n,
    });
    ConsumeLoop::producer(task, cx, Arc::new(policy))
        .run()
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// 64 tasks posting the next transaction until `n` were answered.
async fn raw(url: &str, n: u64) -> Result<(), String> {
    let client = ClientOptions::default()
        .build("bench")
        .map_err(|e| e.to_string())?;
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, next, url) = (client.clone(), next.clone(), url.to_owned());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Relaxed);
                    if i >= n {
                        return Ok::<_, String>(());
                    }
                    let answer = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("idempotency-key", i.to_string())
                        .body(&amqp::BODY[..])
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    if !answer.status().is_success() {
                        return Err(format!("HTTP {}", answer.status()));
                    }
                    answer.bytes().await.map_err(|e| e.to_string())?;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Starts the server on its own thread; returns its URL. Every answered request adds one
/// to `answered`.
fn serve(answered: Arc<AtomicU64>) -> Result<String, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let url = format!(
        "http://{}/orders",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the server's runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("the listener");
            while let Ok((socket, _)) = listener.accept().await {
                let _ = socket.set_nodelay(true);
                tokio::spawn(connection(socket, answered.clone()));
            }
        });
    });
    Ok(url)
}

/// One keep-alive connection: answers each request with an empty `200`.
async fn connection(mut socket: tokio::net::TcpStream, answered: Arc<AtomicU64>) {
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        // Answer every complete request in the buffer, then read more.
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = &buf[..end];
            let length = std::str::from_utf8(head)
                .unwrap_or_default()
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() < end + 4 + length {
                break;
            }
            buf.drain(..end + 4 + length);
            if socket.write_all(OK).await.is_err() {
                return;
            }
            answered.fetch_add(1, Relaxed);
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
