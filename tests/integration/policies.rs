//! Retry budgets and hedging run through the whole model: the policy stack,
//! the transport, the service's queue and the cancellation of attempts.

use crate::support::{run_summary, scenario};
use sim::metrics::summary::Summary;
use sim::scenario::Scenario;

/// The counters of layer `index` of client `client`'s stack.
fn counter(summary: &Summary, client: &str, index: usize, name: &str) -> u64 {
    let layer = &summary.policies[&format!("client/{client}")][index];
    *layer
        .counters
        .get(name)
        .unwrap_or_else(|| panic!("{} has no counter {name}", layer.kind))
}

/// One always-failing service behind a client with `policies`: 100 requests
/// per second for 10 s, evenly spaced.
fn failing_service(policies: &str) -> Scenario {
    scenario(&format!(
        r#"{{
        "description": "every call fails with a retryable error",
        "duration_ms": 10000,
        "services": [{{ "name": "api", "workers": 50, "queue_capacity": 1000,
                        "service_time_ms": {{ "kind": "constant", "value_ms": 2 }},
                        "error_probability": 1.0 }}],
        "clients": [{{ "name": "c", "target": "api",
                      "load": {{ "kind": "open_loop", "arrival": "uniform", "rate": {{ "kind": "constant", "rps": 100 }} }},
                      "policies": {policies} }}]
    }}"#
    ))
}

// A client error (4xx) goes up the stack at once: the retry layer never retries it.
#[test]
fn client_errors_are_not_retried_through_the_whole_stack() {
    let scenario = scenario(
        r#"{
        "description": "every call is a client error",
        "duration_ms": 5000,
        "services": [{ "name": "api", "service_time_ms": { "kind": "constant", "value_ms": 2 },
                       "client_error_probability": 1.0 }],
        "clients": [{ "name": "c", "target": "api",
                      "load": { "kind": "open_loop", "arrival": "uniform", "rate": { "kind": "constant", "rps": 100 } },
                      "policies": [{ "kind": "retry", "attempts_max": 5,
                                     "backoff": { "kind": "fixed", "delay_ms": 10 },
                                     "budget": { "kind": "token_bucket" } },
                                   { "kind": "timeout", "timeout_ms": 100 }] }]
    }"#,
    );
    let (_, summary) = run_summary(&scenario, 7);
    assert!(summary.requests.issued > 0);
    assert_eq!(summary.requests.error, summary.requests.issued);
    assert_eq!(summary.client_attempts, summary.requests.issued);
    assert_eq!(counter(&summary, "c", 0, "retries"), 0);
    assert_eq!(counter(&summary, "c", 0, "exhausted"), 0);
    assert_eq!(counter(&summary, "c", 0, "budget_exhausted"), 0);
}

// Without a budget every failing call makes attempts_max attempts.
#[test]
fn without_a_budget_every_failure_is_retried() {
    let (_, summary) = run_summary(
        &failing_service(
            r#"[{ "kind": "retry", "attempts_max": 4, "backoff": { "kind": "fixed", "delay_ms": 10 } }]"#,
        ),
        1,
    );
    let calls = counter(&summary, "c", 0, "calls");
    assert_eq!(counter(&summary, "c", 0, "retries"), 3 * calls);
    assert_eq!(summary.client_attempts, 4 * calls);
}

// The chapter's budget holds retries near 10% of requests during a total
// outage: at most one retry over the ratio per 1 s window.
#[test]
fn chapter_budget_caps_retries_during_an_outage() {
    let (_, summary) = run_summary(
        &failing_service(
            r#"[{ "kind": "retry", "attempts_max": 4, "backoff": { "kind": "fixed", "delay_ms": 10 },
                  "budget": { "kind": "chapter", "ratio": 0.1, "window_ms": 1000 } }]"#,
        ),
        1,
    );
    let calls = counter(&summary, "c", 0, "calls");
    let retries = counter(&summary, "c", 0, "retries");
    assert!(retries > 0);
    assert!(
        retries <= calls / 10 + 11,
        "{retries} retries for {calls} calls"
    );
    assert_eq!(
        counter(&summary, "c", 0, "exhausted") + counter(&summary, "c", 0, "budget_exhausted"),
        calls
    );
    assert_eq!(summary.client_attempts, calls + retries);
}

