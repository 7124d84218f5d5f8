//! Prometheus metrics, encoded at scrape time from what the node knows (prometheus-client's
//! text encoder; nothing hand-built). Per target: blackbox_exporter's vocabulary
//! (`probe_success`, `probe_duration_seconds`) plus `probe_last_result_timestamp_seconds`, for the
//! targets this node probes now, labelled `target`, `probe` and the group's labels. Per node:
//! membership, ownership, restarts, drops, overruns, state changes, and the cluster's coverage.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use ringpoll_actors::model::ProbeOutcome;
use ringpoll_actors::probe::ProbeContext;

/// Collects the node's metrics on every scrape.
#[derive(Debug)]
pub struct NodeCollector {
    ctx: Arc<ProbeContext>,
}

/// A registry holding the node's collector.
pub fn registry(ctx: Arc<ProbeContext>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(NodeCollector { ctx }));
    r
}

type Labels = Vec<(String, String)>;

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, f64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        if labels.is_empty() {
            m.encode_gauge(v)?;
        } else {
            m.encode_family(labels)?.encode_gauge(v)?;
        }
    }
    Ok(())
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, u64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        if labels.is_empty() {
            m.encode_counter::<NoLabelSet, _, u64>(v, None)?;
        } else {
            m.encode_family(labels)?
                .encode_counter::<NoLabelSet, _, u64>(v, None)?;
        }
    }
    Ok(())
}

impl prometheus_client::collector::Collector for NodeCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let refs = &self.ctx.refs;
        let (mut success, mut duration, mut last) = (Vec::new(), Vec::new(), Vec::new());
        for (r, _) in refs.state.running_latest() {
            let mut labels: Labels = vec![
                ("target".into(), r.target.id.to_string()),
                ("probe".into(), r.target.probe.as_str().into()),
            ];
            labels.extend(r.target.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            let (ok, secs) = match &r.outcome {
                ProbeOutcome::Up { rtt } => (1.0, rtt.as_secs_f64()),
                ProbeOutcome::Down { .. } => (0.0, 0.0),
            };
            let ts =
                r.ts.duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
            success.push((labels.clone(), ok));
            duration.push((labels.clone(), secs));
            last.push((labels, ts));
        }
        gauge(
            &mut enc,
            "probe_success",
            "Whether the last probe of the target succeeded",
            &success,
        )?;
        gauge(&mut enc, "probe_duration_seconds", "Round trip (ICMP), connect (TCP) or login and command (SSH) time of the last successful probe", &duration)?;
        gauge(
            &mut enc,
            "probe_last_result_timestamp_seconds",
            "Unix time of the target's last result",
            &last,
        )?;

        let members = refs
            .members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut by_state: std::collections::BTreeMap<&str, f64> =
            ["alive", "suspect", "dead", "left"]
                .iter()
                .map(|s| (*s, 0.0))
                .collect();
        for m in &members {
            *by_state.entry(m.state).or_default() += 1.0;
        }
        let rows: Vec<(Labels, f64)> = by_state
            .iter()
            .map(|(s, n)| (vec![("state".to_string(), s.to_string())], *n))
            .collect();
        gauge(
            &mut enc,
            "ringpoll_members",
            "Cluster members by state, as this node sees them",
            &rows,
        )?;

        let view = refs
            .ring_view
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        gauge(
            &mut enc,
            "ringpoll_targets_owned",
            "Targets this node owns",
            &[(vec![], view.as_ref().map_or(0.0, |v| v.owned as f64))],
        )?;
        gauge(
            &mut enc,
            "ringpoll_ring_epoch",
            "This node's ownership epoch",
            &[(vec![], view.as_ref().map_or(0.0, |v| v.epoch as f64))],
        )?;

        let mut restarts: Vec<(Labels, u64)> = [
            "result_sink",
            "probe_supervisor",
            "ring_owner",
            "membership",
            "probe",
        ]
        .iter()
        .map(|r| (vec![("role".to_string(), r.to_string())], 0))
        .collect();
        for (role, n) in refs.state.restarts() {
            if let Some(row) = restarts.iter_mut().find(|(l, _)| l[0].1 == role) {
                row.1 = n;
            }
        }
        counter(
            &mut enc,
            "ringpoll_actor_restarts",
            "Actor restarts by role",
            &restarts,
        )?;
        counter(
            &mut enc,
            "ringpoll_results_dropped",
            "Results dropped: a sink's buffer was full, or no sink was running (restarting)",
            &[(vec![], refs.state.results_dropped())],
        )?;
        gauge(
            &mut enc,
            "ringpoll_results_buffered",
            "Results waiting in memory for a slow or failing sink (its fullest lane)",
            &[(vec![], refs.state.results_buffered() as f64)],
        )?;
        counter(
            &mut enc,
            "ringpoll_round_overrun",
            "Probe slots missed because probes could not start in time",
            &[(vec![], self.ctx.overruns.load(Ordering::Relaxed))],
        )?;
        let (up, down) = refs.state.state_changes();
        counter(
            &mut enc,
            "ringpoll_state_changes",
            "Confirmed target state changes (rise/fall)",
            &[
                (vec![("to".into(), "up".into())], up),
                (vec![("to".into(), "down".into())], down),
            ],
        )?;
        let unprobed: u64 = refs.state.unprobed_now() as u64
            + members
                .iter()
                .filter(|m| !m.local && (m.state == "alive" || m.state == "suspect"))
                .map(|m| m.unprobed)
                .sum::<u64>();
        gauge(
            &mut enc,
            "ringpoll_targets_unprobed",
            "Targets of the cluster with no result for longer than their interval + timeout + 1 s (this node's count plus what the other alive members last reported)",
            &[(vec![], unprobed as f64)],
        )?;
        Ok(())
    }
}
