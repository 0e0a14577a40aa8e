//! Building a scenario in code, for tests and tools that need no JSON files.
//!
//! A `ScenarioBuilder` writes the same JSON a scenario file holds, and
//! `ScenarioBuilder::build` sends those bytes through the same parser and
//! checks as `Scenario::load`. So a built scenario is valid exactly when the
//! file would be, errors name the JSON path as they do for a file
//! (`services[0].workers: must be in [1, 100000] (got 0)`), and
//! `ScenarioBuilder::to_json` gives a file that `sim run` replays with the
//! same results: it is the very text that was checked, so even the scenario
//! hash in the summary matches.
//!
//! ## Why JSON underneath
//!
//! The file format is the one contract every face of `sim` shares. A
//! builder that produced a `Scenario` directly would need a second set of
//! checks, and a second way to go wrong; one that writes the file format can
//! only produce what a user could have written. Fields the builder has no
//! method for yet (new topology, databases, ...) are reachable through the
//! `set` escape hatches, which take any serde value and still go through
//! validation.
//!
//! ```
//! use sim::model::distribution::Distribution;
//! use sim::policy::PolicySpec;
//! use sim::scenario::builder::{ClientBuilder, FaultBuilder, ScenarioBuilder, ServiceBuilder};
//! use sim::scenario::OutageMode;
//!
//! let builder = ScenarioBuilder::new("outage", "a 5 s outage behind a retry")
//!     .duration_ms(20_000)
//!     .service(ServiceBuilder::new("api", Distribution::Constant { value_ms: 10.0 }).workers(4))
//!     .client(
//!         ClientBuilder::open_loop("users", "api", 50.0)
//!             .policy_json(serde_json::json!({"kind": "retry", "attempts_max": 2}))
//!             .policy(PolicySpec::CircuitBreaker(Default::default())),
//!     )
//!     .fault(FaultBuilder::outage("api", 5_000, 10_000, OutageMode::FailFast));
//! let scenario = builder.build().expect("a valid scenario");
//! assert_eq!(scenario.services[0].workers, 4);
//! // The same text, written to a file, is what `sim run` replays.
//! assert!(builder.to_json().contains("\"outage\""));
//!
//! // Errors name the JSON path, as for a file.
//! let error = ScenarioBuilder::new("bad", "no workers")
//!     .duration_ms(1_000)
//!     .service(ServiceBuilder::new("api", Distribution::Constant { value_ms: 1.0 }).workers(0))
//!     .client(ClientBuilder::open_loop("users", "api", 1.0))
//!     .build()
//!     .unwrap_err();
//! assert!(error.to_string().contains("services[0].workers"), "{error}");
//! ```

