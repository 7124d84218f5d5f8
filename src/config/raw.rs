//! The file as serde sees it: every key optional where it has a default, spans kept for errors.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use ringpoll_actors::membership::tls::TlsFiles;
use ringpoll_actors::model::{NodeName, ProbeKind};
use ringpoll_actors::probe::health::Thresholds;
use ringpoll_actors::restart::RestartPolicy;
use ringpoll_actors::ring::placement::MAX_WEIGHT;
use ringpoll_actors::sink::{SinkSettings, SinkSpec};

use super::ssh::SshLoader;
use super::targets::Expander;
use super::*;

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

/// How a group is probed, as written.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawProbeKind {
    /// `probe = "icmp"`.
    Icmp,
    /// `probe = "tcp"`.
    Tcp,
    /// `probe = "ssh"`.
    Ssh,
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    node: RawNode,
    #[serde(default)]
    cluster: RawCluster,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    probe: RawProbe,
    #[serde(default)]
    results: RawResults,
    #[serde(default)]
    supervision: RawSupervision,
    #[serde(default)]
    sinks: Vec<Spanned<RawSink>>,
    #[serde(default)]
    targets: Vec<Spanned<RawGroup>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    listen: Option<Spanned<String>>,
    advertise: Option<Spanned<String>>,
    #[serde(default)]
    seeds: Vec<Spanned<String>>,
    weight: Option<Spanned<u32>>,
    replicas: Option<Spanned<u32>>,
    cookie_file: Option<Spanned<String>>,
    heartbeat_interval: Option<Spanned<Dur>>,
    suspect_after: Option<Spanned<Dur>>,
    dead_after: Option<Spanned<Dur>>,
    rebalance_delay: Option<Spanned<Dur>>,
    redial_max: Option<Spanned<Dur>>,
    tls: Option<Spanned<RawTls>>,
}

/// `[cluster.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: String,
    key: String,
    ca: String,
    server_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
}

/// One `[[sinks]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSink {
    kind: Spanned<RawSinkKind>,
    path: Spanned<String>,
    retention: Option<Spanned<Dur>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawSinkKind {
    Jsonl,
    Sqlite,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    interval: Option<Spanned<Dur>>,
    timeout: Option<Spanned<Dur>>,
    max_in_flight: Option<Spanned<usize>>,
    max_targets: Option<Spanned<usize>>,
    rise: Option<Spanned<u32>>,
    fall: Option<Spanned<u32>>,
    retry_interval: Option<Spanned<Dur>>,
    #[serde(default)]
    ssh: RawSshDefaults,
}

/// `[probe.ssh]`: defaults for every SSH group, and the node's SSH limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSshDefaults {
    pub(super) port: Option<u16>,
    pub(super) max_concurrent_ssh: Option<Spanned<usize>>,
    pub(super) user: Option<Spanned<String>>,
    pub(super) identity: Option<Spanned<String>>,
    pub(super) identity_passphrase_env: Option<Spanned<String>>,
    pub(super) known_hosts: Option<Spanned<String>>,
    pub(super) host_key_policy: Option<Spanned<RawHostKeyPolicy>>,
    pub(super) command: Option<Spanned<String>>,
    pub(super) expect_exit: Option<Spanned<u32>>,
    pub(super) expect_output: Option<Spanned<String>>,
    pub(super) max_output: Option<Spanned<usize>>,
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
struct RawResults {
    path: Option<Spanned<String>>,
    buffer: Option<Spanned<usize>>,
    flush_interval: Option<Spanned<Dur>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSupervision {
    max_restarts: Option<u32>,
    within: Option<Spanned<Dur>>,
    backoff_min: Option<Spanned<Dur>>,
    backoff_max: Option<Spanned<Dur>>,
    quarantine: Option<Spanned<Dur>>,
}

/// One `[[targets]]` group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub(super) hosts: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) cidr: Option<Spanned<String>>,
    pub(super) file: Option<Spanned<String>>,
    pub(super) probe: Spanned<RawProbeKind>,
    pub(super) port: Option<Spanned<u16>>,
    pub(super) interval: Option<Spanned<Dur>>,
    pub(super) timeout: Option<Spanned<Dur>>,
    pub(super) rise: Option<Spanned<u32>>,
    pub(super) fall: Option<Spanned<u32>>,
    pub(super) retry_interval: Option<Spanned<Dur>>,
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
}

