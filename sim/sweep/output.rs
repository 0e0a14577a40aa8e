//! The files of a finished sweep, rendered in memory from its journal:
//! `runs.csv` (one row per point x seed), `points.csv` (mean and 95%
//! interval per point), charts, `index.html`, and the journal itself sorted
//! by (point, seed). The same journal always renders the same bytes, so a
//! sweep run on one thread, on many, resumed, or merged from shards writes
//! identical folders.

use super::journal::{self, Header, Record};
use super::metrics::{column_order, push_cells, CDF_QUANTILES};
use super::stats::{t_interval, Interval};
use super::SweepError;
use crate::report::html::{self, Block};
use crate::report::sweep_chart::{self, BandChart, BandPoint, BandSeries, Heatmap};
use crate::report::RenderedFile;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Most lines on one chart; further groups are left out (and the title says so).
pub const LINES_MAX: usize = 10;

/// A point value as CSV/table text: numbers and strings bare, others as JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A point value as a chart or table label: `none` for null, the `kind` of
/// an object that has one (a budget, a backoff), else as in `cell`.
pub fn value_label(value: &Value) -> String {
    match value {
        Value::Null => "none".to_string(),
        Value::Object(map) => match map.get("kind") {
            Some(Value::String(kind)) => kind.clone(),
            _ => value.to_string(),
        },
        other => cell(other),
    }
}

/// Quotes a CSV field when it holds a comma, quote or newline.
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// A statistic in CSV: six decimals, blank when undefined.
pub fn stat(value: Option<f64>) -> String {
    match value {
        Some(value) if value.is_finite() => format!("{value:.6}"),
        _ => String::new(),
    }
}

/// Per point, per metric: the interval over seeds.
pub struct PointStats {
    /// The metric names, in column order.
    pub metrics: Vec<String>,
    /// `[point][metric]`.
    pub intervals: Vec<Vec<Option<Interval>>>,
    /// Runs per point.
    pub runs: Vec<usize>,
}

/// Computes each point's statistics; `records` are sorted by (point, seed).
pub fn point_stats(header: &Header, records: &[Record]) -> PointStats {
    let metrics = column_order(records.iter().flat_map(|record| record.metrics.keys()));
    let mut intervals = Vec::with_capacity(header.points.len());
    let mut runs = Vec::with_capacity(header.points.len());
    for point in 0..header.points.len() {
        let at_point: Vec<&Record> = records
            .iter()
            .filter(|record| record.point == point)
            .collect();
        runs.push(at_point.len());
        intervals.push(
            metrics
                .iter()
                .map(|metric| {
                    let values: Vec<f64> = at_point
                        .iter()
                        .filter_map(|record| record.metrics.get(metric).copied().flatten())
                        .collect();
                    t_interval(&values)
                })
                .collect(),
        );
    }
    PointStats {
        metrics,
        intervals,
        runs,
    }
}

/// `runs.csv`.
pub fn runs_csv(header: &Header, records: &[Record], metrics: &[String]) -> String {
    let mut text = String::from("point,seed");
    for axis in &header.axes {
        let _ = write!(text, ",{}", csv_field(axis));
    }
    for metric in metrics {
        let _ = write!(text, ",{}", csv_field(metric));
    }
    text.push('\n');
    for record in records {
        let _ = write!(text, "{},{}", record.point, record.seed);
        for value in &header.points[record.point] {
            let _ = write!(text, ",{}", csv_field(&cell(value)));
        }
        push_cells(&mut text, &record.metrics, metrics);
        text.push('\n');
    }
    text
}

/// `points.csv`: per point, runs and mean, low, high of each metric.
pub fn points_csv(header: &Header, stats: &PointStats) -> String {
    let mut text = String::from("point");
    for axis in &header.axes {
        let _ = write!(text, ",{}", csv_field(axis));
    }
    text.push_str(",runs");
    for metric in &stats.metrics {
        let _ = write!(text, ",{metric}_mean,{metric}_ci_low,{metric}_ci_high");
    }
    text.push('\n');
    for (point, values) in header.points.iter().enumerate() {
        let _ = write!(text, "{point}");
        for value in values {
            let _ = write!(text, ",{}", csv_field(&cell(value)));
        }
        let _ = write!(text, ",{}", stats.runs[point]);
        for interval in &stats.intervals[point] {
            let (mean, low, high) =
                interval.map_or((None, None, None), |i| (Some(i.mean), i.low, i.high));
            let _ = write!(text, ",{},{},{}", stat(mean), stat(low), stat(high));
        }
        text.push('\n');
    }
    text
}

