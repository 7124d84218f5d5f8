//! The ring owner: decides which targets this node owns, from the membership view.
//!
//! - [`placement`] is the pure, specified placement function (members, weights, replicas,
//!   targets → owners).
//! - [`RingOwner`] holds the view and the targets. Membership changes are debounced
//!   (`rebalance_delay`), then the ring is rebuilt, the ownership epoch bumped, and the owned
//!   set sent to the probe supervisor in one message.
//!
//! # Hand-off (make-before-break)
//! Targets this node loses stay probed here ("kept") until every other member of the new ring
//! has adopted it — each node announces, in its heartbeats, the digest of the ring its probes run
//! for. A new owner's probe actor probes at the first slot after it starts, and the old owner
//! probed every slot before that (each target has one phase cluster-wide), so no slot goes
//! unprobed; the cost is at most a round or two probed twice. Kept probes retire by finishing the
//! probe in flight. A node that leaves (SIGTERM) computes the ring without itself the same way,
//! and stops once the others have taken over (or a deadline passes).

pub mod placement;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;

use crate::membership::{MembershipMsg, MembershipView};
use crate::model::{NodeName, TargetKey, TargetSpec};
use crate::supervisor::{ProbeSupMsg, TreeRefs};
use placement::{Placement, Ring};

/// Ring settings (`[cluster] weight`, `replicas`, `rebalance_delay`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingSettings {
    /// This node's weight.
    pub weight: u32,
    /// Owners per target.
    pub replicas: u32,
    /// Quiet time after a membership change before the ring is rebuilt.
    pub rebalance_delay: Duration,
    /// Wait before the very first ring, so a node that is joining a cluster does not claim
    /// every target for itself first.
    pub initial_delay: Duration,
    /// How long before a dead member was last heard its slots still count as missed: results
    /// it had not yet flushed died with it (the sink's flush interval).
    pub unflushed: Duration,
}

impl Default for RingSettings {
    fn default() -> Self {
        RingSettings {
            weight: 1,
            replicas: 1,
            rebalance_delay: Duration::from_millis(100),
            initial_delay: Duration::ZERO,
            unflushed: Duration::ZERO,
        }
    }
}

/// The ring as last built, for the status API: members, placement of every target.
#[derive(Debug)]
pub struct RingView {
    /// Ownership epoch.
    pub epoch: u64,
    /// The ring.
    pub ring: Ring,
    /// Every configured target, in config order.
    pub keys: Arc<Vec<TargetKey>>,
    /// Owners of `keys[i]`, as member indexes, best first.
    pub placement: Arc<Placement>,
    /// Targets this node owns.
    pub owned: usize,
    /// Targets this node keeps during a hand-off.
    pub kept: usize,
}

impl RingView {
    /// The index of `key` in `keys`.
    pub fn position(&self, key: &TargetKey) -> Option<usize> {
        self.keys.iter().position(|k| k == key)
    }

    /// The owners' names of target `i`.
    pub fn owner_names(&self, i: usize) -> Vec<NodeName> {
        self.placement.owners[i]
            .iter()
            .map(|&m| self.ring.members()[m as usize].0.clone())
            .collect()
    }
}

/// The ring owner actor.
#[derive(Debug)]
pub struct RingOwner;

/// What the ring owner starts with.
#[derive(Debug)]
pub struct RingOwnerArgs {
    /// This node.
    pub me: NodeName,
    /// Every configured target.
    pub targets: Arc<[Arc<TargetSpec>]>,
    /// Ring settings.
    pub settings: RingSettings,
    /// Where membership and the probe supervisor are.
    pub refs: Arc<TreeRefs>,
}

/// What the ring owner reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingStatus {
    /// Ownership epoch.
    pub epoch: u64,
    /// Ring digest.
    pub digest: u64,
    /// Members in the ring.
    pub members: Vec<NodeName>,
    /// Targets owned.
    pub owned: usize,
    /// Targets kept during a hand-off.
    pub kept: usize,
}

/// Messages of the ring owner.
#[derive(Debug, RactorMessage)]
pub enum RingOwnerMsg {
    /// Membership has a new view.
    MembershipChanged(MembershipView),
    /// The debounce delay has passed: rebuild the ring from the latest view.
    Rebuild,
    /// The ring digest each other member has adopted.
    PeerDigests(BTreeMap<NodeName, u64>),
    /// Send the current assignment again (the probe supervisor restarted).
    Resend,
    /// This node leaves: hand every target over; reply once the others have taken over.
    Leave(RpcReplyPort<()>),
    /// Report the ring's state.
    Status(RpcReplyPort<RingStatus>),
}

