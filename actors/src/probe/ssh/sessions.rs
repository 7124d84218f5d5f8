//! Persistent SSH sessions: one authenticated connection per target, held between its probes
//! while this node probes it, and the node's budgets of held connections and fresh logins.
//!
//! - A probe takes its target's connection out of the table ([`Sessions::take`]), opens a
//!   channel on it, and puts it back ([`Sessions::put`]); so a connection is used by one probe
//!   at a time, and one channel at a time (any server `MaxSessions` is enough).
//! - A connection older than the target's `max_session_age` is closed at the next probe, which
//!   logs in again: the login path (keys, authorized_keys, PAM, a full disk) stays exercised.
//! - `max_sessions` bounds the connections held (in use or idle): beyond it, a probe logs in
//!   fresh and disconnects after, as with `session = "fresh"`.
//! - `max_new_logins_per_s` is a node-wide budget of logins (a GCRA clock, as ICMP pacing): a
//!   ring change, a restart or a thousand reconnects after a network blip queue for it instead
//!   of storming the fleet's sshds.
//! - A connection left idle past its target's interval (its probe actor is gone: handed off,
//!   removed, stopped mid-probe) is closed by [`Sessions::reap`]. Every close is an SSH
//!   disconnect, so no server-side session is left behind.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::Handle;
use tokio::time::Instant;

use super::settings::SshLimits;
use super::SshReport;
use crate::model::ProbeOutcome;
use crate::probe::pace::{PaceLimits, Pacer};

/// How long a disconnect may take before the connection is dropped.
pub(super) const DISCONNECT_WAIT: Duration = Duration::from_secs(1);

/// The node's SSH counters, for its metrics.
#[derive(Debug, Default)]
pub struct SshCounters {
    /// Logins that succeeded.
    pub logins_ok: AtomicU64,
    /// Logins that failed (connect, handshake, host key or authentication).
    pub logins_failed: AtomicU64,
    /// Connections held (idle or in use by a probe).
    pub open: AtomicUsize,
    /// Of those, idle between probes.
    pub idle: AtomicUsize,
}

impl SshCounters {
    /// (logins ok, logins failed, connections idle, connections in use).
    pub fn snapshot(&self) -> (u64, u64, usize, usize) {
        let open = self.open.load(Ordering::Relaxed);
        let idle = self.idle.load(Ordering::Relaxed).min(open);
        (
            self.logins_ok.load(Ordering::Relaxed),
            self.logins_failed.load(Ordering::Relaxed),
            idle,
            open - idle,
        )
    }
}

/// Which target a connection belongs to: its name and port.
pub type SessionKey = (Arc<str>, u16);

/// A connection held for a target.
pub struct Held<H: russh::client::Handler> {
    /// The authenticated connection.
    pub handle: Handle<H>,
    /// When it logged in.
    pub born: Instant,
    /// Closed by [`Sessions::reap`] if still idle then.
    idle_until: Instant,
}

impl<H: russh::client::Handler> std::fmt::Debug for Held<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held").field("born", &self.born).finish()
    }
}

/// A login in progress for a persistent target: the target's probes wait for it rather than
/// start another (one login per target at a time, however long it takes).
pub struct Pending<H: russh::client::Handler + 'static> {
    /// The stage it has reached (None: waiting for a session slot).
    pub progress: Mutex<Option<super::SshStage>>,
    done: tokio::sync::Notify,
    finished: std::sync::atomic::AtomicBool,
    /// How it ended: the login's report, and on failure its outcome. A connection that
    /// logged in is in the table, or in `spare` when `max_sessions` were held already.
    ended: Mutex<Option<(SshReport, Option<ProbeOutcome>)>>,
    spare: Mutex<Option<Handle<H>>>,
}

impl<H: russh::client::Handler + 'static> std::fmt::Debug for Pending<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("finished", &self.finished)
            .finish()
    }
}

impl<H: russh::client::Handler + 'static> Pending<H> {
    /// Waits until the login ends or `deadline` passes; true when it ended.
    pub async fn wait(&self, deadline: Instant) -> bool {
        // Bounded by the deadline; each turn is a wake-up by the login's end.
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.finished.load(Ordering::Acquire) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.finished.load(Ordering::Acquire);
            }
        }
    }

    /// How the login ended (after [`wait`](Self::wait) returned true).
    pub fn ended(&self) -> Option<(SshReport, Option<ProbeOutcome>)> {
        lock(&self.ended).clone()
    }

    /// The connection it logged in, when it could not be held in the table.
    pub fn take_spare(&self) -> Option<Handle<H>> {
        lock(&self.spare).take()
    }
}

