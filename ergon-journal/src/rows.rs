//! Reading the journal's rows, the same in every backend: which columns make a
//! [`Node`] and a [`MemberState`], and how a row becomes one. Each backend implements
//! [`Columns`] on its row type.

use ergon_core::journal::MemberState;

use crate::node::{Filter, Node, NodeError, Status};
use crate::run::ItemResult;
use crate::run::view::RunSummary;

/// The columns [`node`] reads, in its order. A node's children are those its output
/// confirmed (`children`) and those it spawned, counted when read so that a completion
/// does not pay for it.
pub(crate) const NODE_COLUMNS: &str = "tx_id, task, parent_id, root_id, tags, status,
    settlement, attempts, deliveries, children + (SELECT count(*) FROM ergon_node spawned
        WHERE spawned.parent_id = ergon_node.tx_id AND spawned.edge = 'spawn'),
    failed_step, error_category, error, trace_id, started_at, finished_at, output, edge";

/// The query of `list` for `filter`, with `mark` (`?` or `$`) before each value's
/// number, and the values. It names only the conditions given, so that the database
/// picks the parent or descendant index (a generic `?1 IS NULL OR parent_id = ?1` would
/// scan the whole table).
pub(crate) fn list_query(filter: &Filter, mark: char) -> (String, Vec<&str>) {
    let status = filter.status.map(Status::as_str);
    // Each condition, with `#` where its value goes. A lineage is its root, read by its
    // key, and its descendants, read by `ergon_node_descendant` (which holds no root).
    let given = [
        ("parent_id = #", filter.parent.as_deref()),
        (
            "(tx_id = # AND root_id = # OR root_id = # AND root_id != tx_id)",
            filter.root.as_deref(),
        ),
        ("status = #", status),
    ];
    let (conditions, values): (Vec<String>, Vec<&str>) = given
        .iter()
        .filter_map(|(condition, value)| Some((*condition, (*value)?)))
        .enumerate()
        .map(|(index, (condition, value))| {
            let placeholder = format!("{mark}{}", index + 1);
            (condition.replace('#', &placeholder), value)
        })
        .unzip();
    let conditions = if conditions.is_empty() {
        "true".to_owned()
    } else {
        conditions.join(" AND ")
    };
    let sql = format!(
        "SELECT {NODE_COLUMNS} FROM ergon_node WHERE {conditions}
         ORDER BY finished_at, tx_id LIMIT {}",
        i64::try_from(filter.limit).unwrap_or(i64::MAX)
    );
    (sql, values)
}

/// A row of a backend, read by column index.
pub(crate) trait Columns {
    /// The backend's error.
    type Error;
    /// A text column (`None` for NULL).
    fn text(&self, index: usize) -> Result<Option<String>, Self::Error>;
    /// An integer column.
    fn int(&self, index: usize) -> Result<i64, Self::Error>;
    /// An integer column that may be NULL.
    fn maybe_int(&self, index: usize) -> Result<Option<i64>, Self::Error>;
}

/// The runs `runs` lists, newest first: `status` (or every status when `$1` is NULL),
/// with `mark` before each value's number.
pub(crate) fn runs_query(mark: char, limit: usize) -> String {
    format!(
        "SELECT {} FROM ergon_run WHERE CAST({mark}1 AS TEXT) IS NULL OR status = {mark}1
         ORDER BY created_at DESC, run_id LIMIT {}",
        crate::tables::RUN_COLUMNS,
        i64::try_from(limit).unwrap_or(i64::MAX)
    )
}

/// One run by id, with `mark` before the value's number.
pub(crate) fn run_query(mark: char) -> String {
    format!(
        "SELECT {} FROM ergon_run WHERE run_id = {mark}1",
        crate::tables::RUN_COLUMNS
    )
}

