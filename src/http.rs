//! The node's HTTP endpoint: `/metrics`, `/status`, `/targets`, `/owner/{target}`, `/plan`,
//! `/-/reload`; and without a token `/-/healthy`, `/-/ready` and `/` (the status page, which
//! reads the others with the token).
//! Loopback by default; any other address needs a bearer token (checked in config).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use ringpoll_actors::model::{NodeName, TargetKey};
use ringpoll_actors::probe::health::TargetState;
use ringpoll_actors::status::answer::{NodeStatus, TargetReport, TargetsAnswer};
use ringpoll_actors::status::gather::gather;
use ringpoll_actors::status::{local, PeerQuery};
use ringpoll_actors::view::NodeView;
use tokio::sync::{mpsc, oneshot};

use crate::reload::Request;

/// How long a member may take to answer a cluster-wide query.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);

struct App {
    view: NodeView,
    token: Option<String>,
    reload: mpsc::Sender<Request>,
    metrics: Arc<crate::metrics::Exporter>,
}

/// How long a reload may take before `POST /-/reload` gives up waiting (the reload goes on).
const RELOAD_WAIT: Duration = Duration::from_secs(60);

type Shared = Arc<App>;

/// The endpoint being served: closing it stops accepting and frees the address.
#[derive(Debug)]
pub struct Serving(oneshot::Sender<()>);

impl Serving {
    /// Closes the listener at once (requests in progress finish): a node that stops frees its
    /// address for the process that replaces it before it hands its targets over.
    pub fn close(self) {
        let _ = self.0.send(());
    }
}

/// Serves the endpoint on `listener` until closed or the process ends.
pub fn spawn(
    listener: tokio::net::TcpListener,
    view: NodeView,
    token: Option<String>,
    reload: mpsc::Sender<Request>,
) -> Serving {
    let metrics = crate::metrics::Exporter::new(view.clone());
    let app = Arc::new(App {
        view,
        token,
        reload,
        metrics,
    });
    let router = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/status", get(status_handler))
        .route("/targets", get(targets_handler))
        .route("/owner/{target}", get(owner))
        .route("/plan", get(plan))
        .route("/-/reload", post(reload_handler))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            require_token,
        ))
        // Liveness and readiness for load balancers and orchestrators, as Prometheus serves
        // them, and the status page: no token (it shows nothing of the cluster by itself).
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/", get(index))
        .with_state(app);
    let (close, closed) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let serve = axum::serve(listener, router).with_graceful_shutdown(async {
            let _ = closed.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "HTTP endpoint stopped");
        }
    });
    Serving(close)
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

/// The process is up and serving.
async fn healthy() -> &'static str {
    "ringpoll is healthy.\n"
}

/// 200 once the node holds a ring and its probes run it (it has joined, or is a cluster of
/// one); 503, saying why, before.
async fn ready(State(app): State<Shared>) -> Response {
    match app.view.ring() {
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "ringpoll is not ready: no ring yet (waiting for the cluster's membership).\n",
        )
            .into_response(),
        Some(ring) if app.view.ownership().digest != ring.digest => (
            StatusCode::SERVICE_UNAVAILABLE,
            "ringpoll is not ready: its probes do not run the current ring yet.\n",
        )
            .into_response(),
        Some(_) => "ringpoll is ready.\n".into_response(),
    }
}

/// The status page: one self-contained file (HTML, CSS and script) built into the binary. It
/// holds no data: its script reads the JSON endpoints, with the token when the node has one.
const PAGE: &str = include_str!("page.html");

