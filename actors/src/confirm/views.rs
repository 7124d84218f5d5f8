//! k-of-n confirmation: the owners' views of a target and what the cluster makes of them. Pure:
//! time is an argument, effects are return values.
//!
//! # Rules
//! - A *view* is one owner's own confirmed (rise/fall) state of the target: its vantage point.
//! - A view *counts* when its owner is one of the target's owners in the current ring (alive
//!   members, best first) and it was heard within two intervals (an owner that stopped probing
//!   the target, or whose views stopped arriving, no longer counts).
//! - The target is **down** when at least `k` counted views are down, where `k` is the group's
//!   `confirm`, capped at the number of owners (a cluster shrunk below `k` members still alarms
//!   when every owner left agrees). Otherwise it is **up**, and **degraded** when some, but fewer
//!   than `k`, counted views are down (partially down: never a down event).
//! - The *primary* (the first owner) decides: it works the state out from the views and reports
//!   each change as one [`Event`] naming the views. It carries its state in the views it sends,
//!   at once after a change. The other owners *follow*: their state is the one the best-ranked
//!   owner carries, so whichever of them becomes the primary (the primary died, or the ring
//!   changed) goes on from the last state decided, and neither repeats an event nor misses one.
//! - A node that becomes the primary without having been an owner for two intervals *warms up*
//!   until then, or until it has a fresh view from every owner: it takes over the carried state
//!   and reports nothing. A state nobody carried (a new target, a whole cluster starting) is
//!   worked out at the end of the warm-up: a target down from the start is reported (from
//!   `unknown`), one up is not.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::model::{NodeName, TargetKey};
use crate::probe::health::TargetState;

/// Where a target stands in the ring, for [`Confirmations::place`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The target's owners, best first (the first is the primary); this node among them.
    pub owners: Vec<NodeName>,
    /// Down views needed (`confirm`).
    pub k: u32,
    /// The target's probe interval (views older than two of them do not count).
    pub interval: Duration,
}

/// What one owner said last.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Heard {
    /// Its view, and when it was heard.
    view: Option<(TargetState, Instant)>,
    /// The state it carries (its decision as primary, or the one it follows).
    carried: Option<Carried>,
}

/// A decided state as it travels: the state and its version. Each decision is numbered one
/// above every version its primary has heard, so the latest decision wins wherever it comes
/// from, and a follower that passed on an older one cannot bring it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Carried {
    /// The decision's number.
    pub version: u64,
    /// The state decided.
    pub state: TargetState,
}

/// A confirmed change of a target's state, reported by its primary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The target.
    pub key: TargetKey,
    /// The state before (`None`: the target's first state, down).
    pub from: Option<TargetState>,
    /// The state now.
    pub to: TargetState,
    /// The views counted, in owner order.
    pub vantages: Vec<(NodeName, TargetState)>,
}

/// What a ring change makes this node do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reshuffle {
    /// Changes to report (as primary).
    pub events: Vec<Event>,
    /// The state to send each owner new to a target: (owner, target, state).
    pub greet: Vec<(NodeName, TargetKey, Carried)>,
}

/// What the cluster makes of a target, as this node knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The confirmed state (None while warming up with nothing carried).
    pub state: Option<TargetState>,
    /// Up, but seen down from fewer than `k` vantages.
    pub degraded: bool,
    /// True when this node is the target's primary (it reports changes and sends alerts).
    pub primary: bool,
    /// The views counted now, in owner order.
    pub vantages: Vec<(NodeName, TargetState)>,
}

#[derive(Clone, Debug)]
struct Record {
    placed: Placed,
    /// When this node became an owner.
    joined: Instant,
    heard: HashMap<NodeName, Heard>,
    state: Option<TargetState>,
    /// The version of `state`.
    version: u64,
    warm: bool,
    degraded: bool,
}

/// This node's confirmations: one record per target it owns.
#[derive(Debug)]
pub struct Confirmations {
    me: NodeName,
    records: HashMap<TargetKey, Record>,
}

impl Record {
    /// The counted views, in owner order.
    fn counted(&self, now: Instant) -> Vec<(NodeName, TargetState)> {
        let fresh = self.placed.interval * 2;
        self.placed
            .owners
            .iter()
            .filter_map(|o| {
                let (state, at) = self.heard.get(o)?.view?;
                (now.saturating_duration_since(at) <= fresh).then(|| (o.clone(), state))
            })
            .collect()
    }

    /// The latest decision another owner carries.
    fn carried(&self, me: &NodeName) -> Option<Carried> {
        self.heard
            .iter()
            .filter(|(o, _)| *o != me)
            .filter_map(|(_, h)| h.carried)
            .max_by_key(|c| c.version)
    }

    fn primary(&self, me: &NodeName) -> bool {
        self.placed.owners.first() == Some(me)
    }

