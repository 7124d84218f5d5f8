//! Membership: which nodes are in the cluster, and keeping the cluster connected.
//!
//! Pure parts (time in, changes or actions out), each unit- and property-tested:
//! - [`table`]: members, their state (alive, suspect, dead, left) and the failure detector,
//!   with each member's heartbeat cadence and the death reports of its watchers.
//! - [`cadence`]: who hears this node's heartbeats and how often (watchers at the full rate,
//!   the others every few intervals or on news).
//! - [`health`]: this node's own health (Lifeguard): late timers widen its timeouts, and a
//!   node that stays behind hands its targets off (weight 0) until it keeps up again.
//! - [`dialer`]: which addresses to dial and when: seeds and known members, capped exponential
//!   backoff with jitter, forever.
//! - [`sessions`]: the cluster connections: authentication deadline, dial outcomes, duplicate
//!   connections, the rate limit on authentication-failure warnings.
//! - [`wire`]: what crosses the network ([`PortMsg`](wire::PortMsg), [`PeerMessage`](wire::PeerMessage)), bounded decoding,
//!   and the one `broadcast` helper.
//! - [`view`]: the view, member rows and settings (plain data).
//!
//! The network and the actors:
//! - [`transport`]: listener, source-bound dialer, ractor_cluster event adapter.
//! - [`port`]: the one remotable actor; routes what peers send to the actor it is for.
//! - [`actor`]: the [`Membership`] actor, a thin shell that runs the pure parts.
//! - [`events`]: what membership logs.
//!
//! Without `[cluster] listen` a node is a cluster of one, and none of the network parts run.

pub mod actor;
pub mod cadence;
pub mod dialer;
pub mod events;
pub mod gate;
pub mod health;
pub mod msg;
pub mod port;
pub mod sessions;
pub mod table;
pub mod tls;
pub mod transport;
pub mod view;
pub mod wire;

pub use actor::{Membership, MembershipArgs};
pub use msg::MembershipMsg;
pub use view::{ClusterSettings, MemberRow, MemberState, MembershipView};
