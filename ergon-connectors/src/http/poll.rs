//! Fetch: the endpoint polled page by page, the cursor advanced only once every
//! transaction of a page is settled.
//!
//! One page is out at a time, shared by the connector's workers: a fetch hands out what
//! the page has left, and polls the next page only when the current one is wholly
//! settled (acked, dead-lettered or dropped). A requeued transaction goes back into its
//! page and is handed out again. The cursor committed with a page is the one its answer
//! gave; it is kept in memory and, with `cursor_file`, rewritten there.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;

use bytes::Bytes;
use ergon_core::sync::lock;
use ergon_core::{Category, Delivery, SettleOutcome, TaskError, Transaction};
use ergon_services::http::answer::{self, HttpResponse, excerpt};
use serde_json::value::RawValue;

use super::config::{CursorFrom, HttpConnectorConfig};
use crate::file::reader::id_from_field;

/// The receipt of a polled transaction: the page it came in.
pub(super) struct PageReceipt(u64);

/// The polling side of one `[connectors.NAME]`, shared by its workers.
pub(super) struct Poller {
    name: String,
    url: reqwest::Url,
    id_field: String,
    items: String,
    cursor: Option<(String, CursorFrom)>,
    limit_param: Option<String>,
    start_cursor: Option<String>,
    cursor_file: Option<PathBuf>,
    state: Mutex<State>,
    /// One poll at a time.
    polling: tokio::sync::Mutex<()>,
    /// One write of `cursor_file` at a time, always of the latest cursor.
    persisting: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// The cursor was read (`cursor_file`, `start_cursor`).
    started: bool,
    /// What the next poll sends.
    cursor: Option<String>,
    /// The page out now.
    page: Option<Page>,
    /// Pages polled so far (the next page's number).
    pages: u64,
    /// A page without a next cursor was settled: nothing more to poll.
    exhausted: bool,
    /// The last poll found nothing.
    last_empty: bool,
}

struct Page {
    seq: u64,
    ready: VecDeque<Transaction>,
    unsettled: usize,
    /// The cursor committed when the page is settled; `None`: the last page.
    next: Option<String>,
}

impl Poller {
    pub(super) fn new(name: &str, config: &HttpConnectorConfig) -> Result<Self, TaskError> {
        let url = reqwest::Url::parse(&config.url).map_err(|err| {
            TaskError::system(format!("connector `{name}`: url is not a URL"))
                .with_source(err)
                .non_retryable()
        })?;
        let cursor = match &config.cursor {
            Some(cursor) => {
                let from = cursor.parse_from().map_err(|issue| {
                    TaskError::system(format!("connector `{name}`: cursor.{issue}")).non_retryable()
                })?;
                Some((cursor.param.clone(), from))
            }
            None => None,
        };
        Ok(Self {
            name: name.to_owned(),
            url,
            id_field: config.id_field.clone(),
            items: config.items.clone(),
            cursor,
            limit_param: config.limit_param.clone(),
            start_cursor: config.start_cursor.clone(),
            cursor_file: config.cursor_file.clone(),
            state: Mutex::default(),
            polling: tokio::sync::Mutex::new(()),
            persisting: tokio::sync::Mutex::new(()),
        })
    }

