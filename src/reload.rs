//! Reloading the config while the node runs: on SIGHUP, `POST /-/reload` (`ringpoll reload`);
//! and re-reading the target sources when a watched file changes and every
//! `refresh_interval` (see [`crate::config::sources`]).
//!
//! A reload reads the config file and every target source again, exactly as at start. If any
//! of it is invalid the node keeps the config it runs (one ERROR with `PATH:LINE:COL`, and
//! `ringpoll_config_last_reload_successful 0`). Otherwise the new targets go to the root, which
//! hands them to the catalog: unchanged targets keep their actors and state, new ones start,
//! removed ones stop, changed ones take their new settings from their next probe. Keys that
//! only take effect at start are named as needing a restart; the rest of the reload applies.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ractor::ActorRef;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use ringpoll_actors::catalog::set::{BucketedSet, Drift, TargetList};
use ringpoll_actors::model::TargetSpec;
use ringpoll_actors::supervisor::RootMsg;
use ringpoll_actors::view::ConfigStatus;

use crate::config::settings::ClusterNet;
use crate::config::sources::{Mode, SourceCache, SourceReader, SourceReport};
use crate::config::{self, Overrides, Settings};

/// What a good reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Targets in the new config.
    pub targets: usize,
    /// Targets added.
    pub added: usize,
    /// Targets removed.
    pub removed: usize,
    /// Targets whose settings changed.
    pub changed: usize,
    /// Keys whose new values take effect only after a restart.
    pub needs_restart: Vec<String>,
}

/// The keys whose values differ between the config the node started with and `new`, among
/// those that take effect only at start.
pub fn needs_restart(started: &Settings, new: &Settings) -> Vec<String> {
    let mut keys = Vec::new();
    let mut check = |key: &str, differs: bool| {
        if differs {
            keys.push(key.to_string());
        }
    };
    check("node.name", started.node != new.node);
    let (a, b) = (&started.cluster, &new.cluster);
    // The networked part, field by field (compared by their printed form).
    type Field = fn(&ClusterNet) -> String;
    let net: [(&str, Field); 8] = [
        ("cluster.listen", |n| n.listen.to_string()),
        ("cluster.advertise", |n| n.advertise.to_string()),
        ("cluster.cookie_file", |n| n.cookie.clone()),
        ("cluster.tls", |n| format!("{:?}", n.tls)),
        ("cluster.heartbeat_interval", |n| {
            format!("{:?}", n.heartbeat)
        }),
        ("cluster.suspect_after", |n| {
            format!("{:?}", n.suspect_after)
        }),
        ("cluster.dead_after", |n| format!("{:?}", n.dead_after)),
        ("cluster.redial_max", |n| format!("{:?}", n.redial_max)),
    ];
    for (key, field) in net {
        check(key, a.net.as_ref().map(field) != b.net.as_ref().map(field));
    }
    check("cluster.seeds", a.seeds != b.seeds);
    check("notify", started.notify != new.notify);
    check("cluster.weight", a.weight != b.weight);
    check("cluster.replicas", a.replicas != b.replicas);
    check(
        "cluster.rebalance_delay",
        a.rebalance_delay != b.rebalance_delay,
    );
    let (ha, hb) = (started.http.as_ref(), new.http.as_ref());
    check("http.listen", ha.map(|h| h.listen) != hb.map(|h| h.listen));
    check("http.token", ha.map(|h| &h.token) != hb.map(|h| &h.token));
    check(
        "probe.max_in_flight",
        started.max_in_flight != new.max_in_flight,
    );
    check(
        "probe.max_rate_per_network",
        started.pace.per_network != new.pace.per_network,
    );
    check("probe.max_pps", started.pace.node != new.pace.node);
    check(
        "probe.ssh.max_concurrent_ssh",
        started.ssh.max_concurrent != new.ssh.max_concurrent,
    );
    check(
        "probe.ssh.max_sessions",
        started.ssh.max_sessions != new.ssh.max_sessions,
    );
    check(
        "probe.ssh.max_new_logins_per_s",
        started.ssh.max_new_logins_per_s != new.ssh.max_new_logins_per_s,
    );
    check("results", started.results != new.results);
    check("supervision", started.supervision != new.supervision);
    check("log.format", started.log_format != new.log_format);
    keys
}

/// The new target list and how it differs from `old`, computed where the sources were read
/// (a blocking thread: at 100,000 targets this is tens of milliseconds no async thread
/// should spend).
fn listed(targets: Vec<Arc<TargetSpec>>, old: &BucketedSet) -> (TargetList, Drift) {
    let list = TargetList::of(targets.into());
    let drift = old.drift_to(&list.set);
    (list, drift)
}

