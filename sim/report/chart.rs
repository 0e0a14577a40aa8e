//! PNG charts for a simulation report.
//!
//! Two charts are drawn from the per-window time series of one run:
//!
//! * `availability.png` has two panels sharing the time axis. The top panel
//!   shows availability (%) with fault windows shaded and periods with an open
//!   circuit breaker marked as a purple band below the 0 % line. The bottom
//!   panel shows throughput in requests per second: requests issued, requests
//!   that succeeded, and client attempts (first tries plus retries), so retry
//!   amplification shows up as attempts rising above issued.
//! * `latency.png` shows the p50, p90, p99 and p99.9 latency of the requests
//!   that finished in each window on a logarithmic axis, with fault windows
//!   shaded.
//!
//! Rendering uses the DejaVu Sans font bundled with the crate, so no system
//! font library is needed, and goes to an in-memory RGB buffer that is encoded
//! as PNG. Nothing here touches the file system, and the same input always
//! produces the same bytes.

use std::ops::Range;
use std::sync::OnceLock;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::thick_path::ThickPath;

/// One time-series window, already converted to chart units.
#[derive(Clone, Debug)]
pub struct ChartRow {
    /// Window start, seconds of virtual time.
    pub start_s: f64,
    /// Successes / finished requests in the window, in [0, 1]; None when nothing finished.
    pub availability: Option<f64>,
    /// Requests issued per second in the window.
    pub issued_rps: f64,
    /// Successful requests per second.
    pub success_rps: f64,
    /// Requests answered per second, successes plus fallbacks; drawn only
    /// when some window had a fallback.
    pub served_rps: f64,
    /// Client attempts (first tries + retries) per second.
    pub attempts_rps: f64,
    /// Latency p50, p90, p99, p99.9 in ms of requests finished in the window; None when none finished.
    pub latency_ms: Option<[f64; 4]>,
}

/// Everything both charts need.
pub struct ChartInput<'a> {
    /// e.g. "thundering-herd, seed 42"
    pub title: &'a str,
    /// Window width in seconds (x positions are start_s .. start_s + window_s).
    pub window_s: f64,
    /// The time-series windows, in time order.
    pub rows: &'a [ChartRow],
    /// Fault windows: (label, start_s, end_s). Shade them (translucent) on both charts and label them.
    pub faults: &'a [(String, f64, f64)],
    /// Periods when at least one circuit breaker was open: (start_s, end_s). Mark them (e.g. a coloured band along the top/bottom of the availability panel, with a legend entry "breaker open").
    pub breaker_open: &'a [(f64, f64)],
    /// End of the load period (requests stop being issued after this); draw a thin vertical dashed/grey line with a label "load ends" if it is before the last row.
    pub load_end_s: f64,
}

/// Why a chart could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// Plotting failed (font registration, layout or drawing).
    #[error("cannot draw chart: {0}")]
    Draw(String),
    /// The rendered pixels could not be encoded as PNG.
    #[error("cannot encode chart as PNG: {0}")]
    Encode(String),
}

/// Size of `availability.png` in pixels (two stacked panels).
const AVAILABILITY_SIZE_PX: (u32, u32) = (1400, 900);
/// Size of `latency.png` in pixels.
const LATENCY_SIZE_PX: (u32, u32) = (1400, 700);

/// The font every text element uses; registered with plotters under this family name.
const FONT_FAMILY: &str = "sans-serif";
/// DejaVu Sans, bundled so that rendering needs no system fonts.
const FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Font sizes in pixels.
const TITLE_FONT_PX: f64 = 26.0;
const CAPTION_FONT_PX: f64 = 20.0;
const AXIS_DESCRIPTION_FONT_PX: f64 = 17.0;
const TICK_LABEL_FONT_PX: f64 = 15.0;
const LEGEND_FONT_PX: f64 = 15.0;
const ANNOTATION_FONT_PX: f64 = 14.0;

/// The availability axis spans a little more than 0–100 % so that the
/// breaker-open band fits below 0 % and fault labels fit above 100 % without
/// covering the line; ticks are only drawn for 0–100 %.
const AVAILABILITY_AXIS_MIN: f64 = -10.0;
const AVAILABILITY_AXIS_MAX: f64 = 112.0;
/// Vertical extent of the breaker-open band, in availability-axis units.
const BREAKER_BAND: (f64, f64) = (-8.5, -3.0);

/// Latencies are clamped to this so that zero still has a place on the log axis.
const MIN_LATENCY_MS: f64 = 0.01;
/// Upper clamps (about 11.6 days, a trillion requests per second) keep
/// absurd inputs from overflowing the axis arithmetic to infinity.
const MAX_LATENCY_MS: f64 = 1e9;
const MAX_RPS: f64 = 1e12;
/// Headroom above the largest throughput value, leaving room for fault labels.
const THROUGHPUT_HEADROOM: f64 = 1.25;

/// Legend geometry in pixels (sample line width, inner margin, distance from the plot edge).
const LEGEND_SAMPLE_PX: u32 = 34;
const LEGEND_MARGIN_PX: i32 = 8;
const LEGEND_INSET_PX: i32 = 10;

