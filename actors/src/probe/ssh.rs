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
pub mod sessions;
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
pub use sessions::{SessionKey, Sessions, SshCounters};
pub use settings::{
    load_known_hosts, HostKeyPolicy, SessionMode, SshIdentity, SshLimits, SshSetupError, SshTarget,
    DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_NEW_LOGINS_PER_S, DEFAULT_MAX_OUTPUT, DEFAULT_MAX_SESSIONS,
    DEFAULT_MAX_SESSION_AGE,
};

/// How often a held connection is sent a keepalive.
const KEEPALIVE: Duration = Duration::from_secs(30);
/// How long a persistent target's login may take, in the background, after the probe that
/// started it gave up.
const LOGIN_LIMIT: Duration = Duration::from_secs(30);
/// How often connections left idle past their target's next probe are looked for.
const REAP_EVERY: Duration = Duration::from_secs(10);

/// The node's SSH client.
#[derive(Debug)]
pub struct SshEngine {
    config: Arc<client::Config>,
    slots: Arc<Semaphore>,
    sessions: Arc<Sessions<ProbeHandler>>,
}

/// What the host-key check saw (the handler records it; the session may then fail).
#[derive(Debug, Default, Clone)]
struct HostKeySeen {
    fingerprint: Option<String>,
    rejected: Option<(DownReason, Vec<String>)>,
}

/// The client side of a probe's connection: it checks the host key.
#[derive(Debug)]
pub struct ProbeHandler {
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

/// How a persistent target's connection is held.
#[derive(Clone, Debug)]
pub struct Hold {
    /// The target's name and port.
    pub key: SessionKey,
    /// Until its next probe is due (and a little more): then the reaper closes it.
    pub idle_for: Duration,
    /// How long a login may go on after the probe that started it gave up (its interval).
    pub login_for: Duration,
}

/// One probe's target and deadline.
#[derive(Clone, Copy)]
struct Call<'a> {
    /// As named in known_hosts.
    host: &'a str,
    to: SocketAddr,
    /// The address probes are sent from (`source`), if set.
    source: Option<IpAddr>,
    t: &'a Arc<SshTarget>,
    /// The target's timeout.
    t_timeout: Duration,
    deadline: Instant,
}

/// How a probe ended short of a verdict on the command.
enum Failed {
    /// The connection failed (a held one may be replaced within the timeout).
    Connection(russh::Error),
    /// The timeout passed.
    Timeout,
}

impl SshEngine {
    /// A client within `limits`, counting logins and held connections into `counters`.
    pub fn new(limits: SshLimits, counters: Arc<SshCounters>) -> Self {
        let config = client::Config {
            nodelay: true,
            inactivity_timeout: None,
            // A held connection that stops answering is closed between probes, not found dead
            // by the next one: a keepalive every 30 s, three unanswered end it.
            keepalive_interval: Some(KEEPALIVE),
            keepalive_max: 3,
            ..Default::default()
        };
        let sessions = Arc::new(Sessions::new(limits, counters));
        if limits.max_sessions > 0 {
            // Closes connections whose probe actor is gone; ends with the engine.
            let weak = Arc::downgrade(&sessions);
            tokio::spawn(async move {
                let mut every = tokio::time::interval(REAP_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    let Some(sessions) = weak.upgrade() else {
                        return;
                    };
                    let n = sessions.reap(Instant::now());
                    if n > 0 {
                        tracing::debug!(closed = n, "idle SSH connections closed");
                    }
                }
            });
        }
        SshEngine {
            config: Arc::new(config),
            slots: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            sessions,
        }
    }

    /// The held connections (to close them all at shutdown, and reap idle ones).
    pub fn sessions(&self) -> Arc<Sessions<ProbeHandler>> {
        self.sessions.clone()
    }

