//! Drives one policy alone, outside any scenario, for `sim policy`: a user
//! checking a policy by hand, or a test pinning its exact behaviour.
//!
//! The driver plays the model's part for a single layer. It reads a list of
//! timed events (a call starts, its inner call answers, time passes), calls
//! the layer's hooks, and plays the inner call itself: after `Forward`,
//! `ForwardAfter` (once the delay has passed) or `ForwardWithTimer` an inner
//! call is outstanding, and the next result event for that call is its
//! answer. Timers that fall due before an event's time fire first, in
//! deadline order (ties in the order they were armed), with `now` at their
//! deadline. A timer due at the very time of an event fires after it, as in
//! a run (`engine::queue`, "deadlines fire last within an instant"): an
//! answer at the deadline wins. A `tick` lets the timers due at its time
//! fire too. Delayed inner calls due at an event's time start before it. Invocations the layer wakes (`Ctx::wake`) start their inner call
//! at once, as the model does.
//!
//! It works through `PolicySpec` and the `Layer` trait only, so every policy,
//! present and future, can be driven with no code here.
//!
//! ## Why results for finished calls are errors
//!
//! In a run, a late answer to a call its layer has completed (a timeout fired)
//! is dropped without any hook being called. Here there is nothing to show
//! for it, and an event naming a finished call is far more often a mistake in
//! the events file, so it is rejected with the event's path.

use super::{ms_value, CallId, CallState, Ctx, Layer, Note, PolicySpec, Reply, Step};
use crate::engine::{RngFactory, SimDuration, SimRng, SimTime};
use crate::scenario::check::{item, join};
use crate::scenario::error::Invalid;
use crate::scenario::{parse_json_strict, ScenarioError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most events one input may hold.
pub const EVENTS_MAX: usize = 100_000;

/// The latest `at_ms` an event may have: about 31 years.
pub const AT_MS_MAX: f64 = 1e12;

/// Added to a timer's order in `Driver::due`, so that timers sort after
/// delayed starts due at the same instant.
const LATE_SEQUENCE_BASE: u64 = 1 << 63;

/// What happens at one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventName {
    /// A call enters the layer (`on_start`).
    Start,
    /// The inner call succeeded (`on_result` with `success`).
    Success,
    /// The same as `success`: the latency is `at_ms` minus the call's start,
    /// so a slow success is a success at a later time.
    SlowSuccess,
    /// The inner call failed with a retryable server error.
    Failure,
    /// The inner call failed with a client error (4xx), not retryable.
    ClientError,
    /// The inner call answered `timeout` (an inner timeout layer).
    Timeout,
    /// The service's queue was full.
    QueueFull,
    /// An inner circuit breaker rejected the call.
    BreakerOpen,
    /// An inner concurrency limit rejected the call.
    BulkheadFull,
    /// An inner fallback answered.
    Fallback,
    /// The inner attempt was accepted by a service instance (`on_connected`).
    Connected,
    /// An outer layer cancelled the call (`on_cancel`).
    Cancel,
    /// Nothing but the passing of time: fires the timers due by then.
    Tick,
}

impl EventName {
    /// The inner call's answer this event stands for, if it is one.
    pub fn reply(self) -> Option<Reply> {
        match self {
            EventName::Success | EventName::SlowSuccess => Some(Reply::Success),
            EventName::Failure => Some(Reply::Error { retryable: true }),
            EventName::ClientError => Some(Reply::Error { retryable: false }),
            EventName::Timeout => Some(Reply::Timeout),
            EventName::QueueFull => Some(Reply::QueueFull),
            EventName::BreakerOpen => Some(Reply::BreakerOpen),
            EventName::BulkheadFull => Some(Reply::BulkheadFull),
            EventName::Fallback => Some(Reply::Fallback),
            EventName::Start | EventName::Connected | EventName::Cancel | EventName::Tick => None,
        }
    }

    /// The snake_case name, as written in events files and output.
    pub fn name(self) -> &'static str {
        match self {
            EventName::Start => "start",
            EventName::Success => "success",
            EventName::SlowSuccess => "slow_success",
            EventName::Failure => "failure",
            EventName::ClientError => "client_error",
            EventName::Timeout => "timeout",
            EventName::QueueFull => "queue_full",
            EventName::BreakerOpen => "breaker_open",
            EventName::BulkheadFull => "bulkhead_full",
            EventName::Fallback => "fallback",
            EventName::Connected => "connected",
            EventName::Cancel => "cancel",
            EventName::Tick => "tick",
        }
    }
}

/// One entry of an events file, as written:
/// `{"at_ms": 0, "call": 1, "event": "start"}`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    at_ms: f64,
    #[serde(default)]
    call: Option<u64>,
    event: EventName,
}

