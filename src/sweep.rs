//! `ringpoll sweep`: every target once, as fast as `--max-in-flight` allows, with the same
//! result format as a node — no actors, no scheduler. What a user reaches for instead of fping
//! or parallel-ssh, and what the benchmark measures.
//!
//! Two paths run side by side in one loop: ICMP to addresses goes through the batch engine
//! ([`RawSweep`]: arrays, `sendmmsg`/`recvmmsg`) when raw sockets are permitted; everything
//! else is a future per target on the node's probe engines. The window is `--max-in-flight`
//! whatever the targets came from (a config's `max_in_flight` is a node's, sized for its
//! interval: taken for a sweep, it let 8,192 probes out at once and cost 5–7×).
//!
//! Targets given on the command line become a generated config (so they are validated exactly
//! like a config's), with `--probe`, `--port` and the SSH flags as its group.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{anyhow, Context};
use futures_util::stream::{FuturesUnordered, StreamExt};

use ringpoll_actors::model::{Check, EchoIds, Host, NodeName, ProbeResult, Record, TargetSpec};
use ringpoll_actors::probe::pace::{interleave_networks, PaceLimits};
use ringpoll_actors::probe::sweep::raw::RawSweep;
use ringpoll_actors::probe::sweep::{Planned, SweepPlan};
use ringpoll_actors::probe::{resolve, CheckReport, FirstAnswer, ProbeEngine};
use ringpoll_actors::sink::{JsonLinesWriter, ResultWriter};

use crate::cli::SweepArgs;
use crate::config::{self, Overrides, Settings};

/// Most targets one sweep takes (a /12 of IPv4).
const MAX_SWEEP: usize = 1 << 20;

/// How long a probe holds its in-flight slot at most (see `run`).
const SLOT_HOLD: std::time::Duration = std::time::Duration::from_millis(50);

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The settings of the sweep: the config's targets, or a generated config for the given ones.
fn settings(args: &SweepArgs) -> anyhow::Result<Settings> {
    let ov = Overrides {
        name: Some("sweep".into()),
        http: Some("off".into()),
        ..Overrides::default()
    };
    if args.targets.is_empty() && args.file.is_none() {
        let path = args.config.as_deref().ok_or_else(|| {
            anyhow!("give targets, --file PATH (one per line), or --config to sweep its targets")
        })?;
        return config::load(path, &ov).map_err(|e| anyhow!("{e}"));
    }
    // Interval is irrelevant to a sweep; it only has to exceed the time a probe can take.
    let dur = |d: std::time::Duration| toml_str(&humantime::format_duration(d).to_string());
    let span = args.timeout + args.packet_interval * u32::from(args.count.saturating_sub(1));
    let mut text = format!(
        "[node]\nname = \"sweep\"\n[probe]\ntimeout = {}\ninterval = {}\nmax_in_flight = {}\nmax_targets = {MAX_SWEEP}\ncount = {}\npacket_interval = {}\n",
        dur(args.timeout),
        dur(span * 2),
        args.max_in_flight.max(1),
        args.count,
        dur(args.packet_interval),
    );
    if let Some(l) = args.max_loss {
        text.push_str(&format!("max_loss = {l:?}\n"));
    }
    text.push_str(&format!(
        "max_rate_per_network = {}\n",
        args.max_rate_per_network
    ));
    if let Some(n) = args.max_pps {
        text.push_str(&format!("max_pps = {n}\n"));
    }
    if let Some(n) = args.max_concurrent_ssh {
        text.push_str(&format!("[probe.ssh]\nmax_concurrent_ssh = {n}\n"));
    }
    let mut group = format!("probe = {}\n", toml_str(&args.probe));
    if let Some(p) = args.port {
        group.push_str(&format!("port = {p}\n"));
    }
    for (key, value) in [
        ("user", args.user.clone()),
        (
            "identity",
            args.identity.as_ref().map(|p| p.display().to_string()),
        ),
        (
            "known_hosts",
            args.known_hosts.as_ref().map(|p| p.display().to_string()),
        ),
        ("host_key_policy", args.host_key_policy.clone()),
        ("command", args.command.clone()),
    ] {
        if let Some(v) = value {
            group.push_str(&format!("{key} = {}\n", toml_str(&v)));
        }
    }
    let (cidrs, hosts): (Vec<&String>, Vec<&String>) =
        args.targets.iter().partition(|t| t.contains('/'));
    if !hosts.is_empty() {
        let list: Vec<String> = hosts.iter().map(|h| toml_str(h)).collect();
        text.push_str(&format!(
            "[[targets]]\nhosts = [{}]\n{group}",
            list.join(", ")
        ));
    }
    for c in cidrs {
        text.push_str(&format!("[[targets]]\ncidr = {}\n{group}", toml_str(c)));
    }
    if let Some(file) = &args.file {
        // A hosts file, as a config's `file =` source reads it: errors name its line.
        let file = std::path::absolute(file).unwrap_or_else(|_| file.clone());
        text.push_str(&format!(
            "[[targets]]\nfile = {}\n{group}",
            toml_str(&file.display().to_string())
        ));
    }
    config::parse(Path::new(GENERATED), &text, Path::new("."), &ov)
        .map_err(|e| anyhow!("{}", in_flags(&e.to_string())))
}

