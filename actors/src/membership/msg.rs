//! Membership's messages (local only; peers talk to the port).

use std::net::SocketAddr;

use ractor::{ActorRef, RpcReplyPort};
use ractor_cluster::{NodeSessionMessage, RactorMessage};

use super::sessions::{AuthFailure, SessionEvent};
use super::wire::PeerMessage;

/// Messages of membership.
#[derive(Debug, RactorMessage)]
pub enum MembershipMsg {
    /// Heartbeat period: advance the failure detector, send heartbeats, dial what is due.
    Tick,
    /// A ractor_cluster session event.
    Session(SessionEvent<ActorRef<NodeSessionMessage>>),
    /// A heartbeat or a leave from a peer, decoded by the port.
    Peer(Box<PeerMessage>),
    /// A dial finished: its TCP (and TLS) connection is up, or it failed.
    DialDone {
        /// The address dialled.
        addr: String,
        /// The socket address connected to, or the error.
        result: Result<SocketAddr, DialError>,
    },
    /// The authentication deadline of session `node_id` has passed.
    CheckAuth(u64),
    /// Judge a connection that closed before authenticating.
    JudgeFailure(AuthFailure),
    /// Close session `node_id` (a refused peer).
    CloseSession(u64),
    /// Send the current view to the ring owner again (it restarted).
    Publish,
    /// Tell the peers this node leaves, then reply.
    Leave(RpcReplyPort<()>),
}

/// A dial that failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DialError {
    /// What went wrong.
    pub message: String,
    /// The address answered that nothing listens there (connection refused): the one failure
    /// that proves a member is gone. A timeout may be this node's own slowness.
    pub refused: bool,
}

impl From<String> for DialError {
    fn from(message: String) -> Self {
        DialError {
            message,
            refused: false,
        }
    }
}
