//! Reloading the config while the node runs: on SIGHUP, `POST /-/reload` (`ringpoll reload`).
//!
//! A reload reads the config file and every target source again, exactly as at start. If any
//! of it is invalid the node keeps the config it runs (one ERROR with `PATH:LINE:COL`, and
//! `ringpoll_config_last_reload_successful 0`). Otherwise the new targets go to the root, which
//! hands them to the catalog: unchanged targets keep their actors and state, new ones start,
//! removed ones stop, changed ones take their new settings from their next probe. Keys that
//! only take effect at start are named as needing a restart; the rest of the reload applies.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use ractor::ActorRef;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use ringpoll_actors::catalog::set::settings_digest;
use ringpoll_actors::model::{TargetKey, TargetSpec};
use ringpoll_actors::supervisor::RootMsg;
use ringpoll_actors::view::ConfigStatus;

use crate::config::settings::ClusterNet;
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
        "probe.ssh.max_concurrent_ssh",
        started.max_concurrent_ssh != new.max_concurrent_ssh,
    );
    check("results", started.results != new.results);
    check("supervision", started.supervision != new.supervision);
    keys
}

/// How the target list changed: (added, removed, changed settings).
pub fn target_changes(old: &[Arc<TargetSpec>], new: &[Arc<TargetSpec>]) -> (usize, usize, usize) {
    let before: HashMap<TargetKey, &Arc<TargetSpec>> = old.iter().map(|t| (t.key(), t)).collect();
    let (mut added, mut changed) = (0, 0);
    for t in new {
        match before.get(&t.key()) {
            None => added += 1,
            Some(o) if settings_digest(o) != settings_digest(t) => changed += 1,
            Some(_) => {}
        }
    }
    let removed = old.len() + added - new.len();
    (added, removed, changed)
}

/// A request to the reloader.
#[derive(Debug)]
pub enum Request {
    /// Reload; reply with what changed, or why the new config was refused.
    Reload(Option<oneshot::Sender<Result<ReloadReport, String>>>),
}

/// Reloads the config on request, one request at a time.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    overrides: Overrides,
    /// The settings the node started with (keys that need a restart are compared to these).
    started: Settings,
    /// The targets the node runs now.
    targets: Vec<Arc<TargetSpec>>,
    root: ActorRef<RootMsg>,
    status: watch::Sender<Arc<ConfigStatus>>,
}

impl Reloader {
    /// A reloader of the config at `path` (with the command line's `overrides`), for a node
    /// started with `started`, publishing how reloads go on `status`.
    pub fn new(
        path: PathBuf,
        overrides: Overrides,
        started: Settings,
        root: ActorRef<RootMsg>,
        status: watch::Sender<Arc<ConfigStatus>>,
    ) -> Self {
        status.send_replace(Arc::new(ConfigStatus {
            last_reload_successful: true,
            last_success: Some(SystemTime::now()),
            ..ConfigStatus::default()
        }));
        Reloader {
            path,
            overrides,
            targets: started.targets.clone(),
            started,
            root,
            status,
        }
    }

    /// Serves requests until every sender is gone.
    pub async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        while let Some(Request::Reload(reply)) = requests.recv().await {
            let result = self.reload().await;
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        }
    }

    async fn reload(&mut self) -> Result<ReloadReport, String> {
        let (path, overrides) = (self.path.clone(), self.overrides.clone());
        let loaded = tokio::task::spawn_blocking(move || config::load(&path, &overrides))
            .await
            .map_err(|e| format!("the reload stopped: {e}"))
            .and_then(|r| r.map_err(|e| e.to_string()));
        let new = match loaded {
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
        let (added, removed, changed) = target_changes(&self.targets, &new.targets);
        let report = ReloadReport {
            targets: new.targets.len(),
            added,
            removed,
            changed,
            needs_restart: needs_restart(&self.started, &new),
        };
        if added + removed + changed > 0 {
            self.targets = new.targets.clone();
            let _ = self.root.cast(RootMsg::SetTargets(new.targets.into()));
        }
        tracing::info!(
            targets = report.targets,
            added,
            removed,
            changed,
            "config reloaded: {} target(s), +{added} -{removed} ~{changed}",
            report.targets
        );
        if !report.needs_restart.is_empty() {
            let keys = report.needs_restart.join(", ");
            tracing::warn!(keys = %keys, "changed keys that take effect only after a restart: {keys}");
        }
        self.status.send_replace(Arc::new(ConfigStatus {
            last_reload_successful: true,
            last_success: Some(SystemTime::now()),
            last_error: None,
            needs_restart: report.needs_restart.clone(),
            source_errors: Default::default(),
        }));
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
        assert_eq!(target_changes(&old, &new), (1, 1, 1));
        assert_eq!(target_changes(&old, &old), (0, 0, 0));
    }
}
