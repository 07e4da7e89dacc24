//! Ids in, ids out: the numbered JSON lines a scenario feeds, and the count of each id in
//! an output file, compared into lost and duplicated.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::{Error, Result};

/// `count` ids `{prefix}-{i}`, in order.
pub fn numbered(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

/// One JSON line per id, `{"id":"<id>","n":<i>}`, newline-terminated: what the suite
/// feeds into an input connector (the `id` field is the transaction id, and what is
/// counted at the output).
pub fn json_lines(ids: &[String]) -> String {
    ids.iter()
        .enumerate()
        .map(|(n, id)| format!("{{\"id\":\"{id}\",\"n\":{n}}}\n"))
        .collect()
}

/// How often each value of the top-level string field `field` occurs in the JSON lines
/// of `path` (missing file: none). A line that is not JSON is skipped: a kill tore it
/// while it was written, before its transaction was acked, so it comes again.
///
/// # Errors
///
/// The file exists but cannot be read.
pub fn count(path: &Path, field: &str) -> Result<BTreeMap<String, usize>> {
    count_by(path, |value| value[field].as_str().map(str::to_owned))
}

/// How often each key occurs in the JSON lines of `path`, `key` naming a line's key
/// (lines it gives none are not counted); torn lines are skipped as in [`count`].
///
/// # Errors
///
/// The file exists but cannot be read.
pub fn count_by(
    path: &Path,
    key: impl Fn(&serde_json::Value) -> Option<String>,
) -> Result<BTreeMap<String, usize>> {
    let mut seen = BTreeMap::new();
    for value in lines(path)? {
        if let Some(id) = key(&value) {
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    Ok(seen)
}

/// The JSON lines of `path` (missing file: none; torn lines skipped as in [`count`]).
///
/// # Errors
///
/// The file exists but cannot be read.
pub fn lines(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(Error::io(format!("reading {}", path.display()))(err)),
    };
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect())
}

/// Sent ids against the ids seen at the output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Ids sent.
    pub sent: usize,
    /// Sent ids seen at least once.
    pub unique: usize,
    /// Extra copies of sent ids (at-least-once redeliveries).
    pub duplicated: usize,
    /// Ids seen that were never sent (a scenario's data leaking into another's).
    pub unexpected: usize,
    /// Up to five lost ids, for the report.
    pub lost_sample: Vec<String>,
}

impl Tally {
    /// Compares `sent` with `seen` (from [`count`]).
    pub fn of(sent: &[String], seen: &BTreeMap<String, usize>) -> Self {
        let mut tally = Self {
            sent: sent.len(),
            ..Self::default()
        };
        for id in sent {
            match seen.get(id) {
                Some(&copies) => {
                    tally.unique += 1;
                    tally.duplicated += copies - 1;
                }
                None if tally.lost_sample.len() < 5 => tally.lost_sample.push(id.clone()),
                None => {}
            }
        }
        let sent_set: std::collections::BTreeSet<&str> = sent.iter().map(String::as_str).collect();
        tally.unexpected = seen
            .keys()
            .filter(|id| !sent_set.contains(id.as_str()))
            .count();
        tally
    }

    /// Sent ids never seen.
    pub fn lost(&self) -> usize {
        self.sent - self.unique
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_counts_lost_duplicated_and_unexpected_ids() {
        let sent = numbered("o", 4);
        let seen: BTreeMap<String, usize> = [("o-0", 1), ("o-1", 3), ("o-3", 1), ("x-9", 1)]
            .into_iter()
            .map(|(id, n)| (id.to_owned(), n))
            .collect();
        let tally = Tally::of(&sent, &seen);
        assert_eq!(
            (
                tally.unique,
                tally.lost(),
                tally.duplicated,
                tally.unexpected
            ),
            (3, 1, 2, 1)
        );
        assert_eq!(tally.lost_sample, ["o-2"]);
    }

    #[test]
    fn a_torn_line_is_not_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(
            &path,
            format!("{}{{\"id\":\"o-1", json_lines(&numbered("o", 1))),
        )
        .unwrap();
        let seen = count(&path, "id").unwrap();
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            [("o-0".to_owned(), 1)]
        );
    }
}
