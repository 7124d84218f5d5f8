//! SSH probes against a real OpenSSH server (Debian's openssh-server, installed by the test
//! command): `sshd -D` on loopback addresses of the test's own, with host keys and authorized
//! keys generated into a temp dir, no PAM, no DNS, raised MaxStartups; stopped on drop.
//! Logins use a throw-away user whose shell is /bin/sh.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{now_ms, ts_ms, wait_converged, wait_until, Cluster, Netns, Node};
use serde_json::Value;

const USER: &str = "ringpoll-probe";

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ensure_user() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let exists = Command::new("id")
            .arg(USER)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        if !exists {
            sh(Command::new("useradd").args(["-M", "-d", "/", "-s", "/bin/sh", USER]));
        }
        // With UsePAM no, a locked ("!") account is refused; "*" only disables passwords.
        // Home "/" so sshd's chdir works and prints nothing to stderr.
        sh(Command::new("usermod").args(["-p", "*", "-d", "/", "-s", "/bin/sh", USER]));
        std::fs::create_dir_all("/run/sshd").unwrap();
    });
}

fn keygen(path: &Path, kind: &str) {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-N", "", "-C", "ringpoll-test", "-t", kind]);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    sh(cmd.arg("-f").arg(path));
}

fn public_key(path: &Path) -> String {
    std::fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string()
}

/// A running sshd.
struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
    netns: Option<String>,
}

impl Sshd {
    /// sshd listening on every `ip:port` given (inside `netns` when set), accepting the client
    /// keys `id_ed25519` and `id_rsa` of its dir.
    fn start(listen: &[String], netns: Option<&str>) -> Sshd {
        Sshd::start_with(listen, netns, "")
    }

    /// Like [`Sshd::start`], with `settings` (sshd_config lines) ahead of the defaults: sshd
    /// takes the first value of a keyword.
    fn start_with(listen: &[String], netns: Option<&str>, settings: &str) -> Sshd {
        ensure_user();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        keygen(&d.join("host_ed25519"), "ed25519");
        keygen(&d.join("id_ed25519"), "ed25519");
        keygen(&d.join("id_rsa"), "rsa");
        keygen(&d.join("id_other"), "ed25519");
        let authorized = format!(
            "{}\n{}\n",
            public_key(&d.join("id_ed25519")),
            public_key(&d.join("id_rsa"))
        );
        std::fs::write(d.join("authorized_keys"), authorized).unwrap();
        std::fs::set_permissions(
            d.join("authorized_keys"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let mut cfg = settings.to_string();
        for l in listen {
            cfg.push_str(&format!("ListenAddress {l}\n"));
        }
        cfg.push_str(&format!(
            "HostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n\
             UsePAM no\nUseDNS no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin no\nAllowUsers {USER}\nMaxStartups 10000:100:10000\nMaxSessions 100\n\
             LogLevel INFO\nPrintMotd no\nPrintLastLog no\n",
            d = d.display()
        ));
        std::fs::write(d.join("sshd_config"), cfg).unwrap();
        let netns = netns.map(String::from);
        let child = Sshd::spawn(d, netns.as_deref());
        let sshd = Sshd { child, dir, netns };
        sshd.wait_listening();
        sshd
    }

    fn spawn(d: &Path, netns: Option<&str>) -> Child {
        let _ = std::fs::remove_file(d.join("sshd.pid"));
        let mut cmd = match netns {
            None => Command::new("/usr/sbin/sshd"),
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "/usr/sbin/sshd"]);
                c
            }
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("sshd.log"))
            .unwrap();
        cmd.args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start sshd (is openssh-server installed? tests/run.sh installs it)")
    }

    /// Ready when the pid file exists (written once listening).
    fn wait_listening(&self) {
        wait_until("sshd to listen", Duration::from_secs(10), || {
            self.dir.path().join("sshd.pid").exists().then_some(())
        });
    }

    /// Stops sshd and every connection it serves, as a crash or a reboot would (a plain
    /// `systemctl restart` keeps the connections), and starts it again, with a new host key
    /// when `new_host_key`.
    fn restart(&mut self, new_host_key: bool) {
        // The per-connection processes are the listener's children.
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if new_host_key {
            let key = self.path("host_ed25519");
            let _ = std::fs::remove_file(&key);
            let _ = std::fs::remove_file(key.with_extension("pub"));
            keygen(&key, "ed25519");
        }
        self.child = Sshd::spawn(self.dir.path(), self.netns.as_deref());
        self.wait_listening();
    }

    /// Logins sshd accepted so far (its log at LogLevel INFO).
    fn logins(&self) -> usize {
        self.log().matches("Accepted publickey for").count()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    fn host_key(&self) -> String {
        public_key(&self.path("host_ed25519"))
    }

    /// A known_hosts file holding this server's key for each `[ip]:port` pattern.
    fn known_hosts(&self, name: &str, patterns: &[String]) -> PathBuf {
        let text: String = patterns
            .iter()
            .map(|p| format!("{p} {}\n", self.host_key()))
            .collect();
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- sshd log ----\n{}",
                std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
            );
        }
    }
}

fn group(host: &str, port: u16, keys: &str) -> String {
    format!("[[targets]]\nhosts = [\"{host}\"]\nprobe = \"ssh\"\nport = {port}\nuser = \"{USER}\"\n{keys}\n")
}

