//! The bulkhead of the chapter (section 8.4, class `Bulkhead`), exactly as
//! written: at most `max_concurrent` calls run at once, at most `max_queue`
//! more wait in a first-in, first-out queue, and any call beyond that is
//! rejected at once with `Reply::BulkheadFull`.
//!
//! Semantics, with the chapter's names in brackets:
//! - A call that finds fewer than `max_concurrent` calls running
//!   (`running < maxConcurrent`) starts at once (`run`).
//! - Otherwise, if the queue holds fewer than `max_queue` calls, it waits at
//!   the back of the queue (`queue.push`); otherwise it is rejected
//!   (`Queue full (rejected)`).
//! - When a running call ends, whatever its result (`finally`), its slot goes
//!   to the call at the front of the queue, which starts at once
//!   (`queue.shift()` then `run`). A freed slot is taken before any later
//!   call can see it, so while the queue is not empty every slot is busy.
//!
//! Counters mirror the chapter's `metrics`: `executed` (calls started,
//! at once or from the queue), `queued` (calls that had to wait) and
//! `rejected`; `offered` counts every call that entered the layer. The
//! running and waiting counts now, and their peaks, are in `Layer::state`.
//! (The chapter's `getMetrics` spreads `metrics` after `queued:
//! queue.length`, so its report shows the total `queued` count where it
//! meant the queue length; `state` keeps the two apart.)
//!
//! ## Cancellation and abandonment
//!
//! The chapter has no cancellation; the simulator's `Layer::on_cancel` adds
//! it. A cancelled waiting call leaves the queue (`cancelled_queued`); a
//! cancelled running call gives its slot to the next waiting call
//! (`cancelled_running`). With those, every offered call is accounted for:
//! `executed + rejected + cancelled_queued + queue length = offered`.
//!
//! A caller that *abandons* its call (an outer `timeout`, which answers
//! without cancelling) is invisible here, as in the chapter, where the
//! `Promise` of a queued call stays in the queue after `Promise.race` has
//! given up on it. The abandoned call keeps its place, later runs, holds a
//! slot for its full service time, and its result is dropped. Kept on
//! purpose as the chapter's behaviour; `chapter_queued_call_runs_after_its_caller_gave_up`
//! shows it.
//!
//! ## Bounding the wait
//!
//! Resilience4j's bulkhead bounds how long a call may wait for a slot
//! (`maxWaitDuration`); here that is `max_wait_ms`. A queued call returns
//! `Step::WaitWithTimer`: the model arms its timer without starting the
//! inner call and disarms it when the call is woken, so `on_timer` only ever
//! runs for a call still waiting, which leaves the queue and is answered
//! `Reply::BulkheadFull`.
//!
//! ## Why the layer keeps the running ids
//!
//! A woken call is forwarded by the model without another hook of this layer,
//! so its `CallState::holds_permit` cannot be set. The layer therefore keeps
//! the ids of the calls that hold a slot; the set is bounded by
//! `max_concurrent`.

use super::{CallId, Ctx, Layer, Reply, Step};
use crate::engine::SimDuration;
use crate::scenario::check::{self, join};
use crate::scenario::error::Invalid;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, VecDeque};

/// Bulkhead settings. Defaults are the chapter's: `max_concurrent` 10,
/// `max_queue` 100. JSON: `{"kind": "bulkhead", "max_concurrent": 10,
/// "max_queue": 100}`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BulkheadConfig {
    /// Calls that may run at once (`maxConcurrent`), in `[1, 1000000]`.
    #[serde(default = "max_concurrent_default")]
    pub max_concurrent: u32,
    /// Calls that may wait for a slot (`maxQueue`), in `[0, 10000000]`; 0
    /// rejects every call that finds all slots busy.
    #[serde(default = "max_queue_default")]
    pub max_queue: u32,
    /// The longest a call may wait for a slot before it is rejected with
    /// `bulkhead_full` (Resilience4j's `maxWaitDuration`), in `[1, 86400000]`
    /// ms; default none: it waits for ever, as in the chapter.
    #[serde(default)]
    pub max_wait_ms: Option<u64>,
}

