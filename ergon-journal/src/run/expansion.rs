//! An expanded node's items, evaluated when the node becomes ready: from an array, a
//! matrix, explicit items, an upstream node's separate output, or an expander
//! registered in the binary — never more than the node's `max_items` (an overflow fails
//! the node; nothing is truncated).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use ergon_core::journal::dag::Expand;
use serde_json::{Map, Value};

use super::template;

/// Custom code that expands a node: it receives the node's template context (`input`,
/// `results`, `run`) and returns the items.
pub type Expander = Arc<dyn Fn(&Value) -> Result<Vec<Value>, String> + Send + Sync>;

/// The expanders registered in the binary, by name (`expand = { custom = "NAME" }`).
#[derive(Clone, Default)]
pub struct Expanders(BTreeMap<String, Expander>);

impl Expanders {
    /// No expanders.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `expander` as `name`.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, expander: Expander) -> Self {
        self.0.insert(name.into(), expander);
        self
    }

    /// Whether one is registered as `name`.
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The names registered, for error messages.
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        if names.is_empty() {
            return "none".into();
        }
        names.join(", ")
    }
}

impl fmt::Debug for Expanders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// One item: its value, its key, and its position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Item {
    pub index: u32,
    pub key: String,
    pub value: Value,
}

/// The items of `expand` over `context`, keyed (and checked against its limit).
///
/// # Errors
///
/// Why the node fails: a source that does not yield an array, an expander's error, more
/// items than `max_items`, a key template that fails, or two items with one key.
pub(crate) fn items(
    expand: &Expand,
    context: &Value,
    expanders: &Expanders,
) -> Result<Vec<Item>, String> {
    let limit = expand.limit();
    let keyed = source(expand, context, expanders, limit)?;
    if keyed.len() > limit {
        return Err(over_limit(keyed.len(), limit));
    }
    let mut seen = HashSet::with_capacity(keyed.len());
    let mut items = Vec::with_capacity(keyed.len());
    for (index, (key, value)) in keyed.into_iter().enumerate() {
        let index = u32::try_from(index).map_err(|_| over_limit(index, limit))?;
        let key = match (&expand.key, key) {
            (Some(template), _) => {
                let scope = item_scope(context, expand, &value, index, None);
                match template::eval(template, &scope)? {
                    Value::String(key) => key,
                    other => other.to_string(),
                }
            }
            (None, Some(key)) => key,
            (None, None) => index.to_string(),
        };
        if !seen.insert(key.clone()) {
            return Err(format!(
                "two items have the key {key:?}; keys must be unique"
            ));
        }
        items.push(Item { index, key, value });
    }
    Ok(items)
}

/// `context` with the item's variables: `item`, `index`, `key` (once known) and the
/// item's own name (`as`).
pub(crate) fn item_scope(
    context: &Value,
    expand: &Expand,
    value: &Value,
    index: u32,
    key: Option<&str>,
) -> Value {
    let mut scope = context.clone();
    if let Value::Object(fields) = &mut scope {
        fields.insert("item".into(), value.clone());
        fields.insert("index".into(), index.into());
        if let Some(key) = key {
            fields.insert("key".into(), key.into());
        }
        if let Some(name) = &expand.name {
            fields.insert(name.clone(), value.clone());
        }
    }
    scope
}

/// The items of `expand`'s one source, with their natural keys (`each`: the entry's).
fn source(
    expand: &Expand,
    context: &Value,
    expanders: &Expanders,
    limit: usize,
) -> Result<Vec<(Option<String>, Value)>, String> {
    let unkeyed = |items: Vec<Value>| items.into_iter().map(|v| (None, v)).collect();
    if let Some(over) = &expand.over {
        return array(template::eval(over, context)?, "over").map(unkeyed);
    }
    if let Some(items) = &expand.items {
        return Ok(unkeyed(items.clone()));
    }
    if let Some(arrays) = &expand.matrix {
        return matrix(arrays, context, limit).map(unkeyed);
    }
    if let Some(upstream) = &expand.each {
        return match &context["results"][upstream] {
            Value::Object(entries) => Ok(entries
                .iter()
                .map(|(key, value)| (Some(key.clone()), value.clone()))
                .collect()),
            Value::Array(items) => Ok(unkeyed(items.clone())),
            other => Err(format!(
                "`each = \"{upstream}\"` needs that node's output to be an object or an \
                 array, not {}",
                kind(other)
            )),
        };
    }
    if let Some(name) = &expand.custom {
        let Some(expander) = expanders.0.get(name) else {
            return Err(format!(
                "no expander is registered as `{name}` (registered: {})",
                expanders.names()
            ));
        };
        return expander(context)
            .map(unkeyed)
            .map_err(|err| format!("expander `{name}`: {err}"));
    }
    Err("`expand` has no source".into())
}

