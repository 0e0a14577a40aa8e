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
//! the heap holds only small keys; the events themselves sit still in a
//! dense slab of slots, one per pending event, reused through a free list.
//! Cancelling frees the slot; the key left in the heap no longer matches its
//! slot and is dropped when it reaches the top. Nothing is hashed, no event
//! value moves while the heap reorders, and there is no allocation per
//! event once the slab and heap have grown to the run's peak.
//!
//! ## Keys
//!
//! A key holds the time (a whole `u64` of microseconds), the sequence number
//! (late events' numbers have the top bit set, so they sort after every
//! ordinary one), the slot and the slot's generation when the key was made:
//! 24 bytes. Keys compare by `(time, sequence)` as one 128-bit integer (two
//! instructions, no branch per field); sequence numbers are unique, so slot
//! and generation never decide. A slot's generation changes whenever its
//! event leaves, so a key of an earlier occupant is recognised as stale by
//! one comparison with the slot. Every time fits the key, so events however
//! far ahead pop in `(time, sequence)` order like any other. (The previous
//! keys packed time, late flag, sequence and slot into one `u128`: 8 bytes
//! smaller, but packing, unpacking and keeping far-future times aside cost
//! more instructions per event than the heap's larger moves.)
//!
//! ## Lanes for repeated delays
//!
//! Most pending events are scheduled a fixed delay ahead: a timeout's
//! deadline (`push_late`, the same timeout for every call of a layer), a
//! retry's backoff without jitter (`push_after`: 1 s, 2 s, 4 s). Events
//! scheduled the same delay `d` ahead arrive in key order: `now` never
//! decreases and sequence numbers grow, so `(now + d, sequence)` does too.
//! Such events go to a FIFO lane tagged with their delay (and late flag)
//! instead of the heap: a lane is sorted by construction, and pushing to its
//! back or popping its front costs O(1). A delay claims a free lane (an
//! empty one) when it is pushed twice in a row without a lane, so that a
//! jittered backoff or an adaptive timeout, whose delays never repeat, does
//! not take lanes from the delays that do; those go to the calendar or the
//! heap, as do the events of `push` (network and service times, drawn at
//! random). The cancelled deadlines that outnumber everything else, and the
//! retries of a thundering herd, wait in lanes. `pop` takes the least of the
//! heap's top, the calendar's least and the lanes' fronts, so
//! the order is exactly `(time, sequence)` whichever structure an event went
//! to. Each lane's front key is kept apart from the rest of the lane, in one
//! small array (an empty lane's front is a sentinel greater than any key),
//! and the queue remembers which lane's front is least. A front only moves
//! later, so that is recomputed only when the least front itself pops or is
//! cancelled.
//!
//! ## A calendar for what is due soon
//!
//! The events of `push` (and delays that found no lane) are mostly due
//! within tens of milliseconds: network and service times. Those due within
//! the calendar's reach (256 buckets of 256 µs: about 65 ms ahead of now) go
//! to the bucket of their time, unordered among its few others; the rest,
//! and the keys of a bucket already full (16 keys: a burst due at one
//! instant), go to the heap. Every pending key is due at or after now and
//! was pushed within reach of an earlier now, so the buckets from now's
//! onwards, wrapping around, follow each other in time: the least key is the
//! least of the first bucket that holds one, found by scanning a bitmap of
//! the occupied buckets and then that bucket's handful of keys. The calendar
//! remembers its least key (always live, like the heap's top). The queue
//! also remembers the lesser of the heap's top and the least lane front
//! (`other`), found anew only when one of those two changes (a key pushed to
//! the heap or to an empty lane compares itself with it), so `pop` compares
//! two candidates: `other` and the calendar's least. Most events pop from the
//! calendar (96% of the breaker scenario's, 68% of the herd's), and each such
//! pop used to read the heap's top and the least front and compare three
//! keys: keeping `other` cut 1.8-2.1% of the instructions of whole runs of
//! the four measured scenarios (docs/performance.md, fifteenth round).
//! A binary heap pops in about `log2 n` moves of a key; a bucket pop
//! is a scan of a few keys (4.7% fewer instructions on whole runs of the
//! breaker and herd scenarios, when it was introduced). A key keeps its
//! position in its bucket until it leaves: each bucket has a 16-bit mask of
//! the positions that hold a key, a pop or a dropped stale key clears its
//! bit, and a push takes the first free position. (Buckets kept their keys
//! packed at the front before, and a pop moved the bucket's last key and
//! event into the hole: masks cut 2.3-2.6% of the four scenarios'
//! instructions; fifteenth round.) Which position a key holds never decides
//! the order: the least key of a bucket is found by comparing keys. The
//! buckets share one block (144 KiB), each its 16 keys then their 16
//! events, so the buckets a run is filling sit next to each other.
//!
//! ## Events nothing will cancel
//!
//! Most events are never cancelled: an arrival, an attempt reaching its
//! service, a service time ending, an answer coming back. `schedule` takes
//! such an event and gives no id. Due within the calendar's reach, it takes
//! no slot: its key names `PINNED`, a slot number no slot has (so no id can
//! match it, and it is always live), and its event waits in the calendar
//! beside its key, in a second block the shape of the keys' (every calendar
//! key's event is kept there, so a pop from the calendar reads it there).
//! That spares such an event the slot's free-list pop and push, its
//! generation and its copy into the slot (the copy out comes from the
//! calendar instead): about 1% of a whole run's instructions on each of the
//! four measured scenarios (docs/performance.md, twelfth round). An event `schedule`d
//! beyond the calendar's reach takes a slot like `push`'s. A cancellable
//! event `push`ed into the calendar is written both to its slot and beside
//! its key, so that `cancel` can still return it; such events are few (a
//! fault's edges, a jittered backoff due within the calendar's reach).
//!
//! Memory stays bounded by the pending events, not by the cancelled ones:
//! when stale keys outnumber live ones (and there are more than a few
//! thousand), the heap, the calendar and the lanes are rebuilt without them,
//! which costs O(n) once per n cancellations.
//!
//! The top of the heap, the calendar's least and the front of every lane
//! are always live keys (stale keys are dropped as they surface after every
//! pop and cancel), so `peek_time` needs only `&self`, and a cancel need
//! only look at those that name the cancelled event's slot.
//! Ids are never reused: a slot whose generation reaches `u32::MAX` is
//! retired instead of freed.
//!
//! `push`, `push_late` and `pop_until` are `#[inline(always)]`: as calls
//! they paid a large function's prologue and epilogue, about 18
//! instructions each, and `pop_until` copied its event out
//! (`benches/queue-share.sh` still counts their inlined instructions as the
//! queue's).

