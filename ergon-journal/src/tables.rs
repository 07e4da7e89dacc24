//! The journal's tables, the same in every backend (each fills in the few words its SQL
//! dialect spells differently), and the statement that records a completion.
//!
//! ```text
//! ergon_node         one row per (transaction, task): lineage, status (queued while a
//!                    spawned child or a continuation waits; then succeeded, failed or
//!                    cancelled), settlement, attempts, deliveries, children, error, output,
//!                    edge (how the journal reached it: `spawn`, `then`)
//! ergon_wait         a parked wait: owner, quorum, counters, deadline, continuation task,
//!                    fired_at (set once)
//! ergon_wait_member  what it waits for: each member flips from pending once
//! ergon_fanin_group  a tagged fan-in group (consumer, tag, key): items arrived and not
//!                    yet batched, items expected, next batch, next position to batch,
//!                    deadline of the oldest
//! ergon_fanin_item   a result in a group, at its arrival position
//! ergon_fanin_batch  a batch cut: the range of its group's positions it took (a batch
//!                    takes the oldest unbatched items, so a range: items are written
//!                    once, never marked)
//! ergon_run          a DAG run: its owner, definition (plan, input, on_complete) and
//!                    the state of each node (JSON, read and written by each commit that
//!                    advances it), status, progress counters, deadline
//! ergon_run_item     an item of an expanded node: its index and key
//! ```

/// How a backend spells what SQL dialects do not share.
pub(crate) struct Dialect {
    /// The type of an auto-numbered primary key.
    pub serial_key: &'static str,
    /// What follows a table keyed by its primary key alone.
    pub keyed_table: &'static str,
}

/// The tables, with `{serial_key}` and `{keyed_table}` to fill in. The primary key of
/// `ergon_node` leads with the transaction id, so `get ID` and the redelivery lookup
/// read one index range. Retention finds ended nodes by `ergon_node_ended`, which leaves
/// queued nodes out: a spawned child enters it once, when it ends, instead of entering
/// it queued and moving when it ends (`ergon_node_finished`, which it replaces).
/// `ergon_node_descendant` finds a lineage by its root, and leaves the roots out (a root
/// is its own root, found by its key): a consumer's transactions are roots, and each
/// paid an entry there that no lookup needed (`ergon_node_root`, which it replaces).
/// `ergon_run` is not keyed alone: its rows (definition and state, about 1.5 KiB for six
/// nodes) are read and rewritten by every commit that advances the run, and a `WITHOUT
/// ROWID` row over about 1 KiB spills onto overflow pages (measured: 2× fewer runs/s in
/// `dag_runs_local`).
const TABLES: &str = "
CREATE TABLE IF NOT EXISTS ergon_node (
    tx_id TEXT NOT NULL,
    task TEXT NOT NULL,
    parent_id TEXT,
    root_id TEXT NOT NULL,
    tags TEXT NOT NULL,
    status TEXT NOT NULL,
    settlement TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    deliveries BIGINT NOT NULL,
    children BIGINT NOT NULL,
    failed_step TEXT,
    error_category TEXT,
    error TEXT,
    output TEXT,
    trace_id TEXT,
    edge TEXT,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    PRIMARY KEY (tx_id, task)
){keyed_table};
CREATE INDEX IF NOT EXISTS ergon_node_parent ON ergon_node (parent_id) WHERE parent_id IS NOT NULL;
DROP INDEX IF EXISTS ergon_node_root;
CREATE INDEX IF NOT EXISTS ergon_node_descendant ON ergon_node (root_id) WHERE root_id != tx_id;
DROP INDEX IF EXISTS ergon_node_finished;
CREATE INDEX IF NOT EXISTS ergon_node_ended ON ergon_node (finished_at) WHERE status != 'queued';
CREATE INDEX IF NOT EXISTS ergon_node_queued ON ergon_node (task) WHERE status = 'queued';
CREATE TABLE IF NOT EXISTS ergon_wait (
    wait_id {serial_key},
    key TEXT NOT NULL UNIQUE,
    owner_task TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    owner_metadata TEXT NOT NULL,
    counts TEXT NOT NULL,
    needed BIGINT NOT NULL,
    total BIGINT NOT NULL,
    done BIGINT NOT NULL,
    succeeded BIGINT NOT NULL DEFAULT 0,
    counted BIGINT NOT NULL,
    deadline_ms BIGINT,
    then_task TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    fired_at BIGINT,
    outcome TEXT
);
CREATE INDEX IF NOT EXISTS ergon_wait_due ON ergon_wait (deadline_ms)
    WHERE fired_at IS NULL AND deadline_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS ergon_wait_member (
    wait_id BIGINT NOT NULL,
    tx_id TEXT NOT NULL,
    task TEXT NOT NULL,
    position BIGINT NOT NULL,
    state TEXT NOT NULL,
    with_output BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (wait_id, tx_id, task)
){keyed_table};
CREATE INDEX IF NOT EXISTS ergon_wait_member_pending ON ergon_wait_member (tx_id, task)
    WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS ergon_wait_member_listed ON ergon_wait_member (wait_id, position)
    WHERE state != 'succeeded' OR with_output;
