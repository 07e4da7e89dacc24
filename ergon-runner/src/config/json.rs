//! The merged config (file and `ERGON__…` overrides) as JSON, refusing what JSON cannot
//! hold: `nan`, `inf` and `-inf` are errors naming their key, never a silent `null`.

use config::{Value, ValueKind};
use serde_json::{Number, Value as Json};

/// Converts one merged value; `path` is its key path.
///
/// # Errors
///
/// `(key path, message)` for a NaN or an infinity (TOML `nan`, `inf`, or an override such
/// as `ERGON__…=nan`), or an integer beyond 64 bits.
pub(crate) fn to_json(value: Value, path: &mut Vec<String>) -> Result<Json, (String, String)> {
    let from_env = value.origin().is_some_and(|o| o.contains("environment"));
    Ok(match value.kind {
        ValueKind::Nil => Json::Null,
        ValueKind::Boolean(b) => Json::Bool(b),
        ValueKind::String(s) => Json::String(s),
        ValueKind::I64(i) => Json::from(i),
        ValueKind::U64(u) => Json::from(u),
        ValueKind::I128(i) => i64::try_from(i)
            .map(Json::from)
            .map_err(|_| refusal(path, from_env, format!("{i} is out of range")))?,
        ValueKind::U128(u) => u64::try_from(u)
            .map(Json::from)
            .map_err(|_| refusal(path, from_env, format!("{u} is out of range")))?,
        ValueKind::Float(f) => Number::from_f64(f).map(Json::Number).ok_or_else(|| {
            refusal(
                path,
                from_env,
                format!("{f} is not allowed: numbers must be finite (no nan or inf)"),
            )
        })?,
        ValueKind::Array(items) => Json::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(index, item)| nested(item, path, index.to_string()))
                .collect::<Result<_, _>>()?,
        ),
        ValueKind::Table(table) => Json::Object(
            table
                .into_iter()
                .map(|(key, item)| {
                    Ok::<_, (String, String)>((key.clone(), nested(item, path, key)?))
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn nested(value: Value, path: &mut Vec<String>, key: String) -> Result<Json, (String, String)> {
    path.push(key);
    let json = to_json(value, path);
    path.pop();
    json
}

fn refusal(path: &[String], from_env: bool, what: String) -> (String, String) {
    let source = if from_env {
        " (set by an ERGON__ environment override)"
    } else {
        ""
    };
    (path.join("."), format!("{what}{source}"))
}
