//! Retry (the chapter's `retry` and `ExponentialBackoff`, section 8.3): up to
//! `attempts_max` attempts in all, waiting a backoff delay between them, and
//! only for replies listed in `retry_on`. A non-retryable error (a client
//! error, 4xx) is never retried, as in the chapter's `isRetryable`.
//!
//! The chapter's simple `retry(fn, 3)` is
//! `{"kind": "retry", "attempts_max": 3, "backoff": {"kind": "fixed", "delay_ms": 1000}}`.
//!
//! An optional `budget` (`super::budget`) limits the retries of all calls
//! through the layer together. The order of the checks on a failed attempt is
//! the chapter's and gRPC's: a failure the layer would retry is first shown to
//! the budget (`record_failure`, which only the token bucket counts); then, if
//! `attempts_max` is used up the call is *exhausted*; otherwise the budget is
//! asked for the retry (`try_retry`) and, if it refuses, the call completes
//! with the failure and counts as *budget exhausted*.

use super::backoff::Backoff;
use super::budget::{BudgetConfig, RetryBudget};
use super::fallback::validate_failure_kinds;
use super::{Ctx, Layer, Reply, ReplyKind, Step};
use crate::scenario::check::{self, join};
use crate::scenario::error::Invalid;
use serde::{Deserialize, Serialize};

/// Retry settings. Defaults: `attempts_max` 3, the chapter's exponential
/// backoff (1000 ms doubling to 30000 ms, no jitter), `retry_on` error,
/// timeout and queue_full, no budget.
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
    /// A limit on the retries of all calls through the layer together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetConfig>,
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
        validate_failure_kinds(&join(path, "retry_on"), &self.retry_on)?;
        match &self.budget {
            Some(budget) => budget.validate(&join(path, "budget")),
            None => Ok(()),
        }
    }
}

/// Retry as a stack layer.
pub struct RetryLayer {
    config: RetryConfig,
    budget: Option<RetryBudget>,
    calls: u64,
    retries: u64,
    exhausted: u64,
    budget_exhausted: u64,
}