CREATE TABLE IF NOT EXISTS ergon_fanin_group (
    consumer TEXT NOT NULL,
    tag TEXT NOT NULL,
    group_key TEXT NOT NULL,
    root_id TEXT NOT NULL,
    arrived BIGINT NOT NULL,
    unbatched BIGINT NOT NULL,
    expected BIGINT,
    deep BOOLEAN NOT NULL,
    closed BOOLEAN NOT NULL,
    next_seq BIGINT NOT NULL,
    next_position BIGINT NOT NULL,
    deadline_ms BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, tag, group_key)
){keyed_table};
CREATE INDEX IF NOT EXISTS ergon_fanin_due ON ergon_fanin_group (deadline_ms)
    WHERE deadline_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS ergon_fanin_item (
    consumer TEXT NOT NULL,
    tag TEXT NOT NULL,
    task TEXT NOT NULL,
    tx_id TEXT NOT NULL,
    group_key TEXT NOT NULL,
    position BIGINT NOT NULL,
    included BOOLEAN NOT NULL,
    arrived_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, tag, task, tx_id)
){keyed_table};
CREATE INDEX IF NOT EXISTS ergon_fanin_arrival
    ON ergon_fanin_item (consumer, tag, group_key, position);
CREATE TABLE IF NOT EXISTS ergon_fanin_batch (
    batch_id TEXT NOT NULL PRIMARY KEY,
    consumer TEXT NOT NULL,
    tag TEXT NOT NULL,
    group_key TEXT NOT NULL,
    first_position BIGINT NOT NULL,
    end_position BIGINT NOT NULL,
    created_at BIGINT NOT NULL
){keyed_table};
CREATE TABLE IF NOT EXISTS ergon_run (
    run_id TEXT NOT NULL PRIMARY KEY,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    owner_task TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    owner_metadata TEXT NOT NULL,
    definition TEXT NOT NULL,
    state TEXT NOT NULL,
    nodes_total BIGINT NOT NULL,
    nodes_done BIGINT NOT NULL,
    nodes_failed BIGINT NOT NULL,
    deadline_ms BIGINT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX IF NOT EXISTS ergon_run_due ON ergon_run (deadline_ms)
    WHERE status = 'running' AND deadline_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS ergon_run_created ON ergon_run (created_at);
CREATE TABLE IF NOT EXISTS ergon_run_item (
    run_id TEXT NOT NULL,
    node TEXT NOT NULL,
    idx BIGINT NOT NULL,
    item_key TEXT NOT NULL,
    PRIMARY KEY (run_id, node, idx)
){keyed_table};
";

/// The items of an expanded node (run `$1`, node `$2`, task `$3`) in item order: key,
/// status and output, as the node's join reads them (`$` to be replaced by the
/// dialect's mark).
pub(crate) const RUN_ITEMS: &str = "SELECT i.item_key, n.status, n.output FROM ergon_run_item i
    LEFT JOIN ergon_node n ON n.tx_id = $1 || '/' || i.node || '/' || CAST(i.idx AS TEXT)
        AND n.task = $3
    WHERE i.run_id = $1 AND i.node = $2 ORDER BY i.idx";

/// The columns `runs` and `trace` read of a run, in [`crate::run::view::RunSummary`]'s
/// order, then its definition and state.
pub(crate) const RUN_COLUMNS: &str = "run_id, workflow, status, nodes_total, nodes_done,
    nodes_failed, created_at, finished_at, deadline_ms, definition, state";

/// Writes a run's row back after a transition (`$` to be replaced by the dialect's
/// mark): run id, status, definition (NULL: unchanged), state, nodes total, done, failed,
/// when it ended.
pub(crate) const SAVE_RUN: &str = "UPDATE ergon_run SET status = $2,
    definition = COALESCE($3, definition),
    state = $4, nodes_total = $5, nodes_done = $6, nodes_failed = $7,
    finished_at = COALESCE($8, finished_at)
    WHERE run_id = $1";

/// Deletes the items of the runs that ended before `$1`.
pub(crate) const PURGE_RUN_ITEMS: &str = "DELETE FROM ergon_run_item WHERE run_id IN
    (SELECT run_id FROM ergon_run WHERE finished_at < $1)";

/// Deletes the runs that ended before `$1` (after their items).
pub(crate) const PURGE_RUNS: &str = "DELETE FROM ergon_run WHERE finished_at < $1";

/// The items batch `$1` holds (task, transaction id), in the order they arrived (`$` to
/// be replaced by the dialect's mark).
pub(crate) const BATCH_ITEMS: &str = "SELECT i.task, i.tx_id FROM ergon_fanin_batch b
    JOIN ergon_fanin_item i ON i.consumer = b.consumer AND i.tag = b.tag
        AND i.group_key = b.group_key AND i.position >= b.first_position
        AND i.position < b.end_position AND i.included
    WHERE b.batch_id = $1 ORDER BY i.position";

/// Deletes the fan-in items that arrived before `$1` and are batched (or left out), in
/// closed groups or behind their group's next position (`$` to be replaced by the
/// dialect's mark).
pub(crate) const PURGE_FAN_IN_ITEMS: &str = "DELETE FROM ergon_fanin_item
    WHERE arrived_at < $1 AND EXISTS (SELECT 1 FROM ergon_fanin_group g
        WHERE g.consumer = ergon_fanin_item.consumer AND g.tag = ergon_fanin_item.tag
            AND g.group_key = ergon_fanin_item.group_key
            AND (g.closed OR ergon_fanin_item.position < g.next_position
                OR NOT ergon_fanin_item.included))";

/// Deletes the batch records made before `$1`.
pub(crate) const PURGE_FAN_IN_BATCHES: &str = "DELETE FROM ergon_fanin_batch WHERE created_at < $1";

/// Deletes the fan-in groups closed before `$1` (their last batch is cut: no item can
/// join them).
pub(crate) const PURGE_FAN_IN_GROUPS: &str =
    "DELETE FROM ergon_fanin_group WHERE closed AND updated_at < $1";

/// The oldest unbatched items of a fan-in group (consumer, tag, key, the group's next
/// position, then how many, as the dialect numbers its values) as a batch delivers them,
/// in the order they arrived, each with its position last.
pub(crate) fn unbatched_items(mark: char) -> String {
    format!(
        "SELECT i.task, i.tx_id, COALESCE(n.status, 'pending'), n.output, n.error, i.position
         FROM ergon_fanin_item i
         LEFT JOIN ergon_node n ON n.tx_id = i.tx_id AND n.task = i.task
         WHERE i.consumer = {mark}1 AND i.tag = {mark}2 AND i.group_key = {mark}3
             AND i.position >= {mark}4 AND i.included
         ORDER BY i.position LIMIT {mark}5"
    )
}

/// When the oldest unbatched item of a fan-in group (consumer, tag, key, the group's
/// next position; `$` to be replaced by the dialect's mark) arrived.
pub(crate) const OLDEST_UNBATCHED: &str = "SELECT arrived_at FROM ergon_fanin_item
    WHERE consumer = $1 AND tag = $2 AND group_key = $3 AND position >= $4 AND included
    ORDER BY position LIMIT 1";

/// Writes a fan-in group back (`$` to be replaced by the dialect's mark).
pub(crate) const STORE_GROUP: &str = "INSERT INTO ergon_fanin_group (consumer, tag, group_key,
        root_id, arrived, unbatched, expected, deep, closed, next_seq, deadline_ms, updated_at,
        next_position)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    ON CONFLICT (consumer, tag, group_key) DO UPDATE SET
        arrived = excluded.arrived, unbatched = excluded.unbatched,
        expected = excluded.expected, deep = excluded.deep, closed = excluded.closed,
        next_seq = excluded.next_seq, deadline_ms = excluded.deadline_ms,
        updated_at = excluded.updated_at, next_position = excluded.next_position";

