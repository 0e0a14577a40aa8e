//! A scenario's topology faults are listed in `summary.json`'s `faults`,
//! after the service and database faults, as those are: the scheduled ones
//! (`topology.faults`) over their windows, and the down windows a
//! `failures` process drew during the run (regions, zones, instances),
//! each with its label, start, end, recovery and verdict; by start, then in
//! the order the scenario lists them.

use crate::support::{faults_where, run_summary, scenario};
use sim::metrics::summary::{FaultSummary, Summary};
use sim::model::regions::{FAILOVERS_KEPT_MAX, FAULT_WINDOWS_KEPT_MAX};

fn listed<'a>(summary: &'a Summary, label: &str) -> Vec<&'a FaultSummary> {
    faults_where(summary, |listed| listed == label)
}

// Five scheduled faults, listed in the file out of time order: each is in
// `faults` once with its own window, by start (the outage and the
// partition both start at 60 s and keep the file's order), with a verdict.
#[test]
fn scheduled_topology_faults_are_listed_with_their_windows() {
    let scheduled = scenario(
        r#"{"description": "d", "duration_ms": 200000, "window_ms": 5000,
        "services": [{"name": "api", "instances": 4, "workers": 20,
            "service_time_ms": {"kind": "constant", "value_ms": 5}}],
        "clients": [{"name": "users", "target": "api", "policies": [{"kind": "timeout", "timeout_ms": 2000}],
            "load": {"kind": "open_loop", "rate": {"kind": "constant", "rps": 20}}}],
        "topology": {
            "regions": [{"name": "us-east-1", "zones": ["a", "b"]}, {"name": "us-west-2"}, {"name": "eu-west-1"}],
            "latency": {"preset": "aws-2026-11",
                "round_trips": [{"between": ["us-west-2", "eu-west-1"], "round_trip_ms": 130}]},
            "placements": [{"service": "api", "place": "us-east-1/a", "instances": 1},
                           {"service": "api", "place": "us-east-1/b", "instances": 1},
                           {"service": "api", "place": "eu-west-1", "instances": 2}],
            "routers": [{"kind": "dns", "name": "route53", "endpoints": ["us-east-1", "eu-west-1"]}],
            "clients": [{"client": "users", "origin": "us-west-2", "router": "route53"}],
            "faults": [
                {"kind": "degradation", "from": "us-west-2", "to": "us-east-1", "direction": "one_way",
                 "loss": 0.3, "start_ms": 100000, "end_ms": 150000},
                {"kind": "region_outage", "region": "us-east-1", "mode": "hang", "start_ms": 60000, "end_ms": 90000},
                {"kind": "partition", "from": "us-east-1", "to": "eu-west-1", "start_ms": 60000, "end_ms": 80000},
                {"kind": "zone_outage", "zone": "us-east-1/b", "start_ms": 20000, "end_ms": 30000},
                {"kind": "checker_partition", "router": "route53", "region": "us-east-1",
                 "start_ms": 120000, "end_ms": 130000}]}}"#,
    );
    let (output, summary) = run_summary(&scheduled, 7);
    let windows: Vec<(&str, f64, f64)> = summary
        .faults
        .iter()
        .map(|fault| (fault.label.as_str(), fault.start_ms, fault.end_ms))
        .collect();
    assert_eq!(
        windows,
        [
            ("zone_outage (fail-fast) us-east-1/b", 20_000.0, 30_000.0),
            ("region_outage (hang) us-east-1", 60_000.0, 90_000.0),
            ("partition us-east-1 <-> eu-west-1", 60_000.0, 80_000.0),
            (
                "degradation us-west-2 -> us-east-1 (loss 0.3)",
                100_000.0,
                150_000.0
            ),
            (
                "checker_partition route53 -> us-east-1",
                120_000.0,
                130_000.0
            ),
        ]
    );
    for fault in &summary.faults {
        assert!(
            (0.0..=1.0).contains(&fault.availability_before),
            "{fault:?}"
        );
    }
    // The outage is what the region's failover record opened on.
    let report = output.regions.as_ref().expect("a topology");
    assert!(report
        .failovers
        .iter()
        .any(|record| record.fault == "region_outage"
            && record.fault_ms == 60_000.0
            && record.fault_end_ms == Some(90_000.0)));
    assert!(report.drawn_faults.is_empty());
    let written = serde_json::to_value(&summary).expect("summary serialises");
    assert_eq!(written["faults"].as_array().map(Vec::len), Some(5));
    assert!(written["regions"].get("drawn_faults_not_kept").is_none());
}

