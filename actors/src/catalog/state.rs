//! What this node knows of every alive member's target set, and how it catches up. Pure: the
//! actor feeds it heartbeats' digests, fetch replies and time, and carries out the
//! [`Fetch`]es it returns.
//!
//! # Catching up with a member
//! A member announces its set's digest in every heartbeat. When the digest is this node's own,
//! its set is this node's (nothing to fetch, nothing stored twice). When it is the digest of
//! the set held for it, nothing changed. Otherwise this node asks the member for its 4,096
//! bucket digests, then for the buckets that differ from the nearer of what it holds for the
//! member and its own set, at most [`BUCKETS_PER_FETCH`] buckets per question, one question in
//! flight per member. A member whose set changed during the fetch is fetched again; a question
//! unanswered within [`FETCH_TIMEOUT`] is asked again at the next tick. Until a member's set is
//! known (a member just joined), this node holds the last set it knew (none for a newcomer).
//!
//! # The view
//! The union of the held sets: every target some alive member lists, which members list it,
//! this node's spec of it when it lists it, and a digest of the whole view (the members and the
//! digests of the sets held for them). Two nodes that hold the same sets have the same view and
//! the same digest; the ring owner's hand-off waits for every member's view to agree.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xxhash_rust::xxh3::Xxh3;

pub use super::set::Drift;
use super::set::{bucket_digest, set_digest, BucketedSet, Entry, TargetList, BUCKETS};
use crate::model::{NodeName, TargetKey, TargetSpec};
use crate::ring::placement::Ring;

/// Buckets asked for in one question, at most (a reply of some hundreds of KiB at 100,000
/// targets).
pub const BUCKETS_PER_FETCH: usize = 256;
/// An unanswered question is asked again after this.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a view in which the members' sets disagree is held back when the last view sent
/// had them agree and the same members: long enough for members reloaded at the same moment
/// (a config pushed everywhere) to parse their new lists and announce them in a heartbeat, so
/// the ring is rebuilt once, for the agreed sets, not twice.
pub const SETTLE: Duration = Duration::from_secs(1);

/// A question for a member about its set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetch {
    /// Its bucket digests.
    Digests(NodeName),
    /// The entries of these buckets.
    Buckets(NodeName, Vec<u16>),
}

/// A member as this node knows it.
#[derive(Debug)]
struct Member {
    /// Its set as held here.
    held: Arc<BucketedSet>,
    /// The digest it last announced.
    announced: u64,
    /// A catch-up in progress.
    sync: Option<Sync>,
}

/// A catch-up in progress with one member.
#[derive(Debug)]
struct Sync {
    /// When the question in flight was asked (None: none in flight).
    asked: Option<Instant>,
    /// Its bucket digests, once answered; the set being built from `base`, and the buckets
    /// still to ask for.
    target: Option<(Vec<u64>, u64)>,
    building: Option<BucketedSet>,
    to_fetch: Vec<u16>,
}

/// One target of the view.
#[derive(Clone, Debug)]
pub struct ViewTarget {
    /// Its key.
    pub key: TargetKey,
    /// The members listing it (indexes into [`CatalogView::members`]); `None`: all of them.
    pub listed: Option<Vec<u16>>,
    /// This node's spec, when it lists it.
    pub own: Option<Arc<TargetSpec>>,
}

/// The targets cluster-wide as this node knows them.
#[derive(Clone, Debug)]
pub struct CatalogView {
    /// The members whose sets make the view, sorted (this node included).
    pub members: Vec<NodeName>,
    /// Every target some member lists, in bucket then key order.
    pub targets: Vec<ViewTarget>,
    /// Digest of the view: the members and their sets' digests as held.
    pub digest: u64,
    /// How each other member's set differs from this node's (members whose set is known as
    /// announced).
    pub drift: BTreeMap<NodeName, Drift>,
    /// Targets not listed by every member.
    pub not_everywhere: usize,
    /// Each member's set digest and size, as held.
    pub sets: BTreeMap<NodeName, (u64, usize)>,
    /// Members whose announced set is still being fetched (what is held for them is older,
    /// or empty for a newcomer).
    pub catching_up: Vec<NodeName>,
}

/// The view in brief, for status and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatalogSummary {
    /// The view's digest.
    pub digest: u64,
    /// Targets cluster-wide (the union).
    pub targets: usize,
    /// Targets not listed by every member.
    pub not_everywhere: usize,
    /// Each member's set digest and size, as held here.
    pub sets: BTreeMap<NodeName, (u64, usize)>,
    /// How each other member's set differs from this node's.
    pub drift: BTreeMap<NodeName, Drift>,
    /// True when every member's set is known as announced.
    pub in_step: bool,
}

