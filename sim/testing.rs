//! A kit for property tests of reliability policies (the `proptest` feature).
//!
//! Three parts:
//!
//! - **Strategies** that generate what a policy meets in production:
//!   [`calls`] (call outcomes with timing: same-millisecond ties, bursts of
//!   calls that start together, results that arrive long after a caller's
//!   timeout), [`faults`] (outages that fail fast or hang, error bursts,
//!   latency, crashes) and [`scenarios`] (a whole one-service scenario with
//!   its client's policy stack and a fault schedule, within ranges).
//! - **A replay harness**, [`replay`], that plays a call plan through any
//!   policy (every `PolicySpec`, present and future, through the `Layer`
//!   trait) and collects its decisions as a [`Replay`].
//! - **A seeded search**, [`search`], that runs a property over a strategy
//!   and returns the shrunk counterexample as a value, so a test can assert
//!   what it found (the `proptest!` macro only panics).
//!
//! ## How each strategy shrinks
//!
//! Every generated value is built from integers and lists, so proptest
//! shrinks each towards the simpler end: lists towards **fewer** calls and
//! faults, start times towards **earlier** (equal starts give ties),
//! latencies and durations towards **shorter**, probabilities, burst sizes,
//! rates and thresholds towards **smaller**, and replies towards `Success`
//! (the first listed). A shrunk counterexample is therefore the smallest,
//! earliest, shortest case that still breaks the property.
//!
//! ## Example: the chapter breaker never trips at four failures in five
//!
//! ```
//! use proptest::prelude::*;
//! use sim::policy::{PolicySpec, Reply};
//! use sim::testing::{calls, replay, search, CallsConfig};
//!
//! let breaker = PolicySpec::CircuitBreaker(Default::default()); // chapter: 5 in a row
//! let found = search(1, 256, calls(&CallsConfig::sequential(12)), |plan| {
//!     let failures = plan.iter().filter(|call| !call.reply.is_ok()).count();
//!     let trace = replay(&breaker, &plan, 1).expect("replays");
//!     // "A dependency failing four calls in five trips the breaker."
//!     prop_assert!(plan.len() < 5 || failures * 5 < plan.len() * 4 || trace.tripped());
//!     Ok(())
//! });
//! let (plan, _message) = found.expect("a counterexample");
//! assert_eq!(plan.len(), 5);
//! assert_eq!(plan.iter().filter(|call| call.reply == Reply::Success).count(), 1);
//! ```

use crate::engine::{RngFactory, SimDuration, SimTime};
use crate::metrics::summary::Summary;
use crate::model::distribution::Distribution;
use crate::policy::driver::{Decision, Driver, Event, EventName, Line};
use crate::policy::{CallId, PolicySpec, Reply, Step};
use crate::scenario::builder::{ClientBuilder, ScenarioBuilder, ServiceBuilder};
use crate::scenario::error::Invalid;
use crate::scenario::{OutageMode, Scenario};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
use std::collections::BTreeMap;
use std::ops::RangeInclusive;

/// One call in a plan: it enters the policy at `start_ms`, and each inner
/// call the policy starts for it answers `reply` after `latency_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedCall {
    /// When the call enters the policy, in ms.
    pub start_ms: u64,
    /// How long each of its inner calls takes to answer, in ms.
    pub latency_ms: u64,
    /// What each of its inner calls answers.
    pub reply: Reply,
}

