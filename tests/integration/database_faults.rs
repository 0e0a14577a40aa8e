//! Database node crashes drawn during the run (a cluster's
//! `primary_failures`, a zone's `failures` process reaching its nodes) are
//! listed in `summary.json`'s `faults`, after the scheduled ones, as the
//! scheduled database faults are: label `<kind> <database>/<node>`, start,
//! end, and their verdict.

use crate::support::{crashing_managed_cluster, faults_where, run_summary, scenario};
use sim::metrics::summary::{FaultSummary, Summary};

fn drawn<'a>(summary: &'a Summary, prefix: &str) -> Vec<&'a FaultSummary> {
    faults_where(summary, |label| label.starts_with(prefix))
}

// The primary crashes with MTTF 200 s and is repaired after 100 s on
// average; a managed failover takes 10 s. Each crash is listed, on the
// node that was primary, from the crash to its repair, and each failover
// record begins at a listed crash of its old primary (a crash repaired
// before the failover completes, or with the other nodes down, has none).
#[test]
fn primary_failures_are_listed_in_faults_matching_the_failover_records() {
    let crashing = crashing_managed_cluster(2_000_000, 200_000, 100_000);
    for seed in 1..=3 {
        let (_, summary) = run_summary(&crashing, seed);
        let db = &summary.databases["db"];
        let crashes = drawn(&summary, "primary_failure db/");
        assert_eq!(crashes.len(), summary.faults.len(), "seed {seed}");
        assert!(crashes.len() >= 3, "seed {seed}: {crashes:?}");
        assert!(!db.failovers.is_empty(), "seed {seed}");
        assert_eq!(db.drawn_faults_not_kept, 0);
        for pair in crashes.windows(2) {
            assert!(pair[0].start_ms <= pair[1].start_ms, "seed {seed}");
        }
        for crash in &crashes {
            assert!(crash.end_ms >= crash.start_ms, "seed {seed}: {crash:?}");
        }
        for record in &db.failovers {
            let label = format!("primary_failure db/{}", record.from);
            assert!(
                crashes
                    .iter()
                    .any(|crash| crash.label == label && crash.start_ms == record.failure_ms),
                "seed {seed}: {record:?} has no listed crash in {crashes:?}"
            );
        }
        // A repaired crash ends at its repair; one whose repair falls after
        // the run ends where it starts.
        let repaired = crashes.iter().filter(|c| c.end_ms > c.start_ms).count();
        assert!(repaired * 2 > crashes.len(), "seed {seed}: {crashes:?}");
    }
}

// A zone `failures` process over the primary's zone takes pg-a down in
// each of its down windows. Each window is one real-world event, listed
// once under its cause: as the zone's `failure us-east-1/a`, not again as
// the node's `failure db/pg-a` over the same window. Every zone window took
// pg-a down (the database's own record of its down windows has one per
// zone window, over the same span), and the first window longer than the
// failover time begins where the first failover's record does.
#[test]
fn a_zone_failures_process_reaching_a_node_is_listed_once_as_the_zone() {
    let failing = scenario(
        r#"{"description": "d", "duration_ms": 600000, "window_ms": 1000,
        "network": {"latency_ms": {"kind": "constant", "value_ms": 0.5}},
        "services": [{"name": "api", "instances": 1, "workers": 64,
            "service_time_ms": {"kind": "constant", "value_ms": 1},
            "dependencies": {"calls": [{"database": "db", "policies": [{"kind": "timeout", "timeout_ms": 1000}]}]}}],
        "clients": [{"name": "c", "target": "api",
            "load": {"kind": "open_loop", "rate": {"kind": "constant", "rps": 20}}}],
        "topology": {
            "regions": [{"name": "us-east-1", "zones": ["a", "b", "c"]}],
            "latency": {"preset": "aws-2026-11"},
            "placements": [{"service": "api", "place": "us-east-1/c", "instances": 1}],
            "faults": [{"kind": "failures", "place": "us-east-1/a", "mttf_ms": 60000, "mttr_ms": 20000}]},
        "databases": [{"name": "db",
            "nodes": [{"name": "pg-a", "region": "us-east-1", "zone": "a"},
                      {"name": "pg-b", "region": "us-east-1", "zone": "b"},
                      {"name": "pg-c", "region": "us-east-1", "zone": "c"}],
            "detection": {"kind": "managed", "failover_ms": {"kind": "constant", "value_ms": 5000}},
            "clients": {"write_fraction": 0.5}}]}"#,
    );
    for seed in 1..=3 {
        let (output, summary) = run_summary(&failing, seed);
        let db = &summary.databases["db"];
        let zone = drawn(&summary, "failure us-east-1/a");
        assert!(zone.len() >= 3, "seed {seed}: {:?}", summary.faults);
        assert_eq!(zone.len(), summary.faults.len(), "seed {seed}");
        assert!(drawn(&summary, "failure db/").is_empty(), "seed {seed}");
        let nodes = &output.databases[0].drawn_faults;
        assert_eq!(nodes.len(), zone.len(), "seed {seed}");
        for (node, zone) in nodes.iter().zip(&zone) {
            assert_eq!(node.node, 0, "seed {seed}");
            assert!(node.by_place_failure(), "seed {seed}");
            assert_eq!(node.start.as_ms_f64(), zone.start_ms, "seed {seed}");
            let end = node.end.unwrap_or(node.start).as_ms_f64();
            assert_eq!(end, zone.end_ms, "seed {seed}");
        }
        let windows = zone;
        // The first window longer than the failover time fails pg-a over
        // (a shorter one ends before the failover completes).
        let long = windows
            .iter()
            .find(|window| window.end_ms - window.start_ms > 5_000.0)
            .expect("a long down window");
        let first = db.failovers.first().expect("a failover");
        assert_eq!(first.from, "pg-a");
        assert_eq!(first.failure_ms, long.start_ms, "seed {seed}");
    }
}

