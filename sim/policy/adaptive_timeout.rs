//! An adaptive per-call deadline (the chapter's `AdaptiveTimeout`, section
//! 8.5): the deadline follows the recent latencies of the calls themselves.
//!
//! The `chapter` variant is the chapter's class, exactly as written:
//!
//! - A call's deadline is `initial_ms` while no latency is recorded, and
//!   otherwise `clamp(p × multiplier, min_ms, max_ms)`, where `p` is
//!   `sorted[ceil(n × percentile / 100) − 1]` of the last `samples` recorded
//!   latencies (the chapter: p99, × 1.5, 100 samples). It is chosen when the
//!   call enters the layer, so calls in flight together may have different
//!   deadlines.
//! - A successful call (success or fallback) records its latency.
//! - A call that times out records its own deadline as a latency (the
//!   chapter's "Record timeout as max latency").
//! - Any other failure records nothing.
//! - On the deadline the call is abandoned, not cancelled (`Promise.race`),
//!   and its late result is never recorded.
//!
//! The `ignore_timeouts` variant records the latency of every call that
//! answers before its deadline, success or error, and never records a
//! timeout.
//!
//! ## Why two variants
//!
//! Feeding timeouts back is a positive feedback loop. When the backend stops
//! answering, each timeout records the deadline it had, the percentile rises
//! to it, and the next deadline is `multiplier` times larger: the deadline
//! ratchets up to `max_ms` on a backend that gives nothing back, so callers
//! wait ten times longer for the same failure (`tests::
//! chapter_ratchets_to_max_on_a_backend_that_never_answers`). Leaving timeouts
//! out removes that loop but has the opposite blind spot (survivorship): when
//! the backend slows down past the current deadline, no call completes, so
//! nothing is recorded and the deadline never grows to let the slower answers
//! through (`tests::ignore_timeouts_never_adapts_to_a_slowdown_past_its_deadline`),
//! while the chapter variant's ratchet is exactly what lets it recover there.
//!
//! Memory is bounded by `samples` (at most 10000): a ring of the latencies
//! and a scratch copy for the percentile.

use super::{ms_value, Ctx, Layer, Reply, Step};
use crate::engine::SimDuration;
use crate::scenario::check::{self, join};
use crate::scenario::error::Invalid;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// The most latencies an adaptive timeout may keep.
pub const SAMPLES_MAX: u32 = 10_000;

/// The longest deadline an adaptive timeout may be configured with: one day.
pub const TIMEOUT_MS_MAX: f64 = 86_400_000.0;

/// Which latencies feed the percentile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AdaptiveVariant {
    /// The chapter's: successes record their latency, timeouts record their
    /// deadline, other failures record nothing.
    #[default]
    Chapter,
    /// Every answer before the deadline (success or error) records its
    /// latency; timeouts record nothing.
    IgnoreTimeouts,
}

impl AdaptiveVariant {
    /// The snake_case name, as written in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            AdaptiveVariant::Chapter => "chapter",
            AdaptiveVariant::IgnoreTimeouts => "ignore_timeouts",
        }
    }
}

/// Adaptive timeout settings. Defaults are the chapter's: `variant`
/// `chapter`, `initial_ms` 1000, `min_ms` 500, `max_ms` 10000, `samples` 100,
/// `percentile` 99, `multiplier` 1.5.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveTimeoutConfig {
    /// Which latencies are recorded.
    #[serde(default)]
    pub variant: AdaptiveVariant,
    /// The deadline while nothing is recorded, in `[min_ms, max_ms]`.
    #[serde(default = "initial_ms_default")]
    pub initial_ms: f64,
    /// The shortest deadline, in `(0, 86400000]`.
    #[serde(default = "min_ms_default")]
    pub min_ms: f64,
    /// The longest deadline, in `[min_ms, 86400000]`.
    #[serde(default = "max_ms_default")]
    pub max_ms: f64,
    /// How many recent latencies are kept, in `[1, 10000]`.
    #[serde(default = "samples_default")]
    pub samples: u32,
    /// The percentile of the kept latencies, in `(0, 100]`.
    #[serde(default = "percentile_default")]
    pub percentile: f64,
    /// The factor applied to the percentile, in `(0, 100]`.
    #[serde(default = "multiplier_default")]
    pub multiplier: f64,
}

fn initial_ms_default() -> f64 {
    1_000.0
}

fn min_ms_default() -> f64 {
    500.0
}

fn max_ms_default() -> f64 {
    10_000.0
}

