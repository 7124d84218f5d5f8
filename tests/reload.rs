//! Reloading a running node (the real binary): SIGHUP, `ringpoll reload` and `POST /-/reload`
//! apply a new target list without disturbing the targets that did not change; a bad config is
//! refused and the node keeps going; keys that need a restart are named. Each test's node uses
//! addresses of its own (127.88.T.1).

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::{bin, by_target, http_get, http_json, now_ms, wait_until, Node};
use serde_json::Value;

const INTERVAL_MS: i64 = 1_000;

fn write_config(node: &Node, text: &str) {
    std::fs::write(node.dir.path().join("config.toml"), text).unwrap();
}

/// A config of ICMP groups: `groups` is a list of (hosts, extra keys).
fn config(groups: &[(&[&str], &str)], probe_extra: &str) -> String {
    let mut s = format!(
        "[node]\nname = \"r1\"\n[probe]\ninterval = \"1s\"\ntimeout = \"500ms\"\n{probe_extra}\n"
    );
    for (hosts, extra) in groups {
        let list: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
        s.push_str(&format!(
            "[[targets]]\nhosts = [{}]\nprobe = \"icmp\"\n{extra}\n",
            list.join(", ")
        ));
    }
    s
}

/// Results by target: (ms since the epoch, ok).
type ByTarget = BTreeMap<String, Vec<(i64, bool)>>;

/// Results and state events after `after` (ms), by target.
fn after(node: &Node, after: i64) -> (ByTarget, Vec<Value>) {
    let all = node.lines();
    let ts = |r: &Value| {
        humantime::parse_rfc3339(r["ts"].as_str().unwrap())
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let (events, results): (Vec<Value>, Vec<Value>) = all
        .into_iter()
        .filter(|r| ts(r) > after)
        .partition(|r| r.get("event").is_some());
    (by_target(&results), events)
}

#[test]
fn sighup_applies_a_new_target_list_and_leaves_the_rest_undisturbed() {
    let http = "127.88.1.1:9464";
    let first = config(
        &[(&["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"], "")],
        "",
    );
    let node = Node::start_args(&first, &["--http", http], &[]);
    wait_until(
        "a result for each of 4 targets",
        Duration::from_secs(5),
        || (by_target(&node.results()).len() == 4).then_some(()),
    );
    // Remove .4, add .5 and .6, give .2 a label and .3 another interval.
    write_config(
        &node,
        &config(
            &[
                (&["127.0.0.1", "127.0.0.5", "127.0.0.6"], ""),
                (&["127.0.0.2"], "labels = { site = \"moved\" }"),
                (&["127.0.0.3"], "interval = \"2s\""),
            ],
            "",
        ),
    );
    let reloaded = now_ms();
    node.signal(libc::SIGHUP);
    node.wait_log("config reloaded", 1, Duration::from_secs(5));
    assert!(
        node.log().contains("+2 -1 ~2"),
        "counts in the log: {}",
        node.log()
    );
    // Within one interval: the new targets have results, the removed one has stopped.
    wait_until(
        "first results of the added targets",
        Duration::from_secs(3),
        || {
            let (r, _) = after(&node, reloaded);
            (r.contains_key("127.0.0.5") && r.contains_key("127.0.0.6")).then_some(())
        },
    );
    wait_until("4 more seconds", Duration::from_secs(6), || {
        (now_ms() > reloaded + 4 * INTERVAL_MS + 500).then_some(())
    });
    let (r, events) = after(&node, reloaded);
    let stopped_by = reloaded + INTERVAL_MS + 500;
    assert!(
        r.get("127.0.0.4")
            .is_none_or(|v| v.iter().all(|x| x.0 < stopped_by)),
        "127.0.0.4 still probed after its removal: {:?}",
        r.get("127.0.0.4")
    );
    // The unchanged target: one result per interval throughout, no gap.
    let all = by_target(&node.results());
    let around: Vec<i64> = all["127.0.0.1"]
        .iter()
        .map(|x| x.0)
        .filter(|t| *t > reloaded - 2 * INTERVAL_MS)
        .collect();
    for w in around.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            (700..=1300).contains(&gap),
            "127.0.0.1 results {gap} ms apart around the reload: {around:?}"
        );
    }
    // The relabelled target carries its new label from its next probe on.
    let lines = node.results();
    let last = lines.iter().rfind(|l| l["target"] == "127.0.0.2").unwrap();
    assert_eq!(last["labels"]["site"], "moved");
    // The target with a new interval: 2 s apart now.
    let three: Vec<i64> = r["127.0.0.3"].iter().map(|x| x.0).collect();
    assert!(three.len() >= 2, "{three:?}");
    for w in three.windows(2).skip(1) {
        assert!((1_700..=2_300).contains(&(w[1] - w[0])), "{three:?}");
    }
    // No state event for any target that did not change state.
    assert!(events.is_empty(), "events after the reload: {events:?}");
    // The removed target left /metrics.
    let metrics = http_get(http, "/metrics").unwrap();
    assert!(!metrics.contains("target=\"127.0.0.4\""), "{metrics}");
    assert!(metrics.contains("ringpoll_config_last_reload_successful 1"));
}

