//! The `llm` service against a chat-completions server on loopback, scripted per request
//! and recording what it receives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use ergon_core::config::secret::Secret;
use ergon_core::service::{BuildContext, ServiceTelemetry};
use ergon_core::{Category, Service as _};
use ergon_services::llm::{COMPLETION_TOKENS, Llm, LlmConfig, Message, PROMPT_TOKENS};
use ergon_services::stack::{StackConfig, StackRetry};

const KEY: &str = "sk-test-5ecr3t";

/// One scripted answer: status, extra header lines, body.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: &'static str,
    body: String,
}

/// A completion whose message content is `content`.
fn completion(content: &str) -> Reply {
    Reply {
        status: 200,
        headers: "",
        body: json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "test-model",
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": content },
                "finish_reason": "stop"
            }],
            "usage": { "prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17 }
        })
        .to_string(),
    }
}

fn failure(status: u16, headers: &'static str) -> Reply {
    Reply {
        status,
        headers,
        body: json!({ "error": { "message": "scripted", "type": "server_error" } }).to_string(),
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    head: String,
    body: serde_json::Value,
}

/// Serves request n (0-based, in arrival order) with `script[n]`, the last entry once the
/// script has run out; connections are kept alive.
async fn server(script: Vec<Reply>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::spawn(serve(socket, script.clone(), log.clone()));
        }
    });
    (url, seen)
}

async fn serve(mut socket: TcpStream, script: Vec<Reply>, seen: Arc<Mutex<Vec<Seen>>>) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let length = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = serde_json::from_slice(&buf[head_end..head_end + length])
            .unwrap_or(serde_json::Value::Null);
        buf.drain(..head_end + length);
        let reply = {
            let mut seen = seen.lock().unwrap();
            let n = seen.len();
            seen.push(Seen {
                at: Instant::now(),
                head,
                body,
            });
            script[n.min(script.len() - 1)].clone()
        };
        let text = format!(
            "HTTP/1.1 {} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n{}",
            reply.status,
            reply.body.len(),
            reply.headers,
            reply.body
        );
        if socket.write_all(text.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn config(url: &str, retries: u32) -> LlmConfig {
    LlmConfig {
        base_url: url.to_owned(),
        model: "test-model".into(),
        api_key: Some(Secret::new(KEY)),
        temperature: Some(0.2),
        max_tokens: Some(64),
        stack: StackConfig {
            retry: StackRetry {
                max_attempts: retries,
                backoff: Duration::from_millis(10),
                ..StackRetry::default()
            },
            ..StackConfig::default()
        },
        ..LlmConfig::default()
    }
}

fn llm(config: &LlmConfig, telemetry: &ServiceTelemetry) -> Llm {
    let cx = BuildContext::new("planner").with_telemetry(telemetry.clone());
    Llm::new(config, &cx).unwrap()
}

fn counter(telemetry: &ServiceTelemetry, name: &str) -> u64 {
    telemetry
        .metrics()
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.value())
        .unwrap()
}

#[tokio::test]
async fn a_chat_sends_the_model_settings_and_key_and_counts_tokens() {
    let (url, seen) = server(vec![completion("Bonjour")]).await;
    let telemetry = ServiceTelemetry::default();
    let llm = llm(&config(&url, 1), &telemetry);
    let answer = llm
        .chat(&[Message::system("Answer in French."), Message::user("Hello")])
        .await
        .unwrap();
    assert_eq!(answer.text, "Bonjour");
    assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
    assert_eq!(answer.usage.total_tokens, 17);
    llm.chat(&[Message::user("Again")]).await.unwrap();

    let seen = seen.lock().unwrap();
    let first = &seen[0];
    assert!(
        first.head.starts_with("POST /v1/chat/completions HTTP/1.1"),
        "{}",
        first.head
    );
    assert!(
        first
            .head
            .to_ascii_lowercase()
            .contains(&format!("authorization: bearer {KEY}")),
        "{}",
        first.head
    );
    assert_eq!(first.body["model"], "test-model");
    assert_eq!(first.body["temperature"], 0.2);
    assert_eq!(first.body["max_tokens"], 64);
    assert_eq!(
        first.body["messages"],
        json!([
            { "role": "system", "content": "Answer in French." },
            { "role": "user", "content": "Hello" }
        ])
    );
    assert!(first.body.get("response_format").is_none());
    assert_eq!(counter(&telemetry, PROMPT_TOKENS), 24);
    assert_eq!(counter(&telemetry, COMPLETION_TOKENS), 10);
}

