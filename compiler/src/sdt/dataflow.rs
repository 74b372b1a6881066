//! `sdt-dataflow`: per layer and phase, the dataflow of every `conv_*`/`matmul_*` op from a
//! cost model fed with expected operand densities (see `spec/passes.md`), with the machine's
//! reasoning (`spec/machine.md`, "Dataflow model").
//!
//! Dataflows: `ws` (weight/second operand stationary, first operand streamed), `is` (first operand
//! stationary, second streamed), `os` (outputs stationary, both operands streamed, the first one
//! driving). The dataflow compresses the operand it streams (`ws`, `os`: the first; `is`: the
//! second): only its zeros are skipped, the stationary operand's zeros take PE issue slots
//! (gated). So the first criterion is the fraction of MAC slots issued, the density of the
//! compressed operand ([`issued_fraction`]); the second counts element accesses of the on-chip
//! buffers ([`cost`]): the stationary tensor is loaded once, densely; the streamed operand(s) are
//! re-read once per tile of the stationary tensor (`⌈stationary / P⌉` tiles, `P` =
//! [`PE_CAPACITY`]), the compressed one as its non-zeros; outputs are read and written once per
//! tile for `ws`/`is` and once for `os`. Densities: weights `1 − sparsity`
//! behind a pruning mask, ReLU outputs and masked gradients [`RELU_DENSITY`], others 1, passed
//! through reshapes, pooling and additions. The choice is written as `dataflow`; in adaptive mode
//! every op gets `dataflow = "adaptive"` and the static choice as `dataflow_hint`, plus the
//! expected densities `density_a` / `density_b` in every mode.

use super::{step_block, DataflowMode, SdtError, SdtOptions};
use crate::interp::static_shape;
use crate::ir::{Attribute, Module, ValueId};
use crate::sdt::ops::AttrExt;
use std::collections::HashMap;

/// Stationary elements the PE array holds at once (cost-model parameter).
pub const PE_CAPACITY: f64 = 1024.0;

/// Expected density of a ReLU output or a ReLU-masked gradient.
pub const RELU_DENSITY: f64 = 0.5;

/// Dataflow names, in tie-break order.
pub const DATAFLOWS: [&str; 3] = ["ws", "os", "is"];

/// Fraction of the dense MAC slots a dataflow issues to the PE array: the density of the operand
/// it compresses (`is`: the second, `ws`/`os`: the first).
pub fn issued_fraction(df: &str, da: f64, db: f64) -> f64 {
    if df == "is" {
        db
    } else {
        da
    }
}

/// Modeled buffer accesses of one compute op.
pub fn cost(df: &str, (a, da): (f64, f64), (b, db): (f64, f64), out: f64) -> f64 {
    let tiles = |n: f64| (n / PE_CAPACITY).ceil().max(1.0);
    match df {
        "ws" => b + tiles(b) * (a * da + 2.0 * out),
        "is" => a + tiles(a) * (b * db + 2.0 * out),
        _ => out + tiles(out) * (a * da + b),
    }
}

/// The dataflow that issues the fewest MAC slots, then the one with the fewest buffer accesses
/// (ties: [`DATAFLOWS`] order).
pub fn choose(a: (f64, f64), b: (f64, f64), out: f64) -> &'static str {
    let key = |df: &str| (issued_fraction(df, a.1, b.1), cost(df, a, b, out));
    DATAFLOWS
        .iter()
        .copied()
        .fold(("ws", (f64::INFINITY, f64::INFINITY)), |best, df| {
            let k = key(df);
            if k < best.1 {
                (df, k)
            } else {
                best
            }
        })
        .0
}

