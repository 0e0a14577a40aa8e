//! Turning a run into files and text: `summary.json`, `timeseries.csv`,
//! `availability.png`, `latency.png` and the stdout table. Everything is
//! rendered in memory first and then written all-or-nothing by the one
//! report writer, `output`.

pub mod chart;
pub mod csv;
pub mod database;
pub mod html;
pub mod output;
pub mod region_chart;
pub mod region_table;
pub mod sweep_chart;
pub mod table;
mod thick_path;

use crate::metrics::summary::Summary;
use crate::metrics::{TransitionRecord, WindowRow};
use crate::policy::breaker::BreakerStateName;
use crate::scenario::Scenario;
use chart::{ChartInput, ChartRow};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a report could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A chart could not be drawn.
    #[error(transparent)]
    Chart(#[from] chart::ChartError),
    /// The summary could not be serialised.
    #[error("cannot serialise the summary: {0}")]
    Json(#[from] serde_json::Error),
    /// The report folder could not be written (see `output`).
    #[error(transparent)]
    Output(#[from] output::OutputError),
}

/// One output file, rendered.
pub struct RenderedFile {
    /// File name inside the report folder.
    pub name: &'static str,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// `summary.json` as pretty JSON with a trailing newline.
pub fn summary_json(summary: &Summary) -> Result<String, ReportError> {
    let mut text = serde_json::to_string_pretty(summary)?;
    text.push('\n');
    Ok(text)
}

/// Renders every report file in memory; charts only when `charts` is set.
/// With a topology (`regions`), the CSV gets per-region columns and
/// `regions.png` is added.
pub fn render(
    scenario: &Scenario,
    summary: &Summary,
    rows: &[WindowRow],
    regions: Option<&crate::model::regions::RegionReport>,
    charts: bool,
) -> Result<Vec<RenderedFile>, ReportError> {
    let timeseries = match regions {
        None => csv::timeseries(rows),
        Some(report) => csv::timeseries_with_regions(rows, report),
    };
    let mut files = vec![
        RenderedFile {
            name: "summary.json",
            bytes: summary_json(summary)?.into_bytes(),
        },
        RenderedFile {
            name: "timeseries.csv",
            bytes: timeseries.into_bytes(),
        },
    ];
    if charts {
        let title = format!("{}, seed {}", scenario.name, summary.seed);
        let window_s = scenario.window.as_ms_f64() / 1_000.0;
        let chart_rows = chart_rows(rows, window_s);
        let faults: Vec<(String, f64, f64)> = summary
            .faults
            .iter()
            .map(|fault| {
                (
                    fault.label.clone(),
                    fault.start_ms / 1_000.0,
                    fault.end_ms / 1_000.0,
                )
            })
            .collect();
        let end_s = summary.end_ms / 1_000.0;
        let breaker_open = breaker_open_periods(&summary.breaker_transitions, end_s);
        let input = ChartInput {
            title: &title,
            window_s,
            rows: &chart_rows,
            faults: &faults,
            breaker_open: &breaker_open,
            load_end_s: summary.duration_ms / 1_000.0,
        };
        files.push(RenderedFile {
            name: "availability.png",
            bytes: chart::availability_png(&input)?,
        });
        files.push(RenderedFile {
            name: "latency.png",
            bytes: chart::latency_png(&input)?,
        });
        if let Some(report) = regions {
            files.push(RenderedFile {
                name: "regions.png",
                bytes: region_chart::regions_png(
                    &title,
                    window_s,
                    report,
                    &crate::metrics::topology::windows(scenario, Some(report)),
                )?,
            });
        }
    }
    Ok(files)
}

fn chart_rows(rows: &[WindowRow], window_s: f64) -> Vec<ChartRow> {
    rows.iter()
        .map(|row| ChartRow {
            start_s: row.start.as_seconds_f64(),
            availability: row.availability(),
            issued_rps: row.issued as f64 / window_s,
            success_rps: row.outcomes.get(crate::metrics::Outcome::Success) as f64 / window_s,
            served_rps: (row.outcomes.get(crate::metrics::Outcome::Success)
                + row.outcomes.get(crate::metrics::Outcome::Fallback))
                as f64
                / window_s,
            attempts_rps: row.attempts as f64 / window_s,
            latency_ms: row
                .latency_us
                .map(|latency| latency.map(|micros| micros as f64 / 1_000.0)),
        })
        .collect()
}

/// The periods, in seconds, during which at least one breaker was open.
pub fn breaker_open_periods(transitions: &[TransitionRecord], end_s: f64) -> Vec<(f64, f64)> {
    let mut open: BTreeMap<&str, bool> = BTreeMap::new();
    let mut open_count = 0usize;
    let mut periods = Vec::new();
    let mut since = 0.0;
    for transition in transitions {
        let at_s = transition.at_ms / 1_000.0;
        let was_open = open
            .get(transition.stack.as_str())
            .copied()
            .unwrap_or(false);
        let is_open = transition.to == BreakerStateName::Open;
        open.insert(transition.stack.as_str(), is_open);
        match (was_open, is_open) {
            (false, true) => {
                if open_count == 0 {
                    since = at_s;
                }
                open_count += 1;
            }
            (true, false) => {
                open_count -= 1;
                if open_count == 0 {
                    periods.push((since, at_s));
                }
            }
            _ => {}
        }
    }
    if open_count > 0 {
        periods.push((since, end_s.max(since)));
    }
    periods
}

/// Every file a report folder of any command may hold (`run`, `sweep`,
/// `compare`, `merge`): an earlier report of any of them may be replaced,
/// anything else in the folder is refused (see `output`).
pub const REPORT_FILE_NAMES: [&str; 20] = [
    "summary.json",
    "timeseries.csv",
    "availability.png",
    "latency.png",
    "database.png",
    "index.html",
    "journal.jsonl",
    "runs.csv",
    "points.csv",
    "compare.csv",
    "availability_vs_parameter.png",
    "latency_p99_vs_parameter.png",
    "heatmap_availability.png",
    "latency_cdf.png",
    "availability_over_time.png",
    "latency_p99_over_time.png",
    "explore.json",
    "shrunk.json",
    "estimate.json",
    "regions.png",
];

/// Writes `files` as the folder `dir`, replacing an earlier report there
/// all-or-nothing (`output::write_report`). Every command writes through it.
pub fn write_all(dir: &Path, files: &[RenderedFile]) -> Result<Vec<PathBuf>, ReportError> {
    debug_assert!(files
        .iter()
        .all(|file| REPORT_FILE_NAMES.contains(&file.name)));
    Ok(output::write_report(dir, files, &REPORT_FILE_NAMES)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transition(at_ms: f64, stack: &str, to: BreakerStateName) -> TransitionRecord {
        TransitionRecord {
            at_ms,
            stack: stack.to_string(),
            from: BreakerStateName::Closed,
            to,
        }
    }

    #[test]
    fn open_periods_merge_overlapping_breakers() {
        use BreakerStateName::*;
        let transitions = vec![
            transition(1_000.0, "a", Open),
            transition(1_500.0, "b", Open),
            transition(2_000.0, "a", HalfOpen),
            transition(3_000.0, "b", HalfOpen),
            transition(4_000.0, "b", Open),
        ];
        assert_eq!(
            breaker_open_periods(&transitions, 9.0),
            vec![(1.0, 3.0), (4.0, 9.0)]
        );
    }
}
