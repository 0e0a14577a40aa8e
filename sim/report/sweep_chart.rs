//! Charts over many runs, for sweeps and comparisons: lines with a 95%
//! confidence band (a metric against a parameter, availability over time,
//! latency CDFs) and a heatmap of a metric over two parameters.
//!
//! Log axes are drawn by plotting `log10` of the values on a linear axis and
//! labelling ticks with the values themselves, which keeps one code path for
//! both. Like `chart`, everything renders in memory with the bundled font,
//! and the same input gives the same bytes.

use super::chart::{draw_error, render_png, text_style, ChartError};
use plotters::prelude::*;

/// One point of a line: x, the mean and its interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BandPoint {
    /// Position on x (the value itself, even on a log axis).
    pub x: f64,
    /// The mean.
    pub mean: f64,
    /// Lower end of the band (equal to `mean` for none).
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

/// One line and its band.
#[derive(Clone, Debug)]
pub struct BandSeries {
    /// Legend text.
    pub label: String,
    /// Points in x order.
    pub points: Vec<BandPoint>,
}

/// A chart of lines with bands.
pub struct BandChart<'a> {
    /// Title on top.
    pub title: &'a str,
    /// x axis description, with its unit.
    pub x_label: &'a str,
    /// y axis description, with its unit.
    pub y_label: &'a str,
    /// The lines.
    pub series: &'a [BandSeries],
    /// Log-scale x (values must be positive; others are dropped).
    pub log_x: bool,
    /// Log-scale y.
    pub log_y: bool,
    /// Category names when x is an index into them (swept strings).
    pub x_categories: Option<&'a [String]>,
    /// Draw a marker and an error bar at each point (for sparse x).
    pub markers: bool,
}

/// A heatmap: `cells[row][column]`, rows along y.
pub struct Heatmap<'a> {
    /// Title on top.
    pub title: &'a str,
    /// x axis description.
    pub x_label: &'a str,
    /// y axis description.
    pub y_label: &'a str,
    /// Column names.
    pub columns: &'a [String],
    /// Row names.
    pub rows: &'a [String],
    /// Values (means); `None` for no data.
    pub cells: &'a [Vec<Option<f64>>],
}

const SIZE_PX: (u32, u32) = (1200, 700);

/// A point in axis units: x, mean, low, high (NaN when there is no band).
type Plotted = (f64, f64, f64, f64);
const PALETTE: [RGBColor; 10] = [
    RGBColor(16, 42, 130),
    RGBColor(220, 90, 20),
    RGBColor(34, 139, 58),
    RGBColor(200, 30, 30),
    RGBColor(128, 50, 170),
    RGBColor(20, 150, 160),
    RGBColor(150, 110, 30),
    RGBColor(90, 90, 90),
    RGBColor(230, 160, 190),
    RGBColor(120, 170, 230),
];

