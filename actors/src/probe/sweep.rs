//! One ICMP sweep over many targets, as plain arrays: which echo goes when, which reply is
//! whose, when an echo is lost, and each target's statistics once its last echo has its
//! answer. Pure: time is an argument, what to send is a return value; [`raw`] does the I/O
//! (raw sockets, batched receives).
//!
//! Why not a future per target (as a node's probe actors run): measured on 65,535 loopback
//! targets, the per-target futures, their timers, the reply map and the channels cost about
//! 3.4 µs of user CPU a target against fping's 0.9 µs, and with thousands of targets waiting
//! for later echoes the task's cooperative budget ran out on every wake-up (14 s for three
//! echoes each). Here a target costs a few array slots and two heap entries an echo.
//!
//! # Echoes and their numbers
//! Echo `k` (0 ≤ k < all echoes) is echo `e` of target `i` where `k = first[i] + e`. It is
//! sent with identifier `base + k / 65,536` and sequence number `k % 65,536`, so a reply names
//! its echo directly; it is taken only from the target's own address, once, for an echo sent
//! and not yet answered.
//!
//! # Pacing and the window
//! First echoes go out in the given order while fewer than `window` of them are *young* (sent
//! less than `hold` ago and unanswered): a probe that answers, or ages, frees its place, so
//! silent targets do not hold up live ones. A target's later echoes follow its first,
//! `packet_interval` apart, outside the window. Every echo takes its turn in its network's and
//! the node's pace ([`Pacer`]); an echo whose turn is later waits for it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::echo::{EchoStats, Echoes, Verdict};
use super::pace::{network_of, PaceLimits, Pacer};
use crate::model::{DownReason, ProbeOutcome};

pub mod raw;

#[cfg(test)]
mod tests;

/// One target of a sweep.
#[derive(Clone, Debug)]
pub struct Planned {
    /// Where its echoes go.
    pub addr: IpAddr,
    /// How many, how far apart, and when it is down.
    pub echoes: Echoes,
    /// How long each echo is waited for.
    pub timeout: Duration,
}

/// A target whose every echo has its answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Swept {
    /// Its place in the list the sweep was made of.
    pub index: usize,
    /// Up or down, and why.
    pub outcome: ProbeOutcome,
    /// Its echoes' statistics.
    pub stats: EchoStats,
    /// From its first echo's send to its last answer.
    pub elapsed: Duration,
}

/// An echo not sent yet, or sent and waiting.
const WAITING: u64 = u64::MAX;
/// An echo lost.
const LOST: u64 = u64::MAX - 1;
/// Timer tags: the echo's number, with these bits for what is due.
const EXPIRE: u32 = 1 << 31;
const PACED: u32 = 1 << 30;
const ECHO: u32 = PACED - 1;
/// Most echoes one sweep can number (2^20 targets of 100 echoes fit).
pub const MAX_ECHOES: usize = ECHO as usize;

/// Why a target's echoes were lost (the last one counts, as for a node's probe).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lost {
    None,
    Timeout,
    Unreachable,
    /// The send failed: the reason is in `errors`.
    Send,
}

/// The sweep's state.
#[derive(Debug)]
pub struct SweepPlan {
    start: Instant,
    addrs: Vec<IpAddr>,
    /// Per target: its pace network (an index).
    nets: Vec<u32>,
    /// Per target: its settings, an index into `settings`.
    setting: Vec<u32>,
    settings: Vec<(Echoes, Duration)>,
    /// Per target: its first echo's number; one more entry, the number of echoes in all.
    first: Vec<u32>,
    /// Per echo: when it was sent (ns since `start`), or WAITING.
    sent: Vec<u64>,
    /// Per echo: its round trip (ns), WAITING, or LOST.
    rtt: Vec<u64>,
    /// Per target: echoes without an answer yet.
    left: Vec<u16>,
    lost: Vec<Lost>,
    /// Why sends failed, for the few targets whose did.
    errors: HashMap<u32, DownReason>,
    /// First echoes to send, in order, and the next of them.
    order: Vec<u32>,
    next: usize,
    /// Young first echoes (sent ns, target), oldest first; answered ones stay until the front.
    young: VecDeque<(u64, u32)>,
    is_young: Vec<bool>,
    young_count: usize,
    window: usize,
    hold: u64,
    /// Sends and expiries due, earliest first: (ns since start, tagged echo).
    timers: BinaryHeap<Reverse<(u64, u32)>>,
    pacer: Option<Pacer<u32>>,
    finished: Vec<u32>,
    remaining: usize,
}

