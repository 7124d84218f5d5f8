//! The probe actor: one per owned target, a thin shell around [`ProbeSchedule`],
//! [`HealthTracker`] and the [`ProbeEngine`](super::ProbeEngine).
//!
//! - At most one probe in flight, in a spawned task (so a slow target never blocks the
//!   mailbox) that waits for the probe's slot, probes, and reports `Finished`; the actor records
//!   it and spawns the next probe's task for the next slot. One task and one message per probe:
//!   no timer task or tick message of its own (each was a wake-up of the node per probe).
//! - The task takes a permit of the node-wide `max_in_flight` semaphore before its timeout
//!   starts; a probe that could not start before its next slot counts a round overrun.
//! - A stale `Finished` (an older sequence) is ignored; stopping the actor aborts the task.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::RactorMessage;
use tokio::sync::{watch, Semaphore};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::echo::{EchoIds, EchoStats};
use super::engine::{resolve, CheckReport, ProbeEngine, RESOLVE_TTL};
use super::health::{HealthTracker, TargetState};
use super::schedule::ProbeSchedule;
use super::ssh::SshReport;
use crate::clock;
use crate::confirm::msg::ConfirmMsg;
#[cfg(any(test, feature = "test-hooks"))]
use crate::fault::FaultInjection;
use crate::link::Link;
use crate::model::{
    target_hash, Check, DownReason, Host, NodeName, ProbeOutcome, ProbeResult, StateEvent,
    TargetSpec,
};
use crate::sink::actor::SinkMsg;
use crate::state::NodeState;
use crate::view::Ownership;

/// What every probe actor of the node shares: its arguments apart from the target.
#[derive(Debug)]
pub struct ProbeContext {
    /// This node.
    pub node: NodeName,
    /// The checks.
    pub engine: ProbeEngine,
    /// Node-wide cap on probes in flight (`max_in_flight`).
    pub permits: Arc<Semaphore>,
    /// Where results and state events go.
    pub sink: Link<SinkMsg>,
    /// With several owners per target: where this node's views go (the confirm actor decides
    /// the state and reports its changes); None: each probe actor reports its own.
    pub confirm: Option<Link<ConfirmMsg>>,
    /// The ownership epoch stamped on every result (published by the probe supervisor).
    pub ownership: watch::Receiver<Ownership>,
    /// Where confirmed states, overruns and results that found no sink are recorded.
    pub state: Arc<NodeState>,
    /// Test-only fault injection (`test-hooks` builds only).
    #[cfg(any(test, feature = "test-hooks"))]
    pub faults: FaultInjection,
}

impl ProbeContext {
    fn epoch(&self) -> u64 {
        self.ownership.borrow().epoch
    }

    /// Sends a result or event to the sink, counting it as dropped when no sink is running.
    fn send(&self, msg: SinkMsg) {
        if !self.sink.cast(msg) {
            self.state.add_dropped(1); // the sink is restarting
        }
    }
}

/// The probe actor (stateless behaviour; state in [`ProbeState`]).
#[derive(Debug)]
pub struct ProbeActor;

/// What a probe actor is started with.
#[derive(Debug)]
pub struct ProbeArgs {
    /// The target it probes.
    pub target: Arc<TargetSpec>,
    /// What all probes share.
    pub ctx: Arc<ProbeContext>,
    /// The target's state as last known (handed over by its previous owner), if any.
    pub initial: Option<TargetState>,
    /// When the target's previous owner was last heard, if it died: a slot after that was
    /// missed and is made up for at once (see [`ProbeSchedule::first_slot`]).
    pub missed_since: Option<SystemTime>,
}

