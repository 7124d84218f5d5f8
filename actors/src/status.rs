//! What the status API reports: this node's status, its latest results, owners of a target,
//! what a join or leave would move; and gathering the same from every member over the cluster
//! links (through each node's port, with a timeout per member).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorCell, ActorRef};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::membership::transport::PortMsg;
use crate::membership::MembershipMsg;
use crate::model::{NodeName, ProbeResult, TargetKey};
use crate::probe::health::TargetState;
use crate::ring::placement::Ring;
use crate::supervisor::TreeRefs;

/// A question one node asks another.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "q", rename_all = "snake_case")]
pub enum PeerQuery {
    /// Its status summary.
    Status,
    /// Its latest result per target it probes; only those in `state` when set.
    Targets {
        /// `"up"` or `"down"` (confirmed state).
        state: Option<String>,
    },
    /// Its latest result of one target, if it has one.
    Latest {
        /// Probe kind.
        probe: String,
        /// Target id.
        target: String,
    },
}

fn read<T>(l: &std::sync::RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// This node's summary.
pub fn local_status(refs: &TreeRefs, me: &NodeName) -> Value {
    let (up, down) = refs.state.up_down();
    let view = read(&refs.ring_view).clone();
    json!({
        "node": me.as_str(),
        "epoch": view.as_ref().map_or(0, |v| v.epoch),
        "ring_digest": view.as_ref().map(|v| format!("{:016x}", v.ring.digest())),
        "owned": view.as_ref().map_or(0, |v| v.owned),
        "kept": view.as_ref().map_or(0, |v| v.kept),
        "running": refs.state.running_count(),
        "up": up,
        "down": down,
        "restarts": refs.state.restarts(),
        "results_dropped": refs.state.results_dropped(),
        "results_buffered": refs.state.results_buffered(),
        "unprobed": refs.state.unprobed_now(),
    })
}

/// One latest result as JSON, with the confirmed state.
pub fn result_json(r: &ProbeResult, state: Option<TargetState>) -> Value {
    let mut v = serde_json::to_value(r.line()).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("state".into(), state.map(|s| s.as_str()).into());
    }
    v
}

/// This node's latest results (targets it probes), filtered by confirmed state.
pub fn local_targets(refs: &TreeRefs, state: Option<&str>) -> Vec<Value> {
    let mut out: Vec<(String, Value)> = refs
        .state
        .running_latest()
        .into_iter()
        .filter(|(_, s)| state.is_none_or(|want| s.map(|s| s.as_str()) == Some(want)))
        .map(|(r, s)| (format!("{}", r.target.key()), result_json(&r, s)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, v)| v).collect()
}

/// Answers a query from a peer (bytes in, bytes out; a bad query gets an error object).
pub fn answer_bytes(refs: &TreeRefs, me: &NodeName, query: &[u8]) -> Vec<u8> {
    let answer = match serde_json::from_slice::<PeerQuery>(query) {
        Ok(PeerQuery::Status) => local_status(refs, me),
        Ok(PeerQuery::Targets { state }) => Value::Array(local_targets(refs, state.as_deref())),
        Ok(PeerQuery::Latest { probe, target }) => refs
            .state
            .running_latest()
            .into_iter()
            .find(|(r, _)| r.target.probe.as_str() == probe && *r.target.id == *target)
            .map_or(Value::Null, |(r, s)| result_json(&r, s)),
        Err(e) => json!({ "error": e.to_string() }),
    };
    serde_json::to_vec(&answer).unwrap_or_default()
}

