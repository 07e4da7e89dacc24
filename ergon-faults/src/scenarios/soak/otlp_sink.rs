//! An OTLP/HTTP receiver on loopback that accepts every export and counts it: with an
//! endpoint to send to, the runner records and exports spans and metrics (without one it
//! records none), so the soak measures memory with telemetry really on.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::harness::{Error, Result};

/// What the sink received so far.
#[derive(Debug, Default)]
struct Received {
    traces: AtomicU64,
    metrics: AtomicU64,
    bytes: AtomicU64,
}

/// A running sink; dropping it stops accepting (open connections end with the runner).
#[derive(Debug)]
pub struct OtlpSink {
    address: SocketAddr,
    received: Arc<Received>,
    stopped: Arc<AtomicBool>,
}

impl OtlpSink {
    /// Listens on `127.0.0.1:0`, answering `200 OK` to every request.
    ///
    /// # Errors
    ///
    /// No loopback port can be bound.
    pub fn start() -> Result<Self> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(Error::io("binding the OTLP sink"))?;
        let address = listener
            .local_addr()
            .map_err(Error::io("reading the OTLP sink's address"))?;
        let received = Arc::new(Received::default());
        let stopped = Arc::new(AtomicBool::new(false));
        let (counts, stop) = (received.clone(), stopped.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if let Ok(stream) = stream {
                    let counts = counts.clone();
                    std::thread::spawn(move || serve(stream, &counts));
                }
            }
        });
        Ok(Self {
            address,
            received,
            stopped,
        })
    }

    /// The OTLP endpoint's base URL (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Trace exports received (`POST /v1/traces`).
    pub fn trace_exports(&self) -> u64 {
        self.received.traces.load(Ordering::Relaxed)
    }

    /// Metric exports received (`POST /v1/metrics`).
    pub fn metric_exports(&self) -> u64 {
        self.received.metrics.load(Ordering::Relaxed)
    }

    /// Bytes of request bodies received.
    pub fn bytes(&self) -> u64 {
        self.received.bytes.load(Ordering::Relaxed)
    }
}

impl Drop for OtlpSink {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        // Wakes the accepting thread up so it sees the flag.
        let _ = TcpStream::connect(self.address);
    }
}

/// Answers the requests of one keep-alive connection until it closes.
fn serve(stream: TcpStream, received: &Received) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some((path, body)) = read_request(&mut reader) {
        match path.as_str() {
            "/v1/traces" => received.traces.fetch_add(1, Ordering::Relaxed),
            "/v1/metrics" => received.metrics.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        received.bytes.fetch_add(body, Ordering::Relaxed);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        if writer.write_all(ok).is_err() {
            return;
        }
    }
}

/// Reads one request: its path and the length of its body (read and discarded); `None`
/// at the connection's end or on a request it cannot read.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, u64)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut length = 0u64;
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let copied = std::io::copy(&mut reader.by_ref().take(length), &mut std::io::sink()).ok()?;
    (copied == length).then_some((path, length))
}
