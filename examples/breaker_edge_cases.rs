//! Finds three circuit-breaker edge cases by search and shrinking, using
//! only `sim`'s public API and its `proptest` feature, as a user's own test
//! would. Each property states what a user might expect of a breaker; the
//! search finds a call plan that breaks it and shrinks it to the smallest.
//!
//! `cargo run --example breaker_edge_cases` prints the three counterexamples;
//! `cargo test --example breaker_edge_cases` (part of `cargo test`) asserts them.

use proptest::prelude::*;
use sim::policy::{PolicySpec, Reply};
use sim::testing::{calls, replay, search, CallsConfig, PlannedCall};

/// A policy from its scenario-file entry.
fn policy(entry: serde_json::Value) -> PolicySpec {
    serde_json::from_value(entry).expect("a valid policy entry")
}

fn failed(call: &PlannedCall) -> bool {
    !call.reply.is_ok()
}

/// "A dependency that fails four calls in five trips the breaker": the
/// chapter's breaker (five consecutive failures) never does.
fn chapter_four_in_five() -> Option<(Vec<PlannedCall>, String)> {
    let breaker = policy(serde_json::json!({"kind": "circuit_breaker", "variant": "chapter"}));
    search(1, 256, calls(&CallsConfig::sequential(20)), |plan| {
        let trace = replay(&breaker, &plan, 1).expect("replays");
        let four_in_five = plan
            .windows(5)
            .any(|window| window.iter().filter(|call| failed(call)).count() >= 4);
        prop_assert!(
            !four_in_five || trace.tripped(),
            "4 of 5 calls failed and the breaker stayed closed"
        );
        Ok(())
    })
}

/// "A half-open breaker lets one probe through at a time": the chapter's
/// admits every call while half-open.
fn chapter_half_open_probes() -> Option<(Vec<PlannedCall>, String)> {
    let breaker = policy(
        serde_json::json!({"kind": "circuit_breaker", "variant": "chapter",
        "failure_threshold": 2, "open_timeout_ms": 1000}),
    );
    search(1, 256, calls(&CallsConfig::default()), |plan| {
        let trace = replay(&breaker, &plan, 1).expect("replays");
        let probes = trace.in_flight_peak_started_in("half_open");
        prop_assert!(
            probes <= 1,
            "{} probes in flight at once while half-open",
            probes
        );
        Ok(())
    })
}

/// "If half the calls fail, a 50% breaker trips": a count window of five
/// stays closed when the failures repeat with the window's period, so that
/// no five consecutive results hold more than two failures.
fn count_window_aligned() -> Option<(Vec<PlannedCall>, String)> {
    let breaker = policy(
        serde_json::json!({"kind": "circuit_breaker", "variant": "count_window",
        "sliding_window_size": 5, "minimum_number_of_calls": 5, "failure_rate_threshold": 50.0}),
    );
    search(1, 512, calls(&CallsConfig::sequential(12)), |plan| {
        let trace = replay(&breaker, &plan, 1).expect("replays");
        let failures = plan.iter().filter(|call| failed(call)).count();
        let half_failed = plan.len() >= 5 && failures * 2 >= plan.len();
        prop_assert!(
            !half_failed || trace.tripped(),
            "{} of {} calls failed and the breaker stayed closed",
            failures,
            plan.len()
        );
        Ok(())
    })
}

/// A plan as one line: `F` a failure, `S` a success, with start times.
fn show(plan: &[PlannedCall]) -> String {
    plan.iter()
        .map(|call| {
            let reply = if call.reply == Reply::Success {
                "S"
            } else {
                "F"
            };
            format!("{reply}@{}+{}ms", call.start_ms, call.latency_ms)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    for (name, found) in [
        (
            "chapter breaker, four failures in five",
            chapter_four_in_five(),
        ),
        (
            "chapter breaker, half-open probes",
            chapter_half_open_probes(),
        ),
        ("count window, aligned failures", count_window_aligned()),
    ] {
        match found {
            Some((plan, message)) => println!("{name}: {message}\n  {}", show(&plan)),
            None => println!("{name}: no counterexample"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The search finds five calls, four of them failures in a row after one
    // success, that never trip the chapter breaker.
    #[test]
    fn chapter_breaker_never_trips_at_four_failures_in_five() {
        let (plan, message) = chapter_four_in_five().expect("a counterexample");
        println!("{message}\n  {}", show(&plan));
        assert_eq!(plan.len(), 5, "{}", show(&plan));
        assert_eq!(plan.iter().filter(|call| failed(call)).count(), 4);
        let breaker = policy(serde_json::json!({"kind": "circuit_breaker"}));
        assert!(!replay(&breaker, &plan, 1).unwrap().tripped());
    }

    // The search finds two failures that trip the breaker, then two calls
    // after the open timeout that are both admitted as probes at once.
    #[test]
    fn chapter_half_open_admits_unlimited_probes() {
        let (plan, message) = chapter_half_open_probes().expect("a counterexample");
        println!("{message}\n  {}", show(&plan));
        assert_eq!(plan.len(), 4, "{}", show(&plan));
        assert!(plan[..2].iter().all(failed), "{}", show(&plan));
        assert!(
            plan[2].start_ms >= 1_000 && plan[3].start_ms >= 1_000,
            "{}",
            show(&plan)
        );
        let breaker = policy(serde_json::json!({"kind": "circuit_breaker",
            "failure_threshold": 2, "open_timeout_ms": 1000}));
        assert_eq!(
            replay(&breaker, &plan, 1)
                .unwrap()
                .in_flight_peak_started_in("half_open"),
            2
        );
    }

    // The search finds six results, half of them failures, placed so that the
    // first and the sixth fail: every window of five holds only two.
    #[test]
    fn count_window_stays_closed_under_a_pattern_aligned_with_its_window() {
        let (plan, message) = count_window_aligned().expect("a counterexample");
        println!("{message}\n  {}", show(&plan));
        assert_eq!(plan.len(), 6, "{}", show(&plan));
        assert_eq!(plan.iter().filter(|call| failed(call)).count(), 3);
        assert!(failed(&plan[0]) && failed(&plan[5]), "{}", show(&plan));
        for window in plan.windows(5) {
            assert!(window.iter().filter(|call| failed(call)).count() * 2 < 5);
        }
    }
}
