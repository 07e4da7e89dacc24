//! Tagged fan-in, the same in every backend: which completions become items of which
//! groups, how many items a group expects, where its batches are cut, and the batch
//! transaction a consumer receives.
//!
//! ```text
//! producer (produces = ["t"]) ──dispatch/spawn──▶ children, tagged "t"
//!                                                    │ terminal in a `from` task
//!                                                    ▼
//!        item (consumer, tag, group) ── group: arrived, unbatched, expected ──▶ cuts
//!                                                    │ full | timeout | complete
//!                                                    ▼
//!                 batch transaction ──▶ the consumer's input, in the same commit
//! ```
//!
//! A group is one consumer, one tag and one key: the whole tag (`group_by = "tag"`), the
//! items' root (`"root"`) or parent (`"parent"`). It knows how many items to expect when
//! the transaction its key names completes as a producer of the tag (its dispatched and
//! spawned children), or when it is itself a batch group that closed (its batches are the
//! items of a fan-in consuming the consumer's results); then the rest is cut as soon as
//! the last item is in, without waiting for a timer.

use std::collections::BTreeMap;
use std::time::Duration;

use ergon_core::Transaction;
use ergon_core::journal::{Batch, ConsumedResult, CutReason};
use ergon_core::transaction::meta;
use serde::{Deserialize, Serialize};

use crate::routes::Routes;

/// `consumes = { tags = [...], from = [...], batch_size = N, timeout = "...", group_by =
/// "...", include_failed = ... }` on a task: the journal delivers it batches of the
/// results of the `from` tasks' transactions carrying one of `tags`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consumes {
    /// The tags collected (at least one). A transaction carrying two of them is an item
    /// of each tag's groups.
    pub tags: Vec<String>,
    /// The tasks whose terminal transactions are collected (at least one): tags are
    /// inherited by grandchildren, so "any tagged completion" would count one piece of
    /// work at every level.
    pub from: Vec<String>,
    /// Results per batch, `1..=10000`. Default: 100.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// A partial batch is cut when its oldest result has waited this long. Default: none
    /// (batches are cut when full, or when their group is complete).
    #[serde(default, with = "ergon_core::policy::duration::option")]
    pub timeout: Option<Duration>,
    /// How results are grouped. Default: `"parent"`.
    #[serde(default)]
    pub group_by: GroupBy,
    /// Whether failed (and cancelled) results are delivered; left out, they still count
    /// towards their group's completeness. Default: `true`.
    #[serde(default = "yes")]
    pub include_failed: bool,
}

/// The largest `batch_size`: a batch is one transaction, read and written whole.
pub const MAX_BATCH_SIZE: u32 = 10_000;

fn default_batch_size() -> u32 {
    100
}

fn yes() -> bool {
    true
}

/// How a fan-in groups its results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// One group per tag, whatever produced the results (the seed's global grouping):
    /// cut by size and timeout only.
    Tag,
    /// One group per root transaction: concurrent fan-outs stay apart. Complete when the
    /// root produced the results directly.
    Root,
    /// One group per parent (the producer's transaction). Complete when the parent's
    /// completion says how many it produced.
    #[default]
    Parent,
}

/// What a node carries that decides its items: its id, lineage and tags.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lineage<'a> {
    pub id: &'a str,
    pub parent_id: Option<&'a str>,
    pub root_id: &'a str,
    /// Comma-separated, as stored.
    pub tags: &'a str,
}

impl<'a> Lineage<'a> {
    /// The lineage of `tx`.
    pub(crate) fn of(tx: &'a Transaction) -> Self {
        Self {
            id: tx.id(),
            parent_id: tx.parent_id(),
            root_id: tx.root_id(),
            tags: tx.meta(meta::TAGS).unwrap_or(""),
        }
    }

    fn has_tag(&self, tag: &str) -> bool {
        self.tags.split(',').any(|t| t == tag)
    }
}

/// One group: its consumer, tag and key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct GroupKey {
    pub consumer: String,
    pub tag: String,
    /// The root or parent id; empty for `group_by = "tag"`.
    pub key: String,
}

