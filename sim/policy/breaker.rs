//! The circuit breaker of the chapter (section 8.2), exactly as written.
//!
//! Semantics, with the chapter's names in brackets:
//! - Closed: every call is admitted. Each failure adds one to the consecutive
//!   failure count (`failureCount`); each success resets it to zero. When the
//!   count reaches `failure_threshold` the breaker trips to Open.
//! - Open: calls are rejected until `open_timeout_ms` (`timeout`) has passed
//!   since the trip. The first call after that moves the breaker to HalfOpen
//!   and is admitted.
//! - HalfOpen: *every* call is admitted (the chapter sets no probe limit).
//!   `success_threshold` successes close the breaker; any failure trips it.
//! - Results are recorded whatever the state, as in the chapter: a late
//!   failure that arrives while Open adds to the count and, at the threshold,
//!   trips again, pushing the reopen time further out; a late success resets
//!   the count but leaves the breaker Open.
//!
//! Counters mirror the chapter's `metrics`: requests, successes, failures and
//! rejections; `requests` counts calls offered (admitted or rejected).
//!
//! Known weaknesses, kept on purpose as the `chapter` variant: the half-open
//! state admits unlimited concurrent probes, and a consecutive count never
//! trips on a dependency that fails four calls in five.
//!
//! This file also holds `BreakerConfig`, the `circuit_breaker` entry of a
//! scenario, which picks the variant (`chapter` here, `count_window` and
//! `time_window` in `sliding_breaker`) and builds its layer.

use super::sliding_breaker::{CountWindowConfig, SlidingBreakerLayer, TimeWindowConfig};
use super::{ms_value, Ctx, Layer, Note, Reply, Step};
use crate::engine::{SimDuration, SimTime};
use crate::scenario::check::{self, join};
use crate::scenario::error::Invalid;
use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// Which breaker algorithm to run: the `variant` field of a breaker entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerVariant {
    /// The chapter's consecutive-failure breaker with unlimited half-open calls.
    #[default]
    Chapter,
    /// Failure and slow-call rates over the last calls (Resilience4j
    /// `COUNT_BASED`), with a half-open probe limit.
    CountWindow,
    /// Failure and slow-call rates over the last seconds (Resilience4j
    /// `TIME_BASED`), with a half-open probe limit.
    TimeWindow,
}

impl BreakerVariant {
    /// Every variant, in the order the documentation lists them.
    pub const ALL: [BreakerVariant; 3] = [
        BreakerVariant::Chapter,
        BreakerVariant::CountWindow,
        BreakerVariant::TimeWindow,
    ];

    /// The name as written in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            BreakerVariant::Chapter => "chapter",
            BreakerVariant::CountWindow => "count_window",
            BreakerVariant::TimeWindow => "time_window",
        }
    }

    /// The fields this variant accepts besides `kind` and `variant`, in
    /// declaration order.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            BreakerVariant::Chapter => ChapterConfig::FIELDS,
            BreakerVariant::CountWindow => CountWindowConfig::FIELDS,
            BreakerVariant::TimeWindow => TimeWindowConfig::FIELDS,
        }
    }
}

/// A circuit breaker entry of a `policies` array:
/// `{"kind": "circuit_breaker", "variant": "chapter", ...}`.
///
/// A missing `variant` means `chapter`, so scenarios written before there
/// were variants keep their meaning. Each variant accepts only its own
/// fields: a field of another variant is rejected with a message naming the
/// variant it belongs to. serde cannot default an internal tag, hence the
/// hand-written `Deserialize` (a two-step parse: the fields into a map, then
/// the map into the variant's struct, which still denies unknown fields).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "variant", rename_all = "snake_case")]
pub enum BreakerConfig {
    /// The chapter's breaker.
    Chapter(ChapterConfig),
    /// A count-based sliding window.
    CountWindow(CountWindowConfig),
    /// A time-based sliding window.
    TimeWindow(TimeWindowConfig),
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig::Chapter(ChapterConfig::default())
    }
}

