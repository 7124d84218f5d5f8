//! What membership logs: one structured event per change of a member's state or per failed
//! authentication (rate-limited by the session tracker), never one per heartbeat.

use super::health::{Pace, BEHIND_FOR, SCORE_MAX};
use super::sessions::{AuthFailure, AUTH_TIMEOUT};
use super::table::{Change, DeathCause, DuplicateName};

/// Logs a change of the membership table; `alive` counts the members in the ring after it.
pub fn change(c: &Change, alive: usize) {
    match c {
        Change::Joined(n) => {
            tracing::info!(member = %n, alive, "member {n} joined ({alive} alive)")
        }
        Change::Restarted(n) => {
            tracing::info!(member = %n, alive, "member {n} restarted ({alive} alive)")
        }
        Change::Suspect(n, silent) => {
            let ms = silent.as_millis() as u64;
            tracing::warn!(member = %n, silent_ms = ms, "member {n} suspect ({ms} ms without heartbeat)")
        }
        Change::Recovered(n) => tracing::info!(member = %n, "member {n} alive again"),
        Change::Lagging(gap) => {
            let ms = gap.as_millis();
            tracing::warn!(late_ms = ms as u64, "this node fell behind: its heartbeat tick came {ms} ms late (starved of CPU?); members' silences are measured without the time it lost")
        }
        Change::WidespreadSilence(silent, of) => tracing::warn!(silent, members = of, "{silent} of {of} members silent at once: a stall of this machine or its network rather than {silent} failures; their deaths wait longer"),
        Change::LinkLost(n) => {
            tracing::info!(member = %n, "link to member {n} lost; redialling to confirm it is alive")
        }
        Change::LinkRestored(n) => {
            tracing::info!(member = %n, "link to member {n} restored; it stays in the ring")
        }
        Change::Dead(n, DeathCause::Silent(d)) => {
            let s = d.as_secs_f64();
            tracing::warn!(member = %n, alive, silent_s = s, "member {n} dead ({s:.1} s without heartbeat; {alive} alive)");
        }
        Change::Dead(n, DeathCause::Disconnected) => {
            tracing::warn!(member = %n, alive, "member {n} dead (connection closed; {alive} alive)")
        }
        Change::Dead(n, DeathCause::Reported(by)) => {
            tracing::warn!(member = %n, reported_by = %by, alive, "member {n} dead (reported by {by}, which watched it, and silent here too; {alive} alive)")
        }
        Change::Left(n) => tracing::info!(member = %n, alive, "member {n} left ({alive} alive)"),
        Change::Reweighted(n, 0) => {
            tracing::warn!(member = %n, weight = 0, "member {n} cannot keep its schedule: it hands its targets off (weight 0)")
        }
        Change::Reweighted(n, w) => {
            tracing::info!(member = %n, weight = w, "member {n} announces weight {w}")
        }
        Change::Pace(Pace::Behind(score)) => {
            tracing::warn!(health_score = score, "this node cannot keep its schedule (its timers have run late for {BEHIND_FOR:?}; local health score {score} of {SCORE_MAX}): handing its targets off (announcing weight 0) until it keeps up again")
        }
        Change::Pace(Pace::KeepingUp) => {
            tracing::info!("this node keeps its schedule again: taking its targets back (announcing its configured weight)")
        }
        // The catalog reports how members' sets differ.
        Change::TargetSet(..) | Change::Adopted(..) => {}
    }
}

/// A connection did not authenticate within [`AUTH_TIMEOUT`] and is closed.
pub fn auth_timeout(peer_addr: &str) {
    tracing::warn!(peer = %peer_addr, "cluster connection did not authenticate within {AUTH_TIMEOUT:?}; closing it");
}

/// A connection failed to authenticate; `suppressed` more did since the last warning.
pub fn auth_failed(failure: &AuthFailure, suppressed: u64) {
    let peer = &failure.peer_addr;
    let who = failure.peer_name.as_deref().unwrap_or(peer);
    if failure.incoming {
        tracing::warn!(peer = %peer, suppressed, "cluster connection from {who} failed to authenticate (wrong cookie, or not a ringpoll node); rejected");
    } else {
        tracing::warn!(peer = %peer, suppressed, "{who} rejected our connection during authentication: check that both nodes use the same cookie (RINGPOLL_COOKIE or cluster.cookie_file) and the same TLS setting");
    }
}

/// A seed or member could not be reached (logged once per change, not per attempt).
pub fn unreachable(addr: &str, seed: bool, error: &str) {
    let what = if seed { "seed" } else { "member" };
    tracing::warn!(%addr, %error, "{what} {addr} unreachable; retrying with backoff");
}

/// A node is refused: its name is taken.
pub fn refusing(dup: &DuplicateName) {
    let reason = dup.reason();
    tracing::error!(member = %dup.name, holder = %dup.holder, newcomer = %dup.newcomer, "refusing a node: {reason}");
}

/// This node's name is held by a node started before it: this node stops.
pub fn name_taken(dup: &DuplicateName, refused_by: Option<&str>) {
    let reason = dup.reason();
    match refused_by {
        Some(by) => {
            tracing::error!(member = %dup.name, holder = %dup.holder, newcomer = %dup.newcomer, refused_by = %by, "this node was refused by {by} and stops: {reason}")
        }
        None => {
            tracing::error!(member = %dup.name, holder = %dup.holder, newcomer = %dup.newcomer, "this node stops: {reason}")
        }
    }
}

/// A refusal that does not hold against this node's own claim on its name.
pub fn refusal_ignored(from: &str, reason: &str) {
    tracing::warn!(refused_by = %from, "ignored a refusal from {from} that does not hold against this node's start time and address: {reason}");
}

/// A member reported this node dead; it is alive and says so to every peer.
pub fn refuting(by: &str) {
    tracing::warn!(reported_by = %by, "{by} reported this node dead (its heartbeats did not reach {by} in time); refuting with a heartbeat to every peer");
}
