//! Charts for reports and docs, rendered to SVG strings with plotters (no IO here: callers
//! write the files). SVG text is drawn by the viewer, so nothing depends on the fonts of the
//! machine that renders a chart.

use plotters::prelude::*;

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

/// A line chart (with point markers and a legend) as an SVG document.
pub fn line_chart_svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<String, ChartError> {
    let err = |e: &dyn std::fmt::Display| ChartError(e.to_string());
    let pts = || series.iter().flat_map(|s| s.points.iter());
    if pts().next().is_none() {
        return Err(ChartError("no points to draw".into()));
    }
    let (mut x0, mut x1) = pts().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let y1 = pts().fold(f64::MIN, |b, p| b.max(p.1));
    let y0 = pts().fold(f64::MAX, |a, p| a.min(p.1)).min(0.0);
    if x1 <= x0 {
        (x0, x1) = (x0 - 0.5, x1 + 0.5);
    }
    let pad = (x1 - x0) * 0.05;
    let top = if y1 > y0 {
        y1 + (y1 - y0) * 0.1
    } else {
        y0 + 1.0
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d((x0 - pad)..(x1 + pad), y0..top)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(|e| err(&e))?;
        for (i, s) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let mut p = s.points.clone();
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(p.clone(), color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(p.into_iter().map(|q| Circle::new(q, 4, color.filled())))
                .map_err(|e| err(&e))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
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
}
