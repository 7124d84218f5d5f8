//! The catalog actor: keeps this node's [`Catalog`], asks peers for their sets over the
//! cluster links (each question a spawned call under a timeout, answered by message), sends
//! the view to the ring owner when it changes, and publishes this node's set (which its port
//! answers peers from) and a summary for readers. Logs how each member's set differs from this
//! node's, once per change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::watch;

use super::msg::CatalogMsg;
use super::set::BucketedSet;
use super::state::{Catalog, CatalogSummary, Drift, Fetch, FETCH_TIMEOUT};
use crate::clock::now;
use crate::heavy::heavy;
use crate::link::Link;
use crate::membership::wire::PortMsg;
use crate::model::{NodeName, TargetSpec};
use crate::ring::msg::RingOwnerMsg;
use crate::status::answer::PeerQuery;
use crate::view::NodeView;

/// How often unanswered questions are looked at.
const TICK: Duration = Duration::from_secs(1);

/// The catalog actor.
#[derive(Debug)]
pub struct CatalogActor;

/// What the catalog starts with.
#[derive(Debug)]
pub struct CatalogArgs {
    /// This node's targets.
    pub targets: Arc<[Arc<TargetSpec>]>,
    /// Where the view goes.
    pub ring: Link<RingOwnerMsg>,
    /// The peers' ports (questions go there) and this node's name.
    pub view: NodeView,
    /// Where this node's set is published.
    pub own_set: watch::Sender<Arc<BucketedSet>>,
    /// Where the summary is published.
    pub summary: watch::Sender<Arc<CatalogSummary>>,
}

/// The catalog's state.
#[derive(Debug)]
pub struct CatalogState {
    args: CatalogArgs,
    catalog: Catalog,
    /// When a held-back view is due to be looked at again.
    recheck: Option<std::time::Instant>,
    drift: BTreeMap<NodeName, Drift>,
}