/// The ranges [`calls`] draws from. `Default` gives up to 30 start
/// instants in the first 10 s, up to 3 calls per instant,
/// latencies of 0 to 100 ms or, for one call in five, a late 1 to 10 s, and
/// replies `success`, `error` and `timeout` (in that shrinking order).
#[derive(Clone, Debug)]
pub struct CallsConfig {
    /// How many start instants (groups of calls starting together).
    pub groups: RangeInclusive<usize>,
    /// When each group starts, in ms. Each is drawn on its own, so dropping
    /// a group while shrinking moves no other call.
    pub start_ms: RangeInclusive<u64>,
    /// The most calls that start at one instant (a burst); at least 1.
    pub burst_max: usize,
    /// A usual latency, in ms.
    pub latency_ms: RangeInclusive<u64>,
    /// A late latency, in ms: a result that arrives after the caller's
    /// timeout, or after the breaker has moved on.
    pub late_ms: RangeInclusive<u64>,
    /// The chance of a late latency, in percent.
    pub late_percent: u32,
    /// The replies to draw, with weights; shrinking goes towards the first.
    pub replies: Vec<(u32, Reply)>,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            groups: 0..=30,
            start_ms: 0..=10_000,
            burst_max: 3,
            latency_ms: 0..=100,
            late_ms: 1_000..=10_000,
            late_percent: 20,
            replies: vec![
                (1, Reply::Success),
                (1, Reply::Error { retryable: true }),
                (1, Reply::Timeout),
            ],
        }
    }
}

impl CallsConfig {
    /// Up to `calls_max` calls one after another: all at 0 ms in plan order
    /// (each answered at once, before the next starts), replies `success` or
    /// `error`. For properties about the order of outcomes alone.
    pub fn sequential(calls_max: usize) -> Self {
        CallsConfig {
            groups: 0..=calls_max,
            start_ms: 0..=0,
            burst_max: 1,
            latency_ms: 0..=0,
            late_ms: 0..=0,
            late_percent: 0,
            replies: vec![(1, Reply::Success), (1, Reply::Error { retryable: true })],
        }
    }
}

/// Call plans within `config`'s ranges, sorted by start time (a stable
/// sort: calls starting together keep their generated order), shrinking
/// towards fewer, earlier, shorter, smaller bursts and `Success` replies.
/// Same-millisecond ties come from bursts and from starts shrunk to the
/// same value.
pub fn calls(config: &CallsConfig) -> BoxedStrategy<Vec<PlannedCall>> {
    let config = config.clone();
    let reply = proptest::strategy::Union::new_weighted(
        config
            .replies
            .iter()
            .map(|(weight, reply)| (*weight, Just(*reply).boxed()))
            .collect(),
    );
    let late_percent = config.late_percent.min(100);
    // proptest refuses a zero weight, so a range that is never drawn is left out.
    let latency = proptest::strategy::Union::new_weighted(
        [
            (100 - late_percent, config.latency_ms.clone().boxed()),
            (late_percent, config.late_ms.clone().boxed()),
        ]
        .into_iter()
        .filter(|(weight, _)| *weight > 0)
        .collect(),
    );
    let call = (latency, reply);
    let group = (
        config.start_ms.clone(),
        proptest::collection::vec(call, 1..=config.burst_max.max(1)),
    );
    proptest::collection::vec(group, config.groups.clone())
        .prop_map(|groups| {
            let mut plan = Vec::new();
            for (start_ms, group) in groups {
                for (latency_ms, reply) in group {
                    plan.push(PlannedCall {
                        start_ms,
                        latency_ms,
                        reply,
                    });
                }
            }
            plan.sort_by_key(|call| call.start_ms);
            plan
        })
        .boxed()
}

/// A policy's decisions over a replayed plan.
#[derive(Clone, Debug)]
pub struct Replay {
    /// One line per hook call, as `sim policy` prints them: the call, the
    /// event (`start`, a reply's name, `timer`, `wake`), the decision, and
    /// the layer's state and counters afterwards.
    pub lines: Vec<Line>,
    /// Answers that found their call already completed (a timeout fired
    /// first), with when they arrived: dropped unseen, as in a run.
    pub dropped: Vec<(CallId, SimTime)>,
}

impl Replay {
    /// The `state` field of the layer's state after each line (`closed`,
    /// `open`, `half_open` for breakers); empty for a layer without one.
    pub fn states(&self) -> Vec<&str> {
        self.lines
            .iter()
            .map(|line| line.state["state"].as_str().unwrap_or(""))
            .collect()
    }

    /// Whether the layer's state was ever `open`.
    pub fn tripped(&self) -> bool {
        self.states().contains(&"open")
    }

