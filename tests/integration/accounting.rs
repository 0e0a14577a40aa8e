//! Every request ends in exactly one outcome and the totals add up, in every
//! committed scenario and in hand-built corner cases; timers that are
//! cancelled never fire.

use crate::support::{run_summary, scenario, scenario_files};
use sim::model::RunOutput;
use sim::scenario::Scenario;
use std::collections::BTreeMap;

// Each committed scenario's outcomes add up to the requests issued, overall and per client.
#[test]
fn committed_scenarios_account_for_every_request() {
    for file in scenario_files() {
        let scenario = Scenario::load(&file).unwrap_or_else(|error| panic!("{error}"));
        let (output, summary) = run_summary(&scenario, 42);
        let name = file.display();
        assert!(summary.requests.issued > 0, "{name}: no requests");
        assert_eq!(summary.requests.total(), summary.requests.issued, "{name}");
        let per_client: u64 = summary
            .clients
            .values()
            .map(|client| client.requests.issued)
            .sum();
        assert_eq!(per_client, summary.requests.issued, "{name}");
        for (client, record) in &summary.clients {
            assert_eq!(
                record.requests.total(),
                record.requests.issued,
                "{name}: client {client}"
            );
        }
        let finished_in_windows: u64 = output.rows.iter().map(|row| row.finished()).sum();
        assert_eq!(
            finished_in_windows + summary.requests.unfinished,
            summary.requests.issued,
            "{name}: windows"
        );
        let issued_in_windows: u64 = output.rows.iter().map(|row| row.issued).sum();
        assert_eq!(
            issued_in_windows, summary.requests.issued,
            "{name}: windows"
        );
    }
}

// A response that arrives first cancels its timeout, so the timer event is never
// popped: each request costs exactly arrival, job arrival, service end and reply.
#[test]
fn answered_calls_cancel_their_timeouts() {
    let scenario = scenario(
        r#"{
        "description": "fast service, generous timeout",
        "duration_ms": 10000,
        "services": [{ "name": "api", "workers": 4, "service_time_ms": { "kind": "constant", "value_ms": 5 } }],
        "clients": [{ "name": "c", "target": "api",
                      "load": { "kind": "open_loop", "arrival": "uniform", "rate": { "kind": "constant", "rps": 100 } },
                      "policies": [{ "kind": "timeout", "timeout_ms": 50 }] }]
    }"#,
    );
    let (output, summary) = run_summary(&scenario, 1);
    assert_eq!(summary.requests.issued, 999);
    assert_eq!(summary.requests.success, 999);
    assert_eq!(output.events, 4 * 999);
    assert_eq!(summary.policies["client/c"][0].counters["timeouts"], 0);
}

// A hang with no timeout leaves requests open until the drain ends: they are
// counted as unfinished, not lost.
#[test]
fn hung_requests_without_timeouts_end_unfinished() {
    let scenario = scenario(
        r#"{
        "description": "hang with no timeout",
        "duration_ms": 10000,
        "limits": { "drain_ms": 1000 },
        "services": [{ "name": "api", "service_time_ms": { "kind": "constant", "value_ms": 1 } }],
        "clients": [{ "name": "c", "target": "api",
                      "load": { "kind": "open_loop", "arrival": "uniform", "rate": { "kind": "constant", "rps": 10 } } }],
        "faults": [{ "kind": "outage", "service": "api", "start_ms": 5000, "end_ms": 60000, "mode": "hang" }]
    }"#,
    );
    let (_, summary) = run_summary(&scenario, 1);
    assert_eq!(summary.requests.issued, 99);
    assert_eq!(summary.requests.success, 49);
    assert_eq!(summary.requests.unfinished, 50);
    assert_eq!(summary.requests.total(), summary.requests.issued);
}

// A crash resets the jobs on the instance; with one instance, calls are refused
// until it restarts, then served again.
#[test]
fn crash_resets_in_flight_work_and_restart_restores_service() {
    let scenario = scenario(
        r#"{
        "description": "crash and restart",
        "duration_ms": 10000,
        "services": [{ "name": "api", "workers": 100, "service_time_ms": { "kind": "constant", "value_ms": 500 } }],
        "clients": [{ "name": "c", "target": "api",
                      "load": { "kind": "open_loop", "arrival": "uniform", "rate": { "kind": "constant", "rps": 10 } } }],
        "faults": [{ "kind": "crash", "service": "api", "instance": 0, "at_ms": 3000, "restart_after_ms": 2000 }]
    }"#,
    );
    let (_, summary) = run_summary(&scenario, 1);
    let service = &summary.services["api"];
    // Calls issued at 2.6 s to 2.9 s are running at the crash (3.0 s is refused: the crash comes first).
    assert_eq!(service.counters.reset, 5);
    assert_eq!(service.counters.refused, 20);
    assert_eq!(summary.requests.error, 25);
    assert_eq!(summary.requests.success, 99 - 25);
}

