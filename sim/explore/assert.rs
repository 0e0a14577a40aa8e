//! The assertion language of a scenario's `explore` section: what a run
//! must satisfy, checked against one run's result.
//!
//! An assertion names a metric and one bound:
//!
//! ```json
//! {"metric": "availability_after_faults", "at_least": 0.99}
//! {"metric": "recovery_ms", "at_most": 10000}
//! {"metric": "latency_ms.percentile", "percentile": 99.5, "at_most": 800}
//! {"metric": "clients.users.availability", "at_least": 0.95}
//! ```
//!
//! # The metric registry
//!
//! Every metric an assertion may name is one entry of [`METRICS`]: its
//! name (a `<name>` segment stands for a client, service or database of the
//! scenario), whether higher is better, the scale its relative margin is
//! measured against, and where its value comes from: a JSON path into the
//! run's `summary.json` ([`Source::Summary`]), or a function of the run
//! ([`Source::Computed`]) for what the summary does not hold (availability
//! after the faults, any percentile). A metric another module adds to the
//! summary (`databases.<name>.writes.lost`, a metastability verdict)
//! becomes assertable by adding one line there; nothing else changes.
//!
//! # Margins
//!
//! Each evaluation returns a signed margin: how far the value is from the
//! bound, positive while the assertion holds (`value - bound` for
//! `at_least`, `bound - value` for `at_most`), negative when it fails. The
//! relative margin divides it by the larger of `|bound|` and the metric's
//! scale, so margins of different metrics compare: the search ranks
//! candidates by their smallest relative margin (the worst case is the one
//! nearest to failing, or failing by the most), and a rare-event estimator
//! can use it as its importance function.
//!
//! A metric the run does not define (a percentile with no finished request,
//! a summary field this build does not write) evaluates to
//! [`Verdict::Undefined`]: neither pass nor fail, and never shrunk.

use crate::metrics::summary::Summary;
use crate::model::RunOutput;
use crate::scenario::error::Invalid;
use crate::scenario::Scenario;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One assertion as written in the file (`explore.assertions[i]`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawAssertion {
    /// The metric's name, one of [`METRICS`] (`<name>` replaced by a
    /// client, service or database name).
    pub metric: String,
    /// The smallest value allowed; exactly one of `at_least` and `at_most`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<f64>,
    /// The largest value allowed; exactly one of `at_least` and `at_most`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most: Option<f64>,
    /// For `latency_ms.percentile` only: which percentile, in `(0, 100)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentile: Option<f64>,
}

/// Which way a metric improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// Higher is better (availability).
    Higher,
    /// Lower is better (latency, amplification, lost writes).
    Lower,
}

/// What a `<name>` segment of a metric name must name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameOf {
    /// The metric has no `<name>` segment.
    Nothing,
    /// A client of the scenario.
    Client,
    /// A service of the scenario.
    Service,
    /// A database cluster of the scenario.
    Database,
}

