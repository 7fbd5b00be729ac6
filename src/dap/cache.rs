//! A TTL cache holding one value, fetched at most once at a time (single flight).
//!
//! Whoever finds the cache stale while no fetch is running becomes the *leader* and must
//! fetch; everyone arriving during that fetch becomes a *follower* and is called back with
//! the leader's result. The cache knows nothing of event loops or threads: followers are
//! plain callbacks, so they may wait on any loop in any thread.
//!
//! TTL as JS Genkit: unset or 0 → 3,000 ms; negative → nothing is kept (every access
//! fetches, but concurrent accesses still share one fetch). A failed fetch is not cached:
//! its followers get the error and the next access fetches again.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// What a finished fetch hands to its followers.
pub type Outcome<V, E> = Result<Arc<V>, Arc<E>>;

type Follower<V, E> = Box<dyn FnOnce(Outcome<V, E>) + Send>;

pub const DEFAULT_TTL: Duration = Duration::from_millis(3_000);

/// Normalises a JS-style `cacheConfig.ttlMillis`: `None` = keep nothing.
pub fn ttl_from_millis(millis: Option<i64>) -> Option<Duration> {
    match millis {
        None | Some(0) => Some(DEFAULT_TTL),
        Some(ms) if ms < 0 => None,
        Some(ms) => Some(Duration::from_millis(ms.unsigned_abs())),
    }
}

struct State<V, E> {
    value: Option<(Arc<V>, Instant)>,
    /// Followers of the fetch in flight; `Some` exactly while one is.
    in_flight: Option<Vec<Follower<V, E>>>,
    /// Bumped by `invalidate`, so a fetch that started before it does not repopulate.
    generation: u64,
}

pub struct SingleFlightCache<V, E> {
    ttl: Option<Duration>,
    state: Mutex<State<V, E>>,
}

/// What a caller must do next.
pub enum Access<V> {
    /// The cached value, fresh.
    Hit(Arc<V>),
    /// Fetch, then call [`SingleFlightCache::finish`] with this ticket, whatever happens.
    Lead(FetchTicket),
    /// A fetch is in flight; the follower callback will be called with its outcome.
    Follow,
}

/// Proof of leadership for one fetch.
#[derive(Debug)]
pub struct FetchTicket {
    generation: u64,
}

impl<V: Send + Sync + 'static, E: Send + Sync + 'static> SingleFlightCache<V, E> {
    pub fn new(ttl: Option<Duration>) -> Self {
        SingleFlightCache {
            ttl,
            state: Mutex::new(State {
                value: None,
                in_flight: None,
                generation: 0,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State<V, E>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value if it is fresh at `now` (never blocks, never fetches).
    pub fn fresh(&self, now: Instant) -> Option<Arc<V>> {
        let state = self.state();
        match &state.value {
            Some((value, expires)) if now <= *expires => Some(Arc::clone(value)),
            _ => None,
        }
    }

    /// Decides this caller's role. `follower` is only used (and later called) for `Follow`.
    pub fn access(
        &self,
        now: Instant,
        follower: impl FnOnce(Outcome<V, E>) + Send + 'static,
    ) -> Access<V> {
        let mut state = self.state();
        if let Some((value, expires)) = &state.value
            && now <= *expires
        {
            return Access::Hit(Arc::clone(value));
        }
        match &mut state.in_flight {
            Some(followers) => {
                followers.push(Box::new(follower));
                Access::Follow
            }
            None => {
                state.in_flight = Some(Vec::new());
                Access::Lead(FetchTicket {
                    generation: state.generation,
                })
            }
        }
    }

    /// Ends the fetch led with `ticket`: caches a success (unless TTL is negative or the
    /// cache was invalidated meanwhile) and calls every follower with the outcome.
    pub fn finish(
        &self,
        ticket: FetchTicket,
        outcome: Result<V, E>,
        now: Instant,
    ) -> Outcome<V, E> {
        let outcome: Outcome<V, E> = outcome.map(Arc::new).map_err(Arc::new);
        let followers = {
            let mut state = self.state();
            if let (Ok(value), Some(ttl)) = (&outcome, self.ttl)
                && ticket.generation == state.generation
            {
                state.value = Some((Arc::clone(value), now + ttl));
            }
            if outcome.is_err() {
                state.value = None;
            }
            state.in_flight.take().unwrap_or_default()
        };
        // Callbacks run without the lock: they may re-enter the cache.
        for follower in followers {
            follower(outcome.clone());
        }
        outcome
    }

    /// Drops the cached value; the next access fetches.
    pub fn invalidate(&self) {
        let mut state = self.state();
        state.value = None;
        state.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    type Cache = SingleFlightCache<u32, String>;

    fn lead(cache: &Cache, now: Instant) -> FetchTicket {
        match cache.access(now, |_| panic!("leader is not a follower")) {
            Access::Lead(ticket) => ticket,
            _ => panic!("expected to lead"),
        }
    }

    #[test]
    fn ttl_rules_match_js() {
        assert_eq!(ttl_from_millis(None), Some(DEFAULT_TTL));
        assert_eq!(ttl_from_millis(Some(0)), Some(DEFAULT_TTL));
        assert_eq!(ttl_from_millis(Some(50)), Some(Duration::from_millis(50)));
        assert_eq!(ttl_from_millis(Some(-1)), None);
    }

    #[test]
    fn one_fetch_for_many_callers() {
        let cache = Cache::new(Some(DEFAULT_TTL));
        let now = Instant::now();
        let ticket = lead(&cache, now);
        let got = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let got = Arc::clone(&got);
            let role = cache.access(now, move |outcome| {
                assert_eq!(*outcome.unwrap(), 7);
                got.fetch_add(1, Ordering::SeqCst);
            });
            assert!(matches!(role, Access::Follow));
        }
        let _ = cache.finish(ticket, Ok(7), now);
        assert_eq!(got.load(Ordering::SeqCst), 100);
        assert!(matches!(cache.access(now, |_| {}), Access::Hit(v) if *v == 7));
    }

    #[test]
    fn expiry_and_negative_ttl() {
        let now = Instant::now();
        let cache = Cache::new(Some(Duration::from_millis(50)));
        let ticket = lead(&cache, now);
        let _ = cache.finish(ticket, Ok(1), now);
        assert!(cache.fresh(now + Duration::from_millis(50)).is_some());
        assert!(cache.fresh(now + Duration::from_millis(51)).is_none());
        let uncached = Cache::new(None);
        let ticket = lead(&uncached, now);
        let _ = uncached.finish(ticket, Ok(1), now);
        assert!(uncached.fresh(now).is_none());
        assert!(matches!(uncached.access(now, |_| {}), Access::Lead(_)));
    }

    #[test]
    fn failure_is_shared_and_not_cached() {
        let cache = Cache::new(Some(DEFAULT_TTL));
        let now = Instant::now();
        let ticket = lead(&cache, now);
        let seen = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&seen);
        cache.access(now, move |outcome| {
            *sink.lock().unwrap() = Some(outcome.unwrap_err().to_string())
        });
        let _ = cache.finish(ticket, Err("Fetch failed".to_string()), now);
        assert_eq!(seen.lock().unwrap().as_deref(), Some("Fetch failed"));
        assert!(matches!(cache.access(now, |_| {}), Access::Lead(_)));
    }

    #[test]
    fn invalidate_during_fetch_does_not_repopulate() {
        let cache = Cache::new(Some(DEFAULT_TTL));
        let now = Instant::now();
        let ticket = lead(&cache, now);
        cache.invalidate();
        let _ = cache.finish(ticket, Ok(5), now);
        assert!(cache.fresh(now).is_none());
    }
}