fn max_concurrent_default() -> u32 {
    10
}

fn max_queue_default() -> u32 {
    100
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        BulkheadConfig {
            max_concurrent: max_concurrent_default(),
            max_queue: max_queue_default(),
            max_wait_ms: None,
        }
    }
}

impl BulkheadConfig {
    /// Checks the ranges; `path` names this policy in the file.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        check::within(
            &join(path, "max_concurrent"),
            self.max_concurrent,
            1,
            1_000_000,
        )?;
        check::within(&join(path, "max_queue"), self.max_queue, 0, 10_000_000)?;
        if let Some(max_wait_ms) = self.max_wait_ms {
            check::within(&join(path, "max_wait_ms"), max_wait_ms, 1, 86_400_000)?;
        }
        Ok(())
    }
}

/// What the bulkhead does with an offered call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkheadAdmission {
    /// A slot was free: the call runs now.
    Run,
    /// Every slot is busy: the call waits at the back of the queue.
    Queued,
    /// Every slot is busy and the queue is full: the call is rejected.
    Rejected,
}

/// The bulkhead's totals, named as in the chapter's `metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BulkheadCounters {
    /// Calls that entered the bulkhead.
    pub offered: u64,
    /// Calls started, at once or from the queue (`executed`).
    pub executed: u64,
    /// Calls that had to wait in the queue (`queued`).
    pub queued: u64,
    /// Calls rejected because the queue was full (`rejected`).
    pub rejected: u64,
    /// Waiting calls cancelled before they started.
    pub cancelled_queued: u64,
    /// Running calls cancelled before their result arrived.
    pub cancelled_running: u64,
}

/// The chapter's bulkhead as a pure state machine over call ids.
///
/// ```
/// use sim::policy::bulkhead::{Bulkhead, BulkheadAdmission, BulkheadConfig};
/// use sim::policy::CallId;
///
/// let config = BulkheadConfig { max_concurrent: 1, max_queue: 1, ..BulkheadConfig::default() };
/// let mut bulkhead = Bulkhead::new(&config);
/// assert_eq!(bulkhead.offer(CallId(1)), BulkheadAdmission::Run);
/// assert_eq!(bulkhead.offer(CallId(2)), BulkheadAdmission::Queued);
/// assert_eq!(bulkhead.offer(CallId(3)), BulkheadAdmission::Rejected);
/// // When call 1 ends, call 2 takes its slot at once.
/// assert_eq!(bulkhead.finish(CallId(1)), Some(CallId(2)));
/// assert_eq!((bulkhead.running(), bulkhead.queue_length()), (1, 0));
/// ```
#[derive(Clone, Debug)]
pub struct Bulkhead {
    max_concurrent: u32,
    max_queue: u32,
    /// The calls holding a slot; at most `max_concurrent`.
    running: BTreeSet<CallId>,
    /// The calls waiting for a slot, oldest first; at most `max_queue`.
    queue: VecDeque<CallId>,
    running_peak: u32,
    queue_length_peak: u32,
    counters: BulkheadCounters,
}

impl Bulkhead {
    /// An empty bulkhead with `config`'s sizes.
    pub fn new(config: &BulkheadConfig) -> Self {
        debug_assert!(config.max_concurrent >= 1);
        Bulkhead {
            max_concurrent: config.max_concurrent,
            max_queue: config.max_queue,
            running: BTreeSet::new(),
            queue: VecDeque::new(),
            running_peak: 0,
            queue_length_peak: 0,
            counters: BulkheadCounters::default(),
        }
    }

    /// Calls running now.
    pub fn running(&self) -> u32 {
        self.running.len() as u32
    }

    /// Calls waiting now.
    pub fn queue_length(&self) -> u32 {
        self.queue.len() as u32
    }

    /// The most calls that ever ran at once.
    pub fn running_peak(&self) -> u32 {
        self.running_peak
    }

    /// The longest the queue ever was.
    pub fn queue_length_peak(&self) -> u32 {
        self.queue_length_peak
    }

    /// The totals so far.
    pub fn counters(&self) -> BulkheadCounters {
        self.counters
    }

