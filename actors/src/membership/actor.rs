//! The membership actor: a thin shell that runs the [`MembershipTable`] (failure detector),
//! the [`Dialer`] and the [`Sessions`] tracker over ractor_cluster, carries out what they
//! decide, and publishes the view (to the ring owner) and the member rows and peers (to
//! readers).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ractor::pg::GroupChangeMessage;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster::NodeSessionMessage;
use tokio::sync::watch;
use tokio::time::Instant;

use super::dialer::{DialEvent, Dialer};
use super::events;
use super::msg::MembershipMsg;
use super::port::PortArgs;
use super::sessions::{SessionAction, Sessions};
use super::table::{Change, Detector, MemberInfo, MembershipTable};
use super::transport::{self, Edge, PortChange};
use super::view::{ClusterSettings, MemberRow, MembershipView};
use super::wire::{broadcast, Heartbeat, PeerMessage, PortMsg};
use crate::link::Link;
use crate::model::NodeName;
use crate::ring::msg::RingOwnerMsg;
use crate::supervisor::msg::{ProbeSupMsg, RootMsg};
use crate::view::{NodeView, Peer};

/// A dial must connect within this.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Heartbeats carry the member list every this many beats.
const MEMBERS_EVERY: u64 = 4;
/// A refused peer is disconnected this long after the refusal is sent (so that it arrives).
const REFUSE_GRACE: Duration = Duration::from_millis(500);

/// The membership actor.
#[derive(Debug)]
pub struct Membership;

/// What membership starts with.
#[derive(Debug)]
pub struct MembershipArgs {
    /// This node's ring weight.
    pub weight: u32,
    /// Cluster settings; `None` for a single node.
    pub cluster: Option<ClusterSettings>,
    /// Where views and peers' adopted digests go.
    pub ring: Link<RingOwnerMsg>,
    /// Where the port routes hand-off states.
    pub probes: Link<ProbeSupMsg>,
    /// Where the port routes a refusal of this node.
    pub root: ActorRef<RootMsg>,
    /// Read for heartbeats (adopted digest, unprobed count) and by the port for answers.
    pub view: NodeView,
    /// Where the member rows are published.
    pub members: watch::Sender<Arc<[MemberRow]>>,
    /// Where the alive peers' ports are published.
    pub peers: watch::Sender<Arc<[Peer]>>,
}

/// Clustered part of the state.
#[derive(Debug)]
struct Net {
    settings: ClusterSettings,
    incarnation: u64,
    table: MembershipTable,
    dialer: Dialer,
    sessions: Sessions<ActorRef<NodeSessionMessage>, ActorRef<PortMsg>>,
    /// ractor_cluster's node server, the port and the listener.
    edge: Edge,
    beats: u64,
    leaving: bool,
}

