//! `queue stats | dead-letters | requeue-dead` on a RabbitMQ connector with a dead-letter
//! queue of its own (`[connectors.NAME.dead_letter] queue = "..."`): a connection of its
//! own that consumes nothing from the input.
//!
//! * **stats**: `ready` (messages waiting in the queue), `consumers`, and `dead` (messages
//!   in the dead-letter queue), from passive declarations.
//! * **dead-letters**: up to `limit` messages taken with `basic.get` and given back when
//!   the channel closes (the broker requeues them in place), so listing moves nothing.
//! * **requeue-dead**: dead letters taken in batches, published to the queue with their
//!   failure headers and delivery count removed, and acknowledged only once the broker
//!   confirmed the batch: a crash in between leaves a copy in both queues, never in
//!   neither.

use std::sync::Arc;

use async_trait::async_trait;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};

use ergon_core::TaskError;
use ergon_core::queue_admin::{DeadLetter, QueueAdmin, QueueStats};

use super::config::RabbitConfig;
use super::message::{self, DELIVERIES_HEADER};
use super::session;

/// Dead letters moved per confirmed batch by `requeue-dead`.
const REQUEUE_BATCH: usize = 256;

/// The headers ergon adds to a dead letter (see `dead_letter_headers`).
pub(super) mod header {
    /// The failure's category.
    pub const CATEGORY: &str = "x-ergon-error-category";
    /// The failure's message.
    pub const MESSAGE: &str = "x-ergon-error-message";
    /// Attempts of the failed step.
    pub const ATTEMPTS: &str = "x-ergon-attempts";
    /// The task that gave up.
    pub const TASK: &str = "x-ergon-task";
    /// The step that failed.
    pub const STEP: &str = "x-ergon-step";
    /// When, in Unix milliseconds.
    pub const FAILED_AT: &str = "x-ergon-failed-at";
}

/// The administration of one RabbitMQ queue and its dead-letter queue.
pub(super) struct RabbitAdmin {
    config: Arc<RabbitConfig>,
    queue: String,
    dead: String,
    connection: Connection,
}

impl RabbitAdmin {
    /// Connects (declaring the topology as the connector would), for `queue` and its
    /// dead-letter queue `dead`.
    pub(super) async fn open(
        config: Arc<RabbitConfig>,
        name: &str,
        queue: String,
        dead: String,
    ) -> Result<Self, TaskError> {
        let connection = session::connect(&config, &format!("ergon {name} (queue admin)"))
            .await
            .map_err(|err| super::broker_error(&config, "cannot connect", &err))?;
        let admin = Self {
            config,
            queue,
            dead,
            connection,
        };
        let channel = admin.channel().await?;
        session::declare(&admin.config, &channel)
            .await
            .map_err(|err| admin.error("cannot declare the queues", &err))?;
        Ok(admin)
    }

    async fn channel(&self) -> Result<Channel, TaskError> {
        self.connection
            .create_channel()
            .await
            .map_err(|err| self.error("cannot open a channel", &err))
    }

    fn error(&self, what: &str, err: &lapin::Error) -> TaskError {
        super::broker_error(&self.config, what, err)
    }

    /// The number of messages ready in `queue` and its consumers.
    async fn depth(&self, channel: &Channel, queue: &str) -> Result<(u64, u64), TaskError> {
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let declared = channel
            .queue_declare(ShortString::from(queue), options, FieldTable::default())
            .await
            .map_err(|err| self.error(&format!("cannot read queue {queue}"), &err))?;
        Ok((
            u64::from(declared.message_count()),
            u64::from(declared.consumer_count()),
        ))
    }

    /// Takes up to `max` dead letters (unacknowledged) on `channel`.
    async fn take(
        &self,
        channel: &Channel,
        max: usize,
    ) -> Result<Vec<lapin::message::Delivery>, TaskError> {
        let mut taken = Vec::new();
        while taken.len() < max {
            let got = channel
                .basic_get(
                    ShortString::from(self.dead.as_str()),
                    BasicGetOptions::default(),
                )
                .await
                .map_err(|err| self.error(&format!("cannot read {}", self.dead), &err))?;
            match got {
                Some(message) => taken.push(message.delivery),
                None => break,
            }
        }
        Ok(taken)
    }
}

