use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::model::ProbeKind;

const INTERVAL: Duration = Duration::from_secs(1);
const UP: TargetState = TargetState::Up;
const DOWN: TargetState = TargetState::Down;

fn name(n: &str) -> NodeName {
    NodeName::new(n).unwrap()
}

fn key() -> TargetKey {
    TargetKey {
        probe: ProbeKind::Icmp,
        id: "127.0.0.1".into(),
    }
}

/// A cluster of nodes that each confirm one target, its views delivered at once to every other
/// owner (with the state the sender carries), as the actors do over the cluster links.
struct Sim {
    /// Every member, in the target's preference order (the ring's ranking for it).
    ranked: Vec<NodeName>,
    replicas: usize,
    k: u32,
    alive: BTreeMap<NodeName, Confirmations>,
    now: Instant,
    /// Every event reported, with its reporter, the alive owners then and the views then.
    events: Vec<(NodeName, Vec<NodeName>, Event)>,
    /// Each vantage's latest own view.
    truth: BTreeMap<NodeName, TargetState>,
}

impl Sim {
    fn new(members: usize, replicas: usize, k: u32) -> Sim {
        let ranked: Vec<NodeName> = (0..members).map(|i| name(&format!("n{i}"))).collect();
        let mut sim = Sim {
            alive: ranked
                .iter()
                .map(|n| (n.clone(), Confirmations::new(n.clone())))
                .collect(),
            ranked,
            replicas,
            k,
            now: Instant::now(),
            events: Vec::new(),
            truth: BTreeMap::new(),
        };
        sim.place();
        sim
    }

    fn owners(&self) -> Vec<NodeName> {
        self.ranked
            .iter()
            .filter(|n| self.alive.contains_key(*n))
            .take(self.replicas)
            .cloned()
            .collect()
    }

    /// Keeps what `reporter` reported; after a change it sends the state it now carries to the
    /// other owners at once (as the actor does).
    fn record(&mut self, reporter: &NodeName, events: Vec<Event>) {
        let owners = self.owners();
        let now = self.now;
        for e in events {
            let carried = self.alive[reporter].outbound(&key()).and_then(|(_, c)| c);
            assert_eq!(carried.map(|c| c.state), Some(e.to));
            for o in owners.iter().filter(|o| *o != reporter) {
                let c = self.alive.get_mut(o).unwrap();
                assert_eq!(c.peer(reporter, &key(), None, carried, now), None);
            }
            self.events.push((reporter.clone(), owners.clone(), e));
        }
    }

    fn place(&mut self) {
        let owners = self.owners();
        let placed = Placed {
            owners: owners.clone(),
            k: self.k,
            interval: INTERVAL,
        };
        let now = self.now;
        let mut reported = Vec::new();
        let mut greet = Vec::new();
        for (n, c) in self.alive.iter_mut() {
            let owned = owners
                .contains(n)
                .then(|| (key(), placed.clone()))
                .into_iter();
            let r = c.place(owned, now);
            greet.extend(r.greet.into_iter().map(|g| (n.clone(), g)));
            reported.push((n.clone(), r.events));
        }
        for (n, e) in reported {
            self.record(&n, e);
        }
        for (from, (to, key, carried)) in greet {
            let c = self.alive.get_mut(&to).unwrap();
            let e = c.peer(&from, &key, None, Some(carried), now);
            self.record(&to, e.into_iter().collect());
        }
    }

