//! JSON lines: where a line ends, and how any bytes travel inside one and come back intact.
//!
//! Readers of JSON lines (the file connector, `ergon-runner queue enqueue`) split lines
//! the same way ([`trim_newline`], [`is_blank`]); writers of dead letters (the file
//! connector's dead-letter file, `ergon-runner queue dead-letters`) carry the original
//! payload as a [`Payload`] next to its `payload_encoding`, which [`decode`] turns back
//! into the very bytes that were read: a carriage return, a NUL, a byte-order mark or
//! bytes that are not UTF-8 included. [`payload_of`] does it for a whole dead-letter line.
//!
//! ```
//! use ergon_connectors::jsonl::{Payload, decode};
//!
//! for bytes in [&b"{\"n\": 1.50}"[..], b"12\r34", b"\xEF\xBB\xBF{}", b"\xff\x00"] {
//!     let payload = Payload::of(bytes);
//!     let json = serde_json::to_string(&payload).unwrap();
//!     assert!(!json.contains(['\n', '\r']), "one line");
//!     let raw: Box<serde_json::value::RawValue> = serde_json::from_str(&json).unwrap();
//!     assert_eq!(decode(&raw, payload.encoding()).unwrap(), bytes);
//! }
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The line without its `\n` or `\r\n`.
pub fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Whether a line holds nothing but ASCII whitespace: readers skip it.
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// A payload as a JSON value that gives its exact bytes back (see [`decode`]).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Payload<'a> {
    /// JSON on one line with no surrounding whitespace, embedded as written (keys,
    /// spacing and numbers unchanged).
    Json(&'a RawValue),
    /// Any other UTF-8 text, as a JSON string.
    Text(&'a str),
    /// Bytes that are not UTF-8, in standard base64 with padding (RFC 4648 §4).
    Base64(String),
}

impl<'a> Payload<'a> {
    /// The encoding of `bytes` that keeps them exactly.
    pub fn of(bytes: &'a [u8]) -> Self {
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Payload::Base64(STANDARD.encode(bytes));
        };
        // Raw JSON only when its text is the whole payload: surrounding whitespace would be
        // lost, and a line break would split the line.
        match serde_json::from_str::<&RawValue>(text) {
            Ok(raw) if raw.get().len() == text.len() && !text.contains(['\n', '\r']) => {
                Payload::Json(raw)
            }
            _ => Payload::Text(text),
        }
    }

    /// The name written as `payload_encoding`: `json`, `text` or `base64`.
    pub fn encoding(&self) -> &'static str {
        match self {
            Payload::Json(_) => "json",
            Payload::Text(_) => "text",
            Payload::Base64(_) => "base64",
        }
    }
}

/// The bytes a `payload` written with `encoding` stands for.
///
/// # Errors
///
/// An unknown encoding, or a payload that does not match its encoding, named.
pub fn decode(payload: &RawValue, encoding: &str) -> Result<Vec<u8>, String> {
    let string = || {
        serde_json::from_str::<String>(payload.get())
            .map_err(|err| format!("payload_encoding `{encoding}` needs a string payload: {err}"))
    };
    match encoding {
        "json" => Ok(payload.get().as_bytes().to_vec()),
        "text" => string().map(String::into_bytes),
        "base64" => STANDARD
            .decode(string()?)
            .map_err(|err| format!("payload is not valid base64: {err}")),
        other => Err(format!(
            "unknown payload_encoding `{other}` (expected json, text or base64)"
        )),
    }
}

/// The original bytes of a dead-letter line (of a file connector's dead-letter file, or
/// of `ergon-runner queue dead-letters`): its `payload` decoded by its `payload_encoding`.
///
/// # Errors
///
/// The line is not a JSON object with both keys, or they do not agree (see [`decode`]).
///
/// ```
/// let line = r#"{"id":"in.jsonl:3","payload":"12\r34","payload_encoding":"text"}"#;
/// assert_eq!(ergon_connectors::jsonl::payload_of(line).unwrap(), b"12\r34");
/// ```
pub fn payload_of(line: &str) -> Result<Vec<u8>, String> {
    #[derive(Deserialize)]
    struct Letter<'a> {
        #[serde(borrow)]
        payload: &'a RawValue,
        payload_encoding: &'a str,
    }
    let letter: Letter<'_> = serde_json::from_str(line).map_err(|err| {
        format!("not a dead-letter line with `payload` and `payload_encoding`: {err}")
    })?;
    decode(letter.payload, letter.payload_encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(bytes: &[u8]) -> (String, &'static str) {
        let payload = Payload::of(bytes);
        let json = serde_json::to_string(&payload).unwrap();
        let line = format!(
            r#"{{"payload":{json},"payload_encoding":"{}"}}"#,
            payload.encoding()
        );
        assert_eq!(payload_of(&line).unwrap(), bytes, "{line}");
        (json, payload.encoding())
    }

    #[test]
    fn each_kind_of_payload_comes_back_byte_for_byte() {
        assert_eq!(
            round_trip(br#"{"b":1.50,"a":2}"#),
            (r#"{"b":1.50,"a":2}"#.to_owned(), "json")
        );
        assert_eq!(round_trip(b"12\r34"), (r#""12\r34""#.to_owned(), "text"));
        assert_eq!(round_trip(b" {} ").1, "text", "surrounding spaces are kept");
        assert_eq!(round_trip(b"{\n\"a\":1}").1, "text", "a line break is kept");
        assert_eq!(round_trip(b"a\0b").0, r#""a\u0000b""#);
        assert_eq!(
            round_trip("\u{feff}{}".as_bytes()).1,
            "text",
            "a BOM is kept"
        );
        assert_eq!(round_trip(b"").1, "text");
        assert_eq!(
            round_trip(&[0xff, b'a']),
            (r#""/2E=""#.to_owned(), "base64")
        );
    }

    #[test]
    fn a_payload_that_does_not_match_its_encoding_is_named() {
        let raw: Box<RawValue> = serde_json::from_str("12").unwrap();
        assert!(decode(&raw, "text").unwrap_err().contains("needs a string"));
        assert!(
            decode(&raw, "rot13")
                .unwrap_err()
                .contains("unknown payload_encoding")
        );
        let raw: Box<RawValue> = serde_json::from_str(r#""%%""#).unwrap();
        assert!(
            decode(&raw, "base64")
                .unwrap_err()
                .contains("not valid base64")
        );
        let line = r#"{"payload":1}"#;
        assert!(payload_of(line).unwrap_err().contains("payload_encoding"));
    }

    #[test]
    fn newlines_are_trimmed_and_blank_lines_known() {
        assert_eq!(trim_newline(b"a\r\n"), b"a");
        assert_eq!(trim_newline(b"a\n"), b"a");
        assert_eq!(trim_newline(b"a\rb"), b"a\rb");
        assert!(is_blank(b" \t\r"));
        assert!(!is_blank(b" x"));
    }
}
