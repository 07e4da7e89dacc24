//! The document_processing example on `tasks-openai.toml`, its `model` service pointed
//! at a chat-completions server on loopback: the plan of each document is the model's
//! (a shorter one: no topics, no sentiment, nodes named its own way), renamed and wired
//! by the orchestrator, and each language's summary is the model's.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use example_support::Example;
use serde_json::{Value, json};

/// What the server received: each request's head and JSON body.
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// A chat-completions server on loopback: a request asking for a structured answer gets
/// the plan below, any other the summary `Model summary (<lang>).`; returns its base URL.
fn model_server() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Seen::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for socket in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || serve(socket, &log));
        }
    });
    (url, seen)
}

/// Answers the requests of one kept-alive connection until it closes.
fn serve(socket: TcpStream, seen: &Seen) {
    let mut reader = BufReader::new(socket.try_clone().unwrap());
    let mut socket = socket;
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let length = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let answer = completion(&answer_to(&body));
        seen.lock().unwrap().push((head, body));
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if socket.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// The model's answer to `request`: a plan, or a summary in the language its
/// instructions ask for.
fn answer_to(request: &Value) -> String {
    if request.get("response_format").is_some() {
        let node = |name: &str, task: &str, after: &[&str]| json!({ "name": name, "task": task, "depends_on": after, "trigger": "all_succeeded" });
        return json!({ "nodes": [
            node("read", "extract", &[]),
            node("langs", "detect_language", &["read"]),
            node("digest", "summarize", &["langs"]),
            node("report", "format_report", &["digest"]),
        ]})
        .to_string();
    }
    let instructions = request["messages"][0]["content"]
        .as_str()
        .unwrap_or_default();
    let lang = instructions.split('`').nth(1).unwrap_or("?");
    format!("Model summary ({lang}).")
}

/// A chat completion whose message is `content`.
fn completion(content: &str) -> String {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": content },
            "finish_reason": "stop"
        }],
        "usage": { "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15 }
    })
    .to_string()
}

/// The report of a document the model's plan ran (no topics, no sentiment).
fn report(id: &str, title: &str, languages: &[&str]) -> Value {
    let mut text = format!("# {title}\nLanguages: {}", languages.join(", "));
    let mut summaries = json!({});
    for lang in languages {
        let summary = format!("Model summary ({lang}).");
        text += &format!("\nSummary ({lang}): {summary}");
        summaries[lang] = summary.into();
    }
    let report = json!({
        "id": id,
        "title": title,
        "languages": languages,
        "summaries": summaries,
        "text": text,
    });
    json!({ "id": id, "status": "succeeded", "failed": [], "report": report })
}

#[test]
fn the_model_plans_each_run_and_writes_the_summaries() {
    let (url, seen) = model_server();
    let example = Example::copy_config(
        env!("CARGO_BIN_EXE_document_processing"),
        env!("CARGO_MANIFEST_DIR"),
        "tasks-openai.toml",
        &["documents.jsonl"],
    )
    .env("OPENAI_BASE_URL", url)
    .env("OPENAI_API_KEY", "sk-test-key");
    example.enqueue("documents", "documents.jsonl");
    example.run(&[]);

    let mut lines = example.json_lines("out/reports-openai.jsonl");
    lines.sort_by_key(|line| line["id"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        lines,
        [
            report("doc-1", "Release notes: journal 2.0", &["en"]),
            report("doc-2", "Réclamation : ligne 4", &["fr"]),
            report("doc-3", "Meeting notes / Compte rendu", &["en", "fr"]),
        ]
    );

    let plan: Value = serde_json::from_str(&example.run(&["get", "doc-3", "--json"])).unwrap();
    assert_eq!(
        plan["output"],
        json!({
            "run_id": "doc-3",
            "planner": "llm service `model`",
            "nodes": ["extract", "detect_language", "summarize", "format_report"],
        })
    );
    let trace = example.run(&["trace", "doc-3"]);
    assert!(
        trace.starts_with("run doc-3 [plan] succeeded 4/4 nodes"),
        "{trace}"
    );

    // One plan per document, asked in the schema of the declared workers; one summary
    // per document and language. Every request carries the key.
    let seen = seen.lock().unwrap();
    let (plans, summaries): (Vec<_>, Vec<_>) = seen
        .iter()
        .filter(|(head, _)| head.starts_with("POST /v1/chat/completions "))
        .partition(|(_, body)| body.get("response_format").is_some());
    assert_eq!((plans.len(), summaries.len()), (3, 4));
    let format = &plans[0].1["response_format"]["json_schema"];
    assert_eq!(format["name"], "run_plan");
    assert_eq!(
        format["schema"]["properties"]["nodes"]["items"]["properties"]["task"]["enum"],
        json!([
            "extract",
            "detect_language",
            "summarize",
            "topics",
            "sentiment",
            "format_report"
        ])
    );
    for (head, _) in plans.iter().chain(&summaries) {
        assert!(
            head.to_ascii_lowercase()
                .contains("authorization: bearer sk-test-key"),
            "{head}"
        );
    }
}
