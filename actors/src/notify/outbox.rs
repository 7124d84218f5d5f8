//! The webhook's queue: bounded, in order, each post retried with backoff before it is dropped.
//! Pure: time is an argument.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Attempts per post before it is dropped.
pub const ATTEMPTS: u32 = 4;
/// Wait before the first retry; doubled for each next one.
const BACKOFF: Duration = Duration::from_secs(1);

/// Posts waiting for the webhook.
#[derive(Debug)]
pub struct Outbox {
    cap: usize,
    queue: VecDeque<Vec<u8>>,
    /// Failed attempts of the post at the front, and when it may be tried again.
    failed: u32,
    retry_at: Option<Instant>,
    dropped: u64,
}

/// What happened to a post that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// It will be tried again.
    Retry,
    /// It failed [`ATTEMPTS`] times and was dropped.
    Dropped,
}

impl Outbox {
    /// A queue of at most `cap` posts.
    pub fn new(cap: usize) -> Self {
        Outbox {
            cap: cap.max(1),
            queue: VecDeque::new(),
            failed: 0,
            retry_at: None,
            dropped: 0,
        }
    }

    /// Queues `body`; when the queue is full the oldest post waiting (not the one being
    /// tried) is dropped. Returns true when one was.
    pub fn push(&mut self, body: Vec<u8>) -> bool {
        let full = self.queue.len() >= self.cap;
        if full {
            let at = usize::from(self.queue.len() > 1);
            self.queue.remove(at);
            if at == 0 {
                self.failed = 0;
                self.retry_at = None;
            }
            self.dropped += 1;
        }
        self.queue.push_back(body);
        full
    }

    /// The post to try now, if any.
    pub fn next(&self, now: Instant) -> Option<&[u8]> {
        if self.retry_at.is_some_and(|t| now < t) {
            return None;
        }
        self.queue.front().map(Vec::as_slice)
    }

    /// The front post was delivered.
    pub fn delivered(&mut self) {
        self.queue.pop_front();
        self.failed = 0;
        self.retry_at = None;
    }

    /// The front post failed.
    pub fn failed(&mut self, now: Instant) -> Failure {
        self.failed += 1;
        if self.failed >= ATTEMPTS {
            self.queue.pop_front();
            self.failed = 0;
            self.retry_at = None;
            self.dropped += 1;
            return Failure::Dropped;
        }
        self.retry_at = Some(now + BACKOFF * 2u32.pow(self.failed - 1));
        Failure::Retry
    }

    /// Posts waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Posts dropped so far (queue full, or out of attempts).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_go_in_order_and_a_failing_one_is_retried_with_backoff_then_dropped() {
        let mut o = Outbox::new(10);
        let t0 = Instant::now();
        o.push(b"1".to_vec());
        o.push(b"2".to_vec());
        assert_eq!(o.next(t0), Some(&b"1"[..]));
        assert_eq!(o.failed(t0), Failure::Retry);
        assert_eq!(o.next(t0), None, "backing off");
        assert_eq!(o.next(t0 + BACKOFF), Some(&b"1"[..]));
        assert_eq!(o.failed(t0 + BACKOFF), Failure::Retry);
        assert_eq!(o.next(t0 + BACKOFF * 2), None, "the backoff doubles");
        assert_eq!(o.failed(t0 + BACKOFF * 3), Failure::Retry);
        assert_eq!(o.failed(t0 + BACKOFF * 7), Failure::Dropped);
        assert_eq!(
            (o.next(t0 + BACKOFF * 7), o.dropped()),
            (Some(&b"2"[..]), 1)
        );
        o.delivered();
        assert!(o.is_empty());
    }

    #[test]
    fn a_full_queue_drops_its_oldest_waiting_post_not_the_one_being_tried() {
        let mut o = Outbox::new(2);
        let t0 = Instant::now();
        assert!(!o.push(b"1".to_vec()));
        assert!(!o.push(b"2".to_vec()));
        assert!(o.push(b"3".to_vec()));
        assert_eq!((o.len(), o.dropped()), (2, 1));
        assert_eq!(o.next(t0), Some(&b"1"[..]));
        o.delivered();
        assert_eq!(o.next(t0), Some(&b"3"[..]));
    }
}