/// The summary of a row of [`crate::tables::RUN_COLUMNS`], and its definition and state.
pub(crate) fn run<R: Columns>(row: &R) -> Result<(RunSummary, String, String), R::Error> {
    let text = |index| row.text(index).map(Option::unwrap_or_default);
    let count = |index| row.int(index).map(|n| u64::try_from(n).unwrap_or(0));
    let summary = RunSummary {
        run_id: text(0)?,
        workflow: text(1)?,
        status: text(2)?,
        nodes_total: count(3)?,
        nodes_done: count(4)?,
        nodes_failed: count(5)?,
        created_at: row.int(6)?,
        finished_at: row.maybe_int(7)?,
        deadline_ms: row.maybe_int(8)?,
    };
    Ok((summary, text(9)?, text(10)?))
}

/// The node of a row of [`NODE_COLUMNS`].
pub(crate) fn node<R: Columns>(row: &R) -> Result<Node, R::Error> {
    let text = |index| row.text(index).map(Option::unwrap_or_default);
    let count = |index| row.int(index).map(|n| u32::try_from(n).unwrap_or(0));
    let error = match row.text(10)? {
        Some(step) => Some(NodeError {
            step,
            category: text(11)?,
            message: text(12)?,
        }),
        None => None,
    };
    Ok(Node {
        id: text(0)?,
        task: text(1)?,
        parent_id: row.text(2)?,
        root_id: text(3)?,
        tags: text(4)?
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        status: Status::named(&text(5)?).unwrap_or(Status::Failed),
        settlement: text(6)?,
        attempts: count(7)?,
        deliveries: count(8)?,
        children: count(9)?,
        error,
        trace_id: row.text(13)?,
        started_at_ms: row.int(14)?,
        finished_at_ms: row.int(15)?,
        output: output(row.text(16)?),
        edge: row.text(17)?,
    })
}

/// The member state of a row of `task, tx_id, status, output, error`.
pub(crate) fn member_state<R: Columns>(row: &R) -> Result<MemberState, R::Error> {
    Ok(MemberState {
        task: row.text(0)?.unwrap_or_default(),
        id: row.text(1)?.unwrap_or_default(),
        status: row.text(2)?.unwrap_or_default(),
        output: output(row.text(3)?),
        error: row.text(4)?,
    })
}

/// The state of a member the journal holds no terminal node for.
pub(crate) fn pending(task: &str, id: &str) -> MemberState {
    MemberState {
        task: task.to_owned(),
        id: id.to_owned(),
        status: "pending".to_owned(),
        output: None,
        error: None,
    }
}

/// A recorded output (JSON text) as a value.
fn output(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|text| serde_json::from_str(&text).ok())
}

/// The settlement recorded for a terminal node in `task`, from its `settlement`,
/// `failed_step`, `error_category`, `error` and `attempts` columns.
pub(crate) fn settlement<R: Columns>(
    row: &R,
    task: &str,
) -> Result<ergon_core::Settlement, R::Error> {
    use ergon_core::{Category, Settlement, journal};
    let settlement = row.text(0)?.unwrap_or_default();
    if settlement == "ack" {
        return Ok(Settlement::Ack);
    }
    let failure = journal::failure(
        task,
        row.text(1)?.as_deref().unwrap_or_default(),
        row.text(2)?
            .as_deref()
            .and_then(Category::named)
            .unwrap_or(Category::System),
        row.text(3)?.unwrap_or_default(),
        u32::try_from(row.int(4)?).unwrap_or(0),
    );
    Ok(if settlement == "drop" {
        Settlement::Drop(failure)
    } else {
        Settlement::DeadLetter(failure)
    })
}

/// An item of an expanded node, from a row of [`crate::tables::RUN_ITEMS`]: key, status
/// (NULL while its node is not recorded), output.
pub(crate) fn item_result<R: Columns>(row: &R) -> Result<ItemResult, R::Error> {
    Ok(ItemResult {
        key: row.text(0)?.unwrap_or_default(),
        succeeded: row.text(1)?.as_deref() == Some("succeeded"),
        output: row.text(2)?.and_then(|o| serde_json::from_str(&o).ok()),
    })
}
