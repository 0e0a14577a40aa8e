//! Bounded time (issue 6): the worst cases a scenario can ask for, run at
//! full size. Wall time is bounded by (events + arrivals) × a constant, so
//! each of these finishes at once or is refused up front; a regression would
//! hang the suite visibly rather than fail a timed assertion. The work itself
//! is counted beside the code (`model::arrivals` iterations,
//! `policy::rank_window` moves).

use crate::support::{run_summary, scenario, Sim};
use sim::scenario::Scenario;

const SPIKE: &str = "tests/fixtures/bounded/spike-at-the-end-of-30-days.json";

// A 30-day scenario whose only traffic is a 1 ms spike to 10,000,000/s at
// the very end used to thin at the peak rate for about 17 hours before its
// first event; now it runs its 10,000 requests and nothing else.
#[test]
fn regression_spike_at_the_end_of_30_days_runs_only_its_arrivals() {
    let scenario = Scenario::load(std::path::Path::new(SPIKE)).expect("valid");
    let (output, summary) = run_summary(&scenario, 42);
    let requests = summary.requests.issued;
    // Poisson with mean 10,000: five standard deviations.
    assert!((9_500..=10_500).contains(&requests), "{requests} requests");
    assert_eq!(summary.requests.unfinished, 0);
    // Every event belongs to a request (arrival, network, service, reply):
    // the 30 idle days cost none.
    assert!(output.events <= 8 * requests, "{} events", output.events);
}

// The same scenario under `--events-max 1000` used to spin just the same
// (the thinning was not counted as events); the flag now stands in for
// limits.events_max in the budget check, which refuses it before the run.
#[test]
fn regression_spike_at_the_end_of_30_days_is_refused_under_a_small_event_limit() {
    Sim::new()
        .args(["run", SPIKE, "--events-max", "1000", "--no-charts"])
        .args(["--out", "/nonexistent/never-written"])
        .code(2)
        .stderr(&format!("error: {SPIKE}: duration_ms: is too long to simulate within --events-max 1000: about 10000 requests need at least 40000 events; shorten duration_ms, lower the rates or raise --events-max\n"))
        .run();
}

// 1,000 uniform clients at rate zero for 30 days used to step through the
// zero rate 1 ms at a time (about 3 hours); now they issue nothing at once.
#[test]
fn regression_uniform_clients_idle_for_30_days_finish_at_once() {
    let clients: Vec<String> = (0..1_000)
        .map(|index| {
            format!(
                r#"{{ "name": "idle-{index}", "target": "api",
                     "load": {{ "kind": "open_loop", "arrival": "uniform",
                               "rate": {{ "kind": "constant", "rps": 0 }} }} }}"#
            )
        })
        .collect();
    let json = format!(
        r#"{{
        "description": "1000 idle uniform clients for 30 days",
        "duration_ms": 2592000000,
        "window_ms": 86400000,
        "services": [{{ "name": "api", "instances": 1, "workers": 1,
                       "service_time_ms": {{ "kind": "constant", "value_ms": 1 }} }}],
        "clients": [{}]
    }}"#,
        clients.join(",")
    );
    let (output, summary) = run_summary(&scenario(&json), 1);
    assert_eq!(summary.requests.issued, 0);
    assert_eq!(output.events, 0);
}

// 16 nested adaptive timeouts of 10,000 samples each used to re-sort their
// windows on every call (12k events/s); with an order-statistics window each
// call costs O(log n). 40,000 requests fill every window four times over.
#[test]
fn regression_sixteen_adaptive_timeouts_of_10000_samples_stay_fast() {
    let layers: Vec<&str> =
        vec![r#"{ "kind": "adaptive_timeout", "samples": 10000, "max_ms": 60000 }"#; 16];
    let json = format!(
        r#"{{
        "description": "16 adaptive timeouts with full windows",
        "duration_ms": 20000,
        "window_ms": 1000,
        "services": [{{ "name": "api", "instances": 4, "workers": 100, "queue_capacity": 100000,
                       "service_time_ms": {{ "kind": "lognormal", "median_ms": 5, "sigma": 0.5 }} }}],
        "clients": [{{ "name": "users", "target": "api",
                      "load": {{ "kind": "open_loop", "rate": {{ "kind": "constant", "rps": 2000 }} }},
                      "policies": [{}] }}]
    }}"#,
        layers.join(",")
    );
    let (output, summary) = run_summary(&scenario(&json), 3);
    let requests = summary.requests.issued;
    assert!(requests > 38_000, "{requests} requests");
    assert_eq!(summary.requests.success, requests);
    let stack = &output.policies[0];
    assert_eq!(stack.layers.len(), 16);
    for (kind, counters) in &stack.layers {
        assert_eq!(*kind, "adaptive_timeout");
        assert!(counters.contains(&("recorded", requests)), "{counters:?}");
    }
}
