//! The scenario file exactly as written: serde types with defaults, no
//! cross-checks. `validate` turns these into a `Scenario`; nothing else reads
//! them. Field docs here are the scenario reference's source of truth.

use crate::model::distribution::Distribution;
use crate::model::flags::FeatureFlagConfig;
use crate::model::health::{HealthCheckConfig, LoadSheddingConfig};
use crate::policy::PolicySpec;
use serde::Deserialize;

/// The top level of a scenario file.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    /// What the scenario demonstrates (required, non-empty).
    pub description: String,
    /// Simulated time during which clients issue requests, in ms.
    pub duration_ms: u64,
    /// Width of a time-series window, in ms; default 1000.
    #[serde(default = "window_default")]
    pub window_ms: u64,
    /// Network settings.
    #[serde(default)]
    pub network: RawNetwork,
    /// The services, at least one.
    pub services: Vec<RawService>,
    /// The clients, at least one.
    pub clients: Vec<RawClient>,
    /// Faults on the virtual timeline.
    #[serde(default)]
    pub faults: Vec<RawFault>,
    /// Run limits.
    #[serde(default)]
    pub limits: RawLimits,
    /// Regions, the network between them and global routing (see
    /// `raw_topology`); default none: one implicit region, as before.
    #[serde(default)]
    pub topology: Option<super::raw_topology::RawTopology>,
    /// Database clusters; default none (see `raw_database`).
    #[serde(default)]
    pub databases: Vec<super::raw_database::RawDatabase>,
    /// Assertions and a search space for `sim explore` (see `explore`);
    /// default none. `sim run` checks the assertions too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explore: Option<crate::explore::RawExplore>,
}

fn window_default() -> u64 {
    1_000
}

/// Network latency, one way, sampled for each request and each response.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    /// One-way latency; default constant 0.
    #[serde(default = "Distribution::zero")]
    pub latency_ms: Distribution,
}

impl Default for RawNetwork {
    fn default() -> Self {
        RawNetwork {
            latency_ms: Distribution::zero(),
        }
    }
}

/// Limits that keep every run finite.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// The most events one run may process; default 200000000.
    #[serde(default = "events_max_default")]
    pub events_max: u64,
    /// How long after `duration_ms` in-flight requests may finish, in ms;
    /// default 60000. Requests still open then end as `unfinished`.
    #[serde(default = "drain_default")]
    pub drain_ms: u64,
    /// The most calls in flight at once (policy invocations plus attempts
    /// on the network, queued, held or being served), in `[1, 1000000000]`;
    /// default 1000000. A run that exceeds it stops with an error.
    #[serde(default = "in_flight_max_default")]
    pub in_flight_max: u64,
    /// The memory a run may need, in MiB, in `[64, 1048576]`; default 2048.
    /// A scenario whose estimated need (an upper bound) is larger is refused
    /// at validation.
    #[serde(default = "memory_mb_default")]
    pub memory_mb: u64,
}

fn in_flight_max_default() -> u64 {
    1_000_000
}

fn memory_mb_default() -> u64 {
    2_048
}

fn events_max_default() -> u64 {
    200_000_000
}

fn drain_default() -> u64 {
    60_000
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            events_max: events_max_default(),
            drain_ms: drain_default(),
            in_flight_max: in_flight_max_default(),
            memory_mb: memory_mb_default(),
        }
    }
}

/// A service: `instances` copies behind a load balancer.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// Unique name.
    pub name: String,
    /// Instances behind the load balancer; default 1.
    #[serde(default = "one")]
    pub instances: u32,
    /// Worker threads per instance; default 10.
    #[serde(default = "workers_default")]
    pub workers: u32,
    /// Waiting requests per instance beyond the busy workers; default 100.
    #[serde(default = "queue_default")]
    pub queue_capacity: u32,
    /// `round_robin` (default) or `least_outstanding`.
    #[serde(default)]
    pub load_balancer: LoadBalancerKind,
    /// Time a worker spends on one request, before any dependency calls.
    pub service_time_ms: Distribution,
    /// Chance that a request fails with a server error (5xx, retryable)
    /// after its service time; default 0.
    #[serde(default)]
    pub error_probability: f64,
    /// Chance that a request fails with a client error (4xx, never
    /// retried) after its service time; default 0.
    #[serde(default)]
    pub client_error_probability: f64,
    /// Calls made while handling each request.
    #[serde(default)]
    pub dependencies: Option<RawDependencies>,
    /// Readiness, startup and liveness checks; default none (every instance
    /// always in rotation).
    #[serde(default)]
    pub health_check: Option<HealthCheckConfig>,
    /// Refusing work that cannot be useful; default none.
    #[serde(default)]
    pub load_shedding: Option<LoadSheddingConfig>,
    /// Features switched off while a dependency is unhealthy; default none.
    #[serde(default)]
    pub feature_flags: Vec<FeatureFlagConfig>,
}

