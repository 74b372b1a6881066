//! Stacked bar charts as plain SVG (no fonts or system libraries needed), for `trainer bench paper
//! --plots`.

use std::collections::BTreeSet;
use std::fmt::Write;

/// One bar: a label and its stacked parts (category, value).
#[derive(Debug, Clone)]
pub struct Bar {
    /// Label under the bar.
    pub label: String,
    /// Parts, bottom to top in category order.
    pub parts: Vec<(String, f64)>,
}

const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
    "#bab0ac",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A "nice" axis maximum at or above `v` (1, 2 or 5 times a power of ten).
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|&m| m >= v)
        .unwrap_or(10.0 * p)
}

/// A stacked bar chart: one bar per entry of `bars`, parts coloured by category with a legend.
pub fn stacked_bars(title: &str, unit: &str, bars: &[Bar]) -> String {
    let cats: Vec<&str> = bars
        .iter()
        .flat_map(|b| b.parts.iter().map(|(c, _)| c.as_str()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let color = |c: &str| PALETTE[cats.iter().position(|&x| x == c).unwrap_or(0) % PALETTE.len()];
    let (left, top, plot_h, bar_w, gap, legend_w) = (70.0, 50.0, 320.0, 70.0, 40.0, 170.0);
    let plot_w = bars.len() as f64 * (bar_w + gap) + gap;
    let (width, height) = (left + plot_w + legend_w, top + plot_h + 90.0);
    let ymax = nice_max(
        bars.iter()
            .map(|b| b.parts.iter().map(|(_, v)| v.max(0.0)).sum::<f64>())
            .fold(0.0, f64::max),
    );
    let y = |v: f64| top + plot_h - v / ymax * plot_h;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" font-size="14" text-anchor="middle">{}</text>"#,
        width / 2.0,
        escape(title)
    );
    for i in 0..=5 {
        let v = ymax * i as f64 / 5.0;
        let (x2, yv, tx) = (left + plot_w, y(v), left - 6.0);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{x2}" y1="{yv}" y2="{yv}" stroke="#ddd"/><text x="{tx}" y="{}" text-anchor="end">{v:.3}</text>"##,
            yv + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">{}</text>"#,
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        escape(unit)
    );
    for (i, b) in bars.iter().enumerate() {
        let x = left + gap + i as f64 * (bar_w + gap);
        let mut base = 0.0;
        for (c, v) in &b.parts {
            let v = v.max(0.0);
            let _ = writeln!(
                s,
                r#"<rect x="{x}" y="{}" width="{bar_w}" height="{}" fill="{}"><title>{}: {} {v:.4} {}</title></rect>"#,
                y(base + v),
                y(base) - y(base + v),
                color(c),
                escape(&b.label),
                escape(c),
                escape(unit)
            );
            base += v;
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{base:.3}</text>"#,
            x + bar_w / 2.0,
            y(base) - 4.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end" transform="rotate(-30 {} {})">{}</text>"#,
            x + bar_w / 2.0,
            top + plot_h + 16.0,
            x + bar_w / 2.0,
            top + plot_h + 16.0,
            escape(&b.label)
        );
    }
    let (bottom, right) = (top + plot_h, left + plot_w);
    let _ = writeln!(
        s,
        r#"<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" stroke="black"/><line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="black"/>"#
    );
    for (i, c) in cats.iter().enumerate() {
        let (lx, ly) = (left + plot_w + 20.0, top + 18.0 * i as f64);
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{ly}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            color(c),
            lx + 18.0,
            ly + 10.0,
            escape(c)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maximum_is_nice() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.2), 5.0);
        assert_eq!(nice_max(120.0), 200.0);
    }

    #[test]
    fn chart_has_one_rect_per_part_and_a_legend() {
        let bars = [Bar {
            label: "a<b".into(),
            parts: vec![("mac".into(), 1.0), ("dram".into(), 2.0)],
        }];
        let svg = stacked_bars("t", "uJ", &bars);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a&lt;b"));
        assert_eq!(svg.matches("<title>").count(), 2);
    }
}