impl RetryLayer {
    /// A retry layer with `config`'s schedule.
    pub fn new(config: &RetryConfig) -> Self {
        RetryLayer {
            config: config.clone(),
            budget: config.budget.as_ref().map(RetryBudget::new),
            calls: 0,
            retries: 0,
            exhausted: 0,
            budget_exhausted: 0,
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
        if let Some(budget) = &mut self.budget {
            budget.record_request(ctx.now);
        }
        Step::Forward
    }

    fn on_result(&mut self, ctx: &mut Ctx, reply: Reply) -> Step {
        if reply.is_ok() {
            if let Some(budget) = &mut self.budget {
                budget.record_success(ctx.now);
            }
            return Step::Complete(reply);
        }
        if !self.retryable(reply) {
            return Step::Complete(reply);
        }
        if let Some(budget) = &mut self.budget {
            budget.record_failure(ctx.now);
        }
        if ctx.call.attempt >= self.config.attempts_max {
            self.exhausted += 1;
            return Step::Complete(reply);
        }
        if let Some(budget) = &mut self.budget {
            if !budget.try_retry(ctx.now) {
                self.budget_exhausted += 1;
                return Step::Complete(reply);
            }
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
        let mut counters = vec![
            ("calls", self.calls),
            ("retries", self.retries),
            ("exhausted", self.exhausted),
        ];
        // Only layers with a budget report it, so summaries without one keep
        // their shape.
        if self.budget.is_some() {
            counters.push(("budget_exhausted", self.budget_exhausted));
        }
        counters
    }

    fn state(&self) -> serde_json::Value {
        let mut state = serde_json::json!({
            "attempts_max": self.config.attempts_max,
            "calls": self.calls,
            "retries": self.retries,
            "exhausted": self.exhausted,
        });
        if let Some(budget) = &self.budget {
            state["budget"] = budget.state();
        }
        state
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
            budget: None,
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
            budget: None,
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

    fn with_budget(attempts_max: u32, budget: BudgetConfig) -> RetryLayer {
        RetryLayer::new(&RetryConfig {
            attempts_max,
            backoff: Backoff::Fixed { delay_ms: 10.0 },
            retry_on: retry_on_default(),
            budget: Some(budget),
        })
    }

    // A refusal completes the call with its failure and counts budget_exhausted.
    #[test]
    fn budget_refusal_completes_with_the_failure() {
        let mut layer = with_budget(
            3,
            BudgetConfig::Chapter {
                ratio: 0.1,
                window_ms: 60_000,
            },
        );
        let error = Reply::Error { retryable: true };
        // First call: 0 retries / 1 request is below 0.1, so it retries.
        assert_eq!(
            drive(&mut layer, &[error])[1],
            Step::ForwardAfter(SimDuration::from_ms(10))
        );
        // Second call: 1 retry / 2 requests is not.
        assert_eq!(drive(&mut layer, &[error])[1], Step::Complete(error));
        assert_eq!(
            layer.counters(),
            vec![
                ("calls", 2),
                ("retries", 1),
                ("exhausted", 0),
                ("budget_exhausted", 1)
            ]
        );
        assert_eq!(
            layer.state()["budget"]["retries_in_window"],
            serde_json::json!(1)
        );
    }

    // The token bucket loses a token for a failure even when attempts are used up,
    // as gRPC counts every retryable failure.
    #[test]
    fn token_bucket_counts_the_failure_that_exhausts_a_call() {
        let mut layer = with_budget(
            2,
            BudgetConfig::TokenBucket {
                max_tokens: 3.0,
                token_ratio: 0.5,
            },
        );
        let error = Reply::Error { retryable: true };
        // 3 -> 2 (above 1.5, retried) -> 1 (attempts used up).
        let steps = drive(&mut layer, &[error, error]);
        assert_eq!(steps[2], Step::Complete(error));
        // 1 -> 0: refused.
        assert_eq!(drive(&mut layer, &[error])[1], Step::Complete(error));
        assert_eq!(
            layer.counters(),
            vec![
                ("calls", 2),
                ("retries", 1),
                ("exhausted", 1),
                ("budget_exhausted", 1)
            ]
        );
        // A success refills half a token: 0.5 is still not above 1.5.
        drive(&mut layer, &[Reply::Success]);
        assert_eq!(layer.state()["budget"]["tokens"], serde_json::json!(0.5));
    }

    // Client errors are neither retried nor shown to the budget.
    #[test]
    fn client_errors_leave_the_budget_alone() {
        let mut layer = with_budget(
            3,
            BudgetConfig::TokenBucket {
                max_tokens: 2.0,
                token_ratio: 0.1,
            },
        );
        let client_error = Reply::Error { retryable: false };
        for _ in 0..5 {
            assert_eq!(
                drive(&mut layer, &[client_error])[1],
                Step::Complete(client_error)
            );
        }
        assert_eq!(layer.state()["budget"]["tokens"], serde_json::json!(2.0));
        assert_eq!(layer.counters()[1], ("retries", 0));
    }

    // The chapter's simple retry is a fixed 1000 ms backoff with 3 attempts.
    #[test]
    fn chapter_simple_retry_is_a_fixed_backoff() {
        let config: RetryConfig = serde_json::from_str(
            r#"{"attempts_max": 3, "backoff": {"kind": "fixed", "delay_ms": 1000}}"#,
        )
        .unwrap();
        let mut layer = RetryLayer::new(&config);
        let error = Reply::Error { retryable: true };
        let wait = Step::ForwardAfter(SimDuration::from_ms(1_000));
        assert_eq!(
            drive(&mut layer, &[error, error, error]),
            vec![Step::Forward, wait, wait, Step::Complete(error)]
        );
    }

    #[test]
    fn success_completes_at_once() {
        let mut layer = RetryLayer::new(&RetryConfig {
            attempts_max: 5,
            backoff: Backoff::default(),
            retry_on: retry_on_default(),
            budget: None,
        });
        assert_eq!(
            drive(&mut layer, &[Reply::Success])[1],
            Step::Complete(Reply::Success)
        );
    }
}
