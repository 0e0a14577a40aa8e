//! `regions.png`, written only for a scenario with a `topology`: the panel
//! "traffic by region", client attempts routed to each region per second,
//! stacked (the top edge is the total), and below it successful answers per
//! region, so a failover shows as one band shrinking, the others growing,
//! and the answers of the failed region stopping.
//!
//! Every topology fault window (`metrics::topology::windows`: scheduled
//! outages, partitions, degradations, checker partitions, and the windows
//! `failures` processes drew for regions, zones and instances) is shaded in
//! both panels and marked by a bar along the top in its kind's colour, one
//! lane per kind, so overlapping windows of different kinds stay apart.
//! The legend sits below the plots, where long labels cannot cover the
//! data: the regions, then the faults with the summary's own labels (the
//! same function writes both), one line per window, numbered as on the
//! bars, while there are at most `WINDOWS_LISTED_MAX`; beyond that one line
//! per kind, with its count and its places.

use super::chart::{draw_error, render_png, text_style, ChartError};
use super::thick_path::ThickPath;
use crate::metrics::topology::{TopologyWindow, WindowKind};
use crate::model::regions::RegionReport;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;

/// The plots' size; the legend below adds `LEGEND_LINE_PX` per line.
const SIZE_PX: (u32, u32) = (1400, 900);
const COLORS: [RGBColor; 8] = [
    RGBColor(40, 90, 200),
    RGBColor(240, 140, 0),
    RGBColor(34, 139, 58),
    RGBColor(150, 60, 170),
    RGBColor(200, 30, 30),
    RGBColor(20, 150, 160),
    RGBColor(130, 100, 40),
    RGBColor(120, 120, 120),
];
/// The most fault windows listed one by one in the legend (and numbered
/// on the plot); with more, the legend has one line per kind.
pub const WINDOWS_LISTED_MAX: usize = 8;
const LEGEND_LINE_PX: u32 = 24;
const LEGEND_FONT_PX: f64 = 15.0;
/// The share of the y range each kind's lane of bars takes at the top.
const LANE_SHARE: f64 = 0.025;

/// The colour of fault windows of `kind`: reds for what takes a region
/// down, oranges for a zone, brown for an instance, and purple, blue and
/// grey for the network faults that leave every unit up.
fn kind_color(kind: WindowKind) -> RGBColor {
    match kind {
        WindowKind::RegionOutage => RGBColor(215, 40, 40),
        WindowKind::RegionFailure => RGBColor(150, 20, 70),
        WindowKind::ZoneOutage => RGBColor(240, 120, 20),
        WindowKind::ZoneFailure => RGBColor(200, 160, 0),
        WindowKind::InstanceFailure => RGBColor(150, 100, 50),
        WindowKind::Partition => RGBColor(120, 50, 190),
        WindowKind::Degradation => RGBColor(30, 130, 210),
        WindowKind::CheckerPartition => RGBColor(90, 90, 90),
    }
}

/// How strongly a window of `kind` is shaded: an outage of a whole region
/// or zone more than a fault that leaves most of the capacity up.
fn kind_shade(kind: WindowKind) -> f64 {
    match kind {
        WindowKind::RegionOutage | WindowKind::RegionFailure => 0.14,
        WindowKind::ZoneOutage | WindowKind::ZoneFailure | WindowKind::Partition => 0.10,
        WindowKind::InstanceFailure | WindowKind::Degradation | WindowKind::CheckerPartition => {
            0.07
        }
    }
}

/// One fault window in chart units.
struct Shaded {
    kind: WindowKind,
    lane: usize,
    start_s: f64,
    /// `None`: still down when the run ended (shaded to the end).
    end_s: Option<f64>,
}