fn samples_default() -> u32 {
    100
}

fn percentile_default() -> f64 {
    99.0
}

fn multiplier_default() -> f64 {
    1.5
}

impl Default for AdaptiveTimeoutConfig {
    fn default() -> Self {
        AdaptiveTimeoutConfig {
            variant: AdaptiveVariant::Chapter,
            initial_ms: initial_ms_default(),
            min_ms: min_ms_default(),
            max_ms: max_ms_default(),
            samples: samples_default(),
            percentile: percentile_default(),
            multiplier: multiplier_default(),
        }
    }
}

impl AdaptiveTimeoutConfig {
    /// Checks the ranges; `path` names this policy in the file. Unlike the
    /// chapter, which returns `initialTimeout` unclamped, `initial_ms` must
    /// lie within `[min_ms, max_ms]`, so every deadline does.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        let min_path = join(path, "min_ms");
        check::positive(&min_path, self.min_ms)?;
        check::within_f64(&min_path, self.min_ms, 0.0, TIMEOUT_MS_MAX)?;
        check::within_f64(
            &join(path, "max_ms"),
            self.max_ms,
            self.min_ms,
            TIMEOUT_MS_MAX,
        )?;
        check::within_f64(
            &join(path, "initial_ms"),
            self.initial_ms,
            self.min_ms,
            self.max_ms,
        )?;
        check::within(&join(path, "samples"), self.samples, 1, SAMPLES_MAX)?;
        let percentile_path = join(path, "percentile");
        check::positive(&percentile_path, self.percentile)?;
        check::within_f64(&percentile_path, self.percentile, 0.0, 100.0)?;
        let multiplier_path = join(path, "multiplier");
        check::positive(&multiplier_path, self.multiplier)?;
        check::within_f64(&multiplier_path, self.multiplier, 0.0, 100.0)
    }
}

/// The adaptive timeout as a pure state machine: a window of recent
/// latencies and the deadline they give.
#[derive(Clone, Debug)]
pub struct AdaptiveTimeout {
    variant: AdaptiveVariant,
    initial: SimDuration,
    min: SimDuration,
    max: SimDuration,
    samples_max: usize,
    percentile: f64,
    multiplier: f64,
    /// The last `samples_max` latencies, oldest first, in microseconds.
    latencies: VecDeque<u64>,
    /// Reused for the percentile, so choosing a deadline does not allocate.
    scratch: Vec<u64>,
}

