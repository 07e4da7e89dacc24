//! A service taken down for an outage, brought back by [`Down::restore`], or by its drop
//! when the scenario fails or panics first: other tests on the machine depend on it.

use crate::harness::{Error, Result, tool};
use crate::scenarios::address;

/// A stopped service.
#[derive(Debug)]
pub struct Down {
    service: Service,
    restored: bool,
}

/// The service and how it is started again.
#[derive(Debug)]
enum Service {
    /// The local RabbitMQ node's application.
    RabbitMq,
    /// A PostgreSQL cluster of the Debian tools (`pg_ctlcluster VERSION NAME`).
    Postgres { version: String, cluster: String },
}

impl Down {
    /// Stops the RabbitMQ application (`rabbitmqctl stop_app`): every connection is closed,
    /// new ones are refused, the node keeps its queues.
    ///
    /// # Errors
    ///
    /// `rabbitmqctl` failed.
    pub fn rabbitmq() -> Result<Self> {
        tool("rabbitmqctl", &["-q", "stop_app"])?;
        Ok(Self {
            service: Service::RabbitMq,
            restored: false,
        })
    }

    /// Stops the PostgreSQL cluster listening on `url`'s port (`pg_ctlcluster … stop -m
    /// fast`: every session is ended, the data stays).
    ///
    /// # Errors
    ///
    /// No cluster of `pg_lsclusters` listens on that port, or it cannot be stopped.
    pub fn postgres(url: &str) -> Result<Self> {
        let port = address::socket(url)
            .ok_or_else(|| Error::Service {
                service: "PostgreSQL".to_owned(),
                message: "its URL names no IP address and port".to_owned(),
            })?
            .port()
            .to_string();
        let listed = std::process::Command::new("pg_lsclusters")
            .arg("--no-header")
            .output()
            .map_err(Error::io("running pg_lsclusters (postgresql-common)"))?;
        let listed = String::from_utf8_lossy(&listed.stdout);
        let (version, cluster) = listed
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|fields| fields.get(2) == Some(&port.as_str()))
            .map(|fields| (fields[0].to_owned(), fields[1].to_owned()))
            .ok_or_else(|| Error::Service {
                service: "PostgreSQL".to_owned(),
                message: format!("no cluster of pg_lsclusters listens on port {port}"),
            })?;
        tool("pg_ctlcluster", &[&version, &cluster, "stop", "-m", "fast"])?;
        Ok(Self {
            service: Service::Postgres { version, cluster },
            restored: false,
        })
    }

    /// Starts the service again and waits until it serves.
    ///
    /// # Errors
    ///
    /// It cannot be started.
    pub fn restore(mut self) -> Result<()> {
        self.restored = true;
        self.service.start()
    }
}

impl Service {
    /// Starts it and returns once it accepts connections.
    fn start(&self) -> Result<()> {
        match self {
            Self::RabbitMq => {
                tool("rabbitmqctl", &["-q", "start_app"])?;
                tool("rabbitmqctl", &["-q", "await_startup"])
            }
            // `pg_ctlcluster start` waits until the server accepts connections.
            Self::Postgres { version, cluster } => {
                tool("pg_ctlcluster", &[version, cluster, "start"])
            }
        }
    }
}

impl Drop for Down {
    fn drop(&mut self) {
        if !self.restored
            && let Err(err) = self.service.start()
        {
            eprintln!(
                "ergon-faults: could not bring {:?} back up: {err}",
                self.service
            );
        }
    }
}
