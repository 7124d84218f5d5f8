//! The notify actor: sends this node's alerts to Alertmanager and its state events to
//! webhooks. A thin shell around [`AlertBook`] and [`Outbox`]: every second it works out the
//! alerts due from the node's published states; each event the sink accepted is queued for the
//! webhooks. Posts run off the actor (blocking HTTP on tokio's blocking pool), one at a time
//! per notifier, each under a timeout, so a slow or dead receiver never holds up anything
//! else: probing does not wait for notifications at all.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::alerts::{AlertBook, Down, Post};
use super::counters::{Kind, NotifyCounters};
use super::msg::NotifyMsg;
use super::outbox::{Failure, Outbox};
use super::spec::NotifySpec;
use crate::clock;
use crate::model::{StateEvent, TargetKey, TargetSpec};
use crate::view::NodeView;

/// How often alerts are looked at.
const TICK: Duration = Duration::from_secs(1);
/// Longest a post may take.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// The notify actor.
#[derive(Debug)]
pub struct NotifyActor;

/// What it starts with.
#[derive(Debug)]
pub struct NotifyArgs {
    /// The notifiers (`[[notify]]`).
    pub specs: Vec<NotifySpec>,
    /// Where the confirmed states are read.
    pub view: NodeView,
    /// True when targets have several owners: alerts follow the cluster's verdicts, sent by
    /// each target's primary.
    pub several_owners: bool,
    /// Counted sends, failures and drops.
    pub counters: Arc<NotifyCounters>,
}

#[derive(Debug)]
enum Notifier {
    Alertmanager {
        urls: Arc<[String]>,
        token: Option<Arc<str>>,
        book: AlertBook,
        busy: bool,
        failing: bool,
    },
    Webhook {
        url: Arc<str>,
        token: Option<Arc<str>>,
        outbox: Outbox,
        busy: bool,
        failing: bool,
    },
}

/// Its state.
#[derive(Debug)]
pub struct NotifyState {
    notifiers: Vec<Notifier>,
    view: NodeView,
    several_owners: bool,
    counters: Arc<NotifyCounters>,
    /// A shutdown waiting for the webhooks' queues to empty, and until when.
    draining: Option<(RpcReplyPort<usize>, std::time::Instant)>,
}

impl Actor for NotifyActor {
    type Msg = NotifyMsg;
    type State = NotifyState;
    type Arguments = NotifyArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<NotifyMsg>,
        args: NotifyArgs,
    ) -> Result<NotifyState, ActorProcessingErr> {
        myself.send_interval(TICK, || NotifyMsg::Tick);
        let notifiers = args
            .specs
            .into_iter()
            .map(|s| match s {
                NotifySpec::Alertmanager {
                    urls,
                    token,
                    resend,
                } => Notifier::Alertmanager {
                    urls: urls.into(),
                    token: token.map(Into::into),
                    book: AlertBook::new(resend),
                    busy: false,
                    failing: false,
                },
                NotifySpec::Webhook { url, token, queue } => Notifier::Webhook {
                    url: url.into(),
                    token: token.map(Into::into),
                    outbox: Outbox::new(queue),
                    busy: false,
                    failing: false,
                },
            })
            .collect();
        Ok(NotifyState {
            notifiers,
            view: args.view,
            several_owners: args.several_owners,
            counters: args.counters,
            draining: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<NotifyMsg>,
        msg: NotifyMsg,
        state: &mut NotifyState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NotifyMsg::Event(e) => {
                state.event(&e);
                for i in 0..state.notifiers.len() {
                    state.pump(&myself, i, false);
                }
            }
            NotifyMsg::Tick => {
                for i in 0..state.notifiers.len() {
                    state.pump(&myself, i, true);
                }
                state.counters.set_firing(state.firing());
                state.drained();
            }
            NotifyMsg::Drain(within, reply) => {
                state.draining = Some((reply, clock::now() + within));
                for i in 0..state.notifiers.len() {
                    state.pump(&myself, i, false);
                }
                state.drained();
            }
            NotifyMsg::Posted {
                index,
                result,
                posts,
            } => {
                state.posted(index, result, &posts);
                state.pump(&myself, index, false);
                state.drained();
            }
        }
        Ok(())
    }
}

