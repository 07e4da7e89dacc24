//! The health and metrics endpoint: a minimal HTTP/1.1 server for three GET routes,
//! bound to loopback unless configured otherwise.
//!
//! | route | answer |
//! |---|---|
//! | `/metrics` | Prometheus text of every metric family |
//! | `/health/live` | 200 or 503, with the problems as JSON |
//! | `/health/ready` | 200 or 503, with the problems as JSON |

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::board::WorkerBoard;
use super::health::{Health, Verdict};
use super::metrics::{collect, prometheus};

/// Serves `listener` until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    board: Arc<WorkerBoard>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                let (health, board) = (health.clone(), board.clone());
                tokio::spawn(async move {
                    if let Err(err) = answer(stream, &health, &board).await {
                        tracing::debug!(error = %err, "Health/metrics request failed");
                    }
                });
            }
            Err(err) => {
                tracing::warn!(error = %err, "Health/metrics endpoint cannot accept; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(
    mut stream: TcpStream,
    health: &Health,
    board: &WorkerBoard,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if read == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..read]);
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or(path);
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => (
            200,
            prometheus::CONTENT_TYPE,
            prometheus::render(&collect(board)),
        ),
        ("GET", "/health/live" | "/livez") => verdict(&health.liveness()),
        ("GET", "/health/ready" | "/readyz") => verdict(&health.readiness()),
        ("GET", _) => (
            404,
            "text/plain",
            "routes: /metrics, /health/live, /health/ready\n".into(),
        ),
        _ => (405, "text/plain", "GET only\n".into()),
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

fn verdict(v: &Verdict) -> (u16, &'static str, String) {
    let body = serde_json::json!({
        "status": if v.ok { "ok" } else { "unhealthy" },
        "problems": v.problems,
    });
    (
        if v.ok { 200 } else { 503 },
        "application/json",
        format!("{body}\n"),
    )
}
