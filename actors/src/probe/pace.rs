//! Pacing of ICMP echoes: at most `per_network` echoes per second into one network (a /24 for
//! IPv4, a /64 for IPv6), and at most `node` per second in all.
//!
//! Each limit is a virtual clock per key (GCRA, as in ATM's and many rate limiters): an echo is
//! sent at the later of when it is wanted and the key's next free time, which then moves one
//! period (1 / rate) on. So no network ever gets more than its rate over any window (with a
//! burst of one), echoes wait rather than drop, and the wait of a crowded network never delays
//! another network's echoes (only the node-wide clock is shared).
//!
//! Pure: the time is an argument; the result is when each echo may go.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

/// Default `max_rate_per_network`: echoes per second into one /24 or /64. High enough never to
/// slow a sweep or a node probing dense loopback ranges, low enough to spread a burst.
pub const DEFAULT_PER_NETWORK: u32 = 10_000;

/// The limits, in echoes per second (`None`: no limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaceLimits {
    /// Into one /24 (IPv4) or /64 (IPv6).
    pub per_network: Option<u32>,
    /// From the whole node.
    pub node: Option<u32>,
}

impl Default for PaceLimits {
    fn default() -> Self {
        PaceLimits {
            per_network: Some(DEFAULT_PER_NETWORK),
            node: None,
        }
    }
}

impl PaceLimits {
    /// No limit at all.
    pub const NONE: PaceLimits = PaceLimits {
        per_network: None,
        node: None,
    };
}

/// The network an address is paced in: its /24 or /64.
pub fn network_of(addr: IpAddr) -> IpNet {
    let len = if addr.is_ipv4() { 24 } else { 64 };
    IpNet::new(addr, len).map_or_else(|_| IpNet::from(addr), |n| n.trunc())
}

/// How many reservations between sweeps of networks whose clocks have passed.
const PRUNE_EVERY: u32 = 4096;

/// The virtual clocks of the limits, one per network key `K` (the network itself, or an index
/// a caller computed once per target, as the sweep does).
#[derive(Debug)]
pub struct Pacer<K = IpNet> {
    limits: PaceLimits,
    networks: HashMap<K, Instant>,
    node: Option<Instant>,
    since_prune: u32,
}

fn period(rate: u32) -> Duration {
    Duration::from_secs(1) / rate.max(1)
}

impl<K: std::hash::Hash + Eq> Pacer<K> {
    /// A pacer with `limits`.
    pub fn new(limits: PaceLimits) -> Self {
        Pacer {
            limits,
            networks: HashMap::new(),
            node: None,
            since_prune: 0,
        }
    }

    /// One echo to `addr`, ready to go at `now`: how long it must wait for its network's and
    /// the node's clocks. Its slot is taken: call this when the echo is ready, not ahead of
    /// time (a slot taken ahead would hold every other echo of the network back until then).
    pub fn reserve(&mut self, addr: IpAddr, now: Instant) -> Duration
    where
        K: From<IpNet>,
    {
        self.reserve_in(network_of(addr).into(), now)
    }

    /// Like [`Pacer::reserve`], for an echo into network `net`.
    pub fn reserve_in(&mut self, net: K, now: Instant) -> Duration {
        let mut t = now;
        if self.limits.per_network.is_some() {
            if let Some(free) = self.networks.get(&net) {
                t = t.max(*free);
            }
        }
        if let (Some(_), Some(free)) = (self.limits.node, self.node) {
            t = t.max(free);
        }
        if let Some(rate) = self.limits.per_network {
            self.networks.insert(net, t + period(rate));
            self.since_prune += 1;
            if self.since_prune >= PRUNE_EVERY {
                self.since_prune = 0;
                self.networks.retain(|_, free| *free > now);
            }
        }
        if let Some(rate) = self.limits.node {
            self.node = Some(t + period(rate));
        }
        t - now
    }

    /// Networks with a clock kept (for tests: the map stays bounded).
    pub fn networks_tracked(&self) -> usize {
        self.networks.len()
    }
}