/// A one-region scenario with database `db` (pg-a in zone a, pg-b in b,
/// pg-c in c) and topology faults `faults`.
fn zoned(faults: &str) -> sim::scenario::Scenario {
    scenario(&format!(
        r#"{{"description": "d", "duration_ms": 600000, "window_ms": 1000,
        "network": {{"latency_ms": {{"kind": "constant", "value_ms": 0.5}}}},
        "services": [{{"name": "api", "instances": 2, "workers": 64,
            "service_time_ms": {{"kind": "constant", "value_ms": 1}},
            "dependencies": {{"calls": [{{"database": "db", "policies": [{{"kind": "timeout", "timeout_ms": 1000}}]}}]}}}}],
        "clients": [{{"name": "c", "target": "api",
            "load": {{"kind": "open_loop", "rate": {{"kind": "constant", "rps": 20}}}}}}],
        "topology": {{
            "regions": [{{"name": "us-east-1", "zones": ["a", "b", "c"]}}],
            "latency": {{"preset": "aws-2026-11"}},
            "placements": [{{"service": "api", "place": "us-east-1/c", "instances": 2}}],
            "faults": {faults}}},
        "databases": [{{"name": "db",
            "nodes": [{{"name": "pg-a", "region": "us-east-1", "zone": "a"}},
                      {{"name": "pg-b", "region": "us-east-1", "zone": "b"}},
                      {{"name": "pg-c", "region": "us-east-1", "zone": "c"}}],
            "detection": {{"kind": "managed", "failover_ms": {{"kind": "constant", "value_ms": 5000}}}},
            "clients": {{"write_fraction": 0.5}}}}]}}"#
    ))
}

// A region process and a zone process both take pg-a down, sometimes
// overlapping (the node's down window then spans both). Each node down
// window began with a listed region or zone window, so none is listed as
// the node's: the causes are.
#[test]
fn overlapping_region_and_zone_windows_are_listed_as_the_places_only() {
    let failing = zoned(
        r#"[{"kind": "failures", "place": "us-east-1", "mttf_ms": 90000, "mttr_ms": 20000},
            {"kind": "failures", "place": "us-east-1/a", "mttf_ms": 60000, "mttr_ms": 20000}]"#,
    );
    for seed in 1..=3 {
        let (output, summary) = run_summary(&failing, seed);
        assert!(drawn(&summary, "failure db/").is_empty(), "seed {seed}");
        let places: Vec<&FaultSummary> = summary
            .faults
            .iter()
            .filter(|fault| {
                fault.label == "failure us-east-1" || fault.label == "failure us-east-1/a"
            })
            .collect();
        assert_eq!(places.len(), summary.faults.len(), "seed {seed}");
        let nodes = &output.databases[0].drawn_faults;
        // pg-a went down with each window of either place that did not
        // begin while it was down already; pg-b with the region's.
        assert!(nodes.len() >= 3, "seed {seed}: {nodes:?}");
        for node in nodes {
            assert!(node.by_place_failure(), "seed {seed}");
            assert!(
                places
                    .iter()
                    .any(|place| place.start_ms == node.start.as_ms_f64()),
                "seed {seed}: {node:?} has no listed cause in {places:?}"
            );
        }
    }
}

// An instance process that fails every 100 ms on average fills the run's
// 200 kept topology windows within the first minute; the zone's later
// windows are only counted (`drawn_faults_not_kept`). The node's windows
// whose cause is not listed are then listed as the node's, so no down
// window of pg-a goes unlisted, and none is listed twice.
#[test]
fn a_node_window_whose_zone_window_is_not_kept_is_listed_as_the_node() {
    let failing = zoned(
        r#"[{"kind": "failures", "service": "api", "instance": 1, "mttf_ms": 100, "mttr_ms": 100},
            {"kind": "failures", "place": "us-east-1/a", "mttf_ms": 60000, "mttr_ms": 20000}]"#,
    );
    let (output, summary) = run_summary(&failing, 1);
    let report = output.regions.as_ref().expect("a topology");
    assert!(report.drawn_faults_not_kept > 0);
    let nodes = &output.databases[0].drawn_faults;
    assert!(nodes.len() >= 3, "{nodes:?}");
    let zone = drawn(&summary, "failure us-east-1/a");
    let node = drawn(&summary, "failure db/pg-a");
    assert!(!node.is_empty(), "{:?}", summary.faults);
    assert_eq!(zone.len() + node.len(), nodes.len());
    for window in nodes {
        let start_ms = window.start.as_ms_f64();
        let listed = zone
            .iter()
            .chain(&node)
            .filter(|fault| fault.start_ms == start_ms)
            .count();
        assert_eq!(listed, 1, "{window:?}");
    }
}
