//! `config.toml`: raw serde structures mirroring the file, and `validate` turning them into
//! [`Settings`] that cannot hold an invalid value.
//!
//! Every error names where it is (`PATH:LINE:COL`), what is wrong and what is expected; nothing
//! starts half-configured. Durations are strings such as `"30s"` or `"500ms"` (humantime).
//! Unknown keys are rejected.

mod raw;
mod ssh;
mod targets;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ringpoll_actors::model::{Host, NodeName, ProbeKind, TargetSpec};
use ringpoll_actors::restart::RestartPolicy;
use ringpoll_actors::sink::{SinkSettings, SinkSpec};

pub use raw::RawConfig;

/// Default `[probe] interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Default `[probe] timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default `[probe] max_in_flight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;
/// Default `[probe] max_targets`.
pub const DEFAULT_MAX_TARGETS: usize = 262_144;
/// Default `[results] path` (and `--results`).
pub const DEFAULT_RESULTS: &str = "ringpoll-results.jsonl";
/// Default `[results] buffer`.
pub const DEFAULT_BUFFER: usize = 100_000;
/// Default `[results] flush_interval`.
/// A quarter of a second: a killed node loses at most that much of its results, and a taken-over
/// target's longest gap stays within detection + one interval (the soak measured 30 s + 1.5 s
/// with one second). Four appends a second cost nothing.
pub const DEFAULT_FLUSH: Duration = Duration::from_millis(250);
/// Default `[http] listen` (takes effect with the HTTP endpoint).
pub const DEFAULT_HTTP: &str = "127.0.0.1:9464";
/// Default `[cluster] heartbeat_interval`.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(250);
/// Default `[cluster] suspect_after`.
pub const DEFAULT_SUSPECT: Duration = Duration::from_secs(1);
/// Default `[cluster] dead_after`.
pub const DEFAULT_DEAD: Duration = Duration::from_secs(2);
/// Default `[cluster] rebalance_delay`.
pub const DEFAULT_REBALANCE: Duration = Duration::from_millis(100);
/// Default `[cluster] redial_max`.
pub const DEFAULT_REDIAL_MAX: Duration = Duration::from_secs(1);
/// Largest `[cluster] replicas`.
pub const MAX_REPLICAS: u32 = 16;
/// Default `[cluster.tls] server_name`.
pub const DEFAULT_TLS_SERVER_NAME: &str = "ringpoll";
/// The environment variable the HTTP bearer token is read from.
pub const HTTP_TOKEN_ENV: &str = "RINGPOLL_HTTP_TOKEN";
/// The environment variable the cluster cookie is read from.
pub const COOKIE_ENV: &str = "RINGPOLL_COOKIE";
/// The cookie of loopback-only clusters with no cookie configured (logged as insecure).
pub const INSECURE_LOOPBACK_COOKIE: &str = "ringpoll-insecure-loopback-cookie";

/// Where the cluster cookie came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieSource {
    /// `RINGPOLL_COOKIE`.
    Env,
    /// `[cluster] cookie_file`.
    File(PathBuf),
    /// Nothing set; loopback only.
    LoopbackDefault,
}

/// `[cluster]`, validated.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Network settings; `None` without `listen` (a single node).
    pub net: Option<ClusterNet>,
    /// Seeds, `HOST:PORT`.
    pub seeds: Vec<String>,
    /// This node's ring weight.
    pub weight: u32,
    /// Owners per target.
    pub replicas: u32,
    /// Debounce of ring rebuilds.
    pub rebalance_delay: Duration,
}

/// The networked part of `[cluster]`.
#[derive(Debug, Clone)]
pub struct ClusterNet {
    /// Listen address.
    pub listen: std::net::SocketAddr,
    /// Address other nodes dial.
    pub advertise: std::net::SocketAddr,
    /// Shared secret.
    pub cookie: String,
    /// Where the secret came from.
    pub cookie_source: CookieSource,
    /// `[cluster.tls]`, when set.
    pub tls: Option<ringpoll_actors::membership::tls::TlsFiles>,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Silence before suspicion.
    pub suspect_after: Duration,
    /// Silence before death.
    pub dead_after: Duration,
    /// Longest redial backoff.
    pub redial_max: Duration,
}

