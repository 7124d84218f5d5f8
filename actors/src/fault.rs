//! Test-only fault injection, set through the environment so integration tests can drive the
//! real binary. Unset in production; when set, the node warns at start.
//!
//! `RINGPOLL_TEST_PANIC_PROBE=TARGET[*COUNT][@AFTER]`: the probe actor of the target with id
//! `TARGET` panics at the start of its next `COUNT` probes (default 1) once `AFTER` probes
//! (default 0) have run, counted process-wide, so the supervisor's restarts and quarantine can
//! be observed end to end.

use std::sync::atomic::{AtomicU32, Ordering};

/// The environment variable read by [`FaultInjection::from_env`].
pub const PANIC_PROBE_ENV: &str = "RINGPOLL_TEST_PANIC_PROBE";

/// Faults to inject.
#[derive(Debug, Default)]
pub struct FaultInjection {
    panic_target: Option<(String, AtomicU32)>,
    /// Probes of the target still to run before the panics.
    after: AtomicU32,
}

impl FaultInjection {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads [`PANIC_PROBE_ENV`].
    pub fn from_env() -> Self {
        match std::env::var(PANIC_PROBE_ENV) {
            Ok(spec) if !spec.is_empty() => Self::panic_on(&spec),
            _ => Self::none(),
        }
    }

    /// Panics for `TARGET[*COUNT][@AFTER]`.
    pub fn panic_on(spec: &str) -> Self {
        let (spec, after) = match spec.rsplit_once('@') {
            Some((s, n)) => (s, n.parse().unwrap_or(0)),
            None => (spec, 0),
        };
        let (target, count) = match spec.rsplit_once('*') {
            Some((t, n)) => (t, n.parse().unwrap_or(1)),
            None => (spec, 1),
        };
        tracing::warn!(
            env = PANIC_PROBE_ENV,
            host = target,
            count,
            after,
            "test fault injection is on"
        );
        FaultInjection {
            panic_target: Some((target.to_string(), AtomicU32::new(count))),
            after: AtomicU32::new(after),
        }
    }

    /// True when the probe of `target` should panic now (consumes one of the count).
    pub fn should_panic(&self, target: &str) -> bool {
        match &self.panic_target {
            Some((t, left)) if t == target => {
                let down = |n: u32| n.checked_sub(1);
                self.after
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, down)
                    .is_err()
                    && left
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, down)
                        .is_ok()
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_count_down() {
        let f = FaultInjection::panic_on("127.0.0.7*2");
        assert!(!f.should_panic("127.0.0.8"));
        assert!(f.should_panic("127.0.0.7"));
        assert!(f.should_panic("127.0.0.7"));
        assert!(!f.should_panic("127.0.0.7"));
        let f = FaultInjection::panic_on("[::1]:22");
        assert!(f.should_panic("[::1]:22"));
        let f = FaultInjection::panic_on("127.0.0.1:80*3");
        assert!(f.should_panic("127.0.0.1:80"));
        assert!(!FaultInjection::none().should_panic("x"));
        let f = FaultInjection::panic_on("127.0.0.1:22*2@1");
        assert!(!f.should_panic("127.0.0.1:22"));
        assert!(f.should_panic("127.0.0.1:22"));
        assert!(f.should_panic("127.0.0.1:22"));
        assert!(!f.should_panic("127.0.0.1:22"));
    }
}
