//! Confirmation from several vantage points (`confirm = k`): a target's owners exchange their
//! views over the cluster links, each works out the cluster's state from them, and the primary
//! owner alone reports a confirmed change.
//!
//! - [`views`]: the rules (pure): views + k + owners → state, degraded, events.
pub mod views;
