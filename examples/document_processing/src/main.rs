//! ergon example: orchestrator-workers. Each document enqueued on `documents` is planned
//! by the orchestrator (`plan`) into a DAG run, which the journal carries out over the
//! workers' queues:
//!
//! ```text
//! documents ─▶ plan ─▶ run <doc id>:
//!                        extract ─▶ detect_language ─┬─▶ summarize (one item per language) ─┐
//!                                                    ├─▶ topics ────────────────────────────┼─▶ format_report
//!                                                    └─▶ sentiment ─────────────────────────┘
//!              run ended ─▶ publish ─▶ out/reports.jsonl
//! ```
//!
//! * [`plan`]: the orchestrator, a plan made in code or by an `llm` service, wired in
//!   code and validated by the journal before the run starts.
//! * [`workers`]: one task per kind of work, each with its queue, its `workers` and its
//!   concurrency; their outputs are journaled for the nodes after them.
//! * [`text`]: the deterministic heuristics the workers use offline.

mod plan;
mod text;
mod workers;

use std::process::ExitCode;
use std::sync::Arc;

use ergon_core::{Context, TaskError};
use ergon_runner::Registry;
use ergon_services::llm::Llm;

/// The `llm` service a task's settings name (`settings.model`), if they name one.
///
/// # Errors
///
/// The task does not list it in `services`, or it is no `llm` service.
fn llm_service(cx: &Context, name: Option<&str>) -> Result<Option<Arc<Llm>>, TaskError> {
    name.map(|name| cx.service::<Llm>(name)).transpose()
}

fn main() -> ExitCode {
    // Each implementation under the name of the task that runs it (`[tasks.extract]`
    // has `type = "extract"`): plans name tasks.
    ergon_runner::run(
        Registry::with_builtins()
            .consumer("plan", plan::Plan::from_context)
            .consumer(plan::EXTRACT, |_| Ok(workers::Extract))
            .consumer(plan::DETECT_LANGUAGE, |_| Ok(workers::DetectLanguage))
            .consumer(plan::SUMMARIZE, workers::Summarize::from_context)
            .consumer(plan::TOPICS, workers::Topics::from_context)
            .consumer(plan::SENTIMENT, |_| Ok(workers::Sentiment))
            .consumer(plan::FORMAT_REPORT, |_| Ok(workers::FormatReport))
            .hybrid(plan::PUBLISH, |_| Ok(workers::Publish)),
    )
}
