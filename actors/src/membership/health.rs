//! This node's own health: is it keeping its schedule? Pure: time is an argument.
//!
//! A gray failure — a node starved of CPU, swapped out, stopped and continued — makes the
//! node's own timers fire late. Such a node must neither accuse healthy peers (its view of
//! their silence is wrong, because it is the one not running) nor sit on targets it cannot
//! probe on time. Two rules, after Lifeguard (arXiv 1707.00788) and memberlist's "awareness":
//!
//! - **Local health score.** A heartbeat tick that comes more than twice late adds a point per
//!   tick it missed (and refuting a report of this node's own death adds one); [`HEALTHY_TICKS`]
//!   ticks on time in a row take one off; the score stays within `0..=`[`SCORE_MAX`]. (The
//!   ticks a timer fires at once to catch up after a stall count neither way.) Every timeout of the
//!   failure detector (suspicion, death, a lost link's confirmation) is multiplied by
//!   `1 + score`: a node that has been running late waits up to nine times longer before it
//!   accuses anyone. A healthy node's score is 0 and its timeouts are as configured.
//! - **No accusations while behind.** While the score is [`BEHIND_SCORE`] or more, this node
//!   still suspects silent members but declares none dead for silence, for a lost link's
//!   silence, or on a watcher's report: its judgment of time is what is broken. Only hard
//!   evidence — a redial refused because nothing listens — is death. (A member that really
//!   died is out of the healthy members' rings on time; this node follows when it recovers.)
//! - **Self hand-off.** A node that has run late (a score above 0) for [`BEHIND_FOR`] and
//!   whose score is now [`BEHIND_SCORE`] or more cannot keep its probe schedule: it announces a ring weight of 0, so its
//!   targets move to the members that keep theirs; it takes them back (its configured weight)
//!   once its score has stayed 0 for [`KEEPING_UP_FOR`] — doubled for every relapse soon
//!   after a take-back, up to [`KEEPING_UP_MAX`]. It hands off only while every other
//!   member announces a score of 0 and none hands off itself (each heartbeat carries the
//!   sender's score and weight): when more than one node is behind — a cluster started at
//!   once, or growing by a node a second, on one loaded machine — the trouble is shared, and
//!   handing off would only move the load around and rebuild the ring twice per node. The
//!   ring leaves members of weight 0 out, unless every member has weight 0 (see `Ring::new`).
//!   Nor does a node hand off in its first [`STARTUP_GRACE`]: starting (its first ring's
//!   actors, the other members' target sets) is work it does once, not a schedule it cannot
//!   keep, and a cluster started at once would otherwise rebuild its ring for every node that
//!   handed off and took back in its first minute.
//!
//! Why timer lateness and not probe overruns: overruns also come from a configuration that
//! asks more of every node than it has (`probe.max_in_flight`, the interval), and handing
//! targets off then only moves the overload to the next node. A late timer is this node's
//! own trouble, and it delays its probes' starts by the same amount (they share the runtime).

use std::time::{Duration, Instant};

/// The highest local health score (Lifeguard's maximum multiplier is 8 too).
pub const SCORE_MAX: u32 = 8;
/// On-time ticks in a row that take one point off the score.
pub const HEALTHY_TICKS: u32 = 4;
/// A score this high, after [`BEHIND_FOR`] of running late, makes this node hand its targets
/// off.
pub const BEHIND_SCORE: u32 = 4;
/// How long the score must have been above 0 (this node late) before the hand-off. Counted
/// from the first late tick, not from when the score reached [`BEHIND_SCORE`]: a node starved
/// of CPU climbs slowly, its probes are late from the start, and the healthy members may
/// meanwhile have declared it dead and taken its targets, only to give them back when it is
/// heard again.
pub const BEHIND_FOR: Duration = Duration::from_secs(5);
/// How long the score must stay 0 before a node that handed its targets off takes them back.
pub const KEEPING_UP_FOR: Duration = Duration::from_secs(15);
/// No hand-off within this of the first tick.
pub const STARTUP_GRACE: Duration = Duration::from_secs(30);
/// A node that falls behind again within four holds of taking its targets back waits twice as
/// long before the next take-back, up to this (flap damping: a node starved of CPU keeps up
/// easily while it probes nothing, so the first take-backs may come too soon). A relapse in
/// that time is also handed off at once, without waiting [`BEHIND_FOR`].
pub const KEEPING_UP_MAX: Duration = Duration::from_secs(240);

