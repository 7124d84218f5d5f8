//! Settings → actors: open the probes and the results file, start the root supervisor, wait for
//! SIGINT/SIGTERM (or for the tree to give up), then shut down in order with a deadline.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use ractor::Actor;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

use ringpoll_actors::listen::BIND_RETRY;
use ringpoll_actors::membership::tls::ClusterTls;
use ringpoll_actors::membership::ClusterSettings;
use ringpoll_actors::probe::ssh::HostKeyPolicy;
use ringpoll_actors::probe::ProbeEngine;
use ringpoll_actors::ring::RingSettings;
use ringpoll_actors::state::NodeState;
use ringpoll_actors::supervisor::{ChildLinks, RootArgs, RootMsg, RootSupervisor};
use ringpoll_actors::view::NodeView;

use crate::config::{CookieSource, Overrides, Settings, COOKIE_ENV};
use crate::reload::{Reloader, Request};

/// The whole shutdown must finish within this.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);
/// How long a node with seeds waits for the cluster before computing its first ring.
const JOIN_WAIT: Duration = Duration::from_secs(1);

/// Runs a node until a signal (Ok) or until the supervision tree gives up (Err).
pub async fn run_node(
    settings: Settings,
    config_path: std::path::PathBuf,
    config_text: String,
    overrides: Overrides,
) -> anyhow::Result<()> {
    let kinds: BTreeSet<_> = settings.targets.iter().map(|t| t.kind()).collect();
    raise_open_files(settings.max_in_flight);
    let state = Arc::new(NodeState::default());
    let engine = ProbeEngine::open(
        kinds.iter().copied(),
        settings.ssh,
        state.ssh.clone(),
        settings.pace,
    )
    .context("starting the probes")?;
    let ssh_sessions = engine.ssh_sessions();
    for (i, g) in settings.groups.iter().enumerate() {
        if let Some((_, HostKeyPolicy::Off)) = g.ssh {
            tracing::warn!(group = i, "targets[{i}]: host_key_policy = \"off\": SSH host keys are not checked for {} target(s)", g.count);
        }
    }
    // Fail before starting anything if the results file cannot be written.
    for sink in &settings.results.sinks {
        drop(sink.open()?);
    }

    let tls = match settings.cluster.net.as_ref().and_then(|n| n.tls.as_ref()) {
        Some(files) => Some(ClusterTls::load(files)?),
        None => None,
    };
    let cluster = settings.cluster.net.as_ref().map(|n| {
        if n.cookie_source == CookieSource::LoopbackDefault {
            tracing::warn!(
                "no cluster cookie set ({COOKIE_ENV} or cluster.cookie_file): using the insecure loopback default; any local process can join"
            );
        }
        ClusterSettings {
            listen: n.listen,
            advertise: n.advertise,
            seeds: settings.cluster.seeds.clone(),
            cookie: n.cookie.clone(),
            heartbeat: n.heartbeat,
            suspect_after: n.suspect_after,
            dead_after: n.dead_after,
            redial_max: n.redial_max,
            tls: tls.clone(),
        }
    });
    // A clustered node waits briefly for the cluster before its first ring, rather than
    // claiming every target for itself and handing most of them over a moment later — the
    // first node too (its only seed is itself): in a cluster started at once, the others
    // reach it within a second, and claiming all the targets first cost it 20 s of actor
    // starts on a loaded machine.
    let ring = RingSettings {
        weight: settings.cluster.weight,
        replicas: settings.cluster.replicas,
        rebalance_delay: settings.cluster.rebalance_delay,
        initial_delay: if cluster.is_some() {
            JOIN_WAIT
        } else {
            Duration::ZERO
        },
        unflushed: settings.results.flush_interval,
    };

    let (publishers, view) = NodeView::new(settings.node.clone(), state.clone());
    let config_status = publishers.config.clone();
    #[cfg(not(feature = "test-hooks"))]
    if std::env::var_os("RINGPOLL_TEST_PANIC_PROBE").is_some() {
        tracing::warn!("RINGPOLL_TEST_PANIC_PROBE is ignored: this build has no test hooks");
    }
    let (give_up_tx, give_up_rx) = oneshot::channel();
    tracing::info!(
        node = %settings.node,
        targets = settings.targets.len(),
        sinks = settings.results.sinks.len(),
        "starting node"
    );
    let args = RootArgs {
        targets: settings.targets.clone().into(),
        engine,
        max_in_flight: settings.max_in_flight,
        #[cfg(feature = "test-hooks")]
        faults: ringpoll_actors::fault::FaultInjection::from_env(),
        state,
        view: view.clone(),
        publishers,
        links: ChildLinks::default(),
        sink: settings.results.clone(),
        notify: settings.notify.clone(),
        policy: settings.supervision,
        on_give_up: Some(give_up_tx),
        ring,
        cluster,
    };
    // Bind the status endpoint before starting, so a taken port is a clear error.
    let http = match &settings.http {
        Some(h) => Some((
            ringpoll_actors::listen::bind(h.listen, "http.listen / --http", BIND_RETRY)
                .await
                .with_context(|| {
                    format!(
                        "cannot listen for HTTP on {} (http.listen / --http)",
                        h.listen
                    )
                })?,
            h.token.clone(),
        )),
        None => None,
    };
    let (root, root_done) = Actor::spawn(None, RootSupervisor, args)
        .await
        .map_err(|e| anyhow!("the supervision tree did not start: {}", startup_cause(&e)))?;
    // Reloads (SIGHUP, POST /-/reload) are served one at a time by the reloader.
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(16);
    let reloader = Reloader::new(
        config_path,
        overrides,
        settings.clone(),
        config_text,
        root.clone(),
        config_status,
    );
    tokio::spawn(reloader.run(reload_rx));
    let serving = match http {
        Some((listener, token)) => {
            let addr = listener.local_addr()?;
            let serving = crate::http::spawn(listener, view, token, reload_tx.clone());
            tracing::info!(%addr, "HTTP endpoint listening (/metrics, /status, /targets, /owner/TARGET, /plan)");
            Some(serving)
        }
        None => None,
    };

    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::pin!(give_up_rx);
    let signal_name = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => {
                tracing::info!(signal = "SIGHUP", "reloading the config");
                let _ = reload_tx.try_send(Request::Reload(None));
            }
            reason = &mut give_up_rx => {
                let reason = reason.unwrap_or_else(|_| "the root supervisor stopped".into());
                let _ = root_done.await;
                return Err(anyhow!("supervision tree gave up: {reason}"));
            }
        }
    };
    tracing::info!(signal = signal_name, "shutting down");
    // The addresses a successor binds are freed first: the HTTP listener here, the cluster
    // listener when membership leaves. A process started while this one drains can start.
    if let Some(serving) = serving {
        serving.close();
    }
    // A second signal ends the process at once.
    tokio::spawn(async move {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::warn!("second signal: exiting without finishing the shutdown");
        std::process::exit(130);
    });

    let shutdown = async {
        let report = ractor::call_t!(
            root,
            RootMsg::Shutdown,
            SHUTDOWN_DEADLINE.as_millis() as u64
        );
        root.stop(Some("shutdown".into()));
        let _ = root_done.await;
        // Held SSH connections end with an SSH disconnect, not a dropped TCP connection.
        if let Some(sessions) = &ssh_sessions {
            sessions.close_all().await;
        }
        report
    };
    match tokio::time::timeout(SHUTDOWN_DEADLINE + Duration::from_secs(1), shutdown).await {
        Ok(Ok(report)) => {
            tracing::info!(
                probes_stopped = report.probes_stopped,
                results_written = report.results_written,
                results_dropped = report.results_dropped,
                "node stopped"
            );
            if report.results_unwritten > 0 {
                return Err(anyhow!(
                    "{} buffered result(s) could not be written: the result sink did not drain in time",
                    report.results_unwritten
                ));
            }
            Ok(())
        }
        Ok(Err(err)) => Err(anyhow!("shutdown did not complete: {err}")),
        Err(_) => Err(anyhow!(
            "shutdown did not complete within {SHUTDOWN_DEADLINE:?}"
        )),
    }
}

