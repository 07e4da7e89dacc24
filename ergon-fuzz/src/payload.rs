//! Target `payload`: the bytes as a transaction's payload, decoded with
//! [`Transaction::json`] into the shapes tasks use (a typed order with nested structs, an
//! internally tagged enum, a loose untagged tree, [`serde_json::Value`]), and read with
//! [`Transaction::text`] and [`Transaction::payload_value`].
//!
//! Checks: a decode error is a business error naming the transaction and the target
//! type; a payload that decodes as a [`serde_json::Value`] encodes back
//! ([`Transaction::from_json`]) and decodes to the same value (floats aside: without
//! serde_json's `float_roundtrip` a re-parsed float may differ in its last bit).

use std::collections::BTreeMap;

use ergon_core::{Category, Transaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// JSON's punctuation and edge values, and the examples' field names.
pub const DICTIONARY: &[&[&str]] = &[
    &[
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "\\",
        "\\u",
        "\\ud800",
        "null",
        "true",
        "false",
        "-0",
        "1e309",
        "-1e-400",
        "18446744073709551616",
        "-9223372036854775809",
        "0.1",
    ],
    &[
        "\"id\"",
        "\"customer\"",
        "\"currency\"",
        "\"items\"",
        "\"sku\"",
        "\"quantity\"",
        "\"unit_price_cents\"",
        "\"total_cents\"",
        "\"type\"",
        "\"created\"",
        "\"cancelled\"",
    ],
];

/// An order, like the quickstart's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "decoded to exercise the decoder; never read")]
struct Order {
    id: String,
    customer: Option<String>,
    currency: String,
    items: Vec<Item>,
    total_cents: u64,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// A line of an [`Order`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "decoded to exercise the decoder; never read")]
struct Item {
    sku: String,
    quantity: u32,
    unit_price_cents: i64,
}

/// An internally tagged enum: decoded through serde's buffered content.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(dead_code, reason = "decoded to exercise the decoder; never read")]
enum Event {
    Created { at: i64, order: Box<Order> },
    Cancelled { reason: Option<String> },
}

/// A loose tree, decoded untagged (each variant tried in turn).
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
#[allow(dead_code, reason = "decoded to exercise the decoder; never read")]
enum Loose {
    Flag(bool),
    Whole(i64),
    Number(f64),
    Text(String),
    List(Vec<Loose>),
    Map(BTreeMap<String, Loose>),
    Nothing(()),
}

/// Decodes `transaction` as `T`, checking what a refusal says.
fn decode<T: DeserializeOwned>(transaction: &Transaction, type_name: &str) -> Option<T> {
    match transaction.json::<T>() {
        Ok(value) => Some(value),
        Err(err) => {
            let shown = err.to_string();
            assert_eq!(err.category(), Category::Business, "{shown}");
            assert!(
                shown.contains(transaction.id()) && shown.contains(type_name),
                "a decode error must name the transaction and the type: {shown}"
            );
            None
        }
    }
}

/// Whether `value` holds a float anywhere.
fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(fields) => fields.values().any(has_float),
        _ => false,
    }
}

/// The target: `data` is the payload.
///
/// # Panics
///
/// On a finding: a decoder panicked, an error does not name its place, or a value does
/// not survive encoding.
pub fn target(data: &[u8]) {
    let transaction = Transaction::new("fuzz-1", data.to_vec());
    decode::<Order>(&transaction, "Order");
    decode::<Event>(&transaction, "Event");
    decode::<Loose>(&transaction, "Loose");
    decode::<(u8, i16, f32, char)>(&transaction, "(u8, i16, f32, char)");
    if let Some(value) = decode::<Value>(&transaction, "Value") {
        let again = Transaction::from_json("fuzz-2", &value)
            .unwrap_or_else(|err| panic!("a decoded value does not encode: {err}"))
            .json::<Value>()
            .unwrap_or_else(|err| panic!("an encoded value does not decode: {err}"));
        if !has_float(&value) {
            assert_eq!(again, value, "a value changed through encoding");
        }
    }
    assert_eq!(
        transaction.text().is_ok(),
        std::str::from_utf8(data).is_ok()
    );
    drop(transaction.payload_value());
}