fn node_config(groups: &[String]) -> String {
    format!(
        "[node]\nname = \"ssh-test\"\n[probe]\ninterval = \"2s\"\ntimeout = \"1500ms\"\n{}",
        groups.concat()
    )
}

/// The first result of each target.
fn first_results(node: &Node, targets: &[&str], within: Duration) -> BTreeMap<String, Value> {
    wait_until("a result for every SSH target", within, || {
        let mut first = BTreeMap::new();
        for r in node.results() {
            let t = r["target"].as_str().unwrap().to_string();
            first.entry(t).or_insert(r);
        }
        targets
            .iter()
            .all(|t| first.contains_key(*t))
            .then_some(first)
    })
}

/// Waits for five ok results of the healthy `target` (interval 1 s) and asserts that none came
/// more than 1.5 s after the one before: misbehaving servers beside it did not hold it up.
fn assert_keeps_rhythm(node: &Node, target: &str) {
    let times = wait_until(
        "five rounds of the healthy target",
        Duration::from_secs(10),
        || {
            let t: Vec<i64> = common::by_target(&node.results())
                .get(target)
                .map(|v| v.iter().filter(|x| x.1).map(|x| x.0).collect())
                .unwrap_or_default();
            (t.len() >= 5).then_some(t)
        },
    );
    let gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        gap <= 1_500,
        "{gap} ms between results of the healthy target {target}: {times:?}"
    );
}

#[test]
fn logins_run_commands_with_ed25519_and_rsa_keys_and_report_exit_and_output() {
    let sshd = Sshd::start(
        &(1..=4)
            .map(|i| format!("127.88.1.{i}:2222"))
            .collect::<Vec<_>>(),
        None,
    );
    let kh = sshd.known_hosts(
        "known_hosts",
        &(1..=4)
            .map(|i| format!("[127.88.1.{i}]:2222"))
            .collect::<Vec<_>>(),
    );
    let keys = |id: &str, cmd: &str| {
        format!(
            "identity = \"{}\"\nknown_hosts = \"{}\"\ncommand = \"{cmd}\"\nmax_output = 1000\n",
            sshd.path(id).display(),
            kh.display()
        )
    };
    let config = node_config(&[
        group("127.88.1.1", 2222, &keys("id_ed25519", "echo hello")),
        group("127.88.1.2", 2222, &keys("id_rsa", "echo hello")),
        group(
            "127.88.1.3",
            2222,
            &keys("id_ed25519", "echo oops >&2; exit 3"),
        ),
        group(
            "127.88.1.4",
            2222,
            &keys("id_ed25519", "head -c 10000000 /dev/zero | tr '\\\\0' x"),
        ),
    ]);
    let node = Node::start(&config, &[]);
    let r = first_results(
        &node,
        &[
            "127.88.1.1:2222",
            "127.88.1.2:2222",
            "127.88.1.3:2222",
            "127.88.1.4:2222",
        ],
        Duration::from_secs(15),
    );
    for t in ["127.88.1.1:2222", "127.88.1.2:2222"] {
        let x = &r[t];
        assert_eq!(x["ok"], true, "{x}");
        assert_eq!(x["probe"], "ssh");
        assert_eq!(x["stdout"], "hello\n", "{x}");
        assert_eq!(x["exit_code"], 0);
        assert_eq!(x["stage"], Value::Null);
        assert!(x["host_key"].as_str().unwrap().starts_with("SHA256:"));
        for stage in ["connect", "handshake", "auth", "command"] {
            assert!(x["stages_ms"][stage].as_f64().is_some(), "{x}");
        }
    }
    let x = &r["127.88.1.3:2222"];
    assert_eq!(
        (x["ok"].clone(), x["stage"].clone(), x["error"].clone()),
        (false.into(), "command".into(), "exit_code".into()),
        "{x}"
    );
    assert_eq!(x["exit_code"], 3);
    assert_eq!(x["stderr"], "oops\n");
    let x = &r["127.88.1.4:2222"];
    assert_eq!(x["ok"], true, "{x}");
    assert_eq!(x["stdout"].as_str().unwrap().len(), 1000);
    assert_eq!(x["stdout_truncated"], true);
}

