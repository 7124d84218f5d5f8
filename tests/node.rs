//! End-to-end tests of `ringpoll node`: the real binary, real ICMP sockets, real TCP listeners.
//! ICMP needs root or CAP_NET_RAW (the test command runs as root).

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::time::Duration;

use common::{by_target, repo, wait_until, Node};

#[test]
fn the_shipped_config_gives_256_ok_results_within_one_interval() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir, &repo().join("config.toml"), &[]);
    // One interval (10 s) plus start-up.
    let ok = wait_until(
        "an ok ICMP result for each of 127.0.0.0/24",
        Duration::from_secs(13),
        || {
            let ok: BTreeSet<String> = node
                .results()
                .iter()
                .filter(|r| r["ok"] == true && r["probe"] == "icmp")
                .map(|r| r["target"].as_str().unwrap().to_string())
                .collect();
            (ok.len() == 256).then_some(ok)
        },
    );
    assert!(ok.contains("127.0.0.0") && ok.contains("127.0.0.255"));
    let results = node.results();
    let first = &results[0];
    assert_eq!(first["node"], "n1");
    assert_eq!(first["labels"]["site"], "loopback");
    assert!(first["rtt_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(first["error"], serde_json::Value::Null);
    // Three echoes per probe by default, with their statistics (real loopback echoes).
    for r in results.iter().filter(|r| r["ok"] == true) {
        assert_eq!(
            (r["sent"].as_u64(), r["received"].as_u64()),
            (Some(3), Some(3)),
            "{r}"
        );
        assert_eq!(r["loss"].as_f64(), Some(0.0), "{r}");
        let ms = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k}: {r}"));
        assert!(
            ms("rtt_min_ms") <= ms("rtt_avg_ms") && ms("rtt_avg_ms") <= ms("rtt_max_ms"),
            "{r}"
        );
        assert!(ms("rtt_stddev_ms") >= 0.0, "{r}");
        assert_eq!(ms("rtt_ms"), ms("rtt_avg_ms"), "{r}");
    }
    // The supervisor logs say what started, in order, and how many targets are owned.
    let log = node.log();
    let order: Vec<usize> = [
        "child=result_sink",
        "child=probe_supervisor",
        "child=ring_owner",
        "child=membership",
    ]
    .iter()
    .map(|c| {
        log.find(&format!("child started {c}"))
            .unwrap_or_else(|| panic!("{c} not started"))
    })
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "start order {order:?}"
    );
    assert!(log.contains("targets owned: 256 (+0 kept"), "{log}");
    assert!(
        log.contains("ring rebuilt: 1 member(s), this node owns 256 of 256 targets"),
        "{log}"
    );
}

#[test]
fn tcp_targets_are_up_when_listening_and_refused_when_closed() {
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let open_port = open.local_addr().unwrap().port();
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = format!(
        r#"
[node]
name = "tcp-test"
[probe]
interval = "1s"
timeout = "500ms"
[[targets]]
hosts = ["127.0.0.1", "localhost"]
probe = "tcp"
port = {open_port}
[[targets]]
hosts = ["127.0.0.1"]
probe = "tcp"
port = {closed_port}
"#
    );
    let node = Node::start(&config, &[]);
    let up = format!("127.0.0.1:{open_port}");
    let by_name = format!("localhost:{open_port}");
    let refused = format!("127.0.0.1:{closed_port}");
    let results = wait_until(
        "a result for every TCP target",
        Duration::from_secs(5),
        || {
            let r = node.results();
            let seen: BTreeSet<String> = r
                .iter()
                .map(|r| r["target"].as_str().unwrap().to_string())
                .collect();
            [&up, &by_name, &refused]
                .iter()
                .all(|t| seen.contains(*t))
                .then_some(r)
        },
    );
    for r in &results {
        let t = r["target"].as_str().unwrap();
        if t == refused {
            assert_eq!(r["ok"], false, "{r}");
            assert_eq!(r["error"], "refused", "{r}");
            assert_eq!(r["rtt_ms"], serde_json::Value::Null);
        } else {
            assert_eq!(r["ok"], true, "{r}");
            assert_eq!(r["probe"], "tcp");
        }
    }
    // A state change is logged once: the first results, summarised, not every probe.
    node.wait_log("first results: 2 up, 1 down", 1, Duration::from_secs(2));
    wait_until("three rounds", Duration::from_secs(5), || {
        (by_target(&node.results())
            .get(&refused)
            .map_or(0, |v| v.len())
            >= 3)
            .then_some(())
    });
    // Three failures of the refused target later: still that one line, no per-probe lines.
    let log = node.log();
    assert_eq!(log.matches("first results").count(), 1, "{log}");
    assert_eq!(log.matches("target down").count(), 0, "{log}");
    drop(open);
}

/// 16 loopback targets probed every second; the probe actor of 127.0.0.7 panics twice.
fn panicking_config() -> &'static str {
    r#"