    /// `node` probes the target and sees `state`; its view goes to the other owners.
    fn probe(&mut self, node: &NodeName, state: TargetState) {
        let now = self.now;
        if !self.owners().contains(node) {
            return;
        }
        let c = self.alive.get_mut(node).unwrap();
        self.truth.insert(node.clone(), state);
        let mut reported: Vec<(NodeName, Vec<Event>)> = Vec::new();
        reported.push((
            node.clone(),
            c.own(&key(), state, now).into_iter().collect(),
        ));
        let carried = c.outbound(&key()).and_then(|(_, s)| s);
        for o in self.owners() {
            if &o == node {
                continue;
            }
            let c = self.alive.get_mut(&o).unwrap();
            let e = c.peer(node, &key(), Some(state), carried, now);
            reported.push((o, e.into_iter().collect()));
        }
        for (n, e) in reported {
            self.record(&n, e);
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        let now = self.now;
        let mut reported = Vec::new();
        for (n, c) in self.alive.iter_mut() {
            reported.push((n.clone(), c.tick(now)));
        }
        for (n, e) in reported {
            self.record(&n, e);
        }
    }

    fn kill(&mut self, node: &NodeName) {
        if self.alive.len() > 1 && self.alive.remove(node).is_some() {
            self.truth.remove(node);
            self.place();
        }
    }

    fn revive(&mut self, node: &NodeName) {
        if !self.alive.contains_key(node) {
            self.alive
                .insert(node.clone(), Confirmations::new(node.clone()));
            self.place();
        }
    }

    /// Every owner probes once and the clock moves one interval.
    fn round(&mut self, states: &[TargetState]) {
        for (n, s) in self.owners().iter().zip(states) {
            self.probe(n, *s);
        }
        self.advance(INTERVAL);
    }

    fn reported(&self) -> Vec<(Option<TargetState>, TargetState)> {
        self.events.iter().map(|(_, _, e)| (e.from, e.to)).collect()
    }

    fn verdict(&self, node: &str) -> Verdict {
        self.alive[&name(node)].verdict(&key(), self.now).unwrap()
    }
}

#[test]
fn fewer_than_k_down_views_is_degraded_and_k_is_one_event_from_the_primary() {
    let mut sim = Sim::new(3, 3, 2);
    sim.round(&[UP, UP, UP]);
    assert!(sim.events.is_empty());
    assert_eq!(sim.verdict("n0").state, Some(UP));
    // One vantage sees it down: degraded on every owner, no event.
    sim.round(&[UP, DOWN, UP]);
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    for n in ["n0", "n1", "n2"] {
        let v = sim.verdict(n);
        assert_eq!((v.state, v.degraded), (Some(UP), true), "{n}");
        assert_eq!(v.primary, n == "n0");
    }
    // Two do: one down event, from the primary, naming the views.
    sim.round(&[UP, DOWN, DOWN]);
    assert_eq!(sim.reported(), [(Some(UP), DOWN)]);
    let (reporter, _, e) = &sim.events[0];
    assert_eq!(reporter.as_str(), "n0");
    assert_eq!(
        e.vantages,
        [(name("n0"), UP), (name("n1"), DOWN), (name("n2"), DOWN)]
    );
    // Back to one: up again (degraded), one up event.
    sim.round(&[UP, UP, DOWN]);
    assert_eq!(sim.reported(), [(Some(UP), DOWN), (Some(DOWN), UP)]);
    assert!(sim.verdict("n2").degraded);
}

#[test]
fn a_view_not_heard_for_two_intervals_stops_counting() {
    let mut sim = Sim::new(3, 3, 2);
    sim.round(&[UP, UP, UP]);
    sim.round(&[DOWN, DOWN, UP]);
    assert_eq!(sim.reported(), [(Some(UP), DOWN)]);
    // n1 goes quiet (its views stop arriving): after two intervals only n0's down counts.
    for _ in 0..3 {
        sim.probe(&name("n0"), DOWN);
        sim.probe(&name("n2"), UP);
        sim.advance(INTERVAL);
    }
    assert_eq!(sim.reported(), [(Some(UP), DOWN), (Some(DOWN), UP)]);
    assert!(sim.verdict("n0").degraded);
}

#[test]
fn a_dead_primary_is_followed_by_the_next_owner_without_a_repeat() {
    let mut sim = Sim::new(4, 3, 2);
    sim.round(&[UP, UP, UP]);
    sim.round(&[UP, DOWN, DOWN]);
    assert_eq!(sim.reported(), [(Some(UP), DOWN)]);
    // n0 dies: n3 becomes an owner (it takes the carried state over), n1 the primary; n1 and
    // n2 still see the target down, so it stays down without a second event.
    sim.kill(&name("n0"));
    assert_eq!(sim.owners(), [name("n1"), name("n2"), name("n3")]);
    assert_eq!(sim.reported(), [(Some(UP), DOWN)]);
    sim.round(&[DOWN, DOWN, DOWN]);
    sim.round(&[DOWN, DOWN, DOWN]);
    assert_eq!(sim.reported(), [(Some(UP), DOWN)], "no second down event");
    assert_eq!(sim.verdict("n3").state, Some(DOWN));
    // It comes back up: one up event, from n1.
    sim.round(&[UP, UP, UP]);
    assert_eq!(sim.reported(), [(Some(UP), DOWN), (Some(DOWN), UP)]);
    assert_eq!(sim.events[1].0.as_str(), "n1");
}

#[test]
fn a_dead_down_vantage_stops_counting() {
    let mut sim = Sim::new(4, 3, 2);
    sim.round(&[UP, UP, UP]);
    sim.round(&[DOWN, DOWN, UP]);
    // n0 was one of the two down views: without it the target is no longer confirmed down.
    sim.kill(&name("n0"));
    assert_eq!(sim.reported(), [(Some(UP), DOWN), (Some(DOWN), UP)]);
    assert_eq!(sim.events[1].0.as_str(), "n1");
    assert!(sim.verdict("n1").degraded);
}

#[test]
fn a_new_primary_adopts_the_state_and_reports_changes_while_it_warms_up() {
    let mut sim = Sim::new(3, 2, 2);
    // n0 is down: n1 and n2 own the target; both see it down.
    sim.kill(&name("n0"));
    sim.round(&[UP, UP]);
    sim.round(&[DOWN, DOWN]);
    assert_eq!(sim.reported(), [(Some(UP), DOWN)]);
    assert_eq!(sim.events[0].0.as_str(), "n1");
    // n0 returns and is the primary again, with no views yet: it reports nothing on its own.
    sim.revive(&name("n0"));
    assert_eq!(sim.owners(), [name("n0"), name("n1")]);
    sim.probe(&name("n1"), DOWN);
    assert_eq!(sim.verdict("n0").state, Some(DOWN), "carried over");
    assert_eq!(sim.reported(), [(Some(UP), DOWN)]);
    sim.probe(&name("n0"), DOWN);
    sim.advance(INTERVAL);
    sim.round(&[UP, UP]);
    assert_eq!(sim.reported(), [(Some(UP), DOWN), (Some(DOWN), UP)]);
    assert_eq!(sim.events[1].0.as_str(), "n0");
}

#[test]
fn a_cluster_starting_together_reports_a_target_down_from_the_start_once() {
    let mut sim = Sim::new(3, 3, 2);
    sim.round(&[DOWN, DOWN, DOWN]);
    assert_eq!(sim.reported(), [(None, DOWN)]);
    assert_eq!(sim.events[0].0.as_str(), "n0");
    let mut sim = Sim::new(3, 3, 2);
    sim.round(&[UP, DOWN, UP]);
    assert!(sim.events.is_empty(), "up from the start is not news");
}

#[test]
fn k_is_capped_at_the_owners_left() {
    let mut sim = Sim::new(3, 3, 3);
    sim.kill(&name("n1"));
    sim.kill(&name("n2"));
    sim.advance(INTERVAL * 3);
    sim.round(&[DOWN]);
    sim.round(&[DOWN]);
    assert_eq!(sim.reported(), [(None, DOWN)]);
}

#[test]
fn views_from_members_that_are_not_owners_are_ignored() {
    let mut c = Confirmations::new(name("n0"));
    let now = Instant::now();
    let placed = Placed {
        owners: vec![name("n0"), name("n1")],
        k: 2,
        interval: INTERVAL,
    };
    c.place([(key(), placed)], now);
    let carried = Some(Carried {
        version: 1,
        state: DOWN,
    });
    assert_eq!(c.peer(&name("n9"), &key(), Some(DOWN), carried, now), None);
    assert_eq!(c.own(&key(), DOWN, now), None);
    assert_eq!(c.peer(&name("n1"), &key(), Some(UP), None, now), None);
    assert_eq!(c.verdict(&key(), now).unwrap().state, Some(UP));
    assert!(c.verdict(&key(), now).unwrap().degraded);
    // Forgotten when no longer owned.
    c.place([], now);
    assert!(c.verdict(&key(), now).is_none() && c.is_empty());
}

#[derive(Clone, Debug)]
enum Op {
    Probe(usize, bool),
    Advance(u64),
    Kill(usize),
    Revive(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..4usize, any::<bool>()).prop_map(|(n, up)| Op::Probe(n, up)),
        3 => (0..2_500u64).prop_map(Op::Advance),
        1 => (0..4usize).prop_map(Op::Kill),
        1 => (0..4usize).prop_map(Op::Revive),
    ]
}

