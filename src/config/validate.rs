//! Raw config → [`Settings`], one function per section. Every error names where it is
//! (`PATH:LINE:COL` or the flag), what is wrong and what is expected.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use ringpoll_actors::membership::tls::TlsFiles;
use ringpoll_actors::model::{default_retry_interval, Check, Host, Labels, NodeName, ProbeKind};
use ringpoll_actors::probe::echo::{Echoes, MAX_COUNT};
use ringpoll_actors::probe::health::Thresholds;
use ringpoll_actors::probe::pace::{PaceLimits, DEFAULT_PER_NETWORK};
use ringpoll_actors::probe::ssh::{SshLimits, DEFAULT_MAX_CONCURRENT};
use ringpoll_actors::probe::ssh::{DEFAULT_MAX_NEW_LOGINS_PER_S, DEFAULT_MAX_SESSIONS};
use ringpoll_actors::restart::RestartPolicy;
use ringpoll_actors::ring::placement::MAX_WEIGHT;
use ringpoll_actors::sink::{SinkSettings, SinkSpec};

use super::defaults::*;
use super::error::{ConfigError, Locator};
use super::raw::{
    Dur, RawCluster, RawConfig, RawGroup, RawHttp, RawNode, RawNotify, RawNotifyKind, RawProbe,
    RawResults, RawSink, RawSinkKind, RawSupervision,
};
use super::settings::{
    ClusterConfig, ClusterNet, CookieSource, GroupSummary, HttpConfig, Overrides, Settings,
};
use super::sources::SourceReader;
use super::ssh::SshLoader;
use super::targets::{check_label, Expander, GroupTemplate};
use ringpoll_actors::notify::spec::{NotifySpec, DEFAULT_QUEUE, DEFAULT_RESEND};

/// Validates the file with command-line overrides applied. Sections are checked in file
/// order, so the first error reported is the first in the file.
pub(super) fn validate(
    raw: RawConfig,
    loc: &Locator<'_>,
    base: &Path,
    ov: &Overrides,
    mut sources: SourceReader<'_>,
) -> Result<Settings, ConfigError> {
    let node = node(&raw.node, loc, ov)?;
    let cluster = cluster(&raw.cluster, loc, base, ov)?;
    let http = http(&raw.http, loc, base, ov)?;
    let probe = probe(&raw.probe, loc)?;
    let results = results(&raw.results, &raw.sinks, loc, base, ov)?;
    let notify = notifiers(&raw.notify, loc, base)?;
    let supervision = supervision(&raw.supervision, loc)?;
    let max_concurrent_ssh = match &raw.probe.ssh.max_concurrent_ssh {
        None => DEFAULT_MAX_CONCURRENT,
        Some(m) if *m.get_ref() == 0 => {
            return Err(loc.at(
                m.span().start,
                "probe.ssh.max_concurrent_ssh must be at least 1",
            ))
        }
        Some(m) => *m.get_ref(),
    };
    let ssh_limits = SshLimits {
        max_concurrent: max_concurrent_ssh,
        max_sessions: raw
            .probe
            .ssh
            .max_sessions
            .as_ref()
            .map_or(DEFAULT_MAX_SESSIONS, |m| *m.get_ref()),
        max_new_logins_per_s: raw
            .probe
            .ssh
            .max_new_logins_per_s
            .as_ref()
            .map_or(DEFAULT_MAX_NEW_LOGINS_PER_S, |m| *m.get_ref()),
    };
    let (targets, groups) = groups(&raw, &probe, loc, base, &mut sources)?;
    Ok(Settings {
        node,
        cluster,
        http,
        interval: probe.interval,
        timeout: probe.timeout,
        max_in_flight: probe.max_in_flight,
        max_targets: probe.max_targets,
        pace: probe.pace,
        ssh: ssh_limits,
        results,
        notify,
        supervision,
        targets,
        groups,
        sources: sources.report,
        log_format: ov
            .log_format
            .or(raw.log.format.as_ref().map(|f| *f.get_ref()))
            .unwrap_or_default(),
    })
}

/// `[node]`, with `--name`.
fn node(n: &RawNode, loc: &Locator<'_>, ov: &Overrides) -> Result<NodeName, ConfigError> {
    match (&ov.name, &n.name) {
        (Some(name), _) => NodeName::new(name).map_err(|msg| ConfigError::Flag {
            flag: "--name",
            msg,
        }),
        (None, Some(name)) => NodeName::new(name.get_ref())
            .map_err(|m| loc.at(name.span().start, format!("node.name: {m}"))),
        // As Consul, Nomad and Alloy: the host name, when it makes a valid node name.
        (None, None) => match &ov.host_name {
            Some(host) => NodeName::new(host).map_err(|m| {
                loc.at(
                    0,
                    format!("node.name is not set and this host's name does not make one ({m}): set `[node] name = \"n1\"` or pass --name"),
                )
            }),
            None => Err(loc.at(
                0,
                "node.name is not set and this host's name could not be read: set `[node] name = \"n1\"` or pass --name",
            )),
        },
    }
}

