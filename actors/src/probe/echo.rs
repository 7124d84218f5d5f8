//! Several echoes per ICMP probe, as `ping -c 3` and `fping -C 3` send: how many, how far
//! apart, when the probe fails, and the loss and latency statistics of what came back.
//!
//! Pure: the replies in, the statistics and the verdict out. The statistics are defined as
//! `fping -C` and iputils `ping` print them: loss is lost/sent; min, avg and max over the
//! replies; the standard deviation is ping's `mdev`, sqrt(mean(rtt²) − mean(rtt)²).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default echoes per probe (as the seed's `ping -c 3`).
pub const DEFAULT_COUNT: u16 = 3;
/// Default spacing of one target's echoes.
pub const DEFAULT_PACKET_INTERVAL: Duration = Duration::from_millis(100);
/// Most echoes per probe.
pub const MAX_COUNT: u16 = 100;

/// Upper bounds, in seconds, of the round-trip histogram's buckets: classic 1-2-5 steps from
/// 100 µs to 10 s. A last, unbounded bucket counts slower replies.
pub const RTT_BUCKETS: [f64; 16] = [
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
    10.0,
];

/// Replies per round-trip bucket (not cumulative; the last is above 10 s).
pub type RttCounts = [u8; RTT_BUCKETS.len() + 1];

/// The bucket of a round trip: the first whose upper bound it does not exceed.
fn bucket_of(rtt: Duration) -> usize {
    let s = rtt.as_secs_f64();
    RTT_BUCKETS
        .iter()
        .position(|le| s <= *le)
        .unwrap_or(RTT_BUCKETS.len())
}

/// How an ICMP probe measures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Echoes {
    /// Echoes per probe (1 to [`MAX_COUNT`]).
    pub count: u16,
    /// Time between the sends of one target's echoes.
    pub packet_interval: Duration,
    /// The probe fails when the loss ratio is above this (0–1); `None`: only when every echo
    /// is lost.
    pub max_loss: Option<f64>,
    /// The probe fails when the average round trip is above this.
    pub max_rtt: Option<Duration>,
}

impl Default for Echoes {
    fn default() -> Self {
        Echoes {
            count: DEFAULT_COUNT,
            packet_interval: DEFAULT_PACKET_INTERVAL,
            max_loss: None,
            max_rtt: None,
        }
    }
}

impl Echoes {
    /// The longest a probe can take with a per-echo `timeout`: the last echo is sent
    /// `(count − 1) × packet_interval` after the first and waited for `timeout`.
    pub fn span(&self, timeout: Duration) -> Duration {
        self.packet_interval * u32::from(self.count.saturating_sub(1)) + timeout
    }

    /// A stable 64-bit summary, for digests of target settings.
    pub fn digest_parts(&self) -> [u64; 4] {
        [
            u64::from(self.count),
            self.packet_interval.as_nanos() as u64,
            self.max_loss.map_or(u64::MAX, f64::to_bits),
            self.max_rtt.map_or(u64::MAX, |d| d.as_nanos() as u64),
        ]
    }

    /// What a probe whose echoes gave `stats` found.
    pub fn verdict(&self, stats: &EchoStats) -> Verdict {
        let Some(avg) = stats.avg else {
            return Verdict::AllLost;
        };
        if self
            .max_loss
            .is_some_and(|max| stats.loss > max + f64::EPSILON)
        {
            return Verdict::Loss;
        }
        if self.max_rtt.is_some_and(|max| avg > max) {
            return Verdict::Slow;
        }
        Verdict::Up { rtt: avg }
    }
}

/// The ICMP identifier and sequence numbers of one probe's echoes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EchoIds {
    /// Added to the node's identifier. It changes every round (see [`EchoIds::round_of`]), so
    /// a firewall that has learnt to drop one identifier drops one round, not every round after.
    pub round: u16,
    /// The first echo's sequence number; the others follow it.
    pub seq: u16,
}

impl EchoIds {
    /// The round of a probe started `since_epoch` (wall-clock) that repeats every `interval`:
    /// the number of whole intervals since the Unix epoch, as every node counts them, so two
    /// nodes probing one target at once use identifiers as far apart as their own.
    pub fn round_of(since_epoch: Duration, interval: Duration) -> u16 {
        (since_epoch.as_nanos() / interval.as_nanos().max(1)) as u16
    }
}

/// Called once when a probe's first echo has its answer (a reply, or its timeout): the sweep
/// frees the probe's sending slot then, while the later echoes wait their turn.
pub type FirstAnswer = Box<dyn FnOnce() + Send>;

/// The verdict on a probe's echoes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Up, at the average round trip.
    Up {
        /// The mean round trip.
        rtt: Duration,
    },
    /// No echo came back (down as the last one was lost: timeout, unreachable, …).
    AllLost,
    /// Some came back, more were lost than `max_loss` allows (down, reason `loss`).
    Loss,
    /// The average round trip is above `max_rtt` (down, reason `slow`).
    Slow,
}