/// The ring owner's state.
#[derive(Debug)]
pub struct RingOwnerState {
    me: NodeName,
    targets: Arc<[Arc<TargetSpec>]>,
    keys: Arc<Vec<TargetKey>>,
    settings: RingSettings,
    placement: Arc<Placement>,
    refs: Arc<TreeRefs>,
    view: Option<MembershipView>,
    rebuild_pending: bool,
    started: bool,
    ring: Option<Ring>,
    epoch: u64,
    owned: BTreeSet<usize>,
    keep: BTreeSet<usize>,
    peers: BTreeMap<NodeName, u64>,
    left: bool,
    leave_reply: Option<RpcReplyPort<()>>,
}

/// Of the `gained` targets (indices into `keys`), those whose owner in the ring being replaced
/// (`old_members`, placed as `old_owners`) has died, with the time from which their slots count
/// as missed: when it was last heard (the earliest, for a target with several dead owners), less
/// `unflushed`, since results it had not written yet died with it.
fn missed_by_dead_owners(
    gained: impl Iterator<Item = usize>,
    old_members: &[(NodeName, u32)],
    old_owners: &[Vec<u16>],
    keys: &[TargetKey],
    dead: &BTreeMap<NodeName, std::time::SystemTime>,
    unflushed: Duration,
) -> BTreeMap<TargetKey, std::time::SystemTime> {
    gained
        .filter_map(|i| {
            let since = old_owners
                .get(i)?
                .iter()
                .filter_map(|&o| old_members.get(usize::from(o)))
                .filter_map(|(name, _)| dead.get(name))
                .min()?;
            let since = since.checked_sub(unflushed).unwrap_or(*since);
            Some((keys.get(i)?.clone(), since))
        })
        .collect()
}

impl RingOwnerState {
    fn targets_of(&self, idx: &BTreeSet<usize>) -> Arc<[Arc<TargetSpec>]> {
        idx.iter().map(|&i| self.targets[i].clone()).collect()
    }

    fn publish_view(&self) {
        let Some(ring) = &self.ring else { return };
        let view = RingView {
            epoch: self.epoch,
            ring: ring.clone(),
            keys: self.keys.clone(),
            placement: self.placement.clone(),
            owned: self.owned.len(),
            kept: self.keep.len(),
        };
        *self
            .refs
            .ring_view
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(view));
    }

    fn send_assignment(
        &self,
        handed_off: Vec<TargetKey>,
        missed: BTreeMap<TargetKey, std::time::SystemTime>,
    ) {
        self.publish_view();
        let Some(ring) = &self.ring else { return };
        self.refs.probes.cast(ProbeSupMsg::Assign {
            epoch: self.epoch,
            digest: ring.digest(),
            targets: self.targets_of(&self.owned),
            keep: self.targets_of(&self.keep),
            handed_off,
            missed,
        });
    }

    fn schedule_rebuild(&mut self, myself: &ActorRef<RingOwnerMsg>) {
        if self.rebuild_pending {
            return;
        }
        self.rebuild_pending = true;
        let delay = if self.started {
            self.settings.rebalance_delay
        } else {
            self.settings.initial_delay
        };
        myself.send_after(delay, || RingOwnerMsg::Rebuild);
    }

    fn rebuild(&mut self) {
        self.rebuild_pending = false;
        self.started = true;
        let Some(view) = &self.view else { return };
        let mut members = view.members.clone();
        if self.left {
            members.remove(&self.me);
        }
        let ring = Ring::new(members, self.settings.replicas);
        let placement = ring.place(&self.keys);
        let new_owned: BTreeSet<usize> = match ring.index_of(&self.me) {
            Some(me) => placement.owned_by(me).collect(),
            None => BTreeSet::new(),
        };
        let missed = match &self.ring {
            Some(old) if !view.dead.is_empty() => missed_by_dead_owners(
                new_owned.difference(&self.owned).copied(),
                old.members(),
                &self.placement.owners,
                &self.keys,
                &view.dead,
                self.settings.unflushed,
            ),
            _ => BTreeMap::new(),
        };
        self.placement = Arc::new(placement);
        let lost: BTreeSet<usize> = self.owned.difference(&new_owned).copied().collect();
        let gained = new_owned.difference(&self.owned).count();
        let others = ring.members().iter().filter(|(n, _)| *n != self.me).count();
        self.keep = if others == 0 {
            BTreeSet::new()
        } else {
            self.keep
                .union(&lost)
                .filter(|i| !new_owned.contains(i))
                .copied()
                .collect()
        };
        self.epoch += 1;
        self.owned = new_owned;
        tracing::info!(
            epoch = self.epoch,
            digest = format_args!("{:016x}", ring.digest()),
            members = ring.members().len(),
            targets = self.targets.len(),
            owned = self.owned.len(),
            gained,
            lost = lost.len(),
            "ring rebuilt: {} member(s), this node owns {} of {} targets (+{} -{})",
            ring.members().len(),
            self.owned.len(),
            self.targets.len(),
            gained,
            lost.len()
        );
        self.ring = Some(ring);
        if !missed.is_empty() {
            tracing::info!(
                epoch = self.epoch,
                targets = missed.len(),
                "{} target(s) taken over from dead members; those whose slot passed since are probed now",
                missed.len()
            );
        }
        let handed_off = lost.iter().map(|&i| self.keys[i].clone()).collect();
        self.send_assignment(handed_off, missed);
        self.check_release();
    }

    /// Ends the hand-off once every other member runs the current ring.
    fn check_release(&mut self) {
        let Some(ring) = &self.ring else { return };
        let digest = ring.digest();
        let converged = ring
            .members()
            .iter()
            .filter(|(n, _)| *n != self.me)
            .all(|(n, _)| self.peers.get(n) == Some(&digest));
        if !self.keep.is_empty() && converged {
            tracing::info!(
                epoch = self.epoch,
                released = self.keep.len(),
                "hand-off complete: {} target(s) now probed by their new owners",
                self.keep.len()
            );
            self.keep.clear();
            self.send_assignment(Vec::new(), BTreeMap::new());
        }
        if self.keep.is_empty() && self.left {
            if let Some(reply) = self.leave_reply.take() {
                let _ = reply.send(());
            }
        }
    }
}

