//! `run [NAME...]` (and the default command): run tasks until they end, then summarize.
//!
//! Around the [`TaskManager`]: the telemetry `[telemetry]` asks for, the health and
//! metrics endpoint and the OTLP metrics export, all reading the workers' board, all
//! stopped (with a last export and a trace flush) when the tasks end.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::ConfigError;
use crate::manager::TaskManager;
use crate::plan::Plan;
use crate::report::summary;
use crate::telemetry::board::WorkerBoard;
use crate::telemetry::health::Health;
#[cfg(feature = "otlp")]
use crate::telemetry::metrics;
use crate::telemetry::{Settings, Telemetry, http};

/// How long the end of a run waits for its last progress events to reach Redis.
#[cfg(feature = "run-events")]
const EVENTS_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs the selected tasks with the telemetry of the plan (resolved against `env`) and
/// prints the summary; returns the exit code.
///
/// # Errors
///
/// Unknown task names, telemetry that cannot be set up (a bad `OTEL_*` value), or a
/// health endpoint that cannot bind its port.
pub async fn run(
    plan: &Plan,
    names: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<u8, ConfigError> {
    let tasks = plan.select(names)?;
    let at = |key: &str, message: String| ConfigError::new(&plan.file, key, message);
    let settings = Settings::resolve(&plan.telemetry, env).map_err(|m| at("telemetry", m))?;
    let telemetry = Telemetry::install(settings).map_err(|m| at("telemetry", m))?;
    let settings = telemetry.settings().clone();

    let board = Arc::new(WorkerBoard::default());
    #[cfg(feature = "journal")]
    let running: Vec<String> = tasks.iter().map(|task| task.name.clone()).collect();
    let manager = TaskManager::new(tasks).board(board.clone());
    #[cfg(feature = "journal")]
    let manager = match &plan.journal {
        Some(journal) => {
            let opened = journal
                .open(&running)
                .await
                .map_err(|err| at("journal", err.chain().to_string()))?;
            tracing::info!(journal = %journal.store, record = ?journal.record, "Journal open");
            board.journal_opened(opened.metrics().clone());
            manager.journal(opened)
        }
        None => manager,
    };
    let stop = CancellationToken::new();
    let mut background = Vec::new();
    if let Some(http_config) = &settings.http {
        let address = (http_config.address, http_config.port);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|err| {
                at(
                    "telemetry.http.port",
                    format!("cannot listen on {}:{}: {err}", address.0, address.1),
                )
            })?;
        let bound = listener
            .local_addr()
            .map_err(|err| at("telemetry.http", err.to_string()))?;
        tracing::info!(address = %bound, "Health on /health/live and /health/ready, metrics on /metrics");
        let health = Arc::new(Health::new(
            board.clone(),
            http_config.stall_after,
            manager.shutdown_token(),
        ));
        let watcher = health.clone();
        let watching = stop.clone();
        background.push(tokio::spawn(async move { watcher.watch(watching).await }));
        background.push(tokio::spawn(http::serve(
            listener,
            health,
            board.clone(),
            stop.clone(),
        )));
    }
    #[cfg(feature = "otlp")]
    if let Some(endpoint) = settings.metrics_endpoint.clone() {
        background.push(tokio::spawn(metrics::otlp::export_every(
            endpoint,
            settings.metrics_interval,
            settings.resource.clone(),
            board.clone(),
            stop.clone(),
        )));
    }

    let report = manager.run().await;
    // The journal's last commits published their progress events: let them reach Redis.
    #[cfg(feature = "run-events")]
    if let Some(journal) = &plan.journal {
        journal.flush_events(EVENTS_FLUSH).await;
    }
    stop.cancel();
    for task in background {
        let _ = task.await;
    }
    // The flush blocks on the exporter's thread: keep it off the runtime's workers.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    print!("{}", summary::render(&report));
    Ok(report.exit_code())
}