/// A configuration error, located in a file or on the command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Something in a file, at a line and column.
    #[error("{}:{line}:{col}: {msg}", path.display())]
    At {
        /// The file (config or hosts file).
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong and what is expected.
        msg: String,
    },
    /// A command-line flag.
    #[error("{flag}: {msg}")]
    Flag {
        /// The flag, e.g. `--listen`.
        flag: &'static str,
        /// What is wrong and what is expected.
        msg: String,
    },
    /// A file that cannot be read.
    #[error("{}: {msg}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        msg: String,
    },
}

/// Turns byte offsets of one file into `PATH:LINE:COL` errors.
#[derive(Debug, Clone, Copy)]
pub struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl<'a> Locator<'a> {
    /// A locator for `text`, read from `path`.
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        Locator { path, text }
    }

    /// An error at byte `offset`.
    pub fn at(&self, offset: usize, msg: impl Into<String>) -> ConfigError {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConfigError::At {
            path: self.path.to_path_buf(),
            line,
            col,
            msg: msg.into(),
        }
    }
}

/// What the command line can override.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--name`.
    pub name: Option<String>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--seed` (replaces the file's seeds when given).
    pub seeds: Vec<String>,
    /// `--http`.
    pub http: Option<String>,
    /// `--results`.
    pub results: Option<PathBuf>,
    /// The value of `RINGPOLL_COOKIE`, if set.
    pub cookie_env: Option<String>,
    /// The value of `RINGPOLL_HTTP_TOKEN`, if set.
    pub http_token_env: Option<String>,
}

/// `[http]`, validated (None when `off`).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where the endpoint listens.
    pub listen: std::net::SocketAddr,
    /// Bearer token every request must carry; required off loopback.
    pub token: Option<String>,
}

/// A summary of one `[[targets]]` group, for `check-config`.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    /// Where its targets come from: `hosts`, `cidr …` or `file …`.
    pub source: String,
    /// Probe kind.
    pub probe: ProbeKind,
    /// Targets in the group.
    pub count: usize,
    /// Effective interval.
    pub interval: Duration,
    /// Effective timeout.
    pub timeout: Duration,
    /// SSH groups: login name and host-key policy.
    pub ssh: Option<(String, ringpoll_actors::probe::ssh::HostKeyPolicy)>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's name.
    pub node: NodeName,
    /// `[cluster]`.
    pub cluster: ClusterConfig,
    /// HTTP endpoint, `None` when `off`.
    pub http: Option<HttpConfig>,
    /// Default interval.
    pub interval: Duration,
    /// Default timeout.
    pub timeout: Duration,
    /// Node-wide cap on probes in flight.
    pub max_in_flight: usize,
    /// Cap on configured targets.
    pub max_targets: usize,
    /// SSH sessions in flight at most.
    pub max_concurrent_ssh: usize,
    /// The result sink.
    pub results: SinkSettings,
    /// Restart policy.
    pub supervision: RestartPolicy,
    /// Every target, in config order.
    pub targets: Vec<Arc<TargetSpec>>,
    /// One summary per `[[targets]]` group.
    pub groups: Vec<GroupSummary>,
}

/// Reads, parses and validates `path` with `overrides` applied.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        msg: format!("cannot read the config file: {e}"),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(path, &text, base, overrides)
}

/// Parses and validates config `text` (read from `path`; relative paths in it are relative to
/// `base`).
pub fn parse(
    path: &Path,
    text: &str,
    base: &Path,
    overrides: &Overrides,
) -> Result<Settings, ConfigError> {
    let loc = Locator::new(path, text);
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        loc.at(offset, e.message().trim_end().to_string())
    })?;
    raw.validate(&loc, base, overrides)
}

/// Checks `HOST:PORT` (IPv6 in brackets); returns it unchanged.
pub fn check_host_port(s: &str, allow_port_zero: bool) -> Result<String, String> {
    let expected = "expected HOST:PORT, e.g. \"127.0.0.1:4701\" or \"[::1]:4701\"";
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} has no port; {expected}"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{s:?} has an invalid port; {expected}"))?;
    if port == 0 && !allow_port_zero {
        return Err(format!("{s:?}: port 0 is not allowed here; {expected}"));
    }
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.contains(':') && Host::parse(host).is_ok()
    };
    if !host_ok {
        return Err(format!("{s:?} has an invalid host; {expected}"));
    }
    Ok(s.to_string())
}

impl fmt::Display for Settings {
    /// The one-screen summary printed by `check-config`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: Duration| humantime::format_duration(d).to_string();
        let count = |k: ProbeKind| self.targets.iter().filter(|t| t.probe == k).count();
        writeln!(f, "node           {}", self.node)?;
        match &self.cluster.net {
            None => writeln!(f, "cluster        none (single node; set cluster.listen to cluster)")?,
            Some(n) => writeln!(
                f,
                "cluster        listen {}{}, advertise {}, {} seed(s), weight {}, replicas {}, cookie from {}",
                n.listen,
                if n.tls.is_some() { " (TLS)" } else { "" },
                n.advertise,
                self.cluster.seeds.len(),
                self.cluster.weight,
                self.cluster.replicas,
                match &n.cookie_source {
                    CookieSource::Env => "RINGPOLL_COOKIE".to_string(),
                    CookieSource::File(p) => p.display().to_string(),
                    CookieSource::LoopbackDefault => "the insecure loopback default".to_string(),
                }
            )?,
        }
        match &self.http {
            None => writeln!(f, "http           off")?,
            Some(h) => writeln!(
                f,
                "http           {}{}",
                h.listen,
                if h.token.is_some() {
                    " (bearer token)"
                } else {
                    ""
                }
            )?,
        }
        writeln!(
            f,
            "targets        {} (icmp {}, tcp {}, ssh {}) in {} group(s), max {}",
            self.targets.len(),
            count(ProbeKind::Icmp),
            count(ProbeKind::Tcp),
            count(ProbeKind::Ssh),
            self.groups.len(),
            self.max_targets
        )?;
        writeln!(
            f,
            "probe          interval {}, timeout {}, max_in_flight {}",
            d(self.interval),
            d(self.timeout),
            self.max_in_flight
        )?;
        let sinks: Vec<String> = self
            .results
            .sinks
            .iter()
            .map(|s| match s {
                SinkSpec::Jsonl { path } => format!("jsonl {}", path.display()),
                SinkSpec::Sqlite { path, .. } => format!("sqlite {}", path.display()),
            })
            .collect();
        writeln!(
            f,
            "results        {} (buffer {}, flush every {})",
            sinks.join(", "),
            self.results.buffer,
            d(self.results.flush_interval)
        )?;
        writeln!(
            f,
            "supervision    {} restarts within {}, backoff {}..{}, quarantine {}",
            self.supervision.max_restarts,
            d(self.supervision.within),
            d(self.supervision.backoff_min),
            d(self.supervision.backoff_max),
            d(self.supervision.quarantine)
        )?;
        for (i, g) in self.groups.iter().enumerate() {
            writeln!(
                f,
                "  [[targets]] #{:<3} {:<5} {:>7} target(s)  interval {:<6} timeout {:<6} {}",
                i + 1,
                g.probe.as_str(),
                g.count,
                d(g.interval),
                d(g.timeout),
                g.source
            )?;
            if let Some((user, policy)) = &g.ssh {
                writeln!(f, "                    ssh as {user}, host keys {policy:?}")?;
            }
        }
        if count(ProbeKind::Ssh) > 0 {
            writeln!(
                f,
                "ssh            at most {} sessions at once",
                self.max_concurrent_ssh
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
