//! `sim explore FILE --estimate N`: how likely is it that a run of the
//! scenario, as written, fails one of its `explore.assertions`? Runs N seeds
//! (derived from `--seed`) through `estimate::monte_carlo` and writes
//! `estimate.json` through the one report writer. The estimator itself is in
//! `estimate`; this file only wires it to `model::run` and the assertions.

use super::ExploreArgs;
use crate::error::Error;
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
    let result = monte_carlo(args.seed, trials, |seed| {
        trial(&scenario, &assertions, seed).map_err(|source| (seed, source))
    })
    .map_err(|(seed, source)| Error::Run {
        file: file.clone(),
        seed,
        events_max: args.events_max,
        source,
    })?;
    let files = [RenderedFile {
        name: "estimate.json",
        bytes: estimate_json(&file, &scenario, &assertions, &result, args).into_bytes(),
    }];
    let written = report::write_all(&dir, &files)?;
    super::print(&text(&file, &assertions, &result, args, &written))
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
    args: &ExploreArgs,
) -> String {
    let value = json!({
        "version": crate::metrics::summary::VERSION,
        "scenario": scenario.name,
        "seed": args.seed,
        "runs": result.trials,
        "replay": format!("sim explore {file} --seed {} --estimate {}", args.seed, result.trials),
        "assertions": assertions.iter().map(Assertion::text).collect::<Vec<_>>(),
        "method": "monte_carlo",
        "failures": result.failures,
        "probability": result.probability,
        "interval": "wilson_95",
        "rare": rare(result),
        "failing_seeds": result.failing_seeds,
        "worst": result.worst_margin.map(|(margin, seed)| json!({"margin_relative": margin, "seed": seed})),
    });
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

/// The text printed on stdout.
fn text(
    file: &str,
    assertions: &[Assertion],
    result: &MonteCarlo,
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
    if rare(result) {
        out.push_str(&format!(
            "  rare: fewer than 1 in {:.0} runs failed, so {:.6} is only an upper bound; see \"How likely is it?\" in docs/explore.md\n",
            1.0 / RARE,
            probability.high
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
