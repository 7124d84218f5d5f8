use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::ring::placement::Ring;
use crate::testkit::{node, target};

fn spec(i: usize, interval_s: u64) -> Arc<TargetSpec> {
    target(
        &format!("127.0.{}.{}", i / 256, i % 256),
        Duration::from_secs(interval_s),
        Duration::from_secs(1),
    )
}

/// The number `i` of the target `spec(i, _)`.
fn number(key: &TargetKey) -> usize {
    let mut parts = key.id.rsplit('.').map(|p| p.parse::<usize>().unwrap());
    let (d, c) = (parts.next().unwrap(), parts.next().unwrap());
    c * 256 + d
}

fn set_of(ids: &BTreeSet<usize>) -> Vec<Arc<TargetSpec>> {
    ids.iter().map(|&i| spec(i, 10)).collect()
}

/// Answers `f` as a member holding `remote` would.
fn answer(cat: &mut Catalog, remote: &BucketedSet, f: Fetch, now: Instant) -> (Vec<Fetch>, bool) {
    match f {
        Fetch::Digests(m) => cat.digests(&m, remote.digests.clone(), remote.digest, now),
        Fetch::Buckets(m, bs) => {
            let contents = bs
                .iter()
                .map(|&b| (b, remote.entries[usize::from(b)].clone()))
                .collect();
            cat.buckets(&m, contents, now)
        }
    }
}

/// Runs the catch-up with every member in `remotes` to the end; returns the questions asked.
fn catch_up(cat: &mut Catalog, remotes: &BTreeMap<NodeName, BucketedSet>, now: Instant) -> usize {
    let announced = remotes.iter().map(|(n, s)| (n.clone(), s.digest)).collect();
    let mut queue = cat.members(&announced, now);
    let mut asked = 0;
    while let Some(f) = queue.pop() {
        asked += 1;
        assert!(asked < 10_000, "no end to the questions");
        let name = match &f {
            Fetch::Digests(m) | Fetch::Buckets(m, _) => m.clone(),
        };
        let (next, _) = answer(cat, &remotes[&name], f, now);
        queue.extend(next);
    }
    asked
}

#[test]
fn a_member_with_this_nodes_set_costs_no_question_and_no_copy() {
    let ids: BTreeSet<usize> = (0..100).collect();
    let mut c = Catalog::new(node(1), &set_of(&ids));
    let own = c.own().clone();
    let remotes = BTreeMap::from([(node(2), (*own).clone())]);
    assert_eq!(catch_up(&mut c, &remotes, Instant::now()), 0);
    let v = c.view();
    assert_eq!(v.targets.len(), 100);
    assert!(v
        .targets
        .iter()
        .all(|t| t.listed.is_none() && t.own.is_some()));
    assert_eq!(v.not_everywhere, 0);
    assert!(v.drift.values().all(Drift::is_none));
    assert!(c.in_step());
}

#[test]
fn a_differing_member_is_caught_up_bucket_by_bucket() {
    let mine: BTreeSet<usize> = (0..1000).collect();
    // Theirs: 16 added, 8 removed, 4 changed.
    let mut theirs: Vec<Arc<TargetSpec>> = (8..1016).map(|i| spec(i, 10)).collect();
    for t in theirs.iter_mut().take(4) {
        *t = spec(
            t.id.rsplit('.').next().unwrap().parse::<usize>().unwrap(),
            20,
        );
    }
    let mut c = Catalog::new(node(1), &set_of(&mine));
    let remote = BucketedSet::of(&theirs);
    let remotes = BTreeMap::from([(node(2), remote.clone())]);
    // Announced, not yet fetched: no drift is said of it (what is held for it is nothing).
    let mut early = Catalog::new(node(1), &set_of(&mine));
    early.members(&BTreeMap::from([(node(2), remote.digest)]), Instant::now());
    assert!(early.view().drift.is_empty());
    let asked = catch_up(&mut c, &remotes, Instant::now());
    // One question for the digests, then the differing buckets (~28) in one question.
    assert_eq!(asked, 2);
    assert!(c.in_step());
    let v = c.view();
    assert_eq!(v.targets.len(), 1016);
    assert_eq!(v.not_everywhere, 24);
    assert_eq!(
        v.drift[&node(2)],
        Drift {
            added: 16,
            removed: 8,
            changed: 4
        }
    );
    assert_eq!(v.sets[&node(2)], (remote.digest, 1008));
    // A target only they list has no spec here; one only this node lists names this node.
    let only_theirs = v
        .targets
        .iter()
        .find(|t| &*t.key.id == "127.0.3.247")
        .unwrap();
    assert!(only_theirs.own.is_none());
    let me = v.members.iter().position(|m| *m == node(1)).unwrap() as u16;
    let only_mine = v
        .targets
        .iter()
        .find(|t| &*t.key.id == "127.0.0.0")
        .unwrap();
    assert_eq!(only_mine.listed, Some(vec![me]));
}