    /// Works the state out again: the primary decides (and a change is returned, to report),
    /// the others follow.
    fn evaluate(&mut self, me: &NodeName, key: &TargetKey, now: Instant) -> Option<Event> {
        let vantages = self.counted(now);
        let downs = vantages
            .iter()
            .filter(|(_, s)| *s == TargetState::Down)
            .count();
        let k = (self.placed.k as usize)
            .min(self.placed.owners.len())
            .max(1);
        let computed = if downs >= k {
            TargetState::Down
        } else {
            TargetState::Up
        };
        self.degraded = computed == TargetState::Up && downs > 0;
        let heard_all = vantages.len() == self.placed.owners.len();
        let warmed = now.saturating_duration_since(self.joined) >= self.placed.interval * 2;
        self.warm = self.warm || heard_all || warmed;
        // A later decision than this node's own (it follows, or another primary decided
        // meanwhile, during a ring change) is taken over as it is: its primary reported it.
        if let Some(c) = self.carried(me).filter(|c| c.version > self.version) {
            self.state = Some(c.state);
            self.version = c.version;
        }
        if !self.primary(me) || !self.warm {
            return None;
        }
        if vantages.is_empty() {
            // Nothing to decide on (nobody probed the target lately): the state stays.
            return None;
        }
        let from = self.state.replace(computed);
        let news = match from {
            // Nobody carried a state: the target's first one. Down is news; up is not.
            None => computed == TargetState::Down,
            Some(s) => s != computed,
        };
        if from != Some(computed) {
            self.version += 1;
        }
        news.then(|| Event {
            key: key.clone(),
            from,
            to: computed,
            vantages,
        })
    }
}

impl Confirmations {
    /// No targets yet.
    pub fn new(me: NodeName) -> Self {
        Confirmations {
            me,
            records: HashMap::new(),
        }
    }

    /// This node.
    pub fn me(&self) -> &NodeName {
        &self.me
    }

    /// The targets this node owns now, with their owners (after a ring change or a reload).
    /// Targets left out are forgotten; a target new to this node starts warming up. Views of
    /// members that are no longer owners stop counting. Returns the events of the targets whose
    /// state changed with their owners (a dead owner's down view gone, say), and the states to
    /// hand to owners new to a target (so a new primary starts from the last decision).
    pub fn place(
        &mut self,
        owned: impl IntoIterator<Item = (TargetKey, Placed)>,
        now: Instant,
    ) -> Reshuffle {
        let mut next = HashMap::new();
        let mut greet = Vec::new();
        for (key, placed) in owned {
            let record = match self.records.remove(&key) {
                Some(mut r) => {
                    r.heard.retain(|n, _| placed.owners.contains(n));
                    if let Some(state) = r.state {
                        let carried = Carried {
                            version: r.version,
                            state,
                        };
                        for o in placed
                            .owners
                            .iter()
                            .filter(|o| **o != self.me && !r.placed.owners.contains(o))
                        {
                            greet.push((o.clone(), key.clone(), carried));
                        }
                    }
                    r.placed = placed;
                    r
                }
                None => Record {
                    placed,
                    joined: now,
                    heard: HashMap::new(),
                    state: None,
                    version: 0,
                    warm: false,
                    degraded: false,
                },
            };
            next.insert(key, record);
        }
        self.records = next;
        Reshuffle {
            events: self.tick(now),
            greet,
        }
    }

    /// This node's own view of `key` after a result. Returns the event to report, if any.
    pub fn own(&mut self, key: &TargetKey, state: TargetState, now: Instant) -> Option<Event> {
        let me = self.me.clone();
        self.peer(&me, key, Some(state), None, now)
    }

    /// What another owner sent about `key`: its view (None: only the state it carries, sent
    /// after a change) and the state it carries. From a member that is not an owner of `key`,
    /// ignored.
    pub fn peer(
        &mut self,
        from: &NodeName,
        key: &TargetKey,
        view: Option<TargetState>,
        carried: Option<Carried>,
        now: Instant,
    ) -> Option<Event> {
        let r = self.records.get_mut(key)?;
        if !r.placed.owners.contains(from) {
            return None;
        }
        let h = r.heard.entry(from.clone()).or_default();
        if let Some(v) = view {
            h.view = Some((v, now));
        }
        if carried.is_some() {
            h.carried = carried;
        }
        r.evaluate(&self.me, key, now)
    }

    /// Views that went stale and warm-ups that ended. Returns the events to report.
    pub fn tick(&mut self, now: Instant) -> Vec<Event> {
        let me = &self.me;
        self.records
            .iter_mut()
            .filter_map(|(key, r)| r.evaluate(me, key, now))
            .collect()
    }

    /// The owners of `key` (this node's views go to the others), with the state it carries.
    pub fn outbound(&self, key: &TargetKey) -> Option<(&[NodeName], Option<Carried>)> {
        let r = self.records.get(key)?;
        let carried = r.state.map(|state| Carried {
            version: r.version,
            state,
        });
        Some((&r.placed.owners, carried))
    }

    /// What the cluster makes of `key`, as this node knows it.
    pub fn verdict(&self, key: &TargetKey, now: Instant) -> Option<Verdict> {
        let r = self.records.get(key)?;
        Some(Verdict {
            state: r.state,
            degraded: r.degraded,
            primary: r.primary(&self.me),
            vantages: r.counted(now),
        })
    }

    /// Every target this node confirms, with its verdict.
    pub fn verdicts(&self, now: Instant) -> impl Iterator<Item = (&TargetKey, Verdict)> + '_ {
        self.records
            .keys()
            .filter_map(move |k| Some((k, self.verdict(k, now)?)))
    }

    /// Targets tracked.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no target is tracked.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests;