use super::{ArrivalKind, DependencyMode, LoadBalancerKind, OutageMode, RateSchedule};
use super::{Scenario, ScenarioError};
use crate::model::distribution::Distribution;
use crate::model::flags::FeatureFlagConfig;
use crate::model::health::{HealthCheckConfig, LoadSheddingConfig};
use crate::policy::PolicySpec;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// Any serde value as JSON. The builder's own types always serialise; a
/// user's value that cannot (a map with non-string keys) becomes `null`,
/// which validation then rejects with its path.
fn to_value(value: impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Pushes `item` onto the array at `key` of `object`, creating it.
fn push(object: &mut Map<String, Value>, key: &str, item: Value) {
    let entry = object
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    match entry {
        Value::Array(items) => items.push(item),
        // A `set` replaced the array with something else; validation names it.
        other => *other = Value::Array(vec![item]),
    }
}

/// A whole scenario under construction. `description`, `duration_ms`, at
/// least one service and one client are required, as in a file; everything
/// else has the file format's defaults (`window_ms` 1000, no network
/// latency, no faults, `limits.events_max` 200000000, `limits.drain_ms`
/// 60000).
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioBuilder {
    name: String,
    object: Map<String, Value>,
}

impl ScenarioBuilder {
    /// A scenario called `name` (its report folder, and the stem of the file
    /// `to_json` is meant for) that demonstrates `description`.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        let mut object = Map::new();
        object.insert("description".into(), Value::String(description.into()));
        ScenarioBuilder {
            name: name.into(),
            object,
        }
    }

    /// The scenario's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long clients issue requests, in ms.
    pub fn duration_ms(self, duration_ms: u64) -> Self {
        self.set("duration_ms", duration_ms)
    }

    /// The time-series window width, in ms.
    pub fn window_ms(self, window_ms: u64) -> Self {
        self.set("window_ms", window_ms)
    }

    /// The one-way network latency.
    pub fn network_latency(self, latency_ms: Distribution) -> Self {
        self.set("network", json!({ "latency_ms": to_value(latency_ms) }))
    }

    /// Adds a service.
    pub fn service(mut self, service: ServiceBuilder) -> Self {
        push(&mut self.object, "services", Value::Object(service.object));
        self
    }

    /// Adds a client.
    pub fn client(mut self, client: ClientBuilder) -> Self {
        push(&mut self.object, "clients", Value::Object(client.object));
        self
    }

    /// Adds a fault.
    pub fn fault(mut self, fault: FaultBuilder) -> Self {
        push(&mut self.object, "faults", fault.0);
        self
    }

    /// Sets `limits.events_max`.
    pub fn events_max(self, events_max: u64) -> Self {
        self.limit("events_max", events_max)
    }

    /// Sets `limits.drain_ms`.
    pub fn drain_ms(self, drain_ms: u64) -> Self {
        self.limit("drain_ms", drain_ms)
    }

    fn limit(mut self, key: &str, value: u64) -> Self {
        let limits = self
            .object
            .entry("limits")
            .or_insert_with(|| Value::Object(Map::new()));
        if !limits.is_object() {
            *limits = Value::Object(Map::new());
        }
        limits
            .as_object_mut()
            .expect("an object")
            .insert(key.into(), Value::from(value));
        self
    }

    /// Sets a top-level field to any serde value: the escape hatch for fields
    /// this builder has no method for. Validation still checks it.
    pub fn set(mut self, key: &str, value: impl Serialize) -> Self {
        self.object.insert(key.to_string(), to_value(value));
        self
    }

    /// The scenario as a JSON value, exactly as `to_json` writes it.
    pub fn to_value(&self) -> Value {
        Value::Object(self.object.clone())
    }

    /// The scenario file's text (pretty-printed, keys sorted, trailing
    /// newline): write it to `<name>.json` and `sim run` replays it.
    pub fn to_json(&self) -> String {
        let mut text =
            serde_json::to_string_pretty(&self.object).expect("JSON values always serialise");
        text.push('\n');
        text
    }

    /// Parses and checks `to_json`'s text as `Scenario::load` would a file.
    /// Errors name `<name> (built)` as the file and the JSON path.
    pub fn build(&self) -> Result<Scenario, ScenarioError> {
        let file = format!("{} (built)", self.name);
        Scenario::from_bytes(&file, &self.name, self.to_json().as_bytes())
    }
}

/// A service under construction. Defaults are the file format's: 1
/// instance, 10 workers, queue capacity 100, round robin, no errors, no
/// dependencies, no health checks.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceBuilder {
    object: Map<String, Value>,
}

impl ServiceBuilder {
    /// A service called `name` whose workers spend `service_time_ms` on each
    /// request.
    pub fn new(name: impl Into<String>, service_time_ms: Distribution) -> Self {
        let mut object = Map::new();
        object.insert("name".into(), Value::String(name.into()));
        object.insert("service_time_ms".into(), to_value(service_time_ms));
        ServiceBuilder { object }
    }

    /// Instances behind the load balancer.
    pub fn instances(self, instances: u32) -> Self {
        self.set("instances", instances)
    }

    /// Worker threads per instance.
    pub fn workers(self, workers: u32) -> Self {
        self.set("workers", workers)
    }

