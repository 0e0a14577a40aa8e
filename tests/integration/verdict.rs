//! The metastability verdict on the committed scenarios: a retry storm that
//! outlives its trigger is `not_recovered` with sustained load; the same
//! outage under a design that sheds the storm is `recovered` without it.

use crate::support::run_summary;
use sim::metrics::verdict::Verdict;
use sim::scenario::Scenario;

fn load(name: &str) -> Scenario {
    let path = crate::support::root().join(format!("scenarios/{name}.json"));
    Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"))
}

// The shrunk counterexample of explore-retry-storm (seed 2): a 1.5 s hang leaves a
// queue of attempts nobody waits for, every request then times out three
// times, and the storm outlives the fault to the end of the run.
#[test]
fn a_short_hang_under_plain_retries_is_not_recovered_with_sustained_load() {
    let (_, summary) = run_summary(&load("retry-storm-shrunk"), 2);
    let verdict = &summary.faults[0].metastability;
    assert_eq!(verdict.verdict, Verdict::NotRecovered);
    assert!(verdict.still_failing_ms.is_some_and(|ms| ms > 10_000.0));
    assert!(verdict.sustained_load);
    let before = verdict.load_before.as_ref().expect("calm windows");
    let after = verdict.load_after.as_ref().expect("unhealthy windows");
    assert!(after.attempts_per_request > 2.0 * before.attempts_per_request);
}

// The thundering herd recovers, but only after minutes of four attempts per
// request: recovered, with sustained load. With jitter and a breaker the
// backlog the hang leaves drains within seconds and the breaker keeps the
// retries away: recovered, without sustained load.
#[test]
fn the_herd_sustains_its_load_and_the_breaker_does_not() {
    let (_, herd) = run_summary(&load("thundering-herd"), 42);
    let verdict = &herd.faults[0].metastability;
    assert_eq!(verdict.verdict, Verdict::Recovered);
    assert!(verdict.sustained_load);
    let (_, breaker) = run_summary(&load("thundering-herd-breaker"), 42);
    let verdict = &breaker.faults[0].metastability;
    assert_eq!(verdict.verdict, Verdict::Recovered);
    assert!(!verdict.sustained_load);
    assert_eq!(verdict.still_failing_ms, None);
}
