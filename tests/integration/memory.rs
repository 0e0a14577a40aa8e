//! Bounded memory (issue 6): the estimate refuses scenarios too large for
//! `limits.memory_mb` at validation, `limits.in_flight_max` stops runs whose
//! calls pile up, and input files are read only when regular and small.

use crate::support::{scenario, scenario_files, temp_dir, Sim};
use sim::engine::SimTime;
use sim::metrics::Outcome;
use sim::model::{run, RunError};
use sim::scenario::memory::{self, MIB};
use sim::scenario::Scenario;

// Regression: 10,000 instances each with a fallback cache of 1,000,000 keys
// aborted with "memory allocation failed" (exit 134) at setup although
// `sim validate` accepted them; now validation refuses them, naming the
// cache's keys as the largest part.
#[test]
fn huge_fallback_caches_are_refused_at_validation() {
    let file = "tests/fixtures/bad/huge-fallback-caches.json";
    let message = format!("error: {file}: services[0].dependencies.calls[0].policies[0].cache.keys: needs up to 457764 MiB of the 458541 MiB the scenario may need (an upper bound), more than limits.memory_mb 2048; lower it, or raise limits.memory_mb (at most 1048576)\n");
    Sim::new()
        .args(["validate", file])
        .code(2)
        .stderr(&message)
        .run();
    Sim::new()
        .args(["run", file, "--no-charts", "--out", "/nonexistent/never"])
        .code(2)
        .stderr(&message)
        .run();
}

// Regression: 16 nested hedges with delay 0 before a slow service grew by
// about 230 bytes per event (2 GB at 4 M events, far more at the default
// event limit); at full size the in-flight limit now stops the run cleanly,
// with the line that reproduces it.
#[test]
fn nested_hedges_stop_at_the_in_flight_limit() {
    Sim::new()
        .args([
            "run",
            "tests/fixtures/nested-hedges.json",
            "--no-charts",
            "--out",
            "/nonexistent/never",
        ])
        .code(2)
        .stderr("error: tests/fixtures/nested-hedges.json: the run had more than limits.in_flight_max (1000000) calls in flight (policy invocations and attempts) at 0.928s; lower the load or the fan-out of the policies, or raise limits.in_flight_max (it counts toward limits.memory_mb)\nreproduce: sim run tests/fixtures/nested-hedges.json --seed 1\n")
        .run();
}

/// A scenario whose calls to `api` are held by a hang outage from 1 s to
/// 100 s, with the client's `policies` and `limits` as given.
fn hang_outage(policies: &str, limits: &str) -> Scenario {
    scenario(&format!(
        r#"{{
          "description": "a hang outage holds every call",
          "duration_ms": 20000,
          "services": [{{"name": "api", "service_time_ms": {{"kind": "constant", "value_ms": 1}}}}],
          "clients": [{{"name": "users", "target": "api",
                        "load": {{"kind": "open_loop", "arrival": "uniform", "rate": {{"kind": "constant", "rps": 1000}}}},
                        "policies": {policies}}}],
          "faults": [{{"kind": "outage", "service": "api", "start_ms": 1000, "end_ms": 100000, "mode": "hang"}}],
          "limits": {limits}
        }}"#
    ))
}