impl CatalogView {
    /// Which members of `ring` may own each target (ascending ring indexes; `None`: every
    /// member of the ring): the target's listers that are in the ring.
    pub fn eligibility(&self, ring: &Ring) -> Vec<Option<Vec<u16>>> {
        let to_ring: Vec<Option<u16>> = self.members.iter().map(|n| ring.index_of(n)).collect();
        let mut everyone: Vec<u16> = to_ring.iter().flatten().copied().collect();
        everyone.sort_unstable();
        let all_in_ring = everyone.len() == ring.members().len();
        self.targets
            .iter()
            .map(|t| match &t.listed {
                None if all_in_ring => None,
                None => Some(everyone.clone()),
                Some(by) => {
                    let mut e: Vec<u16> = by
                        .iter()
                        .filter_map(|&i| to_ring.get(usize::from(i)).copied().flatten())
                        .collect();
                    e.sort_unstable();
                    if e.len() == ring.members().len() {
                        None
                    } else {
                        Some(e)
                    }
                }
            })
            .collect()
    }

    /// The digest this view would have without `member`'s set: the view the other members
    /// hold once `member` has left (a leaving node waits for them to adopt it).
    pub fn digest_without(&self, member: &NodeName) -> u64 {
        digest_of(
            (self.sets.iter())
                .filter(|(n, _)| *n != member)
                .map(|(n, (d, _))| (n, *d)),
        )
    }

    /// The members listing target `i`, by name.
    pub fn listers(&self, i: usize) -> Vec<NodeName> {
        match &self.targets[i].listed {
            None => self.members.clone(),
            Some(by) => by
                .iter()
                .filter_map(|&m| self.members.get(usize::from(m)).cloned())
                .collect(),
        }
    }

    /// The view in brief.
    pub fn summary(&self, in_step: bool) -> CatalogSummary {
        CatalogSummary {
            digest: self.digest,
            targets: self.targets.len(),
            not_everywhere: self.not_everywhere,
            sets: self.sets.clone(),
            drift: self.drift.clone(),
            in_step,
        }
    }
}

/// What the last view sent to the ring owner was.
#[derive(Debug)]
struct Sent {
    digest: u64,
    agreed: bool,
    members: Vec<NodeName>,
}

/// This node's knowledge of every alive member's target set.
#[derive(Debug)]
pub struct Catalog {
    me: NodeName,
    own: Arc<BucketedSet>,
    own_specs: HashMap<TargetKey, Arc<TargetSpec>>,
    others: BTreeMap<NodeName, Member>,
    /// The last view sent: its digest, whether the members agreed, and who they were.
    sent: Option<Sent>,
    /// When the sets began to disagree, while a view is held back.
    settling_since: Option<Instant>,
}

impl Catalog {
    /// A catalog of node `me`, listing `targets`.
    pub fn new(me: NodeName, targets: &[Arc<TargetSpec>]) -> Self {
        let mut c = Catalog {
            me,
            own: Arc::default(),
            own_specs: HashMap::new(),
            others: BTreeMap::new(),
            sent: None,
            settling_since: None,
        };
        c.set_own(&TargetList::of(targets.into()));
        c
    }

    /// This node's set.
    pub fn own(&self) -> &Arc<BucketedSet> {
        &self.own
    }

    /// This node lists `targets` now (a reload). Members that announced this set now share it.
    pub fn set_own(&mut self, list: &TargetList) {
        self.own = list.set.clone();
        self.own_specs = list.specs.iter().map(|t| (t.key(), t.clone())).collect();
        for m in self.others.values_mut() {
            if m.announced == self.own.digest {
                m.held = self.own.clone();
                m.sync = None;
            }
        }
    }

    /// The alive members other than this node and the digests they last announced; members
    /// not named are gone (their sets no longer count).
    pub fn members(&mut self, announced: &BTreeMap<NodeName, u64>, now: Instant) -> Vec<Fetch> {
        self.others.retain(|n, _| announced.contains_key(n));
        for (name, digest) in announced {
            if *name == self.me {
                continue;
            }
            let m = self.others.entry(name.clone()).or_insert_with(|| Member {
                held: Arc::new(BucketedSet::default()),
                announced: *digest,
                sync: None,
            });
            m.announced = *digest;
            if *digest == self.own.digest {
                m.held = self.own.clone();
                m.sync = None;
            } else if *digest == m.held.digest {
                m.sync = None;
            }
        }
        self.tick(now)
    }