    /// Up to `max` deliveries, polling a page when none is out.
    pub(super) async fn fetch(
        &self,
        client: &reqwest::Client,
        max: usize,
    ) -> Result<Vec<Delivery>, TaskError> {
        if let Some(batch) = self.take(max) {
            return Ok(batch);
        }
        let _polling = self.polling.lock().await;
        if let Some(batch) = self.take(max) {
            return Ok(batch);
        }
        let cursor = self.start().await?;
        let url = self.page_url(cursor.as_deref(), max);
        let what = format!("connector `{}`: GET {url}", self.name);
        let answer = answer::exchange(&what, client.get(url.clone()))
            .await
            .map_err(|err| match err.category() {
                // A refused poll (401, 404) will not pass by trying again.
                Category::Business => TaskError::system(err.to_string()).non_retryable(),
                _ => err,
            })?;
        let (items, next) = self.parse(&what, &answer)?;
        let mut state = lock(&self.state);
        state.last_empty = items.is_empty();
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let seq = state.pages;
        state.pages += 1;
        let ready: VecDeque<Transaction> = items
            .into_iter()
            .enumerate()
            .map(|(index, payload)| {
                let id = id_from_field(&payload, &self.id_field)
                    .unwrap_or_else(|| format!("{url}#{seq}.{index}"));
                Transaction::new(id, payload)
            })
            .collect();
        let next = match (&self.cursor, next) {
            (Some((_, CursorFrom::LastId)), _) => ready
                .back()
                .and_then(|tx| id_from_field(tx.payload(), &self.id_field)),
            (_, next) => next,
        };
        state.page = Some(Page {
            seq,
            unsettled: ready.len(),
            ready,
            next,
        });
        Ok(take(&mut state, max))
    }

    /// What a fetch gets without polling: `None` when it must poll.
    fn take(&self, max: usize) -> Option<Vec<Delivery>> {
        let mut state = lock(&self.state);
        if state.page.is_some() || state.exhausted {
            Some(take(&mut state, max))
        } else {
            None
        }
    }

    /// The cursor of the next poll, read from `cursor_file` (else `start_cursor`) once.
    async fn start(&self) -> Result<Option<String>, TaskError> {
        {
            let state = lock(&self.state);
            if state.started {
                return Ok(state.cursor.clone());
            }
        }
        let mut cursor = self.start_cursor.clone();
        if let Some(path) = &self.cursor_file {
            match tokio::fs::read_to_string(path).await {
                Ok(text) => cursor = Some(text.trim().to_owned()).filter(|c| !c.is_empty()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(TaskError::system(format!(
                        "connector `{}`: cannot read cursor_file {}",
                        self.name,
                        path.display()
                    ))
                    .with_source(err)
                    .non_retryable());
                }
            }
        }
        let mut state = lock(&self.state);
        state.started = true;
        state.cursor = cursor.clone();
        Ok(cursor)
    }

