//! The file as serde sees it: every key optional where it has a default, spans kept for errors.
//! Plain data; [`validate`](super::validate) turns it into settings.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use ringpoll_actors::model::ProbeKind;

/// A duration written as a string such as `"30s"`, `"500ms"` or `"2m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        humantime_serde::deserialize(d)
            .map(Dur)
            .map_err(|e: D::Error| {
                serde::de::Error::custom(format!(
                    "{e}; expected a duration string such as \"30s\", \"500ms\" or \"2m\""
                ))
            })
    }
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub(super) node: RawNode,
    #[serde(default)]
    pub(super) cluster: RawCluster,
    #[serde(default)]
    pub(super) http: RawHttp,
    #[serde(default)]
    pub(super) probe: RawProbe,
    #[serde(default)]
    pub(super) results: RawResults,
    #[serde(default)]
    pub(super) supervision: RawSupervision,
    #[serde(default)]
    pub(super) log: RawLog,
    #[serde(default)]
    pub(super) sinks: Vec<Spanned<RawSink>>,
    #[serde(default)]
    pub(super) notify: Vec<Spanned<RawNotify>>,
    #[serde(default)]
    pub(super) targets: Vec<Spanned<RawGroup>>,
}

/// One `[[notify]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub(super) kind: Spanned<RawNotifyKind>,
    pub(super) url: Option<Spanned<String>>,
    pub(super) urls: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) bearer_token_file: Option<Spanned<String>>,
    pub(super) resend: Option<Spanned<Dur>>,
    pub(super) queue: Option<Spanned<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawNotifyKind {
    Alertmanager,
    Webhook,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub(super) name: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) advertise: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) seeds: Vec<Spanned<String>>,
    pub(super) weight: Option<Spanned<u32>>,
    pub(super) replicas: Option<Spanned<u32>>,
    pub(super) cookie_file: Option<Spanned<String>>,
    pub(super) heartbeat_interval: Option<Spanned<Dur>>,
    pub(super) suspect_after: Option<Spanned<Dur>>,
    pub(super) dead_after: Option<Spanned<Dur>>,
    pub(super) rebalance_delay: Option<Spanned<Dur>>,
    pub(super) redial_max: Option<Spanned<Dur>>,
    pub(super) tls: Option<Spanned<RawTls>>,
}

/// `[cluster.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert: String,
    pub(super) key: String,
    pub(super) ca: String,
    pub(super) server_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) token: Option<Spanned<String>>,
    pub(super) token_file: Option<Spanned<String>>,
}

/// One `[[sinks]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSink {
    pub(super) kind: Spanned<RawSinkKind>,
    pub(super) path: Spanned<String>,
    pub(super) retention: Option<Spanned<Dur>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawSinkKind {
    Jsonl,
    Sqlite,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbe {
    pub(super) interval: Option<Spanned<Dur>>,
    pub(super) timeout: Option<Spanned<Dur>>,
    pub(super) max_in_flight: Option<Spanned<usize>>,
    pub(super) max_targets: Option<Spanned<usize>>,
    pub(super) rise: Option<Spanned<u32>>,
    pub(super) fall: Option<Spanned<u32>>,
    pub(super) retry_interval: Option<Spanned<Dur>>,
    pub(super) count: Option<Spanned<u16>>,
    pub(super) packet_interval: Option<Spanned<Dur>>,
    pub(super) max_loss: Option<Spanned<f64>>,
    pub(super) max_rtt: Option<Spanned<Dur>>,
    pub(super) max_rate_per_network: Option<Spanned<u32>>,
    pub(super) max_pps: Option<Spanned<u32>>,
    pub(super) source: Option<Spanned<String>>,
    pub(super) confirm: Option<Spanned<u32>>,
    #[serde(default)]
    pub(super) ssh: RawSshDefaults,
}

/// `[probe.ssh]`: defaults for every SSH group, and the node's SSH limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSshDefaults {
    pub(super) port: Option<u16>,
    pub(super) max_concurrent_ssh: Option<Spanned<usize>>,
    pub(super) max_sessions: Option<Spanned<usize>>,
    pub(super) max_new_logins_per_s: Option<Spanned<u32>>,
    pub(super) user: Option<Spanned<String>>,
    pub(super) identity: Option<Spanned<String>>,
    pub(super) identity_passphrase_env: Option<Spanned<String>>,
    pub(super) known_hosts: Option<Spanned<String>>,
    pub(super) host_key_policy: Option<Spanned<RawHostKeyPolicy>>,
    pub(super) command: Option<Spanned<String>>,
    pub(super) expect_exit: Option<Spanned<u32>>,
    pub(super) expect_output: Option<Spanned<String>>,
    pub(super) max_output: Option<Spanned<usize>>,
    pub(super) session: Option<Spanned<RawSessionMode>>,
    pub(super) max_session_age: Option<Spanned<Dur>>,
}

