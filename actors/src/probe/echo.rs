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
        }
    }

    /// The fields a result line carries, in milliseconds to the microsecond.
    pub fn line(&self) -> EchoLine {
        let ms = |d: Option<Duration>| d.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3);
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