impl<H: russh::client::Handler + 'static> Drop for Pending<H> {
    /// A spare connection no probe took is closed with an SSH disconnect, not just dropped.
    fn drop(&mut self) {
        if let Some(handle) = lock(&self.spare).take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                disconnect(handle);
            }
        }
    }
}

/// The held connections and the login budget.
pub struct Sessions<H: russh::client::Handler + 'static> {
    idle: Mutex<HashMap<SessionKey, Held<H>>>,
    pending: Mutex<HashMap<SessionKey, Arc<Pending<H>>>>,
    limits: SshLimits,
    logins: Option<Mutex<Pacer>>,
    /// Counters, shared with the node's metrics.
    pub counters: Arc<SshCounters>,
}

impl<H: russh::client::Handler + 'static> std::fmt::Debug for Sessions<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("limits", &self.limits)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<H: russh::client::Handler + 'static> Sessions<H> {
    /// A table within `limits`, counting into `counters`.
    pub fn new(limits: SshLimits, counters: Arc<SshCounters>) -> Self {
        let logins = (limits.max_new_logins_per_s > 0).then(|| {
            Mutex::new(Pacer::new(PaceLimits {
                per_network: None,
                node: Some(limits.max_new_logins_per_s),
            }))
        });
        Sessions {
            idle: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            limits,
            logins,
            counters,
        }
    }

    /// The connection held for `key`, if any (taken out: the caller puts it back).
    pub fn take(&self, key: &SessionKey) -> Option<Held<H>> {
        let held = lock(&self.idle).remove(key);
        if held.is_some() {
            self.counters.idle.fetch_sub(1, Ordering::Relaxed);
        }
        held
    }

    /// Room for one more held connection? Counts it as open when there is.
    pub fn admit(&self) -> bool {
        let max = self.limits.max_sessions;
        self.counters
            .open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// A newly logged-in connection for `key` (admitted), to be held.
    pub fn hold(&self, key: SessionKey, handle: Handle<H>, idle_for: Duration) {
        let now = Instant::now();
        self.put(
            key,
            Held {
                handle,
                born: now,
                idle_until: now,
            },
            idle_for,
        );
    }

    /// Puts `held` back for `key`'s next probe, which is due within `idle_for`.
    pub fn put(&self, key: SessionKey, mut held: Held<H>, idle_for: Duration) {
        held.idle_until = Instant::now() + idle_for;
        let replaced = lock(&self.idle).insert(key, held);
        self.counters.idle.fetch_add(1, Ordering::Relaxed);
        if let Some(old) = replaced {
            // Not expected (one probe per target at a time); never leak one.
            self.counters.idle.fetch_sub(1, Ordering::Relaxed);
            self.close(old);
        }
    }

    /// Closes a held connection (an SSH disconnect, in the background).
    pub fn close(&self, held: Held<H>) {
        self.counters.open.fetch_sub(1, Ordering::Relaxed);
        disconnect(held.handle);
    }

    /// Closes `key`'s connection if it is held idle (its target moved, changed or stopped).
    pub fn release(&self, key: &SessionKey) {
        if let Some(held) = self.take(key) {
            self.close(held);
        }
    }

    /// Closes the connections idle past their next probe's time: their probe actor is gone.
    /// Returns how many.
    pub fn reap(&self, now: Instant) -> usize {
        let stale: Vec<Held<H>> = {
            let mut idle = lock(&self.idle);
            let keys: Vec<SessionKey> = idle
                .iter()
                .filter(|(_, h)| h.idle_until <= now || h.handle.is_closed())
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| idle.remove(k)).collect()
        };
        let n = stale.len();
        self.counters.idle.fetch_sub(n, Ordering::Relaxed);
        for held in stale {
            self.close(held);
        }
        n
    }

