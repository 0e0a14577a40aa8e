//! The headline metrics of one run, taken from its `summary.json` so that a
//! metric added to the summary (regions, databases) becomes a sweep column
//! without touching this module.
//!
//! The rule: every number at the top level of the summary (but the run's
//! settings `seed`, `duration_ms`, `window_ms` and `end_ms`), every number
//! inside a top-level object whose values are all numbers (`requests.success`,
//! `latency_ms.p99`), a top-level `null` (an undefined number such as `nines`
//! with no failure) as a blank, and `recovery_ms`: the longest recovery over
//! the faults, blank if one never recovered. Per-client, per-service and
//! per-policy maps hold objects, so they stay out.

use crate::metrics::summary::Summary;
use crate::model::RunOutput;
use serde_json::Value;
use std::collections::BTreeMap;

/// A run's metrics: name to value, `None` when undefined for this run.
pub type Metrics = BTreeMap<String, Option<f64>>;

/// Top-level summary numbers that are settings, not results.
const SETTINGS: [&str; 4] = ["seed", "duration_ms", "window_ms", "end_ms"];

/// Metrics shown first, in this order; the rest follow alphabetically.
pub const HEADLINE: [&str; 8] = [
    "availability",
    "availability_served",
    "latency_ms.p50",
    "latency_ms.p99",
    "latency_ms.p999",
    "retry_amplification",
    "recovery_ms",
    "attempts",
];

/// Quantiles at which a run's latency distribution is kept, for CDF charts.
pub const CDF_QUANTILES: [f64; 15] = [
    0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.995, 0.999,
];

/// Whether a higher value of `metric` is better (`Some(true)`), worse
/// (`Some(false)`), or neither (counts of what was offered).
pub fn higher_is_better(metric: &str) -> Option<bool> {
    if metric.starts_with("availability") || metric == "nines" || metric == "requests.success" {
        Some(true)
    } else if metric.starts_with("latency_ms")
        || metric.starts_with("recovery_ms")
        || metric == "retry_amplification"
        || metric == "downtime_hours_per_year"
        || metric == "attempts"
        || metric == "client_attempts"
        || (metric.starts_with("requests.")
            && metric != "requests.issued"
            && metric != "requests.fallback")
    {
        Some(false)
    } else {
        None
    }
}

/// The metrics of `summary`, by the rule above.
pub fn of_summary(summary: &Summary) -> Metrics {
    let value = serde_json::to_value(summary).unwrap_or(Value::Null);
    of_value(&value)
}

/// The metrics of a summary already turned into JSON.
pub fn of_value(summary: &Value) -> Metrics {
    let mut metrics = Metrics::new();
    let Value::Object(map) = summary else {
        return metrics;
    };
    for (key, value) in map {
        if SETTINGS.contains(&key.as_str()) {
            continue;
        }
        match value {
            Value::Number(number) => {
                metrics.insert(key.clone(), number.as_f64());
            }
            Value::Null => {
                metrics.insert(key.clone(), None);
            }
            Value::Object(inner)
                if !inner.is_empty() && inner.values().all(|v| v.is_number() || v.is_null()) =>
            {
                for (name, value) in inner {
                    metrics.insert(format!("{key}.{name}"), value.as_f64());
                }
            }
            _ => {}
        }
    }
    if let Some(Value::Array(faults)) = map.get("faults") {
        if !faults.is_empty() {
            let recoveries: Option<Vec<f64>> = faults
                .iter()
                .map(|fault| fault.get("recovery_ms").and_then(Value::as_f64))
                .collect();
            let longest = recoveries.map(|all| all.into_iter().fold(0.0, f64::max));
            metrics.insert("recovery_ms".into(), longest);
        }
    }
    metrics
}

/// Latency (ms) of the run's finished requests at `CDF_QUANTILES`; empty
/// when nothing finished.
pub fn cdf_ms(output: &RunOutput) -> Vec<f64> {
    let histogram = &output.recorder.latency;
    if histogram.is_empty() {
        return Vec::new();
    }
    CDF_QUANTILES
        .iter()
        .map(|q| histogram.quantile_us(*q) as f64 / 1_000.0)
        .collect()
}

/// Appends `,value` for each metric in `names`, in that order (an empty cell
/// where the run has none): the metric cells of a `runs.csv` row.
pub fn push_cells(text: &mut String, metrics: &Metrics, names: &[String]) {
    use std::fmt::Write;
    for name in names {
        match metrics.get(name).copied().flatten() {
            Some(value) => {
                let _ = write!(text, ",{value}");
            }
            None => text.push(','),
        }
    }
}

/// Metric names in column order: the headline ones first, then the rest
/// alphabetically.
pub fn column_order<'a>(names: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut rest: Vec<String> = names.into_iter().cloned().collect();
    rest.sort();
    rest.dedup();
    let mut ordered: Vec<String> = HEADLINE
        .iter()
        .filter(|name| rest.iter().any(|other| other == *name))
        .map(|name| name.to_string())
        .collect();
    rest.retain(|name| !HEADLINE.contains(&name.as_str()));
    ordered.extend(rest);
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Numbers at the top and in flat objects are taken; settings, entity maps
    // and lists are not; a new flat section (regions) slots in unchanged.
    #[test]
    fn metrics_follow_the_summary_shape() {
        let summary = json!({
            "seed": 3, "duration_ms": 1000.0, "availability": 0.5, "nines": null,
            "latency_ms": {"p50": 1.0, "p99": 9.0},
            "clients": {"users": {"availability": 0.4}},
            "region_failover": {"detected_ms": 120.0},
            "faults": [{"recovery_ms": 100.0}, {"recovery_ms": 250.0}],
            "scenario": "x"
        });
        let metrics = of_value(&summary);
        let names: Vec<&str> = metrics.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "availability",
                "latency_ms.p50",
                "latency_ms.p99",
                "nines",
                "recovery_ms",
                "region_failover.detected_ms"
            ]
        );
        assert_eq!(metrics["recovery_ms"], Some(250.0));
        assert_eq!(metrics["nines"], None);
        let never = of_value(&json!({"faults": [{"recovery_ms": 1.0}, {"recovery_ms": null}]}));
        assert_eq!(never["recovery_ms"], None);
    }

    // Headline metrics lead the columns.
    #[test]
    fn columns_put_headline_first() {
        let names = [
            "events".to_string(),
            "latency_ms.p99".to_string(),
            "availability".to_string(),
        ];
        assert_eq!(
            column_order(&names),
            ["availability", "latency_ms.p99", "events"]
        );
        assert_eq!(higher_is_better("latency_ms.p99"), Some(false));
        assert_eq!(higher_is_better("availability_served"), Some(true));
        assert_eq!(higher_is_better("requests.issued"), None);
    }
}
