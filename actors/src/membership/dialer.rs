//! Which addresses to dial, and when. Pure: time is an argument, dials are returned.
//!
//! ractor_cluster dials a peer once and never again; ringpoll keeps the cluster whole itself.
//! Every seed, and the address of every member ever heard of (until it leaves on purpose), is
//! an entry. An entry whose node is connected rests; one that is not is dialled, and after a
//! failure retried with capped exponential backoff and jitter — forever. Jitter is derived from
//! a hash of the address and the attempt, so runs replay.
//!
//! Log lines come from [`DialEvent`]s, returned only when an entry changes state (reachable →
//! unreachable and back), never per attempt.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One address's dialling state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Should be dialled now.
    Due,
    /// A dial is running.
    Dialing { attempt: u32 },
    /// Waiting before the next dial.
    Backoff { attempt: u32, until: Instant },
    /// The node at this address is a live member.
    Connected,
}

#[derive(Clone, Debug)]
struct Entry {
    state: State,
    seed: bool,
    /// Set once a failure was logged, cleared (and logged) when the address answers again.
    reported_down: bool,
}

/// A change worth one log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialEvent {
    /// First failure since the address was last reachable.
    Unreachable {
        /// The address.
        addr: String,
        /// Whether it is a configured seed.
        seed: bool,
        /// The error.
        error: String,
    },
    /// It answers again after failures were reported.
    Reachable {
        /// The address.
        addr: String,
        /// Whether it is a configured seed.
        seed: bool,
    },
}

/// The redial schedule of every known address.
#[derive(Clone, Debug)]
pub struct Dialer {
    entries: BTreeMap<String, Entry>,
    base: Duration,
    cap: Duration,
}