/// The node-wide `[probe]` settings (the group defaults are read per group).
struct ProbeDefaults {
    interval: Duration,
    timeout: Duration,
    max_in_flight: usize,
    max_targets: usize,
    pace: PaceLimits,
}

/// `[probe]`.
fn probe(p: &RawProbe, loc: &Locator<'_>) -> Result<ProbeDefaults, ConfigError> {
    let interval = or(&p.interval, Dur(DEFAULT_INTERVAL)).0;
    let timeout = or(&p.timeout, Dur(DEFAULT_TIMEOUT)).0;
    check_interval_timeout(
        loc,
        interval,
        timeout,
        pos(&p.interval),
        pos(&p.timeout),
        "probe.",
    )?;
    let max_in_flight = or(&p.max_in_flight, DEFAULT_MAX_IN_FLIGHT);
    if max_in_flight == 0 {
        return Err(loc.at(
            pos(&p.max_in_flight),
            "probe.max_in_flight must be at least 1",
        ));
    }
    let max_targets = or(&p.max_targets, DEFAULT_MAX_TARGETS);
    if max_targets == 0 {
        return Err(loc.at(pos(&p.max_targets), "probe.max_targets must be at least 1"));
    }
    // Echoes per second; 0 lifts the limit.
    let rate = |v: &Option<Spanned<u32>>, default: Option<u32>| match v {
        None => default,
        Some(v) => Some(*v.get_ref()).filter(|r| *r > 0),
    };
    Ok(ProbeDefaults {
        interval,
        timeout,
        max_in_flight,
        max_targets,
        pace: PaceLimits {
            per_network: rate(&p.max_rate_per_network, Some(DEFAULT_PER_NETWORK)),
            node: rate(&p.max_pps, None),
        },
    })
}

/// `[[notify]]`: each entry's URLs (plain `http://HOST:PORT`), token and settings.
fn notifiers(
    raw: &[Spanned<RawNotify>],
    loc: &Locator<'_>,
    base: &Path,
) -> Result<Vec<NotifySpec>, ConfigError> {
    let mut out = Vec::new();
    for (i, entry) in raw.iter().enumerate() {
        let n = entry.get_ref();
        let key = |k: &str| format!("notify[{i}].{k}");
        let check_url = |u: &Spanned<String>, k: &str| -> Result<String, ConfigError> {
            let s = u.get_ref().trim();
            let rest = s.strip_prefix("http://").ok_or_else(|| {
                loc.at(
                    u.span().start,
                    format!(
                        "{}: {s:?}: expected an http:// URL, e.g. \"http://127.0.0.1:9093\" \
                         (https is not built in: put a local TLS proxy in front)",
                        key(k)
                    ),
                )
            })?;
            if rest.is_empty() || rest.starts_with('/') {
                return Err(loc.at(u.span().start, format!("{}: {s:?} has no host", key(k))));
            }
            Ok(s.to_string())
        };
        let mut urls = Vec::new();
        if let Some(u) = &n.url {
            urls.push(check_url(u, "url")?);
        }
        for u in n.urls.iter().flat_map(|u| u.get_ref()) {
            urls.push(check_url(u, "urls")?);
        }
        if urls.is_empty() {
            return Err(loc.at(
                entry.span().start,
                format!(
                    "{}: a notifier needs url = \"http://HOST:PORT…\"",
                    key("url")
                ),
            ));
        }
        let token = match &n.bearer_token_file {
            Some(f) => Some(secret_file(loc, base, f, &key("bearer_token_file"), "")?.0),
            None => None,
        };
        let at_kind = |k: &str, v_at: usize| {
            loc.at(
                v_at,
                format!(
                    "{}: not a setting of kind = \"{}\"",
                    key(k),
                    match n.kind.get_ref() {
                        RawNotifyKind::Alertmanager => "alertmanager",
                        RawNotifyKind::Webhook => "webhook",
                    }
                ),
            )
        };
        out.push(match n.kind.get_ref() {
            RawNotifyKind::Alertmanager => {
                if let Some(q) = &n.queue {
                    return Err(at_kind("queue", q.span().start));
                }
                let resend = n.resend.as_ref().map_or(DEFAULT_RESEND, |r| r.get_ref().0);
                if resend < Duration::from_secs(1) || resend > Duration::from_secs(3600) {
                    return Err(loc.at(
                        pos(&n.resend),
                        format!(
                            "{}: expected 1s to 1h (Alertmanager wants 30s to 3m)",
                            key("resend")
                        ),
                    ));
                }
                NotifySpec::Alertmanager {
                    urls,
                    token,
                    resend,
                }
            }
            RawNotifyKind::Webhook => {
                if let Some(r) = &n.resend {
                    return Err(at_kind("resend", r.span().start));
                }
                if urls.len() > 1 {
                    return Err(loc.at(
                        pos(&n.urls),
                        format!("{}: a webhook takes one url", key("urls")),
                    ));
                }
                let queue = n.queue.as_ref().map_or(DEFAULT_QUEUE, |q| *q.get_ref());
                if queue == 0 {
                    return Err(loc.at(
                        pos(&n.queue),
                        format!("{}: expected at least 1", key("queue")),
                    ));
                }
                NotifySpec::Webhook {
                    url: urls.remove(0),
                    token,
                    queue,
                }
            }
        });
    }
    Ok(out)
}

