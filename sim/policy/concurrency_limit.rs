//! Adaptive concurrency limits, after Netflix's concurrency-limits library
//! (`SimpleLimiter` with `AIMDLimit`, `Gradient2Limit` or `VegasLimit`).
//!
//! The layer admits a call while fewer than `limit` calls it admitted are in
//! flight, and rejects it at once with `Reply::BulkheadFull` otherwise; it has
//! no queue (the library's `SimpleLimiter`). When an admitted call's result
//! arrives, the layer takes a *sample*: the call's latency (`now` minus
//! `CallState::started_at`, the moment it entered this layer), the number in
//! flight when it was admitted, itself included (the library's `inflight`),
//! and whether it was *dropped*. The limit algorithm then moves the limit,
//! which always stays within `[min_limit, max_limit]`.
//!
//! Results are classified as in the library's `Listener`: a usable reply
//! (`success`, `fallback`) is `onSuccess`; a failure whose kind is in
//! `drop_on` (default `error`, `timeout`, `queue_full`, `bulkhead_full`) is
//! `onDropped`; any other failure (`breaker_open` by default) is `onIgnore`:
//! the call leaves the in-flight count and no sample is taken. A cancelled
//! call (`Layer::on_cancel`) is ignored the same way.
//!
//! ## The algorithms
//!
//! Each is the library's `_update`, with its builder defaults unless noted.
//! `L` is the limit (a float for Gradient2 and Vegas, whose integer part is
//! used for admission), `rtt` the sample's latency, `inflight` its in-flight
//! count.
//!
//! **AIMD** (`AIMDLimit`, loss based):
//! `if dropped or rtt > timeout: L = floor(L × backoff_ratio)`, else
//! `if inflight × 2 ≥ L: L = L + 1`; then `L = clamp(L, min_limit,
//! max_limit)`. Defaults `initial_limit` 20, `min_limit` 1 (the library's is
//! 20), `max_limit` 200, `backoff_ratio` 0.9 (in `[0.5, 1)`), `timeout` 5 s.
//!
//! **Gradient2** (`Gradient2Limit`, latency based, ignores drops): with
//! `long` an exponential average of `rtt` (the first 10 samples are averaged
//! plainly, then `long += (rtt - long) × 2 / (long_window + 1)`):
//! `if long / rtt > 2: long = long × 0.95` (for the next sample); return if
//! `inflight < L / 2` (app limited); `gradient = clamp(rtt_tolerance × long /
//! rtt, 0.5, 1)`; `new = L × gradient + queue_size`; `L = clamp(L × (1 −
//! smoothing) + new × smoothing, min_limit, max_limit)`. Defaults
//! `initial_limit` 20, `min_limit` 20, `max_limit` 200, `smoothing` 0.2,
//! `queue_size` 4, `long_window` 600, `rtt_tolerance` 1.5.
//!
//! **Vegas** (`VegasLimit`, TCP Vegas): `rtt_noload` is the lowest latency
//! seen, re-measured after every `probe_multiplier × L × jitter` samples
//! (`jitter` uniform in `[0.5, 1)`, drawn from the stack's random stream); a
//! sample that probes or lowers `rtt_noload` changes nothing else. Otherwise
//! `queue = ceil(L × (1 − rtt_noload / rtt))` and, with `log =
//! max(1, floor(log10(floor(L))))`, `alpha = 3 × log`, `beta = 6 × log`:
//! if dropped, `new = L − log`; else return if `inflight × 2 < L`; else
//! `new = L + beta` if `queue ≤ log`, `L + log` if `queue < alpha`, `L − log`
//! if `queue > beta`, and no change otherwise; then `L = (1 − smoothing) × L
//! + smoothing × clamp(new, min_limit, max_limit)`. Defaults `initial_limit`
//! 20, `min_limit` 1 (the library's fixed floor), `max_limit` 1000,
//! `smoothing` 1, `probe_multiplier` 30.
//!
//! A latency of 0 (possible with zero network latency and zero service time)
//! counts as 1 µs, since Gradient2 and Vegas divide by it (Vegas requires
//! `rtt > 0`).
//!
//! ## Where the simulator differs from the library
//!
//! - `initial_limit` must lie in `[min_limit, max_limit]` (the library only
//!   logs a warning).
//! - Vegas clamps to `min_limit`, not to a fixed 1, and its first probe
//!   jitter is drawn at the first sample instead of at construction.
//! - The limit is clamped once more after Vegas's smoothing, so float
//!   rounding can never leave it a hair below `min_limit`.

use super::fallback::validate_failure_kinds;
use super::{CallId, Ctx, Layer, Reply, ReplyKind, Step};
use crate::engine::{SimDuration, SimRng};
use crate::scenario::check::{self, join};
use crate::scenario::error::Invalid;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The largest limit any algorithm accepts.
pub const LIMIT_MAX: u32 = 1_000_000;

/// Concurrency limit settings, chosen by `algorithm`. JSON:
/// `{"kind": "concurrency_limit", "algorithm": "aimd", "initial_limit": 20}`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "algorithm", rename_all = "snake_case")]
pub enum ConcurrencyLimitConfig {
    /// Additive increase, multiplicative decrease on drops (`AIMDLimit`).
    Aimd(AimdConfig),
    /// Latency gradient against a long-term average (`Gradient2Limit`).
    Gradient2(Gradient2Config),
    /// TCP Vegas: estimated queueing against the no-load latency (`VegasLimit`).
    Vegas(VegasConfig),
}

impl ConcurrencyLimitConfig {
    /// Checks the ranges; `path` names this policy in the file.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        match self {
            ConcurrencyLimitConfig::Aimd(config) => config.validate(path),
            ConcurrencyLimitConfig::Gradient2(config) => config.validate(path),
            ConcurrencyLimitConfig::Vegas(config) => config.validate(path),
        }
    }

    fn drop_on(&self) -> &[ReplyKind] {
        match self {
            ConcurrencyLimitConfig::Aimd(config) => &config.drop_on,
            ConcurrencyLimitConfig::Gradient2(config) => &config.drop_on,
            ConcurrencyLimitConfig::Vegas(config) => &config.drop_on,
        }
    }
}