const AVAILABILITY_COLOR: RGBColor = RGBColor(16, 42, 130);
const ISSUED_COLOR: RGBColor = RGBColor(185, 185, 185);
const SUCCESS_COLOR: RGBColor = RGBColor(34, 139, 58);
const ATTEMPTS_COLOR: RGBColor = RGBColor(235, 110, 20);
const SERVED_COLOR: RGBColor = RGBColor(40, 110, 200);
const LATENCY_COLORS: [RGBColor; 4] = [
    RGBColor(34, 139, 58),
    RGBColor(40, 90, 200),
    RGBColor(240, 140, 0),
    RGBColor(200, 30, 30),
];
const LATENCY_NAMES: [&str; 4] = ["p50", "p90", "p99", "p99.9"];
const FAULT_COLOR: RGBColor = RGBColor(230, 60, 60);
const FAULT_SHADE_ALPHA: f64 = 0.14;
const FAULT_TEXT_COLOR: RGBColor = RGBColor(150, 20, 20);
const BREAKER_COLOR: RGBColor = RGBColor(128, 50, 170);
const LOAD_END_COLOR: RGBColor = RGBColor(120, 120, 120);
const GRID_BOLD_COLOR: RGBColor = RGBColor(215, 215, 215);
const GRID_LIGHT_COLOR: RGBColor = RGBColor(238, 238, 238);
const NOTE_COLOR: RGBColor = RGBColor(120, 120, 120);

/// The chart context every panel uses: linear time on x, some f64 axis on y.
type Panel<'a, 'b, Y> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, Y>>;

/// availability.png: top panel availability (%) over time (y 0–100, maybe auto-zoomed lower bound is NOT wanted: keep 0–100 so outages are visible), bottom panel throughput in requests/s over time with three series: issued, successful, attempts (attempts > issued shows retry amplification). Fault windows shaded in both panels, breaker-open periods marked, titles, axis labels with units ("time (s)", "availability (%)", "requests / s"), legends.
pub fn availability_png(input: &ChartInput) -> Result<Vec<u8>, ChartError> {
    let data = Prepared::new(input);
    render_png(AVAILABILITY_SIZE_PX, |root| {
        let title = format!("Availability and throughput: {}", input.title);
        let body = root
            .margin(10, 0, 0, 0)
            .titled(&title, text_style(TITLE_FONT_PX, &BLACK))
            .map_err(draw_error)?;
        let (_, body_height_px) = body.dim_in_pixel();
        let (top, bottom) = body.split_vertically(body_height_px / 2);
        draw_availability_panel(&top, &data)?;
        draw_throughput_panel(&bottom, &data)
    })
}

/// latency.png: p50/p90/p99/p99.9 latency in ms over time on a LOG-scale y axis (use plotters' `.log_scale()` on the y range; clamp values to a positive minimum such as 0.01 ms), fault windows shaded, title, axis labels with units, legend.
pub fn latency_png(input: &ChartInput) -> Result<Vec<u8>, ChartError> {
    let data = Prepared::new(input);
    render_png(LATENCY_SIZE_PX, |root| {
        let title = format!("Latency percentiles: {}", input.title);
        let body = root
            .margin(10, 0, 0, 0)
            .titled(&title, text_style(TITLE_FONT_PX, &BLACK))
            .map_err(draw_error)?;
        draw_latency_panel(&body, &data)
    })
}

/// Input cleaned up for drawing: rows in time order, a usable window width,
/// the time range shown, and fault / breaker spans clipped to it.
struct Prepared<'a> {
    rows: Vec<&'a ChartRow>,
    window_s: f64,
    time_s: Range<f64>,
    faults: Vec<(&'a str, f64, f64)>,
    breaker_open: Vec<(f64, f64)>,
    /// Where to draw the "load ends" line, when it falls inside the data.
    load_end_s: Option<f64>,
}

impl<'a> Prepared<'a> {
    fn new(input: &ChartInput<'a>) -> Self {
        let mut rows: Vec<&ChartRow> = input
            .rows
            .iter()
            .filter(|row| row.start_s.is_finite())
            .collect();
        // Sorting keeps the step lines monotonic even if the caller's rows are out of order.
        rows.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        let window_s = usable_window_s(input.window_s, &rows);
        let time_s = time_range_s(input, &rows, window_s);
        let clip = |start_s: f64, end_s: f64| -> Option<(f64, f64)> {
            if !start_s.is_finite() || !end_s.is_finite() {
                return None;
            }
            let (low, high) = (start_s.min(end_s), start_s.max(end_s));
            let (low, high) = (low.max(time_s.start), high.min(time_s.end));
            (low <= high).then_some((low, high))
        };
        let faults = input
            .faults
            .iter()
            .filter_map(|(label, start_s, end_s)| {
                clip(*start_s, *end_s).map(|(low, high)| (label.as_str(), low, high))
            })
            .collect();
        let breaker_open = input
            .breaker_open
            .iter()
            .filter_map(|(start_s, end_s)| clip(*start_s, *end_s))
            .collect();
        let data_end_s = rows.last().map(|row| row.start_s + window_s);
        let load_end_s = data_end_s.and_then(|end_s| {
            let inside = input.load_end_s.is_finite()
                && input.load_end_s > time_s.start
                && input.load_end_s < end_s;
            inside.then_some(input.load_end_s)
        });
        Self {
            rows,
            window_s,
            time_s,
            faults,
            breaker_open,
            load_end_s,
        }
    }
}

/// The caller's window width, or, if that is unusable, the smallest spacing
/// between rows, or one second.
fn usable_window_s(window_s: f64, rows: &[&ChartRow]) -> f64 {
    if window_s.is_finite() && window_s > 0.0 {
        return window_s;
    }
    rows.windows(2)
        .map(|pair| pair[1].start_s - pair[0].start_s)
        .filter(|gap_s| gap_s.is_finite() && *gap_s > 0.0)
        .fold(None, |smallest: Option<f64>, gap_s| {
            Some(smallest.map_or(gap_s, |current| current.min(gap_s)))
        })
        .unwrap_or(1.0)
}