// A slow dependency holds the caller's workers: the caller's queue fills and
// it rejects calls although its own work is fast (the cascade bulkheads prevent).
#[test]
fn slow_dependency_exhausts_the_callers_workers() {
    let scenario = scenario(
        r#"{
        "description": "cascade",
        "duration_ms": 20000,
        "services": [
            { "name": "front", "workers": 10, "queue_capacity": 10,
              "service_time_ms": { "kind": "constant", "value_ms": 1 },
              "dependencies": { "calls": [{ "service": "slow" }] } },
            { "name": "slow", "workers": 1000, "service_time_ms": { "kind": "constant", "value_ms": 10 } }
        ],
        "clients": [{ "name": "c", "target": "front",
                      "load": { "kind": "open_loop", "arrival": "uniform", "rate": { "kind": "constant", "rps": 200 } } }],
        "faults": [{ "kind": "latency", "service": "slow", "start_ms": 5000, "end_ms": 15000,
                     "added_ms": { "kind": "constant", "value_ms": 1000 } }]
    }"#,
    );
    let (_, summary) = run_summary(&scenario, 1);
    let front = &summary.services["front"];
    assert!(
        front.counters.rejected_queue_full > 1_000,
        "front rejected only {}",
        front.counters.rejected_queue_full
    );
    assert_eq!(summary.services["slow"].counters.rejected_queue_full, 0);
    assert_eq!(
        summary.requests.rejected_queue,
        front.counters.rejected_queue_full
    );
}

// Closed-loop users never have more than one request each outstanding.
#[test]
fn closed_loop_users_wait_for_their_answers() {
    let scenario = scenario(
        r#"{
        "description": "closed loop",
        "duration_ms": 10000,
        "services": [{ "name": "api", "workers": 100, "service_time_ms": { "kind": "constant", "value_ms": 100 } }],
        "clients": [{ "name": "users", "target": "api",
                      "load": { "kind": "closed_loop", "users": 10, "think_time_ms": { "kind": "constant", "value_ms": 400 } } }]
    }"#,
    );
    let (_, summary) = run_summary(&scenario, 1);
    // Each user cycles every 500 ms after its first 400 ms think: 10 users * 20 cycles.
    assert_eq!(summary.requests.issued, 200);
    assert_eq!(summary.requests.success, 200);
}

const FOUR_INSTANCES: &str = r#"{
    "description": "server-side features",
    "duration_ms": 60000,
    "services": [{ "name": "api", "instances": 4, "workers": 50, "queue_capacity": 100,
                   "service_time_ms": { "kind": "constant", "value_ms": 100 } HEALTH }],
    "clients": [{ "name": "c", "target": "api",
                  "load": { "kind": "open_loop", "arrival": "uniform", "rate": { "kind": "constant", "rps": 400 } } }],
    "faults": [FAULTS]
}"#;

fn four_instances(health: &str, faults: &str) -> sim::scenario::Scenario {
    scenario(
        &FOUR_INSTANCES
            .replace("HEALTH", health)
            .replace("FAULTS", faults),
    )
}

// Readiness probes take a crashed instance out of rotation after two failed
// probes, so only the calls of about two seconds are refused, and put it back
// after it restarts and passes its startup period.
#[test]
fn health_checks_take_a_crashed_instance_out_of_rotation() {
    let crash = r#"{ "kind": "crash", "service": "api", "instance": 1, "at_ms": 10000, "restart_after_ms": 20000 }"#;
    let checked = r#", "health_check": { "interval_ms": 1000, "unhealthy_after": 2, "healthy_after": 2, "startup_ms": 5000 }"#;
    let (_, unchecked) = run_summary(&four_instances("", crash), 1);
    let (_, checked) = run_summary(&four_instances(checked, crash), 1);
    // Without checks a quarter of 20 s of calls hit the dead instance.
    assert_eq!(unchecked.services["api"].counters.refused, 2_000);
    let refused = checked.services["api"].counters.refused;
    assert!((100..=300).contains(&refused), "refused {refused}");
    assert_eq!(checked.services["api"].counters.rotation_removals, 1);
    assert_eq!(checked.services["api"].counters.rotation_additions, 1);
    assert_eq!(checked.requests.total(), checked.requests.issued);
}

