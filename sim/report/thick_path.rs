//! Lines wider than a pixel, drawn exactly as plotters draws them, faster.
//!
//! plotters draws a path of stroke width above 1 by turning it into one
//! polygon (`plotters_backend::rasterizer::polygonize`) and filling that
//! with `plotters_backend::rasterizer::fill_polygon`: a sweep, one pixel
//! row or column at a time, over the polygon's edges. That fill first sorts
//! all the edges with a comparison sort, then at each step builds a new list
//! of the edges the sweep line crosses and sorts it with a comparison that
//! divides twice, so a time series of 1,200 windows drawn 2 pixels wide cost
//! about a million instructions a line, the largest part of a chart's
//! drawing.
//!
//! `fill_polygon` here is the same sweep: the same edges, the same order
//! (a stable sort by the same position, which only one order satisfies), the
//! same spans and anti-aliased end pixels drawn in the same order with the
//! same colours, so the pixels are identical (`tests` compares whole
//! bitmaps against plotters' fill). It keeps the crossing edges in one list
//! updated in place, computes each edge's position once per step,
//! re-sorts by insertion, as the order changes little from one step to the
//! next, and sorts the edges by where they start with a counting sort.

use plotters::element::{Drawable, PointCollection};
use plotters::prelude::*;
use plotters_backend::rasterizer::polygonize;
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, DrawingErrorKind};

/// A path like plotters' `PathElement`, filled by this module's
/// `fill_polygon` when it is wider than a pixel.
pub struct ThickPath {
    points: Vec<(f64, f64)>,
    style: ShapeStyle,
}

impl ThickPath {
    /// The path through `points` (data coordinates), drawn with `style`.
    pub fn new(points: Vec<(f64, f64)>, style: ShapeStyle) -> ThickPath {
        ThickPath { points, style }
    }
}

impl<'a> PointCollection<'a, (f64, f64)> for &'a ThickPath {
    type Point = &'a (f64, f64);
    type IntoIter = &'a [(f64, f64)];

    fn point_iter(self) -> &'a [(f64, f64)] {
        &self.points
    }
}

impl<DB: DrawingBackend> Drawable<DB> for ThickPath {
    fn draw<I: Iterator<Item = BackendCoord>>(
        &self,
        points: I,
        backend: &mut DB,
        _: (u32, u32),
    ) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
        // What `DrawingBackend::draw_path` does, with this module's fill.
        let color = self.style.color();
        if color.alpha == 0.0 || self.style.stroke_width == 1 {
            return backend.draw_path(points, &self.style);
        }
        let points: Vec<BackendCoord> = points.collect();
        fill_polygon(
            backend,
            &polygonize(&points, self.style.stroke_width),
            &color,
        )
    }
}

/// One edge the sweep line crosses, in sweep coordinates: `master` runs
/// along the sweep, `slave` across it.
struct Edge {
    /// Sweep steps taken since the edge began.
    epoch: u32,
    /// Sweep steps the edge spans.
    total_epoch: u32,
    slave_begin: i32,
    slave_end: i32,
    /// Where the sweep line crosses it at this step (`slave_pos`).
    position: f64,
}

impl Edge {
    /// The edge from `from` to `to` (sweep coordinates, `from` not after
    /// `to` along the sweep); `None` if it lies along the sweep line.
    fn new(from: BackendCoord, to: BackendCoord) -> Option<Edge> {
        (from.0 != to.0).then(|| Edge {
            epoch: 0,
            total_epoch: (to.0 - from.0) as u32,
            slave_begin: from.1,
            slave_end: to.1,
            position: 0.0,
        })
    }

    /// Steps left before the edge ends.
    fn master_pos(&self) -> i32 {
        (self.total_epoch - self.epoch) as i32
    }

    /// Where the sweep line crosses the edge, as plotters computes it.
    fn slave_pos(&self) -> f64 {
        f64::from(self.slave_begin)
            + (i64::from(self.slave_end - self.slave_begin) * i64::from(self.epoch)) as f64
                / f64::from(self.total_epoch)
    }
}

