//! ICMP echo through surge-ping: one shared socket per address family for the whole node.
//!
//! - Socket type: a raw socket when the process may open one (root or `CAP_NET_RAW`), else a
//!   datagram ("ping") socket when `net.ipv4.ping_group_range` allows it. Neither: the node
//!   refuses to start and says what to do.
//! - Matching: surge-ping matches replies on (address, identifier, sequence). The identifier is
//!   this process's (pid-derived, so two ringpoll processes on one host do not take each other's
//!   replies on raw sockets) plus the round ([`EchoIds::round_of`]): it changes every interval,
//!   so a firewall that drops one identifier it has seen (blackbox_exporter #591) blinds one
//!   round, not the node. (Datagram ping sockets: the kernel sets the identifier, one per
//!   socket.) Each target keeps its own sequence counter, so requests to different targets, or
//!   successive requests to one, never collide.
//! - Source addresses: a target with a `source` is probed through a socket bound to that
//!   address (opened at its first use, then shared by every target with that source), so its
//!   echoes leave from it and its replies come back to it.
//! - Receive buffer: raised to 8 MiB (`SO_RCVBUFFORCE` when permitted), because a raw socket on
//!   loopback also receives a copy of every request it sends, and a small buffer drops replies,
//!   which would look like timeouts. The node-wide `max_in_flight` cap bounds what is in flight.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use surge_ping::{Client, Config, PendingEcho, PingIdentifier, PingSequence, SurgeError, ICMP};
use tokio::time::Instant;

use super::echo::{EchoIds, EchoStats, Echoes, FirstAnswer, Verdict};
use super::error::ProbeSetupError;
use super::pace::{PaceLimits, Pacer};
use crate::model::{DownReason, ProbeOutcome};

const RECV_BUFFER: usize = 8 << 20;
const PAYLOAD: [u8; 16] = *b"ringpoll-echo-16";

/// The node's ICMP sockets.
#[derive(Clone)]
pub struct IcmpEngine {
    v4: Client,
    v6: Option<Client>,
    /// Sockets bound to a source address, opened at their first use.
    bound: Arc<Mutex<HashMap<IpAddr, Client>>>,
    ident: PingIdentifier,
    raw: bool,
    /// Per-network and node-wide pacing (none when nothing is limited).
    pacer: Option<Arc<Mutex<Pacer>>>,
}

impl std::fmt::Debug for IcmpEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IcmpEngine")
            .field("raw", &self.raw)
            .field("v6", &self.v6.is_some())
            .finish()
    }
}

impl IcmpEngine {
    /// Opens the sockets, pacing echoes within `limits`. Must run inside a Tokio runtime (the
    /// receive loops are tasks). IPv6 is optional: without it, IPv6 targets report
    /// `unreachable`.
    pub fn open(limits: PaceLimits) -> Result<Self, ProbeSetupError> {
        let v4 =
            open_client(ICMP::V4, None).map_err(|error| ProbeSetupError::IcmpSocket { error })?;
        let raw = v4.get_socket().get_type() == socket2::Type::RAW;
        let v6 = match open_client(ICMP::V6, None) {
            Ok(c) => Some(c),
            Err(err) => {
                tracing::info!(error = %err, "no ICMPv6 socket; IPv6 ICMP targets will be reported unreachable");
                None
            }
        };
        let ident = PingIdentifier((std::process::id() & 0xffff) as u16);
        tracing::info!(
            socket = if raw { "raw" } else { "datagram" },
            "ICMP sockets open"
        );
        let pacer = (limits != PaceLimits::NONE).then(|| Arc::new(Mutex::new(Pacer::new(limits))));
        Ok(IcmpEngine {
            v4,
            v6,
            bound: Arc::default(),
            ident,
            raw,
            pacer,
        })
    }

    /// True when the sockets are raw (false: datagram ping sockets).
    pub fn is_raw(&self) -> bool {
        self.raw
    }