/// `[results]` and `[[sinks]]`, with `--results` and `--sqlite`.
fn results(
    r: &RawResults,
    raw_sinks: &[Spanned<RawSink>],
    loc: &Locator<'_>,
    base: &Path,
    ov: &Overrides,
) -> Result<SinkSettings, ConfigError> {
    let mut sinks = Vec::new();
    for (i, sink) in raw_sinks.iter().enumerate() {
        let raw = sink.get_ref();
        if raw.path.get_ref().is_empty() {
            return Err(loc.at(
                raw.path.span().start,
                format!("sinks[{i}].path is empty; expected a file path"),
            ));
        }
        let path = base.join(raw.path.get_ref());
        sinks.push(match raw.kind.get_ref() {
            RawSinkKind::Jsonl => {
                if let Some(r) = &raw.retention {
                    return Err(loc.at(
                        r.span().start,
                        format!("sinks[{i}].retention: only sqlite sinks take a retention"),
                    ));
                }
                SinkSpec::Jsonl { path }
            }
            RawSinkKind::Sqlite => SinkSpec::Sqlite {
                path,
                retention: raw.retention.as_ref().map(|r| r.get_ref().0),
            },
        });
    }
    // The JSON-lines file: [results] path (or --results), unless [[sinks]] list one.
    let results_path = match (&ov.results, &r.path) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(p)) if p.get_ref().is_empty() => {
            return Err(loc.at(
                p.span().start,
                "results.path is empty; expected a file path",
            ))
        }
        (None, Some(p)) => Some(base.join(p.get_ref())),
        (None, None) => None,
    };
    let first_jsonl = sinks.iter_mut().find_map(|s| match s {
        SinkSpec::Jsonl { path } => Some(path),
        _ => None,
    });
    match (first_jsonl, results_path) {
        (Some(path), Some(p)) => *path = p,
        (Some(_), None) => {}
        (None, p) => sinks.insert(
            0,
            SinkSpec::Jsonl {
                path: p.unwrap_or_else(|| PathBuf::from(DEFAULT_RESULTS)),
            },
        ),
    }
    // The SQLite database: --sqlite replaces the first sqlite sink's path, or adds one (kept
    // without a retention, as a sink written without one).
    if let Some(p) = &ov.sqlite {
        let first_sqlite = sinks.iter_mut().find_map(|s| match s {
            SinkSpec::Sqlite { path, .. } => Some(path),
            _ => None,
        });
        match first_sqlite {
            Some(path) => *path = p.clone(),
            None => sinks.push(SinkSpec::Sqlite {
                path: p.clone(),
                retention: None,
            }),
        }
    }
    let buffer = or(&r.buffer, DEFAULT_BUFFER);
    if buffer == 0 {
        return Err(loc.at(pos(&r.buffer), "results.buffer must be at least 1"));
    }
    let flush_interval = or(&r.flush_interval, Dur(DEFAULT_FLUSH)).0;
    if flush_interval.is_zero() {
        return Err(loc.at(
            pos(&r.flush_interval),
            "results.flush_interval must be more than 0",
        ));
    }
    Ok(SinkSettings {
        sinks,
        buffer,
        flush_interval,
    })
}

/// `[supervision]`.
fn supervision(s: &RawSupervision, loc: &Locator<'_>) -> Result<RestartPolicy, ConfigError> {
    let d = RestartPolicy::default();
    let supervision = RestartPolicy {
        max_restarts: s.max_restarts.unwrap_or(d.max_restarts),
        within: or(&s.within, Dur(d.within)).0,
        backoff_min: or(&s.backoff_min, Dur(d.backoff_min)).0,
        backoff_max: or(&s.backoff_max, Dur(d.backoff_max)).0,
        quarantine: or(&s.quarantine, Dur(d.quarantine)).0,
    };
    for (key, v, at) in [
        ("within", supervision.within, pos(&s.within)),
        ("backoff_min", supervision.backoff_min, pos(&s.backoff_min)),
        ("quarantine", supervision.quarantine, pos(&s.quarantine)),
    ] {
        if v.is_zero() {
            return Err(loc.at(at, format!("supervision.{key} must be more than 0")));
        }
    }
    if supervision.backoff_max < supervision.backoff_min {
        return Err(loc.at(
            pos(&s.backoff_max),
            "supervision.backoff_max must be at least supervision.backoff_min",
        ));
    }
    Ok(supervision)
}

