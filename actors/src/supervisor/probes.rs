//! The probe supervisor: one probe actor per owned target, keyed by target.
//!
//! - `Assign` carries the full owned set plus the targets kept during a hand-off; the
//!   supervisor starts what is new and retires what is in neither (a retiring probe actor
//!   finishes its probe in flight, then stops), so a replayed assignment is harmless.
//! - The states of targets handed to other nodes (as the probe actors recorded them in
//!   [`NodeState`](crate::state::NodeState)) are sent to every peer's port, and states handed
//!   to this node (routed here by this node's port) seed new probe actors, so moving a target
//!   never raises a false state change.
//! - It publishes the [`Ownership`] its probe actors run under: the epoch as an assignment
//!   starts (results carry it), the ring digest once every probe actor of it runs (membership
//!   announces it in heartbeats).
//! - A failed probe actor is restarted after a backoff while its target's budget allows;
//!   then the target is quarantined (logged once) and retried after the quarantine period.
//!   One target's crash loop never escalates: the node and its other targets carry on.
//! - Every few seconds it checks the node-wide overrun counter and logs when the node starts,
//!   or stops, missing probe slots.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::watch;

use super::first_results::FirstResults;
use super::msg::{ProbeSupMsg, ProbeSupStatus};
use crate::catalog::set::settings_digest;
use crate::heavy::heavy;
use crate::link::Link;
use crate::membership::wire::{broadcast, HandoffState, PeerMessage, HANDOFF_CHUNK};
use crate::model::{TargetKey, TargetSpec};
use crate::probe::actor::{ProbeActor, ProbeArgs, ProbeContext, ProbeMsg};
use crate::restart::{RestartBudget, RestartPolicy};
use crate::ring::msg::RingOwnerMsg;
use crate::view::{NodeView, Ownership};

/// How often the overrun counter is checked.
const ROUND_CHECK: Duration = Duration::from_secs(5);

/// Stopping at least this many probe actors at once is followed by a `Trim`.
const TRIM_AFTER_STOPPING: usize = 1_000;
/// Time for retired actors to finish their probe in flight and stop before the trim.
const TRIM_DELAY: Duration = Duration::from_secs(5);
/// How often an open batch of first results is checked.
const FIRST_RESULTS_CHECK: Duration = Duration::from_secs(1);

/// The probe supervisor.
#[derive(Debug)]
pub struct ProbeSupervisor;

/// What the probe supervisor starts with.
#[derive(Debug)]
pub struct ProbeSupArgs {
    /// What every probe actor shares.
    pub ctx: Arc<ProbeContext>,
    /// Restart budget, backoff and quarantine per target.
    pub policy: RestartPolicy,
    /// Asked for the current assignment after a restart.
    pub ring: Link<RingOwnerMsg>,
    /// The node's published state: the peers hand-offs go to.
    pub view: NodeView,
    /// Where the epoch and the adopted ring digest are published.
    pub ownership: watch::Sender<Ownership>,
}

#[derive(Debug)]
struct Child {
    target: Arc<TargetSpec>,
    actor: Option<ActorCell>,
    budget: RestartBudget,
    generation: u64,
    quarantined: bool,
}

/// The probe supervisor's state.
#[derive(Debug)]
pub struct ProbeSupState {
    ctx: Arc<ProbeContext>,
    policy: RestartPolicy,
    ring: Link<RingOwnerMsg>,
    view: NodeView,
    ownership: watch::Sender<Ownership>,
    children: HashMap<TargetKey, Child>,
    by_id: HashMap<ActorId, TargetKey>,
    epoch: u64,
    restarts: u64,
    overrun_seen: u64,
    overrunning: bool,
    stopping: bool,
    first: FirstResults,
}

