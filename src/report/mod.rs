//! Charts for reports and docs, drawn with plotters as SVG or PNG bytes (no IO here: callers
//! write the files). Text is measured, and in PNG drawn, with DejaVu Sans embedded in the
//! program, so charts come out the same with or without system fonts.

pub mod data;
pub mod html;

use plotters::coord::Shift;
use plotters::prelude::*;

/// An image format for charts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Text drawn by the viewer: no fonts needed to make it.
    Svg,
    /// Pixels, with text drawn from the embedded DejaVu Sans font.
    Png,
}

/// Registers the embedded font as "sans-serif" (once): text is measured and drawn with it, so
/// charts look the same on every machine, with or without system fonts.
fn init_fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

fn svg_text(bytes: Vec<u8>) -> Result<String, ChartError> {
    String::from_utf8(bytes).map_err(|e| ChartError(e.to_string()))
}

/// RGB pixels as a PNG file.
fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, ChartError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(|e| ChartError(e.to_string()))?;
        writer
            .write_image_data(rgb)
            .map_err(|e| ChartError(e.to_string()))?;
    }
    Ok(out)
}

/// Draws with `$draw` on a drawing area of `$size` in `$format`; the image's bytes.
macro_rules! render {
    ($format:expr, $size:expr, |$root:ident| $draw:expr) => {{
        init_fonts();
        let (w, h): (u32, u32) = $size;
        match $format {
            Format::Svg => {
                let mut svg = String::new();
                {
                    let $root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
                    $draw?;
                }
                Ok(svg.into_bytes())
            }
            Format::Png => {
                let mut buf = vec![0u8; (w * h * 3) as usize];
                {
                    let $root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
                    $draw?;
                }
                encode_png(&buf, w, h)
            }
        }
    }};
}

/// One line of a chart: a name for the legend and its points, drawn in x order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, thiserror::Error)]
#[error("chart: {0}")]
pub struct ChartError(String);

/// Line colours, in series order (colour-blind-safe Okabe–Ito palette).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];

/// Draws the series' legend at `pos`, on a light box.
fn legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    pos: SeriesLabelPosition,
) -> Result<(), ChartError>
where
    DB: DrawingBackend + 'a,
    CT: plotters::coord::CoordTranslate,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(pos)
        .draw()
        .map_err(|e| ChartError(e.to_string()))
}

/// The size of a legend of `labels` as fractions of the plot area of a 720 × 440 chart
/// (about 630 × 330 pixels): a line per label, about 7 pixels per character.
fn legend_box<'a>(labels: impl Iterator<Item = &'a str>) -> (f64, f64) {
    let (mut n, mut chars) = (0usize, 0usize);
    for l in labels {
        n += 1;
        chars = chars.max(l.chars().count());
    }
    let w = (36.0 + 7.0 * chars as f64) / 630.0;
    let h = (12.0 + 20.0 * n as f64) / 330.0;
    (w.min(1.0), h.min(0.9))
}

/// Where a legend of size `(w, h)` covers the least data: the corner of the plot whose box
/// holds the fewest of `points` (given as fractions of the plot, 0..1 on both axes, y up), and
/// that count. Ties go to the upper right, then upper left, lower right, lower left.
fn legend_corner(points: &[(f64, f64)], (w, h): (f64, f64)) -> (SeriesLabelPosition, usize) {
    let corners = [
        (SeriesLabelPosition::UpperRight, 1.0 - w, 1.0 - h),
        (SeriesLabelPosition::UpperLeft, 0.0, 1.0 - h),
        (SeriesLabelPosition::LowerRight, 1.0 - w, 0.0),
        (SeriesLabelPosition::LowerLeft, 0.0, 0.0),
    ];
    let mut best: Option<(SeriesLabelPosition, usize)> = None;
    for (pos, x0, y0) in corners {
        let inside = points
            .iter()
            .filter(|(x, y)| *x >= x0 && *x <= x0 + w && *y >= y0 && *y <= y0 + h)
            .count();
        if best.as_ref().is_none_or(|b| inside < b.1) {
            best = Some((pos, inside));
        }
    }
    best.unwrap_or((SeriesLabelPosition::UpperRight, 0))
}