impl Dialer {
    /// Backoff from `base`, doubling up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Dialer {
            entries: BTreeMap::new(),
            base,
            cap,
        }
    }

    /// A dialer for `seeds`, leaving out this node's own address (a node may list itself).
    pub fn for_seeds(seeds: &[String], me: std::net::SocketAddr, cap: Duration) -> Self {
        let mut d = Dialer::new(Duration::from_millis(100), cap);
        for seed in seeds {
            if seed.parse::<std::net::SocketAddr>().ok() != Some(me) {
                d.add_seed(seed);
            }
        }
        d
    }

    /// Adds a seed (kept for ever).
    pub fn add_seed(&mut self, addr: &str) {
        self.entries
            .entry(addr.to_string())
            .or_insert(Entry {
                state: State::Due,
                seed: true,
                reported_down: false,
            })
            .seed = true;
    }

    /// Adds a member's address (a no-op if known).
    pub fn add_member(&mut self, addr: &str) {
        self.entries.entry(addr.to_string()).or_insert(Entry {
            state: State::Due,
            seed: false,
            reported_down: false,
        });
    }

    /// Forgets a member's address (it left on purpose); seeds are kept.
    pub fn forget(&mut self, addr: &str) {
        if self.entries.get(addr).is_some_and(|e| !e.seed) {
            self.entries.remove(addr);
        }
    }

    /// Whether the node at `addr` is a live member (nothing to dial) or not (dial it).
    pub fn set_connected(&mut self, addr: &str, connected: bool) -> Option<DialEvent> {
        let e = self.entries.get_mut(addr)?;
        match (connected, e.state) {
            (true, State::Connected) => None,
            (true, _) => {
                e.state = State::Connected;
                e.reported_down.then(|| {
                    e.reported_down = false;
                    DialEvent::Reachable {
                        addr: addr.to_string(),
                        seed: e.seed,
                    }
                })
            }
            (false, State::Connected) => {
                e.state = State::Due;
                None
            }
            (false, _) => None,
        }
    }

    /// Addresses to dial at `now`, with their attempt numbers; they become `Dialing`.
    pub fn due(&mut self, now: Instant) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        for (addr, e) in self.entries.iter_mut() {
            let attempt = match e.state {
                State::Due => 1,
                State::Backoff { attempt, until } if until <= now => attempt + 1,
                _ => continue,
            };
            e.state = State::Dialing { attempt };
            out.push((addr.clone(), attempt));
        }
        out
    }

    /// A dial of `addr` failed at `now`.
    pub fn failed(&mut self, addr: &str, now: Instant, error: &str) -> Option<DialEvent> {
        let State::Dialing { attempt } = self.entries.get(addr)?.state else {
            return None;
        };
        let until = now + self.delay(addr, attempt);
        let e = self.entries.get_mut(addr)?;
        e.state = State::Backoff { attempt, until };
        (!e.reported_down).then(|| {
            e.reported_down = true;
            DialEvent::Unreachable {
                addr: addr.to_string(),
                seed: e.seed,
                error: error.to_string(),
            }
        })
    }

    /// The connection dialled to `addr` authenticated; the entry waits (as after a failure)
    /// until the node is heard, so a peer that authenticates but stays silent is retried
    /// at the backoff pace, not in a tight loop.
    pub fn connected(&mut self, addr: &str, now: Instant) {
        if let Some(State::Dialing { attempt }) = self.entries.get(addr).map(|e| e.state) {
            let until = now + self.delay(addr, attempt);
            if let Some(e) = self.entries.get_mut(addr) {
                e.state = State::Backoff { attempt, until };
            }
        }
    }

    /// The backoff before retry `attempt + 1`: `base * 2^(attempt-1)` capped, times a jitter
    /// factor in [0.75, 1.25) from a hash of (address, attempt).
    pub fn delay(&self, addr: &str, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.cap);
        let h = xxhash_rust::xxh3::xxh3_64_with_seed(addr.as_bytes(), u64::from(attempt));
        let jitter = 0.75 + (h % 1000) as f64 / 2000.0;
        exp.mul_f64(jitter)
    }

    /// Known addresses.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no address is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn seeds_are_retried_with_capped_backoff_and_logged_once() {
        let t0 = Instant::now();
        let mut d = Dialer::new(100 * MS, 1000 * MS);
        d.add_seed("127.0.1.1:4701");
        assert_eq!(d.due(t0), vec![("127.0.1.1:4701".to_string(), 1)]);
        assert!(d.due(t0).is_empty(), "one dial at a time");
        let ev = d.failed("127.0.1.1:4701", t0, "connection refused");
        assert!(matches!(
            ev,
            Some(DialEvent::Unreachable { seed: true, .. })
        ));
        let mut t = t0;
        let mut delays = Vec::new();
        for attempt in 2..12 {
            // Not before the backoff.
            assert!(d
                .due(t + d.delay("127.0.1.1:4701", attempt - 1) - MS)
                .is_empty());
            t += d.delay("127.0.1.1:4701", attempt - 1);
            delays.push(d.delay("127.0.1.1:4701", attempt - 1));
            assert_eq!(d.due(t), vec![("127.0.1.1:4701".to_string(), attempt)]);
            assert_eq!(
                d.failed("127.0.1.1:4701", t, "connection refused"),
                None,
                "logged once"
            );
        }
        assert!(delays.iter().all(|x| *x <= 1250 * MS), "{delays:?}");
        assert!(delays[0] < 200 * MS && delays[9] >= 750 * MS, "{delays:?}");
        d.connected("127.0.1.1:4701", t);
        assert_eq!(
            d.set_connected("127.0.1.1:4701", true),
            Some(DialEvent::Reachable {
                addr: "127.0.1.1:4701".into(),
                seed: true
            })
        );
        assert!(
            d.due(t + 10_000 * MS).is_empty(),
            "connected addresses are not dialled"
        );
        // Lost again: dialled at once.
        d.set_connected("127.0.1.1:4701", false);
        assert_eq!(d.due(t).len(), 1);
    }

    #[test]
    fn members_are_forgotten_when_they_leave_but_seeds_are_not() {
        let mut d = Dialer::new(100 * MS, 1000 * MS);
        d.add_seed("s:1");
        d.add_member("m:1");
        d.add_member("s:1");
        assert_eq!(d.len(), 2);
        d.forget("m:1");
        d.forget("s:1");
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn jitter_is_reproducible_and_bounded() {
        let d = Dialer::new(100 * MS, 1000 * MS);
        for attempt in 1..20 {
            let a = d.delay("x:1", attempt);
            assert_eq!(a, d.delay("x:1", attempt));
            assert!(a >= 75 * MS && a < 1250 * MS);
        }
        assert_ne!(d.delay("x:1", 3), d.delay("y:1", 3));
    }
}
