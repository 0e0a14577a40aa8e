//! Same scenario and seed, same bytes; another seed, other bytes; and each
//! component's randomness is its own.

use crate::support::{run_summary, scenario, temp_dir, Sim};

fn report_bytes(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    [
        "summary.json",
        "timeseries.csv",
        "availability.png",
        "latency.png",
    ]
    .iter()
    .map(|name| {
        (
            name.to_string(),
            std::fs::read(dir.join(name)).expect("report file"),
        )
    })
    .collect()
}

// Two runs of the thundering herd with seed 42 write identical files; seed 43 differs.
#[test]
fn same_seed_gives_identical_reports_and_another_seed_does_not() {
    let first = temp_dir("determinism-first");
    let second = temp_dir("determinism-second");
    let other = temp_dir("determinism-other");
    let herd = "scenarios/thundering-herd.json";
    Sim::new()
        .args(["run", herd, "--seed", "42", "--out"])
        .args([first.to_str().unwrap()])
        .run();
    Sim::new()
        .args(["run", herd, "--seed", "42", "--out"])
        .args([second.to_str().unwrap()])
        .run();
    Sim::new()
        .args(["run", herd, "--seed", "43", "--out"])
        .args([other.to_str().unwrap()])
        .run();
    let (first, second, other) = (
        report_bytes(&first),
        report_bytes(&second),
        report_bytes(&other),
    );
    for ((name, a), (_, b)) in first.iter().zip(&second) {
        assert!(a == b, "{name} differs between two runs with the same seed");
    }
    assert_ne!(
        first[0].1, other[0].1,
        "summary.json is the same for seeds 42 and 43"
    );
    assert_ne!(
        first[1].1, other[1].1,
        "timeseries.csv is the same for seeds 42 and 43"
    );
}

// The summary records the seed, the scenario's hash and the program version.
#[test]
fn summary_records_seed_hash_and_version() {
    let dir = temp_dir("determinism-identity");
    Sim::new()
        .args([
            "run",
            "scenarios/thundering-herd.json",
            "--seed",
            "7",
            "--no-charts",
            "--out",
        ])
        .args([dir.to_str().unwrap()])
        .run();
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["seed"], 7);
    assert_eq!(
        summary["version"],
        concat!("sim ", env!("CARGO_PKG_VERSION"))
    );
    let bytes =
        std::fs::read(crate::support::root().join("scenarios/thundering-herd.json")).unwrap();
    use sha2::Digest;
    let hash = sim::scenario::hex(&sha2::Sha256::digest(&bytes));
    assert_eq!(summary["scenario_sha256"], hash.as_str());
}

const TWO_CLIENTS: &str = r#"{
    "description": "stream isolation",
    "duration_ms": 20000,
    "services": [
        { "name": "a", "workers": 50, "service_time_ms": { "kind": "exponential", "mean_ms": 20 }, "error_probability": 0.1 },
        { "name": "b", "workers": 50, "service_time_ms": { "kind": "exponential", "mean_ms": 20 }, "error_probability": BERR }
    ],
    "clients": [
        { "name": "first", "target": "a",
          "load": { "kind": "open_loop", "rate": { "kind": "constant", "rps": 100 } },
          "policies": [{ "kind": "retry", "backoff": { "kind": "exponential", "initial_ms": 10, "jitter": "full" } }] },
        { "name": "second", "target": "b",
          "load": { "kind": "open_loop", "rate": { "kind": "constant", "rps": RATE } } }
    ]
}"#;

// Changing one client's rate and another service's error rate leaves the
// first client's results exactly as they were: every component has its own stream.
#[test]
fn changing_one_component_does_not_reshuffle_the_others() {
    let base = scenario(&TWO_CLIENTS.replace("BERR", "0.0").replace("RATE", "100"));
    let changed = scenario(&TWO_CLIENTS.replace("BERR", "0.5").replace("RATE", "250"));
    let (_, base) = run_summary(&base, 9);
    let (_, changed) = run_summary(&changed, 9);
    assert_eq!(
        base.clients["first"].requests,
        changed.clients["first"].requests
    );
    assert_eq!(
        base.clients["first"].latency_ms,
        changed.clients["first"].latency_ms
    );
    assert_ne!(
        base.clients["second"].requests,
        changed.clients["second"].requests
    );
}