/// The points of line series as fractions of the plot `(x0..x1, y0..y1)` (log10 of y on a log
/// scale), each segment sampled so that a line crossing a corner counts there too.
fn plot_fractions(series: &[Series], x: (f64, f64), y: (f64, f64), log: bool) -> Vec<(f64, f64)> {
    let fy = |v: f64| {
        if log {
            (v.max(y.0).log10() - y.0.log10()) / (y.1.log10() - y.0.log10())
        } else {
            (v - y.0) / (y.1 - y.0)
        }
    };
    let fx = |v: f64| (v - x.0) / (x.1 - x.0);
    let mut out = Vec::new();
    for s in series {
        for w in s.points.windows(2) {
            for k in 0..8 {
                let t = f64::from(k) / 8.0;
                let (px, py) = (
                    w[0].0 + (w[1].0 - w[0].0) * t,
                    w[0].1 + (w[1].1 - w[0].1) * t,
                );
                out.push((fx(px), fy(py)));
            }
        }
        if let Some(p) = s.points.last() {
            out.push((fx(p.0), fy(p.1)));
        }
    }
    out
}

/// A line chart (with point markers and a legend) as an SVG document; points are drawn in x
/// order.
pub fn line_chart_svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<String, ChartError> {
    let sorted: Vec<Series> = series
        .iter()
        .map(|s| {
            let mut points = s.points.clone();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                name: s.name.clone(),
                points,
            }
        })
        .collect();
    line_chart_err_svg(title, x_label, y_label, &sorted, &[])
}

/// The empirical cumulative distribution of `values`: (x, fraction ≤ x), one point per
/// distinct value, thinned to about `max_points` (the last point kept).
pub fn cdf_points(mut values: Vec<f64>, max_points: usize) -> Vec<(f64, f64)> {
    values.sort_by(f64::total_cmp);
    let n = values.len().max(1) as f64;
    let mut pts: Vec<(f64, f64)> = Vec::new();
    for (i, x) in values.iter().enumerate() {
        let y = (i + 1) as f64 / n;
        match pts.last_mut() {
            Some(p) if p.0 == *x => p.1 = y,
            _ => pts.push((*x, y)),
        }
    }
    let step = (pts.len() / max_points.max(1)).max(1);
    let last = pts.last().copied();
    let mut out: Vec<(f64, f64)> = pts.into_iter().step_by(step).collect();
    if let Some(l) = last
        && out.last() != Some(&l)
    {
        out.push(l);
    }
    out
}

