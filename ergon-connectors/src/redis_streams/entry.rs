//! Stream entries to transactions and back: the layout of an entry's fields.
//!
//! | field        | holds                                                            |
//! |--------------|------------------------------------------------------------------|
//! | `id`         | the transaction id (missing: the entry's own id, `1700000000000-0`) |
//! | `payload`    | the payload, raw bytes (missing: an empty payload)               |
//! | `metadata`   | the metadata, a JSON object of strings (missing or not JSON: none) |
//! | `deliveries` | only on an entry a requeue added: the deliveries it had before    |
//!
//! Dead letters add `failure` ([`Failure::to_json`]), `deliveries` and `failed_at`
//! (milliseconds since the Unix epoch) to the first three.

use bytes::Bytes;
use ergon_core::transaction::Metadata;
use ergon_core::{Failure, Transaction};
use redis::Value;

/// The transaction id.
pub(crate) const ID: &str = "id";
/// The payload, raw bytes.
pub(crate) const PAYLOAD: &str = "payload";
/// The metadata as a JSON object.
pub(crate) const METADATA: &str = "metadata";
/// Deliveries so far: on requeued copies and on dead letters.
pub(crate) const DELIVERIES: &str = "deliveries";
/// A dead letter's failure, [`Failure::to_json`].
pub(crate) const FAILURE: &str = "failure";
/// When a dead letter was added, milliseconds since the Unix epoch.
pub(crate) const FAILED_AT: &str = "failed_at";

/// The fields of an entry holding `tx`, in the order they are added.
pub(crate) fn fields(tx: &Transaction) -> Vec<(&'static str, Bytes)> {
    let metadata = serde_json::to_string(tx.metadata()).unwrap_or_else(|_| "{}".to_owned());
    fields_with(tx, Bytes::from(metadata))
}

/// The fields of an entry holding `tx` with the `metadata` field as given.
fn fields_with(tx: &Transaction, metadata: Bytes) -> Vec<(&'static str, Bytes)> {
    vec![
        (ID, Bytes::copy_from_slice(tx.id().as_bytes())),
        (PAYLOAD, tx.payload().clone()),
        (METADATA, metadata),
    ]
}

/// The fields of `tx` requeued after `tx.deliveries()` deliveries; `unread` is the
/// original `metadata` field when it was not a JSON object (kept as it was, not lost).
pub(crate) fn requeued(tx: &Transaction, unread: Option<&Bytes>) -> Vec<(&'static str, Bytes)> {
    let mut fields = match unread {
        Some(original) => fields_with(tx, original.clone()),
        None => fields(tx),
    };
    fields.push((DELIVERIES, Bytes::from(tx.deliveries().to_string())));
    fields
}

/// The fields of `tx` dead-lettered with `failure` (`unread`: as [`requeued`]).
pub(crate) fn dead_letter(
    tx: &Transaction,
    unread: Option<&Bytes>,
    failure: &Failure,
) -> Vec<(&'static str, Bytes)> {
    let mut fields = requeued(tx, unread);
    fields.push((FAILURE, Bytes::from(failure.to_json().to_string())));
    fields.push((FAILED_AT, Bytes::from(now_ms().to_string())));
    fields
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An entry read from a stream, its fields taken apart.
pub(crate) struct Entry {
    /// The entry's id in the stream (the receipt).
    pub(crate) entry_id: String,
    /// The transaction id (the `id` field, else the entry id).
    pub(crate) id: String,
    pub(crate) payload: Bytes,
    /// The `metadata` field as stored.
    pub(crate) metadata: Option<Bytes>,
    /// The `deliveries` field: deliveries before this entry was added (requeues).
    pub(crate) carried: u32,
    /// The `failure` field (dead letters).
    pub(crate) failure: Option<Bytes>,
    /// The `failed_at` field (dead letters).
    pub(crate) failed_at: Option<i64>,
}

/// The entries of an `XREADGROUP` reply (nil when nothing came): read straight from the
/// reply, without redis-rs's `StreamReadReply`, which copies the whole reply and builds
/// two hash maps per entry (a quarter of the consumer's CPU at 40 k entries/s).
pub(crate) fn read_reply(reply: Value) -> Vec<Entry> {
    // RESP2: [[stream, [entry, ...]]]; RESP3: {stream: [entry, ...]}.
    let streams = match reply {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => pair.pop(),
                _ => None,
            })
            .collect(),
        Value::Map(streams) => streams.into_iter().map(|(_, entries)| entries).collect(),
        _ => Vec::new(),
    };
    streams.into_iter().flat_map(range_reply).collect()
}

/// The cursor and the entries of an `XAUTOCLAIM` reply (`[cursor, [entry, ...], [deleted
/// id, ...]]`).
pub(crate) fn claim_reply(reply: Value) -> (String, Vec<Entry>) {
    let Value::Array(items) = reply else {
        return ("0-0".to_owned(), Vec::new());
    };
    let mut items = items.into_iter();
    let cursor = items
        .next()
        .and_then(text)
        .unwrap_or_else(|| "0-0".to_owned());
    let entries = items.next().map(range_reply).unwrap_or_default();
    (cursor, entries)
}

/// The entries of an `XRANGE` reply, or of one stream of an `XREADGROUP` reply: `[[id,
/// [field, value, ...]], ...]`. A deleted entry (nil fields) is left out.
pub(crate) fn range_reply(reply: Value) -> Vec<Entry> {
    match reply {
        Value::Array(entries) => entries.into_iter().filter_map(Entry::from_value).collect(),
        _ => Vec::new(),
    }
}

