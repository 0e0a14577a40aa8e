//! A sliding window of recent values that answers one fixed percentile in
//! O(log n) per change, for `adaptive_timeout`.
//!
//! The window is a ring (for eviction in arrival order) plus the same values
//! split into two ordered multisets: `low` holds the `k` smallest, `high` the
//! rest, so the `k`-th smallest is `low`'s largest key. Every push inserts
//! one value, evicts at most one, and moves at most a few values across the
//! split to restore `low`'s size, each step a `BTreeMap` operation.
//!
//! ## Why not sort
//!
//! Selecting from a copy of the window costs O(n) per call: with 10,000
//! samples a run was nine times slower, and 16 such layers ran at 12k
//! events/s. The percentile is fixed per layer and the rank moves by at most
//! one per push, so two multisets give exactly the element a sort would put
//! at that index (duplicates included) without the copy.

use std::collections::{BTreeMap, VecDeque};

/// The chapter's index of `percentile` among `count` sorted values:
/// `ceil(count × percentile / 100) − 1` in double arithmetic, as in
/// JavaScript, kept within `[0, count − 1]`. `count` must be positive.
pub fn percentile_index(count: usize, percentile: f64) -> usize {
    debug_assert!(count > 0);
    let rank = (count as f64 * percentile / 100.0).ceil() as usize;
    rank.clamp(1, count) - 1
}

/// The last `capacity` values and their `percentile` (as
/// `percentile_index`), in O(log capacity) per push and O(log capacity) per
/// query. Memory is O(capacity).
#[derive(Clone, Debug)]
pub struct RankWindow {
    capacity: usize,
    percentile: f64,
    /// The values, oldest first.
    ring: VecDeque<u64>,
    /// The `low_len` smallest values, with multiplicities.
    low: BTreeMap<u64, u32>,
    low_len: usize,
    /// The other values; every key here is >= every key in `low`.
    high: BTreeMap<u64, u32>,
    /// Values moved between `low` and `high` so far, for the cost bound.
    moves: u64,
}

/// Adds one `value` to `set`.
fn add(set: &mut BTreeMap<u64, u32>, value: u64) {
    *set.entry(value).or_insert(0) += 1;
}

/// Removes one `value` from `set`; returns whether it was there.
fn take(set: &mut BTreeMap<u64, u32>, value: u64) -> bool {
    match set.get_mut(&value) {
        None => false,
        Some(count) if *count > 1 => {
            *count -= 1;
            true
        }
        Some(_) => {
            set.remove(&value);
            true
        }
    }
}

impl RankWindow {
    /// An empty window of at most `capacity` (at least 1) values.
    pub fn new(capacity: usize, percentile: f64) -> Self {
        let capacity = capacity.max(1);
        RankWindow {
            capacity,
            percentile,
            // Grown as values arrive, so a large window costs memory only once it
            // fills (the memory estimate counts it full).
            ring: VecDeque::new(),
            low: BTreeMap::new(),
            low_len: 0,
            high: BTreeMap::new(),
            moves: 0,
        }
    }