/// `items` reordered so that consecutive ones are in different networks where possible: the
/// first of each network, then the second of each, and so on (networks in order of first
/// appearance). A sweep sends in this order, so a network's targets are spread over the whole
/// sweep instead of going out in one burst (as ZMap permutes its targets).
pub fn interleave_networks<T>(items: Vec<T>, addr: impl Fn(&T) -> Option<IpAddr>) -> Vec<T> {
    // Per network: its place in order of first appearance, and how many of it come before.
    let mut nets: HashMap<Option<IpNet>, (usize, usize)> = HashMap::new();
    let mut keyed: Vec<(usize, usize, T)> = Vec::with_capacity(items.len());
    for item in items {
        let next = nets.len();
        let (place, rank) = nets.entry(addr(&item).map(network_of)).or_insert((next, 0));
        keyed.push((*rank, *place, item));
        *rank += 1;
    }
    keyed.sort_by_key(|(rank, net, _)| (*rank, *net));
    keyed.into_iter().map(|(_, _, item)| item).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn networks_are_slash_24_and_slash_64() {
        assert_eq!(network_of(ip("127.0.20.77")).to_string(), "127.0.20.0/24");
        assert_eq!(network_of(ip("::1")).to_string(), "::/64");
        assert_eq!(
            network_of(ip("fd00:1:2:3:4::9")).to_string(),
            "fd00:1:2:3::/64"
        );
    }

    #[test]
    fn one_network_is_spaced_at_its_rate_and_another_does_not_wait() {
        let mut p = Pacer::<IpNet>::new(PaceLimits {
            per_network: Some(100),
            node: None,
        });
        let t0 = Instant::now();
        let waits: Vec<Duration> = (1..=3)
            .map(|i| p.reserve(ip(&format!("127.0.20.{i}")), t0))
            .collect();
        assert_eq!(waits, [Duration::ZERO, 10 * MS, 20 * MS]);
        // Another /24 goes at once.
        assert_eq!(p.reserve(ip("127.0.21.1"), t0), Duration::ZERO);
        // Later, the first /24's clock has passed: no wait.
        assert_eq!(p.reserve(ip("127.0.20.1"), t0 + 40 * MS), Duration::ZERO);
        assert_eq!(p.reserve(ip("127.0.20.2"), t0 + 45 * MS), 5 * MS);
    }

    #[test]
    fn the_node_limit_holds_across_networks() {
        let mut p = Pacer::<IpNet>::new(PaceLimits {
            per_network: None,
            node: Some(1000),
        });
        let t0 = Instant::now();
        let waits: Vec<Duration> = (0..4)
            .map(|i| p.reserve(ip(&format!("127.0.{i}.1")), t0))
            .collect();
        assert_eq!(waits, [Duration::ZERO, MS, 2 * MS, 3 * MS]);
        assert_eq!(p.networks_tracked(), 0);
    }

    #[test]
    fn passed_clocks_are_forgotten() {
        let mut p = Pacer::<IpNet>::new(PaceLimits::default());
        let t0 = Instant::now();
        for i in 0..PRUNE_EVERY * 2 {
            let addr = IpAddr::from([127, (i >> 8) as u8, i as u8, 1]);
            p.reserve(addr, t0 + Duration::from_secs(u64::from(i)));
        }
        assert!(
            p.networks_tracked() < PRUNE_EVERY as usize,
            "{}",
            p.networks_tracked()
        );
    }

    #[test]
    fn interleaving_takes_one_of_each_network_in_turn() {
        let items = [
            "127.0.1.1",
            "127.0.1.2",
            "127.0.1.3",
            "127.0.2.1",
            "127.0.3.1",
            "127.0.3.2",
        ];
        let out = interleave_networks(items.to_vec(), |s| Some(ip(s)));
        assert_eq!(
            out,
            [
                "127.0.1.1",
                "127.0.2.1",
                "127.0.3.1",
                "127.0.1.2",
                "127.0.3.2",
                "127.0.1.3"
            ]
        );
    }

    proptest! {
        /// However echoes arrive, consecutive sends into one network are at least a period of
        /// its rate apart, and those of the node a period of the node's rate; no echo goes
        /// before it is ready.
        #[test]
        fn no_window_exceeds_the_rates(
            echoes in proptest::collection::vec((0u8..4, 0u8..4, 0u64..2_000), 1..300),
            per_network in 50u32..2_000,
            node in 200u32..5_000,
        ) {
            let mut p = Pacer::<IpNet>::new(PaceLimits { per_network: Some(per_network), node: Some(node) });
            let t0 = Instant::now();
            let mut echoes = echoes;
            echoes.sort_by_key(|x| x.2);
            let mut sends: Vec<(u8, Instant)> = Vec::new();
            for (net, host, at_ms) in echoes {
                let now = t0 + Duration::from_millis(at_ms);
                let wait = p.reserve(IpAddr::from([127, 0, net, host]), now);
                sends.push((net, now + wait));
            }
            let check = |times: &mut Vec<Instant>, rate: u32| -> Result<(), TestCaseError> {
                times.sort();
                let per = period(rate);
                for w in times.windows(2) {
                    prop_assert!(w[1] - w[0] >= per, "{:?} apart at {}/s", w[1] - w[0], rate);
                }
                Ok(())
            };
            for net in 0..4u8 {
                let mut t: Vec<Instant> = sends.iter().filter(|s| s.0 == net).map(|s| s.1).collect();
                check(&mut t, per_network)?;
            }
            let mut all: Vec<Instant> = sends.iter().map(|s| s.1).collect();
            check(&mut all, node)?;
        }
    }
}
