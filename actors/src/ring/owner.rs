//! The ring owner actor: holds the membership view and the catalog view (every target
//! cluster-wide, and who lists each), rebuilds the ring when either changes (debounced), and
//! sends this node's assignment to the probe supervisor in one message. What changes between
//! two placements comes from [`Reassignment`]; this actor only keeps the state and does the
//! sending.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;

use super::damper::Damper;
use super::msg::RingOwnerMsg;
use super::placement::{Placement, Ring};
use super::reassign::{Assignment, Layout, Reassignment};
use super::snapshot::{assignment_digest, place, RingSettings, RingSnapshot};
use crate::catalog::msg::CatalogMsg;
use crate::catalog::state::CatalogView;
use crate::clock::now;
use crate::heavy::heavy;
use crate::link::Link;
use crate::membership::msg::MembershipMsg;
use crate::membership::view::MembershipView;
use crate::model::{NodeName, TargetKey, TargetSpec};
use crate::supervisor::msg::ProbeSupMsg;

/// The longest quiet time rebuilds are damped to while the membership keeps changing.
pub const MAX_QUIET: Duration = Duration::from_secs(2);
/// No rebuild waits longer than this after the first change it covers.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// The ring owner actor.
#[derive(Debug)]
pub struct RingOwner;

/// What the ring owner starts with.
#[derive(Debug)]
pub struct RingOwnerArgs {
    /// This node.
    pub me: NodeName,
    /// Ring settings.
    pub settings: RingSettings,
    /// Where assignments go.
    pub probes: Link<ProbeSupMsg>,
    /// Asked for the view again after a restart.
    pub membership: Link<MembershipMsg>,
    /// Asked for the catalog view again after a restart.
    pub catalog: Link<CatalogMsg>,
    /// Where the ring is published for readers.
    pub publish: watch::Sender<Option<Arc<RingSnapshot>>>,
}

/// What a rebuild is placed from and results in.
#[derive(Debug)]
struct Built {
    ring: Ring,
    catalog: Arc<CatalogView>,
    keys: Arc<Vec<TargetKey>>,
    placement: Arc<Placement>,
    digest: u64,
}

/// The ring owner's state.
#[derive(Debug)]
pub struct RingOwnerState {
    args: RingOwnerArgs,
    view: Option<MembershipView>,
    catalog: Option<Arc<CatalogView>>,
    /// When the earliest `Rebuild` timer set fires (None: no timer is set).
    armed_for: Option<std::time::Instant>,
    damper: Damper,
    started: bool,
    built: Option<Built>,
    epoch: u64,
    assignment: Assignment,
    /// The spec each running target (owned or kept) was assigned with.
    specs: HashMap<TargetKey, Arc<TargetSpec>>,
    peers: BTreeMap<NodeName, u64>,
    /// Members of the ring built last that have left the view since (died or left). The next
    /// rebuild leaves them out even if they are back by then: one that rejoined (a restart, a
    /// crash loop) runs no ring yet, so it is added by a later rebuild, as a newcomer whose
    /// targets the others keep probing until it announces that ring.
    lost: BTreeMap<NodeName, Option<SystemTime>>,
    /// The last rebuild left out a lost member that is back: another rebuild is to add it.
    readd: bool,
    left: bool,
    leave_reply: Option<RpcReplyPort<()>>,
}

/// Of the `gained` targets, those whose owner in the layout being replaced (`old`) has died,
/// with the time from which their slots count as missed: when it was last heard (the earliest,
/// for a target with several dead owners), less `unflushed`, since results it had not written
/// yet died with it.
fn missed_by_dead_owners<'k>(
    gained: impl Iterator<Item = &'k TargetKey>,
    old: Layout<'_>,
    dead: &BTreeMap<NodeName, SystemTime>,
    unflushed: Duration,
) -> BTreeMap<TargetKey, SystemTime> {
    let index: HashMap<&TargetKey, usize> =
        old.keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
    gained
        .filter_map(|key| {
            let since = old
                .placement
                .of(*index.get(key)?)
                .iter()
                .filter_map(|&o| old.ring.members().get(usize::from(o)))
                .filter_map(|(name, _)| dead.get(name))
                .min()?;
            let since = since.checked_sub(unflushed).unwrap_or(*since);
            Some((key.clone(), since))
        })
        .collect()
}