[node]
name = "crashy"
[probe]
interval = "1s"
timeout = "500ms"
[supervision]
max_restarts = 3
within = "30s"
backoff_min = "100ms"
backoff_max = "200ms"
quarantine = "1h"
[[targets]]
cidr = "127.0.0.0/28"
probe = "icmp"
"#
}

#[test]
fn a_panicking_probe_actor_is_restarted_and_the_others_never_miss_a_round() {
    let node = Node::start_panicking(panicking_config(), "127.0.0.7*2");
    node.wait_log("probe actor restarted", 2, Duration::from_secs(10));
    let log = node.log();
    assert!(
        log.contains("probe actor failed; restarting") && log.contains("injected test fault"),
        "{log}"
    );
    // The restarted actor polls its target again.
    wait_until(
        "ok results for 127.0.0.7 after the restarts",
        Duration::from_secs(5),
        || {
            let r = by_target(&node.results());
            (r.get("127.0.0.7")
                .map_or(0, |v| v.iter().filter(|x| x.1).count())
                >= 2)
                .then_some(())
        },
    );
    // The other targets never missed a round: consecutive results at most ~1 interval apart.
    let r = wait_until(
        "6 rounds of every other target",
        Duration::from_secs(10),
        || {
            let r = by_target(&node.results());
            (r.len() == 16
                && r.iter()
                    .filter(|(t, _)| *t != "127.0.0.7")
                    .all(|(_, v)| v.len() >= 6))
            .then_some(r)
        },
    );
    for (target, results) in r.iter().filter(|(t, _)| *t != "127.0.0.7") {
        assert!(
            results.iter().all(|x| x.1),
            "{target} not always up: {results:?}"
        );
        let max_gap = results.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap();
        assert!(
            max_gap <= 1_500,
            "{target}: a gap of {max_gap} ms between results"
        );
    }
    assert!(!node.log().contains("quarantined"));
}

#[test]
fn a_crash_looping_target_is_quarantined_and_the_node_carries_on() {
    let node = Node::start_panicking(panicking_config(), "127.0.0.7*1000");
    node.wait_log("target quarantined", 1, Duration::from_secs(15));
    assert_eq!(
        node.log().matches("probe actor restarted").count(),
        3,
        "{}",
        node.log()
    );
    let seen = node.results().len();
    wait_until(
        "more results after the quarantine",
        Duration::from_secs(5),
        || (node.results().len() >= seen + 15 * 2).then_some(()),
    );
    let r = by_target(&node.results());
    assert!(
        !r.contains_key("127.0.0.7"),
        "the crashing target never produced a result"
    );
    assert_eq!(r.len(), 15);
}

#[test]
fn sigterm_stops_cleanly_and_leaves_only_complete_lines() {
    let config = r#"
[node]
name = "term"
[probe]
interval = "1s"
timeout = "500ms"
[results]
flush_interval = "5s"
[[targets]]
cidr = "127.0.0.0/24"
probe = "icmp"
"#;
    let mut node = Node::start(config, &[]);
    node.wait_log("targets owned", 1, Duration::from_secs(5));
    // With a 5 s flush interval, results are still buffered when the signal comes.
    node.wait_log("first results: 256 up, 0 down", 1, Duration::from_secs(5));
    node.signal(libc::SIGTERM);
    let status = node.wait_exit(Duration::from_secs(8));
    assert_eq!(status.code(), Some(0), "{}", node.log());
    let text = std::fs::read_to_string(&node.results).unwrap();
    assert!(text.ends_with('\n'));
    let lines = node.results();
    let targets: BTreeSet<&str> = lines
        .iter()
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets.len(),
        256,
        "every buffered result was written at shutdown"
    );
    let log = node.log();
    let written: usize = log
        .split("results_written=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("node stopped line");
    assert_eq!(
        written,
        lines.len(),
        "the file holds exactly what the sink reported written"
    );
}

#[test]
fn sigint_stops_cleanly_too() {
    let mut node = Node::start(
        "[node]\nname = \"int\"\n[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\n",
        &[],
    );
    node.wait_log("targets owned", 1, Duration::from_secs(5));
    node.signal(libc::SIGINT);
    assert_eq!(
        node.wait_exit(Duration::from_secs(8)).code(),
        Some(0),
        "{}",
        node.log()
    );
    assert!(node.log().contains("signal=\"SIGINT\""));
}

#[test]
fn an_unwritable_results_file_fails_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[node]\nname = \"x\"\n").unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["node", "--config"])
        .arg(&config)
        .args(["--results", "/nonexistent-dir/results.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open results file /nonexistent-dir/results.jsonl"),
        "{err}"
    );
}