/// The name the config made of the command line is parsed under.
const GENERATED: &str = "(command line)";

/// An error about the config made of the command line, said in its flags: the keys the flags
/// became (`targets[0].port`, `probe = "tcp"`) are named as the flags (`--port`, `--probe tcp`),
/// and the place in the generated text is dropped. Errors in a `--file` or `--config` file keep
/// their `PATH:LINE:COL`.
fn in_flags(msg: &str) -> String {
    let Some(rest) = msg.strip_prefix(GENERATED) else {
        return msg.to_string();
    };
    // `:LINE:COL: ` of the generated text.
    let rest = rest.splitn(4, ':').nth(3).unwrap_or(rest).trim_start();
    let mut out = rest.to_string();
    for (key, flag) in [
        (
            r"under probe\.max_targets = (\d+); use a smaller block or raise probe\.max_targets",
            "under the sweep's limit of $1; use a smaller block",
        ),
        (r"targets\[\d+\]\.(?:hosts|cidr)", "TARGET"),
        (r"targets\[\d+\]\.file", "--file"),
        (r"targets\[\d+\]\.known_hosts", "--known-hosts"),
        (r"targets\[\d+\]\.host_key_policy", "--host-key-policy"),
        (r"targets\[\d+\]\.(port|user|identity|command)", "--$1"),
        (r"probe\.(?:interval|timeout)", "--timeout"),
        (r"probe\.max_in_flight", "--max-in-flight"),
        (r"probe\.max_rate_per_network", "--max-rate-per-network"),
        (r"probe\.max_pps", "--max-pps"),
        (r"probe\.ssh\.max_concurrent_ssh", "--max-concurrent-ssh"),
        (r#"probe = "(\w+)""#, "--probe $1"),
        (r#"\b(port|user) = "?([\w.-]+)"?"#, "--$1 $2"),
    ] {
        let re = regex::Regex::new(key).expect("a valid pattern");
        out = re.replace_all(&out, flag).into_owned();
    }
    out
}

/// The in-flight slots of a sweep: which probes are young (holding a slot), in start order.
#[derive(Debug)]
struct Slots {
    /// Young probes' start times and indices, oldest first; entries whose probe has since
    /// answered stay until they reach the front.
    queue: std::collections::VecDeque<(tokio::time::Instant, usize)>,
    /// Per probe index: true while it is young.
    young: Vec<bool>,
    count: usize,
    window: usize,
}

impl Slots {
    fn new(total: usize, window: usize) -> Self {
        Slots {
            queue: std::collections::VecDeque::with_capacity(window),
            young: vec![false; total],
            count: 0,
            window,
        }
    }

    fn free(&self) -> bool {
        self.count < self.window
    }

    fn start(&mut self, i: usize, now: tokio::time::Instant) {
        self.young[i] = true;
        self.count += 1;
        self.queue.push_back((now, i));
    }

    /// Probe `i` answered: its slot, if it still held one, is free.
    fn done(&mut self, i: usize) {
        if std::mem::take(&mut self.young[i]) {
            self.count -= 1;
        }
    }

    /// Frees the slots of probes started `hold` or more before `now`.
    fn age(&mut self, now: tokio::time::Instant, hold: std::time::Duration) {
        while let Some(&(t0, i)) = self.queue.front() {
            if self.young[i] && now.duration_since(t0) < hold {
                break;
            }
            self.queue.pop_front();
            self.done(i);
        }
    }

    /// When the oldest young probe ages (after `age`, the front of the queue is young).
    fn next_aging(&self, hold: std::time::Duration) -> Option<tokio::time::Instant> {
        self.queue.front().map(|(t0, _)| *t0 + hold)
    }
}

/// A sweep's targets shared between the batch engine and the per-target path.
struct Split {
    /// The batch engine, when it runs.
    engine: Option<RawSweep>,
    /// Its targets, in the order of its results' indexes.
    batched: Vec<Arc<TargetSpec>>,
    /// The per-target path's.
    rest: Vec<Arc<TargetSpec>>,
}

/// The targets the batch engine takes (ICMP to an address, no `source`), the engine for
/// them, and the rest. No engine (and every target in the rest) when there is no ICMP target
/// to an address or raw sockets are not permitted.
fn batch_engine(
    targets: Vec<Arc<TargetSpec>>,
    window: usize,
    pace: PaceLimits,
) -> anyhow::Result<Split> {
    let (batched, rest): (Vec<_>, Vec<_>) = targets.into_iter().partition(|t| {
        matches!(
            (&t.check, &t.host, t.source),
            (Check::Icmp(_), Host::Ip(_), None)
        )
    });
    if batched.is_empty() {
        return Ok(Split {
            engine: None,
            batched,
            rest,
        });
    }
    let planned: Vec<Planned> = batched
        .iter()
        .filter_map(|t| match (&t.check, &t.host) {
            (Check::Icmp(echoes), Host::Ip(addr)) => Some(Planned {
                addr: *addr,
                echoes: *echoes,
                timeout: t.timeout,
            }),
            _ => None,
        })
        .collect();
    let order = interleave_networks((0..planned.len()).collect(), |&i| Some(planned[i].addr));
    let plan = SweepPlan::new(&planned, order, window, SLOT_HOLD, pace, Instant::now())
        .map_err(|e| anyhow!("{e}"))?;
    match RawSweep::open(plan).context("opening raw ICMP sockets")? {
        Some(raw) => Ok(Split {
            engine: Some(raw),
            batched,
            rest,
        }),
        None => {
            // Datagram ping sockets: the per-target path, whose engine opens them.
            let mut all = batched;
            all.extend(rest);
            Ok(Split {
                engine: None,
                batched: Vec::new(),
                rest: all,
            })
        }
    }
}

/// The batch engine's next results; never, without one.
async fn next_swept(raw: &mut Option<RawSweep>) -> std::io::Result<()> {
    match raw {
        Some(raw) => raw.next().await,
        None => std::future::pending().await,
    }
}

/// Writes JSON lines to standard output.
#[derive(Debug)]
struct Stdout;

impl ResultWriter for Stdout {
    fn write_batch(&mut self, batch: &[Record]) -> std::io::Result<()> {
        // Standard output flushes at every newline; one write for the batch instead.
        let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        for r in batch {
            if let Record::Result(r) = r {
                serde_json::to_writer(&mut out, &r.line())?;
                out.write_all(b"\n")?;
            }
        }
        out.flush()
    }

    fn describe(&self) -> String {
        "stdout".into()
    }
}

/// Why a sweep did not run to the end.
#[derive(Debug)]
pub enum Failed {
    /// The command line or the config is wrong (exit 2, as fping's usage errors).
    Usage(anyhow::Error),
    /// The probes could not run (no ICMP permission, an unwritable results file): exit 3.
    Probing(anyhow::Error),
}

/// `ringpoll sweep`: the number of targets found down.
pub fn run(args: &SweepArgs) -> Result<usize, Failed> {
    let settings = settings(args).map_err(Failed::Usage)?;
    if settings.targets.is_empty() {
        return Err(Failed::Usage(anyhow!("nothing to sweep")));
    }
    sweep(args, settings).map_err(Failed::Probing)
}

fn sweep(args: &SweepArgs, settings: Settings) -> anyhow::Result<usize> {
    let mut writer: Box<dyn ResultWriter> = match &args.results {
        Some(p) => Box::new(JsonLinesWriter::open(p)?),
        None => Box::new(Stdout),
    };
    // One thread: the probes are I/O-bound, and a single thread avoids contention on the
    // shared ICMP socket's reply table (measured faster than two).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let window = args.max_in_flight.max(1);
        // ICMP echoes to addresses go through the batch engine (raw sockets); the rest, and
        // everything when raw sockets are not permitted, one future per target.
        let Split {
            engine: mut batch_sweep,
            batched,
            rest: targets,
        } = batch_engine(settings.targets, window, settings.pace)?;
        let kinds: std::collections::BTreeSet<_> = targets.iter().map(|t| t.kind()).collect();
        let engine = Arc::new(
            ProbeEngine::open(
                kinds,
                // A sweep probes each target once: every login is fresh, none is held.
                ringpoll_actors::probe::ssh::SshLimits {
                    max_sessions: 0,
                    max_new_logins_per_s: 0,
                    ..settings.ssh
                },
                Default::default(),
                settings.pace,
            )
            .context("starting the probes")?,
        );
        let node = NodeName::new("sweep").expect("valid");
        let total = targets.len() + batched.len();
        let bar = if std::io::stderr().is_terminal() {
            indicatif::ProgressBar::new(total as u64)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} {per_sec} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let started = Instant::now();
        // All probes run as futures of this one task (no task per probe). A probe is "young"
        // until it answers or SLOT_HOLD passes; young probes are capped at max_in_flight, which
        // paces sending so replies are read before the socket buffer fills. A probe still
        // unanswered at SLOT_HOLD ages: it keeps waiting for its timeout but frees its slot, so
        // silent targets do not hold up live ones (and many silent targets time out together).
        // Probes start in order and all hold their slot equally long, so they age in start order:
        // one queue and one timer serve them all.
        type Probe =
            std::pin::Pin<Box<dyn std::future::Future<Output = (usize, ProbeResult)> + Send>>;
        // SSH sessions are paced by max_concurrent_ssh and take long: they keep their slot.
        let hold = if targets
            .iter()
            .any(|t| t.kind() == ringpoll_actors::model::ProbeKind::Ssh)
        {
            std::time::Duration::from_secs(3600)
        } else {
            // A probe of several ICMP echoes frees its slot once its first echo has its
            // answer; the later ones follow packet_interval apart, paced, outside the window.
            SLOT_HOLD
        };
        let (answered_tx, mut answered) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let mut probes: FuturesUnordered<Probe> = FuturesUnordered::new();
        let mut slots = Slots::new(targets.len(), window);
        let aging = tokio::time::sleep(std::time::Duration::ZERO);
        tokio::pin!(aging);
        // One of each network in turn, so no /24 gets its targets in one burst; `i` stays the
        // target's place in the list (its ICMP sequence numbers).
        let order = interleave_networks(
            targets.into_iter().enumerate().collect(),
            |(_, t)| match t.host {
                Host::Ip(ip) => Some(ip),
                Host::Name(_) => None,
            },
        );
        let mut pending = order.into_iter().peekable();
        let mut batch = Vec::with_capacity(4096);
        let (mut up, mut down) = (0usize, BTreeMap::<String, usize>::new());
        let mut handle = |r: ProbeResult, batch: &mut Vec<Record>| -> anyhow::Result<()> {
            if r.outcome.is_up() {
                up += 1;
            } else if let ringpoll_actors::model::ProbeOutcome::Down { reason } = &r.outcome {
                *down.entry(reason.code().to_string()).or_default() += 1;
            }
            bar.inc(1);
            batch.push(Record::Result(r));
            if batch.len() >= 4096 {
                writer.write_batch(batch)?;
                batch.clear();
            }
            Ok(())
        };
        let mut swept = Vec::new();
        loop {
            if let Some(raw) = &mut batch_sweep {
                if raw.is_done() {
                    batch_sweep = None;
                }
            }
            let now = tokio::time::Instant::now();
            slots.age(now, hold);
            while slots.free() {
                let Some((i, target)) = pending.next() else {
                    break;
                };
                slots.start(i, now);
                let (engine, node) = (engine.clone(), node.clone());
                let tx = answered_tx.clone();
                let first: FirstAnswer = Box::new(move || {
                    let _ = tx.send(i);
                });
                probes.push(Box::pin(async move {
                    let started = Instant::now();
                    // Each target takes as many sequence numbers as it sends echoes; one round,
                    // one identifier.
                    let ids = EchoIds {
                        round: 0,
                        seq: (i as u16).wrapping_mul(target.check.echoes()),
                    };
                    let report = match resolve(&target.host).await {
                        Ok(addr) => engine.check(&target, addr, ids, Some(first)).await,
                        Err(reason) => CheckReport {
                            outcome: ringpoll_actors::model::ProbeOutcome::Down { reason },
                            ssh: None,
                            echo: None,
                        },
                    };
                    let r = ProbeResult {
                        ts: SystemTime::now(),
                        node,
                        target,
                        epoch: 0,
                        outcome: report.outcome,
                        elapsed: started.elapsed(),
                        ssh: report.ssh,
                        echo: report.echo,
                    };
                    (i, r)
                }));
            }
            if probes.is_empty() && batch_sweep.is_none() {
                break;
            }
            // The timer matters only while targets wait for a slot.
            let next_age = match pending.peek() {
                Some(_) => slots.next_aging(hold),
                None => None,
            };
            if let Some(at) = next_age {
                if aging.deadline() != at {
                    aging.as_mut().reset(at);
                }
            }
            tokio::select! {
                biased;
                Some((i, r)) = probes.next() => {
                    slots.done(i);
                    handle(r, &mut batch)?;
                }
                Some(i) = answered.recv() => slots.done(i),
                _ = &mut aging, if next_age.is_some() => {}
                r = next_swept(&mut batch_sweep) => {
                    r.context("sweeping")?;
                    if let Some(raw) = &mut batch_sweep {
                        raw.take_finished(&mut swept);
                    }
                    for done in swept.drain(..) {
                        let r = ProbeResult {
                            ts: SystemTime::now(),
                            node: node.clone(),
                            target: batched[done.index].clone(),
                            epoch: 0,
                            outcome: done.outcome,
                            elapsed: done.elapsed,
                            ssh: None,
                            echo: Some(done.stats),
                        };
                        handle(r, &mut batch)?;
                    }
                }
            }
        }
        writer.write_batch(&batch)?;
        bar.finish_and_clear();
        let secs = started.elapsed().as_secs_f64();
        let reasons: Vec<String> = down.iter().map(|(k, v)| format!("{k} {v}")).collect();
        eprintln!(
            "swept {total} target(s) in {secs:.3} s ({:.0}/s): up {up}, down {}{}",
            total as f64 / secs.max(1e-9),
            down.values().sum::<usize>(),
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join(", "))
            }
        );
        Ok(down.values().sum())
    })
}

