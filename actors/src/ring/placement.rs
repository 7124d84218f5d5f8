//! The placement function: which members own each target. Pure and deterministic.
//!
//! # Specification (version 1)
//! Inputs: the alive members with their integer weights (1..=1000), the replica count `R`, and
//! the targets. Every node that has the same inputs computes the same owners, whatever the order
//! it learnt them in, on any machine and in any release that keeps `PLACEMENT_VERSION`.
//!
//! 1. Hashes. `h_t = XXH3_64(probe "/" id)` for a target (see [`target_hash`]);
//!    `h_n = XXH3_64(name)` for a member; the score of a pair is
//!    `s(t, n) = XXH3_64_withSeed(le_bytes(h_t), seed = h_n)` (all XXH3-64, seed 0 unless said).
//! 2. Preference (weighted rendezvous hashing). With `u = (s + 1) / 2^64`, member `n` prefers
//!    `t` by the key `k = -log2(u) / w_n`: the smaller, the better (ties: the larger `s`, then the
//!    smaller name). `-log2(u)` is computed in fixed point (Q32.32, integer arithmetic only, see
//!    [`neg_log2_q32`]), so no floating point enters the result. With equal weights this is
//!    plain rendezvous hashing: the largest score wins.
//! 3. Bounded loads. Let `R' = min(R, members)`, `S = targets × R'`, `W = Σ w`. Each member may
//!    hold at most `cap_n = min(targets, max(ceil(S w_n / W), floor(1.10 S w_n / W)))` replicas.
//!    Targets are placed one at a time in ascending `(h_t, key)` order; each takes its `R'` most
//!    preferred members that still have room (if none has room — only possible with extreme
//!    weights — the most preferred members regardless of room).
//!
//! 4. Eligibility. A target may name the members eligible to own it: those whose target set
//!    lists it (see [`crate::catalog`]). Its preference order, and the members with room, are
//!    then taken among those only; it gets `R'_t = min(R, eligible)` owners, and
//!    `S = Σ_t R'_t` in step 3. A target no alive member lists gets no owner. With every member
//!    eligible for every target this is exactly steps 1–3, so the version is unchanged. While
//!    members' sets differ the load bound may not hold (a member eligible for few targets cannot
//!    take its share); totality does.
//!
//! So: each target has `R'` distinct owners (totality); the largest load is at most 1.10 × its
//! weighted share (rounded); a join or leave moves about the ideal fraction of targets, because
//! preferences of the other members do not change and the caps move only slightly.
//!
//! # Measured (10,000 targets, equal weights; the tests pin these bounds)
//! - Largest load ≤ 1.10 × mean for 3 to 100 members (plain rendezvous hashing: up to ~1.3×).
//! - Targets moved by a join or a leave ≤ 1.2 × the ideal (`targets / members`) up to 64
//!   members; at 100 members (100 targets each) up to 1.25×: the load bound binds on ~15 % of
//!   members there, and moving its caps moves a few overflowed targets. Tighter bounds cost more
//!   movement (1.05 × mean → 1.45× ideal), so 1.10 is the chosen trade-off.
//! - Weighted shares within 5 % of `w / W` when a share is at least ~1,000 targets; smaller
//!   shares carry the hashing noise of about `1/sqrt(share)`.
//! - Why not Maglev-style tables or plain rings: perfect balance, but 2.6× the ideal movement at
//!   100 members; vnode rings keep the per-target hashing noise.

use std::collections::BTreeMap;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::model::{target_hash, NodeName, TargetKey};

/// Changes whenever the function's results would change for the same inputs.
pub const PLACEMENT_VERSION: u32 = 1;

/// Load factor of the bounded loads, in percent of the weighted share.
const LOAD_FACTOR_PERCENT: u128 = 110;

/// Largest allowed weight.
pub const MAX_WEIGHT: u32 = 1000;

/// The placement inputs that describe the cluster: members, weights and replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ring {
    /// Sorted by name.
    members: Vec<(NodeName, u32)>,
    name_hashes: Vec<u64>,
    replicas: u32,
    digest: u64,
}

/// The owners of every target, as indexes into [`Ring::members`]: one flat array, `stride`
/// slots per target (the replica count), unused slots [`NO_OWNER`]. One allocation for the
/// whole placement, not one per target: at 100,000 targets building and dropping 100,000
/// small vectors was most of a rebuild's cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    slots: Vec<u16>,
    stride: usize,
    targets: usize,
}

/// An unused owner slot (member indexes stay below it: a ring has fewer than 65,535 members).
const NO_OWNER: u16 = u16::MAX;

