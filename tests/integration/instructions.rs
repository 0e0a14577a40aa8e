//! Instruction-count benchmarks (issue 11): the simulation loop of four
//! committed scenarios (a single service, the herd, regions, a database),
//! shortened, runs under callgrind, and the count of
//! instructions executed inside `sim::model::world::run` must stay within a
//! few percent of the baseline committed in `tests/fixtures/instructions.json`.
//!
//! Instruction counts do not move with the machine's load, so unlike a wall
//! time this can fail CI on a 3% regression without flaking. Only the
//! simulation loop is counted (`--toggle-collect`), so process start-up,
//! scenario parsing and report writing (and the C library's version) stay
//! out of it. The counts depend on the compiler, the build profile and the
//! flags `rustc` was given (the repository's `.cargo/config.toml` raises
//! LLVM's inlining threshold; a `RUSTFLAGS` variable replaces it): the
//! baseline records the `rustc -V`, the profile and the flags it was taken
//! with, and the test skips, saying why, under others. Skips too, saying
//! why, when valgrind is absent and cannot be installed
//! (.ci/install-system-deps installs Debian's).
//!
//! After an intended change (or a compiler upgrade):
//! `UPDATE_INSTRUCTIONS=1 cargo test --locked --test integration instructions`
//! rewrites the baseline; say why in the commit.

use crate::support::{ensure_system, root, temp_dir};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A count more than this fraction above the baseline fails: a regression.
const REGRESSION_TOLERANCE: f64 = 0.03;
/// A count more than this fraction below the baseline fails too, asking for
/// the baseline to be re-recorded, so that it keeps catching regressions.
const IMPROVEMENT_TOLERANCE: f64 = 0.10;

/// The build profile of this test (and of the `sim` binary it runs).
const PROFILE: &str = if cfg!(debug_assertions) {
    "test"
} else {
    "release"
};

/// The flags `rustc` compiled this package with (`build.rs`).
const RUSTFLAGS: &str = env!("SIM_RUSTFLAGS");

/// One measured case: a committed scenario with some top-level fields
/// replaced, to keep a run under valgrind to a few seconds.
struct Case {
    name: &'static str,
    scenario: &'static str,
    changes: fn(&mut Value),
}

/// The two herd scenarios shortened to 40 s, their api hung from 10 s to 20 s.
fn hang_of_40_s(scenario: &mut Value) {
    scenario["duration_ms"] = json!(40_000);
    scenario["faults"][0]["start_ms"] = json!(10_000);
    scenario["faults"][0]["end_ms"] = json!(20_000);
}

const CASES: &[Case] = &[
    // A single service with retries, a breaker and a timeout, through a hang.
    Case {
        name: "thundering-herd-breaker-40s",
        scenario: "thundering-herd-breaker",
        changes: hang_of_40_s,
    },
    // The herd: deep queues and retry storms, the queue's worst case.
    Case {
        name: "thundering-herd-40s",
        scenario: "thundering-herd",
        changes: hang_of_40_s,
    },
    // Three regions behind an anycast router, one of them lost for a while:
    // the regions adapter's routing, legs and failover.
    Case {
        name: "regions-active-active-50-60s",
        scenario: "regions-active-active-50",
        changes: |scenario| {
            scenario["duration_ms"] = json!(60_000);
            scenario["topology"]["faults"][0]["start_ms"] = json!(20_000);
            scenario["topology"]["faults"][0]["end_ms"] = json!(45_000);
        },
    },
    // A replicated database whose primary crashes: the database adapter's
    // replication, lease detection and promotion.
    Case {
        name: "db-async-lease-crash-16s",
        scenario: "db-async-lease-crash",
        changes: |scenario| {
            scenario["duration_ms"] = json!(16_000);
            scenario["faults"][0]["at_ms"] = json!(8_000);
        },
    },
];

fn valgrind() -> Result<PathBuf, String> {
    let path = PathBuf::from("/usr/bin/valgrind");
    ensure_system("valgrind", "valgrind", || path.exists())?;
    Ok(path)
}

