//! `validate [--connect]`: check the file against this binary and exit; with `--connect`,
//! also open every connector and build every service of the file, check their health, and
//! close them.

use std::time::Duration;

use ergon_core::TaskError;
use ergon_core::service::{BuildContext, ServiceTelemetry};
use tokio_util::sync::CancellationToken;

use crate::plan::Plan;

/// How long one component may take to open, answer its health check and close.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The line printed for a valid file.
pub fn render(plan: &Plan) -> String {
    let (connectors, services) = (plan.connectors.len(), plan.services.len());
    format!(
        "{}: ok ({} task(s), {connectors} connector(s), {services} service(s))\n",
        plan.file.display(),
        plan.tasks.len()
    )
}

/// `validate --connect`: one line per connector and service of the file, `ok` or the error
/// that made it unreachable, then a verdict line. Returns the text and the exit code: 0
/// when every component is reachable, 1 when one is not.
///
/// Each connector is opened as worker 0's would be (`MakeConnector::connect(0)`), asked
/// for its `health()` and closed; each service is built, asked for its `health()` and
/// closed. Each gets [`CONNECT_TIMEOUT`].
///
/// ```text
/// connector orders (rabbitmq): ok
/// service rates (http): error: GET http://127.0.0.1:9/health: connection refused
/// tasks.toml: 1 of 2 component(s) unreachable
/// ```
pub async fn connect(plan: &Plan) -> (String, u8) {
    let mut out = String::new();
    let mut failed = 0;
    let mut total = 0;
    for connector in &plan.connectors {
        let checked = bounded(async {
            let open = connector.make.connect(0).await?;
            let health = open.health().await;
            let closed = open.close().await;
            health.and(closed)
        })
        .await;
        total += 1;
        failed += usize::from(checked.is_err());
        out.push_str(&line(
            "connector",
            &connector.name,
            connector.kind,
            &checked,
        ));
    }
    for service in &plan.services {
        let checked = bounded(async {
            let cx = BuildContext::new(service.name.as_str())
                .with_shutdown(CancellationToken::new())
                .with_telemetry(ServiceTelemetry::default());
            let built = service.configured.build(cx).await?;
            let health = built.service().health().await;
            let closed = built.service().close().await;
            health.and(closed)
        })
        .await;
        total += 1;
        failed += usize::from(checked.is_err());
        out.push_str(&line("service", &service.name, service.kind, &checked));
    }
    let file = plan.file.display();
    if failed == 0 {
        out.push_str(&format!("{file}: ok, {total} component(s) reachable\n"));
        (out, 0)
    } else {
        out.push_str(&format!(
            "{file}: {failed} of {total} component(s) unreachable\n"
        ));
        (out, 1)
    }
}

async fn bounded(check: impl Future<Output = Result<(), TaskError>>) -> Result<(), TaskError> {
    tokio::time::timeout(CONNECT_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Err(TaskError::timeout(CONNECT_TIMEOUT)))
}

fn line(what: &str, name: &str, kind: &str, checked: &Result<(), TaskError>) -> String {
    match checked {
        Ok(()) => format!("{what} {name} ({kind}): ok\n"),
        Err(err) => format!("{what} {name} ({kind}): error: {}\n", err.chain()),
    }
}
