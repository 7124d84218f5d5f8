//! When to rebuild the ring after changes. Pure: changes and time in, a due time out.
//!
//! - **Debounce.** A rebuild waits until no change has come for the current quiet time, so a
//!   burst (five members killed at once, a member and its target set) is one rebuild.
//! - **Damping.** A change that comes soon after a rebuild (within four quiet times) doubles
//!   the quiet time, up to `max_quiet`; a calm of four quiet times brings it back to `base`. A
//!   membership that keeps changing — a cluster started all at once, nodes flapping under load —
//!   is rebuilt ever less often instead of after every change, while a single change (a death)
//!   is rebuilt after `base`, as before.
//! - **The first ring** waits for `first_quiet` without a change (a joining node: until the
//!   membership it sees stops growing), so a node does not claim targets it will hand over a
//!   moment later.
//! - **Bounded.** However changes keep coming, a rebuild is never later than `max_wait` after
//!   the first change it covers.
//! - **A loss is not damped.** A member that left the ring (died or left) is rebuilt for
//!   `base` after the first such loss, however the quiet time has grown and whatever comes
//!   after: its targets have no prober until then. (A member crash-looping every 100 ms kept
//!   the damped rebuild from ever seeing it gone.)

use std::time::{Duration, Instant};

/// When the ring is rebuilt.
#[derive(Clone, Debug)]
pub struct Damper {
    base: Duration,
    max_quiet: Duration,
    max_wait: Duration,
    quiet: Duration,
    /// The first change not yet rebuilt for, and the last one.
    pending: Option<(Instant, Instant)>,
    /// The first loss of a member not yet rebuilt for.
    loss: Option<Instant>,
    last_rebuild: Option<Instant>,
}

impl Damper {
    /// A damper whose first ring waits for `first_quiet` without a change, then debounces
    /// with `base`, doubling up to `max_quiet`; no rebuild waits longer than `max_wait`.
    pub fn new(
        first_quiet: Duration,
        base: Duration,
        max_quiet: Duration,
        max_wait: Duration,
    ) -> Self {
        Damper {
            base,
            max_quiet: max_quiet.max(base),
            max_wait,
            quiet: first_quiet,
            pending: None,
            loss: None,
            last_rebuild: None,
        }
    }

    /// A change came at `now`. Returns when the rebuild is due (look again then: later
    /// changes may push it back).
    pub fn changed(&mut self, now: Instant) -> Instant {
        match &mut self.pending {
            Some((_, last)) => *last = now,
            None => {
                if let Some(at) = self.last_rebuild {
                    let since = now.saturating_duration_since(at);
                    self.quiet = if since < self.quiet * 4 {
                        (self.quiet * 2).min(self.max_quiet)
                    } else {
                        self.base
                    };
                }
                self.pending = Some((now, now));
            }
        }
        self.due().unwrap_or(now)
    }

    /// A change at `now` that took a member out of the ring (it died or left). Returns when the
    /// rebuild is due: at most `base` after the first loss not yet rebuilt for (once a first
    /// ring was built).
    pub fn lost(&mut self, now: Instant) -> Instant {
        if self.last_rebuild.is_some() {
            self.loss.get_or_insert(now);
        }
        self.changed(now)
    }

    /// When the pending rebuild is due, if one is pending.
    pub fn due(&self) -> Option<Instant> {
        let damped = self
            .pending
            .map(|(first, last)| (last + self.quiet).min(first + self.max_wait))?;
        Some(self.loss.map_or(damped, |l| damped.min(l + self.base)))
    }

    /// Whether to rebuild at `now`.
    pub fn ready(&self, now: Instant) -> bool {
        self.due().is_some_and(|d| now >= d)
    }

