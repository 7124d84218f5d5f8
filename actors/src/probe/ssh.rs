//! SSH probe (russh): connect, check the host key, authenticate with a key, optionally run a
//! command, and report stage by stage.
//!
//! Stages, each bounded by what is left of the target's timeout: `connect` (TCP), `handshake`
//! (banner and key exchange, including the host-key check), `auth` (public key), `command`
//! (exec, output, exit status). A failure names its stage; running out of time is the error
//! `timeout` in the stage it happened in.
//!
//! Host keys follow `host_key_policy`: `strict` (unknown or changed → failure, nothing runs),
//! `accept-new` (unknown keys are appended to known_hosts; changed keys still fail), `off`
//! (accept anything; must be spelled out and is logged at start). known_hosts is read once.
//!
//! Keys are loaded once at start. `max_concurrent_ssh` bounds sessions in flight per node; the
//! timeout starts once a session slot is taken, so a queue of targets is not a queue of
//! timeouts.

pub mod known_hosts;
pub mod report;
pub mod settings;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::ChannelMsg;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::model::{DownReason, ProbeOutcome};
use known_hosts::{fingerprint, KnownHosts, Verdict};
pub use report::{SshReport, SshStage};
pub use settings::{
    load_known_hosts, HostKeyPolicy, SshIdentity, SshSetupError, SshTarget, DEFAULT_MAX_CONCURRENT,
    DEFAULT_MAX_OUTPUT,
};

/// The node's SSH client.
#[derive(Debug)]
pub struct SshEngine {
    config: Arc<client::Config>,
    slots: Arc<Semaphore>,
}

/// What the host-key check saw (the handler records it; the session may then fail).
#[derive(Debug, Default, Clone)]
struct HostKeySeen {
    fingerprint: Option<String>,
    rejected: Option<(DownReason, Vec<String>)>,
}

struct ProbeHandler {
    host: String,
    port: u16,
    policy: HostKeyPolicy,
    known_hosts: Option<Arc<KnownHosts>>,
    seen: Arc<Mutex<HostKeySeen>>,
}

impl client::Handler for ProbeHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let PublicKeyOrCertificate::PublicKey { key, .. } = server_key else {
            seen.rejected = Some((DownReason::HostKeyUnknown, Vec::new()));
            return Ok(false);
        };
        seen.fingerprint = Some(fingerprint(key));
        let (Some(kh), policy) = (&self.known_hosts, self.policy) else {
            return Ok(self.policy == HostKeyPolicy::Off);
        };
        if policy == HostKeyPolicy::Off {
            return Ok(true);
        }
        match kh.verdict(&self.host, self.port, key) {
            Verdict::Known => Ok(true),
            Verdict::Unknown if policy == HostKeyPolicy::AcceptNew => {
                match kh.learn(&self.host, self.port, key) {
                    Ok(()) => {
                        tracing::info!(host = %self.host, port = self.port, fingerprint = %fingerprint(key), known_hosts = %kh.path().display(), "new host key recorded (accept-new)");
                        Ok(true)
                    }
                    Err(e) => {
                        tracing::warn!(host = %self.host, error = %e, "cannot record a new host key");
                        seen.rejected = Some((DownReason::HostKeyUnknown, Vec::new()));
                        Ok(false)
                    }
                }
            }
            Verdict::Unknown => {
                seen.rejected = Some((DownReason::HostKeyUnknown, Vec::new()));
                Ok(false)
            }
            Verdict::Changed { known } => {
                seen.rejected = Some((DownReason::HostKeyChanged, known));
                Ok(false)
            }
        }
    }
}

/// Turns output bytes into text: valid UTF-8 as it is, other bytes as `\xNN`.
pub fn output_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Keeps the first `max` bytes of a stream, counting the rest.
#[derive(Debug, Default)]
struct Capture {
    kept: Vec<u8>,
    dropped: u64,
}

impl Capture {
    fn push(&mut self, data: &[u8], max: usize) {
        let room = max.saturating_sub(self.kept.len());
        let take = room.min(data.len());
        self.kept.extend_from_slice(&data[..take]);
        self.dropped += (data.len() - take) as u64;
    }
}

fn down(reason: DownReason) -> ProbeOutcome {
    ProbeOutcome::Down { reason }
}

impl SshEngine {
    /// A client allowing `max_concurrent` sessions in flight.
    pub fn new(max_concurrent: usize) -> Self {
        let config = client::Config {
            nodelay: true,
            inactivity_timeout: None,
            ..Default::default()
        };
        SshEngine {
            config: Arc::new(config),
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
        }
    }

    /// Probes `host` (as named in known_hosts) at `addr:port` within `timeout` (counted from
    /// when a session slot is free).
    pub async fn check(
        &self,
        host: &str,
        addr: IpAddr,
        port: u16,
        t: &SshTarget,
        timeout: Duration,
    ) -> (ProbeOutcome, SshReport) {
        let _slot = self.slots.acquire().await;
        let deadline = Instant::now() + timeout;
        let mut report = SshReport::default();
        let outcome = self.run(host, addr, port, t, deadline, &mut report).await;
        if outcome.is_up() {
            report.stage = None;
        }
        (outcome, report)
    }