    /// Probes `host` (as named in known_hosts) at `addr:port` within `timeout` (counted from
    /// when a session slot is free). With `hold` (a persistent target on a node: its key and
    /// how long until its next probe), the probe runs on the target's held connection, logging
    /// in when there is none, it is older than `max_session_age`, or it failed.
    pub async fn check(
        &self,
        host: &str,
        to: SocketAddr,
        source: Option<IpAddr>,
        t: &Arc<SshTarget>,
        timeout: Duration,
        hold: Option<Hold>,
    ) -> (ProbeOutcome, SshReport) {
        // A fresh login takes a session slot for the whole probe; a persistent target's probe
        // takes one for its check, and its logins one of their own (`persistent`).
        let _slot = match hold {
            None => Some(self.slots.acquire().await),
            Some(_) => None,
        };
        let deadline = Instant::now() + timeout;
        let mut report = SshReport::default();
        let call = Call {
            host,
            to,
            source,
            t,
            t_timeout: timeout,
            deadline,
        };
        let outcome = match hold {
            Some(hold) => self.persistent(&call, hold, &mut report).await,
            None => self.fresh(&call, &mut report).await,
        };
        if outcome.is_up() {
            report.stage = None;
        }
        (outcome, report)
    }

    /// A login for this probe only.
    async fn fresh(&self, c: &Call<'_>, r: &mut SshReport) -> ProbeOutcome {
        let (t, deadline) = (c.t, c.deadline);
        let started = Instant::now();
        let session = match login(&self.config, &self.sessions, c, r, None).await {
            Ok(s) => s,
            Err(o) => return o,
        };
        let outcome = match &t.command {
            // Without a command, the login is the check.
            None => ProbeOutcome::Up {
                rtt: started.elapsed(),
            },
            Some(_) => match exec(&session, t, deadline, r).await {
                Ok(()) => verdict(t, r, started),
                Err(Failed::Timeout) => down(DownReason::Timeout),
                Err(Failed::Connection(e)) => down(protocol(&e)),
            },
        };
        sessions::disconnect(session);
        outcome
    }

    /// The connection of a persistent target that has none: one login per target at a time,
    /// in a task of its own that holds a session slot. A probe waits for it until its own
    /// deadline; a login that outlasts the probe (a storm of logins after a start or a ring
    /// change, a saturated sshd) goes on, up to [`LOGIN_LIMIT`], and its connection is held
    /// for the next probe, instead of being thrown away with the server's work and started
    /// over. Returns the connection with the login's report (its stages) in `r`.
    async fn login_shared(
        &self,
        c: &Call<'_>,
        hold: &Hold,
        r: &mut SshReport,
    ) -> Result<Handle<ProbeHandler>, ProbeOutcome> {
        let (pending, start) = self.sessions.begin(&hold.key);
        if start {
            let (config, sessions, slots) = (
                self.config.clone(),
                self.sessions.clone(),
                self.slots.clone(),
            );
            let (host, to, source, t) = (c.host.to_string(), c.to, c.source, c.t.clone());
            let (hold, p, reconnected) = (hold.clone(), pending.clone(), r.reconnected);
            let limit = LOGIN_LIMIT.max(c.t_timeout);
            tokio::spawn(async move {
                // The semaphore is never closed, so acquiring only waits.
                let _slot = slots.acquire_owned().await;
                let call = Call {
                    host: &host,
                    to,
                    source,
                    t: &t,
                    t_timeout: limit,
                    deadline: Instant::now() + limit,
                };
                let mut report = SshReport {
                    reconnected,
                    ..SshReport::default()
                };
                let result = login(&config, &sessions, &call, &mut report, Some(&p.progress)).await;
                sessions.finish(&hold.key, &p, result, report, hold.idle_for);
            });
        }
        let stage_now = |p: &sessions::Pending<ProbeHandler>| {
            (*p.progress.lock().unwrap_or_else(|e| e.into_inner())).or(Some(SshStage::LoginSlot))
        };
        if !pending.wait(c.deadline).await {
            r.stage = stage_now(&pending);
            return Err(down(DownReason::Timeout));
        }
        let Some((report, failed)) = pending.ended() else {
            return Err(down(DownReason::Io(
                "the login ended without a report".into(),
            )));
        };
        let reconnected = r.reconnected || report.reconnected;
        *r = report;
        r.reconnected = reconnected;
        if let Some(outcome) = failed {
            return Err(outcome);
        }
        match self.sessions.take(&hold.key).map(|held| held.handle) {
            // Taken out of the table: it is put back (counted open) after the probe.
            Some(handle) => {
                self.sessions
                    .counters
                    .open
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                Ok(handle)
            }
            None => pending
                .take_spare()
                .ok_or_else(|| down(DownReason::Io("the new connection was closed".into()))),
        }
    }