/// Draws `regions.png` for `report`, whose windows are `window_s` wide,
/// with topology fault windows `faults` (`metrics::topology::windows` of
/// the same run).
pub fn regions_png(
    title: &str,
    window_s: f64,
    report: &RegionReport,
    faults: &[TopologyWindow],
) -> Result<Vec<u8>, ChartError> {
    let kinds: Vec<WindowKind> = WindowKind::ALL
        .into_iter()
        .filter(|kind| faults.iter().any(|window| window.kind == *kind))
        .collect();
    let shaded: Vec<Shaded> = faults
        .iter()
        .map(|window| Shaded {
            kind: window.kind,
            lane: kinds
                .iter()
                .position(|kind| *kind == window.kind)
                .unwrap_or(0),
            start_s: window.start.as_ms_f64() / 1_000.0,
            end_s: window.end.map(|end| end.as_ms_f64() / 1_000.0),
        })
        .collect();
    let lines = legend_lines(report, faults, &kinds);
    let legend_px = 12 + LEGEND_LINE_PX * lines.len() as u32;
    let size_px = (SIZE_PX.0, SIZE_PX.1 + legend_px);
    render_png(size_px, |root| {
        let body = root
            .margin(10, 0, 0, 0)
            .titled(
                &format!("Traffic by region: {title}"),
                text_style(26.0, &BLACK),
            )
            .map_err(draw_error)?;
        let (_, height_px) = body.dim_in_pixel();
        let (plots, legend) = body.split_vertically(height_px.saturating_sub(legend_px));
        let (_, plots_px) = plots.dim_in_pixel();
        let (top, bottom) = plots.split_vertically(plots_px / 2);
        let lanes = kinds.len();
        let numbered = faults.len() <= WINDOWS_LISTED_MAX;
        let panels = [
            (&top, "routed attempts / s (stacked)", &report.routed, true),
            (&bottom, "successful answers / s", &report.ok, false),
        ];
        for (area, description, columns, stacked) in panels {
            let mut chart = panel(area, description, window_s, columns, stacked)?;
            let (end_s, top_rps) = {
                let (x, y) = (chart.x_range(), chart.y_range());
                (x.end, y.end)
            };
            draw_windows(
                &mut chart,
                &shaded,
                lanes,
                end_s,
                top_rps,
                numbered && stacked,
            )?;
            draw_series(&mut chart, window_s, report, columns, stacked)?;
        }
        draw_legend(&legend, &lines)
    })
}

type Panel<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// The panel's axes and grid, scaled to `columns`.
fn panel<'a, 'b>(
    area: &DrawingArea<BitMapBackend<'b>, Shift>,
    y_description: &str,
    window_s: f64,
    columns: &[Vec<u64>],
    stacked: bool,
) -> Result<Panel<'a, 'b>, ChartError> {
    let end_s = (columns.len() as f64 * window_s).max(window_s);
    let rate = |count: u64| count as f64 / window_s;
    let top_rps = columns
        .iter()
        .map(|row| {
            if stacked {
                rate(row.iter().sum())
            } else {
                row.iter().copied().map(rate).fold(0.0, f64::max)
            }
        })
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.3;
    let caption = if stacked {
        "Traffic by region"
    } else {
        "Answers by region"
    };
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .margin_right(36)
        .x_label_area_size(52)
        .y_label_area_size(84)
        .caption(caption, text_style(20.0, &BLACK))
        .build_cartesian_2d(0.0..end_s, 0.0..top_rps)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc(y_description)
        .axis_desc_style(text_style(17.0, &BLACK))
        .label_style(text_style(15.0, &BLACK))
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()
        .map_err(draw_error)?;
    Ok(chart)
}

