//! `postgres`: a pooled PostgreSQL client (`tokio-postgres`, pooled by
//! `deadpool-postgres`) for lookups and writes from tasks, every call behind the service
//! [`crate::stack`].
//!
//! [`Postgres::query`], [`Postgres::query_opt`] and [`Postgres::execute`] take the SQL and
//! its parameters ([`param`]); each call takes a pooled connection, prepares the statement
//! (once per connection, then cached) and runs it, inside the stack's per-try timeout.
//! Failures become errors the stack and the step envelope can act on:
//!
//! | failure                                                         | error |
//! |-----------------------------------------------------------------|-------|
//! | no connection (refused, lost, pool exhausted past the timeout)  | retryable system error |
//! | SQLSTATE class 08 (connection), 40 (serialization failure, deadlock), 53 (resources), 57 (statement timeout, shutdown), 58; `55P03` lock not available, `55006` object in use | retryable system error |
//! | SQLSTATE class 23 (unique, foreign key, check, not-null violation), 22 (invalid value, division by zero, …) | business error (never retried) |
//! | any other SQLSTATE: 42 (syntax, undefined table or column, privilege), 28 (authentication), … | non-retryable system error |
//! | a parameter of the wrong type, `query_opt` finding several rows | non-retryable system error |
//!
//! The SQLSTATE is kept as the error's source (`TaskError::chain` shows the server's
//! message). The health check (`SELECT 1`) runs outside the stack.

mod config;
pub mod connect;
mod errors;

use std::sync::Arc;
use std::task::{Context, Poll};

use deadpool_postgres::Pool;
use futures_util::future::{BoxFuture, FutureExt as _};
use tower::ServiceExt as _;

use ergon_core::config::{ConfigEnv, ConfigIssue, ServiceKind, decode};
use ergon_core::service::{BuildContext, BuildService, ConfiguredService};
use ergon_core::{Service, TaskError};

use crate::stack::{self, CircuitBreakerLayer, Stack};

pub use config::PostgresConfig;
pub use tokio_postgres::Row;
pub use tokio_postgres::types::ToSql;

/// One parameter of a statement (`$1`, `$2`, …), owned so that a call can be retried.
pub type Param = Arc<dyn ToSql + Send + Sync>;

/// Wraps a value as a statement parameter.
///
/// # Examples
///
/// ```
/// use ergon_services::postgres::param;
///
/// let params = [param(42_i64), param("o-7".to_owned()), param(Option::<String>::None)];
/// assert_eq!(params.len(), 3);
/// ```
pub fn param<T: ToSql + Send + Sync + 'static>(value: T) -> Param {
    Arc::new(value)
}

/// The `postgres` service: reach it with `cx.service::<Postgres>("NAME")`.
///
/// # Examples
///
/// ```no_run
/// use ergon_core::{Context, TaskError};
/// use ergon_services::postgres::{Postgres, param};
///
/// # async fn enrich(cx: &Context) -> Result<(), TaskError> {
/// let db = cx.service::<Postgres>("customers")?;
/// let row = db
///     .query_opt("SELECT name FROM customers WHERE id = $1", &[param(7_i64)])
///     .await?;
/// let name: Option<String> = row.map(|row| row.get(0));
/// db.execute(
///     "INSERT INTO seen (id) VALUES ($1) ON CONFLICT DO NOTHING",
///     &[param("o-7".to_owned())],
/// )
/// .await?;
/// # let _ = name; Ok(()) }
/// ```
pub struct Postgres {
    name: Arc<str>,
    pool: Pool,
    stack: Stack<Call, Answer>,
    breaker: Option<CircuitBreakerLayer>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One call as the stack sees it (cloned for each try).
#[derive(Clone)]
struct Call {
    execute: bool,
    sql: Arc<str>,
    params: Arc<[Param]>,
}

/// What one call returns: the rows of a query, the count of an execute.
struct Answer {
    rows: Vec<Row>,
    count: u64,
}

impl Postgres {
    /// Builds the service named by `cx` from `config`: the pool (connections are opened
    /// when first needed) and the stack.
    ///
    /// # Errors
    ///
    /// A malformed URL, or a pool that cannot be built (non-retryable).
    pub fn new(config: &PostgresConfig, cx: &BuildContext) -> Result<Self, TaskError> {
        let name: Arc<str> = cx.name().into();
        let settings = connect::settings(config.url.expose(), &format!("ergon service {name}"))
            .map_err(|message| {
                TaskError::system(format!("service `{name}`: url {message}")).non_retryable()
            })?;
        let pool = connect::pool(&settings, config.pool_size).map_err(|err| {
            TaskError::system(format!("service `{name}`: cannot build a connection pool"))
                .with_source(err)
                .non_retryable()
        })?;
        let one_try = OneTry {
            pool: pool.clone(),
            name: name.clone(),
        };
        let (stack, breaker) = stack::stack(one_try, &config.stack, cx);
        Ok(Self {
            name,
            pool,
            stack,
            breaker,
        })
    }

