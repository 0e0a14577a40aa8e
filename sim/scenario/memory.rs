//! The memory a scenario may need, estimated at validation, and the check
//! against `limits.memory_mb`.
//!
//! ## Why estimate, and why an upper bound
//!
//! Per-instance state (a policy stack for every dependency call of every
//! instance) is created before the first event, so a scenario with 10,000
//! instances each caching a million keys would abort with an allocation
//! failure at setup, long after `sim validate` said it was fine. The
//! estimate refuses it up front, with the JSON path of the largest part.
//!
//! The estimate is an upper bound, not a forecast: state that is sparse is
//! allocated lazily (a fallback cache holds only the keys it has stored,
//! sliding windows and sample windows grow as samples arrive, an instance's
//! worker list and queue grow as calls come), and the estimate counts each
//! at its fullest, with the spare capacity of growing containers. Most runs
//! use a small fraction of it.
//!
//! ## What is counted
//!
//! - **Calls in flight:** `limits.in_flight_max` times the most one call in
//!   flight costs (`model::world::in_flight_call_bytes`): invocation or
//!   attempt, request, pending events, queue and policy bookkeeping. A run
//!   that exceeds the limit stops (`RunError::InFlightLimit`), so this part
//!   holds however the load and the policies fan out.
//! - **Policy stacks:** one per client, and one per dependency call per
//!   instance: a fixed part per stack and per layer, plus each layer's
//!   windows at their fullest (fallback cache keys, adaptive-timeout samples,
//!   count- and time-window breakers, the chapter's retry-budget buckets).
//! - **Instances:** a fixed part each, plus the worker list and the queue at
//!   their fullest (each at most `limits.in_flight_max` entries).
//! - **Held calls:** a hang outage's waiting list, up to
//!   `limits.in_flight_max` entries per service it hits.
//! - **Load:** one pending event per closed-loop user and per burst.
//! - **Metrics and report:** a row per time-series window (with its CSV line
//!   and chart points), the kept breaker and flag transitions, and a fixed
//!   base for the program, its histograms and the charts.

use super::check::{item, join};
use super::error::Invalid;
use super::{Load, OutageMode, Scenario};
use crate::metrics::TRANSITIONS_KEPT_MAX;
use crate::model::regions::{CLIENT_SERIES_MAX, FAILOVERS_KEPT_MAX};
use crate::model::world::in_flight_call_bytes;
use crate::policy::breaker::BreakerConfig;
use crate::policy::budget::BudgetConfig;
use crate::policy::PolicySpec;

/// One MiB, the unit of `limits.memory_mb`.
pub const MIB: u64 = 1024 * 1024;
/// The program, its allocator, the whole-run and per-window histograms, the
/// event queue's calendar and the chart bitmaps: a fixed base whatever the
/// scenario.
pub const BASE_BYTES: u64 = 48 * MIB;
/// A policy stack's fixed part: its two random streams, name, layer list
/// and counters in the summary.
pub const STACK_BYTES: u64 = 2_048;
/// One layer's fixed part (the largest layer type, boxed).
pub const LAYER_BYTES: u64 = 512;
/// One service instance's fixed part (health state, lists, counters).
pub const INSTANCE_BYTES: u64 = 256;
/// One entry of a growing list of call ids (a worker list, a queue, a hang
/// outage's waiting list): 8 bytes, twice for spare capacity.
pub const LIST_ENTRY_BYTES: u64 = 16;
/// One key of a fallback cache: an ordered-map entry of 16 bytes in nodes at
/// least half full, with the internal nodes.
pub const CACHE_KEY_BYTES: u64 = 48;
/// One adaptive-timeout sample (`policy::rank_window`): 8 bytes in the ring,
/// twice for spare capacity, and an ordered-multiset entry of 12 bytes in
/// nodes at least half full, with the internal nodes.
pub const ADAPTIVE_SAMPLE_BYTES: u64 = 64;
/// One call of a count-window breaker's ring (2 bytes, twice for capacity).
pub const BREAKER_CALL_BYTES: u64 = 4;
/// One second of a time-window breaker (a tally of three counters).
pub const BREAKER_SECOND_BYTES: u64 = 24;
/// One millisecond bucket of the chapter's retry budget (24 bytes, twice for
/// spare capacity).
pub const BUDGET_BUCKET_BYTES: u64 = 48;
/// One time-series window: its row, its CSV line and its chart points.
pub const WINDOW_BYTES: u64 = 1_024;
/// One kept transition record, without its stack name: kept in the run's
/// records and copied into the summary, with spare capacity.
pub const TRANSITION_BYTES: u64 = 3 * 64;
/// One pending event that is not a call's (a closed-loop user's wake-up, a
/// burst), with spare capacity.
pub const EVENT_BYTES: u64 = 2 * 81;
/// One kept failover record of the regions adapter, with its region and
/// fault names (the client names it recovers over are added apart).
pub const FAILOVER_RECORD_BYTES: u64 = 512;