/// Every `[[targets]]` group, expanded: the targets, and one summary per group.
fn groups(
    raw: &RawConfig,
    defaults: &ProbeDefaults,
    loc: &Locator<'_>,
    base: &Path,
    sources: &mut SourceReader<'_>,
) -> Result<
    (
        Vec<Arc<ringpoll_actors::model::TargetSpec>>,
        Vec<GroupSummary>,
    ),
    ConfigError,
> {
    let mut expander = Expander::new(loc, base, defaults.max_targets);
    let mut ssh_loader = SshLoader::new(loc, base, raw.probe.ssh.keys());
    let mut groups = Vec::with_capacity(raw.targets.len());
    for (i, g) in raw.targets.iter().enumerate() {
        let group = g.get_ref();
        let key = |k: &str| format!("targets[{i}].{k}");
        let interval = or(&group.interval, Dur(defaults.interval)).0;
        let timeout = or(&group.timeout, Dur(defaults.timeout)).0;
        let at = |v: &Option<Spanned<Dur>>| v.as_ref().map_or(g.span().start, |s| s.span().start);
        check_interval_timeout(
            loc,
            interval,
            timeout,
            at(&group.interval),
            at(&group.timeout),
            &key(""),
        )?;
        let probe = *group.probe.get_ref();
        let port = port_of(group, raw.probe.ssh.port, loc, &key)?;
        let labels = labels_of(group, loc, &key)?;
        let health = health_of(loc, &raw.probe, group, i, interval)?;
        let source = source_of(loc, &raw.probe, group, i)?;
        let confirm = confirm_of(loc, raw, group, i)?;
        let echoes = echoes_of(loc, &raw.probe, g, i, interval, timeout)?;
        let (check, ssh) = match (probe, port) {
            (ProbeKind::Ssh, Some(port)) => {
                let (settings, policy) = ssh_loader.group(i, group.ssh_keys(), g.span().start)?;
                let summary = (settings.user.clone(), policy);
                (Check::Ssh { port, settings }, Some(summary))
            }
            (kind, port) => {
                ssh_loader.reject(i, group.ssh_keys(), kind.as_str())?;
                match port {
                    Some(port) => (Check::Tcp { port }, None),
                    // port_of refuses a port on icmp groups.
                    None => (Check::Icmp(echoes), None),
                }
            }
        };
        let before = expander.len();
        let template = GroupTemplate {
            check,
            health,
            interval,
            timeout,
            labels,
            source,
            confirm,
        };
        let source = expander.group(i, g, template, sources)?;
        groups.push(GroupSummary {
            source,
            probe,
            count: expander.len() - before,
            interval,
            timeout,
            ssh,
            echoes: (probe == ProbeKind::Icmp).then_some(echoes),
        });
    }
    Ok((expander.finish()?, groups))
}

/// A group's port: required for tcp, `[probe.ssh] port` or 22 for ssh, none for icmp.
fn port_of(
    group: &RawGroup,
    ssh_default: Option<u16>,
    loc: &Locator<'_>,
    key: &dyn Fn(&str) -> String,
) -> Result<Option<u16>, ConfigError> {
    match (*group.probe.get_ref(), &group.port) {
        (ProbeKind::Tcp, None) => Err(loc.at(
            group.probe.span().start,
            format!(
                "{}: probe = \"tcp\" needs a port, e.g. port = 22",
                key("port")
            ),
        )),
        (ProbeKind::Ssh, None) => Ok(Some(ssh_default.unwrap_or(DEFAULT_SSH_PORT))),
        (ProbeKind::Tcp | ProbeKind::Ssh, Some(p)) if *p.get_ref() == 0 => Err(loc.at(
            p.span().start,
            format!("{}: expected a port from 1 to 65535", key("port")),
        )),
        (ProbeKind::Icmp, Some(p)) => Err(loc.at(
            p.span().start,
            format!(
                "{}: only tcp and ssh targets take a port; remove it for probe = \"icmp\"",
                key("port")
            ),
        )),
        (_, p) => Ok(p.as_ref().map(|p| *p.get_ref())),
    }
}