/// An item a terminal node adds to a group.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub group: GroupKey,
    /// The root of the item's lineage (a batch of a keyed group keeps it).
    pub root_id: String,
    /// Delivered in a batch (else only counted: a failure with `include_failed = false`).
    pub included: bool,
    /// Not a direct child of its root: a `group_by = "root"` group with such an item
    /// cannot know how many to expect.
    pub deep: bool,
}

/// The items node `node` of task `task`, terminal with `status`, adds: one per fan-in
/// collecting `task` and per consumed tag it carries.
pub(crate) fn items(routes: &Routes, task: &str, node: Lineage<'_>, status: &str) -> Vec<Item> {
    let mut items = Vec::new();
    for (consumer, consumes) in routes.fan_ins() {
        if !consumes.from.iter().any(|from| from == task) {
            continue;
        }
        let key = match consumes.group_by {
            GroupBy::Tag => "",
            GroupBy::Root => node.root_id,
            GroupBy::Parent => node.parent_id.unwrap_or(node.id),
        };
        let included = consumes.include_failed || status == "succeeded";
        let deep = consumes.group_by == GroupBy::Root && node.parent_id != Some(node.root_id);
        for tag in consumes.tags.iter().filter(|tag| node.has_tag(tag)) {
            items.push(Item {
                group: GroupKey {
                    consumer: consumer.to_owned(),
                    tag: tag.clone(),
                    key: key.to_owned(),
                },
                root_id: node.root_id.to_owned(),
                included,
                deep,
            });
        }
    }
    items
}

/// The groups whose expected item count the completion of node `node` in task `task`
/// fixes (at its outbound transactions): the fan-ins consuming a tag `task` produces,
/// grouped by this node (its children's parent, or their root when it is one). Fan-ins
/// collecting batch results (from consumers of fan-ins) are left out: the batches they
/// expect are counted when the group before them closes ([`expected_from_batches`]).
pub(crate) fn expected_from_producer(
    routes: &Routes,
    task: &str,
    node: Lineage<'_>,
) -> Vec<GroupKey> {
    let produces = routes.produces_of(task);
    if produces.is_empty() {
        return Vec::new();
    }
    let mut groups = Vec::new();
    for (consumer, consumes) in routes.fan_ins() {
        let of_batches = consumes
            .from
            .iter()
            .any(|from| routes.consumes_of(from).is_some());
        let keyed = !of_batches
            && match consumes.group_by {
                GroupBy::Tag => false,
                GroupBy::Root => node.parent_id.is_none(),
                GroupBy::Parent => true,
            };
        if !keyed {
            continue;
        }
        for tag in consumes.tags.iter().filter(|tag| produces.contains(tag)) {
            groups.push(GroupKey {
                consumer: consumer.to_owned(),
                tag: tag.clone(),
                key: node.id.to_owned(),
            });
        }
    }
    groups
}

/// The groups whose expected item count the closing of `closed` fixes (at its number of
/// batches): fan-ins collecting `closed`'s consumer and tag, grouped by the same key (the
/// batches' parent).
pub(crate) fn expected_from_batches(routes: &Routes, closed: &GroupKey) -> Vec<GroupKey> {
    let Some(by) = routes.consumes_of(&closed.consumer).map(|c| c.group_by) else {
        return Vec::new();
    };
    if by == GroupBy::Tag {
        return Vec::new();
    }
    routes
        .fan_ins()
        .filter(|(_, next)| {
            next.from.contains(&closed.consumer)
                && next.tags.contains(&closed.tag)
                && (next.group_by == GroupBy::Parent
                    || (next.group_by == GroupBy::Root && by == GroupBy::Root))
        })
        .map(|(consumer, _)| GroupKey {
            consumer: consumer.to_owned(),
            tag: closed.tag.clone(),
            key: closed.key.clone(),
        })
        .collect()
}