/// Where a metric's value comes from.
#[derive(Clone, Copy, Debug)]
pub enum Source {
    /// A number at this path of `summary.json` (dots between keys; `<name>`
    /// replaced by the assertion's name). `null` or absent: undefined.
    Summary(&'static str),
    /// Computed from the run.
    Computed(fn(&RunView, &Metric) -> Option<f64>),
}

/// One entry of the metric registry.
#[derive(Clone, Copy, Debug)]
pub struct MetricDef {
    /// The name as written, with `<name>` for a named component.
    pub name: &'static str,
    /// What `<name>` names.
    pub name_of: NameOf,
    /// Which way the metric improves (for documentation and sorting).
    pub better: Better,
    /// The relative margin is `margin / max(|bound|, scale)`.
    pub scale: f64,
    /// Where the value comes from.
    pub source: Source,
    /// What it measures, for `docs/explore.md` and error messages.
    pub doc: &'static str,
}

/// Every metric an assertion may name. Add a line here to make a new
/// summary field assertable.
pub const METRICS: &[MetricDef] = &[
    MetricDef {
        name: "availability",
        name_of: NameOf::Nothing,
        better: Better::Higher,
        scale: 0.01,
        source: Source::Summary("availability"),
        doc: "successes over requests issued, over the whole run",
    },
    MetricDef {
        name: "availability_served",
        name_of: NameOf::Nothing,
        better: Better::Higher,
        scale: 0.01,
        source: Source::Summary("availability_served"),
        doc: "successes and fallbacks over requests issued",
    },
    MetricDef {
        name: "availability_after_faults",
        name_of: NameOf::Nothing,
        better: Better::Higher,
        scale: 0.01,
        source: Source::Computed(availability_after_faults),
        doc: "successes over requests finished in the windows that start at or after the last fault's end (the whole run without faults)",
    },
    MetricDef {
        name: "recovery_ms",
        name_of: NameOf::Nothing,
        better: Better::Lower,
        scale: 1_000.0,
        source: Source::Computed(recovery_ms),
        doc: "the longest time from a fault's end until availability is back (summary faults[].recovery_ms), judging a fault followed by another before it recovered by the later one; a fault never recovered from fails any bound",
    },
    MetricDef {
        name: "retry_amplification",
        name_of: NameOf::Nothing,
        better: Better::Lower,
        scale: 0.1,
        source: Source::Summary("retry_amplification"),
        doc: "attempts sent by clients per request issued",
    },
    MetricDef {
        name: "latency_ms.p50",
        name_of: NameOf::Nothing,
        better: Better::Lower,
        scale: 1.0,
        source: Source::Summary("latency_ms.p50"),
        doc: "median latency of finished requests, ms",
    },
    MetricDef {
        name: "latency_ms.p90",
        name_of: NameOf::Nothing,
        better: Better::Lower,
        scale: 1.0,
        source: Source::Summary("latency_ms.p90"),
        doc: "90th percentile latency, ms",
    },
    MetricDef {
        name: "latency_ms.p99",
        name_of: NameOf::Nothing,
        better: Better::Lower,
        scale: 1.0,
        source: Source::Summary("latency_ms.p99"),
        doc: "99th percentile latency, ms",
    },
    MetricDef {
        name: "latency_ms.p999",
        name_of: NameOf::Nothing,
        better: Better::Lower,
        scale: 1.0,
        source: Source::Summary("latency_ms.p999"),
        doc: "99.9th percentile latency, ms",
    },
    MetricDef {
        name: "latency_ms.max",
        name_of: NameOf::Nothing,
        better: Better::Lower,
        scale: 1.0,
        source: Source::Summary("latency_ms.max"),
        doc: "the longest latency, ms",
    },
    MetricDef {
        name: "latency_ms.mean",
        name_of: NameOf::Nothing,
        better: Better::Lower,
        scale: 1.0,
        source: Source::Summary("latency_ms.mean"),
        doc: "mean latency, ms",
    },
    MetricDef {
        name: "latency_ms.percentile",
        name_of: NameOf::Nothing,
        better: Better::Lower,
        scale: 1.0,
        source: Source::Computed(latency_percentile),
        doc: "latency at the assertion's `percentile` (in (0, 100)), ms",
    },
    MetricDef {
        name: "requests.error",
        name_of: NameOf::Nothing,
        better: Better::Lower,
        scale: 1.0,
        source: Source::Summary("requests.error"),
        doc: "requests that ended in an error",
    },
    MetricDef {
        name: "requests.timeout",
        name_of: NameOf::Nothing,
        better: Better::Lower,
        scale: 1.0,
        source: Source::Summary("requests.timeout"),
        doc: "requests that timed out",
    },
    MetricDef {
        name: "requests.unfinished",
        name_of: NameOf::Nothing,
        better: Better::Lower,
        scale: 1.0,
        source: Source::Summary("requests.unfinished"),
        doc: "requests still open when the drain ended",
    },
    MetricDef {
        name: "clients.<name>.availability",
        name_of: NameOf::Client,
        better: Better::Higher,
        scale: 0.01,
        source: Source::Summary("clients.<name>.availability"),
        doc: "one client's availability",
    },
    MetricDef {
        name: "clients.<name>.latency_ms.p99",
        name_of: NameOf::Client,
        better: Better::Lower,
        scale: 1.0,
        source: Source::Summary("clients.<name>.latency_ms.p99"),
        doc: "one client's 99th percentile latency, ms",
    },
    MetricDef {
        name: "faults.recovered",
        name_of: NameOf::Nothing,
        better: Better::Higher,
        scale: 1.0,
        source: Source::Computed(faults_recovered),
        doc: "the fraction of faults with the verdict `recovered` (summary faults[].verdict); assert `at_least 1` for every fault recovered; undefined without faults",
    },
    MetricDef {
        name: "faults.sustained_load",
        name_of: NameOf::Nothing,
        better: Better::Lower,
        scale: 1.0,
        source: Source::Computed(faults_sustained_load),
        doc: "how many faults left sustained load behind (summary faults[].sustained_load); assert `at_most 0` for none; undefined without faults",
    },
    MetricDef {
        name: "faults.still_failing_ms",
        name_of: NameOf::Nothing,
        better: Better::Lower,
        scale: 1_000.0,
        source: Source::Computed(faults_still_failing_ms),
        doc: "the longest time a fault not recovered from was still failing when the run ended (summary faults[].still_failing_ms), 0 when every fault recovered; undefined without faults",
    },
    MetricDef {
        name: "databases.<name>.writes.lost",
        name_of: NameOf::Database,
        better: Better::Lower,
        scale: 1.0,
        source: Source::Summary("databases.<name>.writes.lost"),
        doc: "acknowledged writes lost by a database cluster (undefined until the run reports databases)",
    },
    MetricDef {
        name: "databases.<name>.split_brain_seconds",
        name_of: NameOf::Database,
        better: Better::Lower,
        scale: 1.0,
        source: Source::Summary("databases.<name>.split_brain_seconds"),
        doc: "seconds with two writable primaries (undefined until the run reports databases)",
    },
];

/// A resolved metric: its registry entry, the name as written, the
/// component `<name>` stood for, and the percentile if any.
#[derive(Clone, Debug)]
pub struct Metric {
    /// The registry entry.
    pub def: &'static MetricDef,
    /// The name as written in the assertion.
    pub name: String,
    /// What `<name>` stood for, if the entry has it.
    pub component: Option<String>,
    /// The percentile of `latency_ms.percentile`, in `(0, 100)`.
    pub percentile: Option<f64>,
}

/// An assertion's bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// The value must be at least this.
    AtLeast(f64),
    /// The value must be at most this.
    AtMost(f64),
}

