//! The command line: `sim run`, `sim validate`, `sim bench`, `sim policy`,
//! `sim sweep`, `sim compare`, `sim merge`, `sim explore`. Parses flags with clap, calls
//! the library, prints results. This module and `report` are the only ones
//! that do I/O.

use crate::error::Error;
use crate::metrics::summary::Summary;
use crate::policy::driver;
use crate::report;
use crate::scenario::{Scenario, ScenarioError};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};

mod estimate;
mod explore;
mod sweep;
pub use explore::ExploreArgs;
pub use sweep::{CompareArgs, MergeArgs, SweepArgs};

/// A deterministic fault-injection simulator for reliability policies.
#[derive(Debug, Parser)]
#[command(name = "sim", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one scenario with one seed: print a summary and write a report.
    Run(RunArgs),
    /// Time the simulation of a scenario (no report is written): wall time,
    /// events per second. Wall time is read here only, never in a run's output.
    Bench(BenchArgs),
    /// Check a scenario file without running it.
    Validate {
        /// The scenario file.
        file: PathBuf,
    },
    /// Drive one policy alone through a list of timed events and print one
    /// JSON line per hook call: what the policy decided, its state and counters.
    Policy(PolicyArgs),
    /// Run a scenario over a grid (or sample) of parameter values, many
    /// seeds per point, in parallel: runs.csv, points.csv with 95% intervals,
    /// charts and index.html. Resumable; shardable across a cluster.
    Sweep(SweepArgs),
    /// Run two or more designs on the same seeds and judge each metric on
    /// the paired differences: intervals, verdicts, seeds needed.
    Compare(CompareArgs),
    /// Combine shards' partial results into the folder a single-machine
    /// sweep writes.
    Merge(MergeArgs),
    /// Search the scenario's `explore.search` space of faults and parameters
    /// for a run that fails one of its `explore.assertions`, and shrink it
    /// to a minimal scenario that `sim run` replays. Exit 1 when one fails.
    Explore(ExploreArgs),
}

/// How the summary is printed on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A readable table.
    Table,
    /// The summary as JSON (the same as summary.json).
    Json,
}

/// Flags of `sim run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The scenario file (JSON).
    pub file: PathBuf,
    /// The seed: the same scenario and seed always give the same results.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write the report [default: reports/<scenario>/seed-<seed>].
    // The text is clap's help, not markdown: `<scenario>` is not an HTML tag.
    #[allow(rustdoc::invalid_html_tags)]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// How to print the summary on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Skip the PNG charts (faster; JSON and CSV are still written).
    #[arg(long)]
    pub no_charts: bool,
    /// Use N in place of the scenario's limits.events_max, both in the
    /// validation-time event budget and for the run.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1_000..))]
    pub events_max: Option<u64>,
}

/// Flags of `sim bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The scenario file (JSON).
    pub file: PathBuf,
    /// The seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How many timed runs (after one warm-up run).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
}

/// Flags of `sim policy`.
#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    /// The policy's kind, as in a scenario (`circuit_breaker`); it must match
    /// the config's `kind`. `health_check` and `feature_flag` drive a
    /// service's checks instead, with probe results as events; `router`
    /// drives a global router (regions, latency and one router as config).
    pub name: String,
    /// The policy: one object as in a scenario's `policies` array (JSON).
    #[arg(long)]
    pub config: PathBuf,
    /// The events: a JSON array of `{"at_ms": 0, "call": 1, "event": "start"}`.
    #[arg(long)]
    pub input: PathBuf,
    /// The seed of the policy's random stream (jittered backoff).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Run(args) => run_scenario(&args),
        Command::Bench(args) => bench(&args),
        Command::Policy(args) => drive_policy(&args),
        Command::Sweep(args) => sweep::sweep(&args),
        Command::Compare(args) => sweep::compare(&args),
        Command::Merge(args) => sweep::merge(&args),
        Command::Explore(args) => explore::explore(&args),
        Command::Validate { file } => {
            let scenario = Scenario::load(&file)?;
            crate::explore::check_file(&file, &scenario)?;
            print(&format!(
                "{}: ok ({}, {}, {})\n",
                crate::scenario::error::escape_control(&file.display().to_string()),
                count(scenario.services.len(), "service"),
                count(scenario.clients.len(), "client"),
                count(scenario.faults.len(), "fault")
            ))
        }
    }
}

