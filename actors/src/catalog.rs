//! The catalog: which targets exist cluster-wide, and which alive members list each.
//!
//! Each node has its own target set (its config and sources, which an operator may change at
//! any time, one node after another). A target is placed only among the alive members that list
//! it (see [`ring::placement`](crate::ring::placement)), so every target in the set of at least
//! one alive member is probed, even while the members' sets differ, and a target no alive
//! member lists is not.
//!
//! - [`set`]: a set summarised as bucket digests and one set digest (pure, specified).
//! - [`state`]: this node's knowledge of every member's set, how it catches up, and the view
//!   (the union, with who lists what) the ring owner places (pure).
//! - [`msg`], [`actor`]: the catalog actor, which runs the catch-up over the cluster links and
//!   sends the view to the ring owner.

pub mod actor;
pub mod msg;
pub mod set;
pub mod state;

pub use actor::{CatalogActor, CatalogArgs};
pub use msg::CatalogMsg;
pub use state::CatalogView;
