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

/// Twenty distinct colours (Tableau 20, dark and light in turn), so a chart of up to twenty
/// categories never gives two of them the same colour.
const PALETTE: [&str; 20] = [
    "#4e79a7", "#a0cbe8", "#f28e2b", "#ffbe7d", "#59a14f", "#8cd17d", "#b6992d", "#f1ce63", "#499894",
    "#86bcb6", "#e15759", "#ff9d9a", "#79706e", "#bab0ac", "#d37295", "#fabfd2", "#b07aa1", "#d4a6c8",
    "#9d7660", "#d7b5a6",
];

/// Approximate width of one character of the 12-pixel sans-serif labels.
const CHAR_W: f64 = 7.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A "nice" axis maximum at or above `v`: 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten,
/// so that the tallest bar fills at least two thirds of the axis and its five ticks are round.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|&m| m >= v * (1.0 - 1e-12))
        .unwrap_or(10.0 * p)
}

/// The fewest digits after the point (at most 6) that write `v` exactly enough for a tick label.
fn tick_decimals(v: f64) -> usize {
    (0..6)
        .find(|&d| {
            let scaled = v * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.abs().max(1.0)
        })
        .unwrap_or(6)
}

/// `v` with `decimals` digits after the point and thin spaces between groups of three digits
/// ("82 428", "0.25").
fn number(v: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, v.abs());
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, d) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push('\u{2009}');
        }
        grouped.push(d);
    }
    let sign = if v < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "-"
    } else {
        ""
    };
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// Digits after the point that show a value of about `v` to four significant digits (none from
/// 1000 up).
fn decimals_for(v: f64) -> usize {
    if v <= 0.0 || !v.is_finite() {
        return 0;
    }
    (3 - v.log10().floor() as i32).clamp(0, 6) as usize
}

