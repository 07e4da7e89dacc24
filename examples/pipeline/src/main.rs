//! ergon example: a pipeline chained by continuations.
//!
//! `tokenize` splits a document into words and journals them as its output; its
//! `on_complete = "count"` makes the journal send `count` a transaction carrying that
//! output (`previous_output`), in the commit that records the document as done; `count`
//! does the same for `report`, which writes one line per document. A document that
//! fails (no text) is dead-lettered and continues nowhere (`when = "success"`).

use std::process::ExitCode;

use ergon_core::{Consumer, Context, Hybrid, TaskError, Transaction};
use ergon_runner::Registry;
use serde_json::{Value, json};

/// `{"text": "..."}` → its words.
struct Tokenize;

impl Consumer for Tokenize {
    type Output = Vec<String>;

    async fn process_transaction(
        &self,
        _: &Context,
        tx: &Transaction,
    ) -> Result<Vec<String>, TaskError> {
        let document: Value = tx.json()?;
        let text = document["text"]
            .as_str()
            .ok_or_else(|| TaskError::business("a document needs a `text`"))?;
        Ok(text.split_whitespace().map(str::to_owned).collect())
    }

    fn journal_output(&self, words: &Vec<String>) -> Option<Value> {
        Some(json!({ "words": words }))
    }
}

/// The words of the previous step → how many, and the longest.
struct Count;

impl Consumer for Count {
    type Output = Value;

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<Value, TaskError> {
        let previous: Value = tx.json()?;
        let words = previous["previous_output"]["words"]
            .as_array()
            .ok_or_else(|| TaskError::business("no words from tokenize"))?;
        let longest = words
            .iter()
            .filter_map(Value::as_str)
            .max_by_key(|word| word.len())
            .unwrap_or_default();
        Ok(json!({ "words": words.len(), "longest": longest }))
    }

    fn journal_output(&self, counted: &Value) -> Option<Value> {
        Some(counted.clone())
    }
}

/// One report line per document: its id (the lineage's root) and the counts.
struct Report;

impl Hybrid for Report {
    async fn process_transaction(
        &self,
        _: &Context,
        tx: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError> {
        let previous: Value = tx.json()?;
        let counted = &previous["previous_output"];
        let line = json!({
            "document": tx.root_id(),
            "words": counted["words"],
            "longest": counted["longest"],
        });
        Ok(vec![
            tx.child(format!("{}/line", tx.id()), line.to_string())
                .build(),
        ])
    }
}

fn main() -> ExitCode {
    ergon_runner::run(
        Registry::with_builtins()
            .consumer("tokenize", |_| Ok(Tokenize))
            .consumer("count", |_| Ok(Count))
            .hybrid("report", |_| Ok(Report)),
    )
}