    /// Whether `id` holds a slot.
    pub fn is_running(&self, id: CallId) -> bool {
        self.running.contains(&id)
    }

    /// The waiting calls, oldest first.
    pub fn waiting(&self) -> impl Iterator<Item = CallId> + '_ {
        self.queue.iter().copied()
    }

    /// A call enters the bulkhead (the chapter's `execute`).
    pub fn offer(&mut self, id: CallId) -> BulkheadAdmission {
        debug_assert!(!self.running.contains(&id), "call offered twice");
        debug_assert!(!self.queue.contains(&id), "call offered twice");
        self.counters.offered += 1;
        let admission = if self.running() < self.max_concurrent {
            // A free slot means nothing waits: slots are handed on at once.
            debug_assert!(self.queue.is_empty());
            self.start(id);
            BulkheadAdmission::Run
        } else if self.queue_length() < self.max_queue {
            self.queue.push_back(id);
            self.counters.queued += 1;
            self.queue_length_peak = self.queue_length_peak.max(self.queue_length());
            BulkheadAdmission::Queued
        } else {
            self.counters.rejected += 1;
            BulkheadAdmission::Rejected
        };
        self.check();
        admission
    }

    /// The running call `id` ended, with any result (the chapter's
    /// `finally`). Returns the waiting call that now starts in its slot.
    pub fn finish(&mut self, id: CallId) -> Option<CallId> {
        let next = self.release(id);
        self.check();
        next
    }

    /// The call `id` was cancelled: a waiting call leaves the queue, a running
    /// call frees its slot. Returns the waiting call that now starts, if any.
    pub fn cancel(&mut self, id: CallId) -> Option<CallId> {
        let next = if let Some(position) = self.queue.iter().position(|&waiting| waiting == id) {
            self.queue.remove(position);
            self.counters.cancelled_queued += 1;
            None
        } else {
            self.counters.cancelled_running += 1;
            self.release(id)
        };
        self.check();
        next
    }

    fn start(&mut self, id: CallId) {
        debug_assert!(self.running() < self.max_concurrent);
        let inserted = self.running.insert(id);
        debug_assert!(inserted);
        self.counters.executed += 1;
        self.running_peak = self.running_peak.max(self.running());
    }

    fn release(&mut self, id: CallId) -> Option<CallId> {
        if !self.running.remove(&id) {
            debug_assert!(false, "a call that holds no slot ended");
            return None;
        }
        let next = self.queue.pop_front()?;
        self.start(next);
        Some(next)
    }

    /// The invariants: the bounds, slots handed on at once, and every offered
    /// call accounted for.
    fn check(&self) {
        debug_assert!(self.running() <= self.max_concurrent);
        debug_assert!(self.queue_length() <= self.max_queue);
        debug_assert!(self.queue.is_empty() || self.running() == self.max_concurrent);
        let counters = &self.counters;
        debug_assert_eq!(
            counters.executed
                + counters.rejected
                + counters.cancelled_queued
                + u64::from(self.queue_length()),
            counters.offered
        );
    }
}

/// The bulkhead as a stack layer: rejects with `Reply::BulkheadFull`, makes
/// queued calls wait (`Step::Wait`) and starts them through `Ctx::wake`.
pub struct BulkheadLayer {
    bulkhead: Bulkhead,
    max_wait: Option<SimDuration>,
    waited_too_long: u64,
}

impl BulkheadLayer {
    /// An empty bulkhead layer.
    pub fn new(config: &BulkheadConfig) -> Self {
        BulkheadLayer {
            bulkhead: Bulkhead::new(config),
            max_wait: config.max_wait_ms.map(SimDuration::from_ms),
            waited_too_long: 0,
        }
    }

    /// The state machine, for inspection.
    pub fn bulkhead(&self) -> &Bulkhead {
        &self.bulkhead
    }
}

