//! Tagged fan-in on the SQLite journal, as a property over random interleavings: whatever
//! the order the children complete in, duplicates, when the producer's completion lands,
//! how many completions share a commit and which timeouts fire between them, every item
//! delivered lands in exactly one batch.
//!
//! Each case (one seed) opens a fresh journal with a producer `split` (`produces =
//! ["t"]`), a `from` task `work` and a consumer `agg` reading the local queue `agg` in
//! the journal's file, then completes the children of one or two parents in a random
//! order, in small concurrent groups (several in one commit), some twice (a duplicate in
//! a later group may even settle differently: the first terminal record stands), with
//! each parent's completion (`children = n`) at a random point and random short sleeps
//! between groups. Once every timeout has passed it reads the batches from the queue and
//! the journal's `ergon_fanin_item` / `ergon_fanin_group` rows and checks them.
//!
//! `ERGON_FANIN_SEED=<seed>` runs one case (to reproduce a failure);
//! `ERGON_FANIN_CASES=<n>` runs `n` seeds from 1 instead of the default.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ergon_connectors::local::{LocalConfig, LocalConnector};
use ergon_core::journal::{Completion, CutReason, Journal, now_ms};
use ergon_core::{Category, Connector, Settlement, Transaction};
use ergon_journal::{Consumes, DurableJournal, GroupBy, Record, Routes, Settings};
use serde_json::json;

/// The producer task.
const PRODUCER: &str = "split";
/// The task whose terminal transactions are collected.
const WORKER: &str = "work";
/// The fan-in consumer, and the local queue it reads.
const CONSUMER: &str = "agg";
/// The tag produced and consumed.
const TAG: &str = "t";

/// Seeds run by default: enough shapes to hit every cut reason many times, in well under
/// a minute in a debug build.
const DEFAULT_CASES: u64 = 400;
/// Cases run at once (each has its own journal; most of a case is sleeping).
const AT_ONCE: usize = 6;

/// SplitMix64: small, seedable, good enough to pick shapes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed ^ 0x5eed_f00d_cafe_d00d)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True one time in `n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// One completion to record.
#[derive(Debug, Clone, Copy)]
enum Event {
    /// Child `item` of its parent ends in `work`, failed or succeeded.
    Child { item: usize, failed: bool },
    /// Parent `parent` ends in `split`, having sent its children.
    Parent { parent: usize },
}

/// Completions recorded concurrently (one `join_all`), then a sleep.
#[derive(Debug, Clone, Default)]
struct Group {
    events: Vec<Event>,
    sleep_ms: u64,
}

/// One child: its parent, and how its first completion settles it.
#[derive(Debug, Clone, Copy)]
struct Child {
    parent: usize,
    /// Its index among its parent's children.
    k: usize,
    failed: bool,
}

/// One random case.
#[derive(Debug, Clone)]
struct Case {
    seed: u64,
    batch_size: u32,
    group_by: GroupBy,
    include_failed: bool,
    timeout: Option<Duration>,
    /// Children per parent.
    parents: Vec<usize>,
    children: Vec<Child>,
    groups: Vec<Group>,
    duplicates: usize,
}

