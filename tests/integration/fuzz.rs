//! Fuzzing as a standing check: structure-aware generated scenario files,
//! parsed, validated and, when valid, run for a short bounded time.
//!
//! Inputs start from valid scenarios generated from the format (the
//! strategies of `properties.rs`, plus the policies those leave out), then
//! get up to four structural mutations (wrong types, out-of-range numbers,
//! missing and extra fields, an object written as an array, a duplicated
//! entry) and possibly one byte-level mutation (a byte order mark, UTF-16, a
//! NUL, a control character, invalid UTF-8, truncation). The property:
//!
//! - parsing and validating never panic, and an error is one line that
//!   starts with the file's name and holds no control character;
//! - a valid scenario runs without panicking, within `events_max` capped at
//!   `RUN_EVENTS_MAX` (so it cannot hang), and every request has exactly one
//!   outcome; a run stopped by the limit says so in one line.
//!
//! `fuzz_scenarios_briefly` runs a few hundred cases in the normal suite,
//! the same ones on every run (proptest's fixed seed, or
//! `PROPTEST_RNG_SEED`), so that CI never fails on a case unrelated to
//! the change it tests; the long run below draws a fresh seed.
//! `fuzz_scenarios_at_length` is ignored by default; it runs
//! `SIM_FUZZ_CASES` cases (default 100,000) with a watchdog that aborts,
//! printing the input, if one case takes longer than `SIM_FUZZ_WATCHDOG_S`
//! seconds (default 60). See `docs/fuzzing.md`.

use crate::properties::{distribution, policy, scenario_json};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};
use sim::metrics::summary::Summary;
use sim::scenario::Scenario;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The most events a fuzzed run may process: enough to exercise every
/// policy, few enough that a case takes milliseconds.
const RUN_EVENTS_MAX: u64 = 20_000;

/// The file name errors must start with.
const FILE: &str = "fuzz.json";

/// Policies `properties::policy` leaves out: adaptive and connect timeouts,
/// Hystrix, the chapter's backoff and retry variant, cancelling timeouts.
fn more_policies() -> impl Strategy<Value = Value> {
    prop_oneof![
        policy(),
        (0.1f64..500.0, any::<bool>()).prop_map(|(timeout, cancel)| json!({
            "kind": "timeout", "timeout_ms": timeout, "on_timeout": if cancel { "cancel" } else { "abandon" }
        })),
        (any::<bool>(), 1.0f64..100.0, 1u32..200).prop_map(|(chapter, min, samples)| json!({
            "kind": "adaptive_timeout", "variant": if chapter { "chapter" } else { "ignore_timeouts" },
            "initial_ms": min * 2.0, "min_ms": min, "max_ms": min * 4.0, "samples": samples
        })),
        (1.0f64..300.0, any::<bool>()).prop_map(|(timeout, cancel)| json!({
            "kind": "hystrix", "timeout_ms": timeout, "on_timeout": if cancel { "cancel" } else { "abandon" }
        })),
        (1u32..6, 0.001f64..100.0, any::<bool>(), any::<bool>()).prop_map(|(attempts, initial, jitter, chapter)| json!({
            "kind": "retry", "variant": if chapter { "chapter" } else { "production" }, "attempts_max": attempts,
            "backoff": {"kind": "chapter", "initial_ms": initial, "max_ms": initial * 10.0, "jitter": jitter}
        })),
    ]
}

