//! The node's published state, read through one [`NodeView`] handle.
//!
//! Each piece is published by the one actor that owns it, as the latest value of a tokio
//! `watch` channel (no queue to grow; readers borrow, never `call`):
//!
//! | piece | published by | read by |
//! |---|---|---|
//! | [`RingSnapshot`]: ring, placement, epoch, owned/kept counts | ring owner | HTTP, metrics, status |
//! | [`MemberRow`]s: members and their states | membership | HTTP, metrics, status |
//! | [`Peer`]s: the ports of alive members | membership | status gathering, the probe supervisor's hand-offs |
//! | [`Ownership`]: the epoch and ring digest the running probes were assigned by | probe supervisor | probe actors (stamp results), membership (heartbeats), status |
//! | [`NodeState`]: latest results, confirmed states, counters | the sink, the probe actors and supervisors, each for its own entries | HTTP, metrics, status, heartbeats |
//!
//! The write halves ([`Publishers`]) are created once per node and held by the root
//! supervisor, which hands each one to its owner at every (re)start, so readers keep their
//! handle across restarts.

use std::sync::Arc;

use ractor::ActorRef;
use tokio::sync::watch;

use crate::membership::view::MemberRow;
use crate::membership::wire::PortMsg;
use crate::model::NodeName;
use crate::ring::snapshot::RingSnapshot;
use crate::state::NodeState;

/// What the running probe actors were assigned by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ownership {
    /// The ownership epoch, stamped on every result and event (0 before the first assignment).
    pub epoch: u64,
    /// Digest of the ring the assignment came from (announced in heartbeats: peers release
    /// their hand-offs once every member has adopted the new ring).
    pub digest: u64,
}

/// A member this node can talk to: alive or suspect, with a connected port.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Its name.
    pub name: NodeName,
    /// Its port.
    pub port: ActorRef<PortMsg>,
}

/// The write halves of the node's published state; each goes to its one owner.
#[derive(Debug)]
pub struct Publishers {
    /// For the ring owner.
    pub ring: watch::Sender<Option<Arc<RingSnapshot>>>,
    /// For membership.
    pub members: watch::Sender<Arc<[MemberRow]>>,
    /// For membership.
    pub peers: watch::Sender<Arc<[Peer]>>,
    /// For the probe supervisor.
    pub ownership: watch::Sender<Ownership>,
}

/// Read-only handle on everything the node publishes. Cheap to clone.
#[derive(Clone, Debug)]
pub struct NodeView {
    node: NodeName,
    state: Arc<NodeState>,
    ring: watch::Receiver<Option<Arc<RingSnapshot>>>,
    members: watch::Receiver<Arc<[MemberRow]>>,
    peers: watch::Receiver<Arc<[Peer]>>,
    ownership: watch::Receiver<Ownership>,
}

impl NodeView {
    /// A view of node `node` whose counters and results live in `state`, and the publishers
    /// that feed it.
    pub fn new(node: NodeName, state: Arc<NodeState>) -> (Publishers, NodeView) {
        let (ring, ring_rx) = watch::channel(None);
        let (members, members_rx) = watch::channel(Arc::from(Vec::new()));
        let (peers, peers_rx) = watch::channel(Arc::from(Vec::new()));
        let (ownership, ownership_rx) = watch::channel(Ownership::default());
        (
            Publishers {
                ring,
                members,
                peers,
                ownership,
            },
            NodeView {
                node,
                state,
                ring: ring_rx,
                members: members_rx,
                peers: peers_rx,
                ownership: ownership_rx,
            },
        )
    }

    /// This node's name.
    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// Latest results, confirmed states and counters.
    pub fn state(&self) -> &NodeState {
        &self.state
    }

    /// The ring as last built (None before the first).
    pub fn ring(&self) -> Option<Arc<RingSnapshot>> {
        self.ring.borrow().clone()
    }

    /// The members as membership last saw them, sorted by name, this node included.
    pub fn members(&self) -> Arc<[MemberRow]> {
        self.members.borrow().clone()
    }

    /// The alive members this node can talk to.
    pub fn peers(&self) -> Arc<[Peer]> {
        self.peers.borrow().clone()
    }

    /// What the running probes were assigned by.
    pub fn ownership(&self) -> Ownership {
        *self.ownership.borrow()
    }

    /// A receiver of the ownership, for the probe actors (they read it on every result).
    pub fn ownership_watch(&self) -> watch::Receiver<Ownership> {
        self.ownership.clone()
    }
}