/// A checked assertion.
#[derive(Clone, Debug)]
pub struct Assertion {
    /// Where it is in the file: `explore.assertions[2]`.
    pub path: String,
    /// The metric.
    pub metric: Metric,
    /// The bound.
    pub bound: Bound,
    /// The assertion as written, to write it back into a shrunk scenario.
    pub raw: RawAssertion,
}

impl Assertion {
    /// A short text: `availability_after_faults >= 0.99`.
    pub fn text(&self) -> String {
        let name = match self.metric.percentile {
            Some(percentile) => format!("latency_ms.percentile({percentile})"),
            None => self.metric.name.clone(),
        };
        match self.bound {
            Bound::AtLeast(bound) => format!("{name} >= {bound}"),
            Bound::AtMost(bound) => format!("{name} <= {bound}"),
        }
    }
}

/// The allowed metric names, comma-separated, for error messages.
pub fn allowed_names() -> String {
    METRICS
        .iter()
        .map(|def| def.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The registry entry whose pattern `name` matches, and what `<name>` stood for.
fn lookup(name: &str) -> Option<(&'static MetricDef, Option<String>)> {
    METRICS.iter().find_map(|def| {
        let pattern: Vec<&str> = def.name.split('.').collect();
        let parts: Vec<&str> = name.split('.').collect();
        if pattern.len() != parts.len() {
            return None;
        }
        let mut component = None;
        for (want, got) in pattern.iter().zip(&parts) {
            if *want == "<name>" {
                if got.is_empty() {
                    return None;
                }
                component = Some(got.to_string());
            } else if want != got {
                return None;
            }
        }
        Some((def, component))
    })
}

/// Checks the assertions written at `path` (`explore.assertions`) against
/// `scenario`: a known metric, a named component that exists, exactly one
/// finite bound, a percentile only where one is wanted. The first problem
/// is returned with its JSON path.
pub fn check(
    raw: &[RawAssertion],
    scenario: &Scenario,
    path: &str,
) -> Result<Vec<Assertion>, Invalid> {
    raw.iter()
        .enumerate()
        .map(|(index, raw)| check_one(raw, scenario, &format!("{path}[{index}]")))
        .collect()
}

fn check_one(raw: &RawAssertion, scenario: &Scenario, path: &str) -> Result<Assertion, Invalid> {
    let escaped = crate::scenario::error::escape_control(&raw.metric);
    let (def, component) = lookup(&raw.metric).ok_or_else(|| {
        Invalid::new(
            format!("{path}.metric"),
            format!("unknown metric \"{escaped}\"; allowed: {}", allowed_names()),
        )
    })?;
    if let Some(component) = &component {
        let (known, what): (Vec<&str>, &str) = match def.name_of {
            NameOf::Client => (
                scenario.clients.iter().map(|c| c.name.as_str()).collect(),
                "client",
            ),
            NameOf::Service => (
                scenario.services.iter().map(|s| s.name.as_str()).collect(),
                "service",
            ),
            NameOf::Database => (
                scenario.databases.iter().map(|d| d.name.as_str()).collect(),
                "database",
            ),
            NameOf::Nothing => (Vec::new(), "component"),
        };
        if !known.contains(&component.as_str()) {
            let known = if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            };
            return Err(Invalid::new(
                format!("{path}.metric"),
                format!(
                    "\"{escaped}\" names no {what} \"{}\" of the scenario ({what}s: {known})",
                    crate::scenario::error::escape_control(component)
                ),
            ));
        }
    }
    let wants_percentile = def.name == "latency_ms.percentile";
    match (raw.percentile, wants_percentile) {
        (Some(_), false) => {
            return Err(Invalid::new(
                format!("{path}.percentile"),
                "only latency_ms.percentile takes a percentile",
            ))
        }
        (None, true) => {
            return Err(Invalid::new(
                format!("{path}.percentile"),
                "latency_ms.percentile needs a percentile in (0, 100)",
            ))
        }
        (Some(percentile), true) if !(percentile > 0.0 && percentile < 100.0) => {
            return Err(Invalid::new(
                format!("{path}.percentile"),
                format!("must be in (0, 100) (got {percentile})"),
            ))
        }
        _ => {}
    }
    let bound = match (raw.at_least, raw.at_most) {
        (Some(bound), None) => (format!("{path}.at_least"), Bound::AtLeast(bound)),
        (None, Some(bound)) => (format!("{path}.at_most"), Bound::AtMost(bound)),
        _ => {
            return Err(Invalid::new(
                path.to_string(),
                "needs exactly one of at_least and at_most",
            ))
        }
    };
    let (bound_path, bound) = bound;
    let value = match bound {
        Bound::AtLeast(value) | Bound::AtMost(value) => value,
    };
    if !value.is_finite() {
        return Err(Invalid::new(bound_path, "must be a finite number"));
    }
    Ok(Assertion {
        path: path.to_string(),
        metric: Metric {
            def,
            name: raw.metric.clone(),
            component,
            percentile: raw.percentile,
        },
        bound,
        raw: raw.clone(),
    })
}

/// One run as the assertions see it: the scenario, the run's output and its
/// summary (also as JSON, for [`Source::Summary`] paths).
pub struct RunView<'a> {
    /// The scenario that was run.
    pub scenario: &'a Scenario,
    /// The run's output (time series, histograms).
    pub output: &'a RunOutput,
    /// The run's summary.
    pub summary: &'a Summary,
    /// `summary` as JSON.
    pub summary_json: Value,
}

