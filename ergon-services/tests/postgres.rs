//! The `postgres` service against the local PostgreSQL (`ERGON_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`): queries, executes, and how failures map to
//! error categories.

use std::sync::Arc;

use ergon_core::config::{ConfigEnv, ServiceKind};
use ergon_core::service::BuildContext;
use ergon_core::{Category, Context, Service};
use ergon_services::postgres::{Postgres, PostgresKind, param};
use serde_json::json;

fn url() -> String {
    std::env::var("ERGON_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn env() -> ConfigEnv {
    ConfigEnv {
        name: "db".into(),
        base_dir: ".".into(),
    }
}

/// The service as a task reaches it: configured from its table, built, looked up by type.
async fn service(table: serde_json::Value) -> Arc<Postgres> {
    let configured = PostgresKind.configure(table, &env()).unwrap();
    let handle = configured.build(BuildContext::new("db")).await.unwrap();
    let cx = Context::builder("t").service_handle("db", handle).build();
    cx.service::<Postgres>("db").unwrap()
}

/// A table no other test (or run) uses.
fn table_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "ergon_svc_test_{}_{}",
        std::process::id(),
        nanos % 1_000_000_007
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_and_executes_run_through_the_pool() {
    let db = service(json!({ "url": url(), "pool_size": 2 })).await;
    db.health().await.unwrap();
    let table = table_name();
    db.execute(
        &format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT NOT NULL)"),
        &[],
    )
    .await
    .unwrap();
    let insert = format!("INSERT INTO {table} (id, name) VALUES ($1, $2), ($3, $4)");
    let added = db
        .execute(
            &insert,
            &[
                param(1_i64),
                param("ada".to_owned()),
                param(2_i64),
                param("grace".to_owned()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(added, 2);

    let rows = db
        .query(&format!("SELECT id, name FROM {table} ORDER BY id"), &[])
        .await
        .unwrap();
    let got: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, [(1, "ada".to_owned()), (2, "grace".to_owned())]);

    let select_one = format!("SELECT name FROM {table} WHERE id = $1");
    let one = db.query_opt(&select_one, &[param(2_i64)]).await.unwrap();
    assert_eq!(one.map(|r| r.get::<_, String>(0)).as_deref(), Some("grace"));
    assert!(
        db.query_opt(&select_one, &[param(3_i64)])
            .await
            .unwrap()
            .is_none()
    );
    let many = db
        .query_opt(&format!("SELECT name FROM {table}"), &[])
        .await
        .unwrap_err();
    assert!(!many.is_retryable(), "{many}");

    db.execute(&format!("DROP TABLE {table}"), &[])
        .await
        .unwrap();
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_errors_map_to_the_documented_categories() {
    let db = service(json!({ "url": url() })).await;
    let table = table_name();
    db.execute(
        &format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY)"),
        &[],
    )
    .await
    .unwrap();
    let insert = format!("INSERT INTO {table} (id) VALUES ($1)");
    db.execute(&insert, &[param(1_i64)]).await.unwrap();

    // A constraint violation is the data's fault: business, never retried.
    let duplicate = db.execute(&insert, &[param(1_i64)]).await.unwrap_err();
    assert_eq!(duplicate.category(), Category::Business, "{duplicate}");
    assert!(
        duplicate.chain().to_string().contains("duplicate key"),
        "{}",
        duplicate.chain()
    );
    // So is a value the column cannot take.
    let bad_value = db
        .query("SELECT $1::text::bigint", &[param("seven".to_owned())])
        .await
        .unwrap_err();
    assert_eq!(bad_value.category(), Category::Business, "{bad_value}");

    // A statement that cannot run: a system error that retrying cannot fix.
    let syntax = db.query("SELEC 1", &[]).await.unwrap_err();
    assert_eq!(syntax.category(), Category::System, "{syntax}");
    assert!(!syntax.is_retryable(), "{syntax}");
    let missing = db
        .query("SELECT * FROM ergon_no_such_table", &[])
        .await
        .unwrap_err();
    assert!(!missing.is_retryable(), "{missing}");

    // A parameter of the wrong type: the call's bug, not retried.
    let wrong_type = db
        .execute(&insert, &[param("one".to_owned())])
        .await
        .unwrap_err();
    assert!(!wrong_type.is_retryable(), "{wrong_type}");

    db.execute(&format!("DROP TABLE {table}"), &[])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_a_retryable_system_error() {
    let db = service(json!({
        "url": "postgres://app:s3cr3t@127.0.0.1:1/nowhere?connect_timeout=2",
        "stack": { "timeout": "5s" },
    }))
    .await;
    let err = db.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(err.category(), Category::System, "{err}");
    assert!(err.is_retryable(), "{err}");
    assert!(
        !err.chain().to_string().contains("s3cr3t"),
        "{}",
        err.chain()
    );
    assert!(db.health().await.is_err());
}

#[test]
fn bad_config_names_the_key() {
    let issue = |table| PostgresKind.configure(table, &env()).err().unwrap().path;
    assert_eq!(issue(json!({})), "url");
    assert_eq!(issue(json!({ "url": "mysql://x y" })), "url");
    assert_eq!(issue(json!({ "url": url(), "pool_size": 0 })), "pool_size");
    assert_eq!(issue(json!({ "url": url(), "pool": 4 })), "pool");
    assert_eq!(
        issue(json!({ "url": url(), "stack": { "timeout": "0s" } })),
        "stack.timeout"
    );
}