impl Layer for BulkheadLayer {
    fn kind(&self) -> &'static str {
        "bulkhead"
    }

    fn on_start(&mut self, ctx: &mut Ctx) -> Step {
        match self.bulkhead.offer(ctx.id) {
            BulkheadAdmission::Run => Step::Forward,
            BulkheadAdmission::Queued => match self.max_wait {
                Some(max_wait) => Step::WaitWithTimer(max_wait),
                None => Step::Wait,
            },
            BulkheadAdmission::Rejected => Step::Complete(Reply::BulkheadFull),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx) -> Step {
        // Only a waiting call has a timer: waking it disarms the timer.
        debug_assert!(!self.bulkhead.is_running(ctx.id));
        self.bulkhead.cancel(ctx.id);
        self.waited_too_long += 1;
        Step::Complete(Reply::BulkheadFull)
    }

    fn on_result(&mut self, ctx: &mut Ctx, reply: Reply) -> Step {
        // Only a running call has an inner call that can answer.
        debug_assert!(self.bulkhead.is_running(ctx.id));
        if let Some(next) = self.bulkhead.finish(ctx.id) {
            ctx.wake.push(next);
        }
        Step::Complete(reply)
    }

    fn on_cancel(&mut self, ctx: &mut Ctx) {
        if let Some(next) = self.bulkhead.cancel(ctx.id) {
            ctx.wake.push(next);
        }
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let counters = self.bulkhead.counters();
        vec![
            ("offered", counters.offered),
            ("executed", counters.executed),
            ("queued", counters.queued),
            ("rejected", counters.rejected),
            ("cancelled_queued", counters.cancelled_queued),
            ("cancelled_running", counters.cancelled_running),
            ("waited_too_long", self.waited_too_long),
        ]
    }

    fn state(&self) -> serde_json::Value {
        let bulkhead = &self.bulkhead;
        serde_json::json!({
            "max_concurrent": bulkhead.max_concurrent,
            "max_queue": bulkhead.max_queue,
            "running": bulkhead.running(),
            "queue_length": bulkhead.queue_length(),
            "running_peak": bulkhead.running_peak(),
            "queue_length_peak": bulkhead.queue_length_peak(),
        })
    }
}

/// Drives layers through their hooks the way `model::world` does, for unit
/// tests of single layers and of small stacks.
#[cfg(test)]
pub(crate) mod harness {
    use crate::engine::{RngFactory, SimDuration, SimRng, SimTime};
    use crate::policy::{CallId, CallState, Ctx, Layer, Note, Reply, Step};
    use std::collections::BTreeMap;

    /// A clock, a random stream and the scratch state of every live call.
    pub(crate) struct Driver {
        pub(crate) now: SimTime,
        rng: SimRng,
        notes: Vec<Note>,
        calls: BTreeMap<CallId, CallState>,
        id_next: u64,
    }

    impl Driver {
        pub(crate) fn new() -> Self {
            Driver {
                now: SimTime::ZERO,
                rng: RngFactory::new(7).stream("harness"),
                notes: Vec::new(),
                calls: BTreeMap::new(),
                id_next: 1,
            }
        }

        pub(crate) fn advance_ms(&mut self, ms: u64) {
            self.now = self.now + SimDuration::from_ms(ms);
        }

        /// The notes layers made so far.
        pub(crate) fn notes(&mut self) -> Vec<Note> {
            std::mem::take(&mut self.notes)
        }

        /// A new call enters `layer` now: its id, the step and the woken ids.
        pub(crate) fn start(&mut self, layer: &mut dyn Layer) -> (CallId, Step, Vec<CallId>) {
            let id = CallId(self.id_next);
            self.id_next += 1;
            self.calls.insert(
                id,
                CallState {
                    started_at: self.now,
                    ..CallState::default()
                },
            );
            let (step, woken) = self.hook(layer, id, |layer, ctx| layer.on_start(ctx));
            (id, step, woken)
        }

        /// The inner call of `id` answers `reply`.
        pub(crate) fn result(
            &mut self,
            layer: &mut dyn Layer,
            id: CallId,
            reply: Reply,
        ) -> (Step, Vec<CallId>) {
            self.hook(layer, id, |layer, ctx| layer.on_result(ctx, reply))
        }

