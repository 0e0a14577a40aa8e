//! Regions, phase 3: what phases 1 and 2 did not model yet, each shown in a
//! full run: a partition that cuts a region off from every client is an
//! outage to them (a failover record); a zone partition stops requests on
//! their way to an instance; health probes see packet loss; and a failover
//! record's recovery counts only the clients that were on the failed region.

use crate::support::{availability_between as availability, run_summary, scenario};
use sim::model::regions::FailoverRecord;

const SERVICE: &str = r#"{"name": "api", "instances": 4, "workers": 20, "queue_capacity": 100,
      "service_time_ms": {"kind": "lognormal", "median_ms": 20, "sigma": 0.3}}"#;

const REGIONS: &str = r#""regions": [{"name": "us-east-1"}, {"name": "us-west-2"}, {"name": "eu-west-1"}],
    "latency": {"preset": "aws-2026-11", "round_trips": [{"between": ["us-west-2", "eu-west-1"], "round_trip_ms": 130}]},
    "placements": [
      {"service": "api", "place": "us-east-1", "instances": 2},
      {"service": "api", "place": "eu-west-1", "instances": 2}
    ]"#;

fn only_record(summary: &sim::metrics::summary::Summary) -> &FailoverRecord {
    let regions = summary.regions.as_ref().expect("a topology");
    assert_eq!(regions.failovers.len(), 1, "{:?}", regions.failovers);
    &regions.failovers[0]
}

// regions-partition-cutoff: us-east-1 is up, but two partitions cut it off
// from us-west-2 (the users and one checker) and from eu-west-1 (the other
// checker) between 60 s and 300 s: to the users it is an outage. The run opens a `partition` failover
// record, the checkers detect it within threshold x interval, the TTL
// caches drain, and the users' availability comes back while the
// partition lasts.
#[test]
fn a_partition_cutting_a_region_off_from_its_clients_is_a_failover() {
    let path = crate::support::root().join("scenarios/regions-partition-cutoff.json");
    let scenario = sim::scenario::Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"));
    for seed in 1..=3 {
        let (output, summary) = run_summary(&scenario, seed);
        let record = only_record(&summary);
        assert_eq!(record.fault, "partition", "{record:?}");
        assert_eq!(record.region, "us-east-1");
        assert_eq!(record.fault_ms, 60_000.0);
        assert_eq!(record.fault_end_ms, Some(300_000.0));
        let detection = record.detection_ms.expect("detected");
        assert!(detection <= 30_000.0, "seed {seed}: {record:?}");
        assert_eq!(record.routing_change_ms, Some(detection));
        // Every user moved within the TTL after the routing change, plus
        // the wait for its next request (each of the 1,000 resolvers is
        // asked every 10 s on average: the 99th percentile of that wait is
        // 10 s x ln 100 = 46 s).
        let tail = record.dns_tail_ms.expect("a tail");
        assert!(tail <= 30_000.0 + 60_000.0, "seed {seed}: {record:?}");
        let recovery = record.recovery_ms.expect("recovered");
        assert!(
            (detection - 5_000.0..=detection + tail + 5_000.0).contains(&recovery),
            "seed {seed}: {record:?}"
        );
        assert_eq!(record.recovery_clients, ["users"]);
        // Nothing from us-east-1 reaches the users during the partition: the
        // dip, then eu-west-1 serves everyone.
        assert!(availability(&output.rows, 65.0, 85.0) < 0.05, "seed {seed}");
        assert_eq!(availability(&output.rows, 130.0, 290.0), 1.0, "seed {seed}");
        let east = &summary.regions.as_ref().unwrap().regions["us-east-1"];
        assert!(east.requests_partitioned > 1_000, "seed {seed}: {east:?}");
    }
}

