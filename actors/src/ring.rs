//! The ring: which targets this node owns, from the membership view.
//!
//! - [`placement`]: the pure, specified placement function (members, weights, replicas,
//!   targets → owners).
//! - [`reassign`]: what changes between two placements — per target, the owners lost and
//!   gained; per node, what it owns, gains, loses and keeps (pure). The ring owner and the
//!   status API's what-if plan both use it.
//! - [`snapshot`]: the ring as last built, published for readers; the ring settings.
//! - [`msg`]: the ring owner's messages.
//! - [`owner`]: the [`RingOwner`] actor. Membership changes are debounced (`rebalance_delay`),
//!   then the ring is rebuilt, the ownership epoch bumped, and the owned set sent to the probe
//!   supervisor in one message.
//!
//! # Hand-off (make-before-break)
//! Targets this node loses stay probed here ("kept") until every other member of the new ring
//! has adopted it — each node announces, in its heartbeats, the digest of the ring its probes run
//! for. A new owner's probe actor probes at the first slot after it starts, and the old owner
//! probed every slot before that (each target has one phase cluster-wide), so no slot goes
//! unprobed; the cost is at most a round or two probed twice. Kept probes retire by finishing the
//! probe in flight. A node that leaves (SIGTERM) computes the ring without itself the same way,
//! and stops once the others have taken over (or a deadline passes).

pub mod damper;
pub mod msg;
pub mod owner;
pub mod placement;
pub mod reassign;
pub mod snapshot;

pub use msg::RingOwnerMsg;
pub use owner::{RingOwner, RingOwnerArgs};
pub use snapshot::{RingSettings, RingSnapshot};
