//! The event queue: a priority queue ordered by `(time, insertion sequence)`.
//!
//! Two events at the same virtual time pop in the order they were pushed
//! (FIFO), so a run never depends on hash order or heap tie-breaking.
//! Events can be cancelled by id: a cancelled event can never fire. That is
//! how a response cancels its pending timeout.
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
//!
//! ## Why a lazy heap and not an indexed one
//!
//! Most events a model schedules are timeouts, and most timeouts are
//! cancelled because the answer came first. An indexed heap (the
//! priority-queue crate, kept in `engine::indexed_queue` as the reference)
//! removes a cancelled event at once, but pays for it on every push and pop:
//! it hashes the id and keeps every entry's heap position up to date. Here
//! the heap holds only small keys, `(time, sequence, slot, generation)`, 24
//! bytes; the events themselves sit still in a dense slab of slots, one per
//! pending event, reused through a free list. Cancelling bumps the slot's
//! generation and frees it; the key left in the heap no longer matches its
//! slot and is dropped when it reaches the top. Nothing is hashed, no event
//! value moves while the heap reorders, and there is no allocation per
//! event once the slab and heap have grown to the run's peak.
//!
//! ## Lanes for deadlines
//!
//! A deadline is pushed at `now + timeout` with a timeout that is usually the
//! same for every call of a layer, so deadlines mostly arrive in time order.
//! A late event whose key is above the last key of one of a few FIFO lanes is
//! appended there instead of entering the heap: a lane is sorted by
//! construction, and popping or dropping its front costs O(1). The heap then
//! holds only the ordinary events (network, service times, arrivals), a
//! fraction of the keys, because the cancelled deadlines that outnumber them
//! wait in the lanes. `pop` takes the least of the heap's top and the lanes'
//! fronts, so the order is exactly `(time, sequence)` whichever structure an
//! event went to. Deadlines out of order (adaptive timeouts, several
//! different timeouts beyond the number of lanes) go to the heap.
//!
//! Memory stays bounded by the pending events, not by the cancelled ones:
//! when stale keys outnumber live ones (and there are more than a few
//! thousand), the heap and the lanes are rebuilt without them, which costs
//! O(n) once per n cancellations.
//!
//! The top of the heap and the front of every lane are always live keys
//! (stale keys are dropped as they surface after every pop and cancel), so
//! `peek_time` needs only `&self`.
//! Ids are never reused: a slot whose generation reaches `u32::MAX` is
//! retired instead of freed.

use super::clock::SimTime;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::num::NonZeroU64;

/// Names one scheduled event, for cancelling it: its slot in the low 32 bits
/// and the slot's generation (at least 1) in the high 32 bits. Ids are never
/// reused. Non-zero, so `Option<EventId>` is 8 bytes: the model keeps two
/// per call in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(NonZeroU64);

impl EventId {
    fn new(slot: u32, generation: u32) -> EventId {
        let bits = (u64::from(generation) << 32) | u64::from(slot);
        EventId(NonZeroU64::new(bits).expect("generations start at 1"))
    }

    fn slot(self) -> usize {
        (self.0.get() & u64::from(u32::MAX)) as usize
    }

    fn generation(self) -> u32 {
        (self.0.get() >> 32) as u32
    }
}

/// The first sequence number of late events (`EventQueue::push_late`):
/// ordinary sequence numbers stay below it (2^63 pushes would take
/// centuries).
const LATE_SEQ_BASE: u64 = 1 << 63;

/// Stale keys are swept out of the heap only past this many, so that small
/// queues never pay for a rebuild.
const STALE_SWEEP_MIN: usize = 4096;

/// FIFO lanes for deadlines that arrive in time order (see the module doc):
/// one per distinct timeout a model typically has in play at once.
const LANES: usize = 4;

/// One heap or lane entry: the event's order and where its value is.
#[derive(Clone, Copy, Debug)]
struct Key {
    at: SimTime,
    seq: u64,
    slot: u32,
    generation: u32,
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}

impl Eq for Key {}

