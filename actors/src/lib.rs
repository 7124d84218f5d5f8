//! ringpoll's actors and the pure logic they wrap.
//!
//! # Layout
//! - [`model`]: domain data (node names, targets, outcomes, results).
//! - [`restart`]: restart budgets and backoff (pure).
//! - [`probe`]: probe schedule and health (pure), ICMP and TCP checks, the probe actor.
//! - [`sink`]: bounded result buffer (pure), JSON-lines writer, the result sink actor.
//! - [`ring`]: the placement function (pure) and the ring owner actor with hand-offs.
//! - [`membership`]: membership table and failure detector, dialler, wire format (pure), the
//!   transport over ractor_cluster, and the membership actor.
//! - [`supervisor`]: the root and probe supervisors.
//! - [`status`]: the status API's answers, and gathering them from every member.
//! - [`state`]: the latest result per target and the node's counters, for status and metrics.
//! - [`fault`]: test-only fault injection.
//!
//! # Supervision tree
//! ```text
//! RootSupervisor                 restarts children one for one within a budget; gives up → exit 1
//! ├── ResultSink                 bounded buffer → JSON lines, flushed ≥ 1/s and at shutdown
//! ├── ProbeSupervisor            per-target restart budget, quarantine, never escalates
//! │   └── ProbeActor × owned     one probe in flight, next one scheduled at its slot
//! ├── RingOwner                  membership view → owned targets (+ epoch), hand-offs
//! └── Membership                 heartbeats, failure detector, dialler; the cluster view
//!     ├── NodeServer             ractor_cluster's sessions (cookie handshake)
//!     └── Port                   the one remotable actor peers talk to
//! ```
//! Started top to bottom (consumers before producers), stopped bottom to top.
//!
//! # Guarantees
//! - At most one probe in flight per target; the next starts at the target's next slot.
//! - A down target is a result, never an actor failure.
//! - A probe actor that fails is restarted with backoff, then quarantined; it never takes the
//!   node down.
//! - Results accepted by the sink are written unless the buffer overflows (drops are counted and
//!   logged) or the writer still fails at shutdown (reported).
//! - Every node computes the same owners from the same member set; during a planned change a
//!   moved target is probed by its old owner until its new owner runs, so no slot is skipped
//!   (a round or two may be probed twice).

#![warn(missing_docs, missing_debug_implementations)]

pub mod fault;
pub mod membership;
pub mod model;
pub mod probe;
pub mod restart;
pub mod ring;
pub mod sink;
pub mod state;
pub mod status;
pub mod supervisor;
#[cfg(test)]
mod testkit;
