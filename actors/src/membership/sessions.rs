//! The cluster connections ractor_cluster runs for us, tracked from its session events. Pure:
//! events and time in, [`SessionAction`]s out; the membership actor carries them out.
//!
//! - A connection must authenticate within [`AUTH_TIMEOUT`] or it is closed.
//! - A dial whose connection authenticates is a success for the dialer; one that closes before
//!   authenticating is a failure.
//! - A connection that closes before authenticating is a failed authentication (wrong cookie,
//!   not a ringpoll node) — unless, [`DUPLICATE_GRACE`] later, another connection with the same
//!   peer has authenticated: both sides dialled at once and ractor_cluster closed the duplicate.
//!   Failures are warned about at most once per [`AUTH_WARN_EVERY`], with the count of those not
//!   logged, so a flood of bad connections cannot flood the log.
//! - A member is disconnected when its last authenticated connection closes.
//!
//! `H` is the handle of a session (the session actor in the node; anything in tests), `P` the
//! peer's port reached over it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::model::NodeName;

/// A connection must authenticate within this, or it is closed.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection that closed unauthenticated is judged this long after it closed.
pub const DUPLICATE_GRACE: Duration = Duration::from_secs(1);
/// At most one authentication-failure warning per this.
pub const AUTH_WARN_EVERY: Duration = Duration::from_secs(10);

/// What happened to a ractor_cluster session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEventKind {
    /// TCP connection handed to the node server.
    Opened,
    /// Cookie handshake passed.
    Authenticated,
    /// Initial state exchange done.
    Ready,
    /// Closed.
    Disconnected,
}

/// A ractor_cluster session event.
#[derive(Debug, Clone)]
pub struct SessionEvent<H> {
    /// What happened.
    pub kind: SessionEventKind,
    /// ractor_cluster's local session id.
    pub node_id: u64,
    /// The peer's ractor node name (`name@ip:port`), once known.
    pub peer_name: Option<String>,
    /// The peer's socket address.
    pub peer_addr: String,
    /// True for connections the peer opened.
    pub incoming: bool,
    /// The session (closing it closes the connection).
    pub handle: H,
}

/// A connection that closed before authenticating, judged [`DUPLICATE_GRACE`] later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    /// The peer's ractor node name, when the handshake got that far.
    pub peer_name: Option<String>,
    /// The peer's socket address.
    pub peer_addr: String,
    /// True when the peer dialled us.
    pub incoming: bool,
}

/// What the membership actor does for the session tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionAction<H> {
    /// Call [`Sessions::check_auth`] for `node_id` after `after`.
    CheckAuthLater {
        /// The session.
        node_id: u64,
        /// When.
        after: Duration,
    },
    /// Call [`Sessions::judge_failure`] after `after`.
    JudgeFailureLater {
        /// The failure.
        failure: AuthFailure,
        /// When.
        after: Duration,
    },
    /// Close a session.
    Close {
        /// The session.
        handle: H,
        /// Why (for the session's stop reason).
        reason: &'static str,
    },
    /// Warn: a connection did not authenticate in time and is closed.
    WarnAuthTimeout {
        /// The peer's socket address.
        peer_addr: String,
    },
    /// Warn: a connection failed to authenticate.
    WarnAuthFailed {
        /// The failure.
        failure: AuthFailure,
        /// Failures not warned about since the last warning.
        suppressed: u64,
    },
    /// The dial of `addr` reached an authenticated session.
    DialSucceeded {
        /// The address dialled.
        addr: String,
    },
    /// The dial of `addr` closed before authenticating.
    DialFailed {
        /// The address dialled.
        addr: String,
    },
    /// The last authenticated connection with this member closed.
    MemberDisconnected(NodeName),
}

#[derive(Debug, Clone)]
struct Session<H> {
    handle: H,
    peer_addr: String,
    incoming: bool,
    authenticated: bool,
    /// The peer's ractor node name (`name@ip:port`) and the configured name in it.
    peer_name: Option<String>,
    name: Option<NodeName>,
}

/// Every open session and the peer's port on it, the dials awaiting authentication, and the
/// warning rate limit.
#[derive(Debug)]
pub struct Sessions<H, P> {
    sessions: HashMap<u64, Session<H>>,
    /// Peers' ports by session.
    ports: HashMap<u64, P>,
    /// Dials whose TCP connection is up but not yet authenticated: socket address → dialled
    /// address.
    dialing: HashMap<String, String>,
    unauthenticated: usize,
    warned_at: Option<Instant>,
    suppressed: u64,
}

impl<H, P> Default for Sessions<H, P> {
    fn default() -> Self {
        Sessions {
            sessions: HashMap::new(),
            ports: HashMap::new(),
            dialing: HashMap::new(),
            unauthenticated: 0,
            warned_at: None,
            suppressed: 0,
        }
    }
}

