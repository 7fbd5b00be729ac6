//! The scan threads: one pool per process, parked between searches.
//!
//! A search split across cores used to spawn its threads (`std::thread::scope`) per query:
//! two spawns and joins cost about as much as scanning a 10k-row store that sits in cache.
//! The pool keeps `cores() - 1` threads parked. Two ways to use them:
//! - [`map`]: a fixed split; the caller scores its own share and waits for the others
//!   (rayon's `in_place_scope`, which lets the shares borrow the caller's data). Used where
//!   the parts are large and few (building codes, preparing documents).
//! - [`share`]: the work is cut into many small chunks that the caller and any pool thread
//!   claim one at a time. The caller never waits for a thread that has not started: if the
//!   parked thread wakes late (a futex wake-up is 5-50 µs, and far more when the host
//!   deschedules it), the caller has claimed the chunks itself and waits only for chunks
//!   already in progress. That is what a small search needs: a 10k-row scan from cache
//!   takes ~0.2 ms on one core, about what a late wake-up costs.
//!
//! Fork safety: a child of `fork` inherits the pool's memory but none of its threads, so
//! a pool is only used by the process that built it (its pid is recorded) and a child builds
//! its own on its first search; the parent's copy is leaked, never dropped (dropping would
//! signal threads that do not exist). The slot holding the pool is only ever `try_lock`ed:
//! if it was held when the process forked, the child never blocks on it and runs its
//! searches without the pool (on scoped threads for [`map`], on the calling thread alone
//! for [`share`]: slower, still correct), as any caller does in the moment another thread
//! holds it.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Runs the chunks `0..chunks` of one piece of work on the calling thread and on whichever
/// pool threads start while chunks remain, each participant claiming chunks one at a time
/// from the same [`Claims`] until none are left; returns each participant's result, the
/// caller's (`mine`) first.
///
/// The pool's threads run `helper`, which owns what it reads (it outlives this call when a
/// thread starts late), and may decline with `None` (when the data cannot be had without
/// blocking). A helper that starts once the caller is done finds the work closed and runs
/// nothing. Chunks are claimed in increasing order, so each participant sees its own in
/// order, but which participant gets which chunk varies.
///
/// A panic in `mine` or in a helper is re-raised here once no helper is running.
pub fn share<T: Send + 'static>(
    chunks: usize,
    helper: impl Fn(&Claims) -> Option<T> + Send + Sync + 'static,
    mine: impl FnOnce(&Claims) -> T,
) -> Vec<T> {
    let job = Arc::new(Job {
        claims: Claims::new(chunks),
        gate: AtomicUsize::new(0),
        results: Mutex::new(Vec::new()),
        panic: Mutex::new(None),
    });
    let pool = if chunks > 1 { current() } else { None };
    if let Some(pool) = pool {
        let helper = Arc::new(helper);
        for _ in 0..pool.current_num_threads().min(chunks - 1) {
            let (job, helper) = (Arc::clone(&job), Arc::clone(&helper));
            pool.spawn(move || job.help(&*helper));
        }
    }
    // Caught so that the gate is always closed and waited on before this returns.
    let mine = catch_unwind(AssertUnwindSafe(|| mine(&job.claims)));
    job.close_and_wait();
    if let Some(payload) = lock(&job.panic).take() {
        resume_unwind(payload);
    }
    let mut all = vec![mine.unwrap_or_else(|payload| resume_unwind(payload))];
    all.append(&mut lock(&job.results));
    all
}

/// The chunks of a [`share`]: each is handed out once.
pub struct Claims {
    next: AtomicUsize,
    chunks: usize,
}

impl Claims {
    fn new(chunks: usize) -> Self {
        Claims {
            next: AtomicUsize::new(0),
            chunks,
        }
    }

    /// The next unclaimed chunk, or `None` when every chunk is taken.
    pub fn claim(&self) -> Option<usize> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.chunks).then_some(i)
    }
}

