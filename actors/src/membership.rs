//! Membership: which nodes are in the cluster.
//!
//! For now a node is a cluster of one: the view holds only this node. The actor already has
//! its place in the tree, so the ring owner learns the view from it, and clustering (seeds,
//! heartbeats, failure detection over ractor_cluster) fills it in without changing the others.

use std::collections::BTreeSet;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;

use crate::model::NodeName;
use crate::ring::RingOwnerMsg;
use crate::supervisor::TreeRefs;

/// The cluster as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipView {
    /// This node.
    pub me: NodeName,
    /// Members that are alive, this node included; sorted, so every node iterates alike.
    pub alive: BTreeSet<NodeName>,
    /// Increases with every change of the view.
    pub version: u64,
}

impl MembershipView {
    /// The view of a node that is alone.
    pub fn single(me: NodeName) -> Self {
        MembershipView {
            alive: BTreeSet::from([me.clone()]),
            me,
            version: 1,
        }
    }
}

/// The membership actor.
#[derive(Debug)]
pub struct Membership;

/// What membership starts with.
#[derive(Debug)]
pub struct MembershipArgs {
    /// This node.
    pub me: NodeName,
    /// Where the ring owner is.
    pub refs: Arc<TreeRefs>,
}

/// Messages of membership.
#[derive(Debug, RactorMessage)]
pub enum MembershipMsg {
    /// Send the current view to the ring owner again (it restarted).
    Publish,
    /// Reply with the current view.
    GetView(RpcReplyPort<MembershipView>),
}

/// Membership's state.
#[derive(Debug)]
pub struct MembershipState {
    view: MembershipView,
    refs: Arc<TreeRefs>,
}

impl Actor for Membership {
    type Msg = MembershipMsg;
    type State = MembershipState;
    type Arguments = MembershipArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<MembershipMsg>,
        args: MembershipArgs,
    ) -> Result<MembershipState, ActorProcessingErr> {
        tracing::info!(node = %args.me, alive = 1, "membership: single node");
        Ok(MembershipState {
            view: MembershipView::single(args.me),
            refs: args.refs,
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<MembershipMsg>,
        state: &mut MembershipState,
    ) -> Result<(), ActorProcessingErr> {
        state.refs.ring.cast(RingOwnerMsg::MembershipChanged(state.view.clone()));
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<MembershipMsg>,
        msg: MembershipMsg,
        state: &mut MembershipState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MembershipMsg::Publish => {
                state.refs.ring.cast(RingOwnerMsg::MembershipChanged(state.view.clone()));
            }
            MembershipMsg::GetView(reply) => {
                let _ = reply.send(state.view.clone());
            }
        }
        Ok(())
    }
}
