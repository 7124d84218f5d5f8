//! The membership actor: runs the table, the failure detector and the dialer over
//! ractor_cluster, and publishes the view to the ring owner.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ractor::pg::GroupChangeMessage;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::{
    IncomingEncryptionMode, NodeServer, NodeServerMessage, NodeSessionMessage, RactorMessage,
};
use tokio::time::Instant;

use super::dialer::{DialEvent, Dialer};
use super::table::{Change, DeathCause, Detector, MemberInfo, MembershipTable};
use super::transport::{
    self, ClusterEvents, PortActor, PortMsg, SessionEvent, SessionEventKind, PORT_GROUP,
};
use super::wire::{HandoffState, Heartbeat, PeerAddr, PeerMessage, HANDOFF_CHUNK};
use super::{ClusterSettings, MemberRow, MembershipView};
use crate::model::NodeName;
use crate::ring::RingOwnerMsg;
use crate::supervisor::{ProbeSupMsg, RootMsg, TreeRefs};

/// A connection must authenticate within this, or it is closed.
const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// A dial must connect within this.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Heartbeats carry the member list every this many beats.
const MEMBERS_EVERY: u64 = 4;

/// The membership actor.
#[derive(Debug)]
pub struct Membership;

/// What membership starts with.
#[derive(Debug)]
pub struct MembershipArgs {
    /// This node.
    pub me: NodeName,
    /// This node's ring weight.
    pub weight: u32,
    /// Cluster settings; `None` for a single node.
    pub cluster: Option<ClusterSettings>,
    /// The other actors.
    pub refs: Arc<TreeRefs>,
}

/// Messages of membership (local only; peers talk to the [`PortActor`]).
#[derive(Debug, RactorMessage)]
pub enum MembershipMsg {
    /// Heartbeat period: advance the failure detector, send heartbeats, dial what is due.
    Tick,
    /// A ractor_cluster session event.
    Session(SessionEvent),
    /// A decoded message from a peer.
    Peer(Box<PeerMessage>),
    /// A dial finished.
    DialDone {
        /// The address dialled.
        addr: String,
        /// Ok, or the error.
        result: Result<SocketAddr, String>,
    },
    /// Close session `node_id` if it is still unauthenticated.
    CheckAuth(u64),
    /// Close session `node_id` (a refused peer).
    CloseSession(u64),
    /// A connection to or from `peer_name` closed before authenticating: warn unless another
    /// connection with that peer authenticated meanwhile (then it was a duplicate).
    AuthFailCheck {
        /// The peer's ractor node name, when the handshake got that far.
        peer_name: Option<String>,
        /// The socket address.
        peer_addr: String,
        /// True when the peer dialled us.
        incoming: bool,
    },
    /// Send the current view to the ring owner again (it restarted).
    Publish,
    /// Reply with the current view.
    GetView(RpcReplyPort<MembershipView>),
    /// Tell the peers this node leaves, then reply.
    Leave(RpcReplyPort<()>),
    /// Send these target states to every peer (targets this node no longer owns).
    HandoffOut(Vec<HandoffState>),
    /// Reply with the port of every connected member (for cluster-wide queries).
    Ports(RpcReplyPort<Vec<(NodeName, ActorCell)>>),
}

#[derive(Debug)]
struct Session {
    actor: ActorRef<NodeSessionMessage>,
    peer_addr: String,
    incoming: bool,
    authenticated: bool,
    /// The peer's ractor node name (`name@ip:port`) and the configured name in it.
    peer_name: Option<String>,
    name: Option<NodeName>,
}

/// Clustered part of the state.
#[derive(Debug)]
struct Net {
    settings: ClusterSettings,
    incarnation: u64,
    table: MembershipTable,
    dialer: Dialer,
    node_server: ActorRef<NodeServerMessage>,
    port: ActorRef<PortMsg>,
    listener: tokio::task::JoinHandle<()>,
    unauthenticated: Arc<AtomicUsize>,
    sessions: HashMap<u64, Session>,
    ports: HashMap<u64, ActorCell>,
    beats: u64,
    leaving: bool,
    peer_unprobed: HashMap<NodeName, u64>,
    /// Dials whose TCP connection is up but not yet authenticated: socket address → dial address.
    dialing: HashMap<String, String>,
    auth_warned_at: Option<std::time::Instant>,
    auth_warn_suppressed: u64,
    warned_targets: std::collections::BTreeSet<NodeName>,
}