/// Like [`line_chart_svg`], with error bars: `errors[i][k]` is the (low, high) of point `k` of
/// series `i` (points must then be given in x order).
fn line_chart_err_on<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    errors: &[Vec<(f64, f64)>],
) -> Result<(), ChartError> {
    let err = |e: &dyn std::fmt::Display| ChartError(e.to_string());
    let pts = || series.iter().flat_map(|s| s.points.iter());
    if pts().next().is_none() {
        return Err(ChartError("no points to draw".into()));
    }
    let (mut x0, mut x1) = pts().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let hi = errors
        .iter()
        .flatten()
        .map(|e| e.1)
        .chain(pts().map(|p| p.1))
        .fold(f64::MIN, f64::max);
    let lo = errors
        .iter()
        .flatten()
        .map(|e| e.0)
        .chain(pts().map(|p| p.1))
        .fold(f64::MAX, f64::min)
        .min(0.0);
    if x1 <= x0 {
        (x0, x1) = (x0 - 0.5, x1 + 0.5);
    }
    let pad = (x1 - x0) * 0.05;
    let top = if hi > lo {
        hi + (hi - lo) * 0.1
    } else {
        lo + 1.0
    };
    // Metric-versus-parameter charts (those with error bars) whose values spread over two
    // orders of magnitude or more (FCFS beside backfilling, say) are drawn on a log scale, where
    // every line stays readable. Time series and distributions stay linear.
    let positive_min = errors
        .iter()
        .flatten()
        .map(|e| e.0)
        .chain(pts().map(|p| p.1))
        .fold(f64::MAX, f64::min);
    let log = !errors.is_empty() && positive_min > 0.0 && hi / positive_min >= 100.0;
    // The legend goes where it hides the least data; if every corner holds some, the y axis
    // grows upwards by the legend's height, which stays empty for it.
    let (x_range, (y0, y1)) = (
        (x0 - pad, x1 + pad),
        if log {
            (positive_min / 1.5, hi * 1.5)
        } else {
            (lo, top)
        },
    );
    let boxed = legend_box(series.iter().map(|s| s.name.as_str()));
    let (mut pos, covered) = legend_corner(&plot_fractions(series, x_range, (y0, y1), log), boxed);
    let mut y1 = y1;
    if covered > 0 {
        pos = SeriesLabelPosition::UpperRight;
        y1 = if log {
            y0 * (y1 / y0).powf(1.0 / (1.0 - boxed.1))
        } else {
            y0 + (y1 - y0) / (1.0 - boxed.1)
        };
    }
    let y_desc = if log {
        format!("{y_label} (log scale)")
    } else {
        y_label.to_string()
    };
    macro_rules! draw {
        ($chart:ident) => {{
            $chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_desc.as_str())
                .axis_desc_style(("sans-serif", 15))
                .draw()
                .map_err(|e| err(&e))?;
            for (i, s) in series.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                $chart
                    .draw_series(LineSeries::new(s.points.clone(), color.stroke_width(2)))
                    .map_err(|e| err(&e))?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                // An error bar marks its point itself.
                if s.points.len() <= 60 && errors.get(i).is_none() {
                    $chart
                        .draw_series(s.points.iter().map(|q| Circle::new(*q, 4, color.filled())))
                        .map_err(|e| err(&e))?;
                }
                if let Some(e) = errors.get(i) {
                    $chart
                        .draw_series(s.points.iter().zip(e).map(|(p, (l, h))| {
                            ErrorBar::new_vertical(p.0, *l, p.1, *h, color.stroke_width(1), 8)
                        }))
                        .map_err(|e| err(&e))?;
                }
            }
            legend(&mut $chart, pos.clone())?;
        }};
    }
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let builder = || {
        let mut b = ChartBuilder::on(&root);
        b.caption(title, ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64);
        b
    };
    if log {
        let mut chart = builder()
            .build_cartesian_2d(x_range.0..x_range.1, (y0..y1).log_scale())
            .map_err(|e| err(&e))?;
        draw!(chart);
    } else {
        let mut chart = builder()
            .build_cartesian_2d(x_range.0..x_range.1, y0..y1)
            .map_err(|e| err(&e))?;
        draw!(chart);
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// `line_chart_err_on` as an image in `format`.
pub fn line_chart_err(
    format: Format,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    errors: &[Vec<(f64, f64)>],
) -> Result<Vec<u8>, ChartError> {
    render!(format, (720, 440), |root| line_chart_err_on(
        root, title, x_label, y_label, series, errors
    ))
}

/// [`line_chart_err`] as SVG text.
pub fn line_chart_err_svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    errors: &[Vec<(f64, f64)>],
) -> Result<String, ChartError> {
    svg_text(line_chart_err(
        Format::Svg,
        title,
        x_label,
        y_label,
        series,
        errors,
    )?)
}

