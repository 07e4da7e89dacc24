//! What the journal's PostgreSQL tests share: the database, a connection to it, and a
//! fresh start (the schemas a test left behind dropped).

/// The PostgreSQL the tests use (`ERGON_TEST_POSTGRES`, else the machine's own).
pub fn postgres_url() -> String {
    std::env::var("ERGON_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A connection to the tests' PostgreSQL; its driver runs in the background. Panics,
/// naming the database, when it cannot be reached.
pub async fn connect() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|err| panic!("PostgreSQL at {} is not reachable: {err}", postgres_url()));
    tokio::spawn(async move { drop(connection.await) });
    client
}

/// Drops the schemas of `test` (`{test}_{pid}`) left by runs whose process is gone, this
/// one's included: a fresh start.
pub async fn drop_schemas(admin: &tokio_postgres::Client, test: &str) {
    let schemas = admin
        .query(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)",
            &[&format!("{test}_")],
        )
        .await
        .unwrap();
    for row in schemas {
        let schema: &str = row.get(0);
        let pid = schema.rsplit('_').next().unwrap_or_default();
        let alive = pid != std::process::id().to_string()
            && std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
            admin.batch_execute(&drop).await.unwrap();
        }
    }
}
