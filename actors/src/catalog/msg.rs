//! The catalog actor's messages.

use std::collections::BTreeMap;

use ractor_cluster::RactorMessage;

use super::set::TargetList;
use crate::model::NodeName;
use crate::status::answer::{SetBuckets, SetDigests};

/// Messages of the catalog.
#[derive(Debug, RactorMessage)]
pub enum CatalogMsg {
    /// This node's targets now (a reload, or a source that changed).
    SetTargets(TargetList),
    /// The members in the ring other than this node, with the set digests they last announced
    /// (sent by membership whenever either changes).
    Members(BTreeMap<NodeName, u64>),
    /// A member answered (or did not) the question for its bucket digests.
    Digests {
        /// The member.
        member: NodeName,
        /// Its answer, or why there is none.
        answer: Result<SetDigests, String>,
    },
    /// A member answered (or did not) the question for some of its buckets.
    Buckets {
        /// The member.
        member: NodeName,
        /// Its answer, or why there is none.
        answer: Result<SetBuckets, String>,
    },
    /// Ask again what went unanswered.
    Tick,
    /// A view held back while members' sets settle may be due now.
    Settled,
    /// Send the view to the ring owner again (it restarted).
    Publish,
}
