//! `sim explore FILE --seed N`: search the scenario's `explore.search`
//! space for a run that fails one of its `explore.assertions`, shrink the
//! worst failure, and write `explore.json` (what was tried, the worst
//! cases) and `shrunk.json` (the minimal failing scenario, which
//! `sim run shrunk.json --seed N` replays) through the one report writer.
//! Also the assertion lines `sim run` prints for a scenario that has them.

use crate::error::Error;
use crate::explore::assert::{Assertion, Evaluation, Verdict};
use crate::explore::search::{Explorer, Outcome, Report, Trial};
use crate::explore::shrink::{shrink, Shrunk};
use crate::report::{self, RenderedFile};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Flags of `sim explore`.
#[derive(Debug, clap::Args)]
pub struct ExploreArgs {
    /// The scenario file (JSON) with an `explore` section.
    pub file: PathBuf,
    /// The seed of every run and of the search itself.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How many candidates to run [default: 200, or unlimited with
    /// --minutes]. Only this budget is deterministic.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub runs: Option<u64>,
    /// Stop starting new batches after this many minutes of wall time. The
    /// candidates run then depend on the machine's speed; the output gives
    /// the run count that `--runs` replays exactly.
    #[arg(long, value_parser = parse_minutes)]
    pub minutes: Option<f64>,
    /// The most runs spent shrinking a failure.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub shrink_runs: u64,
    /// Where to write explore.json and shrunk.json
    /// [default: reports/<scenario>/explore-seed-<seed>].
    #[allow(rustdoc::invalid_html_tags)]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Estimate instead of search: run the scenario as written (its own
    /// faults, no search) on N seeds derived from --seed, and report the
    /// probability that an assertion fails with a Wilson 95% interval
    /// (docs/explore.md, "How likely is it?"). Writes estimate.json.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000), conflicts_with_all = ["runs", "minutes"])]
    pub estimate: Option<u64>,
    /// With --estimate: `monte-carlo` (N seeds), `splitting` (multilevel
    /// splitting on --score, for failures too rare for N seeds), or `auto`
    /// (Monte Carlo, then splitting when fewer than 10 runs failed).
    #[arg(long, value_enum, default_value_t = EstimateMethod::Auto, requires = "estimate")]
    pub method: EstimateMethod,
    /// With splitting: the importance score, `failed_requests` (requests
    /// ended other than in success so far) or `queue_depth` (the largest
    /// queue depth so far).
    #[arg(long, default_value = "failed_requests", value_parser = ["failed_requests", "queue_depth"], requires = "estimate")]
    pub score: String,
    /// With splitting: runs per stage and replication.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(10..=100_000), requires = "estimate")]
    pub particles: u64,
    /// With splitting: independent replications (the interval is the
    /// Student-t interval of their mean).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..=1_000), requires = "estimate")]
    pub replications: u64,
    /// Use N in place of the scenario's limits.events_max for every run.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1_000..))]
    pub events_max: Option<u64>,
}

/// How `--estimate` estimates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EstimateMethod {
    /// N seeds, Wilson interval.
    MonteCarlo,
    /// Multilevel splitting with levels from a pilot.
    Splitting,
    /// Monte Carlo, then splitting when fewer than 10 runs failed.
    Auto,
}

/// A positive, finite number of minutes.
fn parse_minutes(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(minutes) if minutes.is_finite() && minutes > 0.0 => Ok(minutes),
        _ => Err(format!("must be a positive number of minutes (got {text})")),
    }
}

/// The default budget when neither --runs nor --minutes is given.
const RUNS_DEFAULT: u64 = 200;

/// The run budget when only --minutes is given.
const RUNS_UNLIMITED: u64 = 10_000_000;

/// Runs `sim explore`.
pub fn explore(args: &ExploreArgs) -> Result<(), Error> {
    if let Some(trials) = args.estimate {
        return super::estimate::estimate(args, trials);
    }
    let explorer = Explorer::load(&args.file, args.seed, args.events_max)?;
    let dir = args.out.clone().unwrap_or_else(|| {
        Path::new("reports")
            .join(&explorer.name)
            .join(format!("explore-seed-{}", args.seed))
    });
    report::output::check_target(&dir, &report::REPORT_FILE_NAMES)
        .map_err(report::ReportError::from)?;
    let runs_max = match (args.runs, args.minutes) {
        (Some(runs), _) => runs,
        (None, Some(_)) => RUNS_UNLIMITED,
        (None, None) => RUNS_DEFAULT,
    };
    let report = search(&explorer, runs_max, args.minutes);
    let shrunk = report
        .worst_failure()
        .map(|(trial, assertion)| shrink(&explorer, &trial.candidate, assertion, args.shrink_runs));
    let mut files = vec![RenderedFile {
        name: "explore.json",
        bytes: explore_json(&explorer, &report, shrunk.as_ref(), args).into_bytes(),
    }];
    if let Some(shrunk) = &shrunk {
        files.push(RenderedFile {
            name: "shrunk.json",
            bytes: shrunk_text(&explorer, shrunk, args).into_bytes(),
        });
    }
    let written = report::write_all(&dir, &files)?;
    super::print(&text(&explorer, &report, shrunk.as_ref(), args, &written))?;
    match &shrunk {
        None => Ok(()),
        Some(shrunk) => {
            let assertion = &explorer.assertions[shrunk.assertion];
            Err(Error::Check(format!(
                "{}: {} fails ({}); reproduce: sim run {} --seed {}",
                explorer.file,
                assertion.text(),
                assertion.path,
                dir.join("shrunk.json").display(),
                args.seed
            )))
        }
    }
}

