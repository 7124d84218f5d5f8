//! When each target is probed: once per interval, at a fixed phase within it.
//!
//! The phase of a target is `XXH3-64(key) mod interval` (XXH3 64-bit, seed 0, over the UTF-8 of
//! the target key `probe/id`, interval in nanoseconds), measured from the Unix epoch. So:
//! - targets are spread evenly over the interval (no burst at start);
//! - a target keeps its phase across restarts of the node, and across nodes: when a target
//!   moves to another node it is probed at the same moment of the interval as before.
//!
//! Pure: wall-clock and monotonic time are arguments.

use std::time::{Duration, Instant};

use crate::model::{target_hash, TargetKey};

/// The schedule of one target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeSchedule {
    interval: Duration,
    phase: Duration,
}

/// See [`ProbeSchedule::first_slot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstSlot {
    /// Time to the next slot.
    pub delay: Duration,
    /// The previous slot (an interval before the next) was missed: probe now.
    pub catch_up: bool,
}

impl ProbeSchedule {
    /// The schedule of `key` probed every `interval` (must be non-zero).
    pub fn new(key: &TargetKey, interval: Duration) -> Self {
        let nanos = interval.as_nanos().max(1);
        let phase = (u128::from(target_hash(key)) % nanos) as u64;
        ProbeSchedule {
            interval,
            phase: Duration::from_nanos(phase),
        }
    }

    /// Offset of this target's slots within each interval.
    pub fn phase(&self) -> Duration {
        self.phase
    }

    /// The interval between slots.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Delay from `since_epoch` (wall-clock time since the Unix epoch) to the next slot,
    /// zero when a slot is exactly now.
    pub fn until_first(&self, since_epoch: Duration) -> Duration {
        let i = self.interval.as_nanos().max(1);
        let pos = since_epoch.as_nanos() % i;
        let ph = self.phase.as_nanos();
        let wait = if ph >= pos { ph - pos } else { i - pos + ph };
        Duration::from_nanos(wait as u64)
    }

    /// The first slot of a target this node starts probing at `since_epoch`: the delay to its
    /// next slot, and whether its previous slot must be made up for now. That is the case when
    /// the target's previous owner died (was last heard at `missed_since`, wall-clock time since
    /// the epoch) before that slot: nobody probed it, and waiting for the next slot would leave
    /// a gap of two intervals. Slots before `missed_since` were the dead owner's to probe.
    pub fn first_slot(&self, since_epoch: Duration, missed_since: Option<Duration>) -> FirstSlot {
        let delay = self.until_first(since_epoch);
        let previous = (since_epoch + delay).checked_sub(self.interval);
        let catch_up = match (missed_since, previous) {
            (Some(heard), Some(prev)) => !delay.is_zero() && prev > heard,
            _ => false,
        };
        FirstSlot { delay, catch_up }
    }

    /// The next slot after the slot `due`, given that the probe of `due` finished at `now`.
    /// Returns the slot and how many slots were skipped because `now` is already past them
    /// (a round overrun, non-zero only when probes wait longer than an interval).
    pub fn next_after(&self, due: Instant, now: Instant) -> (Instant, u64) {
        let next = due + self.interval;
        if next > now {
            return (next, 0);
        }
        let behind = now.duration_since(next).as_nanos();
        let skipped = (behind / self.interval.as_nanos().max(1)) as u64 + 1;
        (next + self.interval * skipped as u32, skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProbeKind;
    use proptest::prelude::*;

    fn key(id: &str) -> TargetKey {
        TargetKey {
            probe: ProbeKind::Icmp,
            id: id.into(),
        }
    }

    #[test]
    fn the_hash_is_pinned() {
        // Test vectors: changing these moves every target's phase (and, later, its owner).
        assert_eq!(
            target_hash(&key("127.0.0.1")),
            xxhash_rust::xxh3::xxh3_64(b"icmp/127.0.0.1")
        );
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b""), 0x2d06800538d394c2);
    }

