//! The membership table and its failure detector. Pure: time is an argument, effects are the
//! returned [`Change`]s.
//!
//! A member is `Alive` while heartbeats arrive; `Suspect` after `suspect_after` without one
//! (still in the ring: one slow heartbeat does not reshuffle anything); `Dead` after
//! `dead_after`; `Left` when it announced a planned leave. Alive and suspect members are in the
//! ring. When its last connection closes, the member is redialled at once to tell a crash from
//! a reset link: a refused redial (nothing listens: the process is gone) is death at once, as is
//! no heartbeat within [`LINK_CONFIRM`]; a heartbeat over the new link means the member lived
//! through it, and nothing moves.
//!
//! Identity is the configured name. The same name at the same address with a newer
//! incarnation is that node restarted, and replaces the old one. Two live nodes at different
//! addresses claiming one name are a duplicate: the name stays with the node started first
//! (the smaller incarnation; the smaller address if both started in the same millisecond),
//! see [`holds_name`]. Every node compares the same two claims the same way — the two
//! claimants and every third member, whoever hears whom first — so all agree on who keeps the
//! name: the holder keeps running and keeps its targets, the other is refused everywhere and
//! stops. (The incarnation is the start time by each node's clock: with clocks far apart, the
//! node whose clock is behind may be the one that keeps the name. Both still agree.)

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use super::health::{LocalHealth, Pace};
pub use super::view::MemberState;
use super::view::{MemberRow, MembershipView};
use super::wire::PeerAddr;
use crate::model::NodeName;

/// What a member says about itself in each heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// The address it listens on (`ip:port`), as others dial it.
    pub addr: String,
    /// Its ring weight.
    pub weight: u32,
    /// Its start time (Unix ms): a restarted node has a larger one.
    pub incarnation: u64,
    /// The ring digest it has adopted (its probes run for that ring).
    pub adopted: u64,
    /// Digest of its configured targets.
    pub targets: u64,
    /// Targets it probes that have had no result for too long.
    pub unprobed: u64,
    /// The gap it keeps between its heartbeats to this node, when longer than the heartbeat
    /// interval (see `membership::cadence`); `None`: every interval.
    pub every: Option<Duration>,
    /// Its local health score (0: it keeps its schedule; see `membership::health`).
    pub health: u32,
}

/// A member whose last connection closed must be heard again within this, over a redialled
/// link, or it is dead (with the failure detector's tick every heartbeat interval, death
/// follows a crash within about a second at the most; a refused redial is death at once).
pub const LINK_CONFIRM: Duration = Duration::from_millis(750);

/// Members silent at once, at least, for a silence to count as widespread (and a quarter of
/// the members in the ring).
pub const WIDESPREAD_MIN: usize = 3;
/// A widespread silence makes deaths wait this many times `dead_after`.
pub const WIDESPREAD_FACTOR: u32 = 4;

/// At most one [`Change::Lagging`] (or [`Change::WidespreadSilence`]) per this.
pub const LAG_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Why a member was declared dead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeathCause {
    /// No heartbeat for this long.
    Silent(Duration),
    /// Every connection to it closed.
    Disconnected,
    /// A member that watched it declared it dead for its silence, and this node suspected it
    /// too.
    Reported(NodeName),
}

/// A change worth logging (and, when the ring membership changed, publishing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A member joined (or came back).
    Joined(NodeName),
    /// A member restarted (newer incarnation) while we still counted it in.
    Restarted(NodeName),
    /// A member went silent.
    Suspect(NodeName, Duration),
    /// A suspect member was heard again.
    Recovered(NodeName),
    /// A member was declared dead.
    Dead(NodeName, DeathCause),
    /// A member left on purpose.
    Left(NodeName),
    /// A member's last connection closed; it is redialled to confirm it is alive.
    LinkLost(NodeName),
    /// A member whose link was lost was heard again over a new one: no death, nothing moves.
    LinkRestored(NodeName),
    /// This node's own tick came this late: it fell behind (the time is not counted as the
    /// members' silence). Reported at most once per [`LAG_REPORT_EVERY`].
    Lagging(Duration),
    /// This many of the members in the ring (the second number) are silent at once: a stall
    /// of the machine or network, not as many failures; deaths wait longer.
    WidespreadSilence(usize, usize),
    /// A member in the ring announced another weight (0: it hands its targets off).
    Reweighted(NodeName, u32),
    /// This node's own pace changed (see `membership::health`): it hands its targets off
    /// (announces weight 0), or takes them back.
    Pace(Pace),
    /// A member's adopted ring digest changed.
    Adopted(NodeName, u64),
    /// A member in the table announced another target set.
    TargetSet(NodeName, u64),
}

impl Change {
    /// True when the ring changed: its members, or a weight (a hand-off at weight 0).
    pub fn changes_ring(&self) -> bool {
        matches!(
            self,
            Change::Joined(_)
                | Change::Dead(..)
                | Change::Left(_)
                | Change::Pace(_)
                | Change::Reweighted(..)
        )
    }
}

/// How much longer than the heartbeat interval `tick` a member's heartbeats to this node are
/// apart (its silence is judged with this much more patience).
fn slack(info: &MemberInfo, tick: Duration) -> Duration {
    info.every
        .map_or(Duration::ZERO, |e| e.saturating_sub(tick))
}

/// Whether claim `a` on a name (incarnation, address) keeps it against claim `b`: the node
/// started first, then the smaller address. A total order on the claims, so every node that
/// compares the same two claims decides alike.
pub fn holds_name(a: (u64, &str), b: (u64, &str)) -> bool {
    a < b
}

/// Two live nodes claim one name: the newcomer must be refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateName {
    /// The name.
    pub name: NodeName,
    /// The address of the node that keeps it.
    pub holder: String,
    /// The holder's incarnation.
    pub holder_incarnation: u64,
    /// The address of the node that must stop.
    pub newcomer: String,
    /// True when the newcomer is this node: it stops.
    pub newcomer_is_me: bool,
}

impl DuplicateName {
    /// Why the newcomer is refused, for both sides' logs.
    pub fn reason(&self) -> String {
        format!(
            "node name {} is already used by the member at {} (started first); give the node at {} another name",
            self.name, self.holder, self.newcomer
        )
    }

    /// The newcomer's ractor node name (`name@address`), which its sessions carry.
    pub fn newcomer_peer_name(&self) -> String {
        format!("{}@{}", self.name, self.newcomer)
    }
}

