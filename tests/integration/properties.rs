//! Properties over random scenarios: whatever the topology, policies and
//! faults, a run finishes, every request has exactly one outcome, and the same
//! seed gives the same summary.

use crate::support::run_summary;
use proptest::prelude::*;
use serde_json::{json, Value};
use sim::report::summary_json;
use sim::scenario::Scenario;

pub(crate) fn distribution() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0.0f64..50.0).prop_map(|value| json!({"kind": "constant", "value_ms": value})),
        (0.1f64..50.0).prop_map(|mean| json!({"kind": "exponential", "mean_ms": mean})),
        (0.1f64..50.0, 0.0f64..1.5).prop_map(
            |(median, sigma)| json!({"kind": "lognormal", "median_ms": median, "sigma": sigma})
        ),
        (0.0f64..20.0, 0.0f64..40.0).prop_map(
            |(low, extra)| json!({"kind": "uniform", "min_ms": low, "max_ms": low + extra})
        ),
    ]
}

pub(crate) fn policy() -> impl Strategy<Value = Value> {
    let jitter = prop_oneof![
        Just("none"),
        Just("full"),
        Just("equal"),
        Just("decorrelated")
    ];
    prop_oneof![
        (1.0f64..500.0).prop_map(|timeout| json!({"kind": "timeout", "timeout_ms": timeout})),
        (1u32..5, 1.0f64..200.0, jitter).prop_map(|(attempts, initial, jitter)| json!({
            "kind": "retry", "attempts_max": attempts,
            "backoff": {"kind": "exponential", "initial_ms": initial, "max_ms": initial * 8.0, "jitter": jitter}
        })),
        (1u32..5, 1u32..3, 0u64..3_000).prop_map(|(failures, successes, open)| json!({
            "kind": "circuit_breaker", "failure_threshold": failures, "success_threshold": successes, "open_timeout_ms": open
        })),
        (any::<bool>(), 1u32..20, 1u32..=100, 1u32..5, 1u64..3_000, 0u64..2_000, 1u64..500).prop_map(
            |(count, size, threshold, permitted, wait, max_wait, slow)| {
                let (variant, window) = if count {
                    ("count_window", "sliding_window_size")
                } else {
                    ("time_window", "sliding_window_size_s")
                };
                json!({
                    "kind": "circuit_breaker", "variant": variant, window: size,
                    "failure_rate_threshold": threshold, "slow_call_rate_threshold": 50,
                    "slow_call_duration_ms": slow, "minimum_number_of_calls": size,
                    "permitted_calls_in_half_open": permitted, "wait_duration_in_open_ms": wait,
                    "max_wait_in_half_open_ms": max_wait
                })
            }
        ),
        Just(json!({"kind": "fallback"})),
        (1u32..4, 0u32..4).prop_map(|(slots, queue)| json!({
            "kind": "bulkhead", "max_concurrent": slots, "max_queue": queue
        })),
        (1u32..5, prop_oneof![Just("aimd"), Just("gradient2"), Just("vegas")]).prop_map(|(initial, algorithm)| json!({
            "kind": "concurrency_limit", "algorithm": algorithm, "initial_limit": initial, "min_limit": 1
        })),
        (1u32..4, 0.0f64..50.0).prop_map(|(attempts, delay)| json!({
            "kind": "hedge", "delay_ms": delay, "attempts_max": attempts
        })),
        (1u32..5, budget()).prop_map(|(attempts, budget)| json!({
            "kind": "retry", "attempts_max": attempts,
            "backoff": {"kind": "fixed", "delay_ms": 20}, "budget": budget
        })),
    ]
}

fn budget() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0.0f64..=1.0, 1u64..5_000).prop_map(|(ratio, window)| json!({"kind": "chapter", "ratio": ratio, "window_ms": window})),
        (0.001f64..20.0, 0.001f64..2.0).prop_map(|(max, ratio)| json!({"kind": "token_bucket", "max_tokens": max, "token_ratio": ratio})),
        (1_000u64..=60_000, 0u32..20, 0.0f64..2.0).prop_map(|(ttl, min, percent)| json!({
            "kind": "finagle", "ttl_ms": ttl, "min_retries_per_second": min, "percent_can_retry": percent
        })),
    ]
}

