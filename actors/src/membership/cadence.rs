//! Who hears this node's heartbeat, and how often. Pure: time is an argument.
//!
//! A full mesh at the heartbeat interval costs every node (N − 1) messages out and in per
//! interval, and a message through ractor_cluster costs about 100 µs of CPU here however small
//! it is (three actor hops and a socket on each side). So a node beats at the full rate only
//! to its [`WATCHERS`] watchers — the members after it in name order, wrapping around, as each
//! node works out from its own table — and to every other peer once per [`SLOW_FACTOR`]
//! intervals, or at once when what it says changes (its ring digest, target set, weight or
//! member list). Each heartbeat says which cadence its sender keeps towards the receiver, so
//! the receiver's failure detector waits for the right gap, however the two nodes' views
//! differ. A watcher that declares a member dead for its silence tells the others, who
//! follow once they suspect the member themselves (see `MembershipTable::reported_dead`).
//!
//! Clusters of up to `WATCHERS + 1` nodes are a full mesh at the full rate, as before.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::model::NodeName;

/// Members that hear each node at the full heartbeat rate.
pub const WATCHERS: usize = 3;
/// Every other peer hears a node once per this many heartbeat intervals (when nothing changed).
pub const SLOW_FACTOR: u32 = 8;

/// The members that watch `of`: the [`WATCHERS`] members after it in `ring` (sorted, `of`
/// included), wrapping around.
pub fn watchers<'a>(ring: &'a [NodeName], of: &NodeName) -> Vec<&'a NodeName> {
    let Ok(at) = ring.binary_search(of) else {
        return ring.iter().take(WATCHERS).collect();
    };
    (1..ring.len())
        .map(|i| &ring[(at + i) % ring.len()])
        .take(WATCHERS)
        .collect()
}

/// The cadence a heartbeat declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// Every heartbeat interval.
    Full,
    /// Every [`SLOW_FACTOR`] intervals.
    Slow,
}

/// One peer's heartbeat this interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Beat {
    /// The session it goes on.
    pub session: u64,
    /// The cadence it declares.
    pub pace: Pace,
    /// The content changed since this session's last beat: it carries the member list.
    pub news: bool,
}

#[derive(Clone, Copy, Debug)]
struct Sent {
    at: Instant,
    content: u64,
    pace: Pace,
}

/// What each session was last sent.
#[derive(Debug, Default)]
pub struct Beats {
    sent: HashMap<u64, Sent>,
}

impl Beats {
    /// The heartbeats due at `now` (a tick of every `tick`), whose content hashes to
    /// `content`, for `peers` (each session with the member on it, `None` while not
    /// authenticated: such a peer may be joining and hears every beat) and this node's
    /// `watchers`. A slow peer's beat is due by the clock, [`SLOW_FACTOR`] ticks after the last
    /// (to the nearest tick), so late ticks do not stretch its gap.
    pub fn plan<'a>(
        &mut self,
        now: Instant,
        tick: Duration,
        content: u64,
        peers: impl IntoIterator<Item = (u64, Option<&'a NodeName>)>,
        watchers: &[&NodeName],
    ) -> Vec<Beat> {
        let mut out = Vec::new();
        for (session, name) in peers {
            let pace = match name {
                Some(n) if !watchers.contains(&n) => Pace::Slow,
                _ => Pace::Full,
            };
            let last = self.sent.get(&session);
            let news = last.is_none_or(|s| s.content != content);
            let slow_due = |s: &Sent| now + tick / 2 >= s.at + tick * SLOW_FACTOR;
            let due =
                pace == Pace::Full || news || last.is_none_or(|s| s.pace != pace || slow_due(s));
            if due {
                self.sent.insert(
                    session,
                    Sent {
                        at: now,
                        content,
                        pace,
                    },
                );
                out.push(Beat {
                    session,
                    pace,
                    news,
                });
            }
        }
        out
    }