impl AdaptiveTimeout {
    /// An adaptive timeout with nothing recorded.
    pub fn new(config: &AdaptiveTimeoutConfig) -> Self {
        let samples_max = config.samples.clamp(1, SAMPLES_MAX) as usize;
        let min = SimDuration::from_ms_f64(config.min_ms).max(SimDuration(1));
        let max = SimDuration::from_ms_f64(config.max_ms).max(min);
        AdaptiveTimeout {
            variant: config.variant,
            initial: SimDuration::from_ms_f64(config.initial_ms).clamp(min, max),
            min,
            max,
            samples_max,
            percentile: config.percentile,
            multiplier: config.multiplier,
            // Grown as latencies arrive, so a large window costs memory
            // only once it fills.
            latencies: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    /// The variant.
    pub fn variant(&self) -> AdaptiveVariant {
        self.variant
    }

    /// How many latencies are kept now.
    pub fn recorded(&self) -> usize {
        self.latencies.len()
    }

    /// The configured percentile of the kept latencies (the chapter's
    /// `percentile(99)`), or `None` while nothing is recorded.
    pub fn percentile(&mut self) -> Option<SimDuration> {
        percentile_of(&self.latencies, self.percentile, &mut self.scratch)
    }

    /// The deadline for a call starting now (`calculateTimeout`).
    pub fn timeout(&mut self) -> SimDuration {
        let percentile = self.percentile();
        self.timeout_from(percentile)
    }

    /// `initial` without a percentile, else `clamp(percentile × multiplier,
    /// min, max)`.
    fn timeout_from(&self, percentile: Option<SimDuration>) -> SimDuration {
        let timeout = match percentile {
            None => self.initial,
            Some(percentile) => {
                let scaled = (percentile.as_micros() as f64 * self.multiplier).round();
                // Float-to-int conversion saturates; the clamp bounds it anyway.
                SimDuration(scaled as u64).clamp(self.min, self.max)
            }
        };
        debug_assert!(timeout >= self.min);
        debug_assert!(timeout <= self.max);
        timeout
    }

    /// A call's inner call answered `reply` after `latency`. Returns whether
    /// the latency was recorded: the chapter records successes (and
    /// fallbacks) only; `ignore_timeouts` records every answer except an
    /// inner timeout, which is no answer.
    pub fn record_answer(&mut self, latency: SimDuration, reply: Reply) -> bool {
        let record = match self.variant {
            AdaptiveVariant::Chapter => reply.is_ok(),
            AdaptiveVariant::IgnoreTimeouts => reply != Reply::Timeout,
        };
        if record {
            self.push(latency);
        }
        record
    }

    /// A call timed out after its deadline `timeout`. Returns whether it was
    /// recorded (as a latency of `timeout`): by the chapter variant only.
    pub fn record_timeout(&mut self, timeout: SimDuration) -> bool {
        let record = self.variant == AdaptiveVariant::Chapter;
        if record {
            self.push(timeout);
        }
        record
    }

    fn push(&mut self, latency: SimDuration) {
        self.latencies.push_back(latency.as_micros());
        if self.latencies.len() > self.samples_max {
            self.latencies.pop_front();
        }
        debug_assert!(self.latencies.len() <= self.samples_max);
    }
}

/// `sorted[ceil(n × percentile / 100) − 1]` of `latencies`, without sorting.
fn percentile_of(
    latencies: &VecDeque<u64>,
    percentile: f64,
    scratch: &mut Vec<u64>,
) -> Option<SimDuration> {
    let count = latencies.len();
    if count == 0 {
        return None;
    }
    // The chapter's index, in the same double arithmetic as JavaScript.
    let rank = (count as f64 * percentile / 100.0).ceil() as usize;
    let index = rank.clamp(1, count) - 1;
    scratch.clear();
    scratch.extend(latencies.iter().copied());
    // The index-th smallest is the element sorting would put there.
    let (_, value, _) = scratch.select_nth_unstable(index);
    Some(SimDuration(*value))
}

/// The adaptive timeout as a stack layer. The deadline armed for a call is
/// kept in its `CallState::chosen`, so a timeout records its own deadline.
pub struct AdaptiveTimeoutLayer {
    timeout: AdaptiveTimeout,
    calls: u64,
    timeouts: u64,
    recorded: u64,
}

impl AdaptiveTimeoutLayer {
    /// A layer with nothing recorded.
    pub fn new(config: &AdaptiveTimeoutConfig) -> Self {
        AdaptiveTimeoutLayer {
            timeout: AdaptiveTimeout::new(config),
            calls: 0,
            timeouts: 0,
            recorded: 0,
        }
    }
}

impl Layer for AdaptiveTimeoutLayer {
    fn kind(&self) -> &'static str {
        "adaptive_timeout"
    }

    fn on_start(&mut self, ctx: &mut Ctx) -> Step {
        self.calls += 1;
        let timeout = self.timeout.timeout();
        ctx.call.chosen = timeout;
        Step::ForwardWithTimer(timeout)
    }

    fn on_result(&mut self, ctx: &mut Ctx, reply: Reply) -> Step {
        let latency = ctx.now.saturating_since(ctx.call.started_at);
        if self.timeout.record_answer(latency, reply) {
            self.recorded += 1;
        }
        Step::Complete(reply)
    }

    fn on_timer(&mut self, ctx: &mut Ctx) -> Step {
        self.timeouts += 1;
        if self.timeout.record_timeout(ctx.call.chosen) {
            self.recorded += 1;
        }
        Step::Complete(Reply::Timeout)
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("calls", self.calls),
            ("timeouts", self.timeouts),
            ("recorded", self.recorded),
        ]
    }

