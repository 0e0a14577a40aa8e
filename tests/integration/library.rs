//! The library face: the counterexample that `examples/retry_breaker_stack.rs`
//! finds and shrinks is an ordinary scenario file that `sim run` replays with
//! the same result as the library run the search saw.

use crate::support::{root, run_summary, temp_dir, Sim};
use sim::policy::breaker::BreakerConfig;
use sim::policy::PolicySpec;
use sim::scenario::Scenario;

const COUNTEREXAMPLE: &str = "examples/retry-breaker-counterexample.json";

/// The seed named in the file's description (`... --seed N`).
fn seed_of(scenario: &Scenario) -> u64 {
    let (_, seed) = scenario
        .description
        .rsplit_once("--seed ")
        .expect("the description names the seed");
    seed.trim().parse().expect("a seed")
}

// `sim run` on the committed counterexample prints the summary the library
// computes, and in it a fault that is not recovered from within the
// breaker's open duration plus 5 s.
#[test]
fn sim_run_replays_the_shrunk_retry_breaker_counterexample() {
    let scenario = Scenario::load(&root().join(COUNTEREXAMPLE)).expect("valid");
    let seed = seed_of(&scenario);
    let dir = temp_dir("library-counterexample");
    let output = Sim::new()
        .args(["run", COUNTEREXAMPLE, "--seed", &seed.to_string()])
        .args([
            "--format",
            "json",
            "--no-charts",
            "--out",
            dir.to_str().unwrap(),
        ])
        .run();
    let printed: serde_json::Value = serde_json::from_str(&output.stdout).expect("JSON");
    let (_, summary) = run_summary(&scenario, seed);
    assert_eq!(printed, serde_json::to_value(&summary).unwrap());
    let PolicySpec::CircuitBreaker(BreakerConfig::Chapter(breaker)) =
        &scenario.clients[0].policies[1]
    else {
        panic!("a chapter breaker under the retry");
    };
    let bound_ms = breaker.open_timeout_ms as f64 + 5_000.0;
    assert!(summary
        .faults
        .iter()
        .any(|fault| !fault.recovery_ms.is_some_and(|ms| ms <= bound_ms)));
}
