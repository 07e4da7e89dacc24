//! `run_concurrently`: results in input order, the limit respected with refill, per-item
//! timeouts.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use ergon_core::concurrency::run_concurrently;
use ergon_core::{Category, TaskError};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn keeps_order_respects_the_limit_and_times_out_items() {
    let now = AtomicUsize::new(0);
    let max = AtomicUsize::new(0);
    let started = Instant::now();
    let done = run_concurrently(0..10u64, 3, Some(Duration::from_millis(500)), |n| {
        let (now, max) = (&now, &max);
        async move {
            max.fetch_max(now.fetch_add(1, SeqCst) + 1, SeqCst);
            // Item 9 outlasts its timeout; the others take 100 ms, 90 ms, … so they finish
            // out of order.
            let ms = if n == 9 { 10_000 } else { 100 - n * 10 };
            tokio::time::sleep(Duration::from_millis(ms)).await;
            now.fetch_sub(1, SeqCst);
            if n == 4 {
                Err(TaskError::business("four"))
            } else {
                Ok(n * 2)
            }
        }
    })
    .await;
    assert_eq!(max.load(SeqCst), 3);
    assert_eq!((done.succeeded, done.failed), (8, 2));
    let values: Vec<Option<u64>> = done
        .results
        .iter()
        .map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(
        values,
        [
            Some(0),
            Some(2),
            Some(4),
            Some(6),
            None,
            Some(10),
            Some(12),
            Some(14),
            Some(16),
            None
        ]
    );
    assert_eq!(
        done.results[9].as_ref().unwrap_err().category(),
        Category::Timeout
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}
