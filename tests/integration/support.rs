//! Helpers shared by the integration tests: scenario builders, a library
//! runner and a builder for driving the `sim` binary.

use sim::metrics::summary::{FaultSummary, Summary};
use sim::model::{run, RunOutput};
use sim::scenario::Scenario;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every committed scenario file, sorted.
pub fn scenario_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios"))
        .expect("scenarios folder")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

/// Parses scenario JSON text, panicking with the error on failure.
pub fn scenario(json: &str) -> Scenario {
    Scenario::from_bytes("test.json", "test", json.as_bytes())
        .unwrap_or_else(|error| panic!("{error}"))
}

/// Runs `scenario` with `seed` and builds its summary.
pub fn run_summary(scenario: &Scenario, seed: u64) -> (RunOutput, Summary) {
    let output = run(scenario, seed).expect("run completes");
    let summary = Summary::new(scenario, seed, &output);
    (output, summary)
}

/// The entries of the summary's `faults` whose label `keep` accepts.
pub fn faults_where(summary: &Summary, keep: impl Fn(&str) -> bool) -> Vec<&FaultSummary> {
    summary
        .faults
        .iter()
        .filter(|fault| keep(&fault.label))
        .collect()
}

/// One api instance writing and reading (half and half, 1 call a second,
/// 1 s policy timeout) to database `db`: nodes `a`, `b`, `c` in three zones
/// of one region, a managed failover of 10 s, and a crash process on the
/// primary with the given mean times; `duration_ms` long, 10 s windows.
pub fn crashing_managed_cluster(duration_ms: u64, mttf_ms: u64, mttr_ms: u64) -> Scenario {
    scenario(&format!(
        r#"{{"description": "d", "duration_ms": {duration_ms}, "window_ms": 10000,
        "services": [{{"name": "api", "instances": 1, "workers": 16,
            "service_time_ms": {{"kind": "constant", "value_ms": 1}},
            "dependencies": {{"calls": [{{"database": "db", "policies": [{{"kind": "timeout", "timeout_ms": 1000}}]}}]}}}}],
        "clients": [{{"name": "c", "target": "api",
            "load": {{"kind": "open_loop", "rate": {{"kind": "constant", "rps": 1}}}}}}],
        "databases": [{{"name": "db", "zone_delay_ms": 1,
            "detection": {{"kind": "managed", "failover_ms": {{"kind": "constant", "value_ms": 10000}}}},
            "primary_failures": {{"mttf_ms": {mttf_ms}, "mttr_ms": {mttr_ms}}},
            "nodes": [{{"name": "a", "region": "r", "zone": "1"}}, {{"name": "b", "region": "r", "zone": "2"}},
                      {{"name": "c", "region": "r", "zone": "3"}}],
            "clients": {{"write_fraction": 0.5}}}}]}}"#
    ))
}

/// A fresh empty temporary folder under the target directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Drives the `sim` binary and checks its exit code and output, as `just`'s
/// test builder does.
pub struct Sim {
    args: Vec<String>,
    code: i32,
    stdout: Option<String>,
    stderr: Option<String>,
    stderr_contains: Vec<String>,
    stdout_prefix: Option<String>,
    current_dir: PathBuf,
    env: Vec<(String, String)>,
}

