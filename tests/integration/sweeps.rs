//! `sim sweep`, `sim compare` and `sim merge`: the same bytes at any thread
//! count, after a kill -9 and a rerun, and from shards merged; common random
//! numbers across designs; and bad input refused in one line with nothing
//! written.

use crate::support::{root, scenario, temp_dir, Sim};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const SWEEP: &str = "tests/fixtures/sweep/sweep.json";
const SHORT: &str = "tests/fixtures/sweep/retry-short.json";
const SHORT_BUDGET: &str = "tests/fixtures/sweep/retry-short-budget.json";

/// Every file of a folder (recursively), name to bytes.
fn folder(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("folder") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_file() {
            files.insert(name, std::fs::read(&path).expect("file"));
        }
    }
    files
}

fn assert_same_folders(expected: &Path, actual: &Path) {
    let (expected, actual) = (folder(expected), folder(actual));
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &expected {
        assert!(actual[name] == *bytes, "{name} differs");
    }
}

fn sweep_into(dir: &Path, extra: &[&str]) {
    Sim::new()
        .args(["sweep", SWEEP, "--out", dir.to_str().unwrap()])
        .args(extra)
        .run();
}

// The library sweep on rayon pools of 1, 2 and 8 threads renders the same
// bytes, charts and index.html included.
#[test]
fn sweep_bytes_are_identical_on_1_2_and_8_threads() {
    let request = sim::sweep::Request {
        file: root().join(SWEEP),
        ..Default::default()
    };
    let plan = sim::sweep::plan(&request).expect("plan");
    let mut rendered = Vec::new();
    for threads in [1, 2, 8] {
        let dir = temp_dir(&format!("sweep-threads-{threads}"));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let (header, records) = pool
            .install(|| sim::sweep::execute(&plan, None, &dir, false))
            .expect("sweep");
        assert_eq!(records.len(), 6 * 3);
        let files = sim::sweep::output::render(&header, &records, true).expect("render");
        let files: Vec<(&str, Vec<u8>)> = files.into_iter().map(|f| (f.name, f.bytes)).collect();
        rendered.push(files);
    }
    assert!(rendered[0].iter().any(|(name, _)| *name == "index.html"));
    assert_eq!(rendered[0], rendered[1]);
    assert_eq!(rendered[0], rendered[2]);
}

// The CLI's --threads gives the same folder as the default pool; runs.csv has
// one row per point x seed and points.csv one row per point.
#[test]
fn sweep_cli_writes_runs_points_and_charts() {
    let one = temp_dir("sweep-cli-one");
    let many = temp_dir("sweep-cli-many");
    sweep_into(&one, &["--threads", "1"]);
    sweep_into(&many, &[]);
    assert_same_folders(&one, &many);
    let runs = std::fs::read_to_string(one.join("runs.csv")).unwrap();
    assert_eq!(runs.lines().count(), 1 + 18);
    assert!(runs.starts_with("point,seed,clients[0].policies[0].attempts_max,clients[0].load.rate.rps,availability,availability_served,latency_ms.p50,latency_ms.p99,latency_ms.p999,retry_amplification,recovery_ms,"));
    let points = std::fs::read_to_string(one.join("points.csv")).unwrap();
    assert_eq!(points.lines().count(), 1 + 6);
    assert!(points.lines().nth(1).unwrap().starts_with("0,1,50,3,"));
    // One attempt per request without retries; more with three attempts.
    let amplification = |line: &str| -> f64 {
        let header: Vec<&str> = points.lines().next().unwrap().split(',').collect();
        let column = header
            .iter()
            .position(|name| *name == "retry_amplification_mean")
            .unwrap();
        line.split(',').nth(column).unwrap().parse().unwrap()
    };
    assert_eq!(amplification(points.lines().nth(1).unwrap()), 1.0);
    assert!(amplification(points.lines().nth(4).unwrap()) > 1.05);
    let html = std::fs::read_to_string(one.join("index.html")).unwrap();
    assert_eq!(html.matches("<img ").count(), 4);
    assert!(!html.contains("http://") && !html.contains("https://"));
}