// A region `failures` process (behind a DNS router, so each down window
// opens a failover record), a zone one and an instance one: every window
// of each is listed, in time order, and the region's windows are exactly
// the regions report's `failures` failover records (start at `fault_ms`,
// end at `fault_end_ms`, or at the start when the run ended first).
#[test]
fn failures_processes_list_their_drawn_windows_matching_the_failover_records() {
    let failing = scenario(
        r#"{"description": "d", "duration_ms": 600000, "window_ms": 5000,
        "services": [{"name": "api", "instances": 4, "workers": 20,
            "service_time_ms": {"kind": "constant", "value_ms": 5}}],
        "clients": [{"name": "users", "target": "api", "policies": [{"kind": "timeout", "timeout_ms": 2000}],
            "load": {"kind": "open_loop", "rate": {"kind": "constant", "rps": 10}}}],
        "topology": {
            "regions": [{"name": "us-east-1"}, {"name": "us-west-2"}, {"name": "eu-west-1", "zones": ["a", "b"]}],
            "latency": {"preset": "aws-2026-11",
                "round_trips": [{"between": ["us-west-2", "eu-west-1"], "round_trip_ms": 130}]},
            "placements": [{"service": "api", "place": "us-east-1", "instances": 2},
                           {"service": "api", "place": "eu-west-1/a", "instances": 1},
                           {"service": "api", "place": "eu-west-1/b", "instances": 1}],
            "routers": [{"kind": "dns", "name": "route53", "endpoints": ["us-east-1", "eu-west-1"]}],
            "clients": [{"client": "users", "origin": "us-west-2", "router": "route53"}],
            "faults": [
                {"kind": "failures", "place": "us-east-1", "mttf_ms": 60000, "mttr_ms": 20000},
                {"kind": "failures", "place": "eu-west-1/a", "mttf_ms": 90000, "mttr_ms": 10000},
                {"kind": "failures", "service": "api", "instance": 3, "mttf_ms": 90000, "mttr_ms": 10000}]}}"#,
    );
    for seed in 1..=3 {
        let (output, summary) = run_summary(&failing, seed);
        let report = output.regions.as_ref().expect("a topology");
        assert_eq!(report.drawn_faults_not_kept, 0);
        let region = listed(&summary, "failure us-east-1");
        let records: Vec<_> = report
            .failovers
            .iter()
            .filter(|record| record.fault == "failures")
            .collect();
        assert!(region.len() >= 3, "seed {seed}: {:?}", summary.faults);
        assert_eq!(region.len(), records.len(), "seed {seed}");
        for (window, record) in region.iter().zip(&records) {
            assert_eq!(record.region, "us-east-1");
            assert_eq!(window.start_ms, record.fault_ms, "seed {seed}");
            assert_eq!(
                window.end_ms,
                record.fault_end_ms.unwrap_or(record.fault_ms),
                "seed {seed}"
            );
        }
        // The zone and the instance have no failover records, and are
        // listed all the same.
        let zone = listed(&summary, "failure eu-west-1/a");
        let instance = listed(&summary, "failure api[3]");
        assert!(!zone.is_empty() && !instance.is_empty(), "seed {seed}");
        let mut total = 0;
        for windows in [&region, &zone, &instance] {
            for pair in windows.windows(2) {
                assert!(pair[0].end_ms <= pair[1].start_ms, "seed {seed}: {pair:?}");
            }
            for window in windows.iter() {
                assert!(window.end_ms >= window.start_ms, "seed {seed}: {window:?}");
                assert!(window.start_ms <= summary.end_ms, "seed {seed}: {window:?}");
            }
            total += windows.len();
        }
        assert_eq!(total, summary.faults.len(), "seed {seed}");
        assert_eq!(total, report.drawn_faults.len(), "seed {seed}");
        // All of them by start.
        for pair in summary.faults.windows(2) {
            assert!(pair[0].start_ms <= pair[1].start_ms, "seed {seed}");
        }
    }
}

