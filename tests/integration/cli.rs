//! The binary as a user meets it: exit codes and exact error messages for bad
//! input, and the files a run writes.

use crate::support::{bad_fixture, temp_dir, Sim};

fn bad(name: &str, message: &str) {
    bad_fixture(name, message);
}

// Each invalid scenario is rejected with exit 2 and one line naming the file,
// the JSON path and what is allowed.
#[test]
fn invalid_scenarios_name_file_path_and_allowed_values() {
    bad(
        "zero-workers",
        "services[0].workers: must be in [1, 100000] (got 0)",
    );
    bad(
        "negative-rate",
        "clients[0].load.rate.rps: must be a finite number in [0, 10000000] (got -5)",
    );
    bad(
        "probability-out-of-range",
        "faults[0].probability: must be a probability in [0, 1] (got 1.5)",
    );
    bad(
        "window-ends-before-start",
        "faults[0].end_ms: must be after start_ms 5000 (got 4000)",
    );
    bad(
        "breaker-rate-out-of-range",
        "clients[0].policies[1].failure_rate_threshold: must be a percentage in (0, 100] (got 0)",
    );
    bad(
        "unknown-service",
        "clients[0].target: unknown service \"apj\"; the services are: api",
    );
    bad(
        "too-long",
        "duration_ms: is too long to simulate within limits.events_max 200000000: about 2000000000000 requests need at least 8000000000000 events; shorten duration_ms, lower the rates or raise limits.events_max",
    );
}

// Type errors and unknown fields come from the parser with the same path form.
#[test]
fn malformed_scenarios_name_the_path_and_position() {
    bad(
        "unknown-field",
        "services[0].wrokers: unknown field `wrokers`, expected one of `name`, `instances`, `workers`, `queue_capacity`, `load_balancer`, `service_time_ms`, `error_probability`, `client_error_probability`, `dependencies`, `health_check`, `load_shedding`, `feature_flags` at line 8 column 15",
    );
    bad(
        "wrong-type",
        "services[0].workers: invalid type: string \"ten\", expected u32 at line 7 column 22",
    );
    bad(
        "nan-rate",
        "clients[0].load.rate.rps: expected value at line 22 column 18 (JSON allows no NaN, Infinity or trailing commas)",
    );
    bad(
        "malformed",
        "services: EOF while parsing a list at line 1 column 63",
    );
    bad(
        "breaker-field-of-another-variant",
        "clients[0].policies[1]: unknown field `sliding_window_size` for variant `chapter` (a field of variant `count_window`), expected one of `variant`, `failure_threshold`, `success_threshold`, `open_timeout_ms` at line 33 column 7",
    );
}

// A missing file is one clear line, exit 2.
#[test]
fn missing_scenario_file_is_reported() {
    Sim::new()
        .args(["run", "scenarios/no-such-file.json"])
        .code(2)
        .stderr("error: scenarios/no-such-file.json: cannot read scenario file: No such file or directory (os error 2)\n")
        .run();
}

// An output folder that cannot be created is reported, not panicked over.
#[test]
fn unwritable_output_folder_is_reported() {
    let blocker = temp_dir("cli-unwritable").join("file");
    std::fs::write(&blocker, "not a folder").unwrap();
    let out = blocker.join("report");
    Sim::new()
        .args([
            "run",
            "scenarios/thundering-herd.json",
            "--no-charts",
            "--out",
        ])
        .args([out.to_str().unwrap()])
        .code(2)
        .stderr(&format!(
            "error: {}: is a file, not a folder, so {} cannot be created in it\n",
            blocker.display(),
            out.display()
        ))
        .run();
}

// A bad flag is a usage error with exit 2.
#[test]
fn bad_flags_are_usage_errors() {
    Sim::new()
        .args(["run", "scenarios/thundering-herd.json", "--seed", "abc"])
        .code(2)
        .stderr_contains("error: invalid value 'abc' for '--seed <SEED>'")
        .run();
    Sim::new()
        .args(["run"])
        .code(2)
        .stderr_contains("<FILE>")
        .run();
}

// An event limit too small for the load is caught before the run starts:
// `--events-max` stands in for limits.events_max in the budget check too.
#[test]
fn events_max_too_small_for_the_load_is_rejected_up_front() {
    Sim::new()
        .args(["run", "scenarios/thundering-herd.json", "--events-max", "5000"])
        .code(2)
        .stderr("error: scenarios/thundering-herd.json: duration_ms: is too long to simulate within --events-max 5000: about 300000 requests need at least 1200000 events; shorten duration_ms, lower the rates or raise --events-max\n")
        .run();
}