#[test]
fn host_keys_and_client_keys_are_checked() {
    let ips: Vec<String> = (1..=4).map(|i| format!("127.88.2.{i}:2222")).collect();
    let sshd = Sshd::start(&ips, None);
    // Strict, empty known_hosts: the host key is unknown and the command never runs.
    std::fs::write(sshd.path("empty_known_hosts"), "").unwrap();
    let ran = sshd.path("ran");
    // accept-new with a changed key: known_hosts holds another key for 127.88.2.3.
    keygen(&sshd.path("other_host"), "ed25519");
    std::fs::write(
        sshd.path("changed_known_hosts"),
        format!(
            "[127.88.2.3]:2222 {}\n",
            public_key(&sshd.path("other_host"))
        ),
    )
    .unwrap();
    // accept-new, unknown key: learnt and recorded.
    let tofu = sshd.path("tofu_known_hosts");
    let good_kh = sshd.known_hosts("known_hosts", &["[127.88.2.1]:2222".to_string()]);
    let config = node_config(&[
        group("127.88.2.1", 2222, &format!("identity = \"{}\"\nknown_hosts = \"{}\"\n", sshd.path("id_other").display(), good_kh.display())),
        group(
            "127.88.2.2",
            2222,
            &format!("identity = \"{}\"\nknown_hosts = \"{}\"\ncommand = \"touch {}\"\n", sshd.path("id_ed25519").display(), sshd.path("empty_known_hosts").display(), ran.display()),
        ),
        group(
            "127.88.2.3",
            2222,
            &format!("identity = \"{}\"\nknown_hosts = \"{}\"\nhost_key_policy = \"accept-new\"\n", sshd.path("id_ed25519").display(), sshd.path("changed_known_hosts").display()),
        ),
        group(
            "127.88.2.4",
            2222,
            &format!("identity = \"{}\"\nknown_hosts = \"{}\"\nhost_key_policy = \"accept-new\"\ncommand = \"true\"\n", sshd.path("id_ed25519").display(), tofu.display()),
        ),
    ]);
    let node = Node::start(&config, &[]);
    let r = first_results(
        &node,
        &[
            "127.88.2.1:2222",
            "127.88.2.2:2222",
            "127.88.2.3:2222",
            "127.88.2.4:2222",
        ],
        Duration::from_secs(15),
    );
    let x = &r["127.88.2.1:2222"];
    assert_eq!(
        (x["ok"].clone(), x["stage"].clone(), x["error"].clone()),
        (false.into(), "auth".into(), "auth_failed".into()),
        "{x}"
    );
    let x = &r["127.88.2.2:2222"];
    assert_eq!(
        (x["stage"].clone(), x["error"].clone()),
        ("hostkey".into(), "hostkey_unknown".into()),
        "{x}"
    );
    assert!(!ran.exists(), "the command must not run on an unknown host");
    let x = &r["127.88.2.3:2222"];
    assert_eq!(
        (x["stage"].clone(), x["error"].clone()),
        ("hostkey".into(), "hostkey_changed".into()),
        "{x}"
    );
    let server_fp = x["host_key"].as_str().unwrap();
    let known_fp = x["known_host_keys"][0].as_str().unwrap();
    assert!(
        server_fp.starts_with("SHA256:")
            && known_fp.starts_with("SHA256:")
            && server_fp != known_fp,
        "{x}"
    );
    let x = &r["127.88.2.4:2222"];
    assert_eq!(x["ok"], true, "{x}");
    let learnt = std::fs::read_to_string(&tofu).unwrap();
    assert_eq!(
        learnt.trim(),
        format!(
            "[127.88.2.4]:2222 {}",
            sshd.host_key().rsplit_once(' ').unwrap().0
        ),
        "{learnt}"
    );
}

#[test]
fn dead_and_silent_servers_end_in_time_without_holding_up_the_others() {
    let sshd = Sshd::start(&["127.88.3.1:2222".to_string()], None);
    let kh = sshd.known_hosts(
        "known_hosts",
        &[
            "[127.88.3.1]:2222".to_string(),
            "[127.88.3.2]:2222".to_string(),
            "[127.88.3.3]:2222".to_string(),
        ],
    );
    // A listener that accepts and never sends a banner.
    let silent = std::net::TcpListener::bind("127.88.3.3:2222").unwrap();
    let keys = format!(
        "identity = \"{}\"\nknown_hosts = \"{}\"\ncommand = \"true\"\n",
        sshd.path("id_ed25519").display(),
        kh.display()
    );
    let config = format!(
        "[node]\nname = \"ssh-test\"\n[probe]\ninterval = \"1s\"\ntimeout = \"800ms\"\n{}{}{}",
        group("127.88.3.1", 2222, &keys),
        group("127.88.3.2", 2222, &keys), // nothing listens
        group("127.88.3.3", 2222, &keys),
    );
    let node = Node::start(&config, &[]);
    let r = first_results(
        &node,
        &["127.88.3.1:2222", "127.88.3.2:2222", "127.88.3.3:2222"],
        Duration::from_secs(10),
    );
    let x = &r["127.88.3.2:2222"];
    assert_eq!(
        (x["stage"].clone(), x["error"].clone()),
        ("connect".into(), "refused".into()),
        "{x}"
    );
    let x = &r["127.88.3.3:2222"];
    assert_eq!(
        (x["stage"].clone(), x["error"].clone()),
        ("handshake".into(), "timeout".into()),
        "{x}"
    );
    // The healthy server keeps its once-a-second rhythm while the silent one eats timeouts.
    assert_keeps_rhythm(&node, "127.88.3.1:2222");
    drop(silent);
}