/// Locks a mutex nothing panics while holding (a poisoned one is still consistent).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The set bit of [`Job::gate`] once the caller admits no more helpers.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// What the caller of [`share`] and its helpers share.
struct Job<T> {
    claims: Claims,
    /// [`CLOSED`] once the caller admits no more helpers, plus the number of helpers inside.
    /// The caller returns only when this reads `CLOSED` alone, which is what lets a helper
    /// rely on the caller's state (a read lock it holds, say) for as long as it is inside.
    gate: AtomicUsize,
    results: Mutex<Vec<T>>,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl<T> Job<T> {
    /// Runs `helper` on a pool thread, unless the caller has already closed the gate.
    fn help(&self, helper: &(impl Fn(&Claims) -> Option<T> + Sync)) {
        let mut gate = self.gate.load(Ordering::Acquire);
        loop {
            if gate & CLOSED != 0 {
                return;
            }
            match self.gate.compare_exchange_weak(
                gate,
                gate + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => gate = now,
            }
        }
        // Caught: a panic must not unwind into the pool (rayon aborts the process on one).
        match catch_unwind(AssertUnwindSafe(|| helper(&self.claims))) {
            Ok(Some(result)) => lock(&self.results).push(result),
            Ok(None) => {}
            Err(payload) => {
                lock(&self.panic).get_or_insert(payload);
            }
        }
        self.gate.fetch_sub(1, Ordering::Release);
    }

    /// Admits no more helpers and waits for those inside. Every chunk is claimed by now, so
    /// each is finishing one chunk at most: spin briefly, then yield, in case a helper was
    /// descheduled mid-chunk.
    fn close_and_wait(&self) {
        self.gate.fetch_or(CLOSED, Ordering::AcqRel);
        let mut spins = 0u32;
        while self.gate.load(Ordering::Acquire) != CLOSED {
            if spins < 2_000 {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
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

    /// Sums `data[i]` over every chunk `i` with `share`, the helpers reading their own copy.
    fn shared_sum(data: &Arc<Vec<usize>>) -> Vec<(usize, Vec<usize>)> {
        let fold = |claims: &Claims, data: &[usize]| {
            let (mut sum, mut seen) = (0, Vec::new());
            while let Some(i) = claims.claim() {
                sum += data[i];
                seen.push(i);
            }
            (sum, seen)
        };
        let theirs = Arc::clone(data);
        share(
            data.len(),
            move |claims| Some(fold(claims, &theirs)),
            |claims| fold(claims, data),
        )
    }

    #[test]
    fn shared_chunks_each_run_once_in_order_per_participant() {
        for chunks in [0, 1, 2, 7, 300, 5_000] {
            for _ in 0..20 {
                let data = Arc::new((0..chunks).collect::<Vec<usize>>());
                let parts = shared_sum(&data);
                assert!(parts.len() <= cores());
                let total: usize = parts.iter().map(|p| p.0).sum();
                assert_eq!(total, data.iter().sum::<usize>());
                let mut seen: Vec<usize> = parts.iter().flat_map(|p| p.1.clone()).collect();
                assert!(parts.iter().all(|p| p.1.windows(2).all(|w| w[0] < w[1])));
                seen.sort_unstable();
                assert_eq!(seen, *data);
            }
        }
    }

    #[test]
    fn a_helper_that_starts_late_finds_the_work_closed() {
        // Occupy every pool thread, so the helpers of the shares below start only after
        // those shares have returned; they must then run nothing.
        let pool = current().expect("pool");
        let busy = pool.current_num_threads();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = Arc::new(Mutex::new(wait));
        let started = Arc::new(AtomicUsize::new(0));
        for _ in 0..busy {
            let (wait, started) = (Arc::clone(&wait), Arc::clone(&started));
            pool.spawn(move || {
                started.fetch_add(1, Ordering::SeqCst);
                let _ = lock(&wait).recv_timeout(std::time::Duration::from_secs(10));
            });
        }
        while started.load(Ordering::SeqCst) < busy {
            std::thread::yield_now();
        }
        let late = Arc::new(AtomicUsize::new(0));
        for round in 0..20 {
            let late_helper = Arc::clone(&late);
            let parts = share(
                64,
                move |_claims| {
                    late_helper.fetch_add(1, Ordering::SeqCst);
                    Some(0)
                },
                |claims| {
                    let mut n = 0;
                    while claims.claim().is_some() {
                        n += round;
                    }
                    n
                },
            );
            assert_eq!(parts, vec![64 * round], "no helper joined");
        }
        for _ in 0..busy {
            let _ = release.send(());
        }
        // The queued helpers run now and find their work closed.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(late.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_panicking_chunk_is_re_raised_after_every_participant_stops() {
        let work = |claims: &Claims| {
            while let Some(i) = claims.claim() {
                assert_ne!(i, 30, "chunk 30 fails");
            }
        };
        for _ in 0..20 {
            let caught = std::panic::catch_unwind(|| {
                share(
                    50,
                    move |c| {
                        work(c);
                        Some(())
                    },
                    work,
                )
            });
            assert!(caught.is_err());
        }
        let data = Arc::new((0..10).collect::<Vec<usize>>());
        assert_eq!(shared_sum(&data).iter().map(|p| p.0).sum::<usize>(), 45);
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