/// What the page may do: its own inline script and style, requests to this node, nothing else.
const PAGE_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /`: the status page (no token needed: it shows nothing without one).
async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}

/// The metrics in the format the scraper's `Accept` header prefers (see [`Format::negotiate`]).
///
/// [`Format::negotiate`]: crate::metrics::Format::negotiate
async fn metrics_handler(State(app): State<Shared>, headers: axum::http::HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = crate::metrics::Format::negotiate(accept);
    match app.metrics.render(format) {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
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
    let view = &app.view;
    let (answers, missing) = if cluster_scope(&q).unwrap_or(true) {
        gather::<NodeStatus>(view, &PeerQuery::Status, PEER_TIMEOUT).await
    } else {
        let me = local::node_status(view);
        ([(me.node.clone(), me)].into(), Vec::new())
    };
    Json(local::cluster_status(view, &answers, missing)).into_response()
}

async fn targets_handler(State(app): State<Shared>, Query(q): Query<ScopeQuery>) -> Response {
    let state = match q.state.as_deref() {
        None => None,
        Some("up") => Some(TargetState::Up),
        Some("down") => Some(TargetState::Down),
        Some(s) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("state={s}: expected up or down\n"),
            )
                .into_response()
        }
    };
    let cluster = match cluster_scope(&q) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let node = app.view.node().clone();
    if !cluster {
        let targets = local::targets(&app.view, state);
        return Json(TargetsAnswer {
            scope: "local".into(),
            node,
            count: targets.len(),
            targets,
            not_answering: None,
        })
        .into_response();
    }
    let query = PeerQuery::Targets { state };
    let (answers, missing) = gather::<Vec<TargetReport>>(&app.view, &query, PEER_TIMEOUT).await;
    let mut targets: Vec<TargetReport> = answers.into_values().flatten().collect();
    targets.sort_by(|a, b| {
        (a.result.probe.as_str(), &a.result.target)
            .cmp(&(b.result.probe.as_str(), &b.result.target))
    });
    Json(TargetsAnswer {
        scope: "cluster".into(),
        node,
        count: targets.len(),
        targets,
        not_answering: Some(missing),
    })
    .into_response()
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
    let Some(ring) = app.view.ring() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no ring yet\n").into_response();
    };
    let matches: Vec<TargetKey> = ring
        .keys
        .iter()
        .filter(|k| *k.id == *target && q.probe.as_deref().is_none_or(|p| k.probe.as_str() == p))
        .cloned()
        .collect();
    let key = match matches.as_slice() {
        [] => {
            return (
                StatusCode::NOT_FOUND,
                format!("no member lists a target {target}\n"),
            )
                .into_response()
        }
        [key] => key,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                format!("{target} is probed by several kinds; add ?probe=icmp|tcp|ssh\n"),
            )
                .into_response()
        }
    };
    let Some(mut answer) = local::owner(&app.view, key) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no ring yet\n").into_response();
    };
    // The owners have the fresh result: a node that is not one may hold a stale one of its
    // own (from before a ring change). Ask them, and take the newest an owner has; a member
    // that is no owner answers only when no owner has any.
    if !answer.owners.contains(app.view.node()) || answer.last_result.is_none() {
        let q = PeerQuery::Latest {
            probe: key.probe,
            target: key.id.to_string(),
        };
        let (answers, _) = gather::<Option<TargetReport>>(&app.view, &q, PEER_TIMEOUT).await;
        let newest = |from_owners: bool| {
            answers
                .iter()
                .filter(|(node, _)| answer.owners.contains(node) == from_owners)
                .filter_map(|(_, r)| r.clone())
                .max_by(|a, b| a.result.ts.cmp(&b.result.ts))
        };
        answer.last_result = newest(true).or_else(|| newest(false));
    }
    Json(answer).into_response()
}

/// `POST /-/reload`: re-reads the config and every target source; 200 with what changed, or
/// 422 with why the new config was refused (the node keeps the config it runs).
async fn reload_handler(State(app): State<Shared>) -> Response {
    let (tx, rx) = oneshot::channel();
    if app.reload.send(Request::Reload(Some(tx))).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the node is stopping\n").into_response();
    }
    match tokio::time::timeout(RELOAD_WAIT, rx).await {
        Ok(Ok(Ok(report))) => Json(report).into_response(),
        Ok(Ok(Err(error))) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({ "error": error })),
        )
            .into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the reload did not answer in time; see the node's log\n",
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
    match local::plan(
        &app.view,
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

#[cfg(test)]
mod tests {
    /// WCAG 2 relative luminance of `#rrggbb`.
    fn luminance(hex: &str) -> f64 {
        let c = |i: usize| {
            let v = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
            if v <= 0.03928 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * c(1) + 0.7152 * c(3) + 0.0722 * c(5)
    }

    #[test]
    fn the_page_text_colours_pass_wcag_aa_on_its_backgrounds() {
        let vars: std::collections::BTreeMap<&str, &str> = super::PAGE
            .split("--")
            .skip(1)
            .filter_map(|v| {
                let (name, rest) = v.split_once(':')?;
                let hex = rest.trim().get(..7)?;
                hex.starts_with('#').then_some((name.trim(), hex))
            })
            .collect();
        for bg in ["bg", "head"] {
            for fg in ["fg", "muted", "up", "down", "warn", "accent"] {
                let (a, b) = (luminance(vars[fg]), luminance(vars[bg]));
                let ratio = (a.max(b) + 0.05) / (a.min(b) + 0.05);
                assert!(ratio >= 4.5, "--{fg} on --{bg}: {ratio:.2}");
            }
        }
    }
}
