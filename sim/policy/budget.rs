//! Retry budgets: a limit on retries shared by every call through one retry
//! layer, as the optional `budget` of a `retry` policy.
//!
//! ## Why budgets and not only `attempts_max`
//!
//! `attempts_max` bounds the retries of one call, so during an outage every
//! call still multiplies the load by `attempts_max`. A budget bounds the
//! retries of all calls together, relative to the traffic (a ratio of
//! requests, or of successes), so an outage costs a few extra percent of load
//! instead of a multiple. Three algorithms:
//!
//! | kind | source | allows a retry when |
//! |---|---|---|
//! | `chapter` | the chapter's `RetryBudget` (section 8.3) | retries / (requests or 1) over the last `window_ms` is `< ratio` |
//! | `token_bucket` | gRPC retry throttling (gRFC A6) | the token count, after this failure's `-1`, is `> max_tokens / 2` |
//! | `finagle` | Finagle's `RetryBudget` | the windowed balance of deposits and withdrawals plus the reserve covers one withdrawal |
//!
//! Each is a pure state machine: `now` is an argument and nothing else reads
//! a clock. The retry layer drives them through `RetryBudget`:
//! `record_request` when a call enters the layer, `record_success` for a
//! usable reply, `record_failure` for each failure it would retry, and
//! `try_retry` when it wants to retry (an allowed retry is recorded there).
//!
//! ## Clocks
//!
//! The chapter reads `Date.now()` and Finagle `Stopwatch.systemMillis`, both
//! whole milliseconds, so those two budgets read `now` floored to whole
//! milliseconds. The token bucket reads no clock at all.
//!
//! ## What each guarantees (the property tests check these)
//!
//! For an allowed retry at time `t` (milliseconds), write `R(a, b]` for the
//! retries allowed in `(a, b]`, this one included, `Q(a, b]` for the requests
//! recorded there and `S` for successes.
//!
//! - A correct sliding ratio would give `R(t - W, t] <= ratio * Q(t - W, t]`.
//!   The chapter's budget checks the ratio *before* counting the retry it
//!   admits, and counts an empty window as one request, so it only gives
//!   `R(t - W, t] - 1 < ratio * max(Q(t - W, t], 1)`: one retry over the ratio
//!   in every window. At low traffic that is everything: with one request per
//!   window, every failure is retried, whatever `ratio` is.
//! - The token bucket gives, over any stretch of calls that contains at least
//!   one allowed retry, `1000 * R + 1 <= (max_milli - threshold_milli) +
//!   ratio_milli * S` in thousandths of a token: at most about `max_tokens / 2`
//!   retries in a burst, then `token_ratio` retries per success.
//! - Finagle gives `withdrawal * R(t - 9s, t] <= deposit * Q(t - 19s, t] +
//!   reserve`, where `s = ttl_ms / 10` is its slice: deposits live between
//!   nine and nineteen slices.

use crate::engine::{SimTime, MICROS_PER_MS};
use crate::scenario::check::{self, join};
use crate::scenario::error::Invalid;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::VecDeque;

/// The longest `window_ms` a chapter budget may have: one hour.
pub const WINDOW_MS_MAX: u64 = 3_600_000;

/// A retry budget's configuration: the `budget` object of a `retry` policy.
///
/// Defaults: `chapter` has `ratio` 0.1 and `window_ms` 60000 (the chapter's);
/// `token_bucket` has `max_tokens` 10 and `token_ratio` 0.1 (gRPC's example);
/// `finagle` has `ttl_ms` 10000, `min_retries_per_second` 10 and
/// `percent_can_retry` 0.2 (Finagle's `RetryBudget()`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BudgetConfig {
    /// The chapter's `RetryBudget`: a ratio of retries to requests over a
    /// sliding window.
    Chapter {
        /// Retries allowed per request, in `[0, 100]` (the chapter's `budget`).
        #[serde(default = "ratio_default")]
        ratio: f64,
        /// The sliding window, in `[1, 3600000]` milliseconds (`windowMs`).
        #[serde(default = "window_default")]
        window_ms: u64,
    },
    /// gRPC retry throttling.
    TokenBucket {
        /// The bucket's size and starting count, in `[0.001, 1000]`.
        #[serde(default = "max_tokens_default")]
        max_tokens: f64,
        /// Tokens a success adds, in `[0.001, 1000]`.
        #[serde(default = "token_ratio_default")]
        token_ratio: f64,
    },
    /// Finagle's `RetryBudget`.
    Finagle {
        /// How long deposits last, in `[1000, 60000]` milliseconds.
        #[serde(default = "ttl_default")]
        ttl_ms: u64,
        /// Retries per second allowed even without requests, in `[0, 1000000]`.
        #[serde(default = "min_retries_default")]
        min_retries_per_second: u32,
        /// Retries allowed per request on top of the reserve, in `[0, 1000]`.
        #[serde(default = "percent_default")]
        percent_can_retry: f64,
    },
}

fn ratio_default() -> f64 {
    0.1
}

fn window_default() -> u64 {
    60_000
}

fn max_tokens_default() -> f64 {
    10.0
}

fn token_ratio_default() -> f64 {
    0.1
}

fn ttl_default() -> u64 {
    10_000
}

fn min_retries_default() -> u32 {
    10
}

fn percent_default() -> f64 {
    0.2
}

