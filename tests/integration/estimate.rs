//! `sim explore --estimate` through the binary: Monte Carlo and multilevel
//! splitting agree on a moderate failure probability, splitting gives a
//! finite interval above 0 for a rare one with fewer runs than Monte Carlo
//! would need, and the output is the same bytes at any thread count.

use crate::support::{temp_dir, Sim};
use serde_json::Value;

const MODERATE: &str = "tests/fixtures/estimate-moderate.json";
const RARE: &str = "tests/fixtures/estimate-rare.json";

/// Runs `sim explore FILE --estimate ...` into a temp folder and returns
/// `estimate.json` and its bytes.
fn estimate(file: &str, name: &str, threads: &str, extra: &[&str]) -> (Value, String) {
    let out = temp_dir(name).join("report");
    let mut args = vec![
        "explore",
        file,
        "--seed",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Sim::new()
        .args(args)
        .env("RAYON_NUM_THREADS", threads)
        .code(0)
        .run();
    let bytes = std::fs::read_to_string(out.join("estimate.json")).expect("written");
    (serde_json::from_str(&bytes).expect("JSON"), bytes)
}

fn interval(value: &Value) -> (f64, f64, f64) {
    let get = |key: &str| value[key].as_f64().expect("a number");
    (get("estimate"), get("low"), get("high"))
}

// On a failure of a few percent (more than 10 timeouts of an M/M/1 queue at
// load 0.5 in 5 s: about 4.4% over 16,000 seeds), splitting on failed
// requests and 2,000 seeds of Monte Carlo give overlapping intervals, and
// the report is the same bytes at 1 and 2 threads.
#[test]
fn splitting_and_monte_carlo_agree_on_a_moderate_probability() {
    let extra = [
        "--estimate",
        "1000",
        "--method",
        "splitting",
        "--particles",
        "200",
    ];
    let (report, bytes) = estimate(MODERATE, "estimate-moderate-1", "1", &extra);
    let (_, bytes_two) = estimate(MODERATE, "estimate-moderate-2", "2", &extra);
    assert_eq!(bytes, bytes_two, "thread count changed the estimate");
    let (mc, mc_low, mc_high) = interval(&report["probability"]);
    let split = &report["splitting"];
    let (estimate, low, high) = interval(&split["probability"]);
    assert!(mc > 0.02 && mc < 0.08, "{report}");
    assert!(low <= mc_high && mc_low <= high, "no overlap: {report}");
    assert!(low > 0.0 && estimate > 0.02 && estimate < 0.08, "{split}");
    assert!(!split["levels"].as_array().unwrap().is_empty(), "{split}");
    assert_eq!(split["score"], "failed_requests");
}

// On a rare failure (more than 40 timeouts: 11 of 20,000 Monte Carlo runs,
// 5.5e-4), splitting gives an interval that is finite, above 0 and below
// 1e-3, for fewer runs than Monte Carlo needs for the same relative
// precision: (1.96 / relative half-width)^2 / p.
#[test]
fn splitting_bounds_a_rare_probability_with_fewer_runs_than_monte_carlo() {
    let extra = [
        "--estimate",
        "100",
        "--method",
        "splitting",
        "--particles",
        "100",
    ];
    let (report, _) = estimate(RARE, "estimate-rare", "2", &extra);
    let split = &report["splitting"];
    let (estimate, low, high) = interval(&split["probability"]);
    assert!(low > 0.0 && high < 1e-3 && estimate > 1e-4, "{split}");
    let runs = split["runs"].as_u64().unwrap() + split["pilot_runs"].as_u64().unwrap();
    let half_relative = (high - low) / 2.0 / estimate;
    let monte_carlo_runs = (1.96 / half_relative).powi(2) / estimate;
    assert!(
        (runs as f64) < monte_carlo_runs,
        "splitting {runs} runs, Monte Carlo would need {monte_carlo_runs:.0}: {split}"
    );
    // The Monte Carlo part (100 runs) can only give an upper bound.
    assert_eq!(report["rare"], true, "{report}");
}

// `--method auto` adds splitting only when Monte Carlo saw fewer than 10
// failures; `monte-carlo` never does.
#[test]
fn auto_splits_only_when_failures_are_few() {
    let (report, _) = estimate(MODERATE, "estimate-auto-many", "2", &["--estimate", "400"]);
    assert!(report["failures"].as_u64().unwrap() >= 10, "{report}");
    assert!(report.get("splitting").is_none(), "{report}");
    assert_eq!(report["method"], "auto");
    let (report, _) = estimate(
        MODERATE,
        "estimate-mc",
        "2",
        &["--estimate", "50", "--method", "monte-carlo"],
    );
    assert!(report.get("splitting").is_none(), "{report}");
}
