//! `trainer bench compile --depth …`: compile time against network depth, on synthetic networks
//! that differ only in their number of conv–BN–ReLU blocks, and the power of depth it grows with.

use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::fmt::Write;
use std::path::Path;

/// Channels of every block of a synthetic chain.
const WIDTH: usize = 64;
/// Height and width of its inputs.
const SIDE: usize = 16;

/// A `.tg` network of `blocks` blocks (conv 3×3 of [`WIDTH`] channels, training-mode batch norm,
/// ReLU) on `SIDE`×`SIDE` RGB inputs, then global average pooling and a 10-way classifier.
pub fn chain_tg(blocks: usize) -> String {
    let mut s = format!(
        "# Synthetic depth benchmark: {blocks} conv-BN-ReLU blocks of {WIDTH} channels.\n\
         graph chain{blocks}(%x: f32[N, 3, {SIDE}, {SIDE}]) -> (%logits) {{\n"
    );
    let mut prev = ("x".to_string(), 3);
    for b in 0..blocks {
        let (x, cin) = &prev;
        let _ = writeln!(s, "  param %b{b}.w: f32[{WIDTH}, {cin}, 3, 3] init = he");
        let _ = writeln!(
            s,
            "  %b{b}.conv = conv(%{x}, %b{b}.w) {{stride = [1, 1], pad = [1, 1, 1, 1]}}"
        );
        for (p, init) in [
            ("gamma", "ones"),
            ("beta", "zeros"),
            ("mean", "zeros"),
            ("var", "ones"),
        ] {
            let _ = writeln!(s, "  param %b{b}.{p}: f32[{WIDTH}] init = {init}");
        }
        let _ = writeln!(
            s,
            "  %b{b}.bn, %b{b}.new_mean, %b{b}.new_var = batch_norm(%b{b}.conv, %b{b}.gamma, \
             %b{b}.beta, %b{b}.mean, %b{b}.var) {{epsilon = 0.00001, momentum = 0.9, training = true}}"
        );
        let _ = writeln!(s, "  %b{b}.out = relu(%b{b}.bn)");
        prev = (format!("b{b}.out"), WIDTH);
    }
    let _ = write!(
        s,
        "  %pool = global_average_pool(%{})\n  %flat = flatten(%pool)\n\
         \x20 param %fc.w: f32[10, {WIDTH}] init = he\n  param %fc.b: f32[10] init = zeros\n\
         \x20 %logits = gemm(%flat, %fc.w, %fc.b) {{trans_b = true}}\n}}\n",
        prev.0
    );
    s
}

/// Compile times of chains of several depths: one `bench compile` JSON row per depth, with its
/// `blocks` and `microseconds_per_block`.
pub struct Sweep {
    rows: Vec<Value>,
}

/// Writes a chain of each depth into a temporary directory and times its compilation with
/// `time` (which returns `bench compile`'s row for a model file).
pub fn sweep(depths: &[usize], time: impl Fn(&Path) -> Result<Value>) -> Result<Sweep> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory for the chains")?;
    let mut rows = Vec::new();
    for &blocks in depths {
        let path = dir.path().join(format!("chain{blocks}.tg"));
        std::fs::write(&path, chain_tg(blocks))
            .with_context(|| format!("cannot write {}", path.display()))?;
        let mut row = time(&path)?;
        row["model"] = json!(format!("chain of {blocks} blocks"));
        row["blocks"] = json!(blocks);
        row["microseconds_per_block"] =
            json!(row["seconds_median"].as_f64().map(|s| 1e6 * s / blocks as f64));
        rows.push(row);
    }
    Ok(Sweep { rows })
}

/// Least-squares slope of `ln y` against `ln x`: the power `k` of `y ∝ x^k` (1 is linear);
/// `None` with fewer than two distinct `x`.
fn log_log_slope(points: &[(f64, f64)]) -> Option<f64> {
    let logs: Vec<(f64, f64)> = points
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    let n = logs.len() as f64;
    let (mx, my) = logs
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let sxx: f64 = logs.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let sxy: f64 = logs.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    (logs.len() >= 2 && sxx > 1e-12).then(|| sxy / sxx)
}

impl Sweep {
    fn seconds(&self) -> Vec<(f64, f64)> {
        self.rows
            .iter()
            .filter_map(|r| Some((r["blocks"].as_f64()?, r["seconds_median"].as_f64()?)))
            .collect()
    }

    /// Power of depth that compile time grows with (least squares on logarithms; 1 = linear).
    pub fn growth(&self) -> Option<f64> {
        log_log_slope(&self.seconds())
    }

    /// The sweep as JSON: one row per depth and the growth power.
    pub fn json(&self) -> Value {
        json!({"width": WIDTH, "side": SIDE, "rows": self.rows, "growth_power": self.growth()})
    }

    /// Human-readable table of the sweep.
    pub fn table(&self) -> String {
        let mut s = format!(
            "compile time against depth: chains of conv 3x3 ({WIDTH} channels, {SIDE}x{SIDE}) + BN + ReLU blocks\n\
             {:>8} {:>9} {:>12} {:>10} {:>12}\n",
            "blocks", "tg ops", "instructions", "seconds", "us / block"
        );
        for r in &self.rows {
            let blocks = r["blocks"].as_u64().unwrap_or(0);
            match (r["seconds_median"].as_f64(), r["microseconds_per_block"].as_f64()) {
                (Some(secs), Some(per_block)) => {
                    let _ = writeln!(
                        s,
                        "{blocks:>8} {:>9} {:>12} {secs:>10.3} {per_block:>12.1}",
                        r["graph_ops"].as_u64().unwrap_or(0),
                        r["instructions"].as_u64().unwrap_or(0),
                    );
                }
                _ => {
                    let _ = writeln!(s, "{blocks:>8} does not compile: {}", r["error"]);
                }
            }
        }
        if let Some(k) = self.growth() {
            let _ = writeln!(s, "compile time grows as depth^{k:.2} (1.00 = linear)");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_parse_with_the_same_ops_per_block() {
        for blocks in [1, 3] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("c.tg");
            std::fs::write(&path, chain_tg(blocks)).unwrap();
            let opts = trainer_compiler::frontend::FrontendOptions {
                batch: Some(2),
                seed: 0,
            };
            let g = trainer_compiler::frontend::load(&path, &opts).unwrap();
            // Per block: five parameters, conv, batch_norm, relu; the head: the input, pooling,
            // flatten, two parameters, gemm and the output.
            assert_eq!(g.num_ops(), 8 * blocks + 8, "{blocks} blocks");
        }
    }

    #[test]
    fn slope_of_powers() {
        let pts =
            |k: f64| -> Vec<(f64, f64)> { [8.0, 16.0, 64.0].map(|x: f64| (x, 0.5 * x.powf(k))).to_vec() };
        assert!((log_log_slope(&pts(1.0)).unwrap() - 1.0).abs() < 1e-9);
        assert!((log_log_slope(&pts(2.0)).unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(log_log_slope(&[(4.0, 1.0)]), None);
        assert_eq!(log_log_slope(&[(4.0, 1.0), (4.0, 2.0)]), None);
    }
}
