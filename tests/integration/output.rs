//! The report folder and stdout as the binary handles them: `--out` at a file
//! or a link, replacing an earlier report, and a stdout that is closed or full.

use crate::support::{root, temp_dir, Sim};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A scenario that runs in milliseconds.
const SMALL: &str = r#"{
  "description": "small",
  "duration_ms": 2000,
  "services": [
    { "name": "api", "workers": 4, "service_time_ms": { "kind": "constant", "value_ms": 5 } }
  ],
  "clients": [
    { "name": "c", "target": "api",
      "load": { "kind": "open_loop", "rate": { "kind": "constant", "rps": 100 } } }
  ]
}
"#;

/// Writes the small scenario into `dir` and returns its path.
fn small_scenario(dir: &Path) -> PathBuf {
    let file = dir.join("small.json");
    std::fs::write(&file, SMALL).unwrap();
    file
}

/// The sorted names in `dir`.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Runs `sim args` with `stdout` as its standard output; returns the exit
/// code and stderr.
fn run_with_stdout(args: &[&str], stdout: Stdio) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(args)
        .current_dir(root())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .expect("sim runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "sim panicked:\n{stderr}");
    (output.status.code(), stderr)
}

/// A pipe whose reading end is already closed, as after `| head -c 0`.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Stdio::from(writer)
}

/// `/dev/full`: every write fails with "no space left on device".
fn full_device() -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full"),
    )
}

const ALLOWED: &str = "--out must be a new path, an empty folder or an earlier report folder";

// `--out` at an existing file says what is wrong and what is allowed, before
// the run, and writes nothing.
#[test]
fn out_at_a_file_is_refused_in_one_line() {
    let dir = temp_dir("output-file");
    let file = dir.join("file");
    std::fs::write(&file, "mine\n").unwrap();
    Sim::new()
        .args(["run", "scenarios/thundering-herd.json", "--out"])
        .args([file.to_str().unwrap()])
        .code(2)
        .stderr(&format!(
            "error: {}: is a file, not a folder; {ALLOWED}\n",
            file.display()
        ))
        .run();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine\n");
    assert_eq!(names(&dir), ["file"]);
}

// `--out` at a symbolic link, dangling or to a folder, is refused: the link is
// neither followed nor replaced.
#[cfg(unix)]
#[test]
fn out_at_a_symlink_is_refused_in_one_line() {
    use std::os::unix::fs::symlink;
    let dir = temp_dir("output-symlink");
    let dangling = dir.join("dangling");
    let nowhere = dir.join("nowhere");
    symlink(&nowhere, &dangling).unwrap();
    Sim::new()
        .args(["run", "scenarios/thundering-herd.json", "--out"])
        .args([dangling.to_str().unwrap()])
        .code(2)
        .stderr(&format!(
            "error: {}: is a symbolic link (to {}); {ALLOWED}, not a link\n",
            dangling.display(),
            nowhere.display()
        ))
        .run();
    assert!(!nowhere.exists());
    let folder = dir.join("folder");
    std::fs::create_dir(&folder).unwrap();
    let link = dir.join("link");
    symlink(&folder, &link).unwrap();
    Sim::new()
        .args(["run", "scenarios/thundering-herd.json", "--out"])
        .args([link.to_str().unwrap()])
        .code(2)
        .stderr_contains("is a symbolic link (to ")
        .run();
    assert!(names(&folder).is_empty());
    assert_eq!(names(&dir), ["dangling", "folder", "link"]);
}

// A folder holding files a report does not write is refused before the run
// and left untouched.
#[test]
fn out_at_a_folder_with_other_files_is_refused() {
    let dir = temp_dir("output-foreign");
    std::fs::write(dir.join("notes.txt"), "mine\n").unwrap();
    Sim::new()
        .args(["run", "scenarios/thundering-herd.json", "--out"])
        .args([dir.to_str().unwrap()])
        .code(2)
        .stderr(&format!(
            "error: {}: holds `notes.txt`, which is not part of a report, and replacing the folder would delete it; {ALLOWED}\n",
            dir.display()
        ))
        .run();
    assert_eq!(names(&dir), ["notes.txt"]);
}