/// Failure-detector timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detector {
    /// Silence before a member is suspect.
    pub suspect_after: Duration,
    /// Silence before a member is dead.
    pub dead_after: Duration,
    /// How often [`MembershipTable::tick`] is called (the heartbeat interval). A tick that comes
    /// more than twice this late means this node itself was not running (starved of CPU,
    /// swapped out, stopped): the time it lost is not held against the members.
    pub tick: Duration,
}

#[derive(Clone, Debug)]
struct Member {
    info: MemberInfo,
    state: MemberState,
    last_heard: Instant,
    /// When its last connection closed, while a redial confirms it.
    link_lost: Option<Instant>,
    /// A watcher that declared it dead, and when that was heard, while this node confirms it.
    reported: Option<(NodeName, Instant)>,
}

/// Everything this node knows about the other members.
#[derive(Clone, Debug)]
pub struct MembershipTable {
    me: NodeName,
    my_addr: String,
    my_incarnation: u64,
    detector: Detector,
    members: BTreeMap<NodeName, Member>,
    version: u64,
    /// The last tick, and the last time this node reported falling behind.
    last_tick: Option<Instant>,
    lag_reported: Option<Instant>,
    widespread_reported: Option<Instant>,
    /// This node's own health: it scales every timeout, and decides the self hand-off.
    health: LocalHealth,
}

impl MembershipTable {
    /// A table with no other member, for node `me` at `my_addr` started at `my_incarnation`.
    pub fn new(me: NodeName, my_addr: String, my_incarnation: u64, detector: Detector) -> Self {
        MembershipTable {
            me,
            my_addr,
            my_incarnation,
            detector,
            members: BTreeMap::new(),
            version: 1,
            last_tick: None,
            lag_reported: None,
            widespread_reported: None,
            health: LocalHealth::default(),
        }
    }

    /// Increases whenever the set of members in the ring changes.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// A heartbeat from `name`.
    pub fn heard(
        &mut self,
        name: &NodeName,
        info: MemberInfo,
        now: Instant,
    ) -> Result<Vec<Change>, DuplicateName> {
        if *name == self.me {
            if info.addr == self.my_addr {
                return Ok(Vec::new()); // this node's own address: an echo, not a claim
            }
            // The claimant holds the name: this node stops (the same check as a refusal).
            return Err(self
                .refusal(&info.addr, info.incarnation)
                .unwrap_or_else(|| DuplicateName {
                    name: name.clone(),
                    holder: self.my_addr.clone(),
                    holder_incarnation: self.my_incarnation,
                    newcomer: info.addr,
                    newcomer_is_me: false,
                }));
        }
        let mut changes = Vec::new();
        match self.members.get_mut(name) {
            None => {
                self.members.insert(
                    name.clone(),
                    Member {
                        info,
                        state: MemberState::Alive,
                        last_heard: now,
                        link_lost: None,
                        reported: None,
                    },
                );
                changes.push(Change::Joined(name.clone()));
            }
            Some(m) => {
                if m.state.in_ring() && info.addr != m.info.addr {
                    let held = (m.info.incarnation, m.info.addr.as_str());
                    if holds_name(held, (info.incarnation, &info.addr)) {
                        return Err(DuplicateName {
                            name: name.clone(),
                            holder: m.info.addr.clone(),
                            holder_incarnation: m.info.incarnation,
                            newcomer: info.addr,
                            newcomer_is_me: false,
                        });
                    }
                    // The claimant holds the name (it started first: the member known here
                    // is the duplicate, and is refused when heard from again).
                    m.info = info;
                    m.last_heard = now;
                    let c = vec![Change::Restarted(name.clone())];
                    self.bump(&c);
                    return Ok(c);
                }
                if info.incarnation < m.info.incarnation {
                    return Ok(changes); // a stale message from an older incarnation
                }
                let newer = info.incarnation > m.info.incarnation;
                if m.state == MemberState::Left && !newer {
                    return Ok(changes); // it is on its way out
                }
                if m.info.adopted != info.adopted {
                    changes.push(Change::Adopted(name.clone(), info.adopted));
                }
                if m.info.targets != info.targets {
                    changes.push(Change::TargetSet(name.clone(), info.targets));
                }
                if m.info.weight != info.weight && m.state.in_ring() {
                    changes.push(Change::Reweighted(name.clone(), info.weight));
                }
                match m.state {
                    MemberState::Dead | MemberState::Left => {
                        changes.push(Change::Joined(name.clone()))
                    }
                    MemberState::Suspect => changes.push(Change::Recovered(name.clone())),
                    MemberState::Alive if newer => changes.push(Change::Restarted(name.clone())),
                    MemberState::Alive => {}
                }
                if m.link_lost.take().is_some() && m.state.in_ring() {
                    changes.push(Change::LinkRestored(name.clone()));
                }
                m.state = MemberState::Alive;
                m.info = info;
                m.last_heard = now;
                m.reported = None;
            }
        }
        self.bump(&changes);
        Ok(changes)
    }

    /// Member `by` declared `name` (incarnation `incarnation`) dead for its silence. Kept to be
    /// confirmed by [`tick`](Self::tick): `name` dies here once this node suspects it too
    /// (silent for `suspect_after` beyond the gap between its heartbeats here), within
    /// `dead_after` of the report; a heartbeat from it in the meantime drops the report.
    /// Reports from members not in the ring, or about another incarnation, are ignored.
    /// Returns true when the report is about this node: it is alive, and refutes it by
    /// heartbeating every peer at once.
    pub fn reported_dead(
        &mut self,
        by: &NodeName,
        name: &NodeName,
        incarnation: u64,
        now: Instant,
    ) -> bool {
        if *name == self.me {
            let refute = incarnation == self.my_incarnation;
            if refute {
                self.health.refuted();
            }
            return refute;
        }
        if !self.state_of(by).is_some_and(|s| s.in_ring()) {
            return false;
        }
        if let Some(m) = self.members.get_mut(name) {
            if m.state.in_ring() && m.info.incarnation == incarnation && m.reported.is_none() {
                m.reported = Some((by.clone(), now));
            }
        }
        false
    }

    /// True when `name` heartbeats this node at the full rate (this node watches it).
    pub fn watches(&self, name: &NodeName) -> bool {
        self.members
            .get(name)
            .is_some_and(|m| m.info.every.is_none())
    }

