//! The status API's answers as typed structs: serialised for HTTP and for peers, deserialised
//! by the node that gathers them and by the `ringpoll status` and `owner` commands.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::set::Entry;
use crate::membership::view::MemberState;
use crate::model::{NodeName, ProbeKind, ResultLine};
use crate::probe::health::TargetState;

/// A question one node asks another (JSON inside `PortMsg::Query`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "q", rename_all = "snake_case")]
pub enum PeerQuery {
    /// Its summary: a [`NodeStatus`].
    Status,
    /// Its latest result per target it probes, only those in `state` when set: a list of
    /// [`TargetReport`]s.
    Targets {
        /// Confirmed state to keep.
        state: Option<TargetState>,
    },
    /// Its latest result of one target, if it has one: an optional [`TargetReport`].
    Latest {
        /// Probe kind.
        probe: ProbeKind,
        /// Target id.
        target: String,
    },
    /// Its target set's bucket digests: a [`SetDigests`].
    SetDigests,
    /// The entries of some buckets of its target set: a [`SetBuckets`].
    SetBuckets {
        /// The buckets.
        buckets: Vec<u16>,
    },
}

/// A member's target set in digests (see `crate::catalog::set`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetDigests {
    /// The set's digest.
    pub digest: u64,
    /// The digest of each of the 4,096 buckets.
    pub buckets: Vec<u64>,
}

/// Some buckets of a member's target set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetBuckets {
    /// The set's digest.
    pub digest: u64,
    /// Each bucket asked for, with its entries.
    pub buckets: Vec<(u16, Vec<Entry>)>,
}

/// One node's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node.
    pub node: NodeName,
    /// Its ownership epoch.
    pub epoch: u64,
    /// Digest of its ring (hex), once it has one.
    pub ring_digest: Option<String>,
    /// Targets it owns.
    pub owned: usize,
    /// Targets it keeps during a hand-off.
    pub kept: usize,
    /// Targets it probes (owned and kept).
    pub running: usize,
    /// Of those, confirmed up.
    pub up: usize,
    /// Of those, confirmed down.
    pub down: usize,
    /// Of its targets, up but seen down from fewer vantages than `confirm` needs.
    #[serde(default)]
    pub degraded: usize,
    /// Actor restarts by role.
    pub restarts: BTreeMap<String, u64>,
    /// Results dropped.
    pub results_dropped: u64,
    /// Results waiting in the sink.
    pub results_buffered: u64,
    /// Targets it probes with no recent result.
    pub unprobed: usize,
}

/// A target's latest result, with its confirmed state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetReport {
    /// The result, as in the results file.
    #[serde(flatten)]
    pub result: ResultLine<'static>,
    /// The confirmed state (null before the first result was confirmed); with several owners,
    /// the cluster's.
    pub state: Option<TargetState>,
    /// Up, but seen down from fewer vantages than `confirm` needs (several owners only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub degraded: bool,
    /// Each owner's view, when the target has several owners and the node asked knows them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vantages: Option<BTreeMap<String, TargetState>>,
    /// When the node asked wrote the target's last state event (RFC 3339), if it wrote one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Its last results on the node asked, oldest first (in single-target answers only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<crate::state::Recent>,
}

/// `GET /targets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetsAnswer {
    /// `local` or `cluster`.
    pub scope: String,
    /// The node asked.
    pub node: NodeName,
    /// Targets listed.
    pub count: usize,
    /// Latest result per target, sorted by probe and target.
    pub targets: Vec<TargetReport>,
    /// Members that did not answer (cluster scope only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_answering: Option<Vec<NodeName>>,
}

/// `GET /status`: the cluster as the node asked sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The node asked.
    pub node: NodeName,
    /// Its epoch.
    pub epoch: u64,
    /// Its ring digest.
    pub ring_digest: Option<String>,
    /// Replicas per target.
    pub replicas: Option<u32>,
    /// Target counts.
    pub targets: TargetCounts,
    /// This node's sink.
    pub results: ResultCounts,
    /// Every member, with what it reported.
    pub members: Vec<MemberStatus>,
    /// Members that did not answer in time.
    pub not_answering: Vec<NodeName>,
    /// The config this node runs, and how its last reload went.
    pub config: ConfigReport,
}