#[test]
fn a_thousand_loopback_hosts_behind_one_sshd_are_all_up_in_one_round() {
    let ns = Netns::new("ssh1k");
    let sshd = Sshd::start(&["0.0.0.0:2222".to_string()], Some(&ns.name));
    // One known_hosts line covers every address (OpenSSH wildcard syntax).
    let kh = sshd.known_hosts("known_hosts", &["[127.1.*]:2222".to_string()]);
    let hosts: String = (0..1000u32)
        .map(|i| format!("127.1.{}.{}\n", i / 250, 1 + i % 250))
        .collect();
    std::fs::write(sshd.path("hosts.txt"), hosts).unwrap();
    let config = format!(
        "[node]\nname = \"ssh-1k\"\n[probe]\ninterval = \"40s\"\ntimeout = \"15s\"\n[probe.ssh]\nmax_concurrent_ssh = 100\n\
         [[targets]]\nfile = \"{}\"\nprobe = \"ssh\"\nport = 2222\nuser = \"{USER}\"\nidentity = \"{}\"\nknown_hosts = \"{}\"\ncommand = \"true\"\n",
        sshd.path("hosts.txt").display(),
        sshd.path("id_ed25519").display(),
        kh.display()
    );
    let node = Node::start_in_netns(&ns.name, &config, &[], &[]);
    // One round: every target has its first result within the interval (+ its timeout).
    let firsts = wait_until(
        "a result for each of the 1,000 hosts",
        Duration::from_secs(60),
        || {
            let mut first: BTreeMap<String, bool> = BTreeMap::new();
            for r in node.results() {
                first
                    .entry(r["target"].as_str().unwrap().to_string())
                    .or_insert(r["ok"].as_bool().unwrap());
            }
            (first.len() == 1000).then_some(first)
        },
    );
    let down: Vec<&String> = firsts
        .iter()
        .filter(|(_, ok)| !**ok)
        .map(|(t, _)| t)
        .collect();
    assert!(
        down.is_empty(),
        "{} of 1000 down, e.g. {:?}",
        down.len(),
        &down[..down.len().min(5)]
    );
}

/// The results of `target`, in order.
fn results_of(node: &Node, target: &str) -> Vec<Value> {
    node.results()
        .into_iter()
        .filter(|r| r["target"] == target)
        .collect()
}

#[test]
fn persistent_sessions_log_in_once_per_host_and_reconnect_when_the_server_goes() {
    let (hosts, targets, mut sshd, kh) = sshd_on("127.88.5", 4);
    let config = fast_config(&sshd, &kh, &hosts, "echo hi");
    let http = "127.88.5.9:9464";
    let mut node = Node::start_args(&config, &["--http", http], &[]);
    // 20 rounds: one login per host, the other 19 probes channels on it.
    let target_refs: Vec<&str> = targets.iter().map(String::as_str).collect();
    wait_ok_rounds(&node, &targets, 20, Duration::from_secs(40));
    assert_eq!(sshd.logins(), hosts.len(), "{}", sshd.log());
    // The node counts them, and the connections it holds.
    let metrics = common::http_get(http, "/metrics").expect("metrics");
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
    };
    assert_eq!(value("ringpoll_ssh_logins_total{result=\"ok\"}"), 4.0);
    assert_eq!(
        value("ringpoll_ssh_connections{state=\"idle\"}")
            + value("ringpoll_ssh_connections{state=\"busy\"}"),
        4.0
    );
    for t in &target_refs {
        let rs = results_of(&node, t);
        assert!(rs[0]["stages_ms"]["auth"].as_f64().is_some(), "{}", rs[0]);
        let later = &rs[5];
        assert_eq!(later["stdout"], "hi\n", "{later}");
        assert!(later["stages_ms"]["channel"].as_f64().is_some(), "{later}");
        assert!(
            later["stages_ms"].get("auth").is_none(),
            "no login: {later}"
        );
    }

    // The server and its connections go, and come back: every host logs in again within a
    // probe (reconnected) and keeps its rhythm.
    let before = node.results().len();
    sshd.restart(false);
    wait_until("every host reconnected", Duration::from_secs(10), || {
        let rs = node.results();
        target_refs
            .iter()
            .all(|t| {
                rs[before..]
                    .iter()
                    .any(|r| r["target"] == *t && r["ok"] == true && r["reconnected"] == true)
            })
            .then_some(())
    });
    // Reconnected, each keeps its rhythm.
    let reconnected = node.results().len();
    for t in &target_refs {
        assert_keeps_rhythm_since(&node, t, reconnected);
    }
    let logins = sshd.logins();
    assert!(
        (2 * hosts.len()..=3 * hosts.len()).contains(&logins),
        "{logins} logins after one restart"
    );

    // Stopping the node closes its connections with an SSH disconnect.
    let disconnects = || sshd.log().matches("Received disconnect from").count();
    let before = disconnects();
    node.signal(libc::SIGTERM);
    assert!(node.wait_exit(Duration::from_secs(10)).success());
    wait_until(
        "an SSH disconnect per held connection",
        Duration::from_secs(5),
        || (disconnects() >= before + hosts.len()).then_some(()),
    );

    // A new host key: caught at the reconnect, and the command never runs.
    let node = Node::start(&config, &[]);
    wait_until("a result per host", Duration::from_secs(10), || {
        target_refs
            .iter()
            .all(|t| results_of(&node, t).iter().any(|r| r["ok"] == true))
            .then_some(())
    });
    let before = node.results().len();
    sshd.restart(true);
    wait_until(
        "hostkey_changed for every host",
        Duration::from_secs(10),
        || {
            let rs = node.results();
            target_refs
                .iter()
                .all(|t| {
                    rs[before..].iter().any(|r| {
                        r["target"] == *t
                            && r["error"] == "hostkey_changed"
                            && r["stdout"].is_null()
                            && r["reconnected"] == true
                    })
                })
                .then_some(())
        },
    );
}