/// The innermost reason a start failed: ractor wraps a child's failed start in its parent's
/// (`Actor panicked during startup 'Actor panicked during startup '…''`); the operator needs
/// only what went wrong.
fn startup_cause(e: &ractor::SpawnErr) -> String {
    let mut e = e;
    loop {
        match e {
            ractor::SpawnErr::StartupFailed(inner) => {
                match inner.downcast_ref::<ractor::SpawnErr>() {
                    Some(deeper) => e = deeper,
                    None => return inner.to_string(),
                }
            }
            other => return other.to_string(),
        }
    }
}

/// Raises the soft limit on open files to the hard limit (as Go programs do at start): each TCP
/// probe in flight holds a descriptor, and the usual soft limit of 1,024 is below the default
/// `max_in_flight`. Warns when even the hard limit leaves less than `max_in_flight` + 1,024.
fn raise_open_files(max_in_flight: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the one struct passed, which lives here.
    let raised = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        // An unlimited hard limit still stops at the kernel's nr_open (2^20 by default).
        lim.rlim_max = lim.rlim_max.min(1 << 20);
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        lim.rlim_cur >= lim.rlim_max || libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0
    };
    let limit = if raised {
        lim.rlim_max.max(lim.rlim_cur)
    } else {
        lim.rlim_cur
    };
    let needed = max_in_flight as u64 + 1024;
    if limit < needed {
        tracing::warn!(
            limit,
            max_in_flight,
            "the open-files limit ({limit}) is below probe.max_in_flight + 1024: TCP probes may fail with \"too many open files\"; raise it (LimitNOFILE= in the systemd unit, ulimit -n) or lower max_in_flight"
        );
    }
}
