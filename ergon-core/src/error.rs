//! Errors a step can end with, and the category that decides what happens next.
//!
//! Every failure in ergon has a [`Category`]:
//!
//! | category   | meaning                                   | retried |
//! |------------|-------------------------------------------|---------|
//! | `business` | bad data or a broken rule                 | never   |
//! | `system`   | infrastructure (network, disk, a service) | yes, unless marked non-retryable |
//! | `timeout`  | an attempt or a budget ran out of time    | yes (a budget expiry is final) |
//!
//! Build errors with the constructors ([`TaskError::business`], [`TaskError::system`], …);
//! the engine never downcasts to find out what happened.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A boxed error usable as the cause of a [`TaskError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The category of a failure: it decides whether the step is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Bad data or a business rule: retrying cannot help.
    Business,
    /// Infrastructure trouble: retrying may help.
    System,
    /// An attempt or a budget ran out of time.
    Timeout,
}

impl Category {
    /// The lowercase name used in logs, metrics, dead letters and the TOML.
    pub const fn as_str(self) -> &'static str {
        match self {
            Category::Business => "business",
            Category::System => "system",
            Category::Timeout => "timeout",
        }
    }

    /// The category called `name` ([`Category::as_str`]), if any.
    pub fn named(name: &str) -> Option<Category> {
        match name {
            "business" => Some(Category::Business),
            "system" => Some(Category::System),
            "timeout" => Some(Category::Timeout),
            _ => None,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error every step (fetch, process, success, exception, dispatch, settle) ends with.
///
/// # Examples
///
/// ```
/// use ergon_core::{Category, TaskError};
///
/// let bad = TaskError::business("order total is negative");
/// assert_eq!(bad.category(), Category::Business);
/// assert!(!bad.is_retryable());
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
/// let down = TaskError::system("inventory service unreachable").with_source(io);
/// assert!(down.is_retryable());
/// assert_eq!(down.chain().to_string(), "inventory service unreachable: refused");
///
/// let fatal = TaskError::system("schema mismatch").non_retryable();
/// assert!(!fatal.is_retryable());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// Bad data or a business rule. Never retried.
    #[error("{message}")]
    Business {
        /// What was wrong, for people.
        message: Cow<'static, str>,
        /// The underlying cause, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// Infrastructure trouble. Retried while `retryable` is true.
    #[error("{message}")]
    System {
        /// What failed, for people.
        message: Cow<'static, str>,
        /// The underlying cause, if any.
        #[source]
        source: Option<BoxError>,
        /// False when the caller knows a retry cannot help (the explicit non-retryable marker).
        retryable: bool,
        /// How long the failing side asked to be left alone before a retry (an HTTP 429 or
        /// 503 `Retry-After`, an open circuit breaker). Set with
        /// [`TaskError::with_retry_after`]; retries wait at least this long.
        retry_after: Option<Duration>,
    },
    /// One attempt ran longer than its per-attempt `timeout`. Retried.
    #[error("attempt timed out after {}", humantime::format_duration(*.after))]
    Timeout {
        /// The per-attempt limit that was reached.
        after: Duration,
    },
    /// The transaction's runtime budget ran out. Final: the budget covers every attempt.
    #[error("transaction budget of {} exhausted", humantime::format_duration(*.budget))]
    BudgetExhausted {
        /// The configured budget.
        budget: Duration,
    },
    /// User code panicked. Counted as a system failure and not retried: a panic is a bug.
    #[error("panicked: {message}")]
    Panicked {
        /// The panic message, when it was a string.
        message: String,
    },
}

impl TaskError {
    /// A copy of this error with the same variant, category and retryability, whose
    /// message is the full cause chain (the causes themselves are not cloneable). Used to
    /// hand an error to blocking code on another thread.
    ///
    /// ```
    /// use ergon_core::TaskError;
    ///
    /// let io = std::io::Error::other("refused");
    /// let err = TaskError::system("rates down").with_source(io).non_retryable();
    /// let copy = err.flattened();
    /// assert_eq!(copy.to_string(), "rates down: refused");
    /// assert_eq!((copy.category(), copy.is_retryable()), (err.category(), false));
    /// ```
    pub fn flattened(&self) -> TaskError {
        match self {
            TaskError::Business { .. } => TaskError::business(self.chain().to_string()),
            TaskError::System {
                retryable,
                retry_after,
                ..
            } => TaskError::System {
                message: self.chain().to_string().into(),
                source: None,
                retryable: *retryable,
                retry_after: *retry_after,
            },
            TaskError::Timeout { after } => TaskError::Timeout { after: *after },
            TaskError::BudgetExhausted { budget } => TaskError::BudgetExhausted { budget: *budget },
            TaskError::Panicked { message } => TaskError::Panicked {
                message: message.clone(),
            },
        }
    }

    /// A business error: bad data or a rule. Never retried.
    pub fn business(message: impl Into<Cow<'static, str>>) -> Self {
        TaskError::Business {
            message: message.into(),
            source: None,
        }
    }

    /// A system error: infrastructure trouble, retried per policy.
    pub fn system(message: impl Into<Cow<'static, str>>) -> Self {
        TaskError::System {
            message: message.into(),
            source: None,
            retryable: true,
            retry_after: None,
        }
    }

    /// A timeout of one attempt after `after`.
    pub fn timeout(after: Duration) -> Self {
        TaskError::Timeout { after }
    }

    /// Attaches the underlying cause; it is kept and shown by [`TaskError::chain`].
    ///
    /// Has no effect on variants that carry no cause (timeouts, panics).
    pub fn with_source(mut self, cause: impl Into<BoxError>) -> Self {
        if let TaskError::Business { source, .. } | TaskError::System { source, .. } = &mut self {
            *source = Some(cause.into());
        }
        self
    }

    /// Marks a system error as not worth retrying (a business error never is).
    pub fn non_retryable(mut self) -> Self {
        if let TaskError::System { retryable, .. } = &mut self {
            *retryable = false;
        }
        self
    }

    /// Asks whoever retries this system error to wait at least `wait` first (the server's
    /// `Retry-After`, the time left in an open circuit). Has no effect on other variants.
    ///
    /// The step envelope waits `max(backoff, hint)` with the hint capped at the step's
    /// `backoff_cap`; a service stack's retry layer waits for it too, or gives up when the
    /// wait would pass the step attempt's deadline.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ergon_core::TaskError;
    ///
    /// let busy = TaskError::system("HTTP 429").with_retry_after(Duration::from_secs(2));
    /// assert_eq!(busy.retry_after(), Some(Duration::from_secs(2)));
    /// assert!(busy.is_retryable());
    /// assert_eq!(TaskError::business("bad").with_retry_after(Duration::from_secs(2)).retry_after(), None);
    /// ```
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        if let TaskError::System { retry_after, .. } = &mut self {
            *retry_after = Some(wait);
        }
        self
    }

    /// The wait the failing side asked for before a retry, if any (see
    /// [`TaskError::with_retry_after`]).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TaskError::System { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The category that decides retries and appears in metrics and dead letters.
    pub fn category(&self) -> Category {
        match self {
            TaskError::Business { .. } => Category::Business,
            TaskError::System { .. } | TaskError::Panicked { .. } => Category::System,
            TaskError::Timeout { .. } | TaskError::BudgetExhausted { .. } => Category::Timeout,
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            TaskError::System { retryable, .. } => *retryable,
            TaskError::Timeout { .. } => true,
            TaskError::Business { .. }
            | TaskError::BudgetExhausted { .. }
            | TaskError::Panicked { .. } => false,
        }
    }

    /// Displays the error followed by its causes: `outer: cause: root cause`.
    pub fn chain(&self) -> ErrorChain<'_> {
        ErrorChain(self)
    }
}

