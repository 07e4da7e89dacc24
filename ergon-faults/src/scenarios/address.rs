//! The address part of a service URL (`scheme://[user[:password]@]host:port[/path]`):
//! where the suite's services listen, and the same URL pointed through the TCP proxy.

use std::net::SocketAddr;

/// `host:port` of `url`, without user and password.
pub fn authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let rest = rest.split(['/', '?']).next()?;
    Some(rest.rsplit_once('@').map_or(rest, |(_, host)| host))
}

/// The socket address of `url`'s `host:port` (an IP address, as the suite's loopback
/// URLs have).
pub fn socket(url: &str) -> Option<SocketAddr> {
    authority(url)?.parse().ok()
}

/// `url` with its `host:port` replaced by `address` (user, password and path kept).
pub fn through(url: &str, address: SocketAddr) -> Option<String> {
    let old = authority(url)?;
    let at = url.find(old)?;
    Some(format!("{}{address}{}", &url[..at], &url[at + old.len()..]))
}

#[cfg(test)]
mod tests {
    use super::{authority, socket, through};

    #[test]
    fn the_address_of_each_service_url_is_found_and_replaced() {
        let rabbit = "amqp://guest:guest@127.0.0.1:5672/%2f";
        assert_eq!(authority(rabbit), Some("127.0.0.1:5672"));
        assert_eq!(
            through(rabbit, "127.0.0.1:4000".parse().unwrap()).unwrap(),
            "amqp://guest:guest@127.0.0.1:4000/%2f"
        );
        let pg = "postgres://postgres@127.0.0.1:5432/test";
        assert_eq!(socket(pg), Some("127.0.0.1:5432".parse().unwrap()));
        assert_eq!(
            through(pg, "127.0.0.1:4001".parse().unwrap()).unwrap(),
            "postgres://postgres@127.0.0.1:4001/test"
        );
        assert_eq!(authority("redis://127.0.0.1:6379"), Some("127.0.0.1:6379"));
        assert_eq!(authority("not a url"), None);
    }
}