#[test]
fn a_bad_reload_is_refused_and_the_node_keeps_its_config() {
    let http = "127.88.2.1:9464";
    let good = config(&[(&["127.0.0.1", "127.0.0.2"], "")], "");
    let node = Node::start_args(&good, &["--http", http], &[]);
    wait_until("results", Duration::from_secs(5), || {
        (by_target(&node.results()).len() == 2).then_some(())
    });
    // A timeout longer than the interval on line 5.
    write_config(
        &node,
        "[node]\nname = \"r1\"\n[probe]\ninterval = \"1s\"\ntimeout = \"5s\"\n[[targets]]\nhosts = [\"127.0.0.9\"]\nprobe = \"icmp\"\n",
    );
    let out = Command::new(bin())
        .args(["reload", "--http", http])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("config.toml:5:11: probe.timeout (5s) must be less than the interval (1s)"),
        "{stderr}"
    );
    let refused = now_ms();
    // The node logged it once and goes on probing the old targets.
    node.wait_log("reload refused", 1, Duration::from_secs(2));
    wait_until("two more rounds", Duration::from_secs(5), || {
        let (r, _) = after(&node, refused);
        (r.get("127.0.0.1").is_some_and(|v| v.len() >= 2) && !r.contains_key("127.0.0.9"))
            .then_some(())
    });
    let metrics = http_get(http, "/metrics").unwrap();
    assert!(
        metrics.contains("ringpoll_config_last_reload_successful 0"),
        "{metrics}"
    );
    let status = http_json(http, "/status?scope=local").unwrap();
    assert_eq!(status["config"]["last_reload_successful"], false);
    assert!(status["config"]["last_error"]
        .as_str()
        .unwrap()
        .contains("probe.timeout"));

    // Fixed: a second reload (over HTTP directly) succeeds and says what changed.
    write_config(
        &node,
        &config(&[(&["127.0.0.1", "127.0.0.3"], "")], "max_in_flight = 64"),
    );
    let resp = ureq::post(&format!("http://{http}/-/reload"))
        .send_empty()
        .unwrap()
        .body_mut()
        .read_json::<Value>()
        .unwrap();
    assert_eq!(resp["added"], 1);
    assert_eq!(resp["removed"], 1);
    assert_eq!(
        resp["needs_restart"],
        serde_json::json!(["probe.max_in_flight"])
    );
    let status = http_json(http, "/status?scope=local").unwrap();
    assert_eq!(status["config"]["last_reload_successful"], true);
    assert_eq!(
        status["config"]["needs_restart"],
        serde_json::json!(["probe.max_in_flight"])
    );
    // The CLI says the same.
    let out = Command::new(bin())
        .args(["reload", "--http", http])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("reloaded: 2 target(s), 0 added, 0 removed, 0 changed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("needs a restart to take effect: probe.max_in_flight"),
        "{stdout}"
    );
}

#[test]
fn a_burst_of_sighups_reloads_and_never_stops_the_node() {
    let node = Node::start(&config(&[(&["127.0.0.1"], "")], ""), &[]);
    node.wait_log("targets owned: 1", 1, Duration::from_secs(5));
    for _ in 0..5 {
        node.signal(libc::SIGHUP);
    }
    node.wait_log("config reloaded", 1, Duration::from_secs(5));
    let seen = node.results().len();
    wait_until("results go on", Duration::from_secs(5), || {
        (node.results().len() >= seen + 2).then_some(())
    });
    assert!(!node.log().contains("shutting down"), "{}", node.log());
}

