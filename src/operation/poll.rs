//! How `wait_for_operation` paces its checks: exponential backoff with jitter, capped, until
//! a deadline.

use std::time::{Duration, Instant};

use crate::errors::{Error, Result};

/// The pacing of checks. Delays grow `interval × multiplier^n` up to `max_interval`; each is
/// spread by ±`jitter` (a fraction) so many waiters do not poll in lock-step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollPolicy {
    pub interval: Duration,
    pub max_interval: Duration,
    pub multiplier: f64,
    pub jitter: f64,
    /// No check starts after this much time; `None` waits forever.
    pub timeout: Option<Duration>,
}

impl PollPolicy {
    /// Validates a policy given in seconds (as Python passes it).
    pub fn from_seconds(
        interval: f64,
        max_interval: f64,
        multiplier: f64,
        jitter: f64,
        timeout: Option<f64>,
    ) -> Result<Self> {
        let bad = |name: &str, rule: &str, value: f64| Error::InvalidArgument {
            detail: format!("{name} must be {rule}, got {value}"),
        };
        if !(interval.is_finite() && interval > 0.0) {
            return Err(bad("interval", "a positive number of seconds", interval));
        }
        if !(max_interval.is_finite() && max_interval >= interval) {
            return Err(bad("max_interval", "at least interval", max_interval));
        }
        if !(multiplier.is_finite() && multiplier >= 1.0) {
            return Err(bad("multiplier", ">= 1", multiplier));
        }
        if !(0.0..=1.0).contains(&jitter) {
            return Err(bad("jitter", "between 0 and 1", jitter));
        }
        if let Some(t) = timeout
            && !(t.is_finite() && t >= 0.0)
        {
            return Err(bad("timeout", "a non-negative number of seconds", t));
        }
        Ok(PollPolicy {
            interval: Duration::from_secs_f64(interval),
            max_interval: Duration::from_secs_f64(max_interval),
            multiplier,
            jitter,
            timeout: timeout.map(Duration::from_secs_f64),
        })
    }

    /// The delay before check number `retry + 1` (0-based retry count), before jitter.
    pub fn base_delay(&self, retry: u32) -> Duration {
        let grown = self.interval.as_secs_f64() * self.multiplier.powi(retry.min(1_000) as i32);
        Duration::from_secs_f64(grown.min(self.max_interval.as_secs_f64()))
    }
}

/// One wait in progress.
#[derive(Debug)]
pub struct Poller {
    policy: PollPolicy,
    started: Instant,
    retries: u32,
    rng: u64,
}

impl Poller {
    pub fn new(policy: PollPolicy, seed: u64) -> Self {
        Poller {
            policy,
            started: Instant::now(),
            retries: 0,
            // xorshift must not start at zero.
            rng: seed | 1,
        }
    }

    /// How long to sleep before the next check, or `None` once the deadline would be
    /// passed. The last sleep is shortened to end at the deadline, so a final check
    /// happens right at it.
    pub fn next_delay(&mut self, now: Instant) -> Option<Duration> {
        let base = self.policy.base_delay(self.retries);
        self.retries = self.retries.saturating_add(1);
        let spread = (self.next_unit() * 2.0 - 1.0) * self.policy.jitter;
        let delay = Duration::from_secs_f64((base.as_secs_f64() * (1.0 + spread)).max(0.0));
        match self.policy.timeout {
            None => Some(delay),
            Some(timeout) => {
                let deadline = self.started + timeout;
                if now >= deadline {
                    None
                } else {
                    Some(delay.min(deadline - now))
                }
            }
        }
    }

    /// Seconds since the wait began.
    pub fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }

    /// A uniform number in [0, 1) from a xorshift64 generator (jitter needs no crypto).
    fn next_unit(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: f64, timeout: Option<f64>) -> PollPolicy {
        PollPolicy::from_seconds(1.0, 8.0, 2.0, jitter, timeout).unwrap()
    }

    #[test]
    fn backs_off_exponentially_up_to_the_cap() {
        let mut poller = Poller::new(policy(0.0, None), 7);
        let now = Instant::now();
        let delays: Vec<f64> = (0..6)
            .map(|_| poller.next_delay(now).unwrap().as_secs_f64())
            .collect();
        assert_eq!(delays, [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]);
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let mut poller = Poller::new(policy(0.5, None), 42);
        let now = Instant::now();
        let delays: Vec<f64> = (0..200)
            .map(|_| {
                poller.retries = 0;
                poller.next_delay(now).unwrap().as_secs_f64()
            })
            .collect();
        assert!(delays.iter().all(|d| (0.5..=1.5).contains(d)), "{delays:?}");
        let distinct = delays
            .iter()
            .map(|d| (d * 1e6) as u64)
            .collect::<std::collections::HashSet<_>>();
        assert!(distinct.len() > 150);
    }

    #[test]
    fn stops_at_the_deadline() {
        let mut poller = Poller::new(policy(0.0, Some(3.0)), 1);
        let start = poller.started;
        assert_eq!(poller.next_delay(start).unwrap(), Duration::from_secs(1));
        // 2.5 s in: the 2 s backoff is cut to the 0.5 s left.
        assert_eq!(
            poller
                .next_delay(start + Duration::from_millis(2500))
                .unwrap(),
            Duration::from_millis(500)
        );
        assert!(poller.next_delay(start + Duration::from_secs(3)).is_none());
    }

    #[test]
    fn rejects_bad_policies() {
        assert!(PollPolicy::from_seconds(0.0, 1.0, 2.0, 0.1, None).is_err());
        assert!(PollPolicy::from_seconds(2.0, 1.0, 2.0, 0.1, None).is_err());
        assert!(PollPolicy::from_seconds(1.0, 1.0, 0.5, 0.1, None).is_err());
        assert!(PollPolicy::from_seconds(1.0, 1.0, 2.0, 1.5, None).is_err());
        assert!(PollPolicy::from_seconds(1.0, 1.0, 2.0, 0.1, Some(-1.0)).is_err());
        assert!(PollPolicy::from_seconds(f64::NAN, 1.0, 2.0, 0.1, None).is_err());
    }
}