fn fault(services: usize) -> impl Strategy<Value = Value> {
    let service = 0..services;
    let window = (0u64..8_000, 1u64..6_000);
    prop_oneof![
        (service.clone(), window.clone(), any::<bool>()).prop_map(|(service, (start, length), hang)| json!({
            "kind": "outage", "service": format!("s{service}"), "start_ms": start, "end_ms": start + length,
            "mode": if hang { "hang" } else { "fail_fast" }
        })),
        (service.clone(), window.clone(), 0.0f64..=1.0).prop_map(|(service, (start, length), probability)| json!({
            "kind": "error_rate", "service": format!("s{service}"), "start_ms": start, "end_ms": start + length, "probability": probability
        })),
        (service.clone(), window, distribution()).prop_map(|(service, (start, length), added)| json!({
            "kind": "latency", "service": format!("s{service}"), "start_ms": start, "end_ms": start + length, "added_ms": added
        })),
        (service.clone(), 0u64..8_000, 1u64..3_000).prop_map(|(service, at, restart)| json!({
            "kind": "crash", "service": format!("s{service}"), "instance": 0, "at_ms": at, "restart_after_ms": restart
        })),
        (service.clone(), 0u64..8_000, 0u64..3_000, proptest::option::of(1u64..3_000)).prop_map(|(service, at, drain, restart)| json!({
            "kind": "shutdown", "service": format!("s{service}"), "instance": 0, "at_ms": at, "drain_timeout_ms": drain, "restart_after_ms": restart
        })),
        (service.clone(), 0u64..8_000, 0.0f64..0.5, 0.0f64..0.5).prop_map(|(service, start, failure, latency)| json!({
            "kind": "chaos_monkey", "service": format!("s{service}"), "start_ms": start, "end_ms": start + 2_000,
            "failure_rate": failure, "latency_rate": latency, "latency_ms": 200
        })),
        (service, 0u64..8_000, 100u64..2_000).prop_map(|(service, start, interval)| json!({
            "kind": "kill_instances", "service": format!("s{service}"), "start_ms": start, "end_ms": start + 4_000,
            "interval_ms": interval, "probability": 0.5, "restart_after_ms": 500
        })),
    ]
}

prop_compose! {
    pub(crate) fn scenario_json()(services in 1usize..4)(
        services in Just(services),
        service_times in proptest::collection::vec(distribution(), services),
        shapes in proptest::collection::vec((1u32..3, 1u32..8, 0u32..20, any::<bool>(), 0.0f64..0.3, any::<bool>()), services),
        dependency_policies in proptest::collection::vec(proptest::collection::vec(policy(), 0..3), services),
        clients in proptest::collection::vec((0usize..3, 1.0f64..150.0, proptest::collection::vec(policy(), 0..4), any::<bool>()), 1..3),
        faults in proptest::collection::vec(fault(services), 0..4),
        bursts in proptest::collection::vec((0u64..9_000, 1u32..200), 0..2),
        server_side in proptest::collection::vec((any::<bool>(), 0u64..3_000, proptest::option::of(1u32..10), proptest::option::of((any::<bool>(), 1u64..500))), services),
    ) -> Value {
        let services_json: Vec<Value> = (0..services).map(|index| {
            let (instances, workers, queue, least, errors, parallel) = shapes[index];
            let mut service = json!({
                "name": format!("s{index}"), "instances": instances, "workers": workers, "queue_capacity": queue,
                "load_balancer": if least { "least_outstanding" } else { "round_robin" },
                "service_time_ms": service_times[index], "error_probability": errors
            });
            let (checked, startup, queue_max, shedding) = server_side[index];
            if checked {
                service["health_check"] = json!({
                    "interval_ms": 200, "startup_ms": startup, "readiness_queue_max": queue_max,
                    "liveness": {"restart_after_failures": 2, "restart_ms": 300}
                });
            }
            if let Some((stale, wait)) = shedding {
                service["load_shedding"] = json!({"mode": if stale { "drop_stale" } else { "reject_predicted" }, "max_queue_wait_ms": wait});
            }
            // Only later services are called, so there is never a cycle.
            if index + 1 < services {
                service["dependencies"] = json!({
                    "mode": if parallel { "parallel" } else { "sequential" },
                    "calls": [{ "service": format!("s{}", index + 1), "policies": dependency_policies[index] }]
                });
            }
            service
        }).collect();
        let clients_json: Vec<Value> = clients.iter().enumerate().map(|(index, (target, rps, policies, closed))| {
            let load = if *closed {
                json!({"kind": "closed_loop", "users": (*rps as u32 / 10).max(1), "think_time_ms": {"kind": "exponential", "mean_ms": 50}})
            } else {
                let bursts: Vec<Value> = bursts.iter().map(|(at, count)| json!({"at_ms": at, "count": count})).collect();
                json!({"kind": "open_loop", "rate": {"kind": "constant", "rps": rps}, "bursts": bursts})
            };
            json!({"name": format!("c{index}"), "target": format!("s{}", target % services), "load": load, "policies": policies})
        }).collect();
        json!({
            "description": "random", "duration_ms": 10_000, "window_ms": 500,
            "limits": {"drain_ms": 5_000},
            "network": {"latency_ms": {"kind": "exponential", "mean_ms": 1}},
            "services": services_json, "clients": clients_json, "faults": faults
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    // Any valid scenario runs to the end, every request ends in exactly one
    // outcome, and running it again gives the same summary bytes.
    #[test]
    fn random_scenarios_account_for_every_request_deterministically(json in scenario_json(), seed in any::<u64>()) {
        let text = serde_json::to_string(&json).unwrap();
        let scenario = Scenario::from_bytes("random.json", "random", text.as_bytes())
            .map_err(|error| TestCaseError::fail(format!("{error}\n{text}")))?;
        let (output, summary) = run_summary(&scenario, seed);
        prop_assert_eq!(summary.requests.total(), summary.requests.issued);
        for client in summary.clients.values() {
            prop_assert_eq!(client.requests.total(), client.requests.issued);
        }
        let windows: u64 = output.rows.iter().map(|row| row.finished()).sum();
        prop_assert_eq!(windows + summary.requests.unfinished, summary.requests.issued);
        let (_, again) = run_summary(&scenario, seed);
        prop_assert_eq!(summary_json(&summary).unwrap(), summary_json(&again).unwrap());
    }
}