impl BudgetConfig {
    /// Checks the ranges; `path` names this budget in the file.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        match self {
            BudgetConfig::Chapter { ratio, window_ms } => {
                check::within_f64(&join(path, "ratio"), *ratio, 0.0, 100.0)?;
                check::within(&join(path, "window_ms"), *window_ms, 1, WINDOW_MS_MAX)
            }
            BudgetConfig::TokenBucket {
                max_tokens,
                token_ratio,
            } => {
                check::within_f64(&join(path, "max_tokens"), *max_tokens, 0.001, 1_000.0)?;
                check::within_f64(&join(path, "token_ratio"), *token_ratio, 0.001, 1_000.0)
            }
            BudgetConfig::Finagle {
                ttl_ms,
                min_retries_per_second,
                percent_can_retry,
            } => {
                check::within(&join(path, "ttl_ms"), *ttl_ms, 1_000, 60_000)?;
                check::within(
                    &join(path, "min_retries_per_second"),
                    *min_retries_per_second,
                    0,
                    1_000_000,
                )?;
                check::within_f64(
                    &join(path, "percent_can_retry"),
                    *percent_can_retry,
                    0.0,
                    1_000.0,
                )
            }
        }
    }
}

/// Whole milliseconds since the start, as `Date.now()` would read.
fn millis(now: SimTime) -> u64 {
    now.as_micros() / MICROS_PER_MS
}

/// The requests and retries recorded in one millisecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bucket {
    at_ms: u64,
    requests: u64,
    retries: u64,
}

/// The chapter's `RetryBudget` with bounded memory.
///
/// The chapter keeps two arrays of timestamps and filters them on every
/// `canRetry`; here the timestamps are counted per millisecond, which is the
/// resolution of `Date.now()`, so nothing is lost. An entry at `at_ms` is
/// dropped once `at_ms <= now_ms - window_ms`, as the chapter's
/// `filter(t => t > windowStart)` drops it.
///
/// **Memory bound.** Only milliseconds with activity get a bucket, and every
/// bucket kept lies in `(now_ms - window_ms, now_ms]`, so there are at most
/// `window_ms` buckets of 24 bytes (1.4 MB at the default 60 s window, reached
/// only with activity in every millisecond). The bound is structural: nothing
/// is evicted early and the semantics stay exact at it.
#[derive(Clone, Debug)]
pub struct ChapterBudget {
    ratio: f64,
    window_ms: u64,
    buckets: VecDeque<Bucket>,
    requests: u64,
    retries: u64,
}

impl ChapterBudget {
    /// An empty budget allowing `ratio` retries per request over `window_ms`.
    pub fn new(ratio: f64, window_ms: u64) -> Self {
        debug_assert!(window_ms >= 1);
        ChapterBudget {
            ratio,
            window_ms,
            buckets: VecDeque::new(),
            requests: 0,
            retries: 0,
        }
    }

    /// Drops the buckets at or before `now_ms - window_ms`.
    fn expire(&mut self, now_ms: u64) {
        while let Some(front) = self.buckets.front() {
            // `at_ms <= now_ms - window_ms`, without going below zero early on.
            if front.at_ms + self.window_ms > now_ms {
                break;
            }
            self.requests -= front.requests;
            self.retries -= front.retries;
            self.buckets.pop_front();
        }
    }

    fn bucket(&mut self, now_ms: u64) -> &mut Bucket {
        self.expire(now_ms);
        if self.buckets.back().map(|back| back.at_ms) != Some(now_ms) {
            debug_assert!(self.buckets.back().is_none_or(|back| back.at_ms < now_ms));
            self.buckets.push_back(Bucket {
                at_ms: now_ms,
                requests: 0,
                retries: 0,
            });
        }
        debug_assert!(self.buckets.len() as u64 <= self.window_ms);
        self.buckets.back_mut().expect("just pushed")
    }

    /// `recordRequest()`: a call entered the retry layer.
    pub fn record_request(&mut self, now: SimTime) {
        self.bucket(millis(now)).requests += 1;
        self.requests += 1;
    }

    /// `canRetry()`: whether retries / (requests or 1) over the window is
    /// still below the ratio. Records nothing.
    pub fn can_retry(&mut self, now: SimTime) -> bool {
        self.expire(millis(now));
        let requests = self.requests.max(1);
        (self.retries as f64 / requests as f64) < self.ratio
    }

    /// `recordRetry()`: a retry was allowed.
    pub fn record_retry(&mut self, now: SimTime) {
        self.bucket(millis(now)).retries += 1;
        self.retries += 1;
    }

    /// The requests and retries in the window as of the last call.
    pub fn in_window(&self) -> (u64, u64) {
        (self.requests, self.retries)
    }

    /// How many buckets are held (at most `window_ms`).
    pub fn buckets_held(&self) -> usize {
        self.buckets.len()
    }
}

/// gRPC's retry throttle (gRFC A6, as in grpc-java's `Throttle` and
/// C-core's `ServerRetryThrottleData`), in thousandths of a token as both do.
///
/// The count starts at `max_tokens`. Each failure the retry layer would retry
/// takes one token (never below zero), each usable reply adds `token_ratio`
/// (never above `max_tokens`), and a retry is allowed only while the count,
/// after the failure's token is taken, is above `max_tokens / 2`.
#[derive(Clone, Debug)]
pub struct TokenBucketBudget {
    max_milli: u64,
    threshold_milli: u64,
    ratio_milli: u64,
    tokens_milli: u64,
}

/// Thousandths of a token per token.
const MILLI: u64 = 1_000;

fn to_milli(value: f64) -> u64 {
    // Validation keeps `value` in [0.001, 1000]; gRPC supports three decimals.
    (value * MILLI as f64).round() as u64
}

impl TokenBucketBudget {
    /// A full bucket of `max_tokens`, refilled by `token_ratio` per success.
    pub fn new(max_tokens: f64, token_ratio: f64) -> Self {
        let max_milli = to_milli(max_tokens).max(1);
        TokenBucketBudget {
            max_milli,
            threshold_milli: max_milli / 2,
            ratio_milli: to_milli(token_ratio),
            tokens_milli: max_milli,
        }
    }