// Held calls count toward the in-flight limit (which replaced the separate
// cap on held calls): with room for 2,000 calls in flight, a hang outage
// from 1 s fills it after about 2 s of 1,000 calls a second (each call is a
// transport frame and an attempt), and the run stops there.
#[test]
fn held_calls_count_toward_the_in_flight_limit() {
    let error = run(&hang_outage("[]", r#"{"in_flight_max": 2000}"#), 1)
        .err()
        .expect("the limit stops the run");
    let RunError::InFlightLimit { in_flight_max, at } = error else {
        panic!("expected the in-flight limit, got {error:?}");
    };
    assert_eq!(in_flight_max, 2_000);
    assert!(
        at > SimTime::from_ms(1_900) && at < SimTime::from_ms(2_100),
        "stopped at {at}"
    );
    // With the default limit the same outage runs to the end.
    assert!(run(&hang_outage("[]", "{}"), 1).is_ok());
}

// A call abandoned by the chapter's timeout (which does not cancel its inner
// call) keeps only its attempt, held by the hang: the transport frame that
// waited for an answer nobody will read is freed when the timeout fires.
// So each held call counts once toward the limit, not twice, and 2,000
// calls in flight last about twice as long as without a timeout above.
#[test]
fn abandoned_calls_hold_only_their_attempt() {
    // A 100 ms chapter timeout on the client.
    let scenario = hang_outage(
        r#"[{"kind": "timeout", "timeout_ms": 100}]"#,
        r#"{"in_flight_max": 2000}"#,
    );
    let error = run(&scenario, 1).err().expect("the limit stops the run");
    let RunError::InFlightLimit { at, .. } = error else {
        panic!("expected the in-flight limit, got {error:?}");
    };
    // About 1,800 held attempts plus 100 ms of calls still waiting (a top
    // frame, a transport frame and an attempt each): 1 s + about 1.8 s.
    assert!(
        at > SimTime::from_ms(2_700) && at < SimTime::from_ms(2_950),
        "stopped at {at}"
    );
}

// A burst larger than the in-flight limit stops the run inside the burst,
// without first creating every request of it.
#[test]
fn a_burst_beyond_the_in_flight_limit_stops_the_run() {
    let scenario = scenario(
        r#"{
          "description": "one burst of ten million requests",
          "duration_ms": 10000,
          "services": [{"name": "api", "service_time_ms": {"kind": "constant", "value_ms": 1}}],
          "clients": [{"name": "users", "target": "api",
                       "load": {"kind": "open_loop", "rate": {"kind": "constant", "rps": 0},
                                "bursts": [{"at_ms": 5000, "count": 10000000}]}}],
          "limits": {"in_flight_max": 1000}
        }"#,
    );
    assert_eq!(
        run(&scenario, 1).err(),
        Some(RunError::InFlightLimit {
            in_flight_max: 1_000,
            at: SimTime::from_ms(5_000)
        })
    );
}

fn invalid(json: &str) -> String {
    Scenario::from_bytes("test.json", "test", json.as_bytes())
        .expect_err("invalid")
        .to_string()
}

// The new limits are range-checked like every other setting.
#[test]
fn memory_limits_are_range_checked() {
    let with_limits = |limits: &str| {
        format!(
            r#"{{"description": "d", "duration_ms": 1000,
                "services": [{{"name": "api", "service_time_ms": {{"kind": "constant", "value_ms": 1}}}}],
                "clients": [{{"name": "c", "target": "api", "load": {{"kind": "open_loop", "rate": {{"kind": "constant", "rps": 1}}}}}}],
                "limits": {limits}}}"#
        )
    };
    assert_eq!(
        invalid(&with_limits(r#"{"in_flight_max": 0}"#)),
        "test.json: limits.in_flight_max: must be in [1, 1000000000] (got 0)"
    );
    assert_eq!(
        invalid(&with_limits(r#"{"memory_mb": 8}"#)),
        "test.json: limits.memory_mb: must be in [64, 1048576] (got 8)"
    );
    // A large in-flight limit is paid for in the budget.
    assert_eq!(
        invalid(&with_limits(r#"{"in_flight_max": 100000000}"#)),
        "test.json: limits.in_flight_max: needs up to 68665 MiB of the 68713 MiB the scenario may need (an upper bound), more than limits.memory_mb 2048; lower it, or raise limits.memory_mb (at most 1048576)"
    );
}

// The budget names whichever part is largest: here 10,000 instances'
// adaptive timeouts with 10,000-sample windows.
#[test]
fn the_largest_part_is_named() {
    let error = invalid(
        r#"{"description": "d", "duration_ms": 1000,
            "services": [
              {"name": "front", "instances": 10000, "service_time_ms": {"kind": "constant", "value_ms": 1},
               "dependencies": {"calls": [{"service": "back", "policies": [{"kind": "adaptive_timeout", "samples": 10000}]}]}},
              {"name": "back", "service_time_ms": {"kind": "constant", "value_ms": 1}}],
            "clients": [{"name": "c", "target": "front", "load": {"kind": "open_loop", "rate": {"kind": "constant", "rps": 1}}}],
            "limits": {"in_flight_max": 1000}}"#,
    );
    assert_eq!(
        error,
        "test.json: services[0].dependencies.calls[0].policies[0].samples: needs up to 6104 MiB of the 6197 MiB the scenario may need (an upper bound), more than limits.memory_mb 2048; lower it, or raise limits.memory_mb (at most 1048576)"
    );
}

// Every committed scenario fits the default budget with room to spare, and
// its estimate counts the in-flight limit.
#[test]
fn committed_scenarios_fit_the_default_budget() {
    for file in scenario_files() {
        let scenario = Scenario::load(&file).expect("valid");
        let estimate = memory::estimate(&scenario);
        let total_mb = estimate.total_bytes().div_ceil(MIB);
        assert!(total_mb <= 1_536, "{}: {total_mb} MiB", file.display());
        assert!(estimate
            .parts
            .iter()
            .any(|part| part.path == "limits.in_flight_max"));
    }
}

/// `sim validate FILE` fails with `error: FILE: cannot read scenario file: MESSAGE`.
fn unreadable(file: &str, message: &str) {
    Sim::new()
        .args(["validate", file])
        .code(2)
        .stderr(&format!(
            "error: {file}: cannot read scenario file: {message}\n"
        ))
        .run();
}

// Regression: `sim validate /dev/zero` grew until memory ran out. Only
// regular files are read.
#[test]
fn devices_and_directories_are_not_read() {
    unreadable(
        "/dev/zero",
        "not a regular file (it is a character device); give the path of a JSON file",
    );
    unreadable(
        "scenarios",
        "not a regular file (it is a directory); give the path of a JSON file",
    );
}

// Regression: a FIFO with no writer made `sim validate` hang in `open`; it
// is refused before opening.
#[cfg(unix)]
#[test]
fn a_fifo_is_refused_without_waiting_for_a_writer() {
    let dir = temp_dir("memory-fifo");
    let fifo = dir.join("scenario.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    unreadable(
        fifo.to_str().expect("utf-8 path"),
        "not a regular file (it is a named pipe); give the path of a JSON file",
    );
}

// A file over the 16 MiB cap is refused before parsing, for scenarios and
// for `sim policy`'s config and events alike.
#[test]
fn input_files_over_the_cap_are_refused() {
    let dir = temp_dir("memory-large");
    let large = dir.join("large.json");
    std::fs::write(&large, vec![b' '; 16 * 1024 * 1024 + 1]).expect("write");
    let large = large.to_str().expect("utf-8 path");
    let retry = dir.join("retry.json");
    std::fs::write(&retry, r#"{"kind": "retry"}"#).expect("write");
    let cap = "the file is larger than 16 MiB (16777216 bytes), the most an input file may be";
    unreadable(large, cap);
    Sim::new()
        .args([
            "policy",
            "retry",
            "--config",
            large,
            "--input",
            "tests/fixtures/policy/decreasing-time.json",
        ])
        .code(2)
        .stderr(&format!("error: {large}: cannot read file: {cap}\n"))
        .run();
    Sim::new()
        .args([
            "policy",
            "retry",
            "--config",
            retry.to_str().expect("utf-8 path"),
            "--input",
            "/dev/zero",
        ])
        .code(2)
        .stderr_contains(
            "error: /dev/zero: cannot read file: not a regular file (it is a character device)",
        )
        .run();
}

// With a topology, an attempt the network drops on the way leaves a
// transport frame that nothing will ever answer. Under the chapter's
// abandoning timeout it used to stay for the rest of the run: a 20 s
// partition at 1,000 calls a second piled up one frame per call and hit a
// limit of 2,000 calls in flight after about 2 s. Freed when the timeout
// abandons it, each call holds its frames for 100 ms, and the run ends.
#[test]
fn attempts_dropped_by_a_partition_do_not_pile_up() {
    let scenario = scenario(
        r#"{
          "description": "a partition drops every call to the api",
          "duration_ms": 20000,
          "services": [{"name": "api", "service_time_ms": {"kind": "constant", "value_ms": 1}}],
          "clients": [{"name": "users", "target": "api",
                       "load": {"kind": "open_loop", "arrival": "uniform", "rate": {"kind": "constant", "rps": 1000}},
                       "policies": [{"kind": "timeout", "timeout_ms": 100}]}],
          "topology": {
            "regions": [{"name": "us-east-1"}, {"name": "us-west-2"}],
            "latency": {"preset": "aws-2026-11"},
            "placements": [{"service": "api", "place": "us-east-1", "instances": 1}],
            "routers": [{"kind": "dns", "name": "route53", "endpoints": ["us-east-1"],
                         "checkers": ["us-west-2"], "interval_ms": 10000, "failure_threshold": 3,
                         "ttl_ms": 30000, "policy": {"kind": "failover", "order": ["us-east-1"], "failback": true}}],
            "clients": [{"client": "users", "origin": "us-west-2", "router": "route53"}],
            "faults": [{"kind": "partition", "from": "us-east-1", "to": "us-west-2",
                        "start_ms": 0, "end_ms": 30000}]
          },
          "limits": {"in_flight_max": 2000}
        }"#,
    );
    let output = run(&scenario, 1).expect("the run ends without reaching the limit");
    let totals = &output.recorder.totals;
    assert_eq!(totals.total(), output.recorder.issued);
    assert!(output.recorder.issued > 19_000);
    assert_eq!(
        totals.get(Outcome::Timeout),
        totals.total(),
        "the partition drops every call"
    );
}

/// One api instance in zone a calls the database `orders` (primary pg-a in
/// zone b) at 1,000 calls a second through a 100 ms timeout that abandons
/// (`on_timeout` as given); a partition cuts zone a from zone b for the
/// whole run, so every operation sent to pg-a is dropped on the way. The
/// lease detector's nodes (zones b and c) still see each other: nobody
/// fails over, and every call times out.
fn database_behind_a_partition(on_timeout: &str) -> Scenario {
    scenario(&format!(
        r#"{{"description": "a partition drops every database call of the api",
        "duration_ms": 20000,
        "network": {{"latency_ms": {{"kind": "constant", "value_ms": 0.5}}}},
        "services": [{{"name": "api", "instances": 1, "workers": 1024,
            "service_time_ms": {{"kind": "constant", "value_ms": 1}},
            "dependencies": {{"calls": [{{"database": "orders", "policies": [
                {{"kind": "timeout", "timeout_ms": 100, "on_timeout": "{on_timeout}"}}]}}]}}}}],
        "clients": [{{"name": "users", "target": "api",
            "load": {{"kind": "open_loop", "arrival": "uniform", "rate": {{"kind": "constant", "rps": 1000}}}}}}],
        "topology": {{
            "regions": [{{"name": "us-east-1", "zones": ["a", "b", "c"]}}],
            "latency": {{"preset": "aws-2026-11"}},
            "placements": [{{"service": "api", "place": "us-east-1/a", "instances": 1}}],
            "faults": [{{"kind": "partition", "from": "us-east-1/a", "to": "us-east-1/b",
                "start_ms": 0, "end_ms": 30000}}]}},
        "databases": [{{"name": "orders",
            "nodes": [{{"name": "pg-a", "region": "us-east-1", "zone": "b"}},
                      {{"name": "pg-b", "region": "us-east-1", "zone": "c"}},
                      {{"name": "pg-c", "region": "us-east-1", "zone": "c"}}],
            "replication": {{"mode": "async"}},
            "clients": {{"write_fraction": 0.5}}}}],
        "limits": {{"in_flight_max": 2000}}}}"#
    ))
}

// The database twin of `attempts_dropped_by_a_partition_do_not_pile_up`:
// an abandoned database call whose operation was dropped on the way waits
// for an answer that never comes. Its transport frame is freed when the
// timeout abandons it, so 20 s of calls at 1,000 a second (20,000 dropped
// operations) run within 2,000 calls in flight. Before the fix the
// adapter kept every such frame and the run stopped with the in-flight
// limit at about 2 s.
#[test]
fn database_attempts_dropped_by_a_partition_do_not_pile_up() {
    for on_timeout in ["abandon", "cancel"] {
        let scenario = database_behind_a_partition(on_timeout);
        let output = run(&scenario, 1)
            .unwrap_or_else(|error| panic!("{on_timeout}: the run hit a limit: {error:?}"));
        let totals = &output.recorder.totals;
        assert_eq!(totals.total(), output.recorder.issued, "{on_timeout}");
        assert!(output.recorder.issued > 19_000, "{on_timeout}");
        // The api's timeout fails the call: the client sees an error.
        assert_eq!(
            totals.get(Outcome::Error),
            totals.total(),
            "{on_timeout}: the partition drops every call"
        );
        let db = &output.databases[0];
        assert_eq!(db.summary.totals.issued, 0, "{on_timeout}: {db:?}");
        assert!(db.failovers.is_empty(), "{on_timeout}");
    }
}

/// The first run's peak RSS in KiB that `sim bench` prints for the held
/// requests of `file` over `seconds` of virtual time.
#[cfg(target_os = "linux")]
fn held_requests_peak_kib(file: &str, seconds: u64, dir: &std::path::Path) -> u64 {
    let mut held: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(crate::support::root().join(file)).unwrap())
            .unwrap();
    held["duration_ms"] = (seconds * 1000).into();
    held["faults"][0]["end_ms"] = ((seconds + 1) * 1000).into();
    let path = dir.join(format!("held-{seconds}.json"));
    std::fs::write(&path, held.to_string()).unwrap();
    let output = Sim::new()
        .args(["bench", path.to_str().unwrap(), "--repeat", "1"])
        .run();
    let peak = output
        .stdout
        .trim_end()
        .strip_suffix(" KiB (first run)")
        .and_then(|line| line.rsplit_once("peak RSS "))
        .unwrap_or_else(|| panic!("no peak RSS in {:?}", output.stdout));
    peak.1.parse().unwrap()
}

// Issue 11: at most 150 bytes per request in flight. A request held by a
// hang (no policies) keeps its request, its transport, its job and its
// place in the held list; from 20 to 40 s at 10,000 requests a second the
// peak RSS of `sim bench`'s first run grows by about 200,000 of them
// (`benches/held-request-bytes.sh` measures the same). Through retry,
// breaker and timeout the three layer frames and a pending timer add about
// 400 bytes more.
#[cfg(target_os = "linux")]
#[test]
fn a_held_request_costs_at_most_150_bytes() {
    let dir = temp_dir("memory-held");
    for (file, low, high) in [
        ("benches/held-requests.json", 80, 150),
        ("benches/held-requests-policies.json", 400, 600),
    ] {
        let short = held_requests_peak_kib(file, 20, &dir);
        let long = held_requests_peak_kib(file, 40, &dir);
        let bytes = long.saturating_sub(short) * 1024 / 200_000;
        assert!(
            (low..=high).contains(&bytes),
            "{file}: {bytes} bytes per held request (peak RSS {short} KiB at 20 s, {long} KiB at 40 s), expected {low} to {high}"
        );
    }
}
