//! A target's confirmed up/down state, with rise/fall thresholds as in HAProxy and Icinga.
//!
//! The first result sets the state at once (there is nothing to confirm it against). After
//! that, `fall` consecutive failures are needed to go down and `rise` consecutive successes to go
//! up; results in between are "soft" (the target is failing but not yet down). Each confirmed
//! change is one [`Transition`]; a target whose state was handed over by its previous owner
//! starts from that state, so moving it never raises a change that did not happen.
//!
//! Pure: one `record` per result.

/// The observed state of a target: `"up"` or `"down"` in results, events and answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// Confirmed up.
    Up,
    /// Confirmed down.
    Down,
}

impl TargetState {
    /// `"up"` or `"down"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Up => "up",
            TargetState::Down => "down",
        }
    }
}

/// A change of state: `from` is `None` for the first result of a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The state before, if any.
    pub from: Option<TargetState>,
    /// The state now.
    pub to: TargetState,
}

/// Consecutive results needed to change state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Successes to go from down to up.
    pub rise: u32,
    /// Failures to go from up to down.
    pub fall: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { rise: 2, fall: 2 }
    }
}

/// Tracks the state of one target.
#[derive(Clone, Debug, Default)]
pub struct HealthTracker {
    state: Option<TargetState>,
    /// Consecutive results that contradict `state`.
    streak: u32,
    thresholds: Thresholds,
}

impl HealthTracker {
    /// A tracker with these thresholds, starting from `state` (handed over, or unknown).
    pub fn new(thresholds: Thresholds, state: Option<TargetState>) -> Self {
        HealthTracker {
            state,
            streak: 0,
            thresholds,
        }
    }

    /// A tracker with default thresholds starting from a known state.
    pub fn with_state(state: Option<TargetState>) -> Self {
        Self::new(Thresholds::default(), state)
    }

    /// New rise/fall thresholds, applied from the next result on (the state and the count of
    /// results against it stay).
    pub fn set_thresholds(&mut self, thresholds: Thresholds) {
        self.thresholds = thresholds;
    }

    /// Takes over a state learnt from the previous owner, unless this node has a result already.
    pub fn inherit(&mut self, state: TargetState) -> bool {
        if self.state.is_none() {
            self.state = Some(state);
            true
        } else {
            false
        }
    }

    /// Records one result; returns the transition when the confirmed state changed.
    pub fn record(&mut self, up: bool) -> Option<Transition> {
        let seen = if up {
            TargetState::Up
        } else {
            TargetState::Down
        };
        let Some(state) = self.state else {
            self.state = Some(seen);
            return Some(Transition {
                from: None,
                to: seen,
            });
        };
        if seen == state {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = match seen {
            TargetState::Up => self.thresholds.rise,
            TargetState::Down => self.thresholds.fall,
        };
        if self.streak >= needed.max(1) {
            self.state = Some(seen);
            self.streak = 0;
            Some(Transition {
                from: Some(state),
                to: seen,
            })
        } else {
            None
        }
    }

    /// The confirmed state, `None` before the first result.
    pub fn state(&self) -> Option<TargetState> {
        self.state
    }

    /// True while the target is up but failing (not yet confirmed down): time to retry sooner.
    pub fn soft_failing(&self) -> bool {
        self.state == Some(TargetState::Up) && self.streak > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UP: Option<TargetState> = Some(TargetState::Up);
    const DOWN: Option<TargetState> = Some(TargetState::Down);

    #[test]
    fn the_first_result_sets_the_state_then_thresholds_apply() {
        let mut h = HealthTracker::new(Thresholds { rise: 2, fall: 3 }, None);
        assert_eq!(
            h.record(true),
            Some(Transition {
                from: None,
                to: TargetState::Up
            })
        );
        assert_eq!(h.record(false), None);
        assert!(h.soft_failing());
        assert_eq!(h.record(false), None);
        assert_eq!(
            h.record(false),
            Some(Transition {
                from: UP,
                to: TargetState::Down
            })
        );
        assert!(!h.soft_failing());
        assert_eq!(h.record(true), None);
        assert_eq!(h.record(false), None, "a flap resets the streak");
        assert_eq!(h.record(true), None);
        assert_eq!(
            h.record(true),
            Some(Transition {
                from: DOWN,
                to: TargetState::Up
            })
        );
        assert_eq!(h.state(), UP);
    }

    #[test]
    fn single_failures_never_confirm_with_fall_two() {
        let mut h = HealthTracker::new(Thresholds { rise: 2, fall: 2 }, UP);
        for _ in 0..10 {
            assert_eq!(h.record(false), None);
            assert_eq!(h.record(true), None);
        }
        assert_eq!(h.state(), UP);
    }

    #[test]
    fn thresholds_of_one_follow_every_result() {
        let mut h = HealthTracker::new(Thresholds { rise: 1, fall: 1 }, UP);
        assert_eq!(
            h.record(false),
            Some(Transition {
                from: UP,
                to: TargetState::Down
            })
        );
        assert_eq!(
            h.record(true),
            Some(Transition {
                from: DOWN,
                to: TargetState::Up
            })
        );
    }

    #[test]
    fn an_inherited_state_suppresses_the_first_transition() {
        let mut h = HealthTracker::with_state(UP);
        assert_eq!(h.record(true), None);
        let mut h = HealthTracker::default();
        assert!(h.inherit(TargetState::Down));
        assert!(!h.inherit(TargetState::Up), "own results win");
        assert_eq!(h.record(true), None);
        assert_eq!(
            h.record(true),
            Some(Transition {
                from: DOWN,
                to: TargetState::Up
            })
        );
    }
}