// A file whose limits.events_max is too small for its load is refused, and
// `--events-max` raises the limit for the budget check as for the run.
#[test]
fn events_max_flag_replaces_the_files_limit_in_the_budget_check() {
    let dir = temp_dir("cli-events-max-flag");
    let file = dir.join("small-limit.json");
    std::fs::write(
        &file,
        r#"{
        "description": "1000 requests under a limit of 1000 events",
        "duration_ms": 1000,
        "window_ms": 100,
        "limits": { "events_max": 1000, "drain_ms": 1000 },
        "services": [{ "name": "api", "instances": 1, "workers": 10,
                       "service_time_ms": { "kind": "constant", "value_ms": 1 } }],
        "clients": [{ "name": "users", "target": "api",
                      "load": { "kind": "open_loop", "arrival": "uniform", "rate": { "kind": "constant", "rps": 1000 } } }]
    }"#,
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let out = dir.join("out");
    let out = out.to_str().unwrap();
    Sim::new()
        .args(["run", file, "--no-charts", "--out", out])
        .code(2)
        .stderr(&format!("error: {file}: duration_ms: is too long to simulate within limits.events_max 1000: about 1000 requests need at least 4000 events; shorten duration_ms, lower the rates or raise limits.events_max\n"))
        .run();
    Sim::new()
        .args(["run", file, "--no-charts", "--format", "json", "--out", out])
        .args(["--events-max", "100000"])
        .run();
}

// A run that would pass the event limit stops with a message and the command to reproduce it.
#[test]
fn event_limit_stops_the_run_with_a_reproduce_line() {
    Sim::new()
        .args([
            "run",
            "scenarios/thundering-herd.json",
            "--seed",
            "3",
            "--events-max",
            "2000000",
            "--no-charts",
        ])
        .code(2)
        .stderr("error: scenarios/thundering-herd.json: the run reached limits.events_max (2000000 events) at 157.797s; raise limits.events_max or shorten duration_ms\nreproduce: sim run scenarios/thundering-herd.json --seed 3 --events-max 2000000\n")
        .run();
}

// The reproduce line repeats `--events-max`, so running it stops the same
// run at the same event with the same message.
#[test]
fn reproduce_line_reproduces_the_failed_run() {
    let first = Sim::new()
        .args(["run", "scenarios/thundering-herd.json", "--seed", "4"])
        .args(["--events-max", "1500000", "--no-charts"])
        .code(2)
        .stderr_contains(
            "reproduce: sim run scenarios/thundering-herd.json --seed 4 --events-max 1500000\n",
        )
        .run();
    let reproduce = first
        .stderr
        .lines()
        .find_map(|line| line.strip_prefix("reproduce: sim "))
        .expect("a reproduce line");
    let mut args: Vec<&str> = reproduce.split(' ').collect();
    args.push("--no-charts");
    Sim::new().args(args).code(2).stderr(&first.stderr).run();
}

// A failed run leaves an earlier complete report untouched.
#[test]
fn failed_run_leaves_the_previous_report_intact() {
    let dir = temp_dir("cli-intact");
    Sim::new()
        .args([
            "run",
            "scenarios/thundering-herd.json",
            "--seed",
            "5",
            "--no-charts",
            "--out",
        ])
        .args([dir.to_str().unwrap()])
        .run();
    let before = std::fs::read(dir.join("summary.json")).unwrap();
    Sim::new()
        .args([
            "run",
            "scenarios/thundering-herd.json",
            "--seed",
            "6",
            "--no-charts",
            "--events-max",
            "2000000",
            "--out",
        ])
        .args([dir.to_str().unwrap()])
        .code(2)
        .run();
    assert_eq!(std::fs::read(dir.join("summary.json")).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left behind: {leftovers:?}"
    );
}

// `sim run` writes the four report files and prints the table; `--format json`
// prints the same JSON as summary.json.
#[test]
fn run_writes_report_files_and_json_matches_summary() {
    let dir = temp_dir("cli-files");
    let output = Sim::new()
        .args([
            "run",
            "scenarios/thundering-herd.json",
            "--seed",
            "42",
            "--format",
            "json",
            "--out",
        ])
        .args([dir.to_str().unwrap()])
        .run();
    for name in [
        "summary.json",
        "timeseries.csv",
        "availability.png",
        "latency.png",
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|_| panic!("{name} missing"));
        assert!(!bytes.is_empty(), "{name} is empty");
    }
    assert!(std::fs::read(dir.join("availability.png"))
        .unwrap()
        .starts_with(b"\x89PNG"));
    assert_eq!(
        output.stdout,
        std::fs::read_to_string(dir.join("summary.json")).unwrap()
    );
    let table = Sim::new()
        .args([
            "run",
            "scenarios/thundering-herd.json",
            "--seed",
            "42",
            "--no-charts",
            "--out",
        ])
        .args([dir.to_str().unwrap()])
        .run()
        .stdout;
    assert!(table.starts_with("thundering-herd (seed 42)\n"), "{table}");
    assert!(table.contains("availability "), "{table}");
}

// `sim validate` accepts every committed scenario.
#[test]
fn validate_accepts_committed_scenarios() {
    for file in crate::support::scenario_files() {
        let relative = file
            .strip_prefix(crate::support::root())
            .unwrap()
            .display()
            .to_string();
        Sim::new()
            .args(["validate", &relative])
            .stdout_contains_file(&relative)
            .run();
    }
}

// `sim validate` prints one line per file and exits 0.
#[test]
fn validate_prints_a_one_line_verdict() {
    Sim::new()
        .args(["validate", "scenarios/thundering-herd.json"])
        .stdout("scenarios/thundering-herd.json: ok (1 service, 1 client, 1 fault)\n")
        .run();
}

