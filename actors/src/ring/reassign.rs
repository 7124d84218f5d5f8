//! Reassignment: how ownership changes from one placement to the next. Pure.
//!
//! One function, [`Reassignment::between`], compares two placements (of the same target list,
//! or of two lists: targets are matched by key) and lists every target whose owners changed,
//! with the owners it lost and gained, and the targets that left the list. Both users read it:
//! the ring owner asks what this node gains, loses, drops and keeps probing during the hand-off
//! ([`Reassignment::for_node`]); the what-if plan of the status API counts the moves from
//! member to member ([`Reassignment::flows`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::placement::{Placement, Ring};
use crate::model::{NodeName, TargetKey};

/// A ring, a target list and the placement the ring computed for it.
#[derive(Clone, Copy, Debug)]
pub struct Layout<'a> {
    /// The members, weights and replicas.
    pub ring: &'a Ring,
    /// The targets placed.
    pub keys: &'a [TargetKey],
    /// Owners of every target, as indexes into `ring.members()`.
    pub placement: &'a Placement,
}

impl Layout<'_> {
    /// The targets `name` owns (indexes into `keys`).
    pub fn owned_by(&self, name: &NodeName) -> BTreeSet<usize> {
        match self.ring.index_of(name) {
            Some(i) => self.placement.owned_by(i).collect(),
            None => BTreeSet::new(),
        }
    }

    fn name(&self, member: u16) -> &NodeName {
        &self.ring.members()[usize::from(member)].0
    }
}

/// One target whose owners changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    /// The target (index into the new list).
    pub target: usize,
    /// Owners it lost, best-ranked first in the old placement.
    pub lost: Vec<NodeName>,
    /// Owners it gained, best-ranked first in the new placement.
    pub gained: Vec<NodeName>,
}

/// Every change of ownership between two placements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reassignment {
    /// The targets whose owners changed, in the new list's order.
    pub moves: Vec<Move>,
    /// Targets of the old list that are not in the new one, with their old owners.
    pub removed: Vec<(TargetKey, Vec<NodeName>)>,
    /// Each old target's index in the new list, if it is still there.
    old_to_new: Vec<Option<usize>>,
}

/// What one node runs: the targets it owns, and those it keeps probing until their new owners
/// have taken over (make-before-break). Indexes into the current target list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Targets owned.
    pub owned: BTreeSet<usize>,
    /// Targets owned elsewhere now, still probed here during the hand-off.
    pub kept: BTreeSet<usize>,
}

/// How one node's assignment changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeChange {
    /// The new assignment (indexes into the new list).
    pub next: Assignment,
    /// Targets this node owns now and did not before (new list).
    pub gained: Vec<usize>,
    /// Targets this node owned before that others own now (new list).
    pub lost: Vec<usize>,
    /// Targets this node owned or kept before that are in no list any more: they stop.
    pub dropped: Vec<TargetKey>,
}

/// Where a replica with no previous owner comes from, in [`Reassignment::flows`].
pub const NEW_REPLICA: &str = "(new replica)";

impl Reassignment {
    /// The moves from `before` (no placement yet: `None`) to `after`. Targets are matched by
    /// key (when both lists are the same list, by position, which is the same), members by
    /// name, so the two may differ in any way.
    pub fn between(before: Option<Layout<'_>>, after: Layout<'_>) -> Self {
        // Each old member's index in the new ring, if it is still there.
        let mapped: Vec<Option<u16>> = match before {
            Some(b) => b
                .ring
                .members()
                .iter()
                .map(|(n, _)| after.ring.index_of(n))
                .collect(),
            None => Vec::new(),
        };
        // Each new target's index in the old list.
        let new_to_old: Vec<Option<usize>> = match before {
            None => vec![None; after.keys.len()],
            Some(b) if b.keys == after.keys => (0..after.keys.len()).map(Some).collect(),
            Some(b) => {
                let old: HashMap<&TargetKey, usize> =
                    b.keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
                after.keys.iter().map(|k| old.get(k).copied()).collect()
            }
        };
        let mut old_to_new = vec![None; before.map_or(0, |b| b.keys.len())];
        for (n, o) in new_to_old.iter().enumerate() {
            if let Some(o) = o {
                old_to_new[*o] = Some(n);
            }
        }
        let mut moves = Vec::new();
        for (t, new) in after.placement.iter().enumerate() {
            let old: &[u16] = match (before, new_to_old[t]) {
                (Some(b), Some(o)) => b.placement.get(o).unwrap_or(&[]),
                _ => &[],
            };
            let stays = |o: &u16| mapped[usize::from(*o)].is_some_and(|m| new.contains(&m));
            let lost: Vec<NodeName> = match before {
                Some(b) => old
                    .iter()
                    .filter(|o| !stays(o))
                    .map(|&o| b.name(o).clone())
                    .collect(),
                None => Vec::new(),
            };
            let gained: Vec<NodeName> = new
                .iter()
                .filter(|n| !old.iter().any(|o| mapped[usize::from(*o)] == Some(**n)))
                .map(|&n| after.name(n).clone())
                .collect();
            if !lost.is_empty() || !gained.is_empty() {
                moves.push(Move {
                    target: t,
                    lost,
                    gained,
                });
            }
        }
        let removed = match before {
            Some(b) => old_to_new
                .iter()
                .enumerate()
                .filter(|(_, n)| n.is_none())
                .map(|(o, _)| {
                    let owners = b.placement.get(o).unwrap_or(&[]);
                    (
                        b.keys[o].clone(),
                        owners.iter().map(|&m| b.name(m).clone()).collect(),
                    )
                })
                .collect(),
            None => Vec::new(),
        };
        Reassignment {
            moves,
            removed,
            old_to_new,
        }
    }