// Graceful shutdown finishes the running work; an abrupt one cuts it off.
#[test]
fn graceful_shutdown_drains_and_abrupt_shutdown_cuts() {
    let shutdown = |drain: u64| {
        format!(
            r#"{{ "kind": "shutdown", "service": "api", "instance": 0, "at_ms": 20000, "drain_timeout_ms": {drain}, "restart_after_ms": 1000 }}"#
        )
    };
    let (_, graceful) = run_summary(&four_instances("", &shutdown(30_000)), 1);
    let (_, abrupt) = run_summary(&four_instances("", &shutdown(0)), 1);
    assert_eq!(graceful.services["api"].counters.cut, 0);
    assert_eq!(graceful.requests.error, 0);
    // 100 calls/s reach each instance and each takes 100 ms: about 10 are running.
    let cut = abrupt.services["api"].counters.cut;
    assert!((8..=12).contains(&cut), "cut {cut}");
    assert_eq!(abrupt.requests.error, cut);
}

// Dropping stale work answers 503 instead of serving calls that waited too long.
#[test]
fn load_shedding_drops_calls_that_waited_too_long() {
    let json = r#"{
        "description": "overload",
        "duration_ms": 20000,
        "services": [{ "name": "api", "workers": 10, "queue_capacity": 1000,
                       "service_time_ms": { "kind": "constant", "value_ms": 100 },
                       "load_shedding": { "mode": "drop_stale", "max_queue_wait_ms": 200 } }],
        "clients": [{ "name": "c", "target": "api",
                      "load": { "kind": "open_loop", "arrival": "uniform", "rate": { "kind": "constant", "rps": 200 } } }]
    }"#;
    let (_, summary) = run_summary(&scenario(json), 1);
    let service = &summary.services["api"];
    assert!(
        service.counters.shed > 1_000,
        "shed {}",
        service.counters.shed
    );
    // Every call that started waited at most the limit.
    assert!(
        service.wait_ms_mean <= 200.0,
        "mean wait {}",
        service.wait_ms_mean
    );
    assert_eq!(summary.requests.rejected_queue, service.counters.shed);
}

// The chaos monkey fails and delays calls at its configured rates; kills happen on schedule.
#[test]
fn chaos_monkey_and_instance_kills_follow_their_rates() {
    let chaos = r#"{ "kind": "chaos_monkey", "service": "api", "start_ms": 0, "end_ms": 60000, "failure_rate": 0.1, "latency_rate": 0.2, "latency_ms": 50 },
                   { "kind": "kill_instances", "service": "api", "start_ms": 0, "end_ms": 60000, "interval_ms": 10000, "probability": 1.0, "restart_after_ms": 1000 }"#;
    let (_, summary) = run_summary(&four_instances("", chaos), 1);
    let service = &summary.services["api"];
    let started = service.counters.started as f64;
    let failure_rate = service.counters.chaos_failures as f64 / started;
    let delay_rate = service.counters.chaos_delays as f64 / started;
    assert!(
        (failure_rate - 0.1).abs() < 0.01,
        "failure rate {failure_rate}"
    );
    assert!((delay_rate - 0.2).abs() < 0.01, "delay rate {delay_rate}");
    // Draws at 10, 20, 30, 40 and 50 s.
    assert_eq!(service.counters.kills, 5);
    assert_eq!(summary.requests.total(), summary.requests.issued);
}

/// The counters of layer `index` of the stack named `stack`.
fn layer_counters(output: &RunOutput, stack: &str, index: usize) -> BTreeMap<&'static str, u64> {
    let report = output
        .policies
        .iter()
        .find(|report| report.name == stack)
        .unwrap_or_else(|| panic!("no stack {stack}"));
    report.layers[index].1.iter().copied().collect()
}