/// The cartesian product of `arrays` (each literal or an expression yielding an array),
/// refused before it is built when it would exceed `limit`.
fn matrix(
    arrays: &BTreeMap<String, Value>,
    context: &Value,
    limit: usize,
) -> Result<Vec<Value>, String> {
    let mut axes = Vec::with_capacity(arrays.len());
    let mut size: usize = 1;
    for (name, source) in arrays {
        let values = match source {
            Value::String(expression) => array(template::eval(expression, context)?, name)?,
            other => array(other.clone(), name)?,
        };
        size = size.saturating_mul(values.len());
        axes.push((name, values));
    }
    if size > limit {
        return Err(over_limit(size, limit));
    }
    let mut combinations = vec![Map::new()];
    for (name, values) in axes {
        combinations = combinations
            .into_iter()
            .flat_map(|partial| {
                values.iter().map(move |value| {
                    let mut next = partial.clone();
                    next.insert(name.clone(), value.clone());
                    next
                })
            })
            .collect();
    }
    Ok(combinations.into_iter().map(Value::Object).collect())
}

fn array(value: Value, what: &str) -> Result<Vec<Value>, String> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(format!(
            "`{what}` must yield an array, not {}",
            kind(&other)
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn over_limit(items: usize, limit: usize) -> String {
    format!("the expansion has {items} items, more than max_items = {limit} (nothing was run)")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn keys(items: &[Item]) -> Vec<&str> {
        items.iter().map(|i| i.key.as_str()).collect()
    }

    #[test]
    fn over_an_upstream_array_with_keys() {
        let context = json!({ "results": { "language": { "languages": ["en", "fr"] } } });
        let expand = Expand {
            key: Some("{{ lang }}".into()),
            ..Expand::over("{{ results.language.languages }}").named("lang")
        };
        let items = items(&expand, &context, &Expanders::new()).unwrap();
        assert_eq!(keys(&items), ["en", "fr"]);
        assert_eq!(items[1].value, json!("fr"));
    }

    #[test]
    fn a_matrix_is_the_cartesian_product() {
        let context = json!({ "input": { "langs": ["en", "fr"] } });
        let mut arrays = BTreeMap::new();
        arrays.insert("lang".to_owned(), json!("{{ input.langs }}"));
        arrays.insert("model".to_owned(), json!(["small", "large", "xl"]));
        let items = items(&Expand::matrix(arrays), &context, &Expanders::new()).unwrap();
        assert_eq!(items.len(), 6);
        assert_eq!(items[0].value, json!({ "lang": "en", "model": "small" }));
        assert_eq!(items[5].value, json!({ "lang": "fr", "model": "xl" }));
    }

    #[test]
    fn an_overflow_fails_and_never_truncates() {
        let expand = Expand {
            max_items: Some(2),
            ..Expand::items(vec![json!(1), json!(2), json!(3)])
        };
        let err = items(&expand, &json!({}), &Expanders::new()).unwrap_err();
        assert!(err.contains("3 items, more than max_items = 2"), "{err}");
        let mut arrays = BTreeMap::new();
        arrays.insert("a".to_owned(), json!([1, 2]));
        arrays.insert("b".to_owned(), json!([1, 2]));
        let expand = Expand {
            max_items: Some(3),
            ..Expand::matrix(arrays)
        };
        assert!(items(&expand, &json!({}), &Expanders::new()).is_err());
    }

    #[test]
    fn each_entry_of_a_separate_output_and_custom_code() {
        let context = json!({ "results": { "summaries": { "en": "hi", "fr": "salut" } } });
        let items_each = items(&Expand::each("summaries"), &context, &Expanders::new()).unwrap();
        assert_eq!(keys(&items_each), ["en", "fr"]);
        let expanders = Expanders::new().with(
            "halves",
            Arc::new(|context: &Value| {
                let n = context["input"]["n"].as_u64().ok_or("no n")?;
                Ok((0..n / 2).map(Value::from).collect())
            }),
        );
        let custom = Expand::custom("halves");
        assert_eq!(
            items(&custom, &json!({ "input": { "n": 6 } }), &expanders)
                .unwrap()
                .len(),
            3
        );
        let err = items(&custom, &json!({ "input": {} }), &expanders).unwrap_err();
        assert_eq!(err, "expander `halves`: no n");
        let err = items(&Expand::custom("ghost"), &json!({}), &expanders).unwrap_err();
        assert!(err.contains("registered: halves"), "{err}");
    }

    #[test]
    fn duplicate_keys_and_non_arrays_are_refused() {
        let expand = Expand {
            key: Some("{{ item.k }}".into()),
            ..Expand::items(vec![json!({ "k": "a" }), json!({ "k": "a" })])
        };
        let err = items(&expand, &json!({}), &Expanders::new()).unwrap_err();
        assert!(err.contains("\"a\""), "{err}");
        let err = items(
            &Expand::over("{{ input }}"),
            &json!({ "input": 3 }),
            &Expanders::new(),
        )
        .unwrap_err();
        assert_eq!(err, "`over` must yield an array, not a number");
    }
}