impl RingOwnerState {
    fn specs_of(
        &self,
        keys: &[TargetKey],
        idx: &std::collections::BTreeSet<usize>,
    ) -> Arc<[Arc<TargetSpec>]> {
        idx.iter()
            .filter_map(|&i| self.specs.get(&keys[i]).cloned())
            .collect()
    }

    fn send_assignment(&self, handed_off: Vec<TargetKey>, missed: BTreeMap<TargetKey, SystemTime>) {
        let Some(b) = &self.built else { return };
        self.args.publish.send_replace(Some(Arc::new(RingSnapshot {
            epoch: self.epoch,
            ring: b.ring.clone(),
            digest: b.digest,
            catalog: b.catalog.clone(),
            keys: b.keys.clone(),
            placement: b.placement.clone(),
            owned: self.assignment.owned.len(),
            kept: self.assignment.kept.len(),
        })));
        self.args.probes.cast(ProbeSupMsg::Assign {
            epoch: self.epoch,
            digest: b.digest,
            targets: self.specs_of(&b.keys, &self.assignment.owned),
            keep: self.specs_of(&b.keys, &self.assignment.kept),
            handed_off,
            missed,
        });
    }

    /// A change the ring must follow: the rebuild is due when the damper says (see
    /// [`Damper`]); one timer at a time.
    fn schedule_rebuild(&mut self, myself: &ActorRef<RingOwnerMsg>) {
        let now = now();
        let due = self.damper.changed(now);
        self.arm(myself, due, now);
    }

    fn arm(
        &mut self,
        myself: &ActorRef<RingOwnerMsg>,
        due: std::time::Instant,
        now: std::time::Instant,
    ) {
        // A timer set for later than `due` (a loss brought the rebuild forward) fires early
        // through a second one; the later one then finds nothing due, or re-arms.
        if self.armed_for.is_none_or(|at| due < at) {
            self.armed_for = Some(due);
            myself.send_after(due.saturating_duration_since(now), || RingOwnerMsg::Rebuild);
        }
    }

    /// The timer fired: rebuild if due, or wait for the later due time changes since set.
    /// A due rebuild also waits — up to the damper's deadline — while the catalog does not
    /// yet hold the target set of a member in the view (it just joined): placed now, the
    /// newcomer would list nothing and this node would claim its share only to hand it over
    /// a moment later (at a cluster's cold start, the seed claimed every target this way).
    /// The catalog's next view brings the rebuild back.
    fn rebuild_when_due(&mut self, myself: &ActorRef<RingOwnerMsg>) {
        self.armed_for = None;
        let now = now();
        if self.damper.ready(now) {
            match self.damper.deadline().filter(|_| self.catalog_lags()) {
                Some(deadline) if now < deadline => self.arm(myself, deadline, now),
                _ => {
                    self.rebuild();
                    if std::mem::take(&mut self.readd) {
                        // A lost member is back: add it as a newcomer.
                        self.schedule_rebuild(myself);
                    }
                }
            }
        } else if let Some(due) = self.damper.due() {
            self.arm(myself, due, now);
        }
    }

    /// True when a member in the view that is not in the ring built last (a newcomer) has a
    /// target set the catalog does not hold yet. Only newcomers: a death must move its targets
    /// at once, whatever another member's set is doing.
    fn catalog_lags(&self) -> bool {
        let (Some(view), Some(catalog)) = (&self.view, &self.catalog) else {
            return false;
        };
        let built = self.built.as_ref().map(|b| &b.ring);
        view.members
            .keys()
            .filter(|m| built.is_none_or(|r| r.index_of(m).is_none()))
            .any(|m| catalog.members.binary_search(m).is_err() || catalog.catching_up.contains(m))
    }

    /// Places every target on the current members and view, and sends this node's share to
    /// the probe supervisor (100,000 targets: about 100 ms, see [`heavy`]).
    fn rebuild(&mut self) {
        heavy("ring rebuild", || self.rebuild_now());
    }

