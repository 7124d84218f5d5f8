//! The notify actor's messages.

use ractor::RpcReplyPort;
use ractor_cluster::RactorMessage;

use super::alerts::Post;
use crate::model::StateEvent;

/// What the notify actor is told.
#[derive(Debug, RactorMessage)]
pub enum NotifyMsg {
    /// A state event the sink accepted (for the webhooks).
    Event(Box<StateEvent>),
    /// Look at the alerts due, and at retries (every second).
    Tick,
    /// Shutdown: post the webhook events still queued, within the given time; the reply is how
    /// many were left.
    Drain(std::time::Duration, RpcReplyPort<usize>),
    /// A post of notifier `index` ended.
    Posted {
        /// The notifier.
        index: usize,
        /// How it went.
        result: Result<(), String>,
        /// The alerts it carried (Alertmanager).
        posts: Vec<Post>,
    },
}