    /// Queue slots per instance.
    pub fn queue_capacity(self, queue_capacity: u32) -> Self {
        self.set("queue_capacity", queue_capacity)
    }

    /// How an instance is picked.
    pub fn load_balancer(self, load_balancer: LoadBalancerKind) -> Self {
        self.set("load_balancer", load_balancer)
    }

    /// The chance of a server error (retryable) after the work.
    pub fn error_probability(self, probability: f64) -> Self {
        self.set("error_probability", probability)
    }

    /// The chance of a client error (not retryable) after the work.
    pub fn client_error_probability(self, probability: f64) -> Self {
        self.set("client_error_probability", probability)
    }

    /// Adds a dependency call to `service` made by every request, through
    /// `policies` (outermost first).
    pub fn dependency(mut self, service: impl Into<String>, policies: Vec<PolicySpec>) -> Self {
        let call = json!({ "service": service.into(), "policies": to_value(policies) });
        let dependencies = self
            .object
            .entry("dependencies")
            .or_insert_with(|| json!({ "calls": [] }));
        if !dependencies.is_object() {
            *dependencies = json!({ "calls": [] });
        }
        let object = dependencies.as_object_mut().expect("an object");
        push(object, "calls", call);
        self
    }

    /// Whether dependency calls are made one after another or all at once.
    pub fn dependency_mode(mut self, mode: DependencyMode) -> Self {
        let dependencies = self
            .object
            .entry("dependencies")
            .or_insert_with(|| json!({ "calls": [] }));
        if let Some(object) = dependencies.as_object_mut() {
            object.insert("mode".into(), to_value(mode));
        }
        self
    }

    /// Readiness, startup and liveness checks.
    pub fn health_check(self, health_check: HealthCheckConfig) -> Self {
        self.set("health_check", health_check)
    }

    /// Load shedding.
    pub fn load_shedding(self, load_shedding: LoadSheddingConfig) -> Self {
        self.set("load_shedding", load_shedding)
    }

    /// Adds a feature flag.
    pub fn feature_flag(mut self, flag: FeatureFlagConfig) -> Self {
        push(&mut self.object, "feature_flags", to_value(flag));
        self
    }

    /// Sets any field of the service to any serde value (the escape hatch).
    pub fn set(mut self, key: &str, value: impl Serialize) -> Self {
        self.object.insert(key.to_string(), to_value(value));
        self
    }
}

/// A client under construction, open loop or closed loop, with no policies
/// until `policy` adds them.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientBuilder {
    object: Map<String, Value>,
}

impl ClientBuilder {
    /// A client called `name` sending Poisson arrivals at a constant `rps` to
    /// the service called `target`.
    pub fn open_loop(name: impl Into<String>, target: impl Into<String>, rps: f64) -> Self {
        let load = json!({ "kind": "open_loop", "rate": { "kind": "constant", "rps": rps } });
        ClientBuilder::with_load(name.into(), target.into(), load)
    }

    /// A client of `users` users calling `target`, each waiting for its
    /// answer and then thinking for a draw of `think_time_ms`.
    pub fn closed_loop(
        name: impl Into<String>,
        target: impl Into<String>,
        users: u32,
        think_time_ms: Distribution,
    ) -> Self {
        let load = json!({
            "kind": "closed_loop",
            "users": users,
            "think_time_ms": to_value(think_time_ms),
        });
        ClientBuilder::with_load(name.into(), target.into(), load)
    }

    fn with_load(name: String, target: String, load: Value) -> Self {
        let mut object = Map::new();
        object.insert("name".into(), Value::String(name));
        object.insert("target".into(), Value::String(target));
        object.insert("load".into(), load);
        ClientBuilder { object }
    }

    fn load_field(mut self, key: &str, value: Value) -> Self {
        if let Some(load) = self.object.get_mut("load").and_then(Value::as_object_mut) {
            load.insert(key.to_string(), value);
        }
        self
    }

    /// How open-loop arrivals are spaced (Poisson by default).
    pub fn arrival(self, arrival: ArrivalKind) -> Self {
        self.load_field("arrival", to_value(arrival))
    }

