//! A [`SweepPlan`]'s I/O: one raw ICMP socket per address family, echoes sent and replies
//! read in batches (`sendmmsg`/`recvmmsg`), packets built into and parsed from buffers made
//! once.
//!
//! - Raw sockets only: with a datagram ("ping") socket the kernel picks the identifier, one
//!   per socket, so echoes could not be numbered as the plan numbers them. [`RawSweep::open`]
//!   returns `None` without the permission for raw sockets, and the caller probes one target
//!   at a time instead.
//! - An echo carries `ringpoll`, then 8 bytes drawn for this sweep: an echo reply without
//!   them is another program's (raw sockets see every ICMP packet the host gets). An ICMP
//!   error (unreachable, time exceeded, parameter problem) counts when the request it quotes
//!   carries this sweep's identifier, an echo number waiting, and the target's address.
//! - The identifier is this process's (pid-derived, as a node's) plus echo number / 65,536.
//! - A round trip is from just before the `sendmmsg` that sent the echo to just after the
//!   `recvmmsg` that read its reply.

use std::future::Future;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::{SweepPlan, Swept};
use crate::model::DownReason;
use crate::probe::icmp::{filter_v4, raise_recv_buffer};

/// Echoes one `sendmmsg` sends at most (measured: see BENCHMARKS.md).
pub const SEND_BATCH: usize = 64;
/// Replies one `recvmmsg` reads at most.
const RECV_BATCH: usize = 256;
/// Bytes kept of a received packet: an IPv4 header with options, an ICMP error header, the
/// quoted IPv4 header with options and the quoted echo with its payload fit.
const RECV_BYTES: usize = 60 + 8 + 60 + 8 + PAYLOAD_LEN;
/// When a send that found the socket's buffer full is tried again.
const RETRY_AFTER: Duration = Duration::from_micros(200);
/// Batches read or sent in one wake-up at most, so other work on the thread gets its turn.
const ROUNDS_PER_WAKE: usize = 64;

const MAGIC: &[u8; 8] = b"ringpoll";
const PAYLOAD_LEN: usize = 16;
const PACKET_LEN: usize = 8 + PAYLOAD_LEN;

const V4_ECHO_REQUEST: u8 = 8;
const V4_ECHO_REPLY: u8 = 0;
const V4_ERRORS: [u8; 3] = [3, 11, 12];
const V6_ECHO_REQUEST: u8 = 128;
const V6_ECHO_REPLY: u8 = 129;
const V6_ERRORS: [u8; 3] = [1, 3, 4];

/// A sweep running on raw sockets.
pub struct RawSweep {
    plan: SweepPlan,
    v4: Option<AsyncFd<Socket>>,
    v6: Option<AsyncFd<Socket>>,
    /// The identifier of echoes 0 … 65,535; later ones add their number / 65,536.
    ident: u16,
    /// How many identifiers the sweep uses.
    idents: u16,
    payload: [u8; PAYLOAD_LEN],
    due: Vec<u32>,
    /// Echoes of one batch, per family: number, packet, destination.
    batch: Vec<(u32, [u8; PACKET_LEN], SockaddrStorage)>,
    send_headers: MultiHeaders<SockaddrStorage>,
    recv_headers: MultiHeaders<SockaddrStorage>,
    bufs: Vec<[u8; RECV_BYTES]>,
    got: Vec<(usize, Option<IpAddr>)>,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl std::fmt::Debug for RawSweep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSweep")
            .field("echoes", &self.plan.echoes())
            .field("v4", &self.v4.is_some())
            .field("v6", &self.v6.is_some())
            .finish()
    }
}

/// Opens a raw ICMP socket of `domain`: `Ok(None)` when raw sockets are not permitted.
fn open_raw(v6: bool) -> io::Result<Option<AsyncFd<Socket>>> {
    let (domain, proto) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let socket = match Socket::new(domain, Type::RAW, Some(proto)) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(None),
        Err(e) => return Err(e),
    };
    socket.set_nonblocking(true)?;
    raise_recv_buffer(socket.as_raw_fd());
    if v6 {
        filter_v6(socket.as_raw_fd());
    } else {
        filter_v4(socket.as_raw_fd());
    }
    // SAFETY: the socket owns its descriptor, and the AsyncFd owns the socket until dropped;
    // nothing else closes or replaces it.
    let fd = unsafe { AsyncFd::register_with_interest(socket, tokio::io::Interest::READABLE) };
    Ok(Some(fd.map_err(|e| e.into_parts().1)?))
}