/// Sorts `edges` by where they start along the sweep, stably: the order of
/// plotters' `sort_by_key`. The starts are pixel positions within `span`, so
/// a counting sort does it in one pass where a comparison sort of a wide
/// path's thousands of edges took as long as the rest of the fill.
fn sort_by_start(edges: &mut Vec<(BackendCoord, BackendCoord)>, span: (i32, i32)) {
    let start = |(a, b): &(BackendCoord, BackendCoord)| a.0.min(b.0);
    let width = (i64::from(span.1) - i64::from(span.0) + 1) as usize;
    if width > 4 * edges.len() + 4096 {
        edges.sort_by_key(start);
        return;
    }
    // `first[k]`: where the edges starting at `span.0 + k` go.
    let mut first = vec![0usize; width + 1];
    for edge in edges.iter() {
        first[(start(edge) - span.0) as usize + 1] += 1;
    }
    for k in 1..first.len() {
        first[k] += first[k - 1];
    }
    let mut sorted = vec![((0, 0), (0, 0)); edges.len()];
    for edge in edges.iter() {
        let slot = &mut first[(start(edge) - span.0) as usize];
        sorted[*slot] = *edge;
        *slot += 1;
    }
    *edges = sorted;
}

/// Fills the polygon `vertices` with `color`, pixel for pixel as
/// `plotters_backend::rasterizer::fill_polygon` does (see the module doc).
pub fn fill_polygon<DB: DrawingBackend>(
    back: &mut DB,
    vertices: &[BackendCoord],
    color: &BackendColor,
) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
    let Some((&first, rest)) = vertices.split_first() else {
        return Ok(());
    };
    let (mut x_span, mut y_span) = ((first.0, first.0), (first.1, first.1));
    for &(x, y) in rest {
        x_span = (x_span.0.min(x), x_span.1.max(x));
        y_span = (y_span.0.min(y), y_span.1.max(y));
    }
    // All the points on one vertical or horizontal line.
    if x_span.0 == x_span.1 || y_span.0 == y_span.1 {
        return back.draw_line((x_span.0, y_span.0), (x_span.1, y_span.1), color);
    }
    let horizontal_sweep = x_span.1 - x_span.0 > y_span.1 - y_span.0;
    // Sweep coordinates: (along the sweep, across it).
    let sweep = |(x, y): BackendCoord| if horizontal_sweep { (x, y) } else { (y, x) };

    let mut edges: Vec<(BackendCoord, BackendCoord)> = vertices
        .iter()
        .zip(vertices.iter().skip(1))
        .map(|(&a, &b)| (sweep(a), sweep(b)))
        .collect();
    edges.push((sweep(vertices[vertices.len() - 1]), sweep(vertices[0])));
    sort_by_start(&mut edges, if horizontal_sweep { x_span } else { y_span });
    for edge in &mut edges {
        if edge.0 .0 > edge.1 .0 {
            std::mem::swap(&mut edge.0, &mut edge.1);
        }
    }

    let (low, high) = if horizontal_sweep { x_span } else { y_span };
    let mut next = 0;
    let mut active: Vec<Edge> = Vec::new();
    for sweep_line in low..=high {
        active.retain_mut(|edge| {
            let goes_on = edge.master_pos() > 0;
            if goes_on {
                edge.epoch += 1;
            }
            goes_on
        });
        while let Some(&(from, to)) = edges.get(next) {
            if from.0 > sweep_line {
                break;
            }
            active.extend(Edge::new(from, to));
            next += 1;
        }
        for edge in &mut active {
            edge.position = edge.slave_pos();
        }
        // Stable insertion sort: the order of the step before is nearly
        // sorted already. plotters' `sort` compares with `partial_cmp`
        // (positions are never NaN), so equal positions keep their order.
        for at in 1..active.len() {
            let mut to = at;
            while to > 0 && active[to - 1].position > active[to].position {
                active.swap(to - 1, to);
                to -= 1;
            }
        }

        let mut first: Option<&Edge> = None;
        let mut second: Option<&Edge> = None;
        for edge in &active {
            if first.is_none() {
                first = Some(edge);
            } else if second.is_none() {
                second = Some(edge);
            }
            let (Some(a), Some(b)) = (first, second) else {
                continue;
            };
            if a.master_pos() == 0 && b.master_pos() != 0 {
                first = Some(b);
                second = None;
                continue;
            }
            if a.master_pos() != 0 && b.master_pos() == 0 {
                second = None;
                continue;
            }
            let (from, to) = (a.position, b.position);
            if a.master_pos() == 0 && b.master_pos() == 0 && to - from > 1.0 {
                first = None;
                second = None;
                continue;
            }
            // A pixel at `slave` across the sweep line.
            let pixel = |slave: i32| {
                if horizontal_sweep {
                    (sweep_line, slave)
                } else {
                    (slave, sweep_line)
                }
            };
            // As plotters has it, the far end's coverage is `to.floor() - to`
            // in a vertical sweep (not positive, so that pixel is left as
            // it is), `to - to.floor()` in a horizontal one.
            let far_alpha = if horizontal_sweep {
                to - to.floor()
            } else {
                to.floor() - to
            };
            back.draw_line(pixel(from.ceil() as i32), pixel(to.floor() as i32), color)?;
            back.draw_pixel(pixel(from.floor() as i32), color.mix(from.ceil() - from))?;
            back.draw_pixel(pixel(to.ceil() as i32), color.mix(far_alpha))?;
            first = None;
            second = None;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::backend::BitMapBackend;
    use proptest::prelude::*;

    /// Square, so that a polygon and its mirror image across the diagonal
    /// both fit: one sweeps across x, the other across y.
    const SIZE: (u32, u32) = (64, 64);

    /// The RGB bitmap of `draw` on a white canvas of `SIZE`.
    fn render(draw: impl FnOnce(&mut BitMapBackend<'_>)) -> Vec<u8> {
        let mut buffer = vec![255u8; (SIZE.0 * SIZE.1 * 3) as usize];
        {
            let mut backend = BitMapBackend::with_buffer(&mut buffer, SIZE);
            draw(&mut backend);
            backend.present().expect("in memory");
        }
        buffer
    }

    /// Paths of a few points, some off the canvas, some repeated.
    fn paths() -> impl Strategy<Value = Vec<BackendCoord>> {
        prop::collection::vec((-8i32..72, -8i32..72), 2..24)
    }

    proptest! {
        // The same pixels as plotters' own fill, for the polygons of wide
        // paths and for arbitrary polygons, each also mirrored across the
        // diagonal (a sweep across y where the original sweeps across x).
        #[test]
        fn fills_exactly_as_plotters_does(
            path in paths(),
            width in 2u32..6,
            alpha in prop::sample::select(vec![1.0, 0.6]),
        ) {
            let color = BackendColor { alpha, rgb: (200, 40, 90) };
            let wide = polygonize(&path, width);
            let mirror = |points: &[BackendCoord]| points.iter().map(|&(x, y)| (y, x)).collect();
            for polygon in [mirror(&wide), wide, mirror(&path), path] {
                let ours = render(|backend| {
                    fill_polygon(backend, &polygon, &color).expect("drawn");
                });
                let plotters = render(|backend| {
                    plotters_backend::rasterizer::fill_polygon(backend, &polygon, &color)
                        .expect("drawn");
                });
                prop_assert!(ours == plotters, "polygon {polygon:?}");
            }
        }
    }

    proptest! {
        // The counting sort orders edges as a stable sort by start does.
        #[test]
        fn edges_are_sorted_as_sort_by_key_sorts_them(
            edges in prop::collection::vec(((-50i32..50, -9i32..9), (-50i32..50, -9i32..9)), 0..200),
        ) {
            let starts = edges.iter().map(|(a, b)| a.0.min(b.0));
            let span = (starts.clone().min().unwrap_or(0), starts.max().unwrap_or(0));
            let mut ours = edges.clone();
            sort_by_start(&mut ours, span);
            let mut expected = edges;
            expected.sort_by_key(|(a, b)| a.0.min(b.0));
            prop_assert_eq!(ours, expected);
        }
    }

    // A chart-like series: a step line of many windows, 2 pixels wide.
    #[test]
    fn a_long_step_line_is_drawn_as_plotters_draws_it() {
        let mut path = Vec::new();
        for x in 0..60 {
            let y = 10 + (x * 7919 % 23);
            path.push((x + 2, y));
            path.push((x + 3, y));
        }
        let style = ShapeStyle {
            color: RGBAColor(20, 60, 200, 1.0),
            filled: false,
            stroke_width: 2,
        };
        let ours = render(|backend| {
            let color = style.color();
            fill_polygon(backend, &polygonize(&path, 2), &color).expect("drawn");
        });
        let plotters = render(|backend| {
            backend
                .draw_path(path.iter().copied(), &style)
                .expect("drawn");
        });
        assert!(ours == plotters);
        assert!(ours.iter().any(|&byte| byte != 255), "something was drawn");
    }
}