use super::clock::{SimDuration, SimTime};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
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

/// The late flag, the top bit of a sequence number: late events pop after
/// every ordinary event of their instant.
const LATE_FLAG: u64 = 1 << 63;

/// One heap or lane entry: when the event is due and where it waits.
#[derive(Clone, Copy, Debug)]
struct Key {
    /// Due time, microseconds.
    at: u64,
    /// Sequence number, `LATE_FLAG` set for a late event.
    seq: u64,
    slot: u32,
    /// The slot's generation when this key was made; 0 only in `EMPTY`.
    generation: u32,
}

/// The front of an empty lane: ordered after every key (no key has both
/// the largest time and the largest late sequence number) and matching no
/// slot (generations start at 1).
const EMPTY: Key = Key {
    at: u64::MAX,
    seq: u64::MAX,
    slot: u32::MAX,
    generation: 0,
};

impl Key {
    /// The pop order, `(time, sequence)` as one integer, least first.
    fn order(self) -> u128 {
        (u128::from(self.at) << 64) | u128::from(self.seq)
    }

    fn is_empty(self) -> bool {
        self.generation == 0
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.order() == other.order()
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.order().cmp(&other.order())
    }
}

/// Stale keys are swept out of the heap only past this many, so that small
/// queues never pay for a rebuild.
const STALE_SWEEP_MIN: usize = 4096;

/// FIFO lanes for events scheduled a repeated delay ahead (see the module
/// doc): one per distinct timeout or backoff step a model typically has in
/// play at once.
const LANES: usize = 4;

/// Where the earliest key is when it is the heap's top rather than a lane's
/// front.
const HEAP: usize = LANES;

/// A calendar bucket spans `2^CALENDAR_SHIFT` microseconds (256 µs).
const CALENDAR_SHIFT: u32 = 8;

/// Calendar buckets: with 256 µs buckets they reach about 65 ms ahead, past
/// most network latencies and typical service times (later events go to the
/// heap).
const CALENDAR_BUCKETS: usize = 256;

/// The calendar's blocks of keys and of their events of type `E`, allocated
/// with the queue whatever the run (part of the memory estimate's fixed
/// base).
pub const fn calendar_bytes<E>() -> u64 {
    let entry = std::mem::size_of::<Key>() + std::mem::size_of::<Option<E>>();
    (CALENDAR_BUCKETS * BUCKET_KEYS_MAX * entry) as u64
}

/// Keys a calendar bucket holds at most: more (a burst due at one instant)
/// go to the heap, so finding a bucket's least stays cheap.
const BUCKET_KEYS_MAX: usize = 16;

/// A bucket's occupied positions, one bit each, as worked on: each is kept
/// in 16 bits (`Calendar::masks`) and widened to 32 to work on, as 16-bit
/// operations on registers stall on their merge with the upper bits (a bare
/// loop of pushes, pops and cancels ran about 10% slower with them).
type Mask = u32;

/// The mask of a full bucket.
const FULL: Mask = (1 << BUCKET_KEYS_MAX) - 1;

/// Where the earliest key is when it is the calendar's least.
const CALENDAR: usize = LANES + 1;

/// A lane's tag: the delay its events were scheduled ahead (microseconds)
/// and whether they are late.
type Tag = (u64, bool);

/// No delay: the tag of a lane never claimed, and of no pending miss.
const NO_TAG: Tag = (u64::MAX, false);

/// Keys due within `CALENDAR_BUCKETS` buckets of now, bucketed by time: a
/// key sits in the bucket of its time's bucket number modulo the count,
/// unordered among the bucket's others. Every key is due at or after now and
/// within the reach of the now it was pushed at, so the buckets from now's
/// onwards, wrapping around, follow each other in time, and the least key
/// is in the first bucket that holds one. The buckets share one block, each
/// its `BUCKET_KEYS_MAX` keys then their events, so a bucket is a few cache
/// lines next to the bucket after it. Bucket indices and positions are reduced modulo the
/// arrays' sizes where the invariants already keep them in range, which
/// lets the compiler drop the bounds checks on every push and pop (about
/// 2% of a run's instructions); debug builds assert the invariants instead.
struct Calendar<E> {
    buckets: Box<[Bucket<E>; CALENDAR_BUCKETS]>,
    /// Which positions of each bucket hold a key: popping or dropping a key
    /// clears its bit, moving no other key, and a push takes the first
    /// free position.
    masks: [u16; CALENDAR_BUCKETS],
    /// One bit per bucket: set when it holds a key.
    occupied: [u64; CALENDAR_BUCKETS / 64],
    /// The least key, live (`EMPTY` when no key is live), and its position
    /// in its bucket.
    least: Key,
    least_at: usize,
}

/// One calendar bucket: bucket `i`'s keys are those of `buckets[i].keys`
/// whose bits are set in `masks[i]`.
#[derive(Clone, Copy)]
struct Bucket<E> {
    keys: [Key; BUCKET_KEYS_MAX],
    /// Each key's event, beside it: a key of a `schedule`d event has no
    /// slot (`PINNED`), so its event is only here. Apart from the keys, so
    /// that finding a bucket's least reads keys alone; in one block with
    /// them, so that a push or pop works out one address for both.
    events: [Option<E>; BUCKET_KEYS_MAX],
}

impl<E: Copy> Calendar<E> {
    fn new() -> Calendar<E> {
        Calendar {
            buckets: Box::new(
                [Bucket {
                    keys: [EMPTY; BUCKET_KEYS_MAX],
                    events: [None; BUCKET_KEYS_MAX],
                }; CALENDAR_BUCKETS],
            ),
            masks: [0; CALENDAR_BUCKETS],
            occupied: [0; CALENDAR_BUCKETS / 64],
            least: EMPTY,
            least_at: 0,
        }
    }

    /// Keys held, live and stale: counted from the buckets' masks, as it
    /// is needed only to decide on a sweep of stale keys (a few dozen times
    /// a run), where a count kept up to date cost two instructions on every
    /// push and pop.
    fn len(&self) -> usize {
        self.masks
            .iter()
            .map(|mask| mask.count_ones() as usize)
            .sum()
    }