    /// A failed attempt the layer would retry: one token less, floor zero.
    pub fn record_failure(&mut self) {
        self.tokens_milli = self.tokens_milli.saturating_sub(MILLI);
    }

    /// A usable reply: `token_ratio` tokens more, capped at `max_tokens`.
    pub fn record_success(&mut self) {
        self.tokens_milli = (self.tokens_milli + self.ratio_milli).min(self.max_milli);
        debug_assert!(self.tokens_milli <= self.max_milli);
    }

    /// Whether a retry may go ahead: the count is above `max_tokens / 2`.
    pub fn can_retry(&self) -> bool {
        self.tokens_milli > self.threshold_milli
    }

    /// The current count, in thousandths of a token.
    pub fn tokens_milli(&self) -> u64 {
        self.tokens_milli
    }

    /// `(max, threshold, ratio)` in thousandths of a token.
    pub fn parameters_milli(&self) -> (u64, u64, u64) {
        (self.max_milli, self.threshold_milli, self.ratio_milli)
    }
}

/// The number of slices in Finagle's leaky bucket (`WindowedAdder(ttl, 10, ..)`).
const SLICES: usize = 10;

/// Finagle's `WindowedAdder`: a sum over the last `SLICES` slices of
/// `ttl / SLICES` milliseconds each, one slice being written and the others
/// kept in a ring. Slices start when the first add or read after the previous
/// slice's end happens, not on a fixed grid, exactly as in Finagle.
#[derive(Clone, Debug)]
struct WindowedAdder {
    slice_ms: u64,
    ring: [i64; SLICES - 1],
    index: usize,
    writer: i64,
    slice_start_ms: u64,
}

impl WindowedAdder {
    fn new(range_ms: u64, now_ms: u64) -> Self {
        let slice_ms = range_ms / SLICES as u64;
        debug_assert!(slice_ms >= 1);
        WindowedAdder {
            slice_ms,
            ring: [0; SLICES - 1],
            index: 0,
            writer: 0,
            slice_start_ms: now_ms,
        }
    }

    /// Finagle's `expired()`: file the current slice, then zero the slices
    /// skipped since it started.
    fn roll(&mut self, now_ms: u64) {
        let ring_len = SLICES - 1;
        if now_ms.saturating_sub(self.slice_start_ms) < self.slice_ms {
            return;
        }
        self.ring[self.index] = self.writer;
        self.writer = 0;
        self.index = (self.index + 1) % ring_len;
        let elapsed_slices = (now_ms - self.slice_start_ms) / self.slice_ms;
        let skipped = usize::try_from(elapsed_slices - 1)
            .unwrap_or(usize::MAX)
            .min(ring_len);
        for offset in 0..skipped {
            self.ring[(self.index + offset) % ring_len] = 0;
        }
        self.index = (self.index + skipped) % ring_len;
        self.slice_start_ms = now_ms;
    }

    fn add(&mut self, now_ms: u64, amount: i64) {
        self.roll(now_ms);
        self.writer += amount;
    }

    fn sum(&mut self, now_ms: u64) -> i64 {
        self.roll(now_ms);
        self.writer + self.ring.iter().sum::<i64>()
    }
}

/// Finagle's `RetryBudget(ttl, minRetriesPerSec, percentCanRetry)`: a
/// `TokenRetryBudget` over a leaky `TokenBucket`.
///
/// Each request deposits 1000 (nothing if `percent_can_retry` is 0); each
/// retry withdraws `floor(1000 / percent_can_retry)` (1 if it is 0), if the
/// balance covers it. Deposits and withdrawals expire with their slice after
/// about `ttl_ms`. The reserve, `min_retries_per_second` times
/// `floor(ttl_ms / 1000)` times the withdrawal, is always added to the
/// balance: it lets a client that has just started, or sends little, retry
/// anyway. Finagle computes the reserve in 32-bit integers, which overflow for
/// very small percentages; here it is 64-bit.
#[derive(Clone, Debug)]
pub struct FinagleBudget {
    deposit: i64,
    withdrawal: i64,
    reserve: i64,
    adder: WindowedAdder,
}

impl FinagleBudget {
    /// A fresh budget created at `now`.
    pub fn new(
        ttl_ms: u64,
        min_retries_per_second: u32,
        percent_can_retry: f64,
        now: SimTime,
    ) -> Self {
        let scale = MILLI as f64;
        let (deposit, withdrawal) = if percent_can_retry == 0.0 {
            (0, 1)
        } else {
            // Scala's `Double.toInt` truncates and saturates, as `as i32` does.
            (
                MILLI as i64,
                i64::from((scale / percent_can_retry) as i32).max(1),
            )
        };
        let ttl_seconds = (ttl_ms / 1_000) as i64;
        let reserve = i64::from(min_retries_per_second) * ttl_seconds * withdrawal;
        FinagleBudget {
            deposit,
            withdrawal,
            reserve,
            adder: WindowedAdder::new(ttl_ms, millis(now)),
        }
    }

    /// `deposit()`: a request was made.
    pub fn deposit(&mut self, now: SimTime) {
        self.adder.add(millis(now), self.deposit);
    }

    /// `tryWithdraw()`: takes one retry's worth if the balance covers it.
    pub fn try_withdraw(&mut self, now: SimTime) -> bool {
        let now_ms = millis(now);
        let allowed = self.adder.sum(now_ms) + self.reserve >= self.withdrawal;
        if allowed {
            self.adder.add(now_ms, -self.withdrawal);
        }
        allowed
    }

    /// `balance`: retries that could be made now.
    pub fn balance(&mut self, now: SimTime) -> i64 {
        (self.adder.sum(millis(now)) + self.reserve) / self.withdrawal
    }

    /// `(deposit, withdrawal, reserve, slice_ms)`, in Finagle's units.
    pub fn parameters(&self) -> (i64, i64, i64, u64) {
        (
            self.deposit,
            self.withdrawal,
            self.reserve,
            self.adder.slice_ms,
        )
    }
}