/// Best effort, as [`filter_v4`]: the kernel keeps only echo replies and the errors that
/// quote a request (`ICMP6_FILTER`; a set bit blocks its type).
fn filter_v6(fd: std::os::fd::RawFd) {
    const ICMP6_FILTER: libc::c_int = 1; // netinet/icmp6.h, level IPPROTO_ICMPV6
    let mut blocked = [u32::MAX; 8];
    for t in V6_ERRORS.iter().chain([&V6_ECHO_REPLY]) {
        blocked[usize::from(*t >> 5)] &= !(1u32 << (t & 31));
    }
    // SAFETY: `fd` is an open socket; the value is the kernel's `struct icmp6_filter`, eight
    // u32s, of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_ICMPV6,
            ICMP6_FILTER,
            blocked.as_ptr().cast(),
            std::mem::size_of_val(&blocked) as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "no ICMP6_FILTER on the raw socket");
    }
}

/// Eight bytes no other sweep is likely to use (std's per-process random hash keys).
fn token() -> [u8; 8] {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish().to_be_bytes()
}

/// What a received packet says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub ident: u16,
    pub seq: u16,
    /// The target: the sender of an echo reply, the quoted destination of an error.
    pub target: IpAddr,
    pub echo_reply: bool,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// An ICMPv4 packet as a raw socket reads it (with its IP header), sent by `from`.
pub(crate) fn parse_v4(packet: &[u8], payload: &[u8; PAYLOAD_LEN]) -> Option<Answer> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    let icmp = packet.get(ihl..)?;
    let kind = *icmp.first()?;
    if kind == V4_ECHO_REPLY {
        if icmp.get(8..8 + PAYLOAD_LEN)? != payload {
            return None;
        }
        let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
        return Some(Answer {
            ident: u16_at(icmp, 4)?,
            seq: u16_at(icmp, 6)?,
            target: IpAddr::from(src),
            echo_reply: true,
        });
    }
    if !V4_ERRORS.contains(&kind) {
        return None;
    }
    let quoted = icmp.get(8..)?;
    let qihl = usize::from(quoted.first()? & 0x0f) * 4;
    let dst: [u8; 4] = quoted.get(16..20)?.try_into().ok()?;
    let request = quoted.get(qihl..)?;
    quoted_answer(request, IpAddr::from(dst), V4_ECHO_REQUEST, payload)
}

/// An ICMPv6 packet as a raw socket reads it (no IP header), sent by `from`.
pub(crate) fn parse_v6(packet: &[u8], from: IpAddr, payload: &[u8; PAYLOAD_LEN]) -> Option<Answer> {
    let kind = *packet.first()?;
    if kind == V6_ECHO_REPLY {
        if packet.get(8..8 + PAYLOAD_LEN)? != payload {
            return None;
        }
        return Some(Answer {
            ident: u16_at(packet, 4)?,
            seq: u16_at(packet, 6)?,
            target: from,
            echo_reply: true,
        });
    }
    if !V6_ERRORS.contains(&kind) {
        return None;
    }
    // The quoted IPv6 header is 40 bytes; extension headers are not followed.
    let quoted = packet.get(8..)?;
    let dst: [u8; 16] = quoted.get(24..40)?.try_into().ok()?;
    quoted_answer(
        quoted.get(40..)?,
        IpAddr::from(dst),
        V6_ECHO_REQUEST,
        payload,
    )
}

/// The echo request an ICMP error quotes: ours when it is an echo request and, where the
/// quote reaches the payload, carries ours.
fn quoted_answer(
    request: &[u8],
    dst: IpAddr,
    request_type: u8,
    payload: &[u8; PAYLOAD_LEN],
) -> Option<Answer> {
    if *request.first()? != request_type {
        return None;
    }
    if let Some(p) = request.get(8..8 + PAYLOAD_LEN) {
        if p != payload {
            return None;
        }
    }
    Some(Answer {
        ident: u16_at(request, 4)?,
        seq: u16_at(request, 6)?,
        target: dst,
        echo_reply: false,
    })
}