/// The time span covered by the rows; without rows, the span of the faults,
/// breaker periods and load period, falling back to 0–1 s.
fn time_range_s(input: &ChartInput, rows: &[&ChartRow], window_s: f64) -> Range<f64> {
    let (low, high) = match (rows.first(), rows.last()) {
        (Some(first), Some(last)) => (first.start_s, last.start_s + window_s),
        _ => {
            let mut points_s: Vec<f64> = vec![0.0, input.load_end_s];
            for (_, start_s, end_s) in input.faults {
                points_s.extend([*start_s, *end_s]);
            }
            for (start_s, end_s) in input.breaker_open {
                points_s.extend([*start_s, *end_s]);
            }
            let finite = points_s.into_iter().filter(|point_s| point_s.is_finite());
            finite.fold(
                (f64::INFINITY, f64::NEG_INFINITY),
                |(low, high), point_s| (low.min(point_s), high.max(point_s)),
            )
        }
    };
    if low.is_finite() && high.is_finite() && high > low {
        low..high
    } else if low.is_finite() {
        low..low + 1.0
    } else {
        0.0..1.0
    }
}

/// Builds step lines: each window is a horizontal segment at its value, and
/// neighbouring windows are joined by vertical segments. A missing value or
/// a gap between windows breaks the line instead of drawing it to zero.
fn step_lines<F>(rows: &[&ChartRow], window_s: f64, value: F) -> Vec<Vec<(f64, f64)>>
where
    F: Fn(&ChartRow) -> Option<f64>,
{
    let mut lines = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    let mut previous_end_s = f64::NEG_INFINITY;
    for row in rows {
        let Some(value) = value(row).filter(|value| value.is_finite()) else {
            if !current.is_empty() {
                lines.push(std::mem::take(&mut current));
            }
            continue;
        };
        // Half a window of slack tolerates rounding in start_s.
        if row.start_s > previous_end_s + window_s * 0.5 && !current.is_empty() {
            lines.push(std::mem::take(&mut current));
        }
        let end_s = row.start_s + window_s;
        current.push((row.start_s, value));
        current.push((end_s, value));
        previous_end_s = end_s;
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

/// Top panel of `availability.png`: availability with faults, breaker-open
/// periods and the end of load marked.
fn draw_availability_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    data: &Prepared,
) -> Result<(), ChartError> {
    let mut chart = panel_builder(area, "Availability")
        .build_cartesian_2d(
            data.time_s.clone(),
            AVAILABILITY_AXIS_MIN..AVAILABILITY_AXIS_MAX,
        )
        .map_err(draw_error)?;
    // The axis extends past 0–100 % for the breaker band and fault labels;
    // ticks outside 0–100 % are left unlabelled.
    configure_mesh(&mut chart, data, "availability (%)", |value| {
        if (-0.001..=100.001).contains(&value) {
            format!("{value:.0}")
        } else {
            String::new()
        }
    })?;

    let mut legend = Vec::new();
    draw_fault_shading(
        &mut chart,
        data,
        (AVAILABILITY_AXIS_MIN, AVAILABILITY_AXIS_MAX),
        &mut legend,
    )?;
    if !data.breaker_open.is_empty() {
        let band = BREAKER_COLOR.mix(0.75).filled();
        chart
            .draw_series(data.breaker_open.iter().map(|(start_s, end_s)| {
                Rectangle::new([(*start_s, BREAKER_BAND.0), (*end_s, BREAKER_BAND.1)], band)
            }))
            .map_err(draw_error)?
            .label("breaker open")
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + LEGEND_SAMPLE_PX as i32 - 8, y + 5)], band)
            });
        legend.push("breaker open");
    }
    draw_load_end_line(
        &mut chart,
        data,
        (AVAILABILITY_AXIS_MIN, AVAILABILITY_AXIS_MAX),
    )?;

    let lines = step_lines(&data.rows, data.window_s, |row| {
        row.availability
            .map(|fraction| fraction.clamp(0.0, 1.0) * 100.0)
    });
    draw_lines(
        &mut chart,
        &lines,
        AVAILABILITY_COLOR,
        2,
        "availability",
        &mut legend,
    )?;

    let mut obstacles = sample_lines(&chart, &lines);
    let label_boxes = draw_top_labels(&mut chart, data, AVAILABILITY_AXIS_MAX)?;
    if data.rows.is_empty() {
        draw_note(&chart, "no data")?;
    } else if lines.is_empty() {
        draw_note(&chart, "no availability data (no request finished)")?;
    }
    // The legend may sit in a lower corner but never on top of the breaker band.
    let zero_px = pixel_in_plot(&chart, (data.time_s.start, 0.0)).1;
    for (start_s, end_s) in &data.breaker_open {
        obstacles.push(pixel_in_plot(&chart, (*start_s, BREAKER_BAND.1)));
        obstacles.push(pixel_in_plot(&chart, (*end_s, BREAKER_BAND.1)));
    }
    draw_legend(
        &mut chart,
        &legend,
        &obstacles,
        &label_boxes,
        Some(zero_px - 4),
    )?;
    Ok(())
}