    /// How many calls the layer completed with `reply` (a breaker's
    /// `BreakerOpen` rejections, a timeout's `Timeout`s).
    pub fn completed_with(&self, reply: Reply) -> usize {
        self.lines
            .iter()
            .filter(|line| {
                matches!(line.decision,
                    Decision::Step(Step::Complete(r) | Step::CompleteCancelling(r)) if r == reply)
            })
            .count()
    }

    /// The most inner calls in flight at once among those the layer started
    /// while its state was `state`: with `half_open`, how many probes a
    /// breaker let through together.
    pub fn in_flight_peak_started_in(&self, state: &str) -> usize {
        let mut in_flight: BTreeMap<CallId, usize> = BTreeMap::new();
        let mut peak = 0;
        for line in &self.lines {
            let forwarded = matches!(
                line.decision,
                Decision::Step(Step::Forward | Step::ForwardWithTimer(_) | Step::ForwardAfter(_))
                    | Decision::Woken
            );
            let answered = !matches!(
                line.event,
                "start" | "timer" | "wake" | "cancel" | "connected" | "tick"
            );
            let finished = matches!(
                line.decision,
                Decision::Cancelled | Decision::Step(Step::CompleteCancelling(_))
            );
            if answered || finished {
                if let Some(count) = in_flight.get_mut(&line.call) {
                    *count -= 1;
                    if *count == 0 || finished {
                        in_flight.remove(&line.call);
                    }
                }
            }
            if forwarded && line.state["state"].as_str() == Some(state) {
                *in_flight.entry(line.call).or_insert(0) += 1;
            }
            peak = peak.max(in_flight.values().sum());
        }
        peak
    }
}

/// The driver event that answers an inner call with `reply`.
fn answer(reply: Reply) -> EventName {
    match reply {
        Reply::Success => EventName::Success,
        Reply::Fallback => EventName::Fallback,
        Reply::Error { retryable: true } => EventName::Failure,
        Reply::Error { retryable: false } => EventName::ClientError,
        Reply::Timeout => EventName::Timeout,
        Reply::BreakerOpen => EventName::BreakerOpen,
        Reply::QueueFull => EventName::QueueFull,
        Reply::BulkheadFull => EventName::BulkheadFull,
    }
}

/// The most lines a replay may produce: a bound for layers that loop.
pub const REPLAY_LINES_MAX: usize = 1_000_000;

