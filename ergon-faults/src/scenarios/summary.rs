//! Figures read from the summary a runner prints on stdout when its run ends
//! (`task drain: processed=4012 succeeded=4000 … settle_stale=12 …`).

/// The value of `key` on the summary line of task `drain` in `stdout`, or `?` (see
/// [`task_field`]).
pub fn drain_field(stdout: &str, key: &str) -> String {
    task_field(stdout, "drain", key).unwrap_or_else(|| "?".to_owned())
}

/// The value of `key` on the summary line of `task` in `stdout`, if it has one.
pub fn task_field(stdout: &str, task: &str, key: &str) -> Option<String> {
    let prefix = format!("task {task}: ");
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|fields| {
            fields
                .split_whitespace()
                .filter_map(|field| field.split_once('='))
                .find_map(|(name, value)| (name == key).then(|| value.to_owned()))
        })
}

#[cfg(test)]
mod tests {
    use super::{drain_field, task_field};

    #[test]
    fn a_field_of_the_drain_line_is_read() {
        let stdout = "ergon run finished in 1.000s: 12 transactions, 12 tx/s, exit code 143\n\
                      task feed: processed=1 settle_stale=9\n\
                      task drain: processed=12 succeeded=10 settle_stale=2 ended=shutdown\n";
        assert_eq!(drain_field(stdout, "processed"), "12");
        assert_eq!(drain_field(stdout, "settle_stale"), "2");
        assert_eq!(drain_field(stdout, "missing"), "?");
        assert_eq!(drain_field("", "processed"), "?");
        assert_eq!(
            task_field(stdout, "feed", "processed").as_deref(),
            Some("1")
        );
    }
}
