//! The PostgreSQL connection layer: one `deadpool-postgres` pool per (DSN, options) and per
//! process, shared by every store that talks to PostgreSQL (sessions, operations, vectors).
//!
//! # Public API
//! - [`Postgres::open`]`(dsn, PgOptions)`: parses the DSN (URL `postgresql://user@host:5432/db`
//!   or `key=value` form; no TLS) without connecting, and returns the process-wide handle for
//!   that DSN and options (cheap to clone). The pool is built lazily and **rebuilt after
//!   `fork()`**: a child never touches its parent's sockets.
//! - [`Postgres::transaction`]`(|tx| async { ... })` / [`Postgres::transaction_with`]: runs the
//!   closure in one transaction (READ COMMITTED by default) and commits it. Retryable failures
//!   (connection refused/reset/closed, `57P01` admin shutdown, `57P02`, `57P03` cannot connect
//!   now, class `08`, `53300` too many connections, `40001` serialization failure, `40P01`
//!   deadlock, a timed-out attempt) roll the attempt back and run the closure again with
//!   exponential backoff, within [`PgOptions::retry`]'s budget. **The closure may therefore
//!   run more than once, and a commit whose outcome was lost with the connection is retried:
//!   make the transaction idempotent** (e.g. keyed by a turn id).
//! - [`Postgres::run`]`(|client| async { ... })`: the same retry loop without a transaction,
//!   for reads and single statements.
//! - [`Postgres::query_one_cached`]`(sql, params)` / [`Postgres::execute_cached`]: `run` of one
//!   cached statement (one row back / rows affected) whose future is `Send`, for work spawned
//!   as a runtime task (`ensure_schema`'s is too).
//! - [`Postgres::fold_rows`]`(sql, params, init, fold)`: one statement's rows folded as they
//!   arrive, with the same retries; its future is `Send` too.
//! - [`Postgres::ensure_schema`]`(lock_key, ddl)`: runs idempotent DDL under
//!   `pg_advisory_xact_lock(lock_key)`, so workers starting together do not race on
//!   `CREATE ... IF NOT EXISTS`.
//! - Errors: closures return [`TxError`] (a `tokio_postgres::Error` via `?`, or a domain
//!   [`Error`] via `?` that aborts without retry). Retryable failures that outlast the budget
//!   become [`Error::Unavailable`] naming `PostgreSQL at host:port` (never the password);
//!   any other database error becomes [`Error::Engine`] carrying its SQLSTATE as `code`.
//! - [`Postgres::target`]: `host:port`, for messages.
//!
//! Queries should use `prepare_cached` (statements are cached per pooled connection).
//! Every attempt is bounded by [`PgOptions::attempt_timeout`]; a connection whose attempt
//! timed out is detached from the pool (it may be half-open after a partition).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use futures_core::Stream;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Config, IsolationLevel, NoTls, Row};

pub use deadpool_postgres::{ClientWrapper as Client, Transaction};

use super::redact::redact_dsn;
use super::{RetryPolicy, current_pid};
use crate::errors::{Error, Result};

const ENGINE: &str = "PostgreSQL";

/// How a [`Postgres`] handle connects and retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PgOptions {
    /// Most connections this process keeps open to the server.
    pub pool_size: usize,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// How long one attempt of a transaction or `run` may take (network partitions).
    pub attempt_timeout: Duration,
    /// How long retryable failures are retried before `Unavailable`.
    pub retry: RetryPolicy,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 8,
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}

/// A failure inside a transaction closure: a database error (retried when retryable), or a
/// domain error that aborts the transaction as it is.
#[derive(Debug)]
pub enum TxError {
    Postgres(tokio_postgres::Error),
    Fail(Error),
}

impl From<tokio_postgres::Error> for TxError {
    fn from(err: tokio_postgres::Error) -> Self {
        TxError::Postgres(err)
    }
}

impl From<Error> for TxError {
    fn from(err: Error) -> Self {
        TxError::Fail(err)
    }
}

