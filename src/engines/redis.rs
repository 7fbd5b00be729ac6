//! The Redis connection layer: one multiplexed `ConnectionManager` per (URL, options) and
//! per process, shared by every store that talks to Redis (sessions, operations).
//!
//! # Public API
//! - [`Redis::open`]`(url, RedisOptions)`: parses a `redis://[user:password@]host:port/db` URL
//!   (no TLS) without connecting and returns the process-wide handle for it (cheap to
//!   clone). The connection is made on first use and **rebuilt after `fork()`**.
//! - [`Redis::run`]`(Retry, |conn| async { ... })`: runs commands on the multiplexed
//!   connection (clone of a `ConnectionManager`, which reconnects by itself in the
//!   background). Connection failures (refused, reset, dropped, timed out, `LOADING`,
//!   `TRYAGAIN`) are retried with exponential backoff within [`RedisOptions::retry`]'s
//!   budget **only with [`Retry::Safe`]**, which the caller passes when running the work twice
//!   is harmless (reads, writes keyed by an idempotency id); with [`Retry::Never`] the first
//!   failure is final. Either way a connection failure ends as [`Error::Unavailable`]
//!   naming `Redis at host:port` (never the password).
//! - Any other error the server returns becomes [`Error::Engine`] with the Redis error code
//!   (`WRONGTYPE`, `ERR`, ...). Use `redis::Script` for multi-key atomic updates: it runs
//!   `EVALSHA` and reloads the script on `NOSCRIPT` (after a restart); never WATCH on the
//!   shared multiplexed connection. A `MULTI`/`EXEC` only as one atomic pipeline
//!   ([`Redis::query_pipeline`]), which goes out as one write: an atomic read of many keys
//!   without a script's cost of copying every reply through Lua.
//! - [`Redis::target`]: `host:port`, for messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ErrorKind, RedisError, ServerErrorKind};

use super::{RetryPolicy, current_pid};
use crate::errors::{Error, Result};

const ENGINE: &str = "Redis";

/// How a [`Redis`] handle connects and retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RedisOptions {
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// How long the server may take to answer one command (network partitions).
    pub response_timeout: Duration,
    /// How long connection failures are retried (with [`Retry::Safe`]) before `Unavailable`.
    pub retry: RetryPolicy,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(2),
            retry: RetryPolicy::default(),
        }
    }
}

/// Whether a call may be repeated after a connection failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Running the work twice is harmless (a read, or a write deduplicated by an id).
    Safe,
    /// The first failure is final.
    Never,
}

/// The process-wide handle for one Redis URL (cheap to clone).
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    target: String,
    options: RedisOptions,
    /// The connection of the process that made it (pid, connection).
    connection: Mutex<Option<(u32, ConnectionManager)>>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redis({})", self.inner.target)
    }
}

/// The retry loop around one attempt: `$attempt`, a future that borrows this process's
/// connection `$conn`, is retried after connection failures (see `failed`). A macro rather
/// than a function taking a closure: the future of an async closure that borrows cannot be
/// proven `Send` yet, and commits and loads run as runtime tasks.
macro_rules! with_retries {
    ($redis:expr, $retry:expr, |$conn:ident| $attempt:expr) => {{
        let redis = $redis;
        let mut backoff = redis.inner.options.retry.start();
        loop {
            let outcome = match redis.connect().await {
                Ok(mut $conn) => $attempt.await,
                Err(err) => Err(err),
            };
            match outcome {
                Ok(value) => break Ok(value),
                Err(err) => {
                    if let Err(err) = redis.failed(err, $retry, &mut backoff).await {
                        break Err(err);
                    }
                }
            }
        }
    }};
}