/// A valid scenario, sometimes with a connect timeout innermost in the
/// first client's stack, a step schedule or uniform arrivals.
fn valid_scenario() -> impl Strategy<Value = Value> {
    (
        scenario_json(),
        proptest::collection::vec(more_policies(), 0..3),
        proptest::option::of(1.0f64..200.0),
        any::<bool>(),
        distribution(),
    )
        .prop_map(|(mut scenario, policies, connect, uniform, latency)| {
            let client = &mut scenario["clients"][0];
            let stack = client["policies"].as_array_mut().expect("a policies array");
            stack.splice(0..0, policies);
            stack.truncate(15);
            if let Some(timeout) = connect {
                stack.push(json!({"kind": "connect_timeout", "timeout_ms": timeout}));
            }
            if client["load"]["kind"] == "open_loop" {
                if uniform {
                    client["load"]["arrival"] = json!("uniform");
                } else {
                    client["load"]["rate"] = json!({"kind": "steps", "steps": [
                        {"at_ms": 0, "rps": 20}, {"at_ms": 3000, "rps": 120}, {"at_ms": 6000, "rps": 5}
                    ]});
                }
            }
            scenario["network"]["latency_ms"] = latency;
            scenario
        })
}

/// Values that are the wrong type, or out of range, almost anywhere.
fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(null)),
        Just(json!(true)),
        Just(json!("x")),
        Just(json!("")),
        Just(json!("x\ny\u{1b}[31m")),
        Just(json!([])),
        Just(json!({})),
        Just(json!([1, "a", null])),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(0.5)),
        Just(json!(1.5)),
        Just(json!(101)),
        Just(json!(1e9)),
        Just(json!(1e20)),
        Just(json!(-1e20)),
        Just(json!(1e308)),
        Just(json!(-0.000001)),
        Just(json!(4_294_967_296u64)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
    ]
}