/// Plays `plan` through a fresh layer built from `spec` (one policy, not a
/// composite such as `hystrix`), with the random stream `policy` of `seed`,
/// as `sim policy` does, and returns its decisions.
///
/// Call `i` of the plan is `CallId(i + 1)`. It starts at its `start_ms`;
/// each inner call the layer starts for it (at once, after a backoff delay,
/// or when woken) answers `reply` after `latency_ms`. An answer that finds
/// its call completed is dropped (`Replay::dropped`). At one instant, the
/// layer's due timers run first, then answers in the order their inner
/// calls started, then starts in plan order.
///
/// ```
/// use sim::policy::{PolicySpec, Reply};
/// use sim::testing::{replay, PlannedCall};
///
/// let timeout: PolicySpec =
///     serde_json::from_value(serde_json::json!({"kind": "timeout", "timeout_ms": 100})).unwrap();
/// let plan = [
///     PlannedCall { start_ms: 0, latency_ms: 50, reply: Reply::Success },
///     PlannedCall { start_ms: 0, latency_ms: 500, reply: Reply::Success }, // too slow
/// ];
/// let trace = replay(&timeout, &plan, 1).unwrap();
/// assert_eq!(trace.completed_with(Reply::Timeout), 1);
/// assert_eq!(trace.dropped.len(), 1); // the late answer, at 500 ms
/// ```
pub fn replay(spec: &PolicySpec, plan: &[PlannedCall], seed: u64) -> Result<Replay, Invalid> {
    let mut layers = spec.build();
    if layers.len() != 1 {
        return Err(Invalid::new(
            "kind",
            format!("{} is not a single policy", spec.kind()),
        ));
    }
    let driver = Driver::new(layers.remove(0), RngFactory::new(seed).stream("policy"));
    let mut pending: BTreeMap<(SimTime, u8, u64), (CallId, bool)> = BTreeMap::new();
    for (index, call) in plan.iter().enumerate() {
        let id = CallId(index as u64 + 1);
        pending.insert(
            (SimTime::from_ms(call.start_ms), 1, index as u64),
            (id, true),
        );
    }
    let mut state = ReplayState {
        driver,
        pending,
        seen: 0,
        order: 0,
        fed: 0,
    };
    let mut dropped = Vec::new();
    loop {
        let next_action = state.pending.keys().next().map(|(at, _, _)| *at);
        match (state.driver.next_due(), next_action) {
            (Some(due), action) if action.is_none_or(|at| due < at) => {
                state.feed(
                    plan,
                    Event {
                        at: due,
                        call: None,
                        name: EventName::Tick,
                    },
                )?;
            }
            (_, Some(_)) => {
                let ((at, _, _), (id, is_start)) = state.pending.pop_first().expect("peeked");
                if is_start {
                    state.feed(
                        plan,
                        Event {
                            at,
                            call: Some(id),
                            name: EventName::Start,
                        },
                    )?;
                } else if state.driver.outstanding(id) == 0 {
                    dropped.push((id, at));
                } else {
                    let reply = plan[(id.0 - 1) as usize].reply;
                    state.feed(
                        plan,
                        Event {
                            at,
                            call: Some(id),
                            name: answer(reply),
                        },
                    )?;
                }
            }
            (None, None) => break,
            (Some(_), None) => unreachable!("handled by the first arm"),
        }
    }
    let driver = state.driver;
    Ok(Replay {
        lines: driver.lines().to_vec(),
        dropped,
    })
}

/// The replay loop's state: the driver and the answers still to come.
struct ReplayState {
    driver: Driver,
    /// Actions by `(time, class, order)`: answers (class 0) before starts (class 1).
    pending: BTreeMap<(SimTime, u8, u64), (CallId, bool)>,
    /// Lines already turned into answers.
    seen: usize,
    order: u64,
    fed: usize,
}

impl ReplayState {
    /// Feeds one event, then schedules an answer for every inner call the
    /// layer started meanwhile, before time can move on.
    fn feed(&mut self, plan: &[PlannedCall], event: Event) -> Result<(), Invalid> {
        self.driver.feed(self.fed, &event)?;
        self.fed += 1;
        let lines = self.driver.lines();
        if lines.len() > REPLAY_LINES_MAX {
            return Err(Invalid::new(
                "",
                format!("the replay passed {REPLAY_LINES_MAX} lines"),
            ));
        }
        for line in &lines[self.seen..] {
            let delay = match line.decision {
                Decision::Step(Step::Forward | Step::ForwardWithTimer(_)) | Decision::Woken => {
                    SimDuration::ZERO
                }
                Decision::Step(Step::ForwardAfter(delay)) => delay,
                _ => continue,
            };
            let planned = &plan[(line.call.0 - 1) as usize];
            let at = line.at + delay + SimDuration::from_ms(planned.latency_ms);
            self.pending.insert((at, 0, self.order), (line.call, false));
            self.order += 1;
        }
        self.seen = lines.len();
        Ok(())
    }
}

pub use crate::scenario::fault_plan::FaultPlan;

/// The ranges [`faults`] draws from. `Default`: up to 3 faults starting in
/// the first 20 s and lasting 100 ms to 10 s, error bursts of 1 to 100
/// percent, 1 to 2000 ms of added latency, crashes of instance 0 only.
#[derive(Clone, Debug)]
pub struct FaultsConfig {
    /// How many faults.
    pub count: RangeInclusive<usize>,
    /// When a fault starts, in ms.
    pub start_ms: RangeInclusive<u64>,
    /// How long it lasts (or an instance stays down), in ms; at least 1.
    pub duration_ms: RangeInclusive<u64>,
    /// An error burst's chance, in percent.
    pub error_percent: RangeInclusive<u32>,
    /// A latency fault's added service time, in ms.
    pub added_ms: RangeInclusive<u64>,
    /// How many instances the service has (crashes pick one).
    pub instances: u32,
}

