//! `llm`: an OpenAI-compatible chat-completions client (`POST {base_url}/chat/completions`)
//! whose every call runs behind the service [`crate::stack`], on the `http` service's
//! client ([`crate::http::client`]: rustls on `ring`, the key as a bearer token that never
//! shows) and answer mapping ([`crate::http::answer`]).
//!
//! * [`Llm::chat`] sends messages and returns the [`Completion`]: text, finish reason,
//!   token usage.
//! * [`Llm::structured`] asks for an answer following a JSON schema (`response_format =
//!   { type: "json_schema", json_schema: { name, schema, strict: true } }`) and decodes it
//!   into a Rust type; an answer that does not decode (malformed JSON, cut short by
//!   `max_tokens`) or a refusal is a business error naming the type and quoting the
//!   answer.
//!
//! | answer                          | result |
//! |---------------------------------|--------|
//! | 200 with a choice               | `Ok(Completion)` |
//! | 429 (with `Retry-After`)        | retryable system error (with the hint) |
//! | 5xx, 408, no answer             | retryable system error |
//! | other 4xx (bad request, bad key)| business error |
//! | 200 that is not a completion    | business error |
//!
//! The service never retries on its own: the stack's `retry` does, honouring the
//! retry-after hint, or the step envelope retries the step. No streaming.
//!
//! **Metrics.** Every completion adds its usage to two counters of the service (labelled
//! `ergon.service` = its name): [`PROMPT_TOKENS`] and [`COMPLETION_TOKENS`].

mod config;
mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt as _};
use serde::{Deserialize, Serialize};
use tower::ServiceExt as _;

use ergon_core::config::{ConfigEnv, ConfigIssue, ServiceKind, decode};
use ergon_core::service::{BuildContext, BuildService, ConfiguredService};
use ergon_core::{Service, TaskError};

use crate::http::answer::{self, excerpt};
use crate::stack::{self, Stack};

pub use config::LlmConfig;

/// Metric: prompt (input) tokens the service's completions used, a counter.
pub const PROMPT_TOKENS: &str = "ergon.service.llm.prompt_tokens";
/// Metric: completion (output) tokens the service's completions used, a counter.
pub const COMPLETION_TOKENS: &str = "ergon.service.llm.completion_tokens";

/// Who says a [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// The user's turn.
    User,
    /// The model's earlier turn.
    Assistant,
}

/// One message of a conversation.
///
/// # Examples
///
/// ```
/// use ergon_services::llm::{Message, Role};
///
/// let messages = [Message::system("Answer in French."), Message::user("Hello")];
/// assert_eq!(messages[1].role, Role::User);
/// assert_eq!(
///     serde_json::to_string(&messages[0]).unwrap(),
///     r#"{"role":"system","content":"Answer in French."}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who says it.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message (an earlier answer).
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// Tokens a completion used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    /// Tokens of the prompt.
    pub prompt_tokens: u64,
    /// Tokens of the answer.
    pub completion_tokens: u64,
    /// Both.
    pub total_tokens: u64,
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The answer's text (empty when the model refused).
    pub text: String,
    /// Why the model stopped: `stop`, `length` (cut at `max_tokens`), …
    pub finish_reason: Option<String>,
    /// Why the model refused, when it did (structured answers).
    pub refusal: Option<String>,
    /// Tokens used.
    pub usage: Usage,
}

