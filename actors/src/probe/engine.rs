//! The checks a node can run, opened once at start, and name resolution.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use super::echo::FirstAnswer;
use super::echo::{EchoIds, EchoStats};
use super::error::ProbeSetupError;
use super::icmp::IcmpEngine;
use super::pace::PaceLimits;
use super::ssh::{
    Hold, ProbeHandler, SessionMode, Sessions, SshCounters, SshEngine, SshLimits, SshReport,
};
use super::tcp;
use crate::model::{Check, DownReason, Host, ProbeKind, ProbeOutcome, TargetSpec};

/// How long a resolved host name is used before it is resolved again.
pub const RESOLVE_TTL: Duration = Duration::from_secs(60);

/// What one check found: the outcome, and the details of its kind.
#[derive(Debug)]
pub struct CheckReport {
    /// Up or down.
    pub outcome: ProbeOutcome,
    /// SSH details (SSH checks).
    pub ssh: Option<Box<SshReport>>,
    /// Echo statistics (ICMP checks).
    pub echo: Option<EchoStats>,
}

impl CheckReport {
    fn plain(outcome: ProbeOutcome) -> Self {
        CheckReport {
            outcome,
            ssh: None,
            echo: None,
        }
    }
}

/// The checks the node can run, opened once at start.
#[derive(Debug, Default)]
pub struct ProbeEngine {
    icmp: Option<IcmpEngine>,
    ssh: Option<SshEngine>,
    /// SSH connections of persistent targets are held between probes (a node; not a sweep).
    hold_ssh: bool,
    #[cfg(test)]
    pub(crate) fake: Option<super::fake::FakeProbe>,
}

impl ProbeEngine {
    /// An engine for the given kinds; opens ICMP sockets only when `Icmp` is among them, and
    /// paces their echoes within `pace`.
    /// Must run inside a Tokio runtime.
    pub fn open(
        kinds: impl IntoIterator<Item = ProbeKind>,
        ssh: SshLimits,
        ssh_counters: Arc<SshCounters>,
        pace: PaceLimits,
    ) -> Result<Self, ProbeSetupError> {
        let mut engine = ProbeEngine {
            hold_ssh: ssh.max_sessions > 0,
            ..ProbeEngine::default()
        };
        for kind in kinds {
            if kind == ProbeKind::Icmp && engine.icmp.is_none() {
                engine.icmp = Some(IcmpEngine::open(pace)?);
            }
            if kind == ProbeKind::Ssh && engine.ssh.is_none() {
                engine.ssh = Some(SshEngine::new(ssh, ssh_counters.clone()));
            }
        }
        Ok(engine)
    }

    /// The held SSH connections, if SSH is set up (to reap and close them).
    pub fn ssh_sessions(&self) -> Option<Arc<Sessions<ProbeHandler>>> {
        self.ssh.as_ref().map(SshEngine::sessions)
    }

    /// Closes the SSH connection held for `target`, if any: its probe actor stops (hand-off,
    /// removal, shutdown) or its settings changed.
    pub fn release(&self, target: &TargetSpec) {
        if let (Some(ssh), Check::Ssh { port, .. }) = (&self.ssh, &target.check) {
            ssh.sessions().release(&(target.id.clone(), *port));
        }
    }

    /// Runs one check of `target` at `addr`, bounded by the target's timeout (for SSH, counted
    /// from when a session slot is free; for ICMP, per echo). `ids` are the ICMP echoes'
    /// identifier round and first sequence number; `first`, if any, is called when the first
    /// echo has its answer (ICMP only; other checks drop it).
    pub async fn check(
        &self,
        target: &TargetSpec,
        addr: IpAddr,
        ids: EchoIds,
        first: Option<FirstAnswer>,
    ) -> CheckReport {
        #[cfg(test)]
        if let Some(fake) = &self.fake {
            return CheckReport::plain(fake.check(target).await);
        }
        let unavailable = |why: &str| {
            CheckReport::plain(ProbeOutcome::Down {
                reason: DownReason::Io(why.into()),
            })
        };
        match &target.check {
            Check::Icmp(echoes) => match &self.icmp {
                Some(icmp) => {
                    let (outcome, stats) = icmp
                        .echoes(addr, target.source, ids, echoes, target.timeout, first)
                        .await;
                    CheckReport {
                        outcome,
                        ssh: None,
                        echo: Some(stats),
                    }
                }
                None => unavailable("ICMP sockets are not open"),
            },
            Check::Tcp { port } => {
                CheckReport::plain(tcp::connect(addr, *port, target.source, target.timeout).await)
            }
            Check::Ssh { port, settings } => {
                let Some(engine) = &self.ssh else {
                    return unavailable("SSH is not set up");
                };
                // Boxed: the SSH session's state machine is several KiB, and inlined it would
                // make every probe's future (ICMP and TCP too) that large.
                let host = target.host.to_string();
                // A persistent target keeps its connection until its next probe is due (and a
                // little more: the reaper closes it if no probe comes).
                let hold =
                    (settings.session == SessionMode::Persistent && self.hold_ssh).then(|| Hold {
                        key: (target.id.clone(), *port),
                        idle_for: target.interval * 2 + target.timeout,
                        login_for: target.interval,
                    });
                let to = std::net::SocketAddr::new(addr, *port);
                let (outcome, report) = Box::pin(engine.check(
                    &host,
                    to,
                    target.source,
                    settings,
                    target.timeout,
                    hold,
                ))
                .await;
                CheckReport {
                    outcome,
                    ssh: Some(Box::new(report)),
                    echo: None,
                }
            }
        }
    }
}

/// Resolves a host to one address: literals as they are, names asynchronously (the system
/// resolver, run off the async threads), preferring IPv4.
pub async fn resolve(host: &Host) -> Result<IpAddr, DownReason> {
    match host {
        Host::Ip(ip) => Ok(*ip),
        Host::Name(name) => {
            #[cfg(test)]
            if let Some(ip) = super::fake::resolve(name) {
                return ip;
            }
            let addrs: Vec<_> = tokio::net::lookup_host((&**name, 0))
                .await
                .map_err(|e| DownReason::Unresolved(format!("{name}: {e}")))?
                .map(|sa| sa.ip())
                .collect();
            addrs
                .iter()
                .find(|ip| ip.is_ipv4())
                .or(addrs.first())
                .copied()
                .ok_or_else(|| DownReason::Unresolved(format!("{name}: no addresses")))
        }
    }
}
