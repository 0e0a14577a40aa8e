//! `regions.png`, written only for a scenario with a `topology`: the panel
//! "traffic by region", client attempts routed to each region per second,
//! stacked (the top edge is the total), with every topology fault window
//! shaded and labelled, and below it successful answers per region, so a
//! failover shows as one band shrinking, the others growing, and the
//! answers of the failed region stopping.

use super::chart::{draw_error, render_png, text_style, ChartError};
use crate::model::regions::RegionReport;
use plotters::prelude::*;

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
const FAULT_COLOR: RGBColor = RGBColor(230, 60, 60);
const FAULT_TEXT_COLOR: RGBColor = RGBColor(150, 20, 20);

/// Draws `regions.png` for `report`, whose windows are `window_s` wide.
pub fn regions_png(
    title: &str,
    window_s: f64,
    report: &RegionReport,
) -> Result<Vec<u8>, ChartError> {
    render_png(SIZE_PX, |root| {
        let body = root
            .margin(10, 0, 0, 0)
            .titled(
                &format!("Traffic by region: {title}"),
                text_style(26.0, &BLACK),
            )
            .map_err(draw_error)?;
        let (_, height_px) = body.dim_in_pixel();
        let (top, bottom) = body.split_vertically(height_px / 2);
        panel(
            &top,
            "routed attempts / s (stacked)",
            window_s,
            report,
            &report.routed,
            true,
        )?;
        panel(
            &bottom,
            "successful answers / s",
            window_s,
            report,
            &report.ok,
            false,
        )
    })
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    y_description: &str,
    window_s: f64,
    report: &RegionReport,
    columns: &[Vec<u64>],
    stacked: bool,
) -> Result<(), ChartError> {
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
    for (index, (label, start_ms, end_ms)) in report.fault_windows.iter().enumerate() {
        let (start_s, stop_s) = (start_ms / 1_000.0, (end_ms / 1_000.0).min(end_s));
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(start_s, 0.0), (stop_s, top_rps)],
                FAULT_COLOR.mix(0.14).filled(),
            )))
            .map_err(draw_error)?;
        // Labels stagger downwards so that overlapping windows stay readable.
        if index < 12 {
            let y = top_rps * (0.97 - 0.06 * (index % 4) as f64);
            chart
                .draw_series(std::iter::once(Text::new(
                    label.clone(),
                    (start_s, y),
                    text_style(14.0, &FAULT_TEXT_COLOR),
                )))
                .map_err(draw_error)?;
        }
    }
    let regions = report.names.len();
    let mut below = vec![0.0; columns.len()];
    for region in 0..regions {
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
            .draw_series(std::iter::once(PathElement::new(
                points,
                color.stroke_width(2),
            )))
            .map_err(draw_error)?
            .label(report.names[region].clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 26, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .label_font(text_style(15.0, &BLACK))
        .draw()
        .map_err(draw_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    // The chart renders, also with no windows, and the same input gives the same bytes.
    #[test]
    fn renders_deterministically() {
        let report = RegionReport {
            names: vec!["us-east-1".into(), "eu-west-1".into()],
            counters: vec![Default::default(); 2],
            routed: vec![vec![10, 5], vec![0, 15], vec![8, 7]],
            ok: vec![vec![10, 5], vec![0, 15], vec![8, 7]],
            failovers: Vec::new(),
            failovers_not_kept: 0,
            fault_windows: vec![("region outage us-east-1".into(), 1_000.0, 2_000.0)],
            routers: BTreeMap::new(),
            drawn_faults: Vec::new(),
            drawn_faults_not_kept: 0,
        };
        let first = regions_png("test", 1.0, &report).unwrap();
        assert_eq!(first, regions_png("test", 1.0, &report).unwrap());
        assert!(first.starts_with(b"\x89PNG"));
        let empty = RegionReport {
            routed: Vec::new(),
            ok: Vec::new(),
            ..report
        };
        assert!(regions_png("test", 1.0, &empty).is_ok());
    }
}
