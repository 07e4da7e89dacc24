//! Waiting for a condition with a deadline: a scenario never waits forever, and a wait
//! that runs out is reported as a hang.

use std::time::{Duration, Instant};

use super::error::{Error, Result};

/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(25);

/// Polls `condition` until it returns `Some`, for at most `limit`; `what` names the
/// awaited event in the [`Error::Hang`].
///
/// # Errors
///
/// [`Error::Hang`] when `limit` passed first, or the error `condition` returned.
pub fn until<T>(
    what: &str,
    limit: Duration,
    mut condition: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let started = Instant::now();
    loop {
        if let Some(value) = condition()? {
            return Ok(value);
        }
        if started.elapsed() > limit {
            return Err(Error::Hang {
                what: what.to_owned(),
                waited: limit,
            });
        }
        std::thread::sleep(POLL);
    }
}