/// A group's labels, names checked.
fn labels_of(
    group: &RawGroup,
    loc: &Locator<'_>,
    key: &dyn Fn(&str) -> String,
) -> Result<Labels, ConfigError> {
    let Some(l) = &group.labels else {
        return Ok(Labels::default());
    };
    for name in l.get_ref().keys() {
        check_label(name).map_err(|m| loc.at(l.span().start, format!("{}: {m}", key("labels"))))?;
    }
    Ok(Arc::new(l.get_ref().clone()))
}

/// The value of an optional spanned key, or a default.
fn or<T: Clone>(v: &Option<Spanned<T>>, default: T) -> T {
    v.as_ref().map_or(default, |s| s.get_ref().clone())
}

/// The start of a spanned key's value, or of the file.
fn pos<T>(v: &Option<Spanned<T>>) -> usize {
    v.as_ref().map_or(0, |s| s.span().start)
}

fn check_interval_timeout(
    loc: &Locator<'_>,
    interval: Duration,
    timeout: Duration,
    interval_at: usize,
    timeout_at: usize,
    prefix: &str,
) -> Result<(), ConfigError> {
    if interval.is_zero() {
        return Err(loc.at(interval_at, format!("{prefix}interval must be more than 0")));
    }
    if timeout.is_zero() {
        return Err(loc.at(timeout_at, format!("{prefix}timeout must be more than 0")));
    }
    if timeout >= interval {
        return Err(loc.at(
            timeout_at,
            format!(
                "{prefix}timeout ({}) must be less than the interval ({})",
                humantime::format_duration(timeout),
                humantime::format_duration(interval)
            ),
        ));
    }
    Ok(())
}