    /// An open-loop rate schedule in place of the constant rate.
    pub fn rate(self, rate: RateSchedule) -> Self {
        self.load_field("rate", to_value(rate))
    }

    /// Adds an open-loop burst: `count` requests issued together at `at_ms`.
    pub fn burst(mut self, at_ms: u64, count: u32) -> Self {
        if let Some(load) = self.object.get_mut("load").and_then(Value::as_object_mut) {
            push(load, "bursts", json!({ "at_ms": at_ms, "count": count }));
        }
        self
    }

    /// Appends a policy to the client's stack (the first added is outermost).
    pub fn policy(mut self, policy: PolicySpec) -> Self {
        push(&mut self.object, "policies", to_value(policy));
        self
    }

    /// Appends a policy written as its JSON entry, `{"kind": "retry", ...}`;
    /// `build` checks it, naming its path.
    pub fn policy_json(mut self, policy: Value) -> Self {
        push(&mut self.object, "policies", policy);
        self
    }

    /// Sets any field of the client to any serde value (the escape hatch).
    pub fn set(mut self, key: &str, value: impl Serialize) -> Self {
        self.object.insert(key.to_string(), to_value(value));
        self
    }
}

/// One fault, as a `faults` entry. The constructors cover the scripted
/// kinds; `FaultBuilder::from_json` takes any other entry (new kinds as they
/// land), which validation checks like the rest.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultBuilder(Value);

impl FaultBuilder {
    /// `service` is down in `[start_ms, end_ms)`, refusing calls
    /// (`FailFast`) or holding them unanswered (`Hang`).
    pub fn outage(service: &str, start_ms: u64, end_ms: u64, mode: OutageMode) -> Self {
        FaultBuilder(json!({
            "kind": "outage",
            "service": service,
            "start_ms": start_ms,
            "end_ms": end_ms,
            "mode": to_value(mode),
        }))
    }

    /// Each request to `service` fails with `probability` in `[start_ms, end_ms)`.
    pub fn error_rate(service: &str, start_ms: u64, end_ms: u64, probability: f64) -> Self {
        FaultBuilder(json!({
            "kind": "error_rate",
            "service": service,
            "start_ms": start_ms,
            "end_ms": end_ms,
            "probability": probability,
        }))
    }

    /// With `probability`, a request's service time grows by a draw of
    /// `added_ms` in `[start_ms, end_ms)`.
    pub fn latency(
        service: &str,
        start_ms: u64,
        end_ms: u64,
        probability: f64,
        added_ms: Distribution,
    ) -> Self {
        FaultBuilder(json!({
            "kind": "latency",
            "service": service,
            "start_ms": start_ms,
            "end_ms": end_ms,
            "probability": probability,
            "added_ms": to_value(added_ms),
        }))
    }

    /// Instance `instance` of `service` crashes at `at_ms` and restarts
    /// `restart_after_ms` later.
    pub fn crash(service: &str, instance: u32, at_ms: u64, restart_after_ms: u64) -> Self {
        FaultBuilder(json!({
            "kind": "crash",
            "service": service,
            "instance": instance,
            "at_ms": at_ms,
            "restart_after_ms": restart_after_ms,
        }))
    }

    /// Any `faults` entry as written in a file.
    pub fn from_json(value: Value) -> Self {
        FaultBuilder(value)
    }