/// What one probe's echoes found.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct EchoStats {
    /// Echoes sent.
    pub sent: u16,
    /// Replies received.
    pub received: u16,
    /// Lost share, 0–1.
    pub loss: f64,
    /// Fastest reply.
    pub min: Option<Duration>,
    /// Mean round trip.
    pub avg: Option<Duration>,
    /// Slowest reply.
    pub max: Option<Duration>,
    /// Population standard deviation of the round trips (ping's `mdev`).
    pub stddev: Option<Duration>,
    /// The replies by round-trip bucket, for the histogram of each target's round trips.
    pub buckets: RttCounts,
}

impl EchoStats {
    /// The statistics of `sent` echoes that got the replies `rtts`.
    pub fn of(sent: u16, rtts: &[Duration]) -> EchoStats {
        let received = rtts.len().min(usize::from(sent)) as u16;
        let loss = if sent == 0 {
            0.0
        } else {
            f64::from(sent - received) / f64::from(sent)
        };
        if rtts.is_empty() {
            return EchoStats {
                sent,
                received,
                loss,
                ..EchoStats::default()
            };
        }
        let mut buckets = RttCounts::default();
        for rtt in &rtts[..usize::from(received)] {
            let n = &mut buckets[bucket_of(*rtt)];
            *n = n.saturating_add(1);
        }
        let secs: Vec<f64> = rtts.iter().map(Duration::as_secs_f64).collect();
        let n = secs.len() as f64;
        let mean = secs.iter().sum::<f64>() / n;
        let mean_sq = secs.iter().map(|s| s * s).sum::<f64>() / n;
        let stddev = (mean_sq - mean * mean).max(0.0).sqrt();
        EchoStats {
            sent,
            received,
            loss,
            min: rtts.iter().min().copied(),
            avg: Some(Duration::from_secs_f64(mean)),
            max: rtts.iter().max().copied(),
            stddev: Some(Duration::from_secs_f64(stddev)),
            buckets,
        }
    }

    /// The fields a result line carries, in milliseconds to the microsecond.
    pub fn line(&self) -> EchoLine {
        let ms = |d: Option<Duration>| d.map(crate::clock::ms);
        EchoLine {
            sent: self.sent,
            received: self.received,
            loss: (self.loss * 1e4).round() / 1e4,
            rtt_min_ms: ms(self.min),
            rtt_avg_ms: ms(self.avg),
            rtt_max_ms: ms(self.max),
            rtt_stddev_ms: ms(self.stddev),
        }
    }
}

/// A target's echoes added up over its probes on this node: what its packet counters and its
/// round-trip histogram show.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct EchoTotals {
    /// Echoes sent.
    pub sent: u64,
    /// Replies received.
    pub received: u64,
    /// Sum of the replies' round trips, seconds.
    pub rtt_sum: f64,
    /// Replies per bucket of [`RTT_BUCKETS`] (not cumulative; the last is above 10 s).
    pub buckets: [u64; RTT_BUCKETS.len() + 1],
}

impl EchoTotals {
    /// Adds one probe's echoes.
    pub fn add(&mut self, s: &EchoStats) {
        self.sent += u64::from(s.sent);
        self.received += u64::from(s.received);
        self.rtt_sum += s
            .avg
            .map_or(0.0, |a| a.as_secs_f64() * f64::from(s.received));
        for (total, n) in self.buckets.iter_mut().zip(s.buckets) {
            *total += u64::from(n);
        }
    }
}

