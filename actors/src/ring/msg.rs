//! The ring owner's messages.

use std::collections::BTreeMap;
use std::sync::Arc;

use ractor::RpcReplyPort;
use ractor_cluster::RactorMessage;

use crate::catalog::state::CatalogView;
use crate::membership::view::MembershipView;
use crate::model::NodeName;

/// Messages of the ring owner.
#[derive(Debug, RactorMessage)]
pub enum RingOwnerMsg {
    /// Membership has a new view.
    MembershipChanged(MembershipView),
    /// The catalog has a new view of the targets cluster-wide.
    Catalog(Arc<CatalogView>),
    /// The debounce delay has passed: rebuild the ring from the latest view.
    Rebuild,
    /// The ring digest each other member has adopted.
    PeerDigests(BTreeMap<NodeName, u64>),
    /// Send the current assignment again (the probe supervisor restarted).
    Resend,
    /// This node leaves: hand every target over; reply once the others have taken over.
    Leave(RpcReplyPort<()>),
}