impl Redis {
    /// The handle for `url` with `options`: the same one for every caller in this process.
    /// Does not connect; a URL that cannot be parsed is `InvalidArgument` (password hidden).
    pub fn open(url: &str, options: RedisOptions) -> Result<Redis> {
        static HANDLES: Mutex<Option<HashMap<(String, RedisOptions), Redis>>> = Mutex::new(None);
        let mut handles = HANDLES.lock().unwrap_or_else(PoisonError::into_inner);
        let handles = handles.get_or_insert_with(HashMap::new);
        let key = (url.to_owned(), options);
        if let Some(handle) = handles.get(&key) {
            return Ok(handle.clone());
        }
        if url
            .get(..9)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("rediss://"))
        {
            return Err(Error::InvalidArgument {
                detail: format!(
                    "invalid Redis URL ({}): TLS (rediss://) is not built in; reach the server \
                     through a TLS tunnel and use redis://",
                    super::redact::redact_url(url)
                ),
            });
        }
        let client = Client::open(url).map_err(|e| Error::InvalidArgument {
            detail: format!(
                "invalid Redis URL ({}): {}",
                super::redact::redact_url(url),
                e.detail().unwrap_or("cannot parse it")
            ),
        })?;
        let target = client.get_connection_info().addr().to_string();
        let handle = Redis {
            inner: Arc::new(Inner {
                client,
                target,
                options,
                connection: Mutex::new(None),
            }),
        };
        handles.insert(key, handle.clone());
        Ok(handle)
    }

    /// `host:port` of the server.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    pub fn options(&self) -> &RedisOptions {
        &self.inner.options
    }

    /// This process's connection if one is made (no I/O).
    fn existing(&self) -> Option<ConnectionManager> {
        let mut slot = self
            .inner
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some((owner, conn)) if *owner == current_pid() => Some(conn.clone()),
            Some(_) => {
                // Inherited through fork(): its socket and tasks are the parent's.
                if let Some(inherited) = slot.take() {
                    std::mem::forget(inherited);
                }
                None
            }
            None => None,
        }
    }

    /// Drops this process's connection, so the next call makes a fresh one.
    fn forget_connection(&self) {
        let mut slot = self
            .inner
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot
            .as_ref()
            .is_some_and(|(owner, _)| *owner == current_pid())
        {
            *slot = None;
        }
    }

    async fn connect(&self) -> std::result::Result<ConnectionManager, RedisError> {
        if let Some(conn) = self.existing() {
            return Ok(conn);
        }
        let options = self.inner.options;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout))
            // Reconnection attempts the manager makes by itself once connected; our own
            // retry loop covers longer outages.
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(200));
        let conn = self
            .inner
            .client
            .get_connection_manager_with_config(config)
            .await?;
        let mut slot = self
            .inner
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Two callers may have connected at once: keep the first, so all share one.
        match slot.as_ref() {
            Some((owner, existing)) if *owner == current_pid() => Ok(existing.clone()),
            _ => {
                *slot = Some((current_pid(), conn.clone()));
                Ok(conn)
            }
        }
    }

    /// Runs `work` on this process's multiplexed connection (see the module docs).
    pub async fn run<T, F>(&self, retry: Retry, mut work: F) -> Result<T>
    where
        F: AsyncFnMut(&mut ConnectionManager) -> std::result::Result<T, RedisError>,
    {
        with_retries!(self, retry, |conn| work(&mut conn))
    }

    /// [`run`](Self::run) of one script invocation. Not generic over a closure, so its
    /// future is `Send` (futures of async closures that borrow cannot be proven `Send`
    /// yet): callers can spawn it as a task.
    pub async fn invoke<T: redis::FromRedisValue>(
        &self,
        retry: Retry,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        with_retries!(self, retry, |conn| invocation.invoke_async(&mut conn))
    }

    /// [`run`](Self::run) of one pipeline; an atomic one is `MULTI` ... `EXEC`, written to
    /// the connection as one piece, so nothing else interleaves with it. Not generic over a
    /// closure, so its future is `Send`, as [`invoke`](Self::invoke)'s.
    pub async fn query_pipeline<T: redis::FromRedisValue>(
        &self,
        retry: Retry,
        pipeline: &redis::Pipeline,
    ) -> Result<T> {
        with_retries!(self, retry, |conn| pipeline.query_async(&mut conn))
    }

    /// After a failed attempt: `Ok` once it is time to try again, or the error to give up
    /// with (not a connection failure, [`Retry::Never`], or the retry budget spent).
    async fn failed(
        &self,
        err: RedisError,
        retry: Retry,
        backoff: &mut super::Backoff,
    ) -> Result<()> {
        if !is_retryable(&err) {
            return Err(self.engine_error(&err));
        }
        if err.is_timeout() {
            // A reply that timed out may still be owed on that connection (a partition
            // swallowed it); reusing it could pair later replies with the wrong requests.
            self.forget_connection();
        }
        if retry == Retry::Never || !backoff.wait().await {
            return Err(Error::Unavailable {
                engine: ENGINE,
                target: self.inner.target.clone(),
                detail: format!(
                    "{err} (gave up after {} attempt(s) in {:.1} s)",
                    backoff.attempts().max(1),
                    backoff.elapsed().as_secs_f64()
                ),
            });
        }
        Ok(())
    }

    /// A non-retryable Redis error as the core's error, with its Redis error code.
    pub fn engine_error(&self, err: &RedisError) -> Error {
        Error::Engine {
            engine: ENGINE,
            target: self.inner.target.clone(),
            code: err.code().unwrap_or("client").to_owned(),
            detail: err.to_string(),
        }
    }
}

