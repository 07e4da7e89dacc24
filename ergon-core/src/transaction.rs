//! The transaction: one indivisible unit of work (a message, a record, a payload, a batch).
//!
//! A [`Transaction`] is immutable and cheap to clone (one `Arc`). Its payload is bytes with
//! typed helpers; its metadata is a string map that carries lineage ([`meta::PARENT_ID`],
//! [`meta::ROOT_ID`], [`meta::TAGS`]) and the W3C trace context ([`meta::TRACEPARENT`])
//! across connectors.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::TaskError;

/// Well-known metadata keys.
pub mod meta {
    /// Id of the transaction this one was derived from.
    pub const PARENT_ID: &str = "ergon.parent_id";
    /// Id of the first transaction of the lineage.
    pub const ROOT_ID: &str = "ergon.root_id";
    /// Comma-separated tags, inherited by children.
    pub const TAGS: &str = "ergon.tags";
    /// W3C trace context (`traceparent` header), inherited by children.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C trace state (`tracestate` header), inherited by children.
    pub const TRACESTATE: &str = "tracestate";
    /// The DAG run a transaction is a node (or an expansion item) of.
    pub const RUN_ID: &str = "ergon.run_id";
    /// The node of that run it is.
    pub const NODE: &str = "ergon.node";
    /// Its index among the items of an expanded node.
    pub const ITEM: &str = "ergon.item";
    /// Its key among those items.
    pub const ITEM_KEY: &str = "ergon.item_key";
    /// Keys a child inherits from its parent as they are.
    pub const INHERITED: [&str; 3] = [TAGS, TRACEPARENT, TRACESTATE];
}

/// Transaction metadata: an ordered string map.
pub type Metadata = BTreeMap<String, String>;

/// One indivisible unit of work.
///
/// # Examples
///
/// ```
/// use ergon_core::Transaction;
/// use serde::Deserialize;
///
/// #[derive(Debug, Deserialize)]
/// struct Order { id: u64, total: f64 }
///
/// let tx = Transaction::new("order-7", r#"{"id":7,"total":12.5}"#);
/// let order: Order = tx.json()?;
/// assert_eq!(order.id, 7);
///
/// // A payload that does not decode is a business error: retrying cannot fix it.
/// let bad = Transaction::new("order-8", "not json");
/// assert!(!bad.json::<Order>().unwrap_err().is_retryable());
///
/// // Children inherit lineage.
/// let line = tx.child("order-7/1", "{}").build();
/// assert_eq!(line.parent_id(), Some("order-7"));
/// assert_eq!(line.root_id(), "order-7");
/// # Ok::<(), ergon_core::TaskError>(())
/// ```
#[derive(Clone)]
pub struct Transaction {
    inner: Arc<Inner>,
    /// Deliveries so far, this one included (not metadata: it never travels downstream).
    deliveries: u32,
}

struct Inner {
    id: String,
    payload: Bytes,
    metadata: Metadata,
}

impl Transaction {
    /// A transaction with no metadata.
    pub fn new(id: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Self::builder(id).payload(payload).build()
    }

    /// Starts building a transaction with the given id.
    pub fn builder(id: impl Into<String>) -> TransactionBuilder {
        TransactionBuilder {
            id: id.into(),
            payload: Bytes::new(),
            metadata: Metadata::new(),
        }
    }

    /// A transaction whose payload is `value` encoded as JSON.
    ///
    /// # Errors
    ///
    /// A business error if `value` cannot be encoded.
    pub fn from_json<T: Serialize + ?Sized>(
        id: impl Into<String>,
        value: &T,
    ) -> Result<Self, TaskError> {
        Ok(Self::builder(id).json(value)?.build())
    }

    /// The transaction id, unique within its source.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The raw payload.
    pub fn payload(&self) -> &Bytes {
        &self.inner.payload
    }

    /// How many times this transaction has been delivered, this delivery included: 1 the
    /// first time. Its input connector sets it from what the transport counts (see each
    /// connector's docs), and `policy.transaction.max_deliveries` bounds it. A transaction
    /// a task builds starts at 1; the count never travels to an output.
    pub fn deliveries(&self) -> u32 {
        self.deliveries
    }

    /// This transaction, delivered for the `n`-th time (`n >= 1`): what an input
    /// connector calls when it fetches one.
    #[must_use]
    pub fn delivered(mut self, n: u32) -> Self {
        self.deliveries = n.max(1);
        self
    }

