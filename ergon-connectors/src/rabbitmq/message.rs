//! Between AMQP messages and transactions: deliveries in, publications out.

use ergon_core::Transaction;
use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

/// Metadata keys the connector sets on consumed transactions.
pub mod meta {
    /// The exchange the message was published to (`""`: the default exchange).
    pub const EXCHANGE: &str = "amqp.exchange";
    /// Its routing key.
    pub const ROUTING_KEY: &str = "amqp.routing_key";
    /// `"true"` when the broker delivered it before (to this or another consumer).
    pub const REDELIVERED: &str = "amqp.redelivered";
    /// Deliveries so far, from the broker's `x-delivery-count` (quorum queues) when
    /// present, else `1`, or `2` for a redelivery.
    pub const DELIVERY_COUNT: &str = "amqp.delivery_count";
    /// The content type property, when set.
    pub const CONTENT_TYPE: &str = "amqp.content_type";
    /// The delivery tag and the channel generation it belongs to (`GENERATION:TAG`):
    /// how a settlement finds its delivery, and knows when its channel is gone.
    pub const DELIVERY: &str = "amqp.delivery";
}

/// The prefix of the metadata keys that describe one delivery and are not forwarded as
/// headers when the transaction is published again.
const TRANSPORT_PREFIX: &str = "amqp.";

/// A delivery on channel generation `generation` as a transaction.
///
/// The id is the `message_id` property, else `amqp-` and a hash of the exchange, routing
/// key and body, which stays the same when the message is redelivered.
pub(crate) fn transaction(delivery: Delivery, generation: u64) -> Transaction {
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
    let mut count = None;
    if let Some(headers) = properties.headers() {
        for (key, value) in headers {
            if key.as_str() == "x-delivery-count" {
                count = integer(value).map(|n| n + 1);
            }
            if let Some(text) = text(value) {
                builder = builder.meta(key.as_str(), text);
            }
        }
    }
    if let Some(content_type) = properties.content_type() {
        builder = builder.meta(meta::CONTENT_TYPE, content_type.as_str());
    }
    let count = count.unwrap_or(if delivery.redelivered { 2 } else { 1 });
    builder
        .meta(meta::EXCHANGE, delivery.exchange.as_str())
        .meta(meta::ROUTING_KEY, delivery.routing_key.as_str())
        .meta(meta::REDELIVERED, delivery.redelivered.to_string())
        .meta(meta::DELIVERY_COUNT, count.to_string())
        .meta(
            meta::DELIVERY,
            format!("{generation}:{}", delivery.delivery_tag),
        )
        .payload(delivery.data)
        .build()
}

/// The channel generation and delivery tag of a consumed transaction.
pub(crate) fn delivery_of(tx: &Transaction) -> Option<(u64, u64)> {
    let (generation, tag) = tx.meta(meta::DELIVERY)?.split_once(':')?;
    Some((generation.parse().ok()?, tag.parse().ok()?))
}

/// The properties a transaction is published with: persistent, its id as `message_id`,
/// its metadata (lineage, `traceparent`, …) as headers, plus `extra` headers.
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
        .with_message_id(ShortString::from(tx.id()))
        .with_headers(headers);
    if let Some(content_type) = tx.meta(meta::CONTENT_TYPE) {
        properties = properties.with_content_type(ShortString::from(content_type));
    }
    properties
}

/// A header value as metadata text; tables and arrays are left out.
fn text(value: &AMQPValue) -> Option<String> {
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
