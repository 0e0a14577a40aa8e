//! A fixed per-call deadline (the chapter's `TimeoutWrapper`, section 8.5).
//!
//! The timer starts when a call enters the layer. If it fires first, the layer
//! answers `Reply::Timeout` at once. What happens to the inner call is
//! `on_timeout`:
//!
//! - `abandon` (the default) is the chapter's `Promise.race`: the inner call
//!   is not cancelled, so the service still does the work, and layers below
//!   this one (a breaker, say) still see its late result.
//! - `cancel` is what production clients do with a deadline (gRPC deadlines,
//!   Go's `context.WithTimeout`): the inner call is cancelled, each inner
//!   layer's `on_cancel` runs, and an attempt still on the network or waiting
//!   in a service's queue is withdrawn, so the service never spends a worker
//!   on an answer nobody waits for. Work already on a worker runs to its end.

use super::{ms_value, Ctx, Layer, Reply, Step};
use crate::engine::SimDuration;
use crate::scenario::check::{self, join};
use crate::scenario::error::Invalid;
use serde::{Deserialize, Serialize};

/// What a timeout does to the inner call when its timer fires.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    /// Answer `timeout` and let the inner call run on (the chapter's
    /// `Promise.race`).
    #[default]
    Abandon,
    /// Answer `timeout` and cancel the inner call (`Step::CompleteCancelling`).
    Cancel,
}

impl OnTimeout {
    /// The snake_case name, as written in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            OnTimeout::Abandon => "abandon",
            OnTimeout::Cancel => "cancel",
        }
    }
}

/// Timeout settings. JSON: `{"kind": "timeout", "timeout_ms": 1000,
/// "on_timeout": "abandon"}`. Default: `on_timeout` `abandon`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimeoutConfig {
    /// The deadline, in `(0, 86400000]` milliseconds.
    pub timeout_ms: f64,
    /// What happens to the inner call when the deadline passes.
    #[serde(default)]
    pub on_timeout: OnTimeout,
}

impl TimeoutConfig {
    /// Checks the range; `path` names this policy in the file.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        let path = join(path, "timeout_ms");
        check::positive(&path, self.timeout_ms)?;
        check::within_f64(&path, self.timeout_ms, 0.0, 86_400_000.0)
    }
}

/// The timeout as a stack layer.
///
/// A timeout has no state between calls, so it is a layer only; drive it
/// (as any layer) with `policy::driver`, which plays the rest of the stack:
///
/// ```
/// use sim::engine::SimTime;
/// use sim::policy::driver::{drive, parse_config, parse_events, Decision};
/// use sim::policy::{Reply, Step};
///
/// let spec = parse_config("timeout.json", br#"{"kind": "timeout", "timeout_ms": 100}"#, "timeout")?;
/// let events = parse_events("events.json", br#"[
///     {"at_ms": 0, "call": 1, "event": "start"},
///     {"at_ms": 0, "call": 2, "event": "start"},
///     {"at_ms": 50, "call": 1, "event": "success"},
///     {"at_ms": 200, "event": "tick"}
/// ]"#)?;
/// let lines = drive(&spec, &events, 1).expect("drives");
/// // Call 1 answered in time; call 2's timer fired at 100 ms.
/// assert_eq!(lines[2].decision, Decision::Step(Step::Complete(Reply::Success)));
/// let last = lines.last().unwrap();
/// assert_eq!((last.call.0, last.event, last.at), (2, "timer", SimTime::from_ms(100)));
/// assert_eq!(last.decision, Decision::Step(Step::Complete(Reply::Timeout)));
/// # Ok::<(), sim::scenario::ScenarioError>(())
/// ```
pub struct TimeoutLayer {
    timeout: SimDuration,
    on_timeout: OnTimeout,
    calls: u64,
    timeouts: u64,
}

impl TimeoutLayer {
    /// A timeout layer with `config`'s deadline.
    pub fn new(config: &TimeoutConfig) -> Self {
        TimeoutLayer {
            timeout: SimDuration::from_ms_f64(config.timeout_ms).max(SimDuration(1)),
            on_timeout: config.on_timeout,
            calls: 0,
            timeouts: 0,
        }
    }
}

