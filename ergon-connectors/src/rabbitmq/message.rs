//! Between AMQP messages and transactions: deliveries in, publications out.

use ergon_core::Transaction;
use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

/// Metadata keys the connector sets on consumed transactions: where the message came
/// from, never the state of its delivery (that is in its receipt and
/// [`Transaction::deliveries`]).
pub mod meta {
    /// The exchange the message was published to (`""`: the default exchange).
    pub const EXCHANGE: &str = "amqp.exchange";
    /// Its routing key.
    pub const ROUTING_KEY: &str = "amqp.routing_key";
    /// The content type property, when set.
    pub const CONTENT_TYPE: &str = "amqp.content_type";
}

/// The prefix of the metadata keys that describe where a message came from; they are not
/// forwarded as headers when the transaction is published again.
const TRANSPORT_PREFIX: &str = "amqp.";

/// The header in which ergon carries the delivery count of a message it requeued by
/// publishing it again (classic queues count nothing themselves).
pub(crate) const DELIVERIES_HEADER: &str = "x-ergon-deliveries";

/// The header in which quorum queues count earlier deliveries.
const BROKER_COUNT_HEADER: &str = "x-delivery-count";

/// What a settlement needs: the delivery tag and the channel generation it belongs to,
/// so a settlement knows when its channel is gone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tag {
    pub generation: u64,
    pub tag: u64,
}

/// A delivery on channel generation `generation` as a transaction and its receipt.
///
/// The id is the `message_id` property, else `amqp-` and a hash of the exchange, routing
/// key and body, which stays the same when the message is redelivered. The delivery count
/// is the quorum queue's `x-delivery-count` + 1 when present, else ergon's own
/// `x-ergon-deliveries` (1 when absent) plus one when the broker flags a redelivery.
pub(crate) fn transaction(delivery: Delivery, generation: u64) -> (Transaction, Tag) {
    let properties = &delivery.properties;
    let id = match properties.message_id() {
        Some(id) if !id.as_str().is_empty() => id.to_string(),
        _ => format!(
            "amqp-{:016x}",
            fnv1a(&[
                delivery.exchange.as_str().as_bytes(),
                delivery.routing_key.as_str().as_bytes(),
                &delivery.data,
            ])
        ),
    };
    let mut builder = Transaction::builder(id);
    let (mut broker_count, mut ergon_count) = (None, None);
    if let Some(headers) = properties.headers() {
        for (key, value) in headers {
            match key.as_str() {
                BROKER_COUNT_HEADER => broker_count = integer(value),
                DELIVERIES_HEADER => {
                    ergon_count = integer(value).or_else(|| text(value)?.parse().ok());
                }
                key => {
                    if let Some(text) = text(value) {
                        builder = builder.meta(key, text);
                    }
                }
            }
        }
    }
    if let Some(content_type) = properties.content_type() {
        builder = builder.meta(meta::CONTENT_TYPE, content_type.as_str());
    }
    let count = match broker_count {
        Some(earlier) => earlier.saturating_add(1),
        None => ergon_count
            .unwrap_or(1)
            .saturating_add(i64::from(delivery.redelivered)),
    };
    let tag = Tag {
        generation,
        tag: delivery.delivery_tag,
    };
    let transaction = builder
        .meta(meta::EXCHANGE, delivery.exchange.as_str())
        .meta(meta::ROUTING_KEY, delivery.routing_key.as_str())
        .payload(delivery.data)
        .build()
        .delivered(u32::try_from(count).unwrap_or(u32::MAX));
    (transaction, tag)
}

/// The properties a transaction is published with: persistent, its id as `message_id`
/// (by which a returned message is recognised), its metadata (lineage, `traceparent`, …)
/// as headers, plus `extra` headers (no header table when there are none).
pub(crate) fn properties(tx: &Transaction, extra: &[(&str, String)]) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (key, value) in tx.metadata() {
        if !key.starts_with(TRANSPORT_PREFIX) {
            headers.insert(
                ShortString::from(key.as_str()),
                AMQPValue::LongString(LongString::from(value.as_str())),
            );
        }
    }
    for (key, value) in extra {
        headers.insert(
            ShortString::from(*key),
            AMQPValue::LongString(LongString::from(value.as_str())),
        );
    }
    let mut properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_message_id(ShortString::from(tx.id()));
    if !headers.inner().is_empty() {
        properties = properties.with_headers(headers);
    }
    if let Some(content_type) = tx.meta(meta::CONTENT_TYPE) {
        properties = properties.with_content_type(ShortString::from(content_type));
    }
    properties
}

/// A header value as metadata text; tables and arrays are left out.
pub(crate) fn text(value: &AMQPValue) -> Option<String> {
    Some(match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::Float(x) => x.to_string(),
        AMQPValue::Double(x) => x.to_string(),
        AMQPValue::Timestamp(t) => t.to_string(),
        other => integer(other)?.to_string(),
    })
}

fn integer(value: &AMQPValue) -> Option<i64> {
    Some(match *value {
        AMQPValue::ShortShortInt(n) => n.into(),
        AMQPValue::ShortShortUInt(n) => n.into(),
        AMQPValue::ShortInt(n) => n.into(),
        AMQPValue::ShortUInt(n) => n.into(),
        AMQPValue::LongInt(n) => n.into(),
        AMQPValue::LongUInt(n) => n.into(),
        AMQPValue::LongLongInt(n) => n,
        _ => return None,
    })
}

/// A TOML value as a queue or exchange argument.
pub(crate) fn argument(value: &serde_json::Value) -> Option<AMQPValue> {
    Some(match value {
        serde_json::Value::Bool(b) => AMQPValue::Boolean(*b),
        serde_json::Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64()?),
        },
        _ => return None,
    })
}

/// 64-bit FNV-1a over `parts`.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in *part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