    /// The targets `name` gained (new list).
    pub fn gained_by<'a>(&'a self, name: &'a NodeName) -> impl Iterator<Item = usize> + 'a {
        self.moves
            .iter()
            .filter(move |m| m.gained.contains(name))
            .map(|m| m.target)
    }

    /// The targets `name` lost to other owners (new list).
    pub fn lost_by<'a>(&'a self, name: &'a NodeName) -> impl Iterator<Item = usize> + 'a {
        self.moves
            .iter()
            .filter(move |m| m.lost.contains(name))
            .map(|m| m.target)
    }

    /// The assignment of `me` after these moves, given its assignment before (what it owned in
    /// the old placement, plus what it was keeping, as indexes into the old list). A node alone
    /// in the new ring keeps nothing: nobody else would take over. A target in no list any more
    /// is dropped, never kept: nobody is to probe it.
    pub fn for_node(
        &self,
        prev: &Assignment,
        before_keys: &[TargetKey],
        after: Layout<'_>,
        me: &NodeName,
    ) -> NodeChange {
        let owned = after.owned_by(me);
        let gained: Vec<usize> = self.gained_by(me).collect();
        let lost: Vec<usize> = self.lost_by(me).collect();
        let others = after.ring.members().iter().any(|(n, _)| n != me);
        let to_new = |o: &usize| self.old_to_new.get(*o).copied().flatten();
        let kept = if others {
            prev.kept
                .iter()
                .filter_map(to_new)
                .chain(lost.iter().copied())
                .filter(|t| !owned.contains(t))
                .collect()
        } else {
            BTreeSet::new()
        };
        let dropped = prev
            .owned
            .iter()
            .chain(&prev.kept)
            .filter(|o| to_new(o).is_none())
            .filter_map(|&o| before_keys.get(o).cloned())
            .collect();
        NodeChange {
            next: Assignment { owned, kept },
            gained,
            lost,
            dropped,
        }
    }

    /// Targets moved from member to member: `(from, to) → count`. Each gained owner of a target
    /// is paired with a lost one in rank order; a gained owner with none left to pair comes from
    /// [`NEW_REPLICA`] (the ring grew back to its replica count, or the target is new). Targets
    /// that only lost an owner move nowhere and are not counted.
    pub fn flows(&self) -> BTreeMap<(String, String), usize> {
        let mut flows = BTreeMap::new();
        for m in &self.moves {
            for (k, to) in m.gained.iter().enumerate() {
                let from = m
                    .lost
                    .get(k)
                    .map_or(NEW_REPLICA.to_string(), |n| n.to_string());
                *flows.entry((from, to.to_string())).or_default() += 1;
            }
        }
        flows
    }

