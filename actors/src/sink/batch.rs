//! A bounded FIFO buffer that drops its oldest entries when full, and counts them.

use std::collections::VecDeque;

/// Bounded buffer with drop-oldest overflow.
#[derive(Debug)]
pub struct ResultBuffer<T> {
    cap: usize,
    items: VecDeque<T>,
    dropped_total: u64,
    dropped_unreported: u64,
}

impl<T> ResultBuffer<T> {
    /// An empty buffer holding at most `cap` items (at least 1).
    pub fn new(cap: usize) -> Self {
        ResultBuffer {
            cap: cap.max(1),
            items: VecDeque::new(),
            dropped_total: 0,
            dropped_unreported: 0,
        }
    }

    /// Appends `item`, dropping the oldest item when full.
    pub fn push(&mut self, item: T) {
        if self.items.len() == self.cap {
            self.items.pop_front();
            self.count_drops(1);
        }
        self.items.push_back(item);
    }

    /// Puts a batch that could not be written back at the front, in order. Whatever no longer
    /// fits is dropped from the oldest end.
    pub fn requeue_front(&mut self, batch: Vec<T>) {
        for item in batch.into_iter().rev() {
            self.items.push_front(item);
        }
        let excess = self.items.len().saturating_sub(self.cap);
        if excess > 0 {
            self.items.drain(..excess);
            self.count_drops(excess as u64);
        }
    }

    /// Takes up to `max` of the oldest items.
    pub fn take(&mut self, max: usize) -> Vec<T> {
        let n = max.min(self.items.len());
        self.items.drain(..n).collect()
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when the next push drops the oldest item.
    pub fn is_full(&self) -> bool {
        self.items.len() >= self.cap
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// All items dropped so far.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    /// Items dropped since the last call (for rate-limited reporting).
    pub fn take_dropped_report(&mut self) -> u64 {
        std::mem::take(&mut self.dropped_unreported)
    }

    fn count_drops(&mut self, n: u64) {
        self.dropped_total += n;
        self.dropped_unreported += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn drops_oldest_when_full() {
        let mut b = ResultBuffer::new(3);
        for i in 0..5 {
            b.push(i);
        }
        assert_eq!(b.take(10), vec![2, 3, 4]);
        assert_eq!(b.dropped_total(), 2);
        assert_eq!(b.take_dropped_report(), 2);
        assert_eq!(b.take_dropped_report(), 0);
    }

    #[test]
    fn requeued_batches_keep_order_and_the_bound() {
        let mut b = ResultBuffer::new(4);
        b.push(10);
        b.push(11);
        b.requeue_front(vec![7, 8, 9]);
        assert_eq!(b.len(), 4);
        assert_eq!(b.dropped_total(), 1);
        assert_eq!(b.take(2), vec![8, 9]);
        assert_eq!(b.take(5), vec![10, 11]);
        assert!(b.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Never more than `cap` held; nothing vanishes uncounted; order is kept.
        #[test]
        fn bounded_and_accounted(cap in 1usize..50, ops in proptest::collection::vec(0u8..3, 0..300)) {
            let mut b = ResultBuffer::new(cap);
            let (mut pushed, mut taken) = (0u64, 0u64);
            let mut next = 0u64;
            let mut last_taken: Option<u64> = None;
            for op in ops {
                match op {
                    0 | 1 => { b.push(next); next += 1; pushed += 1; }
                    _ => {
                        let got = b.take(7);
                        for &g in &got {
                            prop_assert!(last_taken.is_none_or(|l| g > l));
                            last_taken = Some(g);
                        }
                        taken += got.len() as u64;
                    }
                }
                prop_assert!(b.len() <= cap);
            }
            prop_assert_eq!(pushed, taken + b.len() as u64 + b.dropped_total());
        }
    }
}
