//! Target sources that change by themselves, through the real binary: a watched hosts file,
//! file_sd files written in place and by rename, an http_sd endpoint served from loopback; a
//! source that breaks keeps its last good content and is reported.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{by_target, http_get, http_json, now_ms, wait_until, Node};

fn targets_since(node: &Node, since: i64) -> Vec<String> {
    let mut out: Vec<String> = by_target(&node.results())
        .into_iter()
        .filter(|(_, v)| v.iter().any(|r| r.0 > since))
        .map(|(t, _)| t)
        .collect();
    out.sort();
    out
}

fn head() -> &'static str {
    "[node]\nname = \"s1\"\n[probe]\ninterval = \"1s\"\ntimeout = \"500ms\"\n"
}

#[test]
fn a_watched_hosts_file_applies_within_two_seconds_and_a_bad_edit_keeps_the_last_good_list() {
    let http = "127.88.10.1:9464";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hosts.txt"), "127.0.0.1\n").unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "{}[[targets]]\nfile = \"hosts.txt\"\nprobe = \"icmp\"\n",
            head()
        ),
    )
    .unwrap();
    let node = Node::start_with_args(dir, &config, &["--http", http]);
    let hosts = node.dir.path().join("hosts.txt");
    node.wait_log("targets owned: 1", 1, Duration::from_secs(5));
    // Edited in place: a second host.
    let edited = now_ms();
    std::fs::write(&hosts, "127.0.0.1\n127.0.0.2\n").unwrap();
    node.wait_log(
        "targets re-read (a watched file changed): +1 -0 ~0",
        1,
        Duration::from_secs(3),
    );
    wait_until("a result for the new host", Duration::from_secs(3), || {
        targets_since(&node, edited)
            .contains(&"127.0.0.2".to_string())
            .then_some(())
    });
    // Replaced by rename, as editors and config-management tools do: one host removed.
    let tmp = node.dir.path().join(".hosts.txt.tmp");
    std::fs::write(&tmp, "127.0.0.2\n").unwrap();
    std::fs::rename(&tmp, &hosts).unwrap();
    node.wait_log("+0 -1 ~0", 1, Duration::from_secs(3));
    // A bad edit: the last good list stays, the failure is shown.
    std::fs::write(&hosts, "127.0.0.2\nthis is not a host\n").unwrap();
    node.wait_log(
        "a target source failed; its last good content is in use",
        1,
        Duration::from_secs(3),
    );
    assert!(node.log().contains("hosts.txt:2:1"), "{}", node.log());
    let status = http_json(http, "/status?scope=local").unwrap();
    let errors = status["config"]["source_errors"].as_object().unwrap();
    assert!(errors.keys().any(|k| k.ends_with("hosts.txt")), "{status}");
    let metrics = http_get(http, "/metrics").unwrap();
    assert!(
        metrics.contains("ringpoll_sd_read_errors_total{source="),
        "{metrics}"
    );
    let bad_at = now_ms();
    wait_until(
        "two rounds on the last good list",
        Duration::from_secs(4),
        || (now_ms() > bad_at + 2_500).then_some(()),
    );
    assert_eq!(targets_since(&node, bad_at), ["127.0.0.2"]);
    // Fixed: reads well again.
    std::fs::write(&hosts, "127.0.0.2\n127.0.0.3\n").unwrap();
    node.wait_log(
        "a target source reads well again",
        1,
        Duration::from_secs(3),
    );
    // Four edits, some seconds: a few re-reads, not one every time the reader's own reads
    // of the file are seen as changes.
    let metrics = http_get(http, "/metrics").unwrap();
    let refreshes: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ringpoll_sd_refreshes_total{trigger=\"watch\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no watch refresh count in {metrics}"));
    assert!(
        (4.0..=8.0).contains(&refreshes),
        "{refreshes} re-reads for 4 edits"
    );
}

