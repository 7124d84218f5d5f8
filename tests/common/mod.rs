//! Test harness: runs the real `ringpoll` binary as a separate process in a temp dir.
//!
//! Every wait is a condition polled against a deadline; every process is killed on drop, and
//! its log is printed when a test fails.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ringpoll")
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Polls `cond` every 50 ms until it returns `Some`, or panics with `what` at the deadline.
pub fn wait_until<T>(what: &str, within: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One running node.
pub struct Node {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub results: PathBuf,
    pub log: PathBuf,
    pub started: Instant,
}

impl Node {
    /// Writes `config` to `config.toml` in a fresh temp dir and starts a node on it.
    pub fn start(config: &str, env: &[(&str, &str)]) -> Node {
        Self::start_args(config, &[], env)
    }

    /// Starts a node whose probe actor of a target panics (`RINGPOLL_TEST_PANIC_PROBE=spec`,
    /// `TARGET[*COUNT][@AFTER]`): a test hook compiled only with the `test-hooks` feature,
    /// which the test command (`tests/run.sh`) enables. Fails at once, saying so, without it.
    pub fn start_panicking(config: &str, spec: &str) -> Node {
        let node = Self::start(config, &[("RINGPOLL_TEST_PANIC_PROBE", spec)]);
        node.wait_log("child started", 1, Duration::from_secs(10));
        assert!(
            node.log().contains("test fault injection is on"),
            "the binary has no test hooks: run the tests with `bash tests/run.sh` \
             (cargo test --features ringpoll/test-hooks)"
        );
        node
    }

    /// Like [`Node::start`], with extra command-line arguments.
    pub fn start_args(config: &str, args: &[&str], env: &[(&str, &str)]) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).expect("write config");
        Self::spawn(dir, &path, args, env)
    }

    /// Starts a node on an existing config file, with results and log in `dir`.
    pub fn start_with(dir: tempfile::TempDir, config: &Path, env: &[(&str, &str)]) -> Node {
        Self::spawn(dir, config, &[], env)
    }

    /// Starts a node on an existing config file with extra arguments.
    pub fn start_with_args(dir: tempfile::TempDir, config: &Path, args: &[&str]) -> Node {
        Self::spawn(dir, config, args, &[])
    }

    /// Like [`Node::start_args`], inside network namespace `netns`.
    pub fn start_in_netns(netns: &str, config: &str, args: &[&str], env: &[(&str, &str)]) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).expect("write config");
        Self::spawn_with(dir, &path, args, env, Some(netns))
    }

    fn spawn(dir: tempfile::TempDir, config: &Path, args: &[&str], env: &[(&str, &str)]) -> Node {
        Self::spawn_with(dir, config, args, env, None)
    }

    fn spawn_with(
        dir: tempfile::TempDir,
        config: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        netns: Option<&str>,
    ) -> Node {
        // A test may name the results file itself (--results PATH).
        let results = match args.iter().position(|a| *a == "--results") {
            Some(i) => PathBuf::from(args[i + 1]),
            None => dir.path().join("results.jsonl"),
        };
        let log = dir.path().join("node.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut cmd = match netns {
            None => Command::new(bin()),
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin()]);
                c
            }
        };
        cmd.arg("node")
            .arg("--config")
            .arg(config)
            .args(if args.contains(&"--results") {
                vec![]
            } else {
                vec!["--results".into(), results.display().to_string()]
            })
            .args(args)
            // Tests run nodes side by side: no HTTP endpoint unless a test asks for one.
            .args(if args.contains(&"--http") {
                &[][..]
            } else {
                &["--http", "off"][..]
            })
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .env("RUST_LOG", "info,ractor=warn,ractor_cluster=error")
            .env_remove("RINGPOLL_COOKIE")
            .env_remove("RINGPOLL_TEST_PANIC_PROBE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn ringpoll");
        Node {
            child: Some(child),
            dir,
            results,
            log,
            started: Instant::now(),
        }
    }

    /// The probe results in the results file (its state events left out).
    pub fn results(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l.get("event").is_none())
            .collect()
    }

    /// The state events in the results file (`"event": "state"`).
    pub fn events(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l.get("event").is_some())
            .collect()
    }

    /// Every complete line of the results file, parsed (panics on a line that does not parse).
    pub fn lines(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.results).unwrap_or_default();
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        complete
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad result line {l:?}: {e}"))
            })
            .collect()
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` `n` times.
    pub fn wait_log(&self, needle: &str, n: usize, within: Duration) {
        wait_until(&format!("{n}× {needle:?} in the log"), within, || {
            (self.log().matches(needle).count() >= n).then_some(())
        })
    }

    /// Sends `sig` to the node.
    pub fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().expect("running").id() as i32;
        // SAFETY: plain kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Kills the node with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The exit status if the node has exited, without waiting (`None` while it runs).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Ends the node (if running), returning its status.
    pub fn wait_exit_or_none(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }

    /// Waits for the node to exit.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        wait_until("the node to exit", within, || {
            child.try_wait().expect("try_wait")
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // A stopped process cannot die until continued.
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- node log ({}) ----\n{}",
                self.log.display(),
                self.log()
            );
        }
    }
}

/// A result's (or event's) time, ms since the epoch.
pub fn ts_ms(r: &Value) -> i64 {
    let t = humantime::parse_rfc3339(r["ts"].as_str().expect("ts")).expect("RFC 3339 ts");
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Results grouped by target, with the node: target → (ms since epoch, node, ok).
pub fn by_target_node(
    results: &[Value],
) -> std::collections::BTreeMap<String, Vec<(i64, String, bool)>> {
    let mut map: std::collections::BTreeMap<String, Vec<(i64, String, bool)>> = Default::default();
    for r in results {
        map.entry(r["target"].as_str().unwrap().to_string())
            .or_default()
            .push((
                ts_ms(r),
                r["node"].as_str().unwrap().to_string(),
                r["ok"].as_bool().unwrap(),
            ));
    }
    for v in map.values_mut() {
        v.sort();
    }
    map
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Results grouped by target: target id → timestamps (ms since epoch) and ok flags, in order.
pub fn by_target(results: &[Value]) -> std::collections::BTreeMap<String, Vec<(i64, bool)>> {
    let mut map: std::collections::BTreeMap<String, Vec<(i64, bool)>> = Default::default();
    for r in results {
        map.entry(r["target"].as_str().unwrap().to_string())
            .or_default()
            .push((ts_ms(r), r["ok"].as_bool().unwrap()));
    }
    map
}

/// A network namespace of the test's own (only `lo`, up), removed on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("rp-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip netns add")
            .success()
            && Command::new("ip")
                .args(["-n", &name, "link", "set", "lo", "up"])
                .status()
                .expect("ip link")
                .success();
        assert!(
            ok,
            "cannot create network namespace {name} (the tests run as root)"
        );
        Netns { name }
    }

    /// Loads the nftables `script` into the namespace (the test command installs nftables).
    pub fn nft(&self, script: &str) {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("nft (the test command installs nftables)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "nft: {script}");
    }

    /// What `nft list WHAT...` prints in the namespace (a set, a counter, a table).
    pub fn nft_list(&self, what: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "list"])
            .args(what)
            .output()
            .expect("nft (the test command installs nftables)");
        assert!(out.status.success(), "nft list {what:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A test's cluster: members `n1`, `n2`, … each on its own address of the test's loopback
/// subnet (`{subnet}.{n}:4701`), all on one config; inside network namespace `netns` if set.
pub struct Cluster {
    pub subnet: String,
    pub config: String,
    pub netns: Option<String>,
}

impl Cluster {
    /// Members on `subnet` (e.g. `"127.77.1"`) running `config`.
    pub fn new(subnet: &str, config: &str) -> Cluster {
        Cluster {
            subnet: subnet.into(),
            config: config.into(),
            netns: None,
        }
    }

    /// The cluster address of member `n`.
    pub fn addr(&self, n: u8) -> String {
        format!("{}.{n}:4701", self.subnet)
    }

    /// The address of member `n` on `port` (for its HTTP endpoint, say).
    pub fn addr_port(&self, n: u8, port: u16) -> String {
        format!("{}.{n}:{port}", self.subnet)
    }

    /// Starts member `n`, seeded with the members numbered `seeds`.
    pub fn start(&self, n: u8, seeds: &[u8]) -> Node {
        self.start_with(n, seeds, &[], &[])
    }

    /// Like [`Cluster::start`], with extra arguments and environment.
    pub fn start_with(&self, n: u8, seeds: &[u8], extra: &[&str], env: &[(&str, &str)]) -> Node {
        let (name, listen) = (format!("n{n}"), self.addr(n));
        let seeds: Vec<String> = seeds.iter().map(|s| self.addr(*s)).collect();
        let mut args: Vec<&str> = vec!["--name", &name, "--listen", &listen];
        for s in &seeds {
            args.push("--seed");
            args.push(s);
        }
        args.extend_from_slice(extra);
        match &self.netns {
            None => Node::start_args(&self.config, &args, env),
            Some(ns) => Node::start_in_netns(ns, &self.config, &args, env),
        }
    }
}

/// When `nodes` all run one ring of `members` members and have finished their hand-offs: that
/// ring's digest.
pub fn converged(nodes: &[&Node], members: usize) -> Option<String> {
    let rings: Vec<_> = nodes.iter().map(|n| last_ring(n)).collect();
    let first = rings[0].clone()?;
    let agreed = first.1 == members && rings.iter().all(|r| r.as_ref() == Some(&first));
    let settled = nodes.iter().all(|n| {
        n.log()
            .lines()
            .rfind(|l| l.contains("targets owned:"))
            .is_some_and(|l| l.contains("(+0 kept"))
    });
    (agreed && settled).then_some(first.0)
}

/// Waits until [`converged`]; returns the digest.
pub fn wait_converged(nodes: &[&Node], members: usize, within: Duration) -> String {
    wait_until(
        &format!("{} nodes to agree on a {members}-member ring", nodes.len()),
        within,
        || converged(nodes, members),
    )
}

/// The targets with a result from one of `nodes` after `after` (ms since the epoch), and
/// before `until` when given, produced by a node named in `by` (any of them when empty).
pub fn covered_since(
    nodes: &[&Node],
    after: i64,
    until: Option<i64>,
    by: &[&str],
) -> std::collections::BTreeSet<String> {
    let mut all = Vec::new();
    for n in nodes {
        all.extend(n.results());
    }
    by_target_node(&all)
        .into_iter()
        .filter(|(_, v)| {
            v.iter().any(|(ts, node, _)| {
                *ts > after
                    && until.is_none_or(|u| *ts <= u)
                    && (by.is_empty() || by.contains(&node.as_str()))
            })
        })
        .map(|(t, _)| t)
        .collect()
}

/// The phase of a target's slots (ms within the interval): the median of its results' phases,
/// so completion jitter does not move it.
pub fn phase_of(times: impl IntoIterator<Item = i64>, interval_ms: i64) -> i64 {
    let mut phases: Vec<i64> = times
        .into_iter()
        .map(|t| t.rem_euclid(interval_ms))
        .collect();
    phases.sort_unstable();
    phases[phases.len() / 2]
}

/// The digest of the last ring a node logged, and its member count.
pub fn last_ring(node: &Node) -> Option<(String, usize)> {
    let log = node.log();
    let line = log.lines().rfind(|l| l.contains("ring rebuilt:"))?;
    let field = |name: &str| line.split(name).nth(1)?.split_whitespace().next();
    Some((
        field("digest=")?.to_string(),
        field("members=")?.parse().ok()?,
    ))
}

/// What the coverage checker found for one target.
#[derive(Debug, Clone)]
pub struct TargetCoverage {
    /// The longest time without a result from any node, in ms; the window's edges count (from
    /// its start to the first result, from the last result to its end).
    pub largest_gap_ms: i64,
    /// Results in the window.
    pub results: usize,
    /// Rounds probed by more distinct nodes than `replicas`: (slot time, the nodes).
    pub over_replicated: Vec<(i64, Vec<String>)>,
}

/// The coverage checker of the fault tests: reads every node's results and reports, per target,
/// the largest gap between consecutive results and the rounds probed by more owners than
/// `replicas`, within `[from, to]` (ms since the epoch).
#[derive(Debug)]
pub struct Coverage {
    pub targets: std::collections::BTreeMap<String, TargetCoverage>,
    from: i64,
    to: i64,
}

impl Coverage {
    /// Checks `results` (all nodes' result lines) for targets probed every `interval_ms`.
    pub fn of(results: &[Value], from: i64, to: i64, interval_ms: i64, replicas: usize) -> Self {
        assert!(from < to, "an empty coverage window [{from}, {to}]");
        let mut targets = std::collections::BTreeMap::new();
        let probes: Vec<Value> = results
            .iter()
            .filter(|r| r.get("event").is_none())
            .cloned()
            .collect();
        for (target, v) in by_target_node(&probes) {
            // A target's slots keep one phase. Each result belongs to the nearest slot, so
            // completion jitter does not split a round.
            let phase = phase_of(v.iter().map(|r| r.0), interval_ms);
            let inside: Vec<&(i64, String, bool)> =
                v.iter().filter(|r| r.0 >= from && r.0 <= to).collect();
            let mut edges = vec![from];
            edges.extend(inside.iter().map(|r| r.0));
            edges.push(to);
            let largest_gap_ms = edges.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
            let mut rounds: std::collections::BTreeMap<i64, std::collections::BTreeSet<&str>> =
                Default::default();
            for r in &inside {
                let slot = (r.0 - phase + interval_ms / 2).div_euclid(interval_ms);
                rounds.entry(slot).or_default().insert(r.1.as_str());
            }
            let over_replicated = rounds
                .into_iter()
                .filter(|(_, nodes)| nodes.len() > replicas)
                .map(|(slot, nodes)| {
                    (
                        slot * interval_ms + phase,
                        nodes.into_iter().map(String::from).collect(),
                    )
                })
                .collect();
            targets.insert(
                target,
                TargetCoverage {
                    largest_gap_ms,
                    results: inside.len(),
                    over_replicated,
                },
            );
        }
        Coverage { targets, from, to }
    }

    /// Reads the results of `nodes` and checks them (see `of`).
    pub fn of_nodes(
        nodes: &[&Node],
        from: i64,
        to: i64,
        interval_ms: i64,
        replicas: usize,
    ) -> Self {
        let mut all = Vec::new();
        for n in nodes {
            all.extend(n.results());
        }
        Coverage::of(&all, from, to, interval_ms, replicas)
    }

    /// The target with the largest gap, and the gap.
    pub fn worst_gap(&self) -> Option<(&str, i64)> {
        self.targets
            .iter()
            .map(|(t, c)| (t.as_str(), c.largest_gap_ms))
            .max_by_key(|(_, g)| *g)
    }

    /// Every one of `expected` targets had results, and none went more than `bound_ms` without.
    pub fn assert_gaps_within(&self, expected: usize, bound_ms: i64) {
        assert_eq!(
            self.targets.len(),
            expected,
            "targets with results in [{}, {}]",
            self.from,
            self.to
        );
        let (worst, gap) = self.worst_gap().expect("targets");
        eprintln!("coverage: largest gap {gap} ms ({worst}), bound {bound_ms} ms");
        assert!(
            gap <= bound_ms,
            "{worst} went {gap} ms without a result (bound {bound_ms} ms) in a {} ms window: {:?}",
            self.to - self.from,
            self.targets[worst]
        );
    }

    /// No round of any target was probed by more nodes than `replicas`.
    pub fn assert_no_over_replication(&self) {
        let over: Vec<(&String, &TargetCoverage)> = self
            .targets
            .iter()
            .filter(|(_, c)| !c.over_replicated.is_empty())
            .take(5)
            .collect();
        assert!(
            over.is_empty(),
            "rounds probed by more owners than replicas: {over:?}"
        );
    }
}

/// GET `path` from a node's HTTP endpoint at `addr`; None on any error.
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut resp = ureq::get(&format!("http://{addr}{path}")).call().ok()?;
    resp.body_mut().read_to_string().ok()
}

/// GET `path` from a node's HTTP endpoint at `addr`, whatever its status: the status and the
/// body. Panics when the request cannot be made.
pub fn http_status(addr: &str, path: &str) -> (u16, String) {
    let mut resp = ureq::get(&format!("http://{addr}{path}"))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    (
        resp.status().as_u16(),
        resp.body_mut().read_to_string().unwrap(),
    )
}

/// GET `path` and parse it as JSON; None on any error.
pub fn http_json(addr: &str, path: &str) -> Option<Value> {
    serde_json::from_str(&http_get(addr, path)?).ok()
}
