//! Answers computed from this node's published view: its summary, its latest results, the
//! owners of a target, the what-if plan, and the cluster summary built from what every member
//! answered.

use std::collections::BTreeMap;

use super::answer::{
    ClusterStatus, ConfigReport, Flow, MemberStatus, NodeStatus, OwnerAnswer, PeerQuery, Plan,
    Preference, ResultCounts, SetBuckets, SetDigests, TargetCounts, TargetReport, Why,
};
use crate::model::{target_hash, NodeName, ProbeResult, TargetKey};
use crate::probe::health::TargetState;
use crate::ring::placement::Ring;
use crate::ring::reassign::{Layout, Reassignment};
use crate::view::NodeView;

/// This node's summary.
pub fn node_status(view: &NodeView) -> NodeStatus {
    let st = view.state();
    let (up, down) = st.up_down();
    let ring = view.ring();
    NodeStatus {
        node: view.node().clone(),
        epoch: ring.as_ref().map_or(0, |r| r.epoch),
        ring_digest: ring.as_ref().map(|r| format!("{:016x}", r.ring.digest())),
        owned: ring.as_ref().map_or(0, |r| r.owned),
        kept: ring.as_ref().map_or(0, |r| r.kept),
        running: st.running_count(),
        up,
        down,
        degraded: st.degraded_count(),
        restarts: st
            .restarts()
            .into_iter()
            .map(|(role, n)| (role.to_string(), n))
            .collect(),
        results_dropped: st.results_dropped(),
        results_buffered: st.results_buffered(),
        unprobed: st.unprobed_now(),
    }
}

fn report(view: &NodeView, r: &ProbeResult, state: Option<TargetState>) -> TargetReport {
    let key = r.target.key();
    let verdict = view.state().verdict(&key);
    let since = view
        .state()
        .changed_at(&key)
        .map(|t| humantime::format_rfc3339_millis(t).to_string());
    TargetReport {
        result: r.line().into_owned(),
        state: verdict.as_ref().and_then(|v| v.state).or(state),
        degraded: verdict.as_ref().is_some_and(|v| v.degraded),
        vantages: verdict.map(|v| {
            v.vantages
                .into_iter()
                .map(|(n, s)| (n.to_string(), s))
                .collect()
        }),
        since,
        recent: Vec::new(),
    }
}

/// This node's latest results (of the targets it probes), only those in `state` when set,
/// sorted by probe kind name and target.
pub fn targets(view: &NodeView, state: Option<TargetState>) -> Vec<TargetReport> {
    let mut out: Vec<TargetReport> = view
        .state()
        .running_latest()
        .into_iter()
        .filter(|(_, s)| state.is_none_or(|want| *s == Some(want)))
        .map(|(r, s)| report(view, &r, s))
        .collect();
    out.sort_by(|a, b| {
        (a.result.probe.as_str(), &a.result.target)
            .cmp(&(b.result.probe.as_str(), &b.result.target))
    });
    out
}

/// This node's latest result of `key`, if it probes it.
pub fn latest(view: &NodeView, key: &TargetKey) -> Option<TargetReport> {
    let (r, s) = view.state().running_latest_of(key)?;
    Some(TargetReport {
        recent: view.state().recent(key),
        ..report(view, &r, s)
    })
}

/// Answers a question from a peer (bytes in, bytes out; a bad question gets
/// `{"error": ...}`).
pub fn answer_bytes(view: &NodeView, query: &[u8]) -> Vec<u8> {
    let encoded = match serde_json::from_slice::<PeerQuery>(query) {
        Ok(PeerQuery::Status) => serde_json::to_vec(&node_status(view)),
        Ok(PeerQuery::Targets { state }) => serde_json::to_vec(&targets(view, state)),
        Ok(PeerQuery::Latest { probe, target }) => {
            let key = TargetKey {
                probe,
                id: target.into(),
            };
            serde_json::to_vec(&latest(view, &key))
        }
        Ok(PeerQuery::SetDigests) => {
            let own = view.own_set();
            serde_json::to_vec(&SetDigests {
                digest: own.digest,
                buckets: own.digests.clone(),
            })
        }
        Ok(PeerQuery::SetBuckets { buckets }) => {
            let own = view.own_set();
            let buckets = buckets
                .into_iter()
                .filter(|b| usize::from(*b) < own.entries.len())
                .map(|b| (b, own.entries[usize::from(b)].clone()))
                .collect();
            serde_json::to_vec(&SetBuckets {
                digest: own.digest,
                buckets,
            })
        }
        Err(e) => serde_json::to_vec(&serde_json::json!({ "error": e.to_string() })),
    };
    encoded.unwrap_or_default()
}