/// The value of an optional spanned key, or a default.
fn or<T: Clone>(v: &Option<Spanned<T>>, default: T) -> T {
    v.as_ref().map_or(default, |s| s.get_ref().clone())
}

/// The start of a spanned key's value, or of the file.
fn pos<T>(v: &Option<Spanned<T>>) -> usize {
    v.as_ref().map_or(0, |s| s.span().start)
}

impl RawConfig {
    /// Validates the file with command-line overrides applied.
    pub fn validate(
        self,
        loc: &Locator<'_>,
        base: &Path,
        ov: &Overrides,
    ) -> Result<Settings, ConfigError> {
        // [node]
        let node = match (&ov.name, &self.node.name) {
            (Some(n), _) => NodeName::new(n).map_err(|msg| ConfigError::Flag {
                flag: "--name",
                msg,
            })?,
            (None, Some(n)) => NodeName::new(n.get_ref())
                .map_err(|m| loc.at(n.span().start, format!("node.name: {m}")))?,
            (None, None) => {
                return Err(loc.at(
                    0,
                    "node.name is missing: set `[node] name = \"n1\"` or pass --name",
                ))
            }
        };

        // [cluster]
        let cluster = self.cluster.validate(loc, base, ov)?;

        // [http]
        let http = self.http.validate(loc, base, ov)?;

        // [probe]
        let p = &self.probe;
        let interval = or(&p.interval, Dur(DEFAULT_INTERVAL)).0;
        let timeout = or(&p.timeout, Dur(DEFAULT_TIMEOUT)).0;
        check_interval_timeout(
            loc,
            interval,
            timeout,
            pos(&p.interval),
            pos(&p.timeout),
            "probe.",
        )?;
        let max_in_flight = or(&p.max_in_flight, DEFAULT_MAX_IN_FLIGHT);
        if max_in_flight == 0 {
            return Err(loc.at(
                pos(&p.max_in_flight),
                "probe.max_in_flight must be at least 1",
            ));
        }
        let max_targets = or(&p.max_targets, DEFAULT_MAX_TARGETS);
        if max_targets == 0 {
            return Err(loc.at(pos(&p.max_targets), "probe.max_targets must be at least 1"));
        }

        // [results] and [[sinks]]
        let r = &self.results;
        let mut sinks = Vec::new();
        for (i, sink) in self.sinks.iter().enumerate() {
            let raw = sink.get_ref();
            if raw.path.get_ref().is_empty() {
                return Err(loc.at(
                    raw.path.span().start,
                    format!("sinks[{i}].path is empty; expected a file path"),
                ));
            }
            let path = base.join(raw.path.get_ref());
            sinks.push(match raw.kind.get_ref() {
                RawSinkKind::Jsonl => {
                    if let Some(r) = &raw.retention {
                        return Err(loc.at(
                            r.span().start,
                            format!("sinks[{i}].retention: only sqlite sinks take a retention"),
                        ));
                    }
                    SinkSpec::Jsonl { path }
                }
                RawSinkKind::Sqlite => SinkSpec::Sqlite {
                    path,
                    retention: raw.retention.as_ref().map(|r| r.get_ref().0),
                },
            });
        }
        // The JSON-lines file: [results] path (or --results), unless [[sinks]] list one.
        let results_path = match (&ov.results, &r.path) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(p)) if p.get_ref().is_empty() => {
                return Err(loc.at(
                    p.span().start,
                    "results.path is empty; expected a file path",
                ))
            }
            (None, Some(p)) => Some(base.join(p.get_ref())),
            (None, None) => None,
        };
        let first_jsonl = sinks.iter_mut().find_map(|s| match s {
            SinkSpec::Jsonl { path } => Some(path),
            _ => None,
        });
        match (first_jsonl, results_path) {
            (Some(path), Some(p)) => *path = p,
            (Some(_), None) => {}
            (None, p) => sinks.insert(
                0,
                SinkSpec::Jsonl {
                    path: p.unwrap_or_else(|| PathBuf::from(DEFAULT_RESULTS)),
                },
            ),
        }
        let buffer = or(&r.buffer, DEFAULT_BUFFER);
        if buffer == 0 {
            return Err(loc.at(pos(&r.buffer), "results.buffer must be at least 1"));
        }
        let flush_interval = or(&r.flush_interval, Dur(DEFAULT_FLUSH)).0;
        if flush_interval.is_zero() {
            return Err(loc.at(
                pos(&r.flush_interval),
                "results.flush_interval must be more than 0",
            ));
        }

        // [supervision]
        let s = &self.supervision;
        let d = RestartPolicy::default();
        let supervision = RestartPolicy {
            max_restarts: s.max_restarts.unwrap_or(d.max_restarts),
            within: or(&s.within, Dur(d.within)).0,
            backoff_min: or(&s.backoff_min, Dur(d.backoff_min)).0,
            backoff_max: or(&s.backoff_max, Dur(d.backoff_max)).0,
            quarantine: or(&s.quarantine, Dur(d.quarantine)).0,
        };
        for (key, v, at) in [
            ("within", supervision.within, pos(&s.within)),
            ("backoff_min", supervision.backoff_min, pos(&s.backoff_min)),
            ("quarantine", supervision.quarantine, pos(&s.quarantine)),
        ] {
            if v.is_zero() {
                return Err(loc.at(at, format!("supervision.{key} must be more than 0")));
            }
        }
        if supervision.backoff_max < supervision.backoff_min {
            return Err(loc.at(
                pos(&s.backoff_max),
                "supervision.backoff_max must be at least supervision.backoff_min",
            ));
        }

        let max_concurrent_ssh = match &p.ssh.max_concurrent_ssh {
            None => ringpoll_actors::probe::ssh::DEFAULT_MAX_CONCURRENT,
            Some(m) if *m.get_ref() == 0 => {
                return Err(loc.at(
                    m.span().start,
                    "probe.ssh.max_concurrent_ssh must be at least 1",
                ))
            }
            Some(m) => *m.get_ref(),
        };

        // [[targets]]
        let mut expander = Expander::new(loc, base, max_targets);
        let mut ssh_loader = SshLoader::new(loc, base, self.probe.ssh.keys());
        let mut groups = Vec::with_capacity(self.targets.len());
        for (i, g) in self.targets.iter().enumerate() {
            let group = g.get_ref();
            let key = |k: &str| format!("targets[{i}].{k}");
            let g_interval = or(&group.interval, Dur(interval)).0;
            let g_timeout = or(&group.timeout, Dur(timeout)).0;
            check_interval_timeout(
                loc,
                g_interval,
                g_timeout,
                group
                    .interval
                    .as_ref()
                    .map_or(g.span().start, |s| s.span().start),
                group
                    .timeout
                    .as_ref()
                    .map_or(g.span().start, |s| s.span().start),
                &key(""),
            )?;
            let probe = match group.probe.get_ref() {
                RawProbeKind::Icmp => ProbeKind::Icmp,
                RawProbeKind::Tcp => ProbeKind::Tcp,
                RawProbeKind::Ssh => ProbeKind::Ssh,
            };
            let port = match (probe, &group.port) {
                (ProbeKind::Tcp, None) => {
                    return Err(loc.at(
                        group.probe.span().start,
                        format!(
                            "{}: probe = \"tcp\" needs a port, e.g. port = 22",
                            key("port")
                        ),
                    ))
                }
                (ProbeKind::Ssh, None) => Some(self.probe.ssh.port.unwrap_or(22)),
                (ProbeKind::Tcp | ProbeKind::Ssh, Some(p)) if *p.get_ref() == 0 => {
                    return Err(loc.at(
                        p.span().start,
                        format!("{}: expected a port from 1 to 65535", key("port")),
                    ))
                }
                (ProbeKind::Icmp, Some(p)) => {
                    return Err(loc.at(
                        p.span().start,
                        format!(
                        "{}: only tcp and ssh targets take a port; remove it for probe = \"icmp\"",
                        key("port")
                    ),
                    ))
                }
                (_, p) => p.as_ref().map(|p| *p.get_ref()),
            };
            let labels = match &group.labels {
                None => Default::default(),
                Some(l) => {
                    for name in l.get_ref().keys() {
                        check_label(name).map_err(|m| {
                            loc.at(l.span().start, format!("{}: {m}", key("labels")))
                        })?;
                    }
                    std::sync::Arc::new(l.get_ref().clone())
                }
            };
            let health = health_of(loc, &self.probe, group, i, g_interval)?;
            let ssh = match probe {
                ProbeKind::Ssh => Some(ssh_loader.group(i, group.ssh_keys(), g.span().start)?),
                other => {
                    ssh_loader.reject(i, group.ssh_keys(), other.as_str())?;
                    None
                }
            };
            let before = expander.len();
            let source = expander.group(
                i,
                g,
                probe,
                port,
                g_interval,
                g_timeout,
                labels,
                ssh.as_ref().map(|s| s.0.clone()),
                health,
            )?;
            groups.push(GroupSummary {
                source,
                probe,
                count: expander.len() - before,
                interval: g_interval,
                timeout: g_timeout,
                ssh: ssh.map(|(t, policy)| (t.user.clone(), policy)),
            });
        }

        Ok(Settings {
            node,
            cluster,
            http,
            interval,
            timeout,
            max_in_flight,
            max_targets,
            max_concurrent_ssh,
            results: SinkSettings {
                sinks,
                buffer,
                flush_interval,
            },
            supervision,
            targets: expander.finish()?,
            groups,
        })
    }
}