/// AIMD settings. Defaults: `initial_limit` 20, `min_limit` 1, `max_limit`
/// 200, `backoff_ratio` 0.9, `timeout_ms` 5000, `drop_on` error, timeout,
/// queue_full and bulkhead_full.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AimdConfig {
    /// The limit at the start, in `[min_limit, max_limit]`.
    #[serde(default = "initial_limit_default")]
    pub initial_limit: u32,
    /// The lowest limit, in `[1, 1000000]`.
    #[serde(default = "one")]
    pub min_limit: u32,
    /// The highest limit, in `[min_limit, 1000000]`.
    #[serde(default = "max_limit_default")]
    pub max_limit: u32,
    /// The factor applied to the limit on a drop, in `[0.5, 1)`.
    #[serde(default = "backoff_ratio_default")]
    pub backoff_ratio: f64,
    /// A call slower than this counts as a drop even if it succeeded (the
    /// library's `timeout`), in `(0, 86400000]`.
    #[serde(default = "timeout_default")]
    pub timeout_ms: f64,
    /// Which failed replies are drops; other failures are ignored.
    #[serde(default = "drop_on_default")]
    pub drop_on: Vec<ReplyKind>,
}

/// Gradient2 settings. Defaults: `initial_limit` 20, `min_limit` 20,
/// `max_limit` 200, `smoothing` 0.2, `queue_size` 4, `long_window` 600,
/// `rtt_tolerance` 1.5, `drop_on` error, timeout, queue_full and
/// bulkhead_full.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Gradient2Config {
    /// The limit at the start, in `[min_limit, max_limit]`.
    #[serde(default = "initial_limit_default")]
    pub initial_limit: u32,
    /// The lowest limit, in `[1, 1000000]`.
    #[serde(default = "initial_limit_default")]
    pub min_limit: u32,
    /// The highest limit (the library's `maxConcurrency`), in `[min_limit, 1000000]`.
    #[serde(default = "max_limit_default")]
    pub max_limit: u32,
    /// How far one sample moves the limit towards its new estimate, in `(0, 1]`.
    #[serde(default = "gradient_smoothing_default")]
    pub smoothing: f64,
    /// Headroom added to the estimate on every update, in `[0, 1000]`.
    #[serde(default = "queue_size_default")]
    pub queue_size: u32,
    /// Samples in the long-term latency average, in `[1, 1000000]`.
    #[serde(default = "long_window_default")]
    pub long_window: u32,
    /// How much slower than the long-term average a sample may be before the
    /// limit shrinks, in `[1, 100]`.
    #[serde(default = "rtt_tolerance_default")]
    pub rtt_tolerance: f64,
    /// Which failed replies are drops (sampled); other failures are ignored.
    #[serde(default = "drop_on_default")]
    pub drop_on: Vec<ReplyKind>,
}

/// Vegas settings. Defaults: `initial_limit` 20, `min_limit` 1, `max_limit`
/// 1000, `smoothing` 1, `probe_multiplier` 30, `drop_on` error, timeout,
/// queue_full and bulkhead_full.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VegasConfig {
    /// The limit at the start, in `[min_limit, max_limit]`.
    #[serde(default = "initial_limit_default")]
    pub initial_limit: u32,
    /// The lowest limit, in `[1, 1000000]`.
    #[serde(default = "one")]
    pub min_limit: u32,
    /// The highest limit (the library's `maxConcurrency`), in `[min_limit, 1000000]`.
    #[serde(default = "vegas_max_limit_default")]
    pub max_limit: u32,
    /// How far one update moves the limit towards its new value, in `(0, 1]`.
    #[serde(default = "vegas_smoothing_default")]
    pub smoothing: f64,
    /// The no-load latency is re-measured every `probe_multiplier × limit`
    /// samples or so, in `[1, 1000000]`.
    #[serde(default = "probe_multiplier_default")]
    pub probe_multiplier: u32,
    /// Which failed replies are drops; other failures are ignored.
    #[serde(default = "drop_on_default")]
    pub drop_on: Vec<ReplyKind>,
}

fn initial_limit_default() -> u32 {
    20
}

fn one() -> u32 {
    1
}

fn max_limit_default() -> u32 {
    200
}

fn backoff_ratio_default() -> f64 {
    0.9
}

fn timeout_default() -> f64 {
    5_000.0
}

fn drop_on_default() -> Vec<ReplyKind> {
    vec![
        ReplyKind::Error,
        ReplyKind::Timeout,
        ReplyKind::QueueFull,
        ReplyKind::BulkheadFull,
    ]
}

fn gradient_smoothing_default() -> f64 {
    0.2
}

fn queue_size_default() -> u32 {
    4
}

fn long_window_default() -> u32 {
    600
}

fn rtt_tolerance_default() -> f64 {
    1.5
}

fn vegas_max_limit_default() -> u32 {
    1_000
}

fn vegas_smoothing_default() -> f64 {
    1.0
}

fn probe_multiplier_default() -> u32 {
    30
}

impl Default for AimdConfig {
    fn default() -> Self {
        AimdConfig {
            initial_limit: initial_limit_default(),
            min_limit: one(),
            max_limit: max_limit_default(),
            backoff_ratio: backoff_ratio_default(),
            timeout_ms: timeout_default(),
            drop_on: drop_on_default(),
        }
    }
}

impl Default for Gradient2Config {
    fn default() -> Self {
        Gradient2Config {
            initial_limit: initial_limit_default(),
            min_limit: initial_limit_default(),
            max_limit: max_limit_default(),
            smoothing: gradient_smoothing_default(),
            queue_size: queue_size_default(),
            long_window: long_window_default(),
            rtt_tolerance: rtt_tolerance_default(),
            drop_on: drop_on_default(),
        }
    }
}

impl Default for VegasConfig {
    fn default() -> Self {
        VegasConfig {
            initial_limit: initial_limit_default(),
            min_limit: one(),
            max_limit: vegas_max_limit_default(),
            smoothing: vegas_smoothing_default(),
            probe_multiplier: probe_multiplier_default(),
            drop_on: drop_on_default(),
        }
    }
}

/// Checks `min_limit`, `max_limit` and `initial_limit`, in that order.
fn validate_limits(path: &str, initial: u32, min: u32, max: u32) -> Result<(), Invalid> {
    check::within(&join(path, "min_limit"), min, 1, LIMIT_MAX)?;
    check::within(&join(path, "max_limit"), max, min, LIMIT_MAX)?;
    check::within(&join(path, "initial_limit"), initial, min, max)
}

