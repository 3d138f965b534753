//! The bookkeeping of gapless playback, in pure Rust so it is unit-tested natively: chunks that finish decoding
//! out of order are held until their turn ([`InOrder`]), each is placed right where the previous one ends
//! ([`Timeline`]), and the timeline says which sequence number has been heard to its end (what `interrupt`
//! reports as `played_through`).

use std::collections::BTreeMap;

/// Releases items strictly in `sequence` order, starting at 0, whatever order they arrive in.
#[derive(Debug)]
pub struct InOrder<T> {
    next: u32,
    waiting: BTreeMap<u32, T>,
}

impl<T> Default for InOrder<T> {
    fn default() -> Self {
        Self { next: 0, waiting: BTreeMap::new() }
    }
}

impl<T> InOrder<T> {
    /// Adds an item; returns every item that can now go, in order. Duplicates and items already released are
    /// dropped.
    pub fn insert(&mut self, sequence: u32, item: T) -> Vec<(u32, T)> {
        if sequence >= self.next {
            self.waiting.entry(sequence).or_insert(item);
        }
        let mut ready = Vec::new();
        while let Some(item) = self.waiting.remove(&self.next) {
            ready.push((self.next, item));
            self.next += 1;
        }
        ready
    }

    /// Whether something is held back waiting for an earlier sequence number.
    pub fn is_holding(&self) -> bool {
        !self.waiting.is_empty()
    }
}

/// Where each chunk sits on the AudioContext's clock (seconds).
#[derive(Debug, Default, Clone)]
pub struct Timeline {
    /// (sequence, start, end), in the order they were placed.
    placed: Vec<(u32, f64, f64)>,
}

impl Timeline {
    /// Places a chunk of `duration` seconds right after the previous one, or `lead` seconds from `now` if the
    /// previous one has already finished (a gap in arrival cannot be helped, but must not be made worse).
    /// Returns when it should start.
    pub fn place(&mut self, sequence: u32, duration: f64, now: f64, lead: f64) -> f64 {
        let earliest = now + lead;
        let start = self.placed.last().map_or(earliest, |&(_, _, end)| end.max(earliest));
        self.placed.push((sequence, start, start + duration.max(0.0)));
        start
    }

    /// The last sequence number heard to its very end at `now`, if any.
    pub fn played_through(&self, now: f64) -> Option<u32> {
        self.placed.iter().take_while(|&&(_, _, end)| end <= now).last().map(|&(sequence, _, _)| sequence)
    }

    /// When everything placed so far has finished.
    pub fn end(&self) -> Option<f64> {
        self.placed.last().map(|&(_, _, end)| end)
    }

    pub fn is_empty(&self) -> bool {
        self.placed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_released_in_sequence_order() {
        let mut order = InOrder::default();
        assert!(order.insert(1, "b").is_empty(), "1 waits for 0");
        assert!(order.is_holding());
        assert_eq!(order.insert(0, "a"), [(0, "a"), (1, "b")]);
        assert_eq!(order.insert(2, "c"), [(2, "c")]);
        assert!(order.insert(1, "again").is_empty(), "a repeat is dropped");
        assert!(!order.is_holding());
    }

    #[test]
    fn chunks_follow_each_other_without_gaps() {
        let mut timeline = Timeline::default();
        assert_eq!(timeline.place(0, 1.5, 10.0, 0.05), 10.05);
        assert_eq!(timeline.place(1, 2.0, 10.5, 0.05), 11.55, "starts exactly where 0 ends");
        assert_eq!(timeline.end(), Some(13.55));
    }

    #[test]
    fn a_chunk_arriving_after_the_last_one_ended_starts_soon_not_in_the_past() {
        let mut timeline = Timeline::default();
        timeline.place(0, 1.0, 0.0, 0.05);
        assert_eq!(timeline.place(1, 1.0, 5.0, 0.05), 5.05);
    }

    #[test]
    fn played_through_is_the_last_chunk_heard_to_its_end() {
        let mut timeline = Timeline::default();
        timeline.place(0, 1.0, 0.0, 0.0);
        timeline.place(1, 1.0, 0.0, 0.0);
        timeline.place(2, 1.0, 0.0, 0.0);
        assert_eq!(timeline.played_through(0.5), None, "stopped inside the first chunk");
        assert_eq!(timeline.played_through(1.0), Some(0));
        assert_eq!(timeline.played_through(2.7), Some(1));
        assert_eq!(timeline.played_through(9.0), Some(2));
        assert_eq!(Timeline::default().played_through(9.0), None);
    }
}
