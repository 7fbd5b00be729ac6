//! Connection layers to external engines, shared by every store that uses them.
//!
//! One module per engine ([`postgres`], [`redis`]), each owning, per URL and per process:
//! the pool or multiplexed connection, the retry/backoff policy, fork safety (clients are
//! rebuilt when `std::process::id()` changes, never reused across `fork()`), and the
//! mapping of engine errors to the core's [`Error`](crate::errors::Error)
//! (`Unavailable` naming `host:port`, `Engine` carrying the engine's error code).
//! Nothing here knows about sessions, operations or vectors.
//!
//! Stores call these layers from blocking code (the session store trait blocks; the Python
//! binding runs it on tokio's blocking pool) through [`block_on`], or from a task on the
//! runtime (a Redis session commit) by awaiting them directly.

pub mod postgres;
pub mod redact;
pub mod redis;

use std::future::Future;
use std::time::{Duration, Instant};

use crate::errors::{Error, Result};

/// Drives `future` to completion on the process's runtime from a thread that is not
/// itself running async code (a blocking-pool worker, a test, a plain thread).
pub fn block_on<F: Future>(future: F) -> F::Output {
    crate::runtime::runtime().block_on(future)
}

/// How long and how often a failing call is retried: exponential backoff with jitter,
/// from `initial` doubling up to `max_delay`, for at most `budget` in total.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RetryPolicy {
    pub budget: Duration,
    pub initial: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 s in total: PostgreSQL accepts connections again ~0.2 s after a restart begins and
    /// a Redis restart takes ~15 ms, so this rides out both with room to spare.
    fn default() -> Self {
        RetryPolicy {
            budget: Duration::from_secs(5),
            initial: Duration::from_millis(20),
            max_delay: Duration::from_millis(500),
        }
    }
}

/// A `ttl` or `lease` option in seconds: positive and below 1e9 (about 31 years; beyond
/// that a millisecond expiry no longer fits every engine's integer). `what` names the option.
pub fn positive_seconds(what: &str, seconds: f64) -> Result<Duration> {
    if seconds.is_finite() && seconds > 0.0 && seconds < 1e9 {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(Error::InvalidArgument {
            detail: format!(
                "{what} must be a positive number of seconds below 1e9 (about 31 years), got {seconds}"
            ),
        })
    }
}

impl RetryPolicy {
    /// A store's `timeout` option: retry for that many seconds, 0 to 3600.
    pub fn from_timeout(timeout: f64) -> Result<Self> {
        if timeout.is_finite() && (0.0..=3600.0).contains(&timeout) {
            Ok(RetryPolicy::with_budget(Duration::from_secs_f64(timeout)))
        } else {
            Err(Error::InvalidArgument {
                detail: format!("timeout must be between 0 and 3600 seconds, got {timeout}"),
            })
        }
    }

    /// No retries at all: the first failure is final.
    pub fn none() -> Self {
        RetryPolicy {
            budget: Duration::ZERO,
            ..RetryPolicy::default()
        }
    }

    /// A policy retrying for `budget` seconds (`0` = never retry).
    pub fn with_budget(budget: Duration) -> Self {
        RetryPolicy {
            budget,
            ..RetryPolicy::default()
        }
    }

    pub(crate) fn start(&self) -> Backoff {
        Backoff {
            policy: *self,
            started: Instant::now(),
            next: self.initial,
            attempts: 0,
        }
    }
}

/// The state of one retried call.
pub(crate) struct Backoff {
    policy: RetryPolicy,
    started: Instant,
    next: Duration,
    attempts: u32,
}

impl Backoff {
    /// Sleeps before the next attempt; `false` when the budget is spent (give up).
    pub(crate) async fn wait(&mut self) -> bool {
        self.attempts += 1;
        let elapsed = self.started.elapsed();
        if elapsed >= self.policy.budget {
            return false;
        }
        // Full jitter over the upper half keeps workers that failed together from
        // reconnecting in lockstep.
        let jittered = self.next.mul_f64(0.5 + 0.5 * jitter());
        let delay = jittered.min(self.policy.budget - elapsed);
        self.next = (self.next * 2).min(self.policy.max_delay);
        tokio::time::sleep(delay).await;
        true
    }

    /// How many attempts failed so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// A cheap pseudo-random number in [0, 1) (no RNG crate: only spreads retries).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The process id the current clients belong to; a change means we are in a forked child.
pub(crate) fn current_pid() -> u32 {
    std::process::id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_gives_up_after_its_budget() {
        let policy = RetryPolicy {
            budget: Duration::from_millis(120),
            initial: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
        };
        let started = Instant::now();
        let attempts = block_on(async {
            let mut backoff = policy.start();
            while backoff.wait().await {}
            backoff.attempts()
        });
        let elapsed = started.elapsed();
        assert!(attempts >= 3, "{attempts} attempts");
        assert!(elapsed >= Duration::from_millis(120), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    }

    #[test]
    fn block_on_works_from_the_blocking_pool() {
        let runtime = crate::runtime::runtime();
        let answer = runtime
            .block_on(runtime.spawn_blocking(|| block_on(async { 42 })))
            .unwrap();
        assert_eq!(answer, 42);
    }

    #[test]
    fn no_retry_policy_never_waits() {
        let retried = block_on(async { RetryPolicy::none().start().wait().await });
        assert!(!retried);
    }

    #[test]
    fn jitter_is_a_fraction() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
