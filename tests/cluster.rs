//! Clustering with real processes on loopback, one process per node. Each node listens on an
//! address of its own (127.77.T.N, T per test), so tests run in parallel without colliding.
//! Targets are ICMP echo to 127.0.0.0/24 (the test command runs as root).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{
    by_target_node, converged, covered_since, last_ring, now_ms, phase_of, wait_converged,
    wait_until, Cluster, Coverage, Node,
};

const INTERVAL_MS: i64 = 1_000;

fn config(replicas: u32) -> String {
    config_with(replicas, "")
}

fn config_with(replicas: u32, cluster_extra: &str) -> String {
    format!(
        r#"
[node]
name = "unset"
[cluster]
replicas = {replicas}
{cluster_extra}
[probe]
interval = "1s"
timeout = "500ms"
[[targets]]
cidr = "127.0.0.0/24"
probe = "icmp"
"#
    )
}

/// Test `test`'s cluster: members on 127.77.{test}.N.
fn cluster(test: u8, config: &str) -> Cluster {
    Cluster::new(&format!("127.77.{test}"), config)
}

fn addr(test: u8, n: u8) -> String {
    cluster(test, "").addr(n)
}

/// Starts node `n{n}` of test `test`, seeded with the given node numbers.
fn start(test: u8, n: u8, seeds: &[u8], replicas: u32, env: &[(&str, &str)]) -> Node {
    cluster(test, &config(replicas)).start_with(n, seeds, &[], env)
}

fn start_with(test: u8, n: u8, seeds: &[u8], config: &str, env: &[(&str, &str)]) -> Node {
    cluster(test, config).start_with(n, seeds, &[], env)
}

/// All results of all nodes.
fn all_results(nodes: &[&Node]) -> BTreeMap<String, Vec<(i64, String, bool)>> {
    let mut all = Vec::new();
    for n in nodes {
        all.extend(n.results());
    }
    by_target_node(&all)
}

