//! A member's target set as it is summarised and exchanged: entries (target key and a digest
//! of its settings) in 4,096 buckets by target hash, a digest per bucket, one digest for the
//! whole set. Pure.
//!
//! # Specification
//! - `bucket(t) = XXH3_64(probe "/" id) >> 52` (the top 12 bits of the target hash).
//! - An entry's settings digest is XXH3-64 of a canonical encoding of everything that changes how
//!   the target is probed or reported ([`settings_digest`]).
//! - A bucket's digest is XXH3-64 over its entries sorted by key, each as
//!   `probe "/" id 0x00 settings(le u64)`; an empty bucket's digest is 0.
//! - The set's digest is XXH3-64 over the 4,096 bucket digests (le u64, in bucket order); the
//!   empty set's digest is 0.
//!
//! Two members with the same set have the same digests, whatever order they listed it in, so
//! agreement costs one 64-bit digest per heartbeat, and a difference is found bucket by bucket.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::model::{target_hash, Check, Host, ProbeKind, TargetKey, TargetSpec};

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
/// host, interval, timeout, rise/fall, retry interval, labels, and the check's settings.
/// Fields are fed to the hash as bytes, strings with their length first, so no two specs that
/// differ feed the same bytes; no formatting (a reload of 100,000 targets digests each up to
/// three times).
pub fn settings_digest(spec: &TargetSpec) -> u64 {
    let mut h = Xxh3::new();
    let text = |h: &mut Xxh3, s: &[u8]| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s);
    };
    match &spec.host {
        Host::Ip(IpAddr::V4(ip)) => {
            h.update(&[4]);
            h.update(&ip.octets());
        }
        Host::Ip(IpAddr::V6(ip)) => {
            h.update(&[6]);
            h.update(&ip.octets());
        }
        Host::Name(name) => {
            h.update(&[0]);
            text(&mut h, name.as_bytes());
        }
    }
    for d in [spec.interval, spec.timeout, spec.retry_interval] {
        h.update(&d.as_nanos().to_le_bytes());
    }
    h.update(&spec.thresholds.rise.to_le_bytes());
    h.update(&spec.thresholds.fall.to_le_bytes());
    h.update(&spec.confirm.to_le_bytes());
    h.update(&(spec.labels.len() as u64).to_le_bytes());
    for (k, v) in spec.labels.iter() {
        text(&mut h, k.as_bytes());
        text(&mut h, v.as_bytes());
    }
    match &spec.check {
        Check::Icmp(e) => {
            h.update(b"icmp");
            for part in e.digest_parts() {
                h.update(&part.to_le_bytes());
            }
        }
        Check::Tcp { port } => {
            h.update(b"tcp");
            h.update(&port.to_le_bytes());
        }
        Check::Ssh { port, settings: t } => {
            h.update(b"ssh");
            h.update(&port.to_le_bytes());
            // SSH targets are few and their settings many: one canonical text.
            let rest = format!(
                "{}|{}|{:?}|{:?}|{:?}|{}|{:?}|{}",
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
            text(&mut h, rest.as_bytes());
        }
    }
    h.digest()
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

/// How one set differs from another (a member's from this node's, a new list from the old).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drift {
    /// Targets the other set lists that this one does not.
    pub added: usize,
    /// Targets this set lists that the other does not.
    pub removed: usize,
    /// Targets both list with other settings.
    pub changed: usize,
}

impl Drift {
    /// True when the sets agree.
    pub fn is_none(&self) -> bool {
        *self == Drift::default()
    }
}

/// A node's target list together with its set, computed once where the list is read (off the
/// async threads) and passed on with it.
#[derive(Clone, Debug, Default)]
pub struct TargetList {
    /// The targets, as listed.
    pub specs: Arc<[Arc<TargetSpec>]>,
    /// Their set.
    pub set: Arc<BucketedSet>,
}

impl TargetList {
    /// The list of `specs`.
    pub fn of(specs: Arc<[Arc<TargetSpec>]>) -> Self {
        let set = Arc::new(BucketedSet::of(&specs));
        TargetList { specs, set }
    }
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

    /// True when the set holds `key`.
    pub fn contains(&self, key: &TargetKey) -> bool {
        self.entries[usize::from(bucket(key))]
            .iter()
            .any(|e| e.probe == key.probe && e.id == key.id)
    }