// gRPC's throttle with no successes allows only its burst: tokens go 10, 9, ...,
// and retries stop once a failure leaves 5 or fewer.
#[test]
fn token_bucket_allows_only_its_burst_when_nothing_succeeds() {
    let (_, summary) = run_summary(
        &failing_service(
            r#"[{ "kind": "retry", "attempts_max": 4, "backoff": { "kind": "fixed", "delay_ms": 10 },
                  "budget": { "kind": "token_bucket", "max_tokens": 10, "token_ratio": 0.1 } }]"#,
        ),
        1,
    );
    let calls = counter(&summary, "c", 0, "calls");
    // The first four failures leave 9, 8, 7 and 6 tokens and all have attempts
    // left, so they are retried; every later failure leaves 5 or fewer.
    assert_eq!(counter(&summary, "c", 0, "retries"), 4);
    assert_eq!(
        counter(&summary, "c", 0, "exhausted") + counter(&summary, "c", 0, "budget_exhausted"),
        calls
    );
}

// Finagle's budget during a total outage: the reserve (10 per second over a
// 10 s ttl) plus 20% of the requests.
#[test]
fn finagle_budget_allows_its_reserve_and_percentage() {
    let (_, summary) = run_summary(
        &failing_service(
            r#"[{ "kind": "retry", "attempts_max": 4, "backoff": { "kind": "fixed", "delay_ms": 10 },
                  "budget": { "kind": "finagle" } }]"#,
        ),
        1,
    );
    let calls = counter(&summary, "c", 0, "calls");
    let retries = counter(&summary, "c", 0, "retries");
    assert!(retries >= 100, "the reserve alone allows 100: {retries}");
    assert!(
        retries <= calls / 5 + 100,
        "{retries} retries for {calls} calls"
    );
}

// Ten requests at once on a single worker: the ten first attempts queue, the
// ten hedges queue behind them 5 ms later. Each first attempt's answer cancels
// its hedge, still waiting, which is withdrawn from the queue; only the last
// hedge, which the worker takes the moment the last first attempt ends (before
// its answer reaches the caller), runs unobserved.
#[test]
fn cancelled_hedges_still_queued_are_withdrawn() {
    let scenario = scenario(
        r#"{
        "description": "a burst of ten on one worker, hedged after 5 ms",
        "duration_ms": 1000,
        "services": [{ "name": "api", "workers": 1, "queue_capacity": 100,
                       "service_time_ms": { "kind": "constant", "value_ms": 30 } }],
        "clients": [{ "name": "c", "target": "api",
                      "load": { "kind": "open_loop", "rate": { "kind": "constant", "rps": 0 },
                                "bursts": [{ "at_ms": 0, "count": 10 }] },
                      "policies": [{ "kind": "hedge", "delay_ms": 5, "attempts_max": 2 }] }]
    }"#,
    );
    let (_, summary) = run_summary(&scenario, 3);
    let api = &summary.services["api"];
    assert_eq!(summary.requests.issued, 10);
    assert_eq!(summary.requests.success, 10);
    assert_eq!(counter(&summary, "c", 0, "hedges"), 10);
    assert_eq!(counter(&summary, "c", 0, "cancelled_losers"), 10);
    assert_eq!(api.counters.arrivals, 20);
    assert_eq!(api.counters.withdrawn, 9);
    assert_eq!(api.counters.started, 11);
}

// With slow answers from a lognormal tail, hedges go out, some win, every
// request ends once, and no call sends more than attempts_max attempts.
#[test]
fn hedging_a_slow_tail_sends_at_most_attempts_max_per_call() {
    let scenario = scenario(
        r#"{
        "description": "a long-tailed service hedged after 20 ms",
        "duration_ms": 5000,
        "services": [{ "name": "api", "instances": 2, "workers": 200, "queue_capacity": 1000,
                       "service_time_ms": { "kind": "lognormal", "median_ms": 10, "sigma": 1.0 },
                       "error_probability": 0.05 }],
        "clients": [{ "name": "c", "target": "api",
                      "load": { "kind": "open_loop", "rate": { "kind": "constant", "rps": 200 } },
                      "policies": [{ "kind": "hedge", "delay_ms": 20, "attempts_max": 3 }] }]
    }"#,
    );
    let (_, summary) = run_summary(&scenario, 11);
    let issued = summary.requests.issued;
    let hedges = counter(&summary, "c", 0, "hedges");
    assert_eq!(counter(&summary, "c", 0, "calls"), issued);
    assert_eq!(summary.requests.unfinished, 0);
    assert_eq!(
        summary.requests.success + summary.requests.error,
        summary.requests.issued
    );
    assert!(hedges > 0);
    assert_eq!(summary.client_attempts, issued + hedges);
    assert!(summary.client_attempts <= 3 * issued);
    assert!(counter(&summary, "c", 0, "cancelled_losers") > 0);
    // The model says which attempt answered: every win is attributed, and a
    // slow tail is exactly what hedges win.
    assert_eq!(counter(&summary, "c", 0, "wins_unattributed"), 0);
    assert!(counter(&summary, "c", 0, "hedge_wins") > 0);
}