    /// Session `session` closed.
    pub fn forget(&mut self, session: u64) {
        self.sent.remove(&session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TICK: Duration = Duration::from_millis(250);

    /// The time of beat `n`, ticks from a fixed start.
    fn at(n: u64) -> Instant {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *START.get_or_init(Instant::now) + TICK * n as u32
    }

    fn names(n: usize) -> Vec<NodeName> {
        let mut v: Vec<NodeName> = (0..n)
            .map(|i| NodeName::new(&format!("n{i:02}")).unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn small_clusters_are_a_full_mesh() {
        let ring = names(WATCHERS + 1);
        for me in &ring {
            let w = watchers(&ring, me);
            assert_eq!(w.len(), WATCHERS);
            assert!(!w.contains(&me));
        }
    }

    #[test]
    fn watchers_follow_in_name_order_and_wrap() {
        let ring = names(10);
        let w = watchers(&ring, &ring[8]);
        let after: Vec<&NodeName> = [9, 0, 1, 2, 3].iter().map(|&i| &ring[i]).collect();
        assert_eq!(w, after[..WATCHERS]);
    }

    #[test]
    fn watchers_get_every_beat_others_one_in_slow_factor_or_on_news() {
        let ring = names(10);
        let me = &ring[0];
        let w = watchers(&ring, me);
        let peers: Vec<(u64, Option<&NodeName>)> = ring[1..]
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u64, Some(n)))
            .collect();
        let mut beats = Beats::default();
        // The first beat goes to everyone, with news.
        let first = beats.plan(at(0), TICK, 7, peers.clone(), &w);
        assert_eq!(first.len(), 9);
        assert!(first.iter().all(|b| b.news));
        let mut per_session = [0u32; 9];
        for beat in 1..=u64::from(SLOW_FACTOR * 3) {
            for b in beats.plan(at(beat), TICK, 7, peers.clone(), &w) {
                per_session[b.session as usize] += 1;
                assert!(!b.news);
                let watcher = w.contains(&peers[b.session as usize].1.unwrap());
                assert_eq!(b.pace, if watcher { Pace::Full } else { Pace::Slow });
            }
        }
        for (i, count) in per_session.iter().enumerate() {
            let expect = if i < WATCHERS { SLOW_FACTOR * 3 } else { 3 };
            assert_eq!(*count, expect, "session {i}");
        }
        // News goes to everyone at once.
        let news = beats.plan(at(100), TICK, 8, peers.clone(), &w);
        assert_eq!(news.len(), 9);
        assert!(news.iter().all(|b| b.news));
    }

    #[test]
    fn an_unnamed_peer_hears_every_beat_and_a_peer_that_stops_watching_is_told_at_once() {
        let ring = names(10);
        let mut beats = Beats::default();
        for beat in 0..5 {
            assert_eq!(beats.plan(at(beat), TICK, 1, [(9, None)], &[]).len(), 1);
        }
        let n1 = &ring[1];
        assert_eq!(
            beats.plan(at(5), TICK, 1, [(1, Some(n1))], &[n1])[0].pace,
            Pace::Full
        );
        // No longer a watcher: the next beat says so at once, then one per SLOW_FACTOR.
        assert_eq!(
            beats.plan(at(6), TICK, 1, [(1, Some(n1))], &[])[0].pace,
            Pace::Slow
        );
        assert!(beats.plan(at(7), TICK, 1, [(1, Some(n1))], &[]).is_empty());
        beats.forget(1);
        assert!(beats.plan(at(8), TICK, 1, [(1, Some(n1))], &[])[0].news);
    }

    proptest! {
        /// Every member has min(WATCHERS, N − 1) watchers, and every member watches as many:
        /// the load is even.
        #[test]
        fn watching_is_even(n in 1usize..40) {
            let ring = names(n);
            let mut watching = HashMap::new();
            for me in &ring {
                let w = watchers(&ring, me);
                prop_assert_eq!(w.len(), WATCHERS.min(n - 1));
                for x in w {
                    *watching.entry(x.clone()).or_insert(0usize) += 1;
                }
            }
            for me in &ring {
                prop_assert_eq!(watching.get(me).copied().unwrap_or(0), WATCHERS.min(n - 1));
            }
        }

        /// A peer never waits longer than SLOW_FACTOR ticks and one late tick, whatever the
        /// plan's inputs and however late the ticks come.
        #[test]
        fn no_peer_waits_longer_than_slow_factor(
            steps in proptest::collection::vec((0u64..3, any::<bool>(), 0u32..4), 1..200)
        ) {
            let ring = names(3);
            let mut beats = Beats::default();
            let (mut now, mut last) = (at(0), at(0));
            for (content, watch, late) in steps {
                // Each tick comes one interval late, up to three more late.
                let step = TICK + TICK * late;
                now += step;
                let w: Vec<&NodeName> = if watch { vec![&ring[1]] } else { vec![] };
                if !beats.plan(now, TICK, content, [(1, Some(&ring[1]))], &w).is_empty() {
                    last = now;
                }
                prop_assert!(now - last < TICK * SLOW_FACTOR);
            }
        }
    }
}