/// Waits for five results of `target` after the first `since` results (interval 1 s) and
/// asserts that none came more than 2 s after the one before (an interval, a timeout, slack):
/// its probes keep their slots. (Results, not only ok ones: a command may run past its timeout
/// while the other tests load the machine, and that is a result in its slot.)
fn assert_keeps_rhythm_since(node: &Node, target: &str, since: usize) {
    let times = wait_until("five more rounds", Duration::from_secs(10), || {
        let rs = node.results();
        let t: Vec<i64> = common::by_target(&rs[since.min(rs.len())..])
            .get(target)
            .map(|v| v.iter().map(|x| x.0).collect())
            .unwrap_or_default();
        (t.len() >= 5).then_some(t)
    });
    let gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    let failed: Vec<Value> = node.results()[since..]
        .iter()
        .filter(|r| r["target"] == target && r["ok"] != true)
        .cloned()
        .collect();
    assert!(
        gap <= 2_000,
        "{gap} ms between results of {target}: {times:?}; failed meanwhile: {failed:?}"
    );
}

/// An sshd on port 2222 of `subnet`.1 to `subnet`.`n`, with a known_hosts for them: the hosts,
/// the targets (`host:2222`), the server and the known_hosts file.
fn sshd_on(subnet: &str, n: u8) -> (Vec<String>, Vec<String>, Sshd, PathBuf) {
    let hosts: Vec<String> = (1..=n).map(|i| format!("{subnet}.{i}")).collect();
    let targets: Vec<String> = hosts.iter().map(|h| format!("{h}:2222")).collect();
    let sshd = Sshd::start(&targets, None);
    let patterns: Vec<String> = hosts.iter().map(|h| format!("[{h}]:2222")).collect();
    let kh = sshd.known_hosts("known_hosts", &patterns);
    (hosts, targets, sshd, kh)
}

/// A node config probing `hosts` on port 2222 every second (timeout 800 ms), running
/// `command`.
fn fast_config(sshd: &Sshd, kh: &Path, hosts: &[impl AsRef<str>], command: &str) -> String {
    let keys = format!(
        "identity = \"{}\"\nknown_hosts = \"{}\"\ncommand = \"{command}\"\n",
        sshd.path("id_ed25519").display(),
        kh.display()
    );
    let groups: Vec<String> = hosts
        .iter()
        .map(|h| group(h.as_ref(), 2222, &keys))
        .collect();
    format!(
        "[node]\nname = \"ssh-fast\"\n[probe]\ninterval = \"1s\"\ntimeout = \"800ms\"\n{}",
        groups.concat()
    )
}

/// The first timeout of `target` after the first `since` results (within 5 s).
fn first_timeout(node: &Node, since: usize, target: &str) -> Value {
    wait_until(
        &format!("a timeout of {target}"),
        Duration::from_secs(5),
        || {
            node.results()[since..]
                .iter()
                .find(|r| r["target"] == target && r["error"] == "timeout")
                .cloned()
        },
    )
}

#[test]
fn an_old_connection_is_replaced_and_logins_wait_their_turn_in_the_node_budget() {
    let (hosts, targets, sshd, kh) = sshd_on("127.88.6", 4);
    // One fresh login a second for the node, and connections replaced after 3 s.
    let config = fast_config(&sshd, &kh, &hosts, "true")
        + "[probe.ssh]\nmax_new_logins_per_s = 1\nmax_session_age = \"3s\"\n";
    let node = Node::start(&config, &[]);
    // The logins queue for their turns: probes that time out waiting say so, and the logins
    // go on and are used by the next probes.
    wait_until(
        "a probe timed out waiting for its login turn",
        Duration::from_secs(10),
        || {
            node.results()
                .iter()
                .any(|r| r["stage"] == "login_slot" && r["error"] == "timeout")
                .then_some(())
        },
    );
    wait_ok_rounds(&node, &targets, 12, Duration::from_secs(30));
    // Over those ~12 s hosts logged in again when their connection was 3 s old (one login per
    // target at a time, so more logins than hosts are replacements), never once per probe.
    let logins = sshd.logins();
    assert!(
        (hosts.len() + 1..=6 * hosts.len()).contains(&logins),
        "{logins} logins for {} hosts",
        hosts.len()
    );
}

#[test]
fn a_reload_that_changes_a_target_closes_its_connection_and_logs_in_with_the_new_settings() {
    let (hosts, targets, sshd, kh) = sshd_on("127.88.7", 2);
    let node = Node::start(&fast_config(&sshd, &kh, &hosts, "echo v1"), &[]);
    wait_ok_rounds(&node, &targets, 3, Duration::from_secs(10));
    assert_eq!(sshd.logins(), hosts.len(), "{}", sshd.log());
    let disconnects = || sshd.log().matches("Received disconnect from").count();
    let before = disconnects();
    // The command changes: each connection is closed (an SSH disconnect) and the next probe
    // logs in again, running the new command.
    std::fs::write(
        node.dir.path().join("config.toml"),
        fast_config(&sshd, &kh, &hosts, "echo v2"),
    )
    .unwrap();
    node.signal(libc::SIGHUP);
    wait_until("the new command's output", Duration::from_secs(10), || {
        targets
            .iter()
            .all(|t| results_of(&node, t).iter().any(|r| r["stdout"] == "v2\n"))
            .then_some(())
    });
    wait_until(
        "a disconnect per old connection",
        Duration::from_secs(5),
        || (disconnects() >= before + hosts.len()).then_some(()),
    );
    assert_eq!(sshd.logins(), 2 * hosts.len(), "{}", sshd.log());
}

