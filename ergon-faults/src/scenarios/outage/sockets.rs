//! The runner's own connections to Redis, found through `/proc` (its socket inodes,
//! matched in the TCP table), and killed server-side with `CLIENT KILL ADDR`: only this
//! runner's connections, never another test's.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::harness::{Error, Result};
use crate::scenarios::address;

/// Kills every connection of process `pid` to the Redis at `url` and returns how many.
///
/// # Errors
///
/// `/proc` cannot be read, or Redis cannot be reached.
pub fn kill_redis_clients(url: &str, pid: u32) -> Result<usize> {
    let service = |message: String| Error::Service {
        service: format!("Redis CLIENT KILL at {url}"),
        message,
    };
    let client = redis::Client::open(url).map_err(|err| service(err.to_string()))?;
    let mut conn = client
        .get_connection()
        .map_err(|err| service(err.to_string()))?;
    let port = address::socket(url)
        .ok_or_else(|| service("the URL names no IP address and port".to_owned()))?
        .port();
    let mut killed = 0;
    for address in connections(pid, port)? {
        let n: usize = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ADDR")
            .arg(address.to_string())
            .arg("SKIPME")
            .arg("yes")
            .query(&mut conn)
            .map_err(|err| service(err.to_string()))?;
        killed += n;
    }
    Ok(killed)
}

/// The local addresses of `pid`'s established IPv4 TCP connections to `remote_port`.
fn connections(pid: u32, remote_port: u16) -> Result<Vec<SocketAddrV4>> {
    let fd_dir = format!("/proc/{pid}/fd");
    let inodes: BTreeSet<String> = std::fs::read_dir(&fd_dir)
        .map_err(Error::io(format!("listing {fd_dir}")))?
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let table_path = format!("/proc/{pid}/net/tcp");
    let table =
        std::fs::read_to_string(&table_path).map_err(Error::io(format!("reading {table_path}")))?;
    Ok(table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, inode) = (fields.get(1)?, fields.get(2)?, fields.get(9)?);
            let remote = parse_address(remote)?;
            (remote.port() == remote_port && inodes.contains(*inode))
                .then(|| parse_address(local))?
        })
        .collect())
}

/// An address of `/proc/net/tcp`: `0100007F:18EB` (the IPv4 address as a little-endian
/// hex word, the port in hex).
fn parse_address(hex: &str) -> Option<SocketAddrV4> {
    let (ip, port) = hex.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddrV4::new(Ipv4Addr::from(ip.swap_bytes()), port))
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::{connections, parse_address};

    #[test]
    fn an_address_of_the_tcp_table_is_read() {
        let address = parse_address("0100007F:18EB").unwrap();
        assert_eq!(address.to_string(), "127.0.0.1:6379");
    }

    #[test]
    fn this_process_s_connection_to_a_port_is_found() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let found = connections(std::process::id(), port).unwrap();
        assert_eq!(
            found
                .iter()
                .map(|a| std::net::SocketAddr::V4(*a))
                .collect::<Vec<_>>(),
            [client.local_addr().unwrap()]
        );
    }
}