/// One checked event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// When it happens.
    pub at: SimTime,
    /// The call it concerns; `None` only for a tick.
    pub call: Option<CallId>,
    /// What happens.
    pub name: EventName,
}

/// What a line reports the layer decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The hook's `Step`.
    Step(Step),
    /// The layer woke this call: its inner call starts now.
    Woken,
    /// `on_cancel` ran; the call is over.
    Cancelled,
}

/// One output line: a hook call (or a wakeup) and the layer afterwards.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// When the hook ran (a timer runs at its deadline).
    pub at: SimTime,
    /// The call.
    pub call: CallId,
    /// The event's name, or `timer` (`on_timer`) or `wake` (a wakeup).
    pub event: &'static str,
    /// What the layer decided.
    pub decision: Decision,
    /// `Layer::state()` after the hook.
    pub state: serde_json::Value,
    /// `Layer::counters()` after the hook.
    pub counters: Vec<(&'static str, u64)>,
}

#[derive(Serialize)]
struct LineJson<'a> {
    at_ms: serde_json::Value,
    call: u64,
    event: &'a str,
    decision: DecisionJson,
    state: &'a serde_json::Value,
    counters: Counters<'a>,
}

/// Counters as a JSON object in the layer's own order.
struct Counters<'a>(&'a [(&'static str, u64)]);

impl Serialize for Counters<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct DecisionJson {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    delay_ms: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply: Option<&'static str>,
}

/// A reply's name in output: the `ReplyKind` name, with a non-retryable
/// error told apart as `client_error`.
pub fn reply_name(reply: Reply) -> &'static str {
    match reply {
        Reply::Success => "success",
        Reply::Fallback => "fallback",
        Reply::Error { retryable: true } => "error",
        Reply::Error { retryable: false } => "client_error",
        Reply::Timeout => "timeout",
        Reply::BreakerOpen => "breaker_open",
        Reply::QueueFull => "queue_full",
        Reply::BulkheadFull => "bulkhead_full",
    }
}

impl Decision {
    fn json(self) -> DecisionJson {
        let plain = |kind| DecisionJson {
            kind,
            delay_ms: None,
            timeout_ms: None,
            reply: None,
        };
        let ms = |duration: SimDuration| Some(ms_value(duration.as_micros()));
        match self {
            Decision::Step(Step::Forward) => plain("forward"),
            Decision::Step(Step::ForwardAfter(delay)) => DecisionJson {
                delay_ms: ms(delay),
                ..plain("forward_after")
            },
            Decision::Step(Step::ForwardWithTimer(timeout)) => DecisionJson {
                timeout_ms: ms(timeout),
                ..plain("forward_with_timer")
            },
            Decision::Step(Step::Complete(reply)) => DecisionJson {
                reply: Some(reply_name(reply)),
                ..plain("complete")
            },
            Decision::Step(Step::CompleteCancelling(reply)) => DecisionJson {
                reply: Some(reply_name(reply)),
                ..plain("complete_cancelling")
            },
            Decision::Step(Step::Wait) => plain("wait"),
            Decision::Step(Step::WaitWithTimer(deadline)) => DecisionJson {
                timeout_ms: ms(deadline),
                ..plain("wait_with_timer")
            },
            Decision::Woken => plain("woken"),
            Decision::Cancelled => plain("cancelled"),
        }
    }
}

impl Line {
    /// The line as one compact JSON object, keys in the documented order:
    /// `at_ms`, `call`, `event`, `decision`, `state`, `counters`.
    pub fn to_json(&self) -> String {
        let line = LineJson {
            at_ms: ms_value(self.at.as_micros()),
            call: self.call.0,
            event: self.event,
            decision: self.decision.json(),
            state: &self.state,
            counters: Counters(&self.counters),
        };
        serde_json::to_string(&line).expect("a line serialises")
    }
}

/// Reads a policy config: one object as in a scenario's `policies` array,
/// whose `kind` must be `name`. Errors name `file` and the JSON path.
pub fn parse_config(file: &str, bytes: &[u8], name: &str) -> Result<PolicySpec, ScenarioError> {
    let spec: PolicySpec = parse_json_strict(file, bytes)?;
    let invalid = |invalid| ScenarioError::Invalid {
        file: file.to_string(),
        invalid,
    };
    let kind = spec.kind();
    if kind != name {
        return Err(invalid(Invalid::new(
            "kind",
            format!("must be {name:?}, the policy named on the command line (got {kind:?})"),
        )));
    }
    let parts = spec.parts();
    if parts.len() != 1 {
        return Err(invalid(Invalid::new(
            "kind",
            format!(
                "{kind} stands for {} policies; drive each of them on its own ({})",
                parts.len(),
                parts
                    .iter()
                    .map(PolicySpec::kind)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )));
    }
    spec.validate("").map_err(invalid)?;
    Ok(spec)
}

/// Reads an events file: a JSON array of events whose times never decrease.
/// Errors name `file` and the JSON path (`[3].at_ms`).
pub fn parse_events(file: &str, bytes: &[u8]) -> Result<Vec<Event>, ScenarioError> {
    let raw: Vec<RawEvent> = read_events(file, bytes, |event: &RawEvent| event.at_ms)?;
    check_events(&raw).map_err(|invalid| ScenarioError::Invalid {
        file: file.to_string(),
        invalid,
    })
}

/// Reads the events file of any driver (policies, checks, routers): a JSON
/// array of at most `EVENTS_MAX` events whose `at_ms` never decreases.
/// Errors name `file` and the JSON path (`[3].at_ms`).
pub fn read_events<T: serde::de::DeserializeOwned + Serialize>(
    file: &str,
    bytes: &[u8],
    at_ms: impl Fn(&T) -> f64,
) -> Result<Vec<T>, ScenarioError> {
    let events: Vec<T> = parse_json_strict(file, bytes)?;
    let invalid = |invalid| ScenarioError::Invalid {
        file: file.to_string(),
        invalid,
    };
    check_event_count("", events.len()).map_err(invalid)?;
    for (index, pair) in events.windows(2).enumerate() {
        let (before_ms, after_ms) = (at_ms(&pair[0]), at_ms(&pair[1]));
        if after_ms < before_ms {
            return Err(invalid(Invalid::new(
                join(&item("", index + 1), "at_ms"),
                format!(
                    "must not be before the previous event's at_ms {before_ms} (got {after_ms})"
                ),
            )));
        }
    }
    Ok(events)
}

/// Refuses an events list (of any driver: policies, checks, routers) longer
/// than `EVENTS_MAX`; `path` is where the message puts it.
pub fn check_event_count(path: &str, count: usize) -> Result<(), Invalid> {
    if count > EVENTS_MAX {
        return Err(Invalid::new(
            path,
            format!("must hold at most {EVENTS_MAX} events (got {count})"),
        ));
    }
    Ok(())
}

/// Checks each event of an events list already in order (`read_events`).
fn check_events(raw: &[RawEvent]) -> Result<Vec<Event>, Invalid> {
    let mut events = Vec::with_capacity(raw.len());
    for (index, event) in raw.iter().enumerate() {
        let path = item("", index);
        let at_path = join(&path, "at_ms");
        crate::scenario::check::within_f64(&at_path, event.at_ms, 0.0, AT_MS_MAX)?;
        let call_path = join(&path, "call");
        let call = match (event.event, event.call) {
            (EventName::Tick, None) => None,
            (EventName::Tick, Some(_)) => {
                return Err(Invalid::new(call_path, "must be left out for a tick"));
            }
            (_, Some(call)) => Some(CallId(call)),
            (name, None) => {
                return Err(Invalid::new(
                    call_path,
                    format!("is required for a {} event", name.name()),
                ));
            }
        };
        events.push(Event {
            at: SimTime(SimDuration::from_ms_f64(event.at_ms).as_micros()),
            call,
            name: event.event,
        });
    }
    Ok(events)
}

/// Drives a fresh layer built from `spec` through `events`, with the random
/// stream `policy` of `seed`, and returns one line per hook call.
pub fn drive(spec: &PolicySpec, events: &[Event], seed: u64) -> Result<Vec<Line>, Invalid> {
    // `parse_config` refuses composites, whose parts are driven one at a time.
    let mut layers = spec.build();
    if layers.len() != 1 {
        return Err(Invalid::new(
            "kind",
            format!("{} is not a single policy", spec.kind()),
        ));
    }
    let mut driver = Driver::new(layers.remove(0), RngFactory::new(seed).stream("policy"));
    for (index, event) in events.iter().enumerate() {
        driver.feed(index, event)?;
    }
    Ok(driver.lines)
}

/// One call through the layer.
struct Call {
    state: CallState,
    done: bool,
    timer: Option<(SimTime, u64)>,
    /// The timer is a waiting deadline, dropped when the call is woken.
    timer_until_woken: bool,
    delayed_start: Option<(SimTime, u64)>,
}

/// Something due later.
#[derive(Clone, Copy, Debug)]
enum Due {
    /// A call's timer (`ForwardWithTimer`).
    Timer(CallId),
    /// A call's delayed inner call (`ForwardAfter`).
    Start(CallId),
}

/// Plays the model's part for one layer.
pub struct Driver {
    layer: Box<dyn Layer>,
    rng: SimRng,
    now: SimTime,
    calls: BTreeMap<CallId, Call>,
    /// Timers and delayed starts by `(deadline, order armed)`.
    due: BTreeMap<(SimTime, u64), Due>,
    sequence: u64,
    notes: Vec<Note>,
    wake: Vec<CallId>,
    lines: Vec<Line>,
}

impl Driver {
    /// A driver for `layer`, drawing from `rng`.
    pub fn new(layer: Box<dyn Layer>, rng: SimRng) -> Self {
        Driver {
            layer,
            rng,
            now: SimTime::ZERO,
            calls: BTreeMap::new(),
            due: BTreeMap::new(),
            sequence: 0,
            notes: Vec::new(),
            wake: Vec::new(),
            lines: Vec::new(),
        }
    }

    /// The lines so far.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// The earliest pending timer or delayed inner call, if any: what a
    /// tick at that time would run.
    pub fn next_due(&self) -> Option<SimTime> {
        self.due.keys().next().map(|(at, _)| *at)
    }

    /// Inner calls of call `id` started and not yet answered; 0 for a call
    /// that has not started or has completed.
    pub fn outstanding(&self, id: CallId) -> u32 {
        match self.calls.get(&id) {
            Some(call) if !call.done => call.state.outstanding,
            _ => 0,
        }
    }

    /// Feeds event number `index`: first the timers due before its time
    /// (at its time too for a `tick`) and the delayed inner calls due by
    /// then, then the event itself.
    pub fn feed(&mut self, index: usize, event: &Event) -> Result<(), Invalid> {
        debug_assert!(event.at >= self.now, "events are checked to be in order");
        self.run_due(event.at, event.name == EventName::Tick);
        self.now = event.at;
        let Some(id) = event.call else {
            debug_assert_eq!(event.name, EventName::Tick);
            return Ok(());
        };
        let call_path = join(&item("", index), "call");
        let name = event.name.name();
        if event.name == EventName::Start {
            if self.calls.contains_key(&id) {
                return Err(Invalid::new(
                    call_path,
                    format!("call {} has already started", id.0),
                ));
            }
            self.calls.insert(
                id,
                Call {
                    state: CallState {
                        started_at: self.now,
                        ..CallState::default()
                    },
                    done: false,
                    timer: None,
                    timer_until_woken: false,
                    delayed_start: None,
                },
            );
            let step = self.hook(id, |layer, ctx| layer.on_start(ctx));
            self.apply(id, name, step);
            return Ok(());
        }
        let call = self.live_call(id, &call_path)?;
        if event.name != EventName::Cancel {
            Self::require_outstanding(call, id, &call_path)?;
        }
        match event.name {
            EventName::Cancel => {
                self.hook(id, |layer, ctx| layer.on_cancel(ctx));
                self.finish(id);
                self.report(id, name, Decision::Cancelled);
            }
            EventName::Connected => {
                let step = self.hook(id, |layer, ctx| layer.on_connected(ctx));
                self.apply(id, name, step);
            }
            _ => {
                let reply = event.name.reply().expect("a result event");
                self.call_mut(id).state.outstanding -= 1;
                let step = self.hook(id, |layer, ctx| layer.on_result(ctx, reply));
                self.apply(id, name, step);
            }
        }
        Ok(())
    }

    fn live_call(&self, id: CallId, path: &str) -> Result<&Call, Invalid> {
        match self.calls.get(&id) {
            None => Err(Invalid::new(path, format!("call {} has not started", id.0))),
            Some(call) if call.done => Err(Invalid::new(
                path,
                format!("call {} has already completed", id.0),
            )),
            Some(call) => Ok(call),
        }
    }

    fn require_outstanding(call: &Call, id: CallId, path: &str) -> Result<(), Invalid> {
        if call.state.outstanding > 0 {
            return Ok(());
        }
        let message = match call.delayed_start {
            Some((at, _)) => format!(
                "call {} has no inner call outstanding (its next one starts at {} ms)",
                id.0,
                ms_value(at.as_micros())
            ),
            None => format!("call {} has no inner call outstanding", id.0),
        };
        Err(Invalid::new(path, message))
    }

    fn call_mut(&mut self, id: CallId) -> &mut Call {
        self.calls.get_mut(&id).expect("known call")
    }

    /// Fires every timer and starts every delayed inner call due at or
    /// before `until`, in deadline order, except timers due at `until`
    /// itself unless `timers_at_until`: those wait for the event at `until`
    /// (delayed starts sort before timers at one instant, see `schedule`).
    fn run_due(&mut self, until: SimTime, timers_at_until: bool) {
        while let Some(entry) = self.due.first_entry() {
            let (at, sequence) = *entry.key();
            if at > until || (at == until && sequence >= LATE_SEQUENCE_BASE && !timers_at_until) {
                break;
            }
            let due = entry.remove();
            debug_assert!(at >= self.now);
            self.now = at;
            match due {
                Due::Timer(id) => {
                    self.call_mut(id).timer = None;
                    let step = self.hook(id, |layer, ctx| layer.on_timer(ctx));
                    self.apply(id, "timer", step);
                }
                Due::Start(id) => {
                    let call = self.call_mut(id);
                    call.delayed_start = None;
                    call.state.outstanding += 1;
                }
            }
        }
    }

    /// Runs one hook for call `id` with a fresh context.
    fn hook<T>(&mut self, id: CallId, hook: impl FnOnce(&mut dyn Layer, &mut Ctx) -> T) -> T {
        let call = self.calls.get_mut(&id).expect("known call");
        let mut ctx = Ctx {
            now: self.now,
            id,
            call: &mut call.state,
            rng: &mut self.rng,
            notes: &mut self.notes,
            wake: &mut self.wake,
        };
        let result = hook(self.layer.as_mut(), &mut ctx);
        // Notes (breaker transitions) show in the state; nothing records them here.
        self.notes.clear();
        result
    }

    /// Carries out `step` for call `id`, reports it, then starts the inner
    /// calls of the invocations the hook woke.
    fn apply(&mut self, id: CallId, event: &'static str, step: Step) {
        let now = self.now;
        match step {
            Step::Forward => self.call_mut(id).state.outstanding += 1,
            Step::ForwardAfter(delay) if delay == SimDuration::ZERO => {
                self.call_mut(id).state.outstanding += 1;
            }
            Step::ForwardAfter(delay) => {
                let key = self.schedule(now + delay, Due::Start(id));
                let previous = self.call_mut(id).delayed_start.replace(key);
                debug_assert!(previous.is_none(), "two delayed starts for one call");
            }
            Step::ForwardWithTimer(timeout) => {
                let key = self.schedule(now + timeout, Due::Timer(id));
                let call = self.call_mut(id);
                call.state.outstanding += 1;
                if let Some(previous) = call.timer.replace(key) {
                    self.due.remove(&previous);
                }
            }
            Step::Complete(_) => self.finish(id),
            Step::CompleteCancelling(_) => {
                self.call_mut(id).state.outstanding = 0;
                self.finish(id);
            }
            Step::Wait => {}
            Step::WaitWithTimer(deadline) => {
                let key = self.schedule(now + deadline, Due::Timer(id));
                let call = self.call_mut(id);
                call.timer_until_woken = true;
                if let Some(previous) = call.timer.replace(key) {
                    self.due.remove(&previous);
                }
            }
        }
        self.report(id, event, Decision::Step(step));
    }

    /// Adds the line for call `id`, then starts the inner calls of the
    /// invocations the hook woke, each with its own line.
    fn report(&mut self, id: CallId, event: &'static str, decision: Decision) {
        self.push_line(id, event, decision);
        let woken: Vec<CallId> = self.wake.drain(..).collect();
        for other in woken {
            match self.calls.get_mut(&other) {
                Some(call) if !call.done => {
                    call.state.outstanding += 1;
                    // A waiting deadline ends when the call is woken.
                    if call.timer_until_woken {
                        call.timer_until_woken = false;
                        if let Some(key) = call.timer.take() {
                            self.due.remove(&key);
                        }
                    }
                    self.push_line(other, "wake", Decision::Woken);
                }
                _ => debug_assert!(false, "a layer woke call {} it does not hold", other.0),
            }
        }
    }

    /// Timers take their order from a range above delayed starts, so at one
    /// instant they come last, as in the event queue.
    fn schedule(&mut self, at: SimTime, due: Due) -> (SimTime, u64) {
        let late = match due {
            Due::Timer(_) => LATE_SEQUENCE_BASE,
            Due::Start(_) => 0,
        };
        let key = (at, late + self.sequence);
        self.sequence += 1;
        self.due.insert(key, due);
        key
    }

    /// Ends call `id`: its timer and delayed start are dropped.
    fn finish(&mut self, id: CallId) {
        let call = self.call_mut(id);
        call.done = true;
        let (timer, start) = (call.timer.take(), call.delayed_start.take());
        for key in [timer, start].into_iter().flatten() {
            self.due.remove(&key);
        }
    }

    fn push_line(&mut self, call: CallId, event: &'static str, decision: Decision) {
        self.lines.push(Line {
            at: self.now,
            call,
            event,
            decision,
            state: self.layer.state(),
            counters: self.layer.counters(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::backoff::Backoff;
    use crate::policy::breaker::{BreakerConfig, ChapterConfig};
    use crate::policy::retry::RetryConfig;
    use crate::policy::timeout::{OnTimeout, TimeoutConfig};

    fn events(json: &str) -> Vec<Event> {
        parse_events("events.json", json.as_bytes()).unwrap_or_else(|error| panic!("{error}"))
    }

    fn decisions(lines: &[Line]) -> Vec<(u64, u64, &'static str, Decision)> {
        lines
            .iter()
            .map(|line| {
                (
                    line.at.as_micros() / 1_000,
                    line.call.0,
                    line.event,
                    line.decision,
                )
            })
            .collect()
    }

    fn breaker() -> PolicySpec {
        PolicySpec::CircuitBreaker(BreakerConfig::Chapter(ChapterConfig {
            failure_threshold: 2,
            success_threshold: 1,
            open_timeout_ms: 100,
        }))
    }

    fn ms(value: u64) -> SimDuration {
        SimDuration::from_ms(value)
    }

    // Hooks run in event order and each line carries the decision.
    #[test]
    fn breaker_trips_rejects_and_half_opens() {
        let lines = drive(
            &breaker(),
            &events(
                r#"[{"at_ms": 0, "call": 1, "event": "start"},
                    {"at_ms": 1, "call": 1, "event": "failure"},
                    {"at_ms": 2, "call": 2, "event": "start"},
                    {"at_ms": 3, "call": 2, "event": "timeout"},
                    {"at_ms": 50, "call": 3, "event": "start"},
                    {"at_ms": 103, "call": 4, "event": "start"}]"#,
            ),
            1,
        )
        .unwrap();
        let error = Reply::Error { retryable: true };
        assert_eq!(
            decisions(&lines),
            vec![
                (0, 1, "start", Decision::Step(Step::Forward)),
                (1, 1, "failure", Decision::Step(Step::Complete(error))),
                (2, 2, "start", Decision::Step(Step::Forward)),
                (
                    3,
                    2,
                    "timeout",
                    Decision::Step(Step::Complete(Reply::Timeout))
                ),
                (
                    50,
                    3,
                    "start",
                    Decision::Step(Step::Complete(Reply::BreakerOpen))
                ),
                (103, 4, "start", Decision::Step(Step::Forward)),
            ]
        );
        assert_eq!(lines[4].state["reopen_at_ms"], 103);
        assert_eq!(lines[5].state["state"], "half_open");
    }

    // A timer due before an event's time fires first, at its deadline; one
    // due at the event's very time fires after it (here on the tick).
    #[test]
    fn timers_fire_first_at_their_deadline() {
        let spec = PolicySpec::Timeout(TimeoutConfig {
            timeout_ms: 100.0,
            on_timeout: OnTimeout::Cancel,
        });
        let lines = drive(
            &spec,
            &events(
                r#"[{"at_ms": 0, "call": 1, "event": "start"},
                    {"at_ms": 10, "call": 2, "event": "start"},
                    {"at_ms": 110, "call": 3, "event": "start"},
                    {"at_ms": 110, "event": "tick"}]"#,
            ),
            1,
        )
        .unwrap();
        let timeout = Decision::Step(Step::CompleteCancelling(Reply::Timeout));
        assert_eq!(
            decisions(&lines),
            vec![
                (
                    0,
                    1,
                    "start",
                    Decision::Step(Step::ForwardWithTimer(ms(100)))
                ),
                (
                    10,
                    2,
                    "start",
                    Decision::Step(Step::ForwardWithTimer(ms(100)))
                ),
                (100, 1, "timer", timeout),
                (
                    110,
                    3,
                    "start",
                    Decision::Step(Step::ForwardWithTimer(ms(100)))
                ),
                (110, 2, "timer", timeout),
            ]
        );
    }

    proptest::proptest! {
        // Issue 6: the chapter's `Promise.race([fn(), timer])` on virtual
        // time takes the answer iff it settles at or before the deadline
        // (the work's promise exists first). The timeout layer, driven call
        // after call with answers before, at and after the deadline, makes
        // the same decision every time.
        #[test]
        fn timeout_decides_as_promise_race(
            timeout_ms in 1u64..300,
            calls in proptest::collection::vec((0u64..400, 0u64..50, proptest::bool::ANY), 1..20),
        ) {
            let spec = PolicySpec::Timeout(TimeoutConfig {
                timeout_ms: timeout_ms as f64,
                on_timeout: OnTimeout::Abandon,
            });
            let mut input = Vec::new();
            let mut expected = Vec::new();
            let mut start = 0;
            for (index, &(latency_ms, gap_ms, near)) in calls.iter().enumerate() {
                // Half the calls answer within a millisecond of the deadline.
                let latency_ms = if near { timeout_ms - 1 + latency_ms % 3 } else { latency_ms };
                let call = index as u64 + 1;
                input.push(serde_json::json!({"at_ms": start, "call": call, "event": "start"}));
                expected.push((start, call, "start", Decision::Step(Step::ForwardWithTimer(ms(timeout_ms)))));
                // The chapter's race: the answer wins at or before the deadline.
                let end = if latency_ms <= timeout_ms {
                    input.push(serde_json::json!({"at_ms": start + latency_ms, "call": call, "event": "success"}));
                    expected.push((start + latency_ms, call, "success", Decision::Step(Step::Complete(Reply::Success))));
                    start + latency_ms
                } else {
                    input.push(serde_json::json!({"at_ms": start + timeout_ms, "event": "tick"}));
                    expected.push((start + timeout_ms, call, "timer", Decision::Step(Step::Complete(Reply::Timeout))));
                    start + timeout_ms
                };
                start = end + gap_ms;
            }
            let lines = drive(&spec, &events(&serde_json::Value::Array(input).to_string()), 1).unwrap();
            proptest::prop_assert_eq!(decisions(&lines), expected);
        }
    }

    // Issue 6: an answer at the very deadline wins, as in the chapter's
    // Promise.race and in a run; one microsecond later the timer wins.
    #[test]
    fn regression_an_answer_at_the_deadline_wins() {
        let spec = PolicySpec::Timeout(TimeoutConfig {
            timeout_ms: 100.0,
            on_timeout: OnTimeout::Abandon,
        });
        let lines = drive(
            &spec,
            &events(
                r#"[{"at_ms": 0, "call": 1, "event": "start"},
                    {"at_ms": 100, "call": 1, "event": "success"},
                    {"at_ms": 200, "call": 2, "event": "start"},
                    {"at_ms": 300.001, "call": 2, "event": "success"}]"#,
            ),
            1,
        );
        let forward = Decision::Step(Step::ForwardWithTimer(ms(100)));
        let answered = Decision::Step(Step::Complete(Reply::Success));
        let timeout = Decision::Step(Step::Complete(Reply::Timeout));
        // The late success names a completed call: an input error.
        assert!(lines.is_err());
        let lines = drive(
            &spec,
            &events(
                r#"[{"at_ms": 0, "call": 1, "event": "start"},
                    {"at_ms": 100, "call": 1, "event": "success"},
                    {"at_ms": 200, "call": 2, "event": "start"},
                    {"at_ms": 300.001, "event": "tick"}]"#,
            ),
            1,
        )
        .unwrap();
        assert_eq!(
            decisions(&lines),
            vec![
                (0, 1, "start", forward),
                (100, 1, "success", answered),
                (200, 2, "start", forward),
                (300, 2, "timer", timeout),
            ]
        );
    }

    // A result while a retry waits out its backoff is an error; after the
    // delay the next attempt is outstanding.
    #[test]
    fn delayed_attempts_are_outstanding_only_after_their_delay() {
        let spec = PolicySpec::Retry(RetryConfig {
            variant: Default::default(),
            attempts_max: 2,
            backoff: Backoff::Fixed { delay_ms: 50.0 },
            retry_on: Some(vec![crate::policy::ReplyKind::Error]),
            budget: None,
        });
        let early = events(
            r#"[{"at_ms": 0, "call": 1, "event": "start"},
                {"at_ms": 5, "call": 1, "event": "failure"},
                {"at_ms": 54, "call": 1, "event": "success"}]"#,
        );
        assert_eq!(
            drive(&spec, &early, 1).unwrap_err().to_string(),
            "[2].call: call 1 has no inner call outstanding (its next one starts at 55 ms)"
        );
        let on_time = events(
            r#"[{"at_ms": 0, "call": 1, "event": "start"},
                {"at_ms": 5, "call": 1, "event": "failure"},
                {"at_ms": 55, "call": 1, "event": "success"}]"#,
        );
        let lines = drive(&spec, &on_time, 1).unwrap();
        assert_eq!(
            lines[1].decision,
            Decision::Step(Step::ForwardAfter(ms(50)))
        );
        assert_eq!(
            lines[2].decision,
            Decision::Step(Step::Complete(Reply::Success))
        );
    }

    #[test]
    fn events_for_unknown_finished_or_restarted_calls_are_errors() {
        let cases = [
            (
                r#"[{"at_ms": 0, "call": 7, "event": "success"}]"#,
                "[0].call: call 7 has not started",
            ),
            (
                r#"[{"at_ms": 0, "call": 1, "event": "start"},
                    {"at_ms": 1, "call": 1, "event": "success"},
                    {"at_ms": 2, "call": 1, "event": "failure"}]"#,
                "[2].call: call 1 has already completed",
            ),
            (
                r#"[{"at_ms": 0, "call": 1, "event": "start"},
                    {"at_ms": 0, "call": 1, "event": "start"}]"#,
                "[1].call: call 1 has already started",
            ),
        ];
        for (json, message) in cases {
            assert_eq!(
                drive(&breaker(), &events(json), 1).unwrap_err().to_string(),
                message
            );
        }
    }

    #[test]
    fn malformed_events_name_the_path() {
        let cases = [
            (
                r#"[{"at_ms": 5, "event": "tick"}, {"at_ms": 4, "event": "tick"}]"#,
                "events.json: [1].at_ms: must not be before the previous event's at_ms 5 (got 4)",
            ),
            (
                r#"[{"at_ms": 5, "call": 1, "event": "tick"}]"#,
                "events.json: [0].call: must be left out for a tick",
            ),
            (
                r#"[{"at_ms": 5, "event": "success"}]"#,
                "events.json: [0].call: is required for a success event",
            ),
            (
                r#"[{"at_ms": -1, "event": "tick"}]"#,
                "events.json: [0].at_ms: must be a finite number in [0, 1000000000000] (got -1)",
            ),
        ];
        for (json, message) in cases {
            let error = parse_events("events.json", json.as_bytes()).unwrap_err();
            assert_eq!(error.to_string(), message);
        }
        let error = parse_events(
            "events.json",
            br#"[{"at_ms": 0, "call": 1, "event": "succes"}]"#,
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("events.json: [0].event: unknown variant `succes`, expected one of"),
            "{error}"
        );
    }

    #[test]
    fn config_kind_must_match_the_name() {
        let config = br#"{"kind": "retry", "attempts_max": 2}"#;
        assert!(parse_config("c.json", config, "retry").is_ok());
        assert_eq!(
            parse_config("c.json", config, "circuit_breaker")
                .unwrap_err()
                .to_string(),
            r#"c.json: kind: must be "circuit_breaker", the policy named on the command line (got "retry")"#
        );
        assert_eq!(
            parse_config(
                "c.json",
                br#"{"kind": "retry", "attempts_max": 0}"#,
                "retry"
            )
            .unwrap_err()
            .to_string(),
            "c.json: attempts_max: must be in [1, 100] (got 0)"
        );
    }

    /// A test-only layer that lets one call in at a time and makes the
    /// others wait, waking the next when the one inside finishes.
    struct Gate {
        inside: Option<CallId>,
        waiting: std::collections::VecDeque<CallId>,
    }

    impl Layer for Gate {
        fn kind(&self) -> &'static str {
            "gate"
        }

        fn on_start(&mut self, ctx: &mut Ctx) -> Step {
            if self.inside.is_none() {
                self.inside = Some(ctx.id);
                Step::Forward
            } else {
                self.waiting.push_back(ctx.id);
                Step::Wait
            }
        }

        fn on_result(&mut self, ctx: &mut Ctx, reply: Reply) -> Step {
            self.inside = self.waiting.pop_front();
            ctx.wake.extend(self.inside);
            Step::Complete(reply)
        }

        fn on_cancel(&mut self, ctx: &mut Ctx) {
            self.waiting.retain(|&waiting| waiting != ctx.id);
        }

        fn counters(&self) -> Vec<(&'static str, u64)> {
            vec![("waiting", self.waiting.len() as u64)]
        }
    }

    // Woken calls are reported and their inner call becomes outstanding;
    // any layer can be driven, not only the scenario kinds.
    #[test]
    fn woken_calls_are_reported_as_admitted() {
        let gate = Gate {
            inside: None,
            waiting: Default::default(),
        };
        let mut driver = Driver::new(Box::new(gate), RngFactory::new(1).stream("policy"));
        let input = events(
            r#"[{"at_ms": 0, "call": 1, "event": "start"},
                {"at_ms": 0, "call": 2, "event": "start"},
                {"at_ms": 0, "call": 3, "event": "start"},
                {"at_ms": 1, "call": 3, "event": "cancel"},
                {"at_ms": 2, "call": 1, "event": "success"},
                {"at_ms": 3, "call": 2, "event": "success"}]"#,
        );
        for (index, event) in input.iter().enumerate() {
            driver.feed(index, event).unwrap();
        }
        assert_eq!(
            decisions(driver.lines()),
            vec![
                (0, 1, "start", Decision::Step(Step::Forward)),
                (0, 2, "start", Decision::Step(Step::Wait)),
                (0, 3, "start", Decision::Step(Step::Wait)),
                (1, 3, "cancel", Decision::Cancelled),
                (
                    2,
                    1,
                    "success",
                    Decision::Step(Step::Complete(Reply::Success))
                ),
                (2, 2, "wake", Decision::Woken),
                (
                    3,
                    2,
                    "success",
                    Decision::Step(Step::Complete(Reply::Success))
                ),
            ]
        );
        assert_eq!(driver.lines()[3].counters, vec![("waiting", 1)]);
    }

    // The output line has the documented keys in the documented order.
    #[test]
    fn lines_serialise_in_the_documented_shape() {
        let line = Line {
            at: SimTime(1_500),
            call: CallId(4),
            event: "failure",
            decision: Decision::Step(Step::ForwardAfter(SimDuration::from_ms(50))),
            state: serde_json::json!({}),
            counters: vec![("calls", 1), ("retries", 1)],
        };
        assert_eq!(
            line.to_json(),
            r#"{"at_ms":1.5,"call":4,"event":"failure","decision":{"kind":"forward_after","delay_ms":50},"state":{},"counters":{"calls":1,"retries":1}}"#
        );
    }
}
