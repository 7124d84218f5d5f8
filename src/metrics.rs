//! Prometheus metrics, encoded at scrape time from what the node knows (prometheus-client's
//! text encoder; nothing hand-built). Per target: blackbox_exporter's vocabulary
//! (`probe_success`, `probe_duration_seconds`) plus `probe_last_result_timestamp_seconds`, for the
//! targets this node probes now, labelled `target`, `probe` and the group's labels. Per node:
//! membership, ownership, restarts, drops, overruns, state changes, and the cluster's coverage.

use std::time::UNIX_EPOCH;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use ringpoll_actors::membership::MemberState;
use ringpoll_actors::model::ProbeOutcome;
use ringpoll_actors::supervisor::Role;
use ringpoll_actors::view::NodeView;

/// Collects the node's metrics on every scrape.
#[derive(Debug)]
pub struct NodeCollector {
    view: NodeView,
}

/// A registry holding the node's collector.
pub fn registry(view: NodeView) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(NodeCollector { view }));
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
        let state = self.view.state();
        let (mut success, mut duration, mut last) = (Vec::new(), Vec::new(), Vec::new());
        for (r, _) in state.running_latest() {
            let mut labels: Labels = vec![
                ("target".into(), r.target.id.to_string()),
                ("probe".into(), r.target.kind().as_str().into()),
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

        let members = self.view.members();
        let rows: Vec<(Labels, f64)> = MemberState::ALL
            .iter()
            .map(|s| {
                let n = members.iter().filter(|m| m.state == *s).count();
                (
                    vec![("state".to_string(), s.as_str().to_string())],
                    n as f64,
                )
            })
            .collect();
        gauge(
            &mut enc,
            "ringpoll_members",
            "Cluster members by state, as this node sees them",
            &rows,
        )?;

        let view = self.view.ring();
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

        let mut restarts: Vec<(Labels, u64)> = Role::START_ORDER
            .iter()
            .map(|r| r.name())
            .chain(["probe"])
            .map(|r| (vec![("role".to_string(), r.to_string())], 0))
            .collect();
        for (role, n) in state.restarts() {
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
            &[(vec![], state.results_dropped())],
        )?;
        gauge(
            &mut enc,
            "ringpoll_results_buffered",
            "Results waiting in memory for a slow or failing sink (its fullest lane)",
            &[(vec![], state.results_buffered() as f64)],
        )?;
        counter(
            &mut enc,
            "ringpoll_round_overrun",
            "Probe slots missed because probes could not start in time",
            &[(vec![], state.overruns())],
        )?;
        let (up, down) = state.state_changes();
        counter(
            &mut enc,
            "ringpoll_state_changes",
            "Confirmed target state changes (rise/fall)",
            &[
                (vec![("to".into(), "up".into())], up),
                (vec![("to".into(), "down".into())], down),
            ],
        )?;
        let unprobed: u64 = state.unprobed_now() as u64
            + members
                .iter()
                .filter(|m| !m.local && m.state.in_ring())
                .map(|m| m.unprobed)
                .sum::<u64>();
        gauge(
            &mut enc,
            "ringpoll_targets_unprobed",
            "Targets of the cluster with no result for longer than their interval + timeout + 1 s (this node's count plus what the other alive members last reported)",
            &[(vec![], unprobed as f64)],
        )?;

        let catalog = self.view.catalog();
        gauge(
            &mut enc,
            "ringpoll_targets_not_everywhere",
            "Targets some alive member lists and another does not (each is probed by the members that list it)",
            &[(vec![], catalog.not_everywhere as f64)],
        )?;
        let sets: Vec<(Labels, f64)> = catalog
            .sets
            .iter()
            .map(|(m, (digest, _))| {
                let labels = vec![
                    ("member".to_string(), m.to_string()),
                    ("digest".to_string(), format!("{digest:016x}")),
                ];
                (labels, 1.0)
            })
            .collect();
        gauge(
            &mut enc,
            "ringpoll_member_target_set_info",
            "The digest of each member's target set, as this node holds it (equal digests: equal sets)",
            &sets,
        )?;
        let counts: Vec<(Labels, f64)> = catalog
            .sets
            .iter()
            .map(|(m, (_, n))| (vec![("member".to_string(), m.to_string())], *n as f64))
            .collect();
        gauge(
            &mut enc,
            "ringpoll_member_targets",
            "Targets in each member's set, as this node holds it",
            &counts,
        )?;

        let config = self.view.config();
        gauge(
            &mut enc,
            "ringpoll_config_last_reload_successful",
            "Whether the last config reload succeeded (0: the node runs on the config before it)",
            &[(
                vec![],
                if config.last_reload_successful {
                    1.0
                } else {
                    0.0
                },
            )],
        )?;
        let last = config
            .last_success
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        gauge(
            &mut enc,
            "ringpoll_config_last_reload_success_timestamp_seconds",
            "Unix time the config now running was loaded",
            &[(vec![], last)],
        )?;
        let by_source = |m: &std::collections::BTreeMap<String, u64>| -> Vec<(Labels, u64)> {
            m.iter()
                .map(|(s, n)| (vec![("source".to_string(), s.clone())], *n))
                .collect()
        };
        counter(
            &mut enc,
            "ringpoll_sd_read_errors",
            "Reads of a target source (file, file_sd, http_sd list) that failed; its last good content was used",
            &by_source(&config.source_read_errors),
        )?;
        counter(
            &mut enc,
            "ringpoll_sd_failures",
            "http_sd requests that failed; the last good list was used",
            &by_source(&config.http_sd_failures),
        )?;
        let by_trigger: Vec<(Labels, u64)> = config
            .refreshes
            .iter()
            .map(|(t, n)| (vec![("trigger".to_string(), t.clone())], *n))
            .collect();
        counter(
            &mut enc,
            "ringpoll_sd_refreshes",
            "Re-reads of the target sources, by trigger: watch (a watched file changed) or interval (refresh_interval passed)",
            &by_trigger,
        )?;
        Ok(())
    }
}
