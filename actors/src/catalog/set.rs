//! A member's target set as it is summarised and exchanged: entries (target key and a digest
//! of its settings) in 4,096 buckets by target hash, a digest per bucket, one digest for the
//! whole set. Pure.
//!
//! # Specification
//! - `bucket(t) = XXH3_64(probe "/" id) >> 52` (the top 12 bits of the target hash).
//! - An entry's settings digest is XXH3-64 of a canonical text of everything that changes how
//!   the target is probed or reported ([`settings_digest`]).
//! - A bucket's digest is XXH3-64 over its entries sorted by key, each as
//!   `probe "/" id 0x00 settings(le u64)`; an empty bucket's digest is 0.
//! - The set's digest is XXH3-64 over the 4,096 bucket digests (le u64, in bucket order); the
//!   empty set's digest is 0.
//!
//! Two members with the same set have the same digests, whatever order they listed it in, so
//! agreement costs one 64-bit digest per heartbeat, and a difference is found bucket by bucket.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::model::{target_hash, Check, ProbeKind, TargetKey, TargetSpec};

/// Buckets a set is split into.
pub const BUCKETS: usize = 4096;

/// The bucket of a target.
pub fn bucket(key: &TargetKey) -> u16 {
    (target_hash(key) >> 52) as u16
}

/// One target of a member's set: its key and the digest of its settings.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// Probe kind.
    pub probe: ProbeKind,
    /// Target id.
    pub id: Arc<str>,
    /// [`settings_digest`] of the member's spec.
    pub settings: u64,
}

impl Entry {
    /// The entry of `spec`.
    pub fn of(spec: &TargetSpec) -> Self {
        Entry {
            probe: spec.kind(),
            id: spec.id.clone(),
            settings: settings_digest(spec),
        }
    }

    /// The target's key.
    pub fn key(&self) -> TargetKey {
        TargetKey {
            probe: self.probe,
            id: self.id.clone(),
        }
    }
}

/// A digest of everything in `spec` that changes how the target is probed or reported:
/// interval, timeout, rise/fall, retry interval, labels, and the check's settings.
pub fn settings_digest(spec: &TargetSpec) -> u64 {
    use std::fmt::Write;
    let mut s = String::with_capacity(128);
    let _ = write!(
        s,
        "{}|{}|{}|{}|{}|{}",
        spec.host,
        spec.interval.as_nanos(),
        spec.timeout.as_nanos(),
        spec.thresholds.rise,
        spec.thresholds.fall,
        spec.retry_interval.as_nanos()
    );
    for (k, v) in spec.labels.iter() {
        let _ = write!(s, "|{k}={v}");
    }
    match &spec.check {
        Check::Icmp => s.push_str("|icmp"),
        Check::Tcp { port } => {
            let _ = write!(s, "|tcp:{port}");
        }
        Check::Ssh { port, settings: t } => {
            let _ = write!(
                s,
                "|ssh:{port}|{}|{}|{:?}|{:?}|{:?}|{}|{:?}|{}",
                t.user,
                t.identity.path.display(),
                t.known_hosts
                    .as_ref()
                    .map(|k| k.path().display().to_string()),
                t.policy,
                t.command,
                t.expect_exit,
                t.expect_output.as_ref().map(|r| r.as_str()),
                t.max_output
            );
        }
    }
    xxh3_64(s.as_bytes())
}

/// The digest of one bucket's entries (sorted by key); 0 when empty.
pub fn bucket_digest(entries: &[Entry]) -> u64 {
    if entries.is_empty() {
        return 0;
    }
    let mut h = Xxh3::new();
    for e in entries {
        h.update(e.probe.as_str().as_bytes());
        h.update(b"/");
        h.update(e.id.as_bytes());
        h.update(&[0]);
        h.update(&e.settings.to_le_bytes());
    }
    h.digest()
}

/// The digest of a whole set from its bucket digests; 0 for the empty set.
pub fn set_digest(buckets: &[u64]) -> u64 {
    if buckets.iter().all(|d| *d == 0) {
        return 0;
    }
    let mut h = Xxh3::new();
    for d in buckets {
        h.update(&d.to_le_bytes());
    }
    h.digest()
}

/// A member's whole set, bucketed, with its digests: what this node publishes of its own set
/// (its port answers peers from it) and what it is told of others'.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketedSet {
    /// Entries per bucket, sorted by key.
    pub entries: Vec<Vec<Entry>>,
    /// Digest per bucket.
    pub digests: Vec<u64>,
    /// Digest of the set.
    pub digest: u64,
    /// Entries in all.
    pub count: usize,
}

impl Default for BucketedSet {
    fn default() -> Self {
        BucketedSet {
            entries: vec![Vec::new(); BUCKETS],
            digests: vec![0; BUCKETS],
            digest: 0,
            count: 0,
        }
    }
}

impl BucketedSet {
    /// The set of `specs` (each key once).
    pub fn of(specs: &[Arc<TargetSpec>]) -> Self {
        let mut set = BucketedSet::default();
        for spec in specs {
            let e = Entry::of(spec);
            set.entries[usize::from(bucket(&e.key()))].push(e);
        }
        for (b, entries) in set.entries.iter_mut().enumerate() {
            entries.sort_unstable();
            set.digests[b] = bucket_digest(entries);
        }
        set.count = specs.len();
        set.digest = set_digest(&set.digests);
        set
    }

    /// The buckets whose digests differ from `digests` (another member's), ascending.
    pub fn differing(&self, digests: &[u64]) -> Vec<u16> {
        (0..BUCKETS)
            .filter(|&b| digests.get(b).copied().unwrap_or(0) != self.digests[b])
            .map(|b| b as u16)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::target;
    use std::time::Duration;

    fn spec(id: &str, interval_s: u64) -> Arc<TargetSpec> {
        target(id, Duration::from_secs(interval_s), Duration::from_secs(1))
    }

    #[test]
    fn digests_ignore_order_and_see_every_change() {
        let a = [
            spec("127.0.0.1", 10),
            spec("127.0.0.2", 10),
            spec("127.0.0.3", 10),
        ];
        let mut b = a.clone();
        b.reverse();
        let (sa, sb) = (BucketedSet::of(&a), BucketedSet::of(&b));
        assert_eq!(sa, sb);
        assert_ne!(sa.digest, 0);
        assert!(sa.differing(&sb.digests).is_empty());
        // Another interval for one target: one bucket differs.
        let mut c = a.to_vec();
        c[1] = spec("127.0.0.2", 20);
        let sc = BucketedSet::of(&c);
        assert_ne!(sc.digest, sa.digest);
        assert_eq!(sc.differing(&sa.digests), vec![bucket(&c[1].key())]);
        // The empty set.
        assert_eq!(BucketedSet::of(&[]).digest, 0);
        assert_eq!(BucketedSet::of(&[]).differing(&sa.digests).len(), 3);
    }

    #[test]
    fn settings_digests_cover_labels_and_check() {
        let base = spec("127.0.0.1", 10);
        let mut labelled = (*base).clone();
        labelled.labels = Arc::new([("site".into(), "a".into())].into());
        let mut tcp = (*base).clone();
        tcp.check = Check::Tcp { port: 22 };
        let digests = [&*base, &labelled, &tcp].map(settings_digest);
        assert_ne!(digests[0], digests[1]);
        assert_ne!(digests[0], digests[2]);
        assert_eq!(settings_digest(&base), settings_digest(&(*base).clone()));
    }
}
