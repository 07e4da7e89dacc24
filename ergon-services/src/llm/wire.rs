//! The chat-completions API on the wire: what is sent and what comes back (the fields
//! ergon uses; others are ignored).

use serde::{Deserialize, Serialize};

use super::{Message, Usage};

/// `POST /chat/completions`'s body.
#[derive(Serialize)]
pub(super) struct ChatRequest<'a> {
    pub(super) model: &'a str,
    pub(super) messages: &'a [Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) response_format: Option<ResponseFormat<'a>>,
}

/// `response_format = { type: "json_schema", json_schema: { name, schema, strict: true } }`.
#[derive(Serialize)]
pub(super) struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) json_schema: JsonSchema<'a>,
}

/// The schema the answer must follow.
#[derive(Serialize)]
pub(super) struct JsonSchema<'a> {
    pub(super) name: &'a str,
    pub(super) schema: &'a serde_json::Value,
    pub(super) strict: bool,
}

/// The answer.
#[derive(Deserialize)]
pub(super) struct ChatResponse {
    pub(super) choices: Vec<Choice>,
    #[serde(default)]
    pub(super) usage: Usage,
}

/// One choice (ergon asks for one).
#[derive(Deserialize)]
pub(super) struct Choice {
    pub(super) message: AnswerMessage,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
}

/// The assistant's message.
#[derive(Deserialize)]
pub(super) struct AnswerMessage {
    #[serde(default)]
    pub(super) content: Option<String>,
    #[serde(default)]
    pub(super) refusal: Option<String>,
}
