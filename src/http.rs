//! The node's HTTP endpoint: `/metrics`, `/status`, `/targets`, `/owner/{target}`, `/plan`.
//! Loopback by default; any other address needs a bearer token (checked in config).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use ringpoll_actors::model::{NodeName, TargetKey, TargetSpec};
use ringpoll_actors::probe::ProbeContext;
use ringpoll_actors::status::{self, PeerQuery};

/// How long a member may take to answer a cluster-wide query.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);

struct App {
    ctx: Arc<ProbeContext>,
    node: NodeName,
    token: Option<String>,
    targets: Arc<[Arc<TargetSpec>]>,
    registry: prometheus_client::registry::Registry,
}

type Shared = Arc<App>;

/// Serves the endpoint on `listener` until the process ends.
pub fn spawn(
    listener: tokio::net::TcpListener,
    ctx: Arc<ProbeContext>,
    node: NodeName,
    token: Option<String>,
    targets: Arc<[Arc<TargetSpec>]>,
) {
    let registry = crate::metrics::registry(ctx.clone());
    let app = Arc::new(App {
        ctx,
        node,
        token,
        targets,
        registry,
    });
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status_handler))
        .route("/targets", get(targets_handler))
        .route("/owner/{target}", get(owner))
        .route("/plan", get(plan))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            require_token,
        ))
        .with_state(app);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "HTTP endpoint stopped");
        }
    });
}

/// Every route needs `Authorization: Bearer TOKEN` when the node has a token.
async fn require_token(
    State(app): State<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(token) = &app.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "missing or wrong bearer token\n",
            )
                .into_response();
        }
    }
    next.run(req).await
}

async fn metrics(State(app): State<Shared>) -> Response {
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &app.registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct ScopeQuery {
    scope: Option<String>,
    state: Option<String>,
}

#[allow(clippy::result_large_err)]
fn cluster_scope(q: &ScopeQuery) -> Result<bool, Response> {
    match q.scope.as_deref() {
        None | Some("local") => Ok(false),
        Some("cluster") => Ok(true),
        Some(other) => Err((
            StatusCode::BAD_REQUEST,
            format!("scope={other}: expected local or cluster\n"),
        )
            .into_response()),
    }
}

async fn status_handler(State(app): State<Shared>, Query(q): Query<ScopeQuery>) -> Response {
    let refs = &app.ctx.refs;
    let local = status::local_status(refs, &app.node);
    let view = refs
        .ring_view
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let loads: BTreeMap<String, usize> = match &view {
        Some(v) => {
            let loads = v.placement.loads(v.ring.members().len());
            v.ring
                .members()
                .iter()
                .zip(loads)
                .map(|((n, _), l)| (n.to_string(), l))
                .collect()
        }
        None => BTreeMap::new(),
    };
    let total: usize = loads.values().sum::<usize>().max(1);
    let (per_node, missing) = if cluster_scope(&q).unwrap_or(true) {
        status::gather(refs, &app.node, &PeerQuery::Status, PEER_TIMEOUT).await
    } else {
        (
            BTreeMap::from([(app.node.to_string(), local.clone())]),
            Vec::new(),
        )
    };
    let members: Vec<Value> = refs
        .members
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|m| {
            let s = per_node.get(&m.name);
            json!({
                "name": m.name, "state": m.state, "address": m.address, "weight": m.weight, "local": m.local,
                "targets": loads.get(&m.name).copied().unwrap_or(0),
                "share": loads.get(&m.name).copied().unwrap_or(0) as f64 / total as f64,
                "up": s.and_then(|s| s.get("up")).cloned(),
                "down": s.and_then(|s| s.get("down")).cloned(),
                "restarts": s.and_then(|s| s.get("restarts")).map(|r| r.as_object().map_or(0, |o| o.values().filter_map(|v| v.as_u64()).sum::<u64>())),
                "unprobed": s.and_then(|s| s.get("unprobed")).cloned(),
                "results_dropped": s.and_then(|s| s.get("results_dropped")).cloned(),
            })
        })
        .collect();
    Json(json!({
        "node": app.node.as_str(),
        "epoch": local["epoch"],
        "ring_digest": local["ring_digest"],
        "replicas": view.as_ref().map(|v| v.ring.replicas()),
        "targets": { "total": app.targets.len(), "owned": local["owned"], "kept": local["kept"], "up": local["up"], "down": local["down"] },
        "results": { "buffered": local["results_buffered"], "dropped": local["results_dropped"] },
        "members": members,
        "not_answering": missing,
    }))
    .into_response()
}