    /// Sends `echoes.count` echo requests to `addr`, `packet_interval` apart, with the
    /// identifier of round `ids.round` and the sequence numbers from `ids.seq` on, and waits up
    /// to `timeout` for each reply (the echoes are in flight together). An echo waits for its
    /// turn in its network's and the node's pace, so a probe can take longer than its span.
    /// Returns the verdict and the statistics.
    pub async fn echoes(
        &self,
        addr: IpAddr,
        source: Option<IpAddr>,
        ids: EchoIds,
        echoes: &Echoes,
        timeout: Duration,
        first: Option<FirstAnswer>,
    ) -> (ProbeOutcome, EchoStats) {
        let client = match self.client(addr, source) {
            Ok(client) => client,
            Err(reason) => return (ProbeOutcome::Down { reason }, EchoStats::of(0, &[])),
        };
        let ident = PingIdentifier(self.ident.0.wrapping_add(ids.round));
        let mut pinger = client.pinger(addr, ident).await;
        let count = echoes.count;
        // One timer for the whole probe: it is set to the next send or the nearest deadline
        // of an echo in flight, whichever comes first. The replies themselves are polled as
        // they come (their round trips were timed by the receive task).
        let start = Instant::now();
        let timer = tokio::time::sleep_until(start);
        tokio::pin!(timer);
        let mut first = first;
        let mut rtts = Vec::with_capacity(usize::from(count));
        let mut lost = None;
        let mut in_flight: Vec<(u16, PendingEcho)> = Vec::with_capacity(usize::from(count));
        let (mut next, mut send_at, mut paced) = (0u16, start, false);
        loop {
            // Send what is due. An echo takes its turn in its network's and the node's pace
            // when it is ready; a turn later than now moves its send.
            while next < count && Instant::now() >= send_at {
                if !paced {
                    if let Some(pacer) = &self.pacer {
                        let wait = pacer
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .reserve(addr, crate::clock::now());
                        if !wait.is_zero() {
                            (send_at, paced) = (Instant::now() + wait, true);
                            continue;
                        }
                    }
                }
                paced = false;
                let seq = PingSequence(ids.seq.wrapping_add(next));
                match pinger.send(seq, &PAYLOAD).await {
                    Ok(echo) => in_flight.push((next, echo)),
                    Err(err) => {
                        lost = Some(reason_of(err));
                        answered(next, &mut first);
                    }
                }
                next += 1;
                send_at = start + echoes.packet_interval * u32::from(next);
            }
            let sending = next < count;
            let done = std::future::poll_fn(|cx| {
                in_flight.retain_mut(|(i, echo)| match echo.poll_reply(cx) {
                    Poll::Pending => true,
                    Poll::Ready(reply) => {
                        match reply {
                            // An ICMP error quoting the echo (unreachable, time exceeded) is
                            // matched like a reply: it is no answer from the target.
                            Ok((packet, _)) if !is_echo_reply(&packet) => {
                                lost = Some(DownReason::Unreachable)
                            }
                            // A reply later than the timeout is a lost echo, as if it had not come.
                            Ok((_, rtt)) if rtt <= timeout => rtts.push(rtt),
                            Ok(_) => lost = Some(DownReason::Timeout),
                            Err(err) => lost = Some(reason_of(err)),
                        }
                        answered(*i, &mut first);
                        false
                    }
                });
                let now = Instant::now();
                in_flight.retain(|(i, echo)| {
                    let alive = Instant::from_std(echo.sent()) + timeout > now;
                    if !alive {
                        lost = Some(DownReason::Timeout);
                        answered(*i, &mut first);
                    }
                    alive
                });
                let deadline = in_flight
                    .iter()
                    .map(|(_, e)| Instant::from_std(e.sent()) + timeout)
                    .min();
                let wake = match (sending, deadline) {
                    (false, None) => return Poll::Ready(true),
                    (true, Some(d)) => d.min(send_at),
                    (true, None) => send_at,
                    (false, Some(d)) => d,
                };
                if timer.deadline() != wake {
                    timer.as_mut().reset(wake);
                }
                timer.as_mut().poll(cx).map(|()| false)
            })
            .await;
            if done {
                break;
            }
        }
        let stats = EchoStats::of(echoes.count, &rtts);
        let down = |reason| ProbeOutcome::Down { reason };
        let outcome = match echoes.verdict(&stats) {
            Verdict::Up { rtt } => ProbeOutcome::Up { rtt },
            Verdict::AllLost => down(lost.unwrap_or(DownReason::Timeout)),
            Verdict::Loss => down(DownReason::Loss),
            Verdict::Slow => down(DownReason::Slow),
        };
        (outcome, stats)
    }
}

