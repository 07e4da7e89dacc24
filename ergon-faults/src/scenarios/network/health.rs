//! The runner's health endpoint as a scenario reads it: its address from the runner's log,
//! and the status code of `/health/live` and `/health/ready`.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::harness::{Error, Result};

/// How long one request may take.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// The address the runner logged for its health endpoint (`Health on /health/live …
/// address=127.0.0.1:PORT`, with `[telemetry.http] port = 0`), if it did yet.
pub fn logged_address(stderr: &str) -> Option<SocketAddr> {
    stderr
        .lines()
        .filter(|line| line.contains("Health on /health/live"))
        .find_map(|line| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix("address="))
        })
        .and_then(|address| address.parse().ok())
}

/// The status code of `GET path` on `address`.
///
/// # Errors
///
/// The endpoint cannot be reached or answers something that is not HTTP.
pub fn status(address: SocketAddr, path: &str) -> Result<u16> {
    let what = format!("GET http://{address}{path}");
    let mut stream =
        TcpStream::connect_timeout(&address, REQUEST_LIMIT).map_err(Error::io(what.clone()))?;
    stream
        .set_read_timeout(Some(REQUEST_LIMIT))
        .map_err(Error::io(what.clone()))?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: ergon-faults\r\nconnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(Error::io(what.clone()))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(Error::io(what.clone()))?;
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| Error::Output(format!("{what} answered {response:?}")))
}

#[cfg(test)]
mod tests {
    use super::logged_address;

    #[test]
    fn the_health_address_is_read_from_the_log() {
        let log = "2026-12-04T08:00:00Z  INFO ergon_runner::commands::run: Health on /health/live and /health/ready, metrics on /metrics address=127.0.0.1:40123\n";
        assert_eq!(
            logged_address(log),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(logged_address("INFO starting\n"), None);
    }
}
