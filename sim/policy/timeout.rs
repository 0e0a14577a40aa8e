//! A fixed per-call deadline (the chapter's `TimeoutWrapper`, section 8.5).
//!
//! The timer starts when a call enters the layer. If it fires first, the layer
//! answers `Reply::Timeout` at once and abandons the inner call: the inner
//! call is not cancelled, so the service still does the work, and layers below
//! this one (a breaker, say) still see its late result. That is
//! `Promise.race`, as in the chapter.

use super::{Ctx, Layer, Reply, Step};
use crate::engine::SimDuration;
use crate::scenario::check::{self, join};
use crate::scenario::error::Invalid;
use serde::{Deserialize, Serialize};

/// Timeout settings. JSON: `{"kind": "timeout", "timeout_ms": 1000}`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimeoutConfig {
    /// The deadline, in `(0, 86400000]` milliseconds.
    pub timeout_ms: f64,
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
pub struct TimeoutLayer {
    timeout: SimDuration,
    calls: u64,
    timeouts: u64,
}

impl TimeoutLayer {
    /// A timeout layer with `config`'s deadline.
    pub fn new(config: &TimeoutConfig) -> Self {
        TimeoutLayer {
            timeout: SimDuration::from_ms_f64(config.timeout_ms).max(SimDuration(1)),
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
        Step::Complete(Reply::Timeout)
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("calls", self.calls), ("timeouts", self.timeouts)]
    }
}
