//! `sim explore FILE --estimate N`: how likely is it that a run of the
//! scenario, as written, fails one of its `explore.assertions`? Runs N seeds
//! (derived from `--seed`) through `estimate::monte_carlo` and, with
//! `--method splitting` (or `auto` when fewer than 10 runs failed), also
//! multilevel splitting (`estimate::splitting` on
//! `estimate::scenario::ScenarioProcess`), and writes `estimate.json`
//! through the one report writer. The estimators are in `estimate`; this
//! file only wires them to the scenario, the assertions and a progress bar.

use super::explore::EstimateMethod;
use super::ExploreArgs;
use crate::error::Error;
use crate::estimate::scenario::{ScenarioProcess, Score};
use crate::estimate::splitting::{
    choose_levels, splitting, Pilot, PilotConfig, Reached, Splittable, Splitting, SplittingConfig,
    Target,
};
use crate::estimate::{monte_carlo, MonteCarlo, Trial};
use crate::explore::assert::{self, Assertion, RunView, Verdict};
use crate::metrics::summary::Summary;
use crate::report::{self, RenderedFile};
use crate::scenario::error::Invalid;
use crate::scenario::{Scenario, ScenarioError};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Below this failure rate the Wilson interval is all the runs can say, and
/// the report points to splitting.
const RARE: f64 = 1e-3;

/// `--method auto` adds splitting when Monte Carlo saw fewer failures.
const AUTO_FAILURES_MIN: u64 = 10;

/// Splitting's result with the pilot that chose its levels.
struct Split {
    score: Score,
    pilot: Pilot,
    result: Splitting,
}

/// A process that ticks a progress bar once per run.
struct Counted<'a, P> {
    inner: P,
    bar: Option<&'a indicatif::ProgressBar>,
}

impl<P: Splittable> Splittable for Counted<'_, P> {
    type Point = P::Point;
    type Error = P::Error;

    fn run(
        &self,
        from: Option<&P::Point>,
        seed: u64,
        target: Target,
    ) -> Result<Reached<P::Point>, P::Error> {
        let reached = self.inner.run(from, seed, target);
        if let Some(bar) = self.bar {
            bar.inc(1);
        }
        reached
    }
}

