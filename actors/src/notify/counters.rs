//! Notification counters, shared with the node's metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// A kind of notifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Alertmanager.
    Alertmanager,
    /// A webhook.
    Webhook,
}

impl Kind {
    /// Both, in metric order.
    pub const ALL: [Kind; 2] = [Kind::Alertmanager, Kind::Webhook];

    /// The `kind` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Alertmanager => "alertmanager",
            Kind::Webhook => "webhook",
        }
    }
}

/// Sends, failures and drops per kind, and the alerts firing.
#[derive(Debug, Default)]
pub struct NotifyCounters {
    sent: [AtomicU64; 2],
    failed: [AtomicU64; 2],
    dropped: [AtomicU64; 2],
    firing: AtomicU64,
}

impl NotifyCounters {
    /// `n` alerts or events delivered.
    pub fn sent(&self, kind: Kind, n: u64) {
        self.sent[kind as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// A post failed.
    pub fn failed(&self, kind: Kind) {
        self.failed[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// An event dropped (queue full, or out of attempts).
    pub fn dropped(&self, kind: Kind) {
        self.dropped[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Alerts this node sends now.
    pub fn set_firing(&self, n: usize) {
        self.firing.store(n as u64, Ordering::Relaxed);
    }

    /// (sent, failed, dropped) of `kind`.
    pub fn get(&self, kind: Kind) -> (u64, u64, u64) {
        let i = kind as usize;
        (
            self.sent[i].load(Ordering::Relaxed),
            self.failed[i].load(Ordering::Relaxed),
            self.dropped[i].load(Ordering::Relaxed),
        )
    }

    /// Alerts this node sends now.
    pub fn firing(&self) -> u64 {
        self.firing.load(Ordering::Relaxed)
    }
}
