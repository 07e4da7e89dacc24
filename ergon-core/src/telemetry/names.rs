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
/// `ergon.task`: the task's name in the TOML.
pub const TASK: &str = "ergon.task";
/// `ergon.step`: fetch, process, success, exception, settle.
pub const STEP: &str = "ergon.step";
/// `ergon.attempt`: the attempt number, 1-based.
pub const ATTEMPT: &str = "ergon.attempt";
/// `ergon.error.category`: business, system or timeout.
pub const ERROR_CATEGORY: &str = "ergon.error.category";
/// `ergon.settlement`: ack, requeue, dead_letter or drop.
pub const SETTLEMENT: &str = "ergon.settlement";
/// `messaging.system`: the kind of the task's input connector (`rabbitmq`, `file`, ...).
pub const SYSTEM: &str = "messaging.system";
/// `messaging.destination.name`: the input connector's name in the TOML.
pub const DESTINATION: &str = "messaging.destination.name";
/// `messaging.consumer.group.name`: the task, as the group its workers compete in.
pub const CONSUMER_GROUP: &str = "messaging.consumer.group.name";
/// `ergon.worker`: the worker's index within its task.
pub const WORKER: &str = "ergon.worker";
/// `ergon.policy.concurrency`: transactions in flight per worker.
pub const CONCURRENCY: &str = "ergon.policy.concurrency";
/// `ergon.policy.batch_size`: transactions asked for per fetch.
pub const POLICY_BATCH_SIZE: &str = "ergon.policy.batch_size";
/// `ergon.policy.streaming`: whether an empty input is waited on.
pub const STREAMING: &str = "ergon.policy.streaming";
/// `ergon.policy.max_attempts`: the step's attempt limit.
pub const MAX_ATTEMPTS: &str = "ergon.policy.max_attempts";
/// `ergon.policy.timeout_ms`: the step's per-attempt timeout (absent: none).
pub const TIMEOUT_MS: &str = "ergon.policy.timeout_ms";

/// The service a metric is about: its name in the file (`[services.NAME]`).
pub const SERVICE: &str = "ergon.service";
/// Metric: a service's circuit breaker state, 0 closed, 1 open, 2 half-open.
pub const CIRCUIT_BREAKER_STATE: &str = "ergon.service.circuit_breaker.state";
/// Metric: calls a service's open circuit breaker rejected without trying.
pub const CIRCUIT_BREAKER_REJECTED: &str = "ergon.service.circuit_breaker.rejected";