    fn rebuild_now(&mut self) {
        let (Some(view), Some(catalog)) = (&self.view, &self.catalog) else {
            return;
        };
        self.damper.rebuilt(now());
        self.started = true;
        let me = &self.args.me;
        let mut members = view.members.clone();
        if self.left {
            members.remove(me);
        }
        // Members lost since the last build stay out of this one, even if back already; the
        // slots of those that died count as missed from when they were last heard, as for any
        // dead member (one that is back is no longer in the view's dead).
        let lost = std::mem::take(&mut self.lost);
        let rejoined = lost.keys().any(|m| members.remove(m).is_some());
        let mut dead = view.dead.clone();
        for (m, at) in lost {
            if let Some(at) = at {
                dead.entry(m).or_insert(at);
            }
        }
        let ring = Ring::new(members, self.args.settings.replicas);
        let keys: Arc<Vec<TargetKey>> =
            Arc::new(catalog.targets.iter().map(|t| t.key.clone()).collect());
        let placement = Arc::new(place(&ring, &keys, catalog));
        let after = Layout {
            ring: &ring,
            keys: &keys,
            placement: &placement,
        };
        let before = self.built.as_ref().map(|b| Layout {
            ring: &b.ring,
            keys: &b.keys,
            placement: &b.placement,
        });
        let old_keys: &[TargetKey] = before.map_or(&[], |b| b.keys);
        let change =
            Reassignment::between(before, after).for_node(&self.assignment, old_keys, after, me);
        let missed = match before {
            Some(old) if !dead.is_empty() => missed_by_dead_owners(
                change.gained.iter().map(|&i| &keys[i]),
                old,
                &dead,
                self.args.settings.unflushed,
            ),
            _ => BTreeMap::new(),
        };
        // Owned targets run on this node's own spec; kept ones on the spec they ran with (the
        // node may list them no more, while others still do).
        let mut specs = HashMap::with_capacity(change.next.owned.len() + change.next.kept.len());
        for &i in change.next.owned.iter().chain(&change.next.kept) {
            let spec = catalog.targets[i]
                .own
                .clone()
                .or_else(|| self.specs.get(&keys[i]).cloned());
            match spec {
                Some(s) => {
                    specs.insert(keys[i].clone(), s);
                }
                None => {
                    tracing::warn!(host = %keys[i], "placed on this node without a spec of its own; skipped")
                }
            }
        }
        let handed_off = change.lost.iter().map(|&i| keys[i].clone()).collect();
        // A leaving node's peers adopt a ring without it, placed over a catalog without its
        // set: that is the digest its hand-off waits for them to announce.
        let digest = if self.left {
            assignment_digest(&ring, catalog.digest_without(me))
        } else {
            assignment_digest(&ring, catalog.digest)
        };
        self.epoch += 1;
        self.specs = specs;
        self.assignment = change.next;
        let owned = self.assignment.owned.len();
        let (n_members, targets) = (ring.members().len(), keys.len());
        let (gained, lost, dropped) =
            (change.gained.len(), change.lost.len(), change.dropped.len());
        tracing::info!(
            epoch = self.epoch,
            digest = format_args!("{:016x}", ring.digest()),
            members = n_members,
            targets,
            owned,
            gained,
            lost,
            dropped,
            "ring rebuilt: {n_members} member(s), this node owns {owned} of {targets} targets (+{gained} -{lost})"
        );
        self.built = Some(Built {
            ring,
            catalog: catalog.clone(),
            keys,
            placement,
            digest,
        });
        if !missed.is_empty() {
            tracing::info!(
                epoch = self.epoch,
                targets = missed.len(),
                "{} target(s) taken over from dead members; those whose slot passed since are probed now",
                missed.len()
            );
        }
        self.send_assignment(handed_off, missed);
        self.check_release();
        self.readd = rejoined;
    }

