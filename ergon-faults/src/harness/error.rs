//! What can go wrong while a scenario drives the runner (as opposed to what the scenario
//! finds: losses and duplicates are report fields, not errors).

use std::time::Duration;

/// A scenario could not do what it set out to do; its report line shows this as its
/// `reason`, and the scenario fails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the file or command.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A runner command exited with another code than the one expected.
    #[error("{what} exited with {got}, expected {expected}; stderr ends: {stderr}")]
    Exit {
        /// The command.
        what: String,
        /// How it ended (`code 1`, `signal 9`).
        got: String,
        /// What was expected.
        expected: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// Something the scenario waited for did not happen within its deadline: a hang.
    #[error("hang: {what} did not happen within {waited:?}")]
    Hang {
        /// What was awaited.
        what: String,
        /// How long the scenario waited.
        waited: Duration,
    },
    /// A service on loopback (RabbitMQ, PostgreSQL, Redis) could not be reached or used.
    #[error("{service}: {message}")]
    Service {
        /// The service and the operation.
        service: String,
        /// Its error.
        message: String,
    },
    /// Output of the runner the scenario could not read (a dead letter that is not JSON,
    /// a stats line without its field).
    #[error("unexpected runner output: {0}")]
    Output(String),
}

impl Error {
    /// An [`Error::Io`] for `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }

    /// An [`Error::Service`] for `service`.
    pub fn service(service: impl Into<String>) -> impl FnOnce(String) -> Self {
        let service = service.into();
        move |message| Self::Service { service, message }
    }
}

/// The result of a harness operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