/// Shades each window over the whole height and draws its bar in its
/// kind's lane along the top; with `numbered`, the window's number (its
/// line in the legend) under the lanes.
fn draw_windows(
    chart: &mut Panel<'_, '_>,
    windows: &[Shaded],
    lanes: usize,
    end_s: f64,
    top_rps: f64,
    numbered: bool,
) -> Result<(), ChartError> {
    for window in windows {
        let color = kind_color(window.kind);
        let start_s = window.start_s.min(end_s);
        // A window at least a pixel or so wide, so an instant shows.
        let stop_s = window
            .end_s
            .unwrap_or(end_s)
            .min(end_s)
            .max(start_s + end_s / 1_000.0);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(start_s, 0.0), (stop_s, top_rps)],
                color.mix(kind_shade(window.kind)).filled(),
            )))
            .map_err(draw_error)?;
        let lane_top = top_rps * (1.0 - LANE_SHARE * window.lane as f64);
        let lane_bottom = lane_top - top_rps * LANE_SHARE * 0.8;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(start_s, lane_bottom), (stop_s, lane_top)],
                color.filled(),
            )))
            .map_err(draw_error)?;
    }
    if numbered {
        // Windows that begin within 2% of the time axis of each other
        // share one tag (`1, 2`), so their numbers do not overprint.
        let mut tags: Vec<(f64, String)> = Vec::new();
        for (index, window) in windows.iter().enumerate() {
            let at_s = window.start_s.min(end_s);
            match tags.last_mut() {
                Some((tag_s, text)) if at_s - *tag_s <= end_s * 0.02 => {
                    text.push_str(&format!(", {}", index + 1));
                }
                _ => tags.push((at_s, format!("{}", index + 1))),
            }
        }
        let below_lanes = top_rps * (1.0 - LANE_SHARE * lanes as f64 - 0.01);
        for (at_s, text) in tags {
            chart
                .draw_series(std::iter::once(Text::new(
                    text,
                    ((at_s + end_s * 0.003).min(end_s * 0.97), below_lanes),
                    text_style(15.0, &BLACK),
                )))
                .map_err(draw_error)?;
        }
    }
    Ok(())
}

/// The regions' bands (stacked) or lines.
fn draw_series(
    chart: &mut Panel<'_, '_>,
    window_s: f64,
    report: &RegionReport,
    columns: &[Vec<u64>],
    stacked: bool,
) -> Result<(), ChartError> {
    let rate = |count: u64| count as f64 / window_s;
    let mut below = vec![0.0; columns.len()];
    for region in 0..report.names.len() {
        let color = COLORS[region % COLORS.len()];
        let mut points = Vec::with_capacity(columns.len() * 2);
        for (index, row) in columns.iter().enumerate() {
            let start_s = index as f64 * window_s;
            let value = rate(row[region]) + if stacked { below[index] } else { 0.0 };
            points.push((start_s, value));
            points.push((start_s + window_s, value));
        }
        if stacked {
            let mut polygon = points.clone();
            for (index, base) in below.iter().enumerate().rev() {
                let start_s = index as f64 * window_s;
                polygon.push((start_s + window_s, *base));
                polygon.push((start_s, *base));
            }
            chart
                .draw_series(std::iter::once(Polygon::new(
                    polygon,
                    color.mix(0.45).filled(),
                )))
                .map_err(draw_error)?;
            for (index, row) in columns.iter().enumerate() {
                below[index] += rate(row[region]);
            }
        }
        chart
            .draw_series(std::iter::once(ThickPath::new(
                points,
                color.stroke_width(2),
            )))
            .map_err(draw_error)?;
    }
    Ok(())
}

/// What one legend line shows after its swatch.
enum Swatch {
    /// A region's line colour.
    Line(RGBColor),
    /// A fault kind's colour.
    Block(RGBColor),
    /// Nothing (a heading or a note).
    None,
}

/// One line of the legend: items side by side, each a swatch and a text.
type LegendLine = Vec<(Swatch, String)>;

