//! k-of-n confirmation and notifications with real processes: three nodes in a network
//! namespace of the test's own, each probing from its own source address (its cluster address,
//! 127.0.1.N), with nftables dropping echoes from chosen sources to chosen targets; a real
//! Alertmanager (Debian's prometheus-alertmanager, gossip off) and a webhook receiver (python3's
//! http.server) on 127.0.1.9 in the same namespace. Runs about 40 s.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{wait_converged, wait_until, Cluster, Netns, Node};
use serde_json::Value;

/// 127.0.5.1 to 127.0.5.16.
fn targets() -> Vec<String> {
    (1..=16).map(|i| format!("127.0.5.{i}")).collect()
}

const AM: &str = "127.0.1.9:9093";
const HOOK: &str = "127.0.1.9:8080";

/// Node `n`'s config: replicas 3, confirm 2, probing from 127.0.1.`n`; alerts to the
/// Alertmanager (resent every 2 s, so ending 6 s ahead), events to the webhook.
fn config(n: u8) -> String {
    let hosts: Vec<String> = targets().iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "[node]\nname = \"unset\"\n[cluster]\nreplicas = 3\n\
         [probe]\ninterval = \"1s\"\ntimeout = \"500ms\"\ncount = 1\nsource = \"127.0.1.{n}\"\n\
         [[notify]]\nkind = \"alertmanager\"\nurl = \"http://{AM}\"\nresend = \"2s\"\n\
         [[notify]]\nkind = \"webhook\"\nurl = \"http://{HOOK}/events\"\n\
         [[targets]]\nhosts = [{}]\nprobe = \"icmp\"\nconfirm = 2\nlabels = {{ site = \"lab\" }}\n",
        hosts.join(", ")
    )
}

/// A process run inside the namespace for the test's life.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Alertmanager on 127.0.1.9:9093, HA gossip off, routing every alert to a receiver that
/// sends nothing.
fn alertmanager(ns: &Netns, dir: &Path) -> Server {
    std::fs::write(
        dir.join("am.yml"),
        "route:\n  receiver: \"null\"\nreceivers:\n  - name: \"null\"\n",
    )
    .unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "prometheus-alertmanager"])
        .arg(format!("--config.file={}", dir.join("am.yml").display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address={AM}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("am.log")).unwrap())
        .spawn()
        .expect("prometheus-alertmanager (the test command installs it)");
    Server(child)
}

/// A webhook receiver on `host`:8080 (inside `ns` if set): each POST body becomes a line of
/// `out`, after `delay_s` seconds.
fn webhook(ns: Option<&Netns>, host: &str, out: &Path, delay_s: f64) -> Server {
    let script = r#"
import http.server, sys, time
out, delay = open(sys.argv[1], "a"), float(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(delay)
        out.write(body.decode() + "\n"); out.flush()
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer((sys.argv[3], 8080), H).serve_forever()
"#;
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.name, "python3"]);
            c
        }
        None => Command::new("python3"),
    };
    let child = cmd
        .args(["-c", script])
        .arg(out)
        .arg(delay_s.to_string())
        .arg(host)
        .stdout(Stdio::null())
        .spawn()
        .expect("python3");
    Server(child)
}

