//! `list`: the file's tasks with their role, model and connectors, and what this binary
//! offers (task implementations, connector and service types).

use std::fmt::Write as _;

use crate::plan::Plan;
use crate::registry::Registry;

/// Renders the listing; `plan` is `None` when no config file was given or found.
pub fn render(plan: Option<&Plan>, registry: &Registry) -> String {
    let mut out = String::new();
    if let Some(plan) = plan {
        let _ = writeln!(out, "tasks in {}:", plan.file.display());
        for task in &plan.tasks {
            let connector = |c: &Option<crate::plan::ConnectorRef>| {
                c.as_ref()
                    .map_or("-".to_owned(), |c| format!("{} ({})", c.name, c.kind))
            };
            let _ = writeln!(
                out,
                "  {:<20} type={} role={} model={} workers={} input={} output={}",
                task.name,
                task.implementation,
                task.launch.role(),
                task.launch.model(),
                task.workers,
                connector(&task.input),
                connector(&task.output),
            );
        }
    }
    let _ = writeln!(out, "task implementations in this binary:");
    for (name, launch) in &registry.tasks {
        let _ = writeln!(
            out,
            "  {name:<20} role={} model={}",
            launch.role(),
            launch.model()
        );
    }
    let _ = writeln!(
        out,
        "connector types: {}",
        registry.connector_names().collect::<Vec<_>>().join(", ")
    );
    let _ = writeln!(
        out,
        "service types: {}",
        registry.service_names().collect::<Vec<_>>().join(", ")
    );
    out
}