/// A group's counters, as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct GroupState {
    /// Items in, delivered or not.
    pub arrived: u64,
    /// Items to deliver not yet in a batch.
    pub unbatched: u64,
    /// How many items it expects, once known.
    pub expected: Option<u64>,
    /// Some item is not a direct child of the root (`group_by = "root"`): `expected` does
    /// not apply.
    pub deep: bool,
    /// Its last batch was cut.
    pub closed: bool,
    /// The sequence number of its next batch.
    pub next_seq: u64,
}

/// A group as a commit holds it, read on first touch and written back once at the end.
#[derive(Debug, Clone)]
pub(crate) struct Touched {
    pub state: GroupState,
    /// The root its items descend from (its batches' root).
    pub root_id: String,
    /// When its oldest unbatched item times out.
    pub deadline_ms: Option<i64>,
    /// Its deadline passed: cut what is unbatched.
    pub timed_out: bool,
    /// The position of its oldest unbatched item, or past it: a batch takes the oldest
    /// unbatched items, so every item before this position is batched (or left out).
    pub next_position: u64,
}

impl Touched {
    /// A group not stored yet, whose items descend from `root_id`.
    pub(crate) fn new(root_id: &str) -> Self {
        Self {
            state: GroupState::default(),
            root_id: root_id.to_owned(),
            deadline_ms: None,
            timed_out: false,
            next_position: 0,
        }
    }

    /// Counts `item`, newly stored in the group; an included item starts the group's
    /// timeout (`deadline`, when it has one) unless an older one runs.
    pub(crate) fn arrive(&mut self, item: &Item, deadline: Option<i64>) {
        self.state.arrived += 1;
        self.state.deep |= item.deep;
        if item.included {
            self.state.unbatched += 1;
            self.deadline_ms = self.deadline_ms.or(deadline);
        }
    }
}

/// When an item arriving `now` in a group of a fan-in with `consumes` times out.
pub(crate) fn deadline(consumes: Option<&Consumes>, now: i64) -> Option<i64> {
    let timeout = consumes?.timeout?;
    let timeout = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    Some(now.saturating_add(timeout))
}

/// The groups a commit touched, by key.
pub(crate) type Groups = BTreeMap<GroupKey, Touched>;

/// One batch to cut from a group: its oldest `size` unbatched items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cut {
    pub seq: u64,
    pub size: u64,
    pub reason: CutReason,
    pub last: bool,
}

/// The batches to cut from `group` now (`timed_out`: its oldest unbatched item waited its
/// timeout): every full batch; then, once every expected item is in, the rest as the
/// last batch (empty when full batches took everything and none was marked last); else,
/// when timed out, the rest as a partial batch.
pub(crate) fn cuts(group: &GroupState, batch_size: u64, timed_out: bool) -> Vec<Cut> {
    let completing = !group.closed
        && !group.deep
        && group
            .expected
            .is_some_and(|expected| group.arrived >= expected);
    let mut cuts = Vec::new();
    let mut left = group.unbatched;
    let mut seq = group.next_seq;
    let mut cut = |size, reason, last| {
        cuts.push(Cut {
            seq,
            size,
            reason,
            last,
        });
        seq += 1;
    };
    while left >= batch_size.max(1) {
        left -= batch_size.max(1);
        cut(batch_size.max(1), CutReason::Full, completing && left == 0);
    }
    if completing {
        let ends_in_a_full_one = left == 0 && group.unbatched > 0;
        if !ends_in_a_full_one {
            cut(left, CutReason::Complete, true);
        }
    } else if left > 0 && timed_out {
        cut(left, CutReason::Timeout, false);
    }
    cuts
}

/// The group `state` after `cuts`.
pub(crate) fn after(state: &GroupState, cuts: &[Cut]) -> GroupState {
    GroupState {
        unbatched: state.unbatched - cuts.iter().map(|cut| cut.size).sum::<u64>(),
        closed: state.closed || cuts.iter().any(|cut| cut.last),
        next_seq: state.next_seq + cuts.len() as u64,
        ..*state
    }
}