/// Membership's state.
#[derive(Debug)]
pub struct MembershipState {
    me: NodeName,
    weight: u32,
    refs: Arc<TreeRefs>,
    net: Option<Net>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The configured name part of a ractor node name `name@host:port`.
fn name_of(peer_name: &str) -> Option<NodeName> {
    NodeName::new(peer_name.split('@').next()?).ok()
}

impl Actor for Membership {
    type Msg = MembershipMsg;
    type State = MembershipState;
    type Arguments = MembershipArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<MembershipMsg>,
        args: MembershipArgs,
    ) -> Result<MembershipState, ActorProcessingErr> {
        let Some(settings) = args.cluster else {
            tracing::info!(node = %args.me, alive = 1, "membership: single node (no [cluster] listen)");
            return Ok(MembershipState {
                me: args.me,
                weight: args.weight,
                refs: args.refs,
                net: None,
            });
        };
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|e| {
                format!(
                    "cannot listen for cluster connections on {}: {e}",
                    settings.listen
                )
            })?;
        // Its own listener is never advertised; with TLS it requires TLS too, so nothing on this
        // host can reach the node in plain text.
        let internal_encryption = settings
            .tls
            .as_ref()
            .map(|t| IncomingEncryptionMode::Tls(t.acceptor.clone()));
        let node_server = NodeServer::new(
            0,
            settings.cookie.clone(),
            args.me.to_string(),
            settings.advertise.to_string(),
            internal_encryption,
            Some(NodeConnectionMode::Isolated),
        )
        .with_listen_addr(std::net::Ipv4Addr::LOCALHOST.into());
        let (node_server, _) =
            Actor::spawn_linked(None, node_server, (), myself.get_cell()).await?;
        node_server.cast(NodeServerMessage::SubscribeToEvents {
            id: "ringpoll-membership".into(),
            subscription: Box::new(ClusterEvents(myself.clone())),
        })?;
        let port_args = transport::PortArgs {
            membership: myself.clone(),
            refs: args.refs.clone(),
            me: args.me.clone(),
        };
        let (port, _) = Actor::spawn_linked(None, PortActor, port_args, myself.get_cell()).await?;
        ractor::pg::monitor(PORT_GROUP.into(), myself.get_cell());
        ractor::pg::join(PORT_GROUP.into(), vec![port.get_cell()]);
        let unauthenticated = Arc::new(AtomicUsize::new(0));
        let listener = transport::spawn_listener(
            listener,
            node_server.clone(),
            unauthenticated.clone(),
            settings.tls.clone(),
        );
        let mut dialer = Dialer::new(Duration::from_millis(100), settings.redial_max);
        for seed in &settings.seeds {
            if seed.parse::<SocketAddr>().ok() != Some(settings.advertise) {
                dialer.add_seed(seed);
            }
        }
        myself.send_interval(settings.heartbeat, || MembershipMsg::Tick);
        tracing::info!(
            node = %args.me, listen = %settings.listen, advertise = %settings.advertise,
            seeds = settings.seeds.len(), tls = settings.tls.is_some(), "membership: cluster node listening"
        );
        let detector = Detector {
            suspect_after: settings.suspect_after,
            dead_after: settings.dead_after,
        };
        let net = Net {
            incarnation: now_ms(),
            table: MembershipTable::new(args.me.clone(), settings.advertise.to_string(), detector),
            dialer,
            node_server,
            port,
            listener,
            unauthenticated,
            sessions: HashMap::new(),
            ports: HashMap::new(),
            beats: 0,
            leaving: false,
            peer_unprobed: HashMap::new(),
            dialing: HashMap::new(),
            auth_warned_at: None,
            auth_warn_suppressed: 0,
            warned_targets: Default::default(),
            settings,
        };
        Ok(MembershipState {
            me: args.me,
            weight: args.weight,
            refs: args.refs,
            net: Some(net),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<MembershipMsg>,
        state: &mut MembershipState,
    ) -> Result<(), ActorProcessingErr> {
        state.publish();
        if state.net.is_some() {
            state.dial_due(&myself);
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<MembershipMsg>,
        state: &mut MembershipState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(net) = &state.net {
            net.listener.abort();
            ractor::pg::leave(PORT_GROUP.into(), vec![net.port.get_cell()]);
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<MembershipMsg>,
        msg: MembershipMsg,
        state: &mut MembershipState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MembershipMsg::Publish => state.publish(),
            MembershipMsg::GetView(reply) => {
                let _ = reply.send(state.view());
            }
            MembershipMsg::Tick => state.tick(&myself),
            MembershipMsg::Session(ev) => state.session(&myself, ev),
            MembershipMsg::Peer(msg) => state.peer(&myself, *msg),
            MembershipMsg::DialDone { addr, result } => state.dial_done(&addr, result),
            MembershipMsg::CheckAuth(id) => {
                if let Some(net) = &mut state.net {
                    if let Some(s) = net.sessions.get(&id).filter(|s| !s.authenticated) {
                        tracing::warn!(peer = %s.peer_addr, "cluster connection did not authenticate within {AUTH_TIMEOUT:?}; closing it");
                        s.actor.stop(Some("authentication timeout".into()));
                    }
                }
            }
            MembershipMsg::CloseSession(id) => {
                if let Some(s) = state.net.as_mut().and_then(|n| n.sessions.get(&id)) {
                    s.actor.stop(Some("refused".into()));
                }
            }
            MembershipMsg::AuthFailCheck {
                peer_name,
                peer_addr,
                incoming,
            } => {
                state.auth_fail_check(peer_name, &peer_addr, incoming);
            }
            MembershipMsg::Leave(reply) => {
                state.leave();
                state.set_leaving();
                let _ = reply.send(());
            }
            MembershipMsg::HandoffOut(states) => state.handoff_out(states),
            MembershipMsg::Ports(reply) => {
                let _ = reply.send(state.ports());
            }
        }
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
        match &self.net {
            None => MembershipView::single(self.me.clone(), self.weight),
            Some(net) => MembershipView {
                me: self.me.clone(),
                members: net.table.ring_members(self.weight),
                version: net.table.version(),
                dead: {
                    let (now, wall) = (std::time::Instant::now(), std::time::SystemTime::now());
                    net.table
                        .dead_silences(now)
                        .into_iter()
                        .map(|(n, silent)| (n, wall.checked_sub(silent).unwrap_or(wall)))
                        .collect()
                },
            },
        }
    }

    fn publish(&self) {
        self.refs
            .ring
            .cast(RingOwnerMsg::MembershipChanged(self.view()));
        self.publish_rows();
    }

    /// The member table, for the status API.
    fn publish_rows(&self) {
        let mut rows = vec![MemberRow {
            name: self.me.to_string(),
            state: "alive",
            address: self
                .net
                .as_ref()
                .map(|n| n.settings.advertise.to_string())
                .unwrap_or_default(),
            weight: self.weight,
            local: true,
            unprobed: 0,
        }];
        if let Some(net) = &self.net {
            for (name, state, info) in net.table.members() {
                rows.push(MemberRow {
                    name: name.to_string(),
                    state: state.as_str(),
                    address: info.addr.clone(),
                    weight: info.weight,
                    local: false,
                    unprobed: net.peer_unprobed.get(name).copied().unwrap_or(0),
                });
            }
        }
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        *self.refs.members.write().unwrap_or_else(|p| p.into_inner()) = rows;
    }

    /// The port of every connected member, by name.
    fn ports(&self) -> Vec<(NodeName, ActorCell)> {
        let Some(net) = &self.net else {
            return Vec::new();
        };
        net.ports
            .iter()
            .filter_map(|(id, cell)| {
                let name = net.sessions.get(id)?.name.clone()?;
                matches!(
                    net.table.state_of(&name),
                    Some(super::table::MemberState::Alive | super::table::MemberState::Suspect)
                )
                .then(|| (name, cell.clone()))
            })
            .collect()
    }

    fn tick(&mut self, myself: &ActorRef<MembershipMsg>) {
        let Some(net) = &mut self.net else { return };
        let changes = net.table.tick(Instant::now().into_std());
        self.apply(changes);
        self.heartbeat();
        self.dial_due(myself);
        self.publish_rows();
    }

    fn heartbeat(&mut self) {
        let adopted = self.refs.adopted.load(Ordering::Relaxed);
        let Some(net) = &mut self.net else { return };
        if net.leaving || net.ports.is_empty() {
            return;
        }
        net.beats += 1;
        let members = if net.beats % MEMBERS_EVERY == 1 {
            net.table
                .members()
                .filter(|(_, s, _)| {
                    matches!(
                        s,
                        super::table::MemberState::Alive | super::table::MemberState::Suspect
                    )
                })
                .map(|(n, _, i)| PeerAddr {
                    name: n.to_string(),
                    addr: i.addr.clone(),
                })
                .collect()
        } else {
            Vec::new()
        };
        let hb = PeerMessage::Heartbeat(Heartbeat {
            name: self.me.to_string(),
            addr: net.settings.advertise.to_string(),
            weight: self.weight,
            incarnation: net.incarnation,
            adopted,
            targets: net.settings.targets_digest,
            unprobed: self.refs.state.unprobed_now() as u64,
            members,
        });
        let bytes = hb.encode();
        for port in net.ports.values() {
            let _ = ActorRef::<PortMsg>::from(port.clone()).cast(PortMsg::Wire(bytes.clone()));
        }
    }

    fn dial_due(&mut self, myself: &ActorRef<MembershipMsg>) {
        let Some(net) = &mut self.net else { return };
        if net.leaving {
            return;
        }
        for (addr, attempt) in net.dialer.due(Instant::now().into_std()) {
            let ns = net.node_server.clone();
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

    fn dial_done(&mut self, addr: &str, result: Result<SocketAddr, String>) {
        let Some(net) = &mut self.net else { return };
        let now = Instant::now().into_std();
        match result {
            // Wait for the handshake's outcome before the next dial of this address.
            Ok(target) => {
                net.dialing.insert(target.to_string(), addr.to_string());
            }
            Err(error) => {
                if let Some(DialEvent::Unreachable { seed, error, .. }) =
                    net.dialer.failed(addr, now, &error)
                {
                    let what = if seed { "seed" } else { "member" };
                    tracing::warn!(%addr, %error, "{what} {addr} unreachable; retrying with backoff");
                }
            }
        }
    }

    fn session(&mut self, myself: &ActorRef<MembershipMsg>, ev: SessionEvent) {
        let Some(net) = &mut self.net else { return };
        let name = ev.peer_name.as_deref().and_then(name_of);
        match ev.kind {
            SessionEventKind::Opened => {
                net.unauthenticated.fetch_add(1, Ordering::Relaxed);
                net.sessions.insert(
                    ev.node_id,
                    Session {
                        actor: ev.actor,
                        peer_addr: ev.peer_addr,
                        incoming: ev.incoming,
                        authenticated: false,
                        peer_name: ev.peer_name,
                        name,
                    },
                );
                myself.send_after(AUTH_TIMEOUT, move || MembershipMsg::CheckAuth(ev.node_id));
            }
            SessionEventKind::Authenticated | SessionEventKind::Ready => {
                if let Some(s) = net.sessions.get_mut(&ev.node_id) {
                    if !s.authenticated {
                        s.authenticated = true;
                        net.unauthenticated.fetch_sub(1, Ordering::Relaxed);
                        if let Some(addr) = net.dialing.remove(&s.peer_addr) {
                            net.dialer.connected(&addr, Instant::now().into_std());
                        }
                    }
                    if name.is_some() {
                        s.name = name;
                        s.peer_name = ev.peer_name;
                    }
                }
            }
            SessionEventKind::Disconnected => {
                net.ports.remove(&ev.node_id);
                let Some(s) = net.sessions.remove(&ev.node_id) else {
                    return;
                };
                if !s.authenticated {
                    net.unauthenticated.fetch_sub(1, Ordering::Relaxed);
                    if let Some(addr) = net.dialing.remove(&s.peer_addr) {
                        if let Some(DialEvent::Unreachable { error, .. }) = net.dialer.failed(
                            &addr,
                            Instant::now().into_std(),
                            "closed during authentication",
                        ) {
                            tracing::debug!(%addr, %error, "dial closed during authentication");
                        }
                    }
                    // Duplicate connections (both sides dialled at once) also close early; a
                    // second later the surviving one is authenticated, so check then.
                    let check = MembershipMsg::AuthFailCheck {
                        peer_name: s.peer_name.or(ev.peer_name),
                        peer_addr: s.peer_addr,
                        incoming: s.incoming,
                    };
                    myself.send_after(Duration::from_secs(1), move || check);
                    return;
                }
                let Some(name) = s.name.or(name) else { return };
                let still_connected = net
                    .sessions
                    .values()
                    .any(|o| o.authenticated && o.name.as_ref() == Some(&name));
                if !still_connected {
                    if let Some(c) = net.table.disconnected(&name) {
                        self.apply(vec![c]);
                    }
                }
            }
        }
    }

    fn auth_fail_check(&mut self, peer_name: Option<String>, peer_addr: &str, incoming: bool) {
        let Some(net) = &mut self.net else { return };
        let ip = |a: &str| a.parse::<SocketAddr>().ok().map(|a| a.ip());
        let duplicate = net.sessions.values().any(|s| {
            s.authenticated
                && match &peer_name {
                    Some(p) => s.peer_name.as_ref() == Some(p),
                    None => ip(&s.peer_addr).is_some() && ip(&s.peer_addr) == ip(peer_addr),
                }
        });
        if duplicate {
            return;
        }
        // At most one warning per 10 s: a flood of bad connections must not flood the log.
        let now = std::time::Instant::now();
        if net
            .auth_warned_at
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(10))
        {
            net.auth_warn_suppressed += 1;
            return;
        }
        let more = std::mem::take(&mut net.auth_warn_suppressed);
        net.auth_warned_at = Some(now);
        let who = peer_name.as_deref().unwrap_or(peer_addr);
        if incoming {
            tracing::warn!(peer = %peer_addr, suppressed = more, "cluster connection from {who} failed to authenticate (wrong cookie, or not a ringpoll node); rejected");
        } else {
            tracing::warn!(peer = %peer_addr, suppressed = more, "{who} rejected our connection during authentication: check that both nodes use the same cookie ({} or cluster.cookie_file) and the same TLS setting", "RINGPOLL_COOKIE");
        }
    }

    fn ports_changed(&mut self, change: GroupChangeMessage) {
        let Some(net) = &mut self.net else { return };
        match change {
            GroupChangeMessage::Join(_, group, cells) if group == PORT_GROUP => {
                let mut new = false;
                for cell in cells {
                    if let ractor::ActorId::Remote { node_id, .. } = cell.get_id() {
                        net.ports.insert(node_id, cell);
                        new = true;
                    }
                }
                if new {
                    net.beats = 0; // the next heartbeat carries the member list
                    self.heartbeat();
                }
            }
            GroupChangeMessage::Leave(_, group, cells) if group == PORT_GROUP => {
                for cell in cells {
                    if let ractor::ActorId::Remote { node_id, .. } = cell.get_id() {
                        net.ports.remove(&node_id);
                    }
                }
            }
            _ => {}
        }
    }

    fn peer(&mut self, myself: &ActorRef<MembershipMsg>, msg: PeerMessage) {
        let Some(net) = &mut self.net else { return };
        match msg {
            PeerMessage::Heartbeat(hb) => {
                let Ok(name) = NodeName::new(&hb.name) else {
                    return;
                };
                net.peer_unprobed.insert(name.clone(), hb.unprobed);
                if hb.targets != net.settings.targets_digest
                    && net.warned_targets.insert(name.clone())
                {
                    tracing::warn!(member = %name, "member {name} has a different target list; every node must load the same targets or some go unprobed");
                }
                let info = MemberInfo {
                    addr: hb.addr.clone(),
                    weight: hb.weight,
                    incarnation: hb.incarnation,
                    adopted: hb.adopted,
                };
                match net.table.heard(&name, info, Instant::now().into_std()) {
                    Ok(changes) => {
                        net.dialer.add_member(&hb.addr);
                        net.dialer.set_connected(&hb.addr, true);
                        for m in &hb.members {
                            if m.name != self.me.as_str()
                                && m.addr != net.settings.advertise.to_string()
                            {
                                net.dialer.add_member(&m.addr);
                            }
                        }
                        self.apply(changes);
                    }
                    Err(dup) => {
                        let reason = format!(
                            "node name {} is already used by the member at {}; give the node at {} another name",
                            dup.name, dup.holder, dup.newcomer
                        );
                        tracing::error!(member = %dup.name, holder = %dup.holder, newcomer = %dup.newcomer, "refusing a node: {reason}");
                        let peer_name = format!("{}@{}", dup.name, dup.newcomer);
                        let refuse = PeerMessage::Refuse {
                            from: self.me.to_string(),
                            reason,
                        }
                        .encode();
                        for (id, s) in &net.sessions {
                            if s.peer_name.as_deref() != Some(peer_name.as_str()) {
                                continue;
                            }
                            if let Some(port) = net.ports.get(id) {
                                let _ = ActorRef::<PortMsg>::from(port.clone())
                                    .cast(PortMsg::Wire(refuse.clone()));
                            }
                            let id = *id;
                            myself.send_after(Duration::from_millis(500), move || {
                                MembershipMsg::CloseSession(id)
                            });
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
            PeerMessage::Refuse { from, reason } => {
                tracing::error!(refused_by = %from, "this node was refused by {from}: {reason}");
                self.refs
                    .root
                    .cast(RootMsg::Fatal(format!("refused by {from}: {reason}")));
            }
            PeerMessage::Handoff { from, states } => {
                tracing::debug!(from = %from, targets = states.len(), "target states handed over");
                self.refs.probes.cast(ProbeSupMsg::Inherit(states));
            }
        }
    }

    fn apply(&mut self, changes: Vec<Change>) {
        let Some(net) = &mut self.net else { return };
        let mut ring_changed = false;
        let mut adopted_changed = false;
        let alive = net.table.alive_count();
        for c in changes {
            ring_changed |= c.changes_ring();
            match c {
                Change::Joined(n) => {
                    tracing::info!(member = %n, alive, "member {n} joined ({alive} alive)")
                }
                Change::Restarted(n) => {
                    tracing::info!(member = %n, alive, "member {n} restarted ({alive} alive)")
                }
                Change::Suspect(n, silent) => {
                    let ms = silent.as_millis() as u64;
                    tracing::warn!(member = %n, silent_ms = ms, "member {n} suspect ({ms} ms without heartbeat)")
                }
                Change::Recovered(n) => tracing::info!(member = %n, "member {n} alive again"),
                Change::Dead(n, cause) => {
                    match cause {
                        DeathCause::Silent(d) => {
                            let s = d.as_secs_f64();
                            tracing::warn!(member = %n, alive, silent_s = s, "member {n} dead ({s:.1} s without heartbeat; {alive} alive)");
                        }
                        DeathCause::Disconnected => {
                            tracing::warn!(member = %n, alive, "member {n} dead (connection closed; {alive} alive)")
                        }
                    }
                    // Close what is left of the link, so a frozen peer that resumes sees it and rejoins.
                    for s in net
                        .sessions
                        .values()
                        .filter(|s| s.name.as_ref() == Some(&n))
                    {
                        s.actor.stop(Some("ringpoll: member dead".into()));
                    }
                    if let Some((_, _, info)) = net.table.members().find(|(m, _, _)| **m == n) {
                        net.dialer.set_connected(&info.addr.clone(), false);
                    }
                }
                Change::Left(n) => {
                    tracing::info!(member = %n, alive, "member {n} left ({alive} alive)")
                }
                Change::Adopted(..) => adopted_changed = true,
            }
        }
        if ring_changed {
            self.publish();
            adopted_changed = true;
        }
        if adopted_changed {
            if let Some(net) = &self.net {
                self.refs
                    .ring
                    .cast(RingOwnerMsg::PeerDigests(net.table.adopted()));
            }
        }
    }

    fn leave(&mut self) {
        let Some(net) = &mut self.net else { return };
        let bytes = PeerMessage::Leave {
            name: self.me.to_string(),
            incarnation: net.incarnation,
        }
        .encode();
        for port in net.ports.values() {
            let _ = ActorRef::<PortMsg>::from(port.clone()).cast(PortMsg::Wire(bytes.clone()));
        }
        tracing::info!(peers = net.ports.len(), "leaving the cluster");
    }

    fn handoff_out(&mut self, states: Vec<HandoffState>) {
        let Some(net) = &self.net else { return };
        if states.is_empty() || net.ports.is_empty() {
            return;
        }
        for chunk in states.chunks(HANDOFF_CHUNK) {
            let bytes = PeerMessage::Handoff {
                from: self.me.to_string(),
                states: chunk.to_vec(),
            }
            .encode();
            for port in net.ports.values() {
                let _ = ActorRef::<PortMsg>::from(port.clone()).cast(PortMsg::Wire(bytes.clone()));
            }
        }
    }

    /// Marks this node as leaving: no more dialling, and its own children may stop.
    pub fn set_leaving(&mut self) {
        if let Some(net) = &mut self.net {
            net.leaving = true;
        }
    }
}