/// The configured name part of a ractor node name `name@host:port`.
pub fn name_of(peer_name: &str) -> Option<NodeName> {
    NodeName::new(peer_name.split('@').next()?).ok()
}

impl<H: Clone, P> Sessions<H, P> {
    /// Applies one session event.
    pub fn event(&mut self, ev: SessionEvent<H>) -> Vec<SessionAction<H>> {
        let name = ev.peer_name.as_deref().and_then(name_of);
        match ev.kind {
            SessionEventKind::Opened => {
                self.unauthenticated += 1;
                self.sessions.insert(
                    ev.node_id,
                    Session {
                        handle: ev.handle,
                        peer_addr: ev.peer_addr,
                        incoming: ev.incoming,
                        authenticated: false,
                        peer_name: ev.peer_name,
                        name,
                    },
                );
                vec![SessionAction::CheckAuthLater {
                    node_id: ev.node_id,
                    after: AUTH_TIMEOUT,
                }]
            }
            SessionEventKind::Authenticated | SessionEventKind::Ready => {
                let mut actions = Vec::new();
                if let Some(s) = self.sessions.get_mut(&ev.node_id) {
                    if !s.authenticated {
                        s.authenticated = true;
                        self.unauthenticated -= 1;
                        if let Some(addr) = self.dialing.remove(&s.peer_addr) {
                            actions.push(SessionAction::DialSucceeded { addr });
                        }
                    }
                    if name.is_some() {
                        s.name = name;
                        s.peer_name = ev.peer_name;
                    }
                }
                actions
            }
            SessionEventKind::Disconnected => {
                self.ports.remove(&ev.node_id);
                let Some(s) = self.sessions.remove(&ev.node_id) else {
                    return Vec::new();
                };
                if !s.authenticated {
                    self.unauthenticated -= 1;
                    let mut actions = Vec::new();
                    if let Some(addr) = self.dialing.remove(&s.peer_addr) {
                        actions.push(SessionAction::DialFailed { addr });
                    }
                    actions.push(SessionAction::JudgeFailureLater {
                        failure: AuthFailure {
                            peer_name: s.peer_name.or(ev.peer_name),
                            peer_addr: s.peer_addr,
                            incoming: s.incoming,
                        },
                        after: DUPLICATE_GRACE,
                    });
                    return actions;
                }
                let Some(name) = s.name.or(name) else {
                    return Vec::new();
                };
                let still_connected = self
                    .sessions
                    .values()
                    .any(|o| o.authenticated && o.name.as_ref() == Some(&name));
                if still_connected {
                    Vec::new()
                } else {
                    vec![SessionAction::MemberDisconnected(name)]
                }
            }
        }
    }

    /// A dial's TCP connection to `socket_addr` is up; its handshake decides success.
    pub fn dialled(&mut self, socket_addr: SocketAddr, dial_addr: &str) {
        self.dialing
            .insert(socket_addr.to_string(), dial_addr.to_string());
    }

    /// The authentication deadline of `node_id` has passed.
    pub fn check_auth(&self, node_id: u64) -> Vec<SessionAction<H>> {
        match self.sessions.get(&node_id).filter(|s| !s.authenticated) {
            Some(s) => vec![
                SessionAction::WarnAuthTimeout {
                    peer_addr: s.peer_addr.clone(),
                },
                SessionAction::Close {
                    handle: s.handle.clone(),
                    reason: "authentication timeout",
                },
            ],
            None => Vec::new(),
        }
    }

    /// Judges a connection that closed unauthenticated: nothing if another connection with the
    /// same peer (by ractor node name, or by IP when the name is unknown) has authenticated
    /// since; otherwise a warning, unless one was given within [`AUTH_WARN_EVERY`].
    pub fn judge_failure(&mut self, failure: AuthFailure, now: Instant) -> Vec<SessionAction<H>> {
        let ip = |a: &str| a.parse::<SocketAddr>().ok().map(|a| a.ip());
        let failed_ip: Option<IpAddr> = ip(&failure.peer_addr);
        let duplicate = self.sessions.values().any(|s| {
            s.authenticated
                && match &failure.peer_name {
                    Some(p) => s.peer_name.as_ref() == Some(p),
                    None => failed_ip.is_some() && ip(&s.peer_addr) == failed_ip,
                }
        });
        if duplicate {
            return Vec::new();
        }
        if self
            .warned_at
            .is_some_and(|t| now.saturating_duration_since(t) < AUTH_WARN_EVERY)
        {
            self.suppressed += 1;
            return Vec::new();
        }
        self.warned_at = Some(now);
        vec![SessionAction::WarnAuthFailed {
            failure,
            suppressed: std::mem::take(&mut self.suppressed),
        }]
    }