/// `[cluster]`, with `--listen` and `--seed` and the cookie from the environment.
fn cluster(
    c: &RawCluster,
    loc: &Locator<'_>,
    base: &Path,
    ov: &Overrides,
) -> Result<ClusterConfig, ConfigError> {
    let listen = match (&ov.listen, &c.listen) {
        (Some(l), _) => Some(parse_listen(l).map_err(|msg| ConfigError::Flag {
            flag: "--listen",
            msg,
        })?),
        (None, Some(l)) => Some(
            parse_listen(l.get_ref())
                .map_err(|m| loc.at(l.span().start, format!("cluster.listen: {m}")))?,
        ),
        (None, None) => None,
    };
    let seeds = if ov.seeds.is_empty() {
        c.seeds
            .iter()
            .map(|s| {
                check_host_port(s.get_ref(), false)
                    .map_err(|m| loc.at(s.span().start, format!("cluster.seeds: {m}")))
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        ov.seeds
            .iter()
            .map(|s| {
                check_host_port(s, false).map_err(|msg| ConfigError::Flag {
                    flag: "--seed",
                    msg,
                })
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let weight = or(&c.weight, DEFAULT_WEIGHT);
    if !(1..=MAX_WEIGHT).contains(&weight) {
        return Err(loc.at(
            pos(&c.weight),
            format!("cluster.weight must be from 1 to {MAX_WEIGHT}"),
        ));
    }
    let replicas = or(&c.replicas, DEFAULT_REPLICAS);
    if !(1..=MAX_REPLICAS).contains(&replicas) {
        return Err(loc.at(
            pos(&c.replicas),
            format!("cluster.replicas must be from 1 to {MAX_REPLICAS}"),
        ));
    }
    let heartbeat = or(&c.heartbeat_interval, Dur(DEFAULT_HEARTBEAT)).0;
    let suspect_after = or(&c.suspect_after, Dur(DEFAULT_SUSPECT)).0;
    let dead_after = or(&c.dead_after, Dur(DEFAULT_DEAD)).0;
    let rebalance_delay = or(&c.rebalance_delay, Dur(DEFAULT_REBALANCE)).0;
    let redial_max = or(&c.redial_max, Dur(DEFAULT_REDIAL_MAX)).0;
    if heartbeat.is_zero() {
        return Err(loc.at(
            pos(&c.heartbeat_interval),
            "cluster.heartbeat_interval must be more than 0",
        ));
    }
    if suspect_after <= heartbeat {
        return Err(loc.at(
            pos(&c.suspect_after),
            "cluster.suspect_after must be longer than cluster.heartbeat_interval",
        ));
    }
    if dead_after <= suspect_after {
        return Err(loc.at(
            pos(&c.dead_after),
            "cluster.dead_after must be longer than cluster.suspect_after",
        ));
    }
    if redial_max < Duration::from_millis(100) {
        return Err(loc.at(
            pos(&c.redial_max),
            "cluster.redial_max must be at least 100ms",
        ));
    }
    let Some(listen) = listen else {
        if !seeds.is_empty() {
            let msg = "cluster.seeds needs cluster.listen (or --listen): a node joins a cluster over its own listen address";
            if !ov.seeds.is_empty() {
                return Err(ConfigError::Flag {
                    flag: "--seed",
                    msg: msg.trim_start_matches("cluster.seeds ").to_string(),
                });
            }
            return Err(loc.at(c.seeds.first().map_or(0, |s| s.span().start), msg));
        }
        return Ok(ClusterConfig {
            net: None,
            seeds,
            weight,
            replicas,
            rebalance_delay,
        });
    };
    let advertise = match &c.advertise {
        Some(a) => a
            .get_ref()
            .parse::<SocketAddr>()
            .ok()
            .filter(|a| !a.ip().is_unspecified() && a.port() != 0)
            .ok_or_else(|| {
                loc.at(
                    a.span().start,
                    "cluster.advertise: expected the IP:PORT other nodes reach this node at",
                )
            })?,
        None if listen.ip().is_unspecified() => {
            let msg = "is a wildcard address: set cluster.advertise to the IP:PORT other nodes reach this node at";
            return Err(match ov.listen {
                Some(_) => ConfigError::Flag {
                    flag: "--listen",
                    msg: format!("{listen} {msg}"),
                },
                None => loc.at(pos(&c.listen), format!("cluster.listen {msg}")),
            });
        }
        None => listen,
    };
    let (cookie, cookie_source) = match (&ov.cookie_env, &c.cookie_file) {
        (Some(c), _) if !c.trim().is_empty() => (c.trim().to_string(), CookieSource::Env),
        (_, Some(f)) => {
            let (cookie, path) = secret_file(
                loc,
                base,
                f,
                "cluster.cookie_file",
                "; put the cluster's shared secret on its first line",
            )?;
            (cookie, CookieSource::File(path))
        }
        _ if listen.ip().is_loopback() => (
            INSECURE_LOOPBACK_COOKIE.to_string(),
            CookieSource::LoopbackDefault,
        ),
        _ => {
            let err = format!(
                    "cluster.listen {listen} is not a loopback address, and no cookie is set: set the environment variable {COOKIE_ENV} or cluster.cookie_file (the cookie is never taken from the command line or this file)"
                );
            return Err(match &c.listen {
                Some(l) if ov.listen.is_none() => loc.at(l.span().start, err),
                _ => ConfigError::Flag {
                    flag: "--listen",
                    msg: err,
                },
            });
        }
    };
    let tls = match &c.tls {
        None => None,
        Some(t) => {
            let raw = t.get_ref();
            let server_name = raw
                .server_name
                .clone()
                .unwrap_or_else(|| DEFAULT_TLS_SERVER_NAME.to_string());
            if Host::parse(&server_name).is_err() || server_name.parse::<std::net::IpAddr>().is_ok()
            {
                return Err(loc.at(t.span().start, format!("cluster.tls.server_name {server_name:?}: expected a DNS name that every node certificate carries")));
            }
            Some(TlsFiles {
                cert: base.join(&raw.cert),
                key: base.join(&raw.key),
                ca: base.join(&raw.ca),
                server_name,
            })
        }
    };
    Ok(ClusterConfig {
        net: Some(ClusterNet {
            listen,
            advertise,
            cookie,
            cookie_source,
            tls,
            heartbeat,
            suspect_after,
            dead_after,
            redial_max,
        }),
        seeds,
        weight,
        replicas,
        rebalance_delay,
    })
}

/// The first line of secret file `f` (relative to `base`), trimmed, and its path; `key` names
/// it in errors, `empty_hint` ends the error when the line is empty.
fn secret_file(
    loc: &Locator<'_>,
    base: &Path,
    f: &Spanned<String>,
    key: &str,
    empty_hint: &str,
) -> Result<(String, PathBuf), ConfigError> {
    let path = base.join(f.get_ref());
    let text = crate::config::text::read_text(&path).map_err(|e| {
        loc.at(
            f.span().start,
            format!("{key}: cannot read {}: {e}", path.display()),
        )
    })?;
    let secret = text.lines().next().unwrap_or("").trim().to_string();
    if secret.is_empty() {
        return Err(loc.at(
            f.span().start,
            format!("{key}: {} is empty{empty_hint}", path.display()),
        ));
    }
    Ok((secret, path))
}

/// `IP:PORT` with a fixed port.
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s.parse().map_err(|_| {
        format!("{s:?}: expected IP:PORT, e.g. \"127.0.0.1:4701\" (an address, not a name)")
    })?;
    if addr.port() == 0 {
        return Err(format!(
            "{s:?}: the cluster port must be fixed (not 0), so seeds can name it"
        ));
    }
    Ok(addr)
}

/// Rise, fall and retry interval of group `i`: the group's, else `[probe]`'s, else defaults.
fn health_of(
    loc: &Locator<'_>,
    probe: &RawProbe,
    group: &RawGroup,
    i: usize,
    interval: Duration,
) -> Result<(Thresholds, Duration), ConfigError> {
    let mut t = Thresholds::default();
    for (name, g, d, slot) in [
        ("rise", &group.rise, &probe.rise, &mut t.rise),
        ("fall", &group.fall, &probe.fall, &mut t.fall),
    ] {
        if let Some(v) = g.as_ref().or(d.as_ref()) {
            if !(1..=100).contains(v.get_ref()) {
                return Err(loc.at(
                    v.span().start,
                    format!("targets[{i}].{name}: expected 1 to 100 consecutive results"),
                ));
            }
            *slot = *v.get_ref();
        }
    }
    let retry = match group
        .retry_interval
        .as_ref()
        .or(probe.retry_interval.as_ref())
    {
        None => default_retry_interval(interval),
        Some(r) if r.get_ref().0.is_zero() || r.get_ref().0 > interval => {
            return Err(loc.at(
                r.span().start,
                format!(
                    "targets[{i}].retry_interval must be more than 0 and at most the interval ({})",
                    humantime::format_duration(interval)
                ),
            ))
        }
        Some(r) => r.get_ref().0,
    };
    Ok((t, retry))
}

/// Group `i`'s `confirm`: the group's, else `[probe]`'s, else 1; at most `cluster.replicas`.
fn confirm_of(
    loc: &Locator<'_>,
    raw: &RawConfig,
    group: &RawGroup,
    i: usize,
) -> Result<u32, ConfigError> {
    let (key, v) = match (&group.confirm, &raw.probe.confirm) {
        (Some(v), _) => (format!("targets[{i}].confirm"), v),
        (None, Some(v)) => ("probe.confirm".to_string(), v),
        (None, None) => return Ok(1),
    };
    let replicas = or(&raw.cluster.replicas, DEFAULT_REPLICAS);
    let k = *v.get_ref();
    if !(1..=replicas).contains(&k) {
        return Err(loc.at(
            v.span().start,
            format!(
                "{key}: expected 1 to cluster.replicas ({replicas}) owners that must see a \
                 target down; raise cluster.replicas to confirm from more vantage points"
            ),
        ));
    }
    Ok(k)
}

/// Group `i`'s source address: the group's, else `[probe]`'s, else none. It must be an address
/// of this host (checked by binding a UDP socket to it), so a typo fails at start or reload
/// rather than in every probe.
fn source_of(
    loc: &Locator<'_>,
    probe: &RawProbe,
    group: &RawGroup,
    i: usize,
) -> Result<Option<IpAddr>, ConfigError> {
    let (key, v) = match (&group.source, &probe.source) {
        (Some(v), _) => (format!("targets[{i}].source"), v),
        (None, Some(v)) => ("probe.source".to_string(), v),
        (None, None) => return Ok(None),
    };
    let at = |msg: String| loc.at(v.span().start, format!("{key}: {msg}"));
    let ip: IpAddr = v.get_ref().parse().map_err(|_| {
        at(format!(
            "{:?}: expected an IP address of this host, e.g. \"127.0.0.1\"",
            v.get_ref()
        ))
    })?;
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0))
        .map_err(|e| at(format!("{ip} is not an address of this host ({e})")))?;
    Ok(Some(ip))
}

/// `[http]`, with `--http` and the token from the environment; None when `off`.
fn http(
    h: &RawHttp,
    loc: &Locator<'_>,
    base: &Path,
    ov: &Overrides,
) -> Result<Option<HttpConfig>, ConfigError> {
    let parse = |s: &str| -> Result<Option<SocketAddr>, String> {
        if s == "off" {
            return Ok(None);
        }
        s.parse::<SocketAddr>()
            .map(Some)
            .map_err(|_| format!("{s:?}: expected IP:PORT, e.g. \"127.0.0.1:9464\", or \"off\""))
    };
    let listen = match (&ov.http, &h.listen) {
        (Some(h), _) => parse(h).map_err(|msg| ConfigError::Flag {
            flag: "--http",
            msg,
        })?,
        (None, Some(h)) => {
            parse(h.get_ref()).map_err(|m| loc.at(h.span().start, format!("http.listen: {m}")))?
        }
        (None, None) => Some(DEFAULT_HTTP.parse().expect("valid default")),
    };
    let Some(listen) = listen else {
        return Ok(None);
    };
    let token = match (&ov.http_token_env, &h.token, &h.token_file) {
        (Some(t), _, _) if !t.trim().is_empty() => Some(t.trim().to_string()),
        (_, Some(t), _) if t.get_ref().trim().is_empty() => {
            return Err(loc.at(t.span().start, "http.token is empty"))
        }
        (_, Some(t), _) => Some(t.get_ref().trim().to_string()),
        (_, None, Some(f)) => Some(secret_file(loc, base, f, "http.token_file", "")?.0),
        _ => None,
    };
    if token.is_none() && !listen.ip().is_loopback() {
        let msg = format!(
                "{listen} is not a loopback address: set http.token or http.token_file (or {HTTP_TOKEN_ENV}) so the status port is not open to anyone, or listen on 127.0.0.1"
            );
        return Err(match (&ov.http, &h.listen) {
            (Some(_), _) => ConfigError::Flag {
                flag: "--http",
                msg,
            },
            (None, Some(l)) => loc.at(l.span().start, format!("http.listen: {msg}")),
            (None, None) => loc.at(0, msg),
        });
    }
    Ok(Some(HttpConfig { listen, token }))
}

/// Checks `HOST:PORT` (IPv6 in brackets); returns it unchanged.
pub fn check_host_port(s: &str, allow_port_zero: bool) -> Result<String, String> {
    let expected = "expected HOST:PORT, e.g. \"127.0.0.1:4701\" or \"[::1]:4701\"";
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} has no port; {expected}"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{s:?} has an invalid port; {expected}"))?;
    if port == 0 && !allow_port_zero {
        return Err(format!("{s:?}: port 0 is not allowed here; {expected}"));
    }
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.contains(':') && Host::parse(host).is_ok()
    };
    if !host_ok {
        return Err(format!("{s:?} has an invalid host; {expected}"));
    }
    Ok(s.to_string())
}

