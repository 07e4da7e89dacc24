//! Bounded concurrent execution with refill (the seed's `run_concurrently`).

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

use crate::error::TaskError;

/// What [`run_concurrently`] produced: one result per input, in input order.
#[derive(Debug)]
pub struct Completed<T> {
    /// The result for each input, in the order the inputs came.
    pub results: Vec<Result<T, TaskError>>,
    /// How many succeeded.
    pub succeeded: usize,
    /// How many failed (timeouts included).
    pub failed: usize,
}

/// Runs `call` on every input with at most `limit` calls in flight, starting the next one
/// as soon as one finishes (refill), each bounded by `timeout` when given.
///
/// Inputs are pulled lazily, so a long iterator is never collected up front.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ergon_core::{TaskError, concurrency::run_concurrently};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let done = run_concurrently(1..=5, 2, Some(Duration::from_secs(1)), |n| async move {
///     if n == 3 { Err(TaskError::business("three")) } else { Ok(n * n) }
/// })
/// .await;
/// assert_eq!((done.succeeded, done.failed), (4, 1));
/// assert_eq!(done.results[4].as_ref().unwrap(), &25);
/// # }
/// ```
pub async fn run_concurrently<I, F, Fut, T>(
    inputs: I,
    limit: usize,
    timeout: Option<Duration>,
    mut call: F,
) -> Completed<T>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<T, TaskError>>,
{
    let limit = limit.max(1);
    let mut inputs = inputs.into_iter().enumerate();
    let mut running = FuturesUnordered::new();
    let mut results: Vec<Option<Result<T, TaskError>>> = Vec::new();
    loop {
        while running.len() < limit {
            let Some((index, input)) = inputs.next() else {
                break;
            };
            let fut = call(input);
            running.push(async move {
                let result = match timeout {
                    Some(limit) => tokio::time::timeout(limit, fut)
                        .await
                        .unwrap_or_else(|_| Err(TaskError::timeout(limit))),
                    None => fut.await,
                };
                (index, result)
            });
        }
        let Some((index, result)) = running.next().await else {
            break;
        };
        if results.len() <= index {
            results.resize_with(index + 1, || None);
        }
        results[index] = Some(result);
    }
    let results: Vec<Result<T, TaskError>> = results
        .into_iter()
        .map(|r| r.expect("every started input finished"))
        .collect();
    let succeeded = results.iter().filter(|r| r.is_ok()).count();
    Completed {
        failed: results.len() - succeeded,
        succeeded,
        results,
    }
}
