//! Restart policy for supervisors, as plain values (ractor has no restart strategies).
//!
//! A supervisor keeps one [`RestartBudget`] per child (or per target, for probe actors). The
//! budget allows `max` restarts within a sliding window of `within`; the next failure in that
//! window is refused, and the supervisor escalates (infrastructure children) or quarantines
//! (probe actors). Each allowed restart waits `Backoff::delay(attempt)`: exponential from
//! `base`, capped at `cap`, so a child that fails at once again does not spin.
//!
//! Time is an argument (`now`), so the policy is tested without clocks.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The restart policy's settings, as configured under `[supervision]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed within `within`.
    pub max_restarts: u32,
    /// The sliding window.
    pub within: Duration,
    /// Delay before the first restart.
    pub backoff_min: Duration,
    /// Longest delay between restarts.
    pub backoff_max: Duration,
    /// How long a probe target whose actor keeps crashing stays quarantined before one more try.
    pub quarantine: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 5,
            within: Duration::from_secs(10),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            quarantine: Duration::from_secs(300),
        }
    }
}

impl RestartPolicy {
    /// A fresh budget following this policy.
    pub fn budget(&self) -> RestartBudget {
        RestartBudget::new(self.max_restarts, self.within)
    }

    /// The backoff following this policy.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: self.backoff_min,
            cap: self.backoff_max,
        }
    }
}

/// At most `max` restarts within any window of length `within`.
#[derive(Clone, Debug)]
pub struct RestartBudget {
    max: u32,
    within: Duration,
    recent: VecDeque<Instant>,
}

impl RestartBudget {
    /// A budget with no restarts spent.
    pub fn new(max: u32, within: Duration) -> Self {
        RestartBudget {
            max,
            within,
            recent: VecDeque::new(),
        }
    }

    /// Records a failure at `now`. Returns the restart attempt number (1-based, counted within
    /// the window) when a restart is allowed, or `None` when the budget is spent.
    pub fn allow(&mut self, now: Instant) -> Option<u32> {
        while let Some(&first) = self.recent.front() {
            if now.saturating_duration_since(first) >= self.within {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() as u32 >= self.max {
            return None;
        }
        self.recent.push_back(now);
        Some(self.recent.len() as u32)
    }

    /// Restarts counted in the current window (as of the last `allow`).
    pub fn spent(&self) -> u32 {
        self.recent.len() as u32
    }
}

/// Capped exponential backoff: `base * 2^(attempt-1)`, at most `cap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub base: Duration,
    /// The largest delay.
    pub cap: Duration,
}

impl Backoff {
    /// The delay before restart number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(20);
        self.base.saturating_mul(1u32 << shift).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn budget_allows_max_then_refuses_within_the_window() {
        let t0 = Instant::now();
        let mut b = RestartBudget::new(3, Duration::from_secs(10));
        assert_eq!(b.allow(t0), Some(1));
        assert_eq!(b.allow(t0 + Duration::from_secs(1)), Some(2));
        assert_eq!(b.allow(t0 + Duration::from_secs(2)), Some(3));
        assert_eq!(b.allow(t0 + Duration::from_secs(3)), None);
        // The first restart leaves the window at t0+10s: one more is allowed.
        assert_eq!(b.allow(t0 + Duration::from_secs(10)), Some(3));
        assert_eq!(b.allow(t0 + Duration::from_millis(10_500)), None);
    }

    #[test]
    fn a_quiet_period_resets_the_budget() {
        let t0 = Instant::now();
        let mut b = RestartBudget::new(2, Duration::from_secs(5));
        assert_eq!(b.allow(t0), Some(1));
        assert_eq!(b.allow(t0), Some(2));
        assert_eq!(b.allow(t0), None);
        assert_eq!(b.allow(t0 + Duration::from_secs(60)), Some(1));
    }

    #[test]
    fn zero_budget_never_allows() {
        let mut b = RestartBudget::new(0, Duration::from_secs(5));
        assert_eq!(b.allow(Instant::now()), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(2), Duration::from_millis(200));
        assert_eq!(b.delay(4), Duration::from_millis(800));
        assert_eq!(b.delay(5), Duration::from_secs(1));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Whatever the failure times, no window of `within` ever holds more than `max` restarts.
        #[test]
        fn never_more_than_max_in_any_window(
            max in 0u32..6,
            within_ms in 1u64..5_000,
            mut gaps in proptest::collection::vec(0u64..2_000, 1..60),
        ) {
            let t0 = Instant::now();
            let within = Duration::from_millis(within_ms);
            let mut b = RestartBudget::new(max, within);
            let mut allowed = Vec::new();
            let mut t = t0;
            for g in gaps.drain(..) {
                t += Duration::from_millis(g);
                if b.allow(t).is_some() {
                    allowed.push(t);
                }
            }
            for (i, &start) in allowed.iter().enumerate() {
                let in_window = allowed[i..].iter().take_while(|&&x| x - start < within).count();
                prop_assert!(in_window as u32 <= max);
            }
        }
    }
}