/// Bottom panel of `availability.png`: issued, successful and attempted
/// requests per second.
fn draw_throughput_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    data: &Prepared,
) -> Result<(), ChartError> {
    let largest_rps = data
        .rows
        .iter()
        .flat_map(|row| [row.issued_rps, row.success_rps, row.attempts_rps])
        .filter(|value| value.is_finite())
        .fold(0.0_f64, f64::max)
        .min(MAX_RPS);
    let top_rps = (largest_rps * THROUGHPUT_HEADROOM).max(1.0);
    let mut chart = panel_builder(area, "Throughput")
        .build_cartesian_2d(data.time_s.clone(), 0.0..top_rps)
        .map_err(draw_error)?;
    let decimals = if top_rps >= 20.0 { 0 } else { 1 };
    configure_mesh(&mut chart, data, "requests / s", move |value| {
        format!("{value:.decimals$}")
    })?;

    let mut legend = Vec::new();
    draw_fault_shading(&mut chart, data, (0.0, top_rps), &mut legend)?;
    draw_load_end_line(&mut chart, data, (0.0, top_rps))?;

    let non_negative = |value: f64| Some(value.clamp(0.0, MAX_RPS));
    let issued = step_lines(&data.rows, data.window_s, |row| {
        non_negative(row.issued_rps)
    });
    let attempts = step_lines(&data.rows, data.window_s, |row| {
        non_negative(row.attempts_rps)
    });
    let success = step_lines(&data.rows, data.window_s, |row| {
        non_negative(row.success_rps)
    });
    // Fallback answers serve users too: show them when there were any.
    let any_fallback = data.rows.iter().any(|row| row.served_rps > row.success_rps);
    let served = step_lines(&data.rows, data.window_s, |row| {
        non_negative(row.served_rps)
    });
    // Issued is drawn wide and light underneath so that it stays visible
    // where the other two series coincide with it (no failures, no retries).
    draw_lines(
        &mut chart,
        &issued,
        ISSUED_COLOR.to_rgba(),
        6,
        "issued",
        &mut legend,
    )?;
    draw_lines(
        &mut chart,
        &attempts,
        ATTEMPTS_COLOR.to_rgba(),
        2,
        "attempts (incl. retries)",
        &mut legend,
    )?;
    if any_fallback {
        draw_lines(
            &mut chart,
            &served,
            SERVED_COLOR.to_rgba(),
            2,
            "served (incl. fallback)",
            &mut legend,
        )?;
    }
    draw_lines(
        &mut chart,
        &success,
        SUCCESS_COLOR.to_rgba(),
        2,
        "successful",
        &mut legend,
    )?;

    let mut obstacles = sample_lines(&chart, &issued);
    if any_fallback {
        obstacles.extend(sample_lines(&chart, &served));
    }
    obstacles.extend(sample_lines(&chart, &attempts));
    obstacles.extend(sample_lines(&chart, &success));
    let label_boxes = draw_top_labels(&mut chart, data, top_rps)?;
    if data.rows.is_empty() {
        draw_note(&chart, "no data")?;
    }
    draw_legend(&mut chart, &legend, &obstacles, &label_boxes, None)
}

/// The single panel of `latency.png`: four percentiles on a log axis.
fn draw_latency_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    data: &Prepared,
) -> Result<(), ChartError> {
    let clamp = |value_ms: f64| value_ms.clamp(MIN_LATENCY_MS, MAX_LATENCY_MS);
    let values_ms: Vec<f64> = data
        .rows
        .iter()
        .filter_map(|row| row.latency_ms)
        .flatten()
        .filter(|value_ms| value_ms.is_finite())
        .map(clamp)
        .collect();
    let (low_ms, high_ms) = log_axis_range_ms(&values_ms);
    let (ticks, light_ticks) = log_ticks(low_ms, high_ms);
    let y_axis = (low_ms..high_ms)
        .log_scale()
        .with_key_points(ticks)
        .with_light_points(light_ticks);
    let mut chart = panel_builder(area, "")
        .build_cartesian_2d(data.time_s.clone(), y_axis)
        .map_err(draw_error)?;
    configure_mesh(
        &mut chart,
        data,
        "latency (ms, log scale)",
        format_latency_tick,
    )?;

    let mut legend = Vec::new();
    draw_fault_shading(&mut chart, data, (low_ms, high_ms), &mut legend)?;
    draw_load_end_line(&mut chart, data, (low_ms, high_ms))?;

    let mut obstacles = Vec::new();
    let mut any_line = false;
    for (index, (name, color)) in LATENCY_NAMES.iter().zip(LATENCY_COLORS).enumerate() {
        let lines = step_lines(&data.rows, data.window_s, |row| {
            row.latency_ms
                .map(|percentiles| percentiles[index])
                .filter(|value_ms| value_ms.is_finite())
                .map(clamp)
        });
        any_line |= !lines.is_empty();
        draw_lines(&mut chart, &lines, color.to_rgba(), 2, name, &mut legend)?;
        obstacles.extend(sample_lines(&chart, &lines));
    }
    let label_boxes = draw_top_labels(&mut chart, data, high_ms)?;
    if data.rows.is_empty() {
        draw_note(&chart, "no data")?;
    } else if !any_line {
        draw_note(&chart, "no latency data (no request finished)")?;
    }
    draw_legend(&mut chart, &legend, &obstacles, &label_boxes, None)
}

/// Log axis bounds: whole decades around the data, with room above the
/// largest value for labels and the legend; 1–1000 ms without data.
fn log_axis_range_ms(values_ms: &[f64]) -> (f64, f64) {
    let smallest_ms = values_ms.iter().copied().fold(f64::INFINITY, f64::min);
    let largest_ms = values_ms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !smallest_ms.is_finite() || !largest_ms.is_finite() {
        return (1.0, 1000.0);
    }
    let low_exponent = smallest_ms.log10().floor();
    let high_exponent = (largest_ms * 3.0).log10().ceil().max(low_exponent + 1.0);
    (10_f64.powf(low_exponent), 10_f64.powf(high_exponent))
}

/// Labelled ticks (1, 2 and 5 per decade for short ranges, decades otherwise)
/// and unlabelled grid lines at the remaining integer multiples.
fn log_ticks(low_ms: f64, high_ms: f64) -> (Vec<f64>, Vec<f64>) {
    // Exponents are small integers here; the clamp guards the cast.
    let low_exponent = low_ms.log10().round().clamp(-300.0, 300.0) as i32;
    let high_exponent = high_ms.log10().round().clamp(-300.0, 300.0) as i32;
    let decades = high_exponent - low_exponent;
    let labelled: &[u32] = if decades <= 3 { &[1, 2, 5] } else { &[1] };
    let mut ticks = Vec::new();
    let mut light_ticks = Vec::new();
    for exponent in low_exponent..=high_exponent {
        let decade = 10_f64.powi(exponent);
        for multiple in 1..=9_u32 {
            let value = f64::from(multiple) * decade;
            if value > high_ms * 1.000_001 {
                break;
            }
            if labelled.contains(&multiple) {
                ticks.push(value);
            } else {
                light_ticks.push(value);
            }
        }
    }
    (ticks, light_ticks)
}

