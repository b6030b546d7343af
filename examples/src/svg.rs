//! A small SVG line chart writer for the benchmark plots: panels stacked vertically, each with
//! its own y axis, sharing the x axis (seconds into the run).

use std::fmt::Write as _;

/// One line of a panel.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// CSS colour.
    pub colour: &'static str,
    /// (x, y) points in x order.
    pub points: Vec<(f64, f64)>,
}

/// One panel: a title, a y-axis unit and its lines.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Shown above the panel.
    pub title: String,
    /// Shown next to the y axis.
    pub unit: String,
    /// The lines.
    pub series: Vec<Series>,
}

const W: f64 = 900.0;
const PANEL_H: f64 = 260.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 40.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" upper bound for an axis holding `max`.
fn nice(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * p)
}

/// The SVG document of `panels`, over x from 0 to the largest x of any point.
pub fn chart(title: &str, panels: &[Panel]) -> String {
    let x_max = nice(
        panels
            .iter()
            .flat_map(|p| p.series.iter().flat_map(|s| s.points.iter().map(|q| q.0)))
            .fold(0.0, f64::max),
    );
    let h = TOP + panels.len() as f64 * (PANEL_H + BOTTOM);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{W}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" font-size="16" text-anchor="middle">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    let plot_w = W - LEFT - RIGHT;
    for (i, panel) in panels.iter().enumerate() {
        let top = TOP + i as f64 * (PANEL_H + BOTTOM) + 20.0;
        let ph = PANEL_H - 20.0;
        let y_max = nice(
            panel
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|q| q.1))
                .fold(0.0, f64::max),
        );
        let sx = |x: f64| LEFT + x / x_max * plot_w;
        let sy = |y: f64| top + ph - (y / y_max).min(1.0) * ph;
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{}" font-size="14">{}</text>"#,
            top - 6.0,
            esc(&panel.title)
        );
        for t in 0..=5 {
            let y = y_max * t as f64 / 5.0;
            let _ = writeln!(
                out,
                "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y0:.1}\" y2=\"{y0:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{y:.0}</text>",
                W - RIGHT,
                LEFT - 6.0,
                sy(y) + 4.0,
                y0 = sy(y)
            );
            let x = x_max * t as f64 / 5.0;
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{x:.0} s</text>"#,
                sx(x),
                top + ph + 16.0
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">{}</text>"#,
            top + ph / 2.0,
            top + ph / 2.0,
            esc(&panel.unit)
        );
        let _ = writeln!(
            out,
            r#"<rect x="{LEFT}" y="{top:.1}" width="{plot_w:.1}" height="{ph:.1}" fill="none" stroke="black"/>"#
        );
        for (j, s) in panel.series.iter().enumerate() {
            let pts: Vec<String> = s
                .points
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                .collect();
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
                s.colour,
                pts.join(" ")
            );
            let lx = LEFT + 10.0 + j as f64 * 180.0;
            let _ = writeln!(
                out,
                r#"<line x1="{lx:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                lx + 20.0,
                top + 14.0,
                top + 14.0,
                s.colour,
                lx + 25.0,
                top + 18.0,
                esc(&s.label)
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_a_line_per_series_and_escapes_text() {
        let svg = chart(
            "a <run>",
            &[Panel {
                title: "latency".into(),
                unit: "ms".into(),
                series: vec![Series {
                    label: "p99".into(),
                    colour: "red",
                    points: vec![(0.0, 10.0), (1.0, 30.0), (2.0, 20.0)],
                }],
            }],
        );
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("a &lt;run&gt;"));
        assert_eq!(nice(73.0), 100.0);
        assert_eq!(nice(0.0), 1.0);
    }
}