/// A change of this node's own schedule keeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// It cannot keep its schedule: it hands its targets off (weight 0). The score.
    Behind(u32),
    /// It keeps its schedule again: it takes its targets back (its configured weight).
    KeepingUp,
}

/// This node's local health and hand-off state.
#[derive(Clone, Debug, Default)]
pub struct LocalHealth {
    score: u32,
    on_time: u32,
    /// Since when the score has been above 0: when this node started running late.
    late_since: Option<Instant>,
    /// While handing off: since when the score has been 0.
    keeping_up_since: Option<Instant>,
    handing_off: bool,
    /// The first tick.
    started: Option<Instant>,
    /// The current wait before a take-back ([`KEEPING_UP_FOR`] doubled per relapse), and when
    /// the last take-back was.
    hold: Option<Duration>,
    taken_back: Option<Instant>,
}

impl LocalHealth {
    /// The score, `0..=SCORE_MAX`.
    pub fn score(&self) -> u32 {
        self.score
    }

    /// Multiplies a failure-detector timeout by `1 + score`.
    pub fn patience(&self, timeout: Duration) -> Duration {
        timeout.saturating_mul(1 + self.score)
    }

    /// True while this node hands its targets off (announces weight 0).
    pub fn handing_off(&self) -> bool {
        self.handing_off
    }

    /// False while the score is [`BEHIND_SCORE`] or more: this node declares nobody dead for
    /// silence.
    pub fn accuses(&self) -> bool {
        self.score < BEHIND_SCORE
    }

    /// This node refuted a report of its own death: its heartbeats went out late.
    pub fn refuted(&mut self) {
        self.score = (self.score + 1).min(SCORE_MAX);
        self.on_time = 0;
    }

    /// A heartbeat tick at `now` that came `missed` ticks late (0: on time);
    /// `peers_keep_up` when every other member announces a score of 0 and a weight (a
    /// hand-off waits for it). Returns the change of pace to act on, if any.
    pub fn tick(&mut self, missed: u32, peers_keep_up: bool, now: Instant) -> Option<Pace> {
        let started = *self.started.get_or_insert(now);
        let peers_keep_up =
            peers_keep_up && now.saturating_duration_since(started) >= STARTUP_GRACE;
        if missed > 0 {
            self.score = self.score.saturating_add(missed).min(SCORE_MAX);
            self.on_time = 0;
        } else {
            self.on_time += 1;
            if self.on_time >= HEALTHY_TICKS {
                self.on_time = 0;
                self.score = self.score.saturating_sub(1);
            }
        }
        if self.score == 0 {
            self.late_since = None;
        } else {
            self.late_since.get_or_insert(now);
        }
        // Handing off: how long the score has been 0. Not yet: how long this node has been
        // late (not how long its score has been high: a node starved of CPU may climb to
        // BEHIND_SCORE slowly, and its targets go unprobed from the start).
        let since = if self.handing_off {
            if self.score > 0 {
                self.keeping_up_since = None;
                return None;
            }
            *self.keeping_up_since.get_or_insert(now)
        } else {
            if self.score < BEHIND_SCORE {
                return None;
            }
            self.late_since.unwrap_or(now)
        };
        let hold = self.hold.unwrap_or(KEEPING_UP_FOR);
        let on_probation = self
            .taken_back
            .is_some_and(|t| now.saturating_duration_since(t) < hold.saturating_mul(4));
        let wait = match (self.handing_off, on_probation) {
            (true, _) => hold,
            (false, true) => Duration::ZERO,
            (false, false) => BEHIND_FOR,
        };
        if now.saturating_duration_since(since) < wait || !(self.handing_off || peers_keep_up) {
            return None;
        }
        self.keeping_up_since = None;
        self.handing_off = !self.handing_off;
        if self.handing_off {
            self.hold = Some(if on_probation {
                hold.saturating_mul(2).min(KEEPING_UP_MAX)
            } else {
                KEEPING_UP_FOR
            });
            Some(Pace::Behind(self.score))
        } else {
            self.taken_back = Some(now);
            Some(Pace::KeepingUp)
        }
    }