#[cfg(test)]
mod flag_tests {
    use super::in_flags;

    #[test]
    fn errors_about_the_command_line_name_its_flags() {
        for (config, flags) in [
            (
                "(command line):10:9: targets[0].port: probe = \"tcp\" needs a port, e.g. port = 22",
                "--port: --probe tcp needs a port, e.g. --port 22",
            ),
            (
                "(command line):9:10: targets[0].hosts: \"300.1.1.1\" is not a valid IPv4 address",
                "TARGET: \"300.1.1.1\" is not a valid IPv4 address",
            ),
            (
                "(command line):8:1: targets[0].user: probe = \"ssh\" needs user (in the group or in [probe.ssh]), e.g. user = \"monitor\"",
                "--user: --probe ssh needs user (in the group or in [probe.ssh]), e.g. --user monitor",
            ),
            (
                "(command line):5:12: probe.interval must be more than 0",
                "--timeout must be more than 0",
            ),
            (
                "(command line):13:12: targets[0].identity: /nonexist: No such file or directory (os error 2)",
                "--identity: /nonexist: No such file or directory (os error 2)",
            ),
            (
                "(command line):9:8: targets[0].cidr: 127.0.0.0/8 has 16777216 addresses, more than the 1048576 left under probe.max_targets = 1048576; use a smaller block or raise probe.max_targets",
                "TARGET: 127.0.0.0/8 has 16777216 addresses, more than the 1048576 left under the sweep's limit of 1048576; use a smaller block",
            ),
            // A hosts file keeps its own place.
            ("/tmp/h.txt:3:1: \"x y\" is not a host", "/tmp/h.txt:3:1: \"x y\" is not a host"),
        ] {
            assert_eq!(in_flags(config), flags);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;
    use std::time::Duration;
    use tokio::time::Instant;

    #[test]
    fn slots_free_up_when_a_probe_answers_or_ages_in_start_order() {
        let hold = Duration::from_millis(50);
        let t0 = Instant::now();
        let mut s = Slots::new(4, 2);
        s.start(0, t0);
        s.start(1, t0 + Duration::from_millis(10));
        assert!(!s.free());
        assert_eq!(s.next_aging(hold), Some(t0 + hold));
        // Probe 1 answers: a slot is free; probe 0 still holds one.
        s.done(1);
        assert!(s.free());
        s.start(2, t0 + Duration::from_millis(20));
        assert!(!s.free());
        // At 50 ms probe 0 ages (its slot is freed though it still waits for its timeout);
        // probe 1's entry, answered, is skipped; probe 2 is the next to age.
        s.age(t0 + hold, hold);
        assert!(s.free());
        assert_eq!(s.next_aging(hold), Some(t0 + Duration::from_millis(70)));
        // Probe 0 answers later: nothing changes (it had no slot any more).
        s.done(0);
        s.start(3, t0 + hold);
        assert!(!s.free());
        s.age(t0 + Duration::from_secs(1), hold);
        assert!(s.free());
        assert_eq!(s.next_aging(hold), None);
    }
}
