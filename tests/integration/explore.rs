//! `sim explore` through the binary: it finds and shrinks the retry storm,
//! the shrunk file replays with `sim run`, the search does not depend on the
//! thread count, and bad explore sections are one line with exit 2.

use crate::support::{root, temp_dir, Sim};
use serde_json::Value;

const STORM: &str = "scenarios/explore-retry-storm.json";

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("written")).expect("JSON")
}

/// Runs `sim explore STORM --seed 1 --runs RUNS` into `dir` with
/// `threads` rayon threads; it finds a failure, so it exits 1.
fn explore_storm(dir: &std::path::Path, runs: &str, threads: &str) -> crate::support::Output {
    Sim::new()
        .args([
            "explore",
            STORM,
            "--seed",
            "1",
            "--runs",
            runs,
            "--out",
            dir.to_str().unwrap(),
        ])
        .env("RAYON_NUM_THREADS", threads)
        .code(1)
        .run()
}

// The search finds a run that fails an assertion, shrinks it to a single
// short fault, and `sim run` on the shrunk file fails the same assertion
// with the same seed.
#[test]
fn explore_finds_the_retry_storm_and_sim_run_replays_the_shrunk_file() {
    let dir = temp_dir("explore-storm");
    let out = dir.join("report");
    let output = explore_storm(&out, "32", "2");
    let report = read_json(&out.join("explore.json"));
    assert_eq!(report["runs"], 32);
    assert!(report["runs_failing"].as_u64().unwrap() > 0, "{report}");
    let shrunk = &report["shrunk"];
    let assertion = shrunk["assertion"].as_str().expect("an assertion failed");
    assert_eq!(shrunk["faults"].as_array().unwrap().len(), 1, "{shrunk}");
    let shrunk_file = out.join("shrunk.json");
    assert!(output.stderr.contains(&format!(
        "reproduce: sim run {} --seed 1",
        shrunk_file.display()
    )));
    let replay = Sim::new()
        .args([
            "run",
            shrunk_file.to_str().unwrap(),
            "--seed",
            "1",
            "--no-charts",
            "--out",
            dir.join("replay").to_str().unwrap(),
        ])
        .code(1)
        .run();
    // The same assertion fails with the same value as in the search.
    let index = report["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .position(|a| a["assertion"] == assertion)
        .unwrap();
    let value = shrunk["evaluations"][index]["value"].as_f64().unwrap();
    assert!(
        replay
            .stdout
            .contains(&format!("assertion {assertion}: FAIL (value {value}, ")),
        "{}",
        replay.stdout
    );
    assert!(replay.stderr.contains("fails"), "{}", replay.stderr);
}

// The same seed and run count give the same bytes with 1 and 2 threads.
#[test]
fn explore_output_does_not_depend_on_the_thread_count() {
    let dir = temp_dir("explore-threads");
    explore_storm(&dir.join("one"), "20", "1");
    explore_storm(&dir.join("two"), "20", "2");
    for name in ["explore.json", "shrunk.json"] {
        let one = std::fs::read(dir.join("one").join(name)).unwrap();
        let two = std::fs::read(dir.join("two").join(name)).unwrap();
        assert!(one == two, "{name} differs between 1 and 2 threads");
    }
}

// Regression: the committed shrunk retry storm (`sim explore
// scenarios/explore-retry-storm.json --seed 2 --runs 200`: a 1.375 s
// hanging outage at 3 s tips the retrying client into a storm that outlives it)
// still fails its assertions the same way under `sim run`.
#[test]
fn regression_shrunk_retry_storm_still_fails() {
    let dir = temp_dir("explore-shrunk-regression");
    let output = Sim::new()
        .args([
            "run",
            "scenarios/retry-storm-shrunk.json",
            "--seed",
            "2",
            "--no-charts",
            "--out",
            dir.join("r").to_str().unwrap(),
        ])
        .code(1)
        .run();
    assert_eq!(output.stderr, SHRUNK_STDERR);
    assert!(output
        .stdout
        .contains("assertion recovery_ms <= 5000: FAIL (value 17892.053, margin -12892.0530)"));
    // Without its one fault the same design passes: the fault is the cause.
    let text = std::fs::read_to_string(root().join("scenarios/retry-storm-shrunk.json")).unwrap();
    let mut value: Value = serde_json::from_str(&text).unwrap();
    value["faults"] = Value::Array(Vec::new());
    let calm = dir.join("calm.json");
    std::fs::write(&calm, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    let output = Sim::new()
        .args([
            "run",
            calm.to_str().unwrap(),
            "--seed",
            "2",
            "--no-charts",
            "--out",
            dir.join("c").to_str().unwrap(),
        ])
        .run();
    assert!(output
        .stdout
        .contains("assertion availability_after_faults >= 0.95: pass"));
}

const SHRUNK_STDERR: &str = "error: scenarios/retry-storm-shrunk.json: explore.assertions[0]: availability_after_faults >= 0.95 fails (value 0.1173780487804878); reproduce: sim run scenarios/retry-storm-shrunk.json --seed 2\n";

/// `sim explore FILE` on a bad fixture: one line, exit 2, nothing written.
fn bad_explore(name: &str, message: &str) {
    let file = format!("tests/fixtures/bad/{name}.json");
    Sim::new()
        .args([
            "explore",
            &file,
            "--runs",
            "1",
            "--out",
            "/nonexistent/never-written",
        ])
        .code(2)
        .stderr(&format!("error: {file}: {message}\n"))
        .run();
}

// An assertion on a metric that does not exist names the allowed ones, for
// `sim explore` and `sim run` alike.
#[test]
fn explore_refuses_an_unknown_metric() {
    let message = format!(
        "explore.assertions[1].metric: unknown metric \"recovery_seconds\"; allowed: {}",
        sim::explore::assert::allowed_names()
    );
    bad_explore("explore-unknown-metric", &message);
    crate::support::bad_fixture("explore-unknown-metric", &message);
}

// Reversed bounds, and bounds outside what the field allows, are one line each.
#[test]
fn explore_refuses_bad_bounds() {
    bad_explore(
        "explore-reversed-bounds",
        "explore.search.faults.duration_ms: bounds are reversed ([3000, 50]); write [low, high]",
    );
    bad_explore(
        "explore-start-after-the-end",
        "explore.search.faults.start_ms: must be within [0, 19999] (got [5000, 30000])",
    );
    bad_explore(
        "explore-reversed-parameter",
        "explore.search.parameters[0]: bounds are reversed (min 500 > max 50); min must be at most max",
    );
    bad_explore(
        "explore-parameter-out-of-range",
        "explore.search.parameters[1].max: 1000 is outside what the field allows: clients[0].policies[0].attempts_max: must be in [1, 100] (got 1000)",
    );
}

// A scenario without an explore section cannot be explored.
#[test]
fn explore_needs_an_explore_section() {
    Sim::new()
        .args(["explore", "scenarios/thundering-herd.json", "--out", "/nonexistent/x"])
        .code(2)
        .stderr("error: scenarios/thundering-herd.json: explore: sim explore needs an explore section with assertions and a search space (see docs/explore.md)\n")
        .run();
}

// `sim validate` checks the explore section too.
#[test]
fn validate_checks_the_explore_section() {
    Sim::new()
        .args(["validate", "tests/fixtures/bad/explore-reversed-bounds.json"])
        .code(2)
        .stderr("error: tests/fixtures/bad/explore-reversed-bounds.json: explore.search.faults.duration_ms: bounds are reversed ([3000, 50]); write [low, high]\n")
        .run();
    Sim::new()
        .args(["validate", STORM])
        .stdout(&format!("{STORM}: ok (1 service, 1 client, 0 faults)\n"))
        .run();
}
