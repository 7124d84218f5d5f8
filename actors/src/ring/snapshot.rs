//! The ring as the ring owner last built it: plain data, published for readers (see
//! [`crate::view`]), and the ring settings.

use std::sync::Arc;
use std::time::Duration;

use super::placement::{Placement, Ring};
use super::reassign::Layout;
use crate::catalog::state::CatalogView;
use crate::model::{NodeName, TargetKey};

/// Ring settings (`[cluster] weight`, `replicas`, `rebalance_delay`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingSettings {
    /// This node's weight.
    pub weight: u32,
    /// Owners per target.
    pub replicas: u32,
    /// Quiet time after a membership change before the ring is rebuilt.
    pub rebalance_delay: Duration,
    /// Wait before the very first ring, so a node that is joining a cluster does not claim
    /// every target for itself first.
    pub initial_delay: Duration,
    /// How long before a dead member was last heard its slots still count as missed: results
    /// it had not yet flushed died with it (the sink's flush interval).
    pub unflushed: Duration,
}

impl Default for RingSettings {
    fn default() -> Self {
        RingSettings {
            weight: 1,
            replicas: 1,
            rebalance_delay: Duration::from_millis(100),
            initial_delay: Duration::ZERO,
            unflushed: Duration::ZERO,
        }
    }
}

/// The ring as last built: members, placement of every target, this node's share.
#[derive(Debug)]
pub struct RingSnapshot {
    /// Ownership epoch.
    pub epoch: u64,
    /// The ring.
    pub ring: Ring,
    /// The digest every member's probes must run for before hand-offs end: of the ring and of
    /// the catalog view it was placed with.
    pub digest: u64,
    /// The targets cluster-wide and who lists each.
    pub catalog: Arc<CatalogView>,
    /// Every target cluster-wide (the catalog's, in its order).
    pub keys: Arc<Vec<TargetKey>>,
    /// Owners of `keys[i]`, as member indexes, best first.
    pub placement: Arc<Placement>,
    /// Targets this node owns.
    pub owned: usize,
    /// Targets this node keeps during a hand-off.
    pub kept: usize,
}

impl RingSnapshot {
    /// The index of `key` in `keys`.
    pub fn position(&self, key: &TargetKey) -> Option<usize> {
        self.keys.iter().position(|k| k == key)
    }

    /// The owners' names of target `i`.
    pub fn owner_names(&self, i: usize) -> Vec<NodeName> {
        self.placement
            .of(i)
            .iter()
            .map(|&m| self.ring.members()[usize::from(m)].0.clone())
            .collect()
    }

    /// The ring with its placement, for [`Reassignment`](super::reassign::Reassignment).
    pub fn layout(&self) -> Layout<'_> {
        Layout {
            ring: &self.ring,
            keys: &self.keys,
            placement: &self.placement,
        }
    }

    /// The placement of the same targets, with the same listers, over another ring.
    pub fn place_on(&self, ring: &Ring) -> Placement {
        place(ring, &self.keys, &self.catalog)
    }
}

/// Places `keys` (the catalog's targets) on `ring`, each among the members that list it.
pub fn place(ring: &Ring, keys: &[TargetKey], catalog: &CatalogView) -> Placement {
    let eligible = catalog.eligibility(ring);
    ring.place_among(keys, |i| eligible.get(i).and_then(|e| e.as_deref()))
}

/// The digest of a ring placed with a catalog view (given by its digest): what members compare
/// to end hand-offs.
pub fn assignment_digest(ring: &Ring, catalog_digest: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&ring.digest().to_le_bytes());
    bytes[8..].copy_from_slice(&catalog_digest.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&bytes)
}