impl<'a> RunView<'a> {
    /// The view of one run.
    pub fn new(scenario: &'a Scenario, output: &'a RunOutput, summary: &'a Summary) -> Self {
        RunView {
            scenario,
            output,
            summary,
            summary_json: serde_json::to_value(summary).unwrap_or(Value::Null),
        }
    }
}

/// Whether an assertion held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The value is within the bound.
    Pass,
    /// The value is outside the bound.
    Fail,
    /// The run does not define the metric.
    Undefined,
}

/// One assertion evaluated against one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    /// Pass, fail or undefined.
    pub verdict: Verdict,
    /// The metric's value; `None` when undefined.
    pub value: Option<f64>,
    /// Signed distance to the bound, in the metric's unit: `>= 0` passes,
    /// `< 0` fails (a fault never recovered from fails with `<= 0`); 0 when
    /// undefined.
    pub margin: f64,
    /// `margin / max(|bound|, scale)`: comparable across metrics.
    pub margin_relative: f64,
}

/// Evaluates every assertion against one run, in order.
pub fn evaluate(assertions: &[Assertion], run: &RunView) -> Vec<Evaluation> {
    assertions
        .iter()
        .map(|assertion| evaluate_one(assertion, run))
        .collect()
}

/// Evaluates one assertion against one run.
pub fn evaluate_one(assertion: &Assertion, run: &RunView) -> Evaluation {
    let metric = &assertion.metric;
    let value = match metric.def.source {
        Source::Summary(path) => summary_number(&run.summary_json, path, metric),
        Source::Computed(compute) => compute(run, metric),
    };
    let Some(value) = value.filter(|value| value.is_finite()) else {
        return Evaluation {
            verdict: Verdict::Undefined,
            value: None,
            margin: 0.0,
            margin_relative: 0.0,
        };
    };
    let (margin, bound) = match assertion.bound {
        Bound::AtLeast(bound) => (value - bound, bound),
        Bound::AtMost(bound) => (bound - value, bound),
    };
    // A fault never recovered from fails whatever its bound: the run ended
    // before recovery, so the value is only a lower bound.
    let never_recovered = metric.def.name == "recovery_ms" && never_recovered(run);
    let margin = if never_recovered {
        margin.min(0.0)
    } else {
        margin
    };
    let passed = margin >= 0.0 && !never_recovered;
    Evaluation {
        verdict: if passed { Verdict::Pass } else { Verdict::Fail },
        value: Some(value),
        margin,
        margin_relative: margin / bound.abs().max(metric.def.scale),
    }
}