/// Prints a latency tick without trailing zeros: 0.01, 0.5, 20, 1000, and
/// huge values as 1e6 so they fit the label area.
fn format_latency_tick(value_ms: f64) -> String {
    if value_ms >= 1e6 {
        format!("{value_ms:e}")
    } else if value_ms >= 1.0 {
        format!("{value_ms:.0}")
    } else {
        // Enough decimals to show the first significant digit.
        let decimals = (-value_ms.log10()).ceil().clamp(0.0, 12.0) as usize;
        format!("{value_ms:.decimals$}")
    }
}

/// Time ticks with as many decimals as the span needs.
fn format_time_tick(value_s: f64, span_s: f64) -> String {
    let decimals = if span_s >= 20.0 {
        0
    } else if span_s >= 1.0 {
        1
    } else {
        2
    };
    format!("{value_s:.decimals$}")
}

/// Common panel layout: caption, margins and label areas.
fn panel_builder<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    caption: &str,
) -> ChartBuilder<'a, 'b, BitMapBackend<'b>> {
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(12)
        .margin_right(36)
        .x_label_area_size(52)
        .y_label_area_size(84);
    if !caption.is_empty() {
        builder.caption(caption, text_style(CAPTION_FONT_PX, &BLACK));
    }
    builder
}

/// Grid, axes and axis descriptions shared by every panel.
fn configure_mesh<Y, F>(
    chart: &mut Panel<'_, '_, Y>,
    data: &Prepared,
    y_description: &str,
    y_format: F,
) -> Result<(), ChartError>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    F: Fn(f64) -> String,
{
    let span_s = data.time_s.end - data.time_s.start;
    let x_format = move |value_s: &f64| format_time_tick(*value_s, span_s);
    let y_format = move |value: &f64| y_format(*value);
    chart
        .configure_mesh()
        .x_labels(16)
        .y_labels(8)
        // One unlabelled grid line between labels is enough; more looks busy.
        .x_max_light_lines(2)
        .y_max_light_lines(2)
        .x_label_formatter(&x_format)
        .y_label_formatter(&y_format)
        .x_desc("time (s)")
        .y_desc(y_description)
        .axis_desc_style(text_style(AXIS_DESCRIPTION_FONT_PX, &BLACK))
        .label_style(text_style(TICK_LABEL_FONT_PX, &BLACK))
        .bold_line_style(GRID_BOLD_COLOR)
        .light_line_style(GRID_LIGHT_COLOR)
        .axis_style(BLACK.mix(0.8))
        .draw()
        .map_err(draw_error)
}

/// Shades every fault window over the full height of the panel.
fn draw_fault_shading<Y>(
    chart: &mut Panel<'_, '_, Y>,
    data: &Prepared,
    (y_low, y_high): (f64, f64),
    legend: &mut Vec<&'static str>,
) -> Result<(), ChartError>
where
    Y: Ranged<ValueType = f64>,
{
    if data.faults.is_empty() {
        return Ok(());
    }
    let shade = FAULT_COLOR.mix(FAULT_SHADE_ALPHA).filled();
    chart
        .draw_series(data.faults.iter().map(|(_, start_s, end_s)| {
            Rectangle::new([(*start_s, y_low), (*end_s, y_high)], shade)
        }))
        .map_err(draw_error)?
        .label("fault window")
        .legend(move |(x, y)| {
            Rectangle::new(
                [(x, y - 7), (x + LEGEND_SAMPLE_PX as i32 - 8, y + 7)],
                FAULT_COLOR.mix(FAULT_SHADE_ALPHA * 2.0).filled(),
            )
        });
    legend.push("fault window");
    Ok(())
}

/// Thin dashed grey line where the load period ends.
fn draw_load_end_line<Y>(
    chart: &mut Panel<'_, '_, Y>,
    data: &Prepared,
    (y_low, y_high): (f64, f64),
) -> Result<(), ChartError>
where
    Y: Ranged<ValueType = f64>,
{
    let Some(load_end_s) = data.load_end_s else {
        return Ok(());
    };
    let style = LOAD_END_COLOR.stroke_width(1);
    chart
        .draw_series(DashedLineSeries::new(
            [(load_end_s, y_low), (load_end_s, y_high)],
            6,
            4,
            style,
        ))
        .map_err(draw_error)?;
    Ok(())
}

/// Draws one series (possibly broken into several lines) with a legend entry.
fn draw_lines<Y, C>(
    chart: &mut Panel<'_, '_, Y>,
    lines: &[Vec<(f64, f64)>],
    color: C,
    width_px: u32,
    name: &'static str,
    legend: &mut Vec<&'static str>,
) -> Result<(), ChartError>
where
    Y: Ranged<ValueType = f64>,
    C: Color + Copy + 'static,
{
    let style = color.stroke_width(width_px);
    chart
        .draw_series(lines.iter().map(|line| ThickPath::new(line.clone(), style)))
        .map_err(draw_error)?
        .label(name)
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + LEGEND_SAMPLE_PX as i32 - 8, y)], style)
        });
    legend.push(name);
    Ok(())
}

