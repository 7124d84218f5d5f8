//! Domain data shared by every role: node names, targets, probe kinds, outcomes and results.
//!
//! Plain data only: no actors, no I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// The configured name of a node: its identity in the cluster.
///
/// 1–64 characters from `A-Z a-z 0-9 . _ -`, so it is safe in logs, file names and metric labels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct NodeName(Arc<str>);

impl NodeName {
    /// Validates `name`; the error says what is allowed.
    pub fn new(name: &str) -> Result<Self, String> {
        let ok_len = (1..=64).contains(&name.len());
        let ok_chars = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok_len && ok_chars {
            Ok(Self(name.into()))
        } else {
            Err(format!(
                "invalid node name {name:?}: expected 1 to 64 characters from A-Z a-z 0-9 . _ -"
            ))
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a target is probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// ICMP echo request / reply.
    Icmp,
    /// A TCP connect to `port`.
    Tcp,
    /// An SSH login (and optionally a command) on `port`.
    Ssh,
}

impl ProbeKind {
    /// The name used in config files and results.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Icmp => "icmp",
            ProbeKind::Tcp => "tcp",
            ProbeKind::Ssh => "ssh",
        }
    }

    /// The kind named `s` (`icmp`, `tcp`, `ssh`).
    pub fn parse(s: &str) -> Option<Self> {
        [ProbeKind::Icmp, ProbeKind::Tcp, ProbeKind::Ssh]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A host as written in the config: an address, or a name resolved at probe time.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A literal IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A DNS name, resolved asynchronously and re-resolved periodically.
    Name(Arc<str>),
}

impl Host {
    /// Parses an address literal, or accepts a syntactically valid host name.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let name = s.strip_suffix('.').unwrap_or(s);
        // All-numeric labels are a mistyped address (e.g. 127.3.270.1), never a name: refusing
        // them keeps such a typo from turning into DNS queries.
        if name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!("{s:?} is not a valid IPv4 address"));
        }
        if !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok) {
            Ok(Host::Name(name.to_ascii_lowercase().into()))
        } else {
            Err(format!(
                "{s:?} is neither an IP address nor a valid host name"
            ))
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// Group labels, copied into every result of the group's targets.
pub type Labels = Arc<BTreeMap<String, String>>;

/// One thing to probe, fully resolved from the config (defaults applied, validated).
#[derive(Clone, Debug)]
pub struct TargetSpec {
    /// What results call the target: the host for ICMP, `host:port` for TCP.
    pub id: Arc<str>,
    /// Where the probe goes.
    pub host: Host,
    /// How it is probed.
    pub probe: ProbeKind,
    /// TCP port (None for ICMP).
    pub port: Option<u16>,
    /// Time between the starts of two probes.
    pub interval: Duration,
    /// How long one probe may take; always less than `interval`.
    pub timeout: Duration,
    /// Labels of the target's group.
    pub labels: Labels,
    /// SSH settings of the target's group (SSH targets only).
    pub ssh: Option<Arc<crate::probe::ssh::SshTarget>>,
    /// Consecutive results needed to confirm a change of state.
    pub thresholds: crate::probe::health::Thresholds,
    /// Time between probes while the target is failing but not yet confirmed down.
    pub retry_interval: Duration,
}

impl TargetSpec {
    /// Builds a target, deriving its id from host, kind and port.
    pub fn new(
        host: Host,
        probe: ProbeKind,
        port: Option<u16>,
        interval: Duration,
        timeout: Duration,
        labels: Labels,
    ) -> Self {
        let id: Arc<str> = match (port, &host) {
            (None, h) => h.to_string().into(),
            (Some(p), Host::Ip(IpAddr::V6(ip))) => format!("[{ip}]:{p}").into(),
            (Some(p), h) => format!("{h}:{p}").into(),
        };
        TargetSpec {
            id,
            host,
            probe,
            port,
            interval,
            timeout,
            labels,
            ssh: None,
            thresholds: crate::probe::health::Thresholds::default(),
            retry_interval: default_retry_interval(interval),
        }
    }

    /// The same target with rise/fall thresholds and a retry interval.
    pub fn with_health(
        mut self,
        thresholds: crate::probe::health::Thresholds,
        retry_interval: Duration,
    ) -> Self {
        self.thresholds = thresholds;
        self.retry_interval = retry_interval;
        self
    }

    /// The same target with its group's SSH settings.
    pub fn with_ssh(mut self, ssh: Arc<crate::probe::ssh::SshTarget>) -> Self {
        self.ssh = Some(ssh);
        self
    }

    /// The key that identifies this target node-wide and cluster-wide.
    pub fn key(&self) -> TargetKey {
        TargetKey {
            probe: self.probe,
            id: self.id.clone(),
        }
    }
}

/// The default `retry_interval`: a quarter of the interval.
pub fn default_retry_interval(interval: Duration) -> Duration {
    interval / 4
}

/// Identity of a target: its probe kind and its id. Two groups may not produce the same key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetKey {
    /// The probe kind.
    pub probe: ProbeKind,
    /// The target id (`host` or `host:port`).
    pub id: Arc<str>,
}

