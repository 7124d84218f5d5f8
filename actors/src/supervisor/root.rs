//! The root supervisor: the node's infrastructure children, started in dependency order and
//! restarted one for one within a budget.
//!
//! ```text
//! RootSupervisor
//! ├── Notify              (1st: consumers before producers; only with [[notify]])
//! ├── ResultSink          (2nd)
//! ├── Confirm             (3rd, only with replicas > 1: k-of-n confirmation)
//! ├── ProbeSupervisor     (4th) ── ProbeActor × owned targets
//! ├── RingOwner           (5th)
//! ├── Catalog             (6th)
//! └── Membership          (7th)
//! ```
//!
//! A failed child is restarted after a backoff while its budget (`[supervision]`) allows; when
//! the budget is spent the root gives up, stops, and the process exits non-zero so a service
//! manager can restart it. Shutdown runs in reverse: membership, catalog, ring owner, probe
//! actors, confirm, then the sink is drained, and the notifier stops last.
//!
//! The root is the one place that knows every child. It holds their [`ChildLinks`] and points
//! them at each (re)started instance, hands each child the links it sends on and the
//! [`Publishers`] half of the state it owns, and builds the probe context once, so a restarted
//! probe supervisor gives its new probe actors the same engine, permits and sink link.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::{oneshot, Semaphore};

use super::msg::{ProbeSupMsg, Role, RootMsg, ShutdownReport};
use super::probes::{ProbeSupArgs, ProbeSupervisor};
use crate::catalog::actor::{CatalogActor, CatalogArgs};
use crate::catalog::msg::CatalogMsg;
use crate::confirm::actor::{ConfirmActor, ConfirmArgs};
use crate::confirm::msg::ConfirmMsg;
#[cfg(any(test, feature = "test-hooks"))]
use crate::fault::FaultInjection;
use crate::link::LinkSetter;
use crate::membership::actor::{Membership, MembershipArgs};
use crate::membership::msg::MembershipMsg;
use crate::membership::view::ClusterSettings;
use crate::model::TargetSpec;
use crate::notify::actor::{NotifyActor, NotifyArgs};
use crate::notify::msg::NotifyMsg;
use crate::notify::spec::NotifySpec;
use crate::probe::actor::ProbeContext;
use crate::probe::engine::ProbeEngine;
use crate::restart::{RestartBudget, RestartPolicy};
use crate::ring::msg::RingOwnerMsg;
use crate::ring::owner::{RingOwner, RingOwnerArgs};
use crate::ring::snapshot::RingSettings;
use crate::sink::actor::{ResultSink, SinkArgs, SinkMsg};
use crate::sink::spec::SinkSettings;
use crate::state::NodeState;
use crate::view::{NodeView, Publishers};

/// The root supervisor.
#[derive(Debug)]
pub struct RootSupervisor;

/// The root's ends of the links to its children: at every (re)start it points the links at
/// the child's new instance, so the children that send to it find it again.
#[derive(Debug, Default)]
pub struct ChildLinks {
    /// To the result sink (held by the probe actors).
    pub sink: LinkSetter<SinkMsg>,
    /// To the probe supervisor (held by the ring owner, and the port for hand-offs).
    pub probes: LinkSetter<ProbeSupMsg>,
    /// To the ring owner (held by membership and the probe supervisor).
    pub ring: LinkSetter<RingOwnerMsg>,
    /// To membership (held by the ring owner).
    pub membership: LinkSetter<MembershipMsg>,
    /// To the catalog (held by the ring owner and membership).
    pub catalog: LinkSetter<CatalogMsg>,
    /// To the confirm actor (held by the probe actors and the port).
    pub confirm: LinkSetter<ConfirmMsg>,
    /// To the notify actor (held by the sink).
    pub notify: LinkSetter<NotifyMsg>,
}

impl ChildLinks {
    fn clear(&self, role: Role) {
        match role {
            Role::Notify => self.notify.set(None),
            Role::Sink => self.sink.set(None),
            Role::Confirm => self.confirm.set(None),
            Role::Probes => self.probes.set(None),
            Role::Ring => self.ring.set(None),
            Role::Catalog => self.catalog.set(None),
            Role::Membership => self.membership.set(None),
        }
    }
}