    /// The peer's port on session `node_id` appeared.
    pub fn port_joined(&mut self, node_id: u64, port: P) {
        self.ports.insert(node_id, port);
    }

    /// The port on session `node_id` went away.
    pub fn port_left(&mut self, node_id: u64) {
        self.ports.remove(&node_id);
    }

    /// Every peer's port (heartbeats go to all, named or not yet).
    pub fn ports(&self) -> impl Iterator<Item = &P> {
        self.ports.values()
    }

    /// The sessions with a peer's port.
    pub fn port_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.ports.keys().copied()
    }

    /// The peer's port on session `node_id`.
    pub fn port(&self, node_id: u64) -> Option<&P> {
        self.ports.get(&node_id)
    }

    /// The ports of authenticated sessions, with the member's name.
    pub fn member_ports(&self) -> impl Iterator<Item = (&NodeName, &P)> {
        self.ports
            .iter()
            .filter_map(|(id, p)| Some((self.member_of(*id)?, p)))
    }

    /// The ports on sessions with the ractor node `peer_name` (`name@ip:port`), by session id.
    pub fn ports_of_peer<'a>(&'a self, peer_name: &'a str) -> impl Iterator<Item = (u64, &'a P)> {
        self.of_peer(peer_name)
            .filter_map(|(id, _)| Some((id, self.ports.get(&id)?)))
    }

    /// Connections open but not yet authenticated.
    pub fn unauthenticated(&self) -> usize {
        self.unauthenticated
    }

    /// The configured name of the peer of an authenticated session.
    pub fn member_of(&self, node_id: u64) -> Option<&NodeName> {
        self.sessions
            .get(&node_id)
            .filter(|s| s.authenticated)
            .and_then(|s| s.name.as_ref())
    }

    /// Sessions with member `name` (to close them when it is declared dead).
    pub fn of_member<'a>(&'a self, name: &'a NodeName) -> impl Iterator<Item = &'a H> + 'a {
        self.sessions
            .values()
            .filter(move |s| s.name.as_ref() == Some(name))
            .map(|s| &s.handle)
    }

    /// Sessions whose peer is the ractor node `peer_name` (`name@ip:port`), by session id.
    pub fn of_peer<'a>(&'a self, peer_name: &'a str) -> impl Iterator<Item = (u64, &'a H)> + 'a {
        self.sessions
            .iter()
            .filter(move |(_, s)| s.peer_name.as_deref() == Some(peer_name))
            .map(|(id, s)| (*id, &s.handle))
    }

    /// The session `node_id`, if open.
    pub fn handle(&self, node_id: u64) -> Option<&H> {
        self.sessions.get(&node_id).map(|s| &s.handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(kind: SessionEventKind, id: u64, peer: Option<&str>, addr: &str) -> SessionEvent<u64> {
        SessionEvent {
            kind,
            node_id: id,
            peer_name: peer.map(String::from),
            peer_addr: addr.into(),
            incoming: true,
            handle: id,
        }
    }

    fn n(s: &str) -> NodeName {
        NodeName::new(s).unwrap()
    }

    use SessionEventKind::*;

    #[test]
    fn an_unauthenticated_connection_is_checked_then_closed() {
        let mut s: Sessions<u64, ()> = Sessions::default();
        let a = s.event(ev(Opened, 1, None, "127.0.0.9:5000"));
        assert_eq!(
            a,
            vec![SessionAction::CheckAuthLater {
                node_id: 1,
                after: AUTH_TIMEOUT
            }]
        );
        assert_eq!(s.unauthenticated(), 1);
        let a = s.check_auth(1);
        assert!(
            matches!(a[1], SessionAction::Close { handle: 1, .. }),
            "{a:?}"
        );
        // Authenticated in time: the check finds nothing to do.
        s.event(ev(
            Authenticated,
            1,
            Some("n2@127.0.0.2:4701"),
            "127.0.0.9:5000",
        ));
        assert!(s.check_auth(1).is_empty());
        assert_eq!(s.unauthenticated(), 0);
        assert_eq!(s.member_of(1), Some(&n("n2")));
    }

    #[test]
    fn a_dial_succeeds_when_its_connection_authenticates_and_fails_when_it_closes_first() {
        let mut s: Sessions<u64, ()> = Sessions::default();
        s.dialled("127.0.0.2:4701".parse().unwrap(), "seed.example:4701");
        s.event(ev(Opened, 1, None, "127.0.0.2:4701"));
        let a = s.event(ev(Ready, 1, Some("n2@127.0.0.2:4701"), "127.0.0.2:4701"));
        assert_eq!(
            a,
            vec![SessionAction::DialSucceeded {
                addr: "seed.example:4701".into()
            }]
        );

        s.dialled("127.0.0.3:4701".parse().unwrap(), "127.0.0.3:4701");
        s.event(ev(Opened, 2, None, "127.0.0.3:4701"));
        let a = s.event(ev(Disconnected, 2, None, "127.0.0.3:4701"));
        assert_eq!(
            a[0],
            SessionAction::DialFailed {
                addr: "127.0.0.3:4701".into()
            }
        );
        assert!(matches!(a[1], SessionAction::JudgeFailureLater { .. }));
    }

    #[test]
    fn a_member_is_disconnected_only_when_its_last_connection_closes() {
        let mut s: Sessions<u64, ()> = Sessions::default();
        for id in [1, 2] {
            s.event(ev(Opened, id, None, "127.0.0.2:4701"));
            s.event(ev(Ready, id, Some("n2@127.0.0.2:4701"), "127.0.0.2:4701"));
        }
        assert!(s.event(ev(Disconnected, 1, None, "")).is_empty());
        assert_eq!(s.of_member(&n("n2")).count(), 1);
        assert_eq!(
            s.event(ev(Disconnected, 2, None, "")),
            vec![SessionAction::MemberDisconnected(n("n2"))]
        );
        // An unknown session closing is nothing.
        assert!(s.event(ev(Disconnected, 9, None, "")).is_empty());
    }

    #[test]
    fn a_duplicate_connection_is_not_a_failure_and_failures_are_rate_limited() {
        let mut s: Sessions<u64, ()> = Sessions::default();
        let t0 = Instant::now();
        s.event(ev(Opened, 1, Some("n2@127.0.0.2:4701"), "127.0.0.2:5001"));
        s.event(ev(Opened, 2, None, "127.0.0.2:5002"));
        s.event(ev(Ready, 2, Some("n2@127.0.0.2:4701"), "127.0.0.2:5002"));
        let a = s.event(ev(Disconnected, 1, None, "127.0.0.2:5001"));
        let SessionAction::JudgeFailureLater { failure, .. } = a[0].clone() else {
            panic!("{a:?}")
        };
        assert!(s.judge_failure(failure, t0).is_empty(), "a duplicate");

        let bad = |port: u16| AuthFailure {
            peer_name: None,
            peer_addr: format!("127.0.0.9:{port}"),
            incoming: true,
        };
        assert_eq!(s.judge_failure(bad(1), t0).len(), 1);
        for p in 2..=5 {
            assert!(s
                .judge_failure(bad(p), t0 + Duration::from_secs(1))
                .is_empty());
        }
        let a = s.judge_failure(bad(6), t0 + AUTH_WARN_EVERY);
        assert_eq!(
            a,
            vec![SessionAction::WarnAuthFailed {
                failure: bad(6),
                suppressed: 4
            }]
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Open(u64, bool),
        Auth(u64, u8),
        Close(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..6, any::<bool>()).prop_map(|(i, d)| Op::Open(i, d)),
            (0u64..6, 0u8..3).prop_map(|(i, p)| Op::Auth(i, p)),
            (0u64..6).prop_map(Op::Close),
        ]
    }

    proptest! {
        /// Whatever order events come in (duplicates, closes of unknown sessions, events for
        /// sessions never opened), the unauthenticated count matches the sessions, a member is
        /// reported disconnected only when no authenticated session with it is left, and every
        /// dial is resolved at most once.
        #[test]
        fn counts_stay_consistent(ops in proptest::collection::vec(op(), 0..60)) {
            let mut s: Sessions<u64, ()> = Sessions::default();
            let mut dial_results = 0usize;
            let mut dials = 0usize;
            for o in ops {
                let actions = match o {
                    Op::Open(i, dial) => {
                        if s.handle(i).is_some() { continue; }
                        let addr = format!("127.0.0.1:{}", 5000 + i);
                        if dial { s.dialled(addr.parse().unwrap(), &addr); dials += 1; }
                        s.event(ev(Opened, i, None, &addr))
                    }
                    Op::Auth(i, p) => s.event(ev(Authenticated, i, Some(&format!("n{p}@127.0.0.1:4701")), &format!("127.0.0.1:{}", 5000 + i))),
                    Op::Close(i) => s.event(ev(Disconnected, i, None, "")),
                };
                for a in &actions {
                    match a {
                        SessionAction::DialSucceeded { .. } | SessionAction::DialFailed { .. } => dial_results += 1,
                        SessionAction::MemberDisconnected(name) => {
                            prop_assert_eq!(s.of_member(name).count(), 0);
                        }
                        _ => {}
                    }
                }
                let unauth = s.sessions.values().filter(|x| !x.authenticated).count();
                prop_assert_eq!(s.unauthenticated(), unauth);
            }
            prop_assert!(dial_results <= dials);
        }
    }
}