fn run(k: u32, ops: &[Op]) -> Sim {
    let mut sim = Sim::new(4, 3, k);
    for op in ops {
        match op {
            Op::Probe(n, up) => {
                let n = sim.ranked[*n].clone();
                sim.probe(&n, if *up { UP } else { DOWN });
            }
            Op::Advance(ms) => sim.advance(Duration::from_millis(*ms)),
            Op::Kill(n) => {
                let n = sim.ranked[*n].clone();
                sim.kill(&n);
            }
            Op::Revive(n) => {
                let n = sim.ranked[*n].clone();
                sim.revive(&n);
            }
        }
    }
    sim
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the views, deaths and returns: events come from the primary of the moment,
    /// alternate (no duplicate across a primary change), and a down event has k down views.
    #[test]
    fn events_alternate_come_from_the_primary_and_need_k_views(
        k in 1u32..=3,
        ops in proptest::collection::vec(op(), 0..120),
    ) {
        let sim = run(k, &ops);
        let mut last: Option<TargetState> = None;
        for (reporter, owners, e) in &sim.events {
            prop_assert_eq!(Some(reporter), owners.first(), "reported by a non-primary: {:?}", e);
            match last {
                None => prop_assert!(e.from.is_none() || e.from != Some(e.to)),
                Some(l) => prop_assert_ne!(l, e.to, "a repeated event: {:?}", sim.events),
            }
            if e.to == DOWN {
                let downs = e.vantages.iter().filter(|(_, s)| *s == DOWN).count();
                let need = (k as usize).min(owners.len());
                prop_assert!(downs >= need, "down with {} of {} views: {:?}", downs, need, e);
            }
            last = Some(e.to);
        }
    }

    /// With k ≥ 2, one vantage flapping while the others see the target up never raises an
    /// event (it is only ever degraded).
    #[test]
    fn one_flapping_vantage_raises_no_event(
        k in 2u32..=3,
        flaps in proptest::collection::vec(any::<bool>(), 1..60),
        who in 0..3usize,
    ) {
        let mut sim = Sim::new(3, 3, k);
        for up in flaps {
            let states: Vec<TargetState> = (0..3)
                .map(|i| if i == who && !up { DOWN } else { UP })
                .collect();
            sim.round(&states);
        }
        prop_assert!(sim.events.is_empty(), "{:?}", sim.events);
    }
}
