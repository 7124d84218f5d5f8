//! The ring owner: decides which targets this node owns, from the membership view.
//!
//! - [`assignment_for`] is the pure decision: (view, targets, me) → owned targets.
//! - [`RingOwner`] holds the view and the targets, recomputes on every membership change,
//!   bumps the ownership epoch, and sends the full owned set to the probe supervisor in one
//!   message.
//!
//! Until the consistent-hash ring lands with clustering, a member owns every target (the
//! safe direction: duplicate probes, never a gap); a node that is not in its own view owns none.

pub mod placement;

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::RactorMessage;

use crate::membership::{MembershipMsg, MembershipView};
use crate::model::{NodeName, TargetSpec};
use crate::supervisor::{ProbeSupMsg, TreeRefs};

/// The targets `me` owns under `view`.
pub fn assignment_for(
    view: &MembershipView,
    targets: &[Arc<TargetSpec>],
    me: &NodeName,
) -> Arc<[Arc<TargetSpec>]> {
    if view.alive.contains(me) {
        targets.into()
    } else {
        Arc::new([])
    }
}

/// The ring owner actor.
#[derive(Debug)]
pub struct RingOwner;

/// What the ring owner starts with.
#[derive(Debug)]
pub struct RingOwnerArgs {
    /// This node.
    pub me: NodeName,
    /// Every configured target.
    pub targets: Arc<[Arc<TargetSpec>]>,
    /// Where membership and the probe supervisor are.
    pub refs: Arc<TreeRefs>,
}

/// Messages of the ring owner.
#[derive(Debug, RactorMessage)]
pub enum RingOwnerMsg {
    /// Membership has a new view.
    MembershipChanged(MembershipView),
    /// Send the current assignment again (the probe supervisor restarted).
    Resend,
}

/// The ring owner's state.
#[derive(Debug)]
pub struct RingOwnerState {
    me: NodeName,
    targets: Arc<[Arc<TargetSpec>]>,
    refs: Arc<TreeRefs>,
    view: Option<MembershipView>,
    epoch: u64,
    owned: Arc<[Arc<TargetSpec>]>,
}

impl RingOwnerState {
    fn send_assignment(&self) {
        if self.view.is_none() {
            return;
        }
        self.refs.probes.cast(ProbeSupMsg::Assign {
            epoch: self.epoch,
            targets: self.owned.clone(),
        });
    }
}

impl Actor for RingOwner {
    type Msg = RingOwnerMsg;
    type State = RingOwnerState;
    type Arguments = RingOwnerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<RingOwnerMsg>,
        args: RingOwnerArgs,
    ) -> Result<RingOwnerState, ActorProcessingErr> {
        Ok(RingOwnerState {
            me: args.me,
            targets: args.targets,
            refs: args.refs,
            view: None,
            epoch: 0,
            owned: Arc::new([]),
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<RingOwnerMsg>,
        state: &mut RingOwnerState,
    ) -> Result<(), ActorProcessingErr> {
        // After a restart membership is already running: ask it for the view.
        state.refs.membership.cast(MembershipMsg::Publish);
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<RingOwnerMsg>,
        msg: RingOwnerMsg,
        state: &mut RingOwnerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RingOwnerMsg::MembershipChanged(view) => {
                if state.view.as_ref() == Some(&view) {
                    return Ok(());
                }
                state.epoch += 1;
                state.owned = assignment_for(&view, &state.targets, &state.me);
                tracing::info!(
                    epoch = state.epoch,
                    members = view.alive.len(),
                    targets = state.targets.len(),
                    owned = state.owned.len(),
                    "ownership computed"
                );
                state.view = Some(view);
                state.send_assignment();
            }
            RingOwnerMsg::Resend => state.send_assignment(),
        }
        Ok(())
    }
}
