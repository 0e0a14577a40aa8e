//! Timeouts in a run: what `on_timeout` does to the inner call.

use crate::support::{run_summary, scenario};
use sim::metrics::summary::Summary;
use sim::scenario::Scenario;

/// A service that can serve 10 requests/s, offered 20/s, behind
/// `[timeout, circuit_breaker]` (a breaker that never trips, to count what
/// reaches it).
fn overloaded(on_timeout: &str) -> Summary {
    let scenario = scenario(&format!(
        r#"{{
        "description": "an overloaded service behind a 250 ms timeout",
        "duration_ms": 10000,
        "services": [{{ "name": "api", "workers": 1, "queue_capacity": 1000,
                        "service_time_ms": {{ "kind": "constant", "value_ms": 100 }} }}],
        "clients": [{{ "name": "c", "target": "api",
                      "load": {{ "kind": "open_loop", "arrival": "uniform", "rate": {{ "kind": "constant", "rps": 20 }} }},
                      "policies": [
                        {{ "kind": "timeout", "timeout_ms": 250, "on_timeout": "{on_timeout}" }},
                        {{ "kind": "circuit_breaker", "failure_threshold": 1000000 }}
                      ] }}]
    }}"#
    ));
    run_summary(&scenario, 1).1
}

// Abandoning (the chapter's Promise.race) leaves every timed-out attempt in
// the queue: the service serves all 199, the breaker below the timeout
// records every late answer as a success, and the backlog grows to a mean
// queue wait of 4.95 s, so all but the first 4 requests time out (the
// fourth answers at exactly 250 ms, and an answer at the deadline wins).
#[test]
fn abandoned_attempts_are_all_served_and_recorded_below() {
    let summary = overloaded("abandon");
    let api = &summary.services["api"];
    assert_eq!(
        (
            api.counters.arrivals,
            api.counters.started,
            api.counters.withdrawn
        ),
        (199, 199, 0)
    );
    assert_eq!(api.wait_ms_mean, 4_950.0);
    assert_eq!(
        (summary.requests.success, summary.requests.timeout),
        (4, 195)
    );
    let breaker = &summary.policies["client/c"][1].counters;
    assert_eq!((breaker["requests"], breaker["successes"]), (199, 199));
}

// Cancelling withdraws the timed-out attempts still queued (97 of 199), so
// the backlog stays bounded (mean wait 195 ms instead of 4.95 s), the service
// does half the work, and the breaker below never sees the cancelled calls.
// It does not raise goodput here: with a FIFO queue the calls that reach the
// worker have already waited most of their 250 ms, so they time out while
// running, and the same 4 requests succeed as when abandoning.
#[test]
fn cancelled_attempts_are_withdrawn_from_the_queue() {
    let summary = overloaded("cancel");
    let api = &summary.services["api"];
    assert_eq!(
        (
            api.counters.arrivals,
            api.counters.started,
            api.counters.withdrawn
        ),
        (199, 102, 97)
    );
    assert!(api.wait_ms_mean < 250.0);
    assert_eq!(
        (summary.requests.success, summary.requests.timeout),
        (4, 195)
    );
    let breaker = &summary.policies["client/c"][1].counters;
    assert_eq!((breaker["requests"], breaker["successes"]), (199, 4));
}

/// A scenario whose client has `policies` (JSON array text).
fn with_policies(policies: &str) -> String {
    format!(
        r#"{{
        "description": "one client with policies",
        "duration_ms": 10000,
        "services": [{{ "name": "api", "service_time_ms": {{ "kind": "constant", "value_ms": 100 }} }}],
        "clients": [{{ "name": "c", "target": "api",
                      "load": {{ "kind": "open_loop", "arrival": "uniform", "rate": {{ "kind": "constant", "rps": 10 }} }},
                      "policies": {policies} }}]
    }}"#
    )
}

// The adaptive timeout runs in a scenario: from a 1000 ms start it settles at
// min_ms (p99 100 ms × 1.5 is below 500 ms), and nothing times out.
#[test]
fn adaptive_timeout_runs_in_a_scenario() {
    let scenario = scenario(&with_policies(
        r#"[{ "kind": "adaptive_timeout", "variant": "ignore_timeouts" }]"#,
    ));
    let (_, summary) = run_summary(&scenario, 1);
    let counters = &summary.policies["client/c"][0].counters;
    assert_eq!(counters["calls"], summary.requests.issued);
    assert_eq!(counters["timeouts"], 0);
    assert_eq!(counters["recorded"], summary.requests.issued);
    assert_eq!(summary.requests.success, summary.requests.issued);
}

fn invalid(policies: &str) -> String {
    Scenario::from_bytes("x.json", "x", with_policies(policies).as_bytes())
        .map(|_| ())
        .unwrap_err()
        .to_string()
}