/// What the root starts with.
#[derive(Debug)]
pub struct RootArgs {
    /// This node's targets (replaced by each reload).
    pub targets: Arc<[Arc<TargetSpec>]>,
    /// The checks, opened.
    pub engine: ProbeEngine,
    /// Node-wide cap on probes in flight.
    pub max_in_flight: usize,
    /// Test-only fault injection.
    #[cfg(any(test, feature = "test-hooks"))]
    pub faults: FaultInjection,
    /// Latest results and counters, written by the children.
    pub state: Arc<NodeState>,
    /// The node's published state (read by the children that need it).
    pub view: NodeView,
    /// Its write halves, each handed to the child that owns that piece.
    pub publishers: Publishers,
    /// The links to the children.
    pub links: ChildLinks,
    /// The result sink's settings.
    pub sink: SinkSettings,
    /// The notifiers (`[[notify]]`); none: no notify actor.
    pub notify: Vec<NotifySpec>,
    /// Restart policy for all children.
    pub policy: RestartPolicy,
    /// Ring settings.
    pub ring: RingSettings,
    /// Cluster settings; `None` for a single node.
    pub cluster: Option<ClusterSettings>,
    /// Told why, if the root gives up.
    pub on_give_up: Option<oneshot::Sender<String>>,
}

/// The root's state.
#[derive(Debug)]
pub struct RootState {
    args: RootArgs,
    /// What every probe actor shares (built once; kept across restarts of the supervisor).
    ctx: Arc<ProbeContext>,
    children: HashMap<ActorId, Role>,
    budgets: HashMap<Role, RestartBudget>,
    shutting_down: bool,
    /// Set when a budget is spent: why the root gives up.
    gave_up: Option<String>,
}

impl RootState {
    async fn start(
        &mut self,
        myself: &ActorRef<RootMsg>,
        role: Role,
    ) -> Result<(), ActorProcessingErr> {
        let sup = myself.get_cell();
        let a = &self.args;
        let cell: ActorCell = match role {
            Role::Sink => {
                let writers = a
                    .sink
                    .sinks
                    .iter()
                    .map(|s| s.open())
                    .collect::<Result<Vec<_>, _>>()?;
                let args = SinkArgs {
                    writers,
                    buffer: a.sink.buffer,
                    flush_interval: a.sink.flush_interval,
                    state: a.state.clone(),
                    notify: (!a.notify.is_empty()).then(|| a.links.notify.link()),
                };
                let (r, _) = Actor::spawn_linked(None, ResultSink, args, sup).await?;
                a.links.sink.set(Some(r.clone()));
                r.get_cell()
            }
            Role::Notify => {
                let args = NotifyArgs {
                    specs: a.notify.clone(),
                    view: a.view.clone(),
                    several_owners: a.ring.replicas > 1,
                    counters: a.state.notify.clone(),
                };
                let (r, _) = Actor::spawn_linked(None, NotifyActor, args, sup).await?;
                a.links.notify.set(Some(r.clone()));
                r.get_cell()
            }
            Role::Confirm => {
                let args = ConfirmArgs {
                    view: a.view.clone(),
                    sink: a.links.sink.link(),
                    state: a.state.clone(),
                };
                let (r, _) = Actor::spawn_linked(None, ConfirmActor, args, sup).await?;
                a.links.confirm.set(Some(r.clone()));
                r.get_cell()
            }
            Role::Probes => {
                let args = ProbeSupArgs {
                    ctx: self.ctx.clone(),
                    policy: a.policy,
                    ring: a.links.ring.link(),
                    view: a.view.clone(),
                    ownership: a.publishers.ownership.clone(),
                };
                let (r, _) = Actor::spawn_linked(None, ProbeSupervisor, args, sup).await?;
                a.links.probes.set(Some(r.clone()));
                r.get_cell()
            }
            Role::Ring => {
                let args = RingOwnerArgs {
                    me: a.view.node().clone(),
                    settings: a.ring,
                    probes: a.links.probes.link(),
                    membership: a.links.membership.link(),
                    catalog: a.links.catalog.link(),
                    publish: a.publishers.ring.clone(),
                };
                let (r, _) = Actor::spawn_linked(None, RingOwner, args, sup).await?;
                a.links.ring.set(Some(r.clone()));
                r.get_cell()
            }
            Role::Catalog => {
                let args = CatalogArgs {
                    targets: a.targets.clone(),
                    ring: a.links.ring.link(),
                    view: a.view.clone(),
                    own_set: a.publishers.own_set.clone(),
                    summary: a.publishers.catalog.clone(),
                };
                let (r, _) = Actor::spawn_linked(None, CatalogActor, args, sup).await?;
                a.links.catalog.set(Some(r.clone()));
                r.get_cell()
            }
            Role::Membership => {
                let args = MembershipArgs {
                    weight: a.ring.weight,
                    cluster: a.cluster.clone(),
                    ring: a.links.ring.link(),
                    catalog: a.links.catalog.link(),
                    probes: a.links.probes.link(),
                    confirm: a.links.confirm.link(),
                    root: myself.clone(),
                    view: a.view.clone(),
                    members: a.publishers.members.clone(),
                    peers: a.publishers.peers.clone(),
                };
                let (r, _) = Actor::spawn_linked(None, Membership, args, sup).await?;
                a.links.membership.set(Some(r.clone()));
                r.get_cell()
            }
        };
        self.children.insert(cell.get_id(), role);
        tracing::info!(child = %role, "child started");
        Ok(())
    }