    /// A peer refused this node, naming the node that keeps its name: the duplicate to stop
    /// for when that claim beats this node's own; `None` (ignore it) otherwise.
    pub fn refusal(&self, holder: &str, holder_incarnation: u64) -> Option<DuplicateName> {
        let mine = (self.my_incarnation, self.my_addr.as_str());
        (holder != self.my_addr && holds_name((holder_incarnation, holder), mine)).then(|| {
            DuplicateName {
                name: self.me.clone(),
                holder: holder.to_string(),
                holder_incarnation,
                newcomer: self.my_addr.clone(),
                newcomer_is_me: true,
            }
        })
    }

    /// Every connection to `name` closed at `now`: the change to log, and the address to
    /// redial at once to confirm it is alive (see [`LINK_CONFIRM`]).
    pub fn link_lost(&mut self, name: &NodeName, now: Instant) -> Option<(Change, String)> {
        let m = self.members.get_mut(name)?;
        if !m.state.in_ring() || m.link_lost.is_some() {
            return None;
        }
        m.link_lost = Some(now);
        Some((Change::LinkLost(name.clone()), m.info.addr.clone()))
    }

    /// Redialling `addr` failed: the member there whose link was lost is dead.
    pub fn redial_failed(&mut self, addr: &str) -> Option<Change> {
        let name = self
            .members
            .iter()
            .find(|(_, m)| m.link_lost.is_some() && m.info.addr == addr)
            .map(|(n, _)| n.clone())?;
        self.disconnected(&name)
    }

    /// `name` is gone: every connection closed and could not be made again.
    pub fn disconnected(&mut self, name: &NodeName) -> Option<Change> {
        let m = self.members.get_mut(name)?;
        m.link_lost = None;
        if !m.state.in_ring() {
            return None;
        }
        m.state = MemberState::Dead;
        let c = Change::Dead(name.clone(), DeathCause::Disconnected);
        self.bump(std::slice::from_ref(&c));
        Some(c)
    }

    /// `name` announced that it leaves. Only the incarnation known here can leave: a refused
    /// duplicate of the name (or a stale message) stopping does not take the holder out.
    pub fn left(&mut self, name: &NodeName, incarnation: u64) -> Option<Change> {
        let m = self.members.get_mut(name)?;
        if incarnation != m.info.incarnation || m.state == MemberState::Left {
            return None;
        }
        let was_in = m.state.in_ring();
        m.state = MemberState::Left;
        if !was_in {
            return None;
        }
        let c = Change::Left(name.clone());
        self.bump(std::slice::from_ref(&c));
        Some(c)
    }

    /// Advances the failure detector to `now`. Lifeguard's rules (memberlist's local
    /// health): when this node's own tick comes late, this node is the slow one, so the time
    /// it was not running is excused — every member's silence (and lost-link wait) is measured
    /// without it — instead of declaring everyone else suspect and dead at once; and every
    /// timeout waits `1 + score` times longer while this node's local health score is up
    /// (`membership::health`), which also decides when this node hands its targets off.
    pub fn tick(&mut self, now: Instant) -> Vec<Change> {
        let mut changes = Vec::new();
        let gap = self
            .last_tick
            .replace(now)
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        let tick = self.detector.tick;
        let late = gap > tick.saturating_mul(2);
        // A tick within half a tick of the last is the timer catching up after a stall (or
        // the first): it says nothing about this node's pace.
        if gap >= tick / 2 {
            let missed = if late {
                (gap.as_nanos() / tick.as_nanos().max(1)).min(u128::from(u32::MAX)) as u32 - 1
            } else {
                0
            };
            let mut others = self
                .members
                .values()
                .filter(|m| m.state.in_ring())
                .peekable();
            let peers_keep_up =
                others.peek().is_some() && others.all(|m| m.info.health == 0 && m.info.weight > 0);
            if let Some(pace) = self.health.tick(missed, peers_keep_up, now) {
                changes.push(Change::Pace(pace));
            }
        }
        if late {
            let excused = gap - self.detector.tick;
            for m in self.members.values_mut() {
                m.last_heard = (m.last_heard + excused).min(now);
                m.link_lost = m.link_lost.map(|t| (t + excused).min(now));
            }
            if self
                .lag_reported
                .is_none_or(|t| now.saturating_duration_since(t) >= LAG_REPORT_EVERY)
            {
                self.lag_reported = Some(now);
                changes.push(Change::Lagging(gap));
            }
        }
        // Many members silent at once is a stall of the machine or the network they share,
        // not that many failures: their deaths wait WIDESPREAD_FACTOR times longer.
        let in_ring = self.members.values().filter(|m| m.state.in_ring()).count();
        let silent_now = self
            .members
            .values()
            .filter(|m| {
                m.state.in_ring()
                    && now.saturating_duration_since(m.last_heard)
                        >= self.health.patience(self.detector.suspect_after)
                            + slack(&m.info, self.detector.tick)
            })
            .count();
        let widespread = silent_now >= WIDESPREAD_MIN && silent_now * 4 >= in_ring;
        let dead_after = if widespread {
            if self
                .widespread_reported
                .is_none_or(|t| now.saturating_duration_since(t) >= LAG_REPORT_EVERY)
            {
                self.widespread_reported = Some(now);
                changes.push(Change::WidespreadSilence(silent_now, in_ring));
            }
            self.detector.dead_after.saturating_mul(WIDESPREAD_FACTOR)
        } else {
            self.detector.dead_after
        };
        let dead_after = self.health.patience(dead_after);
        let accuses = self.health.accuses();
        let (tick, suspect_after, report_ttl, link_confirm) = (
            self.detector.tick,
            self.health.patience(self.detector.suspect_after),
            self.health.patience(self.detector.dead_after),
            self.health.patience(LINK_CONFIRM),
        );
        for (name, m) in self.members.iter_mut() {
            let silent = now.saturating_duration_since(m.last_heard);
            let slack = slack(&m.info, tick);
            let unconfirmed = m
                .link_lost
                .is_some_and(|t| now.saturating_duration_since(t) >= link_confirm);
            if unconfirmed && m.state.in_ring() && accuses {
                m.link_lost = None;
                m.state = MemberState::Dead;
                changes.push(Change::Dead(name.clone(), DeathCause::Disconnected));
                continue;
            }
            // A watcher's report, confirmed by this node's own suspicion: silent for longer
            // than suspect_after beyond the gap the member keeps between its heartbeats here.
            // (So a watcher's mistake spreads no further than what this node already suspects,
            // and a report brings a death forward by dead_after - suspect_after at most.)
            if let Some((by, at)) = m.reported.take() {
                if !m.state.in_ring() || now.saturating_duration_since(at) > report_ttl {
                    // Expired, or settled otherwise.
                } else if silent >= suspect_after + slack && accuses {
                    m.state = MemberState::Dead;
                    changes.push(Change::Dead(name.clone(), DeathCause::Reported(by)));
                    continue;
                } else {
                    m.reported = Some((by, at));
                }
            }
            match m.state {
                MemberState::Alive | MemberState::Suspect
                    if silent >= dead_after + slack && accuses =>
                {
                    m.state = MemberState::Dead;
                    changes.push(Change::Dead(name.clone(), DeathCause::Silent(silent)));
                }
                MemberState::Alive if silent >= suspect_after + slack => {
                    m.state = MemberState::Suspect;
                    changes.push(Change::Suspect(name.clone(), silent));
                }
                _ => {}
            }
        }
        self.bump(&changes);
        changes
    }