/// The legend's lines: the regions on one, then the faults (one line per
/// window, numbered, up to `WINDOWS_LISTED_MAX`; else one per kind), and a
/// note when drawn windows were not kept.
fn legend_lines(
    report: &RegionReport,
    faults: &[TopologyWindow],
    kinds: &[WindowKind],
) -> Vec<LegendLine> {
    let mut lines = Vec::new();
    let mut regions: LegendLine = vec![(Swatch::None, "regions:".to_string())];
    for (index, name) in report.names.iter().enumerate() {
        regions.push((Swatch::Line(COLORS[index % COLORS.len()]), name.clone()));
    }
    lines.push(regions);
    if faults.len() <= WINDOWS_LISTED_MAX {
        for (index, window) in faults.iter().enumerate() {
            let span = match window.end {
                Some(end) => format!("{}–{} s", seconds(window.start), seconds(end)),
                None => format!("from {} s, still down at the end", seconds(window.start)),
            };
            lines.push(vec![(
                Swatch::Block(kind_color(window.kind)),
                format!("{}  {}, {span}", index + 1, window.label),
            )]);
        }
    } else {
        for kind in kinds {
            // Distinct labels of the kind, in order of first appearance
            // (windows are sorted by start), each with its count.
            let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
            let mut total = 0;
            for (index, window) in faults.iter().enumerate() {
                if window.kind == *kind {
                    total += 1;
                    counts.entry(window.label.as_str()).or_insert((index, 0)).1 += 1;
                }
            }
            let mut labels: Vec<(&str, (usize, usize))> = counts.into_iter().collect();
            labels.sort_by_key(|(_, (first, _))| *first);
            let listed: Vec<String> = labels
                .iter()
                .map(|(label, (_, count))| {
                    if *count == 1 {
                        label.to_string()
                    } else {
                        format!("{label} ×{count}")
                    }
                })
                .collect();
            let plural = if total == 1 { "" } else { "s" };
            lines.push(vec![(
                Swatch::Block(kind_color(*kind)),
                format!(
                    "{}: {total} window{plural}: {}",
                    kind.name(),
                    listed.join(", ")
                ),
            )]);
        }
    }
    if report.drawn_faults_not_kept > 0 {
        lines.push(vec![(
            Swatch::None,
            format!(
                "(and {} drawn windows beyond the first {}, not shown)",
                report.drawn_faults_not_kept,
                crate::model::regions::FAULT_WINDOWS_KEPT_MAX
            ),
        )]);
    }
    lines
}

/// `at` in seconds, with a decimal only when it has one.
fn seconds(at: crate::engine::SimTime) -> String {
    let tenths = (at.as_ms_f64() / 100.0).round();
    if tenths % 10.0 == 0.0 {
        format!("{}", tenths / 10.0)
    } else {
        format!("{:.1}", tenths / 10.0)
    }
}

/// Draws the legend lines on `area`, each cut with `…` where it would
/// run past the right edge.
fn draw_legend(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    lines: &[LegendLine],
) -> Result<(), ChartError> {
    const LEFT_PX: i32 = 96;
    const SWATCH_PX: i32 = 26;
    const GAP_PX: i32 = 24;
    let (width_px, _) = area.dim_in_pixel();
    let right_px = i32::try_from(width_px).unwrap_or(i32::MAX) - 36;
    let style = text_style(LEGEND_FONT_PX, &BLACK);
    for (row, line) in lines.iter().enumerate() {
        let top_px = 6 + i32::try_from(row).unwrap_or(0) * LEGEND_LINE_PX as i32;
        let middle_px = top_px + LEGEND_LINE_PX as i32 / 2 - 2;
        let mut x_px = LEFT_PX;
        for (swatch, text) in line {
            match swatch {
                Swatch::Line(color) => {
                    area.draw(&PathElement::new(
                        vec![(x_px, middle_px), (x_px + SWATCH_PX, middle_px)],
                        color.stroke_width(3),
                    ))
                    .map_err(draw_error)?;
                    x_px += SWATCH_PX + 6;
                }
                Swatch::Block(color) => {
                    area.draw(&Rectangle::new(
                        [(x_px, middle_px - 7), (x_px + SWATCH_PX, middle_px + 7)],
                        color.mix(0.85).filled(),
                    ))
                    .map_err(draw_error)?;
                    x_px += SWATCH_PX + 6;
                }
                Swatch::None => {}
            }
            let text = fit(area, text, &style, right_px - x_px)?;
            let (text_px, _) = area.estimate_text_size(&text, &style).map_err(draw_error)?;
            area.draw(&Text::new(text, (x_px, middle_px - 8), style.clone()))
                .map_err(draw_error)?;
            x_px += i32::try_from(text_px).unwrap_or(0) + GAP_PX;
        }
    }
    Ok(())
}