/// A grouped bar chart: one group per category, one bar per series.
fn bar_chart_on<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<(), ChartError> {
    let err = |e: &dyn std::fmt::Display| ChartError(e.to_string());
    if categories.is_empty() || series.is_empty() {
        return Err(ChartError("no bars to draw".into()));
    }
    let values = || series.iter().flat_map(|s| s.1.iter().copied());
    let max = values().fold(0.0f64, f64::max);
    let min_positive = values().filter(|v| *v > 0.0).fold(f64::MAX, f64::min);
    // Bars spread over two orders of magnitude or more (FCFS beside backfilling) go on a log
    // scale, where the small ones stay visible; the top band is left empty for the legend.
    let log = max > 0.0 && min_positive < f64::MAX && max / min_positive >= 100.0;
    let (_, legend_h) = legend_box(series.iter().map(|s| s.0.as_str()));
    let room = 1.0 / (1.0 - legend_h - 0.04);
    let (floor, top) = if log {
        let floor = min_positive / 2.0;
        (floor, floor * (max / floor).powf(room))
    } else if max > 0.0 {
        (0.0, max * room)
    } else {
        (0.0, 1.0)
    };
    let n = categories.len();
    let k = series.len() as f64;
    {
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let builder = || {
            let mut b = ChartBuilder::on(&root);
            b.caption(title, ("sans-serif", 20))
                .margin(14)
                .x_label_area_size(54)
                .y_label_area_size(64);
            b
        };
        let y_desc = if log {
            format!("{y_label} (log scale)")
        } else {
            y_label.to_string()
        };
        macro_rules! bars {
            ($chart:ident) => {{
                $chart
                    .configure_mesh()
                    .disable_x_mesh()
                    .x_labels(0)
                    .x_desc(x_label)
                    .y_desc(y_desc.as_str())
                    .axis_desc_style(("sans-serif", 15))
                    .draw()
                    .map_err(|e| err(&e))?;
                let width = 0.8 / k;
                for (si, (name, vals)) in series.iter().enumerate() {
                    let color = PALETTE[si % PALETTE.len()];
                    $chart
                        .draw_series(vals.iter().enumerate().map(|(ci, v)| {
                            let x0 = ci as f64 + 0.1 + si as f64 * width;
                            Rectangle::new(
                                [(x0, floor), (x0 + width * 0.95, v.max(floor))],
                                color.filled(),
                            )
                        }))
                        .map_err(|e| err(&e))?
                        .label(name.as_str())
                        .legend(move |(x, y)| {
                            Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
                        });
                }
                legend(&mut $chart, SeriesLabelPosition::UpperRight)?;
            }};
        }
        // Where each category's name goes: under its group of bars.
        let at: Vec<(i32, i32)> = if log {
            let mut chart = builder()
                .build_cartesian_2d(0f64..n as f64, (floor..top).log_scale())
                .map_err(|e| err(&e))?;
            let at = (0..n)
                .map(|i| chart.backend_coord(&(i as f64 + 0.5, floor)))
                .collect();
            bars!(chart);
            at
        } else {
            let mut chart = builder()
                .build_cartesian_2d(0f64..n as f64, floor..top)
                .map_err(|e| err(&e))?;
            let at = (0..n)
                .map(|i| chart.backend_coord(&(i as f64 + 0.5, floor)))
                .collect();
            bars!(chart);
            at
        };
        // Category names under their groups, drawn on the whole picture (below the plot).
        let style = ("sans-serif", 12).into_font().color(&BLACK).pos(
            plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Top,
            ),
        );
        for (c, (px, py)) in categories.iter().zip(at) {
            root.draw(&Text::new(c.clone(), (px, py + 6), style.clone()))
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(())
}

/// `bar_chart_on` as an image in `format`.
pub fn bar_chart(
    format: Format,
    title: &str,
    x_label: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<Vec<u8>, ChartError> {
    render!(format, (720, 440), |root| bar_chart_on(
        root, title, x_label, y_label, categories, series
    ))
}

/// A Gantt chart: processors on the y axis, time (hours from the window's start) on the x
/// axis, one box per job run on contiguous processors, coloured by user or by whether the job
/// was backfilled.
fn gantt_chart_on<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    procs: u32,
    window_s: f64,
    boxes: &[data::GanttBox],
    by_user: bool,
) -> Result<(), ChartError> {
    let err = |e: &dyn std::fmt::Display| ChartError(e.to_string());
    {
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let hours = (window_s / 3600.0).max(1e-3);
        // With a legend, an empty band above the top processor holds it.
        let rows = f64::from(procs.max(1));
        let top = if by_user {
            rows
        } else {
            let (_, h) =
                legend_box(["backfilled (started before a job ahead of it)"; 2].into_iter());
            rows / (1.0 - h - 0.04)
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..hours, 0f64..top)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("time from the window's start (h)")
            .y_desc("processor")
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(|e| err(&e))?;
        let color = |b: &data::GanttBox| {
            if by_user {
                PALETTE[b.user as usize % PALETTE.len()]
            } else if b.backfilled {
                PALETTE[1]
            } else {
                PALETTE[0]
            }
        };
        chart
            .draw_series(boxes.iter().map(|b| {
                Rectangle::new(
                    [
                        (b.start / 3600.0, f64::from(b.lo)),
                        (b.end / 3600.0, f64::from(b.hi)),
                    ],
                    color(b).mix(0.75).filled(),
                )
            }))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(boxes.iter().map(|b| {
                Rectangle::new(
                    [
                        (b.start / 3600.0, f64::from(b.lo)),
                        (b.end / 3600.0, f64::from(b.hi)),
                    ],
                    WHITE.stroke_width(1),
                )
            }))
            .map_err(|e| err(&e))?;
        if !by_user {
            for (i, label) in [
                (0usize, "in queue order"),
                (1, "backfilled (started before a job ahead of it)"),
            ] {
                let c = PALETTE[i];
                chart
                    .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
                    .map_err(|e| err(&e))?
                    .label(label)
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled())
                    });
            }
            legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(())
}