    fn bump(&mut self, changes: &[Change]) {
        if changes.iter().any(Change::changes_ring) {
            self.version += 1;
        }
    }

    /// The weight this node announces, given its configured weight: 0 while it hands its
    /// targets off because it cannot keep its schedule (`membership::health`).
    pub fn my_weight(&self, configured: u32) -> u32 {
        if self.health.handing_off() {
            0
        } else {
            configured
        }
    }

    /// This node's local health score (`membership::health`).
    pub fn health_score(&self) -> u32 {
        self.health.score()
    }

    /// Members in the ring (alive or suspect), this node included, with their weights
    /// (`my_weight` as configured; see [`my_weight`](Self::my_weight)).
    pub fn ring_members(&self, my_weight: u32) -> BTreeMap<NodeName, u32> {
        let my_weight = self.my_weight(my_weight);
        let mut out: BTreeMap<NodeName, u32> = self
            .members
            .iter()
            .filter(|(_, m)| m.state.in_ring())
            .map(|(n, m)| (n.clone(), m.info.weight))
            .collect();
        out.insert(self.me.clone(), my_weight);
        out
    }

    /// Number of members in the ring, this node included.
    pub fn alive_count(&self) -> usize {
        1 + self.members.values().filter(|m| m.state.in_ring()).count()
    }

    /// The target-set digest every member in the ring (not this node) last announced.
    pub fn target_sets(&self) -> BTreeMap<NodeName, u64> {
        self.members
            .iter()
            .filter(|(_, m)| m.state.in_ring())
            .map(|(n, m)| (n.clone(), m.info.targets))
            .collect()
    }

    /// The adopted ring digest of every member in the ring (not this node).
    pub fn adopted(&self) -> BTreeMap<NodeName, u64> {
        self.members
            .iter()
            .filter(|(_, m)| m.state.in_ring())
            .map(|(n, m)| (n.clone(), m.info.adopted))
            .collect()
    }

    /// Every known member with its state and address.
    pub fn members(&self) -> impl Iterator<Item = (&NodeName, MemberState, &MemberInfo)> {
        self.members.iter().map(|(n, m)| (n, m.state, &m.info))
    }

    /// The state of `name`, if known.
    pub fn state_of(&self, name: &NodeName) -> Option<MemberState> {
        self.members.get(name).map(|m| m.state)
    }

    /// The members declared dead (crashed or frozen, not left), and how long before `now` each
    /// was last heard: the probes of a target such a member owned may have been missed since.
    pub fn dead_silences(&self, now: Instant) -> BTreeMap<NodeName, Duration> {
        self.members
            .iter()
            .filter(|(_, m)| m.state == MemberState::Dead)
            .map(|(n, m)| (n.clone(), now.saturating_duration_since(m.last_heard)))
            .collect()
    }

    /// The view the ring is built from, at `now` (`wall` is the same instant on the wall
    /// clock; dead members' last-heard times are given in it).
    pub fn view(&self, my_weight: u32, now: Instant, wall: SystemTime) -> MembershipView {
        MembershipView {
            me: self.me.clone(),
            members: self.ring_members(my_weight),
            version: self.version,
            // A member handing its targets off (weight 0) could not keep its schedule for
            // BEHIND_FOR before it said so: the slots of its targets since may be missed too.
            dead: self
                .dead_silences(now)
                .into_iter()
                .chain(
                    self.members
                        .iter()
                        .filter(|(_, m)| m.state.in_ring() && m.info.weight == 0)
                        .map(|(n, m)| {
                            let silent = now.saturating_duration_since(m.last_heard);
                            (n.clone(), silent + super::health::BEHIND_FOR)
                        }),
                )
                .map(|(n, silent)| (n, wall.checked_sub(silent).unwrap_or(wall)))
                .collect(),
        }
    }

    /// Every member as readers see it, sorted by name, this node included; `unprobed` is what
    /// each member reported in its last heartbeat.
    pub fn rows(&self, my_weight: u32) -> Vec<MemberRow> {
        let mut rows = vec![MemberRow::local(
            self.me.clone(),
            self.my_addr.clone(),
            self.my_weight(my_weight),
        )];
        rows.extend(self.members.iter().map(|(name, m)| MemberRow {
            name: name.clone(),
            state: m.state,
            address: m.info.addr.clone(),
            weight: m.info.weight,
            local: false,
            unprobed: m.info.unprobed,
        }));
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows
    }

    /// The members in the ring with their addresses (sent in heartbeats, so that peers dial
    /// every member).
    pub fn ring_addrs(&self) -> Vec<PeerAddr> {
        self.members
            .iter()
            .filter(|(_, m)| m.state.in_ring())
            .map(|(n, m)| PeerAddr {
                name: n.to_string(),
                addr: m.info.addr.clone(),
            })
            .collect()
    }