fn rustc_version() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let output = Command::new(rustc).arg("-V").output().expect("rustc runs");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Instructions executed inside `sim::model::world::run` for `scenario`
/// at seed 42, and the run's event count.
fn count(valgrind: &Path, scenario: &Path, dir: &Path) -> (u64, u64) {
    let profile = dir.join("callgrind.out");
    let out = dir.join("report");
    let output = Command::new(valgrind)
        .args([
            "--tool=callgrind",
            "--toggle-collect=sim::model::world::run",
        ])
        .arg(format!("--callgrind-out-file={}", profile.display()))
        .arg(env!("CARGO_BIN_EXE_sim"))
        .args([
            "run",
            "--seed",
            "42",
            "--no-charts",
            "--format",
            "json",
            "--out",
        ])
        .args([&out, scenario])
        .output()
        .expect("valgrind runs");
    assert!(
        output.status.success(),
        "sim under valgrind failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&profile).expect("callgrind wrote its profile");
    let instructions = text
        .lines()
        .find_map(|line| line.strip_prefix("totals: "))
        .or_else(|| text.lines().find_map(|line| line.strip_prefix("summary: ")))
        .and_then(|total| total.trim().parse::<u64>().ok())
        .expect("callgrind profile has a total");
    let summary: Value = serde_json::from_slice(&output.stdout).expect("summary JSON on stdout");
    let events = summary["events"].as_u64().expect("summary has events");
    (instructions, events)
}

#[test]
fn simulation_loop_instructions_stay_within_three_percent_of_the_baseline() {
    let valgrind = match valgrind() {
        Ok(path) => path,
        Err(reason) => {
            eprintln!("skipping the instruction-count benchmarks: {reason}");
            return;
        }
    };
    let baseline_path = root().join("tests/fixtures/instructions.json");
    let baseline: Value =
        serde_json::from_slice(&std::fs::read(&baseline_path).expect("baseline file"))
            .expect("baseline JSON");
    let rustc = rustc_version();
    let update = std::env::var_os("UPDATE_INSTRUCTIONS").is_some();
    if !update
        && (baseline["rustc"] != json!(rustc)
            || baseline["profile"] != json!(PROFILE)
            || baseline["rustflags"] != json!(RUSTFLAGS))
    {
        eprintln!(
            "skipping the instruction-count benchmarks: the baseline was recorded with {} ({} profile, rustflags {}), this is {rustc} ({PROFILE} profile, rustflags {:?}); record one with UPDATE_INSTRUCTIONS=1",
            baseline["rustc"], baseline["profile"], baseline["rustflags"], RUSTFLAGS
        );
        return;
    }
    let dir = temp_dir("instructions");
    let mut counts = serde_json::Map::new();
    let mut failures = Vec::new();
    for case in CASES {
        let path = root().join(format!("scenarios/{}.json", case.scenario));
        let mut scenario: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("scenario")).expect("JSON");
        (case.changes)(&mut scenario);
        let case_dir = dir.join(case.name);
        std::fs::create_dir_all(&case_dir).expect("case dir");
        let file = case_dir.join(format!("{}.json", case.name));
        std::fs::write(&file, serde_json::to_vec(&scenario).expect("JSON")).expect("write");
        let (instructions, events) = count(&valgrind, &file, &case_dir);
        assert!(events > 100_000, "{}: only {events} events", case.name);
        assert!(
            instructions > events * 100,
            "{}: {instructions} instructions counted for {events} events: did `--toggle-collect` miss `sim::model::world::run`?",
            case.name
        );
        eprintln!(
            "{}: {instructions} instructions, {events} events, {:.0} per event",
            case.name,
            instructions as f64 / events as f64
        );
        counts.insert(
            case.name.to_string(),
            json!({ "instructions": instructions, "events": events }),
        );
        if update {
            continue;
        }
        let expected = &baseline["cases"][case.name];
        let expected_instructions = expected["instructions"]
            .as_u64()
            .unwrap_or_else(|| panic!("no baseline for {}", case.name));
        assert_eq!(
            expected["events"].as_u64(),
            Some(events),
            "{}: the event count changed, so the run is not the one measured; re-record",
            case.name
        );
        let ratio = instructions as f64 / expected_instructions as f64;
        if ratio > 1.0 + REGRESSION_TOLERANCE {
            failures.push(format!(
                "{}: {instructions} instructions, {:+.1}% over the baseline {expected_instructions}: a regression",
                case.name,
                (ratio - 1.0) * 100.0
            ));
        } else if ratio < 1.0 - IMPROVEMENT_TOLERANCE {
            failures.push(format!(
                "{}: {instructions} instructions, {:.1}% under the baseline {expected_instructions}: re-record it with UPDATE_INSTRUCTIONS=1 so it keeps catching regressions",
                case.name,
                (1.0 - ratio) * 100.0
            ));
        }
    }
    if update {
        let recorded = json!({
            "rustc": rustc,
            "profile": PROFILE,
            "rustflags": RUSTFLAGS,
            "tolerance": "fails above +3% (a regression) and below -10% (re-record)",
            "cases": counts,
        });
        let mut text = serde_json::to_string_pretty(&recorded).expect("JSON");
        text.push('\n');
        std::fs::write(&baseline_path, text).expect("write baseline");
        return;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
