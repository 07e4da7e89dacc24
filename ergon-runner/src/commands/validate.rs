//! `validate`: check the file against this binary and exit.

use crate::plan::Plan;

/// The line printed for a valid file.
pub fn render(plan: &Plan) -> String {
    let (connectors, services) = plan.counts;
    format!(
        "{}: ok ({} task(s), {connectors} connector(s), {services} service(s))\n",
        plan.file.display(),
        plan.tasks.len()
    )
}
