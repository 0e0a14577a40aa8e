//! Database outputs beside the usual report, only when the scenario has
//! databases (a scenario without any gets byte-identical files):
//!
//! - `timeseries.csv` gets columns appended per cluster, in node order:
//!   `db_<name>_primary`, `db_<name>_writable_primaries`,
//!   `db_<name>_lag_ms_<node>` (apply lag at the window's end, one per
//!   node), then `db_<name>_writes_issued`, `_acknowledged`, `_lost`,
//!   `_divergent`, `_failed`, `_reads`, `_stale_reads`, `_split_brain_ms`;
//! - `database.png`: per cluster three panels sharing the time axis: the
//!   role timeline (one band per node: primary, replica, down, fenced,
//!   stale primary; split brain shaded red), replication lag per node, and
//!   write outcomes per window (acknowledged, lost, divergent, failed);
//! - the table gets one line per failover (`table_lines`).

use super::chart::{draw_error, render_png, text_style, ChartError};
use super::thick_path::ThickPath;
use super::RenderedFile;
use crate::database::ledger::WindowCounts;
use crate::metrics::database::DatabaseSummary;
use crate::model::{DatabaseReport, DatabaseSample};
use crate::scenario::Scenario;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Appends the database columns to `timeseries.csv` in `files` and, with
/// `charts`, adds `database.png`. Does nothing without databases.
pub fn extend(
    scenario: &Scenario,
    reports: &[DatabaseReport],
    files: &mut Vec<RenderedFile>,
    charts: bool,
) -> Result<(), ChartError> {
    if reports.is_empty() {
        return Ok(());
    }
    if let Some(file) = files.iter_mut().find(|file| file.name == "timeseries.csv") {
        let text = String::from_utf8_lossy(&file.bytes).into_owned();
        file.bytes = append_columns(&text, reports).into_bytes();
    }
    if charts {
        let title = scenario.name.as_str();
        files.push(RenderedFile {
            name: "database.png",
            bytes: database_png(title, scenario.window.as_ms_f64() / 1_000.0, reports)?,
        });
    }
    Ok(())
}

fn header(report: &DatabaseReport) -> String {
    let name = &report.name;
    let mut out = format!(",db_{name}_primary,db_{name}_writable_primaries");
    for node in &report.nodes {
        let _ = write!(out, ",db_{name}_lag_ms_{node}");
    }
    for column in [
        "writes_issued",
        "writes_acknowledged",
        "writes_lost",
        "writes_divergent",
        "writes_failed",
        "reads",
        "stale_reads",
        "split_brain_ms",
    ] {
        let _ = write!(out, ",db_{name}_{column}");
    }
    out
}

fn cells(report: &DatabaseReport, window: usize) -> String {
    let mut out = String::new();
    match report.samples.get(window) {
        Some(sample) => {
            let _ = write!(out, ",{},{}", sample.primary, sample.writable_primaries);
            for lag in &sample.lag_ms {
                let _ = write!(out, ",{lag:.3}");
            }
        }
        None => {
            out.push_str(",,");
            for _ in &report.nodes {
                out.push(',');
            }
        }
    }
    let counts = report.windows.get(window).copied().unwrap_or_default();
    let _ = write!(
        out,
        ",{},{},{},{},{},{},{},{:.3}",
        counts.issued,
        counts.acknowledged,
        counts.lost,
        counts.divergent,
        counts.failed,
        counts.reads,
        counts.stale_reads,
        counts.split_brain_micros as f64 / 1_000.0
    );
    out
}

/// `text` (the CSV) with every cluster's columns appended to each line.
pub fn append_columns(text: &str, reports: &[DatabaseReport]) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for (line_index, line) in text.lines().enumerate() {
        out.push_str(line);
        for report in reports {
            if line_index == 0 {
                out.push_str(&header(report));
            } else {
                out.push_str(&cells(report, line_index - 1));
            }
        }
        out.push('\n');
    }
    out
}