    /// A probe on the target's held connection.
    async fn persistent(&self, c: &Call<'_>, hold: Hold, r: &mut SshReport) -> ProbeOutcome {
        let (key, idle_for) = (hold.key.clone(), hold.idle_for);
        // Checks in flight are bounded by max_concurrent_ssh, as fresh logins are: the
        // timeout counts from when a slot is free.
        let slot = self.slots.acquire().await;
        let started = Instant::now();
        let c = &Call {
            deadline: started + c.t_timeout,
            ..*c
        };
        let (t, deadline) = (c.t, c.deadline);
        if let Some(held) = self.sessions.take(&key) {
            if held.born.elapsed() >= t.max_session_age {
                // Old enough: log in again, so the login path is still checked.
                self.sessions.close(held);
            } else if held.handle.is_closed() {
                // The keepalives found it dead since the last probe.
                self.sessions.close(held);
                r.reconnected = true;
            } else {
                match exec(&held.handle, t, deadline, r).await {
                    Ok(()) => {
                        self.sessions.put(key, held, idle_for);
                        return verdict(t, r, started);
                    }
                    // The channel opened, the command was slow: the connection answers, and
                    // the next probe uses it again.
                    Err(Failed::Timeout) if r.stage == Some(SshStage::Command) => {
                        self.sessions.put(key, held, idle_for);
                        return down(DownReason::Timeout);
                    }
                    // No channel in time (a cut cable, a frozen server): this probe is out of
                    // time, and the next logs in again.
                    Err(Failed::Timeout) => {
                        self.sessions.close(held);
                        return down(DownReason::Timeout);
                    }
                    // Broken: log in again within what is left of the timeout.
                    Err(Failed::Connection(_)) => {
                        self.sessions.close(held);
                        *r = SshReport {
                            reconnected: true,
                            ..SshReport::default()
                        };
                    }
                }
            }
        }
        // The login takes a slot of its own: this probe waits for it without one.
        drop(slot);
        let session = match self.login_shared(c, &hold, r).await {
            Ok(s) => s,
            Err(o) => return o,
        };
        let outcome = match tokio::time::timeout_at(deadline, self.slots.acquire()).await {
            // No slot left in this probe's time: the connection is kept for the next one.
            Err(_) => {
                r.stage = Some(SshStage::Channel);
                down(DownReason::Timeout)
            }
            Ok(_slot) => match exec(&session, t, deadline, r).await {
                Ok(()) => verdict(t, r, started),
                // As on a held connection: a slow command keeps it.
                Err(Failed::Timeout) if r.stage == Some(SshStage::Command) => {
                    down(DownReason::Timeout)
                }
                Err(Failed::Timeout) => {
                    sessions::disconnect(session);
                    return down(DownReason::Timeout);
                }
                Err(Failed::Connection(e)) => {
                    sessions::disconnect(session);
                    return down(protocol(&e));
                }
            },
        };
        if self.sessions.admit() {
            self.sessions.hold(hold.key, session, idle_for);
        } else {
            // max_sessions held already: this one was a fresh login.
            sessions::disconnect(session);
        }
        outcome
    }
}