fn ns(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(LOST - 1)) as u64
}

impl SweepPlan {
    /// A sweep of `targets` starting at `start`, sending first echoes in the order `order`
    /// (indexes into `targets`, each once), at most `window` young ones at a time, each young
    /// for `hold`, paced within `limits`. Fails when the sweep has more than [`MAX_ECHOES`].
    pub fn new(
        targets: &[Planned],
        order: Vec<usize>,
        window: usize,
        hold: Duration,
        limits: PaceLimits,
        start: Instant,
    ) -> Result<Self, String> {
        let total: usize = targets.iter().map(|t| usize::from(t.echoes.count)).sum();
        if total > MAX_ECHOES {
            return Err(format!("{total} echoes in one sweep; at most {MAX_ECHOES}"));
        }
        let mut first = Vec::with_capacity(targets.len() + 1);
        let mut k = 0u32;
        let mut net_index: HashMap<ipnet::IpNet, u32> = HashMap::new();
        let mut nets = Vec::with_capacity(targets.len());
        let mut setting_index: Vec<(Echoes, Duration)> = Vec::new();
        let mut setting = Vec::with_capacity(targets.len());
        for t in targets {
            first.push(k);
            k += u32::from(t.echoes.count);
            let n = net_index.len() as u32;
            nets.push(*net_index.entry(network_of(t.addr)).or_insert(n));
            let s = (t.echoes, t.timeout);
            let at = match setting_index.iter().position(|x| *x == s) {
                Some(at) => at,
                None => {
                    setting_index.push(s);
                    setting_index.len() - 1
                }
            };
            setting.push(at as u32);
        }
        first.push(k);
        debug_assert_eq!(order.len(), targets.len());
        Ok(SweepPlan {
            start,
            addrs: targets.iter().map(|t| t.addr).collect(),
            nets,
            setting,
            settings: setting_index,
            first,
            sent: vec![WAITING; total],
            rtt: vec![WAITING; total],
            left: targets.iter().map(|t| t.echoes.count).collect(),
            lost: vec![Lost::None; targets.len()],
            errors: HashMap::new(),
            order: order.into_iter().map(|i| i as u32).collect(),
            next: 0,
            young: VecDeque::with_capacity(window.min(targets.len())),
            is_young: vec![false; targets.len()],
            young_count: 0,
            window: window.max(1),
            hold: ns(hold),
            timers: BinaryHeap::new(),
            pacer: (limits != PaceLimits::NONE).then(|| Pacer::new(limits)),
            finished: Vec::new(),
            remaining: targets.len(),
        })
    }

    /// The identifier offset and sequence number echo `k` is sent with.
    pub fn ids(k: u32) -> (u16, u16) {
        ((k >> 16) as u16, k as u16)
    }

    /// The echo an identifier offset and sequence number name.
    pub fn echo_of(ident_offset: u16, seq: u16) -> u32 {
        (u32::from(ident_offset) << 16) | u32::from(seq)
    }

    /// Where echo `k` goes.
    pub fn addr_of(&self, k: u32) -> IpAddr {
        self.addrs[self.target_of(k)]
    }

    /// The target of echo `k`.
    pub fn target_of(&self, k: u32) -> usize {
        self.first.partition_point(|&f| f <= k) - 1
    }

    /// Echoes in all.
    pub fn echoes(&self) -> usize {
        self.sent.len()
    }