    fn child_down(&mut self, myself: &ActorRef<RootMsg>, id: ActorId, reason: &str) {
        let Some(role) = self.children.remove(&id) else {
            tracing::debug!(actor = %id, "event from an unknown child ignored");
            return;
        };
        self.args.links.clear(role);
        if self.shutting_down {
            return;
        }
        let policy = self.args.policy;
        let budget = self.budgets.entry(role).or_insert_with(|| policy.budget());
        match budget.allow(Instant::now()) {
            Some(attempt) => {
                let delay = policy.backoff().delay(attempt);
                self.args.state.add_restart(role.name());
                tracing::error!(child = %role, attempt, delay_ms = delay.as_millis() as u64, reason, "child failed; restarting");
                myself.send_after(delay, move || RootMsg::Restart(role));
            }
            None => {
                let why = format!(
                    "{role} failed {} times within {:?} (last: {reason}); restart budget spent",
                    policy.max_restarts + 1,
                    policy.within
                );
                tracing::error!(child = %role, reason, "restart budget spent; stopping the node");
                self.gave_up = Some(why);
            }
        }
    }

    /// After a budget is spent: stop the rest in order (draining the sink), tell the binary, stop.
    async fn give_up(&mut self, myself: &ActorRef<RootMsg>) {
        let Some(why) = self.gave_up.take() else {
            return;
        };
        self.shutdown().await;
        if let Some(tx) = self.args.on_give_up.take() {
            let _ = tx.send(why.clone());
        }
        myself.stop(Some(why));
    }

    async fn shutdown(&mut self) -> ShutdownReport {
        self.shutting_down = true;
        const STEP: Duration = Duration::from_secs(3);
        const LEAVE_DEADLINE: Duration = Duration::from_secs(3);
        let mut report = ShutdownReport::default();
        let links = &self.args.links;
        if self.args.cluster.is_some() {
            // Leave on purpose: peers take the targets over at once instead of waiting for the
            // failure detector, and this node keeps probing until they have.
            if let Some(m) = links.membership.get() {
                let _ = ractor::call_t!(m, MembershipMsg::Leave, 1_000);
            }
            if let Some(r) = links.ring.get() {
                match ractor::call_t!(r, RingOwnerMsg::Leave, LEAVE_DEADLINE.as_millis() as u64) {
                    Ok(()) => tracing::info!("targets handed over to the other members"),
                    Err(_) => tracing::warn!("the other members did not take over within {LEAVE_DEADLINE:?}; stopping anyway"),
                }
            }
        }
        if let Some(m) = links.membership.get() {
            m.stop_and_wait(Some("shutdown".into()), Some(STEP))
                .await
                .ok();
        }
        if let Some(c) = links.catalog.get() {
            c.stop_and_wait(Some("shutdown".into()), Some(STEP))
                .await
                .ok();
        }
        if let Some(r) = links.ring.get() {
            r.stop_and_wait(Some("shutdown".into()), Some(STEP))
                .await
                .ok();
        }
        if let Some(p) = links.probes.get() {
            match ractor::call_t!(p, ProbeSupMsg::StopAll, STEP.as_millis() as u64) {
                Ok(n) => report.probes_stopped = n,
                Err(err) => tracing::warn!(error = %err, "probe supervisor did not stop in time"),
            }
            p.stop_and_wait(Some("shutdown".into()), Some(STEP))
                .await
                .ok();
        }
        if let Some(c) = links.confirm.get() {
            c.stop_and_wait(Some("shutdown".into()), Some(STEP))
                .await
                .ok();
        }
        if let Some(s) = links.sink.get() {
            match ractor::call_t!(s, SinkMsg::Drain, STEP.as_millis() as u64) {
                Ok(d) => {
                    report.results_written = d.written;
                    report.results_dropped = d.dropped;
                }
                Err(err) => {
                    // A writer still busy (a consumer that stopped reading): what is buffered,
                    // and the batch in the writer's hands, will not be written.
                    let st = ractor::call_t!(s, SinkMsg::Status, 1_000).ok();
                    let unwritten = st.map_or(0, |st| (st.buffered + st.in_flight) as u64);
                    report.results_written = st.map_or(0, |st| st.written);
                    report.results_dropped = st.map_or(0, |st| st.dropped) + unwritten;
                    report.results_unwritten = unwritten;
                    tracing::error!(error = %err, unwritten, "result sink did not drain in time; {unwritten} result(s) not written");
                }
            }
            s.stop_and_wait(Some("shutdown".into()), Some(STEP))
                .await
                .ok();
        }
        if let Some(n) = links.notify.get() {
            // The events the sink accepted go out to the webhooks first, within a step.
            let _ = ractor::call_t!(
                n,
                |reply| NotifyMsg::Drain(STEP, reply),
                STEP.as_millis() as u64 + 1_000
            );
            n.stop_and_wait(Some("shutdown".into()), Some(STEP))
                .await
                .ok();
        }
        report
    }
}