/// A rectangle in pixels relative to the plotting area's top-left corner.
#[derive(Clone, Copy, Debug)]
struct PixelBox {
    left: i32,
    top: i32,
    right: i32,
    bottom: i32,
}

impl PixelBox {
    fn overlaps(&self, other: &PixelBox) -> bool {
        self.left < other.right
            && other.left < self.right
            && self.top < other.bottom
            && other.top < self.bottom
    }

    fn contains(&self, (x, y): (i32, i32)) -> bool {
        (self.left..=self.right).contains(&x) && (self.top..=self.bottom).contains(&y)
    }
}

/// Maps a data point to pixels relative to the plotting area.
fn pixel_in_plot<Y>(chart: &Panel<'_, '_, Y>, point: (f64, f64)) -> (i32, i32)
where
    Y: Ranged<ValueType = f64>,
{
    let (x_px, y_px) = chart.plotting_area().get_pixel_range();
    let (x, y) = chart.backend_coord(&point);
    (x - x_px.start, y - y_px.start)
}

/// Pixels along the drawn lines, used to keep the legend off the data.
fn sample_lines<Y>(chart: &Panel<'_, '_, Y>, lines: &[Vec<(f64, f64)>]) -> Vec<(i32, i32)>
where
    Y: Ranged<ValueType = f64>,
{
    const STEP_PX: i64 = 4;
    let mut samples = Vec::new();
    for line in lines {
        let pixels: Vec<(i32, i32)> = line
            .iter()
            .map(|point| pixel_in_plot(chart, *point))
            .collect();
        samples.extend(pixels.first().copied());
        for pair in pixels.windows(2) {
            // i64 so that far-off points cannot overflow the interpolation.
            let (x0, y0) = (i64::from(pair[0].0), i64::from(pair[0].1));
            let (x1, y1) = (i64::from(pair[1].0), i64::from(pair[1].1));
            let steps = ((x1 - x0).abs().max((y1 - y0).abs()) / STEP_PX).clamp(1, 10_000);
            for step in 1..=steps {
                let x = x0 + (x1 - x0) * step / steps;
                let y = y0 + (y1 - y0) * step / steps;
                samples.extend(i32::try_from(x).ok().zip(i32::try_from(y).ok()));
            }
        }
    }
    samples
}

/// Writes fault labels (and "load ends") along the top edge of the plot.
/// Labels that would collide go to the next row down. Returns the boxes
/// they occupy so the legend can avoid them.
fn draw_top_labels<Y>(
    chart: &mut Panel<'_, '_, Y>,
    data: &Prepared,
    y_top: f64,
) -> Result<Vec<PixelBox>, ChartError>
where
    Y: Ranged<ValueType = f64>,
{
    const PADDING_PX: i32 = 3;
    const GAP_PX: i32 = 8;
    enum Align {
        /// The label starts just right of the x position.
        After,
        /// The label ends just left of the x position.
        Before,
    }
    let mut labels: Vec<(&str, f64, Align, RGBColor)> = data
        .faults
        .iter()
        .map(|(label, start_s, _)| (*label, *start_s, Align::After, FAULT_TEXT_COLOR))
        .collect();
    if let Some(load_end_s) = data.load_end_s {
        labels.push(("load ends", load_end_s, Align::Before, LOAD_END_COLOR));
    }

    let area = chart.plotting_area().strip_coord_spec();
    let (plot_width_px, _) = area.dim_in_pixel();
    let plot_width_px = i32::try_from(plot_width_px).unwrap_or(i32::MAX);
    let mut lane_ends_px: Vec<i32> = Vec::new();
    let mut boxes = Vec::new();
    for (text, x_s, align, color) in labels {
        let style = text_style(ANNOTATION_FONT_PX, &color);
        let (width_px, height_px) = area.estimate_text_size(text, &style).map_err(draw_error)?;
        let width_px = i32::try_from(width_px).unwrap_or(i32::MAX / 4) + 2 * PADDING_PX;
        let height_px = i32::try_from(height_px)
            .unwrap_or(0)
            .max(ANNOTATION_FONT_PX as i32)
            + 2 * PADDING_PX;
        let anchor_px = pixel_in_plot(chart, (x_s, y_top)).0;
        let wanted_left_px = match align {
            Align::After => anchor_px + 2,
            Align::Before => anchor_px - 2 - width_px,
        };
        // Keep the label inside the plot even when its anchor is near an edge.
        let left_px = wanted_left_px.min(plot_width_px - width_px - 2).max(2);
        let lane = lane_ends_px
            .iter()
            .position(|end_px| *end_px + GAP_PX <= left_px)
            .unwrap_or(lane_ends_px.len());
        if lane == lane_ends_px.len() {
            lane_ends_px.push(left_px + width_px);
        } else {
            lane_ends_px[lane] = left_px + width_px;
        }
        let top_px = 3 + i32::try_from(lane).unwrap_or(0) * (height_px + 2);
        let label_box = PixelBox {
            left: left_px,
            top: top_px,
            right: left_px + width_px,
            bottom: top_px + height_px,
        };
        area.draw(&Rectangle::new(
            [
                (label_box.left, label_box.top),
                (label_box.right, label_box.bottom),
            ],
            WHITE.mix(0.75).filled(),
        ))
        .map_err(draw_error)?;
        area.draw(&Text::new(
            text.to_string(),
            (left_px + PADDING_PX, top_px + PADDING_PX),
            style,
        ))
        .map_err(draw_error)?;
        boxes.push(label_box);
    }
    Ok(boxes)
}