impl BreakerConfig {
    /// Which variant this is.
    pub fn variant(&self) -> BreakerVariant {
        match self {
            BreakerConfig::Chapter(_) => BreakerVariant::Chapter,
            BreakerConfig::CountWindow(_) => BreakerVariant::CountWindow,
            BreakerConfig::TimeWindow(_) => BreakerVariant::TimeWindow,
        }
    }

    /// Checks the ranges; `path` names this policy in the file.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        match self {
            BreakerConfig::Chapter(config) => config.validate(path),
            BreakerConfig::CountWindow(config) => config.validate(path),
            BreakerConfig::TimeWindow(config) => config.validate(path),
        }
    }

    /// A fresh breaker layer of this variant, closed.
    pub fn build(&self) -> Box<dyn Layer> {
        match self {
            BreakerConfig::Chapter(config) => Box::new(BreakerLayer::new(config)),
            BreakerConfig::CountWindow(config) => Box::new(SlidingBreakerLayer::new(
                BreakerVariant::CountWindow.name(),
                &config.settings(),
            )),
            BreakerConfig::TimeWindow(config) => Box::new(SlidingBreakerLayer::new(
                BreakerVariant::TimeWindow.name(),
                &config.settings(),
            )),
        }
    }
}

impl<'de> Deserialize<'de> for BreakerConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = deserializer.deserialize_map(FieldsVisitor)?;
        let mut variant = BreakerVariant::Chapter;
        let mut rest = serde_json::Map::new();
        for (key, value) in fields {
            if key == "variant" {
                variant = BreakerVariant::deserialize(value)
                    .map_err(|error| D::Error::custom(format!("variant: {error}")))?;
            } else {
                rest.insert(key, value);
            }
        }
        // Checked here rather than by serde so that the message can say which
        // variant a misplaced field belongs to; the keys keep file order.
        if let Some(key) = rest
            .keys()
            .find(|key| !variant.fields().contains(&key.as_str()))
        {
            return Err(D::Error::custom(unknown_field_message(variant, key)));
        }
        let rest = serde_json::Value::Object(rest);
        let parsed = match variant {
            BreakerVariant::Chapter => {
                serde_path_to_error::deserialize(rest).map(BreakerConfig::Chapter)
            }
            BreakerVariant::CountWindow => {
                serde_path_to_error::deserialize(rest).map(BreakerConfig::CountWindow)
            }
            BreakerVariant::TimeWindow => {
                serde_path_to_error::deserialize(rest).map(BreakerConfig::TimeWindow)
            }
        };
        parsed.map_err(|error| {
            let path = error.path().to_string();
            if path == "." {
                D::Error::custom(error.into_inner())
            } else {
                D::Error::custom(format!("{path}: {}", error.into_inner()))
            }
        })
    }
}

/// Collects an object's fields in file order, rejecting duplicates as
/// serde's derived structs do.
struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Vec<(String, serde_json::Value)>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a circuit_breaker object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: Vec<(String, serde_json::Value)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if fields.iter().any(|(seen, _)| *seen == key) {
                return Err(A::Error::custom(format!("duplicate field `{key}`")));
            }
            let value = map.next_value()?;
            fields.push((key, value));
        }
        Ok(fields)
    }
}

/// serde's unknown-field message, plus the variants the field belongs to
/// when it is a field of another variant.
fn unknown_field_message(variant: BreakerVariant, key: &str) -> String {
    let owners: Vec<String> = BreakerVariant::ALL
        .iter()
        .filter(|other| other.fields().contains(&key))
        .map(|other| format!("`{}`", other.name()))
        .collect();
    let owners = if owners.is_empty() {
        String::new()
    } else {
        format!(" (a field of variant {})", owners.join(", "))
    };
    let expected: Vec<String> = std::iter::once("variant")
        .chain(variant.fields().iter().copied())
        .map(|field| format!("`{field}`"))
        .collect();
    format!(
        "unknown field `{key}` for variant `{}`{owners}, expected one of {}",
        variant.name(),
        expected.join(", ")
    )
}

