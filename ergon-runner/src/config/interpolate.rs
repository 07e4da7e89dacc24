//! `${VAR}` and `${VAR:-default}` in string values, for secrets and per-host settings.
//!
//! Interpolation runs on parsed values (never on the raw text), so a variable can not
//! inject TOML. `$$` writes a literal `$`.

/// Replaces variables in every string of `value`, using `lookup` to read them.
///
/// # Errors
///
/// `(key path, message)` for an unset variable without default or a malformed reference.
pub fn interpolate(
    value: &mut serde_json::Value,
    path: &mut Vec<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    match value {
        serde_json::Value::String(text) if text.contains('$') => {
            *text = expand(text, lookup).map_err(|message| (path.join("."), message))?;
        }
        serde_json::Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                path.push(index.to_string());
                interpolate(item, path, lookup)?;
                path.pop();
            }
        }
        serde_json::Value::Object(table) => {
            for (key, item) in table.iter_mut() {
                path.push(key.clone());
                interpolate(item, path, lookup)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in {text:?}"))?;
            let reference = &after[..end];
            let (name, default) = match reference.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (reference, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`${{{reference}}}` is not a variable reference; write ${{NAME}} or ${{NAME:-default}}"
                ));
            }
            match (lookup(name), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (write ${{{name}:-default}} to give a default)"
                    ));
                }
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "USER" => Some("guest".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables_defaults_and_escapes() {
        let cases = [
            ("amqp://${USER}@host", "amqp://guest@host"),
            ("${MISSING:-fallback}/x", "fallback/x"),
            ("${EMPTY:-unused}", ""),
            ("cost $$5 and $ alone", "cost $5 and $ alone"),
            ("${USER}${USER}", "guestguest"),
        ];
        for (input, expected) in cases {
            assert_eq!(expand(input, &env).unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn errors_name_the_variable_and_the_key() {
        let mut value = serde_json::json!({ "connectors": { "db": { "url": "${DB_URL}" } } });
        let (path, message) = interpolate(&mut value, &mut Vec::new(), &env).unwrap_err();
        assert_eq!(path, "connectors.db.url");
        assert!(message.contains("DB_URL is not set"), "{message}");
        assert!(expand("${oops", &env).unwrap_err().contains("unclosed"));
        assert!(
            expand("${a b}", &env)
                .unwrap_err()
                .contains("not a variable reference")
        );
    }
}