#[test]
fn a_member_that_changes_during_the_catch_up_is_fetched_again() {
    let mut c = Catalog::new(node(1), &set_of(&(0..50).collect()));
    let t0 = Instant::now();
    let first = BucketedSet::of(&set_of(&(0..3000).collect()));
    let announced = BTreeMap::from([(node(2), first.digest)]);
    let mut queue = c.members(&announced, t0);
    // Digests answered from the first set; buckets from a changed one.
    let f = queue.pop().unwrap();
    let (next, _) = answer(&mut c, &first, f, t0);
    let changed = BucketedSet::of(&set_of(&(5..3000).collect()));
    let mut queue = next;
    let mut rounds = 0;
    while let Some(f) = queue.pop() {
        rounds += 1;
        assert!(rounds < 100);
        let (next, _) = answer(&mut c, &changed, f, t0);
        queue.extend(next);
    }
    // It noticed and asked again; now it follows the new announcement to the end.
    let remotes = BTreeMap::from([(node(2), changed.clone())]);
    catch_up(&mut c, &remotes, t0 + Duration::from_secs(1));
    assert!(c.in_step());
    assert_eq!(c.view().sets[&node(2)].0, changed.digest);
}

#[test]
fn unanswered_questions_are_asked_again_after_the_timeout_and_gone_members_drop_out() {
    let mut c = Catalog::new(node(1), &set_of(&(0..10).collect()));
    let t0 = Instant::now();
    let theirs = BucketedSet::of(&set_of(&(0..20).collect()));
    let announced = BTreeMap::from([(node(2), theirs.digest)]);
    assert_eq!(c.members(&announced, t0), vec![Fetch::Digests(node(2))]);
    assert!(
        c.tick(t0 + Duration::from_secs(1)).is_empty(),
        "still in flight"
    );
    c.failed(&node(2));
    assert!(c.tick(t0 + Duration::from_secs(2)).is_empty());
    assert_eq!(c.tick(t0 + FETCH_TIMEOUT), vec![Fetch::Digests(node(2))]);
    assert!(!c.in_step());
    // The member is gone: its set no longer counts.
    c.members(&BTreeMap::new(), t0 + FETCH_TIMEOUT);
    assert!(c.in_step());
    assert_eq!(c.view().members, vec![node(1)]);
}

#[test]
fn malformed_answers_change_nothing() {
    let mut c = Catalog::new(node(1), &set_of(&(0..10).collect()));
    let t0 = Instant::now();
    let theirs = BucketedSet::of(&set_of(&(0..20).collect()));
    c.members(&BTreeMap::from([(node(2), theirs.digest)]), t0);
    let before = c.view().digest;
    let (next, changed) = c.digests(&node(2), vec![1, 2, 3], 99, t0);
    assert!(next.is_empty() && !changed);
    let (next, changed) = c.digests(&node(2), theirs.digests.clone(), theirs.digest ^ 1, t0);
    assert!(next.is_empty() && !changed);
    assert_eq!(c.view().digest, before);
    // Buckets nobody asked for are ignored.
    let (next, changed) = c.buckets(&node(3), vec![(0, Vec::new())], t0);
    assert!(next.is_empty() && !changed);
}

/// Sets of up to 6 members over 200 targets.
#[test]
fn a_disagreement_is_held_back_until_it_settles_but_agreement_and_member_changes_are_not() {
    let old: BTreeSet<usize> = (0..100).collect();
    let new: BTreeSet<usize> = (50..150).collect();
    let t0 = Instant::now();
    let mut c = Catalog::new(node(1), &set_of(&old));
    let old_digest = c.own().digest;
    let both = |d: u64| BTreeMap::from([(node(2), d)]);
    c.members(&both(old_digest), t0);
    assert_eq!(c.hold_until(t0), None, "nothing sent yet: nothing to hold");
    c.sent(c.view_digest());
    // This node reloads first: the sets disagree, and the view is held back for SETTLE.
    c.set_own(&TargetList::of(set_of(&new).into()));
    let new_digest = c.own().digest;
    assert_eq!(c.hold_until(t0), Some(t0 + SETTLE));
    assert_eq!(
        c.hold_until(t0 + SETTLE / 2),
        Some(t0 + SETTLE),
        "measured from the start"
    );
    // The member announces the same new set: agreement is published at once.
    c.members(&both(new_digest), t0 + SETTLE / 2);
    assert_eq!(c.hold_until(t0 + SETTLE / 2), None);
    c.sent(c.view_digest());
    // The member changes alone and never comes back: held for SETTLE, then published.
    let t1 = t0 + SETTLE * 3;
    c.members(&both(old_digest), t1);
    assert_eq!(c.hold_until(t1), Some(t1 + SETTLE));
    assert_eq!(c.hold_until(t1 + SETTLE), None);
    c.sent(c.view_digest());
    // Once a disagreement was sent, later changes are not held back.
    c.members(&both(12345), t1 + SETTLE * 2);
    assert_eq!(c.hold_until(t1 + SETTLE * 2), None);
    // Back to agreement, then a member joins with another set: a change of members is never
    // held (a dead owner's targets must move at once, a newcomer's list count at once).
    c.members(&both(new_digest), t1 + SETTLE * 3);
    c.sent(c.view_digest());
    let three = BTreeMap::from([(node(2), new_digest), (node(3), old_digest)]);
    c.members(&three, t1 + SETTLE * 3);
    assert_eq!(c.hold_until(t1 + SETTLE * 3), None);
}

