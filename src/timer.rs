//! Timers for one completion queue: a deadline heap driven by a single tokio task.
//!
//! One task per queue (not one per timer) sleeps until the earliest deadline and fires
//! every timer that is due in one batch, so a thousand waiters polling on the same beat
//! cost one wake-up of the event loop per beat, not a thousand.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

#[derive(Default)]
struct State {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Timers scheduled and neither fired nor cancelled.
    pending: HashSet<u64>,
    /// The process whose runtime runs the driver task (a forked child needs its own).
    driver_pid: Option<u32>,
}

pub struct Timers {
    state: Mutex<State>,
    notify: Arc<Notify>,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            state: Mutex::new(State::default()),
            notify: Arc::new(Notify::new()),
        }
    }
}

impl Timers {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Schedules timer `id` for `deadline`. Returns true when no driver task runs for this
    /// process yet: the caller must start one with [`Timers::drive`].
    pub fn schedule(&self, id: u64, deadline: Instant) -> bool {
        let mut state = self.state();
        let earliest = state
            .heap
            .peek()
            .is_none_or(|Reverse((first, _))| deadline < *first);
        state.heap.push(Reverse((deadline, id)));
        state.pending.insert(id);
        let pid = std::process::id();
        let needs_driver = state.driver_pid != Some(pid);
        state.driver_pid = Some(pid);
        drop(state);
        if earliest {
            self.notify.notify_one();
        }
        needs_driver
    }

    /// Cancels a timer that has not fired; returns whether it was pending.
    pub fn cancel(&self, id: u64) -> bool {
        self.state().pending.remove(&id)
    }

    /// Removes and returns the timers due at `now`, and the next deadline after them.
    pub fn take_due(&self, now: Instant) -> (Vec<u64>, Option<Instant>) {
        let mut state = self.state();
        let mut fired = Vec::new();
        while let Some(Reverse((deadline, id))) = state.heap.peek().copied() {
            if deadline > now {
                return (fired, Some(deadline));
            }
            state.heap.pop();
            if state.pending.remove(&id) {
                fired.push(id);
            }
        }
        (fired, None)
    }

    pub fn notifier(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }

    /// Wakes the driver so it can notice that its owner is gone.
    pub fn shut_down(&self) {
        self.notify.notify_one();
    }

    /// The driver task: fires due timers through `fire` until `owner` is dropped.
    /// `owner` yields the timers and a sink for fired ids while it lives.
    pub async fn drive<O>(owner: std::sync::Weak<O>, notify: Arc<Notify>)
    where
        O: AsRef<Timers> + FiredSink + Send + Sync + 'static,
    {
        loop {
            let next = {
                let Some(owner) = owner.upgrade() else {
                    return;
                };
                let timers: &Timers = (*owner).as_ref();
                let (fired, next) = timers.take_due(Instant::now());
                if !fired.is_empty() {
                    owner.fired(fired);
                }
                next
            };
            match next {
                Some(deadline) => {
                    let _ = tokio::time::timeout_at(deadline.into(), notify.notified()).await;
                }
                None => notify.notified().await,
            }
        }
    }
}

/// Receives the ids of fired timers, in one batch per wake-up.
pub trait FiredSink {
    fn fired(&self, ids: Vec<u64>);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_deadline_order_and_skips_cancelled() {
        let timers = Timers::default();
        let now = Instant::now();
        timers.schedule(1, now + Duration::from_millis(30));
        timers.schedule(2, now + Duration::from_millis(10));
        timers.schedule(3, now + Duration::from_millis(20));
        assert!(timers.cancel(3));
        assert!(!timers.cancel(3));
        let (fired, next) = timers.take_due(now + Duration::from_millis(25));
        assert_eq!(fired, [2]);
        assert_eq!(next, Some(now + Duration::from_millis(30)));
        let (fired, next) = timers.take_due(now + Duration::from_millis(30));
        assert_eq!(fired, [1]);
        assert_eq!(next, None);
    }

    #[test]
    fn only_the_first_schedule_asks_for_a_driver() {
        let timers = Timers::default();
        let now = Instant::now();
        assert!(timers.schedule(1, now));
        assert!(!timers.schedule(2, now));
    }
}
