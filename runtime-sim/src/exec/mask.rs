//! Mask-unit and speculation-unit instructions: top-k pruning, mask application, S2 prediction and
//! density counting.

use super::{Ctx, Work};
use crate::decode::Op;
use crate::error::FaultKind;
use crate::ledger::Event;
use crate::memory::count_nonzero_raw;
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
///
/// Selects on packed keys (the magnitude's order in the high half, the index in the low half)
/// rather than comparing through the indices: one contiguous array, no indirection.
fn top_k(w: &[f32], k: usize) -> Vec<u32> {
    // Non-negative floats order as their bits; NaN (magnitude −∞) goes below every number.
    let rank = |x: f32| if x.is_nan() { 0 } else { x.abs().to_bits() + 1 };
    let mut keys: Vec<u64> = w
        .iter()
        .zip(0u32..)
        .map(|(&x, i)| u64::from(u32::MAX - rank(x)) << 32 | u64::from(i))
        .collect();
    if k > 0 && k < keys.len() {
        keys.select_nth_unstable(k - 1);
    }
    keys.truncate(k);
    keys.into_iter().map(|key| key as u32).collect()
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
    fn top_k_matches_a_full_sort() {
        let pool = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            2.5,
            f32::NAN,
            f32::INFINITY,
            -f32::INFINITY,
            1e-40,
        ];
        let mut state = 7u64;
        for len in [1, 2, 9, 40, 300] {
            let w: Vec<f32> = (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    pool[(state >> 33) as usize % pool.len()]
                })
                .collect();
            let mut all: Vec<u32> = (0..len as u32).collect();
            all.sort_by(|&a, &b| {
                magnitude(w[b as usize])
                    .total_cmp(&magnitude(w[a as usize]))
                    .then(a.cmp(&b))
            });
            for k in [0, 1, len / 2, len] {
                let mut got = top_k(&w, k);
                got.sort();
                let mut want = all[..k].to_vec();
                want.sort();
                assert_eq!(got, want, "len {len} k {k}");
            }
        }
    }

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