    /// Questions due now: for members out of step with no question in flight, or one that went
    /// unanswered too long.
    pub fn tick(&mut self, now: Instant) -> Vec<Fetch> {
        let mut out = Vec::new();
        for (name, m) in &mut self.others {
            if m.announced == m.held.digest {
                continue;
            }
            let sync = m.sync.get_or_insert(Sync {
                asked: None,
                target: None,
                building: None,
                to_fetch: Vec::new(),
            });
            match sync.asked {
                Some(at) if now.saturating_duration_since(at) < FETCH_TIMEOUT => continue,
                Some(_) => {
                    // Unanswered: start again.
                    *sync = Sync {
                        asked: None,
                        target: None,
                        building: None,
                        to_fetch: Vec::new(),
                    };
                }
                None => {}
            }
            sync.asked = Some(now);
            out.push(match &sync.target {
                None => Fetch::Digests(name.clone()),
                Some(_) => Fetch::Buckets(name.clone(), next_chunk(&mut sync.to_fetch)),
            });
        }
        out
    }

    /// A question to `member` failed (no answer, an error, a version that does not know the
    /// question): it is asked again after [`FETCH_TIMEOUT`].
    pub fn failed(&mut self, member: &NodeName) {
        if let Some(s) = self.others.get_mut(member).and_then(|m| m.sync.as_mut()) {
            s.target = None;
            s.building = None;
            s.to_fetch.clear();
            // Leave `asked` set: tick asks again once the timeout has passed.
        }
    }

    /// `member` answered with its bucket digests and set digest. Returns the next question, and
    /// true when the view changed.
    pub fn digests(
        &mut self,
        member: &NodeName,
        digests: Vec<u64>,
        digest: u64,
        now: Instant,
    ) -> (Vec<Fetch>, bool) {
        let own = self.own.clone();
        let Some(m) = self.others.get_mut(member) else {
            return (Vec::new(), false);
        };
        let Some(sync) = m.sync.as_mut() else {
            return (Vec::new(), false);
        };
        if digests.len() != BUCKETS || set_digest(&digests) != digest {
            sync.asked = Some(now - FETCH_TIMEOUT); // malformed: ask again at the next tick
            return (Vec::new(), false);
        }
        if digest == own.digest || digest == m.held.digest {
            let changed = m.held.digest != digest;
            if digest == own.digest {
                m.held = own;
            }
            m.sync = None;
            return (Vec::new(), changed);
        }
        // Build from whichever of the held set and this node's own differs in fewer buckets.
        let from_held = m.held.differing(&digests);
        let from_own = own.differing(&digests);
        let (base, to_fetch) = if from_own.len() < from_held.len() {
            ((*own).clone(), from_own)
        } else {
            ((*m.held).clone(), from_held)
        };
        sync.target = Some((digests, digest));
        sync.building = Some(base);
        sync.to_fetch = to_fetch;
        sync.asked = Some(now);
        let chunk = next_chunk(&mut sync.to_fetch);
        (vec![Fetch::Buckets(member.clone(), chunk)], false)
    }

    /// `member` answered with the entries of some buckets. Returns the next question, and true
    /// when the member's set is now known in full (and the view changed).
    pub fn buckets(
        &mut self,
        member: &NodeName,
        contents: Vec<(u16, Vec<Entry>)>,
        now: Instant,
    ) -> (Vec<Fetch>, bool) {
        let Some(m) = self.others.get_mut(member) else {
            return (Vec::new(), false);
        };
        let Some(sync) = m.sync.as_mut() else {
            return (Vec::new(), false);
        };
        let (Some((digests, digest)), Some(building)) = (&sync.target, sync.building.as_mut())
        else {
            return (Vec::new(), false);
        };
        for (b, mut entries) in contents {
            let b = usize::from(b);
            if b >= BUCKETS {
                continue;
            }
            entries.sort_unstable();
            entries.dedup_by(|a, b| a.probe == b.probe && a.id == b.id);
            building.digests[b] = bucket_digest(&entries);
            building.entries[b] = entries;
        }
        if !sync.to_fetch.is_empty() {
            sync.asked = Some(now);
            let chunk = next_chunk(&mut sync.to_fetch);
            return (vec![Fetch::Buckets(member.clone(), chunk)], false);
        }
        building.count = building.entries.iter().map(Vec::len).sum();
        building.digest = set_digest(&building.digests);
        if building.digests != *digests || building.digest != *digest {
            // The member changed its set meanwhile: start again.
            m.sync = None;
            return (self.tick(now), false);
        }
        let built = sync.building.take().unwrap_or_default();
        m.held = Arc::new(built);
        m.sync = None;
        (Vec::new(), true)
    }

    /// True when every other member announced this node's set.
    pub fn agreed(&self) -> bool {
        self.others.values().all(|m| m.announced == self.own.digest)
    }