#[async_trait]
impl QueueAdmin for RabbitAdmin {
    async fn stats(&self) -> Result<QueueStats, TaskError> {
        let channel = self.channel().await?;
        let (ready, consumers) = self.depth(&channel, &self.queue).await?;
        let (dead, _) = self.depth(&channel, &self.dead).await?;
        close(channel).await;
        Ok(QueueStats::new(self.queue.as_str())
            .count("ready", ready)
            .count("consumers", consumers)
            .count("dead", dead))
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, TaskError> {
        let channel = self.channel().await?;
        let taken = self.take(&channel, limit).await;
        // Closing the channel gives back everything it took, unacknowledged.
        close(channel).await;
        Ok(taken?.iter().map(dead_letter).collect())
    }

    async fn requeue_dead(&self) -> Result<u64, TaskError> {
        let channel = self.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|err| self.error("cannot select confirms", &err))?;
        let mut moved = 0;
        loop {
            let taken = self.take(&channel, REQUEUE_BATCH).await?;
            let Some(last) = taken.last().map(|d| d.delivery_tag) else {
                break;
            };
            let mut confirms = Vec::with_capacity(taken.len());
            for letter in &taken {
                let confirm = channel
                    .basic_publish(
                        ShortString::from(""),
                        ShortString::from(self.queue.as_str()),
                        BasicPublishOptions {
                            mandatory: true,
                            ..BasicPublishOptions::default()
                        },
                        &letter.data,
                        requeued(&letter.properties),
                    )
                    .await
                    .map_err(|err| {
                        self.error(&format!("cannot publish to {}", self.queue), &err)
                    })?;
                confirms.push(confirm);
            }
            for confirm in confirms {
                match confirm.await {
                    Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => {}
                    Ok(_) => {
                        return Err(TaskError::system(format!(
                            "rabbitmq {}: the broker refused or returned a requeued dead \
                             letter; {moved} moved, the rest are still in {}",
                            self.config.url, self.dead
                        )));
                    }
                    Err(err) => return Err(self.error("lost the publisher confirm", &err)),
                }
            }
            channel
                .basic_ack(last, BasicAckOptions { multiple: true })
                .await
                .map_err(|err| self.error(&format!("cannot acknowledge in {}", self.dead), &err))?;
            moved += taken.len() as u64;
        }
        close(channel).await;
        Ok(moved)
    }
}

async fn close(channel: Channel) {
    let _ = channel.close(200, ShortString::from("done")).await;
}

/// A dead-letter message as a [`DeadLetter`]: its failure from ergon's headers.
fn dead_letter(delivery: &lapin::message::Delivery) -> DeadLetter {
    let properties = &delivery.properties;
    let header = |name: &str| {
        properties
            .headers()
            .as_ref()
            .and_then(|headers| headers.inner().get(name))
            .and_then(message::text)
    };
    let failure = header(header::CATEGORY).map(|category| {
        serde_json::json!({
            "task": header(header::TASK),
            "step": header(header::STEP),
            "category": category,
            "error": header(header::MESSAGE),
            "attempts": header(header::ATTEMPTS).and_then(|a| a.parse::<u32>().ok()),
        })
    });
    DeadLetter {
        id: properties
            .message_id()
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        deliveries: header(DELIVERIES_HEADER)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
        failure,
        failed_at_ms: header(header::FAILED_AT).and_then(|t| t.parse().ok()),
        payload: delivery.data.clone(),
    }
}

/// The properties of a dead letter put back in the queue: ergon's failure headers and
/// delivery count removed (it starts over), the rest as it was.
fn requeued(properties: &BasicProperties) -> BasicProperties {
    let mut properties = properties.clone();
    if let Some(headers) = properties.headers().as_ref() {
        let kept: std::collections::BTreeMap<ShortString, AMQPValue> = headers
            .inner()
            .iter()
            .filter(|(key, _)| {
                let key = key.as_str();
                key != DELIVERIES_HEADER && !is_failure_header(key)
            })
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        properties = properties.with_headers(FieldTable::from(kept));
    }
    properties
}

fn is_failure_header(key: &str) -> bool {
    [
        header::CATEGORY,
        header::MESSAGE,
        header::ATTEMPTS,
        header::TASK,
        header::STEP,
        header::FAILED_AT,
    ]
    .contains(&key)
}
