//! Target `file_lines`: the file connector's line reader and dead-letter encoding, through
//! its public API. The input's first byte chooses the options (fetch batch size,
//! `id_field`, `trace_field`); the rest is the input file. Every line is fetched, then
//! dead-lettered with an error message made of its own bytes, and the dead-letter file is
//! read back.
//!
//! Checks: the transactions are the file's non-blank lines, in order, with their exact
//! bytes (newline and a carriage return before it trimmed) and line numbers; ids are
//! `input.jsonl:LINE` unless `id_field` is set; the dead-letter file holds one JSON object
//! line per transaction, whose `id` is the transaction's and whose payload
//! ([`jsonl::payload_of`]) is the original bytes.

use std::path::Path;
use std::sync::LazyLock;

use ergon_connectors::file::{FileConfig, FileConnector, meta};
use ergon_connectors::jsonl::{self, is_blank, trim_newline};
use ergon_core::config::ConfigEnv;
use ergon_core::{Category, Connector, Failure, Settlement, Transaction};

/// JSON lines' punctuation and the fields the options name.
pub const DICTIONARY: &[&[&str]] = &[&[
    "\n",
    "\r\n",
    "\r",
    " ",
    "\t",
    "{",
    "}",
    "\"id\":",
    "\"traceparent\":",
    "\"",
    "\\",
    "\u{feff}",
    "\0",
    "\u{2028}",
    "\u{ff}",
]];

/// The input file's name, the first half of default ids.
const INPUT: &str = "input.jsonl";

/// One runtime per process: the connector runs its file I/O on tokio's blocking pool.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime for the file connector")
});

/// The options the first byte encodes: batch size 1 to 16 (low four bits), `id_field =
/// "id"` (bit 4), `trace_field = "traceparent"` (bit 5).
fn options(byte: u8, dir: &Path) -> (usize, FileConfig) {
    let config = FileConfig {
        id_field: (byte & 0x10 != 0).then(|| "id".to_owned()),
        trace_field: (byte & 0x20 != 0).then(|| "traceparent".to_owned()),
        ..FileConfig::new(dir.join(INPUT))
    };
    (usize::from(byte & 0x0f) + 1, config)
}

/// The non-blank lines of `content`, numbered from 1, without their line ends.
fn expected_lines(content: &[u8]) -> Vec<(u64, &[u8])> {
    content
        .split_inclusive(|&b| b == b'\n')
        .zip(1..)
        .map(|(line, number)| (number, trim_newline(line)))
        .filter(|(_, line)| !is_blank(line))
        .collect()
}

/// The id of a dead-letter line (the rest is skipped unbuilt: a payload embedded as JSON
/// may nest deeper than a `serde_json::Value` may).
#[derive(serde::Deserialize)]
struct Letter {
    id: String,
}

/// Every transaction of the file, each dead-lettered once it is fetched.
async fn read_and_dead_letter(connector: &FileConnector, batch: usize) -> Vec<Transaction> {
    let mut read = Vec::new();
    loop {
        let deliveries = connector.fetch(batch).await.expect("a fetch of the input");
        if deliveries.is_empty() {
            return read;
        }
        for delivery in deliveries {
            let transaction = delivery.transaction();
            let failure = Failure {
                task: "fuzz".into(),
                step: "process",
                category: Category::Business,
                message: String::from_utf8_lossy(transaction.payload()).into_owned(),
                attempts: 1,
            };
            connector
                .settle(&delivery, &Settlement::DeadLetter(failure))
                .await
                .expect("a dead letter written");
            read.push(transaction.clone());
        }
    }
}

/// The target: see the [module docs](self).
///
/// # Panics
///
/// On a finding: the reader or the encoder panicked, or what came out differs from what
/// went in.
pub fn target(data: &[u8]) {
    let (&first, content) = data.split_first().unwrap_or((&0, &[]));
    let dir = tempfile::tempdir().expect("a temporary directory for the files");
    let (batch, config) = options(first, dir.path());
    std::fs::write(&config.path, content).expect("the input file written");
    let env = ConfigEnv {
        name: "fuzz".into(),
        base_dir: dir.path().to_path_buf(),
    };
    let connector = FileConnector::from_config(&config, &env).expect("a valid file config");
    let read = RUNTIME.block_on(read_and_dead_letter(&connector, batch));

    let expected = expected_lines(content);
    assert_eq!(
        read.len(),
        expected.len(),
        "one transaction per non-blank line"
    );
    for (transaction, (number, line)) in read.iter().zip(&expected) {
        assert_eq!(&transaction.payload()[..], *line, "line {number}'s bytes");
        assert_eq!(
            transaction.meta(meta::LINE),
            Some(number.to_string().as_str())
        );
        if config.id_field.is_none() {
            assert_eq!(transaction.id(), format!("{INPUT}:{number}"));
        }
    }

    let letters = std::fs::read(connector.dead_letter_path()).unwrap_or_default();
    let letters: Vec<&[u8]> = letters.split_inclusive(|&b| b == b'\n').collect();
    assert_eq!(
        letters.len(),
        read.len(),
        "one dead-letter line per transaction"
    );
    for (letter, transaction) in letters.iter().zip(&read) {
        let letter = std::str::from_utf8(letter).expect("a dead-letter line is UTF-8");
        let record: Letter = serde_json::from_str(letter)
            .unwrap_or_else(|err| panic!("a dead-letter line is a JSON object: {err}: {letter}"));
        assert_eq!(record.id, transaction.id(), "{letter}");
        let payload = jsonl::payload_of(letter.trim_end_matches('\n'))
            .unwrap_or_else(|err| panic!("{err}: {letter}"));
        assert_eq!(payload, &transaction.payload()[..], "{letter}");
    }
}