/// Messages of the probe actor (local only: per-host actors are never remotable).
#[derive(Debug, RactorMessage)]
pub enum ProbeMsg {
    /// The target's settings changed (a reload): probe with these from the next probe on,
    /// keeping the state, its counters and, unless the interval changed, the schedule.
    Update(Arc<TargetSpec>),
    /// The probe with sequence `seq` finished.
    Finished(Box<Finished>),
    /// The target's previous owner knew it in this state (used unless this actor has a result).
    Inherit(TargetState),
    /// The target moved to another node: finish the probe in flight (if any), then stop.
    Retire,
    /// Test hooks only: the probe's slot came and it is set to fail; the actor panics.
    #[cfg(any(test, feature = "test-hooks"))]
    InjectedPanic,
}

/// The report of one finished probe task.
#[derive(Debug)]
pub struct Finished {
    /// Which probe (stale ones are ignored).
    pub seq: u64,
    /// What it found.
    pub outcome: ProbeOutcome,
    /// How long the probe took (after its permit).
    pub elapsed: Duration,
    /// SSH details.
    pub ssh: Option<Box<SshReport>>,
    /// Echo statistics.
    pub echo: Option<EchoStats>,
    /// The address a host name resolved to, to be cached.
    pub resolved: Option<IpAddr>,
    /// When it finished.
    pub at: SystemTime,
}

/// A probe actor's state.
#[derive(Debug)]
pub struct ProbeState {
    target: Arc<TargetSpec>,
    ctx: Arc<ProbeContext>,
    schedule: ProbeSchedule,
    /// The slot of the current (or next) probe.
    due: Instant,
    seq: u64,
    seq_base: u16,
    /// The task of the next or current probe (waiting for its slot, then probing).
    in_flight: Option<AbortHandle>,
    /// When that task starts probing (before: it only waits, and may be dropped).
    starts_at: Instant,
    resolved: Option<(IpAddr, Instant)>,
    health: HealthTracker,
    retiring: bool,
    /// The probe in flight is an early retry, off the slot schedule.
    retrying: bool,
    /// Taken over from a member that died: its state was known there, so a first result here
    /// is no event.
    taken_over: bool,
    /// The settings changed while a probe ran: its held SSH connection is closed when it ends.
    stale_session: bool,
}

impl Actor for ProbeActor {
    type Msg = ProbeMsg;
    type State = ProbeState;
    type Arguments = ProbeArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ProbeMsg>,
        ProbeArgs {
            target,
            ctx,
            initial,
            missed_since,
        }: ProbeArgs,
    ) -> Result<ProbeState, ActorProcessingErr> {
        let key = target.key();
        if let Some(s) = initial {
            ctx.state.set_confirmed(key.clone(), s);
        }
        let schedule = ProbeSchedule::new(&key, target.interval);
        let since_epoch = clock::since_epoch();
        let missed_since = missed_since.and_then(|t| t.duration_since(UNIX_EPOCH).ok());
        let first = schedule.first_slot(since_epoch, missed_since);
        let now = Instant::now();
        let (due, start) = if first.catch_up {
            // The previous slot was missed: probe now, as that slot; the next follows on phase.
            let due = (now + first.delay)
                .checked_sub(target.interval)
                .unwrap_or(now);
            (due, now)
        } else {
            (now + first.delay, now + first.delay)
        };
        let mut state = ProbeState {
            schedule,
            due,
            seq: 0,
            seq_base: target_hash(&key) as u16,
            in_flight: None,
            starts_at: start,
            resolved: None,
            health: HealthTracker::new(target.thresholds, initial),
            retiring: false,
            retrying: false,
            taken_over: missed_since.is_some(),
            stale_session: false,
            target,
            ctx,
        };
        state.start_probe(myself, start);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<ProbeMsg>,
        msg: ProbeMsg,
        state: &mut ProbeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ProbeMsg::Update(spec) => state.update(myself, spec),
            ProbeMsg::Finished(done) => state.finish_probe(myself, *done),
            ProbeMsg::Inherit(s) => {
                if state.health.inherit(s) {
                    state.ctx.state.set_confirmed(state.target.key(), s);
                }
            }
            ProbeMsg::Retire => {
                state.retiring = true;
                // A task still waiting for its slot is dropped; a probe running is finished.
                if state.waiting() {
                    if let Some(task) = state.in_flight.take() {
                        task.abort();
                    }
                }
                if state.in_flight.is_none() {
                    myself.stop(Some("handed off".into()));
                }
            }
            #[cfg(any(test, feature = "test-hooks"))]
            ProbeMsg::InjectedPanic => {
                panic!("injected test fault: probe of {} panics", state.target.id);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ProbeMsg>,
        state: &mut ProbeState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(task) = state.in_flight.take() {
            task.abort();
        }
        // Its SSH connection, if one is held, is closed (an SSH disconnect).
        state.ctx.engine.release(&state.target);
        Ok(())
    }
}