    /// The view with `digest` was sent: later changes and disagreements are measured
    /// against it.
    pub fn sent(&mut self, digest: u64) {
        self.sent = Some(Sent {
            digest,
            agreed: self.agreed(),
            members: self.others.keys().cloned().collect(),
        });
        self.settling_since = None;
    }

    /// True when the view now differs from the last one sent (or none was sent).
    pub fn view_changed(&self) -> bool {
        self.sent.as_ref().map(|s| s.digest) != Some(self.view_digest())
    }

    /// Until when to hold the view back, if at all: while the sets have disagreed for less
    /// than [`SETTLE`] and the last view sent had them agree among the same members. A change
    /// of members (a death, a join) or a return to agreement is never held back.
    pub fn hold_until(&mut self, now: Instant) -> Option<Instant> {
        let same_members = self
            .sent
            .as_ref()
            .is_some_and(|s| s.agreed && s.members.iter().eq(self.others.keys()));
        if self.agreed() || !same_members {
            self.settling_since = None;
            return None;
        }
        let until = *self.settling_since.get_or_insert(now) + SETTLE;
        (now < until).then_some(until)
    }

    /// True when every member's set is known as announced.
    pub fn in_step(&self) -> bool {
        self.others.values().all(|m| m.held.digest == m.announced)
    }

    /// The members whose sets make the view (sorted, this node included) and the sets held
    /// for them.
    fn sets(&self) -> (Vec<NodeName>, Vec<&Arc<BucketedSet>>) {
        let mut members: Vec<NodeName> = self.others.keys().cloned().collect();
        members.push(self.me.clone());
        members.sort();
        let sets = members
            .iter()
            .map(|n| self.others.get(n).map_or(&self.own, |m| &m.held))
            .collect();
        (members, sets)
    }

    /// The digest of the view, without building it: the members and their sets' digests.
    pub fn view_digest(&self) -> u64 {
        let (members, sets) = self.sets();
        digest_of(members.iter().zip(sets.iter().map(|s| s.digest)))
    }

    /// The view: the union of the held sets.
    pub fn view(&self) -> CatalogView {
        let digest = self.view_digest();
        let (members, sets) = self.sets();
        let sets: Vec<(&NodeName, &Arc<BucketedSet>)> = members.iter().zip(sets).collect();
        let everyone_same = sets.iter().all(|(_, s)| Arc::ptr_eq(s, &self.own));
        let mut targets = Vec::new();
        let mut not_everywhere = 0;
        for b in 0..BUCKETS {
            if everyone_same {
                for e in &self.own.entries[b] {
                    targets.push(self.target(e.key(), None));
                }
                continue;
            }
            // Merge the members' entries of this bucket, by key.
            let mut listed: BTreeMap<TargetKey, Vec<u16>> = BTreeMap::new();
            for (i, (_, s)) in sets.iter().enumerate() {
                for e in &s.entries[b] {
                    listed.entry(e.key()).or_default().push(i as u16);
                }
            }
            for (key, by) in listed {
                let all = by.len() == sets.len();
                if !all {
                    not_everywhere += 1;
                }
                targets.push(self.target(key, (!all).then_some(by)));
            }
        }
        // Only of members whose set is known as announced: what is held for one still being
        // fetched (nothing, for a newcomer) would say the wrong thing.
        let drift = self
            .others
            .iter()
            .filter(|(_, m)| m.held.digest == m.announced)
            .map(|(n, m)| (n.clone(), self.own.drift_to(&m.held)))
            .collect();
        let catching_up = self
            .others
            .iter()
            .filter(|(_, m)| m.held.digest != m.announced)
            .map(|(n, _)| n.clone())
            .collect();
        CatalogView {
            catching_up,
            sets: sets
                .iter()
                .map(|(n, s)| ((*n).clone(), (s.digest, s.count)))
                .collect(),
            members,
            targets,
            digest,
            drift,
            not_everywhere,
        }
    }

    fn target(&self, key: TargetKey, listed: Option<Vec<u16>>) -> ViewTarget {
        ViewTarget {
            own: self.own_specs.get(&key).cloned(),
            key,
            listed,
        }
    }
}

/// The digest of a view made of these members (in name order) and their sets' digests.
fn digest_of<'a>(sets: impl Iterator<Item = (&'a NodeName, u64)>) -> u64 {
    let mut h = Xxh3::new();
    for (n, d) in sets {
        h.update(n.as_str().as_bytes());
        h.update(&[0]);
        h.update(&d.to_le_bytes());
    }
    h.digest()
}

/// The next question's buckets, taken from the front of `to_fetch`.
fn next_chunk(to_fetch: &mut Vec<u16>) -> Vec<u16> {
    let n = to_fetch.len().min(BUCKETS_PER_FETCH);
    to_fetch.drain(..n).collect()
}

#[cfg(test)]
mod tests;