impl IcmpEngine {
    /// The socket for echoes to `addr` from `source`.
    fn client(&self, addr: IpAddr, source: Option<IpAddr>) -> Result<Client, DownReason> {
        let Some(source) = source else {
            return match (addr, &self.v6) {
                (IpAddr::V4(_), _) => Ok(self.v4.clone()),
                (IpAddr::V6(_), Some(v6)) => Ok(v6.clone()),
                (IpAddr::V6(_), None) => Err(DownReason::Unreachable),
            };
        };
        if source.is_ipv4() != addr.is_ipv4() {
            return Err(DownReason::Io(format!(
                "source {source} and target {addr} are of different address families"
            )));
        }
        let mut bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = bound.get(&source) {
            return Ok(client.clone());
        }
        let kind = if source.is_ipv4() { ICMP::V4 } else { ICMP::V6 };
        let client = open_client(kind, Some(source))
            .map_err(|e| DownReason::Io(format!("ICMP socket from {source}: {e}")))?;
        tracing::info!(source = %source, "ICMP socket bound to a source address");
        bound.insert(source, client.clone());
        Ok(client)
    }
}

/// Calls the first echo's callback once it has its answer (`i` is the echo's index).
fn answered(i: u16, first: &mut Option<FirstAnswer>) {
    if i == 0 {
        if let Some(f) = first.take() {
            f();
        }
    }
}

/// True for an echo reply; false for an ICMP error that quotes the request.
fn is_echo_reply(packet: &surge_ping::IcmpPacket) -> bool {
    match packet {
        surge_ping::IcmpPacket::V4(p) => {
            p.get_icmp_type() == pnet_packet::icmp::IcmpTypes::EchoReply
        }
        surge_ping::IcmpPacket::V6(p) => {
            p.get_icmpv6_type() == pnet_packet::icmpv6::Icmpv6Types::EchoReply
        }
    }
}

fn reason_of(err: SurgeError) -> DownReason {
    match err {
        SurgeError::Timeout { .. } => DownReason::Timeout,
        SurgeError::IOError(e) => DownReason::from_io(&e),
        other => DownReason::Io(other.to_string()),
    }
}

fn open_client(kind: ICMP, source: Option<IpAddr>) -> std::io::Result<Client> {
    let mut config = Config::builder()
        .kind(kind)
        .sock_type_hint(socket2::Type::RAW);
    if let Some(source) = source {
        config = config.bind(SocketAddr::new(source, 0));
    }
    let config = config.build();
    let client = Client::new(&config).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            std::io::Error::new(
                e.kind(),
                "permission denied opening an ICMP socket: run ringpoll as root, grant it \
                 CAP_NET_RAW (setcap cap_net_raw+ep /path/to/ringpoll), or allow datagram ICMP \
                 sockets for its group (sysctl -w net.ipv4.ping_group_range=\"0 2147483647\")",
            )
        } else {
            e
        }
    })?;
    let fd = client.get_socket().get_native_sock();
    raise_recv_buffer(fd);
    if kind == ICMP::V4 && client.get_socket().get_type() == socket2::Type::RAW {
        filter_v4(fd);
    }
    Ok(client)
}

/// ICMP types a raw IPv4 socket keeps: echo reply, and the errors that quote our request
/// (destination unreachable, time exceeded, parameter problem).
const KEPT_V4_TYPES: [u32; 4] = [0, 3, 11, 12];

/// Best effort: a raw ICMP socket receives every ICMP packet the host gets — on loopback that
/// includes a copy of each echo request we send, which doubles the packets read (each one a
/// wake-up, a `recvfrom` and surge-ping's `getsockname`). Linux's `ICMP_FILTER` drops the other
/// types in the kernel, before they are queued.
pub(crate) fn filter_v4(fd: RawFd) {
    const ICMP_FILTER: libc::c_int = 1; // linux/icmp.h, option level SOL_RAW
    let blocked: u32 = !KEPT_V4_TYPES.iter().fold(0u32, |m, t| m | (1 << t));
    // SAFETY: as in `raise_recv_buffer`; the value is the kernel's `struct icmp_filter`, one u32.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_RAW,
            ICMP_FILTER,
            (&blocked as *const u32).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "no ICMP_FILTER on the raw socket");
    }
}

/// Best effort: `SO_RCVBUFFORCE` (needs CAP_NET_ADMIN), else `SO_RCVBUF` (capped by
/// `net.core.rmem_max`).
pub(crate) fn raise_recv_buffer(fd: RawFd) {
    let size = RECV_BUFFER as libc::c_int;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: `fd` is the open socket owned by the surge-ping client, alive for this call;
        // the option value is a c_int of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
    tracing::warn!("could not raise the ICMP receive buffer; replies may be dropped under load");
}