/// Records a batch: the positions of its group's items it took (`$` to be replaced by the
/// dialect's mark).
pub(crate) const INSERT_BATCH: &str = "INSERT INTO ergon_fanin_batch (batch_id, consumer, tag,
    group_key, first_position, end_position, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (batch_id) DO NOTHING";

/// The members of a wait (`wait_id` first, then whether to list them all, as the
/// dialect numbers its values) as its continuation receives them, in the order they were
/// given: above [`crate::handover::LISTED`] members, only those that did not succeed or
/// have an output, read through their own index (a fan-in of 100,000 quiet children does
/// not read 100,000 rows to list none).
pub(crate) fn wait_members(all: bool, mark: char) -> String {
    let listed = if all {
        ""
    } else {
        " AND (m.state != 'succeeded' OR m.with_output)"
    };
    format!(
        "SELECT m.task, m.tx_id, m.state, n.output, n.error FROM ergon_wait_member m
         LEFT JOIN ergon_node n ON n.tx_id = m.tx_id AND n.task = m.task
         WHERE m.wait_id = {mark}1{listed}
         ORDER BY m.position"
    )
}

/// The journal's tables in `dialect`.
pub(crate) fn tables(dialect: &Dialect) -> String {
    TABLES
        .replace("{serial_key}", dialect.serial_key)
        .replace("{keyed_table}", dialect.keyed_table)
}

/// The columns a completion writes, in the order of its values.
pub(crate) const COMPLETION_COLUMNS: &str = "tx_id, task, parent_id, root_id, tags, status,
    settlement, attempts, deliveries, children, failed_step, error_category, error, output,
    trace_id, started_at, finished_at";

/// What a completion does to a node that exists: the first terminal record stands, so
/// only a node still `queued` (or `cancelled` and delivered anyway) takes it. The lineage
/// (`parent_id`, `root_id`) was written when the node was queued and stays: SQLite
/// rewrites the entries of every index on a column the update sets, changed or not.
pub(crate) const COMPLETION_CONFLICT: &str = "ON CONFLICT (tx_id, task) DO UPDATE SET
        tags = excluded.tags, status = excluded.status, settlement = excluded.settlement,
        attempts = excluded.attempts, deliveries = excluded.deliveries,
        children = excluded.children, failed_step = excluded.failed_step,
        error_category = excluded.error_category, error = excluded.error,
        output = excluded.output, trace_id = excluded.trace_id,
        started_at = excluded.started_at, finished_at = excluded.finished_at
    WHERE ergon_node.status IN ('queued', 'cancelled')";
