//! `ProducerPolicy`: the loop and fetch (or generation) of a producer, and one retry policy
//! per step: prepare, dispatch, success, exception, settle.

use serde::{Deserialize, Serialize};

use super::{FailureAction, FetchPolicy, LoopPolicy, StepPolicy, TransactionPolicy};

/// Everything that governs a producer: the `policy` table of a producer task.
///
/// Transactions come from the input connector when the task has one, else from the task's
/// own `generate_transactions`; `fetch.batch_size` bounds both.
///
/// ```toml
/// [tasks.publish.policy.loop]
/// concurrency = 32
/// limit = 1000
///
/// [tasks.publish.policy.dispatch.retry]
/// max_attempts = 5
/// timeout = "5s"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProducerPolicy {
    /// The loop: concurrency, limit, timeout, streaming, shutdown drain.
    pub r#loop: LoopPolicy,
    /// Fetching (or generating) batches of transactions to produce.
    pub fetch: FetchPolicy,
    /// The runtime budget of one transaction (prepare, dispatch and success together).
    pub transaction: TransactionPolicy,
    /// The `prepare_transaction` step.
    pub prepare: StepPolicy,
    /// Dispatching the prepared transaction through the output connector.
    pub dispatch: StepPolicy,
    /// The `handle_prepare_success` step.
    pub success: StepPolicy,
    /// The `handle_prepare_exception` step.
    pub exception: StepPolicy,
    /// Settling each transaction through the input connector.
    pub settle: StepPolicy,
    /// What happens to a transaction that failed, once its exception step is over.
    /// Default: `"dead_letter"`.
    pub on_failure: FailureAction,
}

super::role_policy!(ProducerPolicy: prepare, dispatch, success, exception, settle);