/// The smallest relative margin over `evaluations` that are defined (the
/// run's score: lower is worse); `None` when none is defined.
pub fn score(evaluations: &[Evaluation]) -> Option<f64> {
    evaluations
        .iter()
        .filter(|evaluation| evaluation.verdict != Verdict::Undefined)
        .map(|evaluation| evaluation.margin_relative)
        .min_by(f64::total_cmp)
}

/// The number at `path` (dots between keys, `<name>` replaced) in `summary`.
fn summary_number(summary: &Value, path: &str, metric: &Metric) -> Option<f64> {
    let mut node = summary;
    for key in path.split('.') {
        let key = if key == "<name>" {
            metric.component.as_deref()?
        } else {
            key
        };
        node = node.get(key)?;
    }
    node.as_f64()
}

fn availability_after_faults(run: &RunView, _metric: &Metric) -> Option<f64> {
    let end = run
        .scenario
        .faults
        .iter()
        .map(|fault| fault.window().1)
        .max()
        .unwrap_or(crate::engine::SimTime::ZERO);
    let (success, finished) = run.output.rows.iter().filter(|row| row.start >= end).fold(
        (0u64, 0u64),
        |(success, finished), row| {
            (
                success + row.outcomes.get(crate::metrics::Outcome::Success),
                finished + row.finished(),
            )
        },
    );
    (finished > 0).then(|| success as f64 / finished as f64)
}