    fn page_url(&self, cursor: Option<&str>, max: usize) -> reqwest::Url {
        let mut url = self.url.clone();
        {
            let mut query = url.query_pairs_mut();
            if let (Some((param, _)), Some(cursor)) = (&self.cursor, cursor) {
                query.append_pair(param, cursor);
            }
            if let Some(param) = &self.limit_param {
                query.append_pair(param, &max.to_string());
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }

    /// The page's elements (each one's exact bytes) and the next cursor its answer gives
    /// (`last_id` is read by the caller, from the ids).
    fn parse(
        &self,
        what: &str,
        answer: &HttpResponse,
    ) -> Result<(Vec<Bytes>, Option<String>), TaskError> {
        let fail = |message: String| {
            TaskError::system(format!("{what}: {message}: {}", excerpt(&answer.body)))
                .non_retryable()
        };
        let root: &RawValue = serde_json::from_slice(&answer.body)
            .map_err(|_| fail("the answer is not JSON".into()))?;
        let is_array = root.get().starts_with('[');
        let array = if is_array {
            root
        } else {
            raw_at(root, &self.items).ok_or_else(|| {
                fail(format!(
                    "the answer has no array at `items` ({})",
                    self.items
                ))
            })?
        };
        let items: Vec<&RawValue> = serde_json::from_str(array.get())
            .map_err(|_| fail(format!("`items` ({}) is not an array", self.items)))?;
        let next = match &self.cursor {
            Some((_, CursorFrom::Header(name))) => answer
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            Some((_, CursorFrom::Pointer(pointer))) if !is_array => {
                raw_at(root, pointer).and_then(|raw| match serde_json::from_str(raw.get()) {
                    Ok(serde_json::Value::String(s)) => Some(s),
                    Ok(serde_json::Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                })
            }
            _ => None,
        };
        let items = items
            .into_iter()
            .map(|raw| Bytes::copy_from_slice(raw.get().as_bytes()))
            .collect();
        Ok((items, next))
    }

    /// Gives a requeued transaction back to its page.
    pub(super) fn requeue(
        &self,
        receipt: &PageReceipt,
        transaction: &Transaction,
    ) -> SettleOutcome {
        let mut state = lock(&self.state);
        match state.page.as_mut() {
            Some(page) if page.seq == receipt.0 => {
                let again = transaction.clone().delivered(transaction.deliveries() + 1);
                page.ready.push_back(again);
                SettleOutcome::Performed
            }
            _ => SettleOutcome::Stale,
        }
    }

    /// Notes a transaction settled for good; the last one of its page commits the page's
    /// cursor (and writes `cursor_file`).
    pub(super) async fn settled(&self, receipt: &PageReceipt) -> SettleOutcome {
        let committed = {
            let mut state = lock(&self.state);
            let Some(page) = state.page.as_mut().filter(|page| page.seq == receipt.0) else {
                return SettleOutcome::Stale;
            };
            page.unsettled -= 1;
            if page.unsettled > 0 {
                return SettleOutcome::Performed;
            }
            let page = state.page.take().expect("checked above");
            match (&self.cursor, page.next) {
                (Some(_), Some(next)) => state.cursor = Some(next),
                (Some(_), None) => state.exhausted = true,
                (None, _) => {}
            }
            self.cursor.is_some()
        };
        if committed {
            self.persist().await;
        }
        SettleOutcome::Performed
    }

    /// Writes the committed cursor to `cursor_file` (a temporary file renamed over it). A
    /// failure is logged and left to the next page: the file then lags, and a restart
    /// delivers again what it lags by.
    async fn persist(&self) {
        let Some(path) = &self.cursor_file else {
            return;
        };
        let _persisting = self.persisting.lock().await;
        let Some(cursor) = lock(&self.state).cursor.clone() else {
            return;
        };
        let tmp = path.with_extension("tmp");
        let written = async {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir).await?;
            }
            tokio::fs::write(&tmp, cursor.as_bytes()).await?;
            tokio::fs::rename(&tmp, path).await
        }
        .await;
        if let Err(err) = written {
            tracing::warn!(
                connector = %self.name,
                path = %path.display(),
                error = %err,
                "Cannot write the cursor file; a restart would deliver the pages since its last write again"
            );
        }
    }

    /// Nothing out and nothing more to poll now.
    pub(super) fn drained(&self) -> bool {
        let state = lock(&self.state);
        state.page.is_none() && (state.exhausted || state.last_empty)
    }
}

/// Up to `max` of the page's ready transactions.
fn take(state: &mut State, max: usize) -> Vec<Delivery> {
    let Some(page) = state.page.as_mut() else {
        return Vec::new();
    };
    let n = max.min(page.ready.len());
    let seq = page.seq;
    page.ready
        .drain(..n)
        .map(|tx| Delivery::new(tx, PageReceipt(seq)))
        .collect()
}

/// The value at JSON pointer `pointer` (RFC 6901) in `root`, its bytes untouched.
fn raw_at<'a>(root: &'a RawValue, pointer: &str) -> Option<&'a RawValue> {
    let mut at = root;
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        at = if at.get().starts_with('[') {
            let items: Vec<&RawValue> = serde_json::from_str(at.get()).ok()?;
            *items.get(token.parse::<usize>().ok()?)?
        } else {
            let fields: std::collections::HashMap<String, &RawValue> =
                serde_json::from_str(at.get()).ok()?;
            *fields.get(&token)?
        };
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_find_values_byte_for_byte() {
        let root: &RawValue =
            serde_json::from_str(r#"{"data":{"items":[{"b":1.50,"a":2}],"a/b":"x"},"next":null}"#)
                .unwrap();
        assert_eq!(
            raw_at(root, "/data/items/0").unwrap().get(),
            r#"{"b":1.50,"a":2}"#
        );
        assert_eq!(raw_at(root, "/data/a~1b").unwrap().get(), r#""x""#);
        assert_eq!(raw_at(root, "/next").unwrap().get(), "null");
        assert!(raw_at(root, "/missing").is_none());
    }
}
