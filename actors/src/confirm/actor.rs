//! The confirm actor: runs [`Confirmations`] for the targets this node owns when targets have
//! several owners (`replicas` > 1). A thin shell: it takes this node's views from its probe
//! actors and the co-owners' from the port, follows the ring the ring owner publishes, sends
//! this node's views to the co-owners (batched per peer every 250 ms), writes the events this
//! node reports as primary to the sink, and publishes the cluster's states for the status API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::msg::ConfirmMsg;
use super::views::{Carried, Confirmations, Event, Placed};
use crate::clock;
use crate::link::Link;
use crate::membership::wire::{PeerMessage, PortMsg, WireView, HANDOFF_CHUNK};
use crate::model::{NodeName, StateEvent, TargetKey, TargetSpec};
use crate::probe::health::TargetState;
use crate::ring::snapshot::RingSnapshot;
use crate::sink::actor::SinkMsg;
use crate::state::NodeState;
use crate::view::NodeView;

/// How often queued views are sent and the ring is looked at.
const TICK: Duration = Duration::from_millis(250);
/// Ticks between two publications of the cluster's states.
const PUBLISH_EVERY: u64 = 4;

/// The confirm actor.
#[derive(Debug)]
pub struct ConfirmActor;

/// What it starts with.
#[derive(Debug)]
pub struct ConfirmArgs {
    /// The node's published state: the ring, the peers' ports, the epoch.
    pub view: NodeView,
    /// Where this node's events go.
    pub sink: Link<SinkMsg>,
    /// Where the cluster's states are published.
    pub state: Arc<NodeState>,
}

/// Its state.
#[derive(Debug)]
pub struct ConfirmState {
    confirmations: Confirmations,
    args: ConfirmArgs,
    /// The ring last placed.
    ring: Option<Arc<RingSnapshot>>,
    specs: HashMap<TargetKey, Arc<TargetSpec>>,
    outbox: HashMap<NodeName, Vec<WireView>>,
    ticks: u64,
}