impl ProbeState {
    /// True while the task in flight only waits for its slot.
    fn waiting(&self) -> bool {
        self.in_flight.is_some() && Instant::now() < self.starts_at
    }

    /// Spawns the next probe's task: it waits until `at`, then probes and reports `Finished`.
    fn start_probe(&mut self, myself: ActorRef<ProbeMsg>, at: Instant) {
        if self.retiring {
            return;
        }
        if let Some(task) = self.in_flight.take() {
            // Only a waiting task is replaced (a new schedule); callers never replace a probe.
            task.abort();
        }
        self.seq += 1;
        let seq = self.seq;
        // Each probe takes as many sequence numbers as it sends echoes.
        let first_seq = self
            .seq_base
            .wrapping_add((seq as u16).wrapping_mul(self.target.check.echoes()));
        let cached = self
            .resolved
            .filter(|(_, resolved)| resolved.elapsed() < RESOLVE_TTL)
            .map(|(ip, _)| ip);
        let target = self.target.clone();
        let ctx = self.ctx.clone();
        self.starts_at = at;
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            #[cfg(any(test, feature = "test-hooks"))]
            if ctx.faults.should_panic(&target.id) {
                let _ = myself.cast(ProbeMsg::InjectedPanic);
                return;
            }
            // The semaphore is never closed, so acquiring only waits.
            let _permit = ctx.permits.clone().acquire_owned().await;
            let started = Instant::now();
            // The identifier of the round the probe starts in.
            let ids = EchoIds {
                round: EchoIds::round_of(clock::since_epoch(), target.interval),
                seq: first_seq,
            };
            let (report, resolved) = run_once(&ctx, &target, cached, ids).await;
            let done = Finished {
                seq,
                outcome: report.outcome,
                elapsed: started.elapsed(),
                ssh: report.ssh,
                echo: report.echo,
                resolved,
                at: SystemTime::now(),
            };
            // The actor may be gone (target reassigned, node stopping): nothing to report then.
            let _ = myself.cast(ProbeMsg::Finished(Box::new(done)));
        });
        self.in_flight = Some(task.abort_handle());
    }

    fn finish_probe(&mut self, myself: ActorRef<ProbeMsg>, done: Finished) {
        if done.seq != self.seq || self.in_flight.is_none() {
            tracing::debug!(host = %self.target.id, seq = done.seq, "stale probe result ignored");
            return;
        }
        self.in_flight = None;
        if std::mem::take(&mut self.stale_session) {
            self.ctx.engine.release(&self.target);
        }
        let now = Instant::now();
        if let Some(ip) = done.resolved {
            self.resolved = Some((ip, now));
        }
        let was_retry = self.retrying;
        self.retrying = false;
        self.log_transition(&done.outcome, done.at);
        let result = ProbeResult {
            ts: done.at,
            node: self.ctx.node.clone(),
            target: self.target.clone(),
            epoch: self.ctx.epoch(),
            outcome: done.outcome,
            elapsed: done.elapsed,
            echo: done.echo,
            ssh: done.ssh,
        };
        self.ctx.send(SinkMsg::Record(result));
        if self.retiring {
            myself.stop(Some("handed off".into()));
            return;
        }

        let (next, skipped) = self
            .schedule
            .next_after(self.due.into_std(), now.into_std());
        if skipped > 0 && !was_retry {
            self.ctx.state.add_overruns(skipped);
        }
        let next = Instant::from_std(next);
        // While failing but not yet confirmed down, probe again sooner than the next slot; the
        // slot schedule stays as it is, so the target keeps its phase.
        let retry_at = now + self.target.retry_interval;
        if self.health.soft_failing() && retry_at < next {
            self.retrying = true;
            self.start_probe(myself, retry_at);
            return;
        }
        self.due = next;
        self.start_probe(myself, next);
    }

    /// New settings for the target. The health state and its counters stay; the thresholds,
    /// timeout, labels and check are the new ones from the next probe on. A new interval moves
    /// the target to its slots for that interval (the phase is derived from it): the next
    /// probe is at the first of them. A task waiting for its slot holds the settings it was
    /// spawned with, so it is replaced.
    fn update(&mut self, myself: ActorRef<ProbeMsg>, spec: Arc<TargetSpec>) {
        let new_interval = spec.interval != self.target.interval;
        // A held SSH connection logged in with the old settings: the next probe logs in with
        // the new ones (after the probe running, if one is: it holds the connection).
        if self.in_flight.is_some() && !self.waiting() {
            self.stale_session = true;
        } else {
            self.ctx.engine.release(&self.target);
        }
        self.health.set_thresholds(spec.thresholds);
        self.target = spec;
        if !new_interval {
            if self.waiting() {
                let at = self.starts_at;
                self.start_probe(myself, at);
            }
            return;
        }
        self.schedule = ProbeSchedule::new(&self.target.key(), self.target.interval);
        let since_epoch = clock::since_epoch();
        let now = Instant::now();
        let next = now + self.schedule.until_first(since_epoch);
        self.retrying = false;
        if self.in_flight.is_some() && !self.waiting() {
            // The probe running finishes first; the slot after it is then `next`.
            self.due = next.checked_sub(self.target.interval).unwrap_or(now);
        } else {
            self.due = next;
            self.start_probe(myself, next);
        }
    }

    fn log_transition(&mut self, outcome: &ProbeOutcome, at: SystemTime) {
        let t = self.health.record(outcome.is_up());
        if let Some(confirm) = &self.ctx.confirm {
            // Several owners: this node's view goes to the confirm actor after every result
            // (so it stays fresh), and the target's primary reports the cluster's changes.
            if let Some(state) = self.health.state() {
                let key = self.target.key();
                confirm.cast(ConfirmMsg::Own { key, state });
            }
            if let Some(t) = t {
                tracing::debug!(host = %self.target.id, view = t.to.as_str(), "own view changed");
            }
            return;
        }
        let Some(t) = t else {
            return;
        };
        let key = self.target.key();
        self.ctx.state.set_confirmed(key, t.to);
        let host = &*self.target.id;
        let probe = self.target.kind().as_str();
        let reason = match outcome {
            ProbeOutcome::Down { reason } => reason.to_string(),
            ProbeOutcome::Up { .. } => String::new(),
        };
        match t.from {
            None => {
                // Summarised per ring change by the probe supervisor (`first results: …`).
                tracing::debug!(
                    host,
                    probe,
                    state = t.to.as_str(),
                    reason,
                    "target {} (first result)",
                    t.to.as_str()
                );
                // A target down from its first result is an event (from "unknown"), unless it
                // was taken over from a member that died, which knew its state.
                if t.to == TargetState::Up || self.taken_over {
                    return;
                }
            }
            Some(from) => {
                // A confirmed change: one event, logged and written beside the results.
                let needed = match t.to {
                    TargetState::Up => self.target.thresholds.rise,
                    TargetState::Down => self.target.thresholds.fall,
                };
                tracing::info!(
                    host,
                    probe,
                    from = from.as_str(),
                    to = t.to.as_str(),
                    reason,
                    "target {} ({} consecutive)",
                    t.to.as_str(),
                    needed
                );
            }
        }
        let event = StateEvent {
            ts: at,
            node: self.ctx.node.clone(),
            target: self.target.clone(),
            epoch: self.ctx.epoch(),
            from: t.from,
            to: t.to,
            vantages: Vec::new(),
        };
        self.ctx.send(SinkMsg::Event(event));
    }
}