/// A progress bar (known length) or counter (unknown) on stderr when it is
/// a terminal; never in the output files.
fn progress(length: Option<u64>) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let (bar, template) = match length {
        Some(length) => (
            indicatif::ProgressBar::new(length),
            "{bar:40} {pos}/{len} runs  {per_sec}  ETA {eta}",
        ),
        None => (
            indicatif::ProgressBar::new_spinner(),
            "{spinner} splitting: {pos} runs  {per_sec}  {elapsed}",
        ),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// Runs `sim explore FILE --estimate trials`.
pub fn estimate(args: &ExploreArgs, trials: u64) -> Result<(), Error> {
    let scenario = Scenario::load_with(&args.file, args.events_max)?;
    let crate::scenario::ScenarioFile { file, bytes, .. } =
        crate::scenario::ScenarioFile::read(&args.file)?;
    let assertions = crate::explore::assertions(&file, &bytes, &scenario)?;
    if assertions.is_empty() {
        return Err(ScenarioError::Invalid {
            file,
            invalid: Invalid::new(
                "explore.assertions",
                "sim explore --estimate needs at least one assertion",
            ),
        }
        .into());
    }
    let dir = args.out.clone().unwrap_or_else(|| {
        Path::new("reports")
            .join(&scenario.name)
            .join(format!("estimate-seed-{}", args.seed))
    });
    report::output::check_target(&dir, &report::REPORT_FILE_NAMES)
        .map_err(report::ReportError::from)?;
    let run_error = |(seed, source)| Error::Run {
        file: file.clone(),
        seed,
        events_max: args.events_max,
        source,
    };
    let bar = progress(Some(trials));
    let result = monte_carlo(args.seed, trials, |seed| {
        let result = trial(&scenario, &assertions, seed).map_err(|source| (seed, source));
        if let Some(bar) = &bar {
            bar.inc(1);
        }
        result
    })
    .map_err(run_error)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let split = match args.method {
        EstimateMethod::MonteCarlo => None,
        EstimateMethod::Auto if result.failures >= AUTO_FAILURES_MIN => None,
        EstimateMethod::Splitting | EstimateMethod::Auto => {
            let score = Score::from_name(&args.score).unwrap_or(Score::FailedRequests);
            let bar = progress(None);
            let process = Counted {
                inner: ScenarioProcess {
                    scenario: &scenario,
                    assertions: &assertions,
                    score,
                },
                bar: bar.as_ref(),
            };
            let particles = args.particles as usize;
            let pilot_config = PilotConfig {
                particles,
                ..PilotConfig::default()
            };
            let pilot = choose_levels(&process, &pilot_config, args.seed).map_err(run_error)?;
            let config = SplittingConfig {
                levels: pilot.levels.clone(),
                particles,
                replications: args.replications as usize,
            };
            let result = splitting(&process, &config, args.seed).map_err(run_error)?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            Some(Split {
                score,
                pilot,
                result,
            })
        }
    };
    let files = [RenderedFile {
        name: "estimate.json",
        bytes: estimate_json(&file, &scenario, &assertions, &result, split.as_ref(), args)
            .into_bytes(),
    }];
    let written = report::write_all(&dir, &files)?;
    super::print(&text(
        &file,
        &assertions,
        &result,
        split.as_ref(),
        args,
        &written,
    ))
}

/// One run with `seed`: failed when some assertion fails; the margin is the
/// smallest relative margin (infinite when every assertion is undefined).
pub fn trial(
    scenario: &Scenario,
    assertions: &[Assertion],
    seed: u64,
) -> Result<Trial, crate::model::RunError> {
    let output = crate::model::run(scenario, seed)?;
    let summary = Summary::new(scenario, seed, &output);
    let view = RunView::new(scenario, &output, &summary);
    let evaluations = assert::evaluate(assertions, &view);
    Ok(Trial {
        failed: evaluations
            .iter()
            .any(|evaluation| evaluation.verdict == Verdict::Fail),
        margin: assert::score(&evaluations).unwrap_or(f64::INFINITY),
    })
}

fn rare(result: &MonteCarlo) -> bool {
    (result.failures as f64) < RARE * result.trials as f64
}

/// `estimate.json`: no wall time, so the same seed and N give the same bytes.
fn estimate_json(
    file: &str,
    scenario: &Scenario,
    assertions: &[Assertion],
    result: &MonteCarlo,
    split: Option<&Split>,
    args: &ExploreArgs,
) -> String {
    let method = match args.method {
        EstimateMethod::MonteCarlo => "monte-carlo",
        EstimateMethod::Splitting => "splitting",
        EstimateMethod::Auto => "auto",
    };
    let mut value = json!({
        "version": crate::metrics::summary::VERSION,
        "scenario": scenario.name,
        "seed": args.seed,
        "runs": result.trials,
        "replay": replay(file, args, result.trials),
        "assertions": assertions.iter().map(Assertion::text).collect::<Vec<_>>(),
        "method": method,
        "failures": result.failures,
        "probability": result.probability,
        "interval": "wilson_95",
        "rare": rare(result),
        "failing_seeds": result.failing_seeds,
        "worst": result.worst_margin.map(|(margin, seed)| json!({"margin_relative": margin, "seed": seed})),
    });
    if let Some(split) = split {
        let result = &split.result;
        value["splitting"] = json!({
            "score": split.score.name(),
            "levels": result.levels,
            "particles": result.particles,
            "replications": result.replications,
            "pilot_runs": split.pilot.runs,
            "runs": result.runs,
            "probability": result.probability,
            "interval": "student_t_95_over_replications",
            "relative_error": finite(result.relative_error),
            "replication_estimates": result.replication_estimates,
            "stage_fractions": result.stage_fractions,
            "bypasses": result.bypasses,
            "independent_stages": result.independent_stages,
        });
    }
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

/// A float for JSON: `null` when not finite.
fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

/// The command that replays this estimate.
fn replay(file: &str, args: &ExploreArgs, trials: u64) -> String {
    let mut command = format!(
        "sim explore {file} --seed {} --estimate {trials}",
        args.seed
    );
    if args.method != EstimateMethod::Auto {
        command.push_str(&format!(
            " --method {}",
            match args.method {
                EstimateMethod::MonteCarlo => "monte-carlo",
                _ => "splitting",
            }
        ));
    }
    if args.method != EstimateMethod::MonteCarlo {
        command.push_str(&format!(
            " --score {} --particles {} --replications {}",
            args.score, args.particles, args.replications
        ));
    }
    command
}

/// The text printed on stdout.
fn text(
    file: &str,
    assertions: &[Assertion],
    result: &MonteCarlo,
    split: Option<&Split>,
    args: &ExploreArgs,
    written: &[PathBuf],
) -> String {
    let probability = result.probability;
    let mut out = format!(
        "estimate {file} --seed {}: {} runs, {} failing an assertion\n",
        args.seed, result.trials, result.failures
    );
    for assertion in assertions {
        out.push_str(&format!("  assert {}\n", assertion.text()));
    }
    out.push_str(&format!(
        "  P(fail) = {:.6} (95% Wilson interval {:.6} to {:.6})\n",
        probability.estimate, probability.low, probability.high
    ));
    if rare(result) && split.is_none() {
        out.push_str(&format!(
            "  rare: fewer than 1 in {:.0} runs failed, so {:.6} is only an upper bound; --method splitting estimates below it (docs/explore.md, \"How likely is it?\")\n",
            1.0 / RARE,
            probability.high
        ));
    }
    if let Some(split) = split {
        let result = &split.result;
        let interval = result.probability;
        out.push_str(&format!(
            "  splitting on {}: {} levels {:?} (pilot: {} runs), {} particles x {} replications, {} runs\n",
            split.score.name(),
            result.levels.len(),
            result.levels,
            split.pilot.runs,
            result.particles,
            result.replications,
            result.runs
        ));
        out.push_str(&format!(
            "  P(fail) = {:.3e} (95% t-interval over replications {:.3e} to {:.3e})\n",
            interval.estimate, interval.low, interval.high
        ));
    }
    if let Some((margin, seed)) = result.worst_margin {
        out.push_str(&format!(
            "  worst run: seed {seed}, relative margin {margin:.4}: sim run {file} --seed {seed}\n"
        ));
    }
    for path in written {
        out.push_str(&format!("  wrote {}\n", path.display()));
    }
    out
}