    /// How long this node, handing off, waits at a score of 0 before it takes its targets back.
    pub fn hold(&self) -> Duration {
        self.hold.unwrap_or(KEEPING_UP_FOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TICK: Duration = Duration::from_millis(250);

    /// A node past its start-up grace, and the time.
    fn started() -> (LocalHealth, Instant) {
        let (mut h, now) = (LocalHealth::default(), Instant::now());
        h.tick(0, true, now);
        (h, now + STARTUP_GRACE)
    }

    /// Ticks every `TICK` from `*now`, one missed tick before each when `late`, `n` times;
    /// the changes of pace.
    fn run(h: &mut LocalHealth, now: &mut Instant, late: bool, n: u32) -> Vec<Pace> {
        (0..n)
            .filter_map(|_| {
                *now += TICK;
                h.tick(u32::from(late), true, *now)
            })
            .collect()
    }

    #[test]
    fn a_healthy_node_keeps_its_timeouts_and_its_targets() {
        let (mut h, mut now) = started();
        assert_eq!(run(&mut h, &mut now, false, 1_000), vec![]);
        assert_eq!(h.score(), 0);
        assert_eq!(h.patience(Duration::from_secs(2)), Duration::from_secs(2));
        assert!(!h.handing_off());
    }

    #[test]
    fn late_ticks_widen_the_timeouts_up_to_nine_times_and_on_time_ticks_narrow_them() {
        let (mut h, mut now) = started();
        run(&mut h, &mut now, true, 3);
        assert_eq!(h.patience(Duration::from_secs(1)), Duration::from_secs(4));
        let mut other = LocalHealth::default();
        other.tick(3, true, now);
        assert_eq!(other.score(), 3, "a point per missed tick");
        assert!(h.accuses());
        run(&mut h, &mut now, true, 1);
        assert!(!h.accuses(), "behind: no accusations");
        run(&mut h, &mut now, true, 100);
        assert_eq!(h.score(), SCORE_MAX);
        assert_eq!(h.patience(Duration::from_secs(1)), Duration::from_secs(9));
        run(&mut h, &mut now, false, HEALTHY_TICKS * 3);
        assert_eq!(h.score(), SCORE_MAX - 3);
        h.refuted();
        assert_eq!(h.score(), SCORE_MAX - 2);
    }

    #[test]
    fn a_node_behind_for_long_hands_off_and_takes_back_once_it_keeps_up() {
        let (mut h, mut now) = started();
        // A short stall is only patience.
        assert_eq!(run(&mut h, &mut now, true, 6), vec![]);
        assert!(!h.handing_off());
        // Behind for BEHIND_FOR more: hand-off, once.
        let ticks = (BEHIND_FOR.as_millis() / TICK.as_millis()) as u32 + 1;
        assert_eq!(
            run(&mut h, &mut now, true, ticks),
            vec![Pace::Behind(SCORE_MAX)]
        );
        assert!(h.handing_off());
        assert_eq!(run(&mut h, &mut now, true, 100), vec![]);
        // On time: the score drains (HEALTHY_TICKS per point), then KEEPING_UP_FOR at 0.
        let drain = HEALTHY_TICKS * SCORE_MAX;
        let hold = (KEEPING_UP_FOR.as_millis() / TICK.as_millis()) as u32;
        assert_eq!(run(&mut h, &mut now, false, drain + hold - 1), vec![]);
        assert_eq!(run(&mut h, &mut now, false, 2), vec![Pace::KeepingUp]);
        assert!(!h.handing_off());
    }

    #[test]
    fn a_node_that_climbs_slowly_hands_off_behind_for_after_it_started_running_late() {
        // Starved of CPU: one tick in three comes a tick late, so the score climbs by about a
        // point a second (seen in tests/faults.rs: 4 s from the first late tick to a score of
        // 4). The hand-off comes BEHIND_FOR after the first late tick, not after the score
        // reached BEHIND_SCORE.
        let (mut h, mut now) = started();
        let first_late = now + TICK;
        let mut behind_at = None;
        let mut high_at = None;
        for i in 0..200u32 {
            now += TICK;
            let missed = u32::from(i % 3 == 0);
            if let Some(Pace::Behind(_)) = h.tick(missed, true, now) {
                behind_at = Some(now);
                break;
            }
            if h.score() >= BEHIND_SCORE && high_at.is_none() {
                high_at = Some(now);
            }
        }
        let (behind_at, high_at) = (
            behind_at.expect("a hand-off"),
            high_at.expect("a score of 4"),
        );
        assert!(
            high_at - first_late >= Duration::from_secs(1),
            "climbs slowly"
        );
        assert_eq!(behind_at - first_late, BEHIND_FOR);
        // Lateness that ends (the score back to 0) starts the count over.
        let (mut h, mut now) = started();
        run(&mut h, &mut now, true, 4);
        run(&mut h, &mut now, false, HEALTHY_TICKS * 4);
        assert_eq!(h.score(), 0);
        let ticks = (BEHIND_FOR.as_millis() / TICK.as_millis()) as u32;
        assert_eq!(run(&mut h, &mut now, true, ticks), vec![]);
        assert_eq!(
            run(&mut h, &mut now, true, 1),
            vec![Pace::Behind(SCORE_MAX)]
        );
    }

    #[test]
    fn a_relapse_soon_after_a_take_back_is_handed_off_at_once_and_held_twice_as_long() {
        let (mut h, mut now) = started();
        let back_after = |h: &LocalHealth| {
            HEALTHY_TICKS * SCORE_MAX + (h.hold().as_millis() / TICK.as_millis()) as u32 + 1
        };
        let behind = (BEHIND_FOR.as_millis() / TICK.as_millis()) as u32 + 8;
        let mut holds = Vec::new();
        for _ in 0..6 {
            let paces = run(&mut h, &mut now, true, behind);
            assert!(matches!(paces[..], [Pace::Behind(_)]), "{paces:?}");
            holds.push(h.hold().as_secs());
            let n = back_after(&h);
            assert_eq!(run(&mut h, &mut now, false, n), vec![Pace::KeepingUp]);
        }
        assert_eq!(holds, vec![15, 30, 60, 120, 240, 240]);
        // On probation, four late ticks are a hand-off at once.
        assert_eq!(
            run(&mut h, &mut now, true, 4),
            vec![Pace::Behind(BEHIND_SCORE)]
        );
        // Keeping up for four holds after a take-back: the next relapse starts over.
        let n = back_after(&h);
        run(&mut h, &mut now, false, n);
        let quiet = (h.hold().as_millis() * 4 / TICK.as_millis()) as u32;
        run(&mut h, &mut now, false, quiet);
        run(&mut h, &mut now, true, behind);
        assert_eq!(h.hold(), KEEPING_UP_FOR);
    }

    #[test]
    fn a_node_does_not_hand_off_while_it_starts() {
        let (mut h, mut now) = (LocalHealth::default(), Instant::now());
        let grace = (STARTUP_GRACE.as_millis() / TICK.as_millis()) as u32;
        assert_eq!(run(&mut h, &mut now, true, grace), vec![]);
        assert_eq!(
            run(&mut h, &mut now, true, 1),
            vec![Pace::Behind(SCORE_MAX)]
        );
    }

    #[test]
    fn a_node_does_not_hand_off_while_the_others_are_behind_too() {
        let (mut h, mut now) = started();
        for _ in 0..100 {
            now += TICK;
            assert_eq!(h.tick(1, false, now), None);
        }
        // The others catch up first: it hands off at once (it was behind long enough).
        now += TICK;
        assert_eq!(h.tick(1, true, now), Some(Pace::Behind(SCORE_MAX)));
    }

    #[test]
    fn a_stutter_that_lets_a_node_run_a_quarter_of_the_time_hands_it_off() {
        // Stopped 1.5 s, running 0.5 s: one late tick and two on time per cycle.
        let (mut h, mut now) = started();
        let mut paces = Vec::new();
        for _ in 0..20 {
            now += Duration::from_millis(1_500);
            paces.extend(h.tick(5, true, now));
            paces.extend(run(&mut h, &mut now, false, 2));
        }
        assert_eq!(paces.len(), 1, "{paces:?}");
        assert!(matches!(paces[0], Pace::Behind(_)));
    }

    proptest! {
        /// Whatever the ticks: the score stays in range, the patience is 1..=9 times, and the
        /// changes alternate Behind, KeepingUp, Behind… with the hand-off state following them.
        #[test]
        fn changes_alternate_and_the_score_stays_in_range(
            ticks in proptest::collection::vec((0u32..20, any::<bool>(), 1u64..3_000), 1..500),
        ) {
            let (mut h, mut now) = started();
            let mut handing_off = false;
            for (missed, peers, ms) in ticks {
                now += Duration::from_millis(ms);
                match h.tick(missed, peers, now) {
                    Some(Pace::Behind(_)) => {
                        prop_assert!(!handing_off && peers && !h.accuses());
                        handing_off = true;
                    }
                    Some(Pace::KeepingUp) => { prop_assert!(handing_off); handing_off = false; }
                    None => {}
                }
                prop_assert_eq!(h.handing_off(), handing_off);
                prop_assert!(h.score() <= SCORE_MAX);
                let p = h.patience(Duration::from_secs(1));
                prop_assert!(p >= Duration::from_secs(1) && p <= Duration::from_secs(9));
            }
        }
    }
}