/// A grey note in the middle of the plot, for panels without data.
fn draw_note<Y>(chart: &Panel<'_, '_, Y>, note: &str) -> Result<(), ChartError>
where
    Y: Ranged<ValueType = f64>,
{
    let area = chart.plotting_area().strip_coord_spec();
    let (width_px, height_px) = area.dim_in_pixel();
    let style = text_style(CAPTION_FONT_PX, &NOTE_COLOR).pos(Pos::new(HPos::Center, VPos::Center));
    let centre = (
        i32::try_from(width_px / 2).unwrap_or(0),
        i32::try_from(height_px / 2).unwrap_or(0),
    );
    area.draw(&Text::new(note.to_string(), centre, style))
        .map_err(draw_error)
}

/// Draws the legend in the corner of the plot that covers the fewest data
/// pixels and labels (upper right wins ties). `bottom_limit_px` keeps a
/// lower-corner legend above that pixel row.
fn draw_legend<'a, 'b: 'a, Y>(
    chart: &mut Panel<'a, 'b, Y>,
    entries: &[&str],
    obstacles: &[(i32, i32)],
    label_boxes: &[PixelBox],
    bottom_limit_px: Option<i32>,
) -> Result<(), ChartError>
where
    Y: Ranged<ValueType = f64>,
{
    if entries.is_empty() {
        return Ok(());
    }
    let font = text_style(LEGEND_FONT_PX, &BLACK);
    let mut text = MultiLineText::<_, &str>::new((0, 0), &font);
    for entry in entries {
        text.push_line(*entry);
    }
    let (text_width_px, text_height_px) = text.estimate_dimension().map_err(draw_error)?;
    let width_px = text_width_px + LEGEND_SAMPLE_PX as i32 + 2 * LEGEND_MARGIN_PX;
    let height_px = text_height_px + 2 * LEGEND_MARGIN_PX;

    let (plot_width_px, plot_height_px) = chart.plotting_area().dim_in_pixel();
    let plot_width_px = i32::try_from(plot_width_px).unwrap_or(i32::MAX);
    let plot_height_px = i32::try_from(plot_height_px).unwrap_or(i32::MAX);
    let right_px = plot_width_px - LEGEND_INSET_PX - width_px;
    let bottom_px = bottom_limit_px
        .unwrap_or(plot_height_px)
        .min(plot_height_px)
        - LEGEND_INSET_PX
        - height_px;
    // Tie order: upper right, upper left, lower right, lower left.
    let corners = [
        (right_px, LEGEND_INSET_PX),
        (LEGEND_INSET_PX, LEGEND_INSET_PX),
        (right_px, bottom_px),
        (LEGEND_INSET_PX, bottom_px),
    ];
    let cost = |(left, top): (i32, i32)| {
        let legend_box = PixelBox {
            left: left - 4,
            top: top - 4,
            right: left + width_px + 4,
            bottom: top + height_px + 4,
        };
        let covered_points = obstacles
            .iter()
            .filter(|point| legend_box.contains(**point))
            .count();
        // Hiding a fault label is worse than hiding a stretch of line.
        let covered_labels = label_boxes
            .iter()
            .filter(|label| legend_box.overlaps(label))
            .count();
        covered_points + 1000 * covered_labels
    };
    let mut best = corners[0];
    for corner in corners.iter().skip(1) {
        if cost(*corner) < cost(best) {
            best = *corner;
        }
    }

    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::Coordinate(best.0, best.1))
        .legend_area_size(LEGEND_SAMPLE_PX)
        .margin(LEGEND_MARGIN_PX)
        .label_font(font)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.5))
        .draw()
        .map_err(draw_error)
}

/// Ensures the bundled font is registered with plotters; the first outcome
/// is remembered so that every later call reports the same result.
fn ensure_font() -> Result<(), ChartError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT_BYTES)
                .map_err(|_| "the bundled font DejaVuSans.ttf could not be loaded".to_string())
        })
        .clone()
        .map_err(ChartError::Draw)
}

/// Draws into an in-memory RGB buffer with `draw` and encodes it as PNG.
pub(crate) fn render_png<F>(
    (width_px, height_px): (u32, u32),
    draw: F,
) -> Result<Vec<u8>, ChartError>
where
    F: FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), ChartError>,
{
    ensure_font()?;
    let mut pixels = vec![255_u8; width_px as usize * height_px as usize * 3];
    {
        let root =
            BitMapBackend::with_buffer(&mut pixels, (width_px, height_px)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        draw(&root)?;
        root.present().map_err(draw_error)?;
    }
    encode_png(&pixels, width_px, height_px)
}

/// Encodes 8-bit RGB pixels as PNG.
fn encode_png(pixels: &[u8], width_px: u32, height_px: u32) -> Result<Vec<u8>, ChartError> {
    let encode_error = |error: png::EncodingError| ChartError::Encode(error.to_string());
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width_px, height_px);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // Charts are mostly flat colour, which a filter shrinks several times
    // over (no filter: 3.6 MB for the two charts of thundering-herd-breaker).
    // Paeth on every row gives 322 KB, within 5% of choosing each row's
    // filter adaptively (307 KB), for a fifth of the time: adaptive filtering
    // tries all five filters per row, and was 3% of a 300 s run.
    encoder.set_adaptive_filter(png::AdaptiveFilterType::NonAdaptive);
    encoder.set_filter(png::FilterType::Paeth);
    // Lossless at every level, so the pixels are the same; only size and
    // time differ. On thundering-herd-breaker's 1400x900 availability chart
    // (measured when the level was chosen, docs/performance.md's first
    // round): `Best` 70 KB in 143 ms, `Default` 71 KB in 66 ms,
    // `Fast` (fdeflate) 163 KB in 12 ms. `Best` made charts 30-40% of a
    // 300 s run; `Fast` brings them under 10% for twice the bytes.
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(encode_error)?;
    writer.write_image_data(pixels).map_err(encode_error)?;
    writer.finish().map_err(encode_error)?;
    Ok(bytes)
}