    /// The bucket of a key within reach.
    fn index(key: Key) -> usize {
        (key.at >> CALENDAR_SHIFT) as usize % CALENDAR_BUCKETS
    }

    /// Takes `key`, due at or after `now`, if it is within reach and its
    /// bucket has room; false otherwise.
    #[inline(always)]
    fn push(&mut self, now: u64, key: Key, event: E) -> bool {
        let number = key.at >> CALENDAR_SHIFT;
        let index = number as usize % CALENDAR_BUCKETS;
        let mask = Mask::from(self.masks[index]);
        if number >= (now >> CALENDAR_SHIFT) + CALENDAR_BUCKETS as u64 || mask == FULL {
            return false;
        }
        // The first free position.
        let at = (!mask).trailing_zeros() as usize % BUCKET_KEYS_MAX;
        self.buckets[index].keys[at] = key;
        self.buckets[index].events[at] = Some(event);
        self.masks[index] = (mask | 1 << at) as u16;
        self.occupied[index / 64] |= 1 << (index % 64);
        if key.order() < self.least.order() {
            self.least = key;
            self.least_at = at;
        }
        true
    }

    /// Removes the least key (it popped), then finds the next; returns the
    /// least key's event.
    fn remove_least(&mut self, live: impl Fn(Key) -> bool) -> E {
        let index = Self::index(self.least);
        let at = self.least_at % BUCKET_KEYS_MAX;
        debug_assert!(self.masks[index] & 1 << at != 0, "the least key is held");
        let event = self.buckets[index].events[at];
        self.clear(index, at);
        self.refresh_from(index, live);
        event.expect("a calendar key has its event beside it")
    }

    /// Clears position `at` of bucket `index`: its key left.
    #[inline(always)]
    fn clear(&mut self, index: usize, at: usize) {
        self.masks[index] = (Mask::from(self.masks[index]) & !(1 << at)) as u16;
    }

    /// Finds the least live key anew, after the least one was cancelled.
    fn refresh(&mut self, live: impl Fn(Key) -> bool) {
        self.refresh_from(Self::index(self.least), live);
    }

    /// Makes `least` the least live key of bucket `index` or, if that bucket
    /// holds none, of the next bucket that does, dropping the stale keys met
    /// on the way. No bucket before `index` (from now's) may hold a key.
    fn refresh_from(&mut self, mut index: usize, live: impl Fn(Key) -> bool) {
        loop {
            debug_assert!(index < CALENDAR_BUCKETS);
            let index_in = index % CALENDAR_BUCKETS;
            while let Some((at, key)) = least_of(
                &self.buckets[index_in].keys,
                Mask::from(self.masks[index_in]),
            ) {
                if live(key) {
                    self.least = key;
                    self.least_at = at;
                    return;
                }
                self.clear(index_in, at);
            }
            self.occupied[index / 64] &= !(1 << (index % 64));
            match self.next_occupied(index) {
                Some(next) => index = next,
                None => {
                    self.least = EMPTY;
                    return;
                }
            }
        }
    }

    /// The first occupied bucket after `index`, wrapping around.
    fn next_occupied(&self, index: usize) -> Option<usize> {
        const WORDS: usize = CALENDAR_BUCKETS / 64;
        let (word, bit) = (index / 64, index % 64);
        // This word's bits above `bit`, then the other words in order, then
        // this word again (its bits up to `bit`).
        let above = self.occupied[word] & (!1u64).wrapping_shl(bit as u32);
        if above != 0 {
            return Some(word * 64 + above.trailing_zeros() as usize);
        }
        (1..=WORDS)
            .map(|step| (word + step) % WORDS)
            .find(|&next| self.occupied[next] != 0)
            .map(|next| next * 64 + self.occupied[next].trailing_zeros() as usize)
    }

    /// Drops every stale key (the least is live, so it stays).
    fn retain(&mut self, live: impl Fn(Key) -> bool) {
        for index in 0..CALENDAR_BUCKETS {
            let mut rest = Mask::from(self.masks[index]);
            while rest != 0 {
                let at = rest.trailing_zeros() as usize % BUCKET_KEYS_MAX;
                rest &= rest - 1;
                if !live(self.buckets[index].keys[at]) {
                    self.clear(index, at);
                }
            }
            if self.masks[index] == 0 {
                self.occupied[index / 64] &= !(1 << (index % 64));
            }
        }
        if !self.least.is_empty() {
            self.refresh(live);
        }
    }
}

/// The position and value of the least of the keys of `keys` whose bits
/// are set in `mask`, if any.
#[inline(always)]
fn least_of(keys: &[Key; BUCKET_KEYS_MAX], mask: Mask) -> Option<(usize, Key)> {
    if mask == 0 {
        return None;
    }
    let first = mask.trailing_zeros() as usize % BUCKET_KEYS_MAX;
    let mut least = (first, keys[first]);
    let mut rest = mask & (mask - 1);
    while rest != 0 {
        let at = rest.trailing_zeros() as usize % BUCKET_KEYS_MAX;
        rest &= rest - 1;
        if keys[at].order() < least.1.order() {
            least = (at, keys[at]);
        }
    }
    Some(least)
}

/// Whether `key` names the current occupant of its slot (else it is stale:
/// its event popped or was cancelled). A free function, so that the calendar
/// can be handed it while the slots are borrowed apart from the rest.
#[inline(always)]
fn is_live<E>(slots: &[Slot<E>], key: Key) -> bool {
    match slots.get(key.slot as usize) {
        Some(slot) => slot.generation == key.generation,
        // A `schedule`d event's key: nothing can cancel it.
        None => key.slot == PINNED,
    }
}

/// The most bytes one pending event of type `E` costs the queue: its slot,
/// its free-list entry and two keys (a cancelled event's key stays until
/// swept, and the sweep waits for stale keys to outnumber live ones). The
/// memory estimate charges it per event.
pub const fn pending_event_bytes<E>() -> u64 {
    (std::mem::size_of::<Slot<E>>() + 4 + 2 * std::mem::size_of::<Key>()) as u64
}