impl Default for FaultsConfig {
    fn default() -> Self {
        FaultsConfig {
            count: 0..=3,
            start_ms: 0..=20_000,
            duration_ms: 100..=10_000,
            error_percent: 1..=100,
            added_ms: 1..=2_000,
            instances: 1,
        }
    }
}

/// Fault schedules within `config`'s ranges: fail-fast and hanging outages,
/// error bursts, latency, crashes. Shrinks towards fewer faults, fail-fast
/// outages, earlier, shorter and smaller ones.
pub fn faults(config: &FaultsConfig) -> BoxedStrategy<Vec<FaultPlan>> {
    let c = config.clone();
    let mode = prop_oneof![Just(OutageMode::FailFast), Just(OutageMode::Hang)];
    let fault = prop_oneof![
        (c.start_ms.clone(), c.duration_ms.clone(), mode).prop_map(
            |(start_ms, duration_ms, mode)| FaultPlan::Outage {
                start_ms,
                duration_ms,
                mode,
            }
        ),
        (
            c.start_ms.clone(),
            c.duration_ms.clone(),
            c.error_percent.clone()
        )
            .prop_map(|(start_ms, duration_ms, percent)| FaultPlan::ErrorBurst {
                start_ms,
                duration_ms,
                percent,
            }),
        (
            c.start_ms.clone(),
            c.duration_ms.clone(),
            c.added_ms.clone()
        )
            .prop_map(|(start_ms, duration_ms, added_ms)| FaultPlan::Latency {
                start_ms,
                duration_ms,
                added_ms,
            }),
        (
            0..c.instances.max(1),
            c.start_ms.clone(),
            c.duration_ms.clone()
        )
            .prop_map(|(instance, at_ms, restart_after_ms)| FaultPlan::Crash {
                instance,
                at_ms,
                restart_after_ms,
            }),
    ];
    proptest::collection::vec(fault, c.count.clone()).boxed()
}

/// A generated scenario: one service `api` behind one open-loop client
/// `users` with a policy stack, a fault schedule and a seed.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioPlan {
    /// How long the client sends, in ms.
    pub duration_ms: u64,
    /// Requests per second (Poisson arrivals).
    pub rps: u32,
    /// Instances of `api`.
    pub instances: u32,
    /// Workers per instance.
    pub workers: u32,
    /// Queue slots per instance.
    pub queue_capacity: u32,
    /// Mean service time, in ms (exponential).
    pub service_time_ms: u32,
    /// The client's policies, outermost first.
    pub policies: Vec<PolicySpec>,
    /// The faults on `api`.
    pub faults: Vec<FaultPlan>,
    /// The seed to run it with.
    pub seed: u64,
}

impl ScenarioPlan {
    /// The scenario as a builder called `name`.
    pub fn builder(&self, name: &str) -> ScenarioBuilder {
        let mut client = ClientBuilder::open_loop("users", "api", f64::from(self.rps));
        for policy in &self.policies {
            client = client.policy(policy.clone());
        }
        let mut builder = ScenarioBuilder::new(name, "found by sim::testing")
            .duration_ms(self.duration_ms)
            .drain_ms(30_000)
            .service(
                ServiceBuilder::new(
                    "api",
                    Distribution::Exponential {
                        mean_ms: f64::from(self.service_time_ms),
                    },
                )
                .instances(self.instances)
                .workers(self.workers)
                .queue_capacity(self.queue_capacity),
            )
            .client(client);
        for fault in &self.faults {
            builder = builder.fault(fault.to_builder("api"));
        }
        builder
    }

    /// Builds the scenario and runs it with `seed`, returning its summary.
    /// A plan outside the file format's ranges is an error naming the path.
    pub fn run(&self) -> Result<(Scenario, Summary), String> {
        let scenario = self.builder("plan").build().map_err(|e| e.to_string())?;
        let output = crate::model::run(&scenario, self.seed).map_err(|e| e.to_string())?;
        let summary = Summary::new(&scenario, self.seed, &output);
        Ok((scenario, summary))
    }
}