    async fn call(&self, execute: bool, sql: &str, params: &[Param]) -> Result<Answer, TaskError> {
        let call = Call {
            execute,
            sql: sql.into(),
            params: params.into(),
        };
        self.stack.clone().oneshot(call).await
    }

    /// Runs `sql` with `params` and returns its rows.
    ///
    /// # Errors
    ///
    /// See the module docs for how failures map to errors; the stack adds timeouts, open
    /// circuits and the final error of its retries.
    pub async fn query(&self, sql: &str, params: &[Param]) -> Result<Vec<Row>, TaskError> {
        Ok(self.call(false, sql, params).await?.rows)
    }

    /// Runs `sql` with `params` and returns its one row, or `None` when there is none.
    ///
    /// # Errors
    ///
    /// As [`Postgres::query`]; more than one row is a non-retryable system error.
    pub async fn query_opt(&self, sql: &str, params: &[Param]) -> Result<Option<Row>, TaskError> {
        let mut rows = self.query(sql, params).await?;
        if rows.len() > 1 {
            return Err(TaskError::system(format!(
                "service `{}`: expected at most one row, got {}: {sql}",
                self.name,
                rows.len()
            ))
            .non_retryable());
        }
        Ok(rows.pop())
    }

    /// Runs `sql` with `params` and returns how many rows it changed.
    ///
    /// # Errors
    ///
    /// As [`Postgres::query`].
    pub async fn execute(&self, sql: &str, params: &[Param]) -> Result<u64, TaskError> {
        Ok(self.call(true, sql, params).await?.count)
    }
}

#[async_trait::async_trait]
impl Service for Postgres {
    /// Unhealthy while the circuit is open; else `SELECT 1` on a pooled connection,
    /// outside the stack.
    async fn health(&self) -> Result<(), TaskError> {
        stack::breaker::closed(self.breaker.as_ref(), &self.name)?;
        let what = format!("service `{}`: SELECT 1", self.name);
        let client = self
            .pool
            .get()
            .await
            .map_err(|err| TaskError::system(what.clone()).with_source(err))?;
        client
            .simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(|err| errors::classify(&what, err))
    }

    /// Closes the pool: its idle connections now, the others when they are returned.
    async fn close(&self) -> Result<(), TaskError> {
        self.pool.close();
        Ok(())
    }
}

/// One try of a call: the innermost service of the stack.
#[derive(Clone)]
struct OneTry {
    pool: Pool,
    name: Arc<str>,
}

impl tower::Service<Call> for OneTry {
    type Response = Answer;
    type Error = TaskError;
    type Future = BoxFuture<'static, Result<Answer, TaskError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), TaskError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let (pool, name) = (self.pool.clone(), self.name.clone());
        async move {
            let what = format!("service `{name}`: {}", call.sql);
            let client = pool.get().await.map_err(|err| {
                TaskError::system(format!("service `{name}`: cannot connect")).with_source(err)
            })?;
            let params: Vec<&(dyn ToSql + Sync)> = call
                .params
                .iter()
                .map(|param| param.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let run = async {
                let statement = client.prepare_cached(&call.sql).await?;
                if call.execute {
                    let count = client.execute(&statement, &params).await?;
                    Ok(Answer {
                        rows: Vec::new(),
                        count,
                    })
                } else {
                    let rows = client.query(&statement, &params).await?;
                    let count = rows.len() as u64;
                    Ok(Answer { rows, count })
                }
            };
            run.await.map_err(|err| errors::classify(&what, err))
        }
        .boxed()
    }
}

/// The `postgres` service kind.
#[derive(Debug, Default)]
pub struct PostgresKind;

impl ServiceKind for PostgresKind {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn configure(
        &self,
        table: serde_json::Value,
        _env: &ConfigEnv,
    ) -> Result<ConfiguredService, ConfigIssue> {
        let config: PostgresConfig = decode(table)?;
        config.validate()?;
        Ok(ConfiguredService::new(config))
    }
}

/// A `postgres` service is built from its config: the pool and the stack, no connection
/// yet.
impl BuildService for PostgresConfig {
    type Service = Postgres;

    async fn build(&self, cx: BuildContext) -> Result<Arc<Postgres>, TaskError> {
        Postgres::new(self, &cx).map(Arc::new)
    }
}
