//! Span attribute names, in one place. OpenTelemetry messaging conventions where they apply
//! (still marked Development upstream), ergon's own under `ergon.*`.

/// `messaging.operation.type`: `receive`, `process`, `settle`, `send` or `create`.
pub const OPERATION_TYPE: &str = "messaging.operation.type";
/// `messaging.message.id`: the transaction id.
pub const MESSAGE_ID: &str = "messaging.message.id";
/// `messaging.batch.message_count`: transactions asked for in one fetch.
pub const BATCH_SIZE: &str = "messaging.batch.message_count";
/// `error.type`: the error category of a failed step.
pub const ERROR_TYPE: &str = "error.type";
/// `ergon.task.name`: the task's name in the TOML.
pub const TASK: &str = "ergon.task.name";
/// `ergon.step`: fetch, process, success, exception, settle.
pub const STEP: &str = "ergon.step";
/// `ergon.attempt`: the attempt number, 1-based.
pub const ATTEMPT: &str = "ergon.attempt";
/// `ergon.error.category`: business, system or timeout.
pub const ERROR_CATEGORY: &str = "ergon.error.category";
/// `ergon.settlement`: ack, requeue, dead_letter or drop.
pub const SETTLEMENT: &str = "ergon.settlement";