/// A smoothing factor in `(0, 1]`.
fn validate_smoothing(path: &str, smoothing: f64) -> Result<(), Invalid> {
    let path = join(path, "smoothing");
    check::positive(&path, smoothing)?;
    check::within_f64(&path, smoothing, 0.0, 1.0)
}

impl AimdConfig {
    /// Checks the ranges; `path` names this policy in the file.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        validate_limits(path, self.initial_limit, self.min_limit, self.max_limit)?;
        let ratio = self.backoff_ratio;
        if !(ratio.is_finite() && (0.5..1.0).contains(&ratio)) {
            return Err(Invalid::new(
                join(path, "backoff_ratio"),
                format!("must be a finite number in [0.5, 1) (got {ratio})"),
            ));
        }
        let timeout = join(path, "timeout_ms");
        check::positive(&timeout, self.timeout_ms)?;
        check::within_f64(&timeout, self.timeout_ms, 0.0, 86_400_000.0)?;
        validate_failure_kinds(&join(path, "drop_on"), &self.drop_on)
    }
}

impl Gradient2Config {
    /// Checks the ranges; `path` names this policy in the file.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        validate_limits(path, self.initial_limit, self.min_limit, self.max_limit)?;
        validate_smoothing(path, self.smoothing)?;
        check::within(&join(path, "queue_size"), self.queue_size, 0, 1_000)?;
        check::within(&join(path, "long_window"), self.long_window, 1, 1_000_000)?;
        check::within_f64(&join(path, "rtt_tolerance"), self.rtt_tolerance, 1.0, 100.0)?;
        validate_failure_kinds(&join(path, "drop_on"), &self.drop_on)
    }
}

impl VegasConfig {
    /// Checks the ranges; `path` names this policy in the file.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        validate_limits(path, self.initial_limit, self.min_limit, self.max_limit)?;
        validate_smoothing(path, self.smoothing)?;
        check::within(
            &join(path, "probe_multiplier"),
            self.probe_multiplier,
            1,
            1_000_000,
        )?;
        validate_failure_kinds(&join(path, "drop_on"), &self.drop_on)
    }
}

/// One finished call, as a limit algorithm sees it (the library's `onSample`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// From the call's admission to its result.
    pub latency: SimDuration,
    /// Calls in flight when it was admitted, itself included.
    pub in_flight: u32,
    /// Whether it was dropped (a failure listed in `drop_on`).
    pub dropped: bool,
}

impl Sample {
    /// The latency in microseconds, at least 1 (Gradient2 and Vegas divide by it).
    fn rtt_us(self) -> u64 {
        self.latency.0.max(1)
    }
}

/// The AIMD limit (`AIMDLimit`).
#[derive(Clone, Debug)]
pub struct AimdLimit {
    limit: u32,
    min_limit: u32,
    max_limit: u32,
    backoff_ratio: f64,
    timeout: SimDuration,
}

impl AimdLimit {
    /// The limit at `config.initial_limit`.
    pub fn new(config: &AimdConfig) -> Self {
        AimdLimit {
            limit: config.initial_limit,
            min_limit: config.min_limit,
            max_limit: config.max_limit,
            backoff_ratio: config.backoff_ratio,
            timeout: SimDuration::from_ms_f64(config.timeout_ms),
        }
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Adapts the limit to one sample.
    pub fn update(&mut self, sample: Sample) {
        let limit = if sample.dropped || sample.latency > self.timeout {
            // Truncation, as the library's `(int) (currentLimit * backoffRatio)`.
            (f64::from(self.limit) * self.backoff_ratio) as u32
        } else if u64::from(sample.in_flight) * 2 >= u64::from(self.limit) {
            self.limit.saturating_add(1)
        } else {
            self.limit
        };
        self.limit = limit.clamp(self.min_limit, self.max_limit);
    }
}

/// The library's `ExpAvgMeasurement`: a plain average over the first
/// `warmup` samples, then an exponential average over `window` samples.
#[derive(Clone, Debug)]
struct ExponentialAverage {
    window: u32,
    warmup: u32,
    count: u32,
    sum: f64,
    value: f64,
}

impl ExponentialAverage {
    fn new(window: u32, warmup: u32) -> Self {
        ExponentialAverage {
            window,
            warmup,
            count: 0,
            sum: 0.0,
            value: 0.0,
        }
    }

    fn add(&mut self, sample: f64) -> f64 {
        if self.count < self.warmup {
            self.count += 1;
            self.sum += sample;
            self.value = self.sum / f64::from(self.count);
        } else {
            let factor = 2.0 / (f64::from(self.window) + 1.0);
            self.value = self.value * (1.0 - factor) + sample * factor;
        }
        self.value
    }
}

/// The Gradient2 limit (`Gradient2Limit`).
#[derive(Clone, Debug)]
pub struct Gradient2Limit {
    estimate: f64,
    min_limit: f64,
    max_limit: f64,
    smoothing: f64,
    queue_size: f64,
    rtt_tolerance: f64,
    /// The long-term latency average, in microseconds.
    long_rtt: ExponentialAverage,
}

impl Gradient2Limit {
    /// The library's warm-up: the first 10 samples are averaged plainly.
    const WARMUP: u32 = 10;

    /// The limit at `config.initial_limit`.
    pub fn new(config: &Gradient2Config) -> Self {
        Gradient2Limit {
            estimate: f64::from(config.initial_limit),
            min_limit: f64::from(config.min_limit),
            max_limit: f64::from(config.max_limit),
            smoothing: config.smoothing,
            queue_size: f64::from(config.queue_size),
            rtt_tolerance: config.rtt_tolerance,
            long_rtt: ExponentialAverage::new(config.long_window, Self::WARMUP),
        }
    }

    /// The current limit: the estimate's integer part.
    pub fn limit(&self) -> u32 {
        self.estimate as u32
    }

    /// The estimate before truncation.
    pub fn estimate(&self) -> f64 {
        self.estimate
    }

    /// The long-term latency average.
    pub fn long_rtt(&self) -> SimDuration {
        SimDuration(self.long_rtt.value as u64)
    }