/// Per target, the nodes that probed it in the `rounds` slots starting at the first slot at or
/// after `from`. A target's slots are one interval apart at a fixed phase, so each slot is
/// counted in a window of ± half an interval around it, whatever the completion jitter.
fn owners_in(
    results: &BTreeMap<String, Vec<(i64, String, bool)>>,
    from: i64,
    rounds: i64,
) -> BTreeMap<String, Vec<String>> {
    results
        .iter()
        .map(|(t, v)| {
            let phase = phase_of(v.iter().map(|r| r.0), INTERVAL_MS);
            let first_slot = from + (phase - from).rem_euclid(INTERVAL_MS);
            let (lo, hi) = (
                first_slot - INTERVAL_MS / 2,
                first_slot + (rounds - 1) * INTERVAL_MS + INTERVAL_MS / 2,
            );
            (
                t.clone(),
                v.iter()
                    .filter(|r| r.0 >= lo && r.0 < hi)
                    .map(|r| r.1.clone())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn three_nodes_seeded_with_one_form_a_mesh_and_probe_each_target_once_per_round() {
    let n1 = start(1, 1, &[], 1, &[]);
    let n2 = start(1, 2, &[1], 1, &[]);
    let n3 = start(1, 3, &[1], 1, &[]);
    wait_converged(&[&n1, &n2, &n3], 3, Duration::from_secs(15));
    // n2 and n3 only know n1, yet each sees all three members (transitive connection).
    for (n, others) in [(&n2, ["n1", "n3"]), (&n3, ["n1", "n2"])] {
        for o in others {
            assert!(
                n.log().contains(&format!("member {o} joined")),
                "{}",
                n.log()
            );
        }
    }
    // Three whole rounds after convergence: every target probed, each by exactly one node,
    // once per round.
    let from = now_ms() + INTERVAL_MS;
    let to = from + 3 * INTERVAL_MS;
    wait_until("three rounds", Duration::from_secs(10), || {
        (now_ms() > to + 1_500).then_some(())
    });
    let results = all_results(&[&n1, &n2, &n3]);
    let owners = owners_in(&results, from, 3);
    assert_eq!(owners.len(), 256);
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for (target, probers) in &owners {
        let distinct: BTreeSet<_> = probers.iter().collect();
        assert_eq!(distinct.len(), 1, "{target} probed by {probers:?}");
        assert_eq!(
            probers.len(),
            3,
            "{target}: {} results in 3 rounds",
            probers.len()
        );
        *per_node.entry(probers[0].clone()).or_default() += 1;
    }
    assert_eq!(per_node.len(), 3, "{per_node:?}");
    assert!(
        per_node
            .values()
            .all(|&c| c as f64 <= 1.10 * 256.0 / 3.0 + 1.0),
        "{per_node:?}"
    );
}

#[test]
fn with_two_replicas_each_target_is_probed_by_exactly_two_nodes() {
    let n1 = start(2, 1, &[], 2, &[]);
    let n2 = start(2, 2, &[1], 2, &[]);
    let n3 = start(2, 3, &[1], 2, &[]);
    wait_converged(&[&n1, &n2, &n3], 3, Duration::from_secs(15));
    let from = now_ms() + INTERVAL_MS;
    let to = from + 2 * INTERVAL_MS;
    wait_until("two rounds", Duration::from_secs(10), || {
        (now_ms() > to + 1_500).then_some(())
    });
    let owners = owners_in(&all_results(&[&n1, &n2, &n3]), from, 2);
    assert_eq!(owners.len(), 256);
    for (target, probers) in &owners {
        let distinct: BTreeSet<_> = probers.iter().collect();
        assert_eq!(distinct.len(), 2, "{target} probed by {probers:?}");
        assert_eq!(
            probers.len(),
            4,
            "{target}: two nodes, two rounds: {probers:?}"
        );
    }
}

/// Every target has a result from one of `survivors` in (after, after + within].
fn covered_after(nodes: &[&Node], survivors: &[&str], after: i64, within: i64) -> bool {
    covered_since(nodes, after, Some(after + within), survivors).len() == 256
}

#[test]
fn crashed_and_frozen_nodes_are_replaced_and_the_frozen_one_rejoins() {
    let n1 = start(3, 1, &[], 1, &[]);
    let mut n2 = start(3, 2, &[1], 1, &[]);
    let mut n3 = start(3, 3, &[1], 1, &[]);
    wait_converged(&[&n1, &n2, &n3], 3, Duration::from_secs(15));

    // kill -9: out of the ring at once (connection closed); full coverage within 1 s + interval.
    let killed_at = now_ms();
    n3.kill9();
    wait_until("coverage after kill -9", Duration::from_secs(5), || {
        covered_after(
            &[&n1, &n2, &n3],
            &["n1", "n2"],
            killed_at,
            1_000 + INTERVAL_MS + 300,
        )
        .then_some(())
    });
    assert!(
        n1.log().contains("member n3 dead (connection closed"),
        "{}",
        n1.log()
    );

    // SIGSTOP: the socket stays open; the failure detector evicts it within 3 s.
    wait_converged(&[&n1, &n2], 2, Duration::from_secs(5));
    // Until now, no target went longer than detection (≤ 1 s) + one interval without a
    // result: a slot the dead node missed is made up for by its target's new owner at once.
    let stopped_at = now_ms();
    Coverage::of_nodes(
        &[&n1, &n2, &n3],
        killed_at - INTERVAL_MS,
        stopped_at,
        INTERVAL_MS,
        1,
    )
    .assert_gaps_within(256, 1_000 + INTERVAL_MS + 500);
    n2.signal(libc::SIGSTOP);
    n1.wait_log("member n2 dead (", 1, Duration::from_secs(4));
    let dead_line = n1
        .log()
        .lines()
        .find(|l| l.contains("member n2 dead ("))
        .unwrap()
        .to_string();
    assert!(dead_line.contains("without heartbeat"), "{dead_line}");
    wait_until("coverage after SIGSTOP", Duration::from_secs(7), || {
        covered_after(
            &[&n1, &n2, &n3],
            &["n1"],
            stopped_at,
            3_000 + INTERVAL_MS + 300,
        )
        .then_some(())
    });

    // SIGCONT: it notices it was dropped, redials, and is back in the ring within 3 s.
    let joins_before = n1.log().matches("member n2 joined").count();
    n2.signal(libc::SIGCONT);
    n1.wait_log("member n2 joined", joins_before + 1, Duration::from_secs(3));
    wait_converged(&[&n1, &n2], 2, Duration::from_secs(5));
    let _ = n2.wait_exit_or_none();
}

#[test]
fn a_fourth_node_takes_a_quarter_without_gaps_or_false_state_changes() {
    let n1 = start(4, 1, &[], 1, &[]);
    let n2 = start(4, 2, &[1], 1, &[]);
    let n3 = start(4, 3, &[1], 1, &[]);
    wait_converged(&[&n1, &n2, &n3], 3, Duration::from_secs(15));
    let before_from = now_ms();
    wait_until("a round", Duration::from_secs(5), || {
        (now_ms() > before_from + 2 * INTERVAL_MS).then_some(())
    });
    let before = owners_in(&all_results(&[&n1, &n2, &n3]), before_from, 2);

    let joined_at = now_ms();
    // Per-target first results are DEBUG lines (INFO has one summary per ring change).
    let n4 = start(
        4,
        4,
        &[1],
        1,
        &[("RUST_LOG", "info,ringpoll_actors::probe::actor=debug")],
    );
    wait_converged(&[&n1, &n2, &n3, &n4], 4, Duration::from_secs(15));
    let after_from = now_ms() + INTERVAL_MS;
    wait_until("two rounds", Duration::from_secs(6), || {
        (now_ms() > after_from + 2 * INTERVAL_MS + 1_500).then_some(())
    });
    let results = all_results(&[&n1, &n2, &n3, &n4]);
    let after = owners_in(&results, after_from, 2);

    // About a quarter moved, all of it to the newcomer.
    let moved: Vec<&String> = before
        .keys()
        .filter(|t| before[*t].first() != after[*t].first())
        .collect();
    assert!(
        (40..=80).contains(&moved.len()),
        "{} of 256 moved",
        moved.len()
    );
    assert!(moved
        .iter()
        .all(|t| after[*t].first().map(String::as_str) == Some("n4")));

    // No target missed a round: consecutive results at most one interval + 1 s apart, from
    // before the join to the end.
    Coverage::of_nodes(
        &[&n1, &n2, &n3, &n4],
        joined_at - 2 * INTERVAL_MS,
        now_ms(),
        INTERVAL_MS,
        1,
    )
    .assert_gaps_within(256, INTERVAL_MS + 1_000);
    // The newcomer inherited the states: no first-result or state-change lines for moved targets.
    let log4 = n4.log();
    assert_eq!(log4.matches("(first result)").count(), 0, "{log4}");
    assert_eq!(
        log4.matches("target down").count() + log4.matches("target up").count(),
        0
    );
}

#[test]
fn a_node_whose_seed_is_down_joins_when_it_comes_up() {
    let n2 = start(5, 2, &[1], 1, &[]);
    n2.wait_log(
        "seed 127.77.5.1:4701 unreachable",
        1,
        Duration::from_secs(5),
    );
    let n1 = start(5, 1, &[], 1, &[]);
    wait_converged(&[&n1, &n2], 2, Duration::from_secs(8));
    // Retried with backoff all along, but logged once.
    assert_eq!(
        n2.log().matches("unreachable; retrying").count(),
        1,
        "{}",
        n2.log()
    );
}

#[test]
fn a_restarted_seed_is_rejoined_and_the_cluster_does_not_fall_apart() {
    let mut n1 = start(6, 1, &[], 1, &[]);
    let n2 = start(6, 2, &[1], 1, &[]);
    let n3 = start(6, 3, &[1], 1, &[]);
    wait_converged(&[&n1, &n2, &n3], 3, Duration::from_secs(15));
    n1.kill9();
    // n2 and n3 stay together without their seed.
    wait_converged(&[&n2, &n3], 2, Duration::from_secs(5));
    // The seed restarts alone (no seeds of its own): the others dial it back.
    let n1 = start(6, 1, &[], 1, &[]);
    wait_converged(&[&n1, &n2, &n3], 3, Duration::from_secs(8));
}

#[test]
fn a_wrong_cookie_is_rejected_on_both_sides() {
    let n1 = start(7, 1, &[], 1, &[("RINGPOLL_COOKIE", "right")]);
    let n2 = start(7, 2, &[1], 1, &[("RINGPOLL_COOKIE", "wrong")]);
    n1.wait_log("failed to authenticate", 1, Duration::from_secs(6));
    n2.wait_log(
        "rejected our connection during authentication",
        1,
        Duration::from_secs(6),
    );
    assert!(!n1.log().contains("member n2 joined"));
    assert!(!n2.log().contains("member n1 joined"));
    // Both still run alone.
    assert_eq!(last_ring(&n1).map(|r| r.1), Some(1));
    assert_eq!(last_ring(&n2).map(|r| r.1), Some(1));
}

/// Issue 13: a copy-pasted config — a second node with a name already in use — never takes the
/// running node down. The name stays with the node started first; the other is refused by every
/// member it reaches and exits 1 with one message naming both addresses.
#[test]
fn a_duplicate_name_is_refused_and_the_node_started_first_keeps_running() {
    let n1 = start(8, 1, &[], 1, &[]);
    let n2 = start(8, 2, &[1], 1, &[]);
    let n3 = start(8, 3, &[1], 1, &[]);
    let ring = wait_converged(&[&n1, &n2, &n3], 3, Duration::from_secs(10));
    // Another "n2" at another address, seeded with each member in turn: the holder itself,
    // then the two others.
    for (at, seed) in [(9, 2), (10, 1), (11, 3)] {
        let listen = addr(8, at);
        let mut impostor = Node::start_args(
            &config(1),
            &[
                "--name",
                "n2",
                "--listen",
                &listen,
                "--seed",
                &addr(8, seed),
            ],
            &[],
        );
        let status = impostor.wait_exit(Duration::from_secs(10));
        let log = impostor.log();
        assert_eq!(status.code(), Some(1), "{log}");
        let why = format!(
            "node name n2 is already used by the member at {} (started first); give the node at {listen} another name",
            addr(8, 2)
        );
        assert!(log.contains(&why), "{log}");
        assert_eq!(log.matches("stops: node name n2").count(), 1, "{log}");
    }
    // A member that heard an impostor refused it (an impostor that heard the holder first
    // stopped by itself); none saw the real n2 leave or die; the ring never changed; n2 kept
    // its targets and kept probing them.
    let refusals: usize = [&n1, &n2, &n3]
        .iter()
        .map(|n| {
            n.log()
                .matches("refusing a node: node name n2 is already used")
                .count()
        })
        .sum();
    assert!(refusals >= 1, "{}", n2.log());
    for n in [&n1, &n2, &n3] {
        assert!(!n.log().contains("member n2 dead") && !n.log().contains("member n2 left"));
    }
    assert_eq!(converged(&[&n1, &n2, &n3], 3), Some(ring));
    let before = n2.results().len();
    wait_until("n2 keeps probing", Duration::from_secs(5), || {
        (n2.results().len() > before + 50).then_some(())
    });
}

/// Two nodes with one name started in the same second, each seeded with the other: exactly
/// one stops, and both name the same holder, whoever heard whom first.
#[test]
fn twins_started_together_agree_on_which_keeps_the_name() {
    let twin = |n: u8, seed: u8| {
        Node::start_args(
            &config(1),
            &[
                "--name",
                "twin",
                "--listen",
                &addr(12, n),
                "--seed",
                &addr(12, seed),
            ],
            &[],
        )
    };
    let mut twins = [twin(1, 2), twin(2, 1)];
    let (gone, status) = wait_until("one twin to stop", Duration::from_secs(10), || {
        let exits = [twins[0].exited(), twins[1].exited()];
        match exits {
            [Some(_), Some(_)] => panic!(
                "both twins stopped:\n{}\n{}",
                twins[0].log(),
                twins[1].log()
            ),
            [Some(s), None] => Some((0, s)),
            [None, Some(s)] => Some((1, s)),
            [None, None] => None,
        }
    });
    let kept = 1 - gone;
    assert_eq!(status.code(), Some(1), "{}", twins[gone].log());
    let holder = addr(12, kept as u8 + 1);
    let why = format!("already used by the member at {holder} (started first)");
    assert!(twins[gone].log().contains(&why), "{}", twins[gone].log());
    // The other keeps running and probing.
    let before = twins[kept].results().len();
    wait_until(
        "the other twin keeps probing",
        Duration::from_secs(5),
        || (twins[kept].results().len() > before + 50).then_some(()),
    );
    assert!(twins[kept].exited().is_none(), "{}", twins[kept].log());
}

/// A CA and one node certificate (DNS name "ringpoll", server and client use) made with the
/// openssl command; returns the `[cluster.tls]` table.
fn make_certs(dir: &std::path::Path) -> String {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=ringpoll-test-ca",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "node.key",
            "-out",
            "node.csr",
            "-subj",
            "/CN=ringpoll",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:ringpoll\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "node.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "node.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let p = |f: &str| dir.join(f).display().to_string();
    format!(
        "[cluster.tls]\ncert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\n",
        p("node.crt"),
        p("node.key"),
        p("ca.crt")
    )
}

#[test]
fn three_tls_nodes_form_a_full_mesh_and_a_plain_node_cannot_join() {
    let certs = tempfile::tempdir().unwrap();
    let tls = config_with(1, &make_certs(certs.path()));
    let n1 = start_with(9, 1, &[], &tls, &[]);
    let n2 = start_with(9, 2, &[1], &tls, &[]);
    let n3 = start_with(9, 3, &[1], &tls, &[]);
    wait_converged(&[&n1, &n2, &n3], 3, Duration::from_secs(15));
    // n2 and n3 were seeded with n1 only: their link to each other is TLS too (dialled by ringpoll).
    assert!(n2.log().contains("member n3 joined") && n3.log().contains("member n2 joined"));
    assert!(n1.log().contains("tls=true"));

    // A node without TLS is rejected at the handshake and never becomes a member.
    let plain = start(9, 4, &[1], 1, &[]);
    n1.wait_log("TLS handshake with 127.77.9.4", 1, Duration::from_secs(6));
    plain.wait_log(
        "127.77.9.1:4701 rejected our connection",
        1,
        Duration::from_secs(6),
    );
    assert!(!n1.log().contains("member n4 joined"));
    assert_eq!(last_ring(&n1).map(|r| r.1), Some(3));
    assert_eq!(last_ring(&plain).map(|r| r.1), Some(1));
}

#[test]
fn a_silent_connection_does_not_hold_up_a_tls_listener() {
    let certs = tempfile::tempdir().unwrap();
    let tls = config_with(1, &make_certs(certs.path()));
    let n1 = start_with(10, 1, &[], &tls, &[]);
    n1.wait_log("cluster node listening", 1, Duration::from_secs(5));
    // A client that connects and never speaks (ractor_cluster's own TLS listener would stall
    // on it, without a timeout).
    let silent = std::net::TcpStream::connect("127.77.10.1:4701").unwrap();
    let n2 = start_with(10, 2, &[1], &tls, &[]);
    wait_converged(&[&n1, &n2], 2, Duration::from_secs(5));
    // And the silent one is closed after the handshake timeout.
    n1.wait_log("did not finish within 5s", 1, Duration::from_secs(8));
    drop(silent);
}

/// The wall-clock time (Unix ms) of the first log line of `node` containing `needle`.
fn logged_at(node: &Node, needle: &str) -> Option<i64> {
    let line = node.log().lines().find(|l| l.contains(needle))?.to_string();
    let ts = humantime::parse_rfc3339(line.split_whitespace().next()?).ok()?;
    Some(ts.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64)
}

/// Issue 13: a reset link between two live nodes is confirmed by an immediate redial, so it is
/// not a death: no ring rebuild, no hand-off. A real crash is still out of the ring within 1 s.
#[test]
fn a_reset_link_is_not_a_death_but_a_crash_is() {
    let n1 = start(11, 1, &[], 1, &[]);
    let n2 = start(11, 2, &[1], 1, &[]);
    let mut n3 = start(11, 3, &[1], 1, &[]);
    wait_converged(&[&n1, &n2, &n3], 3, Duration::from_secs(15));
    let rebuilds = |n: &Node| n.log().matches("ring rebuilt").count();
    let before = [rebuilds(&n1), rebuilds(&n2), rebuilds(&n3)];
    // Reset every TCP connection between n2 and n3 (both stay up and connected to n1).
    for (src, dst) in [
        ("127.77.11.2", "127.77.11.3"),
        ("127.77.11.3", "127.77.11.2"),
    ] {
        let out = std::process::Command::new("ss")
            .args(["-K", "-t", "src", src, "dst", dst])
            .output()
            .expect("ss");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    n2.wait_log("link to member n3 lost", 1, Duration::from_secs(5));
    n2.wait_log("link to member n3 restored", 1, Duration::from_secs(5));
    // Two heartbeat rounds later still nothing moved on any node.
    wait_until("a second after the reset", Duration::from_secs(2), || {
        (logged_at(&n2, "link to member n3 restored")? + 1_000 < now_ms()).then_some(())
    });
    for n in [&n1, &n2, &n3] {
        assert!(!n.log().contains(" dead ("), "{}", n.log());
    }
    assert_eq!(before, [rebuilds(&n1), rebuilds(&n2), rebuilds(&n3)]);
    // A crash: n3 is killed; n1 and n2 redial it, are refused, and drop it at once.
    let killed = now_ms();
    n3.kill9();
    for n in [&n1, &n2] {
        n.wait_log("member n3 dead", 1, Duration::from_secs(3));
        let dead = logged_at(n, "member n3 dead").unwrap();
        assert!(
            dead - killed <= 1_000,
            "dead {} ms after the kill",
            dead - killed
        );
    }
    wait_converged(&[&n1, &n2], 2, Duration::from_secs(5));
}

/// Issue 13, the small version of `bench/run`'s cold start: twelve nodes with 8,192 targets
/// started at the same moment form one ring, and keep it (no member declared dead, rejoined or
/// left afterwards; a suspicion, which moves nothing, may happen on a loaded test machine).
#[test]
fn twelve_nodes_started_at_once_agree_on_one_ring_and_keep_it() {
    let config = r#"
[node]
name = "unset"
[probe]
interval = "10s"
timeout = "1s"
[[targets]]
cidr = "127.0.0.0/19"
probe = "icmp"
"#;
    let c = cluster(13, config);
    let nodes: Vec<Node> = (1..=12).map(|i| c.start(i, &[1])).collect();
    let all: Vec<&Node> = nodes.iter().collect();
    let started = now_ms();
    wait_converged(&all, 12, Duration::from_secs(40));
    let formed = now_ms() - started;
    let changes = |n: &Node| {
        n.log()
            .lines()
            .filter(|l| l.contains(" dead (") || l.contains(" joined (") || l.contains(" left ("))
            .count()
    };
    let before: Vec<usize> = all.iter().map(|n| changes(n)).collect();
    let ring = last_ring(&nodes[0]);
    let quiet_until = now_ms() + 10_000;
    wait_until(
        "10 s after the ring formed",
        Duration::from_secs(12),
        || (now_ms() >= quiet_until).then_some(()),
    );
    let after: Vec<usize> = all.iter().map(|n| changes(n)).collect();
    assert_eq!(
        before, after,
        "membership changed after the ring formed (in {formed} ms)"
    );
    for n in &all {
        assert_eq!(last_ring(n), ring, "{}", n.log());
    }
}

/// Issue 28: a rolling restart as a deploy script or a service manager with a fast restart does
/// it — each node gets SIGTERM, its successor starts 1 s later on the same addresses (cluster
/// and HTTP), 6 s between nodes. The leaving node frees its addresses when its drain starts and
/// exits once the others run the ring without it, so every successor starts and joins, every
/// old process is gone within 2 s of its signal, no target goes more than interval + 1 s without
/// a result, and no target changes state.
#[test]
fn a_rolling_restart_with_each_successor_started_1s_after_the_stop_leaves_no_gap() {
    let c = cluster(14, &config(1));
    let start = |n: u8| {
        let http = c.addr_port(n, 9464);
        c.start_with(n, &[1], &["--http", &http], &[])
    };
    let mut current: Vec<Node> = (1..=3).map(start).collect();
    wait_converged(
        &current.iter().collect::<Vec<_>>(),
        3,
        Duration::from_secs(15),
    );
    let from = now_ms();
    let mut old = Vec::new();
    for (i, n) in (1..=3u8).enumerate() {
        let signalled = std::time::Instant::now();
        current[i].signal(libc::SIGTERM);
        wait_until("1 s after the stop", Duration::from_secs(2), || {
            (signalled.elapsed() >= Duration::from_secs(1)).then_some(())
        });
        let mut prev = std::mem::replace(&mut current[i], start(n));
        let status = prev.wait_exit(Duration::from_secs(2).saturating_sub(signalled.elapsed()));
        assert!(
            status.success(),
            "n{n} exited with {status}: {}",
            prev.log()
        );
        assert!(
            prev.log()
                .contains("targets handed over to the other members"),
            "{}",
            prev.log()
        );
        old.push(prev);
        wait_until("6 s after the stop", Duration::from_secs(7), || {
            (signalled.elapsed() >= Duration::from_secs(6)).then_some(())
        });
    }
    let now: Vec<&Node> = current.iter().collect();
    wait_converged(&now, 3, Duration::from_secs(10));
    let settled = now_ms() + 2 * INTERVAL_MS;
    wait_until("two more rounds", Duration::from_secs(4), || {
        (now_ms() >= settled).then_some(())
    });
    for (i, n) in current.iter_mut().enumerate() {
        assert!(
            n.exited().is_none(),
            "the new n{} stopped: {}",
            i + 1,
            n.log()
        );
        let http = c.addr_port(i as u8 + 1, 9464);
        assert!(
            common::http_get(&http, "/-/healthy").is_some(),
            "n{} serves no HTTP",
            i + 1
        );
    }
    let all: Vec<&Node> = old.iter().chain(&current).collect();
    Coverage::of_nodes(&all, from, now_ms(), INTERVAL_MS, 1)
        .assert_gaps_within(256, INTERVAL_MS + 1_000);
    for n in &all {
        assert!(n.events().is_empty(), "state events: {:?}", n.events());
    }
}