impl Entry {
    /// Takes apart one entry, `[id, [field, value, ...]]`.
    fn from_value(entry: Value) -> Option<Self> {
        let Value::Array(pair) = entry else {
            return None;
        };
        let mut pair = pair.into_iter();
        let entry_id = text(pair.next()?)?;
        let fields = match pair.next()? {
            Value::Array(fields) => fields,
            _ => return None,
        };
        let mut entry = Self {
            id: String::new(),
            entry_id,
            payload: Bytes::new(),
            metadata: None,
            carried: 0,
            failure: None,
            failed_at: None,
        };
        let mut id = None;
        let mut fields = fields.into_iter();
        while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
            let (Some(name), Some(value)) = (bytes(name), bytes(value)) else {
                continue;
            };
            match name.as_slice() {
                n if n == ID.as_bytes() => id = String::from_utf8(value).ok(),
                n if n == PAYLOAD.as_bytes() => entry.payload = Bytes::from(value),
                n if n == METADATA.as_bytes() => entry.metadata = Some(Bytes::from(value)),
                n if n == DELIVERIES.as_bytes() => {
                    entry.carried = u32::try_from(number(&value)).unwrap_or(u32::MAX)
                }
                n if n == FAILURE.as_bytes() => entry.failure = Some(Bytes::from(value)),
                n if n == FAILED_AT.as_bytes() => {
                    entry.failed_at = i64::try_from(number(&value)).ok()
                }
                _ => {}
            }
        }
        entry.id = id.unwrap_or_else(|| entry.entry_id.clone());
        Some(entry)
    }

    /// The transaction, delivered for the `times_delivered`-th time by the group, and the
    /// `metadata` field when it is not a JSON object of strings: the transaction then has
    /// no metadata, and a requeue or a dead letter writes the field back as it was.
    pub(crate) fn transaction(self, times_delivered: u32) -> (Transaction, Option<Bytes>) {
        let mut builder = Transaction::builder(self.id).payload(self.payload);
        let mut unread = None;
        // `{}`, what every entry without metadata holds, needs no parsing.
        if let Some(json) = self.metadata.filter(|json| json.as_ref() != b"{}") {
            match serde_json::from_slice::<Metadata>(&json) {
                Ok(metadata) => {
                    for (key, value) in metadata {
                        builder = builder.meta(key, value);
                    }
                }
                Err(_) => unread = Some(json),
            }
        }
        let tx = builder
            .build()
            .delivered(self.carried.saturating_add(times_delivered));
        (tx, unread)
    }
}

/// A bulk or simple string's bytes.
fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.into_bytes()),
        _ => None,
    }
}

/// A bulk or simple string as text.
fn text(value: Value) -> Option<String> {
    String::from_utf8(bytes(value)?).ok()
}

/// A decimal number field; 0 when it is not one.
fn number(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fields: &[(&str, &[u8])]) -> Value {
        let fields = fields
            .iter()
            .flat_map(|(k, v)| {
                [
                    Value::BulkString(k.as_bytes().to_vec()),
                    Value::BulkString(v.to_vec()),
                ]
            })
            .collect();
        Value::Array(vec![
            Value::BulkString(b"5-0".to_vec()),
            Value::Array(fields),
        ])
    }

    #[test]
    fn a_requeued_entry_carries_its_deliveries() {
        let tx = Transaction::builder("o-1")
            .payload(&b"\xff\x00{"[..])
            .meta("k", "v")
            .build()
            .delivered(2);
        let stored = requeued(&tx, None);
        let fields: Vec<(&str, &[u8])> = stored.iter().map(|(k, v)| (*k, v.as_ref())).collect();
        let reply = Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"orders".to_vec()),
            Value::Array(vec![entry(&fields)]),
        ])]);
        let mut entries = read_reply(reply);
        assert_eq!(entries.len(), 1);
        let (back, unread) = entries.pop().unwrap().transaction(1);
        assert_eq!(unread, None);
        assert_eq!(back.id(), "o-1");
        assert_eq!(back.payload().as_ref(), b"\xff\x00{");
        assert_eq!(back.meta("k"), Some("v"));
        assert_eq!(back.deliveries(), 3);
    }

    #[test]
    fn an_entry_without_fields_is_still_a_transaction() {
        let entries = range_reply(Value::Array(vec![entry(&[("other", b"x")]), Value::Nil]));
        assert_eq!(entries.len(), 1);
        let (tx, _) = entries.into_iter().next().unwrap().transaction(1);
        assert_eq!(tx.id(), "5-0");
        assert!(tx.payload().is_empty());
        assert_eq!(tx.deliveries(), 1);
    }

    #[test]
    fn metadata_that_is_not_json_is_kept_as_it_was() {
        let entries = range_reply(Value::Array(vec![entry(&[
            ("id", b"o-2"),
            ("payload", b"{}"),
            ("metadata", b"not json"),
        ])]));
        let (tx, unread) = entries.into_iter().next().unwrap().transaction(1);
        assert!(tx.metadata().is_empty());
        let failure = Failure {
            task: "t".into(),
            step: "process",
            category: ergon_core::Category::Business,
            message: "no".into(),
            attempts: 1,
        };
        let stored = dead_letter(&tx, unread.as_ref(), &failure);
        let metadata = stored.iter().find(|(k, _)| *k == METADATA).unwrap();
        assert_eq!(metadata.1.as_ref(), b"not json");
    }

    #[test]
    fn a_claim_reply_has_its_cursor() {
        let reply = Value::Array(vec![
            Value::BulkString(b"7-0".to_vec()),
            Value::Array(vec![entry(&[("id", b"a")])]),
            Value::Array(vec![]),
        ]);
        let (cursor, entries) = claim_reply(reply);
        assert_eq!(cursor, "7-0");
        assert_eq!(entries[0].id, "a");
    }
}