pub(crate) fn text_style(size_px: f64, color: &RGBColor) -> TextStyle<'static> {
    (FONT_FAMILY, size_px).into_font().color(color)
}

pub(crate) fn draw_error(error: impl std::fmt::Display) -> ChartError {
    ChartError::Draw(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_SIGNATURE: &[u8] = b"\x89PNG";

    // The encoding is lossless: decoding gives back every pixel, flat runs,
    // edges and noise alike.
    #[test]
    fn png_decodes_to_the_same_pixels() {
        let (width, height) = (37u32, 23u32);
        let pixels: Vec<u8> = (0..width * height * 3)
            .map(|i| match i % 7 {
                0 => (i * 31 % 251) as u8,
                1 | 2 => 255,
                _ => (i / 97) as u8,
            })
            .collect();
        let bytes = encode_png(&pixels, width, height).expect("encodes");
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .expect("a PNG");
        let mut decoded = vec![0; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut decoded).expect("one frame");
        assert_eq!((frame.width, frame.height), (width, height));
        assert_eq!(&decoded[..frame.buffer_size()], &pixels[..]);
    }

    fn row(start_s: f64) -> ChartRow {
        ChartRow {
            start_s,
            availability: Some(0.99),
            issued_rps: 100.0,
            success_rps: 99.0,
            served_rps: 99.5,
            attempts_rps: 110.0,
            latency_ms: Some([5.0, 10.0, 20.0, 40.0]),
        }
    }

    fn input<'a>(
        rows: &'a [ChartRow],
        faults: &'a [(String, f64, f64)],
        breaker_open: &'a [(f64, f64)],
    ) -> ChartInput<'a> {
        ChartInput {
            title: "test, seed 1",
            window_s: 1.0,
            rows,
            faults,
            breaker_open,
            load_end_s: 8.0,
        }
    }

    fn assert_both_render(input: &ChartInput) {
        for bytes in [availability_png(input), latency_png(input)] {
            let bytes = bytes.unwrap_or_else(|error| panic!("chart failed: {error}"));
            assert!(bytes.starts_with(PNG_SIGNATURE));
        }
    }

    #[test]
    fn empty_rows_render() {
        let faults = vec![("outage".to_string(), 2.0, 4.0)];
        assert_both_render(&input(&[], &faults, &[(1.0, 3.0)]));
        assert_both_render(&input(&[], &[], &[]));
    }

    #[test]
    fn all_none_renders() {
        let rows: Vec<ChartRow> = (0..10)
            .map(|second| ChartRow {
                availability: None,
                latency_ms: None,
                ..row(f64::from(second))
            })
            .collect();
        assert_both_render(&input(&rows, &[], &[]));
    }

    #[test]
    fn single_row_renders() {
        assert_both_render(&input(&[row(0.0)], &[], &[]));
    }

    #[test]
    fn zero_throughput_renders() {
        let rows: Vec<ChartRow> = (0..10)
            .map(|second| ChartRow {
                issued_rps: 0.0,
                success_rps: 0.0,
                served_rps: 0.0,
                attempts_rps: 0.0,
                latency_ms: Some([0.0; 4]),
                ..row(f64::from(second))
            })
            .collect();
        assert_both_render(&input(&rows, &[], &[]));
    }

    #[test]
    fn odd_values_render() {
        let mut rows: Vec<ChartRow> = (0..10).map(|second| row(f64::from(second))).collect();
        rows[3].availability = Some(f64::NAN);
        rows[4].issued_rps = f64::INFINITY;
        rows[5].latency_ms = Some([f64::NAN, -1.0, 0.0, f64::INFINITY]);
        rows.swap(0, 9);
        let faults = vec![
            ("backwards".to_string(), 5.0, 2.0),
            ("outside".to_string(), 50.0, 60.0),
            ("not a number".to_string(), f64::NAN, 3.0),
        ];
        let breaker_open = [(f64::NEG_INFINITY, 2.0), (4.0, 4.0)];
        let mut odd = input(&rows, &faults, &breaker_open);
        odd.window_s = 0.0;
        odd.load_end_s = f64::NAN;
        assert_both_render(&odd);
    }

    #[test]
    fn extreme_values_render() {
        let mut rows: Vec<ChartRow> = (0..5).map(|second| row(f64::from(second))).collect();
        rows[1].attempts_rps = f64::MAX;
        rows[2].latency_ms = Some([f64::MAX, 1e300, 1e-300, f64::MIN_POSITIVE]);
        rows[3].start_s = 1e15;
        let faults = vec![
            (String::new(), 0.0, 1e16),
            ("ünïcødé ✓".to_string(), 1.0, 2.0),
        ];
        assert_both_render(&input(&rows, &faults, &[(0.0, f64::MAX)]));
    }

    #[test]
    fn same_input_same_bytes() {
        let rows: Vec<ChartRow> = (0..30).map(|second| row(f64::from(second))).collect();
        let faults = vec![("outage".to_string(), 10.0, 15.0)];
        let breaker_open = [(11.0, 16.0)];
        let chart_input = input(&rows, &faults, &breaker_open);
        for render in [availability_png, latency_png] {
            let first = render(&chart_input).unwrap_or_else(|error| panic!("{error}"));
            let second = render(&chart_input).unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(first, second);
        }
    }

    #[test]
    fn latency_ticks_are_readable() {
        assert_eq!(format_latency_tick(0.01), "0.01");
        assert_eq!(format_latency_tick(0.5), "0.5");
        assert_eq!(format_latency_tick(20.0), "20");
        assert_eq!(format_latency_tick(1e7), "1e7");
        let (ticks, light_ticks) = log_ticks(10.0, 1000.0);
        assert_eq!(ticks.len(), 7);
        assert!(!light_ticks.is_empty());
    }
}