impl Layer for TimeoutLayer {
    fn kind(&self) -> &'static str {
        "timeout"
    }

    fn on_start(&mut self, _ctx: &mut Ctx) -> Step {
        self.calls += 1;
        Step::ForwardWithTimer(self.timeout)
    }

    fn on_result(&mut self, _ctx: &mut Ctx, reply: Reply) -> Step {
        Step::Complete(reply)
    }

    fn on_timer(&mut self, _ctx: &mut Ctx) -> Step {
        self.timeouts += 1;
        match self.on_timeout {
            OnTimeout::Abandon => Step::Complete(Reply::Timeout),
            OnTimeout::Cancel => Step::CompleteCancelling(Reply::Timeout),
        }
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("calls", self.calls), ("timeouts", self.timeouts)]
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({
            "timeout_ms": ms_value(self.timeout.as_micros()),
            "on_timeout": self.on_timeout.name(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{RngFactory, SimTime};
    use crate::policy::{CallId, CallState};

    fn layer(on_timeout: OnTimeout) -> TimeoutLayer {
        TimeoutLayer::new(&TimeoutConfig {
            timeout_ms: 250.0,
            on_timeout,
        })
    }

    /// Runs `hook` on `layer` with a fresh context at `now_ms`.
    fn with_ctx<T>(now_ms: u64, hook: impl FnOnce(&mut Ctx) -> T) -> T {
        let mut call = CallState::default();
        let mut rng = RngFactory::new(1).stream("t");
        let (mut notes, mut wake) = (Vec::new(), Vec::new());
        hook(&mut Ctx {
            now: SimTime::from_ms(now_ms),
            id: CallId(1),
            call: &mut call,
            rng: &mut rng,
            notes: &mut notes,
            wake: &mut wake,
        })
    }

    // By default the deadline abandons the inner call (the chapter's Promise.race).
    #[test]
    fn abandon_completes_with_timeout_and_leaves_the_inner_call_running() {
        let mut layer = layer(OnTimeout::default());
        let start = with_ctx(0, |ctx| layer.on_start(ctx));
        assert_eq!(start, Step::ForwardWithTimer(SimDuration::from_ms(250)));
        let fired = with_ctx(250, |ctx| layer.on_timer(ctx));
        assert_eq!(fired, Step::Complete(Reply::Timeout));
        assert_eq!(layer.counters(), vec![("calls", 1), ("timeouts", 1)]);
    }

    // With `cancel` the deadline cancels the inner call.
    #[test]
    fn cancel_completes_with_timeout_and_cancels_the_inner_call() {
        let mut layer = layer(OnTimeout::Cancel);
        with_ctx(0, |ctx| layer.on_start(ctx));
        let fired = with_ctx(250, |ctx| layer.on_timer(ctx));
        assert_eq!(fired, Step::CompleteCancelling(Reply::Timeout));
        assert_eq!(
            layer.state(),
            serde_json::json!({"timeout_ms": 250, "on_timeout": "cancel"})
        );
    }

    // An answer before the deadline passes through unchanged in both modes.
    #[test]
    fn an_early_answer_passes_through() {
        for on_timeout in [OnTimeout::Abandon, OnTimeout::Cancel] {
            let mut layer = layer(on_timeout);
            with_ctx(0, |ctx| layer.on_start(ctx));
            let error = Reply::Error { retryable: true };
            assert_eq!(
                with_ctx(100, |ctx| layer.on_result(ctx, error)),
                Step::Complete(error)
            );
            assert_eq!(layer.counters(), vec![("calls", 1), ("timeouts", 0)]);
        }
    }

    #[test]
    fn on_timeout_defaults_to_abandon_and_rejects_unknown_modes() {
        let config: TimeoutConfig = serde_json::from_str(r#"{"timeout_ms": 5}"#).unwrap();
        assert_eq!(config.on_timeout, OnTimeout::Abandon);
        let error =
            serde_json::from_str::<TimeoutConfig>(r#"{"timeout_ms": 5, "on_timeout": "drop"}"#)
                .unwrap_err();
        assert!(
            error.to_string().contains("unknown variant `drop`"),
            "{error}"
        );
    }
}