#[test]
fn file_sd_files_appear_change_and_go() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sd")).unwrap();
    std::fs::write(
        dir.path().join("sd/a.json"),
        r#"[{"targets": ["127.0.0.1"], "labels": {"env": "a"}}]"#,
    )
    .unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "{}[[targets]]\nfile_sd = \"sd/*.json\"\nprobe = \"icmp\"\nlabels = {{ team = \"ops\" }}\n",
            head()
        ),
    )
    .unwrap();
    let node = Node::start_with_args(dir, &config, &[]);
    let sd = node.dir.path().join("sd");
    node.wait_log("targets owned: 1", 1, Duration::from_secs(5));
    // A new file, written elsewhere and renamed in.
    let added = now_ms();
    let tmp = node.dir.path().join("b.tmp");
    std::fs::write(
        &tmp,
        r#"[{"targets": ["127.0.0.5"], "labels": {"env": "b"}}]"#,
    )
    .unwrap();
    std::fs::rename(&tmp, sd.join("b.json")).unwrap();
    node.wait_log("+1 -0 ~0", 1, Duration::from_secs(3));
    wait_until(
        "a result for the new file's target",
        Duration::from_secs(3),
        || {
            targets_since(&node, added)
                .contains(&"127.0.0.5".to_string())
                .then_some(())
        },
    );
    let line = node
        .results()
        .into_iter()
        .rfind(|r| r["target"] == "127.0.0.5")
        .unwrap();
    assert_eq!(line["labels"]["env"], "b");
    assert_eq!(line["labels"]["team"], "ops");
    // A file that goes takes its targets with it.
    std::fs::remove_file(sd.join("a.json")).unwrap();
    node.wait_log("+0 -1 ~0", 1, Duration::from_secs(3));
}

/// A minimal http_sd server on loopback: answers every GET with the current status and body.
struct SdServer {
    addr: String,
    answer: Arc<Mutex<(u16, String)>>,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl SdServer {
    fn start(body: &str) -> SdServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let answer = Arc::new(Mutex::new((200, body.to_string())));
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (a, s, r) = (answer.clone(), stop.clone(), requests.clone());
        std::thread::spawn(move || {
            // Bounded: at most ten minutes, and until the test drops the server.
            let deadline = std::time::Instant::now() + Duration::from_secs(600);
            while !s.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        let mut buf = [0u8; 4096];
                        let n = conn.read(&mut buf).unwrap_or(0);
                        r.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                        let (status, body) = a.lock().unwrap().clone();
                        let _ = write!(
                            conn,
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        SdServer {
            addr,
            answer,
            stop,
            requests,
        }
    }

    fn set(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_string());
    }
}

impl Drop for SdServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn http_sd_follows_its_endpoint_and_keeps_the_last_good_list_when_it_fails() {
    let http = "127.88.11.1:9464";
    let sd = SdServer::start(r#"[{"targets": ["127.0.0.1:7"], "labels": {"src": "sd"}}]"#);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "{}[[targets]]\nhttp_sd = \"http://{}/targets\"\nhttp_sd_token_file = \"token\"\nrefresh_interval = \"1s\"\nprobe = \"tcp\"\nport = 22\n",
            head(),
            sd.addr
        ),
    )
    .unwrap();
    let node = Node::start_with_args(dir, &config, &["--http", http]);
    node.wait_log("targets owned: 1", 1, Duration::from_secs(5));
    assert!(
        sd.requests.lock().unwrap()[0]
            .to_ascii_lowercase()
            .contains("authorization: bearer s3cret"),
        "{:?}",
        sd.requests.lock().unwrap()
    );
    // The endpoint's list changes: picked up at the next refresh.
    sd.set(
        200,
        r#"[{"targets": ["127.0.0.1:7"], "labels": {"src": "sd"}}, {"targets": ["127.0.0.2"]}]"#,
    );
    node.wait_log(
        "targets re-read (the refresh interval passed): +1 -0 ~0",
        1,
        Duration::from_secs(4),
    );
    // It fails: the last good list stays and the failures are counted.
    sd.set(500, "oops");
    node.wait_log("a target source failed", 1, Duration::from_secs(4));
    let failed_at = now_ms();
    wait_until("two failed refreshes", Duration::from_secs(5), || {
        let m = http_get(http, "/metrics")?;
        let line = m
            .lines()
            .find(|l| l.starts_with("ringpoll_sd_failures_total{"))?;
        (line.ends_with(" 2") || line.ends_with(" 3") || line.ends_with(" 4")).then_some(())
    });
    let status = http_json(http, "/status?scope=local").unwrap();
    assert_eq!(status["targets"]["total"], 2, "{status}");
    wait_until("results go on", Duration::from_secs(4), || {
        (targets_since(&node, failed_at).len() == 2).then_some(())
    });
    // Back: recovered, with one more change.
    sd.set(200, r#"[{"targets": ["127.0.0.2"]}]"#);
    node.wait_log(
        "a target source reads well again",
        1,
        Duration::from_secs(4),
    );
    node.wait_log("+0 -1 ~0", 1, Duration::from_secs(4));
}