impl Case {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let total = rng.below(60) as usize;
        let parents = if rng.one_in(4) && total > 0 {
            let first = rng.below(total as u64 + 1) as usize;
            vec![first, total - first]
        } else {
            vec![total]
        };
        let batch_size = rng.between(1, 11) as u32;
        let group_by = match rng.below(3) {
            0 => GroupBy::Parent,
            1 => GroupBy::Tag,
            _ => GroupBy::Root,
        };
        let include_failed = !rng.one_in(3);
        let timeout = (!rng.one_in(3)).then(|| Duration::from_millis(rng.between(30, 80)));
        let failure_rate = rng.between(2, 6);
        let mut children = Vec::new();
        for (parent, &n) in parents.iter().enumerate() {
            for k in 0..n {
                let failed = rng.one_in(failure_rate);
                children.push(Child { parent, k, failed });
            }
        }
        // The first completions, in a random order, each parent's at a random point.
        let mut order: Vec<Event> = children
            .iter()
            .enumerate()
            .map(|(item, child)| Event::Child {
                item,
                failed: child.failed,
            })
            .chain((0..parents.len()).map(|parent| Event::Parent { parent }))
            .collect();
        rng.shuffle(&mut order);
        // Cut into groups of 1 to 4 recorded at once, some followed by a short sleep.
        let mut groups = Vec::new();
        let mut rest = order.as_slice();
        while !rest.is_empty() {
            let size = (rng.between(1, 4) as usize).min(rest.len());
            let (events, more) = rest.split_at(size);
            rest = more;
            let sleep_ms = if rng.one_in(3) { rng.between(1, 45) } else { 0 };
            groups.push(Group {
                events: events.to_vec(),
                sleep_ms,
            });
        }
        // Duplicates: in the same group as the first (racing it: the same settlement) or a
        // later one (where it may settle the other way: the first record stands).
        let mut duplicates = 0;
        let first_group: BTreeMap<String, usize> = groups
            .iter()
            .enumerate()
            .flat_map(|(g, group)| group.events.iter().map(move |e| (key(e), g)))
            .collect();
        for event in &order {
            if !rng.one_in(5) {
                continue;
            }
            let first = first_group[&key(event)];
            let at = rng.between(first as u64, groups.len() as u64) as usize;
            let event = match *event {
                Event::Child { item, failed } if at > first && rng.one_in(2) => Event::Child {
                    item,
                    failed: !failed,
                },
                other => other,
            };
            if at == groups.len() {
                groups.push(Group::default());
            }
            let events = &mut groups[at].events;
            let position = rng.below(events.len() as u64 + 1) as usize;
            events.insert(position, event);
            duplicates += 1;
        }
        Self {
            seed,
            batch_size,
            group_by,
            include_failed,
            timeout,
            parents,
            children,
            groups,
            duplicates,
        }
    }

    /// One line that says what the case is.
    fn describe(&self) -> String {
        let failed = self.children.iter().filter(|c| c.failed).count();
        let sleeps: u64 = self.groups.iter().map(|g| g.sleep_ms).sum();
        format!(
            "seed={} parents={:?} failed={failed} batch_size={} group_by={:?} \
             include_failed={} timeout={:?} groups={} duplicates={} sleeps={sleeps}ms",
            self.seed,
            self.parents,
            self.batch_size,
            self.group_by,
            self.include_failed,
            self.timeout,
            self.groups.len(),
            self.duplicates,
        )
    }

    fn consumes(&self) -> Consumes {
        Consumes {
            tags: vec![TAG.to_owned()],
            from: vec![WORKER.to_owned()],
            batch_size: self.batch_size,
            timeout: self.timeout,
            group_by: self.group_by,
            include_failed: self.include_failed,
        }
    }

    fn parent(&self, parent: usize) -> Transaction {
        Transaction::new(format!("p{parent}"), "{}")
    }

    fn child(&self, item: usize) -> Transaction {
        let Child { parent, k, .. } = self.children[item];
        self.parent(parent)
            .child(format!("p{parent}/{k}"), json!({ "k": k }).to_string())
            .tag(TAG)
            .build()
    }

    fn child_id(&self, item: usize) -> String {
        let Child { parent, k, .. } = self.children[item];
        format!("p{parent}/{k}")
    }

    /// The key of the group child `item` is in.
    fn group_of(&self, item: usize) -> String {
        match self.group_by {
            GroupBy::Tag => String::new(),
            GroupBy::Parent | GroupBy::Root => format!("p{}", self.children[item].parent),
        }
    }

    /// Whether the producer's completion tells its group how many items to expect.
    fn completes(&self) -> bool {
        self.group_by != GroupBy::Tag
    }

    fn included(&self, item: usize) -> bool {
        self.include_failed || !self.children[item].failed
    }

    fn completion(&self, event: Event) -> Completion {
        let (task, tx, settlement, children) = match event {
            Event::Parent { parent } => (
                PRODUCER,
                self.parent(parent),
                Settlement::Ack,
                self.parents[parent] as u32,
            ),
            Event::Child { item, failed } => {
                let settlement = if failed {
                    let failure = ergon_core::journal::failure(
                        WORKER,
                        "process",
                        Category::Business,
                        "no".into(),
                        1,
                    );
                    Settlement::DeadLetter(failure)
                } else {
                    Settlement::Ack
                };
                (WORKER, self.child(item), settlement, 0)
            }
        };
        Completion {
            task: task.into(),
            output: Some(json!({ "id": tx.id() }).to_string()),
            transaction: tx,
            settlement,
            attempts: 1,
            children,
            started_at_ms: now_ms(),
            finished_at_ms: now_ms(),
        }
    }
}

