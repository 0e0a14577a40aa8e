//! `sim policy`: one policy driven by hand through timed events. The example
//! files in `docs/examples/policy/` must give exactly the lines stored in
//! `tests/golden/policy/<name>.jsonl` (refresh with `UPDATE_GOLDEN=1 cargo
//! test --test integration policy_cli` and review the diff); bad input gets
//! one exact error line and exit 2, with nothing on stdout.

use crate::support::{policy_example, root, Sim};
use serde_json::Value;

/// Runs the example `name` as policy `kind`, checks its output against the
/// golden lines and returns them parsed.
#[track_caller]
fn example(kind: &str, name: &str) -> Vec<Value> {
    policy_example(kind, "policy", name)
}

/// `(at_ms, call, event, decision kind, reply or "")` of each line.
fn decisions(lines: &[Value]) -> Vec<(f64, u64, String, String, String)> {
    lines
        .iter()
        .map(|line| {
            (
                line["at_ms"].as_f64().unwrap(),
                line["call"].as_u64().unwrap(),
                line["event"].as_str().unwrap().to_string(),
                line["decision"]["kind"].as_str().unwrap().to_string(),
                line["decision"]["reply"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn row(
    at_ms: f64,
    call: u64,
    event: &str,
    kind: &str,
    reply: &str,
) -> (f64, u64, String, String, String) {
    (at_ms, call, event.into(), kind.into(), reply.into())
}

// The chapter breaker (failure_threshold 3, open_timeout_ms 1000) trips on
// the third consecutive failure at 50 ms, rejects calls until 1050 ms, admits
// the call at 1050 ms as half-open, and closes after two successes.
#[test]
fn chapter_breaker_trips_rejects_then_half_opens() {
    let lines = example("circuit_breaker", "breaker");
    assert_eq!(
        decisions(&lines),
        vec![
            row(0.0, 1, "start", "forward", ""),
            row(10.0, 1, "failure", "complete", "error"),
            row(20.0, 2, "start", "forward", ""),
            row(30.0, 2, "failure", "complete", "error"),
            row(40.0, 3, "start", "forward", ""),
            row(50.0, 3, "failure", "complete", "error"),
            row(100.0, 4, "start", "complete", "breaker_open"),
            row(1049.0, 5, "start", "complete", "breaker_open"),
            row(1050.0, 6, "start", "forward", ""),
            row(1060.0, 6, "success", "complete", "success"),
            row(1070.0, 7, "start", "forward", ""),
            row(1080.0, 7, "slow_success", "complete", "success"),
        ]
    );
    let states: Vec<&str> = lines
        .iter()
        .map(|line| line["state"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states[4], "closed");
    assert_eq!(states[5], "open");
    assert_eq!(lines[5]["state"]["reopen_at_ms"], 1050);
    assert_eq!(states[8], "half_open");
    assert_eq!(states[11], "closed");
    assert_eq!(lines[11]["counters"]["rejections"], 2);
}

// A retry with a fixed 100 ms backoff and attempts_max 3: a failure and a
// timeout are retried after 100 ms each, a client error is not retried, and
// the third failure of call 3 exhausts it.
#[test]
fn retry_with_fixed_backoff_retries_then_gives_up() {
    let lines = example("retry", "retry");
    assert_eq!(
        decisions(&lines),
        vec![
            row(0.0, 1, "start", "forward", ""),
            row(10.0, 1, "failure", "forward_after", ""),
            row(150.0, 1, "timeout", "forward_after", ""),
            row(300.0, 1, "slow_success", "complete", "success"),
            row(400.0, 2, "start", "forward", ""),
            row(410.0, 2, "client_error", "complete", "client_error"),
            row(500.0, 3, "start", "forward", ""),
            row(510.0, 3, "failure", "forward_after", ""),
            row(620.0, 3, "queue_full", "forward_after", ""),
            row(730.0, 3, "failure", "complete", "error"),
        ]
    );
    assert!(lines
        .iter()
        .filter(|line| line["decision"]["kind"] == "forward_after")
        .all(|line| line["decision"]["delay_ms"] == 100));
    assert_eq!(
        lines[9]["counters"],
        serde_json::json!({"calls": 3, "retries": 4, "exhausted": 1})
    );
}

// The chapter's adaptive timeout on a backend that stops answering: each
// timeout records its own deadline, so the deadlines ratchet up by 1.5.
#[test]
fn chapter_adaptive_timeout_ratchets_on_a_hanging_backend() {
    let lines = example("adaptive_timeout", "adaptive-timeout");
    let armed: Vec<f64> = lines
        .iter()
        .filter(|line| line["decision"]["kind"] == "forward_with_timer")
        .map(|line| line["decision"]["timeout_ms"].as_f64().unwrap())
        .collect();
    assert_eq!(
        armed,
        vec![1_000.0, 500.0, 750.0, 1_125.0, 1_125.0, 1_687.5]
    );
    assert_eq!(lines.last().unwrap()["state"]["timeout_ms"], 2_531.25);
}

fn bad(config: &str, input: &str, kind: &str, message: &str) {
    Sim::new()
        .args(["policy", kind, "--config", config, "--input", input])
        .code(2)
        .stdout("")
        .stderr(&format!("error: {message}\n"))
        .run();
}

const BREAKER: &str = "docs/examples/policy/breaker.json";

// An unknown event name is a parse error at its path, with the allowed names.
#[test]
fn unknown_event_is_rejected_with_its_path() {
    bad(
        BREAKER,
        "tests/fixtures/policy/unknown-event.json",
        "circuit_breaker",
        "tests/fixtures/policy/unknown-event.json: [1].event: unknown variant `succeeded`, expected one of `start`, `success`, `slow_success`, `failure`, `client_error`, `timeout`, `queue_full`, `breaker_open`, `bulkhead_full`, `fallback`, `connected`, `cancel`, `tick` at line 3 column 48",
    );
}

// Times must not decrease.
#[test]
fn decreasing_time_is_rejected() {
    bad(
        BREAKER,
        "tests/fixtures/policy/decreasing-time.json",
        "circuit_breaker",
        "tests/fixtures/policy/decreasing-time.json: [2].at_ms: must not be before the previous event's at_ms 100 (got 50)",
    );
}

// A result names a call that never started; no line is printed for the
// events before it.
#[test]
fn result_for_an_unknown_call_is_rejected() {
    bad(
        BREAKER,
        "tests/fixtures/policy/unknown-call.json",
        "circuit_breaker",
        "tests/fixtures/policy/unknown-call.json: [1].call: call 2 has not started",
    );
}

// NAME must be the config's kind; the config is validated like a scenario's policy.
#[test]
fn config_of_another_kind_or_out_of_range_is_rejected() {
    bad(
        "docs/examples/policy/retry.json",
        "docs/examples/policy/retry-events.json",
        "circuit_breaker",
        r#"docs/examples/policy/retry.json: kind: must be "circuit_breaker", the policy named on the command line (got "retry")"#,
    );
    bad(
        "tests/fixtures/policy/bad-config.json",
        "docs/examples/policy/breaker-events.json",
        "circuit_breaker",
        "tests/fixtures/policy/bad-config.json: failure_threshold: must be in [1, 1000000] (got 0)",
    );
    bad(
        "tests/fixtures/policy/no-such-file.json",
        "docs/examples/policy/breaker-events.json",
        "circuit_breaker",
        "tests/fixtures/policy/no-such-file.json: cannot read file: No such file or directory (os error 2)",
    );
}

// The reference's worked example shows the breaker example's output verbatim.
#[test]
fn the_reference_shows_the_breaker_example_verbatim() {
    let reference =
        std::fs::read_to_string(root().join("docs/scenario-reference.md")).expect("the reference");
    let golden = std::fs::read_to_string(root().join("tests/golden/policy/breaker.jsonl"))
        .expect("golden lines");
    assert!(
        reference.contains(&golden),
        "docs/scenario-reference.md section 6 is stale"
    );
}

// A composite is refused by name, with the parts to drive instead.
#[test]
fn composite_policies_are_driven_part_by_part() {
    Sim::new()
        .args([
            "policy",
            "hystrix",
            "--config",
            "tests/fixtures/policy/hystrix.json",
            "--input",
            "docs/examples/policy/breaker-events.json",
        ])
        .code(2)
        .stderr("error: tests/fixtures/policy/hystrix.json: kind: hystrix stands for 3 policies; drive each of them on its own (fallback, timeout, circuit_breaker)\n")
        .run();
}

// The service-side machines are driven the same way, with probe results as events.
#[test]
fn health_check_and_feature_flag_are_driven_by_probe_results() {
    let dir = crate::support::temp_dir("policy-cli-checks");
    let config = dir.join("check.json");
    let events = dir.join("probes.json");
    std::fs::write(
        &config,
        r#"{"unhealthy_after": 2, "healthy_after": 1, "liveness": {"restart_after_failures": 1}}"#,
    )
    .unwrap();
    std::fs::write(
        &events,
        r#"[{"at_ms": 0, "event": "not_ready"}, {"at_ms": 1000, "event": "not_ready"},
            {"at_ms": 2000, "event": "hung"}, {"at_ms": 3000, "event": "ready"}]"#,
    )
    .unwrap();
    Sim::new()
        .args(["policy", "health_check", "--config", config.to_str().unwrap(), "--input", events.to_str().unwrap()])
        .stdout(concat!(
            r#"{"at_ms":0,"event":"not_ready","decision":"none","state":{"in_rotation":true}}"#, "\n",
            r#"{"at_ms":1000,"event":"not_ready","decision":"remove_from_rotation","state":{"in_rotation":false}}"#, "\n",
            r#"{"at_ms":2000,"event":"hung","decision":"restart","state":{"in_rotation":false}}"#, "\n",
            r#"{"at_ms":3000,"event":"ready","decision":"add_to_rotation","state":{"in_rotation":true}}"#, "\n",
        ))
        .run();
    let flag = dir.join("flag.json");
    std::fs::write(
        &flag,
        r#"{"name": "search", "dependency": "db", "variant": "recovering"}"#,
    )
    .unwrap();
    std::fs::write(
        &events,
        r#"[{"at_ms": 0, "event": "unhealthy"}, {"at_ms": 30000, "event": "healthy"}]"#,
    )
    .unwrap();
    Sim::new()
        .args([
            "policy",
            "feature_flag",
            "--config",
            flag.to_str().unwrap(),
            "--input",
            events.to_str().unwrap(),
        ])
        .stdout(concat!(
            r#"{"at_ms":0,"event":"unhealthy","decision":"switch_off","state":{"enabled":false}}"#,
            "\n",
            r#"{"at_ms":30000,"event":"healthy","decision":"switch_on","state":{"enabled":true}}"#,
            "\n",
        ))
        .run();
}
