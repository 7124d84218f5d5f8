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
//! | this node's target set ([`BucketedSet`]) | catalog | the port (peers' questions), membership (heartbeats) |
//! | the catalog in brief ([`CatalogSummary`]) | catalog | HTTP, metrics, status |
//! | the config's state ([`ConfigStatus`]): last reload, its error, keys needing a restart | the binary's reloader | HTTP, metrics, status |
//!
//! The write halves ([`Publishers`]) are created once per node and held by the root
//! supervisor, which hands each one to its owner at every (re)start, so readers keep their
//! handle across restarts.

use std::sync::Arc;

use ractor::ActorRef;
use tokio::sync::watch;

use crate::catalog::set::BucketedSet;
use crate::catalog::state::CatalogSummary;
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

/// How the last reload of the config went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigStatus {
    /// False after a reload that was refused (the node runs on the config before it).
    pub last_reload_successful: bool,
    /// When the config now running was loaded (at start, or by the last good reload).
    pub last_success: Option<std::time::SystemTime>,
    /// Why the last reload was refused, with `PATH:LINE:COL`.
    pub last_error: Option<String>,
    /// Keys changed in the file that take effect only after a restart.
    pub needs_restart: Vec<String>,
    /// Sources (files, HTTP) whose last read failed, with why; their last good content is in
    /// use.
    pub source_errors: std::collections::BTreeMap<String, String>,
    /// Failed reads (of files, or parses of file_sd and http_sd lists) per source, since start.
    pub source_read_errors: std::collections::BTreeMap<String, u64>,
    /// Failed http_sd requests per source, since start.
    pub http_sd_failures: std::collections::BTreeMap<String, u64>,
    /// Re-reads of the target sources since start, by what triggered them (`watch`: a watched
    /// file changed; `interval`: refresh_interval passed).
    pub refreshes: std::collections::BTreeMap<String, u64>,
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
    /// For the catalog.
    pub own_set: watch::Sender<Arc<BucketedSet>>,
    /// For the catalog.
    pub catalog: watch::Sender<Arc<CatalogSummary>>,
    /// For the binary's reloader (held outside the tree).
    pub config: watch::Sender<Arc<ConfigStatus>>,
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
    own_set: watch::Receiver<Arc<BucketedSet>>,
    catalog: watch::Receiver<Arc<CatalogSummary>>,
    config: watch::Receiver<Arc<ConfigStatus>>,
}

impl NodeView {
    /// A view of node `node` whose counters and results live in `state`, and the publishers
    /// that feed it.
    pub fn new(node: NodeName, state: Arc<NodeState>) -> (Publishers, NodeView) {
        let (ring, ring_rx) = watch::channel(None);
        let (members, members_rx) = watch::channel(Arc::from(Vec::new()));
        let (peers, peers_rx) = watch::channel(Arc::from(Vec::new()));
        let (ownership, ownership_rx) = watch::channel(Ownership::default());
        let (own_set, own_set_rx) = watch::channel(Arc::default());
        let (catalog, catalog_rx) = watch::channel(Arc::default());
        let (config, config_rx) = watch::channel(Arc::new(ConfigStatus {
            last_reload_successful: true,
            ..ConfigStatus::default()
        }));
        (
            Publishers {
                ring,
                members,
                peers,
                ownership,
                own_set,
                catalog,
                config,
            },
            NodeView {
                node,
                state,
                ring: ring_rx,
                members: members_rx,
                peers: peers_rx,
                ownership: ownership_rx,
                own_set: own_set_rx,
                catalog: catalog_rx,
                config: config_rx,
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

    /// This node's target set.
    pub fn own_set(&self) -> Arc<BucketedSet> {
        self.own_set.borrow().clone()
    }

    /// The catalog in brief.
    pub fn catalog(&self) -> Arc<CatalogSummary> {
        self.catalog.borrow().clone()
    }

    /// How the last reload went.
    pub fn config(&self) -> Arc<ConfigStatus> {
        self.config.borrow().clone()
    }

    /// A receiver of the ownership, for the probe actors (they read it on every result).
    pub fn ownership_watch(&self) -> watch::Receiver<Ownership> {
        self.ownership.clone()
    }
}
