//! Task groups by expansion: a node that runs its task once per item of an array, of a
//! matrix (the cartesian product of several arrays), of explicit items, of an upstream
//! node's separate outputs, or of what custom code registered in the binary returns —
//! and how its items' outputs become the node's output.
//!
//! Items are only known when the node becomes ready (they are usually an upstream
//! result), so the journal expands it then, in the commit that readies it: an overflow
//! of `max_items` fails the node (never truncated), and an empty expansion resolves the
//! node in that same commit, so it can never hang a run.
//!
//! ```
//! use ergon_core::journal::dag::{Expand, OutputMode, PlannedNode};
//!
//! let summaries = PlannedNode::new("summaries", "summarize")
//!     .after(["language"])
//!     .expand(Expand::over("{{ results.language.languages }}").named("lang"))
//!     .output(OutputMode::Separate);
//! assert_eq!(summaries.expand.unwrap().sources(), 1);
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Items per expansion unless `max_items` says otherwise.
pub const DEFAULT_MAX_ITEMS: usize = 1_000;

/// The most items `max_items` may allow.
pub const HARD_MAX_ITEMS: usize = 100_000;

/// Where an expanded node's items come from (exactly one source), what each item is
/// called in templates, how it is keyed, and how many there may be.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expand {
    /// An expression yielding an array (`"{{ results.language.languages }}"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over: Option<String>,
    /// Named arrays (literal, or expressions yielding one): one item per combination,
    /// an object with one key per name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<BTreeMap<String, serde_json::Value>>,
    /// The items themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<serde_json::Value>>,
    /// An upstream node whose output is `separate` (an object): one item per entry, keyed
    /// by the entry's key (a map over a map).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub each: Option<String>,
    /// An expander registered in the binary under this name; it receives the template
    /// context and returns the items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<String>,
    /// The item's name in templates, besides `item` (`as = "lang"` → `{{ lang }}`).
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A template for the item's key (default: its index; with `each`, the entry's key).
    /// Keys must be unique within the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The most items (default [`DEFAULT_MAX_ITEMS`], at most [`HARD_MAX_ITEMS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<usize>,
}

impl Expand {
    /// One item per element of the array `expression` yields.
    pub fn over(expression: impl Into<String>) -> Self {
        Self {
            over: Some(expression.into()),
            ..Self::default()
        }
    }

    /// One item per combination of `arrays` (cartesian product).
    pub fn matrix(arrays: BTreeMap<String, serde_json::Value>) -> Self {
        Self {
            matrix: Some(arrays),
            ..Self::default()
        }
    }

    /// These items.
    pub fn items(items: Vec<serde_json::Value>) -> Self {
        Self {
            items: Some(items),
            ..Self::default()
        }
    }

    /// One item per entry of upstream node `node`'s separate output.
    pub fn each(node: impl Into<String>) -> Self {
        Self {
            each: Some(node.into()),
            ..Self::default()
        }
    }

    /// The items the expander registered as `name` returns.
    pub fn custom(name: impl Into<String>) -> Self {
        Self {
            custom: Some(name.into()),
            ..Self::default()
        }
    }

    /// Calls the item `name` in templates.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How many sources are set (a valid expansion has exactly one).
    pub fn sources(&self) -> usize {
        usize::from(self.over.is_some())
            + usize::from(self.matrix.is_some())
            + usize::from(self.items.is_some())
            + usize::from(self.each.is_some())
            + usize::from(self.custom.is_some())
    }

    /// The item limit.
    pub fn limit(&self) -> usize {
        self.max_items.unwrap_or(DEFAULT_MAX_ITEMS)
    }
}

/// What an expanded node's output is, made of its items' outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputMode {
    /// An array of the items' outputs in item order (`null` for an allowed failure).
    #[default]
    Merge,
    /// An object of the items' outputs by item key; a downstream node can expand over
    /// it with `each`.
    Separate,
    /// The output of its one item: an expansion of any other size fails the node.
    Single,
}

/// How many items of an expansion (or nodes of a group) may fail without failing it: a
/// count (`2`) or a share (`"10%"`, rounded down).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AllowFailures {
    /// At most this many.
    Count(u32),
    /// At most this share, written `"N%"`.
    Share(#[serde(with = "percent")] f64),
}

impl Default for AllowFailures {
    fn default() -> Self {
        AllowFailures::Count(0)
    }
}

impl AllowFailures {
    /// How many of `total` may fail.
    pub fn of(self, total: u32) -> u32 {
        match self {
            AllowFailures::Count(n) => n,
            // Truncation is the rule: "10%" of 15 allows 1.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            AllowFailures::Share(share) => (f64::from(total) * share / 100.0).floor() as u32,
        }
    }
}

impl fmt::Display for AllowFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowFailures::Count(n) => write!(f, "{n}"),
            AllowFailures::Share(share) => write!(f, "{share}%"),
        }
    }
}

/// `"N%"` ⇄ N, for [`AllowFailures::Share`].
mod percent {
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(share: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{share}%"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let text = String::deserialize(d)?;
        text.strip_suffix('%')
            .and_then(|n| n.trim().parse::<f64>().ok())
            .filter(|n| (0.0..=100.0).contains(n))
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "allow_failures {text:?}: expected a count or a share like \"10%\""
                ))
            })
    }
}

/// What an expansion that yields no item does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnEmpty {
    /// The node succeeds at once, its output empty (`[]`, or `{}` when separate).
    #[default]
    Succeed,
    /// The node is skipped (and the skip cascades as a skip does).
    Skip,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_failures_reads_counts_and_shares() {
        let count: AllowFailures = serde_json::from_str("2").unwrap();
        assert_eq!(count.of(100), 2);
        let share: AllowFailures = serde_json::from_str("\"10%\"").unwrap();
        assert_eq!(share.of(15), 1);
        assert_eq!(share.of(100), 10);
        let err = serde_json::from_str::<AllowFailures>("\"ten\"").unwrap_err();
        assert!(err.to_string().contains("did not match"), "{err}");
    }

    #[test]
    fn an_expansion_names_its_unknown_keys() {
        let err = serde_json::from_str::<Expand>(r#"{"ovr": "{{ x }}"}"#).unwrap_err();
        assert!(err.to_string().contains("ovr"), "{err}");
        let expand: Expand = serde_json::from_str(r#"{"over": "{{ x }}", "as": "lang"}"#).unwrap();
        assert_eq!(expand.name.as_deref(), Some("lang"));
        assert_eq!(expand.sources(), 1);
    }
}