/// A request to the reloader.
#[derive(Debug)]
pub enum Request {
    /// Reload; reply with what changed, or why the new config was refused.
    Reload(Option<oneshot::Sender<Result<ReloadReport, String>>>),
}

/// What made the reloader re-read the sources.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// A watched file changed.
    Watch,
    /// refresh_interval passed.
    Interval,
}

impl Trigger {
    fn label(self) -> &'static str {
        match self {
            Trigger::Watch => "watch",
            Trigger::Interval => "interval",
        }
    }

    fn why(self) -> &'static str {
        match self {
            Trigger::Watch => "a watched file changed",
            Trigger::Interval => "the refresh interval passed",
        }
    }
}

/// Whether a file event can mean new content: creations, writes, renames, removals, a writer
/// closing the file. Not opens and reads, which reading the sources causes itself.
fn may_change(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// How long the reloader waits after a watched file changed for more changes (an editor's
/// write, then rename, then chmod) before it reads the sources again.
const SETTLE: Duration = Duration::from_millis(200);

/// Reloads the config on request, and re-reads the target sources when a watched file changes
/// and every `refresh_interval`. One thing at a time.
pub struct Reloader {
    path: PathBuf,
    overrides: Overrides,
    /// The settings the node started with (keys that need a restart are compared to these).
    started: Settings,
    /// The text of the config file the node runs (sources are re-read under it).
    text: String,
    /// The targets the node runs now.
    targets: TargetList,
    /// The last good content of every source.
    cache: SourceCache,
    /// What is watched, and how often everything is re-read.
    watch: Vec<(PathBuf, String)>,
    refresh: Option<Duration>,
    root: ActorRef<RootMsg>,
    status: watch::Sender<Arc<ConfigStatus>>,
    /// When the sources were last read (changes seen before it are in what was read).
    last_read: Instant,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .field("targets", &self.targets.specs.len())
            .field("watch", &self.watch)
            .finish()
    }
}

impl Reloader {
    /// A reloader of the config at `path` (with the command line's `overrides`), for a node
    /// started with `started` (loaded from `text`), publishing how reloads go on `status`.
    pub fn new(
        path: PathBuf,
        overrides: Overrides,
        started: Settings,
        text: String,
        root: ActorRef<RootMsg>,
        status: watch::Sender<Arc<ConfigStatus>>,
    ) -> Self {
        status.send_replace(Arc::new(ConfigStatus {
            last_reload_successful: true,
            last_success: Some(SystemTime::now()),
            ..ConfigStatus::default()
        }));
        let mut r = Reloader {
            path,
            overrides,
            targets: TargetList::of(started.targets.clone().into()),
            cache: SourceCache::default(),
            watch: Vec::new(),
            refresh: None,
            text,
            root,
            status,
            started: started.clone(),
            last_read: Instant::now(),
        };
        r.took(&started.sources);
        r
    }