    /// The payload as a JSON value when it parses, else as a JSON string (lossy UTF-8):
    /// how the journal hands a payload on (a continuation's `previous_input`, a run's
    /// `input`).
    pub fn payload_value(&self) -> serde_json::Value {
        serde_json::from_slice(self.payload()).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(self.payload()).into_owned())
        })
    }

    /// Decodes the payload as JSON.
    ///
    /// # Errors
    ///
    /// A business error naming the transaction, the target type and the position of the
    /// problem when the payload is not valid JSON for `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        serde_json::from_slice(&self.inner.payload).map_err(|err| {
            TaskError::business(format!(
                "payload of transaction {} is not a valid {}",
                self.id(),
                short_type_name::<T>()
            ))
            .with_source(err)
        })
    }

    /// The payload as UTF-8 text.
    ///
    /// # Errors
    ///
    /// A business error when the payload is not UTF-8.
    pub fn text(&self) -> Result<&str, TaskError> {
        std::str::from_utf8(&self.inner.payload).map_err(|err| {
            TaskError::business(format!("payload of transaction {} is not UTF-8", self.id()))
                .with_source(err)
        })
    }

    /// All metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.inner.metadata
    }

    /// One metadata value.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.inner.metadata.get(key).map(String::as_str)
    }

    /// The id of the transaction this one was derived from, if any.
    pub fn parent_id(&self) -> Option<&str> {
        self.meta(meta::PARENT_ID)
    }

    /// The id of the first transaction of this lineage (its own id for a root).
    pub fn root_id(&self) -> &str {
        self.meta(meta::ROOT_ID).unwrap_or(self.id())
    }

    /// The tags of this lineage.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.meta(meta::TAGS)
            .into_iter()
            .flat_map(|tags| tags.split(','))
            .filter(|tag| !tag.is_empty())
    }

    /// Starts a child transaction: it records this one as parent, keeps the root, and
    /// inherits tags and trace context.
    pub fn child(&self, id: impl Into<String>, payload: impl Into<Bytes>) -> TransactionBuilder {
        let mut metadata = Metadata::new();
        for key in meta::INHERITED {
            if let Some(value) = self.meta(key) {
                metadata.insert(key.to_owned(), value.to_owned());
            }
        }
        metadata.insert(meta::PARENT_ID.to_owned(), self.id().to_owned());
        metadata.insert(meta::ROOT_ID.to_owned(), self.root_id().to_owned());
        TransactionBuilder {
            id: id.into(),
            payload: payload.into(),
            metadata,
        }
    }

    /// This transaction as a child of `parent`: when it does not already name `parent` as
    /// its parent, a copy that does, with `parent`'s root and whatever of its tags and trace
    /// context it lacks. A hybrid task's outbound transactions go through this, so lineage
    /// and trace context survive even when the task built them from scratch.
    ///
    /// # Examples
    ///
    /// ```
    /// use ergon_core::Transaction;
    ///
    /// let order = Transaction::builder("o-1").meta("traceparent", "00-abc-def-01").build();
    /// let line = Transaction::new("o-1/1", "{}").as_child_of(&order);
    /// assert_eq!(line.parent_id(), Some("o-1"));
    /// assert_eq!(line.root_id(), "o-1");
    /// assert_eq!(line.meta("traceparent"), Some("00-abc-def-01"));
    /// ```
    pub fn as_child_of(&self, parent: &Transaction) -> Transaction {
        if self.parent_id() == Some(parent.id()) {
            return self.clone();
        }
        let mut metadata = self.inner.metadata.clone();
        for key in meta::INHERITED {
            if let (false, Some(value)) = (metadata.contains_key(key), parent.meta(key)) {
                metadata.insert(key.to_owned(), value.to_owned());
            }
        }
        metadata.insert(meta::PARENT_ID.to_owned(), parent.id().to_owned());
        metadata.insert(meta::ROOT_ID.to_owned(), parent.root_id().to_owned());
        Transaction {
            inner: Arc::new(Inner {
                id: self.inner.id.clone(),
                payload: self.inner.payload.clone(),
                metadata,
            }),
            deliveries: 1,
        }
    }

    /// This transaction carrying `tags` too: a copy with those it lacks added (the
    /// original is unchanged), or a clone when it has them all.
    ///
    /// # Examples
    ///
    /// ```
    /// use ergon_core::Transaction;
    ///
    /// let tx = Transaction::builder("t-1").tag("red").build();
    /// let tagged = tx.with_tags(&["red".to_owned(), "blue".to_owned()]);
    /// assert_eq!(tagged.tags().collect::<Vec<_>>(), ["red", "blue"]);
    /// ```
    pub fn with_tags(&self, tags: &[String]) -> Transaction {
        let missing: Vec<&String> = tags
            .iter()
            .filter(|tag| !self.tags().any(|have| have == tag.as_str()))
            .collect();
        if missing.is_empty() {
            return self.clone();
        }
        let mut joined = self.meta(meta::TAGS).unwrap_or("").to_owned();
        for tag in missing {
            if !joined.is_empty() {
                joined.push(',');
            }
            joined.push_str(tag);
        }
        self.with_meta(meta::TAGS, joined)
    }

    /// A copy of this transaction with one more metadata entry (the original is unchanged).
    pub fn with_meta(&self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let mut metadata = self.inner.metadata.clone();
        metadata.insert(key.into(), value.into());
        Transaction {
            inner: Arc::new(Inner {
                id: self.inner.id.clone(),
                payload: self.inner.payload.clone(),
                metadata,
            }),
            deliveries: self.deliveries,
        }
    }
}

