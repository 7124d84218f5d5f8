//! What an SSH probe reports besides up or down: the stage reached, the command's output and
//! exit status, the time per stage, the host key seen.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// An SSH probe's stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SshStage {
    /// Waiting for a turn in the node's budget of fresh logins (`max_new_logins_per_s`).
    LoginSlot,
    /// TCP connect.
    Connect,
    /// Banner and key exchange.
    Handshake,
    /// Host-key check.
    Hostkey,
    /// Public-key authentication.
    Auth,
    /// Opening a channel on the connection.
    Channel,
    /// The command.
    Command,
}

/// What an SSH probe reports besides up or down.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SshReport {
    /// The stage that failed; null when up.
    pub stage: Option<SshStage>,
    /// The command's exit status.
    pub exit_code: Option<u32>,
    /// The signal that ended the command, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_signal: Option<String>,
    /// The command's stdout (first `max_output` bytes; UTF-8, other bytes as `\xNN`).
    pub stdout: Option<String>,
    /// True when stdout was longer than `max_output`.
    pub stdout_truncated: bool,
    /// The command's stderr, as stdout.
    pub stderr: Option<String>,
    /// True when stderr was longer than `max_output`.
    pub stderr_truncated: bool,
    /// Milliseconds per completed stage.
    pub stages_ms: BTreeMap<SshStage, f64>,
    /// The server's host key, SHA256 fingerprint as OpenSSH prints it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    /// True when the connection held for the target had failed and this probe logged in
    /// again (persistent sessions).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reconnected: bool,
    /// On a changed host key: the fingerprints known_hosts holds for the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_host_keys: Vec<String>,
}

impl SshReport {
    /// Records the time since `mark` as `stage`'s (in ms, to the µs), and moves the mark.
    pub(super) fn lap(&mut self, stage: SshStage, mark: &mut Instant) {
        let now = Instant::now();
        let ms = now.duration_since(*mark).as_secs_f64() * 1000.0;
        self.stages_ms.insert(stage, (ms * 1000.0).round() / 1000.0);
        *mark = now;
    }
}