        /// An outer layer cancels `id`.
        pub(crate) fn cancel(&mut self, layer: &mut dyn Layer, id: CallId) -> Vec<CallId> {
            let ((), woken) = self.hook(layer, id, |layer, ctx| layer.on_cancel(ctx));
            self.calls.remove(&id);
            woken
        }

        /// The scratch state of a live call.
        pub(crate) fn call(&self, id: CallId) -> &CallState {
            &self.calls[&id]
        }

        fn hook<T>(
            &mut self,
            layer: &mut dyn Layer,
            id: CallId,
            hook: impl FnOnce(&mut dyn Layer, &mut Ctx) -> T,
        ) -> (T, Vec<CallId>) {
            let mut wake = Vec::new();
            let call = self.calls.get_mut(&id).expect("live call");
            let mut ctx = Ctx {
                now: self.now,
                id,
                call,
                rng: &mut self.rng,
                notes: &mut self.notes,
                wake: &mut wake,
            };
            let value = hook(layer, &mut ctx);
            (value, wake)
        }

        /// Forgets a call whose step completed it, as the model does.
        pub(crate) fn end(&mut self, id: CallId, step: Step) {
            if matches!(step, Step::Complete(_) | Step::CompleteCancelling(_)) {
                self.calls.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::harness::Driver;
    use super::*;
    use crate::policy::breaker::{BreakerLayer, BreakerStateName, ChapterConfig};
    use crate::policy::{Note, PolicySpec};
    use proptest::prelude::*;

    fn layer(max_concurrent: u32, max_queue: u32) -> BulkheadLayer {
        BulkheadLayer::new(&BulkheadConfig {
            max_concurrent,
            max_queue,
            max_wait_ms: None,
        })
    }

    const ERROR: Reply = Reply::Error { retryable: true };

    // The chapter's order: run while a slot is free, then queue, then reject.
    #[test]
    fn runs_up_to_max_concurrent_then_queues_then_rejects() {
        let mut layer = layer(2, 1);
        let mut driver = Driver::new();
        let steps: Vec<Step> = (0..4).map(|_| driver.start(&mut layer).1).collect();
        assert_eq!(
            steps,
            vec![
                Step::Forward,
                Step::Forward,
                Step::Wait,
                Step::Complete(Reply::BulkheadFull)
            ]
        );
        let counters = layer.bulkhead().counters();
        assert_eq!(
            (
                counters.offered,
                counters.executed,
                counters.queued,
                counters.rejected
            ),
            (4, 2, 1, 1)
        );
    }

    // A slot freed by any result goes to the oldest waiting call, at once.
    #[test]
    fn an_ended_call_starts_the_oldest_waiting_call() {
        let mut layer = layer(1, 10);
        let mut driver = Driver::new();
        let (first, _, _) = driver.start(&mut layer);
        let (second, _, _) = driver.start(&mut layer);
        let (third, _, _) = driver.start(&mut layer);
        let (step, woken) = driver.result(&mut layer, first, ERROR);
        assert_eq!((step, woken), (Step::Complete(ERROR), vec![second]));
        let (step, woken) = driver.result(&mut layer, second, Reply::Timeout);
        assert_eq!((step, woken), (Step::Complete(Reply::Timeout), vec![third]));
        let (step, woken) = driver.result(&mut layer, third, Reply::Success);
        assert_eq!((step, woken), (Step::Complete(Reply::Success), vec![]));
        assert_eq!(layer.bulkhead().running(), 0);
        assert_eq!(layer.bulkhead().counters().executed, 3);
    }

    // A cancelled waiting call leaves the queue; nobody starts in its place.
    #[test]
    fn cancelling_a_waiting_call_removes_it_from_the_queue() {
        let mut layer = layer(1, 10);
        let mut driver = Driver::new();
        let (first, _, _) = driver.start(&mut layer);
        let (second, _, _) = driver.start(&mut layer);
        let (third, _, _) = driver.start(&mut layer);
        assert_eq!(driver.cancel(&mut layer, second), vec![]);
        assert_eq!(layer.bulkhead().waiting().collect::<Vec<_>>(), vec![third]);
        assert_eq!(
            driver.result(&mut layer, first, Reply::Success).1,
            vec![third]
        );
        assert_eq!(layer.bulkhead().counters().cancelled_queued, 1);
    }

    // A cancelled running call gives its slot to the oldest waiting call.
    #[test]
    fn cancelling_a_running_call_frees_its_slot_for_the_next() {
        let mut layer = layer(1, 10);
        let mut driver = Driver::new();
        let (first, _, _) = driver.start(&mut layer);
        let (second, _, _) = driver.start(&mut layer);
        assert_eq!(driver.cancel(&mut layer, first), vec![second]);
        assert!(layer.bulkhead().is_running(second));
        assert_eq!(driver.cancel(&mut layer, second), vec![]);
        assert_eq!(layer.bulkhead().running(), 0);
        assert_eq!(layer.bulkhead().counters().cancelled_running, 2);
    }

    // The chapter's weakness: a waiting call whose caller gave up (an outer
    // timeout abandons, it does not cancel) stays queued however long it
    // waits, then runs and holds a slot ahead of callers that are still there.
    #[test]
    fn chapter_queued_call_runs_after_its_caller_gave_up() {
        let mut layer = layer(1, 10);
        let mut driver = Driver::new();
        let (running, _, _) = driver.start(&mut layer);
        let (abandoned, step, _) = driver.start(&mut layer);
        assert_eq!(step, Step::Wait);
        // The caller of `abandoned` times out here; the layer sees nothing.
        driver.advance_ms(3_600_000);
        let (live, _, _) = driver.start(&mut layer);
        let woken = driver.result(&mut layer, running, Reply::Success).1;
        assert_eq!(woken, vec![abandoned]);
        assert!(layer.bulkhead().is_running(abandoned));
        assert_eq!(layer.bulkhead().waiting().collect::<Vec<_>>(), vec![live]);
    }

    // With max_queue 0 every call that finds the slots busy is rejected (the
    // chapter's `options.maxQueue || 100` cannot express 0: it becomes 100).
    #[test]
    fn zero_max_queue_rejects_when_every_slot_is_busy() {
        let mut layer = layer(1, 0);
        let mut driver = Driver::new();
        assert_eq!(driver.start(&mut layer).1, Step::Forward);
        assert_eq!(
            driver.start(&mut layer).1,
            Step::Complete(Reply::BulkheadFull)
        );
    }

    // `state` reports the counts now and their peaks, apart from the totals.
    #[test]
    fn state_reports_running_queue_length_and_peaks() {
        let mut layer = layer(2, 5);
        let mut driver = Driver::new();
        let ids: Vec<CallId> = (0..5).map(|_| driver.start(&mut layer).0).collect();
        driver.cancel(&mut layer, ids[4]);
        driver.result(&mut layer, ids[0], Reply::Success);
        assert_eq!(
            layer.state(),
            serde_json::json!({
                "max_concurrent": 2, "max_queue": 5,
                "running": 2, "queue_length": 1,
                "running_peak": 2, "queue_length_peak": 3,
            })
        );
        assert_eq!(
            layer.counters(),
            vec![
                ("offered", 5),
                ("executed", 3),
                ("queued", 3),
                ("rejected", 0),
                ("cancelled_queued", 1),
                ("cancelled_running", 0),
                ("waited_too_long", 0),
            ]
        );
    }

    // `{"kind": "bulkhead"}` gets the chapter's defaults; ranges are checked
    // with the field's path, the maximum wait's too.
    #[test]
    fn scenario_json_defaults_and_ranges() {
        let spec: PolicySpec = serde_json::from_str(r#"{"kind": "bulkhead"}"#).unwrap();
        assert_eq!(spec, PolicySpec::Bulkhead(BulkheadConfig::default()));
        assert_eq!(BulkheadConfig::default().max_concurrent, 10);
        assert_eq!(BulkheadConfig::default().max_queue, 100);
        let spec: PolicySpec =
            serde_json::from_str(r#"{"kind": "bulkhead", "max_concurrent": 0, "max_queue": 0}"#)
                .unwrap();
        assert_eq!(
            spec.validate("clients[0].policies[1]")
                .unwrap_err()
                .to_string(),
            "clients[0].policies[1].max_concurrent: must be in [1, 1000000] (got 0)"
        );
        let spec: PolicySpec =
            serde_json::from_str(r#"{"kind": "bulkhead", "max_wait_ms": 0}"#).unwrap();
        assert_eq!(
            spec.validate("p").unwrap_err().to_string(),
            "p.max_wait_ms: must be in [1, 86400000] (got 0)"
        );
        let unknown =
            serde_json::from_str::<PolicySpec>(r#"{"kind": "bulkhead", "max_wait": 100}"#);
        assert!(unknown
            .unwrap_err()
            .to_string()
            .contains("unknown field `max_wait`"));
    }

    // The chapter's ResilientService is the stack [bulkhead, circuit_breaker]:
    // the bulkhead admits first, the breaker then fails fast inside the slot,
    // so a breaker rejection frees the slot at once and calls the bulkhead
    // rejects never reach the breaker.
    #[test]
    fn resilient_service_is_a_bulkhead_around_a_breaker() {
        let mut bulkhead = layer(2, 1);
        let mut breaker = BreakerLayer::new(&ChapterConfig {
            failure_threshold: 2,
            success_threshold: 1,
            open_timeout_ms: 1_000,
        });
        let mut driver = Driver::new();
        // Outer id -> inner (breaker) id, as the model keeps frames.
        let mut inner = std::collections::BTreeMap::new();
        let forward =
            |driver: &mut Driver,
             breaker: &mut BreakerLayer,
             outer: CallId,
             inner: &mut std::collections::BTreeMap<CallId, CallId>| {
                let (id, step, _) = driver.start(breaker);
                driver.end(id, step);
                inner.insert(outer, id);
                step
            };

        let (a, step, _) = driver.start(&mut bulkhead);
        assert_eq!(step, Step::Forward);
        assert_eq!(
            forward(&mut driver, &mut breaker, a, &mut inner),
            Step::Forward
        );
        let (b, _, _) = driver.start(&mut bulkhead);
        assert_eq!(
            forward(&mut driver, &mut breaker, b, &mut inner),
            Step::Forward
        );
        let (c, step, _) = driver.start(&mut bulkhead);
        assert_eq!(step, Step::Wait);
        let (_, step, _) = driver.start(&mut bulkhead);
        assert_eq!(step, Step::Complete(Reply::BulkheadFull));
        // Calls the bulkhead rejected or queued never asked the breaker.
        assert_eq!(breaker.counters()[0], ("requests", 2));

        // a and b fail: the breaker trips; each failure frees a slot.
        let step = driver.result(&mut breaker, inner[&a], ERROR).0;
        assert_eq!(step, Step::Complete(ERROR));
        let (step, woken) = driver.result(&mut bulkhead, a, ERROR);
        assert_eq!((step, woken.clone()), (Step::Complete(ERROR), vec![c]));
        assert_eq!(
            forward(&mut driver, &mut breaker, c, &mut inner),
            Step::Forward
        );
        driver.result(&mut breaker, inner[&b], ERROR);
        assert_eq!(
            driver.notes(),
            vec![Note::BreakerTransition {
                from: BreakerStateName::Closed,
                to: BreakerStateName::Open
            }]
        );
        assert_eq!(driver.result(&mut bulkhead, b, ERROR).1, vec![]);

        // While open, an admitted call fails fast and gives its slot back at once.
        let (d, step, _) = driver.start(&mut bulkhead);
        assert_eq!(step, Step::Forward);
        assert_eq!(
            forward(&mut driver, &mut breaker, d, &mut inner),
            Step::Complete(Reply::BreakerOpen)
        );
        let (step, _) = driver.result(&mut bulkhead, d, Reply::BreakerOpen);
        assert_eq!(step, Step::Complete(Reply::BreakerOpen));
        assert_eq!(bulkhead.bulkhead().running(), 1);
        assert!(bulkhead.bulkhead().is_running(c));
    }

    #[derive(Clone, Copy, Debug)]
    enum Action {
        Advance(u64),
        Start,
        Success(usize),
        Failure(usize),
        Timeout(usize),
        Cancel(usize),
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            1 => (0u64..100).prop_map(Action::Advance),
            4 => Just(Action::Start),
            1 => any::<usize>().prop_map(Action::Success),
            1 => any::<usize>().prop_map(Action::Failure),
            1 => any::<usize>().prop_map(Action::Timeout),
            1 => any::<usize>().prop_map(Action::Cancel),
        ]
    }

    proptest! {
        // Over any sequence of starts, results and cancellations (of running
        // or waiting calls): at most max_concurrent run and max_queue wait,
        // every offered call is accounted for, and the woken calls are exactly
        // the waiting ones, oldest first.
        #[test]
        fn bounds_accounting_and_fifo_wakeups_hold(
            max_concurrent in 1u32..5,
            max_queue in 0u32..5,
            actions in proptest::collection::vec(action(), 1..300),
        ) {
            let mut layer = layer(max_concurrent, max_queue);
            let mut driver = Driver::new();
            let mut running: Vec<CallId> = Vec::new();
            let mut waiting: VecDeque<CallId> = VecDeque::new();
            let mut offered = 0u64;
            for action in actions {
                let (ended, reply) = match action {
                    Action::Advance(ms) => { driver.advance_ms(ms); (None, None) }
                    Action::Start => {
                        offered += 1;
                        let (id, step, woken) = driver.start(&mut layer);
                        prop_assert!(woken.is_empty());
                        match step {
                            Step::Forward => running.push(id),
                            Step::Wait => waiting.push_back(id),
                            Step::Complete(Reply::BulkheadFull) => {
                                prop_assert_eq!(running.len() as u32, max_concurrent);
                                prop_assert_eq!(waiting.len() as u32, max_queue);
                            }
                            other => prop_assert!(false, "unexpected step {:?}", other),
                        }
                        (None, None)
                    }
                    Action::Success(pick) if !running.is_empty() => {
                        (Some(running.swap_remove(pick % running.len())), Some(Reply::Success))
                    }
                    Action::Failure(pick) if !running.is_empty() => {
                        (Some(running.swap_remove(pick % running.len())), Some(ERROR))
                    }
                    Action::Timeout(pick) if !running.is_empty() => {
                        (Some(running.swap_remove(pick % running.len())), Some(Reply::Timeout))
                    }
                    Action::Cancel(pick) if !running.is_empty() || !waiting.is_empty() => {
                        let pick = pick % (running.len() + waiting.len());
                        let id = if pick < running.len() {
                            running.swap_remove(pick)
                        } else {
                            waiting.remove(pick - running.len()).expect("in range")
                        };
                        let was_running = layer.bulkhead().is_running(id);
                        let woken = driver.cancel(&mut layer, id);
                        if was_running {
                            let expected: Vec<CallId> = waiting.pop_front().into_iter().collect();
                            running.extend(expected.iter().copied());
                            prop_assert_eq!(woken, expected);
                        } else {
                            prop_assert!(woken.is_empty());
                        }
                        (None, None)
                    }
                    _ => (None, None),
                };
                if let (Some(id), Some(reply)) = (ended, reply) {
                    let (step, woken) = driver.result(&mut layer, id, reply);
                    driver.end(id, step);
                    prop_assert_eq!(step, Step::Complete(reply));
                    let expected: Vec<CallId> = waiting.pop_front().into_iter().collect();
                    running.extend(expected.iter().copied());
                    prop_assert_eq!(woken, expected);
                }
                let bulkhead = layer.bulkhead();
                prop_assert!(bulkhead.running() <= max_concurrent);
                prop_assert!(bulkhead.queue_length() <= max_queue);
                prop_assert_eq!(bulkhead.running() as usize, running.len());
                prop_assert_eq!(bulkhead.waiting().collect::<Vec<_>>(), Vec::from(waiting.clone()));
                let counters = bulkhead.counters();
                prop_assert_eq!(counters.offered, offered);
                prop_assert_eq!(
                    counters.executed + counters.rejected
                        + u64::from(bulkhead.queue_length()) + counters.cancelled_queued,
                    offered
                );
            }
        }
    }
}