/// The ranges [`scenarios`] draws from. `Default`: 10 to 30 s at 10 to 100
/// requests per second, 1 instance of 1 to 8 workers with 0 to 50 queue
/// slots, 1 to 50 ms mean service time, no policies, `FaultsConfig`'s
/// defaults, seeds 0 to 1000.
#[derive(Clone, Debug)]
pub struct ScenariosConfig {
    /// How long the client sends, in ms.
    pub duration_ms: RangeInclusive<u64>,
    /// Requests per second.
    pub rps: RangeInclusive<u32>,
    /// Instances.
    pub instances: RangeInclusive<u32>,
    /// Workers per instance.
    pub workers: RangeInclusive<u32>,
    /// Queue slots per instance.
    pub queue_capacity: RangeInclusive<u32>,
    /// Mean service time, in ms.
    pub service_time_ms: RangeInclusive<u32>,
    /// The client's policy stack; `Just(vec![])` for none.
    pub policies: BoxedStrategy<Vec<PolicySpec>>,
    /// The fault schedule (`instances` is taken from the lowest instance count).
    pub faults: FaultsConfig,
    /// The seed.
    pub seed: RangeInclusive<u64>,
}

impl Default for ScenariosConfig {
    fn default() -> Self {
        ScenariosConfig {
            duration_ms: 10_000..=30_000,
            rps: 10..=100,
            instances: 1..=1,
            workers: 1..=8,
            queue_capacity: 0..=50,
            service_time_ms: 1..=50,
            policies: Just(Vec::new()).boxed(),
            faults: FaultsConfig::default(),
            seed: 0..=1_000,
        }
    }
}

/// Whole scenarios within `config`'s ranges, each shrinking towards fewer
/// and smaller faults, a shorter run, a lower rate, fewer workers and
/// smaller policy parameters (as the policy strategy shrinks).
pub fn scenarios(config: &ScenariosConfig) -> BoxedStrategy<ScenarioPlan> {
    let mut faults_config = config.faults.clone();
    faults_config.instances = *config.instances.start();
    (
        (
            config.duration_ms.clone(),
            config.rps.clone(),
            config.instances.clone(),
            config.workers.clone(),
            config.queue_capacity.clone(),
            config.service_time_ms.clone(),
        ),
        config.policies.clone(),
        faults(&faults_config),
        config.seed.clone(),
    )
        .prop_map(
            |(
                (duration_ms, rps, instances, workers, queue_capacity, service_time_ms),
                policies,
                mut faults,
                seed,
            )| {
                // A fault must start within the run; clamping keeps the
                // shrinking order (earlier stays earlier).
                for fault in &mut faults {
                    let start = match fault {
                        FaultPlan::Outage { start_ms, .. }
                        | FaultPlan::ErrorBurst { start_ms, .. }
                        | FaultPlan::Latency { start_ms, .. } => start_ms,
                        FaultPlan::Crash { at_ms, .. } => at_ms,
                    };
                    *start = (*start).min(duration_ms.saturating_sub(1));
                }
                ScenarioPlan {
                    duration_ms,
                    rps,
                    instances,
                    workers,
                    queue_capacity,
                    service_time_ms,
                    policies,
                    faults,
                    seed,
                }
            },
        )
        .boxed()
}