// Issue 6: an array where an object belongs is refused, not read by
// position, and the message names no Rust type.
#[test]
fn regression_arrays_where_objects_belong_are_refused() {
    bad(
        "array-for-service",
        "services[0]: must be an object, not an array",
    );
    bad(
        "array-for-backoff",
        "clients[0].policies[0].backoff: must be an object, not an array",
    );
    bad(
        "array-for-limits-short",
        "limits: must be an object, not an array",
    );
}

// Issue 6: a byte order mark, UTF-16 and NUL bytes are named, not taken for
// a NaN or a trailing comma.
#[test]
fn regression_encodings_get_the_right_hint() {
    bad(
        "byte-order-mark",
        "starts with a UTF-8 byte order mark (BOM); JSON must be UTF-8 without one: save it without the BOM",
    );
    bad(
        "utf-16",
        "is UTF-16 or UTF-32 text; JSON must be UTF-8: save it as UTF-8",
    );
    bad(
        "nul-byte",
        "contains a NUL byte at line 2 column 20; JSON text cannot contain NUL bytes",
    );
}

// Issue 6: control characters in a value or a field name are escaped, so the
// error stays one line and cannot drive the terminal.
#[test]
fn regression_control_characters_are_escaped_in_errors() {
    bad(
        "control-characters-in-kind",
        "clients[0].load: unknown variant `x\\ny\\u{1b}[31m`, expected one of `constant`, `steps`, `ramp`, `spike` at line 24 column 5",
    );
    bad(
        "control-characters-in-field",
        "services[0].na\\tme: unknown field `na\\tme`, expected one of `name`, `instances`, `workers`, `queue_capacity`, `load_balancer`, `service_time_ms`, `error_probability`, `client_error_probability`, `dependencies`, `health_check`, `load_shedding`, `feature_flags` at line 11 column 14",
    );
}

// Issue 6: control characters in a description are escaped in the table,
// and kept exactly in summary.json.
#[test]
fn regression_control_characters_are_escaped_in_the_table() {
    let dir = temp_dir("control-characters-table");
    let file = dir.join("scenario.json");
    std::fs::write(
        &file,
        r#"{"description": "red \u001b[31malert\u0007", "duration_ms": 100,
            "services": [{"name": "api", "service_time_ms": {"kind": "constant", "value_ms": 1}}],
            "clients": [{"name": "c", "target": "api",
                         "load": {"kind": "open_loop", "rate": {"kind": "constant", "rps": 10}}}]}"#,
    )
    .unwrap();
    let out = dir.join("out");
    let table = Sim::new()
        .args([
            "run",
            file.to_str().unwrap(),
            "--no-charts",
            "--out",
            out.to_str().unwrap(),
        ])
        .run()
        .stdout;
    assert!(table.contains("  red \\u{1b}[31malert\\u{7}\n"), "{table}");
    assert!(!table.contains('\u{1b}') && !table.contains('\u{7}'));
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(summary.contains(r#""description": "red \u001b[31malert\u0007""#));
}

// Issue 6: more than 1000 services (or clients) names the documented cap.
#[test]
fn regression_too_many_services_names_the_cap() {
    let dir = temp_dir("too-many-services");
    let services: Vec<String> = (0..1_001)
        .map(|index| format!(r#"{{"name": "s{index}", "service_time_ms": {{"kind": "constant", "value_ms": 1}}}}"#))
        .collect();
    let file = dir.join("many.json");
    std::fs::write(
        &file,
        format!(
            r#"{{"description": "d", "duration_ms": 100, "services": [{}],
                "clients": [{{"name": "c", "target": "s0", "load": {{"kind": "open_loop", "rate": {{"kind": "constant", "rps": 1}}}}}}]}}"#,
            services.join(",")
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    Sim::new()
        .args(["validate", file])
        .code(2)
        .stderr(&format!(
            "error: {file}: services: must list at most 1000 services (got 1001)\n"
        ))
        .run();
}

// Issue 6: a bad flag is two lines, the problem with clap's suggestion and
// the usage, exit 2.
#[test]
fn regression_bad_flags_are_two_lines() {
    Sim::new()
        .args(["run", "scenarios/thundering-herd.json", "--sed", "1"])
        .code(2)
        .stderr("error: unexpected argument '--sed' found; try '--seed'\nusage: sim run --seed <SEED> <FILE>; see sim run --help\n")
        .run();
    Sim::new()
        .args(["rn"])
        .code(2)
        .stderr("error: unrecognized subcommand 'rn'\nusage: sim <COMMAND>; see sim --help\n")
        .run();
    Sim::new()
        .args(["run", "scenarios/thundering-herd.json", "--seed", "abc"])
        .code(2)
        .stderr("error: invalid value 'abc' for '--seed <SEED>': invalid digit found in string\nusage: sim run [OPTIONS] <FILE>; see sim run --help\n")
        .run();
    Sim::new()
        .args(["run"])
        .code(2)
        .stderr("error: the following required arguments were not provided: <FILE>\nusage: sim run <FILE>; see sim run --help\n")
        .run();
}