    /// Seconds since `name` was last heard.
    pub fn silence(&self, name: &NodeName, now: Instant) -> Option<Duration> {
        self.members
            .get(name)
            .map(|m| now.saturating_duration_since(m.last_heard))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn n(s: &str) -> NodeName {
        NodeName::new(s).unwrap()
    }

    fn info(addr: &str, inc: u64) -> MemberInfo {
        MemberInfo {
            addr: addr.into(),
            weight: 1,
            incarnation: inc,
            adopted: 0,
            targets: 0,
            unprobed: 0,
            every: None,
            health: 0,
        }
    }

    /// A member that heartbeats this node every 2 s (this node does not watch it).
    fn slow(addr: &str, inc: u64) -> MemberInfo {
        MemberInfo {
            every: Some(2000 * MS),
            ..info(addr, inc)
        }
    }

    /// A member heartbeating every 10 s: it stays alive through these tests without more.
    fn quiet(addr: &str) -> MemberInfo {
        MemberInfo {
            every: Some(10_000 * MS),
            ..info(addr, 1)
        }
    }

    #[test]
    fn a_slow_cadence_member_is_given_its_gap() {
        let t0 = Instant::now();
        let mut t = table();
        t.heard(&n("n2"), slow("a2", 1), t0).unwrap();
        assert!(!t.watches(&n("n2")));
        // suspect_after 1 s + 1.75 s of slack; dead_after 2 s + 1.75 s.
        assert!(run(&mut t, t0 + 2749 * MS).is_empty());
        assert!(matches!(
            run(&mut t, t0 + 2750 * MS)[..],
            [Change::Suspect(..)]
        ));
        assert!(run(&mut t, t0 + 3749 * MS).is_empty());
        assert!(matches!(
            run(&mut t, t0 + 3750 * MS)[..],
            [Change::Dead(_, DeathCause::Silent(_))]
        ));
        // Back to the full rate: the usual bounds again.
        let t1 = t0 + 4000 * MS;
        t.heard(&n("n2"), info("a2", 1), t1).unwrap();
        assert!(t.watches(&n("n2")));
        assert!(matches!(
            run(&mut t, t1 + 1000 * MS)[..],
            [Change::Suspect(..)]
        ));
    }

    #[test]
    fn a_watchers_report_is_confirmed_by_this_nodes_own_silence() {
        let t0 = Instant::now();
        let mut t = table();
        t.heard(&n("n2"), slow("a2", 1), t0).unwrap();
        t.heard(&n("n3"), quiet("a3"), t0).unwrap();
        run(&mut t, t0 + 1000 * MS);
        t.heard(&n("n3"), quiet("a3"), t0 + 1000 * MS).unwrap();
        // n3 reports n2 dead 1 s after n2 was last heard here: 2 s apart is its normal gap, so
        // this node waits until it suspects n2 itself (suspect_after beyond that gap: 2.75 s of
        // silence), then agrees, a second before its own judgement would.
        assert!(!t.reported_dead(&n("n3"), &n("n2"), 1, t0 + 1000 * MS));
        assert!(run(&mut t, t0 + 2500 * MS).is_empty());
        assert_eq!(
            run(&mut t, t0 + 2750 * MS),
            vec![Change::Dead(n("n2"), DeathCause::Reported(n("n3")))]
        );
    }

    #[test]
    fn a_report_is_dropped_when_the_member_is_heard_or_it_expires_or_is_not_for_it() {
        let t0 = Instant::now();
        let mut t = table();
        t.heard(&n("n2"), slow("a2", 1), t0).unwrap();
        t.heard(&n("n3"), quiet("a3"), t0).unwrap();
        // Heard after the report: the report is void (n2 is alive, here at least).
        t.reported_dead(&n("n3"), &n("n2"), 1, t0 + 100 * MS);
        t.heard(&n("n2"), slow("a2", 1), t0 + 200 * MS).unwrap();
        assert!(run(&mut t, t0 + 2200 * MS).is_empty());
        t.heard(&n("n2"), slow("a2", 1), t0 + 2200 * MS).unwrap();
        // Another incarnation, or from a member not in the ring, or unknown: ignored.
        t.reported_dead(&n("n3"), &n("n2"), 2, t0 + 2300 * MS);
        t.reported_dead(&n("n9"), &n("n2"), 1, t0 + 2300 * MS);
        t.reported_dead(&n("n3"), &n("n9"), 1, t0 + 2300 * MS);
        t.heard(&n("n3"), quiet("a3"), t0 + 3000 * MS).unwrap();
        assert!(run(&mut t, t0 + 3000 * MS).is_empty());
        // A report older than dead_after by the time this node's silence would confirm it
        // has expired: n2 then dies by this node's own judgement only.
        let mut t = table();
        t.heard(
            &n("n2"),
            MemberInfo {
                every: Some(9000 * MS),
                ..info("a2", 1)
            },
            t0,
        )
        .unwrap();
        t.heard(&n("n3"), quiet("a3"), t0).unwrap();
        t.reported_dead(&n("n3"), &n("n2"), 1, t0);
        assert!(run(&mut t, t0 + 6000 * MS).is_empty());
        assert!(t.members.get(&n("n2")).unwrap().reported.is_none());
    }

    #[test]
    fn a_report_about_this_node_is_refuted() {
        let t0 = Instant::now();
        let mut t = table();
        t.heard(&n("n3"), info("a3", 1), t0).unwrap();
        assert!(t.reported_dead(&n("n3"), &n("n1"), 5, t0));
        assert!(
            !t.reported_dead(&n("n3"), &n("n1"), 4, t0),
            "an older incarnation of this node"
        );
    }

    /// Ticks `t` every heartbeat interval (250 ms) up to `until`, as the actor does; the
    /// changes of every tick.
    fn run(t: &mut MembershipTable, until: Instant) -> Vec<Change> {
        let mut out = Vec::new();
        let mut at = t.last_tick.map_or(until, |l| l + 250 * MS);
        while at < until {
            out.extend(t.tick(at));
            at += 250 * MS;
        }
        out.extend(t.tick(until));
        out
    }

    fn table() -> MembershipTable {
        table_of("n1", "127.0.1.1:4701", 5)
    }

    fn table_of(name: &str, addr: &str, incarnation: u64) -> MembershipTable {
        MembershipTable::new(
            n(name),
            addr.into(),
            incarnation,
            Detector {
                suspect_after: 1000 * MS,
                dead_after: 2000 * MS,
                tick: 250 * MS,
            },
        )
    }

    #[test]
    fn join_suspect_recover_die() {
        let t0 = Instant::now();
        let mut t = table();
        assert_eq!(
            t.heard(&n("n2"), info("a2", 1), t0).unwrap(),
            vec![Change::Joined(n("n2"))]
        );
        assert_eq!(t.version(), 2);
        assert!(run(&mut t, t0 + 999 * MS).is_empty());
        assert_eq!(
            run(&mut t, t0 + 1000 * MS),
            vec![Change::Suspect(n("n2"), 1000 * MS)]
        );
        assert_eq!(t.version(), 2, "suspicion does not change the ring");
        assert_eq!(t.ring_members(1).len(), 2);
        assert_eq!(
            t.heard(&n("n2"), info("a2", 1), t0 + 1500 * MS).unwrap(),
            vec![Change::Recovered(n("n2"))]
        );
        assert!(run(&mut t, t0 + 2400 * MS).is_empty());
        assert_eq!(
            run(&mut t, t0 + 3500 * MS),
            vec![
                Change::Suspect(n("n2"), 1150 * MS),
                Change::Dead(n("n2"), DeathCause::Silent(2000 * MS))
            ]
        );
        assert_eq!(t.version(), 3);
        assert_eq!(t.ring_members(1).len(), 1);
        // Heard again: back in.
        assert_eq!(
            t.heard(&n("n2"), info("a2", 1), t0 + 9000 * MS).unwrap(),
            vec![Change::Joined(n("n2"))]
        );
        assert_eq!(t.version(), 4);
    }

    #[test]
    fn a_lost_link_is_confirmed_by_a_redial_before_anything_moves() {
        let t0 = Instant::now();
        let mut t = table();
        t.heard(&n("n2"), info("a2", 1), t0).unwrap();
        t.heard(&n("n3"), info("a3", 1), t0).unwrap();
        let v = t.version();
        // A reset link: redialled, heard again, nothing moved.
        let (c, addr) = t.link_lost(&n("n2"), t0).unwrap();
        assert_eq!((c, addr.as_str()), (Change::LinkLost(n("n2")), "a2"));
        assert_eq!(t.link_lost(&n("n2"), t0), None, "once per loss");
        assert!(run(&mut t, t0 + LINK_CONFIRM / 2).is_empty());
        assert_eq!(
            t.heard(&n("n2"), info("a2", 1), t0 + LINK_CONFIRM / 2)
                .unwrap(),
            vec![Change::LinkRestored(n("n2"))]
        );
        assert!(
            run(&mut t, t0 + LINK_CONFIRM).is_empty(),
            "confirmed: no death later"
        );
        assert_eq!(t.version(), v, "the ring never changed");
        // A crash: the redial is refused, death at once.
        t.link_lost(&n("n3"), t0).unwrap();
        assert_eq!(t.redial_failed("a9"), None, "another address");
        assert_eq!(
            t.redial_failed("a3"),
            Some(Change::Dead(n("n3"), DeathCause::Disconnected))
        );
        // No answer over the redial within LINK_CONFIRM: dead too.
        let t1 = t0 + Duration::from_secs(1);
        t.heard(&n("n2"), info("a2", 1), t1).unwrap();
        t.link_lost(&n("n2"), t1).unwrap();
        assert_eq!(
            run(&mut t, t1 + LINK_CONFIRM),
            vec![Change::Dead(n("n2"), DeathCause::Disconnected)]
        );
    }

    #[test]
    fn a_closed_connection_is_death_at_once() {
        let t0 = Instant::now();
        let mut t = table();
        t.heard(&n("n2"), info("a2", 1), t0).unwrap();
        assert_eq!(
            t.disconnected(&n("n2")),
            Some(Change::Dead(n("n2"), DeathCause::Disconnected))
        );
        assert_eq!(t.disconnected(&n("n2")), None);
        assert_eq!(t.state_of(&n("n2")), Some(MemberState::Dead));
    }

    #[test]
    fn duplicate_names_are_refused_and_restarts_accepted() {
        let t0 = Instant::now();
        let mut t = table();
        t.heard(&n("n2"), info("127.0.1.2:4701", 10), t0).unwrap();
        let dup = t
            .heard(&n("n2"), info("127.0.1.9:4701", 11), t0)
            .unwrap_err();
        assert_eq!(dup.holder, "127.0.1.2:4701");
        assert_eq!(dup.newcomer, "127.0.1.9:4701");
        // Same address, newer incarnation: the node restarted.
        assert_eq!(
            t.heard(&n("n2"), info("127.0.1.2:4701", 12), t0).unwrap(),
            vec![Change::Restarted(n("n2"))]
        );
        // Stale messages of an old incarnation change nothing.
        assert!(t
            .heard(&n("n2"), info("127.0.1.2:4701", 10), t0)
            .unwrap()
            .is_empty());
        // Once the holder is dead, the name is free to move.
        t.disconnected(&n("n2"));
        assert!(t.heard(&n("n2"), info("127.0.1.9:4701", 13), t0).is_ok());
        // The leave of a refused duplicate (another incarnation) does not take the holder out.
        assert_eq!(t.left(&n("n2"), 11), None);
        assert_eq!(t.state_of(&n("n2")), Some(MemberState::Alive));
    }

    #[test]
    fn this_nodes_own_name_stays_with_the_node_started_first() {
        let t0 = Instant::now();
        let mut t = table(); // n1 at 127.0.1.1:4701, incarnation 5
        let later = t
            .heard(&n("n1"), info("127.0.1.7:4701", 6), t0)
            .unwrap_err();
        assert!(!later.newcomer_is_me);
        assert_eq!(
            (later.holder.as_str(), later.newcomer.as_str()),
            ("127.0.1.1:4701", "127.0.1.7:4701")
        );
        let earlier = t
            .heard(&n("n1"), info("127.0.1.7:4701", 4), t0)
            .unwrap_err();
        assert!(
            earlier.newcomer_is_me,
            "a node started earlier holds the name: this one stops"
        );
        assert_eq!(earlier.holder_incarnation, 4);
        // Started in the same millisecond: the smaller address keeps it.
        assert!(
            !t.heard(&n("n1"), info("127.0.1.7:4701", 5), t0)
                .unwrap_err()
                .newcomer_is_me
        );
        assert!(
            t.heard(&n("n1"), info("127.0.1.0:4701", 5), t0)
                .unwrap_err()
                .newcomer_is_me
        );
        assert!(t
            .heard(&n("n1"), info("127.0.1.1:4701", 9), t0)
            .unwrap()
            .is_empty());
        // A refusal stops this node only when the holder it names started first.
        assert!(t
            .refusal("127.0.1.7:4701", 4)
            .is_some_and(|d| d.newcomer_is_me));
        assert_eq!(t.refusal("127.0.1.7:4701", 6), None);
        assert_eq!(
            t.refusal("127.0.1.1:4701", 1),
            None,
            "this node's own address"
        );
    }

    #[test]
    fn a_third_member_sides_with_the_node_started_first() {
        let t0 = Instant::now();
        let mut t = table();
        t.heard(&n("n2"), info("127.0.1.2:4701", 10), t0).unwrap();
        // A claimant started earlier (its clock is behind, or it started first and this node
        // heard the other first) takes the name over; the other is now the duplicate.
        assert_eq!(
            t.heard(&n("n2"), info("127.0.1.9:4701", 9), t0).unwrap(),
            vec![Change::Restarted(n("n2"))]
        );
        let dup = t
            .heard(&n("n2"), info("127.0.1.2:4701", 10), t0)
            .unwrap_err();
        assert_eq!(
            (dup.holder.as_str(), dup.newcomer.as_str()),
            ("127.0.1.9:4701", "127.0.1.2:4701")
        );
        assert_eq!(t.ring_members(1).len(), 2, "no member left or died over it");
    }

    #[test]
    fn leaving_members_stay_out_until_they_restart() {
        let t0 = Instant::now();
        let mut t = table();
        t.heard(&n("n2"), info("a2", 5), t0).unwrap();
        assert_eq!(t.left(&n("n2"), 5), Some(Change::Left(n("n2"))));
        assert!(t.heard(&n("n2"), info("a2", 5), t0).unwrap().is_empty());
        assert_eq!(t.ring_members(1).len(), 1);
        assert!(
            run(&mut t, t0 + 10_000 * MS).is_empty(),
            "a left member is not declared dead"
        );
        assert_eq!(
            t.heard(&n("n2"), info("a2", 6), t0).unwrap(),
            vec![Change::Joined(n("n2"))]
        );
    }

    #[test]
    fn adopted_digests_are_tracked() {
        let t0 = Instant::now();
        let mut t = table();
        t.heard(&n("n2"), info("a2", 1), t0).unwrap();
        let mut i = info("a2", 1);
        i.adopted = 42;
        assert_eq!(
            t.heard(&n("n2"), i, t0).unwrap(),
            vec![Change::Adopted(n("n2"), 42)]
        );
        assert_eq!(t.adopted().get(&n("n2")), Some(&42));
    }

    #[test]
    fn a_weight_change_changes_the_ring() {
        let t0 = Instant::now();
        let mut t = table();
        t.heard(&n("n2"), info("a2", 1), t0).unwrap();
        let v = t.version();
        let handing_off = MemberInfo {
            weight: 0,
            ..info("a2", 1)
        };
        assert_eq!(
            t.heard(&n("n2"), handing_off, t0).unwrap(),
            vec![Change::Reweighted(n("n2"), 0)]
        );
        assert!(t.version() > v);
        assert_eq!(t.ring_members(1)[&n("n2")], 0);
        // Its targets' slots since it fell behind count as missed for whoever gains them.
        let wall = SystemTime::now();
        let view = t.view(1, t0, wall);
        assert_eq!(view.dead[&n("n2")], wall - super::super::health::BEHIND_FOR);
    }

    #[test]
    fn target_sets_are_reported_when_they_change() {
        let t0 = Instant::now();
        let mut t = table();
        let with = |targets: u64| MemberInfo {
            targets,
            ..info("a2", 1)
        };
        assert_eq!(
            t.heard(&n("n2"), with(9), t0).unwrap(),
            vec![Change::Joined(n("n2"))]
        );
        assert!(t.heard(&n("n2"), with(9), t0).unwrap().is_empty());
        assert_eq!(
            t.heard(&n("n2"), with(8), t0).unwrap(),
            vec![Change::TargetSet(n("n2"), 8)]
        );
        assert_eq!(t.target_sets(), BTreeMap::from([(n("n2"), 8)]));
        t.disconnected(&n("n2"));
        assert!(
            t.target_sets().is_empty(),
            "a dead member's set does not count"
        );
    }

    #[test]
    fn the_view_and_rows_show_every_member_as_it_stands() {
        let t0 = Instant::now();
        let wall = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut t = table();
        let mut i2 = info("a2", 1);
        i2.unprobed = 3;
        t.heard(&n("n2"), i2, t0).unwrap();
        t.heard(&n("n3"), info("a3", 1), t0).unwrap();
        t.disconnected(&n("n3"));
        let later = t0 + 500 * MS;
        let v = t.view(5, later, wall);
        assert_eq!(v.members.keys().collect::<Vec<_>>(), [&n("n1"), &n("n2")]);
        assert_eq!(v.members[&n("n1")], 5);
        // n3 was last heard 500 ms before `wall`.
        assert_eq!(v.dead[&n("n3")], wall - 500 * MS);
        let rows = t.rows(5);
        let summary: Vec<(&str, MemberState, bool, u64)> = rows
            .iter()
            .map(|r| (r.name.as_str(), r.state, r.local, r.unprobed))
            .collect();
        assert_eq!(
            summary,
            [
                ("n1", MemberState::Alive, true, 0),
                ("n2", MemberState::Alive, false, 3),
                ("n3", MemberState::Dead, false, 0),
            ]
        );
        assert_eq!(t.ring_addrs().len(), 1);
    }

    proptest::proptest! {
        /// Two nodes claim one name; each and a third member hear the claims in any order.
        /// All three name the same holder, it is the node started first (then the smaller
        /// address), and the holder's own table never tells it to stop.
        #[test]
        fn every_member_names_the_same_holder(
            inc_a in 0u64..4, inc_b in 0u64..4, a_first in proptest::bool::ANY,
        ) {
            let t0 = Instant::now();
            let (addr_a, addr_b) = ("127.0.1.1:4701", "127.0.1.2:4701");
            let mut a = table_of("x", addr_a, inc_a);
            let mut b = table_of("x", addr_b, inc_b);
            let mut third = table_of("t", "127.0.1.3:4701", 0);
            let holder = if holds_name((inc_a, addr_a), (inc_b, addr_b)) { addr_a } else { addr_b };
            let da = a.heard(&n("x"), info(addr_b, inc_b), t0).unwrap_err();
            let db = b.heard(&n("x"), info(addr_a, inc_a), t0).unwrap_err();
            proptest::prop_assert_eq!(da.holder.as_str(), holder);
            proptest::prop_assert_eq!(db.holder.as_str(), holder);
            proptest::prop_assert_eq!(da.newcomer_is_me, holder == addr_b);
            proptest::prop_assert_eq!(db.newcomer_is_me, holder == addr_a);
            let order = if a_first { [(addr_a, inc_a), (addr_b, inc_b)] } else { [(addr_b, inc_b), (addr_a, inc_a)] };
            let mut refused = Vec::new();
            for _ in 0..2 {
                for (addr, inc) in order {
                    if let Err(d) = third.heard(&n("x"), info(addr, inc), t0) {
                        proptest::prop_assert_eq!(d.holder.as_str(), holder);
                        refused.push(d.newcomer);
                    }
                }
            }
            proptest::prop_assert!(refused.iter().all(|r| r != holder));
            proptest::prop_assert!(!refused.is_empty(), "the duplicate is refused");
        }
    }

    #[test]
    fn a_node_that_falls_behind_does_not_accuse_the_others() {
        let t0 = Instant::now();
        let mut t = table();
        t.heard(&n("n2"), info("a2", 1), t0).unwrap();
        t.heard(&n("n3"), info("a3", 1), t0).unwrap();
        assert!(run(&mut t, t0 + 500 * MS).is_empty());
        // This node is starved for 5 s: its next tick is that late. The members were not
        // silent for 5 s of this node's time: nobody is suspect, nobody dies.
        let late = t0 + 5500 * MS;
        assert_eq!(t.tick(late), vec![Change::Lagging(5000 * MS)]);
        assert_eq!(t.ring_members(1).len(), 3);
        // Heard again soon after: all stays well; the report is not repeated within 10 s.
        t.heard(&n("n2"), info("a2", 1), late + 100 * MS).unwrap();
        t.heard(&n("n3"), info("a3", 1), late + 100 * MS).unwrap();
        assert!(run(&mut t, late + 500 * MS).is_empty());
        assert!(!t
            .tick(late + 3000 * MS)
            .contains(&Change::Lagging(2500 * MS)));
        // A member that really stays silent is still found dead, on this node's own time,
        // once this node's local health recovers (a point a second: `membership::health`).
        let dead = |c: &Change| matches!(c, Change::Dead(m, _) if *m == n("n2"));
        let changes = run(&mut t, late + 6000 * MS);
        assert!(!changes.iter().any(dead), "still behind: {changes:?}");
        let changes = run(&mut t, late + 12_000 * MS);
        assert!(changes.iter().any(dead), "{changes:?}");
    }

    /// Stopped 1.5 s and running 0.5 s, over and over, from `at`, `cycles` times: the changes.
    fn stutter(t: &mut MembershipTable, at: &mut Instant, cycles: u32) -> Vec<Change> {
        let mut out = Vec::new();
        for _ in 0..cycles {
            *at += 1500 * MS;
            out.extend(t.tick(*at));
            for _ in 0..2 {
                *at += 250 * MS;
                out.extend(t.tick(*at));
            }
        }
        out
    }

    #[test]
    fn a_stuttering_node_accuses_nobody_and_hands_its_targets_off() {
        let t0 = Instant::now();
        let mut t = table();
        t.heard(&n("n2"), info("a2", 1), t0).unwrap();
        t.heard(&n("n3"), info("a3", 1), t0).unwrap();
        run(&mut t, t0 + 250 * MS);
        // The healthy members close their links to it (they declared it dead) and its redials
        // do not get through while it stutters: 50 s without a word from either (it hands off
        // once past its start-up grace).
        t.link_lost(&n("n2"), t0 + 250 * MS);
        t.link_lost(&n("n3"), t0 + 250 * MS);
        let mut at = t0 + 250 * MS;
        let changes = stutter(&mut t, &mut at, 25);
        assert!(
            !changes.iter().any(|c| matches!(c, Change::Dead(..))),
            "{changes:?}"
        );
        assert!(
            changes
                .iter()
                .any(|c| matches!(c, Change::Pace(Pace::Behind(_)))),
            "{changes:?}"
        );
        assert_eq!(t.my_weight(3), 0);
        assert_eq!(t.ring_members(3)[&n("n1")], 0, "its ring leaves it out");
        // A refused redial is still death: nothing listens there.
        assert!(t.redial_failed("a3").is_some());
        // Running on time again, and heard again: it takes its targets back, once.
        t.heard(&n("n2"), info("a2", 1), at).unwrap();
        let mut changes = Vec::new();
        for _ in 0..(30_000 / 250) {
            at += 250 * MS;
            t.heard(&n("n2"), info("a2", 1), at).unwrap();
            changes.extend(t.tick(at));
        }
        assert_eq!(
            changes
                .iter()
                .filter(|c| matches!(c, Change::Pace(_)))
                .collect::<Vec<_>>(),
            vec![&Change::Pace(Pace::KeepingUp)]
        );
        assert_eq!(t.my_weight(3), 3);
    }

    #[test]
    fn a_node_hands_nothing_off_while_others_are_behind_too() {
        let t0 = Instant::now();
        let mut t = table();
        let behind = |addr: &str| MemberInfo {
            health: 6,
            ..info(addr, 1)
        };
        t.heard(&n("n2"), behind("a2"), t0).unwrap();
        t.heard(&n("n3"), behind("a3"), t0).unwrap();
        let mut at = t0;
        let changes = stutter(&mut t, &mut at, 15);
        assert!(!changes.iter().any(|c| matches!(c, Change::Pace(_))));
        assert_eq!(t.my_weight(3), 3);
    }

    #[test]
    fn many_members_silent_at_once_die_later_but_a_few_die_on_time() {
        let t0 = Instant::now();
        let mut t = table();
        for i in 2..=9 {
            t.heard(&n(&format!("n{i}")), info(&format!("a{i}"), 1), t0)
                .unwrap();
        }
        // Two of eight silent: individual failures, dead after dead_after.
        let t1 = t0 + 500 * MS;
        for i in 4..=9 {
            t.heard(&n(&format!("n{i}")), info(&format!("a{i}"), 1), t1)
                .unwrap();
        }
        let mut at = t1;
        while at < t0 + 2000 * MS {
            at += 250 * MS;
            for i in 4..=9 {
                t.heard(&n(&format!("n{i}")), info(&format!("a{i}"), 1), at)
                    .unwrap();
            }
            t.tick(at);
        }
        assert_eq!(t.state_of(&n("n2")), Some(MemberState::Dead));
        // All eight silent at once (the machine stalls): nobody dies within dead_after, and
        // the stall is reported; a silence of four times dead_after is still death.
        let t2 = at;
        for i in 2..=9 {
            t.heard(&n(&format!("n{i}")), info(&format!("a{i}"), 1), t2)
                .unwrap();
        }
        let changes = run(&mut t, t2 + 3000 * MS);
        assert!(
            changes
                .iter()
                .any(|c| matches!(c, Change::WidespreadSilence(8, 8))),
            "{changes:?}"
        );
        assert!(
            !changes.iter().any(|c| matches!(c, Change::Dead(..))),
            "{changes:?}"
        );
        let changes = run(&mut t, t2 + 8000 * MS);
        assert_eq!(
            changes
                .iter()
                .filter(|c| matches!(c, Change::Dead(..)))
                .count(),
            8
        );
    }
}
