//! Which alerts go to Alertmanager, and when. Pure: time is an argument, the posts are return
//! values.
//!
//! Alertmanager's client contract: a firing alert is sent again every 30 s to 3 min, with an
//! `endsAt` in the future; it resolves when that passes, or at once when it is sent with
//! `endsAt` now. So:
//! - a target this node is the primary of and that is confirmed down is sent at once, then every
//!   `resend`, each time with `endsAt` three resends ahead (so two lost posts, or a primary's
//!   crash and its detection, do not resolve it);
//! - when such a target is confirmed up, it is sent once more with `endsAt` now (again at the
//!   next tick while that post fails);
//! - a target that stops being this node's to send (its primary is another node now, or it was
//!   removed) is dropped without a post: its new primary sends it, or it ends at its `endsAt`.
//!
//! The labels are the target's and its group's, never the node's, so whichever node sends an
//! alert, Alertmanager sees one alert.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use crate::model::TargetKey;

/// `endsAt` is this many resends ahead.
const AHEAD: u32 = 3;

/// A target confirmed down that this node sends the alert of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Down {
    /// The target.
    pub key: TargetKey,
    /// The alert's labels.
    pub labels: BTreeMap<String, String>,
    /// When it went down, if this node knows.
    pub since: Option<SystemTime>,
}

/// One alert to post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Post {
    /// The target.
    pub key: TargetKey,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// `startsAt`.
    pub starts_at: SystemTime,
    /// `endsAt`: ahead while firing, now when resolved.
    pub ends_at: SystemTime,
    /// True for the post that resolves it.
    pub resolved: bool,
}

#[derive(Clone, Debug)]
struct Sent {
    labels: BTreeMap<String, String>,
    starts_at: SystemTime,
    last: Option<Instant>,
}

/// The alerts this node sends.
#[derive(Debug)]
pub struct AlertBook {
    resend: Duration,
    sent: HashMap<TargetKey, Sent>,
}

impl AlertBook {
    /// Alerts re-sent every `resend`.
    pub fn new(resend: Duration) -> Self {
        AlertBook {
            resend,
            sent: HashMap::new(),
        }
    }

    /// The posts due now. `down`: the targets this node sends that are confirmed down;
    /// `is_up(key)`: true when the target is confirmed up here and this node still sends it.
    pub fn due(
        &mut self,
        down: Vec<Down>,
        is_up: impl Fn(&TargetKey) -> bool,
        now: Instant,
        wall: SystemTime,
    ) -> Vec<Post> {
        let mut posts = Vec::new();
        let firing: std::collections::HashSet<TargetKey> =
            down.iter().map(|d| d.key.clone()).collect();
        for d in down {
            let s = self.sent.entry(d.key.clone()).or_insert_with(|| Sent {
                labels: d.labels.clone(),
                starts_at: d.since.unwrap_or(wall),
                last: None,
            });
            s.labels = d.labels;
            if s.last
                .is_none_or(|l| now.saturating_duration_since(l) >= self.resend)
            {
                posts.push(Post {
                    key: d.key,
                    labels: s.labels.clone(),
                    starts_at: s.starts_at,
                    ends_at: wall + self.resend * AHEAD,
                    resolved: false,
                });
            }
        }
        let gone: Vec<TargetKey> = self
            .sent
            .keys()
            .filter(|k| !firing.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            if is_up(&key) {
                let s = &self.sent[&key];
                posts.push(Post {
                    key,
                    labels: s.labels.clone(),
                    starts_at: s.starts_at,
                    ends_at: wall,
                    resolved: true,
                });
            } else {
                self.sent.remove(&key);
            }
        }
        posts
    }

    /// `posts` reached Alertmanager: firing ones wait a resend, resolved ones are done.
    pub fn delivered(&mut self, posts: &[Post], now: Instant) {
        for p in posts {
            if p.resolved {
                self.sent.remove(&p.key);
            } else if let Some(s) = self.sent.get_mut(&p.key) {
                s.last = Some(now);
            }
        }
    }

    /// Alerts firing (sent or to send).
    pub fn firing(&self) -> usize {
        self.sent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProbeKind;

    const R: Duration = Duration::from_secs(60);

    fn key(id: &str) -> TargetKey {
        TargetKey {
            probe: ProbeKind::Icmp,
            id: id.into(),
        }
    }

    fn down(id: &str) -> Down {
        Down {
            key: key(id),
            labels: [("target".to_string(), id.to_string())].into(),
            since: None,
        }
    }

    #[test]
    fn a_down_target_is_sent_at_once_then_every_resend_and_resolved_once_up() {
        let mut book = AlertBook::new(R);
        let (t0, w0) = (Instant::now(), SystemTime::now());
        let posts = book.due(vec![down("a")], |_| false, t0, w0);
        assert_eq!(posts.len(), 1);
        assert_eq!((posts[0].starts_at, posts[0].ends_at), (w0, w0 + 3 * R));
        assert!(!posts[0].resolved);
        book.delivered(&posts, t0);
        // Not again before a resend has passed.
        let t1 = t0 + R / 2;
        assert!(book.due(vec![down("a")], |_| false, t1, w0).is_empty());
        let t2 = t0 + R;
        let again = book.due(vec![down("a")], |_| false, t2, w0 + R);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].starts_at, w0, "the start stays");
        book.delivered(&again, t2);
        assert_eq!(book.firing(), 1);
        // Up: one post ending now, repeated while it fails, then done.
        let w3 = w0 + R + R / 2;
        let resolve = book.due(vec![], |_| true, t2 + R / 2, w3);
        assert_eq!(resolve.len(), 1);
        assert!(resolve[0].resolved && resolve[0].ends_at == w3);
        let retry = book.due(vec![], |_| true, t2 + R / 2, w3);
        assert_eq!(retry.len(), 1, "not delivered: sent again");
        book.delivered(&retry, t2 + R / 2);
        assert!(book.due(vec![], |_| true, t2 + R, w3).is_empty());
        assert_eq!(book.firing(), 0);
    }

    #[test]
    fn an_undelivered_alert_is_sent_again_at_the_next_look() {
        let mut book = AlertBook::new(R);
        let (t0, w0) = (Instant::now(), SystemTime::now());
        assert_eq!(book.due(vec![down("a")], |_| false, t0, w0).len(), 1);
        // Alertmanager did not take it: the next look sends it again.
        assert_eq!(book.due(vec![down("a")], |_| false, t0, w0).len(), 1);
    }

    #[test]
    fn a_target_this_node_no_longer_sends_is_dropped_without_a_post() {
        let mut book = AlertBook::new(R);
        let (t0, w0) = (Instant::now(), SystemTime::now());
        let posts = book.due(vec![down("a"), down("b")], |_| false, t0, w0);
        book.delivered(&posts, t0);
        // "a" moved to another primary (not down here, not up here): no post, forgotten.
        let posts = book.due(vec![down("b")], |_| false, t0 + R, w0 + R);
        assert_eq!(posts.len(), 1);
        assert_eq!(posts[0].key, key("b"));
        assert_eq!(book.firing(), 1);
    }

    #[test]
    fn the_start_is_when_the_target_went_down_when_known() {
        let mut book = AlertBook::new(R);
        let (t0, w0) = (Instant::now(), SystemTime::now());
        let since = w0 - Duration::from_secs(5);
        let d = Down {
            since: Some(since),
            ..down("a")
        };
        assert_eq!(book.due(vec![d], |_| false, t0, w0)[0].starts_at, since);
    }
}
