//! The document_processing example end to end through its binary, offline: three
//! documents (English, French, both) planned in code into one run each, every run
//! succeeded with the reports it should make (the two-language document summarized
//! once per language), and the same documents enqueued again start no new run.

use example_support::Example;
use serde_json::{Value, json};

/// The example's copy with its documents enqueued and run to the end.
fn processed() -> Example {
    let example = Example::copy(
        env!("CARGO_BIN_EXE_document_processing"),
        env!("CARGO_MANIFEST_DIR"),
        &["documents.jsonl"],
    );
    example.enqueue("documents", "documents.jsonl");
    example.run(&[]);
    example
}

/// The published lines, by document id.
fn reports(example: &Example) -> Vec<Value> {
    let mut lines = example.json_lines("out/reports.jsonl");
    lines.sort_by_key(|line| line["id"].as_str().unwrap_or_default().to_owned());
    lines
}

/// `(run id, status, nodes done, nodes in all)` of every run, by id.
fn runs(example: &Example) -> Vec<(String, String, u64, u64)> {
    let listed: Vec<Value> =
        serde_json::from_str(&example.run(&["runs", "--format", "json"])).unwrap();
    let mut runs: Vec<_> = listed
        .iter()
        .map(|run| {
            (
                run["run_id"].as_str().unwrap().to_owned(),
                run["status"].as_str().unwrap().to_owned(),
                run["nodes_done"].as_u64().unwrap(),
                run["nodes_total"].as_u64().unwrap(),
            )
        })
        .collect();
    runs.sort();
    runs
}

/// What `publish` writes for each document: languages detected, a summary per language,
/// three topics, the sentiment, and the report's text.
fn expected_reports() -> Vec<Value> {
    let en = "The new journal release is here. It makes every workflow faster and the runner \
              easier to operate.";
    let fr = "Le train de la ligne 4 est encore en retard ce matin. Depuis trois semaines, \
              chaque train de la ligne arrive en retard et les voyageurs attendent sans \
              information.";
    let both_en = "The team met on Monday to review the migration plan. The database moves \
                   first, then the queues.";
    let both_fr = "L'équipe s'est réunie lundi pour revoir le plan de migration. La base de \
                   données part en premier, puis les files d'attente.";
    let published = |report: Value| json!({ "id": report["id"], "status": "succeeded", "failed": [], "report": report });
    vec![
        published(json!({
            "id": "doc-1",
            "title": "Release notes: journal 2.0",
            "languages": ["en"],
            "summaries": { "en": en },
            "topics": ["journal", "workflow", "runner"],
            "sentiment": "positive",
            "text": format!(
                "# Release notes: journal 2.0\nLanguages: en\nSummary (en): {en}\n\
                 Topics: journal, workflow, runner\nSentiment: positive (+7)"
            ),
        })),
        published(json!({
            "id": "doc-2",
            "title": "Réclamation : ligne 4",
            "languages": ["fr"],
            "summaries": { "fr": fr },
            "topics": ["ligne", "train", "retard"],
            "sentiment": "negative",
            "text": format!(
                "# Réclamation : ligne 4\nLanguages: fr\nSummary (fr): {fr}\n\
                 Topics: ligne, train, retard\nSentiment: negative (-3)"
            ),
        })),
        published(json!({
            "id": "doc-3",
            "title": "Meeting notes / Compte rendu",
            "languages": ["en", "fr"],
            "summaries": { "en": both_en, "fr": both_fr },
            "topics": ["migration", "plan", "team"],
            "sentiment": "neutral",
            "text": format!(
                "# Meeting notes / Compte rendu\nLanguages: en, fr\nSummary (en): {both_en}\n\
                 Summary (fr): {both_fr}\nTopics: migration, plan, team\nSentiment: neutral (+0)"
            ),
        })),
    ]
}

#[test]
fn each_document_is_planned_into_a_run_whose_report_is_published() {
    let example = processed();
    assert_eq!(reports(&example), expected_reports());

    let done = |id: &str| (id.to_owned(), "succeeded".to_owned(), 6, 6);
    assert_eq!(
        runs(&example),
        [done("doc-1"), done("doc-2"), done("doc-3")]
    );

    // The orchestrator journaled who planned and which nodes.
    let plan: Value = serde_json::from_str(&example.run(&["get", "doc-1", "--json"])).unwrap();
    assert_eq!(
        plan["output"],
        json!({
            "run_id": "doc-1",
            "planner": "code",
            "nodes": ["extract", "detect_language", "summarize", "topics", "sentiment", "format_report"],
        })
    );

    // The run's view: nodes in dependency order, the two-language summary as two items.
    let trace = example.run(&["trace", "doc-3"]);
    let lines: Vec<&str> = trace.lines().collect();
    assert!(
        lines[0].starts_with("run doc-3 [plan] succeeded 6/6 nodes"),
        "{trace}"
    );
    assert!(
        lines[3].starts_with("├─ summarize [summarize] succeeded")
            && lines[3].ends_with("after detect_language"),
        "{trace}"
    );
    assert_eq!(lines[4], "│  └─ 2 items: 2 succeeded, 0 failed", "{trace}");
    assert!(
        lines[7].ends_with("after summarize, topics, sentiment"),
        "{trace}"
    );
    // Its lineage: one transaction per language under the document.
    for item in [
        "doc-3/summarize/0 [summarize] succeeded",
        "doc-3/summarize/1 [summarize] succeeded",
    ] {
        assert!(trace.contains(item), "{item}: {trace}");
    }
}

#[test]
fn the_same_documents_again_start_no_new_run() {
    let example = processed();
    let lineage = example.run(&["list", "--root", "doc-2", "--json"]);

    example.enqueue("documents", "documents.jsonl");
    let summary = example.run(&[]);

    assert!(
        summary.contains("task plan: processed=3 succeeded=3"),
        "{summary}"
    );
    assert!(summary.contains("task extract: processed=0"), "{summary}");
    assert!(summary.contains("task publish: processed=0"), "{summary}");
    assert_eq!(reports(&example), expected_reports());
    assert_eq!(runs(&example).len(), 3);
    assert_eq!(
        example.run(&["list", "--root", "doc-2", "--json"]),
        lineage,
        "the run's lineage is untouched"
    );
}