/// The rolling change of the issue, small: three nodes on one list; n1 and n2 reload a new one
/// (16 added, 8 removed, 4 relabelled) while n3 keeps the old one for a while, then reloads
/// too. No target of the union goes longer than one interval + 1 s without a result; once
/// settled each round of each target is probed once; the removed ones stop once the last node
/// drops them; no state event for targets whose state did not change.
#[test]
fn a_rolling_reload_across_three_nodes_leaves_no_hole() {
    use common::{wait_converged, Cluster, Coverage};
    let old: Vec<String> = (0..64).map(|i| format!("127.0.10.{i}")).collect();
    let removed: Vec<String> = old[..8].to_vec();
    let relabelled: Vec<String> = old[8..12].to_vec();
    let kept: Vec<String> = old[12..].to_vec();
    let added: Vec<String> = (0..16).map(|i| format!("127.0.11.{i}")).collect();
    let list = |hosts: &[String], extra: &str| {
        let quoted: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
        format!(
            "[[targets]]\nhosts = [{}]\nprobe = \"icmp\"\n{extra}\n",
            quoted.join(", ")
        )
    };
    // Three echoes per probe (the default): a probe takes up to 200 ms + the timeout.
    let head = "[node]\nname = \"x\"\n[probe]\ninterval = \"1s\"\ntimeout = \"500ms\"\n";
    let span_ms = 700;
    let old_config = format!("{head}{}", list(&old, ""));
    let new_config = format!(
        "{head}{}{}",
        list(&[kept.clone(), added.clone()].concat(), ""),
        list(&relabelled, "labels = { rack = \"b\" }")
    );
    let cluster = Cluster::new("127.88.3", &old_config);
    let n1 = cluster.start(1, &[]);
    let n2 = cluster.start(2, &[1]);
    let n3 = cluster.start(3, &[1]);
    wait_converged(&[&n1, &n2, &n3], 3, Duration::from_secs(15));
    // Every target has had its first round, and a second has passed: the window checked below
    // starts 1 s before the first reload, so it must not start before the first round (its
    // results come an interval + a probe's three echoes after the ring).
    wait_until(
        "a first round of every target",
        Duration::from_secs(5),
        || {
            let seen: std::collections::BTreeSet<String> = [&n1, &n2, &n3]
                .iter()
                .flat_map(|n| n.results())
                .filter_map(|r| r["target"].as_str().map(str::to_string))
                .collect();
            (seen.len() == old.len()).then_some(())
        },
    );
    let round = now_ms();
    wait_until("a second more", Duration::from_secs(2), || {
        (now_ms() > round + 1_000).then_some(())
    });
    let t0 = now_ms();
    for n in [&n1, &n2] {
        write_config(n, &new_config);
        n.signal(libc::SIGHUP);
    }
    for n in [&n1, &n2, &n3] {
        n.wait_log("other targets than this node", 1, Duration::from_secs(5));
    }
    // n3 keeps the old list for a while.
    wait_until("6 s of mixed lists", Duration::from_secs(8), || {
        (now_ms() > t0 + 6_000).then_some(())
    });
    let t1 = now_ms();
    write_config(&n3, &new_config);
    n3.signal(libc::SIGHUP);
    // Each node names each member whose list it saw differ and agree again (n1 and n2, which
    // reloaded within the catalog's settle time of each other, may never have seen each other
    // differ).
    for (n, other) in [(&n1, "n3"), (&n2, "n3"), (&n3, "n1"), (&n3, "n2")] {
        let again = format!("member {other} lists the same targets as this node again");
        n.wait_log(&again, 1, Duration::from_secs(5));
    }
    wait_converged(&[&n1, &n2, &n3], 3, Duration::from_secs(10));
    // Make-before-break: an old owner keeps probing a target it lost until every member runs
    // the new ring (a round may be probed twice meanwhile, by design). Settled is when no node
    // keeps any, and the last probe an old owner started has ended.
    wait_until("every hand-off complete", Duration::from_secs(5), || {
        [&n1, &n2, &n3]
            .iter()
            .all(|n| {
                n.log()
                    .lines()
                    .rev()
                    .find(|l| l.contains("targets owned:"))
                    .is_some_and(|l| l.contains("(+0 kept"))
            })
            .then_some(())
    });
    let released = now_ms();
    wait_until(
        "the probes started before it ended",
        Duration::from_secs(2),
        || (now_ms() > released + span_ms).then_some(()),
    );
    let settled = now_ms();
    wait_until("3 settled rounds", Duration::from_secs(6), || {
        (now_ms() > settled + 3_500).then_some(())
    });
    let end = now_ms();
    let nodes = [&n1, &n2, &n3];
    let mut all = Vec::new();
    for n in nodes {
        all.extend(n.lines());
    }
    let only = |ids: &[String]| -> Vec<Value> {
        all.iter()
            .filter(|r| ids.iter().any(|i| r["target"] == i.as_str()))
            .cloned()
            .collect()
    };
    let bound = INTERVAL_MS + 1_000;
    // Targets listed throughout: no hole from before the first reload to the end.
    Coverage::of(
        &only(&[kept.clone(), relabelled.clone()].concat()),
        t0 - 1_000,
        end,
        INTERVAL_MS,
        1,
    )
    .assert_gaps_within(56, bound);
    // Removed ones: covered while n3 still listed them, then stopped.
    Coverage::of(&only(&removed), t0 - 1_000, t1, INTERVAL_MS, 1).assert_gaps_within(8, bound);
    let ms = |r: &Value| {
        let ts = humantime::parse_rfc3339(r["ts"].as_str().unwrap()).unwrap();
        ts.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let late: Vec<Value> = only(&removed)
        .into_iter()
        .filter(|r| ms(r) > t1 + INTERVAL_MS + 1_000)
        .collect();
    assert!(
        late.is_empty(),
        "removed targets probed after n3 dropped them: {late:?}"
    );
    // Added ones: probed from within one interval of the first reload.
    Coverage::of(&only(&added), t0 + 1_500, end, INTERVAL_MS, 1).assert_gaps_within(16, bound);
    // Settled: each round of each target probed by one node.
    Coverage::of(&all, settled, end, INTERVAL_MS, 1).assert_no_over_replication();
    // No state events since the first reload (every target stayed up).
    let events: Vec<&Value> = all
        .iter()
        .filter(|r| r.get("event").is_some() && ms(r) > t0)
        .collect();
    assert!(events.is_empty(), "{events:?}");
}

/// The hole the issue measured: two nodes started with different lists (a /28 and the /27
/// around it). Every target of the union is probed, by a node that lists it; the difference is
/// logged and shown in the status.
#[test]
fn nodes_with_different_lists_probe_the_union() {
    use common::{by_target_node, Cluster};
    let config = |cidr: &str| {
        format!("[node]\nname = \"x\"\n[probe]\ninterval = \"1s\"\ntimeout = \"500ms\"\n[[targets]]\ncidr = \"{cidr}\"\nprobe = \"icmp\"\n")
    };
    let small = Cluster::new("127.88.4", &config("127.8.3.0/28"));
    let large = Cluster::new("127.88.4", &config("127.8.3.0/27"));
    let http = small.addr_port(1, 9464);
    let n1 = small.start_with(1, &[], &["--http", &http], &[]);
    let n2 = large.start(2, &[1]);
    n1.wait_log("16 more, 0 fewer", 1, Duration::from_secs(10));
    n2.wait_log("0 more, 16 fewer", 1, Duration::from_secs(10));
    let from = now_ms() + 1_500;
    wait_until("two rounds", Duration::from_secs(6), || {
        (now_ms() > from + 2_500).then_some(())
    });
    let mut all = n1.results();
    all.extend(n2.results());
    let recent: Vec<Value> = all
        .into_iter()
        .filter(|r| {
            humantime::parse_rfc3339(r["ts"].as_str().unwrap())
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64
                > from
        })
        .collect();
    let by = by_target_node(&recent);
    assert_eq!(by.len(), 32, "targets probed: {:?}", by.keys());
    // The 16 only n2 lists are probed by n2.
    for i in 16..32 {
        let t = format!("127.8.3.{i}");
        assert!(by[&t].iter().all(|r| r.1 == "n2"), "{t}: {:?}", by[&t]);
    }
    let status = http_json(&http, "/status?scope=local").unwrap();
    assert_eq!(status["targets"]["total"], 32);
    assert_eq!(status["targets"]["not_everywhere"], 16);
    let counts: Vec<&Value> = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["target_count"])
        .collect();
    assert_eq!(counts, [16, 32]);
    let metrics = http_get(&http, "/metrics").unwrap();
    assert!(
        metrics.contains("ringpoll_targets_not_everywhere 16"),
        "{metrics}"
    );
}

