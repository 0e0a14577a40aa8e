//! Regions, phase 1: `sim policy router` on the example files in
//! `docs/examples/router/` must print exactly the lines stored in
//! `tests/golden/router/<name>.jsonl` (refresh with `UPDATE_GOLDEN=1 cargo
//! test --test integration regions` and review the diff); a scenario's
//! `topology` section is checked with one exact error line and exit 2; and a
//! scenario with a topology routes its traffic through it (phase 2: the
//! scenarios and fidelity tests are in `regions_runs.rs`).

use crate::support::{policy_example, run_summary, scenario, temp_dir, Sim};
use serde_json::Value;

/// Runs the router example `name`, checks it against its golden lines and
/// returns them parsed.
#[track_caller]
fn example(name: &str) -> Vec<Value> {
    policy_example("router", "router", name)
}

/// `(at_ms, decision, client, region)` of each lookup line.
fn lookups(lines: &[Value]) -> Vec<(u64, String, String, String)> {
    lines
        .iter()
        .filter(|line| line["event"] == "lookup")
        .map(|line| {
            (
                line["at_ms"].as_u64().unwrap(),
                line["decision"].as_str().unwrap().to_string(),
                line["state"]["client"].as_str().unwrap().to_string(),
                line["state"]["region"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn lookup(at_ms: u64, decision: &str, client: &str, region: &str) -> (u64, String, String, String) {
    (at_ms, decision.into(), client.into(), region.into())
}

// Route 53 style failover with three checkers, 10 s probes, threshold 3 and
// a 60 s TTL: us-east-1 fails at 20 s, the last checker's third failure at
// 46.7 s marks it unhealthy (0 of 3 checkers, not more than 18%), and then
// each client moves when its own cache expires: the TTL client at 65 s, the
// browser at 65 s (60 s floor), the JVM at 90 s (TTL + 30 s), and the
// `forever` client never.
#[test]
fn dns_example_shows_detection_then_the_client_tail() {
    let lines = example("dns");
    let unhealthy: Vec<u64> = lines
        .iter()
        .filter(|line| line["decision"] == "unhealthy")
        .map(|line| line["at_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(unhealthy, vec![46_666]);
    assert_eq!(
        lookups(&lines)[4..],
        vec![
            lookup(50_000, "cached", "plain", "us-east-1"),
            lookup(65_000, "resolved", "plain", "eu-west-1"),
            lookup(65_000, "resolved", "browser-user", "eu-west-1"),
            lookup(75_000, "cached", "jvm-service", "us-east-1"),
            lookup(90_000, "resolved", "jvm-service", "eu-west-1"),
            lookup(3_600_000, "cached", "batch-job", "us-east-1"),
        ]
    );
}

// Envoy's priority load: P0 (us-east-1 weight 2, us-west-2 weight 1) loses
// us-east-1: health 140 x 4 / 10 = 56, so P1 gets 44%; when eu-west-1 drops
// to 20% and us-west-2 to 25%, every level is below the 50% panic threshold
// and load goes by host count.
#[test]
fn priority_example_follows_envoys_load_calculation() {
    let lines = example("priority");
    let loads: Vec<Value> = lines
        .iter()
        .filter(|line| line["event"] == "hosts")
        .map(|line| line["state"]["load"].clone())
        .collect();
    assert_eq!(
        loads,
        vec![
            serde_json::json!([100, 0]),
            serde_json::json!([100, 0]),
            serde_json::json!([100, 0]),
            serde_json::json!([56, 44]),
            serde_json::json!([50, 50]),
            serde_json::json!([50, 50]),
        ]
    );
    assert_eq!(lines[6]["state"]["panic"], serde_json::json!([true, true]));
}

// The chapter's active-passive follows each request's single health check:
// every failed check sends that request to the secondary, unchecked, and
// the route flips back and forth with the checks.
#[test]
fn chapter_active_passive_example_flips_with_every_check() {
    let lines = example("chapter-active-passive");
    let regions: Vec<&str> = lines
        .iter()
        .map(|line| line["state"]["region"].as_str().unwrap())
        .collect();
    assert_eq!(
        regions,
        vec!["us-east", "eu-west", "us-east", "eu-west", "eu-west"]
    );
    assert_eq!(lines[4]["state"]["counters"]["flips"], 3);
}

/// A scenario with one service placed in two regions and a client routed by `router`.
fn with_topology(topology: &str) -> String {
    format!(
        r#"{{
  "description": "regions test",
  "duration_ms": 10000,
  "services": [{{"name": "api", "instances": 4, "service_time_ms": {{"kind": "constant", "value_ms": 5}}}}],
  "clients": [{{"name": "users", "target": "api", "load": {{"kind": "open_loop", "rate": {{"kind": "constant", "rps": 50}}}}}}],
  "topology": {topology}
}}"#
    )
}

const REGIONS: &str = r#""regions": [{"name": "us-east-1", "zones": ["a", "b"]}, {"name": "eu-west-1"}, {"name": "ap-southeast-1"}],
    "latency": {"preset": "aws-2026-11", "round_trips": [{"between": ["eu-west-1", "ap-southeast-1"], "round_trip_ms": 170}]}"#;

const PLACED: &str = r#""placements": [{"service": "api", "place": "us-east-1/a", "instances": 2}, {"service": "api", "place": "eu-west-1", "instances": 2}]"#;

#[track_caller]
fn rejects(topology: &str, message: &str) {
    let dir = temp_dir(&format!("regions-{:x}", fxhash(topology)));
    let file = dir.join("bad.json");
    std::fs::write(&file, with_topology(topology)).expect("write scenario");
    let path = file.display().to_string();
    Sim::new()
        .args(["validate", &path])
        .code(2)
        .stdout("")
        .stderr(&format!("error: {path}: {message}\n"))
        .run();
}

fn fxhash(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100000001b3)
    })
}

// Each kind of bad topology input gets one line with the JSON path and what
// is allowed, and exit code 2.
#[test]
fn bad_topologies_name_the_path_and_what_is_allowed() {
    rejects(
        &format!(
            r#"{{{REGIONS}, "placements": [{{"service": "api", "place": "us-west-9", "instances": 4}}]}}"#
        ),
        r#"topology.placements[0].place: unknown region "us-west-9"; the regions are: us-east-1, eu-west-1, ap-southeast-1"#,
    );
    rejects(
        r#"{"regions": [{"name": "us-east-1"}, {"name": "us-west-2"}, {"name": "eu-west-1"}], "latency": {"preset": "aws-2026-11"}}"#,
        r#"topology.latency: no latency from "us-west-2" to "eu-west-1" (the preset "aws-2026-11" has no such pair); give it in round_trips or one_way"#,
    );
    rejects(
        &format!(
            r#"{{{REGIONS}, {PLACED}, "routers": [{{"kind": "dns", "name": "g"}}], "clients": [{{"client": "users", "origin": "eu-west-1", "router": "g"}}]}}"#
        ),
        r#"topology.clients[0].router: router "g" can send client "users" to region "ap-southeast-1", which has no instance of service "api"; place some there or remove the region from the router"#,
    );
    rejects(
        &format!(
            r#"{{{REGIONS}, {PLACED}, "routers": [{{"kind": "anycast", "name": "g", "endpoints": ["us-east-1", "eu-west-1"], "policy": {{"kind": "weighted", "weights": [0, 0]}}}}]}}"#
        ),
        "topology.routers[0].policy.weights: weights must sum to more than 0 (got all 0)",
    );
    rejects(
        &format!(
            r#"{{{REGIONS}, "routers": [{{"kind": "dns", "name": "g", "ttl_ms": 100000000}}]}}"#
        ),
        "topology.routers[0].ttl_ms: must be in [0, 86400000] (got 100000000)",
    );
    rejects(
        &format!(
            r#"{{{REGIONS}, "routers": [{{"kind": "dns", "name": "g", "failure_threshold": 11}}]}}"#
        ),
        "topology.routers[0].failure_threshold: must be in [1, 10] (got 11)",
    );
    rejects(
        &format!(r#"{{{REGIONS}, "routers": [{{"kind": "dns", "name": "g", "interval_ms": 5000}}]}}"#),
        "topology.routers[0].interval_ms: must be 10000 or 30000 (Route 53's fast and standard intervals) (got 5000)",
    );
    rejects(
        &format!(
            r#"{{{REGIONS}, {PLACED}, "faults": [{{"kind": "zone_outage", "zone": "eu-west-1/a", "start_ms": 0, "end_ms": 10}}]}}"#
        ),
        r#"topology.faults[0].zone: unknown zone "a" in region "eu-west-1"; its zones are: none"#,
    );
    rejects(
        &format!(
            r#"{{{REGIONS}, "placements": [{{"service": "api", "place": "eu-west-1", "instances": 3}}]}}"#
        ),
        r#"topology.placements[0].instances: the placements of "api" hold 3 instances but services[0].instances is 4; they must match"#,
    );
    rejects(
        &format!(
            r#"{{{REGIONS}, {PLACED}, "clients": [{{"client": "users", "origin": "us-east-1", "resolvers": [{{"class": "jvm", "share": 0.5}}]}}]}}"#
        ),
        "topology.clients[0].resolvers: shares must sum to 1 (got 0.5)",
    );
}

/// A full topology that uses every section.
fn full_topology() -> String {
    format!(
        r#"{{{REGIONS}, {PLACED},
    "routers": [{{"kind": "dns", "name": "g", "endpoints": ["us-east-1", "eu-west-1"], "interval_ms": 10000,
                  "stretching_resolvers": {{"fraction": 0.05}}}}],
    "clients": [{{"client": "users", "origin": "ap-southeast-1", "router": "g",
                  "resolvers": [{{"class": "ttl", "share": 0.6}}, {{"class": "jvm", "share": 0.3}}, {{"class": "forever", "share": 0.1}}]}}],
    "faults": [
      {{"kind": "region_outage", "region": "us-east-1", "start_ms": 1000, "end_ms": 5000, "mode": "hang"}},
      {{"kind": "partition", "from": "eu-west-1", "to": "us-east-1/a", "direction": "one_way", "start_ms": 0, "end_ms": 100}},
      {{"kind": "checker_partition", "router": "g", "region": "eu-west-1", "checkers": [0, 2], "start_ms": 0, "end_ms": 100}},
      {{"kind": "degradation", "from": "eu-west-1", "to": "ap-southeast-1", "added_latency_ms": {{"kind": "constant", "value_ms": 30}}, "loss": 0.01, "start_ms": 0, "end_ms": 100}},
      {{"kind": "failures", "place": "eu-west-1", "mttf_ms": 3600000, "mttr_ms": 60000}},
      {{"kind": "failures", "service": "api", "instance": 3, "mttf_ms": 3600000, "mttr_ms": 60000, "mode": "hang"}}
    ]}}"#
    )
}

// A valid topology resolves names to places: instance 2 of api is in
// eu-west-1, the client's router is the DNS one, and its checkers default to
// one per region.
#[test]
fn a_full_topology_resolves_into_places() {
    let checked = scenario(&with_topology(&full_topology()));
    let topology = checked.topology.as_ref().expect("topology");
    assert_eq!(
        topology.place_name(topology.instance_place(0, 1).unwrap()),
        "us-east-1/a"
    );
    assert_eq!(
        topology.place_name(topology.instance_place(0, 2).unwrap()),
        "eu-west-1"
    );
    assert_eq!(topology.instances_in(0, 1), 2);
    assert_eq!(topology.clients[0].router, Some(0));
    assert_eq!(topology.routers[0].regions(), vec![0, 1]);
    assert_eq!(topology.faults.len(), 6);
    let network = sim::topology::faults::network(topology.latency.clone(), &topology.faults);
    let at = sim::engine::SimTime::from_ms(50);
    let (us_a, eu) = (
        sim::topology::Place::zone(0, 0),
        sim::topology::Place::region(1),
    );
    assert!(network.reachable(at, us_a, eu));
    assert!(!network.reachable(at, eu, us_a));
}

// A topology changes a run: the same scenario without one sends every
// request to the one implicit region; with an anycast router weighted 3:1
// over two regions, about three quarters of the attempts go to us-east-1,
// and the rest pay the 81 ms round trip to eu-west-1.
#[test]
fn a_topology_splits_traffic_by_weight() {
    let topology = format!(
        r#"{{{REGIONS}, {PLACED},
    "routers": [{{"kind": "anycast", "name": "ga", "endpoints": ["us-east-1", "eu-west-1"], "policy": {{"kind": "weighted", "weights": [3, 1]}}}}],
    "clients": [{{"client": "users", "origin": "us-east-1", "router": "ga"}}]}}"#
    );
    let plain = scenario(&with_topology("null"));
    let placed = scenario(&with_topology(&topology));
    let (_, a) = run_summary(&plain, 42);
    let (_, b) = run_summary(&placed, 42);
    assert!(a.regions.is_none());
    let regions = b.regions.as_ref().expect("a regions section");
    let (east, west) = (&regions.regions["us-east-1"], &regions.regions["eu-west-1"]);
    let total = east.routed + west.routed;
    assert_eq!(total, b.client_attempts);
    let share = east.routed as f64 / total as f64;
    assert!((0.70..0.80).contains(&share), "us-east-1 share {share}");
    assert_eq!(west.arrivals, west.routed);
    assert_eq!(b.availability, 1.0);
    // The cross-region requests pay the round trip: p99 above 81 ms, p50 not.
    assert!(
        b.latency_ms.p99 > 81.0 && b.latency_ms.p50 < 20.0,
        "{:?}",
        b.latency_ms
    );
    assert!(a.latency_ms.p99 < 20.0);
}