// connect_timeout must be innermost, and scenarios refuse it until the model
// reports connections (it would otherwise time out every attempt).
#[test]
fn connect_timeout_must_be_innermost() {
    assert_eq!(
        invalid(r#"[{ "kind": "connect_timeout", "timeout_ms": 100 }, { "kind": "retry" }]"#),
        "x.json: clients[0].policies[0]: connect_timeout must be the innermost (last) policy"
    );

    assert_eq!(
        invalid(r#"[{ "kind": "adaptive_timeout", "min_ms": 2000 }]"#),
        "x.json: clients[0].policies[0].initial_ms: must be a finite number in [2000, 10000] (got 1000)"
    );
}

// A connect timeout fails fast on attempts nobody accepts (held by a hang) and
// withdraws them, but lets accepted attempts take as long as the work does.
#[test]
fn connect_timeout_fails_unaccepted_attempts_and_spares_slow_accepted_ones() {
    let scenario = crate::support::scenario(
        r#"{
        "description": "connect timeout",
        "duration_ms": 20000,
        "services": [{ "name": "api", "workers": 100,
                       "service_time_ms": { "kind": "constant", "value_ms": 300 } }],
        "clients": [{ "name": "c", "target": "api",
                      "load": { "kind": "open_loop", "arrival": "uniform", "rate": { "kind": "constant", "rps": 50 } },
                      "policies": [{ "kind": "connect_timeout", "timeout_ms": 100 }] }],
        "faults": [{ "kind": "outage", "service": "api", "start_ms": 5000, "end_ms": 10000, "mode": "hang" }]
    }"#,
    );
    let (_, summary) = crate::support::run_summary(&scenario, 1);
    // 5 s of hang at 50 requests/s hold 250 attempts; the 5 sent in its last
    // 100 ms connect when it ends, the other 245 time out. Every other attempt
    // succeeds although each takes 300 ms, three times the connect timeout.
    assert_eq!(summary.requests.timeout, 245);
    assert_eq!(summary.requests.success, summary.requests.issued - 245);
    assert_eq!(summary.services["api"].counters.withdrawn, 245);
    let counters = &summary.policies["client/c"][0].counters;
    assert_eq!(counters["timeouts"], 245);
}

/// A client calling a service whose answer takes exactly `service_ms` plus
/// `network_ms` each way, through `policies`: one request every 100 ms, 19
/// in all (from 100 ms to 1900 ms).
fn tie_summary(policies: &str, service_ms: &str, network_ms: &str) -> Summary {
    let scenario = scenario(&format!(
        r#"{{
        "description": "an answer at the deadline",
        "duration_ms": 2000,
        "network": {{ "latency_ms": {{ "kind": "constant", "value_ms": {network_ms} }} }},
        "services": [{{ "name": "api", "workers": 100,
                       "service_time_ms": {{ "kind": "constant", "value_ms": {service_ms} }} }}],
        "clients": [{{ "name": "c", "target": "api",
                      "load": {{ "kind": "open_loop", "arrival": "uniform", "rate": {{ "kind": "constant", "rps": 10 }} }},
                      "policies": {policies} }}]
    }}"#
    ));
    run_summary(&scenario, 1).1
}

// Issue 6: an answer arriving exactly at a fixed deadline wins, as in the
// chapter's Promise.race (abandon) and, by choice, when cancelling; one
// microsecond later it is a timeout.
#[test]
fn answer_at_the_deadline_wins_for_a_fixed_timeout() {
    for on_timeout in ["abandon", "cancel"] {
        let policies = format!(
            r#"[{{ "kind": "timeout", "timeout_ms": 250, "on_timeout": "{on_timeout}" }}]"#
        );
        // 50 ms out, 150 ms of work, 50 ms back: exactly 250 ms.
        let tie = tie_summary(&policies, "150", "50");
        assert_eq!(tie.requests.issued, 19);
        assert_eq!(tie.requests.success, 19, "{on_timeout}");
        assert_eq!(tie.latency_ms.max, 250.0);
        let late = tie_summary(&policies, "150.001", "50");
        assert_eq!(late.requests.timeout, 19, "{on_timeout}");
    }
}

// The same for the adaptive timeout, both variants: the first call's
// deadline is initial_ms, and the answer at it is recorded as an answer.
#[test]
fn answer_at_the_deadline_wins_for_an_adaptive_timeout() {
    for variant in ["chapter", "ignore_timeouts"] {
        let policies = format!(
            r#"[{{ "kind": "adaptive_timeout", "variant": "{variant}", "initial_ms": 300,
                  "min_ms": 300, "max_ms": 300 }}]"#
        );
        let tie = tie_summary(&policies, "300", "0");
        assert_eq!(tie.requests.success, 19, "{variant}");
        let counters = &tie.policies["client/c"][0].counters;
        assert_eq!((counters["timeouts"], counters["recorded"]), (0, 19));
        let late = tie_summary(&policies, "300.001", "0");
        assert_eq!(late.requests.timeout, 19, "{variant}");
    }
}

// A connect timeout: an attempt accepted exactly at the deadline (the
// network takes the whole 100 ms) is connected, and then takes its time.
#[test]
fn answer_at_the_deadline_wins_for_a_connect_timeout() {
    let policies = r#"[{ "kind": "connect_timeout", "timeout_ms": 100 }]"#;
    let tie = tie_summary(policies, "500", "100");
    assert_eq!(tie.requests.success, 19);
    let counters = &tie.policies["client/c"][0].counters;
    assert_eq!((counters["connected"], counters["timeouts"]), (19, 0));
    let late = tie_summary(policies, "500", "100.001");
    assert_eq!(late.requests.timeout, 19);
}

// Hystrix (the chapter's withTimeout around the breaker): an answer at the
// deadline is a success, one microsecond later the fallback answers.
#[test]
fn answer_at_the_deadline_wins_for_hystrix() {
    let policies = r#"[{ "kind": "hystrix", "timeout_ms": 200 }]"#;
    let tie = tie_summary(policies, "200", "0");
    assert_eq!(tie.requests.success, 19);
    let late = tie_summary(policies, "200.001", "0");
    assert_eq!(late.requests.fallback, 19);
}
