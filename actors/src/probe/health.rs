//! A target's up/down state as seen from its results, and the transitions worth logging.
//!
//! Pure: one `record` per result, returning the transition (if any) so the actor logs a state
//! change once, not every probe.

/// The observed state of a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetState {
    /// The last probe succeeded.
    Up,
    /// The last probe failed.
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

/// Tracks the state of one target.
#[derive(Clone, Debug, Default)]
pub struct HealthTracker {
    state: Option<TargetState>,
}

impl HealthTracker {
    /// A tracker starting from a known state (handed over by the target's previous owner).
    pub fn with_state(state: Option<TargetState>) -> Self {
        HealthTracker { state }
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

    /// Records one result; returns the transition when the state changed.
    pub fn record(&mut self, up: bool) -> Option<Transition> {
        let to = if up {
            TargetState::Up
        } else {
            TargetState::Down
        };
        let from = self.state.replace(to);
        (from != Some(to)).then_some(Transition { from, to })
    }

    /// The current state, `None` before the first result.
    pub fn state(&self) -> Option<TargetState> {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_are_reported() {
        let mut h = HealthTracker::default();
        assert_eq!(
            h.record(true),
            Some(Transition {
                from: None,
                to: TargetState::Up
            })
        );
        assert_eq!(h.record(true), None);
        assert_eq!(
            h.record(false),
            Some(Transition {
                from: Some(TargetState::Up),
                to: TargetState::Down
            })
        );
        assert_eq!(h.record(false), None);
        assert_eq!(
            h.record(true),
            Some(Transition {
                from: Some(TargetState::Down),
                to: TargetState::Up
            })
        );
        assert_eq!(h.state(), Some(TargetState::Up));
    }

    #[test]
    fn an_inherited_state_suppresses_the_first_transition() {
        let mut h = HealthTracker::with_state(Some(TargetState::Up));
        assert_eq!(h.record(true), None);
        let mut h = HealthTracker::default();
        assert!(h.inherit(TargetState::Down));
        assert!(!h.inherit(TargetState::Up), "own results win");
        assert_eq!(
            h.record(true),
            Some(Transition {
                from: Some(TargetState::Down),
                to: TargetState::Up
            })
        );
    }

    #[test]
    fn a_first_failure_is_a_transition_too() {
        let mut h = HealthTracker::default();
        assert_eq!(
            h.record(false),
            Some(Transition {
                from: None,
                to: TargetState::Down
            })
        );
    }
}
