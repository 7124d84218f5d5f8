//! The port: the one remotable actor of a node, the only one its peers see. It decodes each
//! [`PeerMessage`] (bounded, validating) and routes it to the actor it is for, and answers
//! status questions from the node's published view.
//!
//! | message | goes to |
//! |---|---|
//! | heartbeat, leave, death report, refusal of this node | membership (which checks a refusal against this node's own claim on its name) |
//! | hand-off states | the probe supervisor |
//! | views of co-owned targets | the confirm actor |
//! | status question | answered here, from the [`NodeView`] |

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::msg::MembershipMsg;
use super::wire::{PeerMessage, PortMsg};
use crate::confirm::msg::ConfirmMsg;
use crate::link::Link;
use crate::status::local::answer_bytes;
use crate::supervisor::msg::ProbeSupMsg;
use crate::view::NodeView;

/// The process group every node's port joins.
pub const PORT_GROUP: &str = "ringpoll.membership";

/// The port actor.
#[derive(Debug)]
pub struct PortActor;

/// Where the port routes what it receives.
#[derive(Debug)]
pub struct PortArgs {
    /// Heartbeats, leaves and refusals.
    pub membership: ActorRef<MembershipMsg>,
    /// Hand-off states.
    pub probes: Link<ProbeSupMsg>,
    /// Views of co-owned targets.
    pub confirm: Link<ConfirmMsg>,
    /// What status questions are answered from.
    pub view: NodeView,
}

impl Actor for PortActor {
    type Msg = PortMsg;
    type State = PortArgs;
    type Arguments = PortArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<PortMsg>,
        args: PortArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<PortMsg>,
        msg: PortMsg,
        state: &mut PortArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PortMsg::Wire(bytes) => match PeerMessage::decode(&bytes) {
                Ok(PeerMessage::Handoff { from, states }) => {
                    tracing::debug!(from = %from, targets = states.len(), "target states handed over");
                    state.probes.cast(ProbeSupMsg::Inherit(states));
                }
                Ok(PeerMessage::Views { from, views }) => {
                    state.confirm.cast(ConfirmMsg::Peer { from, views });
                }
                // Membership checks a refusal against this node's own claim on its name.
                Ok(
                    m @ (PeerMessage::Heartbeat(_)
                    | PeerMessage::Leave { .. }
                    | PeerMessage::Dead { .. }
                    | PeerMessage::Refuse { .. }),
                ) => {
                    let _ = state.membership.cast(MembershipMsg::Peer(Box::new(m)));
                }
                Err(err) => {
                    tracing::debug!(error = %err, "dropped a malformed message from a peer")
                }
            },
            PortMsg::Query(bytes, reply) => {
                let _ = reply.send(answer_bytes(&state.view, &bytes));
            }
        }
        Ok(())
    }
}