#[derive(Debug, Deserialize, PartialEq)]
struct Plan {
    steps: Vec<String>,
}

fn plan_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": { "steps": { "type": "array", "items": { "type": "string" } } },
        "required": ["steps"],
        "additionalProperties": false
    })
}

#[tokio::test]
async fn a_structured_answer_is_asked_with_its_schema_and_decoded() {
    let (url, seen) = server(vec![completion(r#"{"steps":["buy bread","go"]}"#)]).await;
    let llm = llm(&config(&url, 1), &ServiceTelemetry::default());
    let plan: Plan = llm
        .structured(&[Message::user("Plan a picnic")], "plan", &plan_schema())
        .await
        .unwrap();
    assert_eq!(plan.steps, ["buy bread", "go"]);
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0].body["response_format"],
        json!({
            "type": "json_schema",
            "json_schema": { "name": "plan", "schema": plan_schema(), "strict": true }
        })
    );
}

#[tokio::test]
async fn malformed_structured_content_is_a_business_error_naming_the_type() {
    let (url, _) = server(vec![completion(r#"{"steps": ["buy bread", "#)]).await;
    let llm = llm(&config(&url, 3), &ServiceTelemetry::default());
    let err = llm
        .structured::<Plan>(&[Message::user("Plan")], "plan", &plan_schema())
        .await
        .unwrap_err();
    assert_eq!(err.category(), Category::Business);
    let text = err.to_string();
    assert!(text.contains("Plan") && text.contains("`plan`"), "{text}");
    assert!(
        text.contains(r#"{"steps": ["buy bread", "#),
        "quotes the answer: {text}"
    );
}

#[tokio::test]
async fn a_429_is_retried_by_the_stack_after_its_retry_after_hint() {
    let (url, seen) = server(vec![
        failure(429, "retry-after: 0.3\r\n"),
        completion("after the wait"),
    ])
    .await;
    let llm = llm(&config(&url, 3), &ServiceTelemetry::default());
    let answer = llm.chat(&[Message::user("Hi")]).await.unwrap();
    assert_eq!(answer.text, "after the wait");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    let waited = seen[1].at - seen[0].at;
    assert!(
        waited >= Duration::from_millis(300),
        "the hint is honoured, not the 10 ms backoff: {waited:?}"
    );
}

#[tokio::test]
async fn a_429_without_stack_retries_carries_its_hint_to_the_envelope() {
    let (url, _) = server(vec![failure(429, "retry-after: 2\r\n")]).await;
    let llm = llm(&config(&url, 1), &ServiceTelemetry::default());
    let err = llm.chat(&[Message::user("Hi")]).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
}

#[tokio::test]
async fn a_500_is_a_retryable_system_error_and_a_400_a_business_error() {
    let (url, seen) = server(vec![failure(500, ""), failure(400, "")]).await;
    let llm = llm(&config(&url, 1), &ServiceTelemetry::default());
    let err = llm.chat(&[Message::user("Hi")]).await.unwrap_err();
    assert_eq!(err.category(), Category::System);
    assert!(err.is_retryable());
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    let err = llm.chat(&[Message::user("Hi")]).await.unwrap_err();
    assert_eq!(err.category(), Category::Business);
    assert!(err.to_string().contains("HTTP 400"), "{err}");
    assert_eq!(seen.lock().unwrap().len(), 2, "one try each");
}

#[tokio::test]
async fn the_key_never_shows_in_errors_or_debug_output() {
    let (url, seen) = server(vec![failure(401, ""), failure(500, "")]).await;
    let config = config(&url, 1);
    let llm = llm(&config, &ServiceTelemetry::default());
    let refused = llm.chat(&[Message::user("Hi")]).await.unwrap_err();
    let failed = llm.chat(&[Message::user("Hi")]).await.unwrap_err();
    let unhealthy = llm.health().await.unwrap_err();
    let shown = [
        format!("{} {refused:?}", refused.chain()),
        format!("{} {failed:?}", failed.chain()),
        format!("{} {unhealthy:?}", unhealthy.chain()),
        format!("{llm:?} {config:?}"),
        serde_json::to_string(&config).unwrap(),
    ];
    for text in shown {
        assert!(!text.contains(KEY), "the key shows in {text}");
    }
    assert!(
        seen.lock().unwrap()[0].head.contains(KEY),
        "it was sent, though"
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_retryable_system_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let llm = llm(&config(&url, 1), &ServiceTelemetry::default());
    let err = llm.chat(&[Message::user("Hi")]).await.unwrap_err();
    assert_eq!(err.category(), Category::System);
    assert!(err.is_retryable());
}