async fn targets_handler(State(app): State<Shared>, Query(q): Query<ScopeQuery>) -> Response {
    if let Some(s) = q.state.as_deref() {
        if s != "up" && s != "down" {
            return (
                StatusCode::BAD_REQUEST,
                format!("state={s}: expected up or down\n"),
            )
                .into_response();
        }
    }
    let cluster = match cluster_scope(&q) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !cluster {
        let list = status::local_targets(&app.ctx.refs, q.state.as_deref());
        return Json(json!({ "scope": "local", "node": app.node.as_str(), "count": list.len(), "targets": list })).into_response();
    }
    let query = PeerQuery::Targets {
        state: q.state.clone(),
    };
    let (answers, missing) = status::gather(&app.ctx.refs, &app.node, &query, PEER_TIMEOUT).await;
    let mut all: Vec<Value> = answers
        .into_values()
        .filter_map(|v| v.as_array().cloned())
        .flatten()
        .collect();
    all.sort_by(|a, b| {
        (a["probe"].as_str(), a["target"].as_str())
            .cmp(&(b["probe"].as_str(), b["target"].as_str()))
    });
    Json(json!({ "scope": "cluster", "node": app.node.as_str(), "count": all.len(), "targets": all, "not_answering": missing })).into_response()
}

#[derive(Debug, Deserialize)]
struct OwnerQuery {
    probe: Option<String>,
}

async fn owner(
    State(app): State<Shared>,
    Path(target): Path<String>,
    Query(q): Query<OwnerQuery>,
) -> Response {
    let matches: Vec<TargetKey> = app
        .targets
        .iter()
        .filter(|t| *t.id == *target && q.probe.as_deref().is_none_or(|p| t.probe.as_str() == p))
        .map(|t| t.key())
        .collect();
    match matches.as_slice() {
        [] => (
            StatusCode::NOT_FOUND,
            format!("no configured target {target}\n"),
        )
            .into_response(),
        [key] => match status::owner(&app.ctx.refs, key) {
            Some(mut v) => {
                if v["last_result"].is_null() {
                    // Ask the members: the owner has it.
                    let q = PeerQuery::Latest {
                        probe: key.probe.as_str().into(),
                        target: key.id.to_string(),
                    };
                    let (answers, _) =
                        status::gather(&app.ctx.refs, &app.node, &q, PEER_TIMEOUT).await;
                    v["last_result"] = answers
                        .into_values()
                        .filter(|a| !a.is_null())
                        .max_by(|a, b| a["ts"].as_str().cmp(&b["ts"].as_str()))
                        .unwrap_or(Value::Null);
                }
                Json(v).into_response()
            }
            None => (StatusCode::SERVICE_UNAVAILABLE, "no ring yet\n").into_response(),
        },
        _ => (
            StatusCode::BAD_REQUEST,
            format!("{target} is probed by several kinds; add ?probe=icmp|tcp|ssh\n"),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct PlanQuery {
    leaves: Option<String>,
    joins: Option<String>,
}

async fn plan(State(app): State<Shared>, Query(q): Query<PlanQuery>) -> Response {
    let joins = match q.joins.as_deref().map(parse_join) {
        Some(Err(e)) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        Some(Ok(j)) => Some(j),
        None => None,
    };
    match status::plan(
        &app.ctx.refs,
        q.leaves.as_deref(),
        joins.as_ref().map(|(n, w)| (n.as_str(), *w)),
    ) {
        Ok(v) => Json(v).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

/// `NAME[:WEIGHT]`.
pub fn parse_join(s: &str) -> Result<(String, u32), String> {
    let (name, weight) = match s.split_once(':') {
        Some((n, w)) => (
            n,
            w.parse::<u32>()
                .map_err(|_| format!("{s}: expected NAME[:WEIGHT] with a whole-number weight"))?,
        ),
        None => (s, 1),
    };
    NodeName::new(name)?;
    Ok((name.to_string(), weight.clamp(1, 1000)))
}
