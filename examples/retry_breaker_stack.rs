//! Properties of a whole `[retry, circuit_breaker]` stack, checked on
//! generated scenarios (a service, an open-loop client with the stack, a
//! fault schedule), as a user's own test would, with `sim`'s public API and
//! its `proptest` feature only.
//!
//! - "Retries never multiply the attempts beyond `attempts_max`" holds.
//! - "After a fault ends, the system is back within the breaker's open
//!   duration plus 5 s" does not: the search finds a scenario that breaks it
//!   and shrinks it to a minimal one, written as a scenario file that
//!   `sim run` replays (`examples/retry-breaker-counterexample.json`).
//!
//! `cargo run --example retry_breaker_stack [OUT.json]` prints the shrunk
//! scenario (and writes it); `cargo test --example retry_breaker_stack`
//! (part of `cargo test`) asserts it.

use proptest::prelude::*;
use sim::policy::breaker::BreakerConfig;
use sim::policy::PolicySpec;
use sim::testing::{scenarios, search, ScenarioPlan, ScenariosConfig};

/// Where the shrunk counterexample is kept, for `sim run` to replay.
pub const COUNTEREXAMPLE: &str = "examples/retry-breaker-counterexample.json";

/// `[retry, circuit_breaker]` with 1 to 4 attempts and a chapter breaker
/// tripping after 1 to 10 failures for 1 to 10 s.
fn stack() -> BoxedStrategy<Vec<PolicySpec>> {
    (1u32..=4, 1u32..=10, 1_000u64..=10_000)
        .prop_map(|(attempts_max, failure_threshold, open_timeout_ms)| {
            let retry = serde_json::json!({"kind": "retry", "attempts_max": attempts_max,
                "backoff": {"kind": "fixed", "delay_ms": 100}});
            let breaker = serde_json::json!({"kind": "circuit_breaker",
                "failure_threshold": failure_threshold, "open_timeout_ms": open_timeout_ms});
            vec![
                serde_json::from_value(retry).expect("a retry"),
                serde_json::from_value(breaker).expect("a breaker"),
            ]
        })
        .boxed()
}

/// Scenarios of 10 to 20 s whose faults start after 2 s of normal traffic.
fn config() -> ScenariosConfig {
    let mut config = ScenariosConfig {
        duration_ms: 10_000..=20_000,
        policies: stack(),
        ..ScenariosConfig::default()
    };
    config.faults.start_ms = 2_000..=15_000;
    config.faults.count = 1..=3;
    config
}

fn attempts_max(plan: &ScenarioPlan) -> u64 {
    match &plan.policies[0] {
        PolicySpec::Retry(retry) => u64::from(retry.attempts_max),
        other => panic!("expected a retry, got {}", other.kind()),
    }
}

fn open_timeout_ms(plan: &ScenarioPlan) -> u64 {
    match &plan.policies[1] {
        PolicySpec::CircuitBreaker(BreakerConfig::Chapter(breaker)) => breaker.open_timeout_ms,
        other => panic!("expected a chapter breaker, got {}", other.kind()),
    }
}

/// Attempts through the stack never exceed requests times `attempts_max`.
fn attempts_bounded() -> Option<(ScenarioPlan, String)> {
    search(1, 32, scenarios(&config()), |plan| {
        let (_, summary) = plan.run().map_err(TestCaseError::fail)?;
        let bound = summary.requests.issued * attempts_max(&plan);
        prop_assert!(
            summary.client_attempts <= bound,
            "{} attempts for {} requests",
            summary.client_attempts,
            summary.requests.issued
        );
        Ok(())
    })
}

/// Every fault is recovered from within the breaker's open duration plus 5 s.
fn recovers_after_faults() -> Option<(ScenarioPlan, String)> {
    search(1, 64, scenarios(&config()), |plan| {
        let (_, summary) = plan.run().map_err(TestCaseError::fail)?;
        let bound_ms = open_timeout_ms(&plan) as f64 + 5_000.0;
        for fault in &summary.faults {
            prop_assert!(
                fault.recovery_ms.is_some_and(|ms| ms <= bound_ms),
                "{} ending at {} ms: recovered after {:?} ms, more than {} ms",
                fault.label,
                fault.end_ms,
                fault.recovery_ms,
                bound_ms
            );
        }
        Ok(())
    })
}

/// The counterexample as the scenario file kept in `COUNTEREXAMPLE`.
fn counterexample_json(plan: &ScenarioPlan) -> String {
    let description = format!(
        "found by examples/retry_breaker_stack.rs: sim run {COUNTEREXAMPLE} --seed {}",
        plan.seed
    );
    plan.builder("retry-breaker-counterexample")
        .set("description", description)
        .to_json()
}

fn main() {
    match attempts_bounded() {
        Some((plan, message)) => {
            println!("attempts: unexpected counterexample: {message}\n{plan:#?}")
        }
        None => println!("attempts never exceed requests x attempts_max: no counterexample"),
    }
    let Some((plan, message)) = recovers_after_faults() else {
        println!("recovery: no counterexample");
        return;
    };
    println!("recovery: {message}\n{plan:#?}");
    let json = counterexample_json(&plan);
    match std::env::args().nth(1) {
        Some(path) => std::fs::write(&path, json).expect("writes the scenario"),
        None => print!("{json}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim::scenario::Scenario;

    // The search finds no scenario where the stack makes more than
    // attempts_max attempts per request.
    #[test]
    fn attempts_never_exceed_requests_times_attempts_max() {
        assert_eq!(attempts_bounded(), None);
    }

    // The search finds a scenario that is not back within open duration
    // plus 5 s, shrinks it, and it is the committed file; replaying that file
    // breaks the property the same way.
    #[test]
    fn recovery_counterexample_shrinks_to_the_committed_scenario() {
        let (plan, message) = recovers_after_faults().expect("a counterexample");
        println!("{message}\n{plan:#?}");
        let json = counterexample_json(&plan);
        let committed = std::fs::read_to_string(COUNTEREXAMPLE).unwrap_or_default();
        assert_eq!(
            json, committed,
            "the search found another scenario:\n{message}"
        );
        let scenario = Scenario::from_bytes(
            COUNTEREXAMPLE,
            "retry-breaker-counterexample",
            json.as_bytes(),
        )
        .expect("valid");
        let output = sim::model::run(&scenario, plan.seed).expect("runs");
        let summary = sim::metrics::summary::Summary::new(&scenario, plan.seed, &output);
        assert_eq!(summary.faults.len(), plan.faults.len());
        let bound_ms = open_timeout_ms(&plan) as f64 + 5_000.0;
        assert!(summary
            .faults
            .iter()
            .any(|fault| !fault.recovery_ms.is_some_and(|ms| ms <= bound_ms)));
    }
}