impl Ring {
    /// A ring over `members` (name, weight); duplicate names keep the last weight. Members of
    /// weight 0 (handing their targets off: `membership::health`) are left out, unless every
    /// member has weight 0 — then all count, as weight 1, so that somebody probes. Weights are
    /// clamped to 1..=MAX_WEIGHT. `replicas` is clamped to at least 1.
    pub fn new(members: impl IntoIterator<Item = (NodeName, u32)>, replicas: u32) -> Self {
        let mut map: BTreeMap<NodeName, u32> = members.into_iter().collect();
        if map.values().any(|w| *w > 0) {
            map.retain(|_, w| *w > 0);
        }
        let members: Vec<(NodeName, u32)> = map
            .into_iter()
            .map(|(n, w)| (n, w.clamp(1, MAX_WEIGHT)))
            .collect();
        assert!(members.len() <= usize::from(u16::MAX), "too many members");
        let name_hashes = members
            .iter()
            .map(|(n, _)| xxh3_64(n.as_str().as_bytes()))
            .collect();
        let replicas = replicas.max(1);
        let mut canon = Vec::new();
        canon.extend_from_slice(&PLACEMENT_VERSION.to_le_bytes());
        canon.extend_from_slice(&replicas.to_le_bytes());
        for (n, w) in &members {
            canon.extend_from_slice(&(n.as_str().len() as u32).to_le_bytes());
            canon.extend_from_slice(n.as_str().as_bytes());
            canon.extend_from_slice(&w.to_le_bytes());
        }
        Ring {
            digest: xxh3_64(&canon),
            members,
            name_hashes,
            replicas,
        }
    }

    /// The members, sorted by name, with their weights.
    pub fn members(&self) -> &[(NodeName, u32)] {
        &self.members
    }

    /// Configured replicas.
    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    /// A digest of members, weights, replicas and the placement version: two nodes with the
    /// same digest compute the same placement for the same targets.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Index of `name` among the members.
    pub fn index_of(&self, name: &NodeName) -> Option<u16> {
        self.members
            .binary_search_by(|(n, _)| n.cmp(name))
            .ok()
            .map(|i| i as u16)
    }

    /// Places `targets`, every member eligible for every target.
    pub fn place(&self, targets: &[TargetKey]) -> Placement {
        self.place_among(targets, |_| None)
    }

    /// Places `targets`; `eligible(i)` lists the member indexes (ascending) that may own
    /// target `i`, or `None` for every member. A target with no eligible member gets no owner.
    pub fn place_among<'e>(
        &self,
        targets: &[TargetKey],
        eligible: impl Fn(usize) -> Option<&'e [u16]>,
    ) -> Placement {
        let n = self.members.len();
        let r = (self.replicas as usize).min(n);
        let mut placement = Placement {
            slots: vec![NO_OWNER; targets.len() * r],
            stride: r,
            targets: targets.len(),
        };
        if n == 0 {
            return placement;
        }
        let wanted = |i: usize| eligible(i).map_or(r, |e| e.len().min(r));
        let replicas_total: u128 = (0..targets.len()).map(|i| wanted(i) as u128).sum();
        let caps = self.caps(replicas_total, targets.len());
        let mut load = vec![0u64; n];
        let equal_weights = self.members.iter().all(|(_, w)| *w == self.members[0].1);

        let mut order: Vec<(u64, usize)> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| (target_hash(t), i))
            .collect();
        order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| targets[a.1].cmp(&targets[b.1])));

        let weights: Vec<u128> = self.members.iter().map(|(_, w)| u128::from(*w)).collect();
        let all: Vec<u16> = (0..n as u16).collect();
        let mut prefs: Vec<(u128, u64, u16)> = Vec::with_capacity(n);
        for (h_t, ti) in order {
            let members = eligible(ti).unwrap_or(&all);
            let r = wanted(ti);
            prefs.clear();
            let bytes = h_t.to_le_bytes();
            for &mi in members {
                let s = xxh3_64_with_seed(&bytes, self.name_hashes[usize::from(mi)]);
                // Sort key, smallest first: (-log2(u) / w) compared as a cross product, then the
                // larger score, then the smaller name (index).
                let k = if equal_weights {
                    0
                } else {
                    u128::from(neg_log2_q32(s))
                };
                prefs.push((k, s, mi));
            }
            prefs.sort_unstable_by(|a, b| {
                (a.0 * weights[b.2 as usize])
                    .cmp(&(b.0 * weights[a.2 as usize]))
                    .then(b.1.cmp(&a.1))
                    .then(a.2.cmp(&b.2))
            });
            let stride = placement.stride;
            let chosen = &mut placement.slots[ti * stride..(ti + 1) * stride];
            let mut len = 0;
            for &(_, _, mi) in &prefs {
                if len == r {
                    break;
                }
                if load[mi as usize] < caps[mi as usize] {
                    load[mi as usize] += 1;
                    chosen[len] = mi;
                    len += 1;
                }
            }
            for &(_, _, mi) in &prefs {
                if len == r {
                    break;
                }
                if !chosen[..len].contains(&mi) {
                    load[mi as usize] += 1;
                    chosen[len] = mi;
                    len += 1;
                }
            }
        }
        placement
    }

    /// Every member ranked by its preference for `key` (name, weight, score), best first —
    /// the order `place` tries them in.
    pub fn preferences(&self, key: &TargetKey) -> Vec<(NodeName, u32, u64)> {
        let bytes = target_hash(key).to_le_bytes();
        let equal = self
            .members
            .iter()
            .all(|(_, w)| *w == self.members.first().map_or(1, |m| m.1));
        let mut prefs: Vec<(u128, u64, usize)> = self
            .name_hashes
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let s = xxh3_64_with_seed(&bytes, *h);
                (
                    if equal {
                        0
                    } else {
                        u128::from(neg_log2_q32(s))
                    },
                    s,
                    i,
                )
            })
            .collect();
        prefs.sort_unstable_by(|a, b| {
            (a.0 * u128::from(self.members[b.2].1))
                .cmp(&(b.0 * u128::from(self.members[a.2].1)))
                .then(b.1.cmp(&a.1))
                .then(a.2.cmp(&b.2))
        });
        prefs
            .into_iter()
            .map(|(_, s, i)| (self.members[i].0.clone(), self.members[i].1, s))
            .collect()
    }

    /// Each member's room: its weighted share of `total` replicas, within the load bound, at
    /// most one replica per target (`targets`).
    fn caps(&self, total: u128, targets: usize) -> Vec<u64> {
        let w_sum: u128 = self.members.iter().map(|(_, w)| u128::from(*w)).sum();
        self.members
            .iter()
            .map(|(_, w)| {
                let share_num = total * u128::from(*w);
                let ceil_share = share_num.div_ceil(w_sum);
                let bounded = share_num * LOAD_FACTOR_PERCENT / (100 * w_sum);
                ceil_share.max(bounded).min(targets as u128) as u64
            })
            .collect()
    }
}

