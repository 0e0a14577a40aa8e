//! Golden tests: each committed scenario run at seed 42 must produce exactly
//! the `summary.json` stored in `tests/golden/<name>.json`. After an intended
//! change, refresh them with `UPDATE_GOLDEN=1 cargo test --test integration golden`
//! and review the diff.

use crate::support::{root, run_summary, scenario_files};
use sim::report::summary_json;
use sim::scenario::Scenario;

#[test]
fn committed_scenarios_match_their_golden_summaries() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for file in scenario_files() {
        let scenario = Scenario::load(&file).unwrap_or_else(|error| panic!("{error}"));
        let (_, summary) = run_summary(&scenario, 42);
        let got = summary_json(&summary).expect("summary serialises");
        let golden = root()
            .join("tests/golden")
            .join(format!("{}.json", scenario.name));
        if update {
            std::fs::write(&golden, &got).expect("write golden");
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Ok(expected) if expected == got => {}
            Ok(_) => mismatches.push(format!(
                "{} differs from {}",
                scenario.name,
                golden.display()
            )),
            Err(_) => mismatches.push(format!("{} is missing", golden.display())),
        }
    }
    assert!(
        mismatches.is_empty(),
        "{}\nif the change is intended: UPDATE_GOLDEN=1 cargo test --test integration golden",
        mismatches.join("\n")
    );
}
