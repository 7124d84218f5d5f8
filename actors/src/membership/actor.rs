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

use super::cadence::{self, Beats, Pace, SLOW_FACTOR};
use super::dialer::{DialEvent, Dialer};
use super::events;
use super::msg::MembershipMsg;
use super::port::PortArgs;
use super::sessions::{SessionAction, Sessions};
use super::table::{Change, DeathCause, Detector, DuplicateName, MemberInfo, MembershipTable};
use super::transport::{self, Edge, PortChange};
use super::view::{ClusterSettings, MemberRow};
use super::wire::{broadcast, Heartbeat, PeerMessage, PortMsg};
use crate::catalog::msg::CatalogMsg;
use crate::clock::now;
use crate::confirm::msg::ConfirmMsg;
use crate::link::Link;
use crate::model::NodeName;
use crate::ring::msg::RingOwnerMsg;
use crate::supervisor::msg::{ProbeSupMsg, RootMsg};
use crate::view::{NodeView, Peer};

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
    /// Where the members' announced target sets go.
    pub catalog: Link<CatalogMsg>,
    /// Where the port routes hand-off states.
    pub probes: Link<ProbeSupMsg>,
    /// Where the port routes co-owners' views.
    pub confirm: Link<ConfirmMsg>,
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
    dialer: Dialer,
    sessions: Sessions<ActorRef<NodeSessionMessage>, ActorRef<PortMsg>>,
    /// ractor_cluster's node server, the port and the listener.
    edge: Edge,
    beats: u64,
    /// What each session was last sent (who hears each heartbeat, see `cadence`).
    sent: Beats,
    leaving: bool,
}

/// Membership's state.
#[derive(Debug)]
pub struct MembershipState {
    args: MembershipArgs,
    /// The members and the failure detector (this node alone when not clustered).
    table: MembershipTable,
    net: Option<Net>,
    /// This node's name turned out to be another's: it is stopping.
    refused: bool,
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
            let never = Detector {
                suspect_after: Duration::MAX,
                dead_after: Duration::MAX,
                tick: Duration::MAX,
            };
            let table = MembershipTable::new(me, String::new(), 0, never);
            return Ok(MembershipState {
                args,
                table,
                net: None,
                refused: false,
            });
        };
        let port_args = PortArgs {
            membership: myself.clone(),
            probes: args.probes.clone(),
            confirm: args.confirm.clone(),
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
            tick: settings.heartbeat,
        };
        // The start time (Unix ms): a restarted node has a larger one.
        let incarnation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let table = MembershipTable::new(me, settings.advertise.to_string(), incarnation, detector);
        let net = Net {
            incarnation,
            dialer,
            sessions: Sessions::default(),
            edge,
            beats: 0,
            sent: Beats::default(),
            leaving: false,
            settings,
        };
        Ok(MembershipState {
            args,
            table,
            net: Some(net),
            refused: false,
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
        if let MembershipMsg::Leave(reply) = msg {
            state.leave();
            let _ = reply.send(());
            return Ok(());
        }
        if let MembershipMsg::Publish = msg {
            state.publish();
            return Ok(());
        }
        let Some(net) = &mut state.net else {
            return Ok(()); // a single node has nothing else to do
        };
        let actions = match msg {
            MembershipMsg::Tick => {
                let changes = state.table.tick(now());
                state.apply(changes);
                state.heartbeat();
                state.dial_due(&myself);
                state.publish_rows();
                Vec::new()
            }
            MembershipMsg::Peer(msg) => {
                state.peer(&myself, *msg);
                Vec::new()
            }
            // The handshake decides a dial that connected: success when it authenticates.
            MembershipMsg::DialDone { addr, result } => match result {
                Ok(target) => {
                    net.sessions.dialled(target, &addr);
                    Vec::new()
                }
                Err(error) => {
                    if let Some(DialEvent::Unreachable { seed, error, .. }) =
                        net.dialer.failed(&addr, now(), &error.message)
                    {
                        events::unreachable(&addr, seed, &error);
                    }
                    // A member redialled after its link was lost: nothing listens, it is gone.
                    // (Any other failure may be this node's own slowness: the lost link's
                    // confirmation wait decides.)
                    if error.refused {
                        let dead = state.table.redial_failed(&addr);
                        state.apply(dead.into_iter().collect());
                    }
                    Vec::new()
                }
            },
            MembershipMsg::Session(ev) => net.sessions.event(ev),
            MembershipMsg::CheckAuth(id) => net.sessions.check_auth(id),
            MembershipMsg::JudgeFailure(failure) => net.sessions.judge_failure(failure, now()),
            MembershipMsg::CloseSession(id) => {
                if let Some(s) = net.sessions.handle(id) {
                    s.stop(Some("refused".into()));
                }
                Vec::new()
            }
            MembershipMsg::Leave(_) | MembershipMsg::Publish => Vec::new(),
        };
        if let Some(net) = &state.net {
            let unauthenticated = net.sessions.unauthenticated();
            net.edge
                .unauthenticated
                .store(unauthenticated, Ordering::Relaxed);
        }
        state.run(&myself, actions);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<MembershipMsg>,
        evt: SupervisionEvent,
        state: &mut MembershipState,
    ) -> Result<(), ActorProcessingErr> {
        let leaving = state.net.as_ref().is_some_and(|n| n.leaving);
        let (child, why) = match evt {
            SupervisionEvent::ProcessGroupChanged(change) => {
                state.ports_changed(change);
                return Ok(());
            }
            SupervisionEvent::ActorFailed(cell, err) => (cell, format!("failed: {err}")),
            SupervisionEvent::ActorTerminated(cell, _, r) if !leaving => {
                (cell, format!("stopped: {}", r.unwrap_or_default()))
            }
            _ => return Ok(()),
        };
        // The node server and the port are part of membership: it fails with them.
        Err(format!("membership child {} {why}", child.get_id()).into())
    }
}

