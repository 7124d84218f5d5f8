//! The status API: what a node reports about itself and the cluster.
//!
//! - [`answer`]: the answers as typed structs (HTTP, peers and the CLI share them).
//! - [`local`]: answers computed from this node's [`NodeView`](crate::view::NodeView): its
//!   summary and results, the owners of a target, the what-if plan, the cluster summary.
//! - [`gather`]: the same questions asked of every member over the cluster links, each within
//!   a timeout.

pub mod answer;
pub mod gather;
pub mod local;

pub use answer::PeerQuery;