    /// Ends the hand-off once every other member runs the current ring and catalog view.
    fn check_release(&mut self) {
        let Some(b) = &self.built else { return };
        let converged = b
            .ring
            .members()
            .iter()
            .filter(|(n, _)| *n != self.args.me)
            .all(|(n, _)| self.peers.get(n) == Some(&b.digest));
        if !self.assignment.kept.is_empty() && converged {
            tracing::info!(
                epoch = self.epoch,
                released = self.assignment.kept.len(),
                "hand-off complete: {} target(s) now probed by their new owners",
                self.assignment.kept.len()
            );
            let kept = std::mem::take(&mut self.assignment.kept);
            for i in kept {
                self.specs.remove(&b.keys[i]);
            }
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
        let damper = Damper::new(
            args.settings.initial_delay,
            args.settings.rebalance_delay,
            MAX_QUIET,
            MAX_WAIT,
        );
        Ok(RingOwnerState {
            args,
            view: None,
            catalog: None,
            armed_for: None,
            damper,
            started: false,
            built: None,
            epoch: 0,
            assignment: Assignment::default(),
            specs: HashMap::new(),
            peers: BTreeMap::new(),
            lost: BTreeMap::new(),
            readd: false,
            left: false,
            leave_reply: None,
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<RingOwnerMsg>,
        state: &mut RingOwnerState,
    ) -> Result<(), ActorProcessingErr> {
        // After a restart membership and the catalog are already running: ask for the views.
        state.args.membership.cast(MembershipMsg::Publish);
        state.args.catalog.cast(CatalogMsg::Publish);
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
                    // With when each was last heard, if it died (one that left hands its
                    // targets over; it missed no slot).
                    let gone: Vec<(NodeName, Option<SystemTime>)> = state
                        .built
                        .iter()
                        .flat_map(|b| b.ring.members())
                        .map(|(n, _)| n)
                        .filter(|n| **n != state.args.me && !view.members.contains_key(*n))
                        .map(|n| (n.clone(), view.dead.get(n).copied()))
                        .collect();
                    state.view = Some(view);
                    if gone.is_empty() {
                        state.schedule_rebuild(&myself);
                    } else {
                        for (n, at) in gone {
                            state.lost.entry(n).or_insert(at);
                        }
                        let at = now();
                        let due = state.damper.lost(at);
                        state.arm(&myself, due, at);
                    }
                }
            }
            RingOwnerMsg::Catalog(catalog) => {
                if state.catalog.as_ref().map(|c| c.digest) != Some(catalog.digest) {
                    // A rebuild that was due and not made was held for this view (its timer
                    // is set for the damper's deadline): bring it back now.
                    let held = state.damper.ready(now());
                    state.catalog = Some(catalog);
                    state.schedule_rebuild(&myself);
                    if held && !state.catalog_lags() {
                        let _ = myself.cast(RingOwnerMsg::Rebuild);
                    }
                }
            }
            RingOwnerMsg::Rebuild => state.rebuild_when_due(&myself),
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
    use crate::testkit::{keys, node};

    #[test]
    fn only_targets_gained_from_a_dead_owner_count_as_missed_from_when_it_was_last_heard() {
        let keys = keys(5);
        let ring = Ring::new([(node(0), 1), (node(1), 1), (node(2), 1)], 2);
        // t0: n0; t1: n1; t2: n2; t3: n1 and n2 (two replicas); t4: n1, but not gained here.
        let placement = Placement::from_lists(&[vec![0], vec![1], vec![2], vec![1, 2], vec![1]]);
        let old = Layout {
            ring: &ring,
            keys: &keys,
            placement: &placement,
        };
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let dead = BTreeMap::from([(node(1), t), (node(2), t - Duration::from_secs(2))]);
        let flush = Duration::from_secs(1);
        let missed = missed_by_dead_owners(keys[..4].iter(), old, &dead, flush);
        assert_eq!(
            missed,
            BTreeMap::from([
                (keys[1].clone(), t - flush),
                (keys[2].clone(), t - Duration::from_secs(3)),
                (keys[3].clone(), t - Duration::from_secs(3)),
            ])
        );
        // Nobody dead: nothing missed.
        assert!(missed_by_dead_owners(keys.iter(), old, &BTreeMap::new(), flush).is_empty());
    }
}