/// Identifies a first completion (for placing its duplicate).
fn key(event: &Event) -> String {
    match event {
        Event::Child { item, .. } => format!("c{item}"),
        Event::Parent { parent } => format!("p{parent}"),
    }
}

/// A row of `ergon_fanin_item`: (tx_id, group_key, position, included, batch_id).
type ItemRow = (String, String, i64, bool, Option<String>);

/// A row of `ergon_fanin_group`: (group_key, arrived, unbatched, expected, closed,
/// next_seq, deadline_ms).
type GroupRow = (String, i64, i64, Option<i64>, bool, i64, Option<i64>);

/// What a case produced: the batches in the consumer's queue and the journal's rows.
struct Outcome {
    batches: Vec<Transaction>,
    items: Vec<ItemRow>,
    groups: Vec<GroupRow>,
}

/// What the checks counted, summed over the cases (to see what was exercised).
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    items: usize,
    batches: usize,
    full: usize,
    timeout: usize,
    /// Timeout batches with more batches after them in their group (cut between
    /// completions).
    timeout_midway: usize,
    complete: usize,
    empty_last: usize,
    duplicates: usize,
}

/// Runs `case` against a fresh journal and returns what it produced.
async fn run(case: &Case) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let routes = Routes::new()
        .queue(CONSUMER, CONSUMER)
        .produces(PRODUCER, vec![TAG.to_owned()])
        .consumes(CONSUMER, case.consumes());
    let settings = Settings {
        record: Record::All,
        routes,
        ..Settings::default()
    };
    let journal = Arc::new(DurableJournal::sqlite(&path, settings).unwrap());
    for group in &case.groups {
        let mut completing = tokio::task::JoinSet::new();
        for &event in &group.events {
            let journal = journal.clone();
            let completion = case.completion(event);
            completing.spawn(async move { journal.complete(completion).await });
        }
        for done in completing.join_all().await {
            done.unwrap_or_else(|err| panic!("{}: complete failed: {err}", case.describe()));
        }
        if group.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(group.sleep_ms)).await;
        }
    }
    // Past every timeout: wait until no group has a deadline left (the writer cuts them at
    // their deadline, not at our next request).
    if let Some(timeout) = case.timeout {
        tokio::time::sleep(timeout + Duration::from_millis(20)).await;
        let mut waited = 0;
        while pending_deadlines(&path) > 0 {
            assert!(
                waited < 3_000,
                "{}: a group still has a deadline 3 s after its timeout",
                case.describe()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 10;
        }
    }
    let outcome = Outcome {
        batches: batches(&path).await,
        items: item_rows(&path),
        groups: group_rows(&path),
    };
    drop(journal);
    outcome
}

fn read(path: &Path) -> rusqlite::Connection {
    let db = rusqlite::Connection::open(path).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db
}

fn pending_deadlines(path: &Path) -> i64 {
    read(path)
        .query_row(
            "SELECT count(*) FROM ergon_fanin_group WHERE deadline_ms IS NOT NULL",
            [],
            |row| row.get(0),
        )
        .unwrap()
}