/// The chapter breaker's settings. Defaults are the chapter's:
/// `failure_threshold` 5, `success_threshold` 2, `open_timeout_ms` 60000.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChapterConfig {
    /// Consecutive failures that trip the breaker, in `[1, 1000000]`.
    #[serde(default = "failure_threshold_default")]
    pub failure_threshold: u32,
    /// Half-open successes that close it, in `[1, 1000000]`.
    #[serde(default = "success_threshold_default")]
    pub success_threshold: u32,
    /// How long it stays open before admitting a trial call, in `[0, 86400000]`.
    #[serde(default = "open_timeout_default")]
    pub open_timeout_ms: u64,
}

fn failure_threshold_default() -> u32 {
    5
}

fn success_threshold_default() -> u32 {
    2
}

fn open_timeout_default() -> u64 {
    60_000
}

impl Default for ChapterConfig {
    fn default() -> Self {
        ChapterConfig {
            failure_threshold: failure_threshold_default(),
            success_threshold: success_threshold_default(),
            open_timeout_ms: open_timeout_default(),
        }
    }
}

impl ChapterConfig {
    /// The JSON fields, in declaration order (a test checks them against serde).
    pub const FIELDS: &'static [&'static str] =
        &["failure_threshold", "success_threshold", "open_timeout_ms"];

    /// Checks the ranges; `path` names this policy in the file.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        check::within(
            &join(path, "failure_threshold"),
            self.failure_threshold,
            1,
            1_000_000,
        )?;
        check::within(
            &join(path, "success_threshold"),
            self.success_threshold,
            1,
            1_000_000,
        )?;
        check::within(
            &join(path, "open_timeout_ms"),
            self.open_timeout_ms,
            0,
            86_400_000,
        )
    }
}

/// The state names, for transitions and reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerStateName {
    /// Admitting everything.
    Closed,
    /// Rejecting everything.
    Open,
    /// Testing recovery.
    HalfOpen,
}

/// The breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Normal operation.
    Closed,
    /// Rejecting until `reopen_at` (the chapter's `nextAttempt`).
    Open {
        /// The earliest time a call is admitted again.
        reopen_at: SimTime,
    },
    /// Admitting trial calls.
    HalfOpen,
}

impl BreakerState {
    /// The state's name.
    pub fn name(self) -> BreakerStateName {
        match self {
            BreakerState::Closed => BreakerStateName::Closed,
            BreakerState::Open { .. } => BreakerStateName::Open,
            BreakerState::HalfOpen => BreakerStateName::HalfOpen,
        }
    }
}

/// Whether a call may go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Admitted,
    /// Rejected without trying: the breaker is open.
    Rejected,
}

/// What a finished call means to the breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// The call succeeded.
    Success,
    /// The call failed (error, timeout, rejection further down).
    Failure,
}

/// The breaker's totals, named as in the chapter's `metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BreakerCounters {
    /// Calls offered.
    pub requests: u64,
    /// Successes recorded.
    pub successes: u64,
    /// Failures recorded.
    pub failures: u64,
    /// Calls rejected while open.
    pub rejections: u64,
    /// Times the breaker tripped to open.
    pub trips: u64,
}

/// The chapter's circuit breaker as a pure state machine.
///
/// Driven by `now` and outcomes alone:
///
/// ```
/// use sim::engine::SimTime;
/// use sim::policy::breaker::{Admission, BreakerState, CallOutcome, ChapterBreaker, ChapterConfig};
///
/// let config = ChapterConfig { failure_threshold: 2, success_threshold: 1, open_timeout_ms: 1_000 };
/// let mut breaker = ChapterBreaker::new(&config);
/// let t = SimTime::from_ms;
/// for now in [t(0), t(10)] {
///     assert_eq!(breaker.admit(now).0, Admission::Admitted);
///     breaker.record(now, CallOutcome::Failure);
/// }
/// assert_eq!(breaker.state(), BreakerState::Open { reopen_at: t(1_010) });
/// assert_eq!(breaker.admit(t(500)).0, Admission::Rejected);
/// // The first call after the open timeout moves it to half-open...
/// assert_eq!(breaker.admit(t(1_010)).0, Admission::Admitted);
/// // ...which admits every call: the chapter sets no probe limit.
/// assert_eq!(breaker.admit(t(1_011)).0, Admission::Admitted);
/// breaker.record(t(1_020), CallOutcome::Success);
/// assert_eq!(breaker.state(), BreakerState::Closed);
/// ```
#[derive(Clone, Debug)]
pub struct ChapterBreaker {
    failure_threshold: u32,
    success_threshold: u32,
    open_timeout: SimDuration,
    state: BreakerState,
    failures_consecutive: u32,
    successes_half_open: u32,
    counters: BreakerCounters,
}

