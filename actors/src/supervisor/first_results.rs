//! The first results of newly owned targets, summarised: one log line per ring change
//! (`first results: 256 up, 0 down`) instead of one per target, which at 100,000 targets would
//! bury everything else. Per-target first results are DEBUG lines of the probe actors.
//!
//! Only targets started without a known state count: a target this node already knew (taken
//! back, or whose state a former owner handed over first) has no first result to report. A
//! batch closes when every target in it has a state, or at its deadline (the slowest target's
//! interval + timeout + 1 s, when each must have probed once); those still without one are
//! reported as `missing`. Targets that arrive while a batch is open join it and move its
//! deadline; targets retired before their first result leave it.
//!
//! Pure: time is an argument, the states are looked up through a closure.

use std::collections::HashSet;
use std::time::Instant;

use crate::model::TargetKey;
use crate::probe::health::TargetState;

/// What one batch found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Targets whose first state is up.
    pub up: usize,
    /// Targets whose first state is down.
    pub down: usize,
    /// Targets without a state at the deadline.
    pub missing: usize,
}

/// The open batch, if any.
#[derive(Debug, Default)]
pub struct FirstResults {
    pending: HashSet<TargetKey>,
    up: usize,
    down: usize,
    deadline: Option<Instant>,
}

impl FirstResults {
    /// Expects a first result of `key` by `deadline`. Returns true when this opens a batch
    /// (the caller then schedules checks).
    pub fn expect(&mut self, key: TargetKey, deadline: Instant) -> bool {
        let opened = self.deadline.is_none();
        self.deadline = Some(self.deadline.map_or(deadline, |d| d.max(deadline)));
        self.pending.insert(key);
        opened
    }

    /// `key` was retired: it no longer counts.
    pub fn forget(&mut self, key: &TargetKey) {
        self.pending.remove(key);
    }

    /// True while a batch is open.
    pub fn is_open(&self) -> bool {
        self.deadline.is_some()
    }

    /// Moves the targets that have a state out of the pending set; closes the batch when none
    /// is left or the deadline has passed, returning its summary.
    pub fn check(
        &mut self,
        now: Instant,
        state_of: impl Fn(&TargetKey) -> Option<TargetState>,
    ) -> Option<Summary> {
        let deadline = self.deadline?;
        let (mut up, mut down) = (0, 0);
        self.pending.retain(|k| match state_of(k) {
            Some(TargetState::Up) => {
                up += 1;
                false
            }
            Some(TargetState::Down) => {
                down += 1;
                false
            }
            None => true,
        });
        self.up += up;
        self.down += down;
        if !self.pending.is_empty() && now < deadline {
            return None;
        }
        let summary = Summary {
            up: self.up,
            down: self.down,
            missing: self.pending.len(),
        };
        *self = FirstResults::default();
        // A batch whose targets were all retired reports nothing.
        (summary
            != Summary {
                up: 0,
                down: 0,
                missing: 0,
            })
        .then_some(summary)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::model::ProbeKind;

    fn key(i: u32) -> TargetKey {
        TargetKey {
            id: format!("127.0.0.{i}").into(),
            probe: ProbeKind::Icmp,
        }
    }

    #[test]
    fn a_batch_closes_when_every_target_has_a_state() {
        let t0 = Instant::now();
        let mut f = FirstResults::default();
        assert!(f.expect(key(1), t0 + Duration::from_secs(10)));
        assert!(!f.expect(key(2), t0 + Duration::from_secs(10)));
        let mut states = HashMap::new();
        states.insert(key(1), TargetState::Up);
        assert_eq!(f.check(t0, |k| states.get(k).copied()), None);
        states.insert(key(2), TargetState::Down);
        assert_eq!(
            f.check(t0, |k| states.get(k).copied()),
            Some(Summary {
                up: 1,
                down: 1,
                missing: 0
            })
        );
        assert!(!f.is_open());
        assert_eq!(f.check(t0, |k| states.get(k).copied()), None);
    }

    #[test]
    fn the_deadline_reports_the_missing_and_later_targets_extend_it() {
        let t0 = Instant::now();
        let mut f = FirstResults::default();
        f.expect(key(1), t0 + Duration::from_secs(5));
        f.expect(key(2), t0 + Duration::from_secs(8));
        let up = |k: &TargetKey| (*k == key(1)).then_some(TargetState::Up);
        assert_eq!(f.check(t0 + Duration::from_secs(6), up), None);
        assert_eq!(
            f.check(t0 + Duration::from_secs(8), up),
            Some(Summary {
                up: 1,
                down: 0,
                missing: 1
            })
        );
    }

    #[test]
    fn retired_targets_leave_the_batch() {
        let t0 = Instant::now();
        let mut f = FirstResults::default();
        f.expect(key(1), t0 + Duration::from_secs(5));
        f.expect(key(2), t0 + Duration::from_secs(5));
        f.forget(&key(2));
        let up = |k: &TargetKey| (*k == key(1)).then_some(TargetState::Up);
        assert_eq!(
            f.check(t0, up),
            Some(Summary {
                up: 1,
                down: 0,
                missing: 0
            })
        );
        f.expect(key(3), t0 + Duration::from_secs(5));
        f.forget(&key(3));
        assert_eq!(f.check(t0, |_| None), None, "nothing to report");
        assert!(!f.is_open());
    }
}