/// Expected density of `v`, memoized.
fn density(m: &Module, v: ValueId, memo: &mut HashMap<ValueId, f64>) -> f64 {
    if let Some(&d) = memo.get(&v) {
        return d;
    }
    let d = match m.defining_op(v) {
        None => 1.0,
        Some(op) => {
            let o = m.op(op);
            let result = o.results().iter().position(|&r| r == v).unwrap_or(0);
            match o.name() {
                "sdt.apply_mask" => match m.defining_op(o.operand(1)).map(|p| m.op(p)) {
                    Some(p) if p.name() == "sdt.prune_mask" => 1.0 - p.float_attr("sparsity").unwrap_or(0.0),
                    _ => density(m, o.operand(0), memo),
                },
                "sdt.relu" | "sdt.clip" | "sdt.relu_bwd" if result == 0 => RELU_DENSITY,
                "sdt.conv_bp" | "sdt.matmul_bp" if result == 0 && o.has_feature("omask") => RELU_DENSITY,
                "sdt.reshape" | "sdt.pool_ff" | "sdt.pool_bwd" => density(m, o.operand(0), memo),
                "sdt.add" => density(m, o.operand(0), memo).max(density(m, o.operand(1), memo)),
                _ => 1.0,
            }
        }
    };
    memo.insert(v, d);
    d
}

/// Runs the pass.
pub fn run(m: &mut Module, o: &SdtOptions) -> Result<(), SdtError> {
    if let DataflowMode::Fixed(df) = &o.dataflow {
        if !DATAFLOWS.contains(&df.as_str()) {
            return Err(SdtError::Invalid(format!(
                "unknown dataflow `{df}` (expected ws, os or is)"
            )));
        }
    }
    let block = step_block(m)?;
    let mut memo = HashMap::new();
    for op in m.block(block).ops().to_vec() {
        let name = m.op(op).name();
        if !(name.starts_with("sdt.conv_") || name.starts_with("sdt.matmul_")) {
            continue;
        }
        let size = |v: ValueId| static_shape(m.ty(v)).map_or(0.0, |s| s.iter().product::<usize>() as f64);
        let (a, b, out) = (m.op(op).operand(0), m.op(op).operand(1), m.op(op).result(0));
        // A fused on-read BN+ReLU makes the first operand ReLU-sparse.
        let da = if m.op(op).has_feature("bna") {
            RELU_DENSITY
        } else {
            density(m, a, &mut memo)
        };
        let db = density(m, b, &mut memo);
        let best = choose((size(a), da), (size(b), db), size(out));
        let (df, hint) = match &o.dataflow {
            DataflowMode::Static => (best.to_string(), None),
            DataflowMode::Adaptive => ("adaptive".to_string(), Some(best)),
            DataflowMode::Fixed(df) => (df.clone(), None),
        };
        m.set_attr(op, "dataflow", Attribute::str(df));
        if let Some(h) = hint {
            m.set_attr(op, "dataflow_hint", Attribute::str(h));
        }
        let round = |d: f64| (d * 1e6).round() / 1e6;
        m.set_attr(op, "density_a", Attribute::Float(round(da)));
        m.set_attr(op, "density_b", Attribute::Float(round(db)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compresses_the_sparser_operand_then_saves_traffic() {
        // Sparse weights, ReLU-sparse activations: stream (compress) the weights.
        assert_eq!(choose((16384.0, 0.5), (36864.0, 0.1), 16384.0), "is");
        // Sparse activations, dense gradients (wg): stream the activations; `ws` and `os` issue
        // the same slots, traffic decides.
        let (a, b, out) = ((16384.0, 0.5), (16384.0, 1.0), 36864.0);
        let best = choose(a, b, out);
        assert_ne!(best, "is");
        let other = if best == "ws" { "os" } else { "ws" };
        assert!(cost(best, a, b, out) <= cost(other, a, b, out));
        // Equal densities: traffic alone (ws 6500, is 5300, os 5200 accesses).
        assert_eq!(choose((100.0, 1.0), (5000.0, 1.0), 100.0), "os");
        assert_eq!(issued_fraction("is", 0.5, 0.1), 0.1);
        assert_eq!(issued_fraction("os", 0.5, 0.1), 0.5);
    }
}
