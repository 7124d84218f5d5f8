//! Probes: one actor per owned target, each running one kind of check.
//!
//! - [`schedule`]: when a target is probed (pure).
//! - [`health`]: up/down transitions worth logging (pure).
//! - [`icmp`], [`tcp`]: the checks, each an async function returning a [`ProbeOutcome`].
//! - [`actor`]: the [`ProbeActor`](actor::ProbeActor) shell: one probe in flight, the next
//!   scheduled after it finishes, results cast to the sink.
//!
//! A down target is data ([`ProbeOutcome::Down`]); only a broken invariant fails an actor.
//! A problem with the prober itself (no permission for ICMP sockets) is found when the node
//! starts, before any actor runs.

pub mod actor;
#[cfg(test)]
pub(crate) mod fake;
pub mod health;
pub mod icmp;
pub mod schedule;
pub mod ssh;
pub mod tcp;

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::fault::FaultInjection;
use crate::model::{DownReason, Host, NodeName, ProbeKind, ProbeOutcome, SshReport, TargetSpec};
use crate::supervisor::TreeRefs;

/// The prober cannot work at all; the node does not start.
#[derive(Debug, thiserror::Error)]
pub enum ProbeSetupError {
    /// Neither a raw nor a datagram ICMP socket could be opened.
    #[error("cannot open an ICMP socket: {source}")]
    IcmpSocket {
        /// The system's error, with what to do for permission errors.
        source: std::io::Error,
    },
}

/// How long a resolved host name is used before it is resolved again.
pub const RESOLVE_TTL: Duration = Duration::from_secs(60);

/// The checks the node can run, opened once at start.
#[derive(Debug, Default)]
pub struct ProbeEngine {
    icmp: Option<icmp::IcmpEngine>,
    ssh: Option<ssh::SshEngine>,
    #[cfg(test)]
    pub(crate) fake: Option<fake::FakeProbe>,
}

impl ProbeEngine {
    /// An engine for the given kinds; opens ICMP sockets only when `Icmp` is among them.
    /// Must run inside a Tokio runtime.
    pub fn open(
        kinds: impl IntoIterator<Item = ProbeKind>,
        max_concurrent_ssh: usize,
    ) -> Result<Self, ProbeSetupError> {
        let mut engine = ProbeEngine::default();
        for kind in kinds {
            if kind == ProbeKind::Icmp && engine.icmp.is_none() {
                engine.icmp = Some(icmp::IcmpEngine::open()?);
            }
            if kind == ProbeKind::Ssh && engine.ssh.is_none() {
                engine.ssh = Some(ssh::SshEngine::new(max_concurrent_ssh));
            }
        }
        Ok(engine)
    }

    /// Runs one check of `target` at `addr`, bounded by the target's timeout (for SSH, counted
    /// from when a session slot is free).
    pub async fn check(
        &self,
        target: &TargetSpec,
        addr: IpAddr,
        seq: u16,
    ) -> (ProbeOutcome, Option<Box<SshReport>>) {
        #[cfg(test)]
        if let Some(fake) = &self.fake {
            return (fake.check(target).await, None);
        }
        if target.probe == ProbeKind::Ssh {
            let (Some(engine), Some(ssh)) = (&self.ssh, &target.ssh) else {
                return (
                    ProbeOutcome::Down {
                        reason: DownReason::Io("SSH is not set up".into()),
                    },
                    None,
                );
            };
            let port = target.port.unwrap_or(22);
            // Boxed: the SSH session's state machine is several KiB, and inlined it would make
            // every probe's future (ICMP and TCP too) that large.
            let (outcome, report) =
                Box::pin(engine.check(&target.host.to_string(), addr, port, ssh, target.timeout))
                    .await;
            return (outcome, Some(Box::new(report)));
        }
        let outcome = match target.probe {
            ProbeKind::Icmp => match &self.icmp {
                Some(icmp) => icmp.ping(addr, seq, target.timeout).await,
                None => ProbeOutcome::Down {
                    reason: DownReason::Io("ICMP sockets are not open".into()),
                },
            },
            ProbeKind::Tcp => tcp::connect(addr, target.port.unwrap_or(0), target.timeout).await,
            ProbeKind::Ssh => unreachable!("handled above"),
        };
        (outcome, None)
    }
}

/// Resolves a host to one address: literals as they are, names asynchronously (the system
/// resolver, run off the async threads), preferring IPv4.
pub async fn resolve(host: &Host) -> Result<IpAddr, DownReason> {
    match host {
        Host::Ip(ip) => Ok(*ip),
        Host::Name(name) => {
            #[cfg(test)]
            if let Some(ip) = fake::resolve(name) {
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

/// What every probe actor of the node shares.
#[derive(Debug)]
pub struct ProbeContext {
    /// This node.
    pub node: NodeName,
    /// The checks.
    pub engine: ProbeEngine,
    /// Node-wide cap on probes in flight (`max_in_flight`).
    pub permits: Arc<Semaphore>,
    /// Where results go.
    pub refs: Arc<TreeRefs>,
    /// The current ownership epoch, stamped on every result.
    pub epoch: AtomicU64,
    /// Slots missed because probes could not start in time (node-wide counter).
    pub overruns: AtomicU64,
    /// Test-only fault injection.
    pub faults: FaultInjection,
}