/// `gantt_chart_on` as an image in `format`.
pub fn gantt_chart(
    format: Format,
    title: &str,
    procs: u32,
    window_s: f64,
    boxes: &[data::GanttBox],
    by_user: bool,
) -> Result<Vec<u8>, ChartError> {
    render!(format, (900, 480), |root| gantt_chart_on(
        root, title, procs, window_s, boxes, by_user
    ))
}

/// Cumulative distributions for charts: (CPUs by log2, run time by log10 seconds).
pub fn cdf_series(w: &crate::trace::Workload) -> (Series, Series) {
    let valid = || w.jobs.iter().filter(|j| j.runtime.0 >= 0 && j.procs > 0);
    let cdf = |v: Vec<f64>, name: &str| Series {
        name: name.to_string(),
        points: cdf_points(v, 400),
    };
    (
        cdf(valid().map(|j| (j.procs as f64).log2()).collect(), "CPUs"),
        cdf(
            valid()
                .map(|j| (j.runtime.0.max(1) as f64 / 1000.0).max(1.0).log10())
                .collect(),
            "run time",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_well_formed_svg_with_labels() {
        let s = [
            Series {
                name: "easy".into(),
                points: vec![(1.0, 3.0), (0.0, 5.0), (0.5, 4.0)],
            },
            Series {
                name: "fcfs".into(),
                points: vec![(0.0, 9.0), (1.0, 6.0)],
            },
        ];
        let svg = line_chart_svg("Bounded slowdown", "elastic fraction", "mean bsld", &s).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for text in [
            "Bounded slowdown",
            "elastic fraction",
            "mean bsld",
            "easy",
            "fcfs",
        ] {
            assert!(svg.contains(&format!("\n{text}\n</text>")), "{text}");
        }
        assert_eq!(svg.matches("<circle").count(), 5);
        assert_eq!(
            svg,
            line_chart_svg("Bounded slowdown", "elastic fraction", "mean bsld", &s).unwrap()
        );
        assert!(line_chart_svg("t", "x", "y", &[]).is_err());
    }

    #[test]
    fn legends_go_where_they_hide_the_least_data() {
        let w = legend_box(["fcfs", "easy"].into_iter());
        assert!(w.0 > 0.05 && w.0 < 0.3 && w.1 > 0.1 && w.1 < 0.2, "{w:?}");
        // A cumulative distribution rises from the lower left to the upper right: the upper
        // left is free.
        let cdf = [Series {
            name: "easy".into(),
            points: (0..=100)
                .map(|i| (f64::from(i), (f64::from(i) / 10.0).min(1.0)))
                .collect(),
        }];
        let f = plot_fractions(&cdf, (0.0, 100.0), (0.0, 1.0), false);
        let (pos, n) = legend_corner(&f, (0.2, 0.2));
        assert!(
            matches!(
                pos,
                SeriesLabelPosition::UpperLeft | SeriesLabelPosition::LowerRight
            ),
            "{pos:?}"
        );
        assert_eq!(n, 0);
        // A line along the top: a lower corner.
        let flat = [Series {
            name: "x".into(),
            points: vec![(0.0, 0.95), (1.0, 0.95)],
        }];
        let (pos, n) = legend_corner(
            &plot_fractions(&flat, (0.0, 1.0), (0.0, 1.0), false),
            (0.2, 0.2),
        );
        assert!(matches!(pos, SeriesLabelPosition::LowerRight), "{pos:?}");
        assert_eq!(n, 0);
        // Lines through every corner: none is free, so the chart makes room above.
        let cross = [
            Series {
                name: "a".into(),
                points: vec![(0.0, 0.0), (1.0, 1.0)],
            },
            Series {
                name: "b".into(),
                points: vec![(0.0, 1.0), (1.0, 0.0)],
            },
        ];
        let (_, n) = legend_corner(
            &plot_fractions(&cross, (0.0, 1.0), (0.0, 1.0), false),
            (0.2, 0.2),
        );
        assert!(n > 0);
        let svg = line_chart_svg("t", "x", "y", &cross).unwrap();
        assert!(svg.contains("<svg"));
    }

    #[test]
    fn bars_spread_over_orders_of_magnitude_get_a_log_axis() {
        let cats = vec!["mean wait".to_string()];
        let wide = vec![
            ("fcfs".to_string(), vec![50_000.0]),
            ("easy".to_string(), vec![120.0]),
        ];
        let svg = svg_text(bar_chart(Format::Svg, "t", "", "s", &cats, &wide).unwrap()).unwrap();
        assert!(svg.contains("s (log scale)"), "log axis");
        let close = vec![
            ("fcfs".to_string(), vec![500.0]),
            ("easy".to_string(), vec![120.0]),
        ];
        let svg = svg_text(bar_chart(Format::Svg, "t", "", "s", &cats, &close).unwrap()).unwrap();
        assert!(!svg.contains("log scale"));
    }

    #[test]
    fn wide_spreads_with_error_bars_get_a_log_axis() {
        let s = [
            Series {
                name: "fcfs".into(),
                points: vec![(0.5, 2000.0), (0.9, 30000.0)],
            },
            Series {
                name: "easy".into(),
                points: vec![(0.5, 20.0), (0.9, 100.0)],
            },
        ];
        let e = vec![
            vec![(1500.0, 2500.0), (25000.0, 35000.0)],
            vec![(15.0, 25.0), (90.0, 110.0)],
        ];
        let log = line_chart_err_svg("t", "load", "bsld", &s, &e).unwrap();
        assert!(log.contains("bsld (log scale)"));
        let linear = line_chart_err_svg("t", "load", "bsld", &s, &[]).unwrap();
        assert!(!linear.contains("log scale"));
        let narrow = [Series {
            name: "easy".into(),
            points: vec![(0.5, 20.0), (0.9, 100.0)],
        }];
        let e = vec![vec![(15.0, 25.0), (90.0, 110.0)]];
        assert!(
            !line_chart_err_svg("t", "load", "bsld", &narrow, &e)
                .unwrap()
                .contains("log scale")
        );
    }
}