/// The SSH keys of a group, or of `[probe.ssh]` (same names, same meaning).
///
/// The keys are declared on both raw structs rather than in one `#[serde(flatten)]` struct:
/// flatten buffers the input, which loses the spans (`toml::Spanned`) every error location
/// needs and defeats `deny_unknown_fields`. This view lets one loader serve both.
#[derive(Debug, Clone, Copy)]
pub(super) struct SshKeys<'a> {
    pub(super) user: &'a Option<Spanned<String>>,
    pub(super) identity: &'a Option<Spanned<String>>,
    pub(super) identity_passphrase_env: &'a Option<Spanned<String>>,
    pub(super) known_hosts: &'a Option<Spanned<String>>,
    pub(super) host_key_policy: &'a Option<Spanned<RawHostKeyPolicy>>,
    pub(super) command: &'a Option<Spanned<String>>,
    pub(super) expect_exit: &'a Option<Spanned<u32>>,
    pub(super) expect_output: &'a Option<Spanned<String>>,
    pub(super) max_output: &'a Option<Spanned<usize>>,
    pub(super) session: &'a Option<Spanned<RawSessionMode>>,
    pub(super) max_session_age: &'a Option<Spanned<Dur>>,
}

macro_rules! ssh_keys {
    ($raw:expr) => {
        SshKeys {
            user: &$raw.user,
            identity: &$raw.identity,
            identity_passphrase_env: &$raw.identity_passphrase_env,
            known_hosts: &$raw.known_hosts,
            host_key_policy: &$raw.host_key_policy,
            command: &$raw.command,
            expect_exit: &$raw.expect_exit,
            expect_output: &$raw.expect_output,
            max_output: &$raw.max_output,
            session: &$raw.session,
            max_session_age: &$raw.max_session_age,
        }
    };
}

impl RawSshDefaults {
    pub(super) fn keys(&self) -> SshKeys<'_> {
        ssh_keys!(self)
    }
}

impl RawGroup {
    pub(super) fn ssh_keys(&self) -> SshKeys<'_> {
        ssh_keys!(self)
    }
}

/// `session`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawSessionMode {
    Persistent,
    Fresh,
}

/// `host_key_policy`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawHostKeyPolicy {
    Strict,
    AcceptNew,
    Off,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResults {
    pub(super) path: Option<Spanned<String>>,
    pub(super) buffer: Option<Spanned<usize>>,
    pub(super) flush_interval: Option<Spanned<Dur>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) format: Option<Spanned<super::settings::LogFormat>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSupervision {
    pub(super) max_restarts: Option<u32>,
    pub(super) within: Option<Spanned<Dur>>,
    pub(super) backoff_min: Option<Spanned<Dur>>,
    pub(super) backoff_max: Option<Spanned<Dur>>,
    pub(super) quarantine: Option<Spanned<Dur>>,
}

/// One `[[targets]]` group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub(super) hosts: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) cidr: Option<Spanned<String>>,
    pub(super) file: Option<Spanned<String>>,
    pub(super) file_sd: Option<Spanned<String>>,
    pub(super) http_sd: Option<Spanned<String>>,
    pub(super) http_sd_token_file: Option<Spanned<String>>,
    pub(super) refresh_interval: Option<Spanned<Dur>>,
    pub(super) probe: Spanned<ProbeKind>,
    pub(super) port: Option<Spanned<u16>>,
    pub(super) interval: Option<Spanned<Dur>>,
    pub(super) timeout: Option<Spanned<Dur>>,
    pub(super) rise: Option<Spanned<u32>>,
    pub(super) fall: Option<Spanned<u32>>,
    pub(super) retry_interval: Option<Spanned<Dur>>,
    pub(super) count: Option<Spanned<u16>>,
    pub(super) packet_interval: Option<Spanned<Dur>>,
    pub(super) max_loss: Option<Spanned<f64>>,
    pub(super) max_rtt: Option<Spanned<Dur>>,
    pub(super) source: Option<Spanned<String>>,
    pub(super) confirm: Option<Spanned<u32>>,
    #[serde(default)]
    pub(super) labels: Option<Spanned<BTreeMap<String, String>>>,
    pub(super) user: Option<Spanned<String>>,
    pub(super) identity: Option<Spanned<String>>,
    pub(super) identity_passphrase_env: Option<Spanned<String>>,
    pub(super) known_hosts: Option<Spanned<String>>,
    pub(super) host_key_policy: Option<Spanned<RawHostKeyPolicy>>,
    pub(super) command: Option<Spanned<String>>,
    pub(super) expect_exit: Option<Spanned<u32>>,
    pub(super) expect_output: Option<Spanned<String>>,
    pub(super) max_output: Option<Spanned<usize>>,
    pub(super) session: Option<Spanned<RawSessionMode>>,
    pub(super) max_session_age: Option<Spanned<Dur>>,
}
