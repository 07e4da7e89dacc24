//! `process NAME --payload JSON`: one transaction through the task's whole lifecycle, with
//! every attempt of every step printed (the seed's process-one-transaction debug mode).
//!
//! The task's connectors are opened as for a worker, so the success and exception handlers
//! really run (an output connector really receives what they dispatch). The settlement is
//! shown but not performed: the transaction did not come from the input.

use std::time::Duration;

use ergon_core::envelope::AttemptHook;
use ergon_core::{Settlement, TaskError, Transaction};

use ergon_core::service::ServiceTelemetry;
use tokio_util::sync::CancellationToken;

use crate::manager::connect;
use crate::plan::{Plan, TaskPlan};
use crate::services::RunningServices;

/// Prints each attempt as it ends.
struct PrintAttempts;

impl AttemptHook for PrintAttempts {
    fn on_attempt(
        &mut self,
        step: &'static str,
        attempt: u32,
        outcome: Result<(), &TaskError>,
        elapsed: Duration,
    ) {
        let took = humantime::format_duration(Duration::from_micros(elapsed.as_micros() as u64));
        match outcome {
            Ok(()) => println!("{step:<9} attempt {attempt}: ok ({took})"),
            Err(err) => println!(
                "{step:<9} attempt {attempt}: {} error: {} ({took})",
                err.category(),
                err.chain()
            ),
        }
    }
}

/// Runs the command; returns the exit code (0 when the transaction would be acked).
pub async fn run(
    plan: &Plan,
    name: &str,
    id: &str,
    payload: &str,
) -> Result<u8, crate::config::ConfigError> {
    let task: std::sync::Arc<TaskPlan> = plan.select(&[name.to_owned()])?.remove(0);
    if let Err(err) = serde_json::from_str::<serde_json::Value>(payload) {
        println!("note: the payload is not valid JSON ({err}); passing it as is");
    }
    let tx = Transaction::new(id, payload.to_owned());
    let opened = async {
        let input = connect(&task, task.input.as_ref(), 0).await?;
        Ok::<_, TaskError>((input, connect(&task, task.output.as_ref(), 0).await?))
    };
    let (input, output) = match opened.await {
        Ok(pair) => pair,
        Err(err) => {
            println!("{}", err.chain());
            return Ok(1);
        }
    };
    let services = match RunningServices::build(
        task.services(),
        &CancellationToken::new(),
        &ServiceTelemetry::default(),
    )
    .await
    {
        Ok(services) => services,
        Err(err) => {
            println!("{}", err.chain());
            for connector in [input, output].into_iter().flatten() {
                let _ = connector.close().await;
            }
            return Ok(1);
        }
    };
    let cx = task.context(0, input.clone(), output.clone(), &services, None);
    println!(
        "task {} ({}), transaction {id}",
        task.name, task.implementation
    );
    let outcome = task
        .launch
        .process_one(&cx, &task.policy, &tx, &mut PrintAttempts)
        .await;
    for connector in [input, output].into_iter().flatten() {
        let _ = connector.close().await;
    }
    services.close().await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => {
            println!("cannot create the task: {}", err.chain());
            return Ok(1);
        }
    };
    if let Some(failure) = &outcome.failure {
        println!(
            "failed    in step {} after {} attempt(s): {} error: {}",
            failure.step, failure.attempts, failure.category, failure.message
        );
    }
    if let Some(err) = &outcome.exception_error {
        println!("exception handler failed too: {}", err.chain());
    }
    println!(
        "settlement: {} (shown, not performed: this transaction did not come from the input)",
        outcome.settlement.as_str()
    );
    Ok(u8::from(outcome.settlement != Settlement::Ack))
}
