//! The network edge of membership, over ractor_cluster's own protocol:
//! - our own listener, so that accepted connections are capped while unauthenticated;
//! - our own dialer, binding the source address of every connection to this node's address
//!   (peers, and partition tests, tell nodes apart by address as on real hosts);
//! - the [`ClusterEvents`] adapter: each ractor_cluster callback is one cast, nothing more;
//! - [`start`], which opens all of it for a membership actor.
//!
//! ractor_cluster's `NodeServer` always opens a listener of its own; ringpoll binds that one to
//! 127.0.0.1 on an ephemeral port and never advertises it. Connections are handed to the
//! `NodeServer` as established streams, and it runs the cookie handshake and the sessions.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::pg::GroupChangeMessage;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::{
    IncomingEncryptionMode, NetworkStream, NodeEventSubscription, NodeServer, NodeServerMessage,
};
use tokio::net::{TcpListener, TcpSocket};

use super::gate::{Admission, SourceGate, MAX_NEW_PER_SOURCE, MAX_SOURCES};
use super::msg::{DialError, MembershipMsg};
use super::port::{PortActor, PortArgs, PORT_GROUP};
use super::sessions::{SessionEvent, SessionEventKind, AUTH_TIMEOUT, AUTH_WARN_EVERY};
use super::tls::ClusterTls;
use super::view::ClusterSettings;
use super::wire::PortMsg;
use crate::model::NodeName;

/// A clustered node's network edge, as [`start`] opened it.
#[derive(Debug)]
pub struct Edge {
    /// ractor_cluster's node server (runs the sessions).
    pub node_server: ActorRef<NodeServerMessage>,
    /// This node's port, in the [`PORT_GROUP`] process group.
    pub port: ActorRef<PortMsg>,
    /// Our listener's accept loop.
    listener: tokio::task::JoinHandle<()>,
    /// Connections accepted but not yet authenticated, kept by membership; the listener closes
    /// new ones at [`MAX_UNAUTHENTICATED`].
    pub unauthenticated: Arc<AtomicUsize>,
}

/// Opens the edge for membership actor `membership`: binds the listener, starts the node
/// server and the port (both linked to `membership`), subscribes `membership` to session
/// events and port group changes.
pub async fn start(
    membership: &ActorRef<MembershipMsg>,
    me: &NodeName,
    settings: &ClusterSettings,
    port_args: PortArgs,
) -> Result<Edge, ActorProcessingErr> {
    let listener = crate::listen::bind(
        settings.listen,
        "cluster.listen / --listen",
        crate::listen::BIND_RETRY,
    )
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
        me.to_string(),
        settings.advertise.to_string(),
        internal_encryption,
        Some(NodeConnectionMode::Isolated),
    )
    .with_listen_addr(std::net::Ipv4Addr::LOCALHOST.into());
    let (node_server, _) =
        Actor::spawn_linked(None, node_server, (), membership.get_cell()).await?;
    node_server.cast(NodeServerMessage::SubscribeToEvents {
        id: "ringpoll-membership".into(),
        subscription: Box::new(ClusterEvents(membership.clone())),
    })?;
    let (port, _) = Actor::spawn_linked(None, PortActor, port_args, membership.get_cell()).await?;
    ractor::pg::monitor(PORT_GROUP.into(), membership.get_cell());
    ractor::pg::join(PORT_GROUP.into(), vec![port.get_cell()]);
    let unauthenticated = Arc::new(AtomicUsize::new(0));
    let listener = spawn_listener(
        listener,
        node_server.clone(),
        unauthenticated.clone(),
        settings.tls.clone(),
    );
    Ok(Edge {
        node_server,
        port,
        listener,
        unauthenticated,
    })
}

/// A change of the ports group: peers' ports that appeared, or the sessions whose ports left.
#[derive(Debug)]
pub enum PortChange {
    /// New ports, by ractor_cluster session id.
    Joined(Vec<(u64, ActorRef<PortMsg>)>),
    /// Ports gone, by session id.
    Left(Vec<u64>),
}

/// The peers' ports in a process-group event (this node's own port is not a peer's).
pub fn port_change(change: GroupChangeMessage) -> Option<PortChange> {
    let remote = |cells: Vec<ractor::ActorCell>| -> Vec<(u64, ractor::ActorCell)> {
        cells
            .into_iter()
            .filter_map(|c| match c.get_id() {
                ractor::ActorId::Remote { node_id, .. } => Some((node_id, c)),
                ractor::ActorId::Local(_) => None,
            })
            .collect()
    };
    match change {
        GroupChangeMessage::Join(_, group, cells) if group == PORT_GROUP => {
            Some(PortChange::Joined(
                remote(cells)
                    .into_iter()
                    .map(|(id, c)| (id, c.into()))
                    .collect(),
            ))
        }
        GroupChangeMessage::Leave(_, group, cells) if group == PORT_GROUP => Some(
            PortChange::Left(remote(cells).into_iter().map(|(id, _)| id).collect()),
        ),
        _ => None,
    }
}