    /// The targets that gained an owner (those a plan reports as moved).
    pub fn moved(&self) -> impl Iterator<Item = usize> + '_ {
        self.moves
            .iter()
            .filter(|m| !m.gained.is_empty())
            .map(|m| m.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{keys, node as name};
    use proptest::prelude::*;

    fn ring(members: &[(usize, u32)], replicas: u32) -> Ring {
        Ring::new(members.iter().map(|&(i, w)| (name(i), w)), replicas)
    }

    #[test]
    fn a_first_placement_gains_everything_and_a_join_moves_a_share() {
        let keys = keys(300);
        let r3 = ring(&[(0, 1), (1, 1), (2, 1)], 1);
        let p3 = r3.place(&keys);
        let l3 = Layout {
            ring: &r3,
            keys: &keys,
            placement: &p3,
        };
        let first = Reassignment::between(None, l3);
        assert_eq!(first.moves.len(), 300);
        assert!(first.moves.iter().all(|m| m.lost.is_empty()));
        assert_eq!(
            first.flows().values().sum::<usize>(),
            300,
            "all from {NEW_REPLICA}"
        );

        let r4 = ring(&[(0, 1), (1, 1), (2, 1), (3, 1)], 1);
        let p4 = r4.place(&keys);
        let l4 = Layout {
            ring: &r4,
            keys: &keys,
            placement: &p4,
        };
        let join = Reassignment::between(Some(l3), l4);
        // The newcomer gains about a quarter; the bounded loads may shift a few targets
        // between the others, within 1.2 x the ideal movement.
        let gained: Vec<usize> = join.gained_by(&name(3)).collect();
        assert!((60..=95).contains(&gained.len()), "{}", gained.len());
        assert!(join.moves.len() <= 90, "{} moved", join.moves.len());
        assert_eq!(join.moved().count(), join.moves.len());
        for m in &join.moves {
            assert_eq!((m.gained.len(), m.lost.len()), (1, 1), "{m:?}");
            assert_ne!(m.gained, m.lost);
        }
        let flows = join.flows();
        let to_new: usize = flows
            .iter()
            .filter(|((_, to), _)| to == "n3")
            .map(|(_, n)| n)
            .sum();
        assert_eq!(to_new, gained.len());
        assert_eq!(flows.values().sum::<usize>(), join.moves.len());
    }

    #[test]
    fn a_leaving_node_keeps_nothing_it_owns_after_and_a_lone_node_keeps_nothing() {
        let keys = keys(100);
        let r2 = ring(&[(0, 1), (1, 1)], 1);
        let p2 = r2.place(&keys);
        let l2 = Layout {
            ring: &r2,
            keys: &keys,
            placement: &p2,
        };
        let me = name(0);
        let prev = Assignment {
            owned: l2.owned_by(&me),
            kept: BTreeSet::new(),
        };
        // The ring without me: I lose all I owned and keep it until n1 takes over.
        let r1 = ring(&[(1, 1)], 1);
        let p1 = r1.place(&keys);
        let l1 = Layout {
            ring: &r1,
            keys: &keys,
            placement: &p1,
        };
        let change = Reassignment::between(Some(l2), l1).for_node(&prev, &keys, l1, &me);
        assert!(change.next.owned.is_empty());
        assert_eq!(change.next.kept, prev.owned);
        assert_eq!(change.lost.len(), prev.owned.len());
        assert!(change.gained.is_empty());

        // n1 left instead: I own everything and, alone, keep nothing.
        let r0 = ring(&[(0, 1)], 1);
        let p0 = r0.place(&keys);
        let l0 = Layout {
            ring: &r0,
            keys: &keys,
            placement: &p0,
        };
        let change = Reassignment::between(Some(l2), l0).for_node(&prev, &keys, l0, &me);
        assert_eq!(change.next.owned.len(), 100);
        assert!(change.next.kept.is_empty());
    }

    #[test]
    fn fewer_members_than_replicas_lose_owners_without_counted_moves() {
        let keys = keys(50);
        let r3 = ring(&[(0, 1), (1, 1), (2, 1)], 3);
        let p3 = r3.place(&keys);
        let r2 = ring(&[(0, 1), (1, 1)], 3);
        let p2 = r2.place(&keys);
        let shrink = Reassignment::between(
            Some(Layout {
                ring: &r3,
                keys: &keys,
                placement: &p3,
            }),
            Layout {
                ring: &r2,
                keys: &keys,
                placement: &p2,
            },
        );
        assert_eq!(shrink.moves.len(), 50, "each target lost n2");
        assert_eq!(shrink.moved().count(), 0);
        assert!(shrink.flows().is_empty());
    }

    fn members_strategy() -> impl Strategy<Value = Vec<(usize, u32)>> {
        proptest::collection::btree_map(0usize..12, 1u32..5, 1..7)
            .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// For every member and any two placements: gained and lost are exactly the difference
        /// of what it owns before and after, the kept set never overlaps the owned one, and a
        /// target is kept only if it was owned or kept before.
        #[test]
        fn moves_agree_with_owned_sets(
            before in members_strategy(),
            after in members_strategy(),
            r1 in 1u32..4,
            r2 in 1u32..4,
            n in 1usize..200,
        ) {
            let keys = keys(n);
            let (rb, ra) = (ring(&before, r1), ring(&after, r2));
            let (pb, pa) = (rb.place(&keys), ra.place(&keys));
            let (lb, la) = (Layout { ring: &rb, keys: &keys, placement: &pb }, Layout { ring: &ra, keys: &keys, placement: &pa });
            let re = Reassignment::between(Some(lb), la);
            let all: BTreeSet<usize> = before.iter().chain(&after).map(|m| m.0).collect();
            for i in all {
                let me = name(i);
                let (ob, oa) = (lb.owned_by(&me), la.owned_by(&me));
                let gained: BTreeSet<usize> = re.gained_by(&me).collect();
                let lost: BTreeSet<usize> = re.lost_by(&me).collect();
                prop_assert_eq!(&gained, &oa.difference(&ob).copied().collect());
                prop_assert_eq!(&lost, &ob.difference(&oa).copied().collect());
                let prev = Assignment { owned: ob.clone(), kept: BTreeSet::new() };
                let change = re.for_node(&prev, &keys, la, &me);
                prop_assert_eq!(&change.next.owned, &oa);
                prop_assert!(change.next.kept.is_disjoint(&oa));
                prop_assert!(change.next.kept.is_subset(&ob));
            }
            // Every flow ends at a member of the new ring and the counts match the gains.
            let gains: usize = re.moves.iter().map(|m| m.gained.len()).sum();
            prop_assert_eq!(re.flows().values().sum::<usize>(), gains);
            // Nothing changes between a placement and itself.
            prop_assert!(Reassignment::between(Some(la), la).moves.is_empty());
        }
    }

    #[test]
    fn targets_added_and_removed_between_lists_are_gained_and_dropped() {
        let all = keys(120);
        let r = ring(&[(0, 1), (1, 1)], 1);
        let (old_keys, new_keys) = (all[..100].to_vec(), all[20..].to_vec());
        let (po, pn) = (r.place(&old_keys), r.place(&new_keys));
        let before = Layout {
            ring: &r,
            keys: &old_keys,
            placement: &po,
        };
        let after = Layout {
            ring: &r,
            keys: &new_keys,
            placement: &pn,
        };
        let re = Reassignment::between(Some(before), after);
        // The 20 removed targets are listed with their old owners; the 20 new ones were gained
        // by their owners "from" a new replica; of the 80 in both, the load bound moves a few.
        assert_eq!(re.removed.len(), 20);
        assert!(re
            .removed
            .iter()
            .all(|(k, o)| old_keys[..20].contains(k) && o.len() == 1));
        let new: Vec<&Move> = re.moves.iter().filter(|m| m.target >= 80).collect();
        assert_eq!(new.len(), 20);
        assert!(new.iter().all(|m| m.lost.is_empty() && m.gained.len() == 1));
        assert!(
            re.moves.len() - new.len() <= 10,
            "{} shared targets moved",
            re.moves.len() - 20
        );
        let me = name(0);
        let prev = Assignment {
            owned: before.owned_by(&me),
            kept: BTreeSet::new(),
        };
        let change = re.for_node(&prev, &old_keys, after, &me);
        assert_eq!(change.next.owned, after.owned_by(&me));
        // Kept: only targets still listed that it owned and lost to the other member.
        let lost: BTreeSet<usize> = re.lost_by(&me).collect();
        assert_eq!(change.next.kept, lost);
        let had: Vec<&TargetKey> = prev
            .owned
            .iter()
            .map(|&i| &old_keys[i])
            .filter(|k| !new_keys.contains(k))
            .collect();
        assert_eq!(change.dropped.iter().collect::<Vec<_>>(), had);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Across two different target lists: a kept target is still listed and not owned; a
        /// target in both lists that this node owned before and not now is kept (others exist);
        /// dropped ones are exactly those owned or kept before and listed no more.
        #[test]
        fn kept_and_dropped_follow_the_lists(
            members in members_strategy(),
            lo in 0usize..60, hi in 60usize..160, shift in 0usize..40,
        ) {
            let all = keys(200);
            let (old_keys, new_keys) = (all[lo..hi].to_vec(), all[lo + shift..hi + shift].to_vec());
            let rb = ring(&members, 1);
            let mut fewer = members.clone();
            fewer.pop();
            let ra = ring(if fewer.is_empty() { &members } else { &fewer }, 1);
            let (pb, pa) = (rb.place(&old_keys), ra.place(&new_keys));
            let before = Layout { ring: &rb, keys: &old_keys, placement: &pb };
            let after = Layout { ring: &ra, keys: &new_keys, placement: &pa };
            let re = Reassignment::between(Some(before), after);
            for &(i, _) in &members {
                let me = name(i);
                let prev = Assignment { owned: before.owned_by(&me), kept: BTreeSet::new() };
                let c = re.for_node(&prev, &old_keys, after, &me);
                prop_assert_eq!(&c.next.owned, &after.owned_by(&me));
                for &k in &c.next.kept {
                    prop_assert!(!c.next.owned.contains(&k));
                    prop_assert!(old_keys.contains(&new_keys[k]), "kept a target it never had");
                }
                let alone = !ra.members().iter().any(|(n, _)| *n != me);
                for &o in &prev.owned {
                    match new_keys.iter().position(|k| *k == old_keys[o]) {
                        None => prop_assert!(c.dropped.contains(&old_keys[o])),
                        Some(n) if !c.next.owned.contains(&n) && !alone => prop_assert!(c.next.kept.contains(&n)),
                        Some(_) => {}
                    }
                }
            }
        }
    }
}