/// The SSH disconnects sshd has logged.
fn disconnects(sshd: &Sshd) -> usize {
    sshd.log().matches("Received disconnect from").count()
}

#[test]
fn a_target_handed_to_another_node_has_its_connection_closed_by_the_old_owner() {
    let (hosts, targets, sshd, kh) = sshd_on("127.88.10", 8);
    let config = fast_config(&sshd, &kh, &hosts, "true") + "[cluster]\nreplicas = 1\n";
    let cluster = Cluster::new("127.88.9", &config);
    let n1 = cluster.start(1, &[]);
    wait_ok_rounds(&n1, &targets, 2, Duration::from_secs(15));
    assert_eq!(sshd.logins(), hosts.len(), "{}", sshd.log());
    let n2 = cluster.start(2, &[1]);
    wait_converged(&[&n1, &n2], 2, Duration::from_secs(20));
    // Who probes each target once the ring has settled.
    let settled = now_ms() + 1_500;
    let owners = wait_until(
        "every target probed after the hand-off",
        Duration::from_secs(15),
        || {
            let owner = |t: &String| {
                [("n1", &n1), ("n2", &n2)]
                    .into_iter()
                    .find_map(|(name, n)| {
                        results_of(n, t)
                            .iter()
                            .any(|r| r["ok"] == true && ts_ms(r) > settled)
                            .then_some(name)
                    })
            };
            targets.iter().map(owner).collect::<Option<Vec<_>>>()
        },
    );
    let moved = owners.iter().filter(|o| **o == "n2").count();
    assert!(
        (1..targets.len()).contains(&moved),
        "n2 took {moved} of {} targets",
        targets.len()
    );
    // n1 closed the connection of each target it handed over (an SSH disconnect each), n2
    // logged in once to each, and the targets n1 kept still use their first connection.
    wait_until(
        "a disconnect per target handed over",
        Duration::from_secs(10),
        || (disconnects(&sshd) >= moved).then_some(()),
    );
    let kept: Vec<String> = targets
        .iter()
        .zip(&owners)
        .filter(|(_, o)| **o == "n1")
        .map(|(t, _)| t.clone())
        .collect();
    let seen = kept.iter().map(|t| results_of(&n1, t).len()).min().unwrap();
    wait_ok_rounds(&n1, &kept, seen + 2, Duration::from_secs(10));
    assert_eq!(disconnects(&sshd), moved, "{}", sshd.log());
    assert_eq!(sshd.logins(), hosts.len() + moved, "{}", sshd.log());
}

#[test]
fn a_quarantined_target_has_its_connection_closed() {
    let (hosts, targets, sshd, kh) = sshd_on("127.88.8", 2);
    let config = fast_config(&sshd, &kh, &hosts, "true")
        + "[supervision]\nmax_restarts = 2\nwithin = \"30s\"\nbackoff_min = \"100ms\"\n\
           backoff_max = \"200ms\"\nquarantine = \"1h\"\n";
    // The first target's probe actor panics from its fourth probe on, for ever.
    let node = Node::start_panicking(&config, &format!("{}*1000@3", targets[0]));
    wait_ok_rounds(&node, &targets[..1], 3, Duration::from_secs(10));
    node.wait_log("target quarantined", 1, Duration::from_secs(20));
    // Closed by the quarantine itself (a panicked actor runs no post_stop), not left to the
    // reaper's next turn up to 10 s later.
    wait_until(
        "the quarantined target's connection closed",
        Duration::from_secs(3),
        || (disconnects(&sshd) == 1).then_some(()),
    );
    // The other target keeps its connection.
    let seen = results_of(&node, &targets[1]).len();
    wait_ok_rounds(&node, &targets[1..], seen + 2, Duration::from_secs(10));
    assert_eq!(disconnects(&sshd), 1, "{}", sshd.log());
    assert_eq!(sshd.logins(), hosts.len(), "{}", sshd.log());
}

/// Waits until each of `targets` has `n` ok results.
fn wait_ok_rounds(node: &Node, targets: &[String], n: usize, within: Duration) {
    wait_until(&format!("{n} ok results per host"), within, || {
        targets
            .iter()
            .all(|t| {
                results_of(node, t)
                    .iter()
                    .filter(|r| r["ok"] == true)
                    .count()
                    >= n
            })
            .then_some(())
    });
}