/// One structural change at the node numbered `at` (modulo the node count,
/// in depth-first order).
#[derive(Clone, Debug)]
enum Mutation {
    Replace(usize, Value),
    Remove(usize),
    AddField(usize, &'static str, Value),
    ObjectToArray(usize),
    Duplicate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let field = prop_oneof![
        Just("extra"),
        Just("kind"),
        Just("variant"),
        Just("name"),
        Just("policies"),
        Just("limits"),
        Just("na\tme"),
    ];
    prop_oneof![
        3 => (any::<usize>(), odd_value()).prop_map(|(at, value)| Mutation::Replace(at, value)),
        2 => any::<usize>().prop_map(Mutation::Remove),
        1 => (any::<usize>(), field, odd_value()).prop_map(|(at, name, value)| Mutation::AddField(at, name, value)),
        1 => any::<usize>().prop_map(Mutation::ObjectToArray),
        1 => any::<usize>().prop_map(Mutation::Duplicate),
    ]
}

/// One change to the file's bytes.
#[derive(Clone, Debug)]
enum ByteMutation {
    ByteOrderMark,
    Utf16,
    Insert(usize, u8),
    Truncate(usize),
}

fn byte_mutation() -> impl Strategy<Value = ByteMutation> {
    prop_oneof![
        Just(ByteMutation::ByteOrderMark),
        Just(ByteMutation::Utf16),
        (
            any::<usize>(),
            prop_oneof![
                Just(0u8),
                Just(0x1b),
                Just(b'\n'),
                Just(0xff),
                Just(0xc3),
                Just(b'"'),
                Just(b',')
            ]
        )
            .prop_map(|(at, byte)| ByteMutation::Insert(at, byte)),
        any::<usize>().prop_map(ByteMutation::Truncate),
    ]
}

/// The paths of every node, depth first, as (key or index) lists.
fn node_paths(value: &Value, path: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(path.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                path.push(json!(key));
                node_paths(child, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                path.push(json!(index));
                node_paths(child, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'a>(value: &'a mut Value, path: &[Value]) -> &'a mut Value {
    path.iter().fold(value, |node, step| match step {
        Value::String(key) => &mut node[key.as_str()],
        _ => &mut node[step.as_u64().expect("an index") as usize],
    })
}

/// Applies `mutation` to `scenario`.
fn mutate(scenario: &mut Value, mutation: &Mutation) {
    let mut paths = Vec::new();
    node_paths(scenario, &mut Vec::new(), &mut paths);
    let pick = |at: usize| paths[at % paths.len()].clone();
    match mutation {
        Mutation::Replace(at, value) => *node_mut(scenario, &pick(*at)) = value.clone(),
        Mutation::Remove(at) => {
            let path = pick(*at);
            if let Some((last, parent)) = path.split_last() {
                match (node_mut(scenario, parent), last) {
                    (Value::Object(map), Value::String(key)) => {
                        map.remove(key);
                    }
                    (Value::Array(items), index) => {
                        items.remove(index.as_u64().expect("an index") as usize);
                    }
                    _ => {}
                }
            }
        }
        Mutation::AddField(at, name, value) => {
            if let Value::Object(map) = node_mut(scenario, &pick(*at)) {
                map.insert((*name).to_string(), value.clone());
            }
        }
        Mutation::ObjectToArray(at) => {
            let node = node_mut(scenario, &pick(*at));
            if let Value::Object(map) = node {
                *node = Value::Array(map.values().cloned().collect());
            }
        }
        Mutation::Duplicate(at) => {
            if let Value::Array(items) = node_mut(scenario, &pick(*at)) {
                if let Some(first) = items.first().cloned() {
                    items.push(first);
                }
            }
        }
    }
}

/// The file's bytes after `mutation`.
fn mutate_bytes(mut bytes: Vec<u8>, mutation: &ByteMutation) -> Vec<u8> {
    match mutation {
        ByteMutation::ByteOrderMark => {
            bytes.splice(0..0, [0xEF, 0xBB, 0xBF]);
            bytes
        }
        ByteMutation::Utf16 => String::from_utf8_lossy(&bytes)
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect(),
        ByteMutation::Insert(at, byte) => {
            let at = at % (bytes.len() + 1);
            bytes.insert(at, *byte);
            bytes
        }
        ByteMutation::Truncate(at) => {
            bytes.truncate(at % (bytes.len() + 1));
            bytes
        }
    }
}

/// One fuzz input: a valid scenario, its mutations, a byte mutation.
fn input() -> impl Strategy<Value = (Vec<u8>, u64)> {
    (
        valid_scenario(),
        proptest::collection::vec(mutation(), 0..5),
        proptest::option::weighted(0.2, byte_mutation()),
        any::<u64>(),
    )
        .prop_map(|(mut scenario, mutations, bytes, seed)| {
            for mutation in &mutations {
                mutate(&mut scenario, mutation);
            }
            let text = serde_json::to_vec_pretty(&scenario).expect("JSON");
            let text = match bytes {
                Some(mutation) => mutate_bytes(text, &mutation),
                None => text,
            };
            (text, seed)
        })
}

/// What one case did, for the counts reported at the end.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    refused: u64,
    ran: u64,
    stopped_at_limit: u64,
}

/// The property for one input (see the module doc).
fn check(bytes: &[u8], seed: u64, tally: &mut Tally) -> Result<(), TestCaseError> {
    let mut scenario = match Scenario::from_bytes(FILE, "fuzz", bytes) {
        Ok(scenario) => scenario,
        Err(error) => {
            let message = error.to_string();
            prop_assert!(
                message.starts_with("fuzz.json: "),
                "error does not name the file: {}",
                message
            );
            prop_assert!(
                !message.chars().any(char::is_control),
                "error is not one clean line: {:?}",
                message
            );
            prop_assert!(
                !message.contains("Raw"),
                "error names an internal type: {}",
                message
            );
            tally.refused += 1;
            return Ok(());
        }
    };
    scenario.limits.events_max = scenario.limits.events_max.min(RUN_EVENTS_MAX);
    match sim::model::run(&scenario, seed) {
        Ok(output) => {
            let summary = Summary::new(&scenario, seed, &output);
            prop_assert_eq!(summary.requests.total(), summary.requests.issued);
            prop_assert!(output.events <= scenario.limits.events_max);
            tally.ran += 1;
        }
        Err(error) => {
            let message = error.to_string();
            prop_assert!(
                !message.chars().any(char::is_control),
                "run error: {:?}",
                message
            );
            tally.stopped_at_limit += 1;
        }
    }
    Ok(())
}

/// Runs `cases` fuzz cases; with `watchdog_s`, a thread aborts the process
/// (printing the input) if one case runs longer than that.
/// How `fuzz` seeds proptest's generator.
#[derive(Clone, Copy)]
enum Seeding {
    /// The same cases on every run (unless `PROPTEST_RNG_SEED` names a
    /// seed): the normal suite must not fail on a case unrelated to the
    /// change under test.
    Fixed,
    /// A fresh seed each run unless `PROPTEST_RNG_SEED` names one: the long
    /// run explores.
    Fresh,
}

fn fuzz(cases: u32, watchdog_s: Option<u64>, seeding: Seeding) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let done = Arc::new(AtomicU64::new(0));
    let current: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
    if let Some(limit_s) = watchdog_s {
        let (done, current) = (Arc::clone(&done), Arc::clone(&current));
        // It only sleeps and compares counts: it never reads a clock, and a
        // run's result never depends on it.
        std::thread::spawn(move || {
            let mut seen = u64::MAX;
            loop {
                std::thread::sleep(std::time::Duration::from_secs(limit_s));
                let now = done.load(Ordering::Relaxed);
                if now == seen {
                    let input = current
                        .lock()
                        .map(|bytes| bytes.clone())
                        .unwrap_or_default();
                    eprintln!(
                        "fuzz: a case ran for over {limit_s} s (a hang?) after {now} cases; input:\n{}",
                        String::from_utf8_lossy(&input)
                    );
                    std::process::abort();
                }
                seen = now;
            }
        });
    }
    let config = Config {
        cases,
        // A failure is shrunk and reported; nothing is written beside the tests.
        failure_persistence: None,
        ..Config::default()
    };
    let named_seed = std::env::var_os("PROPTEST_RNG_SEED").is_some();
    let mut runner = match seeding {
        Seeding::Fixed if !named_seed => {
            TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
        }
        _ => TestRunner::new(config),
    };
    let result = runner.run(&input(), |(bytes, seed)| {
        if watchdog_s.is_some() {
            *current.lock().expect("lock") = bytes.clone();
        }
        let mut case = Tally::default();
        let outcome = check(&bytes, seed, &mut case);
        let mut total = tally.lock().expect("lock");
        total.refused += case.refused;
        total.ran += case.ran;
        total.stopped_at_limit += case.stopped_at_limit;
        done.fetch_add(1, Ordering::Relaxed);
        outcome
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let total = *tally.lock().expect("lock");
    total
}

// A few hundred generated and mutated scenarios: no panic, one-line errors
// naming the file, bounded runs that account for every request.
#[test]
fn fuzz_scenarios_briefly() {
    let tally = fuzz(300, None, Seeding::Fixed);
    // Shrinking reruns cases, so only lower bounds hold; both paths are used.
    assert!(tally.refused > 0, "{tally:?}");
    assert!(tally.ran + tally.stopped_at_limit > 0, "{tally:?}");
}

// The long run: `SIM_FUZZ_CASES=1000000 cargo test --release --test
// integration fuzz_scenarios_at_length -- --ignored --nocapture`.
#[test]
#[ignore = "long: run it on purpose, see docs/fuzzing.md"]
fn fuzz_scenarios_at_length() {
    let cases = std::env::var("SIM_FUZZ_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(100_000);
    let watchdog_s = std::env::var("SIM_FUZZ_WATCHDOG_S")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(60);
    let tally = fuzz(cases, Some(watchdog_s), Seeding::Fresh);
    eprintln!(
        "fuzz: {cases} cases: {} refused, {} ran, {} stopped at the event limit; no panic, hang or abort",
        tally.refused, tally.ran, tally.stopped_at_limit
    );
}