    /// The buckets whose digests differ from `digests` (another member's), ascending.
    pub fn differing(&self, digests: &[u64]) -> Vec<u16> {
        (0..BUCKETS)
            .filter(|&b| digests.get(b).copied().unwrap_or(0) != self.digests[b])
            .map(|b| b as u16)
            .collect()
    }

    /// How `other` differs from this set, compared only in the buckets whose digests differ.
    pub fn drift_to(&self, other: &BucketedSet) -> Drift {
        let mut d = Drift::default();
        if self.digest == other.digest {
            return d;
        }
        for b in self.differing(&other.digests) {
            let (a, t) = (
                &self.entries[usize::from(b)],
                &other.entries[usize::from(b)],
            );
            let (mut i, mut j) = (0, 0);
            while i < a.len() || j < t.len() {
                let ka = a.get(i).map(|e| (e.probe, &e.id));
                let kt = t.get(j).map(|e| (e.probe, &e.id));
                match (ka, kt) {
                    (Some(x), Some(y)) if x == y => {
                        if a[i].settings != t[j].settings {
                            d.changed += 1;
                        }
                        i += 1;
                        j += 1;
                    }
                    (Some(x), Some(y)) if x < y => {
                        d.removed += 1;
                        i += 1;
                    }
                    (Some(_), None) => {
                        d.removed += 1;
                        i += 1;
                    }
                    _ => {
                        d.added += 1;
                        j += 1;
                    }
                }
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::target;
    use std::collections::BTreeMap;
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
    fn settings_digests_see_every_field() {
        let base = spec("127.0.0.1", 10);
        let with = |f: &dyn Fn(&mut TargetSpec)| {
            let mut t = (*base).clone();
            f(&mut t);
            settings_digest(&t)
        };
        let label = |k: &str, v: &str| -> crate::model::Labels {
            Arc::new([(k.to_string(), v.to_string())].into())
        };
        let digests = [
            settings_digest(&base),
            with(&|t| t.host = crate::model::Host::parse("127.0.0.2").unwrap()),
            with(&|t| t.host = crate::model::Host::parse("::1").unwrap()),
            with(&|t| t.host = crate::model::Host::parse("localhost").unwrap()),
            with(&|t| t.interval = Duration::from_secs(11)),
            with(&|t| t.timeout = Duration::from_millis(1001)),
            with(&|t| t.retry_interval = Duration::from_millis(1234)),
            with(&|t| t.thresholds.rise = 3),
            with(&|t| t.thresholds.fall = 3),
            with(&|t| t.confirm = 2),
            with(&|t| t.labels = label("site", "a")),
            // The same bytes split otherwise between key and value.
            with(&|t| t.labels = label("sit", "ea")),
            with(&|t| t.check = Check::Tcp { port: 22 }),
            with(&|t| t.check = Check::Tcp { port: 23 }),
        ];
        let distinct: std::collections::BTreeSet<u64> = digests.iter().copied().collect();
        assert_eq!(distinct.len(), digests.len(), "{digests:x?}");
        assert_eq!(settings_digest(&base), settings_digest(&(*base).clone()));
        // A source address is the member's own vantage, which members may set apart.
        assert_eq!(
            settings_digest(&base),
            with(&|t| t.source = Some("127.0.1.1".parse().unwrap()))
        );
    }

    /// Lists of up to 300 targets from 400, each with one of two intervals.
    fn list_strategy() -> impl proptest::strategy::Strategy<Value = BTreeMap<u32, u64>> {
        proptest::collection::btree_map(0u32..400, 10u64..12, 0..300)
    }

    fn list(ids: &BTreeMap<u32, u64>) -> Vec<Arc<TargetSpec>> {
        ids.iter()
            .map(|(i, s)| spec(&format!("127.0.{}.{}", i / 256, i % 256), *s))
            .collect()
    }

    proptest::proptest! {
        /// The bucket-wise count agrees with counting target by target.
        #[test]
        fn drift_counts_what_was_added_removed_and_changed(a in list_strategy(), b in list_strategy()) {
            let d = BucketedSet::of(&list(&a)).drift_to(&BucketedSet::of(&list(&b)));
            let added = b.keys().filter(|k| !a.contains_key(k)).count();
            let removed = a.keys().filter(|k| !b.contains_key(k)).count();
            let changed = a.iter().filter(|(k, s)| b.get(k).is_some_and(|t| t != *s)).count();
            proptest::prop_assert_eq!(d, Drift { added, removed, changed });
        }
    }
}
