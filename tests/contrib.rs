//! What ships in `contrib/`, checked with the real tools: the Prometheus rules and scrape config
//! with `promtool check` and `promtool test rules` (including a target that moves between nodes
//! while it is down), and the Grafana dashboard as valid JSON whose queries parse and name only
//! metrics a live node exports (or the shipped rules record). Nodes use 127.99.6.N.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{http_get, repo, wait_until, Node};

/// Runs promtool with `args` in `dir`: whether it succeeded, and what it printed.
fn promtool(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (Debian package prometheus; tests/run.sh installs it)");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

#[test]
fn the_shipped_rules_and_scrape_config_pass_promtool_and_their_unit_tests() {
    let dir = repo().join("contrib/prometheus");
    for args in [
        &["check", "rules", "ringpoll.rules.yml"][..],
        &["check", "config", "prometheus.yml"],
        &["test", "rules", "ringpoll.rules.test.yml"],
    ] {
        let (ok, said) = promtool(&dir, args);
        assert!(ok, "promtool {args:?}:\n{said}");
    }

    // The README's relabelling that drops the round-trip buckets fits under the shipped scrape
    // config's job.
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let relabel = readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("metric_relabel_configs"))
        .expect("the README's metric_relabel_configs block");
    let relabelled = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(dir.join("prometheus.yml")).unwrap() + relabel;
    std::fs::write(relabelled.path().join("prometheus.yml"), config).unwrap();
    std::fs::copy(
        dir.join("ringpoll.rules.yml"),
        relabelled.path().join("ringpoll.rules.yml"),
    )
    .unwrap();
    let (ok, said) = promtool(relabelled.path(), &["check", "config", "prometheus.yml"]);
    assert!(ok, "the README's relabelling:\n{said}");

    // The unit tests tell the shipped alert from a naive one: alerting on the raw series, a
    // target that moves while down goes back to pending (its `instance` changed), so the same
    // tests fail at the move.
    let tmp = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(dir.join("ringpoll.rules.yml")).unwrap();
    let naive = rules.replace(
        "expr: ringpoll:probe_success:max == 0",
        "expr: probe_success{job=\"ringpoll\"} == 0",
    );
    assert_ne!(
        naive, rules,
        "the alert's expression changed; update this test"
    );
    std::fs::write(tmp.path().join("ringpoll.rules.yml"), naive).unwrap();
    std::fs::copy(
        dir.join("ringpoll.rules.test.yml"),
        tmp.path().join("ringpoll.rules.test.yml"),
    )
    .unwrap();
    let (ok, said) = promtool(tmp.path(), &["test", "rules", "ringpoll.rules.test.yml"]);
    assert!(!ok, "a naive alert passed the move test:\n{said}");
    assert!(said.contains("time: 8m"), "{said}");
}

/// Every name in `text` that looks like one of ringpoll's metrics or recording rules.
fn metric_names(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(
        r"\b(?:probe_[a-z_]+|ringpoll_[a-z_]+|process_[a-z_]+|smokeping_[a-z_]+|ringpoll:[a-z_:]+)",
    )
    .unwrap();
    re.find_iter(text).map(|m| m.as_str().to_string()).collect()
}

#[test]
fn the_grafana_dashboard_is_valid_and_queries_only_what_ringpoll_exports() {
    let path = repo().join("contrib/grafana/ringpoll-cluster.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("valid JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut exprs = Vec::new();
    for p in panels {
        let title = p["title"].as_str().expect("every panel has a title");
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "{title}: uses the dashboard's data source variable"
        );
        for t in p["targets"].as_array().expect("targets") {
            exprs.push((
                title.to_string(),
                t["expr"].as_str().expect("expr").to_string(),
            ));
        }
    }
    let sections = [
        "members",
        "ring",
        "unprobed",
        "down",
        "probe time",
        "loss",
        "round trip",
    ];
    for s in sections {
        assert!(
            panels
                .iter()
                .any(|p| p["title"].as_str().unwrap().to_lowercase().contains(s)),
            "no panel about {s}"
        );
    }

    // Every query parses as PromQL: promtool checks them as recording rules (with the
    // dashboard's variables given values).
    let tmp = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, e)) in exprs.iter().enumerate() {
        let e = e
            .replace("$job", "ringpoll")
            .replace("$__rate_interval", "1m");
        rules += &format!(
            "      - record: dashboard:q{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        );
    }
    std::fs::write(tmp.path().join("d.yml"), rules).unwrap();
    let (ok, said) = promtool(tmp.path(), &["check", "rules", "d.yml"]);
    assert!(ok, "a dashboard query does not parse:\n{said}");

    // And names only metrics a live node exports, as do the shipped rules.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let node = Node::start_args(
        &format!(
            "[node]\nname = \"g1\"\n[probe]\ninterval = \"500ms\"\ntimeout = \"200ms\"\n\
             [[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"tcp\"\nport = {port}\n\
             [[targets]]\nhosts = [\"127.0.0.1\"]\nprobe = \"icmp\"\ncount = 1\n"
        ),
        &["--http", "127.99.6.1:9464"],
        &[],
    );
    let scrape = wait_until(
        "a scrape with both results",
        Duration::from_secs(10),
        || {
            http_get("127.99.6.1:9464", "/metrics")
                .filter(|t| t.matches("probe_success{").count() == 2)
        },
    );
    let exported: BTreeSet<String> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect();
    let shipped =
        std::fs::read_to_string(repo().join("contrib/prometheus/ringpoll.rules.yml")).unwrap();
    let recorded: BTreeSet<String> = shipped
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: "))
        .map(str::to_string)
        .collect();
    for (what, text) in exprs
        .iter()
        .map(|(t, e)| (format!("dashboard panel {t:?}"), e.clone()))
        .chain([(
            "contrib/prometheus/ringpoll.rules.yml".to_string(),
            shipped.clone(),
        )])
    {
        for name in metric_names(&text) {
            // A histogram's series are its family's name with a suffix.
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            assert!(
                exported.contains(&name) || exported.contains(family) || recorded.contains(&name),
                "{what} queries {name}, which a node does not export:\n{scrape}"
            );
        }
    }
    drop(node);
    drop(listener);
}