/// The categories of `bars`, sorted: the colour keys of a chart of them alone.
pub fn categories(bars: &[Bar]) -> Vec<String> {
    bars.iter()
        .flat_map(|b| b.parts.iter().map(|(c, _)| c.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A stacked bar chart: one bar per entry of `bars`, parts coloured by category with a legend of
/// the categories present. A category's colour is that of its place in `colour_keys` (charts
/// that share the keys colour a category alike); categories not in it take the colours after.
pub fn stacked_bars(title: &str, unit: &str, bars: &[Bar], colour_keys: &[String]) -> String {
    let cats = categories(bars);
    let extra: Vec<&String> = cats.iter().filter(|c| !colour_keys.contains(c)).collect();
    let color = |c: &str| {
        let i = colour_keys
            .iter()
            .position(|k| k == c)
            .unwrap_or_else(|| colour_keys.len() + extra.iter().position(|k| *k == c).unwrap_or(0));
        PALETTE[i % PALETTE.len()]
    };
    let ymax = nice_max(
        bars.iter()
            .map(|b| b.parts.iter().map(|(_, v)| v.max(0.0)).sum::<f64>())
            .fold(0.0, f64::max),
    );
    let step = ymax / 5.0;
    let decimals = tick_decimals(step);
    let ticks: Vec<(f64, String)> = (0..=5)
        .map(|i| {
            let v = step * i as f64;
            (v, number(v, decimals))
        })
        .collect();
    let widest =
        |texts: Vec<&str>| texts.iter().map(|t| t.chars().count()).max().unwrap_or(0) as f64 * CHAR_W;
    // The rotated unit label, then the tick labels, then the axis.
    let left = 30.0 + widest(ticks.iter().map(|(_, t)| t.as_str()).collect()) + 8.0;
    let legend_w = 20.0 + 18.0 + widest(cats.iter().map(String::as_str).collect()) + 12.0;
    let (top, plot_h, bar_w, gap) = (50.0, 320.0, 70.0, 40.0);
    let plot_w = bars.len() as f64 * (bar_w + gap) + gap;
    // Wide enough for the title (14-pixel characters) too.
    let title_w = title.chars().count() as f64 * CHAR_W * 14.0 / 12.0 + 40.0;
    let (width, height) = ((left + plot_w + legend_w).max(title_w), top + plot_h + 90.0);
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
    for (v, text) in &ticks {
        let (x2, yv, tx) = (left + plot_w, y(*v), left - 6.0);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{x2}" y1="{yv}" y2="{yv}" stroke="#ddd"/><text x="{tx}" y="{}" text-anchor="end">{text}</text>"##,
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
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            x + bar_w / 2.0,
            y(base) - 4.0,
            number(base, decimals_for(base))
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
        assert_eq!(nice_max(3.2), 4.0);
        assert_eq!(nice_max(103_377.0), 150_000.0);
        assert_eq!(nice_max(0.021), 0.025);
        assert_eq!(nice_max(80.0), 80.0);
        assert_eq!(nice_max(9.0), 10.0);
        assert_eq!(tick_decimals(30_000.0), 0);
        assert_eq!(tick_decimals(0.005), 3);
        assert_eq!(tick_decimals(1.2), 1);
    }

    #[test]
    fn numbers_are_grouped_and_rounded() {
        assert_eq!(number(82427.958, 0), "82\u{2009}428");
        assert_eq!(number(100000.0, 0), "100\u{2009}000");
        assert_eq!(number(999.0, 0), "999");
        assert_eq!(number(0.25, 2), "0.25");
        assert_eq!(number(-1234.5, 1), "-1\u{2009}234.5");
        assert_eq!(number(-0.0001, 2), "0.00");
        assert_eq!(decimals_for(82427.958), 0);
        assert_eq!(decimals_for(12.5), 2);
        assert_eq!(decimals_for(0.0), 0);
    }

    /// The `x` of every `<text … text-anchor="end">` (the tick labels) and the chart's width.
    fn tick_label_ends(svg: &str) -> Vec<(f64, String)> {
        svg.split("<text x=\"")
            .skip(1)
            .filter(|t| t.contains("text-anchor=\"end\">"))
            .map(|t| {
                let x = t[..t.find('"').unwrap()].parse().unwrap();
                let label = t.split('>').nth(1).unwrap().trim_end_matches("</text");
                (x, label.to_string())
            })
            .collect()
    }

    #[test]
    fn tick_labels_fit_between_the_unit_label_and_the_axis() {
        let bars = [Bar {
            label: "trainer".into(),
            parts: vec![("dram".into(), 77_000.0), ("mac".into(), 5_427.958)],
        }];
        let svg = stacked_bars("t", "uJ per step", &bars, &[]);
        let ticks = tick_label_ends(&svg);
        assert_eq!(ticks.len(), 6);
        assert_eq!(ticks[5].1, "100\u{2009}000");
        assert!(
            svg.contains(">82\u{2009}428</text>"),
            "bar total, four significant digits"
        );
        for (x, label) in ticks {
            // Right-aligned at x: the label's left end must clear the rotated unit label (x ≈ 16).
            assert!(
                x - CHAR_W * label.chars().count() as f64 >= 24.0,
                "{label} at {x}"
            );
        }
    }

    #[test]
    fn a_long_title_widens_the_chart() {
        let bars = [Bar {
            label: "a".into(),
            parts: vec![("mac".into(), 1.0)],
        }];
        let title = "t".repeat(200);
        let svg = stacked_bars(&title, "uJ", &bars, &[]);
        let width: f64 = svg
            .split("width=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(width >= 200.0 * CHAR_W * 14.0 / 12.0, "{width}");
    }

    #[test]
    fn every_category_has_its_own_colour() {
        let cats: Vec<String> = (0..14).map(|i| format!("c{i:02}")).collect();
        let bars = [Bar {
            label: "a".into(),
            parts: cats.iter().map(|c| (c.clone(), 1.0)).collect(),
        }];
        let svg = stacked_bars("t", "uJ", &bars, &[]);
        let fills: BTreeSet<&str> = svg
            .split("<rect x=\"")
            .skip(1)
            .filter(|r| r.contains("<title>"))
            .map(|r| r.split("fill=\"").nth(1).unwrap().split('"').next().unwrap())
            .collect();
        assert_eq!(fills.len(), cats.len());
    }

    #[test]
    fn charts_sharing_colour_keys_colour_a_category_alike() {
        let fill_of = |svg: &str, cat: &str| {
            let legend = svg.find(&format!(">{cat}</text>")).unwrap();
            let fill = svg[..legend].rfind("fill=\"").unwrap() + 6;
            svg[fill..fill + 7].to_string()
        };
        let all = [Bar {
            label: "a".into(),
            parts: vec![("dram".into(), 9.0), ("leak".into(), 1.0), ("mac".into(), 1.0)],
        }];
        let keys = categories(&all);
        let on_chip = [Bar {
            label: "a".into(),
            parts: vec![("leak".into(), 1.0), ("mac".into(), 1.0), ("zz".into(), 1.0)],
        }];
        let (a, b) = (
            stacked_bars("t", "uJ", &all, &keys),
            stacked_bars("t", "uJ", &on_chip, &keys),
        );
        assert_eq!(fill_of(&a, "leak"), fill_of(&b, "leak"));
        assert_eq!(fill_of(&a, "mac"), fill_of(&b, "mac"));
        assert!(
            !b.contains(">dram</text>"),
            "the legend lists only the categories present"
        );
        assert_ne!(fill_of(&b, "zz"), fill_of(&b, "leak"));
        assert_ne!(fill_of(&b, "zz"), fill_of(&a, "dram"));
    }

    #[test]
    fn chart_has_one_rect_per_part_and_a_legend() {
        let bars = [Bar {
            label: "a<b".into(),
            parts: vec![("mac".into(), 1.0), ("dram".into(), 2.0)],
        }];
        let svg = stacked_bars("t", "uJ", &bars, &[]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a&lt;b"));
        assert_eq!(svg.matches("<title>").count(), 2);
    }
}
