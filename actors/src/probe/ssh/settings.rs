//! The SSH settings of a group of targets, loaded once at start: the client key, known_hosts
//! and the host-key policy, and what the probe runs and expects.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use russh::keys::PrivateKey;

use super::known_hosts::KnownHosts;

/// Default `max_output`.
pub const DEFAULT_MAX_OUTPUT: usize = 4096;
/// Default `max_concurrent_ssh`.
pub const DEFAULT_MAX_CONCURRENT: usize = 256;

/// Default `max_session_age`.
pub const DEFAULT_MAX_SESSION_AGE: Duration = Duration::from_secs(15 * 60);
/// Default `max_sessions`.
pub const DEFAULT_MAX_SESSIONS: usize = 4096;
/// Default `max_new_logins_per_s`.
pub const DEFAULT_MAX_NEW_LOGINS_PER_S: u32 = 200;

/// Whether a target's probes keep their connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SessionMode {
    /// One connection held while this node probes the target; each probe is a channel on it.
    #[default]
    Persistent,
    /// A login per probe, closed after it.
    Fresh,
}

impl SessionMode {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionMode::Persistent => "persistent",
            SessionMode::Fresh => "fresh",
        }
    }
}

/// The node's SSH limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SshLimits {
    /// Sessions (logins and checks) in flight at once.
    pub max_concurrent: usize,
    /// Connections held at once (0: none, every probe logs in fresh).
    pub max_sessions: usize,
    /// Fresh logins per second, node-wide (0: no limit).
    pub max_new_logins_per_s: u32,
}

impl Default for SshLimits {
    fn default() -> Self {
        SshLimits {
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_new_logins_per_s: DEFAULT_MAX_NEW_LOGINS_PER_S,
        }
    }
}

/// How host keys are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Known keys only.
    Strict,
    /// Trust on first use: unknown keys are recorded; changed keys fail.
    AcceptNew,
    /// No check at all.
    Off,
}

impl HostKeyPolicy {
    /// The name used in the config (`host_key_policy`).
    pub fn as_str(self) -> &'static str {
        match self {
            HostKeyPolicy::Strict => "strict",
            HostKeyPolicy::AcceptNew => "accept-new",
            HostKeyPolicy::Off => "off",
        }
    }
}

/// The SSH part of the node cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SshSetupError {
    /// The key file is readable by others.
    #[error("{}: permissions {mode:04o} are too open (the key must not be readable by others); chmod 600 {}", path.display(), path.display())]
    KeyPermissions {
        /// The key.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The key file could not be read or decoded.
    #[error("{}: {why}", path.display())]
    Key {
        /// The key.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// known_hosts could not be read.
    #[error("{}: {error}", path.display())]
    KnownHosts {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// A client key, loaded once.
#[derive(Debug)]
pub struct SshIdentity {
    /// Where it was read from.
    pub path: PathBuf,
    pub(super) key: Arc<PrivateKey>,
}

impl SshIdentity {
    /// Reads an OpenSSH private key (ed25519, ECDSA, RSA); encrypted keys need `passphrase`.
    /// Refuses keys readable by group or others, as OpenSSH does.
    pub fn load(path: &Path, passphrase: Option<&str>) -> Result<Self, SshSetupError> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| SshSetupError::Key {
            path: path.into(),
            why: e.to_string(),
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SshSetupError::KeyPermissions {
                path: path.into(),
                mode,
            });
        }
        let key = russh::keys::load_secret_key(path, passphrase).map_err(|e| SshSetupError::Key {
            path: path.into(),
            why: match (&e, passphrase) {
                (russh::keys::Error::KeyIsEncrypted, None) => {
                    "the key is encrypted: name an environment variable holding its passphrase in identity_passphrase_env".into()
                }
                _ => format!("cannot load the private key: {e}"),
            },
        })?;
        Ok(SshIdentity {
            path: path.into(),
            key: Arc::new(key),
        })
    }
}

/// Loads known_hosts once for every group that names the same file.
pub fn load_known_hosts(path: &Path) -> Result<Arc<KnownHosts>, SshSetupError> {
    KnownHosts::load(path)
        .map(Arc::new)
        .map_err(|error| SshSetupError::KnownHosts {
            path: path.into(),
            error,
        })
}

/// A group's SSH settings, shared by its targets.
#[derive(Debug)]
pub struct SshTarget {
    /// Login name.
    pub user: String,
    /// Client key.
    pub identity: Arc<SshIdentity>,
    /// Host keys (None with the `off` policy).
    pub known_hosts: Option<Arc<KnownHosts>>,
    /// Host-key policy.
    pub policy: HostKeyPolicy,
    /// Command to run; None: connect, host key and authentication only.
    pub command: Option<String>,
    /// Expected exit status.
    pub expect_exit: u32,
    /// Pattern stdout must match.
    pub expect_output: Option<Regex>,
    /// Bytes kept of stdout and of stderr.
    pub max_output: usize,
    /// Whether the connection is kept between probes.
    pub session: SessionMode,
    /// A held connection older than this is replaced at the next probe.
    pub max_session_age: Duration,
}
