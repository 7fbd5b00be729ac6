//! The scan threads: one pool per process, parked between searches.
//!
//! A search split across cores used to spawn its threads (`std::thread::scope`) per query:
//! two spawns and joins cost about as much as scanning a 10k-row store that sits in cache.
//! The pool keeps `cores() - 1` threads parked; a search wakes them, scores its own share on
//! the calling thread, and waits for the rest (rayon's `in_place_scope`, which lets the
//! shares borrow the store without copying it).
//!
//! Fork safety: a child of `fork` inherits the pool's memory but none of its threads, so
//! a pool is only used by the process that built it (its pid is recorded) and a child builds
//! its own on its first search; the parent's copy is leaked, never dropped (dropping would
//! signal threads that do not exist). The slot holding the pool is only ever `try_lock`ed:
//! if it was held when the process forked, the child never blocks on it and runs its
//! searches on scoped threads instead (slower, still correct), as any caller does in the
//! moment another thread holds it.

use std::sync::{Arc, Mutex, TryLockError};

use rayon_core::{ThreadPool, ThreadPoolBuilder};

use super::topk::cores;

/// The current process's pool, with the pid that built it.
static POOL: Mutex<Option<(u32, Arc<ThreadPool>)>> = Mutex::new(None);

/// This process's pool (built on first use), or `None` when it cannot be had without
/// waiting (or without threads).
fn current() -> Option<Arc<ThreadPool>> {
    let pid = std::process::id();
    let mut slot = match POOL.try_lock() {
        Ok(slot) => slot,
        // Nothing panics while holding it; a poisoned slot is still consistent.
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => return None,
    };
    if let Some((built_by, pool)) = slot.as_ref()
        && *built_by == pid
    {
        return Some(Arc::clone(pool));
    }
    let pool = ThreadPoolBuilder::new()
        .num_threads(cores().saturating_sub(1).max(1))
        .thread_name(|i| format!("genkit-parity-scan-{i}"))
        .build()
        .ok()?;
    let pool = Arc::new(pool);
    if let Some((_, inherited)) = slot.replace((pid, Arc::clone(&pool))) {
        // Built by the parent before a fork: its threads are not in this process.
        std::mem::forget(inherited);
    }
    Some(pool)
}

/// `[f(items[0]), f(items[1]), …]`, the calls run in parallel: the first on the calling
/// thread, the others on the pool (or on scoped threads when the pool is not to be had). A
/// panic in any call is re-raised here once every call has finished.
pub fn map<I: Send, T: Send>(items: Vec<I>, f: impl Fn(I) -> T + Sync) -> Vec<T> {
    if items.len() <= 1 {
        return items.into_iter().map(f).collect();
    }
    let mut out: Vec<Option<T>> = items.iter().map(|_| None).collect();
    let f = &f;
    let (first_out, rest_out) = out.split_first_mut().expect("two items or more");
    let mut items = items.into_iter();
    let first = items.next().expect("two items or more");
    match current() {
        Some(pool) => pool.in_place_scope(|scope| {
            for (item, slot) in items.zip(rest_out) {
                scope.spawn(move |_| *slot = Some(f(item)));
            }
            *first_out = Some(f(first));
        }),
        None => std::thread::scope(|scope| {
            for (item, slot) in items.zip(rest_out) {
                scope.spawn(move || *slot = Some(f(item)));
            }
            *first_out = Some(f(first));
        }),
    }
    out.into_iter()
        .map(|v| v.expect("every call ran"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_runs_once_in_order() {
        for parts in [0, 1, 2, 3, 17] {
            let got = map((0..parts).collect(), |i| i * 10);
            assert_eq!(got, (0..parts).map(|i| i * 10).collect::<Vec<_>>());
        }
    }

    #[test]
    fn calls_borrow_the_callers_data_mutably() {
        let mut out = vec![0u32; 1_000];
        map(out.chunks_mut(300).enumerate().collect(), |(i, chunk)| {
            chunk.fill(i as u32 + 1);
        });
        assert_eq!(out[0], 1);
        assert_eq!(out[999], 4);
    }

    #[test]
    fn calls_borrow_the_callers_data() {
        let data: Vec<u64> = (0..10_000).collect();
        let sums = map(data.chunks(2_500).collect(), |c| c.iter().sum::<u64>());
        assert_eq!(sums.iter().sum::<u64>(), data.iter().sum::<u64>());
    }

    #[test]
    fn the_pool_is_reused_within_a_process() {
        map(vec![0, 1], |i| i);
        let a = current().expect("pool");
        let b = current().expect("pool");
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn a_panicking_part_is_re_raised_after_the_others_finish() {
        let finished = std::sync::atomic::AtomicUsize::new(0);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            map(vec![0, 1, 2], |i| {
                if i == 1 {
                    panic!("part {i}");
                }
                finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
        }));
        assert!(caught.is_err());
        assert_eq!(finished.load(std::sync::atomic::Ordering::SeqCst), 2);
        // The pool still works afterwards.
        assert_eq!(map(vec![0, 1], |i| i + 1), vec![1, 2]);
    }
}
