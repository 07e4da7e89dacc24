//! Publishing with publisher confirms, in *rounds* on a few channels (*lanes*).
//!
//! A dispatch queues its messages and waits for the answer. The first free lane takes
//! everything queued as one round: it publishes every message of it before awaiting any
//! confirm, then awaits every confirm of the round and answers each dispatch of it. Only
//! the lane publishes on its channel, one round at a time, and that is what makes each
//! outcome belong to the right dispatch:
//!
//! * A `basic.return` carries no delivery tag, and lapin hands a returned message to
//!   whichever confirm it completes next (in no set order when one `basic.ack` with
//!   `multiple` covers several). With concurrent dispatches on one channel, one
//!   dispatch's unroutable message can fail another dispatch and let its own return
//!   `Ok`: the message lost. Measured here (RabbitMQ 3.10, lapin 4.12): 50,000
//!   single-message publishes from 256 tasks on one channel, every other one unroutable,
//!   and 5,600 to 10,000 of them got the other's outcome. The broker sends a message's
//!   `basic.return` before its `basic.ack`, so every return of a round comes attached to
//!   a confirm of that round; the lane gives it to the dispatch holding its
//!   `message_id` (every message carries its transaction id there).
//! * Delivery tags are counted by the client: two tasks publishing at once on one
//!   channel can number their messages in one order and send them in the other. Here
//!   the lane alone publishes, and a `basic.nack` (an internal error of the broker), or
//!   a return whose `message_id` is not in the round, fails every dispatch of the round:
//!   retried, never lost, whatever the order.
//!
//! Several lanes let the next round go out while one waits for its confirms, so the
//! broker always has work. Cost: a dispatch's messages go through a queue and a oneshot
//! answer; measured against 256 tasks publishing on one shared channel (the way this
//! connector published before), the same throughput within this host's noise, 1 to 16
//! lanes alike (persistent messages: the broker's disk write is the bound).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use futures_util::stream::FuturesUnordered;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use tokio::sync::{mpsc, oneshot};

/// Channels publishing for one connector.
const LANES: usize = 4;

/// Messages a round takes at most (whole dispatches: one larger dispatch is one round).
const ROUND_MAX: usize = 1024;

/// One message to publish.
pub(crate) struct Outbound {
    /// Its `message_id`, by which a returned message is recognised.
    pub id: String,
    pub exchange: ShortString,
    pub routing_key: ShortString,
    pub payload: Bytes,
    pub properties: BasicProperties,
}

/// Why a dispatch was not confirmed.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The broker returned message `id` as unroutable.
    Returned {
        id: String,
        exchange: String,
        routing_key: String,
        reply: String,
    },
    /// The broker refused a message of the round (`basic.nack`), or returned one that
    /// cannot be told apart: every dispatch of the round is failed, to be retried.
    Unconfirmed,
    /// The channel failed: the session is lost.
    Lost(lapin::Error),
    /// The lane is gone (its session is closing).
    Closed,
}

/// A dispatch handed to a lane.
struct Request {
    messages: Vec<Outbound>,
    answer: oneshot::Sender<Result<(), Refusal>>,
}

/// The lanes of one session, and the dispatches waiting for a free one.
pub(crate) struct Publisher {
    waiting: mpsc::UnboundedSender<Request>,
}

/// Where free lanes take their next round: the first free lane takes everything waiting.
type Waiting = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Request>>>;

impl Publisher {
    /// Puts `first` (already used to declare the topology) and [`LANES`] − 1 new channels
    /// in confirm mode and starts their lanes.
    pub(crate) async fn open(
        connection: &Connection,
        first: Channel,
    ) -> Result<Self, lapin::Error> {
        let (waiting, requests) = mpsc::unbounded_channel();
        let requests: Waiting = Arc::new(tokio::sync::Mutex::new(requests));
        let mut channel = Some(first);
        for _ in 0..LANES {
            let channel = match channel.take() {
                Some(channel) => channel,
                None => connection.create_channel().await?,
            };
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            tokio::spawn(run_lane(channel, requests.clone()));
        }
        Ok(Self { waiting })
    }