/// `Order` rather than `my_crate::model::Order` (generic types are shown in full).
fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    if full.contains('<') {
        full
    } else {
        full.rsplit("::").next().unwrap_or(full)
    }
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("id", &self.inner.id)
            .field("payload_len", &self.inner.payload.len())
            .field("metadata", &self.inner.metadata)
            .field("deliveries", &self.deliveries)
            .finish()
    }
}

/// Builds a [`Transaction`]; see [`Transaction::builder`] and [`Transaction::child`].
#[derive(Debug)]
#[must_use]
pub struct TransactionBuilder {
    id: String,
    payload: Bytes,
    metadata: Metadata,
}

impl TransactionBuilder {
    /// Sets the raw payload.
    pub fn payload(mut self, payload: impl Into<Bytes>) -> Self {
        self.payload = payload.into();
        self
    }

    /// Sets the payload to `value` encoded as JSON.
    ///
    /// # Errors
    ///
    /// A business error if `value` cannot be encoded.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Self, TaskError> {
        let bytes = serde_json::to_vec(value).map_err(|err| {
            TaskError::business(format!("cannot encode payload of transaction {}", self.id))
                .with_source(err)
        })?;
        self.payload = bytes.into();
        Ok(self)
    }

    /// Adds one metadata entry.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Adds a lineage tag (inherited by children).
    pub fn tag(mut self, tag: &str) -> Self {
        let tags = self.metadata.entry(meta::TAGS.to_owned()).or_default();
        if !tags.split(',').any(|t| t == tag) {
            if !tags.is_empty() {
                tags.push(',');
            }
            tags.push_str(tag);
        }
        self
    }

    /// Finishes the transaction.
    pub fn build(self) -> Transaction {
        Transaction {
            inner: Arc::new(Inner {
                id: self.id,
                payload: self.payload,
                metadata: self.metadata,
            }),
            deliveries: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_inherit_lineage_tags_and_trace_context() {
        let root = Transaction::builder("r")
            .payload("{}")
            .tag("eu")
            .tag("vip")
            .tag("eu")
            .meta(meta::TRACEPARENT, "00-abc-def-01")
            .meta("custom", "not inherited")
            .build();
        assert_eq!(root.root_id(), "r");
        assert_eq!(root.parent_id(), None);

        let child = root.child("r/1", "1").build();
        let grandchild = child.child("r/1/a", "a").tag("split").build();
        assert_eq!(child.parent_id(), Some("r"));
        assert_eq!(grandchild.parent_id(), Some("r/1"));
        assert_eq!(grandchild.root_id(), "r");
        assert_eq!(
            grandchild.tags().collect::<Vec<_>>(),
            ["eu", "vip", "split"]
        );
        assert_eq!(grandchild.meta(meta::TRACEPARENT), Some("00-abc-def-01"));
        assert_eq!(grandchild.meta("custom"), None);
    }

    #[test]
    fn decode_failure_is_a_business_error_naming_the_transaction() {
        let tx = Transaction::new("line-3", "{\"total\": }");
        let err = tx.json::<serde_json::Value>().unwrap_err();
        assert_eq!(err.category(), crate::Category::Business);
        let shown = err.chain().to_string();
        assert!(
            shown.starts_with("payload of transaction line-3 is not a valid"),
            "{shown}"
        );
        assert!(shown.contains("line 1 column 11"), "{shown}");
    }

    #[test]
    fn clones_share_the_payload() {
        let tx = Transaction::new("a", vec![1u8; 1024]);
        let copy = tx.clone();
        assert_eq!(tx.payload().as_ptr(), copy.payload().as_ptr());
        let tagged = tx.with_meta("k", "v");
        assert_eq!(tagged.meta("k"), Some("v"));
        assert_eq!(tx.meta("k"), None);
    }
}
