//! The `databases` section: bad input is one line with the file, the JSON
//! path and what is allowed (exit 2, nothing written), and a database that
//! nobody calls changes nothing else in a run.

use crate::support::{bad_fixture, run_summary, scenario, Sim};
use sim::database::DetectionConfig;
use sim::scenario::Scenario;
use std::path::Path;

fn bad(name: &str, message: &str) {
    bad_fixture(name, message);
}

// The issue's bad inputs, each one line naming file, path and what is allowed.
#[test]
fn invalid_database_sections_name_file_path_and_allowed_values() {
    bad(
        "database-quorum-too-large",
        "databases[0].detection.quorum: must be in [1, 3] (the observers) (got 4)",
    );
    bad(
        "database-write-fraction",
        "databases[0].clients.write_fraction: must be a probability in [0, 1] (got -0.2)",
    );
    bad(
        "database-lease-ttl",
        "databases[0].detection.ttl_ms: must be >= loop_wait_ms + 2 x retry_timeout_ms = 30000 (Patroni's rule: the leader must demote before its key expires) (got 25000)",
    );
    bad(
        "database-unknown-node",
        "databases[0].primary: unknown node \"db-central\"; the nodes are: db-east, db-west",
    );
}

// The GitHub example validates with its quorum detector, and `sim validate` accepts it.
#[test]
fn the_github_example_validates() {
    let file = "docs/examples/databases/github-2018-10-21.json";
    let scenario = Scenario::load(Path::new(file)).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(scenario.databases.len(), 1);
    let cluster = &scenario.databases[0];
    assert_eq!(cluster.nodes.len(), 4);
    assert!(matches!(cluster.detection, DetectionConfig::Quorum { .. }));
    Sim::new().args(["validate", file]).code(0).run();
}

// A database that no service calls changes nothing but its own section of
// the summary and the event count (its detector and window samples run).
#[test]
fn a_database_nobody_calls_changes_nothing_else() {
    let without = r#"{"description": "d", "duration_ms": 5000,
        "services": [{"name": "api", "service_time_ms": {"kind": "exponential", "mean_ms": 5}}],
        "clients": [{"name": "c", "target": "api",
            "load": {"kind": "open_loop", "rate": {"kind": "constant", "rps": 200}}}]"#;
    let with = format!(
        r#"{without}, "databases": [{{"name": "orders", "nodes": [{{"name": "a", "region": "east"}}, {{"name": "b", "region": "west"}}]}}]}}"#
    );
    let without = format!("{without}}}");
    let (_, summary_without) = run_summary(&scenario(&without), 7);
    let (_, summary_with) = run_summary(&scenario(&with), 7);
    let mut without_json = serde_json::to_value(&summary_without).unwrap();
    let mut with_json = serde_json::to_value(&summary_with).unwrap();
    // Only the file's hash, the event count, the last event's time (the
    // detector's last loop) and the databases section differ.
    for key in ["scenario_sha256", "events", "end_ms"] {
        without_json[key] = serde_json::Value::Null;
        with_json[key] = serde_json::Value::Null;
    }
    assert_eq!(with_json["databases"]["orders"]["writes"]["issued"], 0);
    with_json.as_object_mut().unwrap().remove("databases");
    assert_eq!(without_json, with_json);
    assert!(summary_with.requests.issued > 0);
    assert!(scenario(&without).databases.is_empty());
}
