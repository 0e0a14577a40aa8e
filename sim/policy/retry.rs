//! Retry (the chapter's `retry` and `ExponentialBackoff`, section 8.3): up to
//! `attempts_max` attempts in all, waiting a backoff delay between them, and
//! only for replies listed in `retry_on`.
//!
//! Two variants differ on client errors (4xx, `Reply::Error { retryable:
//! false }`):
//!
//! - `production` (the default) never retries a client error, and never shows
//!   it to the budget: a request the server refused as malformed fails the
//!   same way again. This is also the chapter's `ExponentialBackoff`, whose
//!   `isRetryable` refuses 4xx.
//! - `chapter` is the chapter's `retry(fn, maxAttempts)` and
//!   `RetryBudget.execute(fn, maxAttempts)`: their `catch` retries every
//!   error, client errors included. Its `retry_on` defaults to all five
//!   failure kinds, since the chapter catches every thrown error.
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

/// Which retry rules apply to client errors (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryVariant {
    /// Client errors are never retried nor shown to the budget.
    #[default]
    Production,
    /// The chapter's `retry` and `RetryBudget.execute`: client errors are
    /// retried like any error; `retry_on` defaults to every failure kind.
    Chapter,
}

/// Retry settings. Defaults: `variant` `production`, `attempts_max` 3, the
/// chapter's exponential backoff (1000 ms doubling to 30000 ms, no jitter),
/// `retry_on` error, timeout and queue_full (every failure kind for the
/// `chapter` variant), no budget.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Whether client errors are retried.
    #[serde(default)]
    pub variant: RetryVariant,
    /// Attempts in all, first included, in `[1, 100]`.
    #[serde(default = "attempts_max_default")]
    pub attempts_max: u32,
    /// The delay schedule between attempts.
    #[serde(default)]
    pub backoff: Backoff,
    /// Which failed replies are retried; `None` for the variant's default
    /// (see `RetryConfig::retry_on`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<Vec<ReplyKind>>,
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

/// Every failure kind: what the chapter's `catch` retries.
fn retry_on_every_failure() -> Vec<ReplyKind> {
    vec![
        ReplyKind::Error,
        ReplyKind::Timeout,
        ReplyKind::BreakerOpen,
        ReplyKind::QueueFull,
        ReplyKind::BulkheadFull,
    ]
}

impl RetryConfig {
    /// The failure kinds retried: `retry_on` if given, else the variant's
    /// default.
    pub fn retry_on(&self) -> Vec<ReplyKind> {
        match (&self.retry_on, self.variant) {
            (Some(kinds), _) => kinds.clone(),
            (None, RetryVariant::Production) => retry_on_default(),
            (None, RetryVariant::Chapter) => retry_on_every_failure(),
        }
    }

    /// Checks the ranges; `path` names this policy in the file.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        check::within(&join(path, "attempts_max"), self.attempts_max, 1, 100)?;
        self.backoff.validate(&join(path, "backoff"))?;
        if let Some(kinds) = &self.retry_on {
            validate_failure_kinds(&join(path, "retry_on"), kinds)?;
        }
        match &self.budget {
            Some(budget) => budget.validate(&join(path, "budget")),
            None => Ok(()),
        }
    }
}