fn one() -> u32 {
    1
}

fn workers_default() -> u32 {
    10
}

fn queue_default() -> u32 {
    100
}

/// How a service picks an instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancerKind {
    /// Each instance in turn.
    #[default]
    RoundRobin,
    /// The instance with the fewest queued plus running requests (lowest index on ties).
    LeastOutstanding,
}

/// Dependency calls made by a handler, holding its worker meanwhile.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDependencies {
    /// `sequential` (default: one after another, stopping at the first
    /// failure) or `parallel` (all at once, failing at the first failure).
    #[serde(default)]
    pub mode: DependencyMode,
    /// The calls, at least one.
    pub calls: Vec<RawDependencyCall>,
}

/// How dependency calls are made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DependencyMode {
    /// One after another.
    #[default]
    Sequential,
    /// All at once.
    Parallel,
}

/// One dependency call and the policy stack it goes through.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDependencyCall {
    /// The called service; give this or `database`.
    #[serde(default)]
    pub service: Option<String>,
    /// The called database cluster (a name in `databases`); give this or `service`.
    #[serde(default)]
    pub database: Option<String>,
    /// The fraction of requests whose handling makes this call, in `[0, 1]`;
    /// default 1. Mixes request types in one handler (checkout calls
    /// payments, browsing does not).
    #[serde(default = "probability_one")]
    pub probability: f64,
    /// The caller-side policies, outermost first.
    #[serde(default)]
    pub policies: Vec<PolicySpec>,
}

/// A client: a source of requests to one service.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    /// Unique name.
    pub name: String,
    /// The service it calls.
    pub target: String,
    /// How it generates requests.
    pub load: RawLoad,
    /// The client-side policies, outermost first.
    #[serde(default)]
    pub policies: Vec<PolicySpec>,
}

/// Open-loop (arrivals independent of responses) or closed-loop (each user
/// waits for its answer, then thinks).
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawLoad {
    /// Requests arrive on a rate schedule, plus synchronised bursts.
    OpenLoop {
        /// `poisson` (default) or `uniform` (evenly spaced).
        #[serde(default)]
        arrival: ArrivalKind,
        /// Requests per second over time.
        rate: RateSchedule,
        /// Extra requests all issued at one instant: the herd.
        #[serde(default)]
        bursts: Vec<RawBurst>,
    },
    /// A fixed population of users, each with one request outstanding.
    ClosedLoop {
        /// How many users, in `[1, 1000000]`.
        users: u32,
        /// The pause between an answer and the user's next request.
        think_time_ms: Distribution,
    },
}

/// How open-loop arrivals are spaced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArrivalKind {
    /// A Poisson process of the schedule's rate (sampled per rate segment).
    #[default]
    Poisson,
    /// Evenly spaced gaps of `1 / rate`.
    Uniform,
}

/// Requests per second over time.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RateSchedule {
    /// The same rate throughout.
    Constant {
        /// Requests per second.
        rps: f64,
    },
    /// Piecewise constant: each step's rate holds from its `at_ms` to the
    /// next step; zero before the first.
    Steps {
        /// The steps, in increasing `at_ms`.
        steps: Vec<RateStep>,
    },
    /// `from_rps` until `start_ms`, a straight line to `to_rps` at `end_ms`,
    /// then `to_rps`.
    Ramp {
        /// Where the ramp starts.
        start_ms: u64,
        /// Where it ends, after `start_ms`.
        end_ms: u64,
        /// The rate before.
        from_rps: f64,
        /// The rate after.
        to_rps: f64,
    },
    /// `base_rps`, except `spike_rps` in `[start_ms, end_ms)`.
    Spike {
        /// The usual rate.
        base_rps: f64,
        /// The rate during the spike.
        spike_rps: f64,
        /// Where the spike starts.
        start_ms: u64,
        /// Where it ends, after `start_ms`.
        end_ms: u64,
    },
}

/// One step of a `steps` schedule.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateStep {
    /// When this rate begins, in ms.
    pub at_ms: u64,
    /// Requests per second from then on.
    pub rps: f64,
}

/// `count` requests issued together at `at_ms`.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawBurst {
    /// When, in ms, before `duration_ms`.
    pub at_ms: u64,
    /// How many, in `[1, 10000000]`.
    pub count: u32,
}

