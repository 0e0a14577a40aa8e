//! The event queue: a priority queue ordered by `(time, insertion sequence)`.
//!
//! Two events at the same virtual time pop in the order they were pushed
//! (FIFO), so a run never depends on hash order or heap tie-breaking.
//! Events can be cancelled by id: a cancelled event is removed from the queue
//! at once and can never fire. That is how a response cancels its pending
//! timeout.
//!
//! ## Deadlines fire last within an instant
//!
//! Policy timers (a timeout's deadline, a bulkhead's queue wait, a hedge's
//! delay) are pushed with `push_late`: they take sequence numbers from a
//! second range above every ordinary one, so at one virtual instant they pop
//! after every ordinary event of that instant, including ordinary events
//! pushed later at that same instant (a reply over a zero-latency network).
//! An answer that arrives exactly at a deadline therefore wins the race, as
//! in the chapter's `Promise.race([fn(), timer])`, whose work promise exists
//! before its timer. Among themselves late events stay FIFO. It costs
//! nothing: the key is still `(time, sequence)`.

use super::clock::SimTime;
use priority_queue::PriorityQueue;
use rustc_hash::FxBuildHasher;
use std::borrow::Borrow;
use std::cmp::Reverse;
use std::hash::{Hash, Hasher};
use std::num::NonZeroU64;

/// Names one scheduled event, for cancelling it. Ids are never reused.
/// Non-zero (the sequence number plus one), so `Option<EventId>` is 8 bytes:
/// the model keeps two per call in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(NonZeroU64);

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

/// The first sequence number of late events (`EventQueue::push_late`):
/// ordinary sequence numbers stay below it (2^63 pushes would take
/// centuries).
const LATE_SEQ_BASE: u64 = 1 << 63;

/// A min-queue of events keyed by `(time, sequence)`.
pub struct EventQueue<E> {
    heap: PriorityQueue<Entry<E>, Reverse<(SimTime, u64)>, FxBuildHasher>,
    seq_next: u64,
    /// The next sequence number of a late event, from `LATE_SEQ_BASE` up.
    seq_late_next: u64,
    /// The time of the last popped event: nothing may be scheduled before it.
    now: SimTime,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue at time zero.
    pub fn new() -> Self {
        EventQueue {
            heap: PriorityQueue::with_default_hasher(),
            seq_next: 0,
            seq_late_next: LATE_SEQ_BASE,
            now: SimTime::ZERO,
        }
    }

    /// Schedules `event` at `at`, which must not be in the past.
    pub fn push(&mut self, at: SimTime, event: E) -> EventId {
        debug_assert!(
            at >= self.now,
            "event scheduled in the past: {at:?} < {:?}",
            self.now
        );
        let seq = self.seq_next;
        self.seq_next += 1;
        debug_assert!(self.seq_next < LATE_SEQ_BASE);
        self.heap.push(Entry { seq, event }, Reverse((at, seq)));
        EventId(NonZeroU64::MIN.saturating_add(seq))
    }

    /// Schedules `event` at `at` to pop after every ordinary event at `at`,
    /// even those pushed after it (see the module doc); FIFO among late
    /// events.
    pub fn push_late(&mut self, at: SimTime, event: E) -> EventId {
        debug_assert!(
            at >= self.now,
            "event scheduled in the past: {at:?} < {:?}",
            self.now
        );
        let seq = self.seq_late_next;
        self.seq_late_next += 1;
        debug_assert!(seq >= LATE_SEQ_BASE);
        self.heap.push(Entry { seq, event }, Reverse((at, seq)));
        EventId(NonZeroU64::MIN.saturating_add(seq))
    }

    /// Removes a pending event so that it never fires. Returns the event, or
    /// `None` if it already fired or was already cancelled.
    pub fn cancel(&mut self, id: EventId) -> Option<E> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn equal_times_pop_in_insertion_order() {
        let mut queue = EventQueue::new();
        queue.push(SimTime(5), "b1");
        queue.push(SimTime(1), "a");
        queue.push(SimTime(5), "b2");
        queue.push(SimTime(5), "b3");
        let order: Vec<_> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(
            order,
            vec![
                (SimTime(1), "a"),
                (SimTime(5), "b1"),
                (SimTime(5), "b2"),
                (SimTime(5), "b3")
            ]
        );
    }

    #[test]
    fn cancelled_event_never_fires() {
        let mut queue = EventQueue::new();
        let timeout = queue.push(SimTime(100), "timeout");
        queue.push(SimTime(50), "response");
        assert_eq!(queue.pop(), Some((SimTime(50), "response")));
        assert_eq!(queue.cancel(timeout), Some("timeout"));
        assert_eq!(queue.pop(), None);
        // Cancelling twice, or after firing, is a no-op.
        assert_eq!(queue.cancel(timeout), None);
    }

    #[test]
    fn cancelling_a_fired_event_returns_none() {
        let mut queue = EventQueue::new();
        let id = queue.push(SimTime(1), 1);
        assert_eq!(queue.pop(), Some((SimTime(1), 1)));
        assert_eq!(queue.cancel(id), None);
        assert!(queue.is_empty());
    }

    // A deadline pushed first still pops after an answer pushed later at the
    // same instant, and after ordinary events pushed while that instant is
    // being processed; it still pops before anything later.
    #[test]
    fn late_events_pop_after_every_ordinary_event_of_their_instant() {
        let mut queue = EventQueue::new();
        queue.push_late(SimTime(10), "deadline");
        queue.push_late(SimTime(10), "deadline 2");
        queue.push(SimTime(11), "after");
        queue.push(SimTime(10), "answer");
        assert_eq!(queue.pop(), Some((SimTime(10), "answer")));
        // Pushed while time 10 is being processed (a zero-latency reply).
        queue.push(SimTime(10), "zero-latency reply");
        assert_eq!(queue.pop(), Some((SimTime(10), "zero-latency reply")));
        assert_eq!(queue.pop(), Some((SimTime(10), "deadline")));
        assert_eq!(queue.pop(), Some((SimTime(10), "deadline 2")));
        assert_eq!(queue.pop(), Some((SimTime(11), "after")));
        let late = queue.push_late(SimTime(20), "cancelled deadline");
        assert_eq!(queue.cancel(late), Some("cancelled deadline"));
        assert!(queue.is_empty());
    }

    proptest! {
        // Whatever is pushed and cancelled, the rest pops sorted by (time, push order).
        #[test]
        fn pops_sorted_by_time_then_sequence(
            times in proptest::collection::vec(0u64..20, 1..200),
            cancel_mask in proptest::collection::vec(any::<bool>(), 200),
        ) {
            let mut queue = EventQueue::new();
            let ids: Vec<_> = times.iter().enumerate()
                .map(|(index, &at)| queue.push(SimTime(at), index))
                .collect();
            let mut expected: Vec<(u64, usize)> = Vec::new();
            for (index, id) in ids.iter().enumerate() {
                if cancel_mask[index] {
                    prop_assert_eq!(queue.cancel(*id), Some(index));
                } else {
                    expected.push((times[index], index));
                }
            }
            expected.sort();
            let popped: Vec<(u64, usize)> = std::iter::from_fn(|| queue.pop())
                .map(|(at, index)| (at.0, index))
                .collect();
            prop_assert_eq!(popped, expected);
        }
    }
}
