//! Admission of new cluster connections by source address. Pure: the listener asks, with the
//! time, whether to take a connection from an address.
//!
//! Every connection is closed unless it authenticates within [`AUTH_TIMEOUT`], so the
//! connections one address opened within the last [`AUTH_TIMEOUT`] bound the unauthenticated
//! connections it holds. Capping that number per address keeps one flooding address from
//! filling the node-wide cap of unauthenticated connections ([`super::transport`]): others,
//! a legitimate node among them, still get in at once. A node dials a peer once per connection
//! it needs (one per peer, more only after a lost link, with backoff), far below the cap.
//!
//! The memory is bounded too: at most [`MAX_SOURCES`] addresses are remembered, each with at
//! most [`MAX_NEW_PER_SOURCE`] times; when every slot holds a recent address, new addresses
//! are refused until one ages out.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::sessions::AUTH_TIMEOUT;

/// New connections one source address may open within [`AUTH_TIMEOUT`].
pub const MAX_NEW_PER_SOURCE: usize = 16;
/// Source addresses remembered at most.
pub const MAX_SOURCES: usize = 4096;

/// Whether a new connection is admitted, and if not why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Take it.
    Admit,
    /// Its address opened [`MAX_NEW_PER_SOURCE`] connections within [`AUTH_TIMEOUT`].
    SourceFull,
    /// [`MAX_SOURCES`] other addresses opened connections within [`AUTH_TIMEOUT`].
    TooManySources,
}

/// Recent connections per source address.
#[derive(Debug)]
pub struct SourceGate {
    window: Duration,
    per_source: usize,
    max_sources: usize,
    recent: HashMap<IpAddr, VecDeque<Instant>>,
}

impl Default for SourceGate {
    fn default() -> Self {
        SourceGate::new(AUTH_TIMEOUT, MAX_NEW_PER_SOURCE, MAX_SOURCES)
    }
}

impl SourceGate {
    /// A gate admitting `per_source` connections per address within `window`, remembering at
    /// most `max_sources` addresses.
    pub fn new(window: Duration, per_source: usize, max_sources: usize) -> Self {
        SourceGate {
            window,
            per_source,
            max_sources,
            recent: HashMap::new(),
        }
    }

    /// Whether to take a connection from `source` at `now`; an admitted one is counted.
    pub fn admit(&mut self, source: IpAddr, now: Instant) -> Admission {
        let window = self.window;
        let fresh = |t: &Instant| now.saturating_duration_since(*t) < window;
        if let Some(times) = self.recent.get_mut(&source) {
            while times.front().is_some_and(|t| !fresh(t)) {
                times.pop_front();
            }
            if times.len() >= self.per_source {
                return Admission::SourceFull;
            }
            times.push_back(now);
            return Admission::Admit;
        }
        if self.recent.len() >= self.max_sources {
            self.recent
                .retain(|_, times| times.back().is_some_and(fresh));
            if self.recent.len() >= self.max_sources {
                return Admission::TooManySources;
            }
        }
        self.recent.insert(source, VecDeque::from([now]));
        Admission::Admit
    }

    /// Addresses remembered now.
    pub fn sources(&self) -> usize {
        self.recent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(i: u32) -> IpAddr {
        IpAddr::from([127, 0, (i >> 8) as u8, i as u8])
    }

    #[test]
    fn one_address_is_capped_and_others_still_get_in() {
        let t0 = Instant::now();
        let mut g = SourceGate::default();
        for i in 0..MAX_NEW_PER_SOURCE {
            assert_eq!(
                g.admit(ip(1), t0 + Duration::from_millis(i as u64)),
                Admission::Admit
            );
        }
        assert_eq!(g.admit(ip(1), t0), Admission::SourceFull);
        assert_eq!(g.admit(ip(2), t0), Admission::Admit);
        // Once the first ones are past the authentication timeout, the address may open more.
        assert_eq!(g.admit(ip(1), t0 + AUTH_TIMEOUT), Admission::Admit);
        assert_eq!(g.admit(ip(1), t0 + AUTH_TIMEOUT), Admission::SourceFull);
    }

    #[test]
    fn the_addresses_remembered_are_bounded_and_old_ones_age_out() {
        let t0 = Instant::now();
        let mut g = SourceGate::new(Duration::from_secs(5), 2, 3);
        for i in 0..3 {
            assert_eq!(g.admit(ip(i), t0), Admission::Admit);
        }
        assert_eq!(g.admit(ip(9), t0), Admission::TooManySources);
        assert_eq!(
            g.admit(ip(0), t0),
            Admission::Admit,
            "a known one still counts"
        );
        let later = t0 + Duration::from_secs(5);
        assert_eq!(g.admit(ip(9), later), Admission::Admit);
        assert_eq!(g.sources(), 1);
    }

    proptest! {
        /// Whatever the arrivals: an address never has more than `per_source` admissions
        /// within any window, never more than `max_sources` addresses are remembered, and an
        /// address under its cap is refused only when every slot holds a recent address.
        #[test]
        fn caps_hold(arrivals in proptest::collection::vec((0u32..12, 0u64..400), 1..400)) {
            let (per, max, window) = (3usize, 5usize, Duration::from_millis(100));
            let t0 = Instant::now();
            let mut g = SourceGate::new(window, per, max);
            let mut admitted: HashMap<IpAddr, Vec<Instant>> = HashMap::new();
            let mut at = t0;
            for (a, dt) in arrivals {
                at += Duration::from_millis(dt % 40);
                let recent = |v: &Vec<Instant>| v.iter().filter(|t| at.duration_since(**t) < window).count();
                let before = admitted.get(&ip(a)).map_or(0, recent);
                let busy = admitted.values().filter(|v| recent(v) > 0).count();
                match g.admit(ip(a), at) {
                    Admission::Admit => admitted.entry(ip(a)).or_default().push(at),
                    Admission::SourceFull => prop_assert_eq!(before, per),
                    Admission::TooManySources => {
                        prop_assert_eq!(before, 0);
                        prop_assert!(busy >= max);
                    }
                }
                prop_assert!(admitted.get(&ip(a)).map_or(0, recent) <= per);
                prop_assert!(g.sources() <= max);
            }
        }
    }
}
