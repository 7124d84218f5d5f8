//! k-of-n confirmation with real processes: three nodes in a network namespace of the test's
//! own, each probing from its own source address (its cluster address, 127.0.1.N), with
//! nftables dropping echoes from chosen sources to chosen targets.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::{wait_converged, wait_until, Cluster, Netns, Node};
use serde_json::Value;

const TARGETS: [&str; 8] = [
    "127.0.5.1",
    "127.0.5.2",
    "127.0.5.3",
    "127.0.5.4",
    "127.0.5.5",
    "127.0.5.6",
    "127.0.5.7",
    "127.0.5.8",
];
const CUT: [&str; 4] = ["127.0.5.1", "127.0.5.2", "127.0.5.3", "127.0.5.4"];

/// Node `n`'s config: replicas 3, confirm 2, probing from 127.0.1.`n`.
fn config(n: u8) -> String {
    let hosts: Vec<String> = TARGETS.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "[node]\nname = \"unset\"\n[cluster]\nreplicas = 3\n\
         [probe]\ninterval = \"1s\"\ntimeout = \"500ms\"\ncount = 1\nsource = \"127.0.1.{n}\"\n\
         [[targets]]\nhosts = [{}]\nprobe = \"icmp\"\nconfirm = 2\n",
        hosts.join(", ")
    )
}

fn start(ns: &Netns, n: u8, seeds: &[u8]) -> Node {
    let cluster = Cluster {
        subnet: "127.0.1".into(),
        config: config(n),
        netns: Some(ns.name.clone()),
    };
    let http = format!("127.0.1.{n}:9464");
    cluster.start_with(n, seeds, &["--http", &http], &[])
}