    fn at(&self, now: Instant) -> u64 {
        ns(now.saturating_duration_since(self.start))
    }

    fn settings_of(&self, i: usize) -> (Echoes, Duration) {
        self.settings[self.setting[i] as usize]
    }

    /// The echoes due at `now`, into `out` (its former content is kept): later echoes and
    /// paced ones whose time has come, then first echoes while the window has room. Each must
    /// be [`sent`](Self::sent), [`failed`](Self::failed) or [`retry`](Self::retry)'d. Also
    /// loses the echoes whose timeout passed.
    pub fn due(&mut self, now: Instant, out: &mut Vec<u32>) {
        let t = self.at(now);
        while let Some(&Reverse((at, tag))) = self.timers.peek() {
            if at > t {
                break;
            }
            self.timers.pop();
            let k = tag & ECHO;
            if tag & EXPIRE != 0 {
                if self.rtt[k as usize] == WAITING {
                    self.answer(k, LOST, Lost::Timeout);
                }
            } else if tag & PACED != 0 || self.paced(k, now) {
                out.push(k);
            }
        }
        while let Some(&(sent, i)) = self.young.front() {
            if self.is_young[i as usize] && sent + self.hold > t {
                break;
            }
            self.young.pop_front();
            self.release(i as usize);
        }
        while self.young_count < self.window && self.next < self.order.len() {
            let i = self.order[self.next] as usize;
            self.next += 1;
            // Young from now, so one call fills the window no further, and an echo waiting
            // for its turn in the pace holds its place.
            self.is_young[i] = true;
            self.young_count += 1;
            let k = self.first[i];
            if self.paced(k, now) {
                out.push(k);
            }
        }
    }

    /// Echo `k` takes its turn in the pace: true when it may go now; otherwise it is due later.
    fn paced(&mut self, k: u32, now: Instant) -> bool {
        let i = self.target_of(k);
        let Some(pacer) = &mut self.pacer else {
            return true;
        };
        let wait = pacer.reserve_in(self.nets[i], now);
        if wait.is_zero() {
            return true;
        }
        let at = self.at(now) + ns(wait);
        self.timers.push(Reverse((at, k | PACED)));
        false
    }

    /// A first echo's place in the window is free (it answered or aged).
    fn release(&mut self, i: usize) {
        if std::mem::take(&mut self.is_young[i]) {
            self.young_count -= 1;
        }
    }

    /// Echo `k` went out at `at`: its timeout runs, and the target's next echo is due
    /// `packet_interval` after the previous one's due time.
    pub fn sent(&mut self, k: u32, at: Instant) {
        let t = self.at(at);
        let i = self.target_of(k);
        let (echoes, timeout) = self.settings_of(i);
        self.sent[k as usize] = t;
        self.timers.push(Reverse((t + ns(timeout), k | EXPIRE)));
        let e = k - self.first[i];
        if e == 0 {
            self.young.push_back((t, i as u32));
        }
        self.schedule_next(i, k, e, echoes);
    }

    fn schedule_next(&mut self, i: usize, k: u32, e: u32, echoes: Echoes) {
        if e + 1 < u32::from(echoes.count) {
            let first = self.sent[self.first[i] as usize];
            let first = if first == WAITING {
                self.sent[k as usize]
            } else {
                first
            };
            let due = first + ns(echoes.packet_interval) * u64::from(e + 1);
            self.timers.push(Reverse((due, k + 1)));
        }
    }

    /// Echo `k` could not be sent (`reason`): it is lost, and the target's next echo keeps
    /// its time.
    pub fn failed(&mut self, k: u32, at: Instant, reason: DownReason) {
        let t = self.at(at);
        let i = self.target_of(k);
        let (echoes, _) = self.settings_of(i);
        self.sent[k as usize] = t;
        self.errors.insert(i as u32, reason);
        let e = k - self.first[i];
        self.schedule_next(i, k, e, echoes);
        self.answer(k, LOST, Lost::Send);
    }

