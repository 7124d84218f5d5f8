use std::net::IpAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::raw::{echo_request, parse_v4, parse_v6, Answer};
use super::*;

const MS: Duration = Duration::from_millis(1);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn targets(n: usize, count: u16) -> Vec<Planned> {
    (0..n)
        .map(|i| Planned {
            addr: IpAddr::from([127, 9, (i / 200) as u8, (i % 200) as u8 + 1]),
            echoes: Echoes {
                count,
                packet_interval: 10 * MS,
                ..Echoes::default()
            },
            timeout: 100 * MS,
        })
        .collect()
}

fn plan(t: &[Planned], window: usize, limits: PaceLimits, start: Instant) -> SweepPlan {
    SweepPlan::new(t, (0..t.len()).collect(), window, 50 * MS, limits, start).unwrap()
}

/// Sends what is due at `now`, as the raw layer would.
fn send_due(p: &mut SweepPlan, now: Instant) -> Vec<u32> {
    let mut out = Vec::new();
    p.due(now, &mut out);
    for &k in &out {
        p.sent(k, now);
    }
    out
}

fn finished(p: &mut SweepPlan, now: Instant) -> Vec<Swept> {
    let mut out = Vec::new();
    p.take_finished(now, &mut out);
    out
}

#[test]
fn first_echoes_fill_the_window_and_an_answer_or_age_frees_a_place() {
    let t0 = Instant::now();
    let t = targets(5, 1);
    let mut p = plan(&t, 2, PaceLimits::NONE, t0);
    assert_eq!(send_due(&mut p, t0), vec![0, 1]);
    assert_eq!(send_due(&mut p, t0 + MS), Vec::<u32>::new());
    // The window waits for the oldest to age.
    assert_eq!(p.next_wake(), Some(t0 + 50 * MS));
    // Echo 1 answers: one place.
    assert!(p.reply(1, t[1].addr, t0 + 2 * MS, true));
    assert_eq!(send_due(&mut p, t0 + 2 * MS), vec![2]);
    let done = finished(&mut p, t0 + 2 * MS);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].index, 1);
    assert_eq!(done[0].outcome, ProbeOutcome::Up { rtt: 2 * MS });
    // At 50 ms echo 0 ages (it still waits for its timeout): its place goes to target 3.
    assert_eq!(send_due(&mut p, t0 + 50 * MS), vec![3]);
    // Echo 0's timeout passes: lost; echo 2 aged at 52 ms, so target 4 is in.
    assert_eq!(send_due(&mut p, t0 + 100 * MS), vec![4]);
    let done = finished(&mut p, t0 + 100 * MS);
    assert_eq!(done[0].index, 0);
    assert_eq!(
        done[0].outcome,
        ProbeOutcome::Down {
            reason: DownReason::Timeout
        }
    );
    assert!(!p.is_done());
}

#[test]
fn later_echoes_follow_the_first_a_packet_interval_apart_outside_the_window() {
    let t0 = Instant::now();
    let t = targets(2, 3);
    let mut p = plan(&t, 1, PaceLimits::NONE, t0);
    assert_eq!(send_due(&mut p, t0), vec![0]);
    assert!(p.reply(0, t[0].addr, t0 + MS, true));
    // Target 1's first echo takes the place; target 0's second is due at 10 ms regardless.
    assert_eq!(send_due(&mut p, t0 + MS), vec![3]);
    assert_eq!(p.next_wake(), Some(t0 + 10 * MS));
    assert_eq!(send_due(&mut p, t0 + 10 * MS), vec![1]);
    assert_eq!(send_due(&mut p, t0 + 11 * MS), vec![4]);
    assert!(p.reply(1, t[0].addr, t0 + 13 * MS, true));
    assert_eq!(send_due(&mut p, t0 + 20 * MS), vec![2]);
    assert!(finished(&mut p, t0 + 20 * MS).is_empty());
    // The third is lost: the target is up with a third lost.
    send_due(&mut p, t0 + 120 * MS);
    let done = finished(&mut p, t0 + 120 * MS);
    let zero = done.iter().find(|s| s.index == 0).unwrap();
    assert_eq!(zero.stats.sent, 3);
    assert_eq!(zero.stats.received, 2);
    assert_eq!(zero.outcome, ProbeOutcome::Up { rtt: 2 * MS });
}