/// `text`, cut and ended with `…` when it is wider than `room_px`.
fn fit(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    text: &str,
    style: &TextStyle<'_>,
    room_px: i32,
) -> Result<String, ChartError> {
    let wide = |text: &str| -> Result<bool, ChartError> {
        let (width_px, _) = area.estimate_text_size(text, style).map_err(draw_error)?;
        Ok(i32::try_from(width_px).unwrap_or(i32::MAX) > room_px)
    };
    if !wide(text)? {
        return Ok(text.to_string());
    }
    // No legend line is wider than this many characters.
    let mut chars: Vec<char> = text.chars().take(400).collect();
    while !chars.is_empty() {
        chars.pop();
        let cut: String = chars.iter().collect::<String>() + "…";
        if !wide(&cut)? {
            return Ok(cut);
        }
    }
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SimTime;

    fn report() -> RegionReport {
        RegionReport {
            names: vec!["us-east-1".into(), "eu-west-1".into()],
            counters: vec![Default::default(); 2],
            routed: vec![vec![10, 5], vec![0, 15], vec![8, 7]],
            ok: vec![vec![10, 5], vec![0, 15], vec![8, 7]],
            failovers: Vec::new(),
            failovers_not_kept: 0,
            routers: BTreeMap::new(),
            drawn_faults: Vec::new(),
            drawn_faults_not_kept: 0,
        }
    }

    fn window(kind: WindowKind, label: &str, start_ms: u64, end_ms: Option<u64>) -> TopologyWindow {
        TopologyWindow {
            kind,
            label: label.into(),
            start: SimTime::from_ms(start_ms),
            end: end_ms.map(SimTime::from_ms),
        }
    }

    // The chart renders, also with no windows, and the same input gives the same bytes.
    #[test]
    fn renders_deterministically() {
        let report = report();
        let faults = [
            window(
                WindowKind::RegionOutage,
                "region_outage (fail-fast) us-east-1",
                1_000,
                Some(2_000),
            ),
            window(WindowKind::ZoneFailure, "failure us-east-1/a", 500, None),
        ];
        let first = regions_png("test", 1.0, &report, &faults).unwrap();
        assert_eq!(first, regions_png("test", 1.0, &report, &faults).unwrap());
        assert!(first.starts_with(b"\x89PNG"));
        let empty = RegionReport {
            routed: Vec::new(),
            ok: Vec::new(),
            ..report
        };
        assert!(regions_png("test", 1.0, &empty, &[]).is_ok());
    }

    // Up to `WINDOWS_LISTED_MAX` windows, the legend lists each with its
    // label and span, numbered; beyond, one line per kind with its count
    // and each label's; a line for the windows not kept.
    #[test]
    fn the_legend_lists_windows_then_kinds() {
        let mut report = report();
        let few = [
            window(
                WindowKind::Partition,
                "partition us-east-1 <-> eu-west-1",
                60_000,
                Some(120_500),
            ),
            window(WindowKind::RegionFailure, "failure us-east-1", 90_000, None),
        ];
        let texts = |lines: &[LegendLine]| -> Vec<Vec<String>> {
            lines
                .iter()
                .map(|line| line.iter().map(|(_, text)| text.clone()).collect())
                .collect()
        };
        let kinds = [WindowKind::RegionFailure, WindowKind::Partition];
        assert_eq!(
            texts(&legend_lines(&report, &few, &kinds)),
            [
                vec!["regions:", "us-east-1", "eu-west-1"],
                vec!["1  partition us-east-1 <-> eu-west-1, 60–120.5 s"],
                vec!["2  failure us-east-1, from 90 s, still down at the end"],
            ]
        );
        let many: Vec<TopologyWindow> = (0..WINDOWS_LISTED_MAX as u64 + 1)
            .map(|index| {
                let (kind, label) = if index % 3 == 0 {
                    (WindowKind::RegionFailure, "failure us-east-1")
                } else {
                    (
                        WindowKind::ZoneFailure,
                        if index == 1 {
                            "failure eu-west-1/b"
                        } else {
                            "failure eu-west-1/a"
                        },
                    )
                };
                window(kind, label, index * 1_000, Some(index * 1_000 + 500))
            })
            .collect();
        report.drawn_faults_not_kept = 4;
        let kinds = [WindowKind::RegionFailure, WindowKind::ZoneFailure];
        let lines = texts(&legend_lines(&report, &many, &kinds));
        assert_eq!(
            lines[1..],
            [
                vec!["failure (region): 3 windows: failure us-east-1 ×3".to_string()],
                vec![
                    "failure (zone): 6 windows: failure eu-west-1/b, failure eu-west-1/a ×5"
                        .to_string()
                ],
                vec!["(and 4 drawn windows beyond the first 200, not shown)".to_string()],
            ]
        );
    }
}