#[test]
fn without_icmp_permission_the_node_says_what_to_do() {
    use std::os::unix::fs::PermissionsExt;
    // Run as `nobody` (no CAP_NET_RAW; the test machines' ping_group_range admits no group).
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test needs root to drop privileges"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[node]\nname = \"x\"\n[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(common::bin())
        .args(["node", "--config"])
        .arg(&config)
        .arg("--results")
        .arg(dir.path().join("r.jsonl"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot open an ICMP socket: permission denied"),
        "{err}"
    );
    assert!(
        err.contains("CAP_NET_RAW") && err.contains("ping_group_range"),
        "{err}"
    );
}

#[test]
fn a_results_file_left_with_a_torn_line_by_sigkill_is_repaired_on_restart() {
    // A node killed mid-write can leave a line cut short at the end of its results file. The
    // next node to open the file cuts it off, so what it appends starts on a line of its own.
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("r.jsonl");
    let config = "[node]\nname = \"torn\"\n[probe]\ninterval = \"500ms\"\ntimeout = \"200ms\"\n[results]\nflush_interval = \"100ms\"\n[[targets]]\ncidr = \"127.0.0.0/28\"\nprobe = \"icmp\"\n";
    let arg = results.display().to_string();
    let mut first = Node::start_args(config, &["--results", &arg], &[]);
    wait_until("results", Duration::from_secs(5), || {
        (first.results().len() >= 16).then_some(())
    });
    first.kill9();
    // Whatever the kill left, end the file with a torn line.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&results)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"ts\":\"2026-11-22T00:00:00.0").unwrap();
    drop(f);
    let before = std::fs::read_to_string(&results).unwrap().lines().count() - 1;
    let second = Node::start_args(config, &["--results", &arg], &[]);
    wait_until("appended results", Duration::from_secs(5), || {
        (second.results().len() >= before + 16).then_some(())
    });
    // Every line parses (Node::results panics on one that does not).
    assert!(second.results().iter().all(|r| r["node"] == "torn"));
    assert!(
        second.log().contains("ended with a partial line"),
        "{}",
        second.log()
    );
}

#[test]
fn a_closed_terminal_and_sigpipe_do_not_kill_a_node() {
    // stdout and stderr are pipes whose reader is gone (a closed terminal, a dead log
    // collector): every log line the node writes fails with EPIPE; and it is sent SIGPIPE
    // outright. It keeps probing, reloads on SIGHUP, and stops cleanly on SIGTERM.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let results = dir.path().join("results.jsonl");
    std::fs::write(
        &config,
        "[node]\nname = \"pipe\"\n[probe]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\
         [results]\nflush_interval = \"250ms\"\n\
         [[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(common::bin())
        .args(["node", "--config"])
        .arg(&config)
        .arg("--results")
        .arg(&results)
        .args(["--http", "off"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    let lines = || {
        std::fs::read_to_string(&results)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let pid = child.id() as i32;
    wait_until("a first result", Duration::from_secs(10), || {
        (lines() >= 1).then_some(())
    });
    for sig in [libc::SIGPIPE, libc::SIGHUP, libc::SIGPIPE] {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, sig) };
    }
    let before = lines();
    wait_until("results after the signals", Duration::from_secs(10), || {
        (lines() >= before + 2).then_some(())
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "the node died: {:?}",
        child.try_wait()
    );
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = wait_until("the node to stop", Duration::from_secs(10), || {
        child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn json_logs_are_one_object_per_line_with_the_event_fields() {
    let config = "[node]\nname = \"js\"\n[log]\nformat = \"json\"\n[probe]\ninterval = \"2s\"\n\
                  [[targets]]\nhosts = [\"127.0.0.1\", \"127.0.0.2\"]\nprobe = \"icmp\"\n";
    let node = Node::start_args(config, &["--http", "off"], &[]);
    node.wait_log("first results: 2 up, 0 down", 1, Duration::from_secs(5));
    let log = node.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for v in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(v[key].is_string(), "{key} missing: {v}");
        }
    }
    let event = |message: &str| {
        lines
            .iter()
            .find(|v| v["message"].as_str().unwrap().starts_with(message))
            .unwrap_or_else(|| panic!("no {message:?} in:\n{log}"))
    };
    // The event's fields are keys of their own, with their types.
    let ring = event("ring rebuilt");
    assert_eq!(ring["level"], "INFO");
    assert_eq!(ring["target"], "ringpoll_actors::ring::owner");
    assert_eq!(ring["members"], 1);
    assert_eq!(ring["owned"], 2);
    let first = event("first results");
    assert_eq!(
        (first["up"].as_u64(), first["down"].as_u64()),
        (Some(2), Some(0))
    );
    drop(node);

    // The command line overrides the file.
    let node = Node::start_args(config, &["--http", "off", "--log-format", "text"], &[]);
    node.wait_log("first results: 2 up, 0 down", 1, Duration::from_secs(5));
    let log = node.log();
    assert!(log.lines().all(|l| !l.starts_with('{')), "{log}");
    assert!(
        log.contains("INFO ringpoll_actors::ring::owner: ring rebuilt"),
        "{log}"
    );
}