/// Where one pending event waits. `generation` changes whenever the event
/// leaves (pops or is cancelled), so ids and keys that name an earlier
/// occupant no longer match.
struct Slot<E> {
    generation: u32,
    /// The pending event while `generation` matches its key; left in place
    /// (and never read again) once it pops or is cancelled.
    event: E,
}

/// The slot a `schedule`d event's key names in the calendar: none. No slot
/// is ever numbered so (slots stop short of it), so no id matches it.
const PINNED: u32 = u32::MAX - 1;

/// A lane's keys behind its front, oldest first: a ring buffer whose
/// capacity doubles when full. `VecDeque` did the same, but its push was
/// left a call (27 instructions a push on the breaker scenario); this one's
/// push and pop are a few instructions, inlined.
#[derive(Default)]
struct Ring {
    /// A power of two in length (or empty); the keys are
    /// `buf[(head + i) % buf.len()]` for `i < len`.
    buf: Vec<Key>,
    head: usize,
    len: usize,
}

impl Ring {
    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn push_back(&mut self, key: Key) {
        if self.len == self.buf.len() {
            self.grow();
        }
        let mask = self.buf.len() - 1;
        self.buf[(self.head + self.len) & mask] = key;
        self.len += 1;
    }

    #[inline]
    fn pop_front(&mut self) -> Option<Key> {
        if self.len == 0 {
            return None;
        }
        let key = self.buf[self.head];
        self.head = (self.head + 1) & (self.buf.len() - 1);
        self.len -= 1;
        Some(key)
    }

    /// The last key, if any.
    fn back(&self) -> Option<&Key> {
        (self.len > 0).then(|| &self.buf[(self.head + self.len - 1) & (self.buf.len() - 1)])
    }

    /// Doubles the capacity (at least 8), keeping the order.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let capacity = (self.buf.len() * 2).max(8);
        let mut buf = Vec::with_capacity(capacity);
        buf.extend(self.iter());
        buf.resize(capacity, EMPTY);
        self.buf = buf;
        self.head = 0;
    }

    /// The keys, oldest first.
    fn iter(&self) -> impl Iterator<Item = Key> + '_ {
        let mask = self.buf.len().wrapping_sub(1);
        (0..self.len).map(move |i| self.buf[(self.head + i) & mask])
    }

    /// Keeps only the keys `keep` accepts, in order, in place: each kept key
    /// moves to the next place after the last kept one, never ahead of
    /// where it is read. Out of line: it runs only in a sweep.
    #[inline(never)]
    fn retain(&mut self, keep: impl Fn(&Key) -> bool) {
        let mask = self.buf.len().wrapping_sub(1);
        let mut kept = 0;
        for read in 0..self.len {
            let key = self.buf[(self.head + read) & mask];
            if keep(&key) {
                self.buf[(self.head + kept) & mask] = key;
                kept += 1;
            }
        }
        self.len = kept;
    }
}

/// A min-queue of events keyed by `(time, sequence)`.
pub struct EventQueue<E> {
    /// Keys due beyond the calendar's reach, and late keys without a lane.
    heap: BinaryHeap<Reverse<Key>>,
    /// Keys due soon, with their events (see `Calendar`).
    calendar: Calendar<E>,
    /// The front key of each lane, `EMPTY` for an empty lane.
    fronts: [Key; LANES],
    /// The lane whose front is the least (any lane when all are empty).
    lane_least: usize,
    /// The least of the heap's top and the least lane front (`EMPTY` when
    /// both are empty), and where it is (`HEAP` or the lane's index): so
    /// that `pop` compares the calendar's least with one key.
    other: Key,
    other_place: usize,
    /// The keys behind each lane's front, each lane sorted by key.
    lanes: [Ring; LANES],
    /// The delay each lane holds; an empty lane may be claimed anew.
    tags: [Tag; LANES],
    /// Lanes ever used: the first `lanes_used` lanes; later ones are empty.
    lanes_used: usize,
    /// The last delay pushed without a lane: pushed again, it claims one.
    missed: Tag,
    slots: Vec<Slot<E>>,
    /// Slots free for reuse, most recently freed last (warm in cache).
    free: Vec<u32>,
    /// Pending (pushed, not popped, not cancelled) events.
    live: usize,
    /// At least as many as the stale keys held: each cancel leaves at most
    /// one, nothing else makes any, and the count is set exact whenever it
    /// is computed. A sweep is due when the stale keys outnumber both
    /// `STALE_SWEEP_MIN` and the live ones, so counting the keys (`keys`,
    /// which sums the calendar's buckets) is done only once this bound
    /// passes both, rather than on every cancel.
    stale_most: usize,
    /// How many times `cancel` counted the keys to decide on a sweep.
    #[cfg(test)]
    counted_for_sweep: usize,
    seq_next: u64,
    /// The next sequence number of a late event (with the late flag).
    seq_late_next: u64,
    /// The time of the last popped event: nothing may be scheduled before it.
    now: SimTime,
}

