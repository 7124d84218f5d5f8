//! Prometheus metrics, built at scrape time from what the node knows.
//!
//! One model, two encodings, nothing hand-encoded: the families are `prometheus` (the tikv
//! crate) `MetricFamily` values, which that crate's `TextEncoder` writes as the text format
//! 0.0.4 and which [`OpenMetrics`] hands to prometheus-client's OpenMetrics encoder. The
//! `prometheus` crate also brings the standard `process_*` collector. Which encoding a scrape
//! gets is [`Format::negotiate`]d from its `Accept` header, as client_golang does.
//!
//! Per target: blackbox_exporter's vocabulary (`probe_success`, `probe_duration_seconds`) plus
//! `probe_last_result_timestamp_seconds`, and for ICMP targets smokeping_prober's
//! (`smokeping_requests_total`, the `smokeping_response_duration_seconds` histogram), for the
//! targets this node probes now, labelled `target`, `probe` and the group's labels. Per node:
//! build, membership, ownership, restarts, drops, overruns, state changes, and the cluster's
//! coverage.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use prometheus::core::Collector;
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::Encoder;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};

use ringpoll_actors::membership::MemberState;
use ringpoll_actors::model::TargetSpec;
use ringpoll_actors::probe::echo::{EchoTotals, RTT_BUCKETS};
use ringpoll_actors::supervisor::Role;
use ringpoll_actors::view::NodeView;

/// The version and the git revision the binary was built from (`unknown` outside a checkout).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// See [`VERSION`].
pub const REVISION: &str = env!("RINGPOLL_REVISION");

