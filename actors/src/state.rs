//! What the node knows, for its status API and metrics: the latest result per target, confirmed
//! states, the targets it runs, and counters. Plain data behind locks, no actors; read through
//! [`NodeView`](crate::view::NodeView).
//!
//! Each entry has one kind of writer, which holds the `Arc` explicitly in its arguments:
//! - the sink: latest results, state-change counts, results dropped and buffered;
//! - the probe actors: confirmed states, overruns, results that found no sink;
//! - the probe supervisor: the targets running, states handed over, probe restarts;
//! - the root: infrastructure restarts.
//!
//! Every per-target record is of a target this node runs (owned or kept): records of targets
//! it no longer runs are dropped in one place, [`NodeState::set_running`], and writes for a
//! target not running (the last result of a retired probe actor) are not kept. The one
//! exception is a state another node handed over for a target this node does not run yet,
//! kept for [`INHERITED_TTL`] so the probe actor started for it begins from it. So memory
//! follows what the node runs, however often its targets change.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::confirm::views::Verdict;
use crate::model::{ProbeResult, StateEvent, TargetKey, TargetSpec};
use crate::probe::echo::EchoTotals;
use crate::probe::health::TargetState;

/// The node's observable state.
#[derive(Debug, Default)]
pub struct NodeState {
    latest: RwLock<HashMap<TargetKey, ProbeResult>>,
    /// ICMP targets' echoes added up since this node started probing them.
    echoes: Mutex<HashMap<TargetKey, EchoTotals>>,
    confirmed: RwLock<HashMap<TargetKey, TargetState>>,
    /// When this node last wrote a state event of each target.
    changed: RwLock<HashMap<TargetKey, SystemTime>>,
    /// The last [`RECENT`] results of each target this node probes, for the status page.
    recent: Mutex<HashMap<TargetKey, std::collections::VecDeque<Recent>>>,
    /// Targets this node probes, with when it started probing them.
    running: RwLock<HashMap<TargetKey, SystemTime>>,
    results_dropped: AtomicU64,
    /// Records waiting in the sink's buffers (the largest lane), as of its last flush tick.
    results_buffered: AtomicU64,
    changes_up: AtomicU64,
    changes_down: AtomicU64,
    overruns: AtomicU64,
    restarts: Mutex<BTreeMap<&'static str, u64>>,
    /// The last count of unprobed targets and when it was made.
    unprobed: Mutex<Option<(std::time::Instant, usize)>>,
    /// SSH logins and held connections (counted by the SSH engine).
    pub ssh: Arc<crate::probe::ssh::SshCounters>,
    /// Notifications sent, failed and dropped (counted by the notify actor).
    pub notify: Arc<crate::notify::counters::NotifyCounters>,
    /// With several owners per target: the cluster's verdicts on this node's targets.
    verdicts: RwLock<HashMap<TargetKey, Verdict>>,
    /// States handed over for targets not running here yet (in `confirmed`), and when.
    inherited: Mutex<HashMap<TargetKey, SystemTime>>,
}

/// How long a state handed over for a target this node does not run is kept for it.
pub const INHERITED_TTL: Duration = Duration::from_secs(60);

/// Results kept per target for the status page's sparklines (about 350 bytes a target).
pub const RECENT: usize = 20;

/// One recent result, small.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recent {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// Up or not.
    pub ok: bool,
    /// Round trip (ICMP: the echoes' average), if it was up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f32>,
    /// Share of echoes lost (ICMP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f32>,
}

