//! ringpoll's actors and the pure logic they wrap.
//!
//! # Layout
//! Pure modules (no actor, no I/O; time is an argument, effects are return values) sit beside
//! the actor that runs them. Each file has one job; the file graph has no cycle
//! (`tests/module_graph.rs` checks it).
//!
//! | module | what |
//! |---|---|
//! | [`model`] | domain data: node names, targets and their [`Check`](model::Check), outcomes, results and their JSON lines |
//! | [`link`] | typed links between sibling actors, re-pointed by their supervisor on restart |
//! | [`view`] | the node's published state ([`NodeView`](view::NodeView)) and its write halves |
//! | [`state`] | latest results, confirmed states and counters (behind locks, read through the view) |
//! | [`restart`] | restart budgets and backoff (pure) |
//! | [`listen`] | binding a listener a stopping predecessor may still hold (retried, said once) |
//! | [`clock`] | the actors' clock (tokio's, paused in tests) as the pure modules take it |
//! | [`heavy`] | long computations run off the async workers' path (`block_in_place`) |
//! | [`probe`] | schedule and health (pure); ICMP, TCP and SSH checks; the probe actor |
//! | [`sink`] | bounded buffer (pure); JSON-lines and SQLite writers; the result sink actor |
//! | [`ring`] | placement and reassignment (pure); the ring snapshot; the ring owner actor |
//! | [`catalog`] | every target cluster-wide and who lists it: set digests and catch-up (pure); the catalog actor |
//! | [`confirm`] | k-of-n confirmation from the owners' views (pure); the confirm actor (replicas > 1) |
//! | [`membership`] | table and failure detector, dialer, sessions, wire format (pure); transport, port and membership actor |
//! | [`status`] | typed status answers, computed from the view and gathered from every member |
//! | [`supervisor`] | the root and probe supervisors |
//! | `fault` | fault injection for the integration tests (`test-hooks` feature only) |
//!
//! # Supervision tree
//! ```text
//! RootSupervisor                 restarts children one for one within a budget; gives up → exit 1
//! ├── ResultSink                 bounded buffer per writer (JSON lines, SQLite), flushed every 250 ms and at shutdown
//! ├── Confirm                    replicas > 1: owners' views → the target's state; the primary's events
//! ├── ProbeSupervisor            per-target restart budget, quarantine, never escalates
//! │   └── ProbeActor × owned     one ICMP/TCP/SSH probe in flight, the next at its slot
//! ├── RingOwner                  membership and catalog views → owned targets (+ epoch), make-before-break hand-offs
//! ├── Catalog                    this node's targets, the members' sets caught up over the cluster links
//! └── Membership                 heartbeats, failure detector, dialer, sessions; the cluster view
//!     ├── NodeServer             ractor_cluster's sessions (cookie handshake, optional mutual TLS)
//!     └── Port                   the one remotable actor; routes what peers send
//! ```
//! Started top to bottom (consumers before producers), stopped bottom to top.
//!
//! # Who sends what to whom
//! Each actor's arguments name exactly the actors it sends to, as typed [`Link`](link::Link)s
//! its supervisor re-points when the target restarts (or as the parent's own reference).
//!
//! | from | to | messages |
//! |---|---|---|
//! | membership | ring owner | `MembershipChanged(view)` on a ring-member change; `PeerDigests` when peers adopt a ring |
//! | membership | catalog | `Members`: the members in the ring and the target-set digests they announce |
//! | catalog | ring owner | `Catalog(view)`: every target cluster-wide, who lists it, this node's specs |
//! | catalog | peers' ports | questions for their set digests and buckets, each under a timeout |
//! | root | catalog | `SetTargets` after a reload (the binary's reloader tells the root) |
//! | ring owner | probe supervisor | `Assign { epoch, digest, targets, keep, handed_off, missed }`: one message per rebuild |
//! | ring owner | membership, catalog | `Publish` after the ring owner restarted (send the views again) |
//! | probe supervisor | ring owner | `Resend` after the probe supervisor restarted |
//! | probe supervisor | probe actors | `Inherit(state)`, `Retire` |
//! | probe actors | result sink | `Record(result)`, `Event(state change)` (one owner per target) |
//! | probe actors | confirm | `Own(view)` after every result (several owners per target) |
//! | confirm | result sink, peers' ports | `Event` when this node is the target's primary; views (wire) |
//! | port | confirm | co-owners' views |
//! | membership | peers' ports | heartbeats, leave, refusal (wire) |
//! | probe supervisor | peers' ports | hand-off states (wire) |
//! | port | membership / probe supervisor / root | heartbeats and leaves / hand-off states / a refusal of this node |
//! | HTTP (the binary) | peers' ports | status questions, each under a timeout |
//! | root | every child | `Leave`, `StopAll`, `Drain` at shutdown |
//!
//! # What is published for readers
//! HTTP, metrics, status answers and the CLI read one [`NodeView`](view::NodeView): the ring
//! snapshot (ring owner), the member rows and peers (membership), the ownership epoch and
//! adopted ring digest (probe supervisor), this node's target set and the catalog's summary
//! (catalog), the config's reload state (the binary's reloader), latest results and counters
//! ([`state`]). Each piece has one writer; nobody `call`s an actor to read it.
//!
//! # Where a new feature goes
//! - A probe kind: `probe/<kind>.rs`, a [`Check`](model::Check) variant with its settings, one
//!   arm in [`probe::engine`]; config in the binary's `config/validate.rs`.
//! - An output: a [`ResultWriter`](sink::ResultWriter) and a [`SinkSpec`](sink::SinkSpec) variant.
//! - A membership decision: the pure module that owns it (`table`, `dialer`, `sessions`), and
//!   the action it returns carried out in `membership/actor.rs`.
//! - A message between nodes: a [`PeerMessage`](membership::wire::PeerMessage) variant, routed
//!   by `membership/port.rs` to the actor it is for.
//! - Ownership policy: [`ring::placement`] (who owns what) or [`ring::reassign`] (what moves,
//!   what is kept); the ring owner only carries it out.
//! - A target source (a kind of file, a service discovery): the binary's config and sources
//!   produce the node's target list; the catalog and ring owner take any list.
//! - Something to show: a field in [`status::answer`], computed in [`status::local`] from the
//!   view, published by the actor that owns it if it is new state.
//!
//! # Guarantees
//! - At most one probe in flight per target; the next starts at the target's next slot.
//! - A down target is a result, never an actor failure.
//! - A probe actor that fails is restarted with backoff, then quarantined; it never takes the
//!   node down.
//! - Results accepted by the sink are written unless the buffer overflows (drops are counted and
//!   logged) or the writer still fails at shutdown (reported).
//! - Every node computes the same owners from the same member set and catalog view; during a
//!   planned change a moved target is probed by its old owner until every member runs the new
//!   placement, so no slot is skipped (a round or two may be probed twice).
//! - Every target in the set of at least one alive member is probed, by the members that list
//!   it, also while members' sets differ; a target no alive member lists is not.

#![warn(missing_docs, missing_debug_implementations)]

pub mod catalog;
pub mod clock;
pub mod confirm;
#[cfg(any(test, feature = "test-hooks"))]
pub mod fault;
pub mod heavy;
pub mod link;
pub mod listen;
pub mod membership;
pub mod model;
pub mod notify;
pub mod probe;
pub mod restart;
pub mod ring;
pub mod sink;
pub mod state;
pub mod status;
pub mod supervisor;
#[cfg(test)]
mod testkit;
pub mod view;