impl MembershipState {
    /// Sends the view to the ring owner and the members' target sets to the catalog, and
    /// publishes the rows and peers.
    fn publish(&self) {
        let view = self.table.view(self.args.weight, now(), SystemTime::now());
        self.args.ring.cast(RingOwnerMsg::MembershipChanged(view));
        self.publish_sets();
        self.publish_rows();
    }

    /// Tells the catalog which members are in the ring and the target sets they announced.
    fn publish_sets(&self) {
        let sets = self.table.target_sets();
        self.args.catalog.cast(CatalogMsg::Members(sets));
    }

    /// Publishes the member rows and the peers this node can talk to.
    fn publish_rows(&self) {
        let rows = self.table.rows(self.args.weight);
        self.args.members.send_replace(rows.into());
        let Some(net) = &self.net else { return };
        let peers: Vec<Peer> = (net.sessions.member_ports())
            .filter(|(name, _)| self.table.state_of(name).is_some_and(|s| s.in_ring()))
            .map(|(name, port)| Peer {
                name: name.clone(),
                port: port.clone(),
            })
            .collect();
        self.args.peers.send_replace(peers.into());
    }

    /// Tells the peers this node leaves, and stops dialling.
    fn leave(&mut self) {
        let me = self.args.view.node().to_string();
        let Some(net) = &mut self.net else { return };
        let msg = PeerMessage::Leave {
            name: me,
            incarnation: net.incarnation,
        };
        broadcast(net.sessions.ports(), &msg);
        net.edge.stop_accepting();
        tracing::info!(
            peers = net.sessions.ports().count(),
            "leaving the cluster (cluster listener closed)"
        );
        net.leaving = true;
    }

