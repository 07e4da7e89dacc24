//! Dispatch: what one request carries.

use bytes::Bytes;
use ergon_core::{TaskError, Transaction};
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};

/// The idempotency key of a batch: the SHA-256 (hex) of its ids joined by `\n`, the same
/// every time the same batch is retried.
pub(super) fn batch_key(transactions: &[Transaction]) -> String {
    let mut hash = Sha256::new();
    for (i, tx) in transactions.iter().enumerate() {
        if i > 0 {
            hash.update(b"\n");
        }
        hash.update(tx.id().as_bytes());
    }
    hash.finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The body of a batch: a JSON array of the payloads, each as written.
///
/// # Errors
///
/// A business error naming the connector and the first transaction whose payload is not
/// JSON.
pub(super) fn batch_body(name: &str, transactions: &[Transaction]) -> Result<Bytes, TaskError> {
    let size = transactions
        .iter()
        .map(|tx| tx.payload().len() + 1)
        .sum::<usize>()
        + 2;
    let mut body = Vec::with_capacity(size);
    body.push(b'[');
    for (i, tx) in transactions.iter().enumerate() {
        let raw: &RawValue = serde_json::from_slice(tx.payload()).map_err(|err| {
            TaskError::business(format!(
                "connector `{name}`: transaction {} cannot go in a JSON array: its payload is not JSON",
                tx.id()
            ))
            .with_source(err)
        })?;
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(raw.get().as_bytes());
    }
    body.push(b']');
    Ok(body.into())
}

/// The error a dispatch of several requests returns: a business error if any (trying
/// again will not make that request pass), else the first.
pub(super) fn worst(errors: impl IntoIterator<Item = TaskError>) -> Option<TaskError> {
    let mut first = None;
    for err in errors {
        if !err.is_retryable() {
            return Some(err);
        }
        first.get_or_insert(err);
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_a_json_array_of_its_payloads_with_a_stable_key() {
        let batch = [
            Transaction::new("a", r#"{"n": 1.50}"#),
            Transaction::new("b", "[2]"),
        ];
        assert_eq!(
            &batch_body("out", &batch).unwrap()[..],
            br#"[{"n": 1.50},[2]]"#
        );
        assert_eq!(batch_key(&batch), batch_key(&batch.clone()));
        assert_eq!(batch_key(&batch).len(), 64);
        assert_ne!(batch_key(&batch), batch_key(&batch[..1]));
        let err = batch_body("out", &[Transaction::new("c", "not json")]).unwrap_err();
        assert!(err.to_string().contains("transaction c"), "{err}");
        assert!(!err.is_retryable());
    }
}