/// The process-wide handle for one DSN (cheap to clone).
#[derive(Clone)]
pub struct Postgres {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    target: String,
    options: PgOptions,
    /// The pool of the process that built it (pid, pool).
    pool: Mutex<Option<(u32, Pool)>>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Postgres({})", self.inner.target)
    }
}

/// One attempt's failure, sorted for the retry loop.
enum Attempt {
    Retry(String),
    Fatal(Error),
}

/// The retry loop around one attempt: `$attempt`, a future that borrows the checked-out
/// connection `$client`, runs under the attempt timeout; retryable failures are retried with
/// backoff (see `judge` and `again_after`). A macro rather than a function taking a closure:
/// the future of an async closure that borrows cannot be proven `Send` yet, and the
/// statements spawned as runtime tasks need that.
macro_rules! with_retries {
    ($pg:expr, |$client:ident| $attempt:expr) => {{
        let pg = $pg;
        let mut backoff = pg.inner.options.retry.start();
        loop {
            let failure = match pg.checkout().await {
                Err(failure) => failure,
                #[allow(unused_mut)]
                Ok(mut $client) => {
                    let outcome =
                        tokio::time::timeout(pg.inner.options.attempt_timeout, $attempt).await;
                    match pg.judge(outcome, $client) {
                        Ok(value) => break Ok(value),
                        Err(failure) => failure,
                    }
                }
            };
            if let Err(err) = pg.again_after(failure, &mut backoff).await {
                break Err(err);
            }
        }
    }};
}

/// The most connections one pool may hold.
pub const MAX_POOL_SIZE: usize = 10_000;

impl Postgres {
    /// The handle for `dsn` with `options`: the same one for every caller in this process.
    /// Does not connect; a DSN that cannot be parsed is `InvalidArgument` (without echoing it).
    pub fn open(dsn: &str, options: PgOptions) -> Result<Postgres> {
        // deadpool sizes its queue and semaphore by it up front: a huge one aborts.
        if !(1..=MAX_POOL_SIZE).contains(&options.pool_size) {
            return Err(Error::InvalidArgument {
                detail: format!(
                    "pool_size must be from 1 to {MAX_POOL_SIZE} connections, not {}",
                    options.pool_size
                ),
            });
        }
        static HANDLES: Mutex<Option<HashMap<(String, PgOptions), Postgres>>> = Mutex::new(None);
        let mut handles = HANDLES.lock().unwrap_or_else(PoisonError::into_inner);
        let handles = handles.get_or_insert_with(HashMap::new);
        let key = (dsn.to_owned(), options);
        if let Some(handle) = handles.get(&key) {
            return Ok(handle.clone());
        }
        let handle = Postgres::build(dsn, options)?;
        handles.insert(key, handle.clone());
        Ok(handle)
    }

    fn build(dsn: &str, options: PgOptions) -> Result<Postgres> {
        let mut config = Config::from_str(dsn).map_err(|e| Error::InvalidArgument {
            detail: format!("invalid PostgreSQL DSN ({}): {e}", redact_dsn(dsn)),
        })?;
        let target = target_of(&config)?;
        config
            .connect_timeout(options.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(15))
            .tcp_user_timeout(options.attempt_timeout);
        if config.get_application_name().is_none() {
            config.application_name("genkit-parity");
        }
        Ok(Postgres {
            inner: Arc::new(Inner {
                config,
                target,
                options,
                pool: Mutex::new(None),
            }),
        })
    }

    /// `host:port` of the server (the first one, when the DSN lists several).
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    pub fn options(&self) -> &PgOptions {
        &self.inner.options
    }