/// A fault on the virtual timeline.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawFault {
    /// The whole service is down in `[start_ms, end_ms)`.
    Outage {
        /// The service.
        service: String,
        /// Start, in ms.
        start_ms: u64,
        /// End, in ms, after `start_ms`.
        end_ms: u64,
        /// `fail_fast` (default: calls are refused at once) or `hang`
        /// (calls are accepted and never answered: callers wait for their timeout).
        #[serde(default)]
        mode: OutageMode,
    },
    /// Extra failures: each request fails with `probability` after its service time.
    ErrorRate {
        /// The service.
        service: String,
        /// Start, in ms.
        start_ms: u64,
        /// End, in ms, after `start_ms`.
        end_ms: u64,
        /// The chance, in `[0, 1]`.
        probability: f64,
    },
    /// Extra latency: with `probability`, a request's service time grows by a draw of `added_ms`.
    Latency {
        /// The service.
        service: String,
        /// Start, in ms.
        start_ms: u64,
        /// End, in ms, after `start_ms`.
        end_ms: u64,
        /// The chance, in `[0, 1]`; default 1.
        #[serde(default = "probability_one")]
        probability: f64,
        /// The added delay.
        added_ms: Distribution,
    },
    /// One instance crashes at `at_ms`: its running and queued requests fail
    /// (connection reset) and calls routed to it are refused until it restarts.
    Crash {
        /// The service.
        service: String,
        /// The instance index, in `[0, instances)`.
        instance: u32,
        /// When it crashes, in ms.
        at_ms: u64,
        /// How long until it restarts, in ms, `> 0`.
        restart_after_ms: u64,
    },
    /// Graceful shutdown of one instance (section 8.6): at `at_ms` it leaves
    /// the load balancer's rotation and takes no new calls, finishes what it
    /// is running and has queued, and at `at_ms + drain_timeout_ms` cuts off
    /// whatever is left (counted as `cut`). It restarts after
    /// `restart_after_ms` from the deadline, if given.
    Shutdown {
        /// The service.
        service: String,
        /// The instance index, in `[0, instances)`.
        instance: u32,
        /// When shutdown begins, in ms.
        at_ms: u64,
        /// The drain deadline, in `[0, 3600000]` ms; default 30000 (the chapter's).
        #[serde(default = "drain_timeout_default")]
        drain_timeout_ms: u64,
        /// Down time after the deadline before it starts again; default none (stays down).
        #[serde(default)]
        restart_after_ms: Option<u64>,
    },
    /// The chapter's ChaosMonkey (section 8.8) in front of a service's
    /// handler in `[start_ms, end_ms)`: with `failure_rate` a call fails at
    /// once; otherwise with `latency_rate` it is delayed by a uniform draw in
    /// `[0, latency_ms)` before it is handled.
    ChaosMonkey {
        /// The service.
        service: String,
        /// Start, in ms.
        start_ms: u64,
        /// End, in ms, after `start_ms`.
        end_ms: u64,
        /// Chance of an injected failure, in `[0, 1]`; default 0.01.
        #[serde(default = "chaos_failure_default")]
        failure_rate: f64,
        /// Chance of injected latency, in `[0, 1 - failure_rate]`; default 0.05.
        #[serde(default = "chaos_latency_rate_default")]
        latency_rate: f64,
        /// The most latency injected, in `[0, 3600000]` ms; default 5000.
        #[serde(default = "chaos_latency_default")]
        latency_ms: f64,
    },
    /// The chapter's scheduled `killRandomInstance`: every `interval_ms` in
    /// `[start_ms, end_ms)`, with `probability`, one instance picked at random
    /// crashes and restarts after `restart_after_ms`.
    KillInstances {
        /// The service.
        service: String,
        /// Start, in ms.
        start_ms: u64,
        /// End, in ms, after `start_ms`.
        end_ms: u64,
        /// Time between draws, in `[1, 86400000]` ms.
        interval_ms: u64,
        /// Chance of a kill at each draw, in `[0, 1]`; default 1.
        #[serde(default = "probability_one")]
        probability: f64,
        /// Down time of a killed instance, in ms, `> 0`.
        restart_after_ms: u64,
    },
    /// A database node crashes at `at_ms` (see `raw_database::RawDatabaseFault`).
    DatabaseCrash(super::raw_database::RawDatabaseCrash),
    /// Replication to a database node stops in `[start_ms, end_ms)`.
    ReplicationPause(super::raw_database::RawDatabaseWindow),
    /// A database node applies slower in `[start_ms, end_ms)`.
    SlowReplica(super::raw_database::RawSlowReplica),
    /// A database node's disk is full in `[start_ms, end_ms)`: writes fail, reads work.
    DiskFull(super::raw_database::RawDatabaseWindow),
}

fn drain_timeout_default() -> u64 {
    30_000
}

fn chaos_failure_default() -> f64 {
    0.01
}

fn chaos_latency_rate_default() -> f64 {
    0.05
}

fn chaos_latency_default() -> f64 {
    5_000.0
}

fn probability_one() -> f64 {
    1.0
}

/// How an outage shows itself to callers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageMode {
    /// Calls are refused at once with an error.
    #[default]
    FailFast,
    /// Calls get no answer at all.
    Hang,
}