// A partition that leaves one client origin a path to the region is no
// outage to the clients: no record.
#[test]
fn a_partition_that_leaves_a_client_a_path_opens_no_record() {
    let scenario = scenario(&format!(
        r#"{{
  "description": "a partition between us-east-1 and eu-west-1 only",
  "duration_ms": 120000,
  "window_ms": 5000,
  "services": [{SERVICE}],
  "clients": [
    {{"name": "west", "target": "api", "load": {{"kind": "open_loop", "rate": {{"kind": "constant", "rps": 20}}}}}},
    {{"name": "east", "target": "api", "load": {{"kind": "open_loop", "rate": {{"kind": "constant", "rps": 20}}}}}}
  ],
  "topology": {{
    {REGIONS},
    "routers": [{{"kind": "anycast", "name": "edge", "endpoints": ["us-east-1", "eu-west-1"], "interval_ms": 10000}}],
    "clients": [
      {{"client": "west", "origin": "us-west-2", "router": "edge"}},
      {{"client": "east", "origin": "eu-west-1", "router": "edge"}}
    ],
    "faults": [{{"kind": "partition", "from": "us-east-1", "to": "eu-west-1", "start_ms": 30000, "end_ms": 90000}}]
  }}
}}"#
    ));
    let (_, summary) = run_summary(&scenario, 1);
    assert!(summary.regions.unwrap().failovers.is_empty());
}

// Requests are addressed to regions, but a zone partition stops them on the
// way to an instance in the cut zone: with a one-way partition from the
// users' zone `a` to zone `b`, about half the attempts (the round robin's
// share of the instance in `b`) never arrive and time out, while answers
// from `b` would still get back; before and after, everything succeeds.
#[test]
fn a_zone_partition_stops_requests_to_the_cut_zone() {
    let scenario = scenario(
        r#"{
  "description": "a one-way zone partition on the request leg",
  "duration_ms": 60000,
  "window_ms": 5000,
  "services": [{"name": "api", "instances": 2, "workers": 20, "service_time_ms": {"kind": "constant", "value_ms": 5}}],
  "clients": [{"name": "users", "target": "api",
    "load": {"kind": "open_loop", "rate": {"kind": "constant", "rps": 100}},
    "policies": [{"kind": "timeout", "timeout_ms": 500}]}],
  "topology": {
    "regions": [{"name": "us-east-1", "zones": ["a", "b"]}],
    "placements": [
      {"service": "api", "place": "us-east-1/a", "instances": 1},
      {"service": "api", "place": "us-east-1/b", "instances": 1}
    ],
    "clients": [{"client": "users", "origin": "us-east-1/a"}],
    "faults": [{"kind": "partition", "from": "us-east-1/a", "to": "us-east-1/b", "direction": "one_way",
      "start_ms": 20000, "end_ms": 40000}]
  }
}"#,
    );
    for seed in 1..=3 {
        let (output, summary) = run_summary(&scenario, seed);
        let during = availability(&output.rows, 20.0, 40.0);
        assert!((0.45..0.55).contains(&during), "seed {seed}: {during}");
        assert_eq!(availability(&output.rows, 0.0, 20.0), 1.0);
        assert_eq!(availability(&output.rows, 45.0, 60.0), 1.0);
        let east = &summary.regions.as_ref().unwrap().regions["us-east-1"];
        assert!(
            (900..1_100).contains(&east.requests_partitioned),
            "seed {seed}: {east:?}"
        );
        assert_eq!(east.replies_partitioned, 0);
    }
}

fn lossy_probes(threshold: u32) -> sim::scenario::Scenario {
    scenario(&format!(
        r#"{{
  "description": "health probes over a lossy link",
  "duration_ms": 600000,
  "window_ms": 5000,
  "services": [{SERVICE}],
  "clients": [{{"name": "users", "target": "api", "load": {{"kind": "open_loop", "rate": {{"kind": "constant", "rps": 20}}}}}}],
  "topology": {{
    {REGIONS},
    "routers": [{{"kind": "dns", "name": "route53", "endpoints": ["us-east-1", "eu-west-1"],
      "checkers": ["us-west-2"], "interval_ms": 10000, "failure_threshold": {threshold}, "ttl_ms": 10000,
      "policy": {{"kind": "failover", "order": ["us-east-1", "eu-west-1"], "failback": true}}}}],
    "clients": [{{"client": "users", "origin": "us-east-1", "router": "route53"}}],
    "faults": [{{"kind": "degradation", "from": "us-west-2", "to": "us-east-1", "direction": "one_way",
      "loss": 0.5, "start_ms": 0, "end_ms": 600000}}]
  }}
}}"#
    ))
}

