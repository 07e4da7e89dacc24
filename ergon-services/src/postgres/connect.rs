//! Connecting to PostgreSQL: what the `postgres` service, the `postgres` connector
//! (`ergon-connectors`) and the PostgreSQL journal (`ergon-journal`) share, so that each
//! reads its URL, names its database in errors and pools its connections the same way.

use std::time::Duration;

use deadpool_postgres::{BuildError, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// How long a connection attempt may take when the URL does not say
/// (`connect_timeout`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection settings of `url` (`postgres://…` or libpq's `key=value` form), with
/// `application` as the application name (`pg_stat_activity` tells who holds a
/// connection) and [`CONNECT_TIMEOUT`] unless the URL sets one.
///
/// # Errors
///
/// `url` is not a PostgreSQL URL; the message does not repeat it (it may hold a password).
///
/// # Examples
///
/// ```
/// use ergon_services::postgres::connect::{describe, settings};
///
/// let pg = settings("postgres://app:s3cr3t@db:5433/orders", "ergon queue orders").unwrap();
/// assert_eq!(describe(&pg), "postgres://app@db:5433/orders");
/// assert!(settings("mysql://db", "x").unwrap_err().starts_with("is not a PostgreSQL URL"));
/// ```
pub fn settings(url: &str, application: &str) -> Result<tokio_postgres::Config, String> {
    let mut settings: tokio_postgres::Config = url
        .parse()
        .map_err(|err| format!("is not a PostgreSQL URL: {err}"))?;
    settings.application_name(application);
    if settings.get_connect_timeout().is_none() {
        settings.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(settings)
}

/// A pool of at most `size` connections with `settings` (opened when first needed,
/// checked cheaply when reused).
///
/// # Errors
///
/// The pool cannot be built (no runtime).
pub fn pool(settings: &tokio_postgres::Config, size: usize) -> Result<Pool, BuildError> {
    let manager = Manager::from_config(
        settings.clone(),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager).max_size(size).build()
}

/// `postgres://user@host:port/database`: how errors and logs name a database, never with
/// its password.
pub fn describe(settings: &tokio_postgres::Config) -> String {
    let host = settings.get_hosts().first().map_or_else(
        || "localhost".to_owned(),
        |host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        },
    );
    let port = settings.get_ports().first().copied().unwrap_or(5432);
    let user = settings
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let database = settings
        .get_dbname()
        .or(settings.get_user())
        .unwrap_or("postgres");
    format!("postgres://{user}{host}:{port}/{database}")
}
