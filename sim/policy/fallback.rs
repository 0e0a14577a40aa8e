//! Fallback (the chapter's `FallbackService`, section 8.7): when the inner
//! call fails, answer with a default or degraded response instead. Fallback
//! answers are counted apart from successes everywhere.

use super::{Ctx, Layer, Reply, ReplyKind, Step};
use crate::scenario::check::join;
use crate::scenario::error::Invalid;
use serde::{Deserialize, Serialize};

/// Fallback settings. JSON: `{"kind": "fallback", "on": ["error", "timeout"]}`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FallbackConfig {
    /// Which failed replies get the fallback; default all of `error`,
    /// `timeout`, `breaker_open`, `queue_full`.
    #[serde(default = "on_default")]
    pub on: Vec<ReplyKind>,
}

fn on_default() -> Vec<ReplyKind> {
    vec![
        ReplyKind::Error,
        ReplyKind::Timeout,
        ReplyKind::BreakerOpen,
        ReplyKind::QueueFull,
        ReplyKind::BulkheadFull,
    ]
}

impl FallbackConfig {
    /// Checks that only failure kinds are listed; `path` names this policy.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        validate_failure_kinds(&join(path, "on"), &self.on)
    }
}

/// Checks that a list of reply kinds names only failures.
pub fn validate_failure_kinds(path: &str, kinds: &[ReplyKind]) -> Result<(), Invalid> {
    for (index, kind) in kinds.iter().enumerate() {
        if matches!(kind, ReplyKind::Success | ReplyKind::Fallback) {
            return Err(Invalid::new(
                format!("{path}[{index}]"),
                "must be one of error, timeout, breaker_open, queue_full, bulkhead_full",
            ));
        }
    }
    Ok(())
}

/// The fallback as a stack layer.
pub struct FallbackLayer {
    on: Vec<ReplyKind>,
    calls: u64,
    fallbacks: u64,
}

impl FallbackLayer {
    /// A fallback layer for `config`'s failure kinds.
    pub fn new(config: &FallbackConfig) -> Self {
        FallbackLayer {
            on: config.on.clone(),
            calls: 0,
            fallbacks: 0,
        }
    }
}

impl Layer for FallbackLayer {
    fn kind(&self) -> &'static str {
        "fallback"
    }

    fn on_start(&mut self, _ctx: &mut Ctx) -> Step {
        self.calls += 1;
        Step::Forward
    }

    fn on_result(&mut self, _ctx: &mut Ctx, reply: Reply) -> Step {
        if self.on.contains(&reply.kind()) {
            self.fallbacks += 1;
            Step::Complete(Reply::Fallback)
        } else {
            Step::Complete(reply)
        }
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("calls", self.calls), ("fallbacks", self.fallbacks)]
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "on": self.on })
    }
}