/// `GET path` of node `n`'s HTTP endpoint, from inside the namespace.
fn http_json(ns: &Netns, n: u8, path: &str) -> Option<Value> {
    let url = format!("http://127.0.1.{n}:9464{path}");
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c"])
        .arg("import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())")
        .arg(&url)
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// Drops echo requests from `sources` (last octets) to the four cut targets.
fn cut_from(ns: &Netns, sources: &[u8]) {
    let from: Vec<String> = sources.iter().map(|n| format!("127.0.1.{n}")).collect();
    ns.nft(&format!(
        "table inet vantage {{\n chain out {{\n  type filter hook output priority 0;\n  \
         ip saddr {{ {} }} ip daddr {{ {} }} icmp type echo-request drop\n }}\n}}\n",
        from.join(", "),
        CUT.join(", ")
    ));
}

fn heal(ns: &Netns) {
    ns.nft("delete table inet vantage\n");
}

/// Every node's state events, per target in time order: (node, from, to, vantages).
fn events(nodes: &[&Node]) -> BTreeMap<String, Vec<(String, String, String, Value)>> {
    let mut all: Vec<Value> = nodes.iter().flat_map(|n| n.events()).collect();
    // RFC 3339 UTC with milliseconds: the text sorts as the time does.
    all.sort_by(|a, b| a["ts"].as_str().cmp(&b["ts"].as_str()));
    let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for e in all {
        out.entry(e["target"].as_str().unwrap().to_string())
            .or_default()
            .push((
                e["node"].as_str().unwrap().to_string(),
                e["from"].as_str().unwrap().to_string(),
                e["to"].as_str().unwrap().to_string(),
                e["vantages"].clone(),
            ));
    }
    out
}

/// Waits until every node has `more` further results of every target it probes.
fn rounds(nodes: &[&Node], more: usize) {
    let seen: Vec<usize> = nodes.iter().map(|n| n.results().len()).collect();
    wait_until(
        &format!("{more} more rounds"),
        Duration::from_secs(5 + 2 * more as u64),
        || {
            nodes
                .iter()
                .zip(&seen)
                .all(|(n, s)| n.results().len() >= s + more * TARGETS.len())
                .then_some(())
        },
    );
}

/// The targets node `n` reports degraded.
fn degraded(ns: &Netns, n: u8) -> Vec<String> {
    let Some(answer) = http_json(ns, n, "/targets?state=up") else {
        return Vec::new();
    };
    answer["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["degraded"] == true)
        .map(|t| t["target"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_target_is_down_only_when_k_vantages_agree_and_one_event_is_written_per_change() {
    let ns = Netns::new("vantage");
    let n1 = start(&ns, 1, &[]);
    let n2 = start(&ns, 2, &[1]);
    let n3 = start(&ns, 3, &[1]);
    wait_converged(&[&n1, &n2, &n3], 3, Duration::from_secs(20));
    let nodes = [&n1, &n2, &n3];
    // Every node probes every target (replicas 3), and all are up.
    wait_until(
        "ok results of every target from every node",
        Duration::from_secs(15),
        || {
            nodes
                .iter()
                .all(|n| {
                    TARGETS.iter().all(|t| {
                        n.results()
                            .iter()
                            .any(|r| r["target"] == *t && r["ok"] == true)
                    })
                })
                .then_some(())
        },
    );

    // n1 cannot reach four targets: they are degraded (on every owner), never down.
    cut_from(&ns, &[1]);
    for n in 1..=3 {
        wait_until(
            &format!("n{n} reports the four cut targets degraded"),
            Duration::from_secs(15),
            || {
                let mut d = degraded(&ns, n);
                d.sort();
                (d == CUT).then_some(())
            },
        );
    }
    rounds(&nodes, 2);
    assert!(
        events(&nodes).is_empty(),
        "no event while one vantage sees them down: {:?}",
        events(&nodes)
    );

    // n2 cannot reach them either: two of three vantages agree, one down event per target.
    cut_from(&ns, &[1, 2]);
    let down = wait_until(
        "a down event for each cut target",
        Duration::from_secs(15),
        || {
            let e = events(&nodes);
            CUT.iter()
                .all(|t| e.get(*t).is_some_and(|v| v.iter().any(|x| x.2 == "down")))
                .then_some(e)
        },
    );
    rounds(&nodes, 3);
    let e = events(&nodes);
    assert_eq!(e.len(), 4, "events of uncut targets: {e:?}");
    for t in CUT {
        let v = &e[t];
        assert_eq!(v.len(), 1, "{t}: exactly one event cluster-wide: {v:?}");
        let (_, from, to, vantages) = &v[0];
        assert_eq!((from.as_str(), to.as_str()), ("up", "down"), "{t}");
        assert_eq!(vantages["n1"], "down", "{t}: {vantages}");
        assert_eq!(vantages["n2"], "down", "{t}: {vantages}");
        assert_eq!(vantages["n3"], "up", "{t}: {vantages}");
    }
    drop(down);

    // The vantage that still sees them up dies: n1 and n2 still agree, so they stay down, and
    // whichever node becomes their primary writes no second event.
    n3.signal(libc::SIGKILL);
    wait_converged(&[&n1, &n2], 2, Duration::from_secs(20));
    rounds(&[&n1, &n2], 3);
    let e = events(&nodes);
    for t in CUT {
        assert_eq!(e[t].len(), 1, "{t}: {:?}", e[t]);
    }

    // The cut heals: one up event per target.
    heal(&ns);
    wait_until(
        "an up event for each cut target",
        Duration::from_secs(15),
        || {
            let e = events(&nodes);
            CUT.iter()
                .all(|t| e.get(*t).is_some_and(|v| v.iter().any(|x| x.2 == "up")))
                .then_some(())
        },
    );
    rounds(&[&n1, &n2], 3);
    let e = events(&nodes);
    for t in CUT {
        let to: Vec<&str> = e[t].iter().map(|x| x.2.as_str()).collect();
        assert_eq!(to, ["down", "up"], "{t}: {:?}", e[t]);
    }
}