impl NotifyState {
    /// A state event the sink accepted: queued for every webhook.
    fn event(&mut self, e: &StateEvent) {
        let body = serde_json::to_vec(&e.line()).unwrap_or_default();
        for n in &mut self.notifiers {
            if let Notifier::Webhook { url, outbox, .. } = n {
                if outbox.push(body.clone()) {
                    self.counters.dropped(Kind::Webhook);
                    tracing::warn!(url = %url, queued = outbox.len(), "webhook queue full: the oldest event waiting was dropped");
                }
            }
        }
    }

    /// Replies to a shutdown waiting for the webhooks once their queues are empty, or once its
    /// time is up (with how many events were left).
    fn drained(&mut self) {
        let Some((_, until)) = &self.draining else {
            return;
        };
        let left: usize = self
            .notifiers
            .iter()
            .map(|n| match n {
                Notifier::Webhook { outbox, .. } => outbox.len(),
                Notifier::Alertmanager { .. } => 0,
            })
            .sum();
        if left == 0 || clock::now() >= *until {
            if let Some((reply, _)) = self.draining.take() {
                if left > 0 {
                    tracing::warn!(left, "webhook events not posted before the node stopped");
                }
                let _ = reply.send(left);
            }
        }
    }

    fn firing(&self) -> usize {
        self.notifiers
            .iter()
            .map(|n| match n {
                Notifier::Alertmanager { book, .. } => book.firing(),
                Notifier::Webhook { .. } => 0,
            })
            .max()
            .unwrap_or(0)
    }

    /// The targets this node sends the alerts of that are confirmed down, and those confirmed
    /// up.
    fn down(&self) -> (Vec<Down>, HashSet<TargetKey>) {
        let (down, up) = self.view.state().senders_view(self.several_owners);
        let down = down
            .into_iter()
            .map(|t| {
                let key = t.key();
                // When it went down: the node's last state event of it (written before the
                // sink passed the event on).
                Down {
                    since: self.view.state().changed_at(&key),
                    labels: alert_labels(&t),
                    key,
                }
            })
            .collect();
        (down, up)
    }

    /// Starts the next post of notifier `i`, if one is due and none is in flight. Alerts are
    /// worked out only when `look` (once a second): a storm of events only feeds webhooks.
    fn pump(&mut self, myself: &ActorRef<NotifyMsg>, i: usize, look: bool) {
        let now = clock::now();
        let (down, up) = match &self.notifiers[i] {
            Notifier::Alertmanager { busy: false, .. } if look => self.down(),
            Notifier::Alertmanager { .. } => return,
            Notifier::Webhook { .. } => Default::default(),
        };
        let me = myself.clone();
        match &mut self.notifiers[i] {
            Notifier::Alertmanager {
                urls,
                token,
                book,
                busy,
                ..
            } => {
                if *busy {
                    return;
                }
                let posts = book.due(down, |k| up.contains(k), now, SystemTime::now());
                if posts.is_empty() {
                    return;
                }
                *busy = true;
                let body = alerts_body(&posts);
                let (urls, token) = (urls.clone(), token.clone());
                tokio::task::spawn_blocking(move || {
                    // Every Alertmanager of an HA pair gets every alert; one taking it is
                    // enough.
                    let mut result = Err(String::new());
                    for url in urls.iter() {
                        let endpoint = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
                        match post(&endpoint, token.as_deref(), &body) {
                            Ok(()) => result = Ok(()),
                            Err(e) if result.is_err() => result = Err(format!("{endpoint}: {e}")),
                            Err(_) => {}
                        }
                    }
                    let _ = me.cast(NotifyMsg::Posted {
                        index: i,
                        result,
                        posts,
                    });
                });
            }
            Notifier::Webhook {
                url,
                token,
                outbox,
                busy,
                ..
            } => {
                if *busy {
                    return;
                }
                let Some(body) = outbox.next(now).map(<[u8]>::to_vec) else {
                    return;
                };
                *busy = true;
                let (url, token) = (url.clone(), token.clone());
                tokio::task::spawn_blocking(move || {
                    let result =
                        post(&url, token.as_deref(), &body).map_err(|e| format!("{url}: {e}"));
                    let _ = me.cast(NotifyMsg::Posted {
                        index: i,
                        result,
                        posts: Vec::new(),
                    });
                });
            }
        }
    }

