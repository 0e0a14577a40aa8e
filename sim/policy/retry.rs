//! Retry (the chapter's `retry` and `ExponentialBackoff`, section 8.3): up to
//! `attempts_max` attempts in all, waiting a backoff delay between them, and
//! only for replies listed in `retry_on`. A non-retryable error (a client
//! error, 4xx) is never retried, as in the chapter's `isRetryable`.

use super::backoff::Backoff;
use super::fallback::validate_failure_kinds;
use super::{Ctx, Layer, Reply, ReplyKind, Step};
use crate::scenario::check::{self, join};
use crate::scenario::error::Invalid;
use serde::{Deserialize, Serialize};

/// Retry settings. Defaults: `attempts_max` 3, the chapter's exponential
/// backoff (1000 ms doubling to 30000 ms, no jitter), `retry_on` error,
/// timeout and queue_full.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts in all, first included, in `[1, 100]`.
    #[serde(default = "attempts_max_default")]
    pub attempts_max: u32,
    /// The delay schedule between attempts.
    #[serde(default)]
    pub backoff: Backoff,
    /// Which failed replies are retried.
    #[serde(default = "retry_on_default")]
    pub retry_on: Vec<ReplyKind>,
}

fn attempts_max_default() -> u32 {
    3
}

fn retry_on_default() -> Vec<ReplyKind> {
    vec![ReplyKind::Error, ReplyKind::Timeout, ReplyKind::QueueFull]
}

impl RetryConfig {
    /// Checks the ranges; `path` names this policy in the file.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        check::within(&join(path, "attempts_max"), self.attempts_max, 1, 100)?;
        self.backoff.validate(&join(path, "backoff"))?;
        validate_failure_kinds(&join(path, "retry_on"), &self.retry_on)
    }
}

/// Retry as a stack layer.
pub struct RetryLayer {
    config: RetryConfig,
    calls: u64,
    retries: u64,
    exhausted: u64,
}

impl RetryLayer {
    /// A retry layer with `config`'s schedule.
    pub fn new(config: &RetryConfig) -> Self {
        RetryLayer {
            config: config.clone(),
            calls: 0,
            retries: 0,
            exhausted: 0,
        }
    }

    fn retryable(&self, reply: Reply) -> bool {
        match reply {
            Reply::Error { retryable: false } => false,
            _ => self.config.retry_on.contains(&reply.kind()),
        }
    }
}

impl Layer for RetryLayer {
    fn kind(&self) -> &'static str {
        "retry"
    }

    fn on_start(&mut self, ctx: &mut Ctx) -> Step {
        self.calls += 1;
        ctx.call.attempt = 1;
        Step::Forward
    }

    fn on_result(&mut self, ctx: &mut Ctx, reply: Reply) -> Step {
        if reply.is_ok() || !self.retryable(reply) {
            return Step::Complete(reply);
        }
        if ctx.call.attempt >= self.config.attempts_max {
            self.exhausted += 1;
            return Step::Complete(reply);
        }
        let delay = self
            .config
            .backoff
            .delay(ctx.call.attempt, ctx.call.delay_last, ctx.rng);
        ctx.call.attempt += 1;
        ctx.call.delay_last = delay;
        self.retries += 1;
        debug_assert!(ctx.call.attempt <= self.config.attempts_max);
        Step::ForwardAfter(delay)
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("calls", self.calls),
            ("retries", self.retries),
            ("exhausted", self.exhausted),
        ]
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({
            "attempts_max": self.config.attempts_max,
            "calls": self.calls,
            "retries": self.retries,
            "exhausted": self.exhausted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{RngFactory, SimDuration, SimTime};
    use crate::policy::CallState;

    fn drive(layer: &mut RetryLayer, replies: &[Reply]) -> Vec<Step> {
        let mut call = CallState::default();
        let mut rng = RngFactory::new(1).stream("r");
        let mut notes = Vec::new();
        let mut wake = Vec::new();
        let mut ctx = Ctx {
            now: SimTime::ZERO,
            id: crate::policy::CallId(0),
            call: &mut call,
            rng: &mut rng,
            notes: &mut notes,
            wake: &mut wake,
        };
        let mut steps = vec![layer.on_start(&mut ctx)];
        for reply in replies {
            steps.push(layer.on_result(&mut ctx, *reply));
        }
        steps
    }

    #[test]
    fn retries_up_to_attempts_max_with_backoff_then_gives_up() {
        let config = RetryConfig {
            attempts_max: 3,
            backoff: Backoff::Fixed { delay_ms: 50.0 },
            retry_on: retry_on_default(),
        };
        let mut layer = RetryLayer::new(&config);
        let error = Reply::Error { retryable: true };
        let steps = drive(&mut layer, &[error, Reply::Timeout, error]);
        let wait = Step::ForwardAfter(SimDuration::from_ms(50));
        assert_eq!(
            steps,
            vec![Step::Forward, wait, wait, Step::Complete(error)]
        );
        assert_eq!(
            layer.counters(),
            vec![("calls", 1), ("retries", 2), ("exhausted", 1)]
        );
    }

    #[test]
    fn client_errors_and_unlisted_kinds_are_not_retried() {
        let mut layer = RetryLayer::new(&RetryConfig {
            attempts_max: 5,
            backoff: Backoff::Fixed { delay_ms: 1.0 },
            retry_on: vec![ReplyKind::Timeout],
        });
        let client_error = Reply::Error { retryable: false };
        assert_eq!(
            drive(&mut layer, &[client_error])[1],
            Step::Complete(client_error)
        );
        let server_error = Reply::Error { retryable: true };
        assert_eq!(
            drive(&mut layer, &[server_error])[1],
            Step::Complete(server_error)
        );
        assert_eq!(
            drive(&mut layer, &[Reply::BreakerOpen])[1],
            Step::Complete(Reply::BreakerOpen)
        );
    }

    #[test]
    fn success_completes_at_once() {
        let mut layer = RetryLayer::new(&RetryConfig {
            attempts_max: 5,
            backoff: Backoff::default(),
            retry_on: retry_on_default(),
        });
        assert_eq!(
            drive(&mut layer, &[Reply::Success])[1],
            Step::Complete(Reply::Success)
        );
    }
}