    /// Adapts the limit to one sample; drops count as ordinary samples.
    pub fn update(&mut self, sample: Sample) {
        let short = sample.rtt_us() as f64;
        let long = self.long_rtt.add(short);
        // After a long overload the average is far above the current latency:
        // pull it down faster than the smoothing would.
        if long / short > 2.0 {
            self.long_rtt.value *= 0.95;
        }
        // An app-limited caller says nothing about the limit.
        if f64::from(sample.in_flight) < self.estimate / 2.0 {
            return;
        }
        let gradient = (self.rtt_tolerance * long / short).clamp(0.5, 1.0);
        let target = self.estimate * gradient + self.queue_size;
        let smoothed = self.estimate * (1.0 - self.smoothing) + target * self.smoothing;
        self.estimate = smoothed.clamp(self.min_limit, self.max_limit);
    }
}

/// The library's `Log10RootFunction`: `max(1, floor(log10(value)))`.
pub fn log10_root(value: u32) -> u32 {
    value.checked_ilog10().unwrap_or(0).max(1)
}

/// The Vegas limit (`VegasLimit`).
#[derive(Clone, Debug)]
pub struct VegasLimit {
    estimate: f64,
    min_limit: f64,
    max_limit: f64,
    smoothing: f64,
    probe_multiplier: f64,
    probe_count: u64,
    /// Drawn at the first sample and after each probe.
    probe_jitter: Option<f64>,
    /// The no-load latency in microseconds; 0 until the first sample.
    rtt_noload_us: u64,
}

impl VegasLimit {
    /// The limit at `config.initial_limit`.
    pub fn new(config: &VegasConfig) -> Self {
        VegasLimit {
            estimate: f64::from(config.initial_limit),
            min_limit: f64::from(config.min_limit),
            max_limit: f64::from(config.max_limit),
            smoothing: config.smoothing,
            probe_multiplier: f64::from(config.probe_multiplier),
            probe_count: 0,
            probe_jitter: None,
            rtt_noload_us: 0,
        }
    }

    /// The current limit: the estimate's integer part.
    pub fn limit(&self) -> u32 {
        self.estimate as u32
    }

    /// The estimate before truncation.
    pub fn estimate(&self) -> f64 {
        self.estimate
    }

    /// The no-load latency (zero before the first sample).
    pub fn rtt_noload(&self) -> SimDuration {
        SimDuration(self.rtt_noload_us)
    }

    fn jitter(rng: &mut SimRng) -> f64 {
        0.5 + 0.5 * rng.unit()
    }

    /// Adapts the limit to one sample; the probe jitter comes from `rng`.
    pub fn update(&mut self, sample: Sample, rng: &mut SimRng) {
        let rtt = sample.rtt_us();
        self.probe_count += 1;
        let jitter = *self.probe_jitter.get_or_insert_with(|| Self::jitter(rng));
        if jitter * self.probe_multiplier * self.estimate <= self.probe_count as f64 {
            // Re-measure the no-load latency, so it can rise after a change.
            self.probe_jitter = Some(Self::jitter(rng));
            self.probe_count = 0;
            self.rtt_noload_us = rtt;
            return;
        }
        if self.rtt_noload_us == 0 || rtt < self.rtt_noload_us {
            self.rtt_noload_us = rtt;
            return;
        }
        let queue = (self.estimate * (1.0 - self.rtt_noload_us as f64 / rtt as f64)).ceil();
        let log = f64::from(log10_root(self.estimate as u32));
        let target = if sample.dropped {
            self.estimate - log
        } else if f64::from(sample.in_flight) * 2.0 < self.estimate {
            return;
        } else if queue <= log {
            self.estimate + 6.0 * log
        } else if queue < 3.0 * log {
            self.estimate + log
        } else if queue > 6.0 * log {
            self.estimate - log
        } else {
            return;
        };
        let target = target.clamp(self.min_limit, self.max_limit);
        let smoothed = (1.0 - self.smoothing) * self.estimate + self.smoothing * target;
        self.estimate = smoothed.clamp(self.min_limit, self.max_limit);
    }
}

/// One of the limit algorithms.
#[derive(Clone, Debug)]
pub enum LimitAlgorithm {
    /// `AIMDLimit`.
    Aimd(AimdLimit),
    /// `Gradient2Limit`.
    Gradient2(Gradient2Limit),
    /// `VegasLimit`.
    Vegas(VegasLimit),
}

impl LimitAlgorithm {
    /// The algorithm `config` names, at its initial limit.
    pub fn new(config: &ConcurrencyLimitConfig) -> Self {
        match config {
            ConcurrencyLimitConfig::Aimd(config) => LimitAlgorithm::Aimd(AimdLimit::new(config)),
            ConcurrencyLimitConfig::Gradient2(config) => {
                LimitAlgorithm::Gradient2(Gradient2Limit::new(config))
            }
            ConcurrencyLimitConfig::Vegas(config) => LimitAlgorithm::Vegas(VegasLimit::new(config)),
        }
    }

    /// The algorithm's name as written in scenario files.
    pub fn name(&self) -> &'static str {
        match self {
            LimitAlgorithm::Aimd(_) => "aimd",
            LimitAlgorithm::Gradient2(_) => "gradient2",
            LimitAlgorithm::Vegas(_) => "vegas",
        }
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        match self {
            LimitAlgorithm::Aimd(limit) => limit.limit(),
            LimitAlgorithm::Gradient2(limit) => limit.limit(),
            LimitAlgorithm::Vegas(limit) => limit.limit(),
        }
    }

    /// Adapts the limit to one sample.
    pub fn update(&mut self, sample: Sample, rng: &mut SimRng) {
        match self {
            LimitAlgorithm::Aimd(limit) => limit.update(sample),
            LimitAlgorithm::Gradient2(limit) => limit.update(sample),
            LimitAlgorithm::Vegas(limit) => limit.update(sample, rng),
        }
    }
}

/// How a finished call counts (the library's `Listener` callbacks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleKind {
    /// A usable answer (`onSuccess`): sampled.
    Success,
    /// A failure listed in `drop_on` (`onDropped`): sampled as a drop.
    Dropped,
    /// Any other failure, or a cancellation (`onIgnore`): not sampled.
    Ignored,
}

/// The limiter's totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LimiterCounters {
    /// Calls that entered the layer.
    pub offered: u64,
    /// Calls admitted.
    pub admitted: u64,
    /// Calls rejected at the limit.
    pub rejected: u64,
    /// Admitted calls that ended with a usable answer.
    pub successes: u64,
    /// Admitted calls that ended with a failure listed in `drop_on`.
    pub drops: u64,
    /// Admitted calls that ended with another failure (not sampled).
    pub ignored: u64,
    /// Admitted calls cancelled before their result (not sampled).
    pub cancelled: u64,
    /// Samples that raised the (integer) limit.
    pub limit_increases: u64,
    /// Samples that lowered it.
    pub limit_decreases: u64,
}