fn run_scenario(args: &RunArgs) -> Result<(), Error> {
    // Read once: the scenario, its assertions and the HTML page all come
    // from these bytes.
    let read = crate::scenario::ScenarioFile::read(&args.file)?;
    let scenario = Scenario::from_bytes_with(&read.file, &read.name, &read.bytes, args.events_max)?;
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| default_out(&scenario.name, args.seed));
    // A bad --out is refused before the run, not after it.
    report::output::check_target(&dir, &report::REPORT_FILE_NAMES)
        .map_err(report::ReportError::from)?;
    let assertions = crate::explore::assertions(&read.file, &read.bytes, &scenario)?;
    let file = args.file.display().to_string();
    let output = crate::model::run(&scenario, args.seed).map_err(|source| Error::Run {
        file: file.clone(),
        seed: args.seed,
        events_max: args.events_max,
        source,
    })?;
    let summary = Summary::new(&scenario, args.seed, &output);
    let (assertion_text, assertion_failure) = if assertions.is_empty() {
        (String::new(), None)
    } else {
        let view = crate::explore::assert::RunView::new(&scenario, &output, &summary);
        let evaluations = crate::explore::assert::evaluate(&assertions, &view);
        explore::assertion_lines(&file, args.seed, &assertions, &evaluations)
    };
    let mut files = report::render(
        &scenario,
        &summary,
        &output.rows,
        output.regions.as_ref(),
        !args.no_charts,
    )?;
    report::database::extend(&scenario, &output.databases, &mut files, !args.no_charts)
        .map_err(report::ReportError::from)?;
    if !args.no_charts {
        // The page shows the scenario as given.
        let text = String::from_utf8_lossy(&read.bytes);
        files.push(sweep::run_index(&summary, &text, &files)?);
    }
    let written = report::write_all(&dir, &files)?;
    let text = match args.format {
        Format::Json => report::summary_json(&summary)?,
        Format::Table => {
            let mut text = report::table::render(&summary);
            text.push('\n');
            for path in &written {
                text.push_str(&format!("  wrote {}\n", path.display()));
            }
            text.push_str(&assertion_text);
            text
        }
    };
    print(&text).map_err(|error| match error {
        Error::Stdout(source) => Error::StdoutAfterReport { dir, source },
        other => other,
    })?;
    assertion_failure.map_or(Ok(()), Err)
}

/// Writes `text` to stdout and flushes it; a failure is `Error::Stdout`
/// (a broken pipe ends the program quietly, as in ripgrep: see `main.rs`).
pub fn print(text: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(Error::Stdout)
}

fn drive_policy(args: &PolicyArgs) -> Result<(), Error> {
    let read = |path: &Path| {
        let file = path.display().to_string();
        crate::scenario::input::read_input(path)
            .map(|bytes| (file.clone(), bytes))
            .map_err(|source| Error::Read { file, source })
    };
    let (config_file, config) = read(&args.config)?;
    // All or nothing: a bad event prints no lines, only the error.
    let lines = if args.name == "router" {
        let (input_file, input) = read(&args.input)?;
        crate::topology::driver::drive((&config_file, &config), (&input_file, &input), args.seed)?
    } else if crate::model::check_driver::drives(&args.name) {
        let (input_file, input) = read(&args.input)?;
        crate::model::check_driver::drive(
            &args.name,
            (&config_file, &config),
            (&input_file, &input),
        )?
    } else {
        let spec = driver::parse_config(&config_file, &config, &args.name)?;
        let (input_file, input) = read(&args.input)?;
        let events = driver::parse_events(&input_file, &input)?;
        driver::drive(&spec, &events, args.seed)
            .map_err(|invalid| ScenarioError::Invalid {
                file: input_file.clone(),
                invalid,
            })?
            .iter()
            .map(driver::Line::to_json)
            .collect()
    };
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    print(&text)
}

// The benchmark is the one place that reads the wall clock: it measures the
// simulator, and what it prints never feeds a report.
#[allow(clippy::disallowed_methods)]
fn bench(args: &BenchArgs) -> Result<(), Error> {
    let scenario = Scenario::load(&args.file)?;
    let file = args.file.display().to_string();
    let simulate = || {
        crate::model::run(&scenario, args.seed).map_err(|source| Error::Run {
            file: file.clone(),
            seed: args.seed,
            events_max: None,
            source,
        })
    };
    let events = simulate()?.events;
    // The warm-up run's peak, in a fresh process: later runs reuse (and
    // fragment) the memory the first one freed, so theirs says less about
    // what one run needs.
    let peak = peak_rss_kib()
        .map(|kib| format!(", peak RSS {kib} KiB (first run)"))
        .unwrap_or_default();
    let mut seconds: Vec<f64> = Vec::with_capacity(args.repeat as usize);
    for _ in 0..args.repeat {
        let started = std::time::Instant::now();
        let output = simulate()?;
        seconds.push(started.elapsed().as_secs_f64());
        debug_assert_eq!(output.events, events);
    }
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2];
    print(&format!(
        "{}: {} events per run, {} runs: median {:.3} s (min {:.3} s, max {:.3} s), {:.2} M events/s{}\n",
        file,
        events,
        args.repeat,
        median,
        seconds[0],
        seconds[seconds.len() - 1],
        events as f64 / median / 1e6,
        peak
    ))
}

/// This process's peak resident set size in KiB (`VmHWM` in
/// `/proc/self/status`); `None` where the system does not say.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// `1 service`, `2 services`.
fn count(number: usize, noun: &str) -> String {
    if number == 1 {
        format!("1 {noun}")
    } else {
        format!("{number} {noun}s")
    }
}

/// `reports/<scenario>/seed-<seed>`.
pub fn default_out(scenario: &str, seed: u64) -> PathBuf {
    Path::new("reports")
        .join(scenario)
        .join(format!("seed-{seed}"))
}