/// One part of the estimate: where in the file it comes from, and how much.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The JSON path of the setting that sizes it (`limits.in_flight_max`,
    /// `services[0].dependencies.calls[0].policies[0].cache.keys`).
    pub path: String,
    /// Bytes, at most.
    pub bytes: u64,
}

/// The memory a scenario may need, in parts.
#[derive(Clone, Debug, Default)]
pub struct Estimate {
    /// Each part, in file order; paths may repeat.
    pub parts: Vec<Part>,
}

impl Estimate {
    fn add(&mut self, path: impl Into<String>, bytes: u64) {
        if bytes > 0 {
            self.parts.push(Part {
                path: path.into(),
                bytes,
            });
        }
    }

    /// Bytes in all.
    pub fn total_bytes(&self) -> u64 {
        self.parts
            .iter()
            .fold(0u64, |total, part| total.saturating_add(part.bytes))
    }

    /// The largest part (the first of equals), with the bytes of every part
    /// at the same path added together.
    pub fn largest(&self) -> Option<Part> {
        let mut by_path: Vec<Part> = Vec::new();
        for part in &self.parts {
            match by_path.iter_mut().find(|seen| seen.path == part.path) {
                Some(seen) => seen.bytes = seen.bytes.saturating_add(part.bytes),
                None => by_path.push(part.clone()),
            }
        }
        let mut largest: Option<Part> = None;
        for part in by_path {
            if largest.as_ref().is_none_or(|best| part.bytes > best.bytes) {
                largest = Some(part);
            }
        }
        largest
    }
}

/// Estimates the memory `scenario` may need (an upper bound; see the module
/// docs).
pub fn estimate(scenario: &Scenario) -> Estimate {
    let mut estimate = Estimate::default();
    let in_flight_max = scenario.limits.in_flight_max as u64;
    estimate.add("limits.memory_mb", BASE_BYTES);
    estimate.add(
        "limits.in_flight_max",
        in_flight_max.saturating_mul(in_flight_call_bytes()),
    );
    let mut stack_name_longest = 0u64;
    let mut breakers: Option<String> = None;
    for (index, client) in scenario.clients.iter().enumerate() {
        let path = item("clients", index);
        let name = format!("client/{}", client.name);
        stack_name_longest = stack_name_longest.max(name.len() as u64);
        estimate.add(&path, STACK_BYTES + name.len() as u64);
        stack(
            &mut estimate,
            &join(&path, "policies"),
            &client.policies,
            1,
            &mut breakers,
        );
        match &client.load {
            Load::OpenLoop { bursts, .. } => {
                estimate.add(
                    join(&join(&path, "load"), "bursts"),
                    (bursts.len() as u64).saturating_mul(EVENT_BYTES),
                );
            }
            Load::ClosedLoop { users, .. } => {
                estimate.add(
                    join(&join(&path, "load"), "users"),
                    u64::from(*users).saturating_mul(EVENT_BYTES),
                );
            }
        }
    }
    let mut flags: Option<String> = None;
    for (index, service) in scenario.services.iter().enumerate() {
        let path = item("services", index);
        let instances = u64::from(service.instances);
        estimate.add(
            join(&path, "instances"),
            instances.saturating_mul(INSTANCE_BYTES),
        );
        estimate.add(
            join(&path, "workers"),
            instances
                .saturating_mul(u64::from(service.workers).min(in_flight_max))
                .saturating_mul(LIST_ENTRY_BYTES),
        );
        estimate.add(
            join(&path, "queue_capacity"),
            instances
                .saturating_mul(u64::from(service.queue_capacity).min(in_flight_max))
                .saturating_mul(LIST_ENTRY_BYTES),
        );
        for (call_index, call) in service.dependencies.iter().enumerate() {
            let call_path = item(&join(&join(&path, "dependencies"), "calls"), call_index);
            let target = call.target_name(scenario);
            // `service/<name>[<instance>]/calls[<index>]-><target>`.
            let name = format!(
                "service/{}[{}]/calls[{call_index}]->{target}",
                service.name,
                instances.saturating_sub(1)
            );
            stack_name_longest = stack_name_longest.max(name.len() as u64);
            estimate.add(
                &call_path,
                instances.saturating_mul(STACK_BYTES + name.len() as u64),
            );
            stack(
                &mut estimate,
                &join(&call_path, "policies"),
                &call.policies,
                instances,
                &mut breakers,
            );
        }
        if !service.feature_flags.is_empty() && flags.is_none() {
            flags = Some(join(&path, "feature_flags"));
        }
    }
    let mut hung = Vec::new();
    for (index, fault) in scenario.faults.iter().enumerate() {
        if let super::Fault::Outage {
            service,
            mode: OutageMode::Hang,
            ..
        } = fault
        {
            if !hung.contains(service) {
                hung.push(*service);
                estimate.add(
                    item("faults", index),
                    in_flight_max.saturating_mul(LIST_ENTRY_BYTES),
                );
            }
        }
    }
    let span = scenario.duration + scenario.limits.drain;
    let windows = span.0.div_ceil(scenario.window.0.max(1));
    estimate.add("window_ms", windows.saturating_mul(WINDOW_BYTES));
    if let Some(topology) = &scenario.topology {
        // The regions adapter's series: per window, routed, ok and busy time
        // per region, and successful and finished requests per client (the
        // first `CLIENT_SERIES_MAX`); and its capped failover records.
        let regions = topology.regions.len() as u64;
        let clients = scenario.clients.len().min(CLIENT_SERIES_MAX) as u64;
        estimate.add(
            "topology.regions",
            windows
                .saturating_mul(regions.saturating_mul(3) + clients.saturating_mul(2))
                .saturating_mul(8),
        );
        // A record may name every client among those it recovers over.
        let names: u64 = scenario
            .clients
            .iter()
            .map(|client| 24 + client.name.len() as u64)
            .sum();
        estimate.add(
            "topology",
            (FAILOVERS_KEPT_MAX as u64).saturating_mul(FAILOVER_RECORD_BYTES + names),
        );
    }
    let transitions = TRANSITIONS_KEPT_MAX as u64 * (TRANSITION_BYTES + stack_name_longest);
    if let Some(path) = breakers {
        estimate.add(path, transitions);
    }
    if let Some(path) = flags {
        estimate.add(path, transitions);
    }
    estimate
}