fn sets_strategy() -> impl Strategy<Value = Vec<BTreeSet<usize>>> {
    proptest::collection::vec(proptest::collection::btree_set(0usize..200, 0..150), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever sets the members list: once each node has caught up with the others, all
    /// views are the same (same digest, same union, same listings), and placing the union
    /// with each target's listers as its eligible members leaves no hole: every target of the
    /// union has an owner, and every owner lists it.
    #[test]
    fn views_agree_and_placement_over_them_has_no_hole(sets in sets_strategy(), replicas in 1u32..3) {
        let names: Vec<NodeName> = (0..sets.len()).map(node).collect();
        let bucketed: BTreeMap<NodeName, BucketedSet> = names
            .iter()
            .zip(&sets)
            .map(|(n, s)| (n.clone(), BucketedSet::of(&set_of(s))))
            .collect();
        let now = Instant::now();
        let views: Vec<CatalogView> = names
            .iter()
            .zip(&sets)
            .map(|(n, s)| {
                let mut c = Catalog::new(n.clone(), &set_of(s));
                let others = bucketed.iter().filter(|(m, _)| *m != n).map(|(m, b)| (m.clone(), b.clone())).collect();
                catch_up(&mut c, &others, now);
                prop_assert!(c.in_step());
                let v = c.view();
                prop_assert_eq!(c.view_digest(), v.digest);
                Ok(v)
            })
            .collect::<Result<_, _>>()?;
        let union: BTreeSet<usize> = sets.iter().flatten().copied().collect();
        for v in &views {
            prop_assert_eq!(v.digest, views[0].digest);
            prop_assert_eq!(v.targets.len(), union.len());
            let keys: Vec<&TargetKey> = v.targets.iter().map(|t| &t.key).collect();
            let first: Vec<&TargetKey> = views[0].targets.iter().map(|t| &t.key).collect();
            prop_assert_eq!(keys, first);
        }
        // When a member leaves, the view the others are left with is what it expects them to
        // adopt: its own view's digest without itself.
        if names.len() > 1 {
            let (gone, stays) = (&names[0], &names[1]);
            let mut c = Catalog::new(stays.clone(), &set_of(&sets[1]));
            let others = bucketed.iter().filter(|(m, _)| *m != gone && *m != stays).map(|(m, b)| (m.clone(), b.clone())).collect();
            catch_up(&mut c, &others, now);
            prop_assert_eq!(views[0].digest_without(gone), c.view_digest());
            prop_assert_ne!(views[0].digest_without(gone), views[0].digest);
        }
        // Place as the ring owner does, with every member alive.
        let v = &views[0];
        let ring = Ring::new(v.members.iter().map(|n| (n.clone(), 1)), replicas);
        let keys: Vec<TargetKey> = v.targets.iter().map(|t| t.key.clone()).collect();
        let eligible: Vec<Option<&[u16]>> = v.targets.iter().map(|t| t.listed.as_deref()).collect();
        let p = ring.place_among(&keys, |i| eligible[i]);
        for (i, owners) in p.iter().enumerate() {
            prop_assert!(!owners.is_empty(), "{} has no owner", keys[i]);
            for &o in owners {
                let member = &ring.members()[usize::from(o)].0;
                let idx = names.iter().position(|n| n == member).unwrap();
                prop_assert!(sets[idx].contains(&number(&keys[i])), "{} owned by {} which does not list it", keys[i], member);
            }
        }
    }

    /// Catching up costs at most one question for the digests and one per
    /// BUCKETS_PER_FETCH differing buckets; a member that lists what this node lists costs none.
    #[test]
    fn catching_up_asks_few_questions(mine in proptest::collection::btree_set(0usize..3000, 0..2000),
                                      theirs in proptest::collection::btree_set(0usize..3000, 0..2000)) {
        let mut c = Catalog::new(node(1), &set_of(&mine));
        let remote = BucketedSet::of(&set_of(&theirs));
        let differing = c.own().differing(&remote.digests).len();
        let remotes = BTreeMap::from([(node(2), remote)]);
        let asked = catch_up(&mut c, &remotes, Instant::now());
        let most = if mine == theirs { 0 } else { 1 + differing.div_ceil(BUCKETS_PER_FETCH) };
        prop_assert!(asked <= most, "{} questions for {} differing buckets", asked, differing);
    }
}