/// An adaptive concurrency limiter without a queue (the library's
/// `SimpleLimiter`) as a pure state machine.
#[derive(Clone, Debug)]
pub struct ConcurrencyLimiter {
    algorithm: LimitAlgorithm,
    min_limit: u32,
    max_limit: u32,
    in_flight: u32,
    in_flight_peak: u32,
    limit_lowest: u32,
    limit_highest: u32,
    counters: LimiterCounters,
}

impl ConcurrencyLimiter {
    /// A limiter with nothing in flight, at `config`'s initial limit.
    pub fn new(config: &ConcurrencyLimitConfig) -> Self {
        let (min_limit, max_limit) = match config {
            ConcurrencyLimitConfig::Aimd(config) => (config.min_limit, config.max_limit),
            ConcurrencyLimitConfig::Gradient2(config) => (config.min_limit, config.max_limit),
            ConcurrencyLimitConfig::Vegas(config) => (config.min_limit, config.max_limit),
        };
        let algorithm = LimitAlgorithm::new(config);
        let limit = algorithm.limit();
        debug_assert!((min_limit..=max_limit).contains(&limit));
        ConcurrencyLimiter {
            algorithm,
            min_limit,
            max_limit,
            in_flight: 0,
            in_flight_peak: 0,
            limit_lowest: limit,
            limit_highest: limit,
            counters: LimiterCounters::default(),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> &LimitAlgorithm {
        &self.algorithm
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        self.algorithm.limit()
    }

    /// Admitted calls not yet ended.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// The totals so far.
    pub fn counters(&self) -> LimiterCounters {
        self.counters
    }

    /// Asks to start a call (the library's `acquire`). If admitted, returns
    /// the number in flight with this call, for its sample.
    pub fn admit(&mut self) -> Option<u32> {
        self.counters.offered += 1;
        if self.in_flight >= self.limit() {
            self.counters.rejected += 1;
            return None;
        }
        self.in_flight += 1;
        self.in_flight_peak = self.in_flight_peak.max(self.in_flight);
        self.counters.admitted += 1;
        debug_assert!(self.in_flight <= self.max_limit);
        Some(self.in_flight)
    }

    /// An admitted call ended after `latency`; `in_flight` is what `admit`
    /// returned for it.
    pub fn record(
        &mut self,
        kind: SampleKind,
        latency: SimDuration,
        in_flight: u32,
        rng: &mut SimRng,
    ) {
        self.release();
        let dropped = match kind {
            SampleKind::Success => {
                self.counters.successes += 1;
                false
            }
            SampleKind::Dropped => {
                self.counters.drops += 1;
                true
            }
            SampleKind::Ignored => {
                self.counters.ignored += 1;
                return;
            }
        };
        let before = self.limit();
        let sample = Sample {
            latency,
            in_flight,
            dropped,
        };
        self.algorithm.update(sample, rng);
        let after = self.limit();
        debug_assert!(after >= self.min_limit, "limit {after} below its minimum");
        debug_assert!(after <= self.max_limit, "limit {after} above its maximum");
        if after > before {
            self.counters.limit_increases += 1;
        } else if after < before {
            self.counters.limit_decreases += 1;
        }
        self.limit_lowest = self.limit_lowest.min(after);
        self.limit_highest = self.limit_highest.max(after);
    }

    /// An admitted call was cancelled: it leaves without a sample.
    pub fn cancel(&mut self) {
        self.release();
        self.counters.cancelled += 1;
    }

    fn release(&mut self) {
        debug_assert!(self.in_flight > 0, "a call ended that was never admitted");
        self.in_flight = self.in_flight.saturating_sub(1);
    }
}

/// The limiter as a stack layer: rejects with `Reply::BulkheadFull`, samples
/// every admitted call's result.
pub struct ConcurrencyLimitLayer {
    limiter: ConcurrencyLimiter,
    drop_on: Vec<ReplyKind>,
    /// In flight at admission, per admitted call; at most `max_limit` entries.
    admitted: BTreeMap<CallId, u32>,
}

impl ConcurrencyLimitLayer {
    /// A limiter layer at `config`'s initial limit.
    pub fn new(config: &ConcurrencyLimitConfig) -> Self {
        ConcurrencyLimitLayer {
            limiter: ConcurrencyLimiter::new(config),
            drop_on: config.drop_on().to_vec(),
            admitted: BTreeMap::new(),
        }
    }

    /// The state machine, for inspection.
    pub fn limiter(&self) -> &ConcurrencyLimiter {
        &self.limiter
    }

    fn classify(&self, reply: Reply) -> SampleKind {
        if reply.is_ok() {
            SampleKind::Success
        } else if self.drop_on.contains(&reply.kind()) {
            SampleKind::Dropped
        } else {
            SampleKind::Ignored
        }
    }
}

impl Layer for ConcurrencyLimitLayer {
    fn kind(&self) -> &'static str {
        "concurrency_limit"
    }

    fn on_start(&mut self, ctx: &mut Ctx) -> Step {
        match self.limiter.admit() {
            Some(in_flight) => {
                self.admitted.insert(ctx.id, in_flight);
                ctx.call.holds_permit = true;
                Step::Forward
            }
            None => Step::Complete(Reply::BulkheadFull),
        }
    }

    fn on_result(&mut self, ctx: &mut Ctx, reply: Reply) -> Step {
        debug_assert!(ctx.call.holds_permit);
        let Some(in_flight) = self.admitted.remove(&ctx.id) else {
            debug_assert!(false, "a result for a call that was never admitted");
            return Step::Complete(reply);
        };
        ctx.call.holds_permit = false;
        let latency = ctx.now.saturating_since(ctx.call.started_at);
        let kind = self.classify(reply);
        self.limiter.record(kind, latency, in_flight, ctx.rng);
        Step::Complete(reply)
    }

    fn on_cancel(&mut self, ctx: &mut Ctx) {
        if ctx.call.holds_permit {
            ctx.call.holds_permit = false;
            let removed = self.admitted.remove(&ctx.id);
            debug_assert!(removed.is_some());
            self.limiter.cancel();
        }
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let counters = self.limiter.counters();
        vec![
            ("offered", counters.offered),
            ("admitted", counters.admitted),
            ("rejected", counters.rejected),
            ("successes", counters.successes),
            ("drops", counters.drops),
            ("ignored", counters.ignored),
            ("cancelled", counters.cancelled),
            ("limit_increases", counters.limit_increases),
            ("limit_decreases", counters.limit_decreases),
        ]
    }

    fn state(&self) -> serde_json::Value {
        let limiter = &self.limiter;
        let mut state = serde_json::json!({
            "algorithm": limiter.algorithm.name(),
            "limit": limiter.limit(),
            "min_limit": limiter.min_limit,
            "max_limit": limiter.max_limit,
            "in_flight": limiter.in_flight,
            "in_flight_peak": limiter.in_flight_peak,
            "limit_lowest": limiter.limit_lowest,
            "limit_highest": limiter.limit_highest,
        });
        let extra = match &limiter.algorithm {
            LimitAlgorithm::Aimd(_) => serde_json::json!({}),
            LimitAlgorithm::Gradient2(limit) => serde_json::json!({
                "estimate": limit.estimate(),
                "long_rtt_ms": limit.long_rtt().as_ms_f64(),
            }),
            LimitAlgorithm::Vegas(limit) => serde_json::json!({
                "estimate": limit.estimate(),
                "rtt_noload_ms": limit.rtt_noload().as_ms_f64(),
            }),
        };
        if let (Some(state), serde_json::Value::Object(extra)) = (state.as_object_mut(), extra) {
            state.extend(extra);
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RngFactory;
    use crate::policy::bulkhead::harness::Driver;
    use crate::policy::PolicySpec;
    use proptest::prelude::*;

    const ERROR: Reply = Reply::Error { retryable: true };

    fn ms(value: u64) -> SimDuration {
        SimDuration::from_ms(value)
    }

    fn sample(latency_ms: u64, in_flight: u32, dropped: bool) -> Sample {
        Sample {
            latency: ms(latency_ms),
            in_flight,
            dropped,
        }
    }

    fn aimd(initial_limit: u32, min_limit: u32, max_limit: u32) -> AimdConfig {
        AimdConfig {
            initial_limit,
            min_limit,
            max_limit,
            ..AimdConfig::default()
        }
    }

    // AIMD adds one per success while at least half the limit is in use and
    // multiplies by backoff_ratio (truncating) on a drop.
    #[test]
    fn aimd_adds_one_near_the_limit_and_backs_off_on_drops() {
        let mut limit = AimdLimit::new(&aimd(20, 1, 200));
        limit.update(sample(10, 10, false));
        assert_eq!(limit.limit(), 21);
        // 10 × 2 < 21: the caller is not using the limit, so it does not grow.
        limit.update(sample(10, 10, false));
        assert_eq!(limit.limit(), 21);
        limit.update(sample(10, 21, true));
        assert_eq!(limit.limit(), 18);
    }

    // A success slower than timeout_ms is a drop, as the library's `rtt > timeout`.
    #[test]
    fn aimd_counts_a_slow_success_as_a_drop() {
        let mut limit = AimdLimit::new(&AimdConfig {
            timeout_ms: 100.0,
            ..aimd(10, 1, 200)
        });
        limit.update(sample(100, 10, false));
        assert_eq!(limit.limit(), 11);
        limit.update(sample(101, 10, false));
        assert_eq!(limit.limit(), 9);
    }

    // Drops stop at min_limit and successes at max_limit.
    #[test]
    fn aimd_stays_within_min_and_max() {
        let mut limit = AimdLimit::new(&aimd(3, 2, 4));
        for _ in 0..10 {
            limit.update(sample(1, 4, true));
        }
        assert_eq!(limit.limit(), 2);
        for _ in 0..10 {
            limit.update(sample(1, 4, false));
        }
        assert_eq!(limit.limit(), 4);
    }

    // The library's log10 table: 1 up to 99, 2 up to 999, then floor(log10).
    #[test]
    fn log10_root_matches_the_library() {
        let values: Vec<u32> = [0, 1, 9, 10, 99, 100, 999, 1_000, 1_000_000]
            .into_iter()
            .map(log10_root)
            .collect();
        assert_eq!(values, vec![1, 1, 1, 1, 1, 2, 2, 3, 6]);
    }

    // With steady latency Gradient2 grows by smoothing × queue_size per
    // sample; when latency rises above rtt_tolerance × the long average it
    // shrinks, by at most half of the smoothed step.
    #[test]
    fn gradient2_grows_while_latency_is_steady_and_shrinks_when_it_rises() {
        let mut limit = Gradient2Limit::new(&Gradient2Config::default());
        for _ in 0..10 {
            limit.update(sample(10, 20, false));
        }
        // Each step: 0.8 L + 0.2 (L + 4) = L + 0.8.
        assert!(
            (limit.estimate() - 28.0).abs() < 1e-9,
            "{}",
            limit.estimate()
        );
        assert_eq!(limit.long_rtt(), ms(10));
        limit.update(sample(100, 28, false));
        // gradient = max(0.5, 1.5 × 10.3 / 100) = 0.5: 0.8 × 28 + 0.2 × (14 + 4).
        assert!(
            (limit.estimate() - 26.0).abs() < 1e-9,
            "{}",
            limit.estimate()
        );
        assert_eq!(limit.limit(), 26);
    }

    // Gradient2 ignores whether a sample was dropped, and an app-limited
    // sample (in flight below half the limit) changes nothing but the average.
    #[test]
    fn gradient2_ignores_drops_and_app_limited_samples() {
        let mut dropped = Gradient2Limit::new(&Gradient2Config::default());
        let mut succeeded = Gradient2Limit::new(&Gradient2Config::default());
        dropped.update(sample(10, 20, true));
        succeeded.update(sample(10, 20, false));
        assert_eq!(dropped.estimate(), succeeded.estimate());
        let before = succeeded.estimate();
        succeeded.update(sample(500, 9, false));
        assert_eq!(succeeded.estimate(), before);
        assert_eq!(succeeded.long_rtt(), SimDuration(255_000));
    }

    // Vegas: the first sample sets the no-load latency; with no queueing it
    // grows by beta = 6 × log, with heavy queueing it shrinks by log, and a
    // drop shrinks it by log.
    #[test]
    fn vegas_grows_without_queueing_and_shrinks_with_queueing_or_drops() {
        let mut rng = RngFactory::new(1).stream("vegas");
        let mut limit = VegasLimit::new(&VegasConfig::default());
        limit.update(sample(10, 20, false), &mut rng);
        assert_eq!(limit.rtt_noload(), ms(10));
        assert_eq!(limit.limit(), 20);
        limit.update(sample(10, 20, false), &mut rng);
        assert_eq!(limit.limit(), 26);
        // queue = ceil(26 × (1 − 10/20)) = 13 > beta 6: shrink by 1.
        limit.update(sample(20, 26, false), &mut rng);
        assert_eq!(limit.limit(), 25);
        limit.update(sample(10, 1, true), &mut rng);
        assert_eq!(limit.limit(), 24);
    }

    // Vegas re-measures the no-load latency after probe_multiplier × limit ×
    // jitter samples (jitter in [0.5, 1)), so it can learn a slower baseline.
    #[test]
    fn vegas_probes_the_no_load_latency_again() {
        let mut rng = RngFactory::new(1).stream("vegas");
        let mut limit = VegasLimit::new(&VegasConfig::default());
        limit.update(sample(10, 1, false), &mut rng);
        let mut probed_after = None;
        for count in 1..=600 {
            // Few in flight: the limit itself does not move.
            limit.update(sample(50, 1, false), &mut rng);
            if probed_after.is_none() && limit.rtt_noload() == ms(50) {
                probed_after = Some(count);
            }
        }
        let probed_after = probed_after.expect("a probe within 30 × 20 samples");
        assert!((300..=600).contains(&probed_after), "{probed_after}");
        assert_eq!(limit.limit(), 20);
    }

    fn layer(config: ConcurrencyLimitConfig) -> ConcurrencyLimitLayer {
        ConcurrencyLimitLayer::new(&config)
    }

    // No queue: a call beyond the limit is rejected at once with
    // bulkhead_full, and an ended call makes room again.
    #[test]
    fn rejects_at_the_limit_without_queueing() {
        let mut layer = layer(ConcurrencyLimitConfig::Aimd(aimd(2, 1, 200)));
        let mut driver = Driver::new();
        let (first, step, _) = driver.start(&mut layer);
        assert_eq!(step, Step::Forward);
        assert!(driver.call(first).holds_permit);
        assert_eq!(driver.start(&mut layer).1, Step::Forward);
        assert_eq!(
            driver.start(&mut layer).1,
            Step::Complete(Reply::BulkheadFull)
        );
        // In flight 1 × 2 ≥ 2 at admission: the success raises the limit to 3.
        let (step, woken) = driver.result(&mut layer, first, Reply::Success);
        assert_eq!((step, woken), (Step::Complete(Reply::Success), vec![]));
        assert_eq!(layer.limiter().limit(), 3);
        assert_eq!(driver.start(&mut layer).1, Step::Forward);
        assert_eq!(driver.start(&mut layer).1, Step::Forward);
        assert_eq!(layer.limiter().in_flight(), 3);
    }

    // Latency runs from the moment the call entered the layer to its result.
    #[test]
    fn latency_is_measured_from_the_call_start() {
        let mut layer = layer(ConcurrencyLimitConfig::Aimd(AimdConfig {
            timeout_ms: 100.0,
            ..aimd(10, 1, 200)
        }));
        let mut driver = Driver::new();
        driver.advance_ms(1_000);
        let (slow, _, _) = driver.start(&mut layer);
        driver.advance_ms(150);
        driver.result(&mut layer, slow, Reply::Success);
        assert_eq!(layer.limiter().limit(), 9);
    }

    // drop_on decides which failures shrink the limit; other failures (a
    // breaker rejection by default) and cancellations leave it alone.
    #[test]
    fn drop_on_picks_the_drops_and_other_failures_are_ignored() {
        let mut layer = layer(ConcurrencyLimitConfig::Aimd(aimd(10, 1, 200)));
        let mut driver = Driver::new();
        let ids: Vec<CallId> = (0..4).map(|_| driver.start(&mut layer).0).collect();
        driver.result(&mut layer, ids[0], Reply::BreakerOpen);
        assert_eq!(layer.limiter().limit(), 10);
        driver.cancel(&mut layer, ids[1]);
        assert_eq!(layer.limiter().limit(), 10);
        driver.result(&mut layer, ids[2], ERROR);
        assert_eq!(layer.limiter().limit(), 9);
        driver.result(&mut layer, ids[3], Reply::Timeout);
        assert_eq!(layer.limiter().limit(), 8);
        let counters = layer.limiter().counters();
        assert_eq!(
            (
                counters.ignored,
                counters.cancelled,
                counters.drops,
                counters.limit_decreases
            ),
            (1, 1, 2, 2)
        );
        assert_eq!(layer.limiter().in_flight(), 0);
    }

    // Each algorithm's defaults are the library's (min_limit 1 for AIMD);
    // ranges are checked with the field's path.
    #[test]
    fn scenario_json_defaults_and_ranges() {
        let parse = |json: &str| serde_json::from_str::<PolicySpec>(json);
        assert_eq!(
            parse(r#"{"kind": "concurrency_limit", "algorithm": "aimd"}"#).unwrap(),
            PolicySpec::ConcurrencyLimit(ConcurrencyLimitConfig::Aimd(AimdConfig::default()))
        );
        assert_eq!(
            parse(r#"{"kind": "concurrency_limit", "algorithm": "gradient2"}"#).unwrap(),
            PolicySpec::ConcurrencyLimit(ConcurrencyLimitConfig::Gradient2(
                Gradient2Config::default()
            ))
        );
        assert_eq!(
            parse(r#"{"kind": "concurrency_limit", "algorithm": "vegas"}"#).unwrap(),
            PolicySpec::ConcurrencyLimit(ConcurrencyLimitConfig::Vegas(VegasConfig::default()))
        );
        assert_eq!(
            (
                AimdConfig::default().initial_limit,
                AimdConfig::default().min_limit
            ),
            (20, 1)
        );
        let invalid = |json: &str| {
            parse(json)
                .unwrap()
                .validate("clients[0].policies[0]")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            invalid(r#"{"kind": "concurrency_limit", "algorithm": "aimd", "min_limit": 30}"#),
            "clients[0].policies[0].initial_limit: must be in [30, 200] (got 20)"
        );
        assert_eq!(
            invalid(r#"{"kind": "concurrency_limit", "algorithm": "aimd", "backoff_ratio": 1.0}"#),
            "clients[0].policies[0].backoff_ratio: must be a finite number in [0.5, 1) (got 1)"
        );
        assert_eq!(
            invalid(r#"{"kind": "concurrency_limit", "algorithm": "gradient2", "smoothing": 0}"#),
            "clients[0].policies[0].smoothing: must be a finite number > 0 (got 0)"
        );
        assert_eq!(
            invalid(r#"{"kind": "concurrency_limit", "algorithm": "vegas", "drop_on": ["success"]}"#),
            "clients[0].policies[0].drop_on[0]: must be one of error, timeout, breaker_open, queue_full, bulkhead_full"
        );
        let unknown = parse(r#"{"kind": "concurrency_limit", "algorithm": "gradient"}"#);
        assert!(unknown.unwrap_err().to_string().contains("gradient2"));
        let foreign =
            parse(r#"{"kind": "concurrency_limit", "algorithm": "vegas", "backoff_ratio": 0.9}"#);
        assert!(foreign.unwrap_err().to_string().contains("backoff_ratio"));
    }

    fn config() -> impl Strategy<Value = ConcurrencyLimitConfig> {
        let limits = (1u32..10, 0u32..10, 0u32..10)
            .prop_map(|(min, above, span)| (min, min + above.min(span), min + span));
        prop_oneof![
            (limits.clone(), 0.5f64..0.99, 1.0f64..200.0).prop_map(
                |((min, initial, max), backoff_ratio, timeout_ms)| {
                    ConcurrencyLimitConfig::Aimd(AimdConfig {
                        backoff_ratio,
                        timeout_ms,
                        ..aimd(initial, min, max)
                    })
                }
            ),
            (
                limits.clone(),
                0.01f64..=1.0,
                0u32..6,
                1u32..50,
                1.0f64..3.0
            )
                .prop_map(
                    |((min, initial, max), smoothing, queue_size, long_window, rtt_tolerance)| {
                        ConcurrencyLimitConfig::Gradient2(Gradient2Config {
                            initial_limit: initial,
                            min_limit: min,
                            max_limit: max,
                            smoothing,
                            queue_size,
                            long_window,
                            rtt_tolerance,
                            drop_on: drop_on_default(),
                        })
                    }
                ),
            (limits, 0.01f64..=1.0, 1u32..5).prop_map(
                |((min, initial, max), smoothing, probe_multiplier)| {
                    ConcurrencyLimitConfig::Vegas(VegasConfig {
                        initial_limit: initial,
                        min_limit: min,
                        max_limit: max,
                        smoothing,
                        probe_multiplier,
                        drop_on: drop_on_default(),
                    })
                }
            ),
        ]
    }

    #[derive(Clone, Copy, Debug)]
    enum Action {
        Advance(u64),
        Start,
        End(usize, Reply),
        Cancel(usize),
    }

    fn action() -> impl Strategy<Value = Action> {
        let reply = prop_oneof![
            Just(Reply::Success),
            Just(ERROR),
            Just(Reply::Timeout),
            Just(Reply::BreakerOpen),
            Just(Reply::QueueFull),
        ];
        prop_oneof![
            2 => (0u64..200).prop_map(Action::Advance),
            4 => Just(Action::Start),
            3 => (any::<usize>(), reply).prop_map(|(pick, reply)| Action::End(pick, reply)),
            1 => any::<usize>().prop_map(Action::Cancel),
        ]
    }

    proptest! {
        // Whatever the algorithm, settings and sequence of calls, latencies,
        // outcomes and cancellations: the limit stays within [min_limit,
        // max_limit], a call is admitted exactly when fewer than `limit` are
        // in flight, and in-flight never exceeds max_limit.
        #[test]
        fn limit_stays_within_bounds_and_admission_respects_it(
            config in config(),
            actions in proptest::collection::vec(action(), 1..400),
        ) {
            let (min_limit, max_limit) = match &config {
                ConcurrencyLimitConfig::Aimd(config) => (config.min_limit, config.max_limit),
                ConcurrencyLimitConfig::Gradient2(config) => (config.min_limit, config.max_limit),
                ConcurrencyLimitConfig::Vegas(config) => (config.min_limit, config.max_limit),
            };
            prop_assert!(config.validate("p").is_ok());
            let mut layer = layer(config);
            let mut driver = Driver::new();
            let mut in_flight: Vec<CallId> = Vec::new();
            for action in actions {
                match action {
                    Action::Advance(ms) => driver.advance_ms(ms),
                    Action::Start => {
                        let limit = layer.limiter().limit();
                        let before = layer.limiter().in_flight();
                        let (id, step, _) = driver.start(&mut layer);
                        if before < limit {
                            prop_assert_eq!(step, Step::Forward);
                            in_flight.push(id);
                        } else {
                            prop_assert_eq!(step, Step::Complete(Reply::BulkheadFull));
                            driver.end(id, step);
                        }
                    }
                    Action::End(pick, reply) if !in_flight.is_empty() => {
                        let id = in_flight.swap_remove(pick % in_flight.len());
                        let (step, _) = driver.result(&mut layer, id, reply);
                        prop_assert_eq!(step, Step::Complete(reply));
                        driver.end(id, step);
                    }
                    Action::Cancel(pick) if !in_flight.is_empty() => {
                        let id = in_flight.swap_remove(pick % in_flight.len());
                        driver.cancel(&mut layer, id);
                    }
                    _ => {}
                }
                let limiter = layer.limiter();
                prop_assert!(limiter.limit() >= min_limit, "limit {} < {}", limiter.limit(), min_limit);
                prop_assert!(limiter.limit() <= max_limit, "limit {} > {}", limiter.limit(), max_limit);
                prop_assert_eq!(limiter.in_flight() as usize, in_flight.len());
                prop_assert!(limiter.in_flight() <= max_limit);
                let counters = limiter.counters();
                prop_assert_eq!(counters.offered, counters.admitted + counters.rejected);
                prop_assert_eq!(
                    counters.admitted,
                    counters.successes + counters.drops + counters.ignored
                        + counters.cancelled + u64::from(limiter.in_flight())
                );
            }
        }
    }
}
