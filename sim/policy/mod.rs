//! Client-side reliability policies, each a small state machine driven only by
//! virtual time (`now` is always an argument) and call outcomes. No policy
//! reads a clock, does I/O or draws randomness except from the `SimRng` it is
//! handed.
//!
//! ## How policies compose
//!
//! A *stack* is an ordered list of layers, outermost first, as written in a
//! scenario's `policies` array; below the innermost layer is the transport
//! (the network and the target service). A call through the stack creates one
//! *invocation* per layer. The model (`crate::model::world`) asks each layer
//! what to do through the `Layer` trait and carries out the returned `Step`:
//! start the inner call now or after a delay, arm a timer, or complete with a
//! `Reply` that goes to the layer above.
//!
//! Because each layer sees only its own invocation, the order of the list is
//! the semantics: in `[timeout, circuit_breaker]` a timed-out call still
//! reaches the breaker when its late result arrives (the chapter's Hystrix
//! behaviour), while in `[circuit_breaker, timeout]` the breaker records the
//! timeout itself. The recommended order, as in failsafe-go, is
//! `fallback(retry(circuit_breaker(timeout(call))))`.
//!
//! ## Adding a policy
//!
//! Write a module with a config struct (serde, with `validate`), a pure state
//! machine with unit tests, and a `Layer` adapter; then add one variant to
//! `PolicySpec`. Nothing else changes.

pub mod adaptive_timeout;
pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod bulkhead;
pub mod concurrency_limit;
pub mod connect_timeout;
pub mod driver;
pub mod fallback;
pub mod hedge;
pub mod hystrix;
pub mod rank_window;
pub mod retry;
pub mod sliding_breaker;
pub mod timeout;

use crate::engine::{SimDuration, SimRng, SimTime};
use crate::scenario::error::Invalid;
use serde::{Deserialize, Serialize};

/// The result of one call, as seen by the layer above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// The service answered successfully.
    Success,
    /// A fallback answered instead of the service (default or degraded data).
    Fallback,
    /// The service, or the connection to it, failed. `retryable` is false for
    /// client errors (4xx), which retrying cannot fix.
    Error {
        /// Whether a retry could succeed.
        retryable: bool,
    },
    /// A timeout layer gave up waiting.
    Timeout,
    /// A circuit breaker rejected the call without trying it.
    BreakerOpen,
    /// The service's queue was full and it rejected the call (503).
    QueueFull,
    /// A client-side concurrency limit (a bulkhead, an adaptive limit) had
    /// no room and rejected the call without trying it.
    BulkheadFull,
}

impl Reply {
    /// Whether the caller got a usable answer (a success or a fallback).
    pub fn is_ok(self) -> bool {
        matches!(self, Reply::Success | Reply::Fallback)
    }

    /// The stable snake_case name of this reply's kind, as used in `retry_on`
    /// and `fallback.on`.
    pub fn kind(self) -> ReplyKind {
        match self {
            Reply::Success => ReplyKind::Success,
            Reply::Fallback => ReplyKind::Fallback,
            Reply::Error { .. } => ReplyKind::Error,
            Reply::Timeout => ReplyKind::Timeout,
            Reply::BreakerOpen => ReplyKind::BreakerOpen,
            Reply::QueueFull => ReplyKind::QueueFull,
            Reply::BulkheadFull => ReplyKind::BulkheadFull,
        }
    }
}

/// The kinds of failed reply a policy can be told to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyKind {
    /// `Reply::Success`.
    Success,
    /// `Reply::Fallback`.
    Fallback,
    /// `Reply::Error`.
    Error,
    /// `Reply::Timeout`.
    Timeout,
    /// `Reply::BreakerOpen`.
    BreakerOpen,
    /// `Reply::QueueFull`.
    QueueFull,
    /// `Reply::BulkheadFull`.
    BulkheadFull,
}

/// Names one invocation of one layer, unique within a run. A layer that
/// makes calls wait (a bulkhead) keeps the ids of the waiting calls and hands
/// them back through `Ctx::wake` when they may go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CallId(pub u64);

/// Per-invocation scratch state that a layer keeps between its hooks. One
/// exists for each call through each layer; the shared state (a breaker's
/// counts) lives in the layer itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallState {
    /// Attempts started so far by this invocation (retry, hedging).
    pub attempt: u32,
    /// When this invocation began.
    pub started_at: SimTime,
    /// A duration the layer chose and needs again later: the adaptive
    /// timeout it armed, or a retry's previous backoff delay (decorrelated
    /// jitter). One field for both, as each invocation belongs to one layer.
    pub chosen: SimDuration,
    /// Whether this invocation holds something it must give back (a
    /// half-open probe slot, a bulkhead permit).
    pub holds_permit: bool,
    /// Inner calls started and not yet returned. Maintained by the model;
    /// read-only for layers.
    pub outstanding: u32,
    /// The request's key, for layers that cache per key (fallback; at most
    /// a million keys).
    pub key: u32,
    /// Inner calls started by this invocation so far. Maintained by the
    /// model; read-only for layers.
    pub inner_started: u32,
    /// In `on_result`: the start order of the inner call that answered (1
    /// for the first), or 0 when the caller does not say (`sim policy`).
    /// Maintained by the model; read-only for layers.
    pub reply_from: u32,
    /// Whether this invocation's attempt has been accepted by a service
    /// instance; a connect timeout sets it in `Layer::on_connected`.
    pub connected: bool,
}

