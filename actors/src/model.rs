//! Domain data shared by every role: node names, targets, probe kinds, outcomes and results.
//!
//! Plain data only: no actors, no I/O. The settings of a check kind live with that kind
//! (`probe::ssh::settings`); a target carries them in its [`Check`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

pub use crate::probe::echo::{EchoIds, EchoLine, EchoStats, Echoes};
use crate::probe::health::{TargetState, Thresholds};
use crate::probe::ssh::report::SshReport;
use crate::probe::ssh::settings::SshTarget;

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

impl<'de> Deserialize<'de> for NodeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        NodeName::new(&name).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for NodeName {
    /// The name, honouring width and alignment (`{:<16}` pads it, as tables need).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// How a target is probed: `"icmp"`, `"tcp"` or `"ssh"` in config files, results and on the
/// wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
    /// Every kind.
    pub const ALL: [ProbeKind; 3] = [ProbeKind::Icmp, ProbeKind::Tcp, ProbeKind::Ssh];

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
        Self::ALL.into_iter().find(|k| k.as_str() == s)
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

/// How a target is checked, with that kind's settings.
#[derive(Clone, Debug)]
pub enum Check {
    /// ICMP echo: several echoes per probe.
    Icmp(Echoes),
    /// A TCP connect.
    Tcp {
        /// The port.
        port: u16,
    },
    /// An SSH login, and optionally a command.
    Ssh {
        /// The port.
        port: u16,
        /// The group's SSH settings.
        settings: Arc<SshTarget>,
    },
}

impl Check {
    /// The kind of check.
    pub fn kind(&self) -> ProbeKind {
        match self {
            Check::Icmp(_) => ProbeKind::Icmp,
            Check::Tcp { .. } => ProbeKind::Tcp,
            Check::Ssh { .. } => ProbeKind::Ssh,
        }
    }

    /// Echoes a probe sends (ICMP), else 1.
    pub fn echoes(&self) -> u16 {
        match self {
            Check::Icmp(e) => e.count,
            _ => 1,
        }
    }

    /// The longest one probe can take with `timeout`: each echo waits up to it (ICMP).
    pub fn span(&self, timeout: Duration) -> Duration {
        match self {
            Check::Icmp(e) => e.span(timeout),
            _ => timeout,
        }
    }

    /// The port, for the kinds that have one.
    pub fn port(&self) -> Option<u16> {
        match self {
            Check::Icmp(_) => None,
            Check::Tcp { port } | Check::Ssh { port, .. } => Some(*port),
        }
    }
}

/// One thing to probe, fully resolved from the config (defaults applied, validated).
#[derive(Clone, Debug)]
pub struct TargetSpec {
    /// What results call the target: the host for ICMP, `host:port` for TCP and SSH.
    pub id: Arc<str>,
    /// Where the probe goes.
    pub host: Host,
    /// How it is checked.
    pub check: Check,
    /// Time between the starts of two probes.
    pub interval: Duration,
    /// How long one probe may take; always less than `interval`.
    pub timeout: Duration,
    /// Labels of the target's group.
    pub labels: Labels,
    /// Consecutive results needed to confirm a change of state.
    pub thresholds: Thresholds,
    /// Time between probes while the target is failing but not yet confirmed down.
    pub retry_interval: Duration,
    /// The address this node's probes of the target are sent from (`source`; None: the
    /// kernel's choice). A node's own setting, as its vantage point: not part of the target's
    /// settings digest, so members may differ in it.
    pub source: Option<IpAddr>,
    /// Owners that must see the target down for the cluster to call it down (`confirm`, 1 to
    /// `replicas`).
    pub confirm: u32,
}

impl TargetSpec {
    /// Builds a target, deriving its id from host and port.
    pub fn new(
        host: Host,
        check: Check,
        interval: Duration,
        timeout: Duration,
        labels: Labels,
    ) -> Self {
        let id: Arc<str> = match (check.port(), &host) {
            (None, h) => h.to_string().into(),
            (Some(p), Host::Ip(IpAddr::V6(ip))) => format!("[{ip}]:{p}").into(),
            (Some(p), h) => format!("{h}:{p}").into(),
        };
        TargetSpec {
            id,
            host,
            check,
            interval,
            timeout,
            labels,
            thresholds: Thresholds::default(),
            retry_interval: default_retry_interval(interval),
            source: None,
            confirm: 1,
        }
    }

    /// The same target with rise/fall thresholds and a retry interval.
    pub fn with_health(mut self, thresholds: Thresholds, retry_interval: Duration) -> Self {
        self.thresholds = thresholds;
        self.retry_interval = retry_interval;
        self
    }