    /// This process's pool, built on first use and again in a forked child.
    fn pool(&self) -> Result<Pool> {
        let mut slot = self
            .inner
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let pid = current_pid();
        if let Some((owner, pool)) = slot.as_ref()
            && *owner == pid
        {
            return Ok(pool.clone());
        }
        if let Some((_, inherited)) = slot.take() {
            // Its connections belong to the parent (their tasks ran on a runtime that did not
            // survive the fork); dropping them would abort tasks of a dead runtime.
            std::mem::forget(inherited);
        }
        let manager = Manager::from_config(
            self.inner.config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let timeout = Some(self.inner.options.connect_timeout);
        let pool = Pool::builder(manager)
            .max_size(self.inner.options.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the PostgreSQL pool: {e}")))?;
        *slot = Some((pid, pool.clone()));
        Ok(pool)
    }

    /// Runs `work` in a READ COMMITTED transaction and commits it, retrying retryable
    /// failures (see the module docs: `work` may run more than once).
    pub async fn transaction<T, F>(&self, work: F) -> Result<T>
    where
        F: AsyncFnMut(&Transaction<'_>) -> std::result::Result<T, TxError>,
    {
        self.transaction_with(IsolationLevel::ReadCommitted, false, work)
            .await
    }

    /// [`transaction`](Self::transaction) at `isolation`, read-only when `read_only`.
    pub async fn transaction_with<T, F>(
        &self,
        isolation: IsolationLevel,
        read_only: bool,
        mut work: F,
    ) -> Result<T>
    where
        F: AsyncFnMut(&Transaction<'_>) -> std::result::Result<T, TxError>,
    {
        self.retrying(async |client: &mut Object| {
            let tx = client
                .build_transaction()
                .isolation_level(isolation)
                .read_only(read_only)
                .start()
                .await?;
            let value = work(&tx).await?;
            tx.commit().await?;
            Ok(value)
        })
        .await
    }

    /// Runs `work` on a pooled connection outside a transaction, with the same retries.
    pub async fn run<T, F>(&self, mut work: F) -> Result<T>
    where
        F: AsyncFnMut(&Client) -> std::result::Result<T, TxError>,
    {
        self.retrying(async |client: &mut Object| work(client).await)
            .await
    }

    /// Runs idempotent DDL (`CREATE ... IF NOT EXISTS`) under a transaction-scoped advisory
    /// lock, so that workers starting at the same time take turns instead of racing.
    pub async fn ensure_schema(&self, lock_key: i64, ddl: &str) -> Result<()> {
        with_retries!(self, |client| async {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key])
                .await?;
            tx.batch_execute(ddl).await?;
            Ok(tx.commit().await?)
        })
    }

    /// The retry loop of `transaction` and `run`.
    async fn retrying<T, F>(&self, mut attempt: F) -> Result<T>
    where
        F: AsyncFnMut(&mut Object) -> std::result::Result<T, TxError>,
    {
        with_retries!(self, |client| attempt(&mut client))
    }

    /// One cached statement that returns exactly one row, with `run`'s retries. Not generic
    /// over a closure, so its future is `Send` (see [`with_retries`]): callers can spawn it
    /// as a runtime task.
    pub async fn query_one_cached(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        with_retries!(self, |client| async {
            let statement = client.prepare_cached(sql).await?;
            Ok(client.query_one(&statement, params).await?)
        })
    }

    /// [`query_one_cached`](Self::query_one_cached) for a statement that returns no rows:
    /// how many rows it affected.
    pub async fn execute_cached(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        with_retries!(self, |client| async {
            let statement = client.prepare_cached(sql).await?;
            Ok(client.execute(&statement, params).await?)
        })
    }

    /// Streams the rows of one statement into `fold` as they arrive, with [`run`]'s retries
    /// and timeout (a retried attempt starts again from `init()`). Unlike `run` it takes no
    /// async closure, so its future is `Send` and can be a task on the runtime: no
    /// blocking-pool thread then parks in `block_on` while the rows arrive, and each batch
    /// of rows goes from the connection task to the fold without waking another thread (a
    /// 10k-row read was woken ~150 times that way).
    ///
    /// [`run`]: Self::run
    pub async fn fold_rows<S>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        init: impl Fn() -> S,
        mut fold: impl FnMut(&mut S, &Row),
    ) -> Result<S> {
        with_retries!(self, |client| async {
            let statement = client.prepare_cached(sql).await?;
            let rows = client.query_raw(&statement, params.iter().copied()).await?;
            let mut rows = std::pin::pin!(rows);
            let mut state = init();
            while let Some(row) = std::future::poll_fn(|cx| rows.as_mut().poll_next(cx)).await {
                fold(&mut state, &row?);
            }
            Ok(state)
        })
    }

    /// What one attempt on `client` came to: its value, or why it failed. A connection whose
    /// attempt timed out never goes back to the pool (it may be half-open after a partition).
    fn judge<T>(
        &self,
        outcome: std::result::Result<std::result::Result<T, TxError>, tokio::time::error::Elapsed>,
        client: Object,
    ) -> std::result::Result<T, Attempt> {
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(TxError::Fail(err))) => Err(Attempt::Fatal(err)),
            Ok(Err(TxError::Postgres(err))) => Err(self.classify(&err)),
            Err(_elapsed) => {
                drop(Object::take(client));
                Err(Attempt::Retry(format!(
                    "no answer within {:.1} s",
                    self.inner.options.attempt_timeout.as_secs_f64()
                )))
            }
        }
    }

    /// After a failed attempt: `Ok` once it is time to try again, or the error to give up
    /// with (not retryable, or the retry budget spent).
    async fn again_after(&self, failure: Attempt, backoff: &mut super::Backoff) -> Result<()> {
        match failure {
            Attempt::Fatal(err) => Err(err),
            Attempt::Retry(detail) => {
                if backoff.wait().await {
                    Ok(())
                } else {
                    Err(self.unavailable(format!(
                        "{detail} (gave up after {} attempt(s) in {:.1} s)",
                        backoff.attempts(),
                        backoff.elapsed().as_secs_f64()
                    )))
                }
            }
        }
    }

    async fn checkout(&self) -> std::result::Result<Object, Attempt> {
        let pool = self.pool().map_err(Attempt::Fatal)?;
        pool.get().await.map_err(|err| match err {
            PoolError::Timeout(kind) => Attempt::Retry(format!("connection timed out ({kind:?})")),
            PoolError::Backend(err) => self.classify(&err),
            other => Attempt::Fatal(Error::Internal(format!("PostgreSQL pool failed: {other}"))),
        })
    }

    fn classify(&self, err: &tokio_postgres::Error) -> Attempt {
        if is_retryable(err) {
            Attempt::Retry(describe(err))
        } else {
            Attempt::Fatal(self.engine_error(err))
        }
    }

    /// A non-retryable database error as the core's error, with its SQLSTATE.
    pub fn engine_error(&self, err: &tokio_postgres::Error) -> Error {
        Error::Engine {
            engine: ENGINE,
            target: self.inner.target.clone(),
            code: err
                .code()
                .map_or_else(|| "client".to_owned(), |c| c.code().to_owned()),
            detail: describe(err),
        }
    }

    fn unavailable(&self, detail: String) -> Error {
        Error::Unavailable {
            engine: ENGINE,
            target: self.inner.target.clone(),
            detail,
        }
    }
}

