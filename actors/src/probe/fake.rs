//! A scripted probe for actor unit tests (never the only test of a real probe kind).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::model::{DownReason, ProbeOutcome, TargetSpec};

/// Answers each target from a script, then with a default; each answer takes `delay`.
#[derive(Debug)]
pub(crate) struct FakeProbe {
    script: Mutex<HashMap<String, VecDeque<(Duration, ProbeOutcome)>>>,
    default: (Duration, ProbeOutcome),
    calls: Mutex<Vec<(String, tokio::time::Instant)>>,
}

impl FakeProbe {
    pub(crate) fn always_up(delay: Duration) -> Self {
        FakeProbe {
            script: Mutex::default(),
            default: (delay, ProbeOutcome::Up { rtt: delay }),
            calls: Mutex::default(),
        }
    }

    pub(crate) fn script(&self, target: &str, steps: Vec<(Duration, ProbeOutcome)>) {
        self.script
            .lock()
            .unwrap()
            .insert(target.to_string(), steps.into());
    }

    pub(crate) fn calls(&self) -> Vec<(String, tokio::time::Instant)> {
        self.calls.lock().unwrap().clone()
    }

    pub(crate) async fn check(&self, target: &TargetSpec) -> ProbeOutcome {
        self.calls
            .lock()
            .unwrap()
            .push((target.id.to_string(), tokio::time::Instant::now()));
        let step = self
            .script
            .lock()
            .unwrap()
            .get_mut(&*target.id)
            .and_then(|q| q.pop_front())
            .unwrap_or_else(|| self.default.clone());
        // Bounded as a real check bounds itself: by its timeout (ICMP: after its last echo).
        let limit = target.check.span(target.timeout);
        if step.0 > limit {
            tokio::time::sleep(limit).await;
            return ProbeOutcome::Down {
                reason: DownReason::Timeout,
            };
        }
        tokio::time::sleep(step.0).await;
        step.1
    }
}

/// Names under `.invalid` fail to resolve without asking any DNS server.
pub(crate) fn resolve(name: &str) -> Option<Result<IpAddr, DownReason>> {
    name.ends_with(".invalid")
        .then(|| Err(DownReason::Unresolved(format!("{name}: not found"))))
}