    #[test]
    fn a_slot_missed_since_the_previous_owner_died_is_made_up_for_at_once() {
        let i = Duration::from_secs(10);
        let s = ProbeSchedule::new(&key("127.0.0.9"), i);
        let epoch_start = Duration::from_secs(1_700_000_000);
        let slot = epoch_start + s.until_first(epoch_start); // a slot of this target
        let ms = Duration::from_millis;
        // Started 300 ms after a slot.
        let now = slot + ms(300);
        // The owner was last heard before that slot: nobody probed it.
        let f = s.first_slot(now, Some(slot - ms(1)));
        assert_eq!(
            f,
            FirstSlot {
                delay: i - ms(300),
                catch_up: true
            }
        );
        // Last heard after it: the owner probed it; wait for the next slot.
        assert!(!s.first_slot(now, Some(slot + ms(1))).catch_up);
        // No dead owner (start-up, join, hand-off): never.
        assert!(!s.first_slot(now, None).catch_up);
        // Exactly on a slot: that slot is probed now anyway.
        let on = s.first_slot(slot, Some(slot - i));
        assert_eq!(
            on,
            FirstSlot {
                delay: Duration::ZERO,
                catch_up: false
            }
        );
    }

    proptest! {
        /// Catching up probes at most the one slot after the owner was last heard, and never
        /// one it could have probed.
        #[test]
        fn catch_up_only_covers_slots_after_the_owner_went_silent(
            now_ms in 1_000_000u64..10_000_000,
            silent_ms in 0u64..30_000,
            interval_ms in 100u64..20_000,
        ) {
            let i = Duration::from_millis(interval_ms);
            let s = ProbeSchedule::new(&key("127.0.0.9"), i);
            let now = Duration::from_millis(now_ms);
            let heard = now - Duration::from_millis(silent_ms.min(now_ms));
            let f = s.first_slot(now, Some(heard));
            prop_assert_eq!(f.delay, s.until_first(now));
            let previous = now + f.delay - i;
            prop_assert_eq!(f.catch_up, !f.delay.is_zero() && previous > heard);
            if f.catch_up {
                prop_assert!(previous <= now && previous > heard);
            }
        }
    }

    #[test]
    fn first_slot_lands_on_the_phase() {
        let s = ProbeSchedule::new(&key("127.0.0.9"), Duration::from_secs(10));
        for now_ms in [0u64, 1, 4_999, 10_000, 1_700_000_000_123] {
            let now = Duration::from_millis(now_ms);
            let at = now + s.until_first(now);
            assert_eq!(at.as_nanos() % 10_000_000_000, s.phase().as_nanos());
            assert!(s.until_first(now) < Duration::from_secs(10));
        }
    }

    #[test]
    fn next_slot_follows_the_interval_and_counts_skips() {
        let s = ProbeSchedule::new(&key("a"), Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(
            s.next_after(t0, t0 + Duration::from_secs(1)),
            (t0 + Duration::from_secs(10), 0)
        );
        // Finished 25 s after its slot: slots at +10 and +20 were missed.
        assert_eq!(
            s.next_after(t0, t0 + Duration::from_secs(25)),
            (t0 + Duration::from_secs(30), 2)
        );
        // Exactly on the next slot counts as missed: that slot's probe cannot start in the past.
        assert_eq!(
            s.next_after(t0, t0 + Duration::from_secs(10)),
            (t0 + Duration::from_secs(20), 1)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn phases_spread_evenly(n in 2_000usize..4_000) {
            // Ten buckets of a 10 s interval: none gets more than twice its share.
            let mut buckets = [0usize; 10];
            for i in 0..n {
                let s = ProbeSchedule::new(&key(&format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)), Duration::from_secs(10));
                buckets[(s.phase().as_secs() as usize).min(9)] += 1;
            }
            for b in buckets {
                prop_assert!(b < 2 * n / 10, "{buckets:?}");
            }
        }

        #[test]
        fn next_is_always_in_the_future(due_ms in 0u64..100_000, late_ms in 0u64..100_000, iv in 1u64..20_000) {
            let s = ProbeSchedule::new(&key("x"), Duration::from_millis(iv));
            let t0 = Instant::now();
            let due = t0 + Duration::from_millis(due_ms);
            let now = due + Duration::from_millis(late_ms);
            let (next, skipped) = s.next_after(due, now);
            prop_assert!(next > now);
            prop_assert!(next - now <= Duration::from_millis(iv));
            prop_assert_eq!(next, due + Duration::from_millis(iv) * (skipped as u32 + 1));
        }
    }
}
