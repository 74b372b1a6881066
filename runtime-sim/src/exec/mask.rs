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

/// Selection rank of a weight: non-negative floats order as their bits; NaN (magnitude −∞) ranks
/// below every number.
fn rank(x: f32) -> u32 {
    if x.is_nan() {
        0
    } else {
        x.abs().to_bits() + 1
    }
}

/// The `k`-th largest rank of `w` (`1 ≤ k ≤ w.len()`), by radix selection: a histogram of the
/// ranks' high 16 bits finds the bucket that holds it, one of the low 16 bits inside that bucket
/// the rank itself. Two passes over `w`, no sorting.
fn kth_largest_rank(w: &[f32], k: usize) -> u32 {
    let mut hist = vec![0usize; 1 << 16];
    w.iter().for_each(|&x| hist[(rank(x) >> 16) as usize] += 1);
    let (high, above) = from_top(&hist, k);
    hist.fill(0);
    w.iter()
        .map(|&x| rank(x))
        .filter(|r| r >> 16 == high)
        .for_each(|r| hist[(r & 0xffff) as usize] += 1);
    high << 16 | from_top(&hist, k - above).0
}

/// The bucket of a histogram that holds its `k`-th largest element, and how many elements lie
/// in the buckets above it.
fn from_top(hist: &[usize], k: usize) -> (u32, usize) {
    let mut above = 0;
    for (bucket, &n) in hist.iter().enumerate().rev() {
        if above + n >= k {
            return (bucket as u32, above);
        }
        above += n;
    }
    unreachable!("k is at most the number of elements")
}

/// The mask of the `k` largest magnitudes of `w` (larger first, then lower index; NaN lowest),
/// and the rank of the smallest kept one (`None` when nothing is kept).
fn top_k(w: &[f32], k: usize) -> (Vec<bool>, Option<u32>) {
    let k = k.min(w.len());
    if k == 0 {
        return (vec![false; w.len()], None);
    }
    let t = kth_largest_rank(w, k);
    // Ranks above `t` are all kept; the rest of `k` are the first weights of rank exactly `t`.
    let mut ties = k - w.iter().filter(|&&x| rank(x) > t).count();
    let mask = w
        .iter()
        .map(|&x| match rank(x) {
            r if r > t => true,
            r if r == t && ties > 0 => {
                ties -= 1;
                true
            }
            _ => false,
        })
        .collect();
    (mask, Some(t))
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
            ctx.write_mask("mask", mask, &top_k(&w, k).0)?;
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
            // The smallest kept magnitude (NaN's is −∞; none kept: +∞).
            let tau = match top_k(&wv, k).1 {
                None => f32::INFINITY,
                Some(0) => f32::NEG_INFINITY,
                Some(r) => f32::from_bits(r - 1),
            };
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
                    // Special values from the pool, or nearby magnitudes (equal high halves:
                    // the selection's second histogram decides between them).
                    match (state >> 33) as usize % (2 * pool.len()) {
                        i if i < pool.len() => pool[i],
                        _ => f32::from_bits(0x3f80_0000 | (state >> 40) as u32 & 0xff),
                    }
                })
                .collect();
            let mut all: Vec<u32> = (0..len as u32).collect();
            all.sort_by(|&a, &b| {
                magnitude(w[b as usize])
                    .total_cmp(&magnitude(w[a as usize]))
                    .then(a.cmp(&b))
            });
            for k in [0, 1, len / 2, len] {
                let (mask, t) = top_k(&w, k);
                let got: Vec<u32> = (0..len as u32).filter(|&i| mask[i as usize]).collect();
                let mut want = all[..k].to_vec();
                want.sort();
                assert_eq!(got, want, "len {len} k {k}");
                assert_eq!(
                    t,
                    want.iter().map(|&i| rank(w[i as usize])).min(),
                    "len {len} k {k}"
                );
            }
        }
    }

    #[test]
    fn top_k_orders_by_magnitude_then_index_nan_last() {
        let w = [1.0, -3.0, f32::NAN, 3.0, 0.5];
        assert_eq!(top_k(&w, 2).0, [false, true, false, true, false]);
        assert_eq!(top_k(&w, 4).0, [true, true, false, true, true]);
        assert_eq!(top_k(&w, 5), (vec![true; 5], Some(0)));
        assert_eq!(top_k(&[2.0, 2.0, 2.0], 1).0, [true, false, false]);
    }
}