/// Connects, checks the host key and authenticates, each stage bounded by `deadline`, after
/// waiting for a turn in the node's login budget. Each stage entered is also written to
/// `progress`, for a probe that stopped waiting for a login in the background.
async fn login(
    config: &Arc<client::Config>,
    sessions: &Sessions<ProbeHandler>,
    c: &Call<'_>,
    r: &mut SshReport,
    progress: Option<&Progress>,
) -> Result<Handle<ProbeHandler>, ProbeOutcome> {
    let Call {
        host,
        to,
        source,
        t,
        deadline,
        ..
    } = *c;
    let port = to.port();
    let wait = sessions.login_turn();
    if !wait.is_zero() {
        if Instant::now() + wait > deadline {
            enter(r, progress, SshStage::LoginSlot);
            tokio::time::sleep_until(deadline).await;
            return Err(down(DownReason::Timeout));
        }
        tokio::time::sleep(wait).await;
    }
    let result = async {
        // connect
        enter(r, progress, SshStage::Connect);
        let mut mark = Instant::now();
        let stream = match tokio::time::timeout_at(deadline, super::tcp::open(to, source)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(down(DownReason::from_io(&e))),
            Err(_) => return Err(down(DownReason::Timeout)),
        };
        let _ = stream.set_nodelay(true);
        r.lap(SshStage::Connect, &mut mark);

        // handshake and host key
        enter(r, progress, SshStage::Handshake);
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
            client::connect_stream(config.clone(), stream, handler),
        )
        .await;
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        r.host_key = seen.fingerprint.clone();
        let mut session: Handle<ProbeHandler> = match session {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                if let Some((reason, known)) = seen.rejected {
                    enter(r, progress, SshStage::Hostkey);
                    r.known_host_keys = known;
                    return Err(down(reason));
                }
                return Err(down(protocol(&e)));
            }
            Err(_) => return Err(down(DownReason::Timeout)),
        };
        r.lap(SshStage::Handshake, &mut mark);

        // auth
        enter(r, progress, SshStage::Auth);
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
            sessions::disconnect(session);
            return Err(o);
        }
        r.lap(SshStage::Auth, &mut mark);
        Ok(session)
    }
    .await;
    sessions.logged_in(result.is_ok());
    result
}

/// Where a login in the background has got to.
type Progress = Mutex<Option<SshStage>>;

fn enter(r: &mut SshReport, progress: Option<&Progress>, stage: SshStage) {
    r.stage = Some(stage);
    if let Some(p) = progress {
        *p.lock().unwrap_or_else(|e| e.into_inner()) = Some(stage);
    }
}

/// Runs the check on a logged-in connection: a channel, and the command if there is one
/// (without one, the channel opening is the check), within `deadline`.
async fn exec(
    session: &Handle<ProbeHandler>,
    t: &SshTarget,
    deadline: Instant,
    r: &mut SshReport,
) -> Result<(), Failed> {
    let mut mark = Instant::now();
    r.stage = Some(SshStage::Channel);
    let mut channel = match tokio::time::timeout_at(deadline, session.channel_open_session()).await
    {
        Ok(Ok(channel)) => channel,
        Ok(Err(e)) => return Err(Failed::Connection(e)),
        Err(_) => return Err(Failed::Timeout),
    };
    r.lap(SshStage::Channel, &mut mark);
    let Some(command) = &t.command else {
        close_channel(channel, false);
        return Ok(());
    };
    r.stage = Some(SshStage::Command);
    let run = run_command(&mut channel, command, t.max_output, r);
    match tokio::time::timeout_at(deadline, run).await {
        Ok(Ok(())) => {
            r.lap(SshStage::Command, &mut mark);
            Ok(())
        }
        Ok(Err(e)) => Err(Failed::Connection(e)),
        Err(_) => {
            // The command runs on: it is killed and its channel closed, so that the server is
            // not left with it (a held connection would otherwise fill sshd's MaxSessions).
            close_channel(channel, true);
            Err(Failed::Timeout)
        }
    }
}

/// Closes a channel (SSH_MSG_CHANNEL_CLOSE) in the background, first asking the server to kill
/// its command if `kill` (sshd keeps a session until its command exits). A dropped channel is
/// not closed.
fn close_channel(channel: russh::Channel<client::Msg>, kill: bool) {
    tokio::spawn(async move {
        let bye = async {
            if kill {
                let _ = channel.signal(russh::Sig::KILL).await;
            }
            let _ = channel.close().await;
        };
        let _ = tokio::time::timeout(sessions::DISCONNECT_WAIT, bye).await;
    });
}

/// The verdict on a command that ran: its exit status and output against what is expected.
fn verdict(t: &SshTarget, r: &SshReport, started: Instant) -> ProbeOutcome {
    if t.command.is_some() {
        if r.exit_code != Some(t.expect_exit) {
            return down(DownReason::ExitCode(r.exit_code));
        }
        if let Some(re) = &t.expect_output {
            if !re.is_match(r.stdout.as_deref().unwrap_or("")) {
                return down(DownReason::OutputMismatch);
            }
        }
    }
    ProbeOutcome::Up {
        rtt: started.elapsed(),
    }
}

async fn run_command(
    channel: &mut russh::Channel<client::Msg>,
    command: &str,
    max: usize,
    r: &mut SshReport,
) -> Result<(), russh::Error> {
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
