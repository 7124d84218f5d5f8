//! The confirm actor's messages.

use ractor_cluster::RactorMessage;

use crate::membership::wire::WireView;
use crate::model::TargetKey;
use crate::probe::health::TargetState;

/// What the confirm actor is told.
#[derive(Debug, RactorMessage)]
pub enum ConfirmMsg {
    /// This node's own view of a target after a result (from its probe actor).
    Own {
        /// The target.
        key: TargetKey,
        /// The probe actor's confirmed (rise/fall) state.
        state: TargetState,
    },
    /// Views from another owner (routed by the port).
    Peer {
        /// The sender.
        from: String,
        /// Its views.
        views: Vec<WireView>,
    },
    /// Send what is queued, follow the ring, let stale views go (every 250 ms).
    Tick,
}