/// Displays an error with its whole cause chain, separated by `": "`.
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(err) = cause {
            write!(f, ": {err}")?;
            cause = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_and_retry_rules() {
        let cases = [
            (TaskError::business("x"), Category::Business, false),
            (TaskError::system("x"), Category::System, true),
            (
                TaskError::system("x").non_retryable(),
                Category::System,
                false,
            ),
            (
                TaskError::timeout(Duration::from_millis(5)),
                Category::Timeout,
                true,
            ),
            (
                TaskError::BudgetExhausted {
                    budget: Duration::from_secs(1),
                },
                Category::Timeout,
                false,
            ),
            (
                TaskError::Panicked {
                    message: "boom".into(),
                },
                Category::System,
                false,
            ),
        ];
        for (err, category, retryable) in cases {
            assert_eq!(err.category(), category, "{err}");
            assert_eq!(err.is_retryable(), retryable, "{err}");
        }
    }

    #[test]
    fn chain_shows_every_cause() {
        let root = std::io::Error::other("disk full");
        let err = TaskError::system("write failed").with_source(root);
        assert_eq!(err.chain().to_string(), "write failed: disk full");
        assert_eq!(
            TaskError::timeout(Duration::from_millis(250)).to_string(),
            "attempt timed out after 250ms"
        );
    }
}