/// Whether a failure is transient: the server restarting, the connection lost or refused,
/// or a concurrency abort that a fresh attempt resolves.
pub fn is_retryable(err: &tokio_postgres::Error) -> bool {
    match err.code() {
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                ]
                .contains(code)
        }
        // No SQLSTATE: the connection itself failed (closed, reset, refused, timed out).
        None => {
            err.is_closed()
                || std::error::Error::source(err).is_some_and(|s| s.is::<std::io::Error>())
                || err.to_string().contains("error connecting")
        }
    }
}

/// A readable one-line description: the server's message and SQLSTATE, or the client's.
fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => err.to_string(),
    }
}

fn target_of(config: &Config) -> Result<String> {
    let port = config.get_ports().first().copied().unwrap_or(5432);
    match config.get_hosts().first() {
        Some(Host::Tcp(host)) if host.contains(':') => Ok(format!("[{host}]:{port}")),
        Some(Host::Tcp(host)) => Ok(format!("{host}:{port}")),
        Some(Host::Unix(path)) => Ok(format!("{}:{port}", path.display())),
        None => Err(Error::InvalidArgument {
            detail: "the PostgreSQL DSN names no host (add host=... or postgresql://host/...)"
                .into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::block_on;

    /// The machine's shared server (see the Makefile's `services` target).
    const DSN: &str = "postgresql://postgres@127.0.0.1:5432/postgres";

    #[test]
    fn one_handle_per_dsn_and_options() {
        let a = Postgres::open(DSN, PgOptions::default()).unwrap();
        let b = Postgres::open(DSN, PgOptions::default()).unwrap();
        assert!(Arc::ptr_eq(&a.inner, &b.inner));
        let c = Postgres::open(
            DSN,
            PgOptions {
                pool_size: 2,
                ..PgOptions::default()
            },
        )
        .unwrap();
        assert!(!Arc::ptr_eq(&a.inner, &c.inner));
        assert_eq!(a.target(), "127.0.0.1:5432");
    }

    #[test]
    fn bad_dsns_are_rejected_without_echoing_the_password() {
        let err = Postgres::open("postgresql://u:hunter2@h:notaport/db", PgOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid PostgreSQL DSN"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = Postgres::open("dbname=x", PgOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("names no host"), "{err}");
    }

    #[test]
    fn unreachable_server_is_unavailable_naming_host_and_port() {
        // Port 1 on loopback: refused at once.
        let pg = Postgres::open(
            "postgresql://u:hunter2@127.0.0.1:1/db",
            PgOptions {
                retry: RetryPolicy::with_budget(Duration::from_millis(300)),
                ..PgOptions::default()
            },
        )
        .unwrap();
        let started = std::time::Instant::now();
        let err =
            block_on(pg.run(async |c| Ok(c.query_one("SELECT 1", &[]).await?.get::<_, i32>(0))))
                .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Unavailable { .. }), "{text}");
        assert!(text.contains("127.0.0.1:1"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn runs_transactions_and_maps_sql_errors_to_their_sqlstate() {
        let pg = Postgres::open(DSN, PgOptions::default()).unwrap();
        let n: i64 =
            block_on(pg.transaction(async |tx| {
                Ok(tx.query_one("SELECT 41::bigint + 1", &[]).await?.get(0))
            }))
            .unwrap();
        assert_eq!(n, 42);
        let err = block_on(pg.run(async |c| {
            c.execute("SELECT * FROM no_such_table_genkit_parity", &[])
                .await?;
            Ok(())
        }))
        .unwrap_err();
        match err {
            Error::Engine { code, target, .. } => {
                assert_eq!(code, "42P01");
                assert_eq!(target, "127.0.0.1:5432");
            }
            other => panic!("expected an engine error, got {other}"),
        }
    }

    #[test]
    fn domain_errors_abort_without_retry() {
        let pg = Postgres::open(DSN, PgOptions::default()).unwrap();
        let mut calls = 0;
        let err = block_on(
            pg.transaction(async |_tx| -> std::result::Result<(), TxError> {
                calls += 1;
                Err(Error::NotFound {
                    detail: "nope".into(),
                }
                .into())
            }),
        )
        .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }));
        assert_eq!(calls, 1);
    }

    #[test]
    fn concurrent_schema_creation_does_not_race() {
        let pg = Postgres::open(DSN, PgOptions::default()).unwrap();
        let table = format!("genkit_parity_engine_test_{}", std::process::id());
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {table} (id int PRIMARY KEY);
             CREATE INDEX IF NOT EXISTS {table}_idx ON {table} (id);"
        );
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| block_on(pg.ensure_schema(0x6765_6e6b, &ddl))))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for result in results {
            result.unwrap();
        }
        block_on(pg.run(async |c| {
            c.batch_execute(&format!("DROP TABLE {table}")).await?;
            Ok(())
        }))
        .unwrap();
    }
}