    fn state(&self) -> serde_json::Value {
        let timeout = &self.timeout;
        let mut scratch = Vec::with_capacity(timeout.latencies.len());
        let percentile = percentile_of(&timeout.latencies, timeout.percentile, &mut scratch);
        serde_json::json!({
            "variant": timeout.variant.name(),
            "timeout_ms": ms_value(timeout.timeout_from(percentile).as_micros()),
            "percentile_ms": percentile.map(|value| ms_value(value.as_micros())),
            "samples": timeout.latencies.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SimTime;
    use crate::policy::test_support::with_ctx;
    use crate::policy::CallState;
    use proptest::prelude::*;

    fn config(variant: AdaptiveVariant) -> AdaptiveTimeoutConfig {
        AdaptiveTimeoutConfig {
            variant,
            ..AdaptiveTimeoutConfig::default()
        }
    }

    fn ms(value: f64) -> SimDuration {
        SimDuration::from_ms_f64(value)
    }

    /// What the backend does with one call.
    #[derive(Clone, Copy, Debug)]
    enum Backend {
        /// Answers with this reply after this many milliseconds.
        Answers(Reply, f64),
        /// Never answers.
        Hangs,
    }

    /// Plays calls one after another against `backend` and returns each
    /// call's deadline and whether it succeeded.
    fn play(timeout: &mut AdaptiveTimeout, calls: &[Backend]) -> Vec<(SimDuration, bool)> {
        calls
            .iter()
            .map(|backend| {
                let deadline = timeout.timeout();
                match *backend {
                    Backend::Answers(reply, latency_ms) if ms(latency_ms) < deadline => {
                        timeout.record_answer(ms(latency_ms), reply);
                        (deadline, reply.is_ok())
                    }
                    _ => {
                        timeout.record_timeout(deadline);
                        (deadline, false)
                    }
                }
            })
            .collect()
    }

    fn deadlines(played: &[(SimDuration, bool)]) -> Vec<f64> {
        played
            .iter()
            .map(|(deadline, _)| deadline.as_ms_f64())
            .collect()
    }

    // The chapter's arithmetic: initial while empty, then clamp(p99 × 1.5).
    #[test]
    fn deadline_is_initial_then_the_percentile_times_the_multiplier() {
        let mut timeout = AdaptiveTimeout::new(&AdaptiveTimeoutConfig {
            min_ms: 1.0,
            ..AdaptiveTimeoutConfig::default()
        });
        assert_eq!(timeout.timeout(), ms(1_000.0));
        for latency_ms in 1..=50 {
            timeout.record_answer(ms(latency_ms as f64), Reply::Success);
        }
        // n = 50: index ceil(49.5) - 1 = 49, the largest, 50 ms.
        assert_eq!(timeout.percentile(), Some(ms(50.0)));
        assert_eq!(timeout.timeout(), ms(75.0));
        for latency_ms in 51..=100 {
            timeout.record_answer(ms(latency_ms as f64), Reply::Success);
        }
        // n = 100: index ceil(99) - 1 = 98, the second largest, 99 ms.
        assert_eq!(timeout.percentile(), Some(ms(99.0)));
        assert_eq!(timeout.timeout(), ms(148.5));
    }

    #[test]
    fn deadline_is_clamped_to_min_and_max() {
        let mut timeout = AdaptiveTimeout::new(&AdaptiveTimeoutConfig::default());
        timeout.record_answer(ms(10.0), Reply::Success);
        assert_eq!(timeout.timeout(), ms(500.0));
        timeout.record_answer(ms(60_000.0), Reply::Success);
        assert_eq!(timeout.timeout(), ms(10_000.0));
    }

    // Only the last `samples` latencies count.
    #[test]
    fn the_window_keeps_only_the_last_samples() {
        let mut timeout = AdaptiveTimeout::new(&AdaptiveTimeoutConfig {
            samples: 3,
            percentile: 50.0,
            ..AdaptiveTimeoutConfig::default()
        });
        for latency_ms in [9_000.0, 20.0, 30.0, 40.0] {
            timeout.record_answer(ms(latency_ms), Reply::Success);
        }
        assert_eq!(timeout.recorded(), 3);
        // [20, 30, 40]: index ceil(1.5) - 1 = 1.
        assert_eq!(timeout.percentile(), Some(ms(30.0)));
    }

    // What each variant records: the chapter successes and timeouts (as their
    // deadline), ignore_timeouts every answer but no timeout.
    #[test]
    fn variants_record_different_outcomes() {
        let error = Reply::Error { retryable: true };
        let mut chapter = AdaptiveTimeout::new(&config(AdaptiveVariant::Chapter));
        assert!(chapter.record_answer(ms(5.0), Reply::Success));
        assert!(chapter.record_answer(ms(5.0), Reply::Fallback));
        assert!(!chapter.record_answer(ms(5.0), error));
        assert!(!chapter.record_answer(ms(5.0), Reply::QueueFull));
        assert!(!chapter.record_answer(ms(5.0), Reply::Timeout));
        assert!(chapter.record_timeout(ms(1_000.0)));
        assert_eq!(chapter.recorded(), 3);

        let mut ignore = AdaptiveTimeout::new(&config(AdaptiveVariant::IgnoreTimeouts));
        assert!(ignore.record_answer(ms(5.0), Reply::Success));
        assert!(ignore.record_answer(ms(5.0), error));
        assert!(ignore.record_answer(ms(5.0), Reply::QueueFull));
        assert!(!ignore.record_answer(ms(5.0), Reply::Timeout));
        assert!(!ignore.record_timeout(ms(1_000.0)));
        assert_eq!(ignore.recorded(), 3);
    }

    // Counterexample: on a backend that never answers, each chapter timeout
    // records its own deadline, the p99 rises to it and the next deadline is
    // 1.5 times larger, so the deadline ratchets from 1 s to the 10 s maximum
    // in six calls: callers wait ten times longer for the same failure. The
    // property it breaks, which ignore_timeouts keeps: no deadline exceeds
    // max(initial, clamp(1.5 × the slowest answer seen)), here 1000 ms.
    #[test]
    fn chapter_ratchets_to_max_on_a_backend_that_never_answers() {
        let hangs = [Backend::Hangs; 8];
        let mut chapter = AdaptiveTimeout::new(&config(AdaptiveVariant::Chapter));
        assert_eq!(
            deadlines(&play(&mut chapter, &hangs)),
            vec![1_000.0, 1_500.0, 2_250.0, 3_375.0, 5_062.5, 7_593.75, 10_000.0, 10_000.0]
        );
        let mut ignore = AdaptiveTimeout::new(&config(AdaptiveVariant::IgnoreTimeouts));
        assert_eq!(deadlines(&play(&mut ignore, &hangs)), vec![1_000.0; 8]);
    }

    // The same ratchet from a warm window of 100 answers at 100 ms: the p99
    // of 100 samples is the second largest, so it takes two timeouts per step.
    #[test]
    fn chapter_ratchets_from_a_warm_window_two_timeouts_per_step() {
        let mut chapter = AdaptiveTimeout::new(&config(AdaptiveVariant::Chapter));
        play(
            &mut chapter,
            &[Backend::Answers(Reply::Success, 100.0); 100],
        );
        let played = play(&mut chapter, &[Backend::Hangs; 16]);
        assert_eq!(
            deadlines(&played),
            vec![
                500.0, 500.0, 750.0, 750.0, 1_125.0, 1_125.0, 1_687.5, 1_687.5, 2_531.25, 2_531.25,
                3_796.875, 3_796.875, 5_695.313, 5_695.313, 8_542.97, 8_542.97
            ]
        );
        assert_eq!(chapter.timeout(), ms(10_000.0));
    }

    // The opposite blind spot: the backend slows from 100 ms to 800 ms, past
    // the 500 ms deadline. ignore_timeouts records nothing from calls that
    // time out, so its deadline stays at 500 ms and every call fails for
    // ever; the chapter's ratchet reaches 1125 ms after four timeouts and the
    // calls succeed again.
    #[test]
    fn ignore_timeouts_never_adapts_to_a_slowdown_past_its_deadline() {
        let warm = [Backend::Answers(Reply::Success, 100.0); 100];
        let slow = [Backend::Answers(Reply::Success, 800.0); 1_000];

        let mut ignore = AdaptiveTimeout::new(&config(AdaptiveVariant::IgnoreTimeouts));
        play(&mut ignore, &warm);
        let played = play(&mut ignore, &slow);
        assert!(played
            .iter()
            .all(|&(deadline, ok)| deadline == ms(500.0) && !ok));

        let mut chapter = AdaptiveTimeout::new(&config(AdaptiveVariant::Chapter));
        play(&mut chapter, &warm);
        let played = play(&mut chapter, &slow);
        assert_eq!(
            deadlines(&played[..6]),
            vec![500.0, 500.0, 750.0, 750.0, 1_125.0, 1_125.0]
        );
        let failed = played.iter().filter(|(_, ok)| !ok).count();
        assert_eq!(failed, 4);
    }

    // The layer arms the deadline it chose, keeps it in the call's `chosen`,
    // records a success's latency from the call's start and a timeout's own
    // deadline.
    #[test]
    fn layer_remembers_each_calls_deadline() {
        let mut layer = AdaptiveTimeoutLayer::new(&AdaptiveTimeoutConfig::default());
        let mut first = CallState::default();
        let step = with_ctx(&mut first, 0, |ctx| layer.on_start(ctx));
        assert_eq!(step, Step::ForwardWithTimer(ms(1_000.0)));
        assert_eq!(first.chosen, ms(1_000.0));
        assert_eq!(
            with_ctx(&mut first, 1_000, |ctx| layer.on_timer(ctx)),
            Step::Complete(Reply::Timeout)
        );
        let mut second = CallState {
            started_at: SimTime::from_ms(2_000),
            ..CallState::default()
        };
        assert_eq!(
            with_ctx(&mut second, 2_000, |ctx| layer.on_start(ctx)),
            Step::ForwardWithTimer(ms(1_500.0))
        );
        assert_eq!(
            with_ctx(&mut second, 2_200, |ctx| layer
                .on_result(ctx, Reply::Success)),
            Step::Complete(Reply::Success)
        );
        assert_eq!(
            layer.counters(),
            vec![("calls", 2), ("timeouts", 1), ("recorded", 2)]
        );
        // Samples [1000, 200]: p99 = 1000, × 1.5.
        assert_eq!(
            layer.state(),
            serde_json::json!({
                "variant": "chapter",
                "timeout_ms": 1500,
                "percentile_ms": 1000,
                "samples": 2,
            })
        );
    }

    #[test]
    fn validation_keeps_initial_within_min_and_max() {
        let bad = AdaptiveTimeoutConfig {
            initial_ms: 100.0,
            ..AdaptiveTimeoutConfig::default()
        };
        assert_eq!(
            bad.validate("p").unwrap_err().to_string(),
            "p.initial_ms: must be a finite number in [500, 10000] (got 100)"
        );
        let bad = AdaptiveTimeoutConfig {
            samples: 10_001,
            ..AdaptiveTimeoutConfig::default()
        };
        assert_eq!(
            bad.validate("p").unwrap_err().to_string(),
            "p.samples: must be in [1, 10000] (got 10001)"
        );
        let bad = AdaptiveTimeoutConfig {
            max_ms: 400.0,
            ..AdaptiveTimeoutConfig::default()
        };
        assert_eq!(
            bad.validate("p").unwrap_err().to_string(),
            "p.max_ms: must be a finite number in [500, 86400000] (got 400)"
        );
        assert!(AdaptiveTimeoutConfig::default().validate("p").is_ok());
    }

    fn backend() -> impl Strategy<Value = Backend> {
        prop_oneof![
            (0.0f64..20_000.0).prop_map(|latency| Backend::Answers(Reply::Success, latency)),
            (0.0f64..20_000.0)
                .prop_map(|latency| Backend::Answers(Reply::Error { retryable: true }, latency)),
            Just(Backend::Hangs),
        ]
    }

    proptest! {
        // Every deadline lies in [min, max], in both variants, whatever the
        // backend does.
        #[test]
        fn every_deadline_is_within_min_and_max(
            calls in proptest::collection::vec(backend(), 1..300),
            samples in 1u32..50,
            ignore in any::<bool>(),
        ) {
            let variant = if ignore { AdaptiveVariant::IgnoreTimeouts } else { AdaptiveVariant::Chapter };
            let mut timeout = AdaptiveTimeout::new(&AdaptiveTimeoutConfig {
                samples,
                ..config(variant)
            });
            for (deadline, _) in play(&mut timeout, &calls) {
                prop_assert!(deadline >= ms(500.0));
                prop_assert!(deadline <= ms(10_000.0));
            }
            prop_assert!(timeout.recorded() <= samples as usize);
        }

        // ignore_timeouts never waits longer than the answers it has seen
        // justify: every deadline is at most max(initial, clamp(1.5 × the
        // slowest answer so far)). The chapter variant breaks this (see
        // chapter_ratchets_to_max_on_a_backend_that_never_answers).
        #[test]
        fn ignore_timeouts_deadlines_follow_only_answers(
            calls in proptest::collection::vec(backend(), 1..300),
        ) {
            let mut timeout = AdaptiveTimeout::new(&config(AdaptiveVariant::IgnoreTimeouts));
            let mut slowest_answer: Option<SimDuration> = None;
            for backend in calls {
                let deadline = timeout.timeout();
                let bound = match slowest_answer {
                    None => ms(1_000.0),
                    Some(slowest) => SimDuration((slowest.as_micros() as f64 * 1.5).round() as u64)
                        .clamp(ms(500.0), ms(10_000.0))
                        .max(ms(1_000.0)),
                };
                prop_assert!(deadline <= bound, "deadline {:?} above {:?}", deadline, bound);
                if let Backend::Answers(reply, latency_ms) = backend {
                    if ms(latency_ms) < deadline {
                        timeout.record_answer(ms(latency_ms), reply);
                        slowest_answer = slowest_answer.max(Some(ms(latency_ms)));
                    }
                }
            }
        }
    }
}