fn item_rows(path: &Path) -> Vec<ItemRow> {
    let db = read(path);
    let mut select = db
        .prepare(
            "SELECT i.tx_id, i.group_key, i.position, i.included,
                 (SELECT b.batch_id FROM ergon_fanin_batch b
                  WHERE b.consumer = i.consumer AND b.tag = i.tag AND b.group_key = i.group_key
                      AND i.position >= b.first_position AND i.position < b.end_position
                      AND i.included)
             FROM ergon_fanin_item i
             WHERE i.consumer = ?1 AND i.tag = ?2 AND i.task = ?3",
        )
        .unwrap();
    select
        .query_map([CONSUMER, TAG, WORKER], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn group_rows(path: &Path) -> Vec<GroupRow> {
    let db = read(path);
    let mut select = db
        .prepare(
            "SELECT group_key, arrived, unbatched, expected, closed, next_seq, deadline_ms
             FROM ergon_fanin_group WHERE consumer = ?1 AND tag = ?2",
        )
        .unwrap();
    select
        .query_map([CONSUMER, TAG], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Everything in the consumer's local queue.
async fn batches(path: &Path) -> Vec<Transaction> {
    let queue = LocalConnector::open(
        path.to_path_buf(),
        CONSUMER.to_owned(),
        &LocalConfig::default(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    loop {
        let fetched = queue.fetch(1_000).await.unwrap();
        if fetched.is_empty() {
            break;
        }
        got.extend(fetched.iter().map(|d| d.transaction().clone()));
    }
    queue.close().await.unwrap();
    got
}

/// Checks `outcome` against `case`; returns every violation found.
fn check(case: &Case, outcome: &Outcome, tally: &mut Tally) -> Vec<String> {
    let mut errors = Vec::new();
    let mut fail = |msg: String| errors.push(msg);
    let size = u64::from(case.batch_size);
    let ids: BTreeMap<String, usize> = (0..case.children.len())
        .map(|item| (case.child_id(item), item))
        .collect();

    // Each batch on its own.
    let mut seen_ids = BTreeSet::new();
    let mut by_group: BTreeMap<String, Vec<(u64, bool, &Transaction)>> = BTreeMap::new();
    let mut delivered: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for batch in &outcome.batches {
        if !seen_ids.insert(batch.id().to_owned()) {
            fail(format!("batch id {} delivered twice", batch.id()));
        }
        let Some(info) = batch.batch() else {
            fail(format!("{} has no batch metadata", batch.id()));
            continue;
        };
        let expected_id = if info.group.is_empty() {
            format!("{CONSUMER}/batch/{TAG}/{}", info.seq)
        } else {
            format!("{}/{CONSUMER}/batch/{TAG}/{}", info.group, info.seq)
        };
        if batch.id() != expected_id || info.tag != TAG {
            fail(format!("batch {} says {info:?}", batch.id()));
        }
        let results = match batch.consumed_results() {
            Ok(results) => results,
            Err(err) => {
                fail(format!("batch {}: {err}", batch.id()));
                continue;
            }
        };
        let n = results.len() as u64;
        if n != info.size {
            fail(format!(
                "batch {} says size {} holds {n}",
                batch.id(),
                info.size
            ));
        }
        if n > size {
            fail(format!(
                "batch {} holds {n} > batch_size {size}",
                batch.id()
            ));
        }
        match info.reason {
            CutReason::Full => {
                tally.full += 1;
                if n != size {
                    fail(format!("full batch {} holds {n} of {size}", batch.id()));
                }
            }
            CutReason::Timeout => {
                tally.timeout += 1;
                if case.timeout.is_none() || info.last || n == 0 || n >= size {
                    fail(format!(
                        "timeout batch {} holds {n} (last {})",
                        batch.id(),
                        info.last
                    ));
                }
            }
            CutReason::Complete => {
                tally.complete += 1;
                if !info.last || n >= size {
                    fail(format!(
                        "complete batch {} holds {n} (last {})",
                        batch.id(),
                        info.last
                    ));
                }
            }
        }
        if info.last && n == 0 {
            tally.empty_last += 1;
        }
        if info.last && !case.completes() {
            fail(format!("batch {} of a whole-tag group is last", batch.id()));
        }
        for result in &results {
            let Some(&item) = ids.get(&result.id) else {
                fail(format!("batch {} holds unknown {}", batch.id(), result.id));
                continue;
            };
            let child = case.children[item];
            let status = if child.failed { "failed" } else { "succeeded" };
            if result.task != WORKER || result.status != status {
                fail(format!(
                    "{} in batch {} as {}/{} (first settled {status})",
                    result.id,
                    batch.id(),
                    result.task,
                    result.status
                ));
            }
            let output = result.output.as_ref().map(|o| o["id"].clone());
            if output != Some(json!(result.id)) {
                fail(format!(
                    "{} in batch {} output {output:?}",
                    result.id,
                    batch.id()
                ));
            }
            if case.group_of(item) != info.group {
                fail(format!(
                    "{} in batch {} of group {:?}, expected {:?}",
                    result.id,
                    batch.id(),
                    info.group,
                    case.group_of(item)
                ));
            }
            delivered
                .entry(result.id.clone())
                .or_default()
                .push(batch.id().to_owned());
        }
        by_group
            .entry(info.group.clone())
            .or_default()
            .push((info.seq, info.last, batch));
    }
    tally.batches += outcome.batches.len();

    // Every included item in exactly one batch, no excluded one in any.
    for (id, &item) in &ids {
        let batches = delivered.get(id).map_or(&[][..], Vec::as_slice);
        let included = case.included(item);
        let must = case.completes() || case.timeout.is_some();
        match (included, batches.len()) {
            (false, 0) => {}
            (false, _) => fail(format!("{id} is left out but in {batches:?}")),
            (true, 0) if !must => {}
            (true, 0) => fail(format!("{id} is in no batch")),
            (true, 1) => {}
            (true, _) => fail(format!("{id} is in {} batches: {batches:?}", batches.len())),
        }
    }

    // Per group: seqs 0..k, the last flags, and what is left unbatched.
    let mut expected_groups: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for item in 0..case.children.len() {
        let entry = expected_groups.entry(case.group_of(item)).or_default();
        entry.0 += 1;
        entry.1 += usize::from(case.included(item));
    }
    if case.completes() {
        // A parent with no children still completes its group (an empty last batch).
        for (parent, _) in case.parents.iter().enumerate() {
            expected_groups.entry(format!("p{parent}")).or_default();
        }
    }
    for (group, batches) in &mut by_group {
        batches.sort_by_key(|(seq, ..)| *seq);
        let seqs: Vec<u64> = batches.iter().map(|(seq, ..)| *seq).collect();
        if seqs != (0..seqs.len() as u64).collect::<Vec<_>>() {
            fail(format!("group {group:?} has seqs {seqs:?}"));
        }
        let lasts: Vec<u64> = batches
            .iter()
            .filter(|(_, last, _)| *last)
            .map(|(seq, ..)| *seq)
            .collect();
        if lasts.len() > 1 {
            fail(format!("group {group:?} has last batches {lasts:?}"));
        }
        if !expected_groups.contains_key(group) {
            fail(format!("batches of unexpected group {group:?}"));
        }
    }
    let rows: BTreeMap<&str, _> = outcome
        .groups
        .iter()
        .map(|row| (row.0.as_str(), row))
        .collect();
    for (group, &(arrived, included)) in &expected_groups {
        let batches = by_group.get(group).map_or(&[][..], Vec::as_slice);
        let in_batches: usize = batches
            .iter()
            .map(|(.., b)| b.batch().map_or(0, |info| info.size as usize))
            .sum();
        let left = included - in_batches.min(included);
        if case.completes() {
            let last = batches.last().map(|(seq, last, _)| (*seq, *last));
            let lasts = batches.iter().filter(|(_, last, _)| *last).count();
            if lasts != 1 || last.is_none_or(|(_, last)| !last) {
                fail(format!(
                    "group {group:?}: {lasts} last batches, the highest seq {last:?}"
                ));
            }
        } else if case.timeout.is_none()
            && (left >= case.batch_size as usize || left != included % case.batch_size as usize)
        {
            // A whole-tag group without a timeout is cut when full only: what is left is
            // less than one batch.
            fail(format!(
                "group {group:?}: {left} of {included} unbatched, batch_size {}",
                case.batch_size
            ));
        }
        match rows.get(group.as_str()) {
            None if arrived == 0 && !case.completes() => {}
            None => fail(format!("group {group:?} has no row")),
            Some(&&(_, row_arrived, unbatched, expected, closed, next_seq, deadline)) => {
                let want_expected = case.completes().then_some(arrived as i64);
                if row_arrived != arrived as i64
                    || unbatched != left as i64
                    || expected != want_expected
                    || closed != case.completes()
                    || next_seq != batches.len() as i64
                    || deadline.is_some()
                {
                    fail(format!(
                        "group {group:?} row: arrived {row_arrived}, unbatched {unbatched}, \
                         expected {expected:?}, closed {closed}, next_seq {next_seq}, \
                         deadline {deadline:?}; want arrived {arrived}, unbatched {left}, \
                         expected {want_expected:?}, closed {}, next_seq {}, no deadline",
                        case.completes(),
                        batches.len()
                    ));
                }
            }
        }
    }
    for row in &outcome.groups {
        if !expected_groups.contains_key(&row.0) {
            fail(format!("unexpected group row {row:?}"));
        }
    }

    // The journal's items: each child once, in its group, in the range of the batch it is
    // in (the batch records the positions it took).
    let mut rows_by_id: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for row in &outcome.items {
        rows_by_id.entry(row.0.as_str()).or_default().push(row);
    }
    for (id, &item) in &ids {
        let rows = rows_by_id.get(id.as_str()).map_or(&[][..], Vec::as_slice);
        let [(_, group, _, included, batch_id)] = rows else {
            fail(format!("{id} has {} ergon_fanin_item rows", rows.len()));
            continue;
        };
        let in_batch = delivered.get(id).and_then(|b| b.first());
        if *group != case.group_of(item)
            || *included != case.included(item)
            || batch_id.as_ref() != in_batch
        {
            fail(format!(
                "{id} item row: group {group:?} included {included} batch {batch_id:?}; \
                 delivered in {in_batch:?}"
            ));
        }
    }
    for id in rows_by_id.keys() {
        if !ids.contains_key(*id) {
            fail(format!("unknown item row {id}"));
        }
    }
    // Within a group, batches take items in arrival order: batch after batch, and in each
    // batch in order.
    let position: BTreeMap<&str, i64> = outcome
        .items
        .iter()
        .map(|row| (row.0.as_str(), row.2))
        .collect();
    for (group, batches) in &by_group {
        let mut previous = -1;
        let highest = batches.last().map_or(0, |(seq, ..)| *seq);
        for (seq, _, batch) in batches {
            let reason = batch.batch().map(|info| info.reason);
            if reason == Some(CutReason::Timeout) && *seq < highest {
                tally.timeout_midway += 1;
            }
            for result in batch.consumed_results().unwrap_or_default() {
                let at = position.get(result.id.as_str()).copied().unwrap_or(-1);
                if at <= previous {
                    fail(format!(
                        "group {group:?} batch {seq}: {} at position {at} after {previous}",
                        result.id
                    ));
                }
                previous = at;
            }
        }
    }
    tally.items += ids.len();
    tally.duplicates += case.duplicates;
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_item_lands_in_exactly_one_batch() {
    let seeds: Vec<u64> = match std::env::var("ERGON_FANIN_SEED") {
        Ok(seed) => vec![seed.parse().expect("ERGON_FANIN_SEED is a number")],
        Err(_) => {
            let cases = std::env::var("ERGON_FANIN_CASES")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(DEFAULT_CASES);
            (1..=cases).collect()
        }
    };
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for chunk in seeds.chunks(AT_ONCE) {
        let mut running = tokio::task::JoinSet::new();
        for &seed in chunk {
            running.spawn(async move {
                let case = Case::new(seed);
                let outcome = run(&case).await;
                (case, outcome)
            });
        }
        for (case, outcome) in running.join_all().await {
            let errors = check(&case, &outcome, &mut tally);
            if !errors.is_empty() {
                failures.push(format!(
                    "{}\n    {}",
                    case.describe(),
                    errors.join("\n    ")
                ));
            }
        }
    }
    eprintln!("{} cases: {tally:?}", seeds.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n")
    );
    if seeds.len() >= 100 {
        // The shapes that matter were exercised.
        assert!(
            tally.full > 0 && tally.timeout > 0 && tally.complete > 0,
            "{tally:?}"
        );
        assert!(tally.empty_last > 0 && tally.duplicates > 0, "{tally:?}");
    }
}