/// Asks every connected member (and this node) `query`, each within `timeout`. Returns the
/// answers by node, and the members that did not answer.
pub async fn gather(
    refs: &Arc<TreeRefs>,
    me: &NodeName,
    query: &PeerQuery,
    timeout: Duration,
) -> (BTreeMap<String, Value>, Vec<String>) {
    let mut answers = BTreeMap::new();
    let local = answer_bytes(refs, me, &serde_json::to_vec(query).unwrap_or_default());
    answers.insert(
        me.to_string(),
        serde_json::from_slice(&local).unwrap_or(Value::Null),
    );
    let ports: Vec<(NodeName, ActorCell)> = match refs.membership.get() {
        Some(m) => ractor::call_t!(m, MembershipMsg::Ports, 1_000).unwrap_or_default(),
        None => Vec::new(),
    };
    let bytes = serde_json::to_vec(query).unwrap_or_default();
    let calls = ports.into_iter().map(|(name, cell)| {
        let bytes = bytes.clone();
        async move {
            let port: ActorRef<PortMsg> = cell.into();
            let r = port
                .call(|reply| PortMsg::Query(bytes, reply), Some(timeout))
                .await;
            let value = match r {
                Ok(ractor::rpc::CallResult::Success(b)) => serde_json::from_slice::<Value>(&b).ok(),
                _ => None,
            };
            (name, value)
        }
    });
    let mut missing = Vec::new();
    for (name, value) in futures_util::future::join_all(calls).await {
        match value {
            Some(v) => {
                answers.insert(name.to_string(), v);
            }
            None => missing.push(name.to_string()),
        }
    }
    // Members in the table without a port (not connected) did not answer either.
    for row in read(&refs.members).iter() {
        if (row.state == "alive" || row.state == "suspect")
            && !answers.contains_key(&row.name)
            && !missing.contains(&row.name)
        {
            missing.push(row.name.clone());
        }
    }
    missing.sort();
    (answers, missing)
}

/// Who owns `key`, why, and this node's last result of it.
pub fn owner(refs: &TreeRefs, key: &TargetKey) -> Option<Value> {
    let view = read(&refs.ring_view).clone()?;
    let i = view.position(key)?;
    let owners = view.owner_names(i);
    let prefs = view.ring.preferences(key);
    let latest = refs.state.latest(key);
    Some(json!({
        "target": key.id.as_ref(),
        "probe": key.probe.as_str(),
        "owners": owners.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
        "replicas": view.ring.replicas(),
        "epoch": view.epoch,
        "ring_digest": format!("{:016x}", view.ring.digest()),
        "why": {
            "target_hash": format!("{:016x}", crate::probe::schedule::target_hash(key)),
            "preference": prefs.iter().map(|(n, w, s)| json!({"member": n.as_str(), "weight": w, "score": format!("{s:016x}")})).collect::<Vec<_>>(),
            "note": "members are ranked by weighted rendezvous score; a target goes to its best-ranked members with room under the 1.10x load bound",
        },
        "last_result": latest.map(|r| result_json(&r, refs.state.confirmed(key))),
    }))
}

/// What would move if `leaves` left, or `joins` (name, weight) joined: counts from → to, and the
/// targets that move. Computed with the same placement function, changing nothing.
pub fn plan(
    refs: &TreeRefs,
    leaves: Option<&str>,
    joins: Option<(&str, u32)>,
) -> Result<Value, String> {
    let view = read(&refs.ring_view).clone().ok_or("no ring yet")?;
    let mut members: Vec<(NodeName, u32)> = view.ring.members().to_vec();
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
    let next = Ring::new(members, view.ring.replicas());
    let placement = next.place(&view.keys);
    let mut moves: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut moved = Vec::new();
    for (i, key) in view.keys.iter().enumerate() {
        let before: Vec<String> = view.owner_names(i).iter().map(|n| n.to_string()).collect();
        let after: Vec<String> = placement.owners[i]
            .iter()
            .map(|&m| next.members()[m as usize].0.to_string())
            .collect();
        let lost: Vec<&String> = before.iter().filter(|b| !after.contains(b)).collect();
        let gained: Vec<&String> = after.iter().filter(|a| !before.contains(a)).collect();
        if gained.is_empty() {
            continue;
        }
        moved.push(key.to_string());
        for (k, g) in gained.iter().enumerate() {
            let from = lost
                .get(k)
                .map_or("(new replica)".to_string(), |l| l.to_string());
            *moves.entry((from, g.to_string())).or_default() += 1;
        }
    }
    Ok(json!({
        "targets": view.keys.len(),
        "moved": moved.len(),
        "moves": moves.iter().map(|((f, t), n)| json!({"from": f, "to": t, "targets": n})).collect::<Vec<_>>(),
        "moved_targets": moved,
        "ring_digest_after": format!("{:016x}", next.digest()),
    }))
}
