//! Supervision: the root supervisor and the probe supervisor, with restart policy from
//! [`crate::restart`].
//!
//! - [`root`]: starts ResultSink, ProbeSupervisor, RingOwner and Membership in that order
//!   (consumers before producers), restarts a failed one after a backoff within its budget,
//!   stops the node when a budget is spent, and shuts down in reverse order.
//! - [`probes`]: one probe actor per owned target; restarts per target, quarantines a target
//!   whose actor keeps failing, never escalates.
//!
//! Children reach each other through [`TreeRefs`], slots the root fills on every (re)start, so a
//! restarted child is found by the others without global names.

pub mod probes;
pub mod root;

use std::sync::atomic::AtomicU64;
use std::sync::RwLock;

use ractor::{ActorRef, Message};

use crate::membership::MembershipMsg;
use crate::ring::RingOwnerMsg;
use crate::sink::SinkMsg;
pub use probes::{ProbeSupMsg, ProbeSupervisor};
pub use root::{RootArgs, RootMsg, RootSupervisor, ShutdownReport};

/// The current reference to one child, if it is running.
#[derive(Debug)]
pub struct Slot<M: Message>(RwLock<Option<ActorRef<M>>>);

impl<M: Message> Default for Slot<M> {
    fn default() -> Self {
        Slot(RwLock::new(None))
    }
}

impl<M: Message> Slot<M> {
    /// Points the slot at a (re)started child, or empties it.
    pub fn set(&self, actor: Option<ActorRef<M>>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = actor;
    }

    /// The child, if running.
    pub fn get(&self) -> Option<ActorRef<M>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sends to the child; false when it is not running (restarting or stopped).
    pub fn cast(&self, msg: M) -> bool {
        match &*self.0.read().unwrap_or_else(|p| p.into_inner()) {
            Some(actor) => actor.cast(msg).is_ok(),
            None => false,
        }
    }
}

/// The node's infrastructure children, as the root last started them.
#[derive(Debug, Default)]
pub struct TreeRefs {
    /// The result sink.
    pub sink: Slot<SinkMsg>,
    /// The probe supervisor.
    pub probes: Slot<ProbeSupMsg>,
    /// The ring owner.
    pub ring: Slot<RingOwnerMsg>,
    /// Membership.
    pub membership: Slot<MembershipMsg>,
    /// The root supervisor.
    pub root: Slot<RootMsg>,
    /// Digest of the ring the running probes were assigned by (sent in heartbeats).
    pub adopted: AtomicU64,
    /// Latest results and counters, for status and metrics.
    pub state: std::sync::Arc<crate::state::NodeState>,
    /// The ring as last built.
    pub ring_view: RwLock<Option<std::sync::Arc<crate::ring::RingView>>>,
    /// The members this node knows, as last seen by membership.
    pub members: RwLock<Vec<crate::membership::MemberRow>>,
}