/// The search with a progress bar and the wall-clock budget.
// The wall clock only decides when to stop between batches; it never
// reaches a result (the report says how many runs were made).
#[allow(clippy::disallowed_methods)]
fn search(explorer: &Explorer, runs_max: u64, minutes: Option<f64>) -> Report {
    let started = std::time::Instant::now();
    let bar = crate::sweep::progress_bar(runs_max.min(RUNS_UNLIMITED - 1), minutes.is_none());
    let spinner = minutes.and_then(|_| {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal().then(|| {
            let spinner = indicatif::ProgressBar::new_spinner();
            spinner.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {pos} runs  {per_sec}  {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            spinner
        })
    });
    let mut keep_going = |done: u64| {
        for bar in bar.iter().chain(spinner.iter()) {
            bar.set_position(done);
        }
        minutes.is_none_or(|minutes| started.elapsed().as_secs_f64() < minutes * 60.0)
    };
    let report = explorer.search(runs_max, &mut keep_going);
    for bar in bar.iter().chain(spinner.iter()) {
        bar.finish_and_clear();
    }
    report
}

/// The faults of a candidate as compact JSON, one per fault.
fn faults_of(
    explorer: &Explorer,
    trial_candidate: &crate::explore::space::Candidate,
) -> Vec<Value> {
    explorer
        .base
        .render(&explorer.space, trial_candidate)
        .ok()
        .and_then(|value| value.get("faults").and_then(Value::as_array).cloned())
        .unwrap_or_default()
}

/// The searched parameters of a candidate, by path (the file's value when
/// unchanged is left out).
fn parameters_of(explorer: &Explorer, candidate: &crate::explore::space::Candidate) -> Value {
    let mut map = serde_json::Map::new();
    for (parameter, value) in explorer.space.parameters.iter().zip(&candidate.parameters) {
        if let Some(value) = value {
            map.insert(parameter.path.clone(), parameter.json(*value));
        }
    }
    for (path, value) in &candidate.overrides {
        map.insert(path.clone(), value.clone());
    }
    Value::Object(map)
}

fn evaluations_json(assertions: &[Assertion], evaluations: &[Evaluation]) -> Value {
    Value::Array(
        assertions
            .iter()
            .zip(evaluations)
            .map(|(assertion, evaluation)| {
                json!({
                    "assertion": assertion.text(),
                    "verdict": evaluation.verdict,
                    "value": evaluation.value,
                    "margin": evaluation.margin,
                    "margin_relative": evaluation.margin_relative,
                })
            })
            .collect(),
    )
}

fn trial_json(explorer: &Explorer, trial: &Trial) -> Value {
    let evaluations = match &trial.outcome {
        Outcome::Ran(evaluations) => evaluations_json(&explorer.assertions, evaluations),
        _ => Value::Null,
    };
    json!({
        "run": trial.index,
        "score": trial.outcome.score(),
        "faults": faults_of(explorer, &trial.candidate),
        "parameters": parameters_of(explorer, &trial.candidate),
        "evaluations": evaluations,
    })
}

/// `explore.json`: the search's settings, counts, worst cases and the
/// shrunk failure. No wall time: the same seed and runs give the same bytes.
fn explore_json(
    explorer: &Explorer,
    report: &Report,
    shrunk: Option<&Shrunk>,
    args: &ExploreArgs,
) -> String {
    let assertions: Vec<Value> = explorer
        .assertions
        .iter()
        .enumerate()
        .map(|(index, assertion)| {
            json!({
                "assertion": assertion.text(),
                "path": assertion.path,
                "failed_runs": report.failed[index],
                "undefined_runs": report.undefined[index],
            })
        })
        .collect();
    let shrunk = shrunk.map(|shrunk| {
        let evaluations = match &shrunk.outcome {
            Outcome::Ran(evaluations) => evaluations_json(&explorer.assertions, evaluations),
            _ => Value::Null,
        };
        json!({
            "assertion": explorer.assertions[shrunk.assertion].text(),
            "file": "shrunk.json",
            "runs": shrunk.runs,
            "faults": faults_of(explorer, &shrunk.candidate),
            "parameters": parameters_of(explorer, &shrunk.candidate),
            "steps": shrunk.steps,
            "evaluations": evaluations,
        })
    });
    let value = json!({
        "version": crate::metrics::summary::VERSION,
        "scenario": explorer.name,
        "seed": args.seed,
        "runs": report.runs,
        "replay": format!("sim explore {} --seed {} --runs {}", explorer.file, args.seed, report.runs),
        "refused": report.invalid,
        "run_errors": report.run_errors,
        "first_run_error": report.first_run_error.as_ref().map(|(run, message)| json!({"run": run, "message": message})),
        "runs_failing": report.runs_failing,
        "assertions": assertions,
        "worst": report.worst.iter().map(|trial| trial_json(explorer, trial)).collect::<Vec<_>>(),
        "shrunk": shrunk,
    });
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

/// `shrunk.json`: the shrunk candidate as a scenario file, with its
/// assertions (so `sim run` reports the failure) and a description saying
/// where it came from.
fn shrunk_text(explorer: &Explorer, shrunk: &Shrunk, args: &ExploreArgs) -> String {
    let Ok(mut value) = explorer.base.render(&explorer.space, &shrunk.candidate) else {
        return String::new();
    };
    let description = value
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let assertion = &explorer.assertions[shrunk.assertion];
    if let Value::Object(map) = &mut value {
        map.insert(
            "description".into(),
            Value::String(format!(
                "Found and shrunk by `sim explore {} --seed {}`: with seed {} this scenario fails {}. From: {}",
                explorer.file, args.seed, args.seed, assertion.text(), description
            )),
        );
    }
    crate::explore::space::text(&value)
}

fn value_text(value: Option<f64>) -> String {
    value.map_or_else(|| "undefined".to_string(), |value| format!("{value}"))
}

/// The text printed on stdout.
fn text(
    explorer: &Explorer,
    report: &Report,
    shrunk: Option<&Shrunk>,
    args: &ExploreArgs,
    written: &[PathBuf],
) -> String {
    let mut out = format!(
        "explore {} --seed {}: {} runs ({} refused by validation, {} stopped at a limit), {} failing an assertion\n",
        explorer.file, args.seed, report.runs, report.invalid, report.run_errors, report.runs_failing
    );
    for (index, assertion) in explorer.assertions.iter().enumerate() {
        out.push_str(&format!(
            "  {}: failed in {} runs, undefined in {}\n",
            assertion.text(),
            report.failed[index],
            report.undefined[index]
        ));
    }
    if let Some((run, message)) = &report.first_run_error {
        out.push_str(&format!(
            "  first run stopped at a limit: run {run}: {message}\n"
        ));
    }
    out.push_str("worst cases (smallest margin first):\n");
    for trial in &report.worst {
        out.push_str(&format!(
            "  run {}: score {:.4}\n",
            trial.index,
            trial.outcome.score().unwrap_or(f64::NAN)
        ));
        for fault in faults_of(explorer, &trial.candidate) {
            out.push_str(&format!("    fault {fault}\n"));
        }
        let parameters = parameters_of(explorer, &trial.candidate);
        if parameters.as_object().is_some_and(|map| !map.is_empty()) {
            out.push_str(&format!("    parameters {parameters}\n"));
        }
        if let Outcome::Ran(evaluations) = &trial.outcome {
            for (assertion, evaluation) in explorer.assertions.iter().zip(evaluations) {
                out.push_str(&format!(
                    "    {}: {} (value {}, margin {:.4})\n",
                    assertion.text(),
                    verdict_word(evaluation.verdict),
                    value_text(evaluation.value),
                    evaluation.margin
                ));
            }
        }
    }
    match shrunk {
        None => out.push_str("no assertion failed\n"),
        Some(shrunk) => {
            out.push_str(&format!(
                "shrunk the worst failure ({}) in {} runs, {} steps, to:\n",
                explorer.assertions[shrunk.assertion].text(),
                shrunk.runs,
                shrunk.steps.len()
            ));
            for fault in faults_of(explorer, &shrunk.candidate) {
                out.push_str(&format!("    fault {fault}\n"));
            }
            let parameters = parameters_of(explorer, &shrunk.candidate);
            if parameters.as_object().is_some_and(|map| !map.is_empty()) {
                out.push_str(&format!("    parameters {parameters}\n"));
            }
        }
    }
    for path in written {
        out.push_str(&format!("  wrote {}\n", path.display()));
    }
    out.push_str(&format!(
        "replay this search: sim explore {} --seed {} --runs {}\n",
        explorer.file, args.seed, report.runs
    ));
    out
}

fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "FAIL",
        Verdict::Undefined => "undefined",
    }
}

/// The lines `sim run` prints for a scenario's assertions, and the first
/// failure as an error (exit 1), if any.
pub fn assertion_lines(
    file: &str,
    seed: u64,
    assertions: &[Assertion],
    evaluations: &[Evaluation],
) -> (String, Option<Error>) {
    let mut out = String::new();
    let mut first_failure = None;
    for (assertion, evaluation) in assertions.iter().zip(evaluations) {
        out.push_str(&format!(
            "assertion {}: {} (value {}, margin {:.4})\n",
            assertion.text(),
            verdict_word(evaluation.verdict),
            value_text(evaluation.value),
            evaluation.margin
        ));
        if evaluation.verdict == Verdict::Fail && first_failure.is_none() {
            first_failure = Some(Error::Check(format!(
                "{file}: {}: {} fails (value {}); reproduce: sim run {file} --seed {seed}",
                assertion.path,
                assertion.text(),
                value_text(evaluation.value)
            )));
        }
    }
    (out, first_failure)
}
