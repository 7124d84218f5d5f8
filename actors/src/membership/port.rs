//! The port: the one remotable actor of a node, the only one its peers see. It decodes each
//! [`PeerMessage`] (bounded, validating) and routes it to the actor it is for, and answers
//! status questions from the node's published view.
//!
//! | message | goes to |
//! |---|---|
//! | heartbeat, leave | membership |
//! | hand-off states | the probe supervisor |
//! | refusal of this node | the root (the node stops) |
//! | status question | answered here, from the [`NodeView`] |

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::msg::MembershipMsg;
use super::wire::{PeerMessage, PortMsg};
use crate::link::Link;
use crate::status::local::answer_bytes;
use crate::supervisor::msg::{ProbeSupMsg, RootMsg};
use crate::view::NodeView;

/// The process group every node's port joins.
pub const PORT_GROUP: &str = "ringpoll.membership";

/// The port actor.
#[derive(Debug)]
pub struct PortActor;

/// Where the port routes what it receives.
#[derive(Debug)]
pub struct PortArgs {
    /// Heartbeats and leaves.
    pub membership: ActorRef<MembershipMsg>,
    /// Hand-off states.
    pub probes: Link<ProbeSupMsg>,
    /// A refusal of this node.
    pub root: ActorRef<RootMsg>,
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
                Ok(PeerMessage::Refuse { from, reason }) => {
                    tracing::error!(refused_by = %from, "this node was refused by {from}: {reason}");
                    let _ = state
                        .root
                        .cast(RootMsg::Fatal(format!("refused by {from}: {reason}")));
                }
                Ok(m @ (PeerMessage::Heartbeat(_) | PeerMessage::Leave { .. })) => {
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
