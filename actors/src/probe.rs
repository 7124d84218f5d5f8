//! Probes: one actor per owned target, each running one kind of check.
//!
//! - [`schedule`]: when a target is probed (pure).
//! - [`health`]: confirmed up/down state with rise/fall thresholds (pure).
//! - [`echo`]: several echoes per ICMP probe, their loss and latency statistics (pure).
//! - [`icmp`], [`tcp`], [`ssh`]: the checks, each an async function returning a
//!   [`ProbeOutcome`](crate::model::ProbeOutcome); [`engine`] opens them once and dispatches
//!   on the target's [`Check`](crate::model::Check).
//! - [`actor`]: the [`ProbeActor`](actor::ProbeActor) shell: one probe in flight, the next
//!   scheduled at its slot, results cast to the sink.
//!
//! A down target is data ([`ProbeOutcome::Down`](crate::model::ProbeOutcome::Down)); only a
//! broken invariant fails an actor. A problem with the prober itself (no permission for ICMP
//! sockets) is found when the node starts, before any actor runs.
//!
//! Adding a probe kind: a file here with its check, a [`Check`](crate::model::Check) variant
//! with its settings, and one arm in [`engine`]; no actor changes.

pub mod actor;
pub mod echo;
pub mod engine;
pub mod error;
#[cfg(test)]
pub(crate) mod fake;
pub mod health;
pub mod icmp;
pub mod pace;
pub mod schedule;
pub mod ssh;
pub mod sweep;
pub mod tcp;

pub use actor::{ProbeActor, ProbeArgs, ProbeContext, ProbeMsg};
pub use engine::{resolve, CheckReport, FirstAnswer, ProbeEngine, RESOLVE_TTL};
pub use error::ProbeSetupError;