/// One probe: resolve (unless cached), then check. ICMP and TCP checks are bounded by the
/// target's timeout; SSH bounds each stage itself, counting from when a session slot is free.
/// Name resolution is bounded by the timeout too.
async fn run_once(
    ctx: &ProbeContext,
    target: &TargetSpec,
    cached: Option<IpAddr>,
    ids: EchoIds,
) -> (CheckReport, Option<IpAddr>) {
    let down = |reason| CheckReport {
        outcome: ProbeOutcome::Down { reason },
        ssh: None,
        echo: None,
    };
    let (addr, fresh) = match (cached, &target.host) {
        (Some(ip), _) => (ip, None),
        (None, Host::Ip(ip)) => (*ip, None),
        (None, host @ Host::Name(_)) => {
            match tokio::time::timeout(target.timeout, resolve(host)).await {
                Ok(Ok(ip)) => (ip, Some(ip)),
                Ok(Err(reason)) => return (down(reason), None),
                Err(_) => return (down(DownReason::Timeout), None),
            }
        }
    };
    // SSH bounds each stage, ICMP each echo after its send (which may wait for its network's
    // pace), both with their own backstops.
    if matches!(target.check, Check::Ssh { .. } | Check::Icmp(_)) {
        return (ctx.engine.check(target, addr, ids, None).await, fresh);
    }
    // TCP bounds itself by the timeout; a little slack lets it report its own, more precise,
    // outcome first.
    let limit = target.check.span(target.timeout) + Duration::from_millis(50);
    match tokio::time::timeout(limit, ctx.engine.check(target, addr, ids, None)).await {
        Ok(report) => (report, fresh),
        Err(_) => (down(DownReason::Timeout), fresh),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultInjection;
    use crate::probe::fake::FakeProbe;
    use crate::testkit::{context, target};

    const S: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn probes_once_per_interval_at_a_fixed_phase() {
        let fake = FakeProbe::always_up(Duration::from_millis(5));
        let h = context(fake, 10, FaultInjection::none()).await;
        let t = target("127.0.0.1", 10 * S, S);
        let probe = h.spawn_probe(t).await;
        tokio::time::sleep(60 * S).await;
        let calls = h.calls();
        // The first slot is within the first interval, then exactly one probe per interval.
        assert!(
            calls.len() == 6 || calls.len() == 7,
            "{} calls",
            calls.len()
        );
        for pair in calls.windows(2) {
            assert_eq!(pair[1].1 - pair[0].1, 10 * S);
        }
        // Every probe that has finished (each takes 5 ms) is written. The phase comes from the
        // real wall clock, so once in about 2,000 runs the last slot falls within the 5 ms
        // before the end, and that probe is still in flight.
        let in_flight = calls
            .last()
            .is_some_and(|c| tokio::time::Instant::now() - c.1 < Duration::from_millis(5));
        let results = h.written().await;
        assert_eq!(results.len(), calls.len() - usize::from(in_flight));
        assert!(results.iter().all(|r| r.outcome.is_up() && r.epoch == 7));
        probe.stop(None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_hangs_is_a_timeout_and_does_not_shift_the_schedule() {
        let fake = FakeProbe::always_up(Duration::from_millis(5));
        fake.script("127.0.0.2", vec![(3600 * S, ProbeOutcome::Up { rtt: S })]);
        let h = context(fake, 10, FaultInjection::none()).await;
        let t = target("127.0.0.2", 10 * S, 2 * S);
        let _probe = h.spawn_probe(t).await;
        tokio::time::sleep(25 * S).await;
        let results = h.written().await;
        assert!(results.len() >= 2, "{results:?}");
        assert_eq!(
            results[0].outcome,
            ProbeOutcome::Down {
                reason: DownReason::Timeout
            }
        );
        assert!(results[1].outcome.is_up());
        let calls = h.calls();
        assert_eq!(
            calls[1].1 - calls[0].1,
            10 * S,
            "the next probe keeps its slot"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn names_that_do_not_resolve_are_results_not_failures() {
        let fake = FakeProbe::always_up(Duration::from_millis(5));
        let h = context(fake, 10, FaultInjection::none()).await;
        let t = target("nowhere.invalid", 10 * S, S);
        let probe = h.spawn_probe(t).await;
        tokio::time::sleep(25 * S).await;
        let results = h.written().await;
        assert!(results.len() >= 2);
        for r in &results {
            match &r.outcome {
                ProbeOutcome::Down {
                    reason: DownReason::Unresolved(d),
                } => assert!(d.contains("nowhere.invalid")),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(probe.get_status(), ractor::ActorStatus::Running);
    }

    #[tokio::test(start_paused = true)]
    async fn rise_and_fall_confirm_changes_and_failures_are_retried_sooner() {
        let up = || {
            (
                Duration::from_millis(5),
                ProbeOutcome::Up {
                    rtt: Duration::from_millis(5),
                },
            )
        };
        let down = || {
            (
                Duration::from_millis(5),
                ProbeOutcome::Down {
                    reason: DownReason::Refused,
                },
            )
        };
        let fake = FakeProbe::always_up(Duration::from_millis(5));
        fake.script("127.0.0.3", vec![up(), down(), down(), down(), up(), up()]);
        let h = context(fake, 10, FaultInjection::none()).await;
        let t = target("127.0.0.3", 10 * S, S);
        let t = Arc::new(
            (*t).clone()
                .with_health(crate::probe::health::Thresholds { rise: 2, fall: 2 }, 2 * S),
        );
        let _probe = h.spawn_probe(t).await;
        tokio::time::sleep(55 * S).await;
        let calls = h.calls();
        let gaps: Vec<u64> = calls
            .windows(2)
            .map(|w| (w[1].1 - w[0].1).as_millis() as u64)
            .collect();
        // up | slot: down (soft) → retry 2 s after it finished: down (confirmed) | slot: down |
        // slot: up | slot: up (confirmed)
        assert_eq!(
            &gaps[..5],
            &[10_000, 2_005, 7_995, 10_000, 10_000],
            "{gaps:?}"
        );
        h.written().await;
        let events: Vec<(&str, &str)> = h
            .writer
            .events
            .lock()
            .unwrap()
            .iter()
            .map(|e| (e.from.map_or("unknown", TargetState::as_str), e.to.as_str()))
            .collect();
        assert_eq!(events, [("up", "down"), ("down", "up")]);
        assert_eq!(
            h.ctx.state.confirmed(&target("127.0.0.3", S, S).key()),
            Some(TargetState::Up)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_that_cannot_keep_up_counts_overruns() {
        // One probe at a time, three targets that each take 900 ms, every second.
        let fake = FakeProbe::always_up(Duration::from_millis(900));
        let h = context(fake, 1, FaultInjection::none()).await;
        for id in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
            h.spawn_probe(target(id, S, Duration::from_millis(950)))
                .await;
        }
        tokio::time::sleep(20 * S).await;
        assert!(h.ctx.state.overruns() > 5);
        // And never more than one probe ran at a time.
        let calls = h.calls();
        for pair in calls.windows(2) {
            assert!(pair[1].1 - pair[0].1 >= Duration::from_millis(900));
        }
    }
}
