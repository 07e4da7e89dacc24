//! The connection pool of one queue, with its statements and its name for errors; what
//! the connector and the queue administration both open.

use std::sync::Arc;

use deadpool_postgres::Pool;

use ergon_core::TaskError;
use ergon_services::postgres::connect;

use super::config::PostgresConfig;
use super::schema::{self, Statements};

/// A pool on the queue's database, its tables created.
pub(super) struct Database {
    pool: Pool,
    /// The connection settings (the listener opens its own connection with them).
    pub config: tokio_postgres::Config,
    /// The statements on the queue's schema.
    pub sql: Statements,
    /// The queue's name (the `queue` column).
    pub queue: String,
    /// The channel dispatches notify.
    pub channel: String,
    /// `postgres queue NAME (postgres://user@host:port/db, schema S)`: what errors name.
    pub place: Arc<str>,
}

impl Database {
    /// Connects with at most `pool_size` connections and creates the schema and tables
    /// when missing.
    ///
    /// # Errors
    ///
    /// A malformed URL (non-retryable), or a database that cannot be reached or whose
    /// tables cannot be created (retryable: it may be starting).
    pub async fn open(
        config: &PostgresConfig,
        queue: &str,
        pool_size: usize,
    ) -> Result<Self, TaskError> {
        let pg = connect::settings(config.url.expose(), &format!("ergon queue {queue}")).map_err(
            |message| {
                TaskError::system(format!("postgres queue `{queue}`: url {message}"))
                    .non_retryable()
            },
        )?;
        let place: Arc<str> = format!(
            "postgres queue `{queue}` ({}, schema {})",
            connect::describe(&pg),
            config.schema
        )
        .into();
        let pool = connect::pool(&pg, pool_size).map_err(|err| {
            TaskError::system(format!("{place}: cannot build a connection pool"))
                .with_source(err)
                .non_retryable()
        })?;
        let database = Self {
            pool,
            config: pg,
            sql: Statements::new(&config.schema),
            queue: queue.to_owned(),
            channel: schema::channel(&config.schema),
            place,
        };
        let mut client = database.client().await?;
        schema::create(&mut client, &config.schema)
            .await
            .map_err(|err| database.fail("cannot create the queue's tables", err))?;
        Ok(database)
    }

    /// A connection from the pool.
    ///
    /// # Errors
    ///
    /// None is free and a new one cannot be opened.
    pub async fn client(&self) -> Result<deadpool_postgres::Client, TaskError> {
        self.pool.get().await.map_err(|err| {
            TaskError::system(format!("{}: cannot connect", self.place)).with_source(err)
        })
    }

    /// A retryable system error: `what` failed here because of `err`.
    pub fn fail(&self, what: &str, err: tokio_postgres::Error) -> TaskError {
        TaskError::system(format!("{}: {what}", self.place)).with_source(err)
    }

    /// Runs the statement `sql` (prepared once per connection) with `params`, returning
    /// its rows.
    ///
    /// # Errors
    ///
    /// No connection, or the statement failed (`what` says what it was doing).
    pub async fn query(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, TaskError> {
        let client = self.client().await?;
        let run = async {
            let statement = client.prepare_cached(sql).await?;
            client.query(&statement, params).await
        };
        run.await.map_err(|err| self.fail(what, err))
    }

    /// Runs the statement `sql` with `params`, returning how many rows it changed.
    ///
    /// # Errors
    ///
    /// As [`Database::query`].
    pub async fn execute(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, TaskError> {
        let client = self.client().await?;
        let run = async {
            let statement = client.prepare_cached(sql).await?;
            client.execute(&statement, params).await
        };
        run.await.map_err(|err| self.fail(what, err))
    }
}

/// Whether `err` says the database is out of reach for now rather than that a statement
/// failed: no connection could be had from the pool (the server is down or refusing), the
/// connection was closed or broke, or the server ended it (SQLSTATE class `08`,
/// connection exception, or `57P`, operator intervention: a shutdown or restart).
pub(super) fn unreachable(err: &TaskError) -> bool {
    let mut cause = std::error::Error::source(err);
    while let Some(err) = cause {
        if err.is::<deadpool_postgres::PoolError>() {
            return true;
        }
        if let Some(pg) = err.downcast_ref::<tokio_postgres::Error>() {
            let ended = pg.code().is_some_and(|code| {
                let code = code.code();
                code.starts_with("08") || code.starts_with("57P")
            });
            let broken = std::error::Error::source(pg).is_some_and(|s| s.is::<std::io::Error>());
            return pg.is_closed() || ended || broken;
        }
        cause = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use ergon_core::TaskError;

    use super::unreachable;

    #[test]
    fn a_statement_error_is_not_an_outage() {
        let err = TaskError::system("cannot claim rows").with_source(std::io::Error::other("x"));
        assert!(!unreachable(&err));
        assert!(!unreachable(&TaskError::system("no cause")));
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_outage() {
        // Nothing listens on port 1 of loopback: the pool cannot open a connection.
        let config: tokio_postgres::Config =
            "postgres://postgres@127.0.0.1:1/test".parse().unwrap();
        let pool = ergon_services::postgres::connect::pool(&config, 1).unwrap();
        let err = pool
            .get()
            .await
            .map(drop)
            .map_err(|err| TaskError::system("cannot connect").with_source(err));
        assert!(unreachable(&err.unwrap_err()));
    }
}
