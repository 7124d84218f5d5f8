//! The network edge of membership, over ractor_cluster's own protocol:
//! - our own listener, so that accepted connections are capped while unauthenticated;
//! - our own dialer, binding the source address of every connection to this node's address
//!   (peers, and partition tests, tell nodes apart by address as on real hosts);
//! - the [`ClusterEvents`] adapter: each ractor_cluster callback is one cast, nothing more;
//! - the remotable [`PortActor`]: the only actor a peer sees. Its one message carries an encoded
//!   [`PeerMessage`]; it decodes (bounded) and forwards to the local membership actor.
//!
//! ractor_cluster's `NodeServer` always opens a listener of its own; ringpoll binds that one to
//! 127.0.0.1 on an ephemeral port and never advertises it. Connections are handed to the
//! `NodeServer` as established streams, and it runs the cookie handshake and the sessions.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::{
    NetworkStream, NodeEventSubscription, NodeServerMessage, NodeSessionMessage,
    RactorClusterMessage,
};
use tokio::net::{TcpListener, TcpSocket};

use super::tls::ClusterTls;
use super::wire::PeerMessage;
use super::MembershipMsg;

/// The process group every node's port joins.
pub const PORT_GROUP: &str = "ringpoll.membership";

/// Connections accepted but not yet authenticated, at most; more are closed at once.
pub const MAX_UNAUTHENTICATED: usize = 128;

/// A TLS handshake must finish within this.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What happened to a ractor_cluster session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEventKind {
    /// TCP connection handed to the node server.
    Opened,
    /// Cookie handshake passed.
    Authenticated,
    /// Initial state exchange done.
    Ready,
    /// Closed.
    Disconnected,
}

/// A ractor_cluster session event.
#[derive(Debug)]
pub struct SessionEvent {
    /// What happened.
    pub kind: SessionEventKind,
    /// ractor_cluster's local session id.
    pub node_id: u64,
    /// The peer's ractor node name (`name@ip:port`), once known.
    pub peer_name: Option<String>,
    /// The peer's socket address.
    pub peer_addr: String,
    /// True for connections the peer opened.
    pub incoming: bool,
    /// The session actor (stopping it closes the connection).
    pub actor: ActorRef<NodeSessionMessage>,
}

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
            actor: ses.actor,
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
/// ones at once while `unauthenticated` is at [`MAX_UNAUTHENTICATED`]. With TLS, each handshake
/// runs in a task of its own under [`TLS_HANDSHAKE_TIMEOUT`], so a silent client holds up nothing.
pub fn spawn_listener(
    listener: TcpListener,
    node_server: ActorRef<NodeServerMessage>,
    unauthenticated: Arc<AtomicUsize>,
    tls: Option<ClusterTls>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut refused_logged = false;
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

/// Dials `addr` (`host:port`, resolved now) from `bind_ip` (when set) and hands the connection
/// to the node server. Bounded by `timeout`.
pub async fn dial(
    node_server: &ActorRef<NodeServerMessage>,
    addr: &str,
    bind_ip: Option<IpAddr>,
    tls: Option<&ClusterTls>,
    timeout: Duration,
) -> Result<SocketAddr, String> {
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
        let stream = socket.connect(target).await.map_err(|e| e.to_string())?;
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
        .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())))
}

/// The remotable actor every peer sees (one per node).
#[derive(Debug)]
pub struct PortActor;

/// What the port starts with.
#[derive(Debug)]
pub struct PortArgs {
    /// Where decoded peer messages go.
    pub membership: ActorRef<MembershipMsg>,
    /// For answering queries.
    pub refs: Arc<crate::supervisor::TreeRefs>,
    /// This node.
    pub me: crate::model::NodeName,
}

/// The port's messages: an encoded [`PeerMessage`], or a query for the status API.
#[derive(Debug, RactorClusterMessage)]
pub enum PortMsg {
    /// Bytes from (or for) a peer.
    Wire(Vec<u8>),
    /// A JSON-encoded [`crate::status::PeerQuery`]; the reply is JSON.
    #[rpc]
    Query(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

impl Actor for PortActor {
    type Msg = PortMsg;
    type State = PortArgs;
    type Arguments = PortArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<PortMsg>,
        args: PortArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<PortMsg>,
        msg: PortMsg,
        state: &mut PortArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PortMsg::Wire(bytes) => match PeerMessage::decode(&bytes) {
                Ok(m) => {
                    let _ = state.membership.cast(MembershipMsg::Peer(Box::new(m)));
                }
                Err(err) => {
                    tracing::debug!(error = %err, "dropped a malformed message from a peer")
                }
            },
            PortMsg::Query(bytes, reply) => {
                let answer = crate::status::answer_bytes(&state.refs, &state.me, &bytes);
                let _ = reply.send(answer);
            }
        }
        Ok(())
    }
}