/// One line per failover for the summary table.
pub fn table_lines(databases: &BTreeMap<String, DatabaseSummary>) -> String {
    let mut out = String::new();
    if databases.is_empty() {
        return out;
    }
    let _ = writeln!(out, "  databases");
    for (name, cluster) in databases {
        let writes = &cluster.writes;
        let _ = writeln!(
            out,
            "    {name}: writes {} issued, {} acknowledged, {} lost, {} divergent, {} failed; split brain {:.1} s; stale reads {} of {}",
            writes.issued,
            writes.acknowledged,
            writes.lost,
            writes.divergent,
            writes.failed,
            cluster.split_brain_seconds,
            cluster.reads.stale,
            cluster.reads.total
        );
        for failover in &cluster.failovers {
            let routing = failover
                .routing_ms
                .map_or("never".to_string(), |ms| format!("{:.1} s", ms / 1_000.0));
            let _ = writeln!(
                out,
                "    {name} {} -> {}{}: detection {:.1} s, promotion {:.1} s, routing {routing}, RTO {:.1} s; lost {} writes (lag {:.1} ms); divergent {}; split brain {:.1} s",
                failover.from,
                failover.to,
                if failover.false_failover { " (false)" } else { "" },
                failover.detection_ms / 1_000.0,
                failover.promotion_ms / 1_000.0,
                failover.rto_ms / 1_000.0,
                failover.lost_writes,
                failover.rpo_lag_ms,
                failover.divergent_writes,
                failover.split_brain_seconds
            );
        }
    }
    out
}

const SIZE_PX: (u32, u32) = (1400, 1000);

/// A stacked write outcome: label, colour, count in a window.
type Outcome = (&'static str, RGBColor, fn(&WindowCounts) -> u64);

fn role_color(role: u8) -> RGBColor {
    match role {
        crate::model::world::ROLE_PRIMARY => RGBColor(33, 102, 172),
        crate::model::world::ROLE_STALE_PRIMARY => RGBColor(214, 39, 40),
        crate::model::world::ROLE_DOWN => RGBColor(60, 60, 60),
        crate::model::world::ROLE_FENCED => RGBColor(255, 160, 60),
        _ => RGBColor(166, 206, 227),
    }
}

fn series_color(index: usize) -> RGBColor {
    const COLORS: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
    ];
    COLORS[index % COLORS.len()]
}

/// The role timeline, replication lag and write outcomes of every cluster.
pub fn database_png(
    title: &str,
    window_s: f64,
    reports: &[DatabaseReport],
) -> Result<Vec<u8>, ChartError> {
    render_png(SIZE_PX, |root| {
        let areas = root.split_evenly((reports.len(), 1));
        for (area, report) in areas.iter().zip(reports) {
            draw_cluster(area, title, window_s, report)?;
        }
        Ok(())
    })
}

