//! The supervisors' messages, apart from the actors, so that the actors they supervise can
//! name them without depending on the supervisors themselves.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use ractor::RpcReplyPort;
use ractor_cluster::RactorMessage;

use crate::catalog::set::TargetList;
use crate::membership::wire::HandoffState;
use crate::model::{TargetKey, TargetSpec};

/// The root's infrastructure children, in start order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// NotifyActor (only when `[[notify]]` is set).
    Notify,
    /// ResultSink.
    Sink,
    /// ConfirmActor (only when targets have several owners).
    Confirm,
    /// ProbeSupervisor.
    Probes,
    /// RingOwner.
    Ring,
    /// Catalog.
    Catalog,
    /// Membership.
    Membership,
}

impl Role {
    /// Consumers before producers.
    pub const START_ORDER: [Role; 7] = [
        Role::Notify,
        Role::Sink,
        Role::Confirm,
        Role::Probes,
        Role::Ring,
        Role::Catalog,
        Role::Membership,
    ];

    /// The name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Role::Notify => "notify",
            Role::Sink => "result_sink",
            Role::Confirm => "confirm",
            Role::Probes => "probe_supervisor",
            Role::Ring => "ring_owner",
            Role::Catalog => "catalog",
            Role::Membership => "membership",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Messages of the root.
#[derive(Debug, RactorMessage)]
pub enum RootMsg {
    /// The backoff of a failed child has passed: start it again.
    Restart(Role),
    /// Stop everything in reverse order, drain the sink, and reply.
    Shutdown(RpcReplyPort<ShutdownReport>),
    /// Something this node cannot continue after (e.g. the cluster refused its name).
    Fatal(String),
    /// The node's targets now (a reload): kept for restarts, passed to the catalog.
    SetTargets(TargetList),
}

/// What a shutdown achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Probe actors that were running.
    pub probes_stopped: usize,
    /// Results written since the sink (last) started.
    pub results_written: u64,
    /// Results dropped since the sink (last) started.
    pub results_dropped: u64,
    /// Of those, results still buffered when the sink could not drain in time (a writer stuck).
    pub results_unwritten: u64,
}

/// Messages of the probe supervisor.
#[derive(Debug, RactorMessage)]
pub enum ProbeSupMsg {
    /// The full set of targets this node owns under `epoch`, and those it keeps probing until
    /// their new owners have taken over.
    Assign {
        /// Ownership epoch.
        epoch: u64,
        /// Digest of the ring the assignment comes from (published once applied).
        digest: u64,
        /// Every owned target.
        targets: Arc<[Arc<TargetSpec>]>,
        /// Targets owned elsewhere now, still probed here until the hand-off completes.
        keep: Arc<[Arc<TargetSpec>]>,
        /// Targets just handed to other nodes: their states are sent along.
        handed_off: Vec<TargetKey>,
        /// Targets taken over from a member that died, with when it was last heard: a slot
        /// of theirs after that was missed and is made up for at once.
        missed: BTreeMap<TargetKey, SystemTime>,
    },
    /// Target states handed over by another node.
    Inherit(Vec<HandoffState>),
    /// Restart the probe actor of `key` (its backoff has passed) if still `generation`.
    Respawn {
        /// The target.
        key: TargetKey,
        /// The generation that failed.
        generation: u64,
    },
    /// End the quarantine of `key` and try its probe actor again.
    Release {
        /// The target.
        key: TargetKey,
    },
    /// Check the overrun counter.
    RoundCheck,
    /// Check whether the newly owned targets all have their first result (then log them).
    FirstResults,
    /// Many probe actors stopped: hand the memory they freed back to the operating system.
    Trim,
    /// Stop every probe actor and reply with how many were running (shutdown).
    StopAll(RpcReplyPort<usize>),
    /// Report counts.
    Status(RpcReplyPort<ProbeSupStatus>),
}

/// Counts reported by [`ProbeSupMsg::Status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSupStatus {
    /// Ownership epoch.
    pub epoch: u64,
    /// Targets owned.
    pub owned: usize,
    /// Probe actors running.
    pub running: usize,
    /// Targets quarantined.
    pub quarantined: usize,
    /// Probe actor restarts since start.
    pub restarts: u64,
}
