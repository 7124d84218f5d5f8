//! Confirmation from several vantage points (`confirm = k`): a target's owners exchange their
//! views over the cluster links; the primary owner decides the cluster's state from them and
//! alone reports a confirmed change, and the others follow its decisions.
//!

//! - [`views`]: the rules (pure): views + k + owners → state, degraded, events.
//! - [`msg`], [`actor`]: the confirm actor, which carries the views between the owners and
//!   writes the events; started only when `replicas` > 1.
pub mod actor;
pub mod msg;
pub mod views;