/// 4,096 addresses never listed before, for reload `round` (127.32.0.0 onwards).
fn fresh_addresses(round: usize) -> Vec<String> {
    (0..4096)
        .map(|i| {
            let idx = round * 4096 + i;
            format!(
                "127.{}.{}.{}",
                32 + (idx >> 16),
                (idx >> 8) & 255,
                idx & 255
            )
        })
        .collect()
}

/// The node's resident memory in MiB, at its lowest over `window` (reading past the moments
/// right after a reload, when the retired probe actors and the new ones both live and the
/// allocator has not yet given the freed memory back).
fn settled_rss_mib(node: &Node, window: Duration) -> u64 {
    let read = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", node.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS");
        kib / 1024
    };
    let until = std::time::Instant::now() + window;
    let mut low = read();
    wait_until("the window", window + Duration::from_secs(1), || {
        low = low.min(read());
        (std::time::Instant::now() >= until).then_some(())
    });
    low
}

/// Issue 28: memory follows what the node runs, not how many targets it has ever run. A
/// watched hosts file replaced 30 times by 4,096 addresses never listed before (SIGHUP each
/// time): RSS after the 30th within 30 MiB of RSS after the 5th (before: +4.5 MB a reload),
/// and `/targets` and `/metrics` list the current targets only.
#[test]
fn thirty_reloads_to_new_targets_leave_memory_flat_and_only_the_current_targets_listed() {
    let http = "127.88.5.1:9464";
    let node = Node::start_args(
        "[node]\nname = \"r1\"\n[probe]\ninterval = \"2s\"\ntimeout = \"1s\"\n[[targets]]\nfile = \"hosts.txt\"\nprobe = \"icmp\"\n",
        &["--http", http, "--results", "/dev/null"],
        &[],
    );
    let hosts = node.dir.path().join("hosts.txt");
    let listed = |round: usize| {
        let tmp = node.dir.path().join("hosts.tmp");
        std::fs::write(&tmp, fresh_addresses(round).join("\n")).unwrap();
        std::fs::rename(&tmp, &hosts).unwrap();
    };
    // Written before the node reads it (it starts on an empty file otherwise).
    listed(0);
    let targets = |round: usize| {
        let want: std::collections::BTreeSet<String> = fresh_addresses(round).into_iter().collect();
        wait_until(
            &format!("the targets of reload {round}, each with a result"),
            Duration::from_secs(60),
            || {
                let t = http_json(http, "/targets")?;
                let got: std::collections::BTreeSet<String> = t["targets"]
                    .as_array()?
                    .iter()
                    .filter_map(|r| Some(r["target"].as_str()?.to_string()))
                    .collect();
                (got == want).then_some(())
            },
        )
    };
    targets(0);
    let mut at_5 = 0;
    for round in 1..=30 {
        listed(round);
        node.signal(libc::SIGHUP);
        targets(round);
        if round == 5 {
            at_5 = settled_rss_mib(&node, Duration::from_secs(7));
        }
    }
    let at_30 = settled_rss_mib(&node, Duration::from_secs(7));
    eprintln!("RSS after the 5th reload {at_5} MiB, after the 30th {at_30} MiB");
    assert!(
        at_30 <= at_5 + 30,
        "RSS grew from {at_5} MiB after the 5th reload to {at_30} MiB after the 30th"
    );
    let metrics = http_get(http, "/metrics").expect("metrics");
    let current: std::collections::BTreeSet<String> = fresh_addresses(30).into_iter().collect();
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("probe_success{"))
        .collect();
    assert_eq!(series.len(), 4096);
    for l in series {
        let target = l
            .split("target=\"")
            .nth(1)
            .and_then(|r| r.split('"').next());
        assert!(
            target.is_some_and(|t| current.contains(t)),
            "a series of a target gone: {l}"
        );
    }
}