// A sweep killed with SIGKILL mid-way and rerun with the same command
// finishes with no run lost or counted twice: the same bytes as a sweep that
// ran straight through.
#[test]
fn killed_sweep_resumes_to_the_same_bytes() {
    let straight = temp_dir("sweep-straight");
    sweep_into(&straight, &["--no-charts", "--seeds", "6"]);
    let killed = temp_dir("sweep-killed");
    let journal = killed.join("journal.jsonl");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
        .args([
            "sweep",
            SWEEP,
            "--no-charts",
            "--seeds",
            "6",
            "--threads",
            "1",
            "--out",
        ])
        .arg(&killed)
        .current_dir(root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sim starts");
    // Wait (a bounded number of polls; nothing asserts on time) for a few
    // finished runs.
    let mut lines = 0;
    for _ in 0..6_000 {
        lines = std::fs::read_to_string(&journal).map_or(0, |text| text.lines().count());
        if lines >= 4 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    let done = std::fs::read_to_string(&journal).unwrap().lines().count() - 1;
    assert!(done >= 3, "the sweep did not start ({lines} lines)");
    assert!(
        done < 36,
        "the sweep finished before it was killed; nothing was tested"
    );
    assert!(!killed.join("runs.csv").exists());
    // A torn last line, as a kill during a write leaves, is ignored.
    let mut text = std::fs::read_to_string(&journal).unwrap();
    text.push_str("{\"point\":5,\"seed\":6,\"metr");
    std::fs::write(&journal, text).unwrap();
    sweep_into(&killed, &["--no-charts", "--seeds", "6"]);
    assert_same_folders(&straight, &killed);
}

// Three shards, found from --shard, Slurm's and Kubernetes' variables, merge
// into exactly the single-machine folder.
#[test]
fn shards_merge_into_the_single_machine_bytes() {
    let single = temp_dir("sweep-single");
    sweep_into(&single, &[]);
    let shards = temp_dir("sweep-shards");
    let out = shards.to_str().unwrap();
    Sim::new()
        .args(["sweep", SWEEP, "--out", out, "--shard", "0/3"])
        .run();
    Sim::new()
        .args(["sweep", SWEEP, "--out", out])
        .env("SLURM_ARRAY_TASK_ID", "2")
        .env("SLURM_ARRAY_TASK_MIN", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .stderr("sim: running shard 1/3 (from SLURM_ARRAY_TASK_ID)\n")
        .run();
    Sim::new()
        .args(["sweep", SWEEP, "--out", out, "--shard-count", "3"])
        .env("JOB_COMPLETION_INDEX", "2")
        .run();
    let parts: Vec<PathBuf> = (0..3)
        .map(|index| shards.join(format!("shard-{index}-of-3")))
        .collect();
    let journal =
        |index: usize| std::fs::read_to_string(parts[index].join("journal.jsonl")).unwrap();
    assert_eq!(
        journal(0).lines().count() + journal(1).lines().count() + journal(2).lines().count(),
        3 + 18
    );
    let merged = temp_dir("sweep-merged");
    // Two shards are not the whole sweep.
    Sim::new()
        .args(["merge"])
        .args(parts[..2].iter().map(|path| path.to_str().unwrap()))
        .args(["--out", merged.join("never").to_str().unwrap()])
        .code(2)
        .stderr("error: merge: 6 of 18 runs are missing (first: point 0 seed 3); merge every shard's folder\n")
        .run();
    assert!(!merged.join("never").exists());
    Sim::new()
        .args(["merge"])
        .args(parts.iter().map(|path| path.to_str().unwrap()))
        .args(["--out", merged.to_str().unwrap()])
        .run();
    assert_same_folders(&single, &merged);
}

// Partial results of different sweeps are refused, naming the mismatch.
#[test]
fn merge_refuses_shards_of_different_sweeps() {
    let dir = temp_dir("sweep-mismatch");
    let out = dir.to_str().unwrap();
    Sim::new()
        .args([
            "sweep",
            SWEEP,
            "--no-charts",
            "--out",
            out,
            "--shard",
            "0/2",
        ])
        .run();
    Sim::new()
        .args([
            "sweep",
            SWEEP,
            "--no-charts",
            "--seeds",
            "2",
            "--out",
            out,
            "--shard",
            "1/2",
        ])
        .run();
    let first = dir.join("shard-0-of-2");
    let second = dir.join("shard-1-of-2");
    Sim::new()
        .args(["merge", first.to_str().unwrap(), second.to_str().unwrap(), "--out"])
        .args([dir.join("never").to_str().unwrap()])
        .code(2)
        .stderr(&format!(
            "error: {}/journal.jsonl: a partial result of a different sweep than {}/journal.jsonl (2 seeds vs 3); merge only shards of one sweep\n",
            second.display(),
            first.display()
        ))
        .run();
    assert!(!dir.join("never").exists());
}

fn bad_sweep(args: &[&str], message: &str) {
    let never = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sweep-never-written");
    let _ = std::fs::remove_dir_all(&never);
    Sim::new()
        .args(["sweep", SHORT, "--out", never.to_str().unwrap()])
        .args(args)
        .code(2)
        .stderr(&format!("error: {message}\n"))
        .run();
    assert!(!never.exists(), "{args:?} wrote {}", never.display());
}

// Bad sweeps: one line naming the file and the swept field's path, exit 2,
// nothing written.
#[test]
fn bad_sweeps_name_the_swept_path_and_write_nothing() {
    bad_sweep(
        &["--set", "clients[0].policies[0].atempts_max=2"],
        &format!("{SHORT}: clients[0].policies[0].atempts_max: unknown field `atempts_max`, expected one of `variant`, `attempts_max`, `backoff`, `retry_on`, `budget`"),
    );
    bad_sweep(
        &["--set", "clients[0].policies[0].attempts_max=two"],
        &format!("{SHORT}: clients[0].policies[0].attempts_max: invalid type: string \"two\", expected u32"),
    );
    bad_sweep(
        &["--set", "clients[0].policies[0].attempts_max=3,0"],
        &format!("{SHORT}: clients[0].policies[0].attempts_max: must be in [1, 100] (got 0)"),
    );
    bad_sweep(
        &["--set", "clients[2].load.rate.rps=1"],
        &format!("{SHORT}: clients[2].load.rate.rps: names no field: clients[2] is out of range (clients has 1)"),
    );
    bad_sweep(
        &["--set", "clients[0].load.rate.rps="],
        "--set clients[0].load.rate.rps=: the grid is empty (no values)",
    );
    bad_sweep(
        &["--set", "clients[0].load.rate.rps=10", "--shard", "3/3"],
        "--shard 3/3: shard index 3 is out of range: must be in [0, 2] for 3 shards",
    );
    bad_sweep(
        &[],
        &format!("{SHORT}: the sweep has no axes; give --set PATH=VALUES or axes in a sweep file"),
    );
}

// The designs of a comparison see the same arrivals on the same seed: the
// requests issued in every window are identical across the herd trio, while
// the attempts (what the policies change) differ.
#[test]
fn compared_designs_share_their_arrival_streams() {
    let load = |name: &str| {
        let text = std::fs::read_to_string(root().join("scenarios").join(name)).unwrap();
        scenario(&text)
    };
    let designs = [
        load("thundering-herd.json"),
        load("thundering-herd-jitter.json"),
        load("thundering-herd-breaker.json"),
    ];
    let seed = 1;
    let outputs: Vec<_> = designs
        .iter()
        .map(|design| sim::model::run(design, seed).expect("run"))
        .collect();
    // Windows after the load period (the drain, whose length depends on
    // what is still in flight) issue nothing and are left out.
    let load_windows = (designs[0].duration.as_ms_f64() / designs[0].window.as_ms_f64()) as usize;
    let issued = |index: usize| -> Vec<u64> {
        let rows = &outputs[index].rows;
        assert!(rows[load_windows..].iter().all(|row| row.issued == 0));
        rows[..load_windows].iter().map(|row| row.issued).collect()
    };
    assert!(issued(0).iter().sum::<u64>() > 100_000);
    assert_eq!(issued(0), issued(1));
    assert_eq!(issued(0), issued(2));
    assert_ne!(
        outputs[0].recorder.client_attempts,
        outputs[1].recorder.client_attempts
    );
    assert_ne!(
        outputs[1].recorder.client_attempts,
        outputs[2].recorder.client_attempts
    );
}

// `sim compare` judges the budget against plain retries on paired seeds:
// fewer attempts per request with the budget, a verdict on each headline
// metric, and the same bytes on one thread as on many.
#[test]
fn compare_gives_paired_intervals_and_verdicts() {
    let one = temp_dir("compare-one");
    let many = temp_dir("compare-many");
    let output = Sim::new()
        .args([
            "compare",
            SHORT,
            SHORT_BUDGET,
            "--seeds",
            "5",
            "--threads",
            "1",
            "--out",
        ])
        .args([one.to_str().unwrap()])
        .run();
    Sim::new()
        .args(["compare", SHORT, SHORT_BUDGET, "--seeds", "5", "--out"])
        .args([many.to_str().unwrap()])
        .run();
    assert_same_folders(&one, &many);
    assert!(output.stdout.contains("retry_amplification"));
    let csv = std::fs::read_to_string(one.join("compare.csv")).unwrap();
    let row = csv
        .lines()
        .find(|line| line.starts_with("retry_amplification,"))
        .expect("retry_amplification row");
    assert!(row.ends_with(",t,5,retry-short-budget better,"), "{row}");
    let p99 = csv
        .lines()
        .find(|line| line.starts_with("latency_ms.p99,"))
        .unwrap();
    assert!(p99.contains(",bootstrap,5,"), "{p99}");
    let runs = std::fs::read_to_string(one.join("runs.csv")).unwrap();
    assert_eq!(runs.lines().count(), 1 + 2 * 5);
    let html = std::fs::read_to_string(one.join("index.html")).unwrap();
    assert_eq!(html.matches("<img ").count(), 3);
}
