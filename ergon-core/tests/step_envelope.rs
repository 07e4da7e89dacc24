//! The step envelope (`run_fn`): attempt counts per error category, the backoff sequence
//! and its cap, per-attempt timeouts, panics. Time is paused, so waits are exact.

use std::sync::Mutex;
use std::time::Duration;

use ergon_core::envelope::run_fn;
use ergon_core::policy::RetryPolicy;
use ergon_core::{Category, TaskError};
use tokio::time::Instant;

fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        timeout: Duration::from_secs(1),
        backoff: Duration::from_millis(100),
        backoff_multiplier: 2.0,
        backoff_cap: Duration::from_millis(500),
        jitter: 0.0,
    }
}

/// Runs `run_fn` with a call that always fails with `make_error`, returning the attempts
/// made and the final category.
async fn always_failing(max_attempts: u32, make_error: fn() -> TaskError) -> (u32, Category) {
    let outcome = run_fn("step", &policy(max_attempts), |_| async move {
        Err::<(), _>(make_error())
    })
    .await;
    (outcome.attempts, outcome.result.unwrap_err().category())
}

#[tokio::test(start_paused = true)]
async fn attempts_per_error_category() {
    assert_eq!(
        always_failing(5, || TaskError::business("bad")).await,
        (1, Category::Business)
    );
    assert_eq!(
        always_failing(5, || TaskError::system("down")).await,
        (5, Category::System)
    );
    assert_eq!(
        always_failing(5, || TaskError::system("schema").non_retryable()).await,
        (1, Category::System)
    );
    assert_eq!(
        always_failing(4, || TaskError::timeout(Duration::from_millis(1))).await,
        (4, Category::Timeout)
    );
}

#[tokio::test(start_paused = true)]
async fn success_after_transient_failures_reports_its_attempts() {
    let outcome = run_fn("step", &policy(5), |attempt| async move {
        if attempt < 3 {
            Err(TaskError::system("flaky"))
        } else {
            Ok(attempt)
        }
    })
    .await;
    assert_eq!(outcome.attempts, 3);
    assert_eq!(outcome.retries(), 2);
    assert_eq!(outcome.result.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_then_stays_at_the_cap() {
    let starts = Mutex::new(Vec::new());
    let outcome = run_fn("step", &policy(7), |_| {
        starts.lock().unwrap().push(Instant::now());
        async { Err::<(), _>(TaskError::system("down")) }
    })
    .await;
    assert_eq!(outcome.attempts, 7);
    let starts = starts.into_inner().unwrap();
    let gaps: Vec<u128> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    assert_eq!(gaps, [100, 200, 400, 500, 500, 500]);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_overruns_is_a_timeout_and_is_retried() {
    let started = Instant::now();
    let outcome = run_fn("step", &policy(3), |attempt| async move {
        if attempt < 3 {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Ok(attempt)
    })
    .await;
    assert_eq!(outcome.attempts, 3);
    assert_eq!(outcome.result.unwrap(), 3);
    // Two 1 s timeouts and the 100 ms and 200 ms waits between the attempts.
    assert_eq!(started.elapsed(), Duration::from_millis(2300));

    let outcome = run_fn("step", &policy(2), |_| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(())
    })
    .await;
    let err = outcome.result.unwrap_err();
    assert!(matches!(err, TaskError::Timeout { after } if after == Duration::from_secs(1)));
    assert_eq!(err.category(), Category::Timeout);
    assert_eq!(err.to_string(), "attempt timed out after 1s");
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_caught_and_not_retried() {
    let outcome = run_fn("step", &policy(3), |_| async {
        if true {
            panic!("bug in user code");
        }
        Ok(())
    })
    .await;
    assert_eq!(outcome.attempts, 1);
    let err = outcome.result.unwrap_err();
    assert_eq!(err.category(), Category::System);
    assert_eq!(err.to_string(), "panicked: bug in user code");
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_hint_lengthens_the_backoff_up_to_its_cap() {
    // backoff 100ms, cap 500ms: hints of 300ms and 2s wait 300ms and 500ms; a hint shorter
    // than the backoff changes nothing.
    let hints = [300, 2000, 10];
    let starts = Mutex::new(Vec::new());
    let outcome = run_fn("step", &policy(4), |attempt| {
        starts.lock().unwrap().push(Instant::now());
        async move {
            match hints.get(attempt as usize - 1) {
                Some(&ms) => Err::<(), _>(
                    TaskError::system("busy").with_retry_after(Duration::from_millis(ms)),
                ),
                None => Ok(()),
            }
        }
    })
    .await;
    assert_eq!(outcome.attempts, 4);
    let starts = starts.into_inner().unwrap();
    let waits: Vec<u128> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    assert_eq!(waits, [300, 500, 400]);
}

#[tokio::test(start_paused = true)]
async fn the_attempt_deadline_is_visible_inside_the_attempt() {
    use ergon_core::envelope::attempt_deadline;
    assert_eq!(attempt_deadline(), None);
    let started = Instant::now();
    let outcome = run_fn("outer", &policy(1), |_| async {
        let outer = attempt_deadline().unwrap();
        // An envelope inside a step sees the earlier of its own and the outer deadline.
        let inner = run_fn(
            "inner",
            &RetryPolicy::once(Duration::from_secs(5)),
            |_| async { Ok::<_, TaskError>(attempt_deadline().unwrap()) },
        )
        .await;
        Ok::<_, TaskError>((outer, inner.result?))
    })
    .await;
    let (outer, inner) = outcome.result.unwrap();
    assert_eq!(outer - started, Duration::from_secs(1));
    assert_eq!(inner, outer);
}