/// The `llm` service: reach it with `cx.service::<Llm>("NAME")`.
///
/// # Examples
///
/// ```no_run
/// use ergon_core::{Context, TaskError};
/// use ergon_services::llm::{Llm, Message};
///
/// #[derive(serde::Deserialize)]
/// struct Plan { steps: Vec<String> }
///
/// # async fn plan(cx: &Context) -> Result<(), TaskError> {
/// let llm = cx.service::<Llm>("planner")?;
/// let answer = llm.chat(&[Message::user("Say hello")]).await?;
/// println!("{} ({} tokens)", answer.text, answer.usage.total_tokens);
///
/// let schema = serde_json::json!({
///     "type": "object",
///     "properties": { "steps": { "type": "array", "items": { "type": "string" } } },
///     "required": ["steps"],
///     "additionalProperties": false
/// });
/// let plan: Plan = llm
///     .structured(&[Message::user("Plan a picnic")], "plan", &schema)
///     .await?;
/// # let _ = plan.steps; Ok(()) }
/// ```
pub struct Llm {
    name: Arc<str>,
    config: LlmConfig,
    client: reqwest::Client,
    stack: Stack<Bytes, Completion>,
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm")
            .field("name", &self.name)
            .field("base_url", &self.config.base_url)
            .field("model", &self.config.model)
            .finish_non_exhaustive()
    }
}

impl Llm {
    /// Builds the service named by `cx` from `config` (no request is made).
    ///
    /// # Errors
    ///
    /// The HTTP client cannot be created (an unreadable `ca_file`, say).
    pub fn new(config: &LlmConfig, cx: &BuildContext) -> Result<Self, TaskError> {
        let client = config
            .client_options()
            .build(&format!("service `{}`", cx.name()))?;
        let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        let one_try = OneTry {
            client: client.clone(),
            what: format!("POST {url}").into(),
            url: url.into(),
            prompt_tokens: cx.counter(PROMPT_TOKENS, "Prompt tokens used by completions"),
            completion_tokens: cx
                .counter(COMPLETION_TOKENS, "Completion tokens used by completions"),
        };
        let (stack, _breaker) = stack::stack(one_try, &config.stack, cx);
        Ok(Self {
            name: cx.name().into(),
            config: config.clone(),
            client,
            stack,
        })
    }

    /// Sends `messages` and returns the first choice.
    ///
    /// # Errors
    ///
    /// See the module docs; the stack adds timeouts, open circuits and the final error of
    /// its retries.
    pub async fn chat(&self, messages: &[Message]) -> Result<Completion, TaskError> {
        self.complete(messages, None).await
    }

    /// Asks for an answer following `schema` (a JSON schema, sent with `strict: true`
    /// under `schema_name`) and decodes it into `T`.
    ///
    /// # Errors
    ///
    /// As [`Llm::chat`]; and a business error naming `T` and quoting the answer when the
    /// model refused or its answer does not decode into `T`.
    pub async fn structured<T: serde::de::DeserializeOwned>(
        &self,
        messages: &[Message],
        schema_name: &str,
        schema: &serde_json::Value,
    ) -> Result<T, TaskError> {
        let format = wire::ResponseFormat {
            kind: "json_schema",
            json_schema: wire::JsonSchema {
                name: schema_name,
                schema,
                strict: true,
            },
        };
        let completion = self.complete(messages, Some(format)).await?;
        let what = || {
            format!(
                "service `{}`: the structured answer `{schema_name}` ({})",
                self.name,
                std::any::type_name::<T>()
            )
        };
        if let Some(refusal) = &completion.refusal {
            return Err(TaskError::business(format!(
                "{}: the model refused: {}",
                what(),
                excerpt(refusal.as_bytes())
            )));
        }
        serde_json::from_str(&completion.text).map_err(|err| {
            let cut = match completion.finish_reason.as_deref() {
                Some("length") => " (cut at max_tokens)",
                _ => "",
            };
            TaskError::business(format!(
                "{} does not decode{cut}: {}",
                what(),
                excerpt(completion.text.as_bytes())
            ))
            .with_source(err)
        })
    }

    async fn complete(
        &self,
        messages: &[Message],
        response_format: Option<wire::ResponseFormat<'_>>,
    ) -> Result<Completion, TaskError> {
        let request = wire::ChatRequest {
            model: &self.config.model,
            messages,
            temperature: self.config.temperature,
            max_tokens: self.config.max_tokens,
            response_format,
        };
        let body = serde_json::to_vec(&request).map_err(|err| {
            TaskError::business(format!(
                "service `{}`: the request cannot be written as JSON",
                self.name
            ))
            .with_source(err)
        })?;
        self.stack.clone().oneshot(Bytes::from(body)).await
    }
}

