//! The workers: one task per kind of work, each reading its own queue, each a node of a
//! document's run. A worker's input is the node's input template rendered by the journal
//! (`plan::input_of`); its output is journaled (`journal_output`) for the nodes after it.
//! Offline they are deterministic heuristics ([`crate::text`]); `summarize` asks a model
//! instead when its `settings.model` names an `llm` service.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use ergon_core::{Consumer, Context, Hybrid, TaskError, Transaction};
use ergon_services::llm::{Llm, Message};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{llm_service, text};

/// `extract`: a document (`{"id", "text", "title"?}`) → its text without markup,
/// whitespace normalized, and its title.
pub struct Extract;

/// What `extract` reads: the document as enqueued.
#[derive(Deserialize)]
struct Document {
    text: String,
    #[serde(default)]
    title: Option<String>,
}

impl Consumer for Extract {
    type Output = Value;

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<Value, TaskError> {
        let document: Document = tx.json()?;
        let text = text::normalize(&document.text);
        Ok(json!({
            "title": document.title,
            "paragraphs": text::paragraphs(&text).len(),
            "text": text,
        }))
    }

    fn journal_output(&self, output: &Value) -> Option<Value> {
        Some(output.clone())
    }
}

/// What `detect_language` reads.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Text {
    text: String,
}

/// `detect_language`: the text → `{"languages": [...], "sections": {lang: text}}`, each
/// paragraph counted for the language whose stopwords it uses most.
pub struct DetectLanguage;

impl Consumer for DetectLanguage {
    type Output = Value;

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<Value, TaskError> {
        let Text { text } = tx.json()?;
        let sections = text::sections(&text);
        let languages: Vec<&str> = sections.iter().map(|(code, _)| *code).collect();
        let sections: BTreeMap<&str, String> = sections.into_iter().collect();
        Ok(json!({ "languages": languages, "sections": sections }))
    }

    fn journal_output(&self, output: &Value) -> Option<Value> {
        Some(output.clone())
    }
}

/// `summarize`'s settings.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SummarizeSettings {
    /// The `llm` service that writes summaries (listed in the task's `services`); none:
    /// the first sentences are the summary.
    model: Option<String>,
    /// Sentences per summary, at least 1. Default: 2.
    sentences: usize,
}

impl Default for SummarizeSettings {
    fn default() -> Self {
        Self {
            model: None,
            sentences: 2,
        }
    }
}

/// What `summarize` reads: one language's part of the text (one item of the node's
/// expansion over the detected languages).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    lang: String,
    text: String,
}

/// `summarize`: one language's text → its summary, in that language.
pub struct Summarize {
    sentences: usize,
    model: Option<Arc<Llm>>,
}

impl Summarize {
    /// Reads `settings` (`model`, `sentences`), then the model's service if named.
    ///
    /// # Errors
    ///
    /// Bad settings; a named service that is not an injected `llm` service.
    pub fn from_context(cx: &Context) -> Result<Self, TaskError> {
        let settings: SummarizeSettings = cx.settings()?;
        if settings.sentences == 0 {
            return Err(TaskError::system("settings.sentences must be at least 1").non_retryable());
        }
        Ok(Self {
            sentences: settings.sentences,
            model: llm_service(cx, settings.model.as_deref())?,
        })
    }

    /// The model's summary of `section`.
    async fn ask(&self, llm: &Llm, section: &Section) -> Result<String, TaskError> {
        let instructions = format!(
            "Summarize the user's text in at most {} sentences, in the language whose ISO \
             639-1 code is `{}`. Answer with the summary only.",
            self.sentences, section.lang
        );
        let messages = [Message::system(instructions), Message::user(&section.text)];
        Ok(llm.chat(&messages).await?.text.trim().to_owned())
    }
}

impl Consumer for Summarize {
    type Output = Value;

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<Value, TaskError> {
        let section: Section = tx.json()?;
        let summary = match &self.model {
            Some(llm) => self.ask(llm, &section).await?,
            None => text::first_sentences(&section.text, self.sentences),
        };
        Ok(Value::String(summary))
    }

    fn journal_output(&self, output: &Value) -> Option<Value> {
        Some(output.clone())
    }
}

/// What `topics` and `sentiment` read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Analysis {
    text: String,
    languages: Vec<String>,
}

/// `topics`' settings.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TopicsSettings {
    /// Topics per document. Default: 3.
    count: usize,
}