/// The faults whose recovery is their own: those no later fault
/// supersedes (`metrics::summary::supersede`).
fn judged_faults<'a>(run: &RunView<'a>) -> Vec<&'a crate::metrics::summary::FaultSummary> {
    run.summary
        .faults
        .iter()
        .filter(|fault| fault.superseded_by.is_none())
        .collect()
}

/// Whether some judged fault was never recovered from before the run ended.
fn never_recovered(run: &RunView) -> bool {
    judged_faults(run)
        .iter()
        .any(|fault| fault.recovery_ms.is_none())
}

fn recovery_ms(run: &RunView, _metric: &Metric) -> Option<f64> {
    // A fault never recovered from counts as recovering at the run's end:
    // a lower bound on its recovery time (and a failure, see `evaluate_one`).
    let longest = judged_faults(run)
        .iter()
        .map(|fault| {
            fault
                .recovery_ms
                .unwrap_or_else(|| (run.summary.end_ms - fault.end_ms).max(0.0))
        })
        .fold(0.0, f64::max);
    Some(longest)
}

fn faults_recovered(run: &RunView, _metric: &Metric) -> Option<f64> {
    let faults = judged_faults(run);
    let recovered = faults
        .iter()
        .filter(|fault| fault.metastability.verdict == crate::metrics::verdict::Verdict::Recovered)
        .count();
    (!faults.is_empty()).then(|| recovered as f64 / faults.len() as f64)
}

fn faults_sustained_load(run: &RunView, _metric: &Metric) -> Option<f64> {
    let faults = &run.summary.faults;
    let sustained = faults
        .iter()
        .filter(|fault| fault.metastability.sustained_load)
        .count();
    (!faults.is_empty()).then_some(sustained as f64)
}

fn faults_still_failing_ms(run: &RunView, _metric: &Metric) -> Option<f64> {
    let faults = &run.summary.faults;
    (!faults.is_empty()).then(|| {
        faults
            .iter()
            .filter_map(|fault| fault.metastability.still_failing_ms)
            .fold(0.0, f64::max)
    })
}