impl Key {
    /// The pop order: earlier time first, then lower sequence number, as
    /// one integer, which compares in two instructions where a tuple
    /// compares in a branch per field.
    fn order(&self) -> u128 {
        (u128::from(self.at.0) << 64) | u128::from(self.seq)
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    // `BinaryHeap` is a max-heap: the earliest `(time, sequence)` must be the
    // greatest. Sequence numbers are unique, so this is a total order.
    fn cmp(&self, other: &Self) -> Ordering {
        other.order().cmp(&self.order())
    }
}

/// Where one pending event waits. `generation` changes whenever the event
/// leaves (pops or is cancelled), so keys and ids that name an earlier
/// occupant no longer match.
struct Slot<E> {
    generation: u32,
    event: Option<E>,
}

/// A min-queue of events keyed by `(time, sequence)`.
pub struct EventQueue<E> {
    heap: BinaryHeap<Key>,
    /// Late events in time order, each lane sorted by `(time, sequence)`.
    lanes: [VecDeque<Key>; LANES],
    /// Lanes ever used: the first `lanes_used` lanes; later ones are empty.
    lanes_used: usize,
    slots: Vec<Slot<E>>,
    /// Slots free for reuse, most recently freed last (warm in cache).
    free: Vec<u32>,
    /// Pending (pushed, not popped, not cancelled) events.
    live: usize,
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
            heap: BinaryHeap::new(),
            lanes: Default::default(),
            lanes_used: 0,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            seq_next: 0,
            seq_late_next: LATE_SEQ_BASE,
            now: SimTime::ZERO,
        }
    }

    /// Schedules `event` at `at`, which must not be in the past.
    pub fn push(&mut self, at: SimTime, event: E) -> EventId {
        let seq = self.seq_next;
        self.seq_next += 1;
        debug_assert!(self.seq_next < LATE_SEQ_BASE);
        self.insert(at, seq, event)
    }

    /// Schedules `event` at `at` to pop after every ordinary event at `at`,
    /// even those pushed after it (see the module doc); FIFO among late
    /// events.
    pub fn push_late(&mut self, at: SimTime, event: E) -> EventId {
        let seq = self.seq_late_next;
        self.seq_late_next += 1;
        debug_assert!(seq >= LATE_SEQ_BASE);
        let key = self.store(at, seq, event);
        // The first lane this key extends in order, or else the heap.
        match self
            .lanes
            .iter()
            .position(|lane| lane.back().is_none_or(|last| last.order() < key.order()))
        {
            Some(index) => {
                self.lanes[index].push_back(key);
                self.lanes_used = self.lanes_used.max(index + 1);
            }
            None => self.heap.push(key),
        }
        EventId::new(key.slot, key.generation)
    }

    fn insert(&mut self, at: SimTime, seq: u64, event: E) -> EventId {
        let key = self.store(at, seq, event);
        self.heap.push(key);
        EventId::new(key.slot, key.generation)
    }

    /// Puts `event` in a free slot and returns its key.
    fn store(&mut self, at: SimTime, seq: u64, event: E) -> Key {
        debug_assert!(
            at >= self.now,
            "event scheduled in the past: {at:?} < {:?}",
            self.now
        );
        let slot = match self.free.pop() {
            Some(slot) => {
                let entry = &mut self.slots[slot as usize];
                debug_assert!(entry.event.is_none(), "a free slot holds an event");
                entry.event = Some(event);
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len()).expect("fewer than 2^32 pending events");
                self.slots.push(Slot {
                    generation: 1,
                    event: Some(event),
                });
                slot
            }
        };
        self.live += 1;
        Key {
            at,
            seq,
            slot,
            generation: self.slots[slot as usize].generation,
        }
    }

    /// Takes the event out of `slot` and frees the slot, bumping its
    /// generation so that older keys and ids no longer match it.
    fn release(&mut self, slot: u32) -> E {
        let entry = &mut self.slots[slot as usize];
        let event = entry.event.take().expect("a live slot holds an event");
        self.live -= 1;
        if entry.generation < u32::MAX {
            entry.generation += 1;
            self.free.push(slot);
        }
        // A slot at the last generation is retired, so no id is ever reused.
        event
    }

    fn is_stale(&self, key: &Key) -> bool {
        self.slots[key.slot as usize].generation != key.generation
    }

    /// Drops stale keys from the top of the heap, so that the top is live.
    fn clean_heap(&mut self) {
        while let Some(top) = self.heap.peek() {
            if !self.is_stale(top) {
                break;
            }
            self.heap.pop();
        }
    }

    /// Drops stale keys from the front of lane `index`.
    fn clean_lane(&mut self, index: usize) {
        while let Some(front) = self.lanes[index].front() {
            if !self.is_stale(front) {
                break;
            }
            self.lanes[index].pop_front();
        }
    }

    /// Keys held, live and stale.
    fn keys(&self) -> usize {
        self.heap.len() + self.lanes.iter().map(VecDeque::len).sum::<usize>()
    }

    /// Where the earliest pending event's key is: `None` for the heap's top,
    /// `Some(index)` for a lane's front; `Err(())` when nothing is pending.
    fn earliest(&self) -> Result<Option<usize>, ()> {
        let mut best: Option<(Option<usize>, u128)> =
            self.heap.peek().map(|top| (None, top.order()));
        for (index, lane) in self.lanes[..self.lanes_used].iter().enumerate() {
            if let Some(front) = lane.front() {
                if best.is_none_or(|(_, order)| front.order() < order) {
                    best = Some((Some(index), front.order()));
                }
            }
        }
        best.map(|(place, _)| place).ok_or(())
    }

    /// Removes a pending event so that it never fires. Returns the event, or
    /// `None` if it already fired or was already cancelled.
    pub fn cancel(&mut self, id: EventId) -> Option<E> {
        let slot = id.slot();
        let entry = self.slots.get(slot)?;
        if entry.generation != id.generation() || entry.event.is_none() {
            return None;
        }
        let event = self.release(slot as u32);
        self.clean_heap();
        for index in 0..self.lanes_used {
            self.clean_lane(index);
        }
        let stale = self.keys() - self.live;
        if stale > STALE_SWEEP_MIN && stale > self.live {
            let slots = &self.slots;
            let live = |key: &Key| slots[key.slot as usize].generation == key.generation;
            self.heap.retain(live);
            for lane in &mut self.lanes {
                lane.retain(live);
            }
            debug_assert_eq!(self.keys(), self.live);
        }
        Some(event)
    }

    /// Removes and returns the earliest event, FIFO among equal times.
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        let place = self.earliest().ok()?;
        let key = match place {
            None => self.heap.pop(),
            Some(index) => self.lanes[index].pop_front(),
        }
        .expect("the earliest key is there");
        debug_assert!(!self.is_stale(&key), "the earliest key is live");
        debug_assert!(key.at >= self.now, "event popped from the past");
        self.now = key.at;
        let event = self.release(key.slot);
        match place {
            None => self.clean_heap(),
            Some(index) => self.clean_lane(index),
        }
        Some((key.at, event))
    }

    /// The time of the earliest pending event.
    pub fn peek_time(&self) -> Option<SimTime> {
        let mut earliest = self.heap.peek().map(|key| key.at);
        for lane in &self.lanes[..self.lanes_used] {
            if let Some(front) = lane.front() {
                if earliest.is_none_or(|at| front.at < at) {
                    earliest = Some(front.at);
                }
            }
        }
        earliest
    }

    /// How many events are pending.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no event is pending.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The time of the last popped event.
    pub fn now(&self) -> SimTime {
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::indexed_queue::IndexedQueue;
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
        assert_eq!(queue.peek_time(), None);
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

    // The slot of a fired event is reused at once; the old id must not
    // cancel the new occupant.
    #[test]
    fn an_old_id_does_not_cancel_the_next_occupant_of_its_slot() {
        let mut queue = EventQueue::new();
        let old = queue.push(SimTime(1), "old");
        assert_eq!(queue.pop(), Some((SimTime(1), "old")));
        let new = queue.push(SimTime(2), "new");
        assert_ne!(old, new);
        assert_eq!(queue.cancel(old), None);
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.cancel(new), Some("new"));
        assert!(queue.is_empty());
    }

    // The top is always live: a cancelled earliest event does not show in
    // `peek_time`, and `len` counts only pending events.
    #[test]
    fn peek_skips_cancelled_events() {
        let mut queue = EventQueue::new();
        let first = queue.push(SimTime(1), "first");
        queue.push(SimTime(3), "third");
        let second = queue.push(SimTime(2), "second");
        assert_eq!(queue.len(), 3);
        queue.cancel(first);
        queue.cancel(second);
        assert_eq!(queue.peek_time(), Some(SimTime(3)));
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.pop(), Some((SimTime(3), "third")));
        assert!(queue.is_empty());
    }

    // Timeouts armed and cancelled without end leave neither keys nor slots
    // behind: the heap stays within twice the pending events (plus the sweep
    // threshold) and the slab within the peak of pending events.
    #[test]
    fn cancelled_events_do_not_accumulate() {
        let mut queue = EventQueue::new();
        let mut now = 0;
        for _ in 0..100_000 {
            let timeout = queue.push_late(SimTime(now + 1_000_000), "timeout");
            queue.push(SimTime(now + 10), "answer");
            let (at, event) = queue.pop().expect("pending");
            assert_eq!(event, "answer");
            now = at.0;
            assert_eq!(queue.cancel(timeout), Some("timeout"));
        }
        assert!(queue.is_empty());
        assert!(queue.keys() <= STALE_SWEEP_MIN + 1);
        assert!(queue.slots.len() <= 2);
    }

    // Deadlines in time order go to lanes, out of order to the heap; the pop
    // order is the same `(time, sequence)` order either way.
    #[test]
    fn deadlines_in_and_out_of_order_pop_by_time_then_sequence() {
        let mut queue = EventQueue::new();
        let times = [50, 60, 40, 60, 30, 20, 10, 70, 5, 60];
        for (index, &at) in times.iter().enumerate() {
            queue.push_late(SimTime(at), index);
        }
        queue.push(SimTime(60), 100);
        assert!(queue.lanes.iter().all(|lane| !lane.is_empty()));
        assert!(!queue.heap.is_empty());
        let popped: Vec<_> = std::iter::from_fn(|| queue.pop())
            .map(|(at, index)| (at.0, index))
            .collect();
        assert_eq!(
            popped,
            vec![
                (5, 8),
                (10, 6),
                (20, 5),
                (30, 4),
                (40, 2),
                (50, 0),
                (60, 100),
                (60, 1),
                (60, 3),
                (60, 9),
                (70, 7)
            ]
        );
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

    /// One step of a random schedule for the differential test.
    #[derive(Clone, Debug)]
    enum Op {
        Push(u64),
        PushLate(u64),
        /// Cancel the pushed event with this index (modulo the count).
        Cancel(usize),
        Pop,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u64..50).prop_map(Op::Push),
            2 => (0u64..50).prop_map(Op::PushLate),
            2 => any::<usize>().prop_map(Op::Cancel),
            3 => Just(Op::Pop),
        ]
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

        // Any interleaving of pushes, late pushes, cancels (of pending, fired
        // and already cancelled events) and pops gives exactly what the
        // indexed queue this one replaced gives, step by step.
        #[test]
        fn behaves_exactly_as_the_indexed_queue(ops in proptest::collection::vec(op(), 1..400)) {
            let mut lazy = EventQueue::new();
            let mut indexed = IndexedQueue::new();
            let mut ids = Vec::new();
            for (index, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Push(delay) => {
                        let at = SimTime(lazy.now().0 + delay);
                        ids.push((lazy.push(at, index), indexed.push(at, index)));
                    }
                    Op::PushLate(delay) => {
                        let at = SimTime(lazy.now().0 + delay);
                        ids.push((lazy.push_late(at, index), indexed.push_late(at, index)));
                    }
                    Op::Cancel(which) if !ids.is_empty() => {
                        let (lazy_id, indexed_id) = ids[which % ids.len()];
                        prop_assert_eq!(lazy.cancel(lazy_id), indexed.cancel(indexed_id));
                    }
                    Op::Cancel(_) => {}
                    Op::Pop => prop_assert_eq!(lazy.pop(), indexed.pop()),
                }
                prop_assert_eq!(lazy.len(), indexed.len());
                prop_assert_eq!(lazy.peek_time(), indexed.peek_time());
            }
            loop {
                let popped = lazy.pop();
                prop_assert_eq!(&popped, &indexed.pop());
                if popped.is_none() {
                    break;
                }
            }
        }
    }
}