/// The colour of the `index`-th line.
pub fn color(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

fn axis_value(value: f64, log: bool) -> Option<f64> {
    if !value.is_finite() {
        return None;
    }
    if log {
        (value > 0.0).then(|| value.log10())
    } else {
        Some(value)
    }
}

/// A tick label: the value, or 10^value on a log axis, without noise digits.
fn tick(value: f64, log: bool) -> String {
    let shown = if log { 10f64.powf(value) } else { value };
    if shown == 0.0 {
        return "0".into();
    }
    let magnitude = shown.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).clamp(0, 6) as usize;
    let text = format!("{shown:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn padded(low: f64, high: f64) -> (f64, f64) {
    if !low.is_finite() || !high.is_finite() {
        return (0.0, 1.0);
    }
    if high - low < 1e-12 {
        let pad = low.abs().max(1.0) * 0.05;
        return (low - pad, high + pad);
    }
    let pad = (high - low) * 0.05;
    (low - pad, high + pad)
}

/// Lines with their 95% bands, as PNG.
pub fn band_png(chart: &BandChart) -> Result<Vec<u8>, ChartError> {
    let transformed: Vec<(String, Vec<Plotted>)> = chart
        .series
        .iter()
        .map(|series| {
            let points = series
                .points
                .iter()
                .filter_map(|point| {
                    Some((
                        axis_value(point.x, chart.log_x)?,
                        axis_value(point.mean, chart.log_y)?,
                        axis_value(point.low, chart.log_y).unwrap_or(f64::NAN),
                        axis_value(point.high, chart.log_y).unwrap_or(f64::NAN),
                    ))
                })
                .collect();
            (series.label.clone(), points)
        })
        .collect();
    let all = transformed.iter().flat_map(|(_, points)| points.iter());
    let (mut x_low, mut x_high, mut y_low, mut y_high) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for (x, mean, low, high) in all {
        x_low = x_low.min(*x);
        x_high = x_high.max(*x);
        for y in [mean, low, high].into_iter().filter(|y| y.is_finite()) {
            y_low = y_low.min(*y);
            y_high = y_high.max(*y);
        }
    }
    let (x_low, x_high) = if chart.x_categories.is_some() {
        (x_low - 0.5, x_high + 0.5)
    } else {
        padded(x_low, x_high)
    };
    let (y_low, y_high) = padded(y_low, y_high);
    render_png(SIZE_PX, |root| {
        let mut plot = ChartBuilder::on(root)
            .caption(chart.title, text_style(24.0, &BLACK))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(90)
            .build_cartesian_2d(x_low..x_high, y_low..y_high)
            .map_err(draw_error)?;
        let categories = chart.x_categories;
        let x_format = |value: &f64| match categories {
            Some(names) => {
                let index = value.round();
                if (value - index).abs() < 1e-6 && index >= 0.0 {
                    names.get(index as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            }
            None => tick(*value, chart.log_x),
        };
        let y_format = |value: &f64| tick(*value, chart.log_y);
        plot.configure_mesh()
            .x_desc(chart.x_label)
            .y_desc(chart.y_label)
            .x_labels(categories.map_or(10, |names| names.len().clamp(1, 20)))
            .x_label_formatter(&x_format)
            .y_label_formatter(&y_format)
            .label_style(text_style(15.0, &BLACK))
            .axis_desc_style(text_style(17.0, &BLACK))
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()
            .map_err(draw_error)?;
        for (index, (label, points)) in transformed.iter().enumerate() {
            let line_color = color(index);
            let banded: Vec<&Plotted> = points
                .iter()
                .filter(|(_, _, low, high)| low.is_finite() && high.is_finite())
                .collect();
            let legend = move |(x, y): (i32, i32)| {
                PathElement::new(vec![(x, y), (x + 30, y)], line_color.stroke_width(3))
            };
            if chart.markers {
                // Sparse points: a marker and an error bar each, no line.
                plot.draw_series(banded.iter().map(|p| {
                    PathElement::new(vec![(p.0, p.2), (p.0, p.3)], line_color.stroke_width(2))
                }))
                .map_err(draw_error)?;
                plot.draw_series(
                    points
                        .iter()
                        .map(|p| Circle::new((p.0, p.1), 4, line_color.filled())),
                )
                .map_err(draw_error)?
                .label(label.as_str())
                .legend(legend);
                continue;
            }
            if banded.len() >= 2 {
                let mut outline: Vec<(f64, f64)> = banded.iter().map(|p| (p.0, p.3)).collect();
                outline.extend(banded.iter().rev().map(|p| (p.0, p.2)));
                plot.draw_series(std::iter::once(Polygon::new(
                    outline,
                    line_color.mix(0.18).filled(),
                )))
                .map_err(draw_error)?;
            }
            plot.draw_series(LineSeries::new(
                points.iter().map(|p| (p.0, p.1)),
                line_color.stroke_width(2),
            ))
            .map_err(draw_error)?
            .label(label.as_str())
            .legend(legend);
        }
        if transformed.len() > 1
            || transformed
                .first()
                .is_some_and(|(label, _)| !label.is_empty())
        {
            plot.configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .label_font(text_style(15.0, &BLACK))
                .draw()
                .map_err(draw_error)?;
        }
        Ok(())
    })
}

/// The colour of a heatmap cell at `unit` in [0, 1]: red (low) to green (high).
fn heat(unit: f64) -> RGBColor {
    let unit = unit.clamp(0.0, 1.0);
    let (low, mid, high) = (
        (200.0, 40.0, 40.0),
        (245.0, 220.0, 90.0),
        (40.0, 150.0, 70.0),
    );
    let (from, to, t) = if unit < 0.5 {
        (low, mid, unit * 2.0)
    } else {
        (mid, high, unit * 2.0 - 1.0)
    };
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(mix(from.0, to.0), mix(from.1, to.1), mix(from.2, to.2))
}

/// A heatmap with each cell's value written in it, as PNG.
pub fn heatmap_png(map: &Heatmap) -> Result<Vec<u8>, ChartError> {
    let values: Vec<f64> = map
        .cells
        .iter()
        .flatten()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = if high > low { high - low } else { 1.0 };
    let (columns, rows) = (map.columns.len().max(1), map.rows.len().max(1));
    render_png(SIZE_PX, |root| {
        let mut plot = ChartBuilder::on(root)
            .caption(map.title, text_style(24.0, &BLACK))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(110)
            .build_cartesian_2d(0.0..columns as f64, 0.0..rows as f64)
            .map_err(draw_error)?;
        let column_names = map.columns;
        let row_names = map.rows;
        let x_format = |value: &f64| {
            let index = (value - 0.5).round();
            if (value - 0.5 - index).abs() < 1e-6 && index >= 0.0 {
                column_names
                    .get(index as usize)
                    .cloned()
                    .unwrap_or_default()
            } else {
                String::new()
            }
        };
        let y_format = |value: &f64| {
            let index = (value - 0.5).round();
            if (value - 0.5 - index).abs() < 1e-6 && index >= 0.0 {
                row_names.get(index as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        plot.configure_mesh()
            .disable_mesh()
            .x_desc(map.x_label)
            .y_desc(map.y_label)
            .x_labels(columns * 2 + 1)
            .y_labels(rows * 2 + 1)
            .x_label_formatter(&x_format)
            .y_label_formatter(&y_format)
            .label_style(text_style(15.0, &BLACK))
            .axis_desc_style(text_style(17.0, &BLACK))
            .draw()
            .map_err(draw_error)?;
        for (row, cells) in map.cells.iter().enumerate() {
            for (column, cell) in cells.iter().enumerate() {
                let (x, y) = (column as f64, row as f64);
                let fill = match cell {
                    Some(value) if value.is_finite() => heat((value - low) / span),
                    _ => RGBColor(230, 230, 230),
                };
                plot.draw_series(std::iter::once(Rectangle::new(
                    [(x, y), (x + 1.0, y + 1.0)],
                    fill.filled(),
                )))
                .map_err(draw_error)?;
                plot.draw_series(std::iter::once(Rectangle::new(
                    [(x, y), (x + 1.0, y + 1.0)],
                    WHITE.stroke_width(2),
                )))
                .map_err(draw_error)?;
                let text = cell.map_or("no data".to_string(), |value| tick(value, false));
                let style = text_style(16.0, &BLACK).pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                ));
                plot.draw_series(std::iter::once(Text::new(text, (x + 0.5, y + 0.5), style)))
                    .map_err(draw_error)?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Ticks drop noise digits and log ticks show the value, not its log.
    #[test]
    fn ticks_are_readable() {
        assert_eq!(tick(0.25, false), "0.25");
        assert_eq!(tick(1500.0, false), "1500");
        assert_eq!(tick(2.0, true), "100");
        assert_eq!(tick(0.0, false), "0");
    }

    // Both charts render to PNG, and the same input gives the same bytes.
    #[test]
    fn charts_render_deterministically() {
        let series = vec![BandSeries {
            label: "budget=none".into(),
            points: (1..5)
                .map(|x| BandPoint {
                    x: x as f64,
                    mean: x as f64,
                    low: x as f64 - 0.5,
                    high: x as f64 + 0.5,
                })
                .collect(),
        }];
        let chart = BandChart {
            title: "t",
            x_label: "x",
            y_label: "y",
            series: &series,
            log_x: false,
            log_y: true,
            x_categories: None,
            markers: true,
        };
        let first = band_png(&chart).unwrap();
        assert!(first.starts_with(b"\x89PNG"));
        assert_eq!(first, band_png(&chart).unwrap());
        let names = vec!["a".to_string(), "b".to_string()];
        let cells = vec![vec![Some(0.5), None], vec![Some(1.0), Some(0.9)]];
        let map = Heatmap {
            title: "h",
            x_label: "x",
            y_label: "y",
            columns: &names,
            rows: &names,
            cells: &cells,
        };
        assert!(heatmap_png(&map).unwrap().starts_with(b"\x89PNG"));
    }
}