/// Who owns `key`, why, and this node's last result of it; None before the first ring or for
/// a target not in it.
pub fn owner(view: &NodeView, key: &TargetKey) -> Option<OwnerAnswer> {
    let snap = view.ring()?;
    let i = snap.position(key)?;
    let st = view.state();
    Some(OwnerAnswer {
        target: key.id.to_string(),
        probe: key.probe,
        owners: snap.owner_names(i),
        listed_by: snap.catalog.listers(i),
        replicas: snap.ring.replicas(),
        epoch: snap.epoch,
        ring_digest: format!("{:016x}", snap.ring.digest()),
        why: Why {
            target_hash: format!("{:016x}", target_hash(key)),
            preference: snap
                .ring
                .preferences(key)
                .into_iter()
                .map(|(member, weight, s)| Preference {
                    member,
                    weight,
                    score: format!("{s:016x}"),
                })
                .collect(),
            note: "members are ranked by weighted rendezvous score; a target goes to its best-ranked members that list it, with room under the 1.10x load bound".into(),
        },
        last_result: st.latest(key).map(|r| TargetReport {
            recent: st.recent(key),
            ..report(view, &r, st.confirmed(key))
        }),
    })
}

/// What would move if `leaves` left, or `joins` (name, weight) joined: the same placement
/// function and [`Reassignment`] the ring owner uses, changing nothing.
pub fn plan(
    view: &NodeView,
    leaves: Option<&str>,
    joins: Option<(&str, u32)>,
) -> Result<Plan, String> {
    let snap = view.ring().ok_or("no ring yet")?;
    let mut members: Vec<(NodeName, u32)> = snap.ring.members().to_vec();
    if let Some(name) = leaves {
        let before = members.len();
        members.retain(|(n, _)| n.as_str() != name);
        if members.len() == before {
            return Err(format!("{name} is not a member of the ring"));
        }
    }
    if let Some((name, weight)) = joins {
        let name = NodeName::new(name)?;
        if members.iter().any(|(n, _)| *n == name) {
            return Err(format!("{name} is already a member"));
        }
        members.push((name, weight));
    }
    let next = Ring::new(members, snap.ring.replicas());
    let placement = snap.place_on(&next);
    let after = Layout {
        ring: &next,
        keys: &snap.keys,
        placement: &placement,
    };
    let moves = Reassignment::between(Some(snap.layout()), after);
    let moved_targets: Vec<String> = moves.moved().map(|i| snap.keys[i].to_string()).collect();
    Ok(Plan {
        targets: snap.keys.len(),
        moved: moved_targets.len(),
        unowned: placement.iter().filter(|owners| owners.is_empty()).count(),
        moves: moves
            .flows()
            .into_iter()
            .map(|((from, to), targets)| Flow { from, to, targets })
            .collect(),
        moved_targets,
        ring_digest_after: format!("{:016x}", next.digest()),
    })
}

/// The cluster as this node sees it: its members (with their ring shares and target sets) and
/// what each answered (`answers`, by member; `missing` did not answer), and its config.
pub fn cluster_status(
    view: &NodeView,
    answers: &BTreeMap<NodeName, NodeStatus>,
    missing: Vec<NodeName>,
) -> ClusterStatus {
    let catalog = view.catalog();
    let config = view.config();
    let local = node_status(view);
    let snap = view.ring();
    let loads: BTreeMap<&NodeName, usize> = match &snap {
        Some(s) => s
            .ring
            .members()
            .iter()
            .map(|(n, _)| n)
            .zip(s.placement.loads(s.ring.members().len()))
            .collect(),
        None => BTreeMap::new(),
    };
    let all: usize = loads.values().sum::<usize>().max(1);
    let members = view
        .members()
        .iter()
        .map(|m| {
            let a = answers.get(&m.name);
            let targets = loads.get(&m.name).copied().unwrap_or(0);
            MemberStatus {
                name: m.name.clone(),
                state: m.state,
                address: m.address.clone(),
                weight: m.weight,
                local: m.local,
                targets,
                share: targets as f64 / all as f64,
                up: a.map(|a| a.up),
                down: a.map(|a| a.down),
                restarts: a.map(|a| a.restarts.values().sum()),
                unprobed: a.map(|a| a.unprobed),
                results_dropped: a.map(|a| a.results_dropped),
                target_set: catalog.sets.get(&m.name).map(|s| format!("{:016x}", s.0)),
                target_count: catalog.sets.get(&m.name).map(|s| s.1),
            }
        })
        .collect();
    ClusterStatus {
        node: local.node,
        epoch: local.epoch,
        ring_digest: local.ring_digest,
        replicas: snap.as_ref().map(|s| s.ring.replicas()),
        targets: TargetCounts {
            total: catalog.targets,
            not_everywhere: catalog.not_everywhere,
            owned: local.owned,
            kept: local.kept,
            up: local.up,
            down: local.down,
            degraded: local.degraded,
        },
        results: ResultCounts {
            buffered: local.results_buffered,
            dropped: local.results_dropped,
        },
        members,
        not_answering: missing,
        config: ConfigReport {
            last_reload_successful: config.last_reload_successful,
            last_reload_success: config
                .last_success
                .map(|t| humantime::format_rfc3339_millis(t).to_string()),
            last_error: config.last_error.clone(),
            needs_restart: config.needs_restart.clone(),
            source_errors: config.source_errors.clone(),
        },
    }
}