/// The echo statistics of a result line (flattened into it).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EchoLine {
    /// Echoes sent.
    pub sent: u16,
    /// Replies received.
    pub received: u16,
    /// Lost share, 0–1.
    pub loss: f64,
    /// Fastest reply, ms.
    pub rtt_min_ms: Option<f64>,
    /// Mean, ms.
    pub rtt_avg_ms: Option<f64>,
    /// Slowest, ms.
    pub rtt_max_ms: Option<f64>,
    /// Standard deviation (ping's mdev), ms.
    pub rtt_stddev_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn us(v: u64) -> Duration {
        Duration::from_micros(v)
    }

    #[test]
    fn statistics_match_hand_computed_values() {
        // Five echoes, replies of 1, 2, 3 and 6 ms, one lost: loss 0.2, min 1, max 6, avg 3,
        // mdev = sqrt((1 + 4 + 9 + 36) / 4 − 9) = sqrt(3.5) = 1.8708 ms.
        let s = EchoStats::of(5, &[us(1000), us(2000), us(3000), us(6000)]);
        assert_eq!((s.sent, s.received), (5, 4));
        assert!((s.loss - 0.2).abs() < 1e-12);
        assert_eq!(
            (s.min, s.avg, s.max),
            (Some(us(1000)), Some(us(3000)), Some(us(6000)))
        );
        let l = s.line();
        assert_eq!(l.rtt_stddev_ms, Some(1.871));
        assert_eq!(
            (l.rtt_min_ms, l.rtt_avg_ms, l.rtt_max_ms),
            (Some(1.0), Some(3.0), Some(6.0))
        );
        // Nothing back: loss 1, no times.
        let none = EchoStats::of(3, &[]);
        assert_eq!((none.received, none.loss, none.avg), (0, 1.0, None));
        // One reply: no spread.
        assert_eq!(EchoStats::of(1, &[us(500)]).stddev, Some(Duration::ZERO));
    }

    #[test]
    fn the_round_changes_every_interval_and_is_the_same_on_every_node() {
        let i = Duration::from_secs(10);
        let r = |s: u64, ms: u64| {
            EchoIds::round_of(Duration::from_secs(s) + Duration::from_millis(ms), i)
        };
        assert_eq!(r(1_000, 0), r(1_009, 999), "one round");
        assert_eq!(r(1_010, 0), r(1_000, 0).wrapping_add(1), "the next");
        // It wraps rather than overflows.
        assert_eq!(r(655_360 * 10, 0), r(0, 0));
    }

    #[test]
    fn replies_fall_in_the_first_bucket_that_holds_them_and_totals_add_up() {
        // 1 ms is on a bound (le="0.001"); 2, 3 and 6 ms fall in le 0.002, 0.005 and 0.01.
        let s = EchoStats::of(5, &[us(1000), us(2000), us(3000), us(6000)]);
        let mut want = RttCounts::default();
        for i in [3, 4, 5, 6] {
            want[i] = 1;
        }
        assert_eq!(s.buckets, want);
        // Slower than the last bound: the unbounded bucket.
        assert_eq!(EchoStats::of(1, &[Duration::from_secs(11)]).buckets[16], 1);
        let mut t = EchoTotals::default();
        t.add(&s);
        t.add(&EchoStats::of(3, &[]));
        assert_eq!((t.sent, t.received), (8, 4));
        assert!((t.rtt_sum - 0.012).abs() < 1e-9, "{}", t.rtt_sum);
        assert_eq!(t.buckets.iter().sum::<u64>(), 4);
    }

    #[test]
    fn the_verdict_fails_on_total_loss_then_max_loss_then_max_rtt() {
        let e = Echoes::default();
        assert_eq!(e.verdict(&EchoStats::of(3, &[])), Verdict::AllLost);
        // Default: one reply of three is up, at its time.
        let one = EchoStats::of(3, &[us(800)]);
        assert_eq!(e.verdict(&one), Verdict::Up { rtt: us(800) });
        // max_loss 0.2: a 50 % loss fails with reason loss; exactly 0.2 does not.
        let strict = Echoes {
            max_loss: Some(0.2),
            ..e
        };
        let half = EchoStats::of(4, &[us(100), us(100)]);
        assert_eq!(strict.verdict(&half), Verdict::Loss);
        let fifth = EchoStats::of(5, &[us(100); 4]);
        assert_eq!(strict.verdict(&fifth), Verdict::Up { rtt: us(100) });
        // max_rtt: an average above it fails with reason slow.
        let fast = Echoes {
            max_rtt: Some(us(500)),
            ..e
        };
        assert_eq!(
            fast.verdict(&EchoStats::of(2, &[us(400), us(800)])),
            Verdict::Slow
        );
        assert_eq!(e.span(Duration::from_secs(1)), Duration::from_millis(1200));
    }

    proptest! {
        /// On any replies: min ≤ avg ≤ max, the standard deviation no more than the range,
        /// loss in [0, 1], and every reply counted.
        #[test]
        fn statistics_are_ordered(rtts in proptest::collection::vec(1u64..10_000_000, 0..50), lost in 0u16..50) {
            let rtts: Vec<Duration> = rtts.into_iter().map(Duration::from_nanos).collect();
            let sent = rtts.len() as u16 + lost;
            let s = EchoStats::of(sent, &rtts);
            prop_assert_eq!(s.received as usize, rtts.len());
            prop_assert_eq!(s.buckets.iter().map(|n| usize::from(*n)).sum::<usize>(), rtts.len());
            prop_assert!((0.0..=1.0).contains(&s.loss));
            if let (Some(min), Some(avg), Some(max), Some(sd)) = (s.min, s.avg, s.max, s.stddev) {
                // The mean goes through f64 seconds: allow a nanosecond either way.
                prop_assert!(min <= avg + Duration::from_nanos(1) && avg <= max + Duration::from_nanos(1));
                prop_assert!(sd <= max - min + Duration::from_nanos(1));
            } else {
                prop_assert!(rtts.is_empty());
            }
        }
    }
}