/// A state change: `(from, to)`.
pub type Transition = (BreakerStateName, BreakerStateName);

impl ChapterBreaker {
    /// A closed breaker with `config`'s thresholds.
    pub fn new(config: &ChapterConfig) -> Self {
        ChapterBreaker {
            failure_threshold: config.failure_threshold,
            success_threshold: config.success_threshold,
            open_timeout: SimDuration::from_ms(config.open_timeout_ms),
            state: BreakerState::Closed,
            failures_consecutive: 0,
            successes_half_open: 0,
            counters: BreakerCounters::default(),
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// The totals so far.
    pub fn counters(&self) -> BreakerCounters {
        self.counters
    }

    /// How long a trip keeps it open (`timeout`).
    pub fn open_timeout(&self) -> SimDuration {
        self.open_timeout
    }

    /// The consecutive failure count (`failureCount`).
    pub fn failures_consecutive(&self) -> u32 {
        self.failures_consecutive
    }

    /// Successes counted towards closing while half-open.
    pub fn successes_half_open(&self) -> u32 {
        self.successes_half_open
    }

    /// Asks to make a call at `now` (the chapter's start of `execute`).
    pub fn admit(&mut self, now: SimTime) -> (Admission, Option<Transition>) {
        self.counters.requests += 1;
        match self.state {
            BreakerState::Open { reopen_at } if now < reopen_at => {
                self.counters.rejections += 1;
                (Admission::Rejected, None)
            }
            BreakerState::Open { .. } => {
                self.state = BreakerState::HalfOpen;
                (
                    Admission::Admitted,
                    Some((BreakerStateName::Open, BreakerStateName::HalfOpen)),
                )
            }
            BreakerState::Closed | BreakerState::HalfOpen => (Admission::Admitted, None),
        }
    }

    /// Records an admitted call's outcome at `now` (`onSuccess`/`onFailure`).
    pub fn record(&mut self, now: SimTime, outcome: CallOutcome) -> Option<Transition> {
        match outcome {
            CallOutcome::Success => {
                self.failures_consecutive = 0;
                self.counters.successes += 1;
                if self.state == BreakerState::HalfOpen {
                    self.successes_half_open += 1;
                    if self.successes_half_open >= self.success_threshold {
                        self.state = BreakerState::Closed;
                        self.successes_half_open = 0;
                        return Some((BreakerStateName::HalfOpen, BreakerStateName::Closed));
                    }
                }
                None
            }
            CallOutcome::Failure => {
                self.failures_consecutive = self.failures_consecutive.saturating_add(1);
                self.counters.failures += 1;
                if self.state == BreakerState::HalfOpen
                    || self.failures_consecutive >= self.failure_threshold
                {
                    self.trip(now)
                } else {
                    None
                }
            }
        }
    }

    fn trip(&mut self, now: SimTime) -> Option<Transition> {
        let from = self.state.name();
        self.state = BreakerState::Open {
            reopen_at: now + self.open_timeout,
        };
        self.successes_half_open = 0;
        self.counters.trips += 1;
        debug_assert!(matches!(self.state, BreakerState::Open { reopen_at } if reopen_at >= now));
        // Re-tripping while already open moves `reopen_at` but is not a transition.
        (from != BreakerStateName::Open).then_some((from, BreakerStateName::Open))
    }
}

/// The breaker as a stack layer: rejects with `Reply::BreakerOpen`, records
/// every inner result (success or fallback counts as success).
pub struct BreakerLayer {
    breaker: ChapterBreaker,
}

impl BreakerLayer {
    /// A closed breaker layer.
    pub fn new(config: &ChapterConfig) -> Self {
        BreakerLayer {
            breaker: ChapterBreaker::new(config),
        }
    }
}

/// Reports a breaker's state change, if any, as a note.
pub(super) fn note(ctx: &mut Ctx, transition: Option<Transition>) {
    if let Some((from, to)) = transition {
        ctx.notes.push(Note::BreakerTransition { from, to });
    }
}

impl Layer for BreakerLayer {
    fn kind(&self) -> &'static str {
        "circuit_breaker"
    }

    fn on_start(&mut self, ctx: &mut Ctx) -> Step {
        let (admission, transition) = self.breaker.admit(ctx.now);
        note(ctx, transition);
        match admission {
            Admission::Admitted => Step::Forward,
            Admission::Rejected => Step::Complete(Reply::BreakerOpen),
        }
    }

    fn on_result(&mut self, ctx: &mut Ctx, reply: Reply) -> Step {
        let outcome = if reply.is_ok() {
            CallOutcome::Success
        } else {
            CallOutcome::Failure
        };
        let transition = self.breaker.record(ctx.now, outcome);
        note(ctx, transition);
        Step::Complete(reply)
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let counters = self.breaker.counters();
        vec![
            ("requests", counters.requests),
            ("successes", counters.successes),
            ("failures", counters.failures),
            ("rejections", counters.rejections),
            ("trips", counters.trips),
        ]
    }

    fn state(&self) -> serde_json::Value {
        let state = self.breaker.state();
        let reopen_at_ms = match state {
            BreakerState::Open { reopen_at } => ms_value(reopen_at.as_micros()),
            BreakerState::Closed | BreakerState::HalfOpen => serde_json::Value::Null,
        };
        serde_json::json!({
            "state": state.name(),
            "failures_consecutive": self.breaker.failures_consecutive(),
            "successes_half_open": self.breaker.successes_half_open(),
            "reopen_at_ms": reopen_at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::sliding_breaker::properties::{self, Property, Violation};
    use proptest::prelude::*;
    use BreakerStateName::*;

    fn breaker(
        failure_threshold: u32,
        success_threshold: u32,
        open_timeout_ms: u64,
    ) -> ChapterBreaker {
        ChapterBreaker::new(&ChapterConfig {
            failure_threshold,
            success_threshold,
            open_timeout_ms,
        })
    }

    fn ms(value: u64) -> SimTime {
        SimTime::from_ms(value)
    }

    #[test]
    fn trips_after_threshold_consecutive_failures() {
        let mut breaker = breaker(3, 2, 5_000);
        for at in 0..2 {
            assert_eq!(breaker.admit(ms(at)).0, Admission::Admitted);
            assert_eq!(breaker.record(ms(at), CallOutcome::Failure), None);
        }
        assert_eq!(breaker.admit(ms(2)).0, Admission::Admitted);
        assert_eq!(
            breaker.record(ms(2), CallOutcome::Failure),
            Some((Closed, Open))
        );
        assert_eq!(
            breaker.state(),
            BreakerState::Open {
                reopen_at: ms(5_002)
            }
        );
    }

    #[test]
    fn a_success_resets_the_consecutive_count() {
        let mut breaker = breaker(3, 2, 5_000);
        for outcome in [
            CallOutcome::Failure,
            CallOutcome::Failure,
            CallOutcome::Success,
            CallOutcome::Failure,
        ] {
            breaker.admit(ms(0));
            breaker.record(ms(0), outcome);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.failures_consecutive(), 1);
    }

    #[test]
    fn open_rejects_until_the_timeout_then_half_opens() {
        let mut breaker = breaker(1, 2, 1_000);
        breaker.admit(ms(0));
        breaker.record(ms(0), CallOutcome::Failure);
        assert_eq!(breaker.admit(ms(999)), (Admission::Rejected, None));
        assert_eq!(
            breaker.admit(ms(1_000)),
            (Admission::Admitted, Some((Open, HalfOpen)))
        );
        let counters = breaker.counters();
        assert_eq!(
            (counters.requests, counters.rejections, counters.failures),
            (3, 1, 1)
        );
    }

    #[test]
    fn half_open_closes_after_success_threshold_and_reopens_on_failure() {
        let mut breaker = breaker(1, 2, 1_000);
        breaker.admit(ms(0));
        breaker.record(ms(0), CallOutcome::Failure);
        breaker.admit(ms(1_000));
        assert_eq!(breaker.record(ms(1_001), CallOutcome::Success), None);
        assert_eq!(
            breaker.record(ms(1_002), CallOutcome::Success),
            Some((HalfOpen, Closed))
        );

        breaker.admit(ms(2_000));
        breaker.record(ms(2_000), CallOutcome::Failure);
        breaker.admit(ms(3_000));
        assert_eq!(
            breaker.record(ms(3_001), CallOutcome::Failure),
            Some((HalfOpen, Open))
        );
        assert_eq!(
            breaker.state(),
            BreakerState::Open {
                reopen_at: ms(4_001)
            }
        );
    }

    use crate::test_support::counterexample_of as chapter_counterexample;

    fn probe_limit_property(moves: Vec<properties::Move>) -> Result<(), String> {
        properties::drive(&mut breaker(1, 2, 1_000), &moves, Property::ProbesAtMost(2))
            .map_err(|violation| format!("{violation:?}"))
    }

    fn four_in_five_property(failure_threshold: u32) -> Result<(), String> {
        properties::trips_on_four_failures_in_five(
            &mut breaker(failure_threshold, 2, 1_000),
            10_000,
            SimDuration::from_ms(1),
        )
    }

    // The generic probe-limit property, which the sliding breakers pass, fails on
    // the chapter breaker; proptest (pinned in Cargo.lock, deterministic seed)
    // shrinks it to `properties::UNLIMITED_PROBES`. Another proptest version may shrink to a
    // different sequence: then update the constant from this test's message.
    #[test]
    fn the_probe_limit_property_fails_on_the_chapter_breaker() {
        let found = chapter_counterexample(properties::moves(60), probe_limit_property);
        assert_eq!(found.as_deref(), Some(&properties::UNLIMITED_PROBES[..]));
    }

    // The chapter's half-open state has no probe limit: in the shrunk
    // counterexample, a third probe is admitted while two are in flight.
    #[test]
    fn chapter_half_open_admits_unlimited_concurrent_probes() {
        assert_eq!(
            properties::drive(
                &mut breaker(1, 2, 1_000),
                &properties::UNLIMITED_PROBES,
                Property::ProbesAtMost(2)
            ),
            Err(Violation::TooManyProbes {
                step: 6,
                probes_in_flight: 3,
                limit: 2
            })
        );
        // And nothing stops it at three: every call offered while half-open goes through.
        let mut breaker = breaker(1, 2, 1_000);
        breaker.admit(ms(0));
        breaker.record(ms(0), CallOutcome::Failure);
        let admitted = (0..1_000)
            .filter(|_| breaker.admit(ms(1_000)).0 == Admission::Admitted)
            .count();
        assert_eq!(admitted, 1_000);
    }

    // The generic four-failures-in-five property fails on the chapter breaker,
    // and its smallest failing threshold is the chapter's default, 5.
    #[test]
    fn the_four_in_five_property_fails_on_the_chapter_breaker_from_threshold_five() {
        assert_eq!(
            chapter_counterexample(1u32..=20, four_in_five_property),
            Some(5)
        );
        for failure_threshold in 1..=20 {
            let trips = four_in_five_property(failure_threshold).is_ok();
            assert_eq!(trips, failure_threshold <= 4, "{failure_threshold}");
        }
    }

    // With the default failure_threshold 5, a dependency failing 80% of calls
    // (F F F F S repeated) never opens the chapter breaker: each success resets the count.
    #[test]
    fn chapter_breaker_never_trips_on_four_failures_in_five() {
        assert_eq!(
            four_in_five_property(5),
            Err("still closed after 10000 calls of which 8000 failed".to_string())
        );
        let mut breaker = breaker(5, 2, 60_000);
        properties::trips_on_four_failures_in_five(&mut breaker, 10_000, SimDuration::from_ms(1))
            .unwrap_err();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.counters().failures, 8_000);
        assert_eq!(breaker.counters().trips, 0);
    }

    // A late failure arriving while open re-trips and pushes the reopen time out.
    #[test]
    fn late_failure_while_open_extends_the_open_period() {
        let mut breaker = breaker(2, 1, 1_000);
        for _ in 0..2 {
            breaker.admit(ms(0));
        }
        breaker.record(ms(0), CallOutcome::Failure);
        breaker.record(ms(10), CallOutcome::Failure);
        assert_eq!(
            breaker.state(),
            BreakerState::Open {
                reopen_at: ms(1_010)
            }
        );
        assert_eq!(breaker.record(ms(500), CallOutcome::Failure), None);
        assert_eq!(
            breaker.state(),
            BreakerState::Open {
                reopen_at: ms(1_500)
            }
        );
        assert_eq!(breaker.counters().trips, 2);
    }

    fn parse(json: &str) -> Result<BreakerConfig, String> {
        match serde_json::from_str::<crate::policy::PolicySpec>(json) {
            Ok(crate::policy::PolicySpec::CircuitBreaker(config)) => Ok(config),
            Ok(other) => panic!("not a breaker: {other:?}"),
            Err(error) => Err(error.to_string()),
        }
    }

    // A breaker without `variant` is the chapter's, with the chapter's defaults.
    #[test]
    fn a_missing_variant_means_the_chapter_breaker() {
        assert_eq!(
            parse(r#"{"kind": "circuit_breaker"}"#),
            Ok(BreakerConfig::Chapter(ChapterConfig {
                failure_threshold: 5,
                success_threshold: 2,
                open_timeout_ms: 60_000,
            }))
        );
        assert_eq!(
            parse(r#"{"kind": "circuit_breaker", "variant": "chapter", "failure_threshold": 3}"#),
            parse(r#"{"failure_threshold": 3, "kind": "circuit_breaker"}"#)
        );
    }

    // The config serializes back to the shape it was read from, `variant` included.
    #[test]
    fn the_chapter_config_round_trips_through_json() {
        let config = parse(r#"{"kind": "circuit_breaker", "open_timeout_ms": 5000}"#).unwrap();
        let json = serde_json::to_value(crate::policy::PolicySpec::CircuitBreaker(config.clone()))
            .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "circuit_breaker", "variant": "chapter",
                "failure_threshold": 5, "success_threshold": 2, "open_timeout_ms": 5000})
        );
        assert_eq!(parse(&json.to_string()), Ok(config));
    }

    // The field lists used for error messages are exactly the fields serde writes.
    #[test]
    fn each_variant_lists_exactly_its_serde_fields() {
        for variant in BreakerVariant::ALL {
            let config = match variant {
                BreakerVariant::Chapter => BreakerConfig::Chapter(ChapterConfig::default()),
                BreakerVariant::CountWindow => {
                    BreakerConfig::CountWindow(CountWindowConfig::default())
                }
                BreakerVariant::TimeWindow => {
                    BreakerConfig::TimeWindow(TimeWindowConfig::default())
                }
            };
            let json = serde_json::to_value(&config).unwrap();
            let mut written: Vec<&str> = json
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .filter(|key| *key != "variant")
                .collect();
            let mut listed = variant.fields().to_vec();
            written.sort_unstable();
            listed.sort_unstable();
            assert_eq!(written, listed, "{variant:?}");
        }
    }

    // Unknown fields, bad variants, duplicates and type errors name the field.
    #[test]
    fn bad_breaker_fields_are_rejected_with_the_field_name() {
        assert_eq!(
            parse(r#"{"kind": "circuit_breaker", "failure_treshold": 3}"#).unwrap_err(),
            "unknown field `failure_treshold` for variant `chapter`, expected one of \
             `variant`, `failure_threshold`, `success_threshold`, `open_timeout_ms`"
        );
        assert_eq!(
            parse(r#"{"kind": "circuit_breaker", "variant": "hystrix"}"#).unwrap_err(),
            "variant: unknown variant `hystrix`, expected one of `chapter`, `count_window`, `time_window`"
        );
        assert_eq!(
            parse(r#"{"kind": "circuit_breaker", "open_timeout_ms": 1, "open_timeout_ms": 2}"#)
                .unwrap_err(),
            "duplicate field `open_timeout_ms`"
        );
        assert_eq!(
            parse(r#"{"kind": "circuit_breaker", "open_timeout_ms": 1.5}"#).unwrap_err(),
            "open_timeout_ms: invalid type: floating point `1.5`, expected u64"
        );
    }

    // Through a whole scenario, the error names the file and the policy's path.
    #[test]
    fn breaker_field_errors_name_the_policy_path_in_the_scenario() {
        let scenario = r#"{
  "description": "d",
  "duration_ms": 1000,
  "services": [{ "name": "api", "service_time_ms": { "kind": "constant", "value_ms": 1 } }],
  "clients": [{ "name": "c", "target": "api",
    "load": { "kind": "open_loop", "rate": { "kind": "constant", "rps": 1 } },
    "policies": [{ "kind": "timeout", "timeout_ms": 10 }, { "kind": "circuit_breaker", "failures": 3 }] }]
}"#;
        let error = crate::scenario::Scenario::from_bytes("x.json", "x", scenario.as_bytes())
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "x.json: clients[0].policies[1]: unknown field `failures` for variant `chapter`, \
             expected one of `variant`, `failure_threshold`, `success_threshold`, \
             `open_timeout_ms` at line 7 column 103"
        );
    }

    proptest! {
        // (a) The generic property: after a trip, the chapter breaker admits
        // nothing before its timeout (late failures only push it further out).
        #[test]
        fn chapter_open_breaker_admits_nothing_before_its_timeout(
            moves in properties::moves(300),
            failure_threshold in 1u32..6,
            success_threshold in 1u32..4,
            open_timeout_ms in 0u64..2_000,
        ) {
            let mut breaker = breaker(failure_threshold, success_threshold, open_timeout_ms);
            prop_assert_eq!(properties::drive(&mut breaker, &moves, Property::OpenWaits), Ok(()));
        }

        // (c) The generic property: the chapter's counters add up.
        #[test]
        fn chapter_counters_add_up(
            moves in properties::moves(300),
            failure_threshold in 1u32..6,
            success_threshold in 1u32..4,
            open_timeout_ms in 0u64..2_000,
        ) {
            let mut breaker = breaker(failure_threshold, success_threshold, open_timeout_ms);
            prop_assert_eq!(properties::drive(&mut breaker, &moves, Property::CountersAddUp), Ok(()));
        }

        // Whatever happens, an open breaker admits nothing before its timeout,
        // and the counters add up.
        #[test]
        fn open_breaker_admits_nothing_before_timeout(
            steps in proptest::collection::vec((0u64..500, 0u8..3), 1..300),
            failure_threshold in 1u32..6,
            success_threshold in 1u32..4,
            open_timeout_ms in 0u64..2_000,
        ) {
            let mut breaker = breaker(failure_threshold, success_threshold, open_timeout_ms);
            let mut now = SimTime::ZERO;
            let mut admitted = 0u64;
            for (advance_ms, action) in steps {
                now = now + SimDuration::from_ms(advance_ms);
                match action {
                    0 => {
                        let before = breaker.state();
                        let (admission, _) = breaker.admit(now);
                        if let BreakerState::Open { reopen_at } = before {
                            prop_assert_eq!(admission == Admission::Admitted, now >= reopen_at);
                        } else {
                            prop_assert_eq!(admission, Admission::Admitted);
                        }
                        if admission == Admission::Admitted { admitted += 1; }
                    }
                    1 => { breaker.record(now, CallOutcome::Success); }
                    _ => { breaker.record(now, CallOutcome::Failure); }
                }
            }
            let counters = breaker.counters();
            prop_assert_eq!(counters.requests, admitted + counters.rejections);
        }
    }
}
