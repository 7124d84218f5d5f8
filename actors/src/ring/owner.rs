//! The ring owner actor: holds the membership view and the targets, rebuilds the ring when
//! membership changes (debounced), and sends this node's assignment to the probe supervisor in
//! one message. What changes between two rings comes from [`Reassignment`]; this actor only
//! keeps the state and does the sending.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;

use super::msg::RingOwnerMsg;
use super::placement::{Placement, Ring};
use super::reassign::{Assignment, Layout, Reassignment};
use super::snapshot::{RingSettings, RingSnapshot};
use crate::link::Link;
use crate::membership::msg::MembershipMsg;
use crate::membership::view::MembershipView;
use crate::model::{NodeName, TargetKey, TargetSpec};
use crate::supervisor::msg::ProbeSupMsg;

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
    /// Where assignments go.
    pub probes: Link<ProbeSupMsg>,
    /// Asked for the view again after a restart.
    pub membership: Link<MembershipMsg>,
    /// Where the ring is published for readers.
    pub publish: watch::Sender<Option<Arc<RingSnapshot>>>,
}

/// The ring owner's state.
#[derive(Debug)]
pub struct RingOwnerState {
    args: RingOwnerArgs,
    keys: Arc<Vec<TargetKey>>,
    placement: Arc<Placement>,
    view: Option<MembershipView>,
    rebuild_pending: bool,
    started: bool,
    ring: Option<Ring>,
    epoch: u64,
    assignment: Assignment,
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
    dead: &BTreeMap<NodeName, SystemTime>,
    unflushed: Duration,
) -> BTreeMap<TargetKey, SystemTime> {
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
        idx.iter().map(|&i| self.args.targets[i].clone()).collect()
    }

    fn send_assignment(&self, handed_off: Vec<TargetKey>, missed: BTreeMap<TargetKey, SystemTime>) {
        let Some(ring) = &self.ring else { return };
        self.args.publish.send_replace(Some(Arc::new(RingSnapshot {
            epoch: self.epoch,
            ring: ring.clone(),
            keys: self.keys.clone(),
            placement: self.placement.clone(),
            owned: self.assignment.owned.len(),
            kept: self.assignment.kept.len(),
        })));
        self.args.probes.cast(ProbeSupMsg::Assign {
            epoch: self.epoch,
            digest: ring.digest(),
            targets: self.targets_of(&self.assignment.owned),
            keep: self.targets_of(&self.assignment.kept),
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
            self.args.settings.rebalance_delay
        } else {
            self.args.settings.initial_delay
        };
        myself.send_after(delay, || RingOwnerMsg::Rebuild);
    }

    fn rebuild(&mut self) {
        self.rebuild_pending = false;
        self.started = true;
        let Some(view) = &self.view else { return };
        let me = &self.args.me;
        let mut members = view.members.clone();
        if self.left {
            members.remove(me);
        }
        let ring = Ring::new(members, self.args.settings.replicas);
        let placement = Arc::new(ring.place(&self.keys));
        let after = Layout {
            ring: &ring,
            placement: &placement,
        };
        let before = self.ring.as_ref().map(|r| Layout {
            ring: r,
            placement: &self.placement,
        });
        let change = Reassignment::between(before, after).for_node(&self.assignment, after, me);
        let missed = match before {
            Some(old) if !view.dead.is_empty() => missed_by_dead_owners(
                change.gained.iter().copied(),
                old.ring.members(),
                &old.placement.owners,
                &self.keys,
                &view.dead,
                self.args.settings.unflushed,
            ),
            _ => BTreeMap::new(),
        };
        self.epoch += 1;
        self.assignment = change.next;
        self.placement = placement;
        let owned = self.assignment.owned.len();
        let (members, targets) = (ring.members().len(), self.keys.len());
        let (gained, lost) = (change.gained.len(), change.lost.len());
        tracing::info!(
            epoch = self.epoch,
            digest = format_args!("{:016x}", ring.digest()),
            members,
            targets,
            owned,
            gained,
            lost,
            "ring rebuilt: {members} member(s), this node owns {owned} of {targets} targets (+{gained} -{lost})"
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
        let handed_off = change.lost.iter().map(|&i| self.keys[i].clone()).collect();
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
            .filter(|(n, _)| *n != self.args.me)
            .all(|(n, _)| self.peers.get(n) == Some(&digest));
        if !self.assignment.kept.is_empty() && converged {
            tracing::info!(
                epoch = self.epoch,
                released = self.assignment.kept.len(),
                "hand-off complete: {} target(s) now probed by their new owners",
                self.assignment.kept.len()
            );
            self.assignment.kept.clear();
            self.send_assignment(Vec::new(), BTreeMap::new());
        }
        if self.assignment.kept.is_empty() && self.left {
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
            keys: Arc::new(args.targets.iter().map(|t| t.key()).collect()),
            placement: Arc::new(Placement { owners: Vec::new() }),
            args,
            view: None,
            rebuild_pending: false,
            started: false,
            ring: None,
            epoch: 0,
            assignment: Assignment::default(),
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
        state.args.membership.cast(MembershipMsg::Publish);
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
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProbeKind;

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