    /// The entry as JSON.
    pub fn to_value(&self) -> &Value {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::summary::Summary;

    fn retry() -> PolicySpec {
        serde_json::from_value(json!({"kind": "retry", "attempts_max": 2})).expect("a policy")
    }

    fn minimal() -> ScenarioBuilder {
        ScenarioBuilder::new("minimal", "one service, one client")
            .duration_ms(2_000)
            .service(ServiceBuilder::new(
                "api",
                Distribution::Constant { value_ms: 5.0 },
            ))
            .client(ClientBuilder::open_loop("users", "api", 20.0))
    }

    // A built scenario and the same scenario read from its JSON text run to
    // byte-identical summaries: the builder adds no meaning of its own.
    #[test]
    fn built_and_written_scenarios_run_the_same() {
        let builder = minimal()
            .client(ClientBuilder::open_loop("retrying", "api", 10.0).policy(retry()))
            .fault(FaultBuilder::outage("api", 500, 900, OutageMode::Hang))
            .fault(FaultBuilder::error_rate("api", 1_000, 1_500, 0.5));
        let built = builder.build().expect("valid");
        let read = Scenario::from_bytes("minimal.json", "minimal", builder.to_json().as_bytes())
            .expect("valid");
        let summary = |scenario: &Scenario| {
            let output = crate::model::run(scenario, 7).expect("runs");
            serde_json::to_string(&Summary::new(scenario, 7, &output)).expect("serialises")
        };
        assert_eq!(summary(&built), summary(&read));
        assert_eq!(built.hash, read.hash);
        assert_eq!(built.faults.len(), 2);
        assert_eq!(built.clients[1].policies.len(), 1);
    }

    // Errors from a built scenario name the JSON path, for range errors and
    // type errors alike.
    #[test]
    fn build_errors_name_the_json_path() {
        let range = minimal()
            .fault(FaultBuilder::error_rate("api", 0, 100, 1.5))
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            range.starts_with("minimal (built): faults[0].probability: "),
            "{range}"
        );
        let unknown = minimal()
            .fault(FaultBuilder::outage(
                "nowhere",
                0,
                100,
                OutageMode::FailFast,
            ))
            .build()
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("faults[0].service"), "{unknown}");
        let missing = ScenarioBuilder::new("m", "d")
            .build()
            .unwrap_err()
            .to_string();
        assert!(missing.contains("duration_ms"), "{missing}");
    }

    // The escape hatches reach fields the builder has no method for.
    #[test]
    fn set_reaches_any_field_and_is_validated() {
        let scenario = minimal()
            .set("window_ms", 500)
            .events_max(10_000)
            .drain_ms(1_000)
            .build()
            .expect("valid");
        assert_eq!(scenario.window.as_micros(), 500_000);
        assert_eq!(scenario.limits.events_max, 10_000);
        let error = minimal()
            .set("no_such_field", 1)
            .build()
            .unwrap_err()
            .to_string();
        assert!(error.contains("no_such_field"), "{error}");
    }

    // Services' dependencies, bursts and closed-loop clients come out as the
    // file format spells them.
    #[test]
    fn nested_parts_build() {
        let scenario = ScenarioBuilder::new("nested", "a chain")
            .duration_ms(1_000)
            .service(
                ServiceBuilder::new("front", Distribution::Constant { value_ms: 1.0 })
                    .dependency("back", vec![retry()])
                    .dependency_mode(DependencyMode::Parallel)
                    .instances(2)
                    .queue_capacity(5)
                    .error_probability(0.1),
            )
            .service(ServiceBuilder::new(
                "back",
                Distribution::Constant { value_ms: 1.0 },
            ))
            .client(ClientBuilder::open_loop("a", "front", 5.0).burst(100, 10))
            .client(ClientBuilder::closed_loop(
                "b",
                "front",
                3,
                Distribution::Constant { value_ms: 10.0 },
            ))
            .fault(FaultBuilder::crash("front", 1, 200, 100))
            .build()
            .expect("valid");
        assert_eq!(scenario.services[0].dependencies[0].service(), Some(1));
        assert_eq!(
            scenario.services[0].dependency_mode,
            DependencyMode::Parallel
        );
        assert_eq!(scenario.services[0].instances, 2);
        assert!(matches!(
            &scenario.clients[0].load,
            crate::scenario::Load::OpenLoop { bursts, .. } if bursts.len() == 1
        ));
        assert!(matches!(
            scenario.clients[1].load,
            crate::scenario::Load::ClosedLoop { users: 3, .. }
        ));
    }
}
