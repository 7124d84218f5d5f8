//! What a `[[notify]]` entry asks for, validated.

use std::time::Duration;

/// One notifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifySpec {
    /// Alerts to Alertmanager's v2 API.
    Alertmanager {
        /// Base URLs (`http://host:9093`), every one sent every alert.
        urls: Vec<String>,
        /// Bearer token, if any.
        token: Option<String>,
        /// How often a firing alert is sent again.
        resend: Duration,
    },
    /// Each state event POSTed as JSON.
    Webhook {
        /// The URL.
        url: String,
        /// Bearer token, if any.
        token: Option<String>,
        /// Events held while the receiver is slow or down.
        queue: usize,
    },
}

/// The default `resend`.
pub const DEFAULT_RESEND: Duration = Duration::from_secs(60);
/// The default webhook `queue`.
pub const DEFAULT_QUEUE: usize = 1000;