/// Something a layer reports for the run's records; it changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// A circuit breaker moved between states.
    BreakerTransition {
        /// The state it left.
        from: breaker::BreakerStateName,
        /// The state it entered.
        to: breaker::BreakerStateName,
    },
}

/// What a layer's hook is given.
pub struct Ctx<'a> {
    /// The current virtual time.
    pub now: SimTime,
    /// This invocation's id.
    pub id: CallId,
    /// This invocation's scratch state.
    pub call: &'a mut CallState,
    /// The stack's random stream.
    pub rng: &'a mut SimRng,
    /// Where the layer reports notes.
    pub notes: &'a mut Vec<Note>,
    /// Waiting invocations of this layer that may now start their inner
    /// call, in order. The model forwards each (as `Step::Forward` would).
    pub wake: &'a mut Vec<CallId>,
}

/// What a layer wants done next with its invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Start the inner call now.
    Forward,
    /// Start the inner call after this delay (a retry's backoff).
    ForwardAfter(SimDuration),
    /// Start the inner call now and arm this invocation's timer; `on_timer`
    /// runs if it fires before the invocation completes.
    ForwardWithTimer(SimDuration),
    /// Finish this invocation with this reply. Inner calls still outstanding
    /// are abandoned: they run on, and layers below still see their results,
    /// but the results no longer reach this layer.
    Complete(Reply),
    /// Finish this invocation with this reply and cancel the inner calls
    /// still outstanding: each inner layer's `on_cancel` runs, a call still
    /// waiting in a service's queue is withdrawn, and a call already running
    /// finishes unobserved.
    CompleteCancelling(Reply),
    /// Keep waiting for an inner result or the timer.
    Wait,
    /// Wait without starting the inner call (a queued call) and arm this
    /// invocation's timer; the timer is disarmed when the invocation is
    /// woken through `Ctx::wake`. `on_timer` runs if it fires first.
    WaitWithTimer(SimDuration),
}

/// One policy in a stack. See the module docs for the protocol.
pub trait Layer: Send {
    /// The policy's `kind` as written in scenario files.
    fn kind(&self) -> &'static str;
    /// A call enters this layer.
    fn on_start(&mut self, ctx: &mut Ctx) -> Step;
    /// The inner call returned `reply`.
    fn on_result(&mut self, ctx: &mut Ctx, reply: Reply) -> Step;
    /// This invocation's timer fired.
    fn on_timer(&mut self, _ctx: &mut Ctx) -> Step {
        Step::Wait
    }
    /// The attempt this invocation sent has been accepted by a service
    /// instance (started on a worker, queued, or answered by it). Only the
    /// innermost layer of a stack receives it, when the load balancer routes
    /// the attempt to a live instance; `sim policy` calls it on a
    /// `connected` event.
    fn on_connected(&mut self, _ctx: &mut Ctx) -> Step {
        Step::Wait
    }
    /// Whether `on_connected` does anything. The model reports connections
    /// only to an innermost layer that says so, keeping them off the hot
    /// path of every other stack.
    fn hears_connections(&self) -> bool {
        false
    }
    /// An outer layer cancelled this invocation before it completed: give
    /// back whatever it holds (a permit, a probe slot). The invocation ends
    /// here; nothing it returns would be seen.
    fn on_cancel(&mut self, _ctx: &mut Ctx) {}
    /// The layer's counters, for the run summary, in a stable order.
    fn counters(&self) -> Vec<(&'static str, u64)>;
    /// The layer's shared state (not per-call), for `sim policy` and
    /// debugging: a JSON object with snake_case keys.
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Object(serde_json::Map::new())
    }
}

/// One entry of a scenario's `policies` array: `{"kind": "retry", ...}`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PolicySpec {
    /// A per-attempt deadline.
    Timeout(timeout::TimeoutConfig),
    /// A deadline that follows recent latencies.
    AdaptiveTimeout(adaptive_timeout::AdaptiveTimeoutConfig),
    /// A deadline for a service instance to accept the attempt.
    ConnectTimeout(connect_timeout::ConnectTimeoutConfig),
    /// Retries with a backoff schedule.
    Retry(retry::RetryConfig),
    /// A circuit breaker.
    CircuitBreaker(breaker::BreakerConfig),
    /// A fallback answer on failure.
    Fallback(fallback::FallbackConfig),
    /// A fixed concurrency limit with a waiting queue (the chapter's bulkhead).
    Bulkhead(bulkhead::BulkheadConfig),
    /// An adaptive concurrency limit (Netflix concurrency-limits).
    ConcurrencyLimit(concurrency_limit::ConcurrencyLimitConfig),
    /// Hedged requests.
    Hedge(hedge::HedgeConfig),
    /// The chapter's HystrixCommand: `[fallback, timeout, circuit_breaker]`.
    Hystrix(hystrix::HystrixConfig),
}

