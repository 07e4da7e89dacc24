//! `queue enqueue`: lines into a local queue, byte for byte.

use std::io::BufRead as _;
use std::path::Path;

use ergon_connectors::jsonl;
use ergon_connectors::local::{LocalConfig, NewRow, Store};
use ergon_core::config::{ConfigEnv, decode};

use super::failed;
use crate::config::{ConfigError, LoadedConfig};

/// Rows written per SQLite transaction while enqueueing.
const ENQUEUE_BATCH: usize = 1_000;

/// A local queue named in the config file: its database and queue name.
struct Named {
    store: Store,
    queue: String,
}

/// Opens the local queue of `[connectors.NAME]`.
fn open(loaded: &LoadedConfig, name: &str) -> Result<Named, ConfigError> {
    let file = &loaded.file;
    let at = |key: String, message: String| ConfigError::new(file, key, message);
    let table = loaded.config.connectors.get(name).ok_or_else(|| {
        let known: Vec<&str> = loaded
            .config
            .connectors
            .keys()
            .map(String::as_str)
            .collect();
        at(
            format!("connectors.{name}"),
            format!("no such connector; the file defines {known:?}"),
        )
    })?;
    let mut table = table.clone();
    let kind = table.as_object_mut().and_then(|t| t.remove("type"));
    if kind.as_ref().and_then(|k| k.as_str()) != Some("local") {
        return Err(at(
            format!("connectors.{name}.type"),
            format!(
                "`queue` works on `type = \"local\"` connectors, not {}",
                kind.unwrap_or_default()
            ),
        ));
    }
    let config: LocalConfig = decode(table)
        .map_err(|issue| at(format!("connectors.{name}.{}", issue.path), issue.message))?;
    let env = ConfigEnv {
        name: name.to_owned(),
        base_dir: loaded.base_dir.clone(),
    };
    let (path, queue) = config.resolved(&env);
    let store = Store::open(&path).map_err(|err| {
        at(
            format!("connectors.{name}.path"),
            format!("cannot open {}: {err}", path.display()),
        )
    })?;
    Ok(Named { store, queue })
}

/// Enqueues the lines of `source` (a file, or stdin when `None` or `-`) into
/// `connector`, each with the bytes read (without its `\n` or `\r\n`; blank lines are
/// skipped, as the file connector does). Each line's `id` field (a string or a number) is
/// its id, else `LABEL:LINE`. A line that is not JSON, or not even UTF-8, is enqueued as
/// it is, as the file connector delivers it (the task rejects it as a business error and
/// it is dead-lettered, intact), and named in the report; with `strict` it stops the
/// command before anything is written.
///
/// # Errors
///
/// An unknown or non-local connector, an unreadable source, with `strict` a line that is
/// not JSON.
pub fn enqueue(
    loaded: &LoadedConfig,
    connector: &str,
    source: Option<&Path>,
    strict: bool,
) -> Result<String, ConfigError> {
    let mut named = open(loaded, connector)?;
    let (label, mut reader): (String, Box<dyn std::io::BufRead>) = match source {
        Some(path) if path != Path::new("-") => {
            let file = std::fs::File::open(path)
                .map_err(|err| ConfigError::new(path, "", format!("cannot read: {err}")))?;
            let label = path
                .file_name()
                .map_or_else(|| "input".into(), |n| n.to_string_lossy().into_owned());
            (label, Box::new(std::io::BufReader::new(file)))
        }
        _ => (
            "stdin".into(),
            Box::new(std::io::BufReader::new(std::io::stdin())),
        ),
    };
    let mut rows: Vec<(String, Vec<u8>)> = Vec::new();
    let mut invalid = Vec::new();
    let mut buf = Vec::new();
    for number in 1.. {
        buf.clear();
        let read = reader
            .read_until(b'\n', &mut buf)
            .map_err(|err| ConfigError::new(Path::new(&label), format!("line {number}"), err))?;
        if read == 0 {
            break;
        }
        let line = jsonl::trim_newline(&buf);
        if jsonl::is_blank(line) {
            continue;
        }
        let id = match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(value) => match &value["id"] {
                serde_json::Value::String(id) => id.clone(),
                serde_json::Value::Number(id) => id.to_string(),
                _ => format!("{label}:{number}"),
            },
            Err(err) if strict => {
                return Err(ConfigError::new(
                    Path::new(&label),
                    format!("line {number}"),
                    format!("not JSON: {err}; nothing was enqueued"),
                ));
            }
            Err(_) => {
                invalid.push(number);
                format!("{label}:{number}")
            }
        };
        rows.push((id, line.to_vec()));
    }
    for chunk in rows.chunks(ENQUEUE_BATCH) {
        let batch: Vec<NewRow<'_>> = chunk
            .iter()
            .map(|(id, payload)| NewRow {
                id,
                payload,
                metadata: "{}".into(),
            })
            .collect();
        named.store.enqueue(&named.queue, &batch).map_err(failed(
            loaded,
            connector,
            "enqueue failed",
        ))?;
    }
    let mut report = format!(
        "enqueued {} transaction(s) into {connector} (queue {})\n",
        rows.len(),
        named.queue
    );
    if !invalid.is_empty() {
        report.push_str(&format!(
            "not JSON, enqueued as they are (the task will reject them): {label} line(s) {invalid:?}\n"
        ));
    }
    Ok(report)
}