/// The config part of [`ClusterStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigReport {
    /// False after a reload that was refused (the node runs on the config before it).
    pub last_reload_successful: bool,
    /// When the config now running was loaded (RFC 3339).
    pub last_reload_success: Option<String>,
    /// Why the last reload was refused.
    pub last_error: Option<String>,
    /// Keys changed in the file that take effect only after a restart.
    pub needs_restart: Vec<String>,
    /// Target sources whose last read failed (their last good content is in use), with why.
    pub source_errors: BTreeMap<String, String>,
}

/// Target counts of [`ClusterStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetCounts {
    /// Targets cluster-wide: every target some alive member lists.
    pub total: usize,
    /// Of those, targets not listed by every alive member.
    pub not_everywhere: usize,
    /// Owned by the node asked.
    pub owned: usize,
    /// Kept by it during a hand-off.
    pub kept: usize,
    /// Up, of those it probes.
    pub up: usize,
    /// Down, of those it probes.
    pub down: usize,
    /// Degraded, of those it owns (several owners only).
    #[serde(default)]
    pub degraded: usize,
}

/// The sink counters of [`ClusterStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultCounts {
    /// Waiting in memory.
    pub buffered: u64,
    /// Dropped.
    pub dropped: u64,
}

/// One member in [`ClusterStatus`]; the counts are what it answered (null if it did not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Name.
    pub name: NodeName,
    /// State as the node asked sees it.
    pub state: MemberState,
    /// Cluster address.
    pub address: String,
    /// Ring weight.
    pub weight: u32,
    /// True for the node asked.
    pub local: bool,
    /// Targets it owns in the ring.
    pub targets: usize,
    /// Its share of all replicas (0–1).
    pub share: f64,
    /// Targets up.
    pub up: Option<usize>,
    /// Targets down.
    pub down: Option<usize>,
    /// Actor restarts, all roles.
    pub restarts: Option<u64>,
    /// Targets with no recent result.
    pub unprobed: Option<usize>,
    /// Results dropped.
    pub results_dropped: Option<u64>,
    /// The digest of its target set (hex), as this node holds it.
    pub target_set: Option<String>,
    /// Targets in its set.
    pub target_count: Option<usize>,
}

/// `GET /owner/{target}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnerAnswer {
    /// The target id.
    pub target: String,
    /// Its probe kind.
    pub probe: ProbeKind,
    /// Its owners, best first.
    pub owners: Vec<NodeName>,
    /// The members whose target sets list it: the only ones that may own it.
    pub listed_by: Vec<NodeName>,
    /// Replicas per target.
    pub replicas: u32,
    /// The ring's epoch on the node asked.
    pub epoch: u64,
    /// The ring's digest (hex).
    pub ring_digest: String,
    /// Why these owners.
    pub why: Why,
    /// The latest result, from this node or asked of the owners.
    pub last_result: Option<TargetReport>,
}

/// Why a target has its owners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Why {
    /// The target's hash (hex).
    pub target_hash: String,
    /// Every member ranked by its preference for the target, best first (those that do not
    /// list it are passed over).
    pub preference: Vec<Preference>,
    /// How the ranking becomes owners.
    pub note: String,
}

/// One member's rank for a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preference {
    /// The member.
    pub member: NodeName,
    /// Its weight.
    pub weight: u32,
    /// Its rendezvous score (hex).
    pub score: String,
}

/// `GET /plan`: what would move if a member left or joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Configured targets.
    pub targets: usize,
    /// Targets that would gain an owner.
    pub moved: usize,
    /// Targets that would have no owner at all: listed by no remaining member (all of them when
    /// the only member leaves).
    #[serde(default)]
    pub unowned: usize,
    /// Moves from member to member.
    pub moves: Vec<Flow>,
    /// The targets that would move (`probe/id`).
    pub moved_targets: Vec<String>,
    /// The digest of the ring after the change.
    pub ring_digest_after: String,
}

/// Targets moving from one member to another in a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// From (or `(new replica)`).
    pub from: String,
    /// To.
    pub to: String,
    /// How many.
    pub targets: usize,
}
