//! The indexed event queue this crate used before `engine::queue`: the
//! priority-queue crate's heap with a hash index from sequence number to heap
//! position, so that a cancelled event leaves the queue at once.
//!
//! It orders exactly as `EventQueue` does, `(time, sequence)` with the same
//! `push_late` rule, and stays as the reference for a differential property
//! test of `EventQueue` and as the "same structure as before" line of the
//! benchmarks (`benches/engine.rs`). Nothing in the simulation uses it: the
//! lazy heap of `EventQueue` does the same work with about half the
//! instructions, because it neither hashes nor keeps heap positions in an
//! index (measured in docs/performance.md, first round).

use super::clock::SimTime;
use priority_queue::PriorityQueue;
use rustc_hash::FxBuildHasher;
use std::borrow::Borrow;
use std::cmp::Reverse;
use std::hash::{Hash, Hasher};
use std::num::NonZeroU64;

/// Names one event scheduled in an `IndexedQueue`: its sequence number plus
/// one. Ids are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexedEventId(NonZeroU64);

/// A scheduled event; identity (hash and equality) is its sequence number only.
struct Entry<E> {
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}

impl<E> Eq for Entry<E> {}

impl<E> Hash for Entry<E> {
    // Must hash exactly as `u64` does, because lookups borrow an `Entry` as
    // its `u64` sequence number.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.seq.hash(state);
    }
}

impl<E> Borrow<u64> for Entry<E> {
    fn borrow(&self) -> &u64 {
        &self.seq
    }
}

/// The first sequence number of late events (`IndexedQueue::push_late`):
/// ordinary sequence numbers stay below it (2^63 pushes would take
/// centuries).
const LATE_SEQ_BASE: u64 = 1 << 63;

/// A min-queue of events keyed by `(time, sequence)`, with a hash index for
/// cancellation.
pub struct IndexedQueue<E> {
    heap: PriorityQueue<Entry<E>, Reverse<(SimTime, u64)>, FxBuildHasher>,
    seq_next: u64,
    /// The next sequence number of a late event, from `LATE_SEQ_BASE` up.
    seq_late_next: u64,
    /// The time of the last popped event: nothing may be scheduled before it.
    now: SimTime,
}

impl<E> Default for IndexedQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> IndexedQueue<E> {
    /// An empty queue at time zero.
    pub fn new() -> Self {
        IndexedQueue {
            heap: PriorityQueue::with_default_hasher(),
            seq_next: 0,
            seq_late_next: LATE_SEQ_BASE,
            now: SimTime::ZERO,
        }
    }

    /// Schedules `event` at `at`, which must not be in the past.
    pub fn push(&mut self, at: SimTime, event: E) -> IndexedEventId {
        debug_assert!(
            at >= self.now,
            "event scheduled in the past: {at:?} < {:?}",
            self.now
        );
        let seq = self.seq_next;
        self.seq_next += 1;
        debug_assert!(self.seq_next < LATE_SEQ_BASE);
        self.heap.push(Entry { seq, event }, Reverse((at, seq)));
        IndexedEventId(NonZeroU64::MIN.saturating_add(seq))
    }

    /// `push` for an event that will not be cancelled (`EventQueue::schedule`'s
    /// counterpart; here it costs the same as `push`).
    pub fn schedule(&mut self, at: SimTime, event: E) {
        self.push(at, event);
    }

    /// Schedules `event` at `at` to pop after every ordinary event at `at`,
    /// even those pushed after it (see the module doc); FIFO among late
    /// events.
    pub fn push_late(&mut self, at: SimTime, event: E) -> IndexedEventId {
        debug_assert!(
            at >= self.now,
            "event scheduled in the past: {at:?} < {:?}",
            self.now
        );
        let seq = self.seq_late_next;
        self.seq_late_next += 1;
        debug_assert!(seq >= LATE_SEQ_BASE);
        self.heap.push(Entry { seq, event }, Reverse((at, seq)));
        IndexedEventId(NonZeroU64::MIN.saturating_add(seq))
    }

    /// Removes a pending event so that it never fires. Returns the event, or
    /// `None` if it already fired or was already cancelled.
    pub fn cancel(&mut self, id: IndexedEventId) -> Option<E> {
        self.heap
            .remove(&(id.0.get() - 1))
            .map(|(entry, _)| entry.event)
    }

    /// Removes and returns the earliest event, FIFO among equal times.
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        let (entry, Reverse((at, seq))) = self.heap.pop()?;
        debug_assert_eq!(entry.seq, seq);
        debug_assert!(at >= self.now, "event popped from the past");
        self.now = at;
        Some((at, entry.event))
    }

    /// The time of the earliest pending event.
    pub fn peek_time(&self) -> Option<SimTime> {
        self.heap.peek().map(|(_, Reverse((at, _)))| *at)
    }

    /// How many events are pending.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no event is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The time of the last popped event.
    pub fn now(&self) -> SimTime {
        self.now
    }
}

// Tested against `EventQueue` by the differential property test in
// `engine::queue`.
