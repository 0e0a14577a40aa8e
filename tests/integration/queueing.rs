//! The queueing model against theory: an M/M/c system (Poisson arrivals,
//! exponential service, c workers, an unbounded queue, no faults) must match
//! Erlang C.

use crate::support::{run_summary, scenario};

/// Erlang C: the probability that an arrival waits, for `c` servers at
/// offered load `a = lambda / mu` erlangs.
fn erlang_c(c: u32, a: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0; // k = 0
    for k in 1..c {
        term *= a / f64::from(k);
        sum += term;
    }
    let last = term * a / f64::from(c);
    let rho = a / f64::from(c);
    let top = last / (1.0 - rho);
    top / (sum + top)
}

#[test]
fn erlang_c_formula_matches_a_published_value() {
    // 2 servers at 1 erlang: C = 1/3.
    assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
}

// P(wait) and the mean wait of an M/M/5 queue at 80% load are within 2% of Erlang C.
#[test]
fn m_m_c_wait_probability_and_mean_wait_match_erlang_c() {
    let (c, service_ms, rps) = (5u32, 100.0, 40.0);
    let json = format!(
        r#"{{
        "description": "M/M/5 at 80% load",
        "duration_ms": 40000000,
        "window_ms": 1000000,
        "limits": {{ "drain_ms": 0, "events_max": 1000000000 }},
        "services": [{{ "name": "queue", "instances": 1, "workers": {c}, "queue_capacity": 10000000,
                       "service_time_ms": {{ "kind": "exponential", "mean_ms": {service_ms} }} }}],
        "clients": [{{ "name": "poisson", "target": "queue",
                      "load": {{ "kind": "open_loop", "arrival": "poisson", "rate": {{ "kind": "constant", "rps": {rps} }} }} }}]
    }}"#
    );
    let (_, summary) = run_summary(&scenario(&json), 7);
    let a = rps * service_ms / 1_000.0;
    let wait_probability = erlang_c(c, a);
    let mu = 1_000.0 / service_ms;
    let wait_ms_mean = wait_probability / (f64::from(c) * mu - rps) * 1_000.0;
    let service = &summary.services["queue"];
    eprintln!(
        "P(wait) {} vs {wait_probability}; mean wait {} ms vs {wait_ms_mean} ms",
        service.wait_probability, service.wait_ms_mean
    );
    let error_probability = (service.wait_probability - wait_probability).abs() / wait_probability;
    let error_mean = (service.wait_ms_mean - wait_ms_mean).abs() / wait_ms_mean;
    assert!(
        error_probability < 0.02,
        "P(wait) {} vs Erlang C {wait_probability} ({:.2}% off)",
        service.wait_probability,
        error_probability * 100.0
    );
    assert!(
        error_mean < 0.02,
        "mean wait {} ms vs Erlang C {wait_ms_mean} ms ({:.2}% off)",
        service.wait_ms_mean,
        error_mean * 100.0
    );
}
