//! The blocking thread pool: its own named threads, panics contained, abandoned attempts
//! counted at their deadline, and a fixed number of threads whatever happens.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ergon_core::runner::{ThreadPool, WorkerStats};
use ergon_core::{Category, TaskError};

fn pool(threads: usize) -> (ThreadPool, Arc<WorkerStats>) {
    let stats = Arc::new(WorkerStats::default());
    (
        ThreadPool::new("test", threads, stats.clone()).unwrap(),
        stats,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_run_on_the_pool_threads_never_on_the_runtime() {
    let (pool, _) = pool(2);
    for _ in 0..20 {
        let (name, in_runtime) = pool
            .run(|| {
                let name = std::thread::current().name().map(str::to_owned);
                Ok((name, tokio::runtime::Handle::try_current().is_ok()))
            })
            .await
            .unwrap();
        let name = name.unwrap();
        assert!(name.starts_with("ergon-test-"), "{name}");
        assert!(!in_runtime, "a blocking call ran inside the tokio runtime");
    }
}

#[tokio::test]
async fn a_panic_becomes_an_error_and_the_thread_survives() {
    let (pool, _) = pool(1);
    let err = pool
        .run(|| -> Result<(), TaskError> { panic!("boom") })
        .await
        .unwrap_err();
    assert!(matches!(&err, TaskError::Panicked { message } if message == "boom"));
    assert_eq!(err.category(), Category::System);
    // The one thread is still there.
    assert_eq!(pool.run(|| Ok(7)).await.unwrap(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_call_is_counted_as_abandoned_and_the_pool_does_not_grow() {
    let (pool, stats) = pool(2);
    let pool = Arc::new(pool);
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    // Six calls that each overrun a 20ms deadline by far.
    for _ in 0..6 {
        let seen = seen.clone();
        let call = pool.run(move || {
            seen.lock()
                .unwrap()
                .insert(std::thread::current().name().unwrap().to_owned());
            std::thread::sleep(Duration::from_millis(60));
            Ok(())
        });
        let timed_out = tokio::time::timeout(Duration::from_millis(20), call).await;
        assert!(timed_out.is_err(), "the call should not finish in 20ms");
    }
    assert_eq!(stats.snapshot().abandoned_attempts, 6);
    // Once the abandoned calls drained, the pool still answers, on its two threads only.
    let seen_after = seen.clone();
    pool.run(move || {
        seen_after
            .lock()
            .unwrap()
            .insert(std::thread::current().name().unwrap().to_owned());
        Ok(())
    })
    .await
    .unwrap();
    let threads = seen.lock().unwrap().clone();
    assert_eq!(
        threads,
        BTreeSet::from(["ergon-test-0".to_owned(), "ergon-test-1".to_owned()]),
    );
    assert_eq!(
        stats.snapshot().abandoned_attempts,
        6,
        "a finished call is not abandoned"
    );
}