impl Actor for ConfirmActor {
    type Msg = ConfirmMsg;
    type State = ConfirmState;
    type Arguments = ConfirmArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ConfirmMsg>,
        args: ConfirmArgs,
    ) -> Result<ConfirmState, ActorProcessingErr> {
        myself.send_interval(TICK, || ConfirmMsg::Tick);
        Ok(ConfirmState {
            confirmations: Confirmations::new(args.view.node().clone()),
            args,
            ring: None,
            specs: HashMap::new(),
            outbox: HashMap::new(),
            ticks: 0,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ConfirmMsg>,
        msg: ConfirmMsg,
        state: &mut ConfirmState,
    ) -> Result<(), ActorProcessingErr> {
        let now = clock::now();
        match msg {
            ConfirmMsg::Own { key, state: seen } => {
                let event = state.confirmations.own(&key, seen, now);
                state.queue(&key, Some(seen));
                if let Some(e) = event {
                    state.report(e);
                }
            }
            ConfirmMsg::Peer { from, views } => {
                let Ok(from) = NodeName::new(&from) else {
                    return Ok(());
                };
                for v in views {
                    let key = v.key();
                    let carried = v.carried.map(|(version, up)| Carried {
                        version,
                        state: state_of(up),
                    });
                    let view = v.up.map(state_of);
                    if let Some(e) = state.confirmations.peer(&from, &key, view, carried, now) {
                        state.queue(&key, None);
                        state.report(e);
                    }
                }
            }
            ConfirmMsg::Tick => {
                state.follow_ring(now);
                for e in state.confirmations.tick(now) {
                    state.queue(&e.key, None);
                    state.report(e);
                }
                state.flush();
                state.ticks += 1;
                if state.ticks % PUBLISH_EVERY == 0 {
                    state.publish(now);
                }
            }
        }
        Ok(())
    }
}

/// `key`'s word for the wire: a view if set, and the decision carried if any.
fn wire_view(key: &TargetKey, view: Option<TargetState>, carried: Option<Carried>) -> WireView {
    WireView {
        probe: key.probe,
        target: key.id.to_string(),
        up: view.map(|s| s == TargetState::Up),
        carried: carried.map(|c| (c.version, c.state == TargetState::Up)),
    }
}

fn state_of(up: bool) -> TargetState {
    if up {
        TargetState::Up
    } else {
        TargetState::Down
    }
}

impl ConfirmState {
    /// Places the targets this node owns in the ring last published, when it changed.
    fn follow_ring(&mut self, now: std::time::Instant) {
        let Some(ring) = self.args.view.ring() else {
            return;
        };
        if self.ring.as_ref().is_some_and(|r| Arc::ptr_eq(r, &ring)) {
            return;
        }
        let me = self.args.view.node().clone();
        let mut owned = Vec::new();
        let mut specs = HashMap::new();
        if let Some(i_me) = ring.ring.index_of(&me) {
            for i in ring.placement.owned_by(i_me) {
                let Some(spec) = ring.catalog.targets.get(i).and_then(|t| t.own.clone()) else {
                    continue;
                };
                let placed = Placed {
                    owners: ring.owner_names(i),
                    k: spec.confirm,
                    interval: spec.interval,
                };
                owned.push((ring.keys[i].clone(), placed));
                specs.insert(ring.keys[i].clone(), spec);
            }
        }
        self.specs = specs;
        self.ring = Some(ring);
        let reshuffle = self.confirmations.place(owned, now);
        for (to, key, c) in reshuffle.greet {
            self.outbox
                .entry(to)
                .or_default()
                .push(wire_view(&key, None, Some(c)));
        }
        for e in reshuffle.events {
            self.queue(&e.key, None);
            self.report(e);
        }
    }

    /// Queues this node's word on `key` for its co-owners: its view if `view` is set, and the
    /// state it carries.
    fn queue(&mut self, key: &TargetKey, view: Option<TargetState>) {
        let me = self.confirmations.me().clone();
        let Some((owners, carried)) = self.confirmations.outbound(key) else {
            return;
        };
        for o in owners.iter().filter(|o| **o != me) {
            self.outbox
                .entry(o.clone())
                .or_default()
                .push(wire_view(key, view, carried));
        }
    }

    /// Sends the queued views, one message per peer (chunked). A peer not connected now gets
    /// nothing: its copies of this node's views go stale, as they should.
    fn flush(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        let peers = self.args.view.peers();
        let from = self.confirmations.me().to_string();
        for (name, views) in self.outbox.drain() {
            let Some(peer) = peers.iter().find(|p| p.name == name) else {
                continue;
            };
            for chunk in views.chunks(HANDOFF_CHUNK) {
                let msg = PeerMessage::Views {
                    from: from.clone(),
                    views: chunk.to_vec(),
                };
                let _ = peer.port.cast(PortMsg::Wire(msg.encode()));
            }
        }
    }

    /// Writes and logs a change this node reports as the target's primary.
    fn report(&mut self, e: Event) {
        let Some(spec) = self.specs.get(&e.key).cloned() else {
            return;
        };
        let downs = e
            .vantages
            .iter()
            .filter(|(_, s)| *s == TargetState::Down)
            .count();
        let views: Vec<String> = e
            .vantages
            .iter()
            .map(|(n, s)| format!("{n}={}", s.as_str()))
            .collect();
        tracing::info!(
            host = %spec.id,
            probe = spec.kind().as_str(),
            from = e.from.map_or("unknown", TargetState::as_str),
            to = e.to.as_str(),
            vantages = %views.join(","),
            "target {} (down from {downs} of {} vantages, {} needed)",
            e.to.as_str(),
            e.vantages.len(),
            spec.confirm
        );
        let event = StateEvent {
            ts: SystemTime::now(),
            node: self.confirmations.me().clone(),
            target: spec,
            epoch: self.args.view.ownership().epoch,
            from: e.from,
            to: e.to,
            vantages: e.vantages,
        };
        if !self.args.sink.cast(SinkMsg::Event(event)) {
            self.args.state.add_dropped(1);
        }
    }

    /// Publishes the cluster's states of this node's targets for the status API and metrics.
    fn publish(&self, now: std::time::Instant) {
        self.args.state.set_verdicts(
            self.confirmations
                .verdicts(now)
                .map(|(k, v)| (k.clone(), v)),
        );
    }
}