impl PolicySpec {
    /// Checks the configuration; `path` names this entry in the file.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        match self {
            PolicySpec::Timeout(config) => config.validate(path),
            PolicySpec::AdaptiveTimeout(config) => config.validate(path),
            PolicySpec::ConnectTimeout(config) => config.validate(path),
            PolicySpec::Retry(config) => config.validate(path),
            PolicySpec::CircuitBreaker(config) => config.validate(path),
            PolicySpec::Fallback(config) => config.validate(path),
            PolicySpec::Bulkhead(config) => config.validate(path),
            PolicySpec::ConcurrencyLimit(config) => config.validate(path),
            PolicySpec::Hedge(config) => config.validate(path),
            PolicySpec::Hystrix(config) => config.validate(path),
        }
    }

    /// The `kind` as written in scenario files.
    pub fn kind(&self) -> &'static str {
        match self {
            PolicySpec::Timeout(_) => "timeout",
            PolicySpec::AdaptiveTimeout(_) => "adaptive_timeout",
            PolicySpec::ConnectTimeout(_) => "connect_timeout",
            PolicySpec::Retry(_) => "retry",
            PolicySpec::CircuitBreaker(_) => "circuit_breaker",
            PolicySpec::Fallback(_) => "fallback",
            PolicySpec::Bulkhead(_) => "bulkhead",
            PolicySpec::ConcurrencyLimit(_) => "concurrency_limit",
            PolicySpec::Hedge(_) => "hedge",
            PolicySpec::Hystrix(_) => "hystrix",
        }
    }

    /// The single-layer policies this entry stands for, outermost first:
    /// itself, or a composite's parts (`hystrix`).
    pub fn parts(&self) -> Vec<PolicySpec> {
        match self {
            PolicySpec::Hystrix(config) => config.parts(),
            single => vec![single.clone()],
        }
    }

    /// Builds fresh layers with empty state, outermost first: one, or a
    /// composite's parts.
    pub fn build(&self) -> Vec<Box<dyn Layer>> {
        let layer: Box<dyn Layer> = match self {
            PolicySpec::Hystrix(config) => {
                return config.parts().iter().flat_map(PolicySpec::build).collect();
            }
            PolicySpec::Timeout(config) => Box::new(timeout::TimeoutLayer::new(config)),
            PolicySpec::AdaptiveTimeout(config) => {
                Box::new(adaptive_timeout::AdaptiveTimeoutLayer::new(config))
            }
            PolicySpec::ConnectTimeout(config) => {
                Box::new(connect_timeout::ConnectTimeoutLayer::new(config))
            }
            PolicySpec::Retry(config) => Box::new(retry::RetryLayer::new(config)),
            PolicySpec::CircuitBreaker(config) => config.build(),
            PolicySpec::Fallback(config) => Box::new(fallback::FallbackLayer::new(config)),
            PolicySpec::Bulkhead(config) => Box::new(bulkhead::BulkheadLayer::new(config)),
            PolicySpec::ConcurrencyLimit(config) => {
                Box::new(concurrency_limit::ConcurrencyLimitLayer::new(config))
            }
            PolicySpec::Hedge(config) => Box::new(hedge::HedgeLayer::new(config)),
        };
        vec![layer]
    }
}

/// A time or duration in microseconds as a JSON number of milliseconds: an
/// integer when whole (`1500`), else a decimal (`1500.25`), as outputs give
/// times.
pub fn ms_value(micros: u64) -> serde_json::Value {
    if micros.is_multiple_of(1_000) {
        serde_json::Value::from(micros / 1_000)
    } else {
        serde_json::Value::from(micros as f64 / 1_000.0)
    }
}

/// Helpers for the policies' unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{CallId, CallState, Ctx};
    use crate::engine::{RngFactory, SimTime};

    /// Runs `hook` with a context at `now_ms` for `call`, as the model would.
    pub(crate) fn with_ctx<T>(
        call: &mut CallState,
        now_ms: u64,
        hook: impl FnOnce(&mut Ctx) -> T,
    ) -> T {
        let mut rng = RngFactory::new(1).stream("t");
        let (mut notes, mut wake) = (Vec::new(), Vec::new());
        hook(&mut Ctx {
            now: SimTime::from_ms(now_ms),
            id: CallId(1),
            call,
            rng: &mut rng,
            notes: &mut notes,
            wake: &mut wake,
        })
    }
}
