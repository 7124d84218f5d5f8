//! What crosses the network between nodes: [`PortMsg`], the one remotable message type, whose
//! `Wire` variant carries one JSON-encoded [`PeerMessage`] and whose `Query` variant carries a
//! status question (see `crate::status`).
//!
//! Decoding is bounded (size checked first) and validating: a malformed or hostile message is
//! dropped with an error, never a panic.

use ractor::{ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use crate::model::{NodeName, ProbeKind, TargetKey};
use crate::probe::health::TargetState;

/// The messages of a node's port, the only actor its peers see.
#[derive(Debug, RactorClusterMessage)]
pub enum PortMsg {
    /// An encoded [`PeerMessage`].
    Wire(Vec<u8>),
    /// A JSON-encoded status question; the reply is JSON.
    #[rpc]
    Query(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

/// Sends `msg` to every port in `ports`, encoded once. A port that is gone is skipped: the
/// failure detector, not a send error, decides that a peer is dead.
pub fn broadcast<'a>(ports: impl IntoIterator<Item = &'a ActorRef<PortMsg>>, msg: &PeerMessage) {
    let bytes = msg.encode();
    for port in ports {
        let _ = port.cast(PortMsg::Wire(bytes.clone()));
    }
}

/// Largest accepted message.
pub const MAX_WIRE_BYTES: usize = 4 << 20;

/// Peer state handed over per message, at most.
pub const HANDOFF_CHUNK: usize = 20_000;

/// A message between the membership actors of two nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PeerMessage {
    /// Sent every heartbeat interval to every connected peer.
    Heartbeat(Heartbeat),
    /// The sender leaves the cluster on purpose.
    Leave {
        /// Sender.
        name: String,
        /// Sender's incarnation.
        incarnation: u64,
    },
    /// The receiver is refused (its name is taken by a node started before it); it stops once
    /// it has checked that claim against its own.
    Refuse {
        /// The refusing node.
        from: String,
        /// Why, for the receiver's log.
        reason: String,
        /// The address of the node that keeps the name (absent from older versions: such a
        /// refusal cannot be checked and is ignored; the receiver still stops when it hears
        /// the holder itself).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        holder: Option<String>,
        /// The holder's incarnation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        holder_incarnation: Option<u64>,
    },
    /// The sender watched `name` (heard it at the full heartbeat rate) and declared it dead
    /// for its silence; each receiver follows once it suspects `name` itself, and `name`
    /// itself, alive after all, refutes it with a heartbeat to every peer at once.
    Dead {
        /// Sender.
        from: String,
        /// The member declared dead.
        name: String,
        /// Its incarnation.
        incarnation: u64,
    },
    /// The last known state of targets the sender no longer owns.
    Handoff {
        /// Sender.
        from: String,
        /// Target states.
        states: Vec<HandoffState>,
    },
    /// The sender's views of targets the receiver also owns, and the states it carries (see
    /// `confirm::views`). Sent only when targets have more than one owner.
    Views {
        /// Sender.
        from: String,
        /// One entry per target.
        views: Vec<WireView>,
    },
}

/// A heartbeat. Fields it does not know are ignored, so that a later version can add some and
/// still be heard by this one during a rolling upgrade.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Sender's configured name.
    pub name: String,
    /// Address the sender listens on (`ip:port`).
    pub addr: String,
    /// Sender's ring weight.
    pub weight: u32,
    /// Sender's start time (Unix ms).
    pub incarnation: u64,
    /// The ring digest the sender's probes run for.
    pub adopted: u64,
    /// Digest of the sender's configured targets (a mismatch is logged).
    pub targets: u64,
    /// Targets the sender probes that have had no result for longer than interval + grace.
    #[serde(default)]
    pub unprobed: u64,
    /// The sender's next heartbeat to this receiver comes within this many milliseconds
    /// (absent: within the heartbeat interval). See `membership::cadence`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_ms: Option<u64>,
    /// The sender's local health score (0: it keeps its schedule). See `membership::health`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub health: u32,
    /// Members the sender knows to be in the ring (for transitive dialling); sent every few
    /// heartbeats, not every one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<PeerAddr>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A member and its address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerAddr {
    /// Name.
    pub name: String,
    /// `ip:port`.
    pub addr: String,
}

/// One target's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffState {
    /// Probe kind.
    pub probe: ProbeKind,
    /// Target id.
    pub target: String,
    /// Last known state (`"up": true` on the wire, as every version sends it).
    #[serde(rename = "up", with = "up_flag")]
    pub state: TargetState,
}

impl HandoffState {
    /// The state of `key`.
    pub fn new(key: &TargetKey, state: TargetState) -> Self {
        HandoffState {
            probe: key.probe,
            target: key.id.to_string(),
            state,
        }
    }

    /// The target's key.
    pub fn key(&self) -> TargetKey {
        TargetKey {
            probe: self.probe,
            id: self.target.as_str().into(),
        }
    }
}

/// One owner's word on a target, for its co-owners.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireView {
    /// Probe kind.
    pub probe: ProbeKind,
    /// Target id.
    pub target: String,
    /// Its own confirmed state after its last probe (absent: only `carried` is news).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<bool>,
    /// The decided state it carries and that decision's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried: Option<(u64, bool)>,
}

impl WireView {
    /// The target's key.
    pub fn key(&self) -> TargetKey {
        TargetKey {
            probe: self.probe,
            id: self.target.as_str().into(),
        }
    }
}

/// A [`TargetState`] as the boolean `up` (the wire format since the first version).
mod up_flag {
    use super::TargetState;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &TargetState, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_bool(*s == TargetState::Up)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TargetState, D::Error> {
        Ok(if bool::deserialize(d)? {
            TargetState::Up
        } else {
            TargetState::Down
        })
    }
}