/// The pids of the sshd processes serving connections to `local` (`ip:port`) in `netns`.
fn server_pids(netns: &str, local: &str) -> Vec<i32> {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            netns,
            "ss",
            "-tnpH",
            "state",
            "established",
        ])
        .output()
        .expect("ss");
    let re = regex::Regex::new(r"pid=(\d+)").unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some(local))
        .flat_map(|l| {
            re.captures_iter(l)
                .map(|c| c[1].parse::<i32>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_frozen_or_silently_cut_connection_ends_in_its_timeout_and_logs_in_again_while_others_keep_rhythm(
) {
    let ns = Netns::new("sshcut");
    let hosts = ["127.0.2.1", "127.0.2.2", "127.0.2.3"];
    let sshd = Sshd::start(&["0.0.0.0:2222".to_string()], Some(&ns.name));
    let kh = sshd.known_hosts("known_hosts", &["[127.0.2.*]:2222".to_string()]);
    let config = fast_config(&sshd, &kh, &hosts, "true");
    let node = Node::start_in_netns(&ns.name, &config, &[], &[]);
    let ok_after = |t: &str, since: usize| {
        node.results()[since..]
            .iter()
            .any(|r| r["target"] == t && r["ok"] == true)
    };
    wait_until("every host up", Duration::from_secs(10), || {
        hosts
            .iter()
            .all(|h| ok_after(&format!("{h}:2222"), 0))
            .then_some(())
    });

    // The server process of one connection frozen: that target's next probe times out, the
    // one after logs in again (to a new server process), and the others keep their rhythm.
    let frozen = server_pids(&ns.name, "127.0.2.1:2222");
    assert!(!frozen.is_empty(), "no sshd process serves 127.0.2.1");
    let since = node.results().len();
    let frozen_at = common::now_ms();
    for pid in &frozen {
        // SAFETY: kill(2) on a process of the test's own sshd.
        unsafe { libc::kill(*pid, libc::SIGSTOP) };
    }
    let timed_out = first_timeout(&node, since, "127.0.2.1:2222");
    // Its slot came within an interval, and its timeout within 800 ms of it.
    assert!(ts_ms(&timed_out) - frozen_at <= 2_000, "{timed_out}");
    let after = node.results().len();
    wait_until(
        "the frozen host logged in again",
        Duration::from_secs(5),
        || ok_after("127.0.2.1:2222", after).then_some(()),
    );
    for h in &hosts[1..] {
        assert_keeps_rhythm_since(&node, &format!("{h}:2222"), since);
    }
    for pid in &frozen {
        // SAFETY: as above.
        unsafe { libc::kill(*pid, libc::SIGCONT) };
    }

    // A connection cut silently (every packet dropped, no reset): found in the next probe's
    // timeout, not TCP's minutes; the host is back once the cut heals.
    let since = node.results().len();
    let cut_at = common::now_ms();
    ns.nft("table ip sshcut { chain input { type filter hook input priority 0; policy accept;\n \
            ip daddr 127.0.2.2 tcp dport 2222 drop;\n ip saddr 127.0.2.2 tcp sport 2222 drop; }; }\n");
    let cut = first_timeout(&node, since, "127.0.2.2:2222");
    assert!(ts_ms(&cut) - cut_at <= 2_000, "{cut}");
    for h in [hosts[0], hosts[2]] {
        assert_keeps_rhythm_since(&node, &format!("{h}:2222"), since);
    }
    ns.nft("delete table ip sshcut\n");
    let healed = node.results().len();
    wait_until("the cut host back", Duration::from_secs(5), || {
        ok_after("127.0.2.2:2222", healed).then_some(())
    });
}

/// A misbehaving "SSH server" on `addr`, run by python3 for the test's life: `banner_then_silence`,
/// `drip` (a byte a second), or `close_mid_kex` (banner, then close after reading the client's
/// first packet).
fn bad_server(addr: &str, kind: &str) -> Child {
    let (host, port) = addr.split_once(':').unwrap();
    let script = format!(
        r#"
import socket, threading, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{host}", {port})); s.listen(64)
def serve(c):
    try:
        if "{kind}" == "banner_then_silence":
            c.sendall(b"SSH-2.0-OpenSSH_9.2\r\n"); time.sleep(60)
        elif "{kind}" == "drip":
            for b in b"SSH-2.0-OpenSSH_9.2\r\n" + b"x" * 100:
                c.sendall(bytes([b])); time.sleep(1)
        else:
            c.sendall(b"SSH-2.0-OpenSSH_9.2\r\n"); c.recv(4096); c.close()
    except OSError:
        pass
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
"#
    );
    let child = Command::new("python3")
        .args(["-c", &script])
        .spawn()
        .expect("python3");
    wait_until("the bad server to listen", Duration::from_secs(5), || {
        std::net::TcpStream::connect(addr).ok().map(|_| ())
    });
    child
}

#[test]
fn misbehaving_ssh_servers_end_as_results_in_time() {
    let sshd = Sshd::start(&["127.88.4.1:2222".to_string()], None);
    let mut servers: Vec<Child> = ["banner_then_silence", "drip", "close_mid_kex"]
        .iter()
        .enumerate()
        .map(|(i, k)| bad_server(&format!("127.88.4.{}:2222", i + 2), k))
        .collect();
    let kh = sshd.known_hosts(
        "known_hosts",
        &(1..=4)
            .map(|i| format!("[127.88.4.{i}]:2222"))
            .collect::<Vec<_>>(),
    );
    let keys = format!(
        "identity = \"{}\"\nknown_hosts = \"{}\"\ncommand = \"true\"\n",
        sshd.path("id_ed25519").display(),
        kh.display()
    );
    let config = format!(
        "[node]\nname = \"ssh-test\"\n[probe]\ninterval = \"1s\"\ntimeout = \"800ms\"\n{}",
        (1..=4)
            .map(|i| group(&format!("127.88.4.{i}"), 2222, &keys))
            .collect::<String>()
    );
    let node = Node::start(&config, &[]);
    let r = first_results(
        &node,
        &[
            "127.88.4.1:2222",
            "127.88.4.2:2222",
            "127.88.4.3:2222",
            "127.88.4.4:2222",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(r["127.88.4.1:2222"]["ok"], true);
    for (t, stage) in [
        ("127.88.4.2:2222", "handshake"),
        ("127.88.4.3:2222", "handshake"),
        ("127.88.4.4:2222", "handshake"),
    ] {
        let x = &r[t];
        assert_eq!(
            (x["ok"].clone(), x["stage"].clone()),
            (false.into(), stage.into()),
            "{x}"
        );
    }
    // The slow ones end within their timeout and the healthy server keeps its rhythm.
    assert_keeps_rhythm(&node, "127.88.4.1:2222");
    for s in &mut servers {
        let _ = s.kill();
        let _ = s.wait();
    }
}

#[test]
fn a_command_past_its_timeout_keeps_the_connection_and_its_channel_is_closed() {
    // Two channels per connection at most: channels left open would use them up.
    let target = "127.88.11.1:2222".to_string();
    let sshd = Sshd::start_with(std::slice::from_ref(&target), None, "MaxSessions 2\n");
    let kh = sshd.known_hosts("known_hosts", &["[127.88.11.1]:2222".into()]);
    let node = Node::start(&fast_config(&sshd, &kh, &["127.88.11.1"], "sleep 30"), &[]);
    let results = wait_until("8 results", Duration::from_secs(15), || {
        let r = results_of(&node, &target);
        (r.len() >= 8).then_some(r)
    });
    // Every probe opened its channel and timed out in the command, on the one connection.
    for r in &results {
        assert_eq!(
            (&r["error"], &r["stage"]),
            (&Value::from("timeout"), &Value::from("command")),
            "{r}"
        );
    }
    assert_eq!(sshd.logins(), 1, "{}", sshd.log());
    // The commands were killed at their timeouts: one at most runs (the probe in flight).
    let running = Command::new("pgrep")
        .args(["-u", USER, "-fc", "^sleep 30"])
        .output()
        .unwrap();
    let running: usize = String::from_utf8_lossy(&running.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(running <= 1, "{running} commands still run on the server");
}

#[test]
fn probes_leave_from_their_source_address() {
    let ns = Netns::new("src");
    // sshd on 127.0.5.1:2222 inside the namespace: the SSH and the TCP target.
    let sshd = Sshd::start(&["127.0.5.1:2222".into()], Some(&ns.name));
    let kh = sshd.known_hosts("known_hosts", &["[127.0.5.1]:2222".into()]);
    // Echo requests from 127.0.1.2 are dropped; TCP handshakes from 127.0.1.3 are counted.
    ns.nft(
        "table inet vantage {\n counter syn_from_source {}\n chain out {\n  type filter hook output priority 0;\n  \
         ip saddr 127.0.1.2 icmp type echo-request drop\n  \
         ip saddr 127.0.1.3 tcp dport 2222 tcp flags & (syn | ack) == syn counter name syn_from_source\n }\n}\n",
    );
    let keys = format!(
        "identity = \"{}\"\nknown_hosts = \"{}\"\ncommand = \"true\"\nsource = \"127.0.1.4\"\n",
        sshd.path("id_ed25519").display(),
        kh.display()
    );
    let config = format!(
        "[node]\nname = \"vantage\"\n[probe]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\
         [[targets]]\nhosts = [\"127.0.5.2\"]\nprobe = \"icmp\"\nsource = \"127.0.1.1\"\n\
         [[targets]]\nhosts = [\"127.0.5.3\"]\nprobe = \"icmp\"\nsource = \"127.0.1.2\"\n\
         [[targets]]\nhosts = [\"127.0.5.1\"]\nprobe = \"tcp\"\nport = 2222\nsource = \"127.0.1.3\"\n{}",
        group("127.0.5.1", 2222, &keys)
    );
    let node = Node::start_in_netns(&ns.name, &config, &[], &[]);
    let targets = ["127.0.5.2", "127.0.5.3", "127.0.5.1:2222"];
    wait_until("3 results of each target", Duration::from_secs(15), || {
        targets
            .iter()
            .all(|t| results_of(&node, t).len() >= 3)
            .then_some(())
    });
    let oks = |t: &str| -> Vec<bool> {
        results_of(&node, t)
            .iter()
            .map(|r| r["ok"] == true)
            .collect()
    };
    // Only the echoes from the blocked source were lost.
    assert!(
        oks("127.0.5.2").iter().all(|ok| *ok),
        "{:?}",
        oks("127.0.5.2")
    );
    assert!(
        !oks("127.0.5.3").iter().any(|ok| *ok),
        "{:?}",
        oks("127.0.5.3")
    );
    // The TCP target (also 127.0.5.1:2222: the ids of a tcp and an ssh target are alike) was
    // reached from its source: its handshakes passed the counter.
    let tcp_ok = node
        .results()
        .iter()
        .filter(|r| r["target"] == "127.0.5.1:2222" && r["probe"] == "tcp" && r["ok"] == true)
        .count();
    let counted = ns.nft_list(&["counter", "inet", "vantage", "syn_from_source"]);
    let packets: usize = regex::Regex::new(r"packets (\d+)")
        .unwrap()
        .captures(&counted)
        .map(|c| c[1].parse().unwrap())
        .unwrap();
    assert!(tcp_ok >= 1 && packets >= tcp_ok, "{tcp_ok} ok, {counted}");
    // The SSH login came from its source.
    let log = sshd.log();
    assert!(
        log.contains("Accepted publickey for ringpoll-probe from 127.0.1.4 port"),
        "{log}"
    );
}
