//! ICMP echoes through real sockets, inside a network namespace of the test's own where
//! nftables drops echo requests: a random quarter of those to 1,024 targets, every one to one
//! target, and every other one (even sequence numbers) to another. Loss is measured as sent,
//! and a probe fails on it only as configured. A firewall that learns the identifiers a node
//! uses and drops them blinds it for one round, not for good.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::{bin, wait_until, Netns, Node};
use serde_json::Value;

/// Drops on the way in, as a lossy network would: the request is never answered (dropped on
/// the way out, the send itself fails with EPERM, which is an `io` error, not loss).
const RULES: &str = "table inet loss {
  chain in {
    type filter hook input priority 0;
    ip daddr 127.0.4.0/22 icmp type echo-request numgen random mod 4 == 0 drop
    ip daddr 127.0.9.1 icmp type echo-request drop
    ip daddr 127.0.9.2 icmp type echo-request icmp sequence & 1 == 0 drop
  }
}
";

#[test]
fn loss_is_measured_as_sent_and_fails_a_probe_only_as_configured() {
    let ns = Netns::new("loss");
    ns.nft(RULES);

    // A sweep of ten echoes to each of 1,026 targets.
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(bin())
        .args([
            "sweep",
            "--count",
            "10",
            "--packet-interval",
            "10ms",
            "--timeout",
            "300ms",
            "--max-loss",
            "0.2",
            "127.0.4.0/22",
            "127.0.9.1",
            "127.0.9.2",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "some targets are down: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: BTreeMap<String, Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["target"].as_str().unwrap().to_string(), v))
        .collect();
    assert_eq!(lines.len(), 1026);
    // A random quarter dropped: the mean loss over 1,024 targets is within 5 points of 25 %.
    let losses: Vec<f64> = lines
        .iter()
        .filter(|(t, _)| !t.starts_with("127.0.9."))
        .map(|(_, v)| v["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 1024);
    let mean = losses.iter().sum::<f64>() / losses.len() as f64;
    assert!((0.20..=0.30).contains(&mean), "mean loss {mean}");
    // Every echo dropped: down, timeout, loss 1, no times.
    let all = &lines["127.0.9.1"];
    assert_eq!(
        (all["ok"].as_bool(), all["error"].as_str()),
        (Some(false), Some("timeout")),
        "{all}"
    );
    assert_eq!(
        (
            all["sent"].as_u64(),
            all["received"].as_u64(),
            all["loss"].as_f64()
        ),
        (Some(10), Some(0), Some(1.0))
    );
    assert_eq!(all["rtt_avg_ms"], Value::Null);
    // Every other echo dropped: exactly half lost; over max_loss 0.2, down with reason loss.
    let half = &lines["127.0.9.2"];
    assert_eq!(
        (half["ok"].as_bool(), half["error"].as_str()),
        (Some(false), Some("loss")),
        "{half}"
    );
    assert_eq!(
        (half["received"].as_u64(), half["loss"].as_f64()),
        (Some(5), Some(0.5)),
        "{half}"
    );
    assert!(half["rtt_avg_ms"].as_f64().is_some(), "{half}");

    // The same through a node: without max_loss, half lost is up; with it, down (loss).
    let config = "[node]\nname = \"loss\"\n[probe]\ninterval = \"1s\"\ntimeout = \"300ms\"\ncount = 10\npacket_interval = \"10ms\"\n\
                  [[targets]]\nhosts = [\"127.0.9.2\"]\nprobe = \"icmp\"\n";
    let node = Node::start_in_netns(&ns.name, config, &["--http", "off"], &[]);
    let r = wait_until("a result", Duration::from_secs(5), || {
        node.results().into_iter().next()
    });
    assert_eq!(
        (r["ok"].as_bool(), r["loss"].as_f64()),
        (Some(true), Some(0.5)),
        "{r}"
    );
    drop(node);
    let strict = config.replace(
        "packet_interval = \"10ms\"\n",
        "packet_interval = \"10ms\"\nmax_loss = 0.2\n",
    );
    let node = Node::start_in_netns(&ns.name, &strict, &["--http", "off"], &[]);
    let r = wait_until("a result", Duration::from_secs(5), || {
        node.results().into_iter().next()
    });
    assert_eq!(
        (r["ok"].as_bool(), r["error"].as_str()),
        (Some(false), Some("loss")),
        "{r}"
    );
}

/// A firewall that learns: it records each echo request's identifier (`seen`) and drops those
/// it was told to (`blocked`).
const LEARNING: &str = "table inet learn {
  set seen { typeof icmp id; flags dynamic; size 4096; }
  set blocked { typeof icmp id; size 4096; }
  chain in {
    type filter hook input priority 0;
    ip daddr 127.0.9.9 icmp type echo-request icmp id @blocked drop
    ip daddr 127.0.9.9 icmp type echo-request add @seen { icmp id }
  }
}
";

/// The elements of nftables set `set` of table `learn` in `ns`.
fn set_elements(ns: &Netns, set: &str) -> Vec<u16> {
    ns.nft_list(&["set", "inet", "learn", set])
        .split("elements = {")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .map(|list| {
            list.split(',')
                .filter_map(|e| e.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_firewall_that_blocks_the_identifiers_it_has_seen_blinds_one_round_not_the_node() {
    let ns = Netns::new("ident");
    ns.nft(LEARNING);
    let config =
        "[node]\nname = \"ident\"\n[probe]\ninterval = \"500ms\"\ntimeout = \"200ms\"\ncount = 1\n\
                  [[targets]]\nhosts = [\"127.0.9.9\"]\nprobe = \"icmp\"\n";
    let node = Node::start_in_netns(&ns.name, config, &["--http", "off"], &[]);
    // The identifier changes from round to round.
    let seen = wait_until("two rounds' identifiers", Duration::from_secs(5), || {
        let ids = set_elements(&ns, "seen");
        (ids.len() >= 2).then_some(ids)
    });
    // Block every identifier used so far, as a firewall that learnt them would.
    let list: Vec<String> = seen.iter().map(u16::to_string).collect();
    ns.nft(&format!(
        "add element inet learn blocked {{ {} }}\n",
        list.join(", ")
    ));
    assert_eq!(set_elements(&ns, "blocked").len(), seen.len());
    let blocked_at = std::time::SystemTime::now();
    // The next rounds use new identifiers, and their echoes are answered.
    let after = wait_until(
        "an answered echo after the block",
        Duration::from_secs(5),
        || {
            node.results().into_iter().find(|r| {
                let ts = humantime::parse_rfc3339(r["ts"].as_str().unwrap()).unwrap();
                ts > blocked_at + Duration::from_millis(600) && r["ok"] == true
            })
        },
    );
    assert_eq!(after["received"].as_u64(), Some(1), "{after}");
    assert!(set_elements(&ns, "seen").len() > seen.len());
}

/// Counts echo requests over a rate: into 127.0.20.0/24 over 100/s, into 127.0.20.0/23 over
/// 300/s, into 127.0.22.0/24 over 100/s (token buckets with a burst of 5, for timer jitter: a
/// send a few milliseconds late may be followed by one on time).
const PACE_METER: &str = "table inet pace {
  counter net20 {}
  counter both {}
  counter net22 {}
  chain in {
    type filter hook input priority 0;
    ip daddr 127.0.20.0/24 icmp type echo-request limit rate over 100/second burst 5 packets counter name \"net20\"
    ip daddr 127.0.20.0/23 icmp type echo-request limit rate over 300/second burst 5 packets counter name \"both\"
    ip daddr 127.0.22.0/24 icmp type echo-request limit rate over 100/second burst 5 packets counter name \"net22\"
  }
}
";

/// Packets counted so far by named counter `name` of table `pace`.
fn over(ns: &Netns, name: &str) -> u64 {
    let text = ns.nft_list(&["counter", "inet", "pace", name]);
    text.split("packets ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("counter {name}: {text}"))
}

/// `ringpoll sweep ARGS` inside `ns`; asserts that every target was up.
fn sweep_in(ns: &Netns, args: &[&str]) {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(bin())
        .args(["sweep", "--timeout", "300ms", "--results", "/dev/null"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sweep {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn echoes_are_paced_per_network_and_per_node() {
    let ns = Netns::new("pace");
    ns.nft(PACE_METER);
    // Unpaced (the default 10,000/s per network), a /24 of 256 targets goes out in a burst the
    // meter sees: the check below can fail.
    sweep_in(&ns, &["127.0.20.0/24"]);
    let (net20, both) = (over(&ns, "net20"), over(&ns, "both"));
    assert!(
        net20 > 50 && both > 50,
        "an unpaced sweep: {net20}, {both} over"
    );

    // 100 per second per /24: two /24s go out side by side, neither over its rate.
    sweep_in(
        &ns,
        &[
            "--max-rate-per-network",
            "100",
            "127.0.20.0/24",
            "127.0.21.0/24",
        ],
    );
    assert_eq!(over(&ns, "net20"), net20, "over 100/s into one /24");

    // 300 per second from the node, networks unlimited.
    let both = over(&ns, "both");
    sweep_in(
        &ns,
        &[
            "--max-rate-per-network",
            "0",
            "--max-pps",
            "300",
            "127.0.20.0/23",
        ],
    );
    assert_eq!(over(&ns, "both"), both, "over 300/s from the node");

    // A node: 256 targets of one /24 at random phases of a 4 s interval come in bursts; paced
    // at 100/s, none is over.
    let config = "[node]\nname = \"pace\"\n[probe]\ninterval = \"4s\"\ntimeout = \"300ms\"\ncount = 1\nmax_rate_per_network = 100\n\
                  [[targets]]\ncidr = \"127.0.22.0/24\"\nprobe = \"icmp\"\n";
    let node = Node::start_in_netns(&ns.name, config, &["--http", "off"], &[]);
    wait_until("a round of 256 targets", Duration::from_secs(10), || {
        let seen: std::collections::BTreeSet<String> = node
            .results()
            .iter()
            .filter(|r| r["ok"] == true)
            .map(|r| r["target"].as_str().unwrap().to_string())
            .collect();
        (seen.len() == 256).then_some(())
    });
    assert_eq!(over(&ns, "net22"), 0, "over 100/s into one /24 from a node");
}

/// The results of `ringpoll sweep ARGS`, run through `prefix` (such as `ip netns exec NS`)
/// when it is not empty: exit status, one line per target (asserting each target once),
/// stderr.
fn sweep_results(prefix: &[&str], args: &[&str]) -> (Option<i32>, BTreeMap<String, Value>, String) {
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin());
            c
        }
        None => Command::new(bin()),
    };
    let out = cmd.arg("sweep").args(args).output().unwrap();
    let mut lines = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let target = v["target"].as_str().unwrap().to_string();
        assert!(lines.insert(target.clone(), v).is_none(), "{target} twice");
    }
    (
        out.status.code(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_config_sweep_of_thousands_of_loopback_addresses_loses_none() {
    // Measured before the batch engine: a config's 65,535 loopback addresses lost 11-31 echoes
    // a run and took 5-7x a command-line sweep. Here: a hosts file of 4,095 with one echo each,
    // a /20 with three, and, beside them on the per-target path, a host name and a TCP port.
    let dir = tempfile::tempdir().unwrap();
    let hosts: Vec<String> = (1..4096)
        .map(|i| format!("127.33.{}.{}", i / 256, i % 256))
        .collect();
    std::fs::write(dir.path().join("hosts.txt"), hosts.join("\n")).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = dir.path().join("sweep.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"s\"\n[probe]\ncount = 1\n\
             [[targets]]\nfile = \"hosts.txt\"\nprobe = \"icmp\"\n\
             [[targets]]\ncidr = \"127.34.0.0/20\"\nprobe = \"icmp\"\ncount = 3\npacket_interval = \"10ms\"\n\
             [[targets]]\nhosts = [\"localhost\"]\nprobe = \"icmp\"\n\
             [[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"tcp\"\nport = {port}\n"
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let (code, lines, err) = sweep_results(&[], &["--config", &config]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(lines.len(), 4095 + 4096 + 2, "{err}");
    assert!(
        err.contains(&format!("swept {} target(s)", 4095 + 4096 + 2)) && err.contains("down 0"),
        "{err}"
    );
    for (target, line) in &lines {
        assert_eq!(line["ok"], true, "{target}: {line}");
        let sent = if target.starts_with("127.34.") { 3 } else { 1 };
        if line["probe"] == "icmp" {
            assert_eq!(line["sent"], sent, "{line}");
            assert_eq!(line["received"], sent, "{line}");
        }
    }
    assert_eq!(lines[&format!("127.0.0.1:{port}")]["probe"], "tcp");
    assert_eq!(lines["localhost"]["probe"], "icmp");
}

#[test]
fn without_raw_sockets_a_sweep_runs_on_datagram_ping_sockets() {
    // In a namespace of its own whose ping_group_range admits `nobody` (the sysctl is per
    // namespace), without CAP_NET_RAW: the batch engine cannot open raw sockets, and every
    // target goes the per-target path.
    let ns = Netns::new("dgram");
    let ok = Command::new("ip")
        .args(["netns", "exec", &ns.name, "sysctl", "-qw"])
        .arg("net.ipv4.ping_group_range=65534 65534")
        .status()
        .unwrap()
        .success();
    assert!(ok, "sysctl in the namespace");
    let (code, lines, err) = sweep_results(
        &[
            "ip",
            "netns",
            "exec",
            &ns.name,
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ],
        &["--count", "2", "--packet-interval", "10ms", "127.0.0.0/26"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(lines.len(), 64, "{err}");
    assert!(lines
        .values()
        .all(|l| l["ok"] == true && l["sent"] == 2 && l["received"] == 2));
}

#[test]
fn an_icmp_error_quoting_the_echo_is_unreachable_for_a_sweep_and_for_a_node() {
    // A reject answers the echo request with "host unreachable" quoting it; the sweep's batch
    // engine and the node's per-target sockets must both call that down, not up.
    let ns = Netns::new("unreach");
    ns.nft(
        "table ip unreach {
  chain in {
    type filter hook input priority 0;
    ip daddr 127.0.9.3 icmp type echo-request reject with icmp type host-unreachable
  }
}
",
    );
    let (code, lines, err) = sweep_results(
        &["ip", "netns", "exec", &ns.name],
        &["--timeout", "500ms", "127.0.9.3", "127.0.9.4"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(lines["127.0.9.3"]["error"], "unreachable", "{lines:?}");
    assert_eq!(lines["127.0.9.4"]["ok"], true, "{lines:?}");

    let config =
        "[node]\nname = \"unreach\"\n[probe]\ninterval = \"1s\"\ntimeout = \"500ms\"\ncount = 1\n\
                  [[targets]]\nhosts = [\"127.0.9.3\", \"127.0.9.4\"]\nprobe = \"icmp\"\n";
    let node = Node::start_in_netns(&ns.name, config, &["--http", "off"], &[]);
    let last = wait_until("a result for each", Duration::from_secs(10), || {
        let results = node.results();
        let of = |t: &str| results.iter().rev().find(|r| r["target"] == t).cloned();
        Some((of("127.0.9.3")?, of("127.0.9.4")?))
    });
    assert_eq!(last.0["error"], "unreachable", "{}", last.0);
    assert_eq!(last.1["ok"], true, "{}", last.1);
}