/// `GET url` from inside the namespace (empty on failure).
fn get_text(ns: &Netns, url: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c"])
        .arg("import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())")
        .arg(url)
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// `GET url` from inside the namespace, as JSON.
fn get_json(ns: &Netns, url: &str) -> Option<Value> {
    serde_json::from_str(&get_text(ns, url)).ok()
}

/// The alerts Alertmanager holds active.
fn active_alerts(ns: &Netns) -> Option<Vec<Value>> {
    let v = get_json(ns, &format!("http://{AM}/api/v2/alerts?active=true"))?;
    v.as_array().cloned()
}

/// The events the webhook received: (target, to).
fn hooked(out: &PathBuf) -> Vec<(String, String)> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|e| {
            (
                e["target"].as_str().unwrap_or("").to_string(),
                e["to"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
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
    get_json(ns, &format!("http://127.0.1.{n}:9464{path}"))
}

/// Drops echo requests from `sources` (last octets) to the `cut` targets.
fn cut_from(ns: &Netns, sources: &[u8], cut: &[String]) {
    let from: Vec<String> = sources.iter().map(|n| format!("127.0.1.{n}")).collect();
    ns.nft(&format!(
        "table inet vantage {{\n chain out {{\n  type filter hook output priority 0;\n  \
         ip saddr {{ {} }} ip daddr {{ {} }} icmp type echo-request drop\n }}\n}}\n",
        from.join(", "),
        cut.join(", ")
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
                .all(|(n, s)| n.results().len() >= s + more * targets().len())
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
fn a_target_is_down_only_when_k_vantages_agree_and_is_reported_and_alerted_once() {
    let ns = Netns::new("vantage");
    let dir = tempfile::tempdir().unwrap();
    let _am = alertmanager(&ns, dir.path());
    let hook_out = dir.path().join("hook.jsonl");
    let _hook = webhook(Some(&ns), "127.0.1.9", &hook_out, 0.0);
    let n1 = start(&ns, 1, &[]);
    let n2 = start(&ns, 2, &[1]);
    let n3 = start(&ns, 3, &[1]);
    wait_converged(&[&n1, &n2, &n3], 3, Duration::from_secs(20));
    let nodes = [&n1, &n2, &n3];
    let all = targets();
    // Every node probes every target (replicas 3), and all are up.
    wait_until(
        "ok results of every target from every node",
        Duration::from_secs(15),
        || {
            nodes
                .iter()
                .all(|n| {
                    all.iter().all(|t| {
                        n.results()
                            .iter()
                            .any(|r| r["target"] == *t && r["ok"] == true)
                    })
                })
                .then_some(())
        },
    );
    // The four targets to cut: those n3 is the primary of, so that n3 (the vantage that still
    // sees them up) is the one sending their alerts when it is killed below.
    let cut: Vec<String> = all
        .iter()
        .filter(|t| {
            let owner = http_json(&ns, 1, &format!("/owner/{t}?probe=icmp")).unwrap();
            owner["owners"][0] == "n3"
        })
        .take(4)
        .cloned()
        .collect();
    assert_eq!(
        cut.len(),
        4,
        "n3 is the primary of at least four of the targets"
    );

    // n1 cannot reach them: degraded (on every owner), never down, no alert.
    cut_from(&ns, &[1], &cut);
    for n in 1..=3 {
        wait_until(
            &format!("n{n} reports the four cut targets degraded"),
            Duration::from_secs(15),
            || {
                let mut d = degraded(&ns, n);
                d.sort();
                let mut want = cut.clone();
                want.sort();
                (d == want).then_some(())
            },
        );
    }
    // The CLI lists them, and each target's primary exports it degraded, once.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            common::bin(),
            "status",
            "--http",
            "127.0.1.1:9464",
        ])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("4 target(s) degraded"), "{shown}");
    assert!(cut.iter().all(|t| shown.contains(t.as_str())), "{shown}");
    let exported: usize = (1..=3)
        .map(|n| {
            get_text(&ns, &format!("http://127.0.1.{n}:9464/metrics"))
                .lines()
                .filter(|l| l.starts_with("ringpoll_target_degraded{") && l.ends_with(" 1"))
                .count()
        })
        .sum();
    assert_eq!(
        exported, 4,
        "ringpoll_target_degraded 1, once per cut target"
    );
    rounds(&nodes, 2);
    assert!(
        events(&nodes).is_empty(),
        "no event while one vantage sees them down: {:?}",
        events(&nodes)
    );
    assert_eq!(active_alerts(&ns).map(|a| a.len()), Some(0), "no alert");

    // n2 cannot reach them either: two of three vantages agree, one down event per target,
    // one alert per target.
    cut_from(&ns, &[1, 2], &cut);
    wait_until(
        "a down event for each cut target",
        Duration::from_secs(15),
        || {
            let e = events(&nodes);
            cut.iter()
                .all(|t| e.get(t).is_some_and(|v| v.iter().any(|x| x.2 == "down")))
                .then_some(())
        },
    );
    let alerts = wait_until("four alerts", Duration::from_secs(10), || {
        active_alerts(&ns).filter(|a| a.len() == 4)
    });
    let mut alerted: Vec<String> = alerts
        .iter()
        .map(|a| a["labels"]["target"].as_str().unwrap().to_string())
        .collect();
    alerted.sort();
    let mut want = cut.clone();
    want.sort();
    assert_eq!(alerted, want);
    for a in &alerts {
        let labels = a["labels"].as_object().unwrap();
        assert_eq!(labels["alertname"], "TargetDown", "{a}");
        assert_eq!(
            (&labels["probe"], &labels["site"]),
            (&"icmp".into(), &"lab".into()),
            "{a}"
        );
        assert!(
            !labels.contains_key("node") && !labels.contains_key("instance"),
            "{a}"
        );
    }
    rounds(&nodes, 3);
    let e = events(&nodes);
    assert_eq!(e.len(), 4, "events of uncut targets: {e:?}");
    for t in &cut {
        let v = &e[t];
        assert_eq!(v.len(), 1, "{t}: exactly one event cluster-wide: {v:?}");
        let (node, from, to, vantages) = &v[0];
        assert_eq!((from.as_str(), to.as_str()), ("up", "down"), "{t}");
        assert_eq!(node, "n3", "{t}: written by its primary");
        assert_eq!(vantages["n1"], "down", "{t}: {vantages}");
        assert_eq!(vantages["n2"], "down", "{t}: {vantages}");
        assert_eq!(vantages["n3"], "up", "{t}: {vantages}");
    }

    // The sender (n3, which still sees them up) dies. n1 and n2 still agree, so the targets
    // stay down with no second event; the new primaries send the alerts on, so Alertmanager
    // holds the same four alerts, active, past the 6 s the last ones from n3 were good for.
    n3.signal(libc::SIGKILL);
    let watch_until = std::time::Instant::now() + Duration::from_secs(10);
    for _ in 0..100 {
        if std::time::Instant::now() >= watch_until {
            break;
        }
        let n = active_alerts(&ns).map(|a| a.len());
        assert_eq!(n, Some(4), "the alerts stay while n3's duty moves");
        std::thread::sleep(Duration::from_millis(250));
    }
    wait_converged(&[&n1, &n2], 2, Duration::from_secs(20));
    rounds(&[&n1, &n2], 2);
    let e = events(&nodes);
    for t in &cut {
        assert_eq!(e[t].len(), 1, "{t}: {:?}", e[t]);
    }

    // The cut heals: one up event per target, and the alerts resolve.
    heal(&ns);
    wait_until(
        "an up event for each cut target",
        Duration::from_secs(15),
        || {
            let e = events(&nodes);
            cut.iter()
                .all(|t| e.get(t).is_some_and(|v| v.iter().any(|x| x.2 == "up")))
                .then_some(())
        },
    );
    wait_until("the alerts resolved", Duration::from_secs(10), || {
        active_alerts(&ns).filter(|a| a.is_empty())
    });
    rounds(&[&n1, &n2], 3);
    let e = events(&nodes);
    for t in &cut {
        let to: Vec<&str> = e[t].iter().map(|x| x.2.as_str()).collect();
        assert_eq!(to, ["down", "up"], "{t}: {:?}", e[t]);
    }
    // The webhook got each change once, whichever node wrote it.
    let first_eight = wait_until("8 events at the webhook", Duration::from_secs(10), || {
        let h = hooked(&hook_out);
        (h.len() >= 8).then_some(h)
    });
    let mut want: Vec<(String, String)> = cut
        .iter()
        .flat_map(|t| {
            [
                (t.clone(), "down".to_string()),
                (t.clone(), "up".to_string()),
            ]
        })
        .collect();
    want.sort();
    let mut got = first_eight;
    got.sort();
    assert_eq!(got, want);

    // n3 comes back and, by the ring's order, is their primary again: it starts from the state
    // the others hand it (up), so it repeats nothing; cut again, it reports one down event per
    // target, and the webhook gets those once too.
    let n3_again = start(&ns, 3, &[1]);
    wait_converged(&[&n1, &n2, &n3_again], 3, Duration::from_secs(20));
    let running = [&n1, &n2, &n3_again];
    // Every node's events, the first n3's included.
    let nodes = [&n1, &n2, &n3, &n3_again];
    rounds(&running, 2);
    cut_from(&ns, &[1, 2], &cut);
    wait_until(
        "a second down event for each cut target",
        Duration::from_secs(15),
        || {
            let e = events(&nodes);
            cut.iter()
                .all(|t| e.get(t).is_some_and(|v| v.len() >= 3))
                .then_some(())
        },
    );
    rounds(&running, 3);
    let e = events(&nodes);
    for t in &cut {
        let v: Vec<(&str, &str)> = e[t].iter().map(|x| (x.0.as_str(), x.2.as_str())).collect();
        assert_eq!(v.len(), 3, "{t}: {:?}", e[t]);
        assert_eq!(
            v[2],
            ("n3", "down"),
            "{t}: the returned primary reports it: {:?}",
            e[t]
        );
    }
    wait_until("the four alerts again", Duration::from_secs(10), || {
        active_alerts(&ns).filter(|a| a.len() == 4)
    });
    wait_until("12 events at the webhook", Duration::from_secs(10), || {
        (hooked(&hook_out).len() >= 12).then_some(())
    });
    rounds(&running, 1);
    assert_eq!(hooked(&hook_out).len(), 12, "each change once");
}

#[test]
fn notifiers_that_cannot_be_reached_are_counted_logged_once_and_never_hold_up_probing() {
    // Nothing listens on 127.99.7.1:9 (loopback): every post is refused.
    let config = "[node]\nname = \"lonely\"\n[probe]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\
        [[notify]]\nkind = \"alertmanager\"\nurl = \"http://127.99.7.1:9\"\nresend = \"1s\"\n\
        [[notify]]\nkind = \"webhook\"\nurl = \"http://127.99.7.1:9/hook\"\n\
        [[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\n\
        [[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"tcp\"\nport = 1\n";
    let node = Node::start_args(config, &["--http", "127.99.7.1:9464"], &[]);
    // The TCP target is refused: down from its first result, an event and an alert are due.
    node.wait_log(
        "webhook event dropped after its last attempt",
        1,
        Duration::from_secs(20),
    );
    let metric = |name: &str, kind: &str| -> f64 {
        let text = common::http_get("127.99.7.1:9464", "/metrics").unwrap_or_default();
        text.lines()
            .find(|l| l.starts_with(name) && l.contains(&format!("kind=\"{kind}\"")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    wait_until(
        "failed alert posts counted",
        Duration::from_secs(10),
        || (metric("ringpoll_notifications_failed_total", "alertmanager") >= 3.0).then_some(()),
    );
    assert!(metric("ringpoll_notifications_failed_total", "webhook") >= 4.0);
    assert!(metric("ringpoll_notifications_dropped_total", "webhook") >= 1.0);
    // Logged on change, not per attempt.
    let log = node.log();
    assert_eq!(log.matches("alertmanager post failed").count(), 1, "{log}");
    assert_eq!(log.matches("webhook post failed").count(), 1, "{log}");
    // Probing never waited: the ICMP target kept its 1 s rhythm throughout.
    let times: Vec<i64> = common::by_target(&node.results())["127.0.0.1"]
        .iter()
        .map(|(ms, _)| *ms)
        .collect();
    assert!(times.len() >= 8, "{times:?}");
    let gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(gap <= 1_500, "a gap of {gap} ms between ICMP results");
}

#[test]
fn events_queued_for_a_webhook_are_posted_before_the_node_stops() {
    // A slow receiver on loopback: half a second per post.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hook.jsonl");
    let _hook = webhook(None, "127.99.7.2", &out, 0.5);
    // Three targets refused: three events at once, from their first results.
    let config = "[node]\nname = \"stopping\"\n[probe]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\
        [[notify]]\nkind = \"webhook\"\nurl = \"http://127.99.7.2:8080/hook\"\n\
        [[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"tcp\"\nport = 1\n\
        [[targets]]\nhosts = [\"127.0.0.2\"]\nprobe = \"tcp\"\nport = 1\n\
        [[targets]]\nhosts = [\"127.0.0.3\"]\nprobe = \"tcp\"\nport = 1\n";
    let mut node = Node::start_args(config, &["--http", "127.99.7.2:9464"], &[]);
    wait_until("three events written", Duration::from_secs(10), || {
        (node.events().len() >= 3).then_some(())
    });
    // Stopped at once: the posts still queued go out before it exits.
    node.signal(libc::SIGTERM);
    node.wait_exit(Duration::from_secs(15));
    let posted = std::fs::read_to_string(&out).unwrap_or_default();
    assert_eq!(posted.lines().count(), 3, "{posted}\n{}", node.log());
}