#[test]
fn only_a_waiting_echo_of_the_right_address_takes_a_reply_and_only_once() {
    let t0 = Instant::now();
    let t = targets(2, 1);
    let mut p = plan(&t, 8, PaceLimits::NONE, t0);
    // Not sent yet, or beyond the sweep: not ours.
    assert!(!p.reply(0, t[0].addr, t0, true));
    assert!(!p.reply(7, t[0].addr, t0, true));
    send_due(&mut p, t0);
    // From another address (another target's, or a stranger's): not this echo's.
    assert!(!p.reply(0, t[1].addr, t0 + MS, true));
    assert!(!p.reply(0, ip("127.0.0.9"), t0 + MS, true));
    assert!(p.reply(0, t[0].addr, t0 + MS, true));
    // A duplicate.
    assert!(!p.reply(0, t[0].addr, t0 + 2 * MS, true));
    // Echo 1 times out; a reply after its timeout changes nothing.
    send_due(&mut p, t0 + 100 * MS);
    assert!(!p.reply(1, t[1].addr, t0 + 101 * MS, true));
    assert!(p.is_done());
    assert_eq!(finished(&mut p, t0 + 101 * MS).len(), 2);
}

#[test]
fn an_error_quoting_the_echo_is_unreachable_and_a_late_reply_a_timeout() {
    let t0 = Instant::now();
    let t = targets(2, 1);
    let mut p = plan(&t, 8, PaceLimits::NONE, t0);
    send_due(&mut p, t0);
    assert!(p.reply(0, t[0].addr, t0 + MS, false));
    // Read after its timeout though not yet expired by the plan: lost all the same.
    assert!(p.reply(1, t[1].addr, t0 + 150 * MS, true));
    let mut done = finished(&mut p, t0 + 150 * MS);
    done.sort_by_key(|s| s.index);
    let reasons: Vec<_> = done.iter().map(|s| s.outcome.clone()).collect();
    assert_eq!(
        reasons,
        vec![
            ProbeOutcome::Down {
                reason: DownReason::Unreachable
            },
            ProbeOutcome::Down {
                reason: DownReason::Timeout
            }
        ]
    );
}

#[test]
fn a_failed_send_keeps_its_reason_and_a_full_buffer_sends_again() {
    let t0 = Instant::now();
    let t = targets(2, 1);
    let mut p = plan(&t, 8, PaceLimits::NONE, t0);
    let mut due = Vec::new();
    p.due(t0, &mut due);
    assert_eq!(due, vec![0, 1]);
    p.failed(0, t0, DownReason::Io("no route".into()));
    p.retry(1, t0 + MS);
    assert_eq!(send_due(&mut p, t0), Vec::<u32>::new());
    assert_eq!(p.next_wake(), Some(t0 + MS));
    assert_eq!(send_due(&mut p, t0 + MS), vec![1]);
    let done = finished(&mut p, t0 + MS);
    assert_eq!(
        done[0].outcome,
        ProbeOutcome::Down {
            reason: DownReason::Io("no route".into())
        }
    );
}

#[test]
fn a_paced_first_echo_holds_its_place_in_the_window() {
    // Measured: first echoes waiting for their pace were not counted, so one call scheduled
    // every target and the sends outran the replies (20,421 of 65,535 up on loopback).
    let t0 = Instant::now();
    let t = targets(100, 1); // all in 127.9.0.0/24
    let limits = PaceLimits {
        per_network: Some(1000),
        node: None,
    };
    let mut p = plan(&t, 4, limits, t0);
    let mut due = Vec::new();
    p.due(t0, &mut due);
    assert_eq!(due, vec![0], "one now, three paced");
    for k in &due {
        p.sent(*k, t0);
    }
    p.due(t0 + MS / 2, &mut due);
    assert_eq!(due, vec![0], "the window is full: nothing more");
    // The paced ones go at their turns, 1 ms apart.
    assert_eq!(p.next_wake(), Some(t0 + MS));
    assert_eq!(send_due(&mut p, t0 + MS), vec![1]);
    assert_eq!(send_due(&mut p, t0 + 3 * MS), vec![2, 3]);
    assert_eq!(send_due(&mut p, t0 + 4 * MS), Vec::<u32>::new());
}

#[test]
fn a_sweep_over_the_echo_limit_is_refused() {
    let t = targets(1, 1);
    let mut many = Vec::new();
    for _ in 0..(MAX_ECHOES / 100 + 1) {
        many.push(Planned {
            echoes: Echoes {
                count: 100,
                ..t[0].echoes
            },
            ..t[0].clone()
        });
    }
    let n = many.len();
    let err = SweepPlan::new(
        &many,
        (0..n).collect(),
        8,
        MS,
        PaceLimits::NONE,
        Instant::now(),
    );
    assert!(err.unwrap_err().contains("at most"));
}