// A second run replaces the whole folder: charts of the first run do not
// survive a `--no-charts` run beside its new summary.
#[test]
fn a_run_replaces_the_whole_earlier_report() {
    let dir = temp_dir("output-replace");
    let scenario = small_scenario(&dir);
    let out = dir.join("report");
    let run = |extra: &[&str]| {
        Sim::new()
            .args(["run", scenario.to_str().unwrap(), "--out"])
            .args([out.to_str().unwrap()])
            .args(extra)
            .run();
    };
    run(&[]);
    assert_eq!(
        names(&out),
        [
            "availability.png",
            "index.html",
            "latency.png",
            "summary.json",
            "timeseries.csv"
        ]
    );
    run(&["--no-charts", "--seed", "2"]);
    assert_eq!(names(&out), ["summary.json", "timeseries.csv"]);
    assert_eq!(names(&dir), ["report", "small.json"]);
}

// A closed stdout ends `validate`, `bench`, `run` and `policy` quietly with
// status 0, as ripgrep does; `run` has still written its report.
#[test]
fn closed_stdout_exits_quietly() {
    let dir = temp_dir("output-closed");
    let scenario = small_scenario(&dir);
    let scenario = scenario.to_str().unwrap();
    let out = dir.join("report");
    let out = out.to_str().unwrap();
    for args in [
        vec!["validate", scenario],
        vec!["bench", scenario, "--repeat", "1"],
        vec!["run", scenario, "--no-charts", "--out", out],
        vec![
            "run",
            scenario,
            "--no-charts",
            "--format",
            "json",
            "--out",
            out,
        ],
        vec![
            "policy",
            "circuit_breaker",
            "--config",
            "docs/examples/policy/breaker.json",
            "--input",
            "docs/examples/policy/breaker-events.json",
        ],
    ] {
        let (code, stderr) = run_with_stdout(&args, closed_pipe());
        assert_eq!(code, Some(0), "sim {args:?}: {stderr}");
        assert_eq!(stderr, "", "sim {args:?}");
    }
    assert_eq!(
        names(&dir.join("report")),
        ["summary.json", "timeseries.csv"]
    );
}

// A full stdout is an error saying what was and was not written: nothing for
// `validate` and `bench`, the whole report for `run`.
#[cfg(target_os = "linux")]
#[test]
fn full_stdout_says_what_was_written() {
    let dir = temp_dir("output-full");
    let scenario = small_scenario(&dir);
    let scenario = scenario.to_str().unwrap();
    for args in [
        vec!["validate", scenario],
        vec!["bench", scenario, "--repeat", "1"],
    ] {
        let (code, stderr) = run_with_stdout(&args, full_device());
        assert_eq!(code, Some(2), "sim {args:?}");
        assert_eq!(
            stderr,
            "error: cannot write to standard output: No space left on device (os error 28)\n",
            "sim {args:?}"
        );
    }
    let out = dir.join("report");
    let (code, stderr) = run_with_stdout(
        &[
            "run",
            scenario,
            "--no-charts",
            "--out",
            out.to_str().unwrap(),
        ],
        full_device(),
    );
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        format!(
            "error: cannot write to standard output: No space left on device (os error 28); the report was written to {}\n",
            out.display()
        )
    );
    assert_eq!(names(&out), ["summary.json", "timeseries.csv"]);
}

// Runs with different seeds started together into one `--out` all succeed,
// and the folder then holds exactly one of their reports, byte for byte (the
// old writer once left a corrupt timeseries.csv with exit 0).
#[test]
fn concurrent_runs_into_one_folder_leave_one_whole_report() {
    let dir = temp_dir("output-concurrent");
    let scenario = small_scenario(&dir);
    let seeds = ["1", "2", "3", "4"];
    let contents = |folder: &Path| -> Vec<(String, Vec<u8>)> {
        names(folder)
            .into_iter()
            .map(|name| {
                let bytes = std::fs::read(folder.join(&name)).unwrap();
                (name, bytes)
            })
            .collect()
    };
    let references: Vec<_> = seeds
        .iter()
        .map(|seed| {
            let out = dir.join(format!("seed-{seed}"));
            Sim::new()
                .args(["run", scenario.to_str().unwrap(), "--no-charts"])
                .args(["--seed", seed, "--out", out.to_str().unwrap()])
                .run();
            contents(&out)
        })
        .collect();
    let shared = dir.join("shared/out");
    for round in 0..5 {
        let children: Vec<_> = seeds
            .iter()
            .map(|seed| {
                Command::new(env!("CARGO_BIN_EXE_sim"))
                    .args(["run", scenario.to_str().unwrap(), "--no-charts"])
                    .args(["--seed", seed, "--out", shared.to_str().unwrap()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("sim starts")
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert_eq!(
                output.status.code(),
                Some(0),
                "round {round}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let after = contents(&shared);
        assert!(references.contains(&after), "round {round}: a mixed report");
        assert_eq!(names(&dir.join("shared")), ["out"], "round {round}");
    }
}
