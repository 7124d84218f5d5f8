//! Membership: which nodes are in the cluster, and keeping the cluster connected.
//!
//! - [`table`]: members, their state (alive, suspect, dead, left) and the failure detector (pure).
//! - [`dialer`]: which addresses to dial and when: seeds and known members, capped exponential
//!   backoff with jitter, forever (pure).
//! - [`wire`]: the messages membership actors exchange (JSON in one remotable message).
//! - [`transport`]: listener, source-bound dialer, ractor_cluster event adapter, the port actor.
//! - [`actor`]: the [`Membership`] actor that runs them.
//!
//! Without `[cluster] listen` a node is a cluster of one, and none of the network parts run.

pub mod actor;
pub mod dialer;
pub mod table;
pub mod tls;
pub mod transport;
pub mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

pub use actor::{Membership, MembershipArgs, MembershipMsg};

use crate::model::NodeName;

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
    /// each was last heard. A target such a member owned may have missed its slots since.
    pub dead: BTreeMap<NodeName, std::time::SystemTime>,
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

/// One member as membership sees it, for the status API.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MemberRow {
    /// Name.
    pub name: String,
    /// `alive`, `suspect`, `dead`, `left` (this node: `alive`).
    pub state: &'static str,
    /// Address (`ip:port`), empty for a single node.
    pub address: String,
    /// Ring weight.
    pub weight: u32,
    /// True for this node.
    pub local: bool,
    /// Targets it reported as unprobed for too long (in its last heartbeat).
    pub unprobed: u64,
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
    /// Digest of the configured targets (peers with another digest are warned about).
    pub targets_digest: u64,
    /// TLS for every cluster link; `None` for plain TCP.
    pub tls: Option<tls::ClusterTls>,
}