// Budget and hedge errors name the JSON path of the field.
#[test]
fn budget_and_hedge_errors_name_the_json_path() {
    let error = |policies: &str| {
        let text = format!(
            r#"{{ "description": "d", "duration_ms": 1000,
                 "services": [{{ "name": "api", "service_time_ms": {{ "kind": "constant", "value_ms": 1 }} }}],
                 "clients": [{{ "name": "c", "target": "api",
                               "load": {{ "kind": "open_loop", "rate": {{ "kind": "constant", "rps": 1 }} }},
                               "policies": {policies} }}] }}"#
        );
        Scenario::from_bytes("test.json", "test", text.as_bytes())
            .expect_err("invalid")
            .to_string()
    };
    assert_eq!(
        error(r#"[{ "kind": "retry", "budget": { "kind": "chapter", "ratio": 2000 } }]"#),
        "test.json: clients[0].policies[0].budget.ratio: must be a finite number in [0, 100] (got 2000)"
    );
    assert_eq!(
        error(
            r#"[{ "kind": "timeout", "timeout_ms": 5 }, { "kind": "hedge", "delay_ms": 5, "attempts_max": 0 }]"#
        ),
        "test.json: clients[0].policies[1].attempts_max: must be in [1, 10] (got 0)"
    );
    // Inside an internally tagged object the parser's path stops at the policy.
    let unknown = error(r#"[{ "kind": "retry", "budget": { "kind": "leaky" } }]"#);
    assert!(
        unknown.starts_with(
            "test.json: clients[0].policies[0]: unknown variant `leaky`, expected one of `chapter`, `token_bucket`, `finagle`"
        ),
        "{unknown}"
    );
}

// `hystrix` is exactly the stack `[fallback, timeout, circuit_breaker]`: the
// same run, the same outcomes, the same layer counters.
#[test]
fn hystrix_is_the_chapters_fallback_timeout_breaker_stack() {
    let json = |policies: &str| {
        format!(
            r#"{{
        "description": "hystrix",
        "duration_ms": 30000,
        "services": [{{ "name": "api", "workers": 20, "service_time_ms": {{ "kind": "exponential", "mean_ms": 50 }} }}],
        "clients": [{{ "name": "c", "target": "api",
                      "load": {{ "kind": "open_loop", "rate": {{ "kind": "constant", "rps": 100 }} }},
                      "policies": {policies} }}],
        "faults": [{{ "kind": "outage", "service": "api", "start_ms": 10000, "end_ms": 20000, "mode": "hang" }}]
    }}"#
        )
    };
    let composite = crate::support::scenario(&json(
        r#"[{ "kind": "hystrix", "timeout_ms": 200, "breaker": { "failure_threshold": 3, "open_timeout_ms": 2000 } }]"#,
    ));
    let explicit = crate::support::scenario(&json(
        r#"[{ "kind": "fallback" }, { "kind": "timeout", "timeout_ms": 200 },
            { "kind": "circuit_breaker", "failure_threshold": 3, "open_timeout_ms": 2000 }]"#,
    ));
    let (_, composite) = run_summary(&composite, 5);
    let (_, explicit) = run_summary(&explicit, 5);
    assert_eq!(composite.requests, explicit.requests);
    assert!(composite.requests.fallback > 0);
    let layers = |summary: &sim::metrics::summary::Summary| {
        summary.policies["client/c"]
            .iter()
            .map(|layer| (layer.kind.clone(), layer.counters.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(layers(&composite), layers(&explicit));
}
