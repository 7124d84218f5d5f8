//! Observability through the real binary: /metrics parsed as Prometheus text, the status API
//! and CLI on a three-node cluster, rise/fall state events, the SQLite sink, and the HTTP
//! endpoint's loopback rule. Nodes use addresses of their own (127.99.T.N).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

use common::{bin, http_get, http_json, http_status, wait_until, Cluster, Node};
use serde_json::Value;

fn tcp_config(name: &str, port: u16, extra: &str) -> String {
    format!(
        "[node]\nname = \"{name}\"\n[probe]\ninterval = \"500ms\"\ntimeout = \"200ms\"\nretry_interval = \"200ms\"\n{extra}\n\
         [[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"tcp\"\nport = {port}\nlabels = {{ team = \"ops\" }}\n"
    )
}

/// A scrape of `/metrics` with `accept`: the content type and the body.
fn fetch_metrics(addr: &str, accept: Option<&str>) -> (String, String) {
    let mut req = ureq::get(&format!("http://{addr}/metrics"));
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    let mut resp = req.call().unwrap();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (ctype, resp.body_mut().read_to_string().unwrap())
}

/// `promtool check metrics` on `text`: its exit status and everything it printed.
fn promtool_check(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; tests/run.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

#[test]
fn metrics_pass_promtool_in_both_formats_with_the_documented_families() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let refused = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let node = Node::start_args(
        &tcp_config(
            "m1",
            port,
            &format!(
                "[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"tcp\"\nport = {refused}\n\
                 [[targets]]\nhosts = [\"127.0.0.2\"]\nprobe = \"icmp\"\ncount = 2\npacket_interval = \"50ms\"\n"
            ),
        ),
        &["--http", "127.99.1.1:9464"],
        &[],
    );
    let text = wait_until(
        "a scrape with the three targets' results, two ICMP probes of one",
        Duration::from_secs(10),
        || {
            http_get("127.99.1.1:9464", "/metrics").filter(|t| {
                let sent = t
                    .lines()
                    .find_map(|l| l.strip_prefix("smokeping_requests_total{target=\"127.0.0.2\""))
                    .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
                t.matches("probe_success{").count() == 3 && sent >= Some(4.0)
            })
        },
    );
    let (ok, said) = promtool_check(&text);
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics: {said}\n{text}"
    );
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text");
    let names: BTreeSet<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for family in [
        "probe_success",
        "probe_duration_seconds",
        "probe_last_result_timestamp_seconds",
        "ringpoll_build_info",
        "ringpoll_members",
        "ringpoll_targets_owned",
        "ringpoll_ring_epoch",
        "ringpoll_actor_restarts_total",
        "ringpoll_results_dropped_total",
        "ringpoll_round_overrun_total",
        "ringpoll_targets_unprobed",
        "ringpoll_state_changes_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "process_open_fds",
        "smokeping_requests_total",
        "smokeping_response_duration_seconds",
        "smokeping_response_duration_seconds_count",
        "smokeping_response_duration_seconds_sum",
    ] {
        assert!(names.contains(family), "{family} missing from:\n{text}");
    }
    let sample = |metric: &str, target: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && s.labels.get("target") == Some(target))
            .unwrap_or_else(|| panic!("{metric} of {target}"))
    };
    let (up, failed) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{refused}"));
    let success = sample("probe_success", &up);
    assert_eq!(success.labels.get("probe"), Some("tcp"));
    assert_eq!(success.labels.get("team"), Some("ops"));
    assert!(matches!(success.value, prometheus_parse::Value::Gauge(v) if v == 1.0));
    // The time spent, also on failure (blackbox_exporter reports it so; 0 would hide it).
    let spent = sample("probe_duration_seconds", &failed);
    assert!(
        matches!(spent.value, prometheus_parse::Value::Gauge(v) if v > 0.0 && v < 0.2),
        "{spent:?}"
    );
    // The ICMP target's echoes: two per probe, every one answered on loopback, each counted in
    // the histogram's buckets up to +Inf.
    let value = |metric: &str| match sample(metric, "127.0.0.2").value {
        prometheus_parse::Value::Untyped(v) | prometheus_parse::Value::Counter(v) => v,
        ref v => panic!("{metric}: {v:?}"),
    };
    let (sent, replies) = (
        value("smokeping_requests_total"),
        value("smokeping_response_duration_seconds_count"),
    );
    assert!(
        sent >= 4.0 && sent % 2.0 == 0.0 && replies == sent,
        "{sent} sent, {replies} replies"
    );
    match &sample("smokeping_response_duration_seconds", "127.0.0.2").value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert_eq!(buckets.len(), 17, "{buckets:?}");
            assert_eq!(buckets[0].less_than, 0.0001);
            assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count));
            assert_eq!(buckets[16].less_than, f64::INFINITY);
            assert_eq!(buckets[16].count, replies);
        }
        v => panic!("{v:?}"),
    }
    let members = scrape
        .samples
        .iter()
        .find(|s| s.metric == "ringpoll_members" && s.labels.get("state") == Some("alive"))
        .unwrap();
    assert!(matches!(members.value, prometheus_parse::Value::Gauge(v) if v == 1.0));
    let build = scrape
        .samples
        .iter()
        .find(|s| s.metric == "ringpoll_build_info")
        .unwrap();
    assert_eq!(build.labels.get("version"), Some(env!("CARGO_PKG_VERSION")));
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(common::repo())
        .output()
        .unwrap();
    assert_eq!(
        build.labels.get("revision"),
        Some(String::from_utf8_lossy(&head.stdout).trim())
    );

    // Content negotiation: the text format 0.0.4 by default and to text/plain; OpenMetrics to
    // a client that prefers it, as Prometheus does.
    let (ctype, _) = fetch_metrics("127.99.1.1:9464", None);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let (ctype, _) = fetch_metrics("127.99.1.1:9464", Some("text/plain"));
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (ctype, open) = fetch_metrics("127.99.1.1:9464", Some(prometheus_accept));
    assert!(
        ctype.starts_with("application/openmetrics-text; version=1.0.0"),
        "{ctype}"
    );
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(
        open.contains("# TYPE ringpoll_actor_restarts counter\n"),
        "{open}"
    );
    assert!(
        open.contains("ringpoll_actor_restarts_total{role=\"probe\"} 0"),
        "{open}"
    );
    assert!(
        open.contains("# TYPE smokeping_response_duration_seconds histogram\n")
            && open.contains("smokeping_response_duration_seconds_bucket{le=\"+Inf\",target=\"127.0.0.2\",probe=\"icmp\"} "),
        "{open}"
    );
    drop(node);
    drop(listener);
}