// The `loss` of a degradation applies to health probes too: one checker
// behind a link losing half its packets, with a failure threshold of 1,
// marks the healthy primary down and up again many times, and users are
// sent to eu-west-1 for nothing; a threshold of 10 (ten losses in a row,
// 1 in 1,024) rides it out.
#[test]
fn lossy_probes_cause_needless_failovers_with_a_low_threshold() {
    for seed in 1..=3 {
        let (_, flapping) = run_summary(&lossy_probes(1), seed);
        let regions = flapping.regions.as_ref().unwrap();
        let changes = regions.routers["route53"]["health_changes"];
        assert!(changes >= 20, "seed {seed}: {changes} health changes");
        assert!(regions.regions["eu-west-1"].routed > 1_000, "seed {seed}");
        assert_eq!(flapping.availability, 1.0);
        let (_, steady) = run_summary(&lossy_probes(10), seed);
        let regions = steady.regions.as_ref().unwrap();
        assert!(
            regions.routers["route53"]["health_changes"] <= 2,
            "seed {seed}"
        );
        assert!(regions.routers["route53"]["probes"] >= 100);
    }
}

// Two client populations behind anycast (nearest): `east` (1 request/s)
// uses us-east-1, `west` (400 requests/s) eu-west-1. us-east-1 fails at
// 60 s. The record's recovery counts only `east`: it waits for detection,
// while the availability of all requests never dips by a point (east is a
// quarter of a percent of the traffic) and would call it recovered at once.
#[test]
fn recovery_counts_only_the_clients_of_the_failed_region() {
    let scenario = scenario(&format!(
        r#"{{
  "description": "recovery of the clients a failover hit",
  "duration_ms": 240000,
  "window_ms": 5000,
  "services": [{SERVICE}],
  "clients": [
    {{"name": "east", "target": "api", "load": {{"kind": "open_loop", "rate": {{"kind": "constant", "rps": 1}}}}}},
    {{"name": "west", "target": "api", "load": {{"kind": "open_loop", "rate": {{"kind": "constant", "rps": 400}}}}}}
  ],
  "topology": {{
    {REGIONS},
    "routers": [{{"kind": "anycast", "name": "edge", "endpoints": ["us-east-1", "eu-west-1"], "interval_ms": 10000}}],
    "clients": [
      {{"client": "east", "origin": "us-east-1", "router": "edge"}},
      {{"client": "west", "origin": "eu-west-1", "router": "edge"}}
    ],
    "faults": [{{"kind": "region_outage", "region": "us-east-1", "start_ms": 60000, "end_ms": 240000}}]
  }}
}}"#
    ));
    for seed in 1..=3 {
        let (output, summary) = run_summary(&scenario, seed);
        let record = only_record(&summary);
        assert_eq!(record.recovery_clients, ["east"]);
        let detection = record.detection_ms.unwrap();
        let recovery = record.recovery_ms.unwrap();
        assert!(
            recovery >= detection - 5_000.0 && recovery <= detection + 10_000.0,
            "seed {seed}: {record:?}"
        );
        assert!(recovery >= 15_000.0, "seed {seed}: {record:?}");
        // All requests together stay within a point of their baseline.
        let all = sim::metrics::summary::recovery_ms(
            &output.rows,
            sim::engine::SimTime::from_ms(60_000),
            1.0,
        );
        assert_eq!(all, Some(0.0), "seed {seed}");
    }
}
