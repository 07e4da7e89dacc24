//! Dead letters: one JSON object line per failed transaction, with its original payload
//! in an encoding that gives its bytes back exactly ([`Payload`]).

use std::time::SystemTime;

use ergon_core::transaction::Metadata;
use ergon_core::{Failure, TaskError, Transaction};
use serde::Serialize;

use crate::jsonl::Payload;

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

/// Appends the dead-letter line of `transaction` failed with `failure` to `buf`.
pub(crate) fn encode_record(
    buf: &mut Vec<u8>,
    transaction: &Transaction,
    failure: &Failure,
    failed_at: SystemTime,
) -> Result<(), TaskError> {
    let payload = Payload::of(transaction.payload());
    let record = Record {
        id: transaction.id(),
        task: &failure.task,
        step: failure.step,
        category: failure.category.as_str(),
        error: &failure.message,
        attempts: failure.attempts,
        failed_at: humantime::format_rfc3339_millis(failed_at).to_string(),
        metadata: transaction.metadata(),
        payload_encoding: payload.encoding(),
        payload,
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