// A client bulkhead is the bottleneck: calls beyond its slots wait in its
// queue, not the service's, the excess is rejected, and every call is counted.
#[test]
fn client_bulkhead_queues_and_rejects_the_excess() {
    let scenario = scenario(
        r#"{
        "description": "bulkhead of 2 slots in front of a roomy service",
        "duration_ms": 10000,
        "services": [{ "name": "api", "workers": 100, "service_time_ms": { "kind": "constant", "value_ms": 50 } }],
        "clients": [{ "name": "c", "target": "api",
                      "load": { "kind": "open_loop", "arrival": "uniform", "rate": { "kind": "constant", "rps": 100 } },
                      "policies": [{ "kind": "bulkhead", "max_concurrent": 2, "max_queue": 3 }] }]
    }"#,
    );
    let (output, summary) = run_summary(&scenario, 1);
    let counters = layer_counters(&output, "client/c", 0);
    assert_eq!(counters["offered"], summary.requests.issued);
    assert_eq!(counters["rejected"], summary.requests.rejected_bulkhead);
    assert_eq!(counters["executed"], summary.requests.success);
    assert_eq!(
        counters["executed"],
        summary.services["api"].counters.started
    );
    assert_eq!(
        summary.requests.success + summary.requests.rejected_bulkhead,
        summary.requests.issued
    );
    // Two slots of 50 ms serve 40 calls a second.
    assert!(
        (398..=404).contains(&counters["executed"]),
        "executed {}",
        counters["executed"]
    );
    assert_eq!(summary.services["api"].wait_probability, 0.0);
}

// The chapter's bulkhead keeps a call whose caller timed out (an abandoned
// call) in its queue and runs it later: every call reaches the service,
// although every caller got a timeout.
#[test]
fn abandoned_calls_waiting_in_a_bulkhead_still_run() {
    let scenario = scenario(
        r#"{
        "description": "timeout around a one-slot bulkhead",
        "duration_ms": 1000,
        "services": [{ "name": "api", "workers": 100, "service_time_ms": { "kind": "constant", "value_ms": 50 } }],
        "clients": [{ "name": "c", "target": "api",
                      "load": { "kind": "open_loop", "arrival": "uniform", "rate": { "kind": "constant", "rps": 40 } },
                      "policies": [{ "kind": "timeout", "timeout_ms": 30 },
                                   { "kind": "bulkhead", "max_concurrent": 1, "max_queue": 100 }] }]
    }"#,
    );
    let (output, summary) = run_summary(&scenario, 1);
    assert!(summary.requests.issued > 30);
    assert_eq!(summary.requests.timeout, summary.requests.issued);
    assert_eq!(
        summary.services["api"].counters.started,
        summary.requests.issued
    );
    let counters = layer_counters(&output, "client/c", 1);
    assert_eq!(counters["executed"], summary.requests.issued);
    assert_eq!(counters["queued"], summary.requests.issued - 1);
}

// Found by `fuzz_scenarios_briefly`: a hedge whose attempts go through two
// one-slot bulkheads. When the outer bulkhead hands its slot to a waiting
// attempt, that attempt's inner bulkhead call is created, and the hedge can
// cancel it within the same event, before its start comes up. The inner
// bulkhead never saw that call; cancelling it used to release a slot it did
// not hold (a debug assertion, and `cancelled_running` counted in release).
// A layer now hears `on_cancel` only for calls it started.
#[test]
fn a_call_cancelled_before_it_started_is_not_cancelled_in_its_layer() {
    let scenario = scenario(
        r#"{
        "description": "hedge over two one-slot bulkheads",
        "duration_ms": 10000,
        "network": { "latency_ms": { "kind": "exponential", "mean_ms": 5.35206590477033 } },
        "services": [{ "name": "s0", "workers": 1, "queue_capacity": 0,
                       "service_time_ms": { "kind": "constant", "value_ms": 0 } }],
        "clients": [{ "name": "c0", "target": "s0",
                      "load": { "kind": "closed_loop", "users": 13,
                                "think_time_ms": { "kind": "exponential", "mean_ms": 50 } },
                      "policies": [{ "kind": "hedge", "attempts_max": 2, "delay_ms": 17.511557316782092 },
                                   { "kind": "bulkhead", "max_concurrent": 1, "max_queue": 1 },
                                   { "kind": "bulkhead", "max_concurrent": 1, "max_queue": 2 }] }]
    }"#,
    );
    let (output, summary) = run_summary(&scenario, 0);
    assert_eq!(summary.requests.total(), summary.requests.issued);
    for index in [1, 2] {
        let counters = layer_counters(&output, "client/c0", index);
        // Every offered call ran, was rejected, or left the queue; only a
        // call that ran can be cancelled while running.
        assert_eq!(
            counters["offered"],
            counters["executed"] + counters["rejected"] + counters["cancelled_queued"],
            "bulkhead {index}: {counters:?}"
        );
        assert!(
            counters["cancelled_running"] <= counters["executed"],
            "bulkhead {index}: {counters:?}"
        );
    }
    // The hedge cancelled attempts that held the outer slot (80 at this
    // seed), each before its inner call started: the inner bulkhead counts
    // no cancellation (it used to count 80 calls it never ran).
    assert!(layer_counters(&output, "client/c0", 1)["cancelled_running"] > 0);
    assert_eq!(
        layer_counters(&output, "client/c0", 2)["cancelled_running"],
        0
    );
}

