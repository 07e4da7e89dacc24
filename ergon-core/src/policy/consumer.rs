//! `ConsumerPolicy`: the loop, the fetch, the transaction budget and one retry policy per step.

use serde::{Deserialize, Serialize};

use super::{FailureAction, FetchPolicy, LoopPolicy, StepPolicy, TransactionPolicy};

/// Everything that governs a consumer: the `policy` table of a consumer task.
///
/// Each part is optional in the TOML; a missing part takes its documented defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerPolicy {
    /// The consume loop: concurrency, limit, timeout, streaming, shutdown drain.
    pub r#loop: LoopPolicy,
    /// Fetching batches from the input connector.
    pub fetch: FetchPolicy,
    /// The runtime budget of one transaction.
    pub transaction: TransactionPolicy,
    /// The `process_transaction` step.
    pub process: StepPolicy,
    /// The `handle_process_success` step.
    pub success: StepPolicy,
    /// The `handle_process_exception` step.
    pub exception: StepPolicy,
    /// Settling each transaction through the input connector (ack, requeue, dead-letter).
    pub settle: StepPolicy,
    /// What happens to a transaction that failed, once its exception step is over.
    /// Default: `"dead_letter"`.
    pub on_failure: FailureAction,
}

super::role_policy!(ConsumerPolicy: process, success, exception, settle);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::policy::RolePolicy as _;

    #[test]
    fn defaults_are_valid_and_parse_from_an_empty_table() {
        let parsed: ConsumerPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, ConsumerPolicy::default());
        parsed.validate().unwrap();
    }

    #[test]
    fn nested_validation_errors_carry_the_full_path() {
        let mut policy = ConsumerPolicy::default();
        policy.exception.retry.max_attempts = 0;
        assert_eq!(
            policy.validate().unwrap_err().path,
            "exception.retry.max_attempts"
        );
        let mut policy = ConsumerPolicy::default();
        policy.fetch.empty.backoff_multiplier = 0.0;
        assert_eq!(
            policy.validate().unwrap_err().path,
            "fetch.empty.backoff_multiplier"
        );
    }

    #[test]
    fn durations_and_actions_parse_from_strings() {
        let policy: ConsumerPolicy = serde_json::from_str(
            r#"{"loop": {"timeout": "1m 30s", "concurrency": 4},
                "process": {"retry": {"timeout": "250ms"}},
                "on_failure": "requeue"}"#,
        )
        .unwrap();
        assert_eq!(policy.r#loop.timeout, Some(Duration::from_secs(90)));
        assert_eq!(policy.process.retry.timeout, Duration::from_millis(250));
        assert_eq!(policy.on_failure, FailureAction::Requeue);
    }
}