/// Runs `property` on up to `cases` values of `strategy`, drawn from a
/// ChaCha stream seeded by `seed` (so the same seed finds the same case),
/// and returns the first failure shrunk as far as proptest can, with its
/// message; `None` if every case passed. Nothing is written to disk (no
/// `proptest-regressions` file).
///
/// Use `prop_assert!` and friends in `property`, or return
/// `Err(TestCaseError::fail(..))`.
pub fn search<S: Strategy>(
    seed: u64,
    cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Option<(S::Value, String)> {
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 100_000,
        rng_algorithm: RngAlgorithm::ChaCha,
        ..Config::default()
    };
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    match runner.run(&strategy, property) {
        Ok(()) => None,
        Err(TestError::Fail(reason, value)) => Some((value, reason.to_string())),
        Err(TestError::Abort(reason)) => panic!("the search gave up: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(value: serde_json::Value) -> PolicySpec {
        serde_json::from_value(value).expect("a policy")
    }

    fn call(start_ms: u64, latency_ms: u64, reply: Reply) -> PlannedCall {
        PlannedCall {
            start_ms,
            latency_ms,
            reply,
        }
    }

    // A retry's later attempts are answered by the plan too, after its
    // backoff delay plus the call's latency.
    #[test]
    fn replay_answers_every_attempt_of_a_retry() {
        let retry = policy(json!({"kind": "retry", "attempts_max": 3,
            "backoff": {"kind": "fixed", "delay_ms": 100}}));
        let trace = replay(&retry, &[call(0, 10, Reply::Error { retryable: true })], 1).unwrap();
        let times: Vec<u64> = trace
            .lines
            .iter()
            .map(|line| line.at.as_micros() / 1_000)
            .collect();
        // start at 0; failures at 10, 120 and 230; the last completes the call.
        assert_eq!(times, vec![0, 10, 120, 230]);
        assert_eq!(trace.completed_with(Reply::Error { retryable: true }), 1);
        assert!(trace.dropped.is_empty());
    }

    // Two calls admitted while half-open and still in flight together count
    // as a peak of two probes.
    #[test]
    fn in_flight_peak_counts_concurrent_half_open_probes() {
        let breaker = policy(json!({"kind": "circuit_breaker", "failure_threshold": 1,
            "open_timeout_ms": 1000}));
        let plan = [
            call(0, 0, Reply::Error { retryable: true }),
            call(1_000, 50, Reply::Success),
            call(1_010, 50, Reply::Success),
        ];
        let trace = replay(&breaker, &plan, 1).unwrap();
        assert!(trace.tripped());
        assert_eq!(trace.in_flight_peak_started_in("half_open"), 2);
        assert_eq!(trace.in_flight_peak_started_in("open"), 0);
    }

    // Same-millisecond ties: an answer due at an instant is recorded before
    // a call that starts at that instant is admitted.
    #[test]
    fn answers_come_before_starts_at_one_instant() {
        let breaker = policy(json!({"kind": "circuit_breaker", "failure_threshold": 1,
            "open_timeout_ms": 1000}));
        let plan = [
            call(0, 5, Reply::Error { retryable: true }),
            call(5, 0, Reply::Success),
        ];
        let trace = replay(&breaker, &plan, 1).unwrap();
        assert_eq!(trace.lines[1].event, "failure");
        assert_eq!(trace.completed_with(Reply::BreakerOpen), 1);
    }

    proptest! {
        // Generated plans are sorted by start and stay within the ranges.
        #[test]
        fn calls_stay_within_their_ranges(plan in calls(&CallsConfig::default())) {
            prop_assert!(plan.windows(2).all(|pair| pair[0].start_ms <= pair[1].start_ms));
            prop_assert!(plan.len() <= 30 * 3);
            for call in &plan {
                prop_assert!(call.latency_ms <= 10_000);
            }
        }

        // Every generated scenario is valid and runs.
        #[test]
        fn generated_scenarios_build(plan in scenarios(&ScenariosConfig {
            duration_ms: 1_000..=2_000,
            ..ScenariosConfig::default()
        })) {
            let built = plan.builder("p").build();
            prop_assert!(built.is_ok(), "{}", built.unwrap_err());
        }
    }

    // The same seed finds the same shrunk counterexample.
    #[test]
    fn search_is_deterministic() {
        let find = || {
            search(7, 64, calls(&CallsConfig::sequential(10)), |plan| {
                prop_assert!(plan.len() < 4);
                Ok(())
            })
        };
        let (first, message) = find().expect("found");
        assert_eq!(first.len(), 4);
        assert_eq!(Some((first, message)), find());
    }
}
