//! The `[connectors.NAME]` tables: decoding, validation, path resolution.

use std::path::Path;

use ergon_core::config::{ConfigEnv, ConfigIssue, ConnectorKind};

fn env(dir: &Path) -> ConfigEnv {
    ConfigEnv {
        name: "orders".into(),
        base_dir: dir.to_path_buf(),
    }
}

fn configure_err(kind: &dyn ConnectorKind, table: serde_json::Value) -> ConfigIssue {
    match kind.configure(table, &env(Path::new("/config"))) {
        Ok(_) => panic!("expected a config error"),
        Err(issue) => issue,
    }
}

#[test]
#[cfg(all(
    feature = "memory",
    feature = "file",
    feature = "local",
    feature = "rabbitmq",
    feature = "http",
    feature = "redis-streams",
    feature = "postgres"
))]
fn the_kinds_of_this_build() {
    let names: Vec<&str> = ergon_connectors::kinds().iter().map(|k| k.name()).collect();
    assert_eq!(
        names,
        [
            "memory",
            "file",
            "local",
            "rabbitmq",
            "http",
            "redis_streams",
            "postgres"
        ]
    );
}

#[test]
#[cfg(feature = "rabbitmq")]
fn rabbitmq_tables_are_checked_with_the_key_named() {
    use ergon_connectors::rabbitmq::RabbitKind;
    let issue = configure_err(
        &RabbitKind,
        serde_json::json!({ "url": "http://rabbit", "queue": "orders" }),
    );
    assert_eq!(issue.path, "url");
    let issue = configure_err(
        &RabbitKind,
        serde_json::json!({ "queue": "orders", "prefetch": 0 }),
    );
    assert_eq!(issue.path, "prefetch");
    let issue = configure_err(
        &RabbitKind,
        serde_json::json!({ "queue": "orders", "prefech": 5 }),
    );
    assert!(
        issue.message.contains("unknown field `prefech`"),
        "{}",
        issue.message
    );
    let issue = configure_err(
        &RabbitKind,
        serde_json::json!({ "queue": "orders", "tls": { "ca_file": "no/such/ca.pem" } }),
    );
    assert_eq!(issue.path, "tls.ca_file");
    assert!(issue.message.contains("cannot read"), "{}", issue.message);
    assert!(
        issue.message.contains("no/such/ca.pem"),
        "{}",
        issue.message
    );
}

#[cfg(feature = "file")]
mod file {
    use super::*;
    use ergon_connectors::file::{FileConfig, FileConnector, FileKind, meta};

    #[test]
    fn an_unknown_key_names_itself_and_the_allowed_ones() {
        let issue = configure_err(
            &FileKind,
            serde_json::json!({ "path": "a.jsonl", "dead_leter": "b.jsonl" }),
        );
        assert_eq!(issue.path, "dead_leter");
        assert!(
            issue.message.contains("unknown field `dead_leter`"),
            "{issue}"
        );
        for allowed in ["path", "dead_letter", "id_field", "trace_field"] {
            assert!(issue.message.contains(&format!("`{allowed}`")), "{issue}");
        }
    }

    #[test]
    fn path_is_required() {
        let issue = configure_err(&FileKind, serde_json::json!({ "dead_letter": "b.jsonl" }));
        assert_eq!(issue.path, "path");
        assert!(issue.message.contains("required"), "{issue}");
        let issue = configure_err(&FileKind, serde_json::json!({ "path": "" }));
        assert_eq!(issue.path, "path");
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_key() {
        let issue = configure_err(&FileKind, serde_json::json!({ "path": 3 }));
        assert_eq!(issue.path, "path");
        assert!(issue.message.contains("invalid type"), "{issue}");
    }

    #[test]
    fn the_dead_letter_file_cannot_be_the_input() {
        let issue = configure_err(
            &FileKind,
            serde_json::json!({ "path": "a.jsonl", "dead_letter": "/config/a.jsonl" }),
        );
        assert_eq!(issue.path, "dead_letter");
        assert!(issue.message.contains("same file"), "{issue}");
    }

    #[test]
    fn relative_paths_are_resolved_against_the_config_directory() {
        let config = FileConfig {
            dead_letter: Some("out/rejected.jsonl".into()),
            ..FileConfig::new("in/orders.jsonl")
        };
        let connector = FileConnector::from_config(&config, &env(Path::new("/srv/etl"))).unwrap();
        assert_eq!(connector.path(), Path::new("/srv/etl/in/orders.jsonl"));
        assert_eq!(
            connector.dead_letter_path(),
            Path::new("/srv/etl/out/rejected.jsonl")
        );

        let defaulted = FileConnector::from_config(
            &FileConfig::new("in/orders.jsonl"),
            &env(Path::new("/srv/etl")),
        )
        .unwrap();
        assert_eq!(
            defaulted.dead_letter_path(),
            Path::new("/srv/etl/in/orders.dead.jsonl")
        );

        let absolute =
            FileConnector::from_config(&FileConfig::new("/data/x.jsonl"), &env(Path::new("/srv")))
                .unwrap();
        assert_eq!(absolute.path(), Path::new("/data/x.jsonl"));
    }

    #[tokio::test]
    async fn the_kind_reads_the_resolved_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("in")).unwrap();
        let path = dir.path().join("in/orders.jsonl");
        std::fs::write(&path, "{\"n\":1}\n").unwrap();

        let make = FileKind
            .configure(
                serde_json::json!({ "path": "in/orders.jsonl" }),
                &env(dir.path()),
            )
            .unwrap();
        let input = make.connect(0).await.unwrap();
        let batch = input.fetch(10).await.unwrap();
        assert_eq!(
            batch[0].meta(meta::PATH),
            Some(path.display().to_string().as_str())
        );
    }
}

#[cfg(feature = "memory")]
mod memory {
    use super::*;
    use ergon_connectors::memory::MemoryKind;

    #[test]
    fn the_memory_kind_has_no_keys() {
        let issue = configure_err(&MemoryKind, serde_json::json!({ "capacity": 10 }));
        assert_eq!(issue.path, "capacity");
        assert!(
            issue.message.contains("unknown field `capacity`"),
            "{issue}"
        );
        assert!(
            MemoryKind
                .configure(serde_json::json!({}), &env(Path::new(".")))
                .is_ok()
        );
    }
}