impl Actor for RootSupervisor {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = RootArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RootMsg>,
        mut args: RootArgs,
    ) -> Result<RootState, ActorProcessingErr> {
        let ctx = Arc::new(ProbeContext {
            node: args.view.node().clone(),
            engine: std::mem::take(&mut args.engine),
            permits: Arc::new(Semaphore::new(args.max_in_flight)),
            sink: args.links.sink.link(),
            confirm: (args.ring.replicas > 1).then(|| args.links.confirm.link()),
            ownership: args.view.ownership_watch(),
            state: args.state.clone(),
            #[cfg(any(test, feature = "test-hooks"))]
            faults: std::mem::take(&mut args.faults),
        });
        let mut state = RootState {
            args,
            ctx,
            children: HashMap::new(),
            budgets: HashMap::new(),
            shutting_down: false,
            gave_up: None,
        };
        for role in Role::START_ORDER {
            if role == Role::Confirm && state.args.ring.replicas <= 1 {
                continue; // one owner per target: its own state is the cluster's
            }
            if role == Role::Notify && state.args.notify.is_empty() {
                continue;
            }
            state.start(&myself, role).await?;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<RootMsg>,
        msg: RootMsg,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RootMsg::Restart(role) => {
                if state.shutting_down {
                    return Ok(());
                }
                if let Err(err) = state.start(&myself, role).await {
                    // Counted against the same budget as a failure of the running child.
                    let why = format!("restart failed: {err}");
                    let id = ActorId::Local(u64::MAX);
                    state.children.insert(id, role);
                    state.child_down(&myself, id, &why);
                    state.give_up(&myself).await;
                } else {
                    tracing::info!(child = %role, "child restarted");
                }
            }
            RootMsg::Shutdown(reply) => {
                let report = state.shutdown().await;
                let _ = reply.send(report);
            }
            RootMsg::SetTargets(list) => {
                state.args.targets = list.specs.clone();
                if let Some(c) = state.args.links.catalog.get() {
                    let _ = c.cast(CatalogMsg::SetTargets(list));
                }
            }
            RootMsg::Fatal(reason) => {
                tracing::error!(reason, "fatal: stopping the node");
                state.gave_up = Some(reason);
                state.give_up(&myself).await;
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RootMsg>,
        evt: SupervisionEvent,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorFailed(cell, err) => {
                state.child_down(&myself, cell.get_id(), &err.to_string());
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let why = format!("terminated ({})", reason.as_deref().unwrap_or("no reason"));
                state.child_down(&myself, cell.get_id(), &why);
            }
            _ => {}
        }
        state.give_up(&myself).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::Link;
    use crate::model::NodeName;
    use crate::probe::fake::FakeProbe;
    use crate::testkit::target;

    const S: Duration = Duration::from_secs(1);

    /// A running root and the links a test reads its children through.
    struct Tree {
        root: ActorRef<RootMsg>,
        probes: Link<ProbeSupMsg>,
        ring: Link<RingOwnerMsg>,
        membership: Link<MembershipMsg>,
        gave_up: oneshot::Receiver<String>,
        handle: tokio::task::JoinHandle<()>,
    }

    async fn start_root(dir: &std::path::Path) -> Tree {
        let mut engine = ProbeEngine::default();
        engine.fake = Some(FakeProbe::always_up(Duration::from_millis(1)));
        let state = Arc::new(NodeState::default());
        let (publishers, view) = NodeView::new(NodeName::new("n1").unwrap(), state.clone());
        let links = ChildLinks::default();
        let (probes, ring, membership) = (
            links.probes.link(),
            links.ring.link(),
            links.membership.link(),
        );
        let (tx, gave_up) = oneshot::channel();
        let args = RootArgs {
            targets: (1..=3)
                .map(|i| target(&format!("127.0.0.{i}"), 2 * S, S))
                .collect(),
            engine,
            max_in_flight: 100,
            faults: FaultInjection::none(),
            state,
            view,
            publishers,
            links,
            sink: SinkSettings {
                sinks: vec![crate::sink::spec::SinkSpec::Jsonl {
                    path: dir.join("r.jsonl"),
                }],
                buffer: 1000,
                flush_interval: Duration::from_millis(200),
            },
            notify: Vec::new(),
            policy: RestartPolicy {
                max_restarts: 2,
                within: 60 * S,
                backoff_min: Duration::from_millis(100),
                backoff_max: S,
                quarantine: 60 * S,
            },
            on_give_up: Some(tx),
            ring: RingSettings::default(),
            cluster: None,
        };
        let (root, handle) = Actor::spawn(None, RootSupervisor, args).await.unwrap();
        Tree {
            root,
            probes,
            ring,
            membership,
            gave_up,
            handle,
        }
    }

    async fn running_probes(probes: &Link<ProbeSupMsg>) -> usize {
        let probes = probes.get().expect("probe supervisor running");
        ractor::call_t!(probes, ProbeSupMsg::Status, 5_000)
            .unwrap()
            .running
    }

    #[tokio::test(start_paused = true)]
    async fn a_killed_child_is_restarted_and_rewired() {
        let dir = tempfile::tempdir().unwrap();
        let t = start_root(dir.path()).await;
        tokio::time::sleep(S).await;
        assert_eq!(running_probes(&t.probes).await, 3);

        // Kill the probe supervisor: its probe actors die with it; the restarted one asks the
        // ring owner for the assignment again and starts them anew.
        let old = t.probes.get().unwrap();
        old.kill();
        tokio::time::sleep(S).await;
        let new = t.probes.get().expect("restarted");
        assert_ne!(old.get_id(), new.get_id());
        assert_eq!(running_probes(&t.probes).await, 3);

        // Kill the ring owner: the restarted one gets the view from membership.
        t.ring.get().unwrap().kill();
        tokio::time::sleep(S).await;
        assert!(t.ring.get().is_some());
        assert_eq!(running_probes(&t.probes).await, 3);

        let report = ractor::call_t!(t.root, RootMsg::Shutdown, 10_000).unwrap();
        assert_eq!(report.probes_stopped, 3);
        let lines = std::fs::read_to_string(dir.path().join("r.jsonl")).unwrap();
        assert_eq!(lines.lines().count() as u64, report.results_written);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_budget_stops_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let t = start_root(dir.path()).await;
        for _ in 0..3 {
            tokio::time::sleep(S).await;
            t.membership.get().expect("membership running").kill();
        }
        let reason = tokio::time::timeout(10 * S, t.gave_up)
            .await
            .unwrap()
            .unwrap();
        assert!(reason.contains("membership failed 3 times"), "{reason}");
        tokio::time::timeout(10 * S, t.handle)
            .await
            .unwrap()
            .unwrap();
        // Giving up still drains the sink: results accepted before are in the file.
        let lines = std::fs::read_to_string(dir.path().join("r.jsonl")).unwrap();
        assert!(lines.lines().count() >= 3, "{lines}");
    }
}