    /// Closes every held connection and waits (up to a second) for the disconnects to go out.
    pub async fn close_all(&self) {
        let all: Vec<Held<H>> = lock(&self.idle).drain().map(|(_, h)| h).collect();
        self.counters.idle.fetch_sub(all.len(), Ordering::Relaxed);
        self.counters.open.fetch_sub(all.len(), Ordering::Relaxed);
        let bye = all.into_iter().map(|h| async move {
            let _ = tokio::time::timeout(
                DISCONNECT_WAIT,
                h.handle
                    .disconnect(russh::Disconnect::ByApplication, "", "en"),
            )
            .await;
        });
        futures_util::future::join_all(bye).await;
    }

    /// The wait for a login's turn in the node's budget (zero without a budget). The turn is
    /// taken: call this right before logging in.
    pub fn login_turn(&self) -> Duration {
        match &self.logins {
            None => Duration::ZERO,
            Some(p) => lock(p).reserve(IpAddr::V4(Ipv4Addr::UNSPECIFIED), crate::clock::now()),
        }
    }

    /// The login in progress for `key`, and true when there was none and this call started
    /// it (the caller then runs it and calls [`finish`](Self::finish)).
    pub fn begin(&self, key: &SessionKey) -> (Arc<Pending<H>>, bool) {
        let mut pending = lock(&self.pending);
        if let Some(p) = pending.get(key) {
            return (p.clone(), false);
        }
        let p = Arc::new(Pending {
            progress: Mutex::new(None),
            done: tokio::sync::Notify::new(),
            finished: std::sync::atomic::AtomicBool::new(false),
            ended: Mutex::new(None),
            spare: Mutex::new(None),
        });
        pending.insert(key.clone(), p.clone());
        (p, true)
    }

    /// The login `p` for `key` ended: a connection is held (or kept as `p`'s spare), the
    /// report kept for the probe that uses it, and its waiters woken.
    pub fn finish(
        &self,
        key: &SessionKey,
        p: &Pending<H>,
        result: Result<Handle<H>, ProbeOutcome>,
        report: SshReport,
        idle_for: Duration,
    ) {
        let failed = match result {
            Ok(handle) => {
                if self.admit() {
                    self.hold(key.clone(), handle, idle_for);
                } else {
                    *lock(&p.spare) = Some(handle);
                }
                None
            }
            Err(outcome) => Some(outcome),
        };
        *lock(&p.ended) = Some((report, failed));
        lock(&self.pending).remove(key);
        p.finished.store(true, Ordering::Release);
        p.done.notify_waiters();
    }

    /// Counts a login.
    pub fn logged_in(&self, ok: bool) {
        let c = if ok {
            &self.counters.logins_ok
        } else {
            &self.counters.logins_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Ends a session without waiting for the server.
pub fn disconnect<H: russh::client::Handler + 'static>(session: Handle<H>) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(
            DISCONNECT_WAIT,
            session.disconnect(russh::Disconnect::ByApplication, "", "en"),
        )
        .await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::ssh::ProbeHandler;

    fn sessions(max_sessions: usize, per_s: u32) -> Sessions<ProbeHandler> {
        let limits = SshLimits {
            max_concurrent: 8,
            max_sessions,
            max_new_logins_per_s: per_s,
        };
        Sessions::new(limits, Arc::default())
    }

    #[test]
    fn no_more_connections_are_held_than_max_sessions() {
        let s = sessions(3, 0);
        assert_eq!((0..10).filter(|_| s.admit()).count(), 3);
        assert_eq!(s.counters.snapshot(), (0, 0, 0, 3));
        assert!(!sessions(0, 0).admit(), "0: none held");
    }

    #[test]
    fn logins_take_turns_in_the_node_budget() {
        // 100 a second: the first goes at once, each next one 10 ms after the one before.
        let s = sessions(3, 100);
        let waits: Vec<Duration> = (0..4).map(|_| s.login_turn()).collect();
        assert_eq!(waits[0], Duration::ZERO);
        for (i, w) in waits.iter().enumerate().skip(1) {
            let want = Duration::from_millis(10 * i as u64);
            assert!(
                *w <= want && *w + Duration::from_millis(2) >= want,
                "login {i} waits {w:?}"
            );
        }
        // No budget: never a wait.
        let free = sessions(3, 0);
        assert!((0..100).all(|_| free.login_turn().is_zero()));
        s.logged_in(true);
        s.logged_in(false);
        s.logged_in(true);
        assert_eq!(s.counters.snapshot().0, 2);
        assert_eq!(s.counters.snapshot().1, 1);
    }
}