impl Edge {
    /// Stops accepting and leaves the port group (the linked actors stop with membership).
    pub fn stop(&self) {
        self.stop_accepting();
        ractor::pg::leave(PORT_GROUP.into(), vec![self.port.get_cell()]);
    }

    /// Closes the listener (the sessions open stay): a node that leaves frees its address for
    /// the process that replaces it while it hands its targets over.
    pub fn stop_accepting(&self) {
        self.listener.abort();
    }
}

/// Connections accepted but not yet authenticated, at most; more are closed at once.
pub const MAX_UNAUTHENTICATED: usize = 128;

/// A TLS handshake must finish within this.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Forwards ractor_cluster's callbacks to the membership actor.
#[derive(Debug)]
pub struct ClusterEvents(pub ActorRef<MembershipMsg>);

impl ClusterEvents {
    fn forward(
        &self,
        kind: SessionEventKind,
        ses: ractor_cluster::node::NodeServerSessionInformation,
    ) {
        let _ = self.0.cast(MembershipMsg::Session(SessionEvent {
            kind,
            node_id: ses.node_id,
            peer_name: ses.peer_name.map(|p| p.name),
            peer_addr: ses.peer_addr,
            incoming: ses.is_server,
            handle: ses.actor,
        }));
    }
}

impl NodeEventSubscription for ClusterEvents {
    fn node_session_opened(&self, ses: ractor_cluster::node::NodeServerSessionInformation) {
        self.forward(SessionEventKind::Opened, ses);
    }
    fn node_session_authenticated(&self, ses: ractor_cluster::node::NodeServerSessionInformation) {
        self.forward(SessionEventKind::Authenticated, ses);
    }
    fn node_session_ready(&self, ses: ractor_cluster::node::NodeServerSessionInformation) {
        self.forward(SessionEventKind::Ready, ses);
    }
    fn node_session_disconnected(&self, ses: ractor_cluster::node::NodeServerSessionInformation) {
        self.forward(SessionEventKind::Disconnected, ses);
    }
}

/// Accepts cluster connections on `listener` and hands them to the node server, closing new
/// ones at once while `unauthenticated` is at [`MAX_UNAUTHENTICATED`] or their source address
/// is over its own cap ([`SourceGate`]). With TLS, each handshake
/// runs in a task of its own under [`TLS_HANDSHAKE_TIMEOUT`], so a silent client holds up nothing.
pub fn spawn_listener(
    listener: TcpListener,
    node_server: ActorRef<NodeServerMessage>,
    unauthenticated: Arc<AtomicUsize>,
    tls: Option<ClusterTls>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut refused_logged = false;
        let mut gate = SourceGate::default();
        let (mut gate_refused, mut gate_warned_at) = (0u64, None::<std::time::Instant>);
        let mut tls_failures_logged_at: Option<std::time::Instant> = None;
        let tls_failures = Arc::new(AtomicUsize::new(0));
        loop {
            let (stream, peer_addr) = match listener.accept().await {
                Ok(c) => c,
                Err(err) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %err, "cluster listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if unauthenticated.load(Ordering::Relaxed) >= MAX_UNAUTHENTICATED {
                if !refused_logged {
                    refused_logged = true;
                    tracing::warn!(peer = %peer_addr, limit = MAX_UNAUTHENTICATED, "too many unauthenticated cluster connections; closing new ones");
                }
                drop(stream);
                continue;
            }
            refused_logged = false;
            let now = std::time::Instant::now();
            let admission = gate.admit(peer_addr.ip(), now);
            if admission != Admission::Admit {
                // One warning per AUTH_WARN_EVERY at most, with the count since the last one.
                gate_refused += 1;
                if gate_warned_at.is_none_or(|t| now.duration_since(t) >= AUTH_WARN_EVERY) {
                    gate_warned_at = Some(now);
                    let (ip, n) = (peer_addr.ip(), std::mem::take(&mut gate_refused));
                    if admission == Admission::SourceFull {
                        tracing::warn!(peer = %ip, limit = MAX_NEW_PER_SOURCE, refused = n, "{ip} opened {MAX_NEW_PER_SOURCE} cluster connections within {AUTH_TIMEOUT:?}; closing more from it ({n} closed since the last warning)");
                    } else {
                        tracing::warn!(peer = %ip, limit = MAX_SOURCES, refused = n, "cluster connections came from {MAX_SOURCES} addresses within {AUTH_TIMEOUT:?}; closing ones from new addresses ({n} closed since the last warning)");
                    }
                }
                drop(stream);
                continue;
            }
            let Ok(local_addr) = stream.local_addr() else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let Some(tls) = &tls else {
                let opened = NodeServerMessage::ConnectionOpened {
                    stream: Box::new(NetworkStream::Raw {
                        peer_addr,
                        local_addr,
                        stream,
                    }),
                    is_server: true,
                };
                if node_server.cast(opened).is_err() {
                    return;
                }
                continue;
            };
            // Counted as unauthenticated while the handshake runs.
            unauthenticated.fetch_add(1, Ordering::Relaxed);
            let (acceptor, ns, unauth, failures) = (
                tls.acceptor.clone(),
                node_server.clone(),
                unauthenticated.clone(),
                tls_failures.clone(),
            );
            let log_now =
                tls_failures_logged_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
            if log_now {
                tls_failures_logged_at = Some(std::time::Instant::now());
            }
            tokio::spawn(async move {
                let result =
                    tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                unauth.fetch_sub(1, Ordering::Relaxed);
                match result {
                    Ok(Ok(stream)) => {
                        let _ = ns.cast(NodeServerMessage::ConnectionOpened {
                            stream: Box::new(NetworkStream::TlsServer {
                                peer_addr,
                                local_addr,
                                stream,
                            }),
                            is_server: true,
                        });
                    }
                    Ok(Err(err)) => {
                        let n = failures.fetch_add(1, Ordering::Relaxed);
                        if log_now || n == 0 {
                            tracing::warn!(peer = %peer_addr, error = %err, "TLS handshake with {peer_addr} failed; connection rejected");
                        }
                    }
                    Err(_) => {
                        let n = failures.fetch_add(1, Ordering::Relaxed);
                        if log_now || n == 0 {
                            tracing::warn!(peer = %peer_addr, "TLS handshake with {peer_addr} did not finish within {TLS_HANDSHAKE_TIMEOUT:?}; connection closed");
                        }
                    }
                }
            });
        }
    })
}

