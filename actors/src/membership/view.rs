//! Membership's plain data: the view the ring is built from, the member rows readers see, and
//! the cluster settings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::tls::ClusterTls;
use crate::model::NodeName;

/// A member's state: `"alive"`, `"suspect"`, `"dead"` or `"left"` in answers and metrics.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Heartbeats arrive.
    Alive,
    /// Silent for a while; still in the ring.
    Suspect,
    /// Silent too long, or its connections closed; out of the ring.
    Dead,
    /// Announced that it leaves; out of the ring.
    Left,
}

impl MemberState {
    /// Lower-case name for logs and status.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        }
    }

    /// Every state.
    pub const ALL: [MemberState; 4] = [
        MemberState::Alive,
        MemberState::Suspect,
        MemberState::Dead,
        MemberState::Left,
    ];

    /// True for members in the ring (alive or suspect).
    pub fn in_ring(self) -> bool {
        matches!(self, MemberState::Alive | MemberState::Suspect)
    }
}

/// The cluster as this node sees it: the members in the ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipView {
    /// This node.
    pub me: NodeName,
    /// Members in the ring (alive or suspect), this node included, with their weights; sorted,
    /// so every node iterates alike.
    pub members: BTreeMap<NodeName, u32>,
    /// Increases with every change of `members`.
    pub version: u64,
    /// Members that died (crashed or froze; not those that left), with the wall-clock time
    /// each was last heard, and members handing their targets off because they cannot keep
    /// their schedule (weight 0), from when they fell behind. A target such a member owned
    /// may have missed its slots since: whoever gains it probes it at once if a slot passed.
    pub dead: BTreeMap<NodeName, SystemTime>,
}

impl MembershipView {
    /// The view of a node that is alone.
    pub fn single(me: NodeName, weight: u32) -> Self {
        MembershipView {
            members: BTreeMap::from([(me.clone(), weight)]),
            me,
            version: 1,
            dead: BTreeMap::new(),
        }
    }
}

/// One member as membership sees it, for the status API and metrics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRow {
    /// Name.
    pub name: NodeName,
    /// Its state (this node: alive).
    pub state: MemberState,
    /// Address (`ip:port`), empty for a single node.
    pub address: String,
    /// Ring weight.
    pub weight: u32,
    /// True for this node.
    pub local: bool,
    /// Targets it reported as unprobed for too long (in its last heartbeat).
    pub unprobed: u64,
}

impl MemberRow {
    /// This node's own row.
    pub fn local(name: NodeName, address: String, weight: u32) -> Self {
        MemberRow {
            name,
            state: MemberState::Alive,
            address,
            weight,
            local: true,
            unprobed: 0,
        }
    }
}

/// Settings of a clustered node (`[cluster]`).
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// Address the cluster listener binds.
    pub listen: SocketAddr,
    /// Address other nodes dial (the listen address unless that is unspecified).
    pub advertise: SocketAddr,
    /// Seeds, `host:port`.
    pub seeds: Vec<String>,
    /// Shared secret of the cluster.
    pub cookie: String,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Silence before a member is suspect.
    pub suspect_after: Duration,
    /// Silence before a member is dead.
    pub dead_after: Duration,
    /// Longest wait between two dials of an unreachable address.
    pub redial_max: Duration,
    /// TLS for every cluster link; `None` for plain TCP.
    pub tls: Option<ClusterTls>,
}