fn check_interval_timeout(
    loc: &Locator<'_>,
    interval: Duration,
    timeout: Duration,
    interval_at: usize,
    timeout_at: usize,
    prefix: &str,
) -> Result<(), ConfigError> {
    if interval.is_zero() {
        return Err(loc.at(interval_at, format!("{prefix}interval must be more than 0")));
    }
    if timeout.is_zero() {
        return Err(loc.at(timeout_at, format!("{prefix}timeout must be more than 0")));
    }
    if timeout >= interval {
        return Err(loc.at(
            timeout_at,
            format!(
                "{prefix}timeout ({}) must be less than the interval ({})",
                humantime::format_duration(timeout),
                humantime::format_duration(interval)
            ),
        ));
    }
    Ok(())
}

/// Label names follow Prometheus: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`, and not
/// one of the names results already use.
fn check_label(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') || name.starts_with("__")
    {
        return Err(format!(
            "label name {name:?} is invalid; expected [a-zA-Z_][a-zA-Z0-9_]* not starting with __"
        ));
    }
    if matches!(name, "target" | "probe" | "node" | "instance" | "job") {
        return Err(format!("label name {name:?} is reserved; choose another"));
    }
    Ok(())
}

impl RawCluster {
    fn validate(
        &self,
        loc: &Locator<'_>,
        base: &Path,
        ov: &Overrides,
    ) -> Result<ClusterConfig, ConfigError> {
        let listen = match (&ov.listen, &self.listen) {
            (Some(l), _) => Some(parse_listen(l).map_err(|msg| ConfigError::Flag {
                flag: "--listen",
                msg,
            })?),
            (None, Some(l)) => Some(
                parse_listen(l.get_ref())
                    .map_err(|m| loc.at(l.span().start, format!("cluster.listen: {m}")))?,
            ),
            (None, None) => None,
        };
        let seeds = if ov.seeds.is_empty() {
            self.seeds
                .iter()
                .map(|s| {
                    check_host_port(s.get_ref(), false)
                        .map_err(|m| loc.at(s.span().start, format!("cluster.seeds: {m}")))
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            ov.seeds
                .iter()
                .map(|s| {
                    check_host_port(s, false).map_err(|msg| ConfigError::Flag {
                        flag: "--seed",
                        msg,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let weight = or(&self.weight, 1);
        if !(1..=MAX_WEIGHT).contains(&weight) {
            return Err(loc.at(
                pos(&self.weight),
                format!("cluster.weight must be from 1 to {MAX_WEIGHT}"),
            ));
        }
        let replicas = or(&self.replicas, 1);
        if !(1..=MAX_REPLICAS).contains(&replicas) {
            return Err(loc.at(
                pos(&self.replicas),
                format!("cluster.replicas must be from 1 to {MAX_REPLICAS}"),
            ));
        }
        let heartbeat = or(&self.heartbeat_interval, Dur(DEFAULT_HEARTBEAT)).0;
        let suspect_after = or(&self.suspect_after, Dur(DEFAULT_SUSPECT)).0;
        let dead_after = or(&self.dead_after, Dur(DEFAULT_DEAD)).0;
        let rebalance_delay = or(&self.rebalance_delay, Dur(DEFAULT_REBALANCE)).0;
        let redial_max = or(&self.redial_max, Dur(DEFAULT_REDIAL_MAX)).0;
        if heartbeat.is_zero() {
            return Err(loc.at(
                pos(&self.heartbeat_interval),
                "cluster.heartbeat_interval must be more than 0",
            ));
        }
        if suspect_after <= heartbeat {
            return Err(loc.at(
                pos(&self.suspect_after),
                "cluster.suspect_after must be longer than cluster.heartbeat_interval",
            ));
        }
        if dead_after <= suspect_after {
            return Err(loc.at(
                pos(&self.dead_after),
                "cluster.dead_after must be longer than cluster.suspect_after",
            ));
        }
        if redial_max < Duration::from_millis(100) {
            return Err(loc.at(
                pos(&self.redial_max),
                "cluster.redial_max must be at least 100ms",
            ));
        }
        let Some(listen) = listen else {
            if !seeds.is_empty() {
                return Err(loc.at(
                    self.seeds.first().map_or(0, |s| s.span().start),
                    "cluster.seeds needs cluster.listen (or --listen): a node joins a cluster over its own listen address",
                ));
            }
            return Ok(ClusterConfig {
                net: None,
                seeds,
                weight,
                replicas,
                rebalance_delay,
            });
        };
        let advertise = match &self.advertise {
            Some(a) => a
                .get_ref()
                .parse::<SocketAddr>()
                .ok()
                .filter(|a| !a.ip().is_unspecified() && a.port() != 0)
                .ok_or_else(|| loc.at(a.span().start, "cluster.advertise: expected the IP:PORT other nodes reach this node at"))?,
            None if listen.ip().is_unspecified() => {
                return Err(loc.at(
                    pos(&self.listen),
                    "cluster.listen is a wildcard address: set cluster.advertise to the IP:PORT other nodes reach this node at",
                ))
            }
            None => listen,
        };
        let (cookie, cookie_source) = match (&ov.cookie_env, &self.cookie_file) {
            (Some(c), _) if !c.trim().is_empty() => (c.trim().to_string(), CookieSource::Env),
            (_, Some(f)) => {
                let path = base.join(f.get_ref());
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    loc.at(
                        f.span().start,
                        format!("cluster.cookie_file: cannot read {}: {e}", path.display()),
                    )
                })?;
                let cookie = text.lines().next().unwrap_or("").trim().to_string();
                if cookie.is_empty() {
                    return Err(loc.at(f.span().start, format!("cluster.cookie_file: {} is empty; put the cluster's shared secret on its first line", path.display())));
                }
                (cookie, CookieSource::File(path))
            }
            _ if listen.ip().is_loopback() => (
                INSECURE_LOOPBACK_COOKIE.to_string(),
                CookieSource::LoopbackDefault,
            ),
            _ => {
                let err = format!(
                    "cluster.listen {listen} is not a loopback address, and no cookie is set: set the environment variable {COOKIE_ENV} or cluster.cookie_file (the cookie is never taken from the command line or this file)"
                );
                return Err(match &self.listen {
                    Some(l) if ov.listen.is_none() => loc.at(l.span().start, err),
                    _ => ConfigError::Flag {
                        flag: "--listen",
                        msg: err,
                    },
                });
            }
        };
        let tls = match &self.tls {
            None => None,
            Some(t) => {
                let raw = t.get_ref();
                let server_name = raw
                    .server_name
                    .clone()
                    .unwrap_or_else(|| DEFAULT_TLS_SERVER_NAME.to_string());
                if ringpoll_actors::model::Host::parse(&server_name).is_err()
                    || server_name.parse::<std::net::IpAddr>().is_ok()
                {
                    return Err(loc.at(t.span().start, format!("cluster.tls.server_name {server_name:?}: expected a DNS name that every node certificate carries")));
                }
                Some(TlsFiles {
                    cert: base.join(&raw.cert),
                    key: base.join(&raw.key),
                    ca: base.join(&raw.ca),
                    server_name,
                })
            }
        };
        Ok(ClusterConfig {
            net: Some(ClusterNet {
                listen,
                advertise,
                cookie,
                cookie_source,
                tls,
                heartbeat,
                suspect_after,
                dead_after,
                redial_max,
            }),
            seeds,
            weight,
            replicas,
            rebalance_delay,
        })
    }
}

/// `IP:PORT` with a fixed port.
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s.parse().map_err(|_| {
        format!("{s:?}: expected IP:PORT, e.g. \"127.0.0.1:4701\" (an address, not a name)")
    })?;
    if addr.port() == 0 {
        return Err(format!(
            "{s:?}: the cluster port must be fixed (not 0), so seeds can name it"
        ));
    }
    Ok(addr)
}

/// Rise, fall and retry interval of group `i`: the group's, else `[probe]`'s, else defaults.
fn health_of(
    loc: &Locator<'_>,
    probe: &RawProbe,
    group: &RawGroup,
    i: usize,
    interval: Duration,
) -> Result<(Thresholds, Duration), ConfigError> {
    let mut t = Thresholds::default();
    for (name, g, d, slot) in [
        ("rise", &group.rise, &probe.rise, &mut t.rise),
        ("fall", &group.fall, &probe.fall, &mut t.fall),
    ] {
        if let Some(v) = g.as_ref().or(d.as_ref()) {
            if !(1..=100).contains(v.get_ref()) {
                return Err(loc.at(
                    v.span().start,
                    format!("targets[{i}].{name}: expected 1 to 100 consecutive results"),
                ));
            }
            *slot = *v.get_ref();
        }
    }
    let retry = match group
        .retry_interval
        .as_ref()
        .or(probe.retry_interval.as_ref())
    {
        None => ringpoll_actors::model::default_retry_interval(interval),
        Some(r) if r.get_ref().0.is_zero() || r.get_ref().0 > interval => {
            return Err(loc.at(
                r.span().start,
                format!(
                    "targets[{i}].retry_interval must be more than 0 and at most the interval ({})",
                    humantime::format_duration(interval)
                ),
            ))
        }
        Some(r) => r.get_ref().0,
    };
    Ok((t, retry))
}

impl RawHttp {
    fn validate(
        &self,
        loc: &Locator<'_>,
        base: &Path,
        ov: &Overrides,
    ) -> Result<Option<HttpConfig>, ConfigError> {
        let parse = |s: &str| -> Result<Option<SocketAddr>, String> {
            if s == "off" {
                return Ok(None);
            }
            s.parse::<SocketAddr>().map(Some).map_err(|_| {
                format!("{s:?}: expected IP:PORT, e.g. \"127.0.0.1:9464\", or \"off\"")
            })
        };
        let listen = match (&ov.http, &self.listen) {
            (Some(h), _) => parse(h).map_err(|msg| ConfigError::Flag {
                flag: "--http",
                msg,
            })?,
            (None, Some(h)) => parse(h.get_ref())
                .map_err(|m| loc.at(h.span().start, format!("http.listen: {m}")))?,
            (None, None) => Some(DEFAULT_HTTP.parse().expect("valid default")),
        };
        let Some(listen) = listen else {
            return Ok(None);
        };
        let token = match (&ov.http_token_env, &self.token, &self.token_file) {
            (Some(t), _, _) if !t.trim().is_empty() => Some(t.trim().to_string()),
            (_, Some(t), _) if t.get_ref().trim().is_empty() => {
                return Err(loc.at(t.span().start, "http.token is empty"))
            }
            (_, Some(t), _) => Some(t.get_ref().trim().to_string()),
            (_, None, Some(f)) => {
                let path = base.join(f.get_ref());
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    loc.at(
                        f.span().start,
                        format!("http.token_file: cannot read {}: {e}", path.display()),
                    )
                })?;
                let token = text.lines().next().unwrap_or("").trim().to_string();
                if token.is_empty() {
                    return Err(loc.at(
                        f.span().start,
                        format!("http.token_file: {} is empty", path.display()),
                    ));
                }
                Some(token)
            }
            _ => None,
        };
        if token.is_none() && !listen.ip().is_loopback() {
            let msg = format!(
                "{listen} is not a loopback address: set http.token or http.token_file (or {HTTP_TOKEN_ENV}) so the status port is not open to anyone, or listen on 127.0.0.1"
            );
            return Err(match (&ov.http, &self.listen) {
                (Some(_), _) => ConfigError::Flag {
                    flag: "--http",
                    msg,
                },
                (None, Some(l)) => loc.at(l.span().start, format!("http.listen: {msg}")),
                (None, None) => loc.at(0, msg),
            });
        }
        Ok(Some(HttpConfig { listen, token }))
    }
}
