//! A validated configuration: plain data that cannot hold an invalid value, and the one-screen
//! summary `check-config` prints.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ringpoll_actors::model::{NodeName, ProbeKind, TargetSpec};
use ringpoll_actors::restart::RestartPolicy;
use ringpoll_actors::sink::{SinkSettings, SinkSpec};

use super::sources::SourceReport;

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

/// How log lines are written (`[log] format`, `--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event (colours on a terminal).
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, message and the event's fields.
    Json,
}

impl LogFormat {
    /// The name used in the config and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
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
    /// `--sqlite`.
    pub sqlite: Option<PathBuf>,
    /// The value of `RINGPOLL_COOKIE`, if set.
    pub cookie_env: Option<String>,
    /// The value of `RINGPOLL_HTTP_TOKEN`, if set.
    pub http_token_env: Option<String>,
    /// This machine's host name: the node's name when neither `--name` nor `[node] name`
    /// gives one (see [`host_name`](super::host_name)).
    pub host_name: Option<String>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
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
    /// ICMP groups: their echoes.
    pub echoes: Option<ringpoll_actors::model::Echoes>,
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
    /// SSH limits: sessions in flight, connections held, fresh logins per second.
    pub ssh: ringpoll_actors::probe::ssh::SshLimits,
    /// ICMP pacing: `max_rate_per_network` and `max_pps`.
    pub pace: ringpoll_actors::probe::pace::PaceLimits,
    /// The result sink.
    pub results: SinkSettings,
    /// The notifiers (`[[notify]]`).
    pub notify: Vec<ringpoll_actors::notify::spec::NotifySpec>,
    /// Restart policy.
    pub supervision: RestartPolicy,
    /// Every target, in config order.
    pub targets: Vec<Arc<TargetSpec>>,
    /// One summary per `[[targets]]` group.
    pub groups: Vec<GroupSummary>,
    /// What reading the target sources found: their content, failures, what to watch.
    pub sources: SourceReport,
    /// `[log] format`, or `--log-format`.
    pub log_format: LogFormat,
}

impl fmt::Display for Settings {
    /// The one-screen summary printed by `check-config`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: Duration| humantime::format_duration(d).to_string();
        let count = |k: ProbeKind| self.targets.iter().filter(|t| t.kind() == k).count();
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
        let rate = |r: Option<u32>| r.map_or("unlimited".to_string(), |r| format!("{r}/s"));
        writeln!(
            f,
            "icmp pacing    {} per /24 or /64, {} per node",
            rate(self.pace.per_network),
            rate(self.pace.node)
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
        writeln!(f, "log            {}", self.log_format.as_str())?;
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
            if let Some(e) = &g.echoes {
                let mut line = format!(
                    "                    {} echo(es) {} apart",
                    e.count,
                    d(e.packet_interval)
                );
                if let Some(l) = e.max_loss {
                    line += &format!(", down above {} % loss", (l * 100.0).round());
                }
                if let Some(r) = e.max_rtt {
                    line += &format!(", down above {} average", d(r));
                }
                writeln!(f, "{line}")?;
            }
            if let Some((user, policy)) = &g.ssh {
                writeln!(
                    f,
                    "                    ssh as {user}, host keys {}",
                    policy.as_str()
                )?;
            }
        }
        if count(ProbeKind::Ssh) > 0 {
            let logins = match self.ssh.max_new_logins_per_s {
                0 => "no limit".to_string(),
                n => format!("{n}/s"),
            };
            writeln!(
                f,
                "ssh            at most {} sessions at once, {} connections held, fresh logins {logins}",
                self.ssh.max_concurrent, self.ssh.max_sessions
            )?;
        }
        Ok(())
    }
}