    /// `max_wait` after the first change not yet rebuilt for: no rebuild waits longer, for
    /// anything.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.map(|(first, _)| first + self.max_wait)
    }

    /// The ring was rebuilt at `now`.
    pub fn rebuilt(&mut self, now: Instant) {
        self.pending = None;
        self.loss = None;
        if self.last_rebuild.is_none() {
            self.quiet = self.base;
        }
        self.last_rebuild = Some(now);
    }

    /// The current quiet time.
    pub fn quiet(&self) -> Duration {
        self.quiet
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    fn damper() -> Damper {
        Damper::new(1000 * MS, 100 * MS, 2000 * MS, 5000 * MS)
    }

    #[test]
    fn the_first_ring_waits_for_the_membership_to_stop_growing() {
        let t0 = Instant::now();
        let mut d = damper();
        d.changed(t0);
        // Members keep joining every 300 ms for 2 s: no ring until 1 s after the last.
        for i in 1..=6 {
            let at = t0 + 300 * MS * i;
            assert!(!d.ready(at));
            d.changed(at);
        }
        assert_eq!(d.due(), Some(t0 + 1800 * MS + 1000 * MS));
        d.rebuilt(t0 + 2800 * MS);
        assert_eq!(d.quiet(), 100 * MS);
    }

    #[test]
    fn a_burst_is_one_rebuild_after_base_and_a_storm_is_damped_then_calms() {
        let t0 = Instant::now();
        let mut d = damper();
        d.changed(t0);
        d.rebuilt(t0 + 1000 * MS);
        // Five deaths at once, long after: one rebuild, 100 ms after the last.
        let t1 = t0 + 10_000 * MS;
        for i in 0..5 {
            d.changed(t1 + MS * i);
        }
        assert_eq!(d.due(), Some(t1 + 4 * MS + 100 * MS));
        d.rebuilt(t1 + 104 * MS);
        // Changes right after each rebuild: the quiet time doubles, up to 2 s.
        let mut at = t1 + 104 * MS;
        for want in [200, 400, 800, 1600, 2000, 2000] {
            at += 50 * MS;
            d.changed(at);
            assert_eq!(d.quiet(), want * MS);
            at = d.due().unwrap();
            d.rebuilt(at);
        }
        // A calm of four quiet times: back to base.
        d.changed(at + 8001 * MS);
        assert_eq!(d.quiet(), 100 * MS);
    }

    #[test]
    fn a_loss_is_rebuilt_after_base_however_damped_and_whatever_follows() {
        let t0 = Instant::now();
        let mut d = damper();
        d.changed(t0);
        d.rebuilt(t0 + 1000 * MS);
        // A storm has grown the quiet time to 2 s.
        let mut at = t0 + 1000 * MS;
        for _ in 0..5 {
            at += 50 * MS;
            d.changed(at);
            at = d.due().unwrap();
            d.rebuilt(at);
        }
        assert_eq!(d.quiet(), 2000 * MS);
        // A member dies, and rejoins 80 ms later (a crash loop): the rebuild is still due
        // 100 ms after the death, not 2 s after the rejoin.
        let death = at + 10 * MS;
        assert_eq!(d.lost(death), death + 100 * MS);
        assert_eq!(d.changed(death + 80 * MS), death + 100 * MS);
        d.rebuilt(death + 100 * MS);
        // The rejoin's own rebuild is damped as before.
        let next = death + 150 * MS;
        assert_eq!(d.changed(next), next + 2000 * MS);
    }

    proptest! {
        /// Whatever the changes: a rebuild is never due later than max_wait after the first
        /// change it covers, nor before the quiet time after the last; the quiet time stays
        /// within [base, max_quiet] once the first ring is built.
        #[test]
        fn rebuilds_are_bounded(gaps in proptest::collection::vec(0u32..3000, 1..60)) {
            let t0 = Instant::now();
            let mut d = damper();
            let (mut at, mut first) = (t0, None::<Instant>);
            let mut built = false;
            for g in gaps {
                at += MS * g;
                if d.ready(at) {
                    let due = d.due().unwrap();
                    prop_assert!(due <= first.unwrap() + 5000 * MS);
                    d.rebuilt(due);
                    first = None;
                    built = true;
                }
                first.get_or_insert(at);
                let due = d.changed(at);
                prop_assert!(due <= first.unwrap() + 5000 * MS);
                prop_assert!(due >= at.min(first.unwrap() + 5000 * MS));
                if built {
                    prop_assert!(d.quiet() >= 100 * MS && d.quiet() <= 2000 * MS);
                }
            }
        }
    }
}
