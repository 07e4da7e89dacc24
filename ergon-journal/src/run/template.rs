//! Node inputs and expansion sources are templates (minijinja), strict about undefined
//! variables and limited in fuel, rendered by the journal when a node becomes ready.
//!
//! An input is JSON whose strings are templates. A string that is one expression and
//! nothing else (`"{{ results.language.languages }}"`) becomes that expression's value,
//! array or object included; any other string renders as text
//! (`"Summarize in {{ lang }}"`). A variable that does not exist is an error that fails
//! the node, never an empty string.

use std::sync::LazyLock;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

/// Work a template may do: enough for any input, not for a loop an LLM wrote to spin.
const FUEL: u64 = 50_000;

/// The most bytes of code (inside `{{ }}` and `{% %}`) one template may have, and the
/// deepest its brackets may nest. minijinja parses and compiles an expression
/// recursively, so a long chain (`x|f|f|f…`, two bytes a level) or deep brackets
/// overflow a thread's stack and abort the process, far below its own parser limit (150
/// levels) in a debug build: on a 2 MiB stack (tokio's workers), at about 2,000 filters
/// or 100 nested calls. Found by fuzzing (`fuzz/regressions/template/`).
const MAX_CODE: usize = 1024;
/// See [`MAX_CODE`].
const MAX_NESTING: usize = 32;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(64);
    env
});

/// `template` (JSON whose strings are templates) rendered over `context`.
///
/// # Errors
///
/// The template's error (syntax, undefined variable, out of fuel), with the text at
/// fault.
pub(crate) fn render(template: &Value, context: &Value) -> Result<Value, String> {
    let context = minijinja::Value::from(minijinja::value::Serde(context));
    render_with(template, &context)
}