/// Adds one stack's layers, `copies` times (once per instance).
fn stack(
    estimate: &mut Estimate,
    path: &str,
    policies: &[PolicySpec],
    copies: u64,
    breakers: &mut Option<String>,
) {
    for (index, policy) in policies.iter().enumerate() {
        layer(estimate, &item(path, index), policy, copies, breakers);
    }
}

fn layer(
    estimate: &mut Estimate,
    path: &str,
    policy: &PolicySpec,
    copies: u64,
    breakers: &mut Option<String>,
) {
    let mut add = |field: &str, bytes: u64| {
        let here = if field.is_empty() {
            path.to_string()
        } else {
            join(path, field)
        };
        estimate.add(here, copies.saturating_mul(bytes));
    };
    match policy {
        PolicySpec::Hystrix(config) => {
            // Its parts, each at the path of its settings.
            add("", LAYER_BYTES);
            layer(
                estimate,
                &join(path, "fallback"),
                &PolicySpec::Fallback(config.fallback.clone()),
                copies,
                breakers,
            );
            layer(
                estimate,
                &join(path, "breaker"),
                &PolicySpec::CircuitBreaker(config.breaker.clone()),
                copies,
                breakers,
            );
        }
        PolicySpec::Fallback(config) => {
            add("", LAYER_BYTES);
            if let Some(cache) = &config.cache {
                add(
                    "cache.keys",
                    u64::from(cache.keys).saturating_mul(CACHE_KEY_BYTES),
                );
            }
        }
        PolicySpec::AdaptiveTimeout(config) => {
            add("", LAYER_BYTES);
            add(
                "samples",
                u64::from(config.samples).saturating_mul(ADAPTIVE_SAMPLE_BYTES),
            );
        }
        PolicySpec::CircuitBreaker(config) => {
            add("", LAYER_BYTES);
            if breakers.is_none() {
                *breakers = Some(path.to_string());
            }
            match config {
                BreakerConfig::Chapter(_) => {}
                BreakerConfig::CountWindow(window) => add(
                    "sliding_window_size",
                    u64::from(window.sliding_window_size).saturating_mul(BREAKER_CALL_BYTES),
                ),
                BreakerConfig::TimeWindow(window) => add(
                    "sliding_window_size_s",
                    u64::from(window.sliding_window_size_s).saturating_mul(BREAKER_SECOND_BYTES),
                ),
            }
        }
        PolicySpec::Retry(config) => {
            add("", LAYER_BYTES);
            if let Some(BudgetConfig::Chapter { window_ms, .. }) = &config.budget {
                add(
                    "budget.window_ms",
                    window_ms.saturating_mul(BUDGET_BUCKET_BYTES),
                );
            }
        }
        PolicySpec::Timeout(_)
        | PolicySpec::ConnectTimeout(_)
        | PolicySpec::Bulkhead(_)
        | PolicySpec::ConcurrencyLimit(_)
        | PolicySpec::Hedge(_) => add("", LAYER_BYTES),
    }
}