    fn posted(&mut self, i: usize, result: Result<(), String>, posts: &[Post]) {
        let now = clock::now();
        let counters = self.counters.clone();
        match &mut self.notifiers[i] {
            Notifier::Alertmanager {
                book,
                busy,
                failing,
                ..
            } => {
                *busy = false;
                match result {
                    Ok(()) => {
                        book.delivered(posts, now);
                        counters.sent(Kind::Alertmanager, posts.len() as u64);
                        if std::mem::take(failing) {
                            tracing::info!("alertmanager takes alerts again");
                        }
                    }
                    Err(error) => {
                        counters.failed(Kind::Alertmanager);
                        if !std::mem::replace(failing, true) {
                            tracing::warn!(
                                error,
                                "alertmanager post failed; retrying every second"
                            );
                        }
                    }
                }
            }
            Notifier::Webhook {
                url,
                outbox,
                busy,
                failing,
                ..
            } => {
                *busy = false;
                match result {
                    Ok(()) => {
                        outbox.delivered();
                        counters.sent(Kind::Webhook, 1);
                        if std::mem::take(failing) {
                            tracing::info!(url = %url, "webhook takes events again");
                        }
                    }
                    Err(error) => {
                        counters.failed(Kind::Webhook);
                        if !std::mem::replace(failing, true) {
                            tracing::warn!(error, "webhook post failed; retrying with backoff");
                        }
                        if outbox.failed(now) == Failure::Dropped {
                            counters.dropped(Kind::Webhook);
                            tracing::warn!(url = %url, attempts = super::outbox::ATTEMPTS, "webhook event dropped after its last attempt");
                        }
                    }
                }
            }
        }
    }
}

/// An alert's labels: `alertname`, the target, its probe and its group's labels; never the
/// node's, so one alert is one alert whichever node sends it.
fn alert_labels(t: &TargetSpec) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = t.labels.as_ref().clone();
    labels.insert("alertname".into(), "TargetDown".into());
    labels.insert("target".into(), t.id.to_string());
    labels.insert("probe".into(), t.kind().as_str().into());
    labels
}

/// Alertmanager's `POST /api/v2/alerts` body.
fn alerts_body(posts: &[Post]) -> Vec<u8> {
    let alerts: Vec<serde_json::Value> = posts
        .iter()
        .map(|p| {
            let target = p.labels.get("target").map_or("", String::as_str);
            let probe = p.labels.get("probe").map_or("", String::as_str);
            serde_json::json!({
                "labels": p.labels,
                "annotations": {
                    "summary": format!("{target} ({probe}) is down"),
                },
                "startsAt": humantime::format_rfc3339_millis(p.starts_at).to_string(),
                "endsAt": humantime::format_rfc3339_millis(p.ends_at).to_string(),
            })
        })
        .collect();
    serde_json::to_vec(&alerts).unwrap_or_default()
}

/// One JSON POST, bounded by [`POST_TIMEOUT`]; a status other than 2xx is an error.
fn post(url: &str, token: Option<&str>, body: &[u8]) -> Result<(), String> {
    let mut req = ureq::post(url)
        .config()
        .timeout_global(Some(POST_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .header("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    match req.send(body) {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("HTTP {}", resp.status())),
        Err(e) => Err(e.to_string()),
    }
}