/// Dials `addr` from this node's address in a task of its own, within [`DIAL_TIMEOUT`], and
/// tells `membership` how it went.
pub fn spawn_dial(
    edge: &Edge,
    settings: &ClusterSettings,
    addr: String,
    membership: ActorRef<MembershipMsg>,
) {
    let ns = edge.node_server.clone();
    let bind = Some(settings.advertise.ip());
    let tls = settings.tls.clone();
    tokio::spawn(async move {
        let result = dial(&ns, &addr, bind, tls.as_ref(), DIAL_TIMEOUT).await;
        let _ = membership.cast(MembershipMsg::DialDone { addr, result });
    });
}

/// A dial must connect within this.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(1);

/// Dials `addr` (`host:port`, resolved now) from `bind_ip` (when set) and hands the connection
/// to the node server. Bounded by `timeout`.
pub async fn dial(
    node_server: &ActorRef<NodeServerMessage>,
    addr: &str,
    bind_ip: Option<IpAddr>,
    tls: Option<&ClusterTls>,
    timeout: Duration,
) -> Result<SocketAddr, DialError> {
    let attempt = async {
        let target = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| format!("cannot resolve {addr}: {e}"))?
            .find(|a| bind_ip.is_none_or(|b| a.is_ipv4() == b.is_ipv4()))
            .ok_or_else(|| format!("{addr} has no usable address"))?;
        let socket = if target.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| e.to_string())?;
        if let Some(ip) = bind_ip.filter(|ip| !ip.is_unspecified()) {
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|e| format!("cannot bind {ip}: {e}"))?;
        }
        let stream = socket.connect(target).await.map_err(|e| DialError {
            refused: e.kind() == std::io::ErrorKind::ConnectionRefused,
            message: e.to_string(),
        })?;
        let _ = stream.set_nodelay(true);
        let local_addr = stream.local_addr().map_err(|e| e.to_string())?;
        let stream = match tls {
            None => NetworkStream::Raw {
                peer_addr: target,
                local_addr,
                stream,
            },
            Some(tls) => {
                let stream = tls
                    .connector
                    .connect(tls.server_name.clone(), stream)
                    .await
                    .map_err(|e| format!("TLS handshake failed: {e}"))?;
                NetworkStream::TlsClient {
                    peer_addr: target,
                    local_addr,
                    stream,
                }
            }
        };
        node_server
            .cast(NodeServerMessage::ConnectionOpened {
                stream: Box::new(stream),
                is_server: false,
            })
            .map_err(|e| e.to_string())?;
        Ok(target)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis()).into()))
}