/// What a finished `Sim` printed.
pub struct Output {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Sim {
    /// `sim` with no arguments yet, expecting success.
    pub fn new() -> Self {
        Sim {
            args: Vec::new(),
            code: 0,
            stdout: None,
            stderr: None,
            stderr_contains: Vec::new(),
            stdout_prefix: None,
            current_dir: root(),
            env: Vec::new(),
        }
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, args: I) -> Self {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_string()));
        self
    }

    /// Sets an environment variable for the run.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Expects this exit code.
    pub fn code(mut self, code: i32) -> Self {
        self.code = code;
        self
    }

    /// Expects exactly this stderr.
    pub fn stderr(mut self, stderr: &str) -> Self {
        self.stderr = Some(stderr.to_string());
        self
    }

    /// Expects stderr to contain this text.
    pub fn stderr_contains(mut self, text: &str) -> Self {
        self.stderr_contains.push(text.to_string());
        self
    }

    /// Expects exactly this stdout.
    pub fn stdout(mut self, stdout: &str) -> Self {
        self.stdout = Some(stdout.to_string());
        self
    }

    /// Expects stdout to start with `<file>: ok`.
    pub fn stdout_contains_file(mut self, file: &str) -> Self {
        self.stdout_prefix = Some(format!("{file}: ok"));
        self
    }

    /// Runs the binary and checks every expectation.
    #[track_caller]
    pub fn run(self) -> Output {
        let output = Command::new(env!("CARGO_BIN_EXE_sim"))
            .args(&self.args)
            .current_dir(&self.current_dir)
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .output()
            .expect("sim runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(
            output.status.code(),
            Some(self.code),
            "sim {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            self.args
        );
        if let Some(expected) = &self.stderr {
            assert_eq!(&stderr, expected, "stderr of sim {:?}", self.args);
        }
        for text in &self.stderr_contains {
            assert!(
                stderr.contains(text),
                "stderr of sim {:?} lacks {text:?}:\n{stderr}",
                self.args
            );
        }
        assert!(!stderr.contains("panicked"), "sim panicked:\n{stderr}");
        if let Some(prefix) = &self.stdout_prefix {
            assert!(
                stdout.starts_with(prefix.as_str()),
                "stdout of sim {:?}: {stdout}",
                self.args
            );
        }
        if let Some(expected) = &self.stdout {
            assert_eq!(&stdout, expected, "stdout of sim {:?}", self.args);
        }
        Output { stdout, stderr }
    }
}

/// Makes sure a system the real-system tests use is installed: when
/// `present()` is false, installs it with `.ci/install-system-deps PART` if
/// this is root with apt-get. `Err` says why the test must skip (`NAME` is
/// how the message names the system).
pub fn ensure_system(part: &str, name: &str, present: impl Fn() -> bool) -> Result<(), String> {
    if present() {
        return Ok(());
    }
    let uid = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map_err(|error| format!("cannot run id: {error}"))?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err(format!(
            "{name} is not installed and this is not root, so it cannot be installed"
        ));
    }
    if !Path::new("/usr/bin/apt-get").exists() {
        return Err(format!(
            "{name} is not installed and there is no apt-get to install it"
        ));
    }
    let status = std::process::Command::new(root().join(".ci/install-system-deps"))
        .arg(part)
        .status()
        .map_err(|error| format!("cannot run .ci/install-system-deps: {error}"))?;
    if present() {
        Ok(())
    } else {
        Err(format!(
            ".ci/install-system-deps {part} did not install {name} ({status})"
        ))
    }
}

/// Runs `sim run` on the fixture `tests/fixtures/bad/NAME.json` and checks
/// that it exits 2 with exactly `error: FILE: MESSAGE` and writes nothing.
#[track_caller]
pub fn bad_fixture(name: &str, message: &str) {
    let file = format!("tests/fixtures/bad/{name}.json");
    Sim::new()
        .args([
            "run",
            &file,
            "--no-charts",
            "--out",
            "/nonexistent/never-written",
        ])
        .code(2)
        .stderr(&format!("error: {file}: {message}\n"))
        .run();
}

/// Runs `sim policy KIND` on the example `docs/examples/FOLDER/NAME.json`
/// with its `-events.json`, checks the output against
/// `tests/golden/FOLDER/NAME.jsonl` (rewritten instead with `UPDATE_GOLDEN`)
/// and returns the lines parsed.
#[track_caller]
pub fn policy_example(kind: &str, folder: &str, name: &str) -> Vec<serde_json::Value> {
    let config = format!("docs/examples/{folder}/{name}.json");
    let input = format!("docs/examples/{folder}/{name}-events.json");
    let golden = root().join(format!("tests/golden/{folder}/{name}.jsonl"));
    let sim = Sim::new().args(["policy", kind, "--config", &config, "--input", &input]);
    let stdout = if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let output = sim.run();
        std::fs::write(&golden, &output.stdout).expect("write golden");
        output.stdout
    } else {
        let expected = std::fs::read_to_string(&golden).expect("golden lines");
        sim.stdout(&expected).run().stdout
    };
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

/// Success over finished requests in the windows starting in `[from_s, to_s)`.
pub fn availability_between(rows: &[sim::metrics::WindowRow], from_s: f64, to_s: f64) -> f64 {
    let (ok, finished) = rows
        .iter()
        .filter(|row| (from_s..to_s).contains(&row.start.as_seconds_f64()))
        .fold((0, 0), |(ok, finished), row| {
            (
                ok + row.outcomes.get(sim::metrics::Outcome::Success),
                finished + row.finished(),
            )
        });
    ok as f64 / finished.max(1) as f64
}