/// One retry layer's budget, whichever the algorithm.
///
/// The retry layer's calls, made by hand:
///
/// ```
/// use sim::engine::SimTime;
/// use sim::policy::budget::{BudgetConfig, RetryBudget};
///
/// let now = SimTime::from_ms(0);
/// // The chapter's: retries over requests in the window must stay below the ratio.
/// let mut chapter = RetryBudget::new(&BudgetConfig::Chapter { ratio: 0.5, window_ms: 1_000 });
/// chapter.record_request(now);
/// chapter.record_request(now);
/// assert!(chapter.try_retry(now)); // 0 retries for 2 requests
/// assert!(!chapter.try_retry(now)); // 1 for 2 is not below 0.5
/// // A second later the window has moved on.
/// chapter.record_request(SimTime::from_ms(1_000));
/// assert!(chapter.try_retry(SimTime::from_ms(1_000)));
///
/// // gRPC's token bucket: each failure costs a token; retries stop at half.
/// let mut bucket = RetryBudget::new(&BudgetConfig::TokenBucket { max_tokens: 4.0, token_ratio: 0.5 });
/// bucket.record_failure(now); // 3 tokens
/// assert!(bucket.try_retry(now));
/// bucket.record_failure(now); // 2 tokens: not above half
/// assert!(!bucket.try_retry(now));
/// bucket.record_success(now); // 2.5 tokens
/// assert!(bucket.try_retry(now));
/// ```
#[derive(Clone, Debug)]
pub enum RetryBudget {
    /// The chapter's sliding ratio.
    Chapter(ChapterBudget),
    /// gRPC retry throttling.
    TokenBucket(TokenBucketBudget),
    /// Finagle's retry budget.
    Finagle(FinagleBudget),
}

impl RetryBudget {
    /// A fresh budget, created at the start of the run.
    pub fn new(config: &BudgetConfig) -> Self {
        match *config {
            BudgetConfig::Chapter { ratio, window_ms } => {
                RetryBudget::Chapter(ChapterBudget::new(ratio, window_ms))
            }
            BudgetConfig::TokenBucket {
                max_tokens,
                token_ratio,
            } => RetryBudget::TokenBucket(TokenBucketBudget::new(max_tokens, token_ratio)),
            BudgetConfig::Finagle {
                ttl_ms,
                min_retries_per_second,
                percent_can_retry,
            } => RetryBudget::Finagle(FinagleBudget::new(
                ttl_ms,
                min_retries_per_second,
                percent_can_retry,
                SimTime::ZERO,
            )),
        }
    }

    /// A call entered the retry layer.
    pub fn record_request(&mut self, now: SimTime) {
        match self {
            RetryBudget::Chapter(budget) => budget.record_request(now),
            RetryBudget::TokenBucket(_) => {}
            RetryBudget::Finagle(budget) => budget.deposit(now),
        }
    }

    /// An attempt came back usable.
    pub fn record_success(&mut self, _now: SimTime) {
        if let RetryBudget::TokenBucket(budget) = self {
            budget.record_success();
        }
    }

    /// An attempt failed in a way the layer retries (whether or not attempts
    /// remain).
    pub fn record_failure(&mut self, _now: SimTime) {
        if let RetryBudget::TokenBucket(budget) = self {
            budget.record_failure();
        }
    }

    /// The layer wants to retry at `now`: whether it may. An allowed retry is
    /// recorded (the chapter's `recordRetry`, Finagle's withdrawal).
    pub fn try_retry(&mut self, now: SimTime) -> bool {
        match self {
            RetryBudget::Chapter(budget) => {
                let allowed = budget.can_retry(now);
                if allowed {
                    budget.record_retry(now);
                }
                allowed
            }
            RetryBudget::TokenBucket(budget) => budget.can_retry(),
            RetryBudget::Finagle(budget) => budget.try_withdraw(now),
        }
    }

