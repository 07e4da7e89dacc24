//! Target `template`: the bytes (as text) as the templates of a plan's nodes, checked by
//! [`crate::plan::check`] (the journal's check before a run starts): a node input that is the text, a
//! string inside an input, and an expansion whose `over`, `key` and `matrix` expressions
//! are the text. The text reaches the template compiler whether or not it is valid JSON,
//! which the `plan` target's inputs rarely are once mutated.
//!
//! Checks: whatever the `plan` target checks; a template or expression refused is
//! refused for its node, by name.

use std::collections::BTreeMap;

use ergon_core::journal::dag::{Expand, PlanError, PlannedNode, RunPlan};
use serde_json::{Value, json};

/// minijinja's syntax and the names a template's context has.
pub const DICTIONARY: &[&[&str]] = &[
    &[
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
        "#}",
        "|",
        "(",
        ")",
        "[",
        "]",
        ".",
        ",",
        "~",
        "*",
        "**",
        "//",
        "-",
        "'",
        "\"",
        " if ",
        " else ",
        " for ",
        " in ",
        " endfor ",
        " set ",
        " macro ",
        " recursive ",
        " loop ",
        "range(",
        "9999999999",
        "-9223372036854775808",
    ],
    &[
        "input",
        "results",
        "item",
        "key",
        "index",
        "node",
        "run_id",
        "tojson",
        "join",
        "length",
        "upper",
        "default",
        "namespace",
        "extract",
    ],
];

/// The plans `text` goes into: one per place a template or an expression is written.
fn plans(text: &str) -> Vec<RunPlan> {
    let first = || PlannedNode::new("first", "extract");
    let then = |node: PlannedNode| RunPlan::new(vec![first(), node.after(["first"])]);
    let expand = |expand: Expand| then(PlannedNode::new("each", "summarize").expand(expand));
    vec![
        then(PlannedNode::new("input", "summarize").input(Value::String(text.into()))),
        then(PlannedNode::new("nested", "summarize").input(json!({ "a": [1, text] }))),
        expand(Expand::over(text)),
        expand(Expand {
            key: Some(text.into()),
            ..Expand::over("{{ results.first }}")
        }),
        expand(Expand::matrix(BTreeMap::from([(
            "x".to_owned(),
            Value::String(text.into()),
        )]))),
    ]
}

/// The target: see the [module docs](self).
///
/// # Panics
///
/// On a finding: checking panicked, or a refusal names the wrong node.
pub fn target(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for plan in plans(&text) {
        match crate::plan::check(&plan) {
            Ok(()) => {}
            Err(PlanError::BadExpansion { node, .. }) => assert_eq!(node, plan.nodes[1].name),
            Err(err) => panic!("a plan whose only fault can be its template: {err}"),
        }
    }
}
