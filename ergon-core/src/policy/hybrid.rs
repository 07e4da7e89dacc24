//! `HybridPolicy`: a consumer's policy plus the prepare and dispatch steps of its outbound
//! transactions.

use serde::{Deserialize, Serialize};

use super::{FailureAction, FetchPolicy, LoopPolicy, StepPolicy, TransactionPolicy};

/// Everything that governs a hybrid task: the `policy` table of a hybrid task.
///
/// ```toml
/// [tasks.split.policy.process.retry]
/// max_attempts = 3
///
/// [tasks.split.policy.dispatch.retry]
/// max_attempts = 5
/// backoff = "200ms"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HybridPolicy {
    /// The consume loop: concurrency, limit, timeout, streaming, shutdown drain.
    pub r#loop: LoopPolicy,
    /// Fetching batches from the input connector.
    pub fetch: FetchPolicy,
    /// The runtime budget of one inbound transaction: process, every prepare, the dispatch
    /// and success together.
    pub transaction: TransactionPolicy,
    /// The `process_transaction` step, which turns one inbound transaction into outbound ones.
    pub process: StepPolicy,
    /// The `prepare_transaction` step, once per outbound transaction.
    pub prepare: StepPolicy,
    /// Dispatching the outbound transactions through the output connector (one call for
    /// all of one inbound transaction's outbound ones; a retry sends them all again).
    pub dispatch: StepPolicy,
    /// The `handle_process_success` step, after every outbound transaction is confirmed.
    pub success: StepPolicy,
    /// The `handle_process_exception` step.
    pub exception: StepPolicy,
    /// Settling each inbound transaction through the input connector.
    pub settle: StepPolicy,
    /// What happens to an inbound transaction that failed, once its exception step is over.
    /// Default: `"dead_letter"`.
    pub on_failure: FailureAction,
}

super::role_policy!(HybridPolicy: process, prepare, dispatch, success, exception, settle);