/// The echo request with `ident` and `seq` carrying `payload`; IPv4's checksum filled in
/// (the kernel fills ICMPv6's).
pub(crate) fn echo_request(
    v6: bool,
    ident: u16,
    seq: u16,
    payload: &[u8; PAYLOAD_LEN],
) -> [u8; PACKET_LEN] {
    let mut p = [0u8; PACKET_LEN];
    p[0] = if v6 { V6_ECHO_REQUEST } else { V4_ECHO_REQUEST };
    p[4..6].copy_from_slice(&ident.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..].copy_from_slice(payload);
    if !v6 {
        let sum = pnet_packet::util::checksum(&p, 1);
        p[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    p
}

impl RawSweep {
    /// Opens the raw sockets `plan` needs; `Ok(None)` when raw sockets are not permitted. An
    /// IPv6 socket that cannot be opened otherwise (no IPv6 here) leaves IPv6 targets
    /// unreachable, as on a node.
    pub fn open(plan: SweepPlan) -> io::Result<Option<Self>> {
        let (mut v4, mut v6) = (false, false);
        for a in &plan.addrs {
            if a.is_ipv4() {
                v4 = true;
            } else {
                v6 = true;
            }
        }
        let v4 = match v4.then(|| open_raw(false)).transpose()? {
            Some(None) => return Ok(None),
            s => s.flatten(),
        };
        let v6 = match v6.then(|| open_raw(true)).transpose() {
            Ok(Some(None)) => return Ok(None),
            Ok(s) => s.flatten(),
            Err(error) => {
                tracing::info!(%error, "no ICMPv6 socket; IPv6 targets will be reported unreachable");
                None
            }
        };
        let mut payload = [0u8; PAYLOAD_LEN];
        payload[..8].copy_from_slice(MAGIC);
        payload[8..].copy_from_slice(&token());
        let idents = (plan.echoes().saturating_sub(1) >> 16) as u16 + 1;
        Ok(Some(RawSweep {
            v4,
            v6,
            ident: (std::process::id() & 0xffff) as u16,
            idents,
            payload,
            due: Vec::new(),
            batch: Vec::with_capacity(SEND_BATCH),
            send_headers: MultiHeaders::preallocate(SEND_BATCH, None),
            recv_headers: MultiHeaders::preallocate(RECV_BATCH, None),
            bufs: vec![[0u8; RECV_BYTES]; RECV_BATCH],
            got: Vec::with_capacity(RECV_BATCH),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            plan,
        }))
    }

    /// True when every target has its result.
    pub fn is_done(&self) -> bool {
        self.plan.is_done()
    }

    /// Waits until some targets have their results ([`take_finished`](Self::take_finished)
    /// hands them over). Cancel-safe: the state changes only inside a poll, never across an
    /// await. Returns at once when the sweep is done.
    pub async fn next(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The targets finished since the last call, into `out`.
    pub fn take_finished(&mut self, out: &mut Vec<Swept>) {
        self.plan.take_finished(Instant::now(), out);
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        for _ in 0..ROUNDS_PER_WAKE {
            self.receive(cx)?;
            self.send(Instant::now());
            if self.plan.has_finished() || self.plan.is_done() {
                return Poll::Ready(Ok(()));
            }
            let Some(at) = self.plan.next_wake() else {
                return Poll::Pending;
            };
            let at = tokio::time::Instant::from_std(at);
            if self.timer.deadline() != at {
                self.timer.as_mut().reset(at);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        // Busy: let the thread's other work run, then carry on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Reads every reply waiting (a bounded number of batches per family).
    fn receive(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        for v6 in [false, true] {
            for _ in 0..ROUNDS_PER_WAKE {
                let fd = match if v6 { &self.v6 } else { &self.v4 } {
                    Some(fd) => fd,
                    None => break,
                };
                let mut guard = match fd.poll_read_ready(cx) {
                    Poll::Ready(guard) => guard?,
                    Poll::Pending => break,
                };
                let (headers, bufs, got) = (&mut self.recv_headers, &mut self.bufs, &mut self.got);
                let read = guard.try_io(|fd| recv_batch(fd.as_raw_fd(), headers, bufs, got));
                let n = match read {
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => continue,
                };
                let at = Instant::now();
                for j in 0..n {
                    let (len, from) = self.got[j];
                    let packet = &self.bufs[j][..len.min(RECV_BYTES)];
                    let answer = if v6 {
                        from.and_then(|from| parse_v6(packet, from, &self.payload))
                    } else {
                        parse_v4(packet, &self.payload)
                    };
                    if let Some(a) = answer {
                        let offset = a.ident.wrapping_sub(self.ident);
                        if offset < self.idents {
                            let k = SweepPlan::echo_of(offset, a.seq);
                            self.plan.reply(k, a.target, at, a.echo_reply);
                        }
                    }
                }
                if n < RECV_BATCH {
                    // Drained; the next read would block.
                    guard.clear_ready();
                }
            }
        }
        Ok(())
    }

    /// Sends the echoes due at `now`, in batches per family.
    fn send(&mut self, now: Instant) {
        self.due.clear();
        self.plan.due(now, &mut self.due);
        let due = std::mem::take(&mut self.due);
        for v6 in [false, true] {
            self.batch.clear();
            for &k in &due {
                let addr = self.plan.addr_of(k);
                if addr.is_ipv6() != v6 {
                    continue;
                }
                if (if v6 { &self.v6 } else { &self.v4 }).is_none() {
                    self.plan.failed(k, now, DownReason::Unreachable);
                    continue;
                }
                let (offset, seq) = SweepPlan::ids(k);
                let packet = echo_request(v6, self.ident.wrapping_add(offset), seq, &self.payload);
                self.batch
                    .push((k, packet, SockaddrStorage::from(SocketAddr::new(addr, 0))));
                if self.batch.len() == SEND_BATCH {
                    self.flush(v6, now);
                }
            }
            self.flush(v6, now);
        }
        self.due = due;
    }

    /// Sends the batch: what went is [`sent`](SweepPlan::sent); a full buffer moves the rest
    /// a moment later; an echo the system refuses is lost with the system's reason.
    fn flush(&mut self, v6: bool, now: Instant) {
        let Some(fd) = (if v6 { &self.v6 } else { &self.v4 }) else {
            return;
        };
        let fd = fd.get_ref().as_raw_fd();
        let mut from = 0;
        while from < self.batch.len() {
            let rest = &self.batch[from..];
            let slices: Vec<[IoSlice<'_>; 1]> =
                rest.iter().map(|(_, p, _)| [IoSlice::new(p)]).collect();
            let addrs: Vec<Option<SockaddrStorage>> =
                rest.iter().map(|(_, _, a)| Some(*a)).collect();
            let result = sendmmsg(
                fd,
                &mut self.send_headers,
                slices.iter(),
                &addrs,
                [],
                MsgFlags::MSG_DONTWAIT,
            )
            .map(|r| r.count());
            match result {
                Ok(0) => {
                    // Nothing went (not expected of a blocking-free send): again shortly.
                    for (k, _, _) in &self.batch[from..] {
                        self.plan.retry(*k, now + RETRY_AFTER);
                    }
                    break;
                }
                Ok(n) => {
                    for (k, _, _) in &self.batch[from..from + n] {
                        self.plan.sent(*k, now);
                    }
                    from += n;
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::ENOBUFS) => {
                    for (k, _, _) in &self.batch[from..] {
                        self.plan.retry(*k, now + RETRY_AFTER);
                    }
                    break;
                }
                Err(errno) => {
                    // The first of the rest failed; the others are tried again.
                    let (k, _, _) = self.batch[from];
                    let reason = DownReason::from_io(&io::Error::from(errno));
                    self.plan.failed(k, now, reason);
                    from += 1;
                }
            }
        }
        self.batch.clear();
    }
}

/// One `recvmmsg` into `bufs`: the length and sender of each packet read, into `got`.
fn recv_batch(
    fd: std::os::fd::RawFd,
    headers: &mut MultiHeaders<SockaddrStorage>,
    bufs: &mut [[u8; RECV_BYTES]],
    got: &mut Vec<(usize, Option<IpAddr>)>,
) -> io::Result<usize> {
    got.clear();
    let mut slices: Vec<[IoSliceMut<'_>; 1]> =
        bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
    let results = recvmmsg(fd, headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None)
        .map_err(io::Error::from)?;
    for r in results {
        let from = r.address.and_then(|a| {
            a.as_sockaddr_in()
                .map(|s| IpAddr::from(s.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::from(s.ip())))
        });
        got.push((r.bytes, from));
    }
    Ok(got.len())
}