/// The echoes of an ICMP group: its own keys over `[probe]`'s. Other kinds take none (a
/// group's own `count` on a tcp group is an error; `[probe]`'s apply to the icmp groups only).
fn echoes_of(
    loc: &Locator<'_>,
    probe: &RawProbe,
    g: &Spanned<RawGroup>,
    i: usize,
    interval: Duration,
    timeout: Duration,
) -> Result<Echoes, ConfigError> {
    let group = g.get_ref();
    let kind = *group.probe.get_ref();
    let own = [
        ("count", group.count.as_ref().map(|v| v.span().start)),
        (
            "packet_interval",
            group.packet_interval.as_ref().map(|v| v.span().start),
        ),
        ("max_loss", group.max_loss.as_ref().map(|v| v.span().start)),
        ("max_rtt", group.max_rtt.as_ref().map(|v| v.span().start)),
    ];
    if kind != ProbeKind::Icmp {
        if let Some((name, Some(at))) = own.iter().find(|(_, at)| at.is_some()) {
            return Err(loc.at(
                *at,
                format!(
                    "targets[{i}].{name} is for icmp probes, not {}",
                    kind.as_str()
                ),
            ));
        }
        return Ok(Echoes::default());
    }
    let mut e = Echoes::default();
    let count = group.count.as_ref().or(probe.count.as_ref());
    if let Some(c) = count {
        if !(1..=MAX_COUNT).contains(c.get_ref()) {
            return Err(loc.at(
                c.span().start,
                format!("targets[{i}].count: expected 1 to {MAX_COUNT} echoes per probe"),
            ));
        }
        e.count = *c.get_ref();
    }
    let spacing = group
        .packet_interval
        .as_ref()
        .or(probe.packet_interval.as_ref());
    if let Some(p) = spacing {
        if p.get_ref().0 < Duration::from_millis(1) {
            return Err(loc.at(
                p.span().start,
                format!("targets[{i}].packet_interval must be at least 1ms"),
            ));
        }
        e.packet_interval = p.get_ref().0;
    }
    if let Some(l) = group.max_loss.as_ref().or(probe.max_loss.as_ref()) {
        let v = *l.get_ref();
        if !(0.0..=1.0).contains(&v) {
            return Err(loc.at(
                l.span().start,
                format!("targets[{i}].max_loss: expected the share of echoes that may be lost, from 0 to 1 (0.2: 20 %)"),
            ));
        }
        e.max_loss = Some(v);
    }
    if let Some(r) = group.max_rtt.as_ref().or(probe.max_rtt.as_ref()) {
        let d = r.get_ref().0;
        if d.is_zero() || d > timeout {
            return Err(loc.at(
                r.span().start,
                format!(
                    "targets[{i}].max_rtt must be more than 0 and at most the timeout ({})",
                    humantime::format_duration(timeout)
                ),
            ));
        }
        e.max_rtt = Some(d);
    }
    let span = e.span(timeout);
    if span >= interval {
        let at = count
            .map(|c| c.span().start)
            .or(spacing.map(|s| s.span().start))
            .unwrap_or(g.span().start);
        let d = |d: Duration| humantime::format_duration(d).to_string();
        return Err(loc.at(
            at,
            format!(
                "targets[{i}]: {} echoes {} apart, each waited for up to the timeout ({}), take up to {}: not less than the interval ({}); send fewer or closer echoes, or lengthen the interval",
                e.count,
                d(e.packet_interval),
                d(timeout),
                d(span),
                d(interval)
            ),
        ));
    }
    Ok(e)
}