// A region failure process under a scheduled outage of the same region
// for the whole run: the region is already down when each window begins,
// so only the scheduled outage is listed (no duplicate), while the
// failover records still show each failure.
#[test]
fn a_drawn_window_inside_a_scheduled_outage_is_not_listed_again() {
    let covered = scenario(
        r#"{"description": "d", "duration_ms": 300000, "window_ms": 5000,
        "services": [{"name": "api", "instances": 2, "workers": 20,
            "service_time_ms": {"kind": "constant", "value_ms": 5}}],
        "clients": [{"name": "users", "target": "api", "policies": [{"kind": "timeout", "timeout_ms": 1000}],
            "load": {"kind": "open_loop", "rate": {"kind": "constant", "rps": 5}}}],
        "topology": {
            "regions": [{"name": "us-east-1"}, {"name": "eu-west-1"}],
            "latency": {"preset": "aws-2026-11"},
            "placements": [{"service": "api", "place": "us-east-1", "instances": 1},
                           {"service": "api", "place": "eu-west-1", "instances": 1}],
            "faults": [
                {"kind": "failures", "place": "us-east-1", "mttf_ms": 30000, "mttr_ms": 10000},
                {"kind": "region_outage", "region": "us-east-1", "start_ms": 0, "end_ms": 100000000}]}}"#,
    );
    let (output, summary) = run_summary(&covered, 3);
    let report = output.regions.as_ref().expect("a topology");
    let failures = report
        .failovers
        .iter()
        .filter(|record| record.fault == "failures")
        .count();
    assert!(failures >= 3, "{:?}", report.failovers);
    assert!(report.drawn_faults.is_empty());
    let labels: Vec<&str> = summary.faults.iter().map(|f| f.label.as_str()).collect();
    assert_eq!(labels, ["region_outage (fail-fast) us-east-1"]);
}

// A region failing every 3 s on average for an hour: the first
// `FAULT_WINDOWS_KEPT_MAX` windows are listed, the rest counted in the
// regions entry's `drawn_faults_not_kept` (every window opens a failover
// record, so the two totals agree).
#[test]
fn drawn_windows_beyond_the_cap_are_counted_not_listed() {
    let long = scenario(
        r#"{"description": "d", "duration_ms": 3600000, "window_ms": 60000,
        "services": [{"name": "api", "instances": 1, "service_time_ms": {"kind": "constant", "value_ms": 1}}],
        "clients": [{"name": "users", "target": "api", "load": {"kind": "open_loop", "rate": {"kind": "constant", "rps": 0.1}}}],
        "topology": {
            "regions": [{"name": "us-east-1"}],
            "faults": [{"kind": "failures", "place": "us-east-1", "mttf_ms": 2000, "mttr_ms": 1000}]}}"#,
    );
    let (output, summary) = run_summary(&long, 1);
    let report = output.regions.as_ref().expect("a topology");
    assert_eq!(report.failovers.len(), FAILOVERS_KEPT_MAX);
    assert_eq!(report.drawn_faults.len(), FAULT_WINDOWS_KEPT_MAX);
    assert_eq!(
        report.drawn_faults_not_kept + FAULT_WINDOWS_KEPT_MAX as u64,
        report.failovers_not_kept + FAILOVERS_KEPT_MAX as u64
    );
    assert_eq!(summary.faults.len(), FAULT_WINDOWS_KEPT_MAX);
    assert!(summary
        .faults
        .iter()
        .all(|fault| fault.label == "failure us-east-1"));
    let written = serde_json::to_value(&summary).expect("summary serialises");
    assert_eq!(
        written["regions"]["drawn_faults_not_kept"].as_u64(),
        Some(report.drawn_faults_not_kept)
    );
}