impl fmt::Display for TargetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.probe, self.id)
    }
}

/// A digest of a target list (keys, intervals and timeouts, in order-independent form): nodes
/// compare it to notice that they were given different targets.
pub fn targets_digest(targets: &[Arc<TargetSpec>]) -> u64 {
    let mut lines: Vec<String> = targets
        .iter()
        .map(|t| {
            format!(
                "{}|{}|{}",
                t.key(),
                t.interval.as_nanos(),
                t.timeout.as_nanos()
            )
        })
        .collect();
    lines.sort_unstable();
    xxhash_rust::xxh3::xxh3_64(lines.join("\n").as_bytes())
}

/// Why a target counts as down. A down target is data, never an actor failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// No answer within the probe timeout.
    Timeout,
    /// The target actively refused (TCP RST).
    Refused,
    /// The network said the target cannot be reached (ICMP unreachable, no route).
    Unreachable,
    /// The host name did not resolve to an address.
    Unresolved(String),
    /// Any other I/O error, with the system's message.
    Io(String),
    /// SSH: the server's host key is not in known_hosts (strict policy).
    HostKeyUnknown,
    /// SSH: known_hosts holds another key for the host (or the key is revoked).
    HostKeyChanged,
    /// SSH: the key was not accepted.
    Auth,
    /// SSH: the command exited with another status than expected (None: no status).
    ExitCode(Option<u32>),
    /// SSH: the command's output did not match `expect_output`.
    OutputMismatch,
    /// SSH: a protocol error.
    Protocol(String),
}

impl DownReason {
    /// The stable code written as `error` in results.
    pub fn code(&self) -> &'static str {
        match self {
            DownReason::Timeout => "timeout",
            DownReason::Refused => "refused",
            DownReason::Unreachable => "unreachable",
            DownReason::Unresolved(_) => "unresolved",
            DownReason::Io(_) => "io",
            DownReason::HostKeyUnknown => "hostkey_unknown",
            DownReason::HostKeyChanged => "hostkey_changed",
            DownReason::Auth => "auth_failed",
            DownReason::ExitCode(_) => "exit_code",
            DownReason::OutputMismatch => "output_mismatch",
            DownReason::Protocol(_) => "protocol",
        }
    }

    /// Extra detail for codes that carry one.
    pub fn detail(&self) -> Option<&str> {
        match self {
            DownReason::Unresolved(d) | DownReason::Io(d) | DownReason::Protocol(d) => Some(d),
            _ => None,
        }
    }

    /// Maps an I/O error from a connect or send to a reason.
    pub fn from_io(err: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match err.kind() {
            K::ConnectionRefused => DownReason::Refused,
            K::TimedOut => DownReason::Timeout,
            K::HostUnreachable | K::NetworkUnreachable => DownReason::Unreachable,
            _ => DownReason::Io(err.to_string()),
        }
    }
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.detail() {
            Some(d) => write!(f, "{}: {d}", self.code()),
            None => f.write_str(self.code()),
        }
    }
}

/// What one probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The target answered after `rtt`.
    Up {
        /// Round-trip (ICMP) or connect (TCP) time.
        rtt: Duration,
    },
    /// The target did not answer as expected.
    Down {
        /// Why.
        reason: DownReason,
    },
}

impl ProbeOutcome {
    /// True when the target answered.
    pub fn is_up(&self) -> bool {
        matches!(self, ProbeOutcome::Up { .. })
    }
}

/// One probe's result, as handed to the result sink.
#[derive(Clone, Debug)]
pub struct ProbeResult {
    /// When the result was produced (the probe finished).
    pub ts: SystemTime,
    /// The node that produced it.
    pub node: NodeName,
    /// The target probed.
    pub target: Arc<TargetSpec>,
    /// The ownership epoch under which the probe ran.
    pub epoch: u64,
    /// What the probe found.
    pub outcome: ProbeOutcome,
    /// SSH details (SSH probes only).
    pub ssh: Option<Box<SshReport>>,
}