fn render_with(template: &Value, context: &minijinja::Value) -> Result<Value, String> {
    Ok(match template {
        Value::String(text) => render_text(text, context)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| render_with(item, context))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| Ok((key.clone(), render_with(value, context)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// One string: the value of a lone expression, or the rendered text.
fn render_text(text: &str, context: &minijinja::Value) -> Result<Value, String> {
    within_limits(text, false)?;
    let failed = |err: minijinja::Error| format!("template {text:?}: {}", describe(&err));
    match lone_expression(text) {
        Some(expression) => {
            let value = TEMPLATES
                .compile_expression(expression)
                .and_then(|compiled| compiled.eval(context))
                .map_err(failed)?;
            if value.is_undefined() {
                return Err(format!("template {text:?}: undefined value"));
            }
            serde_json::to_value(&value).map_err(|err| format!("template {text:?}: {err}"))
        }
        None if !text.contains("{{") && !text.contains("{%") => Ok(Value::String(text.into())),
        None => TEMPLATES
            .render_str(text, context)
            .map(Value::String)
            .map_err(failed),
    }
}

/// The value of expression `source` (`"{{ expr }}"` or a bare `expr`) over `context`.
///
/// # Errors
///
/// As [`render`].
pub(crate) fn eval(source: &str, context: &Value) -> Result<Value, String> {
    let expression = lone_expression(source).unwrap_or(source);
    let wrapped = format!("{{{{ {expression} }}}}");
    render(&Value::String(wrapped), context)
}

/// Checks every template of `template` compiles: what a plan is refused for before
/// anything runs.
///
/// # Errors
///
/// The first syntax error, with its text.
pub(crate) fn check(template: &Value) -> Result<(), String> {
    match template {
        Value::String(text) => {
            within_limits(text, false)?;
            let compiled = match lone_expression(text) {
                Some(expression) => TEMPLATES.compile_expression(expression).map(drop),
                None => TEMPLATES.template_from_str(text).map(drop),
            };
            compiled.map_err(|err| format!("template {text:?}: {}", describe(&err)))
        }
        Value::Array(items) => items.iter().try_for_each(check),
        Value::Object(fields) => fields.values().try_for_each(check),
        _ => Ok(()),
    }
}

/// Checks expression `source` compiles.
///
/// # Errors
///
/// Its syntax error.
pub(crate) fn check_expression(source: &str) -> Result<(), String> {
    let expression = lone_expression(source).unwrap_or(source);
    within_limits(expression, true)?;
    TEMPLATES
        .compile_expression(expression)
        .map(drop)
        .map_err(|err| format!("expression {source:?}: {}", describe(&err)))
}

/// Checks `text` (all code when `is_code`, else a template whose code is inside its
/// tags) against [`MAX_CODE`] and [`MAX_NESTING`] before minijinja sees it. String
/// literals in the code are skipped whole; comments are text.
///
/// # Errors
///
/// Which limit the text goes past, with its start.
fn within_limits(text: &str, is_code: bool) -> Result<(), String> {
    let bytes = text.as_bytes();
    let (mut in_code, mut in_comment) = (is_code, false);
    let (mut code, mut depth, mut quote) = (0usize, 0usize, None);
    let mut at = 0;
    let refused = |what: String| {
        let start: String = text.chars().take(80).collect();
        Err(format!("template {start:?}…: {what}"))
    };
    while at < bytes.len() {
        let (byte, next) = (bytes[at], bytes.get(at + 1).copied());
        at += 1;
        if !in_code {
            match (in_comment, byte, next) {
                (true, b'#', Some(b'}')) => in_comment = false,
                (false, b'{', Some(b'{' | b'%')) => in_code = true,
                (false, b'{', Some(b'#')) => in_comment = true,
                _ => continue,
            }
            at += 1;
            continue;
        }
        code += 1;
        match (quote, byte) {
            (Some(_), b'\\') => at += 1,
            (Some(open), _) if byte == open => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(byte),
            (None, b'(' | b'[' | b'{') => depth += 1,
            (None, b'}' | b'%') if depth == 0 && next == Some(b'}') && !is_code => {
                in_code = false;
                at += 1;
            }
            (None, b')' | b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        if code > MAX_CODE {
            return refused(format!("more than {MAX_CODE} bytes of code"));
        }
        if depth > MAX_NESTING {
            return refused(format!("brackets nested deeper than {MAX_NESTING}"));
        }
    }
    Ok(())
}

/// The expression of a string that is `{{ expression }}` and nothing else.
fn lone_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%"))
        .then_some(inner.trim())
}

/// A minijinja error with its detail (the kind alone says little).
fn describe(err: &minijinja::Error) -> String {
    match err.detail() {
        Some(detail) => format!("{} ({detail})", err.kind()),
        None => err.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_lone_expression_keeps_its_type_and_text_renders() {
        let context =
            json!({ "results": { "language": { "languages": ["en", "fr"] } }, "lang": "fr" });
        let input = json!({
            "languages": "{{ results.language.languages }}",
            "prompt": "Summarize in {{ lang }}",
            "count": "{{ results.language.languages | length }}",
            "plain": "no template",
            "n": 3,
        });
        assert_eq!(
            render(&input, &context).unwrap(),
            json!({
                "languages": ["en", "fr"],
                "prompt": "Summarize in fr",
                "count": 2,
                "plain": "no template",
                "n": 3,
            })
        );
    }

    #[test]
    fn an_undefined_variable_is_an_error_not_an_empty_string() {
        let context = json!({ "results": {} });
        for template in ["{{ results.missing.text }}", "text: {{ nothing }}"] {
            let err = render(&json!(template), &context).unwrap_err();
            assert!(err.contains("undefined"), "{err}");
            assert!(err.contains(template), "{err}");
        }
    }

    #[test]
    fn a_runaway_loop_runs_out_of_fuel() {
        let template = json!("{% for i in range(100000) %}{{ i }}{% endfor %}");
        let err = render(&template, &json!({})).unwrap_err();
        assert!(err.contains("fuel"), "{err}");
    }

    #[test]
    fn syntax_errors_are_found_before_anything_runs() {
        assert!(check(&json!({ "a": "{{ results.x }}", "b": ["ok"] })).is_ok());
        let err = check(&json!({ "a": "{{ results.x " })).unwrap_err();
        assert!(err.contains("syntax"), "{err}");
        assert!(check_expression("results.language.languages").is_ok());
        assert_eq!(eval("{{ [1, 2] }}", &json!({})).unwrap(), json!([1, 2]));
    }

    #[test]
    fn long_chains_and_deep_brackets_are_refused_before_minijinja_recurses() {
        let chain = format!("{{{{ x{} }}}}", "|upper".repeat(200));
        let err = check(&json!(chain)).unwrap_err();
        assert!(err.contains("bytes of code"), "{err}");
        let nested = format!("{}1{}", "range(".repeat(40), ")".repeat(40));
        let err = check_expression(&nested).unwrap_err();
        assert!(err.contains("nested deeper"), "{err}");
        let err = render(&json!(format!("a {{{{ {nested} }}}}")), &json!({})).unwrap_err();
        assert!(err.contains("nested deeper"), "{err}");
        // Text, comments and string literals are not code; brackets in them do not nest.
        let prose = format!(
            "{} {{{{ x }}}} {{# {} #}}",
            "((".repeat(2000),
            "|a".repeat(2000)
        );
        assert!(check(&json!(prose)).is_ok());
        assert!(check(&json!(format!("{{{{ x ~ '{}' }}}}", "(".repeat(100)))).is_ok());
        assert!(check(&json!("{{ {'a': {'b': 1}} }}")).is_ok());
    }
}