    /// How many values are kept now.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// The values kept, oldest first.
    pub fn values(&self) -> impl Iterator<Item = u64> + '_ {
        self.ring.iter().copied()
    }

    /// The percentile of the kept values: the element sorting would put at
    /// `percentile_index(len, percentile)`, or `None` while empty.
    pub fn value(&self) -> Option<u64> {
        let value = self.low.last_key_value().map(|(value, _)| *value);
        debug_assert_eq!(value.is_some(), !self.ring.is_empty());
        value
    }

    /// How many values have crossed between the two halves so far: at most
    /// three per push.
    pub fn moves(&self) -> u64 {
        self.moves
    }

    /// Keeps `value`, evicting the oldest value if the window is full.
    pub fn push(&mut self, value: u64) {
        self.ring.push_back(value);
        match self.low.last_key_value() {
            Some((&largest, _)) if value <= largest => {
                add(&mut self.low, value);
                self.low_len += 1;
            }
            _ => add(&mut self.high, value),
        }
        if self.ring.len() > self.capacity {
            let oldest = self.ring.pop_front().expect("the window is not empty");
            // An equal value is interchangeable wherever it sits.
            if take(&mut self.low, oldest) {
                self.low_len -= 1;
            } else {
                let found = take(&mut self.high, oldest);
                debug_assert!(found, "every kept value is in one half");
            }
        }
        self.rebalance();
        debug_assert!(self.ring.len() <= self.capacity);
    }

    /// Moves values across the split until `low` holds exactly the
    /// `percentile_index + 1` smallest.
    fn rebalance(&mut self) {
        let wanted = if self.ring.is_empty() {
            0
        } else {
            percentile_index(self.ring.len(), self.percentile) + 1
        };
        while self.low_len > wanted {
            let (&largest, _) = self.low.last_key_value().expect("low is not empty");
            take(&mut self.low, largest);
            self.low_len -= 1;
            add(&mut self.high, largest);
            self.moves += 1;
        }
        while self.low_len < wanted {
            let (&smallest, _) = self.high.first_key_value().expect("high is not empty");
            take(&mut self.high, smallest);
            add(&mut self.low, smallest);
            self.low_len += 1;
            self.moves += 1;
        }
        debug_assert_eq!(self.low_len, wanted);
        debug_assert!(
            match (self.low.last_key_value(), self.high.first_key_value()) {
                (Some((low, _)), Some((high, _))) => low <= high,
                _ => true,
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The naive definition: sort a copy and index it.
    fn sorted_percentile(values: &[u64], percentile: f64) -> Option<u64> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        Some(sorted[percentile_index(sorted.len(), percentile)])
    }

    // The p50 of 1..=4 is the second smallest; the p100 the largest.
    #[test]
    fn the_index_is_the_chapters() {
        assert_eq!(percentile_index(4, 50.0), 1);
        assert_eq!(percentile_index(4, 100.0), 3);
        assert_eq!(percentile_index(100, 99.0), 98);
        assert_eq!(percentile_index(1, 0.001), 0);
    }

    // Only the last `capacity` values count, duplicates included.
    #[test]
    fn the_window_evicts_the_oldest_value() {
        let mut window = RankWindow::new(3, 50.0);
        assert_eq!(window.value(), None);
        for value in [10, 20, 30, 40, 40, 5] {
            window.push(value);
        }
        assert_eq!(window.values().collect::<Vec<_>>(), vec![40, 40, 5]);
        assert_eq!(window.value(), Some(40));
    }

    // A full window of 10,000 costs a bounded number of moves per push,
    // not a pass over the window.
    #[test]
    fn each_push_moves_at_most_three_values() {
        let mut window = RankWindow::new(10_000, 99.0);
        let pushes = 100_000u64;
        for index in 0..pushes {
            window.push((index * 7_919) % 10_007);
        }
        assert_eq!(window.len(), 10_000);
        assert!(window.moves() <= 3 * pushes, "{} moves", window.moves());
    }

    proptest! {
        // The window gives exactly the sort-based percentile after every
        // push, with duplicates and eviction.
        #[test]
        fn matches_the_sorted_percentile(
            values in proptest::collection::vec(0u64..50, 1..400),
            capacity in 1usize..40,
            percentile in prop_oneof![Just(100.0), Just(99.0), Just(50.0), 0.001f64..100.0],
        ) {
            let mut window = RankWindow::new(capacity, percentile);
            for (index, &value) in values.iter().enumerate() {
                window.push(value);
                let start = (index + 1).saturating_sub(capacity);
                let kept = &values[start..=index];
                prop_assert_eq!(window.values().collect::<Vec<_>>(), kept.to_vec());
                prop_assert_eq!(window.value(), sorted_percentile(kept, percentile));
            }
            prop_assert!(window.moves() <= 3 * values.len() as u64);
        }
    }
}