/// A confirmed change of a target's state (rise/fall), written beside the results.
#[derive(Clone, Debug)]
pub struct StateEvent {
    /// When it was confirmed.
    pub ts: SystemTime,
    /// The node that confirmed it.
    pub node: NodeName,
    /// The target.
    pub target: Arc<TargetSpec>,
    /// The ownership epoch.
    pub epoch: u64,
    /// State before.
    pub from: crate::probe::health::TargetState,
    /// State now.
    pub to: crate::probe::health::TargetState,
}

/// The JSON-lines shape of a [`StateEvent`].
#[derive(Debug, Serialize)]
pub struct EventLine<'a> {
    /// RFC 3339 UTC timestamp with milliseconds.
    pub ts: String,
    /// Node.
    pub node: &'a str,
    /// Target id.
    pub target: &'a str,
    /// Probe kind.
    pub probe: ProbeKind,
    /// Always `"state"`.
    pub event: &'static str,
    /// State before.
    pub from: &'static str,
    /// State now.
    pub to: &'static str,
    /// Ownership epoch.
    pub epoch: u64,
    /// The group's labels.
    pub labels: &'a BTreeMap<String, String>,
}

impl StateEvent {
    /// The line as it is written to a JSON-lines file.
    pub fn line(&self) -> EventLine<'_> {
        EventLine {
            ts: humantime::format_rfc3339_millis(self.ts).to_string(),
            node: self.node.as_str(),
            target: &self.target.id,
            probe: self.target.probe,
            event: "state",
            from: self.from.as_str(),
            to: self.to.as_str(),
            epoch: self.epoch,
            labels: &self.target.labels,
        }
    }
}

/// What the sink writes: results, and state events.
#[derive(Clone, Debug)]
pub enum Record {
    /// A probe result.
    Result(ProbeResult),
    /// A confirmed state change.
    Event(StateEvent),
}

/// An SSH probe's stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SshStage {
    /// TCP connect.
    Connect,
    /// Banner and key exchange.
    Handshake,
    /// Host-key check.
    Hostkey,
    /// Public-key authentication.
    Auth,
    /// The command.
    Command,
}

/// What an SSH probe reports besides up or down.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SshReport {
    /// The stage that failed; null when up.
    pub stage: Option<SshStage>,
    /// The command's exit status.
    pub exit_code: Option<u32>,
    /// The signal that ended the command, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
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
    pub stages_ms: BTreeMap<&'static str, f64>,
    /// The server's host key, SHA256 fingerprint as OpenSSH prints it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    /// On a changed host key: the fingerprints known_hosts holds for the host.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub known_host_keys: Vec<String>,
}

/// The JSON-lines shape of a [`ProbeResult`] (one object per line).
#[derive(Debug, Serialize)]
pub struct ResultLine<'a> {
    /// RFC 3339 UTC timestamp with milliseconds.
    pub ts: String,
    /// Producing node.
    pub node: &'a str,
    /// Target id.
    pub target: &'a str,
    /// Probe kind.
    pub probe: ProbeKind,
    /// True when up.
    pub ok: bool,
    /// Round-trip time in milliseconds, null when down.
    pub rtt_ms: Option<f64>,
    /// Reason code when down, null when up.
    pub error: Option<&'static str>,
    /// Detail for `unresolved` and `io` errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
    /// Ownership epoch.
    pub epoch: u64,
    /// The group's labels.
    pub labels: &'a BTreeMap<String, String>,
    /// SSH fields, flattened into the line (SSH probes only).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<&'a SshReport>,
}