fn latency_percentile(run: &RunView, metric: &Metric) -> Option<f64> {
    let histogram = &run.output.recorder.latency;
    if histogram.is_empty() {
        return None;
    }
    let quantile = metric.percentile? / 100.0;
    Some(histogram.quantile_us(quantile) as f64 / 1_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::distribution::Distribution;
    use crate::scenario::builder::{ClientBuilder, FaultBuilder, ScenarioBuilder, ServiceBuilder};
    use crate::scenario::OutageMode;
    use serde_json::json;

    fn scenario(outage_ms: u64) -> Scenario {
        ScenarioBuilder::new("t", "a retrying client through an outage")
            .duration_ms(20_000)
            .drain_ms(5_000)
            .service(
                ServiceBuilder::new("api", Distribution::Constant { value_ms: 5.0 }).workers(4),
            )
            .client(
                ClientBuilder::open_loop("users", "api", 50.0).policy_json(json!({
                    "kind": "retry", "attempts_max": 3,
                    "backoff": {"kind": "fixed", "delay_ms": 10}
                })),
            )
            .fault(FaultBuilder::outage(
                "api",
                5_000,
                5_000 + outage_ms,
                OutageMode::FailFast,
            ))
            .build()
            .expect("valid")
    }

    fn raw(value: serde_json::Value) -> RawAssertion {
        serde_json::from_value(value).expect("an assertion")
    }

    fn run_and_evaluate(scenario: &Scenario, raw: &[RawAssertion]) -> Vec<Evaluation> {
        let assertions = check(raw, scenario, "explore.assertions").expect("valid");
        let output = crate::model::run(scenario, 1).expect("runs");
        let summary = Summary::new(scenario, 1, &output);
        evaluate(&assertions, &RunView::new(scenario, &output, &summary))
    }

    // Every registered name parses, and `<name>` matches any one segment.
    #[test]
    fn lookup_matches_patterns() {
        for def in METRICS {
            let name = def.name.replace("<name>", "x");
            let (found, component) = lookup(&name).expect("registered");
            assert_eq!(found.name, def.name);
            assert_eq!(component.is_some(), def.name.contains("<name>"));
        }
        assert!(lookup("clients..availability").is_none());
        assert!(lookup("availability.extra").is_none());
    }

    // An unknown metric is one error at `.metric` listing every allowed name.
    #[test]
    fn unknown_metric_lists_the_allowed_names() {
        let error = check(
            &[raw(json!({"metric": "availabilty", "at_least": 0.9}))],
            &scenario(1_000),
            "explore.assertions",
        )
        .unwrap_err();
        assert_eq!(error.path, "explore.assertions[0].metric");
        assert!(error
            .message
            .starts_with("unknown metric \"availabilty\"; allowed: availability, "));
        assert!(error.message.contains("databases.<name>.writes.lost"));
    }

    // Names must resolve; bounds must be one and finite; percentiles only where wanted.
    #[test]
    fn checks_names_bounds_and_percentiles() {
        let s = scenario(1_000);
        let bad = |value: serde_json::Value| check(&[raw(value)], &s, "a").unwrap_err().to_string();
        assert_eq!(
            bad(json!({"metric": "clients.bots.availability", "at_least": 0.9})),
            "a[0].metric: \"clients.bots.availability\" names no client \"bots\" of the scenario (clients: users)"
        );
        assert_eq!(
            bad(json!({"metric": "databases.main.writes.lost", "at_most": 0})),
            "a[0].metric: \"databases.main.writes.lost\" names no database \"main\" of the scenario (databases: none)"
        );
        assert_eq!(
            bad(json!({"metric": "availability", "at_least": 0.9, "at_most": 1})),
            "a[0]: needs exactly one of at_least and at_most"
        );
        assert_eq!(
            bad(json!({"metric": "availability"})),
            "a[0]: needs exactly one of at_least and at_most"
        );
        assert_eq!(
            bad(json!({"metric": "latency_ms.percentile", "at_most": 5})),
            "a[0].percentile: latency_ms.percentile needs a percentile in (0, 100)"
        );
        assert_eq!(
            bad(json!({"metric": "latency_ms.percentile", "percentile": 100, "at_most": 5})),
            "a[0].percentile: must be in (0, 100) (got 100)"
        );
        assert_eq!(
            bad(json!({"metric": "availability", "percentile": 50, "at_least": 0.5})),
            "a[0].percentile: only latency_ms.percentile takes a percentile"
        );
    }

    // Margins are signed: positive while the bound holds, negative when it
    // fails, and the relative margin divides by the bound.
    #[test]
    fn margins_are_signed_distances_to_the_bound() {
        let s = scenario(2_000);
        let evaluations = run_and_evaluate(
            &s,
            &[
                raw(json!({"metric": "availability", "at_least": 0.5})),
                raw(json!({"metric": "availability", "at_least": 0.999})),
                raw(json!({"metric": "retry_amplification", "at_most": 1.0})),
                raw(json!({"metric": "availability_after_faults", "at_least": 0.99})),
                raw(json!({"metric": "recovery_ms", "at_most": 5000})),
                raw(json!({"metric": "latency_ms.percentile", "percentile": 50, "at_most": 1000})),
            ],
        );
        let availability = evaluations[0].value.unwrap();
        assert!(availability < 0.95 && availability > 0.5, "{availability}");
        assert_eq!(evaluations[0].verdict, Verdict::Pass);
        assert!((evaluations[0].margin - (availability - 0.5)).abs() < 1e-12);
        assert!((evaluations[0].margin_relative - (availability - 0.5) / 0.5).abs() < 1e-12);
        assert_eq!(evaluations[1].verdict, Verdict::Fail);
        assert!(evaluations[1].margin < 0.0);
        // The outage was retried: more than one attempt per request.
        assert_eq!(evaluations[2].verdict, Verdict::Fail);
        assert!(evaluations[2].value.unwrap() > 1.0);
        // The system recovers at once after a fail-fast outage.
        assert_eq!(evaluations[3].verdict, Verdict::Pass);
        assert_eq!(evaluations[3].value, Some(1.0));
        assert_eq!(evaluations[4].verdict, Verdict::Pass);
        assert_eq!(evaluations[5].verdict, Verdict::Pass);
        assert!(evaluations[5].value.unwrap() >= 5.0);
        assert_eq!(
            score(&evaluations),
            Some(
                evaluations[2]
                    .margin_relative
                    .min(evaluations[1].margin_relative)
            )
        );
    }

    // A fault followed by another before it recovered is judged by the
    // later one: its own recovery would count the later fault's damage.
    #[test]
    fn recovery_judges_chained_faults_by_the_later_one() {
        let s = ScenarioBuilder::new("t", "two outages 3 s apart")
            .duration_ms(30_000)
            .drain_ms(5_000)
            .service(
                ServiceBuilder::new("api", Distribution::Constant { value_ms: 5.0 }).workers(4),
            )
            .client(ClientBuilder::open_loop("users", "api", 50.0))
            .fault(FaultBuilder::outage(
                "api",
                5_000,
                6_000,
                OutageMode::FailFast,
            ))
            .fault(FaultBuilder::outage(
                "api",
                9_000,
                15_000,
                OutageMode::FailFast,
            ))
            .build()
            .expect("valid");
        let output = crate::model::run(&s, 1).expect("runs");
        let summary = Summary::new(&s, 1, &output);
        // The summary's recovery of the first outage runs into the second.
        let first = summary.faults[0].recovery_ms.expect("recovers");
        assert!(first >= 9_000.0, "{first}");
        // So the summary marks it superseded by the second, which stands for both.
        assert_eq!(summary.faults[0].superseded_by, Some(1));
        assert_eq!(
            summary.faults[0].metastability.verdict,
            crate::metrics::verdict::Verdict::Superseded
        );
        assert_eq!(summary.faults[1].superseded_by, None);
        let view = RunView::new(&s, &output, &summary);
        let judged = judged_faults(&view);
        assert_eq!(judged.len(), 1);
        assert_eq!(judged[0].start_ms, 9_000.0);
        let value = recovery_ms(
            &view,
            &lookup("recovery_ms")
                .map(|(def, _)| Metric {
                    def,
                    name: "recovery_ms".into(),
                    component: None,
                    percentile: None,
                })
                .unwrap(),
        );
        assert_eq!(value, summary.faults[1].recovery_ms);
    }

    // A metric the summary does not hold is undefined, not a failure.
    #[test]
    fn a_metric_missing_from_the_summary_is_undefined() {
        let s = scenario(1_000);
        let output = crate::model::run(&s, 1).expect("runs");
        let summary = Summary::new(&s, 1, &output);
        let view = RunView::new(&s, &output, &summary);
        let metric = Metric {
            def: lookup("databases.x.writes.lost").unwrap().0,
            name: "databases.main.writes.lost".into(),
            component: Some("main".into()),
            percentile: None,
        };
        let assertion = Assertion {
            path: "a[0]".into(),
            metric,
            bound: Bound::AtMost(0.0),
            raw: raw(json!({"metric": "databases.main.writes.lost", "at_most": 0})),
        };
        let evaluation = evaluate_one(&assertion, &view);
        assert_eq!(evaluation.verdict, Verdict::Undefined);
        assert_eq!(score(&[evaluation]), None);
    }
}