    /// Serves requests until every sender is gone, re-reading the sources as they change.
    pub async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        // Each change carries when it was seen: a read that started later has seen it.
        let (changed_tx, mut changed) = mpsc::channel::<Instant>(64);
        // Kept alive while it watches; rebuilt when what is watched changes.
        let mut watching = self.watch.clone();
        let mut _watcher = self.watcher(changed_tx.clone());
        let mut refresh = self.refresh_timer();
        let mut settle: Option<tokio::time::Instant> = None;
        loop {
            let settled = async {
                match settle {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let due = async {
                match refresh.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                request = requests.recv() => {
                    let Some(Request::Reload(reply)) = request else { return };
                    let result = self.reload().await;
                    if let Some(reply) = reply {
                        let _ = reply.send(result);
                    }
                    // What is watched, and how often, may have changed with the config.
                    refresh = self.refresh_timer();
                }
                Some(at) = changed.recv() => {
                    if at > self.last_read {
                        settle = Some(tokio::time::Instant::now() + SETTLE);
                    }
                }
                () = settled => {
                    settle = None;
                    self.refresh(Trigger::Watch).await;
                }
                () = due => self.refresh(Trigger::Interval).await,
            }
            if self.watch != watching {
                watching = self.watch.clone();
                _watcher = self.watcher(changed_tx.clone());
            }
        }
    }

    /// A watcher of the directories of the watched files; every event for a watched name that
    /// [may change](may_change) it sends the time it was seen on `changed`. None when nothing is watched (or inotify is not available: then
    /// only the periodic refresh re-reads the sources, which is logged).
    fn watcher(&self, changed: mpsc::Sender<Instant>) -> Option<notify::RecommendedWatcher> {
        use notify::Watcher;
        if self.watch.is_empty() {
            return None;
        }
        let names: Vec<(PathBuf, glob::Pattern)> = self
            .watch
            .iter()
            .filter_map(|(dir, name)| {
                let p = glob::Pattern::new(&glob::Pattern::escape(name))
                    .ok()
                    .filter(|_| !name.contains('*') && !name.contains('?'))
                    .or_else(|| glob::Pattern::new(name).ok())?;
                Some((dir.clone(), p))
            })
            .collect();
        let handler = move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if !may_change(&event.kind) {
                return;
            }
            let hit = event.paths.iter().any(|path| {
                let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                    return false;
                };
                names
                    .iter()
                    .any(|(d, p)| d == dir && p.matches(&name.to_string_lossy()))
            });
            if hit {
                let _ = changed.try_send(Instant::now());
            }
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the target files; they are re-read every refresh_interval only");
                return None;
            }
        };
        let dirs: std::collections::BTreeSet<&PathBuf> =
            self.watch.iter().map(|(d, _)| d).collect();
        for dir in dirs {
            if let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch a directory of target files; it is re-read every refresh_interval only");
            }
        }
        Some(watcher)
    }

    fn refresh_timer(&self) -> Option<tokio::time::Interval> {
        let every = self.refresh?;
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Some(t)
    }

    /// Remembers what a good load read: the sources' content, what to watch, how often to
    /// re-read; reports sources that failed (once per change of their state).
    fn took(&mut self, report: &SourceReport) {
        self.cache = report.cache.clone();
        self.watch = report.watch.clone();
        self.refresh = report.refresh;
        let before = self.status.borrow().source_errors.clone();
        for (source, why) in &report.errors {
            if before.get(source) != Some(why) {
                tracing::warn!(%source, error = %why, "a target source failed; its last good content is in use: {why}");
            }
        }
        for source in before.keys().filter(|s| !report.errors.contains_key(*s)) {
            tracing::info!(%source, "a target source reads well again");
        }
        self.status.send_modify(|s| {
            let mut next = (**s).clone();
            for source in report.errors.keys() {
                *next.source_read_errors.entry(source.clone()).or_default() += 1;
            }
            for source in &report.http_failures {
                *next.http_sd_failures.entry(source.clone()).or_default() += 1;
            }
            next.source_errors = report.errors.clone();
            *s = Arc::new(next);
        });
    }

    /// Sends the new targets on when they differ from those running.
    fn apply(&mut self, list: TargetList) {
        if list.set.digest != self.targets.set.digest {
            self.targets = list.clone();
            let _ = self.root.cast(RootMsg::SetTargets(list));
        }
    }

    /// Re-reads the sources under the config the node runs; a source that fails keeps its
    /// last good content.
    async fn refresh(&mut self, trigger: Trigger) {
        self.status.send_modify(|s| {
            *Arc::make_mut(s)
                .refreshes
                .entry(trigger.label().into())
                .or_default() += 1;
        });
        let why = trigger.why();
        self.last_read = Instant::now();
        let (path, overrides, text, cache) = (
            self.path.clone(),
            self.overrides.clone(),
            self.text.clone(),
            self.cache.clone(),
        );
        let old = self.targets.set.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let reader = SourceReader::new(Mode::KeepLastGood, &cache);
            let mut new =
                config::parse_with(&path, &text, config::base_of(&path), &overrides, reader)?;
            let (list, drift) = listed(std::mem::take(&mut new.targets), &old);
            Ok::<_, config::ConfigError>((new, list, drift))
        })
        .await;
        match loaded {
            Ok(Ok((new, list, drift))) => {
                self.took(&new.sources);
                self.apply(list);
                if !drift.is_none() {
                    let Drift {
                        added,
                        removed,
                        changed,
                    } = drift;
                    tracing::info!(
                        added,
                        removed,
                        changed,
                        reason = why,
                        "targets re-read ({why}): +{added} -{removed} ~{changed}"
                    );
                }
            }
            Ok(Err(error)) => {
                let error = error.to_string();
                let mut errors = self.status.borrow().source_errors.clone();
                if errors.insert("targets".into(), error.clone()).as_ref() != Some(&error) {
                    tracing::error!(%error, "the target sources changed into something invalid; the node keeps its targets: {error}");
                }
                self.status.send_modify(|s| {
                    let mut next = (**s).clone();
                    next.source_errors = errors;
                    *next.source_read_errors.entry("targets".into()).or_default() += 1;
                    *s = Arc::new(next);
                });
            }
            Err(e) => tracing::error!(error = %e, "re-reading the target sources stopped"),
        }
    }

    async fn reload(&mut self) -> Result<ReloadReport, String> {
        let (path, overrides, cache) = (
            self.path.clone(),
            self.overrides.clone(),
            self.cache.clone(),
        );
        let old = self.targets.set.clone();
        self.last_read = Instant::now();
        let loaded = tokio::task::spawn_blocking(move || {
            let text = config::read(&path)?;
            let reader = SourceReader::new(Mode::Strict, &cache);
            let mut settings =
                config::parse_with(&path, &text, config::base_of(&path), &overrides, reader)?;
            // The targets move into the list (nothing else reads them from the settings).
            let (list, drift) = listed(std::mem::take(&mut settings.targets), &old);
            Ok::<_, config::ConfigError>((text, settings, list, drift))
        })
        .await
        .map_err(|e| format!("the reload stopped: {e}"))
        .and_then(|r| r.map_err(|e| e.to_string()));
        let (text, new, list, drift) = match loaded {
            Ok(s) => s,
            Err(error) => {
                tracing::error!(%error, "reload refused; the node keeps running on the config it has: {error}");
                self.status.send_modify(|s| {
                    let mut next = (**s).clone();
                    next.last_reload_successful = false;
                    next.last_error = Some(error.clone());
                    *s = Arc::new(next);
                });
                return Err(error);
            }
        };
        self.text = text;
        self.took(&new.sources);
        let needs_restart = needs_restart(&self.started, &new);
        let targets = list.specs.len();
        self.apply(list);
        let Drift {
            added,
            removed,
            changed,
        } = drift;
        let report = ReloadReport {
            targets,
            added,
            removed,
            changed,
            needs_restart,
        };
        tracing::info!(
            targets,
            added,
            removed,
            changed,
            "config reloaded: {targets} target(s), +{added} -{removed} ~{changed}"
        );
        if !report.needs_restart.is_empty() {
            let keys = report.needs_restart.join(", ");
            tracing::warn!(keys = %keys, "changed keys that take effect only after a restart: {keys}");
        }
        self.status.send_modify(|s| {
            let mut next = (**s).clone();
            next.last_reload_successful = true;
            next.last_success = Some(SystemTime::now());
            next.last_error = None;
            next.needs_restart = report.needs_restart.clone();
            *s = Arc::new(next);
        });
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn settings(extra: &str) -> Settings {
        let text = format!(
            "[node]\nname = \"n1\"\n[cluster]\nlisten = \"127.0.0.1:4701\"\n{extra}\n[[targets]]\ncidr = \"127.0.0.0/30\"\nprobe = \"icmp\"\n"
        );
        config::parse(
            Path::new("t.toml"),
            &text,
            Path::new("."),
            &Overrides::default(),
        )
        .unwrap()
    }

    #[test]
    fn keys_that_need_a_restart_are_named() {
        let a = settings("");
        assert!(needs_restart(&a, &settings("")).is_empty());
        let b = settings("weight = 3\nheartbeat_interval = \"500ms\"\nsuspect_after = \"2s\"\ndead_after = \"3s\"");
        assert_eq!(
            needs_restart(&a, &b),
            [
                "cluster.heartbeat_interval",
                "cluster.suspect_after",
                "cluster.dead_after",
                "cluster.weight"
            ]
        );
    }

    #[test]
    fn target_changes_count_added_removed_and_changed() {
        let parse = |t: &str| {
            config::parse(
                Path::new("t.toml"),
                &format!("[node]\nname = \"n1\"\n{t}"),
                Path::new("."),
                &Overrides::default(),
            )
            .unwrap()
            .targets
        };
        let old = parse("[[targets]]\nhosts = [\"127.0.0.1\", \"127.0.0.2\", \"127.0.0.3\"]\nprobe = \"icmp\"\n");
        let new = parse(
            "[[targets]]\nhosts = [\"127.0.0.2\", \"127.0.0.4\"]\nprobe = \"icmp\"\n\
             [[targets]]\nhosts = [\"127.0.0.3\"]\nprobe = \"icmp\"\nlabels = { site = \"x\" }\n",
        );
        let old = TargetList::of(old.into());
        let (_, drift) = listed(new, &old.set);
        let (added, removed, changed) = (1, 1, 1);
        assert_eq!(
            drift,
            Drift {
                added,
                removed,
                changed
            }
        );
        let (_, none) = listed(old.specs.to_vec(), &old.set);
        assert!(none.is_none());
    }
}