impl ProbeResult {
    /// The line as it is written to a JSON-lines file.
    pub fn line(&self) -> ResultLine<'_> {
        let (ok, rtt_ms, error, detail) = match &self.outcome {
            ProbeOutcome::Up { rtt } => (true, Some(rtt.as_secs_f64() * 1000.0), None, None),
            ProbeOutcome::Down { reason } => (false, None, Some(reason.code()), reason.detail()),
        };
        ResultLine {
            ts: humantime::format_rfc3339_millis(self.ts).to_string(),
            node: self.node.as_str(),
            target: &self.target.id,
            probe: self.target.probe,
            ok,
            rtt_ms: rtt_ms.map(|ms| (ms * 1000.0).round() / 1000.0),
            error,
            detail,
            epoch: self.epoch,
            labels: &self.target.labels,
            ssh: self.ssh.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_kinds_parse_their_names() {
        for k in [ProbeKind::Icmp, ProbeKind::Tcp, ProbeKind::Ssh] {
            assert_eq!(ProbeKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ProbeKind::parse("smtp"), None);
    }

    #[test]
    fn node_names_are_checked() {
        assert!(NodeName::new("n1").is_ok());
        assert!(NodeName::new("poller-a.dc_2").is_ok());
        assert!(NodeName::new("").is_err());
        assert!(NodeName::new("a b").is_err());
        assert!(NodeName::new(&"x".repeat(65)).is_err());
    }

    #[test]
    fn hosts_parse_addresses_and_names() {
        assert_eq!(
            Host::parse("127.0.0.1").unwrap(),
            Host::Ip("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            Host::parse("::1").unwrap(),
            Host::Ip("::1".parse().unwrap())
        );
        assert_eq!(
            Host::parse("LocalHost.").unwrap(),
            Host::Name("localhost".into())
        );
        assert!(Host::parse("bad host").is_err());
        assert_eq!(
            Host::parse("127.3.270.1").unwrap_err(),
            "\"127.3.270.1\" is not a valid IPv4 address"
        );
        assert!(Host::parse("10").is_err());
        assert!(Host::parse("host1.example").is_ok());
        assert!(Host::parse("-x.example").is_err());
        assert!(Host::parse("").is_err());
    }

    #[test]
    fn target_ids_carry_the_port_for_tcp() {
        let l: Labels = Arc::default();
        let s = Duration::from_secs(1);
        let t = TargetSpec::new(
            Host::parse("::1").unwrap(),
            ProbeKind::Tcp,
            Some(22),
            s * 2,
            s,
            l.clone(),
        );
        assert_eq!(&*t.id, "[::1]:22");
        let t = TargetSpec::new(
            Host::parse("127.0.0.1").unwrap(),
            ProbeKind::Icmp,
            None,
            s * 2,
            s,
            l,
        );
        assert_eq!(&*t.id, "127.0.0.1");
        assert_eq!(t.key().to_string(), "icmp/127.0.0.1");
    }

    #[test]
    fn result_lines_have_the_documented_fields() {
        let t = Arc::new(TargetSpec::new(
            Host::parse("127.0.0.1").unwrap(),
            ProbeKind::Icmp,
            None,
            Duration::from_secs(10),
            Duration::from_secs(1),
            Arc::new([("site".to_string(), "lo".to_string())].into()),
        ));
        let r = ProbeResult {
            ts: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            node: NodeName::new("n1").unwrap(),
            target: t.clone(),
            epoch: 3,
            outcome: ProbeOutcome::Up {
                rtt: Duration::from_micros(1234),
            },
            ssh: None,
        };
        let v: serde_json::Value = serde_json::to_value(r.line()).unwrap();
        assert_eq!(v["ts"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["ok"], true);
        assert_eq!(v["rtt_ms"], 1.234);
        assert_eq!(v["error"], serde_json::Value::Null);
        assert_eq!(v["labels"]["site"], "lo");
        assert_eq!(v["epoch"], 3);
        let down = ProbeResult {
            outcome: ProbeOutcome::Down {
                reason: DownReason::Refused,
            },
            ..r
        };
        let v: serde_json::Value = serde_json::to_value(down.line()).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["rtt_ms"], serde_json::Value::Null);
        assert_eq!(v["error"], "refused");
        assert!(v.get("detail").is_none());
        assert!(v.get("stage").is_none(), "no SSH fields on other probes");
    }

    #[test]
    fn ssh_results_carry_stage_output_and_fingerprints() {
        let t = Arc::new(TargetSpec::new(
            Host::parse("127.0.0.1").unwrap(),
            ProbeKind::Ssh,
            Some(2222),
            Duration::from_secs(10),
            Duration::from_secs(5),
            Arc::default(),
        ));
        let mut report = SshReport {
            stage: Some(SshStage::Hostkey),
            host_key: Some("SHA256:new".into()),
            known_host_keys: vec!["SHA256:old".into()],
            ..Default::default()
        };
        report.stages_ms.insert("connect", 0.5);
        let r = ProbeResult {
            ts: SystemTime::UNIX_EPOCH,
            node: NodeName::new("n1").unwrap(),
            target: t,
            epoch: 1,
            outcome: ProbeOutcome::Down {
                reason: DownReason::HostKeyChanged,
            },
            ssh: Some(Box::new(report)),
        };
        let v: serde_json::Value = serde_json::to_value(r.line()).unwrap();
        assert_eq!(v["target"], "127.0.0.1:2222");
        assert_eq!(v["probe"], "ssh");
        assert_eq!(v["error"], "hostkey_changed");
        assert_eq!(v["stage"], "hostkey");
        assert_eq!(v["host_key"], "SHA256:new");
        assert_eq!(v["known_host_keys"][0], "SHA256:old");
        assert_eq!(v["exit_code"], serde_json::Value::Null);
        assert_eq!(v["stages_ms"]["connect"], 0.5);
    }
}