    /// Echo `k` could not be sent yet (the socket's buffer is full): it is due again at `at`.
    pub fn retry(&mut self, k: u32, at: Instant) {
        let t = self.at(at);
        self.timers.push(Reverse((t, k | PACED)));
    }

    /// A reply to echo `k` about `from` (the target an echo reply came from, or the
    /// destination an ICMP error quotes), received at `at`: an echo reply (`echo_reply`), or
    /// an error (unreachable, time exceeded). Returns false when it is not the answer of an
    /// echo waiting here (another's, a duplicate, a late one).
    pub fn reply(&mut self, k: u32, from: IpAddr, at: Instant, echo_reply: bool) -> bool {
        let Some(&sent) = self.sent.get(k as usize) else {
            return false;
        };
        if sent == WAITING || self.rtt[k as usize] != WAITING || self.addr_of(k) != from {
            return false;
        }
        let rtt = Duration::from_nanos(self.at(at).saturating_sub(sent));
        let (_, timeout) = self.settings_of(self.target_of(k));
        if !echo_reply {
            self.answer(k, LOST, Lost::Unreachable);
        } else if rtt > timeout {
            // Later than the timeout: lost, as if it had not come.
            self.answer(k, LOST, Lost::Timeout);
        } else {
            self.answer(k, ns(rtt).min(LOST - 1), Lost::None);
        }
        true
    }

    fn answer(&mut self, k: u32, rtt: u64, why: Lost) {
        let i = self.target_of(k);
        self.rtt[k as usize] = rtt;
        if why != Lost::None {
            self.lost[i] = why;
        }
        if k == self.first[i] {
            self.release(i);
        }
        self.left[i] -= 1;
        if self.left[i] == 0 {
            self.finished.push(i as u32);
            self.remaining -= 1;
        }
    }

    /// The targets finished since the last call, with their results (`now` ends their
    /// elapsed time).
    pub fn take_finished(&mut self, now: Instant, out: &mut Vec<Swept>) {
        let t = self.at(now);
        let mut rtts = Vec::new();
        for i in std::mem::take(&mut self.finished) {
            let i = i as usize;
            let (echoes, _) = self.settings_of(i);
            let range = self.first[i] as usize..self.first[i + 1] as usize;
            rtts.clear();
            rtts.extend(
                self.rtt[range.clone()]
                    .iter()
                    .filter(|&&r| r < LOST)
                    .map(|&r| Duration::from_nanos(r)),
            );
            let stats = EchoStats::of(echoes.count, &rtts);
            let down = |reason| ProbeOutcome::Down { reason };
            let outcome = match echoes.verdict(&stats) {
                Verdict::Up { rtt } => ProbeOutcome::Up { rtt },
                Verdict::AllLost => down(match self.lost[i] {
                    Lost::Unreachable => DownReason::Unreachable,
                    Lost::Send => (self.errors.remove(&(i as u32))).unwrap_or(DownReason::Timeout),
                    Lost::None | Lost::Timeout => DownReason::Timeout,
                }),
                Verdict::Loss => down(DownReason::Loss),
                Verdict::Slow => down(DownReason::Slow),
            };
            let began = self.sent[range.start];
            out.push(Swept {
                index: i,
                outcome,
                stats,
                elapsed: Duration::from_nanos(t.saturating_sub(began)),
            });
        }
    }

    /// When something is next due (a send, an expiry, a place in the window), if anything
    /// is left to do but wait for replies.
    pub fn next_wake(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        let window = (self.next < self.order.len() && self.young_count >= self.window)
            .then(|| self.young.front().map(|(sent, _)| sent + self.hold))
            .flatten();
        let at = match (timer, window) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(self.start + Duration::from_nanos(at))
    }

    /// True when some targets finished since the last [`take_finished`](Self::take_finished).
    pub fn has_finished(&self) -> bool {
        !self.finished.is_empty()
    }

    /// True when every target has its result.
    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }
}