/// Membership's state.
#[derive(Debug)]
pub struct MembershipState {
    args: MembershipArgs,
    net: Option<Net>,
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl Actor for Membership {
    type Msg = MembershipMsg;
    type State = MembershipState;
    type Arguments = MembershipArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<MembershipMsg>,
        mut args: MembershipArgs,
    ) -> Result<MembershipState, ActorProcessingErr> {
        let me = args.view.node().clone();
        let Some(settings) = args.cluster.take() else {
            tracing::info!(node = %me, alive = 1, "membership: single node (no [cluster] listen)");
            return Ok(MembershipState { args, net: None });
        };
        let port_args = PortArgs {
            membership: myself.clone(),
            probes: args.probes.clone(),
            root: args.root.clone(),
            view: args.view.clone(),
        };
        let edge = transport::start(&myself, &me, &settings, port_args).await?;
        let dialer = Dialer::for_seeds(&settings.seeds, settings.advertise, settings.redial_max);
        myself.send_interval(settings.heartbeat, || MembershipMsg::Tick);
        tracing::info!(
            node = %me, listen = %settings.listen, advertise = %settings.advertise,
            seeds = settings.seeds.len(), tls = settings.tls.is_some(), "membership: cluster node listening"
        );
        let detector = Detector {
            suspect_after: settings.suspect_after,
            dead_after: settings.dead_after,
        };
        let net = Net {
            // The start time (Unix ms): a restarted node has a larger one.
            incarnation: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            table: MembershipTable::new(me, settings.advertise.to_string(), detector)
                .with_targets(settings.targets_digest),
            dialer,
            sessions: Sessions::default(),
            edge,
            beats: 0,
            leaving: false,
            settings,
        };
        Ok(MembershipState {
            args,
            net: Some(net),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<MembershipMsg>,
        state: &mut MembershipState,
    ) -> Result<(), ActorProcessingErr> {
        state.publish();
        state.dial_due(&myself);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<MembershipMsg>,
        state: &mut MembershipState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(net) = &state.net {
            net.edge.stop();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<MembershipMsg>,
        msg: MembershipMsg,
        state: &mut MembershipState,
    ) -> Result<(), ActorProcessingErr> {
        let Some(net) = &mut state.net else {
            match msg {
                MembershipMsg::Publish => state.publish(),
                MembershipMsg::Leave(reply) => {
                    let _ = reply.send(());
                }
                _ => {}
            }
            return Ok(());
        };
        let actions = match msg {
            MembershipMsg::Publish => {
                state.publish();
                return Ok(());
            }
            MembershipMsg::Tick => {
                let changes = net.table.tick(now());
                state.apply(changes);
                state.heartbeat();
                state.dial_due(&myself);
                state.publish_rows();
                return Ok(());
            }
            MembershipMsg::Peer(msg) => {
                state.peer(&myself, *msg);
                return Ok(());
            }
            MembershipMsg::DialDone { addr, result } => {
                match result {
                    // The handshake decides: success when it authenticates.
                    Ok(target) => net.sessions.dialled(target, &addr),
                    Err(error) => {
                        if let Some(DialEvent::Unreachable { seed, error, .. }) =
                            net.dialer.failed(&addr, now(), &error)
                        {
                            events::unreachable(&addr, seed, &error);
                        }
                    }
                }
                return Ok(());
            }
            MembershipMsg::Session(ev) => net.sessions.event(ev),
            MembershipMsg::CheckAuth(id) => net.sessions.check_auth(id),
            MembershipMsg::JudgeFailure(failure) => net.sessions.judge_failure(failure, now()),
            MembershipMsg::CloseSession(id) => {
                if let Some(s) = net.sessions.handle(id) {
                    s.stop(Some("refused".into()));
                }
                return Ok(());
            }
            MembershipMsg::Leave(reply) => {
                let msg = PeerMessage::Leave {
                    name: state.args.view.node().to_string(),
                    incarnation: net.incarnation,
                };
                broadcast(net.sessions.ports(), &msg);
                tracing::info!(peers = net.sessions.ports().count(), "leaving the cluster");
                net.leaving = true;
                let _ = reply.send(());
                return Ok(());
            }
        };
        net.edge
            .unauthenticated
            .store(net.sessions.unauthenticated(), Ordering::Relaxed);
        state.run(&myself, actions);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<MembershipMsg>,
        evt: SupervisionEvent,
        state: &mut MembershipState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ProcessGroupChanged(change) => state.ports_changed(change),
            SupervisionEvent::ActorFailed(cell, err) => {
                return Err(format!("membership child {} failed: {err}", cell.get_id()).into());
            }
            SupervisionEvent::ActorTerminated(cell, _, reason)
                if !state.net.as_ref().is_some_and(|n| n.leaving) =>
            {
                return Err(format!(
                    "membership child {} stopped: {}",
                    cell.get_id(),
                    reason.unwrap_or_default()
                )
                .into());
            }
            _ => {}
        }
        Ok(())
    }
}

impl MembershipState {
    fn view(&self) -> MembershipView {
        let me = self.args.view.node().clone();
        match &self.net {
            None => MembershipView::single(me, self.args.weight),
            Some(net) => net.table.view(self.args.weight, now(), SystemTime::now()),
        }
    }

    /// Sends the view to the ring owner and publishes the rows.
    fn publish(&self) {
        self.args
            .ring
            .cast(RingOwnerMsg::MembershipChanged(self.view()));
        self.publish_rows();
    }

    /// Publishes the member rows and the peers this node can talk to.
    fn publish_rows(&self) {
        let Some(net) = &self.net else {
            let me = MemberRow::local(
                self.args.view.node().clone(),
                String::new(),
                self.args.weight,
            );
            self.args.members.send_replace(Arc::from(vec![me]));
            return;
        };
        let rows = net.table.rows(self.args.weight);
        self.args.members.send_replace(rows.into());
        let peers: Vec<Peer> = (net.sessions.member_ports())
            .filter(|(name, _)| net.table.state_of(name).is_some_and(|s| s.in_ring()))
            .map(|(name, port)| Peer {
                name: name.clone(),
                port: port.clone(),
            })
            .collect();
        self.args.peers.send_replace(peers.into());
    }

    /// Carries out what the session tracker decided.
    fn run(
        &mut self,
        myself: &ActorRef<MembershipMsg>,
        actions: Vec<SessionAction<ActorRef<NodeSessionMessage>>>,
    ) {
        let Some(net) = &mut self.net else { return };
        let mut changes = Vec::new();
        for action in actions {
            match action {
                SessionAction::CheckAuthLater { node_id, after } => {
                    myself.send_after(after, move || MembershipMsg::CheckAuth(node_id));
                }
                SessionAction::JudgeFailureLater { failure, after } => {
                    myself.send_after(after, move || MembershipMsg::JudgeFailure(failure));
                }
                SessionAction::Close { handle, reason } => handle.stop(Some(reason.into())),
                SessionAction::WarnAuthTimeout { peer_addr } => events::auth_timeout(&peer_addr),
                SessionAction::WarnAuthFailed {
                    failure,
                    suppressed,
                } => events::auth_failed(&failure, suppressed),
                SessionAction::DialSucceeded { addr } => net.dialer.connected(&addr, now()),
                SessionAction::DialFailed { addr } => {
                    if let Some(DialEvent::Unreachable { error, .. }) =
                        net.dialer
                            .failed(&addr, now(), "closed during authentication")
                    {
                        tracing::debug!(%addr, %error, "dial closed during authentication");
                    }
                }
                SessionAction::MemberDisconnected(name) => {
                    changes.extend(net.table.disconnected(&name));
                }
            }
        }
        self.apply(changes);
    }

    fn heartbeat(&mut self) {
        let adopted = self.args.view.ownership().digest;
        let unprobed = self.args.view.state().unprobed_now() as u64;
        let me = self.args.view.node().to_string();
        let Some(net) = &mut self.net else { return };
        if net.leaving || net.sessions.ports().next().is_none() {
            return;
        }
        net.beats += 1;
        let members = if net.beats % MEMBERS_EVERY == 1 {
            net.table.ring_addrs()
        } else {
            Vec::new()
        };
        let hb = PeerMessage::Heartbeat(Heartbeat {
            name: me,
            addr: net.settings.advertise.to_string(),
            weight: self.args.weight,
            incarnation: net.incarnation,
            adopted,
            targets: net.settings.targets_digest,
            unprobed,
            members,
        });
        broadcast(net.sessions.ports(), &hb);
    }

    fn dial_due(&mut self, myself: &ActorRef<MembershipMsg>) {
        let Some(net) = &mut self.net else { return };
        if net.leaving {
            return;
        }
        for (addr, attempt) in net.dialer.due(now()) {
            let ns = net.edge.node_server.clone();
            let me = myself.clone();
            let bind = Some(net.settings.advertise.ip());
            let tls = net.settings.tls.clone();
            tracing::debug!(%addr, attempt, "dialling");
            tokio::spawn(async move {
                let result = transport::dial(&ns, &addr, bind, tls.as_ref(), DIAL_TIMEOUT).await;
                let _ = me.cast(MembershipMsg::DialDone { addr, result });
            });
        }
    }

    fn ports_changed(&mut self, change: GroupChangeMessage) {
        let Some(net) = &mut self.net else { return };
        match transport::port_change(change) {
            Some(PortChange::Joined(ports)) if !ports.is_empty() => {
                for (id, port) in ports {
                    net.sessions.port_joined(id, port);
                }
                net.beats = 0; // the next heartbeat carries the member list
                self.heartbeat();
            }
            Some(PortChange::Left(ids)) => {
                ids.into_iter().for_each(|id| net.sessions.port_left(id))
            }
            _ => {}
        }
    }

    fn peer(&mut self, myself: &ActorRef<MembershipMsg>, msg: PeerMessage) {
        let me = self.args.view.node().clone();
        let Some(net) = &mut self.net else { return };
        match msg {
            PeerMessage::Heartbeat(hb) => {
                let Ok(name) = NodeName::new(&hb.name) else {
                    return;
                };
                let info = MemberInfo {
                    addr: hb.addr.clone(),
                    weight: hb.weight,
                    incarnation: hb.incarnation,
                    adopted: hb.adopted,
                    targets: hb.targets,
                    unprobed: hb.unprobed,
                };
                match net.table.heard(&name, info, now()) {
                    Ok(changes) => {
                        net.dialer.add_member(&hb.addr);
                        net.dialer.set_connected(&hb.addr, true);
                        let advertise = net.settings.advertise.to_string();
                        for m in &hb.members {
                            if m.name != me.as_str() && m.addr != advertise {
                                net.dialer.add_member(&m.addr);
                            }
                        }
                        self.apply(changes);
                    }
                    Err(dup) => {
                        events::refusing(&dup);
                        let refuse = PeerMessage::Refuse {
                            from: me.to_string(),
                            reason: dup.reason(),
                        };
                        let peer_name = dup.newcomer_peer_name();
                        broadcast(net.sessions.ports_of_peer(&peer_name).map(|p| p.1), &refuse);
                        for (id, _) in net.sessions.of_peer(&peer_name) {
                            myself
                                .send_after(REFUSE_GRACE, move || MembershipMsg::CloseSession(id));
                        }
                    }
                }
            }
            PeerMessage::Leave { name, incarnation } => {
                let Ok(name) = NodeName::new(&name) else {
                    return;
                };
                let addr = net
                    .table
                    .members()
                    .find(|(n, _, _)| **n == name)
                    .map(|(_, _, i)| i.addr.clone());
                if let Some(c) = net.table.left(&name, incarnation) {
                    if let Some(addr) = addr {
                        net.dialer.forget(&addr);
                    }
                    self.apply(vec![c]);
                }
            }
            // The port routes these elsewhere.
            PeerMessage::Refuse { .. } | PeerMessage::Handoff { .. } => {}
        }
    }

    /// Logs table changes, and publishes the view when the ring's members changed and the
    /// peers' adopted digests when those did.
    fn apply(&mut self, changes: Vec<Change>) {
        let Some(net) = &mut self.net else { return };
        if changes.is_empty() {
            return;
        }
        let ring_changed = changes.iter().any(Change::changes_ring);
        let adopted_changed = changes.iter().any(|c| matches!(c, Change::Adopted(..)));
        let alive = net.table.alive_count();
        for c in &changes {
            events::change(c, alive);
            if let Change::Dead(n, _) = c {
                // Close what is left of the link, so a frozen peer that resumes sees it and
                // rejoins.
                for s in net.sessions.of_member(n) {
                    s.stop(Some("ringpoll: member dead".into()));
                }
                if let Some((_, _, info)) = net.table.members().find(|(m, _, _)| *m == n) {
                    net.dialer.set_connected(&info.addr.clone(), false);
                }
            }
        }
        let adopted = net.table.adopted();
        if ring_changed {
            self.publish();
        }
        if ring_changed || adopted_changed {
            self.args.ring.cast(RingOwnerMsg::PeerDigests(adopted));
        }
    }
}