    /// Carries out what the session tracker decided.
    fn run(
        &mut self,
        myself: &ActorRef<MembershipMsg>,
        actions: Vec<SessionAction<ActorRef<NodeSessionMessage>>>,
    ) {
        let Some(net) = &mut self.net else { return };
        let mut changes = Vec::new();
        let mut redial = false;
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
                // Not a sign of death: two nodes redialling each other at once lose one of the
                // two connections this way. LINK_CONFIRM bounds the wait.
                SessionAction::DialFailed { addr } => {
                    if let Some(DialEvent::Unreachable { error, .. }) =
                        net.dialer
                            .failed(&addr, now(), "closed during authentication")
                    {
                        tracing::debug!(%addr, %error, "dial closed during authentication");
                    }
                }
                SessionAction::MemberDisconnected(name) => {
                    if let Some((change, addr)) = self.table.link_lost(&name, now()) {
                        changes.push(change);
                        net.dialer.set_connected(&addr, false);
                        redial = true;
                    }
                }
            }
        }
        self.apply(changes);
        if redial {
            self.dial_due(myself);
        }
    }

    /// Heartbeats the peers: the watchers and peers not yet named every interval, the others
    /// once per `SLOW_FACTOR` intervals or when what this node says changed (`cadence`).
    fn heartbeat(&mut self) {
        let adopted = self.args.view.ownership().digest;
        let own_set = self.args.view.own_set().digest;
        let unprobed = self.args.view.state().unprobed_now() as u64;
        let me = self.args.view.node().clone();
        let Some(net) = &mut self.net else { return };
        if net.leaving || net.sessions.ports().next().is_none() {
            return;
        }
        net.beats += 1;
        let weight = self.table.my_weight(self.args.weight);
        let ring: Vec<NodeName> = self.table.ring_members(0).into_keys().collect();
        let watchers = cadence::watchers(&ring, &me);
        let content = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (weight, adopted, own_set, &ring).hash(&mut h);
            h.finish()
        };
        let plan = net.sent.plan(
            now(),
            net.settings.heartbeat,
            content,
            net.sessions
                .port_ids()
                .map(|id| (id, net.sessions.member_of(id))),
            &watchers,
        );
        let periodic_members = net.beats % MEMBERS_EVERY == 1;
        let slow_ms = (net.settings.heartbeat * SLOW_FACTOR).as_millis() as u64;
        let mut encoded: [Option<Vec<u8>>; 4] = Default::default();
        for beat in plan {
            let with_members = beat.news || (periodic_members && beat.pace == Pace::Full);
            let slot = usize::from(with_members) * 2 + usize::from(beat.pace == Pace::Slow);
            let bytes = encoded[slot].get_or_insert_with(|| {
                PeerMessage::Heartbeat(Heartbeat {
                    name: me.to_string(),
                    addr: net.settings.advertise.to_string(),
                    weight,
                    incarnation: net.incarnation,
                    adopted,
                    targets: own_set,
                    unprobed,
                    every_ms: (beat.pace == Pace::Slow).then_some(slow_ms),
                    health: self.table.health_score(),
                    members: if with_members {
                        self.table.ring_addrs()
                    } else {
                        Vec::new()
                    },
                })
                .encode()
            });
            if let Some(port) = net.sessions.port(beat.session) {
                let _ = port.cast(PortMsg::Wire(bytes.clone()));
            }
        }
    }

    fn dial_due(&mut self, myself: &ActorRef<MembershipMsg>) {
        let Some(net) = &mut self.net else { return };
        if net.leaving {
            return;
        }
        for (addr, attempt) in net.dialer.due(now()) {
            tracing::debug!(%addr, attempt, "dialling");
            transport::spawn_dial(&net.edge, &net.settings, addr, myself.clone());
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
            Some(PortChange::Left(ids)) => ids.into_iter().for_each(|id| {
                net.sessions.port_left(id);
                net.sent.forget(id);
            }),
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
                    every: hb.every_ms.map(Duration::from_millis),
                    health: hb.health,
                };
                match self.table.heard(&name, info, now()) {
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
                    Err(dup) if dup.newcomer_is_me => self.stop_for(&dup, None),
                    Err(dup) => {
                        events::refusing(&dup);
                        let refuse = PeerMessage::Refuse {
                            from: me.to_string(),
                            reason: dup.reason(),
                            holder: Some(dup.holder.clone()),
                            holder_incarnation: Some(dup.holder_incarnation),
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
                let addr = self
                    .table
                    .members()
                    .find(|(n, _, _)| **n == name)
                    .map(|(_, _, i)| i.addr.clone());
                if let Some(c) = self.table.left(&name, incarnation) {
                    if let Some(addr) = addr {
                        net.dialer.forget(&addr);
                    }
                    self.apply(vec![c]);
                }
            }
            PeerMessage::Refuse {
                from,
                reason,
                holder,
                holder_incarnation,
            } => match holder
                .zip(holder_incarnation)
                .and_then(|(h, i)| self.table.refusal(&h, i))
            {
                Some(dup) => self.stop_for(&dup, Some(&from)),
                None => events::refusal_ignored(&from, &reason),
            },
            PeerMessage::Dead {
                from,
                name,
                incarnation,
            } => {
                let (Ok(from), Ok(name)) = (NodeName::new(&from), NodeName::new(&name)) else {
                    return;
                };
                if self.table.reported_dead(&from, &name, incarnation, now()) {
                    // Alive after all: every peer hears so at once.
                    events::refuting(from.as_str());
                    net.sent = Beats::default();
                    self.heartbeat();
                }
            }
            // The port routes these elsewhere.
            PeerMessage::Handoff { .. } | PeerMessage::Views { .. } => {}
        }
    }

    /// This node's name is held by a node started before it: it stops (exit 1), once.
    fn stop_for(&mut self, dup: &DuplicateName, refused_by: Option<&str>) {
        if !std::mem::replace(&mut self.refused, true) {
            events::name_taken(dup, refused_by);
            let _ = self.args.root.cast(RootMsg::Fatal(dup.reason()));
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
        let sets_changed = changes.iter().any(|c| matches!(c, Change::TargetSet(..)));
        let alive = self.table.alive_count();
        let me = self.args.view.node();
        for c in &changes {
            events::change(c, alive);
            if let Change::Dead(n, DeathCause::Silent(_)) = c {
                // This node watched it: the others, who hear it less often, are told (and the
                // member itself, which refutes it if it is alive).
                let incarnation = (self.table.members())
                    .find(|(m, _, _)| *m == n)
                    .map(|(_, _, info)| info.incarnation);
                if let Some(incarnation) = incarnation.filter(|_| self.table.watches(n)) {
                    let report = PeerMessage::Dead {
                        from: me.to_string(),
                        name: n.to_string(),
                        incarnation,
                    };
                    broadcast(net.sessions.ports(), &report);
                }
            }
            if let Change::Dead(n, DeathCause::Silent(_) | DeathCause::Disconnected) = c {
                // Close what is left of the link, so a frozen peer that resumes sees it and
                // rejoins. Not on a report: this node's own link may be fine, and closing it
                // would spread one watcher's mistake.
                for s in net.sessions.of_member(n) {
                    s.stop(Some("ringpoll: member dead".into()));
                }
                if let Some((_, _, info)) = self.table.members().find(|(m, _, _)| *m == n) {
                    net.dialer.set_connected(&info.addr.clone(), false);
                }
            }
        }
        if ring_changed {
            self.publish();
        } else if sets_changed {
            self.publish_sets();
        }
        if ring_changed || adopted_changed {
            let adopted = self.table.adopted();
            self.args.ring.cast(RingOwnerMsg::PeerDigests(adopted));
        }
    }
}
