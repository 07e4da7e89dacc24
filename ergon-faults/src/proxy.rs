//! A TCP proxy on loopback that a scenario steers while the runner talks through it: it
//! listens on `127.0.0.1:0`, forwards every connection to one target, and at any moment
//! passes traffic, cuts it, stalls it, resets it or slows it down ([`Mode`]).
//!
//! The proxy runs on a runtime of its own (one thread), so a scenario drives it the same
//! way from blocking code (processes, `std::thread::sleep`) and from async code, and
//! dropping it closes every connection through it.
//!
//! ```no_run
//! use std::time::Duration;
//! use ergon_faults::proxy::{Mode, Proxy, SlowLink};
//!
//! let proxy = Proxy::start("127.0.0.1:5672".parse().unwrap()).unwrap();
//! let url = format!("amqp://guest:guest@{}/%2f", proxy.address());
//! // … start a runner on `url`, then:
//! proxy.set(Mode::Drop);
//! std::thread::sleep(Duration::from_secs(3));
//! proxy.set(Mode::Slow(SlowLink { delay: Duration::from_millis(50), bytes_per_second: None }));
//! proxy.set(Mode::Pass);
//! ```

use std::io;
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

/// What the proxy does with the traffic, set with [`Proxy::set`] and applied at once to
/// every connection, open or new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything as it comes (the start).
    Pass,
    /// A cut: every connection is closed (FIN) and the port refuses new ones (the
    /// listener is closed; it listens again on the same port when the mode changes).
    Drop,
    /// A black hole: connections are accepted and kept, but nothing is forwarded either
    /// way; what was read is held and forwarded when the mode changes back.
    Stall,
    /// Every connection, open or new, is reset (`SO_LINGER` 0: the peers see a TCP RST,
    /// not an orderly close).
    Reset,
    /// A slow link: each chunk is delayed and the bytes are throttled.
    Slow(SlowLink),
}

/// The shape of a slow link ([`Mode::Slow`]), applied in each direction on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowLink {
    /// Added before each chunk is forwarded (latency).
    pub delay: Duration,
    /// Bytes per second and direction per connection; `None`: no throttle.
    pub bytes_per_second: Option<NonZeroU64>,
}

/// The largest chunk read at once from either side.
const CHUNK: usize = 16 * 1024;

/// A running proxy; dropping it closes its port and every connection through it.
pub struct Proxy {
    address: SocketAddr,
    control: watch::Sender<Mode>,
    accepted: Arc<AtomicU64>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `target`, in
    /// [`Mode::Pass`].
    ///
    /// # Errors
    ///
    /// The proxy's runtime cannot be built or its port cannot be bound.
    pub fn start(target: SocketAddr) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ergon-faults-proxy")
            .enable_all()
            .build()?;
        let listener =
            runtime.block_on(async { listen("127.0.0.1:0".parse().expect("an address")) })?;
        let address = listener.local_addr()?;
        let (control, modes) = watch::channel(Mode::Pass);
        let accepted = Arc::new(AtomicU64::new(0));
        runtime.spawn(accept(listener, target, modes, accepted.clone()));
        Ok(Self {
            address,
            control,
            accepted,
            runtime: Some(runtime),
        })
    }

    /// The address clients connect to (in place of the target's).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Switches every connection, open and new, to `mode`.
    pub fn set(&self, mode: Mode) {
        self.control.send_replace(mode);
    }

    /// The mode in force.
    pub fn mode(&self) -> Mode {
        *self.control.borrow()
    }

    /// How many connections the proxy has accepted so far (a client that reconnected
    /// after a cut adds to it).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Closing the connections first, so the peers see them end rather than vanish.
        self.control.send_replace(Mode::Drop);
        if let Some(runtime) = self.runtime.take() {
            // Allowed from inside another runtime, unlike dropping it.
            runtime.shutdown_background();
        }
    }
}

