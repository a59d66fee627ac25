//! The report pages: `index.html` (self-contained: inline SVG and CSS, no network) and
//! `summary.md` (the same headline table, for issues and papers). Pure string building.

use crate::metrics::Summary;
use std::fmt::Write as _;

/// Which way a metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

/// One row of the headline table: a metric across the runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub metric: &'static str,
    pub better: Better,
    pub values: Vec<f64>,
    /// Decimals shown.
    pub decimals: usize,
}

impl Row {
    /// Indices of the best values (ties all marked).
    /// Values compare as shown (rounded to `decimals`): equal-looking values are all marked.
    pub fn best(&self) -> Vec<usize> {
        let num: Vec<f64> = self
            .values
            .iter()
            .map(|v| {
                format!("{v:.prec$}", prec = self.decimals)
                    .parse()
                    .unwrap_or(f64::NAN)
            })
            .collect();
        let pick = match self.better {
            Better::Lower => num
                .iter()
                .copied()
                .filter(|v| !v.is_nan())
                .fold(f64::INFINITY, f64::min),
            Better::Higher => num
                .iter()
                .copied()
                .filter(|v| !v.is_nan())
                .fold(f64::NEG_INFINITY, f64::max),
        };
        (0..num.len()).filter(|&i| num[i] == pick).collect()
    }
}

/// The headline metrics of each run's summary.
pub fn headline(runs: &[&Summary]) -> Vec<Row> {
    let col = |f: fn(&Summary) -> f64| runs.iter().map(|s| f(s)).collect::<Vec<f64>>();
    let mut rows = vec![
        Row {
            metric: "mean wait (s)",
            better: Better::Lower,
            values: col(|s| s.wait_s.mean),
            decimals: 0,
        },
        Row {
            metric: "median wait (s)",
            better: Better::Lower,
            values: col(|s| s.wait_s.median),
            decimals: 0,
        },
        Row {
            metric: "p95 wait (s)",
            better: Better::Lower,
            values: col(|s| s.wait_s.p95),
            decimals: 0,
        },
        Row {
            metric: "mean bounded slowdown",
            better: Better::Lower,
            values: col(|s| s.mean_bounded_slowdown),
            decimals: 2,
        },
        Row {
            metric: "mean turnaround (s)",
            better: Better::Lower,
            values: col(|s| s.turnaround_s.mean),
            decimals: 0,
        },
        Row {
            metric: "utilization (%)",
            better: Better::Higher,
            values: col(|s| s.utilization * 100.0),
            decimals: 2,
        },
        Row {
            metric: "makespan (days)",
            better: Better::Lower,
            values: col(|s| s.makespan_s / 86_400.0),
            decimals: 2,
        },
        Row {
            metric: "Jain index of users' bsld",
            better: Better::Higher,
            values: col(|s| s.fairness.jain_bounded_slowdown),
            decimals: 3,
        },
    ];
    if runs.iter().any(|s| s.elastic.is_some()) {
        rows.push(Row {
            metric: "resizes per elastic job",
            better: Better::Lower,
            // Runs without elastic jobs show "–" and take no part in the marking.
            values: col(|s| {
                s.elastic
                    .as_ref()
                    .map_or(f64::NAN, |e| e.resizes_per_elastic_job)
            }),
            decimals: 2,
        });
    }
    rows
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt(v: f64, d: usize) -> String {
    if v.is_nan() {
        "–".to_string()
    } else {
        format!("{v:.d$}")
    }
}

/// `summary.md`: inputs, then the headline table with the best value of each row in bold.
pub fn summary_md(
    title: &str,
    inputs: &[(String, String)],
    names: &[String],
    rows: &[Row],
) -> String {
    let mut s = format!("# {title}\n\n");
    for (k, v) in inputs {
        let _ = writeln!(s, "- {k}: `{v}`");
    }
    s.push_str("\n| metric |");
    for n in names {
        let _ = write!(s, " `{}` |", n.replace('|', "\\|"));
    }
    s.push_str("\n|---|");
    for _ in names {
        s.push_str("---|");
    }
    s.push('\n');
    for r in rows {
        let best = r.best();
        let _ = write!(s, "| {} |", r.metric);
        for (i, v) in r.values.iter().enumerate() {
            if best.contains(&i) {
                let _ = write!(s, " **{}** |", fmt(*v, r.decimals));
            } else {
                let _ = write!(s, " {} |", fmt(*v, r.decimals));
            }
        }
        s.push('\n');
    }
    s.push_str("\nBest value of each row in bold (lower is better, except utilization and the Jain index).\n");
    s
}

/// A chart for the page: title, inline SVG, caption.
pub struct Figure {
    pub title: String,
    pub svg: String,
    pub caption: String,
}

/// `index.html`: self-contained (inline CSS and SVG).
pub fn index_html(
    title: &str,
    inputs: &[(String, String)],
    names: &[String],
    rows: &[Row],
    figures: &[Figure],
) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n<title>{}</title>\n<style>\n\
         body {{ font-family: sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }}\n\
         table {{ border-collapse: collapse; margin: 1em 0; }}\n\
         th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}\n\
         th:first-child, td:first-child {{ text-align: left; }}\n\
         td.best {{ font-weight: bold; background: #e6f4ea; }}\n\
         figure {{ margin: 2em 0; }} figcaption {{ color: #555; font-size: 0.9em; }}\n\
         code {{ background: #f4f4f4; padding: 0 3px; }}\n\
         </style>\n</head>\n<body>\n<h1>{}</h1>\n<h2>Inputs</h2>\n<ul>\n",
        esc(title),
        esc(title)
    );
    for (k, v) in inputs {
        let _ = writeln!(s, "<li>{}: <code>{}</code></li>", esc(k), esc(v));
    }
    s.push_str("</ul>\n<h2>Headline</h2>\n<table>\n<tr><th>metric</th>");
    for n in names {
        let _ = write!(s, "<th><code>{}</code></th>", esc(n));
    }
    s.push_str("</tr>\n");
    for r in rows {
        let best = r.best();
        let _ = write!(s, "<tr><td>{}</td>", esc(r.metric));
        for (i, v) in r.values.iter().enumerate() {
            let class = if best.contains(&i) {
                " class=\"best\""
            } else {
                ""
            };
            let _ = write!(s, "<td{class}>{}</td>", fmt(*v, r.decimals));
        }
        s.push_str("</tr>\n");
    }
    s.push_str(
        "</table>\n<p>Best value of each row highlighted (lower is better, except utilization \
         and the Jain index).</p>\n",
    );
    for f in figures {
        let _ = write!(
            s,
            "<figure>\n<h2>{}</h2>\n{}\n<figcaption>{}</figcaption>\n</figure>\n",
            esc(&f.title),
            f.svg,
            esc(&f.caption)
        );
    }
    s.push_str("</body>\n</html>\n");
    s
}