/// Retry as a stack layer.
pub struct RetryLayer {
    config: RetryConfig,
    retry_on: Vec<ReplyKind>,
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
            retry_on: config.retry_on(),
            budget: config.budget.as_ref().map(RetryBudget::new),
            calls: 0,
            retries: 0,
            exhausted: 0,
            budget_exhausted: 0,
        }
    }

    fn retryable(&self, reply: Reply) -> bool {
        match (reply, self.config.variant) {
            (Reply::Error { retryable: false }, RetryVariant::Production) => false,
            _ => self.retry_on.contains(&reply.kind()),
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
            .delay(ctx.call.attempt, ctx.call.chosen, ctx.rng);
        ctx.call.attempt += 1;
        ctx.call.chosen = delay;
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
    use proptest::prelude::*;

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
            variant: RetryVariant::Production,
            attempts_max: 3,
            backoff: Backoff::Fixed { delay_ms: 50.0 },
            retry_on: None,
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
            variant: RetryVariant::Production,
            attempts_max: 5,
            backoff: Backoff::Fixed { delay_ms: 1.0 },
            retry_on: Some(vec![ReplyKind::Timeout]),
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
            variant: RetryVariant::Production,
            attempts_max,
            backoff: Backoff::Fixed { delay_ms: 10.0 },
            retry_on: None,
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
            variant: RetryVariant::Production,
            attempts_max: 5,
            backoff: Backoff::default(),
            retry_on: None,
            budget: None,
        });
        assert_eq!(
            drive(&mut layer, &[Reply::Success])[1],
            Step::Complete(Reply::Success)
        );
    }

    // --- The chapter variant against the chapter's code, decision by decision.

    /// One call's attempts: each attempt answers `latency_ms` after it
    /// starts, with a reply.
    type Attempts = Vec<(u64, Reply)>;

    /// What the chapter's code does after an attempt's answer.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Decision {
        /// `return await fn()`, or `throw`: the call ends with this reply.
        End(Reply),
        /// `await sleep(ms)` then the next attempt.
        Sleep(u64),
    }

    /// The chapter's `RetryBudget` with `Date.now()` in whole ms, line by line.
    struct ChapterRetryBudget {
        budget: f64,
        window_ms: u64,
        requests: Vec<u64>,
        retries: Vec<u64>,
    }

    impl ChapterRetryBudget {
        fn can_retry(&mut self, now: u64) -> bool {
            let window_start = now as f64 - self.window_ms as f64;
            self.requests.retain(|&t| t as f64 > window_start);
            self.retries.retain(|&t| t as f64 > window_start);
            let retry_ratio = self.retries.len() as f64 / (self.requests.len().max(1)) as f64;
            retry_ratio < self.budget
        }
    }

    /// `retry(fn, maxAttempts)` (with `budget` None, `sleep(1000)`) or
    /// `RetryBudget.execute(fn, maxAttempts)` (`sleep(1000 * attempt)`),
    /// transliterated: every caught error is retried. Calls run one after
    /// another from `start_ms`; returns each call's decisions.
    fn chapter_code(
        calls: &[Attempts],
        max_attempts: u32,
        mut budget: Option<&mut ChapterRetryBudget>,
    ) -> Vec<Vec<Decision>> {
        let mut now = 0;
        let mut all = Vec::new();
        for attempts in calls {
            let mut decisions = Vec::new();
            if let Some(budget) = budget.as_deref_mut() {
                budget.requests.push(now); // recordRequest()
            }
            for attempt in 1..=max_attempts {
                let (latency_ms, reply) = attempts[attempt as usize - 1];
                now += latency_ms; // await fn()
                if reply.is_ok() {
                    decisions.push(Decision::End(reply));
                    break;
                }
                // catch (error): every error, whatever its status.
                if attempt == max_attempts {
                    decisions.push(Decision::End(reply));
                    break;
                }
                let sleep_ms = match budget.as_deref_mut() {
                    None => 1_000,
                    Some(budget) => {
                        if !budget.can_retry(now) {
                            decisions.push(Decision::End(reply));
                            break;
                        }
                        budget.retries.push(now); // recordRetry()
                        1_000 * u64::from(attempt)
                    }
                };
                decisions.push(Decision::Sleep(sleep_ms));
                now += sleep_ms;
            }
            all.push(decisions);
        }
        all
    }

    /// The same calls through the layer, with `now` advanced as the chapter's
    /// code advances it.
    fn layer_decisions(layer: &mut RetryLayer, calls: &[Attempts]) -> Vec<Vec<Decision>> {
        let mut rng = RngFactory::new(1).stream("r");
        let mut notes = Vec::new();
        let mut wake = Vec::new();
        let mut now = SimTime::ZERO;
        let mut all = Vec::new();
        for attempts in calls {
            let mut call = CallState::default();
            let mut ctx = Ctx {
                now,
                id: crate::policy::CallId(0),
                call: &mut call,
                rng: &mut rng,
                notes: &mut notes,
                wake: &mut wake,
            };
            assert_eq!(layer.on_start(&mut ctx), Step::Forward);
            let mut decisions = Vec::new();
            for &(latency_ms, reply) in attempts {
                ctx.now = ctx.now + SimDuration::from_ms(latency_ms);
                match layer.on_result(&mut ctx, reply) {
                    Step::Complete(reply) => {
                        decisions.push(Decision::End(reply));
                        break;
                    }
                    Step::ForwardAfter(delay) => {
                        assert_eq!(delay.as_micros() % 1_000, 0);
                        decisions.push(Decision::Sleep(delay.as_micros() / 1_000));
                        ctx.now = ctx.now + delay;
                    }
                    other => panic!("unexpected step {other:?}"),
                }
            }
            now = ctx.now;
            all.push(decisions);
        }
        all
    }

    fn chapter_config(json: &str) -> RetryConfig {
        let config: RetryConfig = serde_json::from_str(json).unwrap();
        config.validate("policies[0]").unwrap();
        config
    }

    const CLIENT_ERROR: Reply = Reply::Error { retryable: false };
    const SERVER_ERROR: Reply = Reply::Error { retryable: true };

    // Issue 6: the chapter's `retry(fn, 3)` retries a client error (its catch
    // takes every error); the chapter variant does, the production one does not.
    #[test]
    fn regression_chapter_retry_retries_client_errors_as_the_chapter_code() {
        let calls: Vec<Attempts> = vec![
            vec![(10, CLIENT_ERROR), (10, CLIENT_ERROR), (10, Reply::Success)],
            vec![
                (5, SERVER_ERROR),
                (5, Reply::Timeout),
                (5, Reply::BreakerOpen),
            ],
            vec![
                (7, Reply::BulkheadFull),
                (7, Reply::Success),
                (0, Reply::Success),
            ],
            vec![(3, CLIENT_ERROR), (3, CLIENT_ERROR), (3, CLIENT_ERROR)],
        ];
        let expected = chapter_code(&calls, 3, None);
        assert_eq!(
            expected[0],
            vec![
                Decision::Sleep(1_000),
                Decision::Sleep(1_000),
                Decision::End(Reply::Success)
            ]
        );
        let chapter = chapter_config(
            r#"{"variant": "chapter", "attempts_max": 3, "backoff": {"kind": "fixed", "delay_ms": 1000}}"#,
        );
        assert_eq!(
            layer_decisions(&mut RetryLayer::new(&chapter), &calls),
            expected
        );
        // The production variant ends a client error at once.
        let production = RetryConfig {
            variant: RetryVariant::Production,
            ..chapter
        };
        let decisions = layer_decisions(&mut RetryLayer::new(&production), &calls);
        assert_eq!(decisions[0], vec![Decision::End(CLIENT_ERROR)]);
        assert_eq!(decisions[3], vec![Decision::End(CLIENT_ERROR)]);
    }

    // Issue 6: `RetryBudget.execute(fn, 3)` retries client errors too, and
    // counts them against its budget; the chapter variant with the chapter
    // budget decides the same on a timed sequence.
    #[test]
    fn regression_chapter_budget_retry_retries_client_errors_as_the_chapter_code() {
        let calls: Vec<Attempts> = vec![
            vec![(10, CLIENT_ERROR), (20, CLIENT_ERROR), (30, CLIENT_ERROR)],
            vec![(10, CLIENT_ERROR), (10, Reply::Success)],
            vec![(1, SERVER_ERROR), (1, Reply::Success)],
            vec![(50_000, CLIENT_ERROR), (10, Reply::Success)],
            vec![(5, Reply::Success)],
            vec![
                (9, CLIENT_ERROR),
                (9, Reply::QueueFull),
                (9, Reply::Success),
            ],
        ];
        let mut budget = ChapterRetryBudget {
            budget: 0.5,
            window_ms: 60_000,
            requests: Vec::new(),
            retries: Vec::new(),
        };
        let expected = chapter_code(&calls, 3, Some(&mut budget));
        let chapter = chapter_config(
            r#"{"variant": "chapter", "attempts_max": 3,
                "budget": {"kind": "chapter", "ratio": 0.5, "window_ms": 60000}}"#,
        );
        let got = layer_decisions(&mut RetryLayer::new(&chapter), &calls);
        assert_eq!(got, expected);
        // Worked by hand: a retried client error (call 1), refusals at a
        // ratio of exactly 0.5 (calls 1, 2, 4 and 6), each counted.
        use Decision::{End, Sleep};
        assert_eq!(
            expected,
            vec![
                vec![Sleep(1_000), End(CLIENT_ERROR)],
                vec![End(CLIENT_ERROR)],
                vec![Sleep(1_000), End(Reply::Success)],
                vec![End(CLIENT_ERROR)],
                vec![End(Reply::Success)],
                vec![Sleep(1_000), End(Reply::QueueFull)],
            ]
        );
    }

    fn any_reply() -> impl Strategy<Value = Reply> {
        prop_oneof![
            Just(Reply::Success),
            Just(CLIENT_ERROR),
            Just(SERVER_ERROR),
            Just(Reply::Timeout),
            Just(Reply::BreakerOpen),
            Just(Reply::QueueFull),
            Just(Reply::BulkheadFull),
        ]
    }

    proptest! {
        // Over random timed sequences, the chapter variant with the chapter
        // budget decides exactly as `RetryBudget.execute`.
        #[test]
        fn chapter_variant_decides_as_the_chapter_code(
            calls in proptest::collection::vec(
                proptest::collection::vec((0u64..40_000, any_reply()), 3), 1..30),
            ratio in 0.001f64..1.5,
            window_ms in 1u64..100_000,
        ) {
            let mut budget = ChapterRetryBudget { budget: ratio, window_ms, requests: Vec::new(), retries: Vec::new() };
            let expected = chapter_code(&calls, 3, Some(&mut budget));
            let config = RetryConfig {
                variant: RetryVariant::Chapter,
                attempts_max: 3,
                backoff: Backoff::default(),
                retry_on: None,
                budget: Some(BudgetConfig::Chapter { ratio, window_ms }),
            };
            prop_assert_eq!(layer_decisions(&mut RetryLayer::new(&config), &calls), expected);
        }
    }
}