/// Why a message was dropped.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Larger than [`MAX_WIRE_BYTES`].
    #[error("message of {0} bytes exceeds the {MAX_WIRE_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
}

impl PeerMessage {
    /// Encodes for the wire.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("peer messages always serialise")
    }

    /// Decodes and validates a message from a peer.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_WIRE_BYTES {
            return Err(WireError::TooLarge(bytes.len()));
        }
        let msg: PeerMessage =
            serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
        let name_ok = |n: &str| NodeName::new(n).map(|_| ()).map_err(WireError::Malformed);
        let addr_ok = |a: &str| {
            a.parse::<std::net::SocketAddr>()
                .map(|_| ())
                .map_err(|_| WireError::Malformed(format!("bad address {a:?}")))
        };
        match &msg {
            PeerMessage::Heartbeat(h) => {
                name_ok(&h.name)?;
                addr_ok(&h.addr)?;
                for m in &h.members {
                    name_ok(&m.name)?;
                    addr_ok(&m.addr)?;
                }
            }
            PeerMessage::Leave { name, .. } => name_ok(name)?,
            PeerMessage::Dead { from, name, .. } => {
                name_ok(from)?;
                name_ok(name)?;
            }
            PeerMessage::Refuse { from, holder, .. } => {
                name_ok(from)?;
                if let Some(h) = holder {
                    addr_ok(h)?;
                }
            }
            PeerMessage::Handoff { from, .. } | PeerMessage::Views { from, .. } => name_ok(from)?,
        }
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hb() -> Heartbeat {
        Heartbeat {
            name: "n1".into(),
            addr: "127.0.1.1:4701".into(),
            weight: 1,
            incarnation: 7,
            adopted: 9,
            targets: 3,
            unprobed: 0,
            every_ms: Some(2000),
            health: 3,
            members: vec![PeerAddr {
                name: "n2".into(),
                addr: "127.0.1.2:4701".into(),
            }],
        }
    }

    #[test]
    fn round_trips() {
        for m in [
            PeerMessage::Heartbeat(hb()),
            PeerMessage::Leave {
                name: "n1".into(),
                incarnation: 1,
            },
            PeerMessage::Dead {
                from: "n1".into(),
                name: "n2".into(),
                incarnation: 3,
            },
            PeerMessage::Refuse {
                from: "n1".into(),
                reason: "x".into(),
                holder: Some("127.0.0.1:4701".into()),
                holder_incarnation: Some(7),
            },
            PeerMessage::Refuse {
                from: "n1".into(),
                reason: "x".into(),
                holder: None,
                holder_incarnation: None,
            },
            PeerMessage::Handoff {
                from: "n1".into(),
                states: vec![HandoffState {
                    probe: ProbeKind::Icmp,
                    target: "127.0.0.1".into(),
                    state: TargetState::Up,
                }],
            },
            PeerMessage::Views {
                from: "n1".into(),
                views: vec![
                    WireView {
                        probe: ProbeKind::Icmp,
                        target: "127.0.0.1".into(),
                        up: Some(false),
                        carried: Some((3, true)),
                    },
                    WireView {
                        probe: ProbeKind::Tcp,
                        target: "127.0.0.1:22".into(),
                        up: None,
                        carried: None,
                    },
                ],
            },
        ] {
            assert_eq!(PeerMessage::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn handoff_states_keep_their_wire_format() {
        let h = HandoffState::new(
            &TargetKey {
                probe: ProbeKind::Tcp,
                id: "127.0.0.1:22".into(),
            },
            TargetState::Down,
        );
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(
            json,
            r#"{"probe":"tcp","target":"127.0.0.1:22","up":false}"#
        );
        assert_eq!(serde_json::from_str::<HandoffState>(&json).unwrap(), h);
        assert!(
            serde_json::from_str::<HandoffState>(r#"{"probe":"smtp","target":"x","up":true}"#)
                .is_err()
        );
    }

    #[test]
    fn a_heartbeat_from_a_later_version_with_more_fields_is_heard() {
        let json = br#"{"type":"heartbeat","name":"n1","addr":"127.0.0.1:4701","weight":1,"incarnation":1,"adopted":0,"targets":0,"every_ms":2000,"a_later_field":[1]}"#;
        match PeerMessage::decode(json).unwrap() {
            PeerMessage::Heartbeat(h) => assert_eq!(h.every_ms, Some(2000)),
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn bad_messages_are_errors() {
        assert!(matches!(
            PeerMessage::decode(&vec![b' '; MAX_WIRE_BYTES + 1]),
            Err(WireError::TooLarge(_))
        ));
        assert!(PeerMessage::decode(b"\xff\x00garbage").is_err());
        assert!(
            PeerMessage::decode(br#"{"type":"leave","name":"bad name","incarnation":1}"#).is_err()
        );
        let mut h = hb();
        h.addr = "not-an-address".into();
        assert!(PeerMessage::decode(&PeerMessage::Heartbeat(h).encode()).is_err());
        assert!(
            PeerMessage::decode(br#"{"type":"leave","name":"n1","incarnation":1,"extra":1}"#)
                .is_err()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = PeerMessage::decode(&bytes);
        }

        /// Nor does JSON of the right shape with arbitrary strings.
        #[test]
        fn decoding_arbitrary_fields_never_panics(name in ".{0,80}", addr in ".{0,40}", inc in any::<u64>()) {
            let json = serde_json::json!({"type": "heartbeat", "name": name, "addr": addr, "weight": 1, "incarnation": inc, "adopted": 0, "targets": 0});
            let _ = PeerMessage::decode(json.to_string().as_bytes());
        }
    }
}