/// Refuses `scenario` if its estimate exceeds `limits.memory_mb`, naming the
/// largest part.
pub fn check(scenario: &Scenario) -> Result<(), Invalid> {
    let estimate = estimate(scenario);
    let total = estimate.total_bytes();
    let budget = scenario.limits.memory_mb.saturating_mul(MIB);
    if total <= budget {
        return Ok(());
    }
    let largest = estimate.largest().expect("a total above zero has parts");
    Err(Invalid::new(
        largest.path,
        format!(
            "needs up to {} MiB of the {} MiB the scenario may need (an upper bound), more than limits.memory_mb {}; lower it, or raise limits.memory_mb (at most {})",
            largest.bytes.div_ceil(MIB),
            total.div_ceil(MIB),
            scenario.limits.memory_mb,
            super::validate::MEMORY_MB_MAX
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(json: &str) -> Scenario {
        Scenario::from_bytes("t.json", "t", json.as_bytes()).expect("valid")
    }

    const SMALL: &str = r#"{"description": "d", "duration_ms": 9000, "window_ms": 1000,
        "services": [
          {"name": "front", "instances": 3, "workers": 2, "queue_capacity": 5,
           "service_time_ms": {"kind": "constant", "value_ms": 1},
           "dependencies": {"calls": [{"service": "back", "policies": [
             {"kind": "fallback", "cache": {"keys": 1000}},
             {"kind": "retry", "budget": {"kind": "chapter", "window_ms": 2000}}]}]}},
          {"name": "back", "service_time_ms": {"kind": "constant", "value_ms": 1}}],
        "clients": [{"name": "users", "target": "front",
          "load": {"kind": "closed_loop", "users": 7, "think_time_ms": {"kind": "constant", "value_ms": 1}},
          "policies": [{"kind": "circuit_breaker", "variant": "time_window", "sliding_window_size_s": 60}]}],
        "faults": [{"kind": "outage", "service": "back", "start_ms": 1, "end_ms": 2, "mode": "hang"}],
        "limits": {"in_flight_max": 100, "drain_ms": 1000}}"#;

    fn part(estimate: &Estimate, path: &str) -> u64 {
        estimate
            .parts
            .iter()
            .filter(|part| part.path == path)
            .map(|part| part.bytes)
            .sum()
    }

    // Each part is the documented product of the scenario's sizes.
    #[test]
    fn parts_multiply_the_scenario_sizes() {
        let estimate = estimate(&scenario(SMALL));
        assert_eq!(part(&estimate, "limits.memory_mb"), BASE_BYTES);
        assert_eq!(
            part(&estimate, "limits.in_flight_max"),
            100 * in_flight_call_bytes()
        );
        let call = "services[0].dependencies.calls[0]";
        assert_eq!(
            part(&estimate, &format!("{call}.policies[0].cache.keys")),
            3 * 1_000 * CACHE_KEY_BYTES
        );
        assert_eq!(
            part(&estimate, &format!("{call}.policies[1].budget.window_ms")),
            3 * 2_000 * BUDGET_BUCKET_BYTES
        );
        assert_eq!(
            part(&estimate, &format!("{call}.policies[0]")),
            3 * LAYER_BYTES
        );
        assert_eq!(
            part(&estimate, "clients[0].policies[0].sliding_window_size_s"),
            60 * BREAKER_SECOND_BYTES
        );
        assert_eq!(
            part(&estimate, "services[0].workers"),
            3 * 2 * LIST_ENTRY_BYTES
        );
        assert_eq!(
            part(&estimate, "services[0].queue_capacity"),
            3 * 5 * LIST_ENTRY_BYTES
        );
        assert_eq!(part(&estimate, "faults[0]"), 100 * LIST_ENTRY_BYTES);
        assert_eq!(part(&estimate, "clients[0].load.users"), 7 * EVENT_BYTES);
        assert_eq!(part(&estimate, "window_ms"), 10 * WINDOW_BYTES);
        // The breaker's transitions, with the longest stack name.
        let longest = "service/front[2]/calls[0]->back".len() as u64;
        assert_eq!(
            part(&estimate, "clients[0].policies[0]"),
            LAYER_BYTES + TRANSITIONS_KEPT_MAX as u64 * (TRANSITION_BYTES + longest)
        );
        let sum: u64 = estimate.parts.iter().map(|part| part.bytes).sum();
        assert_eq!(estimate.total_bytes(), sum);
    }

    // A scenario with regions adds the regions adapter's per-window series
    // (routed, ok and busy per region; two counts per client) and its
    // capped failover records.
    #[test]
    fn regions_add_their_series_and_failover_records() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios/regions-active-active-50.json");
        let scenario = Scenario::load(&path).expect("valid");
        let topology = scenario.topology.as_ref().expect("regions");
        let span = scenario.duration + scenario.limits.drain;
        let windows = span.0.div_ceil(scenario.window.0);
        let regions = topology.regions.len() as u64;
        let clients = scenario.clients.len().min(CLIENT_SERIES_MAX) as u64;
        let estimate = estimate(&scenario);
        assert_eq!(
            part(&estimate, "topology.regions"),
            windows * (3 * regions + 2 * clients) * 8
        );
        let names: u64 = scenario
            .clients
            .iter()
            .map(|client| 24 + client.name.len() as u64)
            .sum();
        assert_eq!(
            part(&estimate, "topology"),
            FAILOVERS_KEPT_MAX as u64 * (FAILOVER_RECORD_BYTES + names)
        );
        assert!(
            std::mem::size_of::<crate::model::regions::FailoverRecord>() as u64
                <= FAILOVER_RECORD_BYTES
        );
        assert_eq!(
            part(&super::estimate(&self::scenario(SMALL)), "topology"),
            0
        );
    }

    // The largest part adds up the parts at one path and takes the first of equals.
    #[test]
    fn largest_adds_parts_at_one_path() {
        let mut estimate = Estimate::default();
        estimate.add("a", 5);
        estimate.add("b", 8);
        estimate.add("a", 4);
        estimate.add("c", 9);
        estimate.add("d", 0);
        assert_eq!(estimate.parts.len(), 4);
        assert_eq!(
            estimate.largest(),
            Some(Part {
                path: "a".to_string(),
                bytes: 9
            })
        );
        assert_eq!(estimate.total_bytes(), 26);
    }

    // The fixed constants really bound what they stand for: every layer
    // type, boxed, fits `LAYER_BYTES`; the histograms and the event queue's
    // calendar fit well in the base.
    #[test]
    fn constants_bound_what_they_stand_for() {
        let specs: Vec<PolicySpec> = serde_json::from_str(
            r#"[{"kind": "timeout", "timeout_ms": 1}, {"kind": "adaptive_timeout"},
                {"kind": "connect_timeout", "timeout_ms": 1}, {"kind": "retry"},
                {"kind": "retry", "budget": {"kind": "finagle"}},
                {"kind": "circuit_breaker"},
                {"kind": "circuit_breaker", "variant": "count_window"},
                {"kind": "circuit_breaker", "variant": "time_window"},
                {"kind": "fallback", "cache": {}}, {"kind": "bulkhead", "max_concurrent": 1},
                {"kind": "concurrency_limit", "algorithm": "gradient2"},
                {"kind": "concurrency_limit", "algorithm": "vegas"},
                {"kind": "concurrency_limit", "algorithm": "aimd"},
                {"kind": "hedge", "delay_ms": 1}, {"kind": "hystrix"}]"#,
        )
        .expect("specs");
        for spec in &specs {
            for layer in spec.build() {
                let bytes = std::mem::size_of_val(&*layer) as u64;
                assert!(bytes <= LAYER_BYTES, "{}: {bytes} bytes", layer.kind());
            }
        }
        let histogram_bytes = crate::metrics::histogram::LatencyHistogram::counts_bytes;
        assert!(histogram_bytes(3) + histogram_bytes(2) < BASE_BYTES / 8);
        const { assert!(crate::model::world::CALENDAR_BYTES < BASE_BYTES / 64) };
        assert!(2 * std::mem::size_of::<crate::engine::SimRng>() as u64 + 256 <= STACK_BYTES);
    }
}