impl Placement {
    /// A placement given as each target's owners, best first.
    pub fn from_lists(lists: &[Vec<u16>]) -> Self {
        let stride = lists.iter().map(Vec::len).max().unwrap_or(0);
        let mut slots = vec![NO_OWNER; lists.len() * stride];
        for (i, owners) in lists.iter().enumerate() {
            slots[i * stride..i * stride + owners.len()].copy_from_slice(owners);
        }
        Placement {
            slots,
            stride,
            targets: lists.len(),
        }
    }

    /// How many targets were placed.
    pub fn len(&self) -> usize {
        self.targets
    }

    /// True when no target was placed.
    pub fn is_empty(&self) -> bool {
        self.targets == 0
    }

    /// The owners of target `i`, best first (none when the ring is empty or no member may
    /// own it). Panics when `i` is out of range, as indexing does.
    pub fn of(&self, i: usize) -> &[u16] {
        assert!(i < self.targets, "target {i} of {}", self.targets);
        let slots = &self.slots[i * self.stride..(i + 1) * self.stride];
        let len = slots
            .iter()
            .position(|&m| m == NO_OWNER)
            .unwrap_or(slots.len());
        &slots[..len]
    }

    /// The owners of target `i`, if there is such a target.
    pub fn get(&self, i: usize) -> Option<&[u16]> {
        (i < self.targets).then(|| self.of(i))
    }

    /// The owners of every target, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u16]> + '_ {
        (0..self.targets).map(|i| self.of(i))
    }

    /// The indexes of the targets member `me` owns.
    pub fn owned_by(&self, me: u16) -> impl Iterator<Item = usize> + '_ {
        self.iter()
            .enumerate()
            .filter(move |(_, o)| o.contains(&me))
            .map(|(i, _)| i)
    }

    /// Replicas held per member index.
    pub fn loads(&self, members: usize) -> Vec<usize> {
        let mut loads = vec![0; members];
        for &m in self.slots.iter().filter(|&&m| m != NO_OWNER) {
            loads[m as usize] += 1;
        }
        loads
    }
}

/// `-log2((x + 1) / 2^64)` in Q32.32 fixed point, by integer arithmetic only (the bit-by-bit
/// squaring method, 32 fractional bits, truncated). Monotone non-increasing in `x`.
pub fn neg_log2_q32(x: u64) -> u64 {
    let y = u128::from(x) + 1; // 1 ..= 2^64
    let k = 127 - y.leading_zeros(); // floor(log2 y), 0..=64
                                     // Mantissa in [1, 2) as Q1.63.
    let mut m: u128 = if k <= 63 {
        y << (63 - k)
    } else {
        y >> (k - 63)
    };
    let mut frac: u64 = 0;
    for _ in 0..32 {
        m = (m * m) >> 63;
        frac <<= 1;
        if m >= 1u128 << 64 {
            m >>= 1;
            frac |= 1;
        }
    }
    let log2_y_q32 = (u64::from(k) << 32) | frac;
    (64u64 << 32) - log2_y_q32
}

/// Convenience: the owners' names of every target, for tests and tools.
pub fn owners_by_name(ring: &Ring, targets: &[TargetKey]) -> Vec<Vec<NodeName>> {
    let p = ring.place(targets);
    p.iter()
        .map(|o| {
            o.iter()
                .map(|&i| ring.members()[i as usize].0.clone())
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests;