/// The distinct values of axis `slot`, in order of first appearance.
fn distinct(header: &Header, slot: usize) -> Vec<Value> {
    let mut seen: Vec<Value> = Vec::new();
    for point in &header.points {
        if !seen.contains(&point[slot]) {
            seen.push(point[slot].clone());
        }
    }
    seen
}

/// A metric against the first axis, one line per combination of the other
/// axes (grid and zip), or a scatter with error bars (random sampling).
fn metric_chart(
    header: &Header,
    stats: &PointStats,
    metric: &str,
    label: &str,
) -> Result<Option<Vec<u8>>, SweepError> {
    let Some(column) = stats.metrics.iter().position(|name| name == metric) else {
        return Ok(None);
    };
    let sampled = header.mode == "random" || header.mode == "latin_hypercube";
    let numeric = header.points.iter().all(|point| point[0].is_number());
    let categories: Vec<String> = distinct(header, 0).iter().map(value_label).collect();
    let mut groups: BTreeMap<usize, (String, Vec<BandPoint>)> = BTreeMap::new();
    let mut group_keys: Vec<String> = Vec::new();
    for (point, values) in header.points.iter().enumerate() {
        let key = if sampled {
            String::new()
        } else {
            header.axes[1..]
                .iter()
                .zip(&values[1..])
                .map(|(path, value)| format!("{}={}", short_path(path), value_label(value)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let index = match group_keys.iter().position(|known| *known == key) {
            Some(index) => index,
            None => {
                group_keys.push(key.clone());
                group_keys.len() - 1
            }
        };
        let Some(interval) = stats.intervals[point][column] else {
            continue;
        };
        let x = if numeric {
            values[0].as_f64().unwrap_or(f64::NAN)
        } else {
            categories
                .iter()
                .position(|name| *name == value_label(&values[0]))
                .unwrap_or(0) as f64
        };
        groups
            .entry(index)
            .or_insert_with(|| (key, Vec::new()))
            .1
            .push(BandPoint {
                x,
                mean: interval.mean,
                low: interval.low.unwrap_or(interval.mean),
                high: interval.high.unwrap_or(interval.mean),
            });
    }
    let total = groups.len();
    let series: Vec<BandSeries> = groups
        .into_values()
        .take(LINES_MAX)
        .map(|(label, mut points)| {
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
            BandSeries { label, points }
        })
        .collect();
    let mut title = format!(
        "{}: {label} vs {} (mean, 95% CI over {} seeds)",
        header.scenario,
        short_path(&header.axes[0]),
        header.seeds.len()
    );
    if total > LINES_MAX {
        let _ = write!(title, ", first {LINES_MAX} of {total} lines");
    }
    let chart = BandChart {
        title: &title,
        x_label: &header.axes[0],
        y_label: label,
        series: &series,
        log_x: false,
        log_y: false,
        x_categories: (!numeric).then_some(categories.as_slice()),
        markers: sampled,
    };
    Ok(Some(
        sweep_chart::band_png(&chart).map_err(crate::report::ReportError::from)?,
    ))
}

/// The last segment of a path, for labels: `attempts_max`.
fn short_path(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// Mean availability over the first two axes (grid sweeps with two or more axes).
fn heatmap(header: &Header, stats: &PointStats) -> Result<Option<Vec<u8>>, SweepError> {
    let Some(column) = stats.metrics.iter().position(|name| name == "availability") else {
        return Ok(None);
    };
    if header.axes.len() < 2 || header.mode != "grid" {
        return Ok(None);
    }
    let (columns, rows) = (distinct(header, 0), distinct(header, 1));
    let mut sums = vec![vec![(0.0, 0usize); columns.len()]; rows.len()];
    for (point, values) in header.points.iter().enumerate() {
        let Some(interval) = stats.intervals[point][column] else {
            continue;
        };
        let x = columns
            .iter()
            .position(|value| *value == values[0])
            .unwrap_or(0);
        let y = rows
            .iter()
            .position(|value| *value == values[1])
            .unwrap_or(0);
        sums[y][x].0 += interval.mean;
        sums[y][x].1 += 1;
    }
    let cells: Vec<Vec<Option<f64>>> = sums
        .iter()
        .map(|row| {
            row.iter()
                .map(|(sum, count)| (*count > 0).then(|| sum / *count as f64))
                .collect()
        })
        .collect();
    let column_names: Vec<String> = columns.iter().map(value_label).collect();
    let row_names: Vec<String> = rows.iter().map(value_label).collect();
    let title = format!("{}: mean availability", header.scenario);
    let map = Heatmap {
        title: &title,
        x_label: &header.axes[0],
        y_label: &header.axes[1],
        columns: &column_names,
        rows: &row_names,
        cells: &cells,
    };
    Ok(Some(
        sweep_chart::heatmap_png(&map).map_err(crate::report::ReportError::from)?,
    ))
}

/// Mean latency per quantile over seeds, for CDF charts.
pub fn mean_cdf(records: &[&Record]) -> Vec<BandPoint> {
    let with_cdf: Vec<&&Record> = records
        .iter()
        .filter(|record| record.cdf_ms.len() == CDF_QUANTILES.len())
        .collect();
    if with_cdf.is_empty() {
        return Vec::new();
    }
    CDF_QUANTILES
        .iter()
        .enumerate()
        .map(|(index, quantile)| {
            let mean = with_cdf
                .iter()
                .map(|record| record.cdf_ms[index])
                .sum::<f64>()
                / with_cdf.len() as f64;
            BandPoint {
                x: mean.max(0.001),
                mean: quantile * 100.0,
                low: quantile * 100.0,
                high: quantile * 100.0,
            }
        })
        .collect()
}

/// Latency CDFs of up to `LINES_MAX` points, evenly spread over the sweep.
fn cdf_chart(header: &Header, records: &[Record]) -> Result<Option<Vec<u8>>, SweepError> {
    let count = header.points.len();
    let chosen: Vec<usize> = if count <= LINES_MAX {
        (0..count).collect()
    } else {
        let mut chosen: Vec<usize> = (0..LINES_MAX)
            .map(|index| index * (count - 1) / (LINES_MAX - 1))
            .collect();
        chosen.dedup();
        chosen
    };
    let series: Vec<BandSeries> = chosen
        .iter()
        .map(|point| {
            let at_point: Vec<&Record> = records
                .iter()
                .filter(|record| record.point == *point)
                .collect();
            let label = header
                .axes
                .iter()
                .zip(&header.points[*point])
                .map(|(path, value)| format!("{}={}", short_path(path), value_label(value)))
                .collect::<Vec<_>>()
                .join(", ");
            BandSeries {
                label,
                points: mean_cdf(&at_point),
            }
        })
        .filter(|series| !series.points.is_empty())
        .collect();
    if series.is_empty() {
        return Ok(None);
    }
    let title = format!(
        "{}: latency CDF (mean over seeds of each quantile)",
        header.scenario
    );
    let chart = BandChart {
        title: &title,
        x_label: "latency (ms, log scale)",
        y_label: "requests finished within (%)",
        series: &series,
        log_x: true,
        log_y: false,
        x_categories: None,
        markers: false,
    };
    Ok(Some(
        sweep_chart::band_png(&chart).map_err(crate::report::ReportError::from)?,
    ))
}

/// Every file of a finished sweep, from its header and complete records
/// (sorted by point, seed); charts and index.html only when `charts`.
pub fn render(
    header: &Header,
    records: &[Record],
    charts: bool,
) -> Result<Vec<RenderedFile>, SweepError> {
    debug_assert!(records
        .windows(2)
        .all(|pair| (pair[0].point, pair[0].seed) < (pair[1].point, pair[1].seed)));
    let stats = point_stats(header, records);
    let runs = runs_csv(header, records, &stats.metrics);
    let points = points_csv(header, &stats);
    let mut files = vec![
        RenderedFile {
            name: journal::FILE_NAME,
            bytes: journal::render(header, records).into_bytes(),
        },
        RenderedFile {
            name: "runs.csv",
            bytes: runs.into_bytes(),
        },
        RenderedFile {
            name: "points.csv",
            bytes: points.into_bytes(),
        },
    ];
    if !charts {
        return Ok(files);
    }
    let mut images: Vec<(&'static str, &'static str, Vec<u8>)> = Vec::new();
    if let Some(png) = metric_chart(header, &stats, "availability", "availability")? {
        images.push((
            "availability_vs_parameter.png",
            "availability against the first swept parameter",
            png,
        ));
    }
    if let Some(png) = metric_chart(header, &stats, "latency_ms.p99", "latency p99 (ms)")? {
        images.push((
            "latency_p99_vs_parameter.png",
            "latency p99 against the first swept parameter",
            png,
        ));
    }
    if let Some(png) = heatmap(header, &stats)? {
        images.push((
            "heatmap_availability.png",
            "mean availability over the first two swept parameters",
            png,
        ));
    }
    if let Some(png) = cdf_chart(header, records)? {
        images.push((
            "latency_cdf.png",
            "latency CDFs of the points, overlaid",
            png,
        ));
    }
    let html = index_html(header, &stats, &images);
    for (name, _, png) in images {
        files.push(RenderedFile { name, bytes: png });
    }
    files.push(RenderedFile {
        name: "index.html",
        bytes: html.into_bytes(),
    });
    Ok(files)
}

fn index_html(header: &Header, stats: &PointStats, images: &[(&str, &str, Vec<u8>)]) -> String {
    let title = format!("Sweep of {}", header.scenario);
    let definition = format!(
        "{} over {}; {} points x {} seeds ({}..={}) = {} runs. Sweep id {}.",
        header.mode,
        header.axes.join(", "),
        header.points.len(),
        header.seeds.len(),
        header.seeds.first().copied().unwrap_or(0),
        header.seeds.last().copied().unwrap_or(0),
        header.points.len() * header.seeds.len(),
        &header.id[..12.min(header.id.len())]
    );
    let shown: Vec<usize> = stats
        .metrics
        .iter()
        .enumerate()
        .filter(|(_, name)| super::metrics::HEADLINE.contains(&name.as_str()))
        .map(|(index, _)| index)
        .collect();
    let mut table_header = vec!["point".to_string()];
    table_header.extend(header.axes.iter().cloned());
    table_header.extend(
        shown
            .iter()
            .map(|index| format!("{} (95% CI)", stats.metrics[*index])),
    );
    let rows = header
        .points
        .iter()
        .enumerate()
        .map(|(point, values)| {
            let mut row = vec![point.to_string()];
            row.extend(values.iter().map(value_label));
            row.extend(
                shown
                    .iter()
                    .map(|index| match stats.intervals[point][*index] {
                        Some(interval) => match (interval.low, interval.high) {
                            (Some(low), Some(high)) => format!(
                                "{} [{}, {}]",
                                short(interval.mean),
                                short(low),
                                short(high)
                            ),
                            _ => short(interval.mean),
                        },
                        None => String::new(),
                    }),
            );
            row
        })
        .collect();
    let mut blocks = vec![
        Block::Paragraph(&header.description),
        Block::Heading("Sweep"),
        Block::Paragraph(&definition),
        Block::Heading("Charts"),
    ];
    for (_, alt, png) in images {
        blocks.push(Block::Image { alt, png });
    }
    blocks.push(Block::Heading("Points (mean over seeds, 95% t-interval)"));
    blocks.push(Block::Table {
        header: table_header,
        rows,
    });
    blocks.push(Block::Paragraph("Every run's metrics are in runs.csv; every metric's mean and interval per point in points.csv."));
    html::page(&title, &blocks)
}

/// A number with four significant decimals for tables.
pub fn short(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(0, 8) as usize;
    format!("{value:.decimals$}")
}