    /// Publishes `messages` and waits until the broker confirmed every one of them.
    pub(crate) async fn publish(&self, messages: Vec<Outbound>) -> Result<(), Refusal> {
        if messages.is_empty() {
            return Ok(());
        }
        let (answer, answered) = oneshot::channel();
        self.waiting
            .send(Request { messages, answer })
            .map_err(|_| Refusal::Closed)?;
        answered.await.unwrap_or(Err(Refusal::Closed))
    }
}

/// A lane: takes what is waiting as a round, publishes it, and again, until its
/// publisher is dropped.
async fn run_lane(channel: Channel, requests: Waiting) {
    loop {
        let round = {
            let mut requests = requests.lock().await;
            let Some(first) = requests.recv().await else {
                return;
            };
            let mut count = first.messages.len();
            let mut round = vec![first];
            while count < ROUND_MAX {
                let Ok(more) = requests.try_recv() else {
                    break;
                };
                count += more.messages.len();
                round.push(more);
            }
            round
        };
        publish_round(&channel, round).await;
    }
}

/// Awaits every confirm of a round, in the order published.
async fn confirm_all(
    confirms: Vec<lapin::PublisherConfirm>,
) -> Result<Vec<Confirmation>, lapin::Error> {
    let mut confirmations = Vec::with_capacity(confirms.len());
    for confirm in confirms {
        confirmations.push(confirm.await?);
    }
    Ok(confirmations)
}

/// Publishes every message of `round`, awaits every confirm, answers each dispatch.
///
/// The publishes are polled as an unordered set (each first poll, in order, numbers its
/// message and queues its frames) and the confirms are awaited one after the other:
/// `join_all` over a round moved every future and output through an ordered heap: with
/// rounds of 1,024 the client's CPU is 7 % lower this way (BENCHMARKS.md, "`amqp_publish`:
/// the window of confirms").
async fn publish_round(channel: &Channel, mut round: Vec<Request>) {
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let publishes = round.iter_mut().flat_map(|request| {
        request.messages.iter_mut().map(|message| {
            channel.basic_publish(
                message.exchange.clone(),
                message.routing_key.clone(),
                options,
                &message.payload,
                std::mem::take(&mut message.properties),
            )
        })
    });
    let confirmed = match publishes
        .collect::<FuturesUnordered<_>>()
        .try_collect::<Vec<_>>()
        .await
    {
        Ok(confirms) => confirm_all(confirms).await,
        Err(err) => Err(err),
    };
    let confirmations = match confirmed {
        Ok(confirmations) => confirmations,
        Err(err) => {
            for request in round {
                let _ = request.answer.send(Err(Refusal::Lost(err.clone())));
            }
            return;
        }
    };
    // A nack, or a return whose `message_id` is not in the round (never expected: every
    // message carries its id), fails the whole round: retried, never lost.
    let mut doubtful = false;
    let mut returned = HashMap::new();
    for confirmation in confirmations {
        let message = match confirmation {
            Confirmation::Ack(message) => message,
            Confirmation::Nack(message) => {
                doubtful = true;
                message
            }
            Confirmation::NotRequested => None,
        };
        if let Some(message) = message {
            let id = message.delivery.properties.message_id().clone();
            let reply = format!("{} {}", message.reply_code, message.reply_text);
            returned.insert(id.map(|id| id.to_string()).unwrap_or_default(), reply);
        }
    }
    if !returned.is_empty() {
        let ids: HashSet<&str> = round
            .iter()
            .flat_map(|r| &r.messages)
            .map(|m| m.id.as_str())
            .collect();
        doubtful |= returned.keys().any(|id| !ids.contains(id.as_str()));
    }
    for request in round {
        let first_returned = request
            .messages
            .iter()
            .find_map(|m| Some((m, returned.get(&m.id)?)));
        let outcome = match first_returned {
            Some((message, reply)) => Err(Refusal::Returned {
                id: message.id.clone(),
                exchange: message.exchange.to_string(),
                routing_key: message.routing_key.to_string(),
                reply: reply.clone(),
            }),
            None if doubtful => Err(Refusal::Unconfirmed),
            None => Ok(()),
        };
        let _ = request.answer.send(outcome);
    }
}
