//! Reassignment: how ownership changes from one placement to the next. Pure.
//!
//! One function, [`Reassignment::between`], compares two placements of the same target list and
//! lists every target whose owners changed, with the owners it lost and gained. Both users read
//! it: the ring owner asks what this node gains and loses and what it keeps probing during the
//! hand-off ([`Reassignment::for_node`]); the what-if plan of the status API counts the moves
//! from member to member ([`Reassignment::flows`]).

use std::collections::{BTreeMap, BTreeSet};

use super::placement::{Placement, Ring};
use crate::model::NodeName;

/// A ring and the placement it computed (for the one target list being compared).
#[derive(Clone, Copy, Debug)]
pub struct Layout<'a> {
    /// The members, weights and replicas.
    pub ring: &'a Ring,
    /// Owners of every target, as indexes into `ring.members()`.
    pub placement: &'a Placement,
}

impl Layout<'_> {
    /// The targets `name` owns (indexes into the target list).
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
    /// The target (index into the target list).
    pub target: usize,
    /// Owners it lost, best-ranked first in the old placement.
    pub lost: Vec<NodeName>,
    /// Owners it gained, best-ranked first in the new placement.
    pub gained: Vec<NodeName>,
}

/// Every change of ownership between two placements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reassignment {
    /// The targets whose owners changed, in target order.
    pub moves: Vec<Move>,
}

/// What one node runs: the targets it owns, and those it keeps probing until their new owners
/// have taken over (make-before-break).
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
    /// The new assignment.
    pub next: Assignment,
    /// Targets this node owns now and did not before.
    pub gained: Vec<usize>,
    /// Targets this node owned before and no longer does.
    pub lost: Vec<usize>,
}

/// Where a replica with no previous owner comes from, in [`Reassignment::flows`].
pub const NEW_REPLICA: &str = "(new replica)";

impl Reassignment {
    /// The moves from `before` (no placement yet: `None`) to `after`. Both place the same
    /// target list; members are matched by name, so the two rings may differ in any way.
    pub fn between(before: Option<Layout<'_>>, after: Layout<'_>) -> Self {
        let targets = after.placement.owners.len();
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
        let mut moves = Vec::new();
        for t in 0..targets {
            let new = &after.placement.owners[t];
            let old: &[u16] = before
                .and_then(|b| b.placement.owners.get(t))
                .map_or(&[], Vec::as_slice);
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
        Reassignment { moves }
    }

    /// The targets `name` gained.
    pub fn gained_by<'a>(&'a self, name: &'a NodeName) -> impl Iterator<Item = usize> + 'a {
        self.moves
            .iter()
            .filter(move |m| m.gained.contains(name))
            .map(|m| m.target)
    }

    /// The targets `name` lost.
    pub fn lost_by<'a>(&'a self, name: &'a NodeName) -> impl Iterator<Item = usize> + 'a {
        self.moves
            .iter()
            .filter(move |m| m.lost.contains(name))
            .map(|m| m.target)
    }

    /// The assignment of `me` after these moves, given its assignment before (which must be
    /// what it owned in the old placement, plus what it was keeping). A node alone in the new
    /// ring keeps nothing: nobody else would take over.
    pub fn for_node(&self, prev: &Assignment, after: Layout<'_>, me: &NodeName) -> NodeChange {
        let owned = after.owned_by(me);
        let gained: Vec<usize> = self.gained_by(me).collect();
        let lost: Vec<usize> = self.lost_by(me).collect();
        let others = after.ring.members().iter().any(|(n, _)| n != me);
        let kept = if others {
            prev.kept
                .iter()
                .chain(&lost)
                .filter(|t| !owned.contains(t))
                .copied()
                .collect()
        } else {
            BTreeSet::new()
        };
        NodeChange {
            next: Assignment { owned, kept },
            gained,
            lost,
        }
    }

    /// Targets moved from member to member: `(from, to) → count`. Each gained owner of a target
    /// is paired with a lost one in rank order; a gained owner with none left to pair comes from
    /// [`NEW_REPLICA`] (the ring grew back to its replica count). Targets that only lost an
    /// owner (fewer members than replicas) move nowhere and are not counted.
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
            placement: &p1,
        };
        let change = Reassignment::between(Some(l2), l1).for_node(&prev, l1, &me);
        assert!(change.next.owned.is_empty());
        assert_eq!(change.next.kept, prev.owned);
        assert_eq!(change.lost.len(), prev.owned.len());
        assert!(change.gained.is_empty());

        // n1 left instead: I own everything and, alone, keep nothing.
        let r0 = ring(&[(0, 1)], 1);
        let p0 = r0.place(&keys);
        let l0 = Layout {
            ring: &r0,
            placement: &p0,
        };
        let change = Reassignment::between(Some(l2), l0).for_node(&prev, l0, &me);
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
                placement: &p3,
            }),
            Layout {
                ring: &r2,
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
            let (lb, la) = (Layout { ring: &rb, placement: &pb }, Layout { ring: &ra, placement: &pa });
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
                let change = re.for_node(&prev, la, &me);
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
}