/// The node's metrics: its own families and the process collector's.
pub struct Exporter {
    view: NodeView,
    process: prometheus::process_collector::ProcessCollector,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

/// The exposition formats a scrape may get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4: the default, and what `promtool check metrics` reads.
    Text,
    /// OpenMetrics 1.0 text, for clients that prefer it (Prometheus does, by default).
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it is acceptable with a higher
    /// weight than `text/plain` (or `text/plain` is absent); otherwise, and with no header, the
    /// text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let (mut open, mut text) = (None::<f32>, None::<f32>);
        for range in accept.unwrap_or("").split(',') {
            let Ok(m) = range.trim().parse::<mime::Mime>() else {
                continue;
            };
            let q = m
                .get_param("q")
                .and_then(|q| q.as_str().parse::<f32>().ok())
                .unwrap_or(1.0);
            let slot = match (m.type_().as_str(), m.subtype().as_str()) {
                ("application", "openmetrics-text") => &mut open,
                ("text", "plain") => &mut text,
                _ => continue,
            };
            *slot = Some(slot.map_or(q, |old| old.max(q)));
        }
        match (open, text) {
            (Some(o), t) if o > 0.0 && o > t.unwrap_or(0.0) => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

impl Exporter {
    /// The exporter of this node's view.
    pub fn new(view: NodeView) -> Arc<Exporter> {
        Arc::new(Exporter {
            view,
            process: prometheus::process_collector::ProcessCollector::for_self(),
        })
    }

    /// Every family, as of now.
    pub fn families(&self) -> Vec<MetricFamily> {
        let mut f = Families::default();
        f.gauge(
            "ringpoll_build_info",
            "The version and git revision ringpoll was built from (always 1)",
            [(labels(&[("version", VERSION), ("revision", REVISION)]), 1.0)],
        );
        node_families(&self.view, &mut f);
        let mut all = f.0;
        all.extend(self.process.collect());
        all
    }

    /// The whole exposition in `format`.
    pub fn render(self: &Arc<Self>, format: Format) -> Result<String, String> {
        let mut body = String::new();
        match format {
            Format::Text => {
                let mut buf = Vec::new();
                prometheus::TextEncoder::new()
                    .encode(&self.families(), &mut buf)
                    .map_err(|e| e.to_string())?;
                body = String::from_utf8(buf).map_err(|e| e.to_string())?;
            }
            Format::OpenMetrics => {
                let mut registry = prometheus_client::registry::Registry::default();
                registry.register_collector(Box::new(OpenMetrics(self.clone())));
                prometheus_client::encoding::text::encode(&mut body, &registry)
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(body)
    }
}

/// The exporter's families as a prometheus-client collector, for its OpenMetrics encoder.
#[derive(Debug)]
struct OpenMetrics(Arc<Exporter>);

impl prometheus_client::collector::Collector for OpenMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        for family in self.0.families() {
            let kind = match family.get_field_type() {
                MetricType::COUNTER => prometheus_client::metrics::MetricType::Counter,
                MetricType::GAUGE => prometheus_client::metrics::MetricType::Gauge,
                MetricType::HISTOGRAM => prometheus_client::metrics::MetricType::Histogram,
                // Nothing else is built here or by the process collector.
                _ => continue,
            };
            // OpenMetrics names a counter's family without the `_total` of its sample.
            let name = match kind {
                prometheus_client::metrics::MetricType::Counter => {
                    family.name().trim_end_matches("_total")
                }
                _ => family.name(),
            };
            let mut m = enc.encode_descriptor(name, family.help(), None, kind)?;
            for metric in family.get_metric() {
                let labels: Vec<(&str, &str)> = metric
                    .get_label()
                    .iter()
                    .map(|l| (l.name(), l.value()))
                    .collect();
                let mut one = m.encode_family(&labels)?;
                match kind {
                    prometheus_client::metrics::MetricType::Counter => one
                        .encode_counter::<NoLabelSet, _, f64>(
                            &metric.get_counter().get_value(),
                            None,
                        )?,
                    prometheus_client::metrics::MetricType::Histogram => {
                        let h = metric.get_histogram();
                        // prometheus-client takes each bucket's own count, +Inf included.
                        let mut below = 0;
                        let mut buckets: Vec<(f64, u64)> = h
                            .get_bucket()
                            .iter()
                            .map(|b| {
                                let n = b.cumulative_count() - below;
                                below = b.cumulative_count();
                                (b.upper_bound(), n)
                            })
                            .collect();
                        buckets.push((f64::INFINITY, h.get_sample_count() - below));
                        one.encode_histogram::<NoLabelSet>(
                            h.get_sample_sum(),
                            h.get_sample_count(),
                            &buckets,
                            None,
                        )?
                    }
                    _ => one.encode_gauge(&metric.get_gauge().get_value())?,
                }
            }
        }
        Ok(())
    }
}

type Labels = Vec<(String, String)>;

/// A sample's labels, its value to be set.
fn metric(labels: Labels) -> proto::Metric {
    proto::Metric::from_label(
        labels
            .into_iter()
            .map(|(k, v)| {
                let mut l = proto::LabelPair::default();
                l.set_name(k);
                l.set_value(v);
                l
            })
            .collect(),
    )
}

/// A target's labels: `target`, `probe` and its group's.
fn target_labels(t: &TargetSpec) -> Labels {
    let mut labels: Labels = vec![
        ("target".into(), t.id.to_string()),
        ("probe".into(), t.kind().as_str().into()),
    ];
    labels.extend(t.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Families under construction.
#[derive(Default)]
struct Families(Vec<MetricFamily>);

impl Families {
    fn push(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        rows: impl IntoIterator<Item = (Labels, f64)>,
    ) {
        let metrics = rows
            .into_iter()
            .map(|(labels, v)| {
                let mut m = metric(labels);
                if kind == MetricType::COUNTER {
                    let mut c = proto::Counter::default();
                    c.set_value(v);
                    m.set_counter(c);
                } else {
                    let mut g = proto::Gauge::default();
                    g.set_value(v);
                    m.set_gauge(g);
                }
                m
            })
            .collect();
        self.family(name, help, kind, metrics);
    }

    /// Adds a family of `metrics`, unless it has none (the text encoder refuses that).
    fn family(&mut self, name: &str, help: &str, kind: MetricType, metrics: Vec<proto::Metric>) {
        if metrics.is_empty() {
            return;
        }
        let mut family = MetricFamily::default();
        family.set_name(name.into());
        family.set_help(help.into());
        family.set_field_type(kind);
        family.set_metric(metrics);
        self.0.push(family);
    }

    /// A histogram over `bounds`: per series its labels, sum, and each bucket's own count
    /// (`bounds.len() + 1` of them, the last above every bound).
    fn histogram<'a>(
        &mut self,
        name: &str,
        help: &str,
        bounds: &[f64],
        rows: impl IntoIterator<Item = (Labels, f64, &'a [u64])>,
    ) {
        let metrics = rows
            .into_iter()
            .map(|(labels, sum, counts)| {
                let mut h = proto::Histogram::default();
                let mut cumulative = 0;
                let buckets = bounds
                    .iter()
                    .zip(counts)
                    .map(|(le, n)| {
                        cumulative += n;
                        let mut b = proto::Bucket::default();
                        b.set_upper_bound(*le);
                        b.set_cumulative_count(cumulative);
                        b
                    })
                    .collect();
                h.set_bucket(buckets);
                h.set_sample_count(counts.iter().sum());
                h.set_sample_sum(sum);
                let mut m = metric(labels);
                m.set_histogram(h);
                m
            })
            .collect();
        self.family(name, help, MetricType::HISTOGRAM, metrics);
    }

    fn gauge(&mut self, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels, f64)>) {
        self.push(name, help, MetricType::GAUGE, rows);
    }

    /// `name` is the sample's name, ending `_total`.
    fn counter(&mut self, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels, u64)>) {
        debug_assert!(name.ends_with("_total"), "{name}");
        let rows = rows.into_iter().map(|(l, v)| (l, v as f64));
        self.push(name, help, MetricType::COUNTER, rows);
    }

    fn single(&mut self, name: &str, help: &str, v: f64) {
        self.gauge(name, help, [(Labels::new(), v)]);
    }
}

/// The node's own families: per target, membership, ownership, the health of its parts.
fn node_families(view: &NodeView, f: &mut Families) {
    let state = view.state();
    let (mut success, mut duration, mut last) = (Vec::new(), Vec::new(), Vec::new());
    let mut degraded = Vec::new();
    for (r, _) in state.running_latest() {
        let labels = target_labels(&r.target);
        // With several owners, the cluster's verdict, once per target (by its primary).
        if let Some(v) = state.verdict(&r.target.key()).filter(|v| v.primary) {
            degraded.push((labels.clone(), if v.degraded { 1.0 } else { 0.0 }));
        }
        let ok = if r.outcome.is_up() { 1.0 } else { 0.0 };
        let ts =
            r.ts.duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
        success.push((labels.clone(), ok));
        duration.push((labels.clone(), r.elapsed.as_secs_f64()));
        last.push((labels, ts));
    }
    f.gauge(
        "probe_success",
        "Whether the last probe of the target succeeded",
        success,
    );
    f.gauge(
        "probe_duration_seconds",
        "How long the last probe of the target took, success or failure",
        duration,
    );
    f.gauge(
        "probe_last_result_timestamp_seconds",
        "Unix time of the target's last result",
        last,
    );
    f.gauge(
        "ringpoll_target_degraded",
        "1 when the target is up but seen down from fewer vantages than its confirm needs (targets with several owners; exported by the target's primary owner)",
        degraded,
    );
    echo_families(&state.running_echoes(), f);

    let members = view.members();
    f.gauge(
        "ringpoll_members",
        "Cluster members by state, as this node sees them",
        MemberState::ALL.iter().map(|s| {
            let n = members.iter().filter(|m| m.state == *s).count();
            (labels(&[("state", s.as_str())]), n as f64)
        }),
    );

    let ring = view.ring();
    f.single(
        "ringpoll_targets_owned",
        "Targets this node owns",
        ring.as_ref().map_or(0.0, |v| v.owned as f64),
    );
    f.single(
        "ringpoll_ring_epoch",
        "This node's ownership epoch",
        ring.as_ref().map_or(0.0, |v| v.epoch as f64),
    );

    let mut restarts: Vec<(Labels, u64)> = Role::START_ORDER
        .iter()
        .map(|r| r.name())
        .chain(["probe"])
        .map(|r| (labels(&[("role", r)]), 0))
        .collect();
    for (role, n) in state.restarts() {
        if let Some(row) = restarts.iter_mut().find(|(l, _)| l[0].1 == role) {
            row.1 = n;
        }
    }
    f.counter(
        "ringpoll_actor_restarts_total",
        "Actor restarts by role",
        restarts,
    );
    f.counter(
        "ringpoll_results_dropped_total",
        "Results dropped: a sink's buffer was full, or no sink was running (restarting)",
        [(Labels::new(), state.results_dropped())],
    );
    f.single(
        "ringpoll_results_buffered",
        "Results waiting in memory for a slow or failing sink (its fullest lane)",
        state.results_buffered() as f64,
    );
    let (logins_ok, logins_failed, idle, busy) = state.ssh.snapshot();
    f.gauge(
        "ringpoll_ssh_connections",
        "SSH connections held for persistent targets: idle between probes, or busy with one",
        [
            (labels(&[("state", "idle")]), idle as f64),
            (labels(&[("state", "busy")]), busy as f64),
        ],
    );
    f.counter(
        "ringpoll_ssh_logins_total",
        "SSH logins (connect, host key, authentication), by result",
        [
            (labels(&[("result", "ok")]), logins_ok),
            (labels(&[("result", "failed")]), logins_failed),
        ],
    );
    let notify = &state.notify;
    let kinds = ringpoll_actors::notify::counters::Kind::ALL;
    let per_kind = |which: fn((u64, u64, u64)) -> u64| {
        kinds
            .iter()
            .map(|k| (labels(&[("kind", k.as_str())]), which(notify.get(*k))))
            .collect::<Vec<_>>()
    };
    f.counter(
        "ringpoll_notifications_sent_total",
        "Alerts (alertmanager) and state events (webhook) delivered",
        per_kind(|c| c.0),
    );
    f.counter(
        "ringpoll_notifications_failed_total",
        "Posts to a notifier that failed (each is retried: alerts at the next second, webhook events with backoff)",
        per_kind(|c| c.1),
    );
    f.counter(
        "ringpoll_notifications_dropped_total",
        "Webhook events dropped: the queue was full, or an event failed every attempt",
        per_kind(|c| c.2),
    );
    f.single(
        "ringpoll_alerts_firing",
        "Alerts this node sends to Alertmanager now (the targets it is the primary of that are down)",
        notify.firing() as f64,
    );
    f.counter(
        "ringpoll_round_overrun_total",
        "Probe slots missed because probes could not start in time",
        [(Labels::new(), state.overruns())],
    );
    let (up, down) = state.state_changes();
    f.counter(
        "ringpoll_state_changes_total",
        "Confirmed target state changes (rise/fall)",
        [
            (labels(&[("to", "up")]), up),
            (labels(&[("to", "down")]), down),
        ],
    );
    let unprobed: u64 = state.unprobed_now() as u64
        + members
            .iter()
            .filter(|m| !m.local && m.state.in_ring())
            .map(|m| m.unprobed)
            .sum::<u64>();
    f.single(
        "ringpoll_targets_unprobed",
        "Targets of the cluster with no result for longer than their interval + timeout + 1 s (this node's count plus what the other alive members last reported)",
        unprobed as f64,
    );

    let catalog = view.catalog();
    f.single(
        "ringpoll_targets_not_everywhere",
        "Targets some alive member lists and another does not (each is probed by the members that list it)",
        catalog.not_everywhere as f64,
    );
    f.gauge(
        "ringpoll_member_target_set_info",
        "The digest of each member's target set, as this node holds it (equal digests: equal sets)",
        catalog.sets.iter().map(|(m, (digest, _))| {
            let labels = labels(&[
                ("member", m.as_str()),
                ("digest", &format!("{digest:016x}")),
            ]);
            (labels, 1.0)
        }),
    );
    f.gauge(
        "ringpoll_member_targets",
        "Targets in each member's set, as this node holds it",
        catalog
            .sets
            .iter()
            .map(|(m, (_, n))| (labels(&[("member", m.as_str())]), *n as f64)),
    );

    let config = view.config();
    f.single(
        "ringpoll_config_last_reload_successful",
        "Whether the last config reload succeeded (0: the node runs on the config before it)",
        if config.last_reload_successful {
            1.0
        } else {
            0.0
        },
    );
    f.single(
        "ringpoll_config_last_reload_success_timestamp_seconds",
        "Unix time the config now running was loaded",
        config
            .last_success
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64()),
    );
    let by_source = |m: &std::collections::BTreeMap<String, u64>| -> Vec<(Labels, u64)> {
        m.iter()
            .map(|(s, n)| (labels(&[("source", s)]), *n))
            .collect()
    };
    f.counter(
        "ringpoll_sd_read_errors_total",
        "Reads of a target source (file, file_sd, http_sd list) that failed; its last good content was used",
        by_source(&config.source_read_errors),
    );
    f.counter(
        "ringpoll_sd_failures_total",
        "http_sd requests that failed; the last good list was used",
        by_source(&config.http_sd_failures),
    );
    f.counter(
        "ringpoll_sd_refreshes_total",
        "Re-reads of the target sources, by trigger: watch (a watched file changed) or interval (refresh_interval passed)",
        config
            .refreshes
            .iter()
            .map(|(t, n)| (labels(&[("trigger", t)]), *n)),
    );
}

/// ICMP targets' echoes, named as smokeping_prober names them: requests sent (a counter) and
/// the replies' round trips (a histogram, whose `_count` is the replies received).
fn echo_families(echoes: &[(Arc<TargetSpec>, EchoTotals)], f: &mut Families) {
    f.counter(
        "smokeping_requests_total",
        "ICMP echo requests sent to the target since this node started probing it",
        echoes.iter().map(|(t, e)| (target_labels(t), e.sent)),
    );
    f.histogram(
        "smokeping_response_duration_seconds",
        "Round trips of the target's echo replies (the count: replies received)",
        &RTT_BUCKETS,
        echoes
            .iter()
            .map(|(t, e)| (target_labels(t), e.rtt_sum, &e.buckets[..])),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_the_default_and_openmetrics_needs_a_higher_weight() {
        use Format::*;
        for (accept, want) in [
            (None, Text),
            (Some("*/*"), Text),
            (Some("text/plain"), Text),
            (Some("application/openmetrics-text"), OpenMetrics),
            // What Prometheus 2.x sends by default.
            (Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"), OpenMetrics),
            (Some("text/plain;version=0.0.4;q=0.9, application/openmetrics-text;q=0.5"), Text),
            (Some("application/openmetrics-text;q=0"), Text),
            (Some("garbage, ,;;"), Text),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }
}