impl Actor for CatalogActor {
    type Msg = CatalogMsg;
    type State = CatalogState;
    type Arguments = CatalogArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<CatalogMsg>,
        args: CatalogArgs,
    ) -> Result<CatalogState, ActorProcessingErr> {
        myself.send_interval(TICK, || CatalogMsg::Tick);
        let catalog = Catalog::new(args.view.node().clone(), &args.targets);
        Ok(CatalogState {
            args,
            catalog,
            recheck: None,
            drift: BTreeMap::new(),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<CatalogMsg>,
        state: &mut CatalogState,
    ) -> Result<(), ActorProcessingErr> {
        state.publish(&myself, true);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<CatalogMsg>,
        msg: CatalogMsg,
        state: &mut CatalogState,
    ) -> Result<(), ActorProcessingErr> {
        let fetches = match msg {
            CatalogMsg::SetTargets(targets) => {
                heavy("catalog update", || state.catalog.set_own(&targets));
                state.publish(&myself, false);
                Vec::new()
            }
            CatalogMsg::Members(members) => {
                let fetches = state.catalog.members(&members, now());
                state.publish(&myself, false);
                fetches
            }
            CatalogMsg::Tick => state.catalog.tick(now()),
            CatalogMsg::Settled => {
                state.recheck = None;
                state.publish(&myself, false);
                Vec::new()
            }
            CatalogMsg::Publish => {
                state.publish(&myself, true);
                Vec::new()
            }
            CatalogMsg::Digests { member, answer } => match answer {
                Ok(a) => {
                    let (fetches, changed) =
                        state.catalog.digests(&member, a.buckets, a.digest, now());
                    if changed {
                        state.publish(&myself, false);
                    }
                    fetches
                }
                Err(why) => {
                    tracing::debug!(%member, %why, "could not get a member's set digests");
                    state.catalog.failed(&member);
                    Vec::new()
                }
            },
            CatalogMsg::Buckets { member, answer } => match answer {
                Ok(a) => {
                    let (fetches, changed) = state.catalog.buckets(&member, a.buckets, now());
                    if changed {
                        state.publish(&myself, false);
                    }
                    fetches
                }
                Err(why) => {
                    tracing::debug!(%member, %why, "could not get a member's set buckets");
                    state.catalog.failed(&member);
                    Vec::new()
                }
            },
        };
        state.ask(&myself, fetches);
        Ok(())
    }
}

impl CatalogState {
    /// Publishes this node's set and the summary, and builds and sends the view to the ring
    /// owner when it changed (or always, with `force`). Membership says who is alive on every
    /// change of a member, so most calls change nothing and cost a digest of a few members.
    fn publish(&mut self, myself: &ActorRef<CatalogMsg>, force: bool) {
        let own = self.catalog.own().clone();
        if self.args.own_set.borrow().digest != own.digest || force {
            self.args.own_set.send_replace(own);
        }
        let in_step = self.catalog.in_step();
        let hold = if force {
            None
        } else {
            self.catalog.hold_until(now())
        };
        if let Some(until) = hold {
            if self.recheck != Some(until) {
                self.recheck = Some(until);
                myself.send_after(until.saturating_duration_since(now()), || {
                    CatalogMsg::Settled
                });
            }
        }
        if hold.is_some() || (!force && !self.catalog.view_changed()) {
            self.args.summary.send_if_modified(|s| {
                let changed = s.in_step != in_step;
                if changed {
                    Arc::make_mut(s).in_step = in_step;
                }
                changed
            });
            return;
        }
        let view = heavy("catalog view", || self.catalog.view());
        let summary = view.summary(in_step);
        self.report_drift(&summary);
        self.args.summary.send_replace(Arc::new(summary));
        self.catalog.sent(view.digest);
        self.args.ring.cast(RingOwnerMsg::Catalog(Arc::new(view)));
    }

    /// One log line per member whose set starts or stops differing, or differs otherwise, once
    /// its set is known (a member still being caught up keeps what was said of it).
    fn report_drift(&mut self, summary: &CatalogSummary) {
        let catching_up: BTreeMap<NodeName, Drift> = (self.drift.iter())
            .filter(|(m, _)| !summary.drift.contains_key(*m) && summary.sets.contains_key(*m))
            .map(|(m, d)| (m.clone(), *d))
            .collect();
        for (member, d) in &summary.drift {
            if self.drift.get(member) == Some(d) {
                continue;
            }
            if d.is_none() {
                if self.drift.contains_key(member) {
                    tracing::info!(%member, "member {member} lists the same targets as this node again");
                }
            } else {
                tracing::warn!(
                    %member, added = d.added, removed = d.removed, changed = d.changed,
                    "member {member} lists other targets than this node: {} more, {} fewer, {} with other settings; each target is probed by the members that list it",
                    d.added, d.removed, d.changed
                );
            }
        }
        self.drift = summary.drift.clone();
        self.drift.extend(catching_up);
    }

    /// Asks each question in a task of its own, under a timeout; the answer comes back as a
    /// message.
    fn ask(&mut self, myself: &ActorRef<CatalogMsg>, fetches: Vec<Fetch>) {
        let peers = self.args.view.peers();
        for fetch in fetches {
            let (member, query) = match fetch {
                Fetch::Digests(m) => (m, PeerQuery::SetDigests),
                Fetch::Buckets(m, buckets) => (m, PeerQuery::SetBuckets { buckets }),
            };
            let Some(port) = peers
                .iter()
                .find(|p| p.name == member)
                .map(|p| p.port.clone())
            else {
                self.catalog.failed(&member);
                continue;
            };
            let me = myself.clone();
            tokio::spawn(async move {
                let bytes = serde_json::to_vec(&query).unwrap_or_default();
                let reply = port
                    .call(|r| PortMsg::Query(bytes, r), Some(FETCH_TIMEOUT))
                    .await;
                let bytes = match reply {
                    Ok(ractor::rpc::CallResult::Success(b)) => Ok(b),
                    Ok(_) => Err("no answer in time".to_string()),
                    Err(e) => Err(e.to_string()),
                };
                let msg = match query {
                    PeerQuery::SetDigests => CatalogMsg::Digests {
                        member,
                        answer: bytes.and_then(|b| decode(&b)),
                    },
                    _ => CatalogMsg::Buckets {
                        member,
                        answer: bytes.and_then(|b| decode(&b)),
                    },
                };
                let _ = me.cast(msg);
            });
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("unexpected answer: {e}"))
}
