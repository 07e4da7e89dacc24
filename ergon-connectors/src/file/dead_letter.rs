//! Dead letters: one JSON object line per failed transaction, with its original payload.

use std::time::SystemTime;

use ergon_core::transaction::Metadata;
use ergon_core::{Failure, TaskError, Transaction};
use serde::Serialize;
use serde_json::value::RawValue;

/// One dead-letter line, keys in this order.
#[derive(Serialize)]
struct Record<'a> {
    id: &'a str,
    task: &'a str,
    step: &'a str,
    category: &'a str,
    error: &'a str,
    attempts: u32,
    failed_at: String,
    metadata: &'a Metadata,
    payload: Payload<'a>,
    payload_encoding: &'static str,
}

/// The original payload, as close to its bytes as JSON allows.
#[derive(Serialize)]
#[serde(untagged)]
enum Payload<'a> {
    /// JSON, embedded as written (keys, spacing and numbers unchanged).
    Json(Box<RawValue>),
    /// UTF-8 text that is not JSON, as a string.
    Text(&'a str),
    /// Bytes that are not UTF-8, in standard base64.
    Base64(String),
}

/// Appends the dead-letter line of `transaction` failed with `failure` to `buf`.
pub(crate) fn encode_record(
    buf: &mut Vec<u8>,
    transaction: &Transaction,
    failure: &Failure,
    failed_at: SystemTime,
) -> Result<(), TaskError> {
    let payload = payload(transaction.payload());
    let payload_encoding = match payload {
        Payload::Json(_) => "json",
        Payload::Text(_) => "text",
        Payload::Base64(_) => "base64",
    };
    let record = Record {
        id: transaction.id(),
        task: &failure.task,
        step: failure.step,
        category: failure.category.as_str(),
        error: &failure.message,
        attempts: failure.attempts,
        failed_at: humantime::format_rfc3339_millis(failed_at).to_string(),
        metadata: transaction.metadata(),
        payload,
        payload_encoding,
    };
    serde_json::to_writer(&mut *buf, &record).map_err(|err| {
        TaskError::system(format!(
            "cannot encode the dead letter of transaction {}",
            transaction.id()
        ))
        .with_source(err)
        .non_retryable()
    })?;
    buf.push(b'\n');
    Ok(())
}

fn payload(bytes: &[u8]) -> Payload<'_> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Payload::Base64(base64(bytes));
    };
    // Line breaks in JSON are whitespace between tokens: removing them keeps the value
    // and keeps the record on one line.
    let one_line = if text.contains(['\n', '\r']) {
        text.replace(['\n', '\r'], "")
    } else {
        text.to_owned()
    };
    match RawValue::from_string(one_line) {
        Ok(raw) => Payload::Json(raw),
        Err(_) => Payload::Text(text),
    }
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn payload_encodings() {
        assert!(
            matches!(payload(br#" {"b":1.50,"a":2} "#), Payload::Json(raw) if raw.get() == r#"{"b":1.50,"a":2}"#)
        );
        assert!(
            matches!(payload(b"{\n\"a\":\r\n1}"), Payload::Json(raw) if raw.get() == r#"{"a":1}"#)
        );
        assert!(matches!(payload(b"{\"a\":"), Payload::Text("{\"a\":")));
        assert!(matches!(payload(b""), Payload::Text("")));
        assert!(matches!(payload(&[0xff, b'a']), Payload::Base64(s) if s == "/2E="));
    }
}