/// The id of batch `seq` of `group`: a child of the group's key (`{key}/{consumer}/batch/
/// {tag}/{seq}`), or `{consumer}/batch/{tag}/{seq}` for a whole-tag group.
pub(crate) fn batch_id(group: &GroupKey, seq: u64) -> String {
    let GroupKey { consumer, tag, key } = group;
    if key.is_empty() {
        format!("{consumer}/batch/{tag}/{seq}")
    } else {
        format!("{key}/{consumer}/batch/{tag}/{seq}")
    }
}

/// The batch transaction of `cut` from `group` (whose items descend from `root_id`),
/// holding `results`: a child of the group's key carrying the tag, so that a fan-in of
/// the consumer's results can collect it in turn.
pub(crate) fn batch_transaction(
    group: &GroupKey,
    root_id: &str,
    cut: &Cut,
    results: &[ConsumedResult],
) -> Transaction {
    let batch = Batch {
        tag: group.tag.clone(),
        group: group.key.clone(),
        seq: cut.seq,
        reason: cut.reason,
        size: results.len() as u64,
        last: cut.last,
    };
    let payload = serde_json::to_vec(results).unwrap_or_else(|_| b"[]".to_vec());
    let mut builder = Transaction::builder(batch_id(group, cut.seq))
        .payload(payload)
        .tag(&group.tag);
    if !group.key.is_empty() {
        builder = builder
            .meta(meta::PARENT_ID, group.key.as_str())
            .meta(meta::ROOT_ID, root_id);
    }
    batch
        .metadata()
        .into_iter()
        .fold(builder, |builder, (key, value)| builder.meta(key, value))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(arrived: u64, unbatched: u64, expected: Option<u64>) -> GroupState {
        GroupState {
            arrived,
            unbatched,
            expected,
            ..GroupState::default()
        }
    }

    fn shape(cuts: &[Cut]) -> Vec<(u64, u64, &'static str, bool)> {
        cuts.iter()
            .map(|c| (c.seq, c.size, c.reason.as_str(), c.last))
            .collect()
    }

    #[test]
    fn full_batches_are_cut_and_the_rest_waits() {
        let cuts = cuts(&state(25, 25, None), 10, false);
        assert_eq!(
            shape(&cuts),
            [(0, 10, "full", false), (1, 10, "full", false)]
        );
    }

    #[test]
    fn the_rest_is_cut_at_the_timeout() {
        let cuts = cuts(&state(5, 5, None), 10, true);
        assert_eq!(shape(&cuts), [(0, 5, "timeout", false)]);
        assert!(super::cuts(&state(0, 0, None), 10, true).is_empty());
    }

    #[test]
    fn a_complete_group_cuts_its_rest_as_the_last_batch() {
        let group = GroupState {
            next_seq: 100,
            ..state(1_003, 3, Some(1_003))
        };
        assert_eq!(
            shape(&cuts(&group, 10, false)),
            [(100, 3, "complete", true)]
        );
    }

    #[test]
    fn a_full_batch_that_completes_its_group_is_its_last() {
        let cuts = cuts(&state(20, 10, Some(20)), 10, false);
        assert_eq!(shape(&cuts), [(0, 10, "full", true)]);
    }

    #[test]
    fn a_group_completed_after_its_items_were_batched_gets_an_empty_last_batch() {
        let group = GroupState {
            next_seq: 2,
            ..state(20, 0, Some(20))
        };
        assert_eq!(shape(&cuts(&group, 10, false)), [(2, 0, "complete", true)]);
        let closed = after(&group, &cuts(&group, 10, false));
        assert!(closed.closed);
        assert!(super::cuts(&closed, 10, true).is_empty(), "closes once");
    }

    #[test]
    fn a_deep_root_group_never_completes() {
        let group = GroupState {
            deep: true,
            ..state(5, 5, Some(5))
        };
        assert!(cuts(&group, 10, false).is_empty());
    }

    #[test]
    fn zero_expected_items_close_the_group_at_once() {
        assert_eq!(
            shape(&cuts(&state(0, 0, Some(0)), 10, false)),
            [(0, 0, "complete", true)]
        );
    }
}