#[async_trait::async_trait]
impl Service for Llm {
    /// `GET health_path` (with the key) must answer, and neither 401, 403 nor 5xx.
    async fn health(&self) -> Result<(), TaskError> {
        let url = format!(
            "{}{}",
            self.config.base_url.trim_end_matches('/'),
            self.config.health_path
        );
        let answer = self
            .client
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|err| {
                TaskError::system(format!("GET {url}")).with_source(err.without_url())
            })?;
        let status = answer.status().as_u16();
        match status {
            401 | 403 => Err(TaskError::system(format!(
                "GET {url}: HTTP {status}: the API key was refused"
            ))),
            500.. => Err(TaskError::system(format!("GET {url}: HTTP {status}"))),
            _ => Ok(()),
        }
    }
}

/// One try of a completion: the innermost service of the stack.
#[derive(Clone)]
struct OneTry {
    client: reqwest::Client,
    url: Arc<str>,
    what: Arc<str>,
    prompt_tokens: Arc<AtomicU64>,
    completion_tokens: Arc<AtomicU64>,
}

impl tower::Service<Bytes> for OneTry {
    type Response = Completion;
    type Error = TaskError;
    type Future = BoxFuture<'static, Result<Completion, TaskError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), TaskError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, body: Bytes) -> Self::Future {
        let request = self
            .client
            .post(&*self.url)
            .header("content-type", "application/json")
            .body(body);
        let this = self.clone();
        async move {
            let answer = answer::exchange(&this.what, request).await?;
            let response: wire::ChatResponse = answer.json()?;
            let Some(choice) = response.choices.into_iter().next() else {
                return Err(TaskError::business(format!(
                    "{}: the answer has no choices: {}",
                    this.what,
                    excerpt(&answer.body)
                )));
            };
            let usage = response.usage;
            this.prompt_tokens
                .fetch_add(usage.prompt_tokens, Ordering::Relaxed);
            this.completion_tokens
                .fetch_add(usage.completion_tokens, Ordering::Relaxed);
            Ok(Completion {
                text: choice.message.content.unwrap_or_default(),
                finish_reason: choice.finish_reason,
                refusal: choice.message.refusal,
                usage,
            })
        }
        .boxed()
    }
}

/// The `llm` service kind.
#[derive(Debug, Default)]
pub struct LlmKind;

impl ServiceKind for LlmKind {
    fn name(&self) -> &'static str {
        "llm"
    }

    fn configure(
        &self,
        table: serde_json::Value,
        env: &ConfigEnv,
    ) -> Result<ConfiguredService, ConfigIssue> {
        let mut config: LlmConfig = decode(table)?;
        config.validate()?;
        config.ca_file = config.ca_file.map(|path| env.resolve(&path));
        Ok(ConfiguredService::new(config))
    }
}

/// An `llm` service is built from its config: the client and the stack, no request.
impl BuildService for LlmConfig {
    type Service = Llm;

    async fn build(&self, cx: BuildContext) -> Result<Arc<Llm>, TaskError> {
        Llm::new(self, &cx).map(Arc::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_names_bad_keys() {
        let env = ConfigEnv {
            name: "planner".into(),
            base_dir: ".".into(),
        };
        let issue = |table| LlmKind.configure(table, &env).unwrap_err().path;
        assert_eq!(issue(serde_json::json!({})), "model");
        assert_eq!(
            issue(serde_json::json!({ "model": "m", "api_key": "" })),
            "api_key"
        );
        assert_eq!(
            issue(serde_json::json!({ "model": "m", "temperature": 3.0 })),
            "temperature"
        );
        assert_eq!(
            issue(serde_json::json!({ "model": "m", "base_url": "ftp://x" })),
            "base_url"
        );
        assert_eq!(
            issue(serde_json::json!({ "model": "m", "key": "k" })),
            "key"
        );
        assert!(
            LlmKind
                .configure(serde_json::json!({ "model": "m", "api_key": "sk" }), &env)
                .is_ok()
        );
    }
}