impl<E: Copy> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Copy> EventQueue<E> {
    /// An empty queue at time zero.
    pub fn new() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            calendar: Calendar::new(),
            fronts: [EMPTY; LANES],
            lane_least: 0,
            other: EMPTY,
            other_place: HEAP,
            lanes: Default::default(),
            tags: [NO_TAG; LANES],
            lanes_used: 0,
            missed: NO_TAG,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            stale_most: 0,
            #[cfg(test)]
            counted_for_sweep: 0,
            seq_next: 0,
            seq_late_next: LATE_FLAG,
            now: SimTime::ZERO,
        }
    }

    /// Schedules `event` at `at`, which must not be in the past. For events
    /// whose delay is drawn at random; `push_after` for a delay that repeats.
    #[inline(always)]
    pub fn push(&mut self, at: SimTime, event: E) -> EventId {
        let seq = self.next_seq();
        let key = self.store(at, seq, event);
        self.push_key(key, event);
        EventId::new(key.slot, key.generation)
    }

    /// Schedules `event` at `at` like `push`, for an event that will never
    /// be cancelled (no id is given). Due within the calendar's reach, it
    /// takes no slot: its key names `PINNED`, which no cancel can match,
    /// and its event waits beside the key. Otherwise it takes a slot like
    /// `push`. The pop order is the same as `push`'s.
    #[inline(always)]
    pub fn schedule(&mut self, at: SimTime, event: E) {
        let seq = self.next_seq();
        debug_assert!(
            at >= self.now,
            "event scheduled in the past: {at:?} < {:?}",
            self.now
        );
        let key = Key {
            at: at.0,
            seq,
            slot: PINNED,
            generation: 1,
        };
        if self.calendar.push(self.now.0, key, event) {
            self.live += 1;
        } else {
            let key = self.store(at, seq, event);
            self.push_heap(key);
        }
    }

    /// Puts `key` (of `event`, which its slot holds too) in the calendar if
    /// it falls within its reach and its bucket has room, else in the heap.
    #[inline(always)]
    fn push_key(&mut self, key: Key, event: E) {
        if !self.calendar.push(self.now.0, key, event) {
            self.push_heap(key);
        }
    }

    /// Schedules `event` `delay` after now (the time of the last popped
    /// event), where `delay` is likely to repeat (a backoff step): the same
    /// order as `push(now + delay, event)`, but such events wait in a lane
    /// rather than the heap (see the module doc).
    pub fn push_after(&mut self, delay: SimDuration, event: E) -> EventId {
        let seq = self.next_seq();
        let key = self.store(self.now + delay, seq, event);
        self.place((delay.0, false), key, event);
        EventId::new(key.slot, key.generation)
    }

    /// Schedules `event` at `at` to pop after every ordinary event at `at`,
    /// even those pushed after it (see the module doc); FIFO among late
    /// events. A deadline: its delay from now usually repeats, so it goes
    /// to a lane like `push_after`'s events.
    #[inline(always)]
    pub fn push_late(&mut self, at: SimTime, event: E) -> EventId {
        let seq = self.seq_late_next;
        self.seq_late_next += 1;
        // At a billion pushes a second, 2^63 takes 290 years.
        debug_assert!(seq < u64::MAX, "fewer than 2^63 late events pushed");
        let key = self.store(at, seq, event);
        self.place((at.0.saturating_sub(self.now.0), true), key, event);
        EventId::new(key.slot, key.generation)
    }

    /// The next ordinary sequence number.
    fn next_seq(&mut self) -> u64 {
        let seq = self.seq_next;
        self.seq_next += 1;
        // At a billion pushes a second, 2^63 takes 290 years: a check here
        // cost two instructions on every push.
        debug_assert!(seq < LATE_FLAG, "fewer than 2^63 events pushed");
        seq
    }

    /// Puts `key`, scheduled with delay and lateness `tag`, in the lane of
    /// that tag, or a lane it claims, or else the heap.
    fn place(&mut self, tag: Tag, key: Key, event: E) {
        if let Some(index) = self.tags[..self.lanes_used]
            .iter()
            .position(|&lane| lane == tag)
        {
            self.push_lane(index, key);
            return;
        }
        if self.missed == tag {
            if let Some(index) = self.fronts.iter().position(|front| front.is_empty()) {
                self.tags[index] = tag;
                self.push_lane(index, key);
                self.lanes_used = self.lanes_used.max(index + 1);
                self.missed = NO_TAG;
                return;
            }
        }
        self.missed = tag;
        self.push_key(key, event);
    }

    /// Puts `key` in the heap.
    fn push_heap(&mut self, key: Key) {
        self.heap.push(Reverse(key));
        if key.order() < self.other.order() {
            self.other = key;
            self.other_place = HEAP;
        }
    }

    /// Finds `other` anew, after the heap's top or the least lane front
    /// changed.
    fn refresh_other(&mut self) {
        (self.other, self.other_place) = self.lesser_of_heap_and_lanes();
    }

    /// The lesser of the heap's top and the least lane front, and where it
    /// is (`HEAP` or the lane's index); `EMPTY` when both are empty.
    #[inline(always)]
    fn lesser_of_heap_and_lanes(&self) -> (Key, usize) {
        let top = match self.heap.peek() {
            Some(&Reverse(top)) => top,
            None => EMPTY,
        };
        debug_assert!(self.lane_least < LANES);
        let front = self.fronts[self.lane_least % LANES];
        if front.order() < top.order() {
            (front, self.lane_least)
        } else {
            (top, HEAP)
        }
    }

    /// Puts `key`, later than every key of lane `index`, at its back.
    fn push_lane(&mut self, index: usize, key: Key) {
        let front = &mut self.fronts[index];
        if front.is_empty() {
            debug_assert!(self.lanes[index].is_empty());
            *front = key;
            if key.order() < self.fronts[self.lane_least].order() {
                self.lane_least = index;
            }
            if key.order() < self.other.order() {
                self.other = key;
                self.other_place = index;
            }
        } else {
            let lane = &mut self.lanes[index];
            debug_assert!(lane.back().unwrap_or(front).order() < key.order());
            lane.push_back(key);
        }
    }

    /// Puts `event` in a free slot; returns its key.
    #[inline(always)]
    fn store(&mut self, at: SimTime, seq: u64, event: E) -> Key {
        debug_assert!(
            at >= self.now,
            "event scheduled in the past: {at:?} < {:?}",
            self.now
        );
        let (slot, generation) = match self.free.pop() {
            Some(slot) => {
                let entry = &mut self.slots[slot as usize];
                entry.event = event;
                (slot, entry.generation)
            }
            None => {
                let slot = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|&slot| slot < PINNED)
                    .expect("fewer than 2^32 - 2 pending events");
                self.slots.push(Slot {
                    generation: 1,
                    event,
                });
                (slot, 1)
            }
        };
        self.live += 1;
        Key {
            at: at.0,
            seq,
            slot,
            generation,
        }
    }

    /// Takes the event out of `slot` and frees the slot (`free_slot`).
    #[inline(always)]
    fn release(&mut self, slot: u32) -> E {
        let event = self.slots[slot as usize].event;
        self.free_slot(slot);
        event
    }

    /// Frees `slot`, its event gone, bumping its generation so that older
    /// ids and keys no longer match it.
    fn free_slot(&mut self, slot: u32) {
        let entry = &mut self.slots[slot as usize];
        self.live -= 1;
        // Occupied slots are below the last generation, so this never
        // overflows; a slot that reaches it is retired, never occupied
        // again, so no id is ever reused and no key ever matches it.
        entry.generation += 1;
        if entry.generation < u32::MAX {
            self.free.push(slot);
        }
    }

    fn is_stale(&self, key: Key) -> bool {
        !is_live(&self.slots, key)
    }

    /// Drops stale keys from the top of the heap, so that the top is live,
    /// and finds `other` anew.
    fn clean_heap(&mut self) {
        while let Some(&Reverse(top)) = self.heap.peek() {
            if !self.is_stale(top) {
                break;
            }
            self.heap.pop();
        }
        self.refresh_other();
    }

    /// Makes the next live key of lane `index` its front (`EMPTY` if none).
    fn advance_lane(&mut self, index: usize) {
        let mut front = EMPTY;
        while let Some(next) = self.lanes[index].pop_front() {
            if !self.is_stale(next) {
                front = next;
                break;
            }
        }
        self.fronts[index] = front;
        // A front only moves later, so only the least one's move can change
        // which is least.
        if index == self.lane_least {
            let mut least = (index, front);
            for (other, &candidate) in self.fronts.iter().enumerate() {
                if candidate.order() < least.1.order() {
                    least = (other, candidate);
                }
            }
            self.lane_least = least.0;
            self.refresh_other();
        }
        debug_assert!(self
            .fronts
            .iter()
            .all(|front| front.order() >= self.fronts[self.lane_least].order()));
    }

    /// Keys held, live and stale.
    fn keys(&self) -> usize {
        self.heap.len()
            + self.calendar.len()
            + self.lanes.iter().map(Ring::len).sum::<usize>()
            + self.fronts.iter().filter(|front| !front.is_empty()).count()
    }

    /// The earliest key and where it is: `HEAP` for the heap's top, or a
    /// lane's index. `EMPTY` when nothing is pending.
    #[inline(always)]
    fn earliest(&self) -> (Key, usize) {
        debug_assert_eq!(
            self.other.order(),
            self.lesser_of_heap_and_lanes().0.order()
        );
        if self.calendar.least.order() < self.other.order() {
            (self.calendar.least, CALENDAR)
        } else {
            (self.other, self.other_place)
        }
    }

    /// Removes a pending event so that it never fires. Returns the event, or
    /// `None` if it already fired or was already cancelled.
    pub fn cancel(&mut self, id: EventId) -> Option<E> {
        let slot = id.slot();
        let entry = self.slots.get(slot)?;
        // An id's generation matches only while its event is pending: the
        // slot's generation changes when the event leaves.
        if entry.generation != id.generation() {
            return None;
        }
        let event = self.release(slot as u32);
        // Tops and fronts were live, so only one naming this slot (its
        // occupant's key) can have become stale.
        let slot = slot as u32;
        if self
            .heap
            .peek()
            .is_some_and(|&Reverse(top)| top.slot == slot)
        {
            self.clean_heap();
        } else if self.calendar.least.slot == slot {
            let slots = &self.slots;
            self.calendar.refresh(|key| is_live(slots, key));
        } else if let Some(index) = self.fronts.iter().position(|front| front.slot == slot) {
            self.advance_lane(index);
        }
        self.stale_most += 1;
        if self.stale_most <= STALE_SWEEP_MIN.max(self.live) {
            return Some(event);
        }
        #[cfg(test)]
        {
            self.counted_for_sweep += 1;
        }
        let stale = self.keys() - self.live;
        debug_assert!(stale <= self.stale_most);
        self.stale_most = stale;
        if stale > STALE_SWEEP_MIN && stale > self.live {
            self.stale_most = 0;
            let slots = &self.slots;
            let live = |key: Key| is_live(slots, key);
            self.heap.retain(|&Reverse(key)| live(key));
            for lane in &mut self.lanes {
                lane.retain(|&key| live(key));
            }
            self.calendar.retain(live);
            self.refresh_other();
            debug_assert_eq!(self.keys(), self.live);
        }
        Some(event)
    }

    /// Removes and returns the earliest event, FIFO among equal times.
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        self.pop_until(SimTime(u64::MAX))
    }

    /// Removes and returns the earliest event if it is due at or before
    /// `end`; leaves the queue as it is otherwise. One search for the
    /// earliest key where `peek_time` then `pop` would make two.
    #[inline(always)]
    pub fn pop_until(&mut self, end: SimTime) -> Option<(SimTime, E)> {
        let (key, place) = self.earliest();
        if key.at > end.0 || key.is_empty() {
            return None;
        }
        debug_assert!(!self.is_stale(key), "the earliest key is live");
        debug_assert!(key.at >= self.now.0, "event popped from the past");
        let event = if place == CALENDAR {
            if key.slot == PINNED {
                self.live -= 1;
            } else {
                self.free_slot(key.slot);
            }
            let slots = &self.slots;
            self.calendar.remove_least(|key| is_live(slots, key))
        } else {
            let event = self.release(key.slot);
            if place == HEAP {
                self.heap.pop();
                self.clean_heap();
            } else {
                self.advance_lane(place);
            }
            event
        };
        self.now = SimTime(key.at);
        Some((self.now, event))
    }

    /// The time of the earliest pending event.
    pub fn peek_time(&self) -> Option<SimTime> {
        let (key, _) = self.earliest();
        (!key.is_empty()).then_some(SimTime(key.at))
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

    /// Keys in lane `index`, its front included.
    #[cfg(test)]
    fn lane_len(&self, index: usize) -> usize {
        self.lanes[index].len() + usize::from(!self.fronts[index].is_empty())
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

    // A slot whose generation reaches the last one is retired, not freed:
    // the next push takes a new slot, and the retired slot's old id cancels
    // nothing.
    #[test]
    fn a_slot_at_the_last_generation_is_retired() {
        let mut queue = EventQueue::new();
        queue.slots.push(Slot {
            generation: u32::MAX - 1,
            event: "an earlier occupant",
        });
        queue.free.push(0);
        let last = queue.push(SimTime(1), "last occupant");
        assert_eq!(last.slot(), 0);
        assert_eq!(queue.pop(), Some((SimTime(1), "last occupant")));
        assert_eq!(queue.slots[0].generation, u32::MAX);
        assert!(queue.free.is_empty());
        let next = queue.push(SimTime(2), "next");
        assert_eq!(next.slot(), 1);
        assert_eq!(queue.cancel(last), None);
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.pop(), Some((SimTime(2), "next")));
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

    // Cancelled events in the calendar (pushed within its reach, never the
    // least) are swept like the heap's, and the sweep keeps the order of
    // the rest, in the calendar and in the heap its full buckets spill to.
    #[test]
    fn cancelled_calendar_events_are_swept_in_order() {
        let mut queue = EventQueue::new();
        let mut expected = Vec::new();
        let mut most_keys = 0;
        for index in 0..40_000u64 {
            // Spread over the calendar's reach (65 ms) and a little beyond.
            let at = SimTime(1 + index * 7_919 % 70_000);
            let id = queue.push(at, index);
            if index % 4 == 0 {
                expected.push((at, index));
            } else {
                assert_eq!(queue.cancel(id), Some(index));
            }
            most_keys = most_keys.max(queue.keys());
        }
        assert!(most_keys <= 2 * expected.len() + STALE_SWEEP_MIN + 1);
        expected.sort();
        let popped: Vec<_> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(popped, expected);
        assert_eq!(queue.keys(), 0);
    }

    // Counting the keys sums the calendar's buckets, so `cancel` counts them
    // only when a sweep may be due: while the live events outnumber the
    // stale keys, never. (It once counted on every cancel past 4,096 stale
    // keys: six times the instructions on this pattern.)
    #[test]
    fn keys_are_counted_for_a_sweep_only_when_one_may_be_due() {
        let mut queue = EventQueue::new();
        let live: Vec<_> = (0..20_000u64)
            .map(|index| queue.push(SimTime(10_000_000_000 + index), index))
            .collect();
        // Deadlines, each cancelled behind an older one: 9,998 stale keys.
        let mut armed = std::collections::VecDeque::new();
        for step in 0..10_000u64 {
            armed.push_back(queue.push_late(SimTime(1_000_000 + step), step));
            if armed.len() > 2 {
                let id = armed.remove(1).expect("three armed");
                assert_eq!(queue.cancel(id), Some(step - 1));
            }
        }
        assert_eq!(queue.len(), 20_002);
        assert!(queue.keys() - queue.len() > STALE_SWEEP_MIN);
        assert_eq!(queue.counted_for_sweep, 0);
        // Cancelling the live events makes the stale keys outnumber them:
        // swept, with the keys counted a few times on the way.
        for (index, id) in live.into_iter().enumerate() {
            assert_eq!(queue.cancel(id), Some(index as u64));
        }
        assert!(queue.keys() < 2 * STALE_SWEEP_MIN, "{} keys", queue.keys());
        assert!(
            (1..=100).contains(&queue.counted_for_sweep),
            "counted {} times",
            queue.counted_for_sweep
        );
        let popped: Vec<_> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(
            popped,
            [(SimTime(1_000_000), 0), (SimTime(1_009_999), 9_999)]
        );
    }

    // Scheduled events (no id) pop in `(time, sequence)` order with pushed
    // ones, within the calendar's reach and beyond it (where they take a
    // slot), and survive the sweeps of the stale keys around them (three
    // events in five are cancelled, so the stale keys outnumber the rest).
    #[test]
    fn scheduled_events_pop_in_order_among_pushed_ones() {
        let mut queue = EventQueue::new();
        let mut expected = Vec::new();
        for index in 0..20_000u64 {
            // Within one bucket, across the calendar and past its reach.
            let at = SimTime(1 + index * 7_919 % 90_000);
            match index % 5 {
                0 => {
                    queue.schedule(at, index);
                    expected.push((at, index));
                }
                1 => {
                    queue.push(at, index);
                    expected.push((at, index));
                }
                _ => {
                    let id = queue.push_late(at, index);
                    assert_eq!(queue.cancel(id), Some(index));
                }
            }
        }
        // The sweeps ran: stale keys are at most as many as the live ones
        // (8,000), where without sweeps 12,000 would stay.
        assert_eq!(queue.len(), expected.len());
        assert!(queue.keys() <= 2 * queue.len().max(STALE_SWEEP_MIN));
        // Sequence numbers break ties: sorting by (time, index) is push order.
        expected.sort();
        let popped: Vec<_> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(popped, expected);
        assert_eq!(queue.keys(), 0);
        assert!(queue.is_empty());
    }

    // A scheduled event takes no slot within the calendar's reach, and one
    // beyond it takes a slot that is freed when it pops.
    #[test]
    fn scheduled_events_within_reach_take_no_slot() {
        let mut queue = EventQueue::new();
        queue.schedule(SimTime(10), "soon");
        assert!(queue.slots.is_empty());
        queue.schedule(SimTime(10_000_000), "late");
        assert_eq!(queue.slots.len(), 1);
        assert_eq!(queue.pop(), Some((SimTime(10), "soon")));
        assert_eq!(queue.pop(), Some((SimTime(10_000_000), "late")));
        assert_eq!(queue.free, vec![0]);
        assert!(queue.is_empty());
    }

    // A delay pushed twice in a row claims a lane, later pushes of it join
    // that lane, and delays that do not repeat go to the heap; the pop
    // order is the same `(time, sequence)` order either way.
    #[test]
    fn repeated_delays_go_to_lanes_and_pop_by_time_then_sequence() {
        let mut queue = EventQueue::new();
        // Deadlines 50 ahead (late) and backoffs 30 ahead (ordinary), pushed
        // at times 0, 10, 20; random delays in between.
        let mut expected = Vec::new();
        for (step, now) in [0u64, 10, 20].into_iter().enumerate() {
            if now > 0 {
                queue.push(SimTime(now), (now, "tick"));
                assert_eq!(queue.pop(), Some((SimTime(now), (now, "tick"))));
            }
            queue.push_late(SimTime(now + 50), (now, "deadline"));
            queue.push_late(SimTime(now + 50), (now, "deadline 2"));
            queue.push_after(SimDuration(30), (now, "backoff"));
            queue.push_after(SimDuration(30), (now, "backoff 2"));
            queue.push(SimTime(now + 100 + step as u64), (now, "random"));
            expected.extend([
                (now + 50, (now, "deadline")),
                (now + 50, (now, "deadline 2")),
                (now + 30, (now, "backoff")),
                (now + 30, (now, "backoff 2")),
                (now + 100 + step as u64, (now, "random")),
            ]);
        }
        // Two lanes, one per repeated delay; the calendar holds the first
        // push of each and the random events.
        assert_eq!(queue.lanes_used, 2);
        assert_eq!(queue.tags[..2], [(50, true), (30, false)]);
        assert_eq!(queue.lane_len(0), 5);
        assert_eq!(queue.lane_len(1), 5);
        assert_eq!(queue.calendar.len(), 5);
        assert!(queue.heap.is_empty());
        // Late events pop after the ordinary events of their instant, each
        // kind in push order: a stable sort by (time, late) gives that.
        expected.sort_by_key(|&(at, (_, name))| (at, name.starts_with("deadline")));
        let popped: Vec<_> = std::iter::from_fn(|| queue.pop())
            .map(|(at, event)| (at.0, event))
            .collect();
        assert_eq!(popped, expected);
    }

    // A jittered delay never repeats, so it takes no lane from the delays
    // that do.
    #[test]
    fn delays_that_never_repeat_take_no_lane() {
        let mut queue = EventQueue::new();
        for delay in 1..100 {
            queue.push_after(SimDuration(delay), delay);
        }
        assert_eq!(queue.lanes_used, 0);
        assert_eq!(queue.calendar.len() + queue.heap.len(), 99);
        let popped: Vec<_> = std::iter::from_fn(|| queue.pop())
            .map(|(_, delay)| delay)
            .collect();
        assert_eq!(popped, (1..100).collect::<Vec<_>>());
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

    // Times up to the largest one keep their order: events however far
    // ahead pop by `(time, sequence)`, late ones last within their instant;
    // cancelling one forgets it.
    #[test]
    fn far_future_events_pop_in_time_order() {
        let mut queue = EventQueue::new();
        let last = SimTime(u64::MAX);
        queue.push_late(last, "late at the end");
        queue.push(last, "at the end");
        let cancelled = queue.push(SimTime(1 << 62), "cancelled");
        queue.push(SimTime((1 << 50) + 5), "far");
        queue.push(SimTime(1 << 40), "near");
        assert_eq!(queue.cancel(cancelled), Some("cancelled"));
        assert_eq!(queue.peek_time(), Some(SimTime(1 << 40)));
        assert_eq!(queue.pop(), Some((SimTime(1 << 40), "near")));
        assert_eq!(queue.pop(), Some((SimTime((1 << 50) + 5), "far")));
        assert_eq!(queue.pop_until(SimTime(u64::MAX - 1)), None);
        assert_eq!(queue.pop(), Some((last, "at the end")));
        assert_eq!(queue.pop(), Some((last, "late at the end")));
        assert_eq!(queue.pop(), None);
        assert!(queue.is_empty());
    }

    // `pop_until` pops only what is due by its bound and leaves the rest.
    #[test]
    fn pop_until_leaves_later_events() {
        let mut queue = EventQueue::new();
        queue.push(SimTime(10), "ten");
        queue.push_late(SimTime(20), "twenty");
        assert_eq!(queue.pop_until(SimTime(9)), None);
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.pop_until(SimTime(10)), Some((SimTime(10), "ten")));
        assert_eq!(queue.pop_until(SimTime(19)), None);
        assert_eq!(queue.pop_until(SimTime(20)), Some((SimTime(20), "twenty")));
        assert_eq!(queue.pop_until(SimTime(u64::MAX)), None);
    }

    /// A lane's ring keeps its keys in order through growth, wrap-around
    /// and `retain`, as the `VecDeque` it replaced did.
    #[test]
    fn a_lane_ring_is_a_fifo() {
        use std::collections::VecDeque;
        let key = |at: u64| Key {
            at,
            seq: at,
            slot: 0,
            generation: 1,
        };
        let mut ring = Ring::default();
        let mut model = VecDeque::new();
        assert_eq!(ring.pop_front().map(|k| k.at), None);
        for round in 0..50u64 {
            // Pushes outrun pops, so the ring wraps and grows.
            for step in 0..(round % 7 + 1) {
                let at = round * 100 + step;
                ring.push_back(key(at));
                model.push_back(at);
            }
            for _ in 0..(round % 5) {
                assert_eq!(ring.pop_front().map(|k| k.at), model.pop_front());
            }
            assert_eq!(ring.back().map(|k| k.at), model.back().copied());
            if round % 11 == 10 {
                ring.retain(|k| k.at % 3 != 0);
                model.retain(|at| at % 3 != 0);
            }
            assert_eq!(ring.len(), model.len());
            assert_eq!(
                ring.iter().map(|k| k.at).collect::<Vec<_>>(),
                Vec::from(model.clone())
            );
        }
        while let Some(at) = model.pop_front() {
            assert_eq!(ring.pop_front().map(|k| k.at), Some(at));
        }
        assert!(ring.is_empty() && ring.pop_front().is_none());
    }

    /// One step of a random schedule for the differential test.
    #[derive(Clone, Debug)]
    enum Op {
        Push(u64),
        PushLate(u64),
        PushAfter(u64),
        /// Cancel the pushed event with this index (modulo the count).
        Cancel(usize),
        Pop,
        /// `schedule`, no id.
        Schedule(u64),
    }

    /// Delays within one calendar bucket (many ties), across a few, about
    /// the calendar's reach (65.5 ms) on either side of it, and far beyond.
    fn delay() -> impl Strategy<Value = u64> {
        prop_oneof![
            3 => 0u64..50,
            2 => 0u64..5_000,
            1 => 60_000u64..70_000,
            1 => 255_000u64..270_000,
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => delay().prop_map(Op::Push),
            2 => delay().prop_map(Op::PushLate),
            // Few distinct delays, so that lanes are claimed and reused.
            2 => (0u64..4).prop_map(|step| Op::PushAfter(step * 10)),
            2 => any::<usize>().prop_map(Op::Cancel),
            3 => Just(Op::Pop),
            2 => delay().prop_map(Op::Schedule),
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
                    Op::PushAfter(delay) => {
                        let at = SimTime(lazy.now().0 + delay);
                        ids.push((lazy.push_after(SimDuration(delay), index), indexed.push(at, index)));
                    }
                    Op::Cancel(which) if !ids.is_empty() => {
                        let (lazy_id, indexed_id) = ids[which % ids.len()];
                        prop_assert_eq!(lazy.cancel(lazy_id), indexed.cancel(indexed_id));
                    }
                    Op::Cancel(_) => {}
                    Op::Pop => prop_assert_eq!(lazy.pop(), indexed.pop()),
                    Op::Schedule(delay) => {
                        let at = SimTime(lazy.now().0 + delay);
                        lazy.schedule(at, index);
                        indexed.push(at, index);
                    }
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
