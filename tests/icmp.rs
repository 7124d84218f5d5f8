//! ICMP echoes through real sockets, inside a network namespace of the test's own where
//! nftables drops echo requests: a random quarter of those to 1,024 targets, every one to one
//! target, and every other one (even sequence numbers) to another. Loss is measured as sent,
//! and a probe fails on it only as configured.

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
