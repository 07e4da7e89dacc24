//! One connection to the broker and what lives on it: the topology declared, publishing
//! channels in confirm mode (the `publish` module's lanes) and, for an input, a consuming
//! channel. A lost connection ends
//! its session for good; the connector opens a new one, with a new *generation*, so that
//! no delivery tag of the old channel is ever sent on the new one.

use std::sync::Mutex;

use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio_util::sync::CancellationToken;

use super::acks::AckWindow;
use super::config::{QueueKind, RabbitConfig};
use super::message;
use super::publish::Publisher;

/// A live connection with its channels.
pub(crate) struct Session {
    /// Which connection this is, counting from 1 for the connector.
    pub generation: u64,
    connection: Connection,
    /// Publishing, with publisher confirms.
    pub publisher: Publisher,
    /// Consuming, for an input: started by the first fetch.
    consume: tokio::sync::OnceCell<Consume>,
    /// Cancelled once the session cannot be used any more.
    pub lost: CancellationToken,
}

/// The consuming side of a session.
pub(crate) struct Consume {
    pub channel: Channel,
    /// The deliveries, read by the fetches themselves (no task or queue in between).
    pub deliveries: tokio::sync::Mutex<lapin::Consumer>,
    /// What has been settled and not acked yet.
    pub acks: Mutex<AckWindow>,
}

impl Session {
    /// Connects, declares the topology and opens the publishing channels.
    pub(crate) async fn open(
        config: &RabbitConfig,
        name: &str,
        generation: u64,
    ) -> Result<Session, lapin::Error> {
        let connection = connect(config, &format!("ergon {name} #{generation}")).await?;
        let channel = connection.create_channel().await?;
        declare(config, &channel).await?;
        let publisher = Publisher::open(&connection, channel).await?;
        Ok(Session {
            generation,
            connection,
            publisher,
            consume: tokio::sync::OnceCell::new(),
            lost: CancellationToken::new(),
        })
    }

    /// The consuming side, started on first use: consumes `queue` with the prefetch.
    pub(crate) async fn consumer(
        &self,
        config: &RabbitConfig,
        name: &str,
    ) -> Result<&Consume, lapin::Error> {
        self.consume
            .get_or_try_init(|| async {
                let queue = config.queue.as_deref().unwrap_or_default();
                start_consuming(config, &self.connection, queue, name, self.generation).await
            })
            .await
    }

    /// The consuming side, if started.
    pub(crate) fn consuming(&self) -> Option<&Consume> {
        self.consume.get()
    }

    /// Whether the connection is still up.
    pub(crate) fn connected(&self) -> bool {
        !self.lost.is_cancelled() && self.connection.status().connected()
    }

    /// Closes the connection (after the caller flushed its acks).
    pub(crate) async fn close(&self) {
        self.lost.cancel();
        let _ = self
            .connection
            .close(200, ShortString::from("closing"))
            .await;
    }
}

/// Connects to the broker of `config` (with its TLS settings), the connection named
/// `label` in the broker's management views.
pub(crate) async fn connect(
    config: &RabbitConfig,
    label: &str,
) -> Result<Connection, lapin::Error> {
    let properties = ConnectionProperties::default().with_connection_name(LongString::from(label));
    match config.tls.ca_pem() {
        Ok(None) => Connection::connect(config.url.expose(), properties).await,
        Ok(Some(pem)) => {
            let tls = lapin::tcp::OwnedTLSConfig {
                identity: None,
                cert_chain: Some(pem),
            };
            let runtime = lapin::runtime::default_runtime()?;
            Connection::connect_with_config(config.url.expose(), properties, tls, runtime).await
        }
        Err(message) => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("tls.ca_file: {message}"),
        )
        .into()),
    }
}

/// Declares the queue, the dead-letter queue, the exchange and its bindings.
pub(crate) async fn declare(config: &RabbitConfig, channel: &Channel) -> Result<(), lapin::Error> {
    let declare = &config.declare;
    let mut arguments = FieldTable::default();
    for (key, value) in &declare.arguments {
        if let Some(value) = message::argument(value) {
            arguments.insert(ShortString::from(key.as_str()), value);
        }
    }
    if declare.kind == QueueKind::Quorum {
        arguments.insert(
            ShortString::from("x-queue-type"),
            AMQPValue::LongString(LongString::from("quorum")),
        );
    }
    let options = QueueDeclareOptions {
        passive: declare.passive,
        durable: declare.durable || declare.kind == QueueKind::Quorum,
        ..QueueDeclareOptions::default()
    };
    if let Some(queue) = &config.queue {
        channel
            .queue_declare(
                ShortString::from(queue.as_str()),
                options,
                arguments.clone(),
            )
            .await?;
    }
    if let Some(dead) = &config.dead_letter {
        let mut dead_arguments = FieldTable::default();
        if declare.kind == QueueKind::Quorum {
            dead_arguments.insert(
                ShortString::from("x-queue-type"),
                AMQPValue::LongString(LongString::from("quorum")),
            );
        }
        channel
            .queue_declare(
                ShortString::from(dead.queue.as_str()),
                options,
                dead_arguments,
            )
            .await?;
    }
    if let Some(exchange) = &config.exchange {
        let kind = match exchange.kind.as_str() {
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "headers" => ExchangeKind::Headers,
            "direct" => ExchangeKind::Direct,
            other => ExchangeKind::Custom(other.to_owned()),
        };
        channel
            .exchange_declare(
                ShortString::from(exchange.name.as_str()),
                kind,
                ExchangeDeclareOptions {
                    passive: exchange.passive,
                    durable: exchange.durable,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        if let Some(queue) = &config.queue {
            let default_binding = [queue.clone()];
            let bindings = if exchange.bindings.is_empty() {
                &default_binding[..]
            } else {
                &exchange.bindings[..]
            };
            for key in bindings {
                channel
                    .queue_bind(
                        ShortString::from(queue.as_str()),
                        ShortString::from(exchange.name.as_str()),
                        ShortString::from(key.as_str()),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

/// Opens the consuming channel with the prefetch and starts consuming `queue`.
async fn start_consuming(
    config: &RabbitConfig,
    connection: &Connection,
    queue: &str,
    name: &str,
    generation: u64,
) -> Result<Consume, lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            ShortString::from(queue),
            ShortString::from(format!("ergon-{name}-{generation}")),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(Consume {
        channel,
        deliveries: tokio::sync::Mutex::new(consumer),
        acks: Mutex::new(AckWindow::default()),
    })
}