/// A listener on `address` that may be bound again on the same port after a cut.
fn listen(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

/// Accepts connections and relays each to `target`; closes the port while the mode is
/// [`Mode::Drop`] and binds it again after.
async fn accept(
    listener: TcpListener,
    target: SocketAddr,
    mut modes: watch::Receiver<Mode>,
    accepted: Arc<AtomicU64>,
) {
    let Ok(address) = listener.local_addr() else {
        return;
    };
    let mut listener = Some(listener);
    loop {
        let mode = *modes.borrow_and_update();
        match (&listener, mode) {
            (Some(_), Mode::Drop) => listener = None,
            (None, Mode::Drop) => {}
            (None, _) => match listen(address) {
                Ok(bound) => listener = Some(bound),
                Err(_) => {
                    // The port is briefly held by the kernel or another process: try again.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            (Some(_), _) => {}
        }
        let Some(open) = &listener else {
            if modes.changed().await.is_err() {
                return;
            }
            continue;
        };
        tokio::select! {
            incoming = open.accept() => {
                if let Ok((client, _)) = incoming {
                    accepted.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(relay(client, target, modes.clone()));
                }
            }
            changed = modes.changed() => if changed.is_err() { return },
        }
    }
}

/// How a connection ended.
enum End {
    /// Either side closed or failed: closed in turn.
    Closed,
    /// [`Mode::Drop`]: closed by the proxy.
    Cut,
    /// [`Mode::Reset`]: reset by the proxy.
    Reset,
}

/// Relays one client connection to `target` until either side ends it or the mode cuts
/// or resets it.
async fn relay(client: TcpStream, target: SocketAddr, modes: watch::Receiver<Mode>) {
    let _ = client.set_nodelay(true);
    if *modes.borrow() == Mode::Reset {
        reset(client);
        return;
    }
    let Ok(upstream) = TcpStream::connect(target).await else {
        // The target is down: the client sees its connection closed, as it would.
        return;
    };
    let _ = upstream.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let (outward, inward) = (modes.clone(), modes.clone());
    let end = tokio::select! {
        _ = async {
            tokio::try_join!(
                pump(&mut client_read, &mut upstream_write, outward),
                pump(&mut upstream_read, &mut client_write, inward),
            )
        } => End::Closed,
        end = ended(modes) => end,
    };
    if let End::Reset = end {
        if let Ok(client) = client_read.reunite(client_write) {
            reset(client);
        }
        if let Ok(upstream) = upstream_read.reunite(upstream_write) {
            reset(upstream);
        }
    }
    // Otherwise the halves are dropped here: an orderly close (FIN) of both sides.
}

/// Closes `stream` with a TCP RST (`SO_LINGER` 0) instead of an orderly close.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Resolves when the mode cuts or resets the connections (or the proxy is gone).
async fn ended(mut modes: watch::Receiver<Mode>) -> End {
    loop {
        match *modes.borrow_and_update() {
            Mode::Drop => return End::Cut,
            Mode::Reset => return End::Reset,
            Mode::Pass | Mode::Stall | Mode::Slow(_) => {}
        }
        if modes.changed().await.is_err() {
            return End::Cut;
        }
    }
}

/// Forwards `from` to `to` chunk by chunk as the mode allows; at `from`'s end, shuts
/// down `to`'s writing side (a half-close passes through).
async fn pump(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    mut modes: watch::Receiver<Mode>,
) -> io::Result<()> {
    let mut chunk = vec![0u8; CHUNK];
    loop {
        // Nothing is read during a stall: the sender's window fills, as on a dead link.
        let link = passable(&mut modes).await;
        let read = from.read(&mut chunk[..read_size(link)]).await?;
        if read == 0 {
            return to.shutdown().await;
        }
        // What arrived as the stall began is held until the link passes again.
        let link = passable(&mut modes).await;
        forward(&chunk[..read], to, link).await?;
    }
}

/// Waits while the mode is [`Mode::Stall`]; the slow link in force, if any. Cuts and
/// resets are handled by [`ended`], which ends the relay.
async fn passable(modes: &mut watch::Receiver<Mode>) -> Option<SlowLink> {
    loop {
        match *modes.borrow_and_update() {
            Mode::Slow(link) => return Some(link),
            Mode::Pass | Mode::Drop | Mode::Reset => return None,
            Mode::Stall => {}
        }
        if modes.changed().await.is_err() {
            return None;
        }
    }
}

/// How much to read at once: a whole chunk, or a tenth of a second's worth on a
/// throttled link (so the throttle is smooth).
fn read_size(link: Option<SlowLink>) -> usize {
    match link.and_then(|link| link.bytes_per_second) {
        Some(rate) => usize::try_from(rate.get() / 10)
            .unwrap_or(CHUNK)
            .clamp(1, CHUNK),
        None => CHUNK,
    }
}

/// Writes `bytes` to `to`, after the link's delay and at its rate.
async fn forward(bytes: &[u8], to: &mut OwnedWriteHalf, link: Option<SlowLink>) -> io::Result<()> {
    let Some(link) = link else {
        return to.write_all(bytes).await;
    };
    tokio::time::sleep(link.delay).await;
    to.write_all(bytes).await?;
    if let Some(rate) = link.bytes_per_second {
        let seconds = bytes.len() as f64 / rate.get() as f64;
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Each mode against a real echo server on loopback, through std sockets (the way a
    //! runner's client sees the proxy).

    use std::io::{ErrorKind, Read as _, Write as _};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use super::{Mode, NonZeroU64, Proxy, SlowLink};

    /// An echo server on loopback: its address, and how many bytes it has received.
    fn echo_server() -> (std::net::SocketAddr, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 {
                            return;
                        }
                        counter.fetch_add(n as u64, Ordering::Relaxed);
                        if stream.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (address, received)
    }

    /// A client of `proxy` whose reads give up after 10 s (a hang fails the test).
    fn connect(proxy: &Proxy) -> TcpStream {
        let stream = TcpStream::connect(proxy.address()).expect("connecting to the proxy");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    /// Sends `bytes` and reads as many back.
    fn round_trip(stream: &mut TcpStream, bytes: &[u8]) -> Vec<u8> {
        stream.write_all(bytes).expect("writing through the proxy");
        let mut back = vec![0u8; bytes.len()];
        stream.read_exact(&mut back).expect("reading the echo back");
        back
    }

    /// Waits (up to 10 s) until connecting to the proxy gives `refused` (or not).
    fn until_connect_refused(proxy: &Proxy, refused: bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let result = TcpStream::connect(proxy.address());
            let is_refused =
                matches!(&result, Err(err) if err.kind() == ErrorKind::ConnectionRefused);
            if is_refused == refused {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "connecting still gives {result:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn pass_forwards_both_ways() {
        let (target, received) = echo_server();
        let proxy = Proxy::start(target).unwrap();
        let mut client = connect(&proxy);
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(round_trip(&mut client, &payload), payload);
        assert_eq!(received.load(Ordering::Relaxed), payload.len() as u64);
        assert_eq!(proxy.accepted(), 1);
    }

    #[test]
    fn drop_closes_connections_and_refuses_new_ones_until_pass() {
        let (target, _) = echo_server();
        let proxy = Proxy::start(target).unwrap();
        let mut client = connect(&proxy);
        assert_eq!(round_trip(&mut client, b"before"), b"before");

        proxy.set(Mode::Drop);
        let mut buf = [0u8; 8];
        assert_eq!(
            client.read(&mut buf).unwrap(),
            0,
            "the open connection is closed"
        );
        until_connect_refused(&proxy, true);

        proxy.set(Mode::Pass);
        until_connect_refused(&proxy, false);
        let mut again = connect(&proxy);
        assert_eq!(round_trip(&mut again, b"after"), b"after");
        assert!(proxy.accepted() >= 2, "{}", proxy.accepted());
    }

    #[test]
    fn stall_holds_the_bytes_until_pass() {
        let (target, received) = echo_server();
        let proxy = Proxy::start(target).unwrap();
        let mut client = connect(&proxy);
        assert_eq!(round_trip(&mut client, b"warm"), b"warm");

        proxy.set(Mode::Stall);
        client.write_all(b"held").unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 4];
        let stalled = client.read(&mut buf);
        assert!(
            matches!(&stalled, Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
            "nothing comes back during a stall: {stalled:?}"
        );
        assert_eq!(
            received.load(Ordering::Relaxed),
            4,
            "nothing reached the server"
        );

        proxy.set(Mode::Pass);
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"held", "the held bytes pass once the stall ends");
    }

    #[test]
    fn reset_sends_an_rst_to_open_and_new_connections() {
        let (target, _) = echo_server();
        let proxy = Proxy::start(target).unwrap();
        let mut client = connect(&proxy);
        assert_eq!(round_trip(&mut client, b"ping"), b"ping");

        proxy.set(Mode::Reset);
        let mut buf = [0u8; 4];
        let open = client.read(&mut buf);
        assert!(
            matches!(&open, Err(err) if err.kind() == ErrorKind::ConnectionReset),
            "the open connection is reset: {open:?}"
        );
        // The reset can land before `connect` returns (the proxy accepts and resets at
        // once), so it shows either on the connect or on the first read.
        let fresh = TcpStream::connect(proxy.address()).and_then(|mut new| {
            new.set_read_timeout(Some(Duration::from_secs(10)))?;
            new.read(&mut buf)
        });
        assert!(
            matches!(&fresh, Err(err) if err.kind() == ErrorKind::ConnectionReset),
            "a new connection is reset: {fresh:?}"
        );

        proxy.set(Mode::Pass);
        let mut again = connect(&proxy);
        assert_eq!(round_trip(&mut again, b"pong"), b"pong");
    }

    #[test]
    fn a_slow_link_delays_and_throttles_but_delivers_every_byte() {
        let (target, _) = echo_server();
        let proxy = Proxy::start(target).unwrap();
        let link = SlowLink {
            delay: Duration::from_millis(100),
            bytes_per_second: NonZeroU64::new(40_000),
        };
        proxy.set(Mode::Slow(link));
        let mut client = connect(&proxy);
        let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
        let started = Instant::now();
        client.write_all(&payload).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).unwrap();
        let took = started.elapsed();
        assert_eq!(back, payload, "every byte, in order");
        // 20,000 bytes at 40,000 B/s take at least 0.5 s in each direction (the two
        // overlap): a floor the throttle sets, whatever the machine's speed.
        assert!(took >= Duration::from_millis(500), "took {took:?}");
    }
}