impl Actor for ProbeSupervisor {
    type Msg = ProbeSupMsg;
    type State = ProbeSupState;
    type Arguments = ProbeSupArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ProbeSupMsg>,
        args: ProbeSupArgs,
    ) -> Result<ProbeSupState, ActorProcessingErr> {
        myself.send_interval(ROUND_CHECK, || ProbeSupMsg::RoundCheck);
        let overrun_seen = args.ctx.state.overruns();
        Ok(ProbeSupState {
            ctx: args.ctx,
            policy: args.policy,
            ring: args.ring,
            view: args.view,
            ownership: args.ownership,
            children: HashMap::new(),
            by_id: HashMap::new(),
            epoch: 0,
            restarts: 0,
            overrun_seen,
            overrunning: false,
            stopping: false,
            first: FirstResults::default(),
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<ProbeSupMsg>,
        state: &mut ProbeSupState,
    ) -> Result<(), ActorProcessingErr> {
        // After a restart the ring owner is already running: ask for the current assignment.
        state.ring.cast(RingOwnerMsg::Resend);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ProbeSupMsg>,
        msg: ProbeSupMsg,
        state: &mut ProbeSupState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ProbeSupMsg::Assign {
                epoch,
                digest,
                targets,
                keep,
                handed_off,
                missed,
            } => {
                // The states first: the assignment drops the records of targets no longer
                // run here.
                state.hand_off(&handed_off);
                state.assign(&myself, epoch, &targets, &keep, &missed).await;
                // Published once every probe actor of the assignment runs: peers release their
                // hand-offs when every member has adopted the new ring.
                state.ownership.send_modify(|o| o.digest = digest);
            }
            ProbeSupMsg::Inherit(list) => state.inherit(list),
            ProbeSupMsg::Respawn { key, generation } => {
                let due = state.children.get(&key).is_some_and(|c| {
                    c.generation == generation && c.actor.is_none() && !c.quarantined
                });
                if due && !state.stopping {
                    state.spawn(&myself, &key, None).await;
                    tracing::info!(host = %key.id, probe = %key.probe, "probe actor restarted");
                }
            }
            ProbeSupMsg::Release { key } => {
                if let Some(c) = state.children.get_mut(&key).filter(|c| c.quarantined) {
                    c.quarantined = false;
                    c.budget = state.policy.budget();
                    tracing::info!(host = %key.id, probe = %key.probe, "quarantine over; starting the probe actor again");
                    if !state.stopping {
                        state.spawn(&myself, &key, None).await;
                    }
                }
            }
            ProbeSupMsg::RoundCheck => state.round_check(),
            ProbeSupMsg::FirstResults => state.first_results(&myself),
            ProbeSupMsg::Trim => {
                // glibc keeps freed memory for reuse; after a hand-off of thousands of targets
                // (or a takeover that ended) that is a high-water mark the node would carry
                // for ever. malloc_trim releases the free pages of every arena.
                #[cfg(all(target_os = "linux", target_env = "gnu"))]
                tokio::task::spawn_blocking(|| {
                    // SAFETY: malloc_trim only releases free memory of the allocator's own.
                    unsafe { libc::malloc_trim(0) };
                });
            }
            ProbeSupMsg::StopAll(reply) => {
                state.stopping = true;
                let running = state.by_id.len();
                state.by_id.clear();
                myself
                    .stop_children_and_wait(Some("shutdown".into()), Some(Duration::from_secs(3)))
                    .await;
                tracing::info!(stopped = running, "probe actors stopped");
                let _ = reply.send(running);
            }
            ProbeSupMsg::Status(reply) => {
                let _ = reply.send(ProbeSupStatus {
                    epoch: state.epoch,
                    owned: state.children.len(),
                    running: state.by_id.len(),
                    quarantined: state.children.values().filter(|c| c.quarantined).count(),
                    restarts: state.restarts,
                });
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ProbeSupMsg>,
        evt: SupervisionEvent,
        state: &mut ProbeSupState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorFailed(cell, err) => {
                state.child_down(&myself, cell.get_id(), &err.to_string());
            }
            SupervisionEvent::ActorTerminated(cell, _, reason)
                // Children we stopped were already forgotten; one that ended by itself is a fault.
                if state.by_id.contains_key(&cell.get_id()) => {
                    let why = format!("terminated unexpectedly ({})", reason.as_deref().unwrap_or("no reason"));
                    state.child_down(&myself, cell.get_id(), &why);
                }
            _ => {}
        }
        Ok(())
    }
}

impl ProbeSupState {
    async fn assign(
        &mut self,
        myself: &ActorRef<ProbeSupMsg>,
        epoch: u64,
        targets: &[Arc<TargetSpec>],
        keep: &[Arc<TargetSpec>],
        missed: &BTreeMap<TargetKey, SystemTime>,
    ) {
        if self.stopping {
            return;
        }
        self.epoch = epoch;
        // Results from here on carry the new epoch.
        self.ownership.send_modify(|o| o.epoch = epoch);
        let (to_start, updated, stopped) = heavy("probe assignment", || {
            self.reconcile(myself, targets, keep, missed)
        });
        let now = tokio::time::Instant::now().into_std();
        for key in &to_start {
            if self.ctx.state.confirmed(key).is_none() {
                let t = &self.children[key].target;
                let by = now + t.interval + t.timeout + Duration::from_secs(1);
                if self.first.expect(key.clone(), by) {
                    myself.send_after(FIRST_RESULTS_CHECK, || ProbeSupMsg::FirstResults);
                }
            }
            self.spawn(myself, key, missed.get(key).copied()).await;
        }
        tracing::info!(
            epoch,
            owned = targets.len(),
            kept = keep.len(),
            started = to_start.len(),
            updated,
            stopped,
            "targets owned: {} (+{} kept until their new owners take over)",
            targets.len(),
            keep.len()
        );
    }

    /// Retires the probe actors of targets in neither `targets` nor `keep`, gives kept ones
    /// their new settings, and records the new ones as children to start. Returns the new
    /// targets in the order to start them, and how many were updated and stopped.
    fn reconcile(
        &mut self,
        myself: &ActorRef<ProbeSupMsg>,
        targets: &[Arc<TargetSpec>],
        keep: &[Arc<TargetSpec>],
        missed: &BTreeMap<TargetKey, SystemTime>,
    ) -> (Vec<TargetKey>, usize, usize) {
        let wanted: HashSet<TargetKey> = targets.iter().chain(keep).map(|t| t.key()).collect();
        let gone: Vec<TargetKey> = self
            .children
            .keys()
            .filter(|k| !wanted.contains(*k))
            .cloned()
            .collect();
        for key in &gone {
            self.first.forget(key);
            if let Some(child) = self.children.remove(key) {
                if let Some(actor) = child.actor {
                    self.by_id.remove(&actor.get_id());
                    // Finish the probe in flight, so the slot it probes is not lost, then stop.
                    if actor.send_message(ProbeMsg::Retire).is_err() {
                        actor.stop(Some("reassigned".into()));
                    }
                }
            }
        }
        if gone.len() >= TRIM_AFTER_STOPPING {
            myself.send_after(TRIM_DELAY, || ProbeSupMsg::Trim);
        }
        self.ctx.state.set_running(wanted);
        // Targets whose slot a dead owner missed start first: they are probed at once, and
        // spawning tens of thousands of actors takes a while.
        let (urgent, rest): (Vec<&Arc<TargetSpec>>, Vec<&Arc<TargetSpec>>) = targets
            .iter()
            .chain(keep)
            .partition(|t| !missed.is_empty() && missed.contains_key(&t.key()));
        let mut updated = 0usize;
        let mut to_start = Vec::new();
        for target in urgent.into_iter().chain(rest) {
            let key = target.key();
            if let Some(child) = self.children.get_mut(&key) {
                // A target kept across an assignment keeps its actor; new settings (a reload)
                // reach it as an update (a new source too, which is this node's own setting and
                // so not in the cluster-wide digest).
                if !Arc::ptr_eq(&child.target, target)
                    && (settings_digest(&child.target) != settings_digest(target)
                        || child.target.source != target.source)
                {
                    child.target = target.clone();
                    updated += 1;
                    if let Some(actor) = &child.actor {
                        let _ = actor.send_message(ProbeMsg::Update(target.clone()));
                    }
                }
                continue;
            }
            self.children.insert(
                key.clone(),
                Child {
                    target: target.clone(),
                    actor: None,
                    budget: self.policy.budget(),
                    generation: 0,
                    quarantined: false,
                },
            );
            to_start.push(key);
        }
        (to_start, updated, gone.len())
    }

    /// Logs the first results of the targets this node started without a state, once they all
    /// have one (or their time is up); checks again later while some are still to come.
    fn first_results(&mut self, myself: &ActorRef<ProbeSupMsg>) {
        let now = tokio::time::Instant::now().into_std();
        let state = &self.ctx.state;
        match self.first.check(now, |k| state.confirmed(k)) {
            Some(s) if s.missing == 0 => tracing::info!(
                epoch = self.epoch,
                up = s.up,
                down = s.down,
                "first results: {} up, {} down",
                s.up,
                s.down
            ),
            Some(s) => tracing::info!(
                epoch = self.epoch,
                up = s.up,
                down = s.down,
                missing = s.missing,
                "first results: {} up, {} down, {} without a result within their interval",
                s.up,
                s.down,
                s.missing
            ),
            None if self.first.is_open() => {
                myself.send_after(FIRST_RESULTS_CHECK, || ProbeSupMsg::FirstResults);
            }
            None => {}
        }
    }

    /// Sends the states of targets now owned elsewhere to the other nodes.
    fn hand_off(&self, handed_off: &[TargetKey]) {
        let states: Vec<HandoffState> = handed_off
            .iter()
            .filter_map(|k| Some(HandoffState::new(k, self.ctx.state.confirmed(k)?)))
            .collect();
        let peers = self.view.peers();
        if states.is_empty() || peers.is_empty() {
            return;
        }
        let me = self.view.node().to_string();
        for chunk in states.chunks(HANDOFF_CHUNK) {
            let msg = PeerMessage::Handoff {
                from: me.clone(),
                states: chunk.to_vec(),
            };
            broadcast(peers.iter().map(|p| &p.port), &msg);
        }
    }

    /// Takes over states from another node: running probe actors without a result of their
    /// own adopt them, and actors started later begin from them.
    /// States are sent to every peer: those of targets this node does not list (and so can
    /// never own) are not kept.
    fn inherit(&mut self, list: Vec<HandoffState>) {
        let listed = self.view.own_set();
        for h in list {
            let key = h.key();
            if let Some(actor) = self.children.get(&key).and_then(|c| c.actor.as_ref()) {
                // The actor records it in NodeState unless it has a result of its own.
                let _ = actor.send_message(ProbeMsg::Inherit(h.state));
            } else if listed.contains(&key) {
                self.ctx.state.confirm_if_unknown(key, h.state);
            }
        }
    }

    async fn spawn(
        &mut self,
        myself: &ActorRef<ProbeSupMsg>,
        key: &TargetKey,
        missed_since: Option<SystemTime>,
    ) {
        let Some(child) = self.children.get_mut(key) else {
            return;
        };
        child.generation += 1;
        let initial = self.ctx.state.confirmed(key);
        let args = ProbeArgs {
            target: child.target.clone(),
            ctx: self.ctx.clone(),
            initial,
            missed_since,
        };
        match Actor::spawn_linked(None, ProbeActor, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                self.by_id.insert(actor.get_id(), key.clone());
                child.actor = Some(actor.get_cell());
                tracing::debug!(host = %key.id, probe = %key.probe, "probe actor started");
            }
            Err(err) => {
                // Spawning only fails if the runtime is going away; treat as a failed child.
                tracing::error!(host = %key.id, error = %err, "probe actor could not start");
                child.actor = None;
            }
        }
    }

    fn child_down(&mut self, myself: &ActorRef<ProbeSupMsg>, id: ActorId, reason: &str) {
        let Some(key) = self.by_id.remove(&id) else {
            tracing::debug!(actor = %id, "event from an unknown or stopped child ignored");
            return;
        };
        let Some(child) = self.children.get_mut(&key) else {
            return;
        };
        child.actor = None;
        if self.stopping {
            return;
        }
        match child.budget.allow(Instant::now()) {
            Some(attempt) => {
                self.restarts += 1;
                self.ctx.state.add_restart("probe");
                let delay = self.policy.backoff().delay(attempt);
                tracing::warn!(host = %key.id, probe = %key.probe, attempt, delay_ms = delay.as_millis() as u64, reason, "probe actor failed; restarting");
                let generation = child.generation;
                myself.send_after(delay, move || ProbeSupMsg::Respawn { key, generation });
            }
            None => {
                child.quarantined = true;
                // A panicked actor never ran its post_stop: its SSH connection is closed here.
                self.ctx.engine.release(&child.target);
                let quarantine = self.policy.quarantine;
                tracing::error!(
                    host = %key.id, probe = %key.probe, reason,
                    restarts = self.policy.max_restarts, within_s = self.policy.within.as_secs_f64(),
                    quarantine_s = quarantine.as_secs_f64(),
                    "probe actor keeps failing; target quarantined"
                );
                myself.send_after(quarantine, move || ProbeSupMsg::Release { key });
            }
        }
    }

    fn round_check(&mut self) {
        let now = self.ctx.state.overruns();
        let missed = now.saturating_sub(self.overrun_seen);
        self.overrun_seen = now;
        if missed > 0 && !self.overrunning {
            self.overrunning = true;
            tracing::warn!(
                missed, window_s = ROUND_CHECK.as_secs(),
                "round overrun: probes are missing their slots; raise probe.max_in_flight, lengthen the interval, or add nodes"
            );
        } else if missed == 0 && self.overrunning {
            self.overrunning = false;
            tracing::info!("rounds on time again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultInjection;
    use crate::link::link;
    use crate::model::NodeName;
    use crate::probe::fake::FakeProbe;
    use crate::state::NodeState;
    use crate::testkit::{context, target, Harness};

    const S: Duration = Duration::from_secs(1);

    fn policy() -> RestartPolicy {
        RestartPolicy {
            max_restarts: 2,
            within: 60 * S,
            backoff_min: Duration::from_millis(100),
            backoff_max: S,
            quarantine: 30 * S,
        }
    }

    /// A probe supervisor on the harness's context (no ring owner, no peers).
    async fn start(h: &Harness) -> ActorRef<ProbeSupMsg> {
        let (_publishers, view) = NodeView::new(
            NodeName::new("test").unwrap(),
            Arc::new(NodeState::default()),
        );
        let args = ProbeSupArgs {
            ctx: h.ctx.clone(),
            policy: policy(),
            ring: link().1,
            view,
            ownership: h.ownership.clone(),
        };
        Actor::spawn(None, ProbeSupervisor, args).await.unwrap().0
    }

    async fn status(sup: &ActorRef<ProbeSupMsg>) -> ProbeSupStatus {
        ractor::call_t!(sup, ProbeSupMsg::Status, 5_000).unwrap()
    }

    fn assign(epoch: u64, targets: Arc<[Arc<TargetSpec>]>) -> ProbeSupMsg {
        ProbeSupMsg::Assign {
            epoch,
            digest: epoch,
            targets,
            keep: Arc::new([]),
            handed_off: Vec::new(),
            missed: BTreeMap::new(),
        }
    }

    fn targets(ids: &[&str]) -> Arc<[Arc<TargetSpec>]> {
        ids.iter().map(|id| target(id, 5 * S, S)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn assignments_start_and_stop_probe_actors() {
        let h = context(
            FakeProbe::always_up(Duration::from_millis(1)),
            100,
            FaultInjection::none(),
        )
        .await;
        let sup = start(&h).await;
        let all = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"];
        sup.cast(assign(1, targets(&all))).unwrap();
        let st = status(&sup).await;
        assert_eq!((st.epoch, st.owned, st.running), (1, 4, 4));
        assert_eq!(sup.get_children().len(), 4);

        // A replayed assignment changes nothing; a smaller one stops the rest.
        sup.cast(assign(1, targets(&all))).unwrap();
        assert_eq!(status(&sup).await.running, 4);
        sup.cast(assign(2, targets(&all[..1]))).unwrap();
        let st = status(&sup).await;
        assert_eq!((st.epoch, st.owned, st.running, st.restarts), (2, 1, 1, 0));
        tokio::time::sleep(20 * S).await;
        assert_eq!(
            sup.get_children().len(),
            1,
            "stopped actors are gone, not restarted"
        );
        let results = h.written().await;
        assert!(results
            .iter()
            .rev()
            .take(3)
            .all(|r| &*r.target.id == "127.0.0.1" && r.epoch == 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_crashing_target_is_restarted_then_quarantined_then_retried() {
        // 127.0.0.9 panics on its first three probes: two restarts, then quarantine.
        let faults = FaultInjection::panic_on("127.0.0.9*3");
        let h = context(FakeProbe::always_up(Duration::from_millis(1)), 100, faults).await;
        let sup = start(&h).await;
        sup.cast(assign(1, targets(&["127.0.0.8", "127.0.0.9"])))
            .unwrap();

        tokio::time::sleep(20 * S).await;
        let st = status(&sup).await;
        assert_eq!((st.restarts, st.quarantined, st.running), (2, 1, 1));

        // Meanwhile the healthy target never missed a slot.
        let results = h.written().await;
        let healthy: Vec<_> = results
            .iter()
            .filter(|r| &*r.target.id == "127.0.0.8")
            .map(|r| r.ts)
            .collect();
        assert!(healthy.len() >= 3);
        assert!(results.iter().all(|r| &*r.target.id != "127.0.0.9"));

        // After the quarantine the target is tried again; its faults are spent, so it probes.
        tokio::time::sleep(40 * S).await;
        let st = status(&sup).await;
        assert_eq!((st.quarantined, st.running), (0, 2));
        let results = h.written().await;
        assert!(results
            .iter()
            .any(|r| &*r.target.id == "127.0.0.9" && r.outcome.is_up()));
        assert_eq!(
            sup.get_status(),
            ractor::ActorStatus::Running,
            "never escalated"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stop_all_stops_every_probe_and_ignores_their_exits() {
        let h = context(
            FakeProbe::always_up(Duration::from_millis(1)),
            100,
            FaultInjection::none(),
        )
        .await;
        let sup = start(&h).await;
        let ids: Vec<String> = (1..=50).map(|i| format!("127.0.1.{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        sup.cast(assign(1, targets(&ids))).unwrap();
        let n = ractor::call_t!(sup, ProbeSupMsg::StopAll, 5_000).unwrap();
        assert_eq!(n, 50);
        tokio::time::sleep(10 * S).await;
        let st = status(&sup).await;
        assert_eq!((st.running, st.restarts), (0, 0));
        assert!(sup.get_children().is_empty());
    }
}