    async fn run(
        &self,
        host: &str,
        addr: IpAddr,
        port: u16,
        t: &SshTarget,
        deadline: Instant,
        r: &mut SshReport,
    ) -> ProbeOutcome {
        let started = Instant::now();
        // connect
        r.stage = Some(SshStage::Connect);
        let mut mark = Instant::now();
        let stream = match tokio::time::timeout_at(
            deadline,
            tokio::net::TcpStream::connect(SocketAddr::new(addr, port)),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return down(DownReason::from_io(&e)),
            Err(_) => return down(DownReason::Timeout),
        };
        let _ = stream.set_nodelay(true);
        r.lap(SshStage::Connect, &mut mark);

        // handshake and host key
        r.stage = Some(SshStage::Handshake);
        let seen = Arc::new(Mutex::new(HostKeySeen::default()));
        let handler = ProbeHandler {
            host: host.to_string(),
            port,
            policy: t.policy,
            known_hosts: t.known_hosts.clone(),
            seen: seen.clone(),
        };
        let session = tokio::time::timeout_at(
            deadline,
            client::connect_stream(self.config.clone(), stream, handler),
        )
        .await;
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        r.host_key = seen.fingerprint.clone();
        let mut session: Handle<ProbeHandler> = match session {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                if let Some((reason, known)) = seen.rejected {
                    r.stage = Some(SshStage::Hostkey);
                    r.known_host_keys = known;
                    return down(reason);
                }
                return down(protocol(&e));
            }
            Err(_) => return down(DownReason::Timeout),
        };
        r.lap(SshStage::Handshake, &mut mark);

        // auth
        r.stage = Some(SshStage::Auth);
        let outcome = async {
            let key = t.identity.key.clone();
            let hash = if key.algorithm().is_rsa() {
                match tokio::time::timeout_at(deadline, session.best_supported_rsa_hash()).await {
                    Ok(Ok(h)) => h.flatten(),
                    Ok(Err(e)) => return Err(down(protocol(&e))),
                    Err(_) => return Err(down(DownReason::Timeout)),
                }
            } else {
                None
            };
            match tokio::time::timeout_at(
                deadline,
                session
                    .authenticate_publickey(t.user.clone(), PrivateKeyWithHashAlg::new(key, hash)),
            )
            .await
            {
                Ok(Ok(a)) if a.success() => Ok(()),
                Ok(Ok(_)) => Err(down(DownReason::Auth)),
                Ok(Err(e)) => Err(down(protocol(&e))),
                Err(_) => Err(down(DownReason::Timeout)),
            }
        }
        .await;
        if let Err(o) = outcome {
            disconnect(session);
            return o;
        }
        r.lap(SshStage::Auth, &mut mark);

        // command
        let Some(command) = &t.command else {
            disconnect(session);
            return ProbeOutcome::Up {
                rtt: started.elapsed(),
            };
        };
        r.stage = Some(SshStage::Command);
        let result =
            tokio::time::timeout_at(deadline, run_command(&session, command, t.max_output, r))
                .await;
        r.lap(SshStage::Command, &mut mark);
        disconnect(session);
        match result {
            Err(_) => down(DownReason::Timeout),
            Ok(Err(e)) => down(protocol(&e)),
            Ok(Ok(())) => {
                if r.exit_code != Some(t.expect_exit) {
                    return down(DownReason::ExitCode(r.exit_code));
                }
                if let Some(re) = &t.expect_output {
                    if !re.is_match(r.stdout.as_deref().unwrap_or("")) {
                        return down(DownReason::OutputMismatch);
                    }
                }
                ProbeOutcome::Up {
                    rtt: started.elapsed(),
                }
            }
        }
    }
}

async fn run_command(
    session: &Handle<ProbeHandler>,
    command: &str,
    max: usize,
    r: &mut SshReport,
) -> Result<(), russh::Error> {
    let mut channel = session.channel_open_session().await?;
    channel.exec(true, command.as_bytes()).await?;
    let (mut out, mut err) = (Capture::default(), Capture::default());
    while let Some(msg) = channel.wait().await {
        match msg {
            ChannelMsg::Data { data } => out.push(&data, max),
            ChannelMsg::ExtendedData { data, ext: 1 } => err.push(&data, max),
            ChannelMsg::ExitStatus { exit_status } => r.exit_code = Some(exit_status),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                r.exit_signal = Some(format!("{signal_name:?}"))
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    r.stdout = Some(output_text(&out.kept));
    r.stdout_truncated = out.dropped > 0;
    r.stderr = Some(output_text(&err.kept));
    r.stderr_truncated = err.dropped > 0;
    Ok(())
}

/// Ends the session without waiting for the server.
fn disconnect(session: Handle<ProbeHandler>) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            session.disconnect(russh::Disconnect::ByApplication, "", "en"),
        )
        .await;
    });
}

fn protocol(e: &russh::Error) -> DownReason {
    match e {
        russh::Error::IO(io) => DownReason::from_io(io),
        other => DownReason::Protocol(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_utf8_or_escaped() {
        assert_eq!(output_text(b"hello\n"), "hello\n");
        assert_eq!(output_text(b"a\xffb\xc3"), "a\\xffb\\xc3");
        assert_eq!(output_text("é".as_bytes()), "é");
    }

    #[test]
    fn capture_keeps_the_first_bytes() {
        let mut c = Capture::default();
        c.push(b"hello ", 8);
        c.push(b"world", 8);
        assert_eq!(c.kept, b"hello wo");
        assert_eq!(c.dropped, 3);
    }

    #[test]
    fn loose_key_permissions_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id");
        std::fs::write(&path, "not a key").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = SshIdentity::load(&path, None).unwrap_err().to_string();
        assert!(
            e.contains("permissions 0644 are too open") && e.contains("chmod 600"),
            "{e}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = SshIdentity::load(&path, None).unwrap_err().to_string();
        assert!(e.contains("cannot load the private key"), "{e}");
        let e = SshIdentity::load(&dir.path().join("missing"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing"), "{e}");
    }
}
