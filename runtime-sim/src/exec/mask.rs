//! Mask-unit and speculation-unit instructions: top-k pruning, mask application, S2 prediction and
//! density counting.

use super::{Ctx, Work};
use crate::decode::Op;
use crate::error::FaultKind;
use crate::ledger::Event;
use crate::memory::count_nonzero_raw;
use std::cmp::Ordering;
use trainer_isa::names::CfgF32;

/// Magnitude used for ranking: NaN ranks as the smallest magnitude (`spec/isa.md`, `prune.topk`).
fn magnitude(x: f32) -> f32 {
    if x.is_nan() {
        f32::NEG_INFINITY
    } else {
        x.abs()
    }
}

/// Indices of the `k` largest magnitudes (larger first, then lower index), `k ≤ w.len()`.
fn top_k(w: &[f32], k: usize) -> Vec<u32> {
    let order = |a: &u32, b: &u32| -> Ordering {
        magnitude(w[*b as usize])
            .total_cmp(&magnitude(w[*a as usize]))
            .then(a.cmp(b))
    };
    let mut idx: Vec<u32> = (0..w.len() as u32).collect();
    if k > 0 && k < w.len() {
        idx.select_nth_unstable_by(k - 1, order);
    }
    idx.truncate(k);
    idx
}

/// The sparsity register as the decimal it was set from: the shortest decimal that rounds to the
/// f32 value (so `0.9` means 0.9, not 0.899999976, and half-way cases of `k` round as intended).
fn register_sparsity(s: f32) -> f64 {
    s.to_string().parse().unwrap_or(f64::from(s))
}

/// Executes a mask/speculation/density operation.
pub fn run(op: &Op, ctx: &mut Ctx) -> Result<(), FaultKind> {
    ctx.act.work = Work::Stream;
    match *op {
        Op::PruneTopk { n, k, src, mask } => {
            let w = ctx.read("src", src, n)?;
            let k = if k == 0 {
                crate::kernels::prune::kept_count(n, register_sparsity(ctx.state.f(CfgF32::Sparsity)))
            } else {
                k
            };
            let mut m = vec![false; n];
            top_k(&w, k).iter().for_each(|&i| m[i as usize] = true);
            ctx.write_mask("mask", mask, &m)?;
            ctx.ev(Event::MaskOp, 2 * n as u64);
        }
        Op::MaskApply { n, src, mask, out } => {
            let mut x = ctx.read("src", src, n)?;
            let m = ctx.read_mask("mask", mask, n)?.expect("required operand");
            x.iter_mut().zip(&m).for_each(|(v, &k)| {
                if !k {
                    *v = 0.0;
                }
            });
            ctx.write("out", out, &x)?;
            ctx.ev(Event::MaskOp, n as u64);
        }
        Op::SpecS2 { n, k, w, mask, out } => {
            let wv = ctx.read("w", w, n)?;
            let m = ctx.read_mask("mask", mask, n)?.expect("required operand");
            let top = top_k(&wv, k);
            let tau = top
                .iter()
                .map(|&i| magnitude(wv[i as usize]))
                .fold(f32::INFINITY, f32::min);
            let bound = tau * (1.0 - ctx.state.f(CfgF32::S2Margin));
            let keep: Vec<bool> = wv
                .iter()
                .zip(&m)
                .map(|(&x, &mk)| mk || magnitude(x) >= bound)
                .collect();
            ctx.write_mask("out", out, &keep)?;
            ctx.ev(Event::SpecS2, n as u64);
        }
        Op::Density { n, ctr, src } => {
            let raw = ctx
                .mem
                .bytes("src", src.space, src.addr.into(), src.dtype.bytes(n as u64))?;
            let nz = count_nonzero_raw(src.dtype, raw, n);
            ctx.charge_read(src, n);
            ctx.state.add_dc(ctr, nz);
            ctx.ev(Event::VecOp, n as u64);
        }
        _ => unreachable!("not a mask operation: {op:?}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_magnitude_then_index_nan_last() {
        let w = [1.0, -3.0, f32::NAN, 3.0, 0.5];
        let mut t = top_k(&w, 2);
        t.sort();
        assert_eq!(t, vec![1, 3]);
        let mut t = top_k(&w, 4);
        t.sort();
        assert_eq!(t, vec![0, 1, 3, 4]);
        assert_eq!(top_k(&[2.0, 2.0, 2.0], 1), vec![0]);
    }
}
