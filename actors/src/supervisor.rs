//! Supervision: the root supervisor and the probe supervisor, with restart policy from
//! [`crate::restart`].
//!
//! - [`root`]: starts ResultSink, ProbeSupervisor, RingOwner and Membership in that order
//!   (consumers before producers), restarts a failed one after a backoff within its budget,
//!   stops the node when a budget is spent, and shuts down in reverse order. It holds the
//!   [`LinkSetter`](crate::link::LinkSetter)s of its children and re-points them at every
//!   restart, so a restarted child is found by the others without global names.
//! - [`probes`]: one probe actor per owned target; restarts per target, quarantines a target
//!   whose actor keeps failing, never escalates.
//! - [`first_results`]: the first results of newly owned targets, summarised per ring change.
//! - [`msg`]: both supervisors' messages.

pub mod first_results;
pub mod msg;
pub mod probes;
pub mod root;

pub use msg::{ProbeSupMsg, ProbeSupStatus, Role, RootMsg, ShutdownReport};
pub use probes::{ProbeSupArgs, ProbeSupervisor};
pub use root::{ChildLinks, RootArgs, RootSupervisor};
