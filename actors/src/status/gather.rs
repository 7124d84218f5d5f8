//! Asking every member a [`PeerQuery`] over the cluster links: through each alive peer's port,
//! all at once, each within a timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::answer::PeerQuery;
use super::local::answer_bytes;
use crate::membership::wire::PortMsg;
use crate::model::NodeName;
use crate::view::NodeView;

/// Asks every alive peer (and this node) `query`, each within `timeout`. Returns the answers by
/// node, and the members in the ring that did not answer (or answered something else than a
/// `T`), sorted.
pub async fn gather<T: DeserializeOwned>(
    view: &NodeView,
    query: &PeerQuery,
    timeout: Duration,
) -> (BTreeMap<NodeName, T>, Vec<NodeName>) {
    let bytes = serde_json::to_vec(query).unwrap_or_default();
    let mut answers = BTreeMap::new();
    let mut missing = Vec::new();
    match serde_json::from_slice(&answer_bytes(view, &bytes)) {
        Ok(a) => {
            answers.insert(view.node().clone(), a);
        }
        Err(_) => missing.push(view.node().clone()),
    }
    let peers = view.peers();
    let calls = peers.iter().cloned().map(|peer| {
        let bytes = bytes.clone();
        async move {
            let r = peer
                .port
                .call(|reply| PortMsg::Query(bytes, reply), Some(timeout))
                .await;
            let answer = match r {
                Ok(ractor::rpc::CallResult::Success(b)) => serde_json::from_slice::<T>(&b).ok(),
                _ => None,
            };
            (peer.name, answer)
        }
    });
    for (name, answer) in futures_util::future::join_all(calls).await {
        match answer {
            Some(a) => {
                answers.insert(name, a);
            }
            None => missing.push(name),
        }
    }
    // Members in the ring without a connected port did not answer either.
    for row in view.members().iter() {
        if row.state.in_ring() && !answers.contains_key(&row.name) && !missing.contains(&row.name) {
            missing.push(row.name.clone());
        }
    }
    missing.sort();
    missing.dedup();
    (answers, missing)
}
