//! Notifications: alerts to Alertmanager for the targets this node sends (one sender per
//! target: its primary owner), and every state event this node writes to webhooks.
//!
//! - [`alerts`]: which alerts to post and when (pure).
//! - [`outbox`]: a webhook's bounded queue with retries (pure).
//! - [`spec`]: a `[[notify]]` entry, validated.
//! - [`counters`]: sends, failures and drops, for the metrics.
//! - [`msg`], [`actor`]: the notify actor, which posts off its own path.

pub mod actor;
pub mod alerts;
pub mod counters;
pub mod msg;
pub mod outbox;
pub mod spec;