/// State events (`"event": "state"`) in a node's results.
fn events(node: &Node) -> Vec<(String, String)> {
    node.events()
        .iter()
        .map(|r| {
            (
                r["from"].as_str().unwrap().to_string(),
                r["to"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The `sql` blocks of the README's section `section`.
fn readme_sql(section: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(common::repo().join("README.md")).unwrap();
    let body = readme
        .split(&format!("\n## {section}\n"))
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the section");
    body.split("```sql\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap().to_string())
        .collect()
}

#[test]
fn rise_and_fall_give_exactly_one_down_and_one_up_event() {
    let listener = TcpListener::bind("127.99.2.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // A second target is refused from its first result on: one event from "unknown".
    let refused = TcpListener::bind("127.99.2.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sqlite = tempfile::tempdir().unwrap();
    let db = sqlite.path().join("history.db");
    let extra = format!("[[sinks]]\nkind = \"jsonl\"\npath = \"results.jsonl\"\n[[sinks]]\nkind = \"sqlite\"\npath = \"{}\"\nretention = \"1h\"\n", db.display());
    let config = format!(
        "[node]\nname = \"rf\"\n[probe]\ninterval = \"500ms\"\ntimeout = \"200ms\"\nretry_interval = \"200ms\"\nfall = 2\nrise = 2\n{extra}\n\
         [[targets]]\nhosts = [\"127.99.2.1\"]\nprobe = \"tcp\"\nport = {}\n\
         [[targets]]\nhosts = [\"127.99.2.1\"]\nprobe = \"tcp\"\nport = {refused}\n",
        addr.port()
    );
    let mut node = Node::start_args(&config, &["--http", "off"], &[]);
    node.wait_log("first results: 1 up, 1 down", 1, Duration::from_secs(5));
    let unknown = || ("unknown".to_string(), "down".to_string());
    wait_until("the first-result event", Duration::from_secs(5), || {
        (events(&node) == [unknown()]).then_some(())
    });
    // Close the listener: refused, twice in a row → one "down" event.
    drop(listener);
    wait_until("a down event", Duration::from_secs(5), || {
        (events(&node).len() >= 2).then_some(())
    });
    // Reopen on the same address: two successes → one "up" event.
    let listener = TcpListener::bind(addr).unwrap();
    wait_until("an up event", Duration::from_secs(5), || {
        (events(&node).len() >= 3).then_some(())
    });
    // A few more rounds: nothing else happens.
    let n = node.results().len();
    wait_until("more rounds", Duration::from_secs(5), || {
        (node.results().len() >= n + 6).then_some(())
    });
    let expected = [
        unknown(),
        ("up".to_string(), "down".to_string()),
        ("down".to_string(), "up".to_string()),
    ];
    assert_eq!(events(&node), expected);
    assert_eq!(
        node.log().matches("target down (2 consecutive)").count(),
        1,
        "{}",
        node.log()
    );

    // SQLite: SIGKILL, then the database opens cleanly with the three events.
    node.kill9();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let evs: Vec<(String, String)> = conn
        .prepare("SELECT from_state, to_state FROM events ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(evs, expected);
    let latest: i64 = conn
        .query_row("SELECT count(*) FROM latest", [], |r| r.get(0))
        .unwrap();
    assert_eq!(latest, 2);

    // The README's queries, on this database (its example target swapped for this one's).
    let (flapped, down) = (addr.to_string(), format!("127.99.2.1:{refused}"));
    let queries = readme_sql("Results");
    assert_eq!(queries.len(), 3, "{queries:?}");
    let rows = |sql: &str| -> Vec<Vec<String>> {
        let sql = sql.replace("127.0.0.1:22", &flapped);
        let mut q = conn.prepare(&sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
        let n = q.column_count();
        q.query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => "NULL".to_string(),
                        rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                        rusqlite::types::ValueRef::Real(v) => v.to_string(),
                        rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                        rusqlite::types::ValueRef::Blob(_) => "BLOB".to_string(),
                    })
                })
                .collect()
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    // Outages: the flapping target's ended, the refused one's still open.
    let outages = rows(&queries[0]);
    assert_eq!(outages.len(), 2, "{outages:?}");
    let of = |t: &str| {
        outages
            .iter()
            .find(|r| r.contains(&t.to_string()))
            .unwrap()
            .clone()
    };
    let (ended, open) = (of(&flapped), of(&down));
    assert!(
        ended.last().unwrap().parse::<f64>().unwrap() > 0.0,
        "{ended:?}"
    );
    assert_eq!(open.last().unwrap(), "NULL", "{open:?}");
    // Latency by hour: this hour, with results and a failed share above 0 (it was down).
    let hours = rows(&queries[1]);
    assert_eq!(hours.len(), 1, "{hours:?}");
    assert!(hours[0][1].parse::<u64>().unwrap() >= 6, "{hours:?}");
    assert!(hours[0][4].parse::<f64>().unwrap() > 0.0, "{hours:?}");
    // Down now: only the refused one.
    let now = rows(&queries[2]);
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(now[0].contains(&down), "{now:?}");
    drop(listener);
}

#[test]
fn a_non_loopback_http_endpoint_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[node]\nname = \"x\"\n").unwrap();
    // Refused during validation: nothing listens, no packet is sent.
    let out = Command::new(bin())
        .args(["node", "--config"])
        .arg(&config)
        .args(["--http", "0.0.0.0:9464"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--http: 0.0.0.0:9464 is not a loopback address")
            && err.contains("http.token"),
        "{err}"
    );
}

#[test]
fn a_token_is_required_when_set() {
    let node = Node::start_args(
        "[node]\nname = \"tok\"\n[http]\ntoken = \"s3cret\"\n",
        &["--http", "127.99.3.1:9464"],
        &[],
    );
    node.wait_log("HTTP endpoint listening", 1, Duration::from_secs(5));
    assert_eq!(http_status("127.99.3.1:9464", "/status").0, 401);
    let yes = ureq::get("http://127.99.3.1:9464/status")
        .header("Authorization", "Bearer s3cret")
        .call()
        .unwrap();
    assert_eq!(yes.status().as_u16(), 200);
}

#[test]
fn health_readiness_and_the_index_need_no_token_and_show_no_data() {
    let node = Node::start_args(
        "[node]\nname = \"hr\"\n[http]\ntoken = \"s3cret\"\n[probe]\ninterval = \"1s\"\ntimeout = \"500ms\"\n[[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\n",
        &["--http", "127.99.3.2:9464"],
        &[],
    );
    node.wait_log("HTTP endpoint listening", 1, Duration::from_secs(5));
    let get = |path: &str| http_status("127.99.3.2:9464", path);
    assert_eq!(get("/-/healthy"), (200, "ringpoll is healthy.\n".into()));
    wait_until("ready", Duration::from_secs(10), || {
        (get("/-/ready") == (200, "ringpoll is ready.\n".into())).then_some(())
    });
    let (status, page) = get("/");
    assert_eq!(status, 200);
    // The status page's shell: its script reads the data with the token (tests/page.rs).
    assert!(
        page.contains("<h1>ringpoll") && page.contains("id=\"members\""),
        "{page}"
    );
    assert!(
        !page.contains("127.0.0.1"),
        "no data in the page itself: {page}"
    );
    assert_eq!(get("/status").0, 401, "the data still needs the token");

    // The only member leaving: nothing moves, and every target is left without an owner.
    let out = Command::new(bin())
        .args(["owner", "--if-leaves", "hr", "--http", "127.99.3.2:9464"])
        .env("RINGPOLL_HTTP_TOKEN", "s3cret")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("1 of 1 targets would have no owner (no remaining member lists them): nothing would probe them"),
        "{said}"
    );
}

/// Node `n{n}` on 127.99.4.N, with its HTTP endpoint on port 9464 of its address.
fn cluster_node(n: u8, seeds: &[u8]) -> Node {
    let config = "[node]\nname = \"x\"\n[probe]\ninterval = \"1s\"\ntimeout = \"500ms\"\n[[targets]]\ncidr = \"127.0.0.0/25\"\nprobe = \"icmp\"\n";
    let cluster = Cluster::new("127.99.4", config);
    let http = cluster.addr_port(n, 9464);
    cluster.start_with(n, seeds, &["--http", &http], &[])
}

/// target → node, from a cluster-wide /targets answer (every target exactly once).
fn owners(http: &str) -> Option<BTreeMap<String, String>> {
    let v = http_json(http, "/targets?scope=cluster")?;
    if !v["not_answering"].as_array()?.is_empty() {
        return None;
    }
    let list = v["targets"].as_array()?;
    let map: BTreeMap<String, String> = list
        .iter()
        .map(|t| {
            (
                format!(
                    "{}/{}",
                    t["probe"].as_str().unwrap(),
                    t["target"].as_str().unwrap()
                ),
                t["node"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (map.len() == list.len()).then_some(map)
}

#[test]
fn the_cluster_is_visible_from_any_node_and_owner_predicts_a_leave() {
    let n1 = cluster_node(1, &[]);
    let mut n2 = cluster_node(2, &[1]);
    let n3 = cluster_node(3, &[1]);
    // Every target once, from any node (replicas 1).
    let before = wait_until(
        "128 targets, each once, seen from n3",
        Duration::from_secs(20),
        || {
            owners("127.99.4.3:9464")
                .filter(|m| m.len() == 128 && m.values().collect::<BTreeSet<_>>().len() == 3)
        },
    );

    // `ringpoll status` from n2: three alive members whose targets add up.
    let out = Command::new(bin())
        .args(["status", "--http", "127.99.4.2:9464", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    let members = st["status"]["members"].as_array().unwrap();
    assert_eq!(
        members.iter().filter(|m| m["state"] == "alive").count(),
        3,
        "{st}"
    );
    assert_eq!(
        members
            .iter()
            .map(|m| m["targets"].as_u64().unwrap())
            .sum::<u64>(),
        128
    );
    assert_eq!(
        members
            .iter()
            .map(|m| m["up"].as_u64().unwrap())
            .sum::<u64>(),
        128
    );
    let table = Command::new(bin())
        .args(["status", "--http", "127.99.4.2:9464"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("MEMBER") && table.contains("n3") && table.contains("0 target(s) down"),
        "{table}"
    );

    // `ringpoll owner TARGET`.
    let out = Command::new(bin())
        .args(["owner", "127.0.0.5", "--http", "127.99.4.1:9464", "--json"])
        .output()
        .unwrap();
    let o: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        o["owners"][0].as_str(),
        before.get("icmp/127.0.0.5").map(String::as_str),
        "{o}"
    );
    assert_eq!(o["last_result"]["ok"], true, "{o}");
    // Asked of a node that does not own it (which may hold a stale result of its own, from
    // before the others joined): the result is the owner's.
    let (target, owner) = before
        .iter()
        .find(|(_, owner)| owner.as_str() != "n1")
        .expect("a target n1 does not own");
    let out = Command::new(bin())
        .args([
            "owner",
            target.trim_start_matches("icmp/"),
            "--http",
            "127.99.4.1:9464",
            "--json",
        ])
        .output()
        .unwrap();
    let o: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        o["last_result"]["node"].as_str(),
        Some(owner.as_str()),
        "{o}"
    );

    // `ringpoll owner --if-leaves n2` predicts exactly what moves when n2 then stops.
    let out = Command::new(bin())
        .args([
            "owner",
            "--if-leaves",
            "n2",
            "--http",
            "127.99.4.1:9464",
            "--json",
        ])
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The same, piped into a reader that has already gone (`… --list | head -0`): it ends
    // quietly, by SIGPIPE as Unix tools do, never with a panic.
    let mut piped = Command::new(bin())
        .args([
            "owner",
            "--if-leaves",
            "n2",
            "--list",
            "--http",
            "127.99.4.1:9464",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(piped.stdout.take());
    let out = piped.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        out.status
    );
    let predicted: BTreeSet<String> = plan["moved_targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert!(!predicted.is_empty());
    n2.signal(libc::SIGTERM);
    assert_eq!(n2.wait_exit(Duration::from_secs(8)).code(), Some(0));
    let after = wait_until(
        "every target probed by n1 or n3",
        Duration::from_secs(10),
        || owners("127.99.4.1:9464").filter(|m| m.len() == 128 && m.values().all(|n| n != "n2")),
    );
    let moved: BTreeSet<String> = before
        .iter()
        .filter(|(t, n)| after.get(*t) != Some(*n))
        .map(|(t, _)| t.clone())
        .collect();
    assert_eq!(moved, predicted);

    // Killing an owner moves its targets without any state event: the survivor's first results
    // are not changes of state.
    let mut n3 = n3;
    n3.kill9();
    wait_until("every target probed by n1", Duration::from_secs(10), || {
        owners("127.99.4.1:9464").filter(|m| m.len() == 128 && m.values().all(|n| n == "n1"))
    });
    assert!(n1.events().is_empty(), "no state event on n1");
}
