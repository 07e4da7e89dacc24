//! How a PostgreSQL failure becomes a [`TaskError`] (see the table in the module docs of
//! [`crate::postgres`]).

use ergon_core::TaskError;
use tokio_postgres::error::SqlState;

/// What a failure of `what` means for the task: retryable, non-retryable, or the
/// transaction's own fault.
pub(super) fn classify(what: &str, err: tokio_postgres::Error) -> TaskError {
    let Some(code) = err.code().map(SqlState::code) else {
        // No answer from the server: the connection was lost, timed out or never made,
        // unless a value could not be converted (a bug in the call, not the database).
        let conversion = std::error::Error::source(&err).is_some_and(|source| {
            source.is::<tokio_postgres::types::WrongType>()
                || source.is::<tokio_postgres::types::WasNull>()
        });
        let error = TaskError::system(what.to_owned()).with_source(err);
        return if conversion {
            error.non_retryable()
        } else {
            error
        };
    };
    match category(code) {
        Kind::Retryable => TaskError::system(what.to_owned()).with_source(err),
        Kind::Business => TaskError::business(what.to_owned()).with_source(err),
        Kind::Fatal => TaskError::system(what.to_owned())
            .with_source(err)
            .non_retryable(),
    }
}

/// The three outcomes of a SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The database could not do it now; the same call may succeed later.
    Retryable,
    /// The data was refused: a constraint, a bad value.
    Business,
    /// The call itself is wrong (syntax, a missing table, no permission): retrying cannot help.
    Fatal,
}

/// The outcome of SQLSTATE `code` (five characters; the first two are its class).
fn category(code: &str) -> Kind {
    match code.get(..2).unwrap_or("") {
        // Connection exception, transaction rollback (serialization failure, deadlock),
        // insufficient resources, operator intervention (statement timeout, shutdown),
        // system error.
        "08" | "40" | "53" | "57" | "58" => Kind::Retryable,
        // Lock not available, object in use.
        "55" if code == "55P03" || code == "55006" => Kind::Retryable,
        // Integrity constraint violation, data exception.
        "23" | "22" => Kind::Business,
        _ => Kind::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_the_documented_kinds() {
        for (code, kind) in [
            ("23505", Kind::Business),  // unique_violation
            ("23503", Kind::Business),  // foreign_key_violation
            ("22P02", Kind::Business),  // invalid_text_representation
            ("22012", Kind::Business),  // division_by_zero
            ("40001", Kind::Retryable), // serialization_failure
            ("40P01", Kind::Retryable), // deadlock_detected
            ("08006", Kind::Retryable), // connection_failure
            ("53300", Kind::Retryable), // too_many_connections
            ("57014", Kind::Retryable), // query_canceled
            ("57P01", Kind::Retryable), // admin_shutdown
            ("55P03", Kind::Retryable), // lock_not_available
            ("55000", Kind::Fatal),     // object_not_in_prerequisite_state
            ("42601", Kind::Fatal),     // syntax_error
            ("42P01", Kind::Fatal),     // undefined_table
            ("42501", Kind::Fatal),     // insufficient_privilege
        ] {
            assert_eq!(category(code), kind, "{code}");
        }
    }
}