proptest! {
    #[test]
    fn an_echo_number_survives_its_identifier_and_sequence(k in 0u32..(MAX_ECHOES as u32)) {
        let (offset, seq) = SweepPlan::ids(k);
        prop_assert_eq!(SweepPlan::echo_of(offset, seq), k);
    }

    /// Whatever answers, and whenever: every target gets exactly one result, each echo is sent
    /// at most once, and the young never exceed the window.
    #[test]
    fn every_target_finishes_once(
        n in 1usize..60,
        count in 1u16..4,
        window in 1usize..10,
        answers in proptest::collection::vec((0u8..4, 0u64..130), 0..200),
        paced in any::<bool>(),
    ) {
        let t0 = Instant::now();
        let t = targets(n, count);
        let limits = if paced {
            PaceLimits { per_network: Some(2000), node: Some(5000) }
        } else {
            PaceLimits::NONE
        };
        let mut p = plan(&t, window, limits, t0);
        let mut sent = vec![false; p.echoes()];
        let mut results = vec![0u32; n];
        let mut answers = answers.into_iter();
        let mut now = t0;
        // Bounded: n targets of at most 3 echoes, 10 ms apart, 100 ms timeouts, window ≥ 1.
        for _ in 0..100_000 {
            for k in send_due(&mut p, now) {
                prop_assert!(!std::mem::replace(&mut sent[k as usize], true));
            }
            prop_assert!(p.young_count <= p.window);
            // Some replies, some after their timeout, some to echoes not sent.
            if let Some((kind, rtt)) = answers.next() {
                let k = (rtt as u32 * 7 + u32::from(kind)) % p.echoes() as u32;
                let addr = p.addr_of(k);
                p.reply(k, addr, now + Duration::from_millis(rtt), kind != 0);
            }
            for s in finished(&mut p, now) {
                results[s.index] += 1;
            }
            if p.is_done() {
                break;
            }
            now = match p.next_wake() {
                Some(at) if at > now => at,
                _ => now + MS,
            };
        }
        prop_assert!(p.is_done());
        prop_assert!(results.iter().all(|&r| r == 1), "{:?}", results);
    }
}

#[test]
fn an_echo_request_has_its_numbers_payload_and_a_valid_ipv4_checksum() {
    let payload = *b"ringpoll\x01\x02\x03\x04\x05\x06\x07\x08";
    let p = echo_request(false, 0x1234, 0xbeef, &payload);
    assert_eq!(p[0], 8);
    assert_eq!(&p[4..8], &[0x12, 0x34, 0xbe, 0xef]);
    assert_eq!(&p[8..], &payload);
    // The ones' complement sum over a packet with its checksum is 0xffff.
    assert_eq!(pnet_packet::util::checksum(&p, 100), 0);
    assert_eq!(echo_request(true, 1, 2, &payload)[0], 128);
}

fn ipv4_header(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
    h.extend(src);
    h.extend(dst);
    h
}

#[test]
fn replies_and_errors_are_read_as_a_raw_socket_receives_them() {
    let payload = *b"ringpoll12345678";
    let request = echo_request(false, 7, 9, &payload);
    let mut reply = request;
    reply[0] = 0;
    let mut packet = ipv4_header([127, 9, 0, 1], [127, 0, 0, 1]);
    packet.extend(reply);
    let answer = Answer {
        ident: 7,
        seq: 9,
        target: ip("127.9.0.1"),
        echo_reply: true,
    };
    assert_eq!(parse_v4(&packet, &payload), Some(answer));
    // Another program's reply (another payload), or our own request seen on loopback.
    assert_eq!(parse_v4(&packet, b"ringpoll87654321"), None);
    let mut own = ipv4_header([127, 0, 0, 1], [127, 9, 0, 1]);
    own.extend(request);
    assert_eq!(parse_v4(&own, &payload), None);
    // An unreachable from a router, quoting our request to 127.9.0.1 (only its first 8
    // bytes, as old routers do): for 127.9.0.1.
    let mut err = ipv4_header([127, 0, 0, 254], [127, 0, 0, 1]);
    err.extend([3, 1, 0, 0, 0, 0, 0, 0]);
    err.extend(ipv4_header([127, 0, 0, 1], [127, 9, 0, 1]));
    err.extend(&request[..8]);
    let unreachable = Answer {
        ident: 7,
        seq: 9,
        target: ip("127.9.0.1"),
        echo_reply: false,
    };
    assert_eq!(parse_v4(&err, &payload), Some(unreachable));
    // Cut short anywhere: nothing, and no panic.
    for len in 0..err.len() - 8 {
        assert_eq!(parse_v4(&err[..len], &payload), None, "{len}");
    }

    let request = echo_request(true, 7, 9, &payload);
    let mut reply = request;
    reply[0] = 129;
    let from = ip("::1");
    assert_eq!(
        parse_v6(&reply, from, &payload),
        Some(Answer {
            ident: 7,
            seq: 9,
            target: from,
            echo_reply: true
        })
    );
    assert_eq!(parse_v6(&request, from, &payload), None);
    let mut err = vec![1, 0, 0, 0, 0, 0, 0, 0];
    err.extend([0x60, 0, 0, 0, 0, 24, 58, 64]);
    err.extend(ip_bytes("::1"));
    err.extend(ip_bytes("::1"));
    err.extend(request);
    assert_eq!(
        parse_v6(&err, ip("::1"), &payload),
        Some(Answer {
            ident: 7,
            seq: 9,
            target: ip("::1"),
            echo_reply: false
        })
    );
}

fn ip_bytes(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}