impl Actor for RingOwner {
    type Msg = RingOwnerMsg;
    type State = RingOwnerState;
    type Arguments = RingOwnerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<RingOwnerMsg>,
        args: RingOwnerArgs,
    ) -> Result<RingOwnerState, ActorProcessingErr> {
        Ok(RingOwnerState {
            me: args.me,
            keys: Arc::new(args.targets.iter().map(|t| t.key()).collect()),
            placement: Arc::new(Placement { owners: Vec::new() }),
            targets: args.targets,
            settings: args.settings,
            refs: args.refs,
            view: None,
            rebuild_pending: false,
            started: false,
            ring: None,
            epoch: 0,
            owned: BTreeSet::new(),
            keep: BTreeSet::new(),
            peers: BTreeMap::new(),
            left: false,
            leave_reply: None,
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<RingOwnerMsg>,
        state: &mut RingOwnerState,
    ) -> Result<(), ActorProcessingErr> {
        // After a restart membership is already running: ask it for the view.
        state.refs.membership.cast(MembershipMsg::Publish);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<RingOwnerMsg>,
        msg: RingOwnerMsg,
        state: &mut RingOwnerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RingOwnerMsg::MembershipChanged(view) => {
                if state.view.as_ref().map(|v| &v.members) != Some(&view.members) || !state.started
                {
                    state.view = Some(view);
                    state.schedule_rebuild(&myself);
                }
            }
            RingOwnerMsg::Rebuild => state.rebuild(),
            RingOwnerMsg::PeerDigests(peers) => {
                state.peers = peers;
                state.check_release();
            }
            RingOwnerMsg::Resend => state.send_assignment(Vec::new(), BTreeMap::new()),
            RingOwnerMsg::Leave(reply) => {
                state.left = true;
                state.leave_reply = Some(reply);
                state.rebuild();
            }
            RingOwnerMsg::Status(reply) => {
                let _ = reply.send(RingStatus {
                    epoch: state.epoch,
                    digest: state.ring.as_ref().map_or(0, |r| r.digest()),
                    members: state
                        .ring
                        .as_ref()
                        .map(|r| r.members().iter().map(|(n, _)| n.clone()).collect())
                        .unwrap_or_default(),
                    owned: state.owned.len(),
                    kept: state.keep.len(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProbeKind;
    use std::time::{Duration, SystemTime};

    #[test]
    fn only_targets_gained_from_a_dead_owner_count_as_missed_from_when_it_was_last_heard() {
        let name = |s: &str| NodeName::new(s).unwrap();
        let key = |i: usize| TargetKey {
            probe: ProbeKind::Icmp,
            id: format!("127.0.0.{i}").into(),
        };
        let members = [(name("a"), 1), (name("b"), 1), (name("c"), 1)];
        // t0: a; t1: b; t2: c; t3: b and c (two replicas); t4: b, but not gained here.
        let owners = vec![vec![0], vec![1], vec![2], vec![1, 2], vec![1]];
        let keys: Vec<TargetKey> = (0..5).map(key).collect();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let dead = BTreeMap::from([(name("b"), t), (name("c"), t - Duration::from_secs(2))]);
        let flush = Duration::from_secs(1);
        let missed = missed_by_dead_owners(
            [0, 1, 2, 3].into_iter(),
            &members,
            &owners,
            &keys,
            &dead,
            flush,
        );
        assert_eq!(
            missed,
            BTreeMap::from([
                (key(1), t - flush),
                (key(2), t - Duration::from_secs(3)),
                (key(3), t - Duration::from_secs(3)),
            ])
        );
        // Nobody dead: nothing missed.
        let none = missed_by_dead_owners(0..5, &members, &owners, &keys, &BTreeMap::new(), flush);
        assert!(none.is_empty());
    }
}