/// How long a count of unprobed targets is reused.
const UNPROBED_TTL: Duration = Duration::from_secs(1);

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keeps the entries `keep` says, and gives memory back once the map is under a quarter full
/// (after a node's share shrank, or targets were replaced by fewer).
fn prune<V>(map: &mut HashMap<TargetKey, V>, mut keep: impl FnMut(&TargetKey, &V) -> bool) {
    map.retain(|k, v| keep(k, v));
    if map.len() * 4 < map.capacity() {
        map.shrink_to_fit();
    }
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl NodeState {
    /// A result was accepted by the sink.
    pub(crate) fn record_result(&self, r: &ProbeResult) {
        let key = r.target.key();
        if !self.runs(&key) {
            return; // a retired probe actor's last result: written, not kept
        }
        let point = Recent {
            ts_ms: r
                .ts
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            ok: r.outcome.is_up(),
            rtt_ms: match r.outcome {
                crate::model::ProbeOutcome::Up { rtt } => Some(rtt.as_secs_f32() * 1000.0),
                crate::model::ProbeOutcome::Down { .. } => None,
            },
            loss: r.echo.as_ref().map(|e| e.loss as f32),
        };
        {
            let mut recent = lock(&self.recent);
            let q = recent.entry(key.clone()).or_default();
            if q.len() == RECENT {
                q.pop_front();
            }
            q.push_back(point);
        }
        if let Some(echo) = &r.echo {
            lock(&self.echoes).entry(key.clone()).or_default().add(echo);
        }
        write(&self.latest).insert(key, r.clone());
    }

    /// A confirmed state change was accepted by the sink.
    pub(crate) fn record_event(&self, e: &StateEvent) {
        let key = e.target.key();
        if self.runs(&key) {
            write(&self.changed).insert(key, e.ts);
        }
        match e.to {
            TargetState::Up => self.changes_up.fetch_add(1, Ordering::Relaxed),
            TargetState::Down => self.changes_down.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// A probe actor's confirmed state (first result, change, or hand-over).
    pub(crate) fn set_confirmed(&self, key: TargetKey, state: TargetState) {
        if self.runs(&key) {
            write(&self.confirmed).insert(key, state);
        }
    }

    fn runs(&self, key: &TargetKey) -> bool {
        read(&self.running).contains_key(key)
    }

    /// The cluster's verdicts on this node's targets (the confirm actor, when targets have
    /// several owners): the confirmed states become the cluster's, and the verdicts are kept
    /// for the status API.
    pub(crate) fn set_verdicts(&self, verdicts: impl Iterator<Item = (TargetKey, Verdict)>) {
        let verdicts: HashMap<TargetKey, Verdict> = {
            let running = read(&self.running);
            verdicts.filter(|(k, _)| running.contains_key(k)).collect()
        };
        {
            let mut confirmed = write(&self.confirmed);
            for (k, v) in &verdicts {
                if let Some(s) = v.state {
                    confirmed.insert(k.clone(), s);
                }
            }
        }
        *write(&self.verdicts) = verdicts;
    }

    /// The targets this node sends the alerts of (every one it probes, or with several owners
    /// those it is the primary of), split into those confirmed down (their specs) and those
    /// confirmed up. Reads the maps in place: no result is copied.
    pub fn senders_view(&self, several_owners: bool) -> (Vec<Arc<TargetSpec>>, HashSet<TargetKey>) {
        let running = read(&self.running);
        let latest = read(&self.latest);
        let confirmed = read(&self.confirmed);
        let verdicts = read(&self.verdicts);
        let (mut down, mut up) = (Vec::new(), HashSet::new());
        for key in running.keys() {
            let state = if several_owners {
                match verdicts.get(key) {
                    Some(v) if v.primary => v.state,
                    _ => continue,
                }
            } else {
                confirmed.get(key).copied()
            };
            match state {
                Some(TargetState::Down) => {
                    if let Some(r) = latest.get(key) {
                        down.push(r.target.clone());
                    }
                }
                Some(TargetState::Up) => {
                    up.insert(key.clone());
                }
                None => {}
            }
        }
        (down, up)
    }

    /// The last results of `key`, oldest first.
    pub fn recent(&self, key: &TargetKey) -> Vec<Recent> {
        lock(&self.recent)
            .get(key)
            .map(|q| q.iter().copied().collect())
            .unwrap_or_default()
    }

    /// When this node last wrote a state event of `key`.
    pub fn changed_at(&self, key: &TargetKey) -> Option<SystemTime> {
        read(&self.changed).get(key).copied()
    }

    /// The cluster's verdict on `key`, when targets have several owners.
    pub fn verdict(&self, key: &TargetKey) -> Option<Verdict> {
        read(&self.verdicts).get(key).cloned()
    }

    /// How many targets are up but seen down from fewer vantages than `confirm` needs.
    pub fn degraded_count(&self) -> usize {
        read(&self.verdicts).values().filter(|v| v.degraded).count()
    }

    /// A state handed over by another node, kept unless this node knows the target already;
    /// for a target not running here, for [`INHERITED_TTL`].
    pub(crate) fn confirm_if_unknown(&self, key: TargetKey, state: TargetState) {
        // (No lock is held while `running` is read: readers take it before `confirmed`.)
        let runs = self.runs(&key);
        let mut inherited = lock(&self.inherited);
        let mut confirmed = write(&self.confirmed);
        if confirmed.contains_key(&key) {
            return;
        }
        if !runs {
            inherited.insert(key.clone(), SystemTime::now());
        }
        confirmed.insert(key, state);
    }

    /// The targets this node's probe actors run (owned and kept). Every record of a target
    /// not among them is dropped here — latest result, confirmed state, last event time,
    /// recent results, echo totals, verdict — but for states handed over less than
    /// [`INHERITED_TTL`] ago. A target probed here again later starts afresh (its counters
    /// reset).
    pub(crate) fn set_running(&self, keys: HashSet<TargetKey>) {
        self.set_running_at(keys, SystemTime::now());
    }

    /// One more target runs here (tests start probe actors one by one).
    #[cfg(test)]
    pub(crate) fn add_running(&self, key: TargetKey) {
        write(&self.running).insert(key, SystemTime::now());
    }

    fn set_running_at(&self, keys: HashSet<TargetKey>, now: SystemTime) {
        {
            let mut running = write(&self.running);
            running.retain(|k, _| keys.contains(k));
            for k in &keys {
                running.entry(k.clone()).or_insert(now);
            }
        }
        let runs = |k: &TargetKey| keys.contains(k);
        let mut inherited = lock(&self.inherited);
        prune(&mut inherited, |k, at| {
            !runs(k) && now.duration_since(*at).unwrap_or_default() < INHERITED_TTL
        });
        prune(&mut write(&self.confirmed), |k, _| {
            runs(k) || inherited.contains_key(k)
        });
        drop(inherited);
        prune(&mut write(&self.latest), |k, _| runs(k));
        prune(&mut write(&self.changed), |k, _| runs(k));
        prune(&mut write(&self.verdicts), |k, _| runs(k));
        prune(&mut lock(&self.echoes), |k, _| runs(k));
        prune(&mut lock(&self.recent), |k, _| runs(k));
    }

    /// Targets this node probes now.
    pub fn running_count(&self) -> usize {
        read(&self.running).len()
    }

    /// Records dropped by the sink.
    pub(crate) fn add_dropped(&self, n: u64) {
        self.results_dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Probe slots missed because probes could not start in time.
    pub(crate) fn add_overruns(&self, n: u64) {
        self.overruns.fetch_add(n, Ordering::Relaxed);
    }

    /// Slots missed so far.
    pub fn overruns(&self) -> u64 {
        self.overruns.load(Ordering::Relaxed)
    }

    /// A restart of an actor of `role`.
    pub(crate) fn add_restart(&self, role: &'static str) {
        *lock(&self.restarts).entry(role).or_default() += 1;
    }

    /// Restarts per role.
    pub fn restarts(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.restarts).clone()
    }

    /// The sink's backlog: records waiting in its fullest lane (set every flush tick).
    pub(crate) fn set_buffered(&self, n: usize) {
        self.results_buffered.store(n as u64, Ordering::Relaxed);
    }

    /// Records waiting in the sink, as of its last flush tick.
    pub fn results_buffered(&self) -> u64 {
        self.results_buffered.load(Ordering::Relaxed)
    }

    /// Records dropped so far.
    pub fn results_dropped(&self) -> u64 {
        self.results_dropped.load(Ordering::Relaxed)
    }

    /// Confirmed changes so far: (to up, to down).
    pub fn state_changes(&self) -> (u64, u64) {
        (
            self.changes_up.load(Ordering::Relaxed),
            self.changes_down.load(Ordering::Relaxed),
        )
    }

    /// The latest result of `key`, from this node.
    pub fn latest(&self, key: &TargetKey) -> Option<ProbeResult> {
        read(&self.latest).get(key).cloned()
    }

    /// The confirmed state of `key`.
    pub fn confirmed(&self, key: &TargetKey) -> Option<TargetState> {
        read(&self.confirmed).get(key).copied()
    }

    /// Latest results of the targets this node probes now, with their confirmed states.
    pub fn running_latest(&self) -> Vec<(ProbeResult, Option<TargetState>)> {
        let running = read(&self.running);
        let latest = read(&self.latest);
        let confirmed = read(&self.confirmed);
        running
            .keys()
            .filter_map(|k| {
                latest
                    .get(k)
                    .map(|r| (r.clone(), confirmed.get(k).copied()))
            })
            .collect()
    }

    /// The echo totals of the ICMP targets this node probes now, with their settings (of their
    /// latest result).
    pub fn running_echoes(&self) -> Vec<(std::sync::Arc<TargetSpec>, EchoTotals)> {
        let running = read(&self.running);
        let latest = read(&self.latest);
        lock(&self.echoes)
            .iter()
            .filter(|(k, _)| running.contains_key(*k))
            .filter_map(|(k, t)| latest.get(k).map(|r| (r.target.clone(), *t)))
            .collect()
    }

    /// The latest result of `key` with its confirmed state, if this node probes it now.
    pub fn running_latest_of(&self, key: &TargetKey) -> Option<(ProbeResult, Option<TargetState>)> {
        let running = read(&self.running);
        if !running.contains_key(key) {
            return None;
        }
        let result = read(&self.latest).get(key).cloned()?;
        Some((result, read(&self.confirmed).get(key).copied()))
    }

    /// (up, down) counts of confirmed states of the targets this node probes.
    pub fn up_down(&self) -> (usize, usize) {
        let running = read(&self.running);
        let confirmed = read(&self.confirmed);
        running
            .keys()
            .fold((0, 0), |(u, d), k| match confirmed.get(k) {
                Some(TargetState::Up) => (u + 1, d),
                Some(TargetState::Down) => (u, d + 1),
                None => (u, d),
            })
    }

    /// Targets this node probes with no result for longer than interval + timeout + 1 s (a
    /// target not probed here yet is not counted). Computed at most once per `UNPROBED_TTL`:
    /// it scans every running target under the read locks the sink needs to write, and every
    /// heartbeat, scrape and status request asks for it.
    pub fn unprobed_now(&self) -> usize {
        let mut cache = lock(&self.unprobed);
        if let Some((at, n)) = *cache {
            if at.elapsed() < UNPROBED_TTL {
                return n;
            }
        }
        let n = self.count_unprobed(SystemTime::now());
        *cache = Some((std::time::Instant::now(), n));
        n
    }

    fn count_unprobed(&self, now: SystemTime) -> usize {
        let running = read(&self.running);
        let latest = read(&self.latest);
        running
            .iter()
            .filter(|(k, since)| match latest.get(*k) {
                Some(r) => {
                    let last = r.ts.max(**since);
                    let limit = r.target.interval + r.target.timeout + Duration::from_secs(1);
                    now.duration_since(last).unwrap_or_default() > limit
                }
                None => false,
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NodeName, ProbeOutcome};
    use crate::testkit::target;

    #[test]
    fn the_alerts_this_node_sends_are_its_own_targets_or_those_it_is_the_primary_of() {
        use crate::confirm::views::Verdict;
        let s = NodeState::default();
        let t = |i: u8| {
            target(
                &format!("127.0.0.{i}"),
                Duration::from_secs(10),
                Duration::from_secs(1),
            )
        };
        let (a, b, c) = (t(1), t(2), t(3));
        s.set_running([a.key(), b.key(), c.key()].into_iter().collect());
        for x in [&a, &b, &c] {
            s.record_result(&ProbeResult {
                ts: SystemTime::now(),
                node: NodeName::new("n1").unwrap(),
                target: x.clone(),
                epoch: 1,
                outcome: ProbeOutcome::Down {
                    reason: crate::model::DownReason::Timeout,
                },
                elapsed: Duration::from_millis(1),
                echo: None,
                ssh: None,
            });
        }
        s.set_confirmed(a.key(), TargetState::Down);
        s.set_confirmed(b.key(), TargetState::Up);
        let (down, up) = s.senders_view(false);
        assert_eq!(down.iter().map(|t| t.key()).collect::<Vec<_>>(), [a.key()]);
        assert_eq!(up, [b.key()].into_iter().collect());
        // With several owners only the targets it is the primary of, by the cluster's verdict.
        let verdict = |state, primary| Verdict {
            state: Some(state),
            degraded: false,
            primary,
            vantages: Vec::new(),
        };
        s.set_verdicts(
            [
                (a.key(), verdict(TargetState::Down, false)),
                (c.key(), verdict(TargetState::Down, true)),
            ]
            .into_iter(),
        );
        let (down, up) = s.senders_view(true);
        assert_eq!(down.iter().map(|t| t.key()).collect::<Vec<_>>(), [c.key()]);
        assert!(up.is_empty());
    }

    #[test]
    fn the_last_results_of_a_target_are_kept_while_it_runs_here() {
        let s = NodeState::default();
        let t = target("127.0.0.1", Duration::from_secs(10), Duration::from_secs(1));
        s.set_running([t.key()].into_iter().collect());
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        for i in 0..(RECENT as u64 + 5) {
            s.record_result(&ProbeResult {
                ts: at + Duration::from_secs(i),
                node: NodeName::new("n1").unwrap(),
                target: t.clone(),
                epoch: 1,
                outcome: if i % 2 == 0 {
                    ProbeOutcome::Up {
                        rtt: Duration::from_millis(i),
                    }
                } else {
                    ProbeOutcome::Down {
                        reason: crate::model::DownReason::Timeout,
                    }
                },
                elapsed: Duration::from_millis(1),
                echo: None,
                ssh: None,
            });
        }
        let r = s.recent(&t.key());
        assert_eq!(r.len(), RECENT, "the oldest go");
        assert_eq!(r[0].ts_ms, 1_005_000);
        assert_eq!((r[1].ok, r[1].rtt_ms), (true, Some(6.0)));
        assert_eq!((r[0].ok, r[0].rtt_ms), (false, None));
        s.set_running(HashSet::new());
        assert!(
            s.recent(&t.key()).is_empty(),
            "dropped once it no longer runs here"
        );
    }

    fn down_result(t: &Arc<TargetSpec>) -> ProbeResult {
        ProbeResult {
            ts: SystemTime::now(),
            node: NodeName::new("n1").unwrap(),
            target: t.clone(),
            epoch: 1,
            outcome: ProbeOutcome::Down {
                reason: crate::model::DownReason::Timeout,
            },
            elapsed: Duration::from_millis(1),
            echo: Some(crate::probe::echo::EchoStats::default()),
            ssh: None,
        }
    }

    /// Every map keyed by target, by its length.
    fn sizes(s: &NodeState) -> [usize; 8] {
        [
            read(&s.latest).len(),
            lock(&s.echoes).len(),
            read(&s.confirmed).len(),
            read(&s.changed).len(),
            lock(&s.recent).len(),
            read(&s.running).len(),
            read(&s.verdicts).len(),
            lock(&s.inherited).len(),
        ]
    }

    #[test]
    fn every_record_of_a_target_goes_when_it_stops_running_here_and_late_writes_are_not_kept() {
        let s = NodeState::default();
        // (States handed over are stamped with the clock; the rounds are 5 s apart from now.)
        let start = SystemTime::now();
        let at = |i: u64| start + Duration::from_secs(i);
        let ten = Duration::from_secs(10);
        let mut all = Vec::new();
        // Ten rounds of churn: 50 targets never seen before each time, each with a result, an
        // event, a verdict, and a state handed over for a target not running here.
        for round in 0..10u64 {
            let ts: Vec<Arc<TargetSpec>> = (0..50)
                .map(|i| target(&format!("127.9.{round}.{i}"), ten, Duration::from_secs(1)))
                .collect();
            s.set_running_at(ts.iter().map(|t| t.key()).collect(), at(round * 5));
            for t in &ts {
                s.record_result(&down_result(t));
                s.set_confirmed(t.key(), TargetState::Down);
                s.record_event(&StateEvent {
                    ts: SystemTime::now(),
                    node: NodeName::new("n1").unwrap(),
                    target: t.clone(),
                    from: None,
                    to: TargetState::Down,
                    epoch: 1,
                    vantages: Vec::new(),
                });
            }
            let verdict = Verdict {
                state: Some(TargetState::Down),
                degraded: false,
                primary: true,
                vantages: Vec::new(),
            };
            s.set_verdicts(ts.iter().map(|t| (t.key(), verdict.clone())));
            let elsewhere = target(&format!("127.8.0.{round}"), ten, Duration::from_secs(1));
            s.confirm_if_unknown(elsewhere.key(), TargetState::Up);
            all.extend(ts);
        }
        // What the last round runs, and the states handed over within the last minute.
        assert_eq!(sizes(&s), [50, 50, 50 + 10, 50, 50, 50, 50, 10]);
        // A retired actor's late result, event and state for a target gone: written, not kept.
        s.record_result(&down_result(&all[0]));
        s.set_confirmed(all[0].key(), TargetState::Up);
        assert_eq!(sizes(&s), [50, 50, 60, 50, 50, 50, 50, 10]);
        // Two minutes on, with nothing running: everything is gone.
        s.set_running_at(HashSet::new(), at(220));
        assert_eq!(sizes(&s), [0; 8]);
        assert!(s.latest(&all[499].key()).is_none());
    }

    #[test]
    fn a_state_handed_over_before_the_target_runs_here_is_where_its_actor_starts() {
        let s = NodeState::default();
        let t = target("127.0.0.1", Duration::from_secs(10), Duration::from_secs(1));
        s.confirm_if_unknown(t.key(), TargetState::Down);
        // The assignment that starts it comes within the minute.
        s.set_running_at([t.key()].into_iter().collect(), SystemTime::now());
        assert_eq!(s.confirmed(&t.key()), Some(TargetState::Down));
        assert_eq!(sizes(&s)[7], 0, "running now: no longer an inherited state");
    }

    #[test]
    fn a_target_is_unprobed_once_its_last_result_is_older_than_interval_timeout_and_a_second() {
        let s = NodeState::default();
        let (fresh, stale, never) = (
            target("127.0.0.1", Duration::from_secs(10), Duration::from_secs(1)),
            target("127.0.0.2", Duration::from_secs(10), Duration::from_secs(1)),
            target("127.0.0.3", Duration::from_secs(10), Duration::from_secs(1)),
        );
        s.set_running(
            [fresh.key(), stale.key(), never.key()]
                .into_iter()
                .collect(),
        );
        let now = SystemTime::now();
        for (t, at) in [(&fresh, 5), (&stale, 1)] {
            s.record_result(&ProbeResult {
                ts: now + Duration::from_secs(at),
                node: NodeName::new("n1").unwrap(),
                target: t.clone(),
                epoch: 1,
                outcome: ProbeOutcome::Up {
                    rtt: Duration::from_millis(1),
                },
                elapsed: Duration::from_millis(1),
                echo: None,
                ssh: None,
            });
        }
        let later = |ms: u64| now + Duration::from_millis(ms);
        assert_eq!(s.count_unprobed(later(6_000)), 0);
        // The stale one's result is 12.5 s old (limit 10 + 1 + 1 s); the fresh one's 8.5 s;
        // the one never probed here is not counted.
        assert_eq!(s.count_unprobed(later(13_500)), 1);
        assert_eq!(s.count_unprobed(later(17_500)), 2);
        // The count is cached for a second.
        let first = s.unprobed_now();
        assert_eq!(s.unprobed_now(), first);
        // One target's latest result, only while this node probes it.
        assert!(s.running_latest_of(&fresh.key()).is_some());
        assert!(s.running_latest_of(&never.key()).is_none(), "no result yet");
        s.set_running([stale.key()].into_iter().collect());
        assert!(
            s.running_latest_of(&fresh.key()).is_none(),
            "no longer probed here"
        );
        assert!(s.running_latest_of(&stale.key()).is_some());
    }
}