    /// The budget's state as a JSON object, as of its last update.
    pub fn state(&self) -> serde_json::Value {
        match self {
            RetryBudget::Chapter(budget) => {
                let (requests, retries) = budget.in_window();
                json!({
                    "kind": "chapter",
                    "requests_in_window": requests,
                    "retries_in_window": retries,
                    "buckets": budget.buckets_held(),
                })
            }
            RetryBudget::TokenBucket(budget) => {
                let (_, threshold, _) = budget.parameters_milli();
                json!({
                    "kind": "token_bucket",
                    "tokens": budget.tokens_milli() as f64 / MILLI as f64,
                    "threshold": threshold as f64 / MILLI as f64,
                })
            }
            RetryBudget::Finagle(budget) => {
                let adder = &budget.adder;
                let sum = adder.writer + adder.ring.iter().sum::<i64>();
                json!({
                    "kind": "finagle",
                    "balance": (sum + budget.reserve) / budget.withdrawal,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SimDuration;
    use crate::test_support::counterexample;
    use proptest::prelude::*;

    fn ms(value: u64) -> SimTime {
        SimTime::from_ms(value)
    }

    /// What happens at one step of a trace.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Op {
        /// A call enters the retry layer.
        Request,
        /// An attempt fails and the layer would like to retry.
        Failure,
        /// An attempt succeeds.
        Success,
    }

    /// One step as it happened: when, what, and for a failure whether the
    /// budget allowed the retry.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Entry {
        at_ms: u64,
        op: Op,
        allowed: bool,
    }

    /// Something the retry layer can drive like a budget.
    trait Budget {
        fn request(&mut self, now: SimTime);
        fn failure(&mut self, now: SimTime) -> bool;
        fn success(&mut self, now: SimTime);
    }

    impl Budget for RetryBudget {
        fn request(&mut self, now: SimTime) {
            self.record_request(now);
        }
        fn failure(&mut self, now: SimTime) -> bool {
            self.record_failure(now);
            self.try_retry(now)
        }
        fn success(&mut self, now: SimTime) {
            self.record_success(now);
        }
    }

    /// A correct sliding ratio, for the tests only: a retry is allowed when,
    /// counting it, retries in the last `window_ms` stay within `ratio` of
    /// the requests there.
    struct SlidingReference {
        ratio: f64,
        window_ms: u64,
        requests: Vec<u64>,
        retries: Vec<u64>,
    }

    impl Budget for SlidingReference {
        fn request(&mut self, now: SimTime) {
            self.requests.push(millis(now));
        }
        fn failure(&mut self, now: SimTime) -> bool {
            let now_ms = millis(now);
            let live = |at: &&u64| **at + self.window_ms > now_ms;
            let requests = self.requests.iter().filter(live).count();
            let retries = self.retries.iter().filter(live).count();
            let allowed = (retries + 1) as f64 <= self.ratio * requests as f64;
            if allowed {
                self.retries.push(now_ms);
            }
            allowed
        }
        fn success(&mut self, _now: SimTime) {}
    }

    /// Plays `steps` (microseconds to advance, then an operation) against a
    /// budget. Failures before the first request are skipped: a retry layer
    /// only sees failures of calls that entered it.
    fn drive(budget: &mut impl Budget, steps: &[(u64, Op)]) -> Vec<Entry> {
        let mut now = SimTime::ZERO;
        let mut started = false;
        let mut trace = Vec::new();
        for &(advance, op) in steps {
            now = now + SimDuration(advance);
            let allowed = match op {
                Op::Request => {
                    budget.request(now);
                    started = true;
                    false
                }
                Op::Failure if !started => continue,
                Op::Failure => budget.failure(now),
                Op::Success => {
                    budget.success(now);
                    false
                }
            };
            trace.push(Entry {
                at_ms: millis(now),
                op,
                allowed,
            });
        }
        trace
    }

    /// Where a trace breaks a bound: the allowed retry, and the retries and
    /// requests counted for it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Excess {
        at_ms: u64,
        retries: u64,
        requests: u64,
    }

    /// The generic property: for every allowed retry at `t`, `within(R, Q)`
    /// holds for the retries `R` in `(t - retries_window_ms, t]` (this one
    /// included, none after it) and the requests `Q` in
    /// `(t - requests_window_ms, t]`. Returns the first retry where it fails.
    fn first_excess(
        trace: &[Entry],
        retries_window_ms: u64,
        requests_window_ms: u64,
        within: impl Fn(u64, u64) -> bool,
    ) -> Option<Excess> {
        for (index, entry) in trace.iter().enumerate() {
            if !(entry.op == Op::Failure && entry.allowed) {
                continue;
            }
            let t = entry.at_ms;
            let earlier = &trace[..=index];
            let retries = earlier
                .iter()
                .filter(|e| e.op == Op::Failure && e.allowed && e.at_ms + retries_window_ms > t)
                .count() as u64;
            let requests = earlier
                .iter()
                .filter(|e| e.op == Op::Request && e.at_ms + requests_window_ms > t)
                .count() as u64;
            if !within(retries, requests) {
                return Some(Excess {
                    at_ms: t,
                    retries,
                    requests,
                });
            }
        }
        None
    }

    /// The sliding-ratio bound `R <= ratio * Q + slack`, with a tolerance
    /// for float rounding far below one retry.
    fn ratio_bound(ratio: f64, slack: f64) -> impl Fn(u64, u64) -> bool {
        move |retries, requests| retries as f64 <= ratio * requests as f64 + slack + 1e-9
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![Just(Op::Request), Just(Op::Failure), Just(Op::Success)]
    }

    /// Advances in microseconds: often none, often less than a millisecond
    /// or a few, sometimes longer than any window the tests use.
    fn steps(long_us: u64) -> impl Strategy<Value = Vec<(u64, Op)>> {
        let advance = prop_oneof![Just(0u64), 0u64..5_000, 0u64..long_us];
        proptest::collection::vec((advance, op()), 0..200)
    }

    fn chapter(ratio: f64, window_ms: u64) -> RetryBudget {
        RetryBudget::new(&BudgetConfig::Chapter { ratio, window_ms })
    }

    /// The chapter's `RetryBudget` transliterated with unbounded arrays of
    /// millisecond timestamps, to check the bucketed one against.
    struct ChapterTransliteration {
        budget: f64,
        window_ms: i64,
        requests: Vec<i64>,
        retries: Vec<i64>,
    }

    impl Budget for ChapterTransliteration {
        fn request(&mut self, now: SimTime) {
            self.requests.push(millis(now) as i64);
        }
        fn failure(&mut self, now: SimTime) -> bool {
            let now_ms = millis(now) as i64;
            let window_start = now_ms - self.window_ms;
            self.requests.retain(|&t| t > window_start);
            self.retries.retain(|&t| t > window_start);
            let denominator = if self.requests.is_empty() {
                1
            } else {
                self.requests.len()
            };
            let allowed = (self.retries.len() as f64 / denominator as f64) < self.budget;
            if allowed {
                self.retries.push(now_ms);
            }
            allowed
        }
        fn success(&mut self, _now: SimTime) {}
    }

    // ----- chapter -----

    // Retries are allowed while retries / requests in the window stay below the ratio.
    #[test]
    fn chapter_budget_allows_retries_below_the_ratio() {
        let mut budget = chapter(0.1, 60_000);
        for _ in 0..20 {
            budget.record_request(ms(0));
        }
        // 0/20 and 1/20 are below 0.1; 2/20 is not.
        assert!(budget.try_retry(ms(1)));
        assert!(budget.try_retry(ms(2)));
        assert!(!budget.try_retry(ms(3)));
    }

    // Entries at exactly now - window are dropped, as `t > windowStart` drops them.
    #[test]
    fn chapter_budget_drops_entries_at_the_window_edge() {
        let mut inner = ChapterBudget::new(0.5, 1_000);
        inner.record_request(ms(0));
        inner.record_request(ms(1));
        assert!(inner.can_retry(ms(999)));
        inner.record_retry(ms(999));
        assert_eq!(inner.in_window(), (2, 1));
        assert!(!inner.can_retry(ms(999)));
        // At 1000 the request at 0 leaves: 1 retry / 1 request.
        assert!(!inner.can_retry(ms(1_000)));
        assert_eq!(inner.in_window(), (1, 1));
        // At 1001 the other request leaves: 1 retry / (0 or 1).
        assert!(!inner.can_retry(ms(1_001)));
        // At 1999 the retry leaves too: 0 / (0 or 1) < 0.5.
        assert!(inner.can_retry(ms(1_999)));
        assert_eq!(inner.in_window(), (0, 0));
    }

    // The budget reads whole milliseconds, like Date.now(): 999 us is still millisecond 0.
    #[test]
    fn chapter_budget_reads_the_clock_in_whole_milliseconds() {
        let mut inner = ChapterBudget::new(0.5, 1);
        inner.record_request(SimTime(0));
        inner.record_retry(SimTime(999));
        assert_eq!(inner.buckets_held(), 1);
        assert_eq!(inner.in_window(), (1, 1));
        inner.record_request(SimTime(1_000));
        assert_eq!(inner.in_window(), (1, 0));
    }

    // With activity in every millisecond the budget holds at most window_ms buckets.
    #[test]
    fn chapter_budget_memory_is_bounded_by_its_window() {
        let mut inner = ChapterBudget::new(0.1, 500);
        for at in 0..2_000 {
            inner.record_request(ms(at));
            inner.record_request(ms(at));
            if inner.can_retry(ms(at)) {
                inner.record_retry(ms(at));
            }
            assert!(inner.buckets_held() <= 500);
        }
        assert_eq!(inner.buckets_held(), 500);
        assert_eq!(inner.in_window().0, 1_000);
    }

    // At ratio 0 the strict `<` refuses every retry, even with no requests (0/1 < 0 is false).
    #[test]
    fn chapter_budget_at_ratio_zero_never_retries() {
        let mut budget = chapter(0.0, 60_000);
        assert!(!budget.try_retry(ms(0)));
        budget.record_request(ms(1));
        assert!(!budget.try_retry(ms(2)));
        assert!(!budget.try_retry(ms(120_000)));
    }

    // The chapter's counterexample: at one request per window every failure is
    // retried, so a 10% budget allows 100%.
    #[test]
    fn chapter_budget_retries_every_failure_at_one_request_per_window() {
        let mut budget = chapter(0.1, 60_000);
        let mut allowed = 0;
        for minute in 0..10 {
            let at = ms(minute * 60_000);
            budget.record_request(at);
            if budget.try_retry(at) {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 10);
    }

    // The chapter's counterexample: a call whose retry comes after its request left
    // the window is retried against zero requests (`requests.length || 1`).
    #[test]
    fn chapter_budget_allows_a_retry_with_no_request_in_the_window() {
        let mut budget = chapter(0.1, 60_000);
        budget.record_request(ms(0));
        assert!(budget.try_retry(ms(60_000)));
        let RetryBudget::Chapter(inner) = &budget else {
            unreachable!()
        };
        assert_eq!(inner.in_window(), (0, 1));
    }

    // The shrunk counterexample of the generic property, pinned: ratio 0.01, one
    // request and one failure in the same millisecond, and the retry is allowed.
    #[test]
    fn chapter_budget_counterexample_one_request_one_retry() {
        let trace = drive(&mut chapter(0.01, 1), &[(0, Op::Request), (0, Op::Failure)]);
        assert_eq!(
            first_excess(&trace, 1, 1, ratio_bound(0.01, 0.0)),
            Some(Excess {
                at_ms: 0,
                retries: 1,
                requests: 1
            })
        );
    }

    // Running the generic sliding-ratio property against the chapter's budget finds a
    // counterexample, and it shrinks to the pinned one.
    #[test]
    fn chapter_budget_fails_the_generic_sliding_ratio_property() {
        let strategy = (0u32..=100, 1u64..2_000, steps(3_000_000));
        let found = counterexample(strategy, |(percent, window_ms, steps)| {
            let ratio = f64::from(percent) / 100.0;
            let trace = drive(&mut chapter(ratio, window_ms), &steps);
            let excess = first_excess(&trace, window_ms, window_ms, ratio_bound(ratio, 0.0));
            prop_assert!(excess.is_none(), "{:?}", excess);
            Ok(())
        });
        match found {
            Some((percent, window_ms, steps)) => {
                assert_eq!(percent, 1);
                assert_eq!(window_ms, 1);
                assert_eq!(steps, vec![(0, Op::Request), (0, Op::Failure)]);
            }
            other => panic!("expected the chapter's budget to fail: {other:?}"),
        }
    }

    proptest! {
        // The bucketed budget decides exactly as the chapter's code with unbounded arrays.
        #[test]
        fn chapter_budget_decides_as_the_chapter_code(
            percent in 0u32..=100,
            window_ms in 1u64..2_000,
            steps in steps(3_000_000),
        ) {
            let ratio = f64::from(percent) / 100.0;
            let bucketed = drive(&mut chapter(ratio, window_ms), &steps);
            let mut transliteration = ChapterTransliteration {
                budget: ratio,
                window_ms: window_ms as i64,
                requests: Vec::new(),
                retries: Vec::new(),
            };
            prop_assert_eq!(bucketed, drive(&mut transliteration, &steps));
        }

        // The chapter's budget keeps the ratio only to within one retry per window:
        // R - 1 < ratio * max(Q, 1) for every retry it allows (ratio <= 1).
        #[test]
        fn chapter_budget_keeps_its_ratio_within_one_retry(
            percent in 0u32..=100,
            window_ms in 1u64..2_000,
            steps in steps(3_000_000),
        ) {
            let ratio = f64::from(percent) / 100.0;
            let trace = drive(&mut chapter(ratio, window_ms), &steps);
            let within = |retries: u64, requests: u64| ((retries - 1) as f64) < ratio * requests.max(1) as f64;
            prop_assert_eq!(first_excess(&trace, window_ms, window_ms, within), None);
        }

        // A correct sliding ratio keeps the generic property with no slack, so the
        // property itself is satisfiable.
        #[test]
        fn correct_sliding_ratio_keeps_the_generic_property(
            percent in 0u32..=100,
            window_ms in 1u64..2_000,
            steps in steps(3_000_000),
        ) {
            let ratio = f64::from(percent) / 100.0;
            let mut reference = SlidingReference { ratio, window_ms, requests: Vec::new(), retries: Vec::new() };
            let trace = drive(&mut reference, &steps);
            prop_assert_eq!(first_excess(&trace, window_ms, window_ms, ratio_bound(ratio, 0.0)), None);
        }
    }

    // ----- token bucket -----

    fn token_bucket(max_tokens: f64, token_ratio: f64) -> RetryBudget {
        RetryBudget::new(&BudgetConfig::TokenBucket {
            max_tokens,
            token_ratio,
        })
    }

    // The arithmetic of gRPC's own throttle test: 4 tokens, 1.6 per success, threshold 2.
    #[test]
    fn token_bucket_counts_like_grpc() {
        let mut budget = TokenBucketBudget::new(4.0, 1.6);
        let fail = |budget: &mut TokenBucketBudget| {
            budget.record_failure();
            budget.can_retry()
        };
        assert!(fail(&mut budget)); // 3
        budget.record_success(); // 4: capped
        assert_eq!(budget.tokens_milli(), 4_000);
        assert!(fail(&mut budget)); // 3
        assert!(!fail(&mut budget)); // 2: at the threshold, no retry
        assert!(!fail(&mut budget)); // 1
        budget.record_success(); // 2.6
        assert!(!fail(&mut budget)); // 1.6
        budget.record_success(); // 3.2
        assert!(fail(&mut budget)); // 2.2
        for _ in 0..5 {
            budget.record_failure();
        }
        assert_eq!(budget.tokens_milli(), 0); // floor 0
    }

    // With gRPC's example settings a burst of failures gets four retries, not five:
    // the fifth failure leaves 5 tokens, which is not above 10 / 2.
    #[test]
    fn token_bucket_allows_four_retries_in_a_burst_at_the_defaults() {
        let mut budget = token_bucket(10.0, 0.1);
        let allowed: Vec<bool> = (0..6)
            .map(|_| {
                budget.record_failure(ms(0));
                budget.try_retry(ms(0))
            })
            .collect();
        assert_eq!(allowed, vec![true, true, true, true, false, false]);
    }

    proptest! {
        // Over any stretch of a trace with at least one allowed retry,
        // 1000 * retries + 1 <= (max - threshold) + ratio * successes, in thousandths.
        #[test]
        fn token_bucket_retries_stay_within_its_arithmetic(
            max_milli in 1u64..20_000,
            ratio_milli in 1u64..3_000,
            steps in steps(1_000),
        ) {
            let config = BudgetConfig::TokenBucket {
                max_tokens: max_milli as f64 / 1_000.0,
                token_ratio: ratio_milli as f64 / 1_000.0,
            };
            let mut budget = RetryBudget::new(&config);
            let trace = drive(&mut budget, &steps);
            let headroom = max_milli - max_milli / 2;
            for start in 0..trace.len() {
                let (mut retries, mut successes) = (0u64, 0u64);
                for entry in &trace[start..] {
                    match entry.op {
                        Op::Success => successes += 1,
                        Op::Failure if entry.allowed => {
                            retries += 1;
                            prop_assert!(
                                1_000 * retries < headroom + ratio_milli * successes,
                                "{} retries, {} successes from step {}", retries, successes, start
                            );
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    // ----- finagle -----

    fn finagle(ttl_ms: u64, min_retries_per_second: u32, percent_can_retry: f64) -> FinagleBudget {
        FinagleBudget::new(
            ttl_ms,
            min_retries_per_second,
            percent_can_retry,
            SimTime::ZERO,
        )
    }

    /// Finagle's `testBudget`: with time frozen, 10000 requests each deposit and
    /// try to withdraw; the retries are within one of `n * percent + reserve`.
    fn frozen_retries(ttl_ms: u64, min_retries_per_second: u32, percent_can_retry: f64) {
        let mut budget = finagle(ttl_ms, min_retries_per_second, percent_can_retry);
        let reserve = (ttl_ms / 1_000) as i64 * i64::from(min_retries_per_second);
        assert_eq!(budget.balance(ms(0)), reserve);
        let requests = 10_000;
        let mut retried = 0i64;
        for _ in 0..requests {
            budget.deposit(ms(0));
            if budget.try_withdraw(ms(0)) {
                retried += 1;
            } else {
                assert_eq!(budget.balance(ms(0)), 0);
            }
        }
        let expected = (requests as f64 * percent_can_retry) as i64 + reserve;
        assert!(
            (retried - expected).abs() <= 1,
            "percent {percent_can_retry}: {retried} retries, expected {expected}"
        );
    }

    // Finagle's RetryBudgetTest cases, with time standing still.
    #[test]
    fn finagle_budget_matches_finagle_tests_with_time_frozen() {
        for percent in [0.1, 0.5, 0.25, 0.75, 0.99, 0.999, 0.01, 0.001] {
            frozen_retries(60_000, 0, percent);
        }
        frozen_retries(1_000, 10, 0.0);
        frozen_retries(2_000, 5, 0.0);
        frozen_retries(1_000, 10, 0.1);
        frozen_retries(2_000, 5, 0.5);
    }

    // A percentage above 1 lets each request pay for more than one retry.
    #[test]
    fn finagle_budget_above_one_hundred_percent() {
        let mut budget = finagle(60_000, 0, 2.0);
        assert!(!budget.try_withdraw(ms(0)));
        for _ in 0..10_000 {
            budget.deposit(ms(0));
        }
        assert_eq!(budget.balance(ms(0)), 20_000);
    }

    // With no reserve and no percentage nothing is ever retried (Finagle's `Empty`).
    #[test]
    fn finagle_budget_without_reserve_or_percentage_is_empty() {
        let mut budget = finagle(10_000, 0, 0.0);
        budget.deposit(ms(0));
        assert!(!budget.try_withdraw(ms(0)));
        assert_eq!(budget.balance(ms(0)), 0);
    }

    // Read once per slice, deposits count for exactly one ttl.
    #[test]
    fn finagle_deposits_expire_after_one_ttl_when_read_every_slice() {
        let mut budget = finagle(10_000, 0, 1.0);
        for _ in 0..10 {
            budget.deposit(ms(0));
        }
        for second in 1..10 {
            assert_eq!(budget.balance(ms(second * 1_000)), 10, "at {second} s");
        }
        assert_eq!(budget.balance(ms(9_999)), 10);
        assert_eq!(budget.balance(ms(10_000)), 0);
    }

    // A gap of ten slices or more clears everything, however the reads fall.
    #[test]
    fn finagle_deposits_are_gone_after_ten_idle_slices() {
        let mut budget = finagle(10_000, 0, 1.0);
        budget.deposit(ms(0));
        assert_eq!(budget.balance(ms(9_999)), 1);
        let mut budget = finagle(10_000, 0, 1.0);
        budget.deposit(ms(0));
        assert_eq!(budget.balance(ms(10_500)), 0);
    }

    // Slices start at the first read after the previous one ended, so with a
    // read every 1.999 slices a deposit lives almost two ttls.
    #[test]
    fn finagle_deposits_outlive_the_ttl_when_reads_are_sparse() {
        let mut budget = finagle(10_000, 0, 1.0);
        budget.deposit(ms(0));
        for read in 1..=9 {
            assert_eq!(budget.balance(ms(read * 1_999)), 1, "read {read}");
        }
        assert_eq!(budget.balance(ms(10 * 1_999)), 0);
    }

    proptest! {
        // withdrawal * R(t - 9 slices, t] <= deposit * Q(t - 19 slices, t] + reserve
        // for every retry Finagle allows.
        #[test]
        fn finagle_budget_retries_stay_within_deposits_and_reserve(
            ttl_ms in 1_000u64..=60_000,
            min_retries_per_second in 0u32..3,
            percent in 0u32..=300,
            steps in steps(30_000_000),
        ) {
            let percent_can_retry = f64::from(percent) / 100.0;
            let mut budget = RetryBudget::new(&BudgetConfig::Finagle { ttl_ms, min_retries_per_second, percent_can_retry });
            let RetryBudget::Finagle(inner) = &budget else { unreachable!() };
            let (deposit, withdrawal, reserve, slice_ms) = inner.parameters();
            let trace = drive(&mut budget, &steps);
            let within = |retries: u64, requests: u64| {
                withdrawal * retries as i64 <= deposit * requests as i64 + reserve
            };
            prop_assert_eq!(first_excess(&trace, 9 * slice_ms, 19 * slice_ms, within), None);
        }
    }

    // ----- configuration -----

    // Out-of-range fields are named by their JSON path.
    #[test]
    fn budget_ranges_name_the_field() {
        let error = BudgetConfig::Chapter {
            ratio: -0.1,
            window_ms: 60_000,
        }
        .validate("clients[0].policies[0].budget")
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "clients[0].policies[0].budget.ratio: must be a finite number in [0, 100] (got -0.1)"
        );
        let error = BudgetConfig::TokenBucket {
            max_tokens: 0.0,
            token_ratio: 0.1,
        }
        .validate("b")
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "b.max_tokens: must be a finite number in [0.001, 1000] (got 0)"
        );
        let error = BudgetConfig::Finagle {
            ttl_ms: 61_000,
            min_retries_per_second: 10,
            percent_can_retry: 0.2,
        }
        .validate("b")
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "b.ttl_ms: must be in [1000, 60000] (got 61000)"
        );
    }

    // Every field has the documented default.
    #[test]
    fn budget_defaults_are_the_sources_defaults() {
        let parse = |text: &str| serde_json::from_str::<BudgetConfig>(text).unwrap();
        assert_eq!(
            parse(r#"{"kind": "chapter"}"#),
            BudgetConfig::Chapter {
                ratio: 0.1,
                window_ms: 60_000
            }
        );
        assert_eq!(
            parse(r#"{"kind": "token_bucket"}"#),
            BudgetConfig::TokenBucket {
                max_tokens: 10.0,
                token_ratio: 0.1
            }
        );
        assert_eq!(
            parse(r#"{"kind": "finagle"}"#),
            BudgetConfig::Finagle {
                ttl_ms: 10_000,
                min_retries_per_second: 10,
                percent_can_retry: 0.2
            }
        );
        assert!(
            serde_json::from_str::<BudgetConfig>(r#"{"kind": "chapter", "ratios": 1}"#).is_err()
        );
    }
}