fn draw_cluster(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    window_s: f64,
    report: &DatabaseReport,
) -> Result<(), ChartError> {
    let windows = report.samples.len().max(report.windows.len()).max(1);
    let end_s = windows as f64 * window_s;
    let area = area
        .titled(
            &format!("{title}: database {}", report.name),
            text_style(22.0, &BLACK),
        )
        .map_err(draw_error)?;
    let panels = area.split_evenly((3, 1));
    let nodes = report.nodes.len();
    // Role timeline.
    let mut roles = ChartBuilder::on(&panels[0])
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(110)
        .build_cartesian_2d(0.0..end_s, 0.0..nodes as f64)
        .map_err(draw_error)?;
    let names = report.nodes.clone();
    let node_label = move |value: &f64| {
        let index = value.floor() as usize;
        if (value - value.floor() - 0.5).abs() < 1e-6 {
            names
                .get(nodes - 1 - index.min(nodes - 1))
                .cloned()
                .unwrap_or_default()
        } else {
            String::new()
        }
    };
    roles
        .configure_mesh()
        .disable_mesh()
        .y_labels(nodes * 2 + 1)
        .y_label_formatter(&node_label)
        .x_desc("roles (blue primary, light replica, red stale primary, orange fenced, grey down)")
        .label_style(text_style(14.0, &BLACK))
        .axis_desc_style(text_style(14.0, &BLACK))
        .draw()
        .map_err(draw_error)?;
    let split: Vec<(f64, f64)> = report
        .samples
        .iter()
        .enumerate()
        .filter(|(_, sample)| sample.writable_primaries >= 2)
        .map(|(index, _)| (index as f64 * window_s, (index + 1) as f64 * window_s))
        .collect();
    roles
        .draw_series(split.iter().map(|&(from, to)| {
            Rectangle::new(
                [(from, 0.0), (to, nodes as f64)],
                RGBColor(255, 200, 200).filled(),
            )
        }))
        .map_err(draw_error)?;
    roles
        .draw_series(
            report
                .samples
                .iter()
                .enumerate()
                .flat_map(|(index, sample)| {
                    let from = index as f64 * window_s;
                    sample.roles.iter().enumerate().map(move |(node, &role)| {
                        let row = (nodes - 1 - node) as f64;
                        Rectangle::new(
                            [(from, row + 0.15), (from + window_s, row + 0.85)],
                            role_color(role).filled(),
                        )
                    })
                }),
        )
        .map_err(draw_error)?;
    // Replication lag.
    let lag_high = report
        .samples
        .iter()
        .flat_map(|sample| sample.lag_ms.iter().copied())
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut lag = ChartBuilder::on(&panels[1])
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(110)
        .build_cartesian_2d(0.0..end_s, 0.0..lag_high)
        .map_err(draw_error)?;
    lag.configure_mesh()
        .y_desc("apply lag, ms")
        .label_style(text_style(14.0, &BLACK))
        .axis_desc_style(text_style(14.0, &BLACK))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()
        .map_err(draw_error)?;
    for (node, name) in report.nodes.iter().enumerate() {
        let color = series_color(node);
        let points: Vec<(f64, f64)> = report
            .samples
            .iter()
            .enumerate()
            .map(|(index, sample): (usize, &DatabaseSample)| {
                ((index + 1) as f64 * window_s, sample.lag_ms[node])
            })
            .collect();
        lag.draw_series(std::iter::once(ThickPath::new(
            points,
            color.stroke_width(2),
        )))
        .map_err(draw_error)?
        .label(name.as_str())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    lag.configure_series_labels()
        .label_font(text_style(13.0, &BLACK))
        .background_style(WHITE.mix(0.8))
        .border_style(RGBColor(200, 200, 200))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(draw_error)?;
    // Write outcomes, stacked per window.
    let outcomes: [Outcome; 4] = [
        ("acknowledged", RGBColor(44, 160, 44), |c| c.acknowledged),
        ("failed", RGBColor(150, 150, 150), |c| c.failed),
        ("divergent", RGBColor(214, 39, 40), |c| c.divergent),
        ("lost", RGBColor(0, 0, 0), |c| c.lost),
    ];
    let high = report
        .windows
        .iter()
        .map(|c| c.acknowledged + c.failed + c.divergent + c.lost)
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let mut writes = ChartBuilder::on(&panels[2])
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(110)
        .build_cartesian_2d(0.0..end_s, 0.0..high)
        .map_err(draw_error)?;
    writes
        .configure_mesh()
        .x_desc("time, s")
        .y_desc("writes per window")
        .label_style(text_style(14.0, &BLACK))
        .axis_desc_style(text_style(14.0, &BLACK))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()
        .map_err(draw_error)?;
    for (level, (label, color, _)) in outcomes.iter().enumerate() {
        let color = *color;
        writes
            .draw_series(report.windows.iter().enumerate().map(|(index, counts)| {
                let below: u64 = outcomes[..level]
                    .iter()
                    .map(|(_, _, get)| get(counts))
                    .sum();
                let value = outcomes[level].2(counts);
                let from = index as f64 * window_s;
                Rectangle::new(
                    [
                        (from, below as f64),
                        (from + window_s, (below + value) as f64),
                    ],
                    color.filled(),
                )
            }))
            .map_err(draw_error)?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
    }
    writes
        .configure_series_labels()
        .label_font(text_style(13.0, &BLACK))
        .background_style(WHITE.mix(0.8))
        .border_style(RGBColor(200, 200, 200))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(draw_error)?;
    Ok(())
}