impl Default for TopicsSettings {
    fn default() -> Self {
        Self { count: 3 }
    }
}

/// `topics`: the text → `{"topics": [...]}`, its most frequent words that are not
/// stopwords of its languages.
pub struct Topics {
    count: usize,
}

impl Topics {
    /// Reads `settings` (`count`).
    ///
    /// # Errors
    ///
    /// Bad settings.
    pub fn from_context(cx: &Context) -> Result<Self, TaskError> {
        let TopicsSettings { count } = cx.settings()?;
        Ok(Self { count })
    }
}

impl Consumer for Topics {
    type Output = Value;

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<Value, TaskError> {
        let Analysis { text, languages } = tx.json()?;
        Ok(json!({ "topics": text::topics(&text, &languages, self.count) }))
    }

    fn journal_output(&self, output: &Value) -> Option<Value> {
        Some(output.clone())
    }
}

/// `sentiment`: the text → `{"label", "score", "positive", "negative"}`, counting the
/// positive and negative words of its languages.
pub struct Sentiment;

impl Consumer for Sentiment {
    type Output = Value;

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<Value, TaskError> {
        let Analysis { text, languages } = tx.json()?;
        let (positive, negative) = text::polarity(&text, &languages);
        // Word counts of one document: far from i64's range.
        #[allow(clippy::cast_possible_wrap)]
        let score = positive as i64 - negative as i64;
        let label = match score.signum() {
            1 => "positive",
            -1 => "negative",
            _ => "neutral",
        };
        Ok(json!({ "label": label, "score": score, "positive": positive, "negative": negative }))
    }

    fn journal_output(&self, output: &Value) -> Option<Value> {
        Some(output.clone())
    }
}

/// What `format_report` reads: the results its input template gathers (an analysis the
/// plan did not run is absent).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Findings {
    id: String,
    title: Option<String>,
    languages: Vec<String>,
    summaries: Option<BTreeMap<String, String>>,
    topics: Option<Vec<String>>,
    sentiment: Option<Verdict>,
}

/// The part of `sentiment`'s output a report shows.
#[derive(Deserialize)]
struct Verdict {
    label: String,
    score: i64,
}

/// `format_report`: the findings → the report, with a text rendering (`text`).
pub struct FormatReport;

impl FormatReport {
    /// `findings` as text: a title line, then one line per finding.
    fn render(findings: &Findings) -> String {
        let mut out = format!("# {}", findings.title.as_deref().unwrap_or(&findings.id));
        let _ = write!(out, "\nLanguages: {}", findings.languages.join(", "));
        for (lang, summary) in findings.summaries.iter().flatten() {
            let _ = write!(out, "\nSummary ({lang}): {summary}");
        }
        if let Some(topics) = &findings.topics {
            let _ = write!(out, "\nTopics: {}", topics.join(", "));
        }
        if let Some(Verdict { label, score }) = &findings.sentiment {
            let _ = write!(out, "\nSentiment: {label} ({score:+})");
        }
        out
    }
}

impl Consumer for FormatReport {
    type Output = Value;

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<Value, TaskError> {
        let findings: Findings = tx.json()?;
        let mut report = json!({
            "id": findings.id,
            "title": findings.title,
            "languages": findings.languages,
            "text": Self::render(&findings),
        });
        if let Some(summaries) = &findings.summaries {
            report["summaries"] = json!(summaries);
        }
        if let Some(topics) = &findings.topics {
            report["topics"] = json!(topics);
        }
        if let Some(verdict) = &findings.sentiment {
            report["sentiment"] = json!(verdict.label);
        }
        Ok(report)
    }

    fn journal_output(&self, output: &Value) -> Option<Value> {
        Some(output.clone())
    }
}

/// `publish`: a run's result (sent when the run ends) → one line for the document on the
/// task's output: `{"id", "status", "report", "failed"}` (`report` is `null` when no
/// report was made).
pub struct Publish;

impl Hybrid for Publish {
    async fn process_transaction(
        &self,
        _: &Context,
        tx: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError> {
        let result: Value = tx.json()?;
        let line = json!({
            "id": result["run_id"],
            "status": result["status"],
            "report": result["results"][crate::plan::FORMAT_REPORT],
            "failed": result["failed"],
        });
        let id = format!("{}/published", tx.id());
        Ok(vec![tx.child(id, line.to_string()).build()])
    }
}