    /// How it is probed.
    pub fn kind(&self) -> ProbeKind {
        self.check.kind()
    }

    /// The key that identifies this target node-wide and cluster-wide.
    pub fn key(&self) -> TargetKey {
        TargetKey {
            probe: self.kind(),
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

/// The stable 64-bit hash of a target key that placement and probe phases are derived from:
/// XXH3-64 (seed 0) of the UTF-8 of `probe/id`.
pub fn target_hash(key: &TargetKey) -> u64 {
    let mut buf = String::with_capacity(key.id.len() + 8);
    buf.push_str(key.probe.as_str());
    buf.push('/');
    buf.push_str(&key.id);
    xxhash_rust::xxh3::xxh3_64(buf.as_bytes())
}

impl fmt::Display for TargetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.probe, self.id)
    }
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
    /// ICMP: some echoes came back, but more were lost than `max_loss` allows.
    Loss,
    /// ICMP: the echoes came back, slower on average than `max_rtt`.
    Slow,
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
            DownReason::Loss => "loss",
            DownReason::Slow => "slow",
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
    /// The time the probe took, success or failure (not counting a wait for a probe permit):
    /// what `probe_duration_seconds` reports, as blackbox_exporter's does.
    pub elapsed: Duration,
    /// The echoes' loss and latency statistics (ICMP probes only).
    pub echo: Option<EchoStats>,
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
    /// State before; `None` for a target down from its first result (written `"unknown"`).
    pub from: Option<TargetState>,
    /// State now.
    pub to: TargetState,
    /// With several owners: the views the change was confirmed on, in owner order (empty for a
    /// target with one owner, whose own state is the change).
    pub vantages: Vec<(NodeName, TargetState)>,
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
    /// State before: `up`, `down`, or `unknown` (the target's first result).
    pub from: &'static str,
    /// State now.
    pub to: TargetState,
    /// Ownership epoch.
    pub epoch: u64,
    /// The group's labels.
    pub labels: &'a BTreeMap<String, String>,
    /// Each vantage's view, `{"n1": "down", …}`, when the target has several owners.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub vantages: BTreeMap<&'a str, TargetState>,
}

impl StateEvent {
    /// The line as it is written to a JSON-lines file.
    pub fn line(&self) -> EventLine<'_> {
        EventLine {
            ts: humantime::format_rfc3339_millis(self.ts).to_string(),
            node: self.node.as_str(),
            target: &self.target.id,
            probe: self.target.kind(),
            event: "state",
            from: self.from.map_or("unknown", TargetState::as_str),
            to: self.to,
            epoch: self.epoch,
            labels: &self.target.labels,
            vantages: self
                .vantages
                .iter()
                .map(|(n, s)| (n.as_str(), *s))
                .collect(),
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

/// The JSON-lines shape of a [`ProbeResult`] (one object per line). Borrowed from the result
/// when written; owned when read back (the status API passes lines between nodes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultLine<'a> {
    /// RFC 3339 UTC timestamp with milliseconds.
    pub ts: String,
    /// Producing node.
    pub node: Cow<'a, str>,
    /// Target id.
    pub target: Cow<'a, str>,
    /// Probe kind.
    pub probe: ProbeKind,
    /// True when up.
    pub ok: bool,
    /// Round-trip time in milliseconds, null when down.
    pub rtt_ms: Option<f64>,
    /// Reason code when down, null when up.
    pub error: Option<Cow<'a, str>>,
    /// Detail for `unresolved` and `io` errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Cow<'a, str>>,
    /// Ownership epoch.
    pub epoch: u64,
    /// The group's labels.
    pub labels: Cow<'a, BTreeMap<String, String>>,
    /// SSH fields, flattened into the line (SSH probes only).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<Cow<'a, SshReport>>,
    /// Echo statistics, flattened into the line (ICMP probes only).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub echo: Option<EchoLine>,
}

impl ProbeResult {
    /// The line as it is written to a JSON-lines file.
    pub fn line(&self) -> ResultLine<'_> {
        let (ok, rtt_ms, error, detail) = match &self.outcome {
            ProbeOutcome::Up { rtt } => (true, Some(crate::clock::ms(*rtt)), None, None),
            ProbeOutcome::Down { reason } => (false, None, Some(reason.code()), reason.detail()),
        };
        ResultLine {
            ts: humantime::format_rfc3339_millis(self.ts).to_string(),
            node: Cow::Borrowed(self.node.as_str()),
            target: Cow::Borrowed(&self.target.id),
            probe: self.target.kind(),
            ok,
            rtt_ms,
            error: error.map(Cow::Borrowed),
            detail: detail.map(Cow::Borrowed),
            epoch: self.epoch,
            labels: Cow::Borrowed(&self.target.labels),
            ssh: self.ssh.as_deref().map(Cow::Borrowed),
            echo: self.echo.as_ref().map(EchoStats::line),
        }
    }
}

impl ResultLine<'_> {
    /// The line with every field owned.
    pub fn into_owned(self) -> ResultLine<'static> {
        ResultLine {
            ts: self.ts,
            node: Cow::Owned(self.node.into_owned()),
            target: Cow::Owned(self.target.into_owned()),
            probe: self.probe,
            ok: self.ok,
            rtt_ms: self.rtt_ms,
            error: self.error.map(|e| Cow::Owned(e.into_owned())),
            detail: self.detail.map(|d| Cow::Owned(d.into_owned())),
            epoch: self.epoch,
            labels: Cow::Owned(self.labels.into_owned()),
            ssh: self.ssh.map(|s| Cow::Owned(s.into_owned())),
            echo: self.echo,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_kinds_parse_their_names() {
        for k in ProbeKind::ALL {
            assert_eq!(ProbeKind::parse(k.as_str()), Some(k));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{k}\""));
            assert_eq!(serde_json::from_str::<ProbeKind>(&json).unwrap(), k);
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
        // Tables pad names (`ringpoll status`).
        assert_eq!(format!("{:<4}|", NodeName::new("n1").unwrap()), "n1  |");
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
            Check::Tcp { port: 22 },
            s * 2,
            s,
            l.clone(),
        );
        assert_eq!(&*t.id, "[::1]:22");
        let t = TargetSpec::new(
            Host::parse("127.0.0.1").unwrap(),
            Check::Icmp(Echoes::default()),
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
            Check::Icmp(Echoes::default()),
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
            elapsed: Duration::from_millis(1),
            echo: None,
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
    fn ssh_results_carry_stage_output_and_fingerprints_and_lines_read_back() {
        use crate::probe::ssh::report::SshStage;
        let mut report = SshReport {
            stage: Some(SshStage::Hostkey),
            host_key: Some("SHA256:new".into()),
            known_host_keys: vec!["SHA256:old".into()],
            ..Default::default()
        };
        report.stages_ms.insert(SshStage::Connect, 0.5);
        let line = ResultLine {
            ts: "2023-11-14T22:13:20.123Z".into(),
            node: "n1".into(),
            target: "127.0.0.1:2222".into(),
            probe: ProbeKind::Ssh,
            ok: false,
            rtt_ms: None,
            error: Some("hostkey_changed".into()),
            detail: None,
            epoch: 1,
            labels: Cow::Owned(BTreeMap::new()),
            ssh: Some(Cow::Owned(report)),
            echo: None,
        };
        let v: serde_json::Value = serde_json::to_value(&line).unwrap();
        assert_eq!(v["target"], "127.0.0.1:2222");
        assert_eq!(v["probe"], "ssh");
        assert_eq!(v["error"], "hostkey_changed");
        assert_eq!(v["stage"], "hostkey");
        assert_eq!(v["host_key"], "SHA256:new");
        assert_eq!(v["known_host_keys"][0], "SHA256:old");
        assert_eq!(v["exit_code"], serde_json::Value::Null);
        assert_eq!(v["stages_ms"]["connect"], 0.5);
        // Read back (as peers and the CLI do): the same line; and a line without SSH fields
        // has none.
        let back: ResultLine<'static> = serde_json::from_value(v).unwrap();
        assert_eq!(back, line);
        let icmp = r#"{"ts":"t","node":"n1","target":"127.0.0.1","probe":"icmp","ok":true,"rtt_ms":0.1,"error":null,"epoch":1,"labels":{"a":"b"}}"#;
        let back: ResultLine<'static> = serde_json::from_str(icmp).unwrap();
        assert!(back.ssh.is_none() && back.detail.is_none());
        assert_eq!(serde_json::to_string(&back).unwrap(), icmp);
    }

    #[test]
    fn ssh_stages_are_written_in_the_order_they_happen() {
        use crate::probe::ssh::report::SshStage;
        let mut report = SshReport::default();
        for (i, s) in [
            SshStage::Command,
            SshStage::Auth,
            SshStage::Hostkey,
            SshStage::Handshake,
            SshStage::Connect,
        ]
        .into_iter()
        .enumerate()
        {
            report.stages_ms.insert(s, i as f64);
        }
        let text = serde_json::to_string(&report).unwrap();
        let at = |k: &str| text.find(&format!("\"{k}\":")).unwrap();
        let order = ["connect", "handshake", "hostkey", "auth", "command"].map(at);
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    }
}