// An AIMD limit in front of a service that sheds load (no queue) backs off
// on the service's queue_full replies: most of the excess is rejected on the
// client side before it reaches the service, and every call is counted.
#[test]
fn adaptive_limit_backs_off_when_the_service_sheds_load() {
    let json = |policies: &str| {
        format!(
            r#"{{
            "description": "five workers, no queue, twenty calls in flight offered",
            "duration_ms": 2000,
            "services": [{{ "name": "api", "workers": 5, "queue_capacity": 0,
                            "service_time_ms": {{ "kind": "constant", "value_ms": 20 }} }}],
            "clients": [{{ "name": "c", "target": "api",
                          "load": {{ "kind": "open_loop", "arrival": "uniform", "rate": {{ "kind": "constant", "rps": 1000 }} }},
                          "policies": {policies} }}]
        }}"#
        )
    };
    let (_, unlimited) = run_summary(&scenario(&json("[]")), 1);
    let limited_scenario = scenario(&json(
        r#"[{ "kind": "concurrency_limit", "algorithm": "aimd", "initial_limit": 20 }]"#,
    ));
    let (output, limited) = run_summary(&limited_scenario, 1);
    let counters = layer_counters(&output, "client/c", 0);
    assert_eq!(counters["offered"], limited.requests.issued);
    assert_eq!(counters["rejected"], limited.requests.rejected_bulkhead);
    assert_eq!(counters["successes"], limited.requests.success);
    assert_eq!(counters["drops"], limited.requests.rejected_queue);
    assert!(counters["limit_decreases"] > 0);
    // AIMD keeps probing above the service's five workers, so some calls
    // still meet a full service; most of the excess never leaves the client.
    assert!(limited.requests.rejected_bulkhead > limited.requests.rejected_queue);
    assert!(
        limited.requests.rejected_queue * 2 < unlimited.requests.rejected_queue,
        "queue_full with the limit {}, without {}",
        limited.requests.rejected_queue,
        unlimited.requests.rejected_queue
    );
    // The service's five workers stay the bottleneck: throughput is unchanged.
    assert!(limited.requests.success * 100 >= unlimited.requests.success * 95);
}

// With `max_wait_ms`, a call that waits too long for a bulkhead slot is
// rejected instead of waiting for ever (Resilience4j's maxWaitDuration).
#[test]
fn bulkhead_max_wait_rejects_calls_that_wait_too_long() {
    let json = |max_wait: &str| {
        format!(
            r#"{{
        "description": "bulkhead wait",
        "duration_ms": 10000,
        "services": [{{ "name": "api", "workers": 100, "service_time_ms": {{ "kind": "constant", "value_ms": 100 }} }}],
        "clients": [{{ "name": "c", "target": "api",
                      "load": {{ "kind": "open_loop", "arrival": "uniform", "rate": {{ "kind": "constant", "rps": 20 }} }},
                      "policies": [{{ "kind": "bulkhead", "max_concurrent": 1, "max_queue": 1000 {max_wait} }}] }}]
    }}"#
        )
    };
    let (_, patient) = run_summary(&scenario(&json("")), 1);
    let (_, impatient) = run_summary(&scenario(&json(r#", "max_wait_ms": 150"#)), 1);
    // One slot, 100 ms per call, 20 calls/s: the queue grows without bound.
    assert_eq!(patient.requests.rejected_bulkhead, 0);
    assert!(patient.latency_ms.max > 4_000.0);
    assert!(
        impatient.requests.rejected_bulkhead > 50,
        "{}",
        impatient.requests.rejected_bulkhead
    );
    assert!(
        impatient.latency_ms.max <= 300.0,
        "{}",
        impatient.latency_ms.max
    );
    let counters = &impatient.policies["client/c"][0].counters;
    assert_eq!(
        counters["waited_too_long"],
        impatient.requests.rejected_bulkhead
    );
    assert_eq!(impatient.requests.total(), impatient.requests.issued);
}