/// Whether a failure is the connection's (lost, refused, timed out, server loading) rather
/// than the command's.
pub fn is_retryable(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_unrecoverable_error()
        || matches!(
            err.kind(),
            ErrorKind::Server(ServerErrorKind::BusyLoading | ServerErrorKind::TryAgain)
        )
}

#[cfg(test)]
impl Redis {
    /// Deletes every key matching `pattern` (tests clean up their prefixes with it).
    pub fn delete_matching(&self, pattern: &str) {
        let _ = super::block_on(self.run(Retry::Safe, async |conn| {
            let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(conn).await?;
            if !keys.is_empty() {
                redis::cmd("DEL")
                    .arg(&keys)
                    .query_async::<i64>(conn)
                    .await?;
            }
            Ok(())
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::block_on;

    const URL: &str = "redis://127.0.0.1:6379/0";

    #[test]
    fn one_handle_per_url_and_options() {
        let a = Redis::open(URL, RedisOptions::default()).unwrap();
        let b = Redis::open(URL, RedisOptions::default()).unwrap();
        assert!(Arc::ptr_eq(&a.inner, &b.inner));
        assert_eq!(a.target(), "127.0.0.1:6379");
    }

    #[test]
    fn runs_commands_and_scripts() {
        let redis = Redis::open(URL, RedisOptions::default()).unwrap();
        let key = format!("genkit-parity-engine-test:{}", std::process::id());
        let script = redis::Script::new(
            "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])",
        );
        let got: String = block_on(redis.run(Retry::Safe, async |conn| {
            script.key(&key).arg("v1").invoke_async(conn).await
        }))
        .unwrap();
        assert_eq!(got, "v1");
        let err = block_on(redis.run(Retry::Safe, async |conn| {
            redis::cmd("LPUSH")
                .arg(&key)
                .arg("x")
                .query_async::<i64>(conn)
                .await
        }))
        .unwrap_err();
        match err {
            Error::Engine { code, .. } => assert_eq!(code, "WRONGTYPE"),
            other => panic!("expected an engine error, got {other}"),
        }
        let _: i64 = block_on(redis.run(Retry::Safe, async |conn| {
            redis::cmd("DEL").arg(&key).query_async(conn).await
        }))
        .unwrap();
    }

    #[test]
    fn unreachable_server_is_unavailable_naming_host_and_port() {
        let redis = Redis::open(
            "redis://:hunter2@127.0.0.1:1/0",
            RedisOptions {
                retry: RetryPolicy::with_budget(Duration::from_millis(300)),
                ..RedisOptions::default()
            },
        )
        .unwrap();
        let started = std::time::Instant::now();
        let err = block_on(redis.run(Retry::Safe, async |conn| {
            redis::cmd("PING").query_async::<String>(conn).await
        }))
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Unavailable { .. }), "{text}");
        assert!(text.contains("Redis at 127.0.0.1:1"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn bad_urls_are_rejected_without_echoing_the_password() {
        let err = Redis::open("http://:hunter2@x/0", RedisOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid Redis URL"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = Redis::open("rediss://:hunter2@h:6380/0", RedisOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("TLS (rediss://) is not built in"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
