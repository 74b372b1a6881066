//! Magnitude pruning masks and the S2 speculation predictor: the mask and speculation units'
//! arithmetic (`prune.topk`, `spec.s2` in `spec/isa.md`).
//!
//! ## Top-k mask
//! Per tensor of `n` weights with target sparsity `s`, keep `k = max(1, round_half_even((1-s)·n))`
//! weights with the largest `|w|`; ties at the threshold go to the lower flat index, and NaN ranks
//! below every number. Selection is O(n), by radix over the magnitudes' bits (two histogram
//! passes, no sorting), which makes the result unique and deterministic.
//!
//! ## S2 predictor (DPF mode)
//! A pruned weight is **predicted to stay pruned** at the next mask update when
//! `|w| < (1 - margin)·threshold`, where `threshold` is the smallest kept magnitude of the current
//! mask and `margin ∈ [0, 1]`. Between two updates a weight moves by at most ΔT·lr·|g| (plus
//! momentum), so weights far below the threshold cannot re-enter; their weight gradients are skipped
//! (WG keep-mask = not predicted). `margin = 0` skips every pruned weight below the threshold
//! (aggressive), `margin = 1` never predicts (exact, no saving).

use super::{invalid, Result};
use rayon::prelude::*;

/// A top-k magnitude mask.
#[derive(Debug, Clone, PartialEq)]
pub struct TopK {
    /// `true` for kept weights.
    pub mask: Vec<bool>,
    /// Number of kept weights.
    pub kept: usize,
    /// Smallest kept magnitude (NaN's is −∞; nothing kept: +∞).
    pub threshold: f32,
}

/// Number of weights kept out of `n` at sparsity `s`.
pub fn kept_count(n: usize, sparsity: f64) -> usize {
    (((1.0 - sparsity) * n as f64).round_ties_even() as usize).clamp(1, n.max(1))
}

/// Top-k magnitude mask of `w` at target sparsity `sparsity ∈ [0, 1]`.
pub fn topk_mask(w: &[f32], sparsity: f64) -> Result<TopK> {
    if !(0.0..=1.0).contains(&sparsity) {
        return Err(invalid("sparsity", format!("{sparsity} is not in [0, 1]")));
    }
    if w.is_empty() {
        return Err(invalid("pruned tensor", "is empty"));
    }
    Ok(top_k(w, kept_count(w.len(), sparsity)))
}

/// The mask of the `k` largest magnitudes of `w` (`k` capped at its length; larger first, then
/// lower index; NaN lowest).
pub fn top_k(w: &[f32], k: usize) -> TopK {
    let k = k.min(w.len());
    if k == 0 {
        return TopK {
            mask: vec![false; w.len()],
            kept: 0,
            threshold: f32::INFINITY,
        };
    }
    let t = kth_largest_rank(w, k);
    // Ranks above `t` are all kept; the rest of `k` are the first weights of rank exactly `t`,
    // counted chunk by chunk so that chunks can be marked side by side.
    let chunk = chunk_len(w.len());
    // Per part: the ranks above `t`, and those equal to it.
    let parts: Vec<(usize, usize)> = w
        .par_chunks(chunk)
        .map(|part| {
            part.iter().fold((0, 0), |(above, ties), &x| {
                let r = rank(x);
                (above + usize::from(r > t), ties + usize::from(r == t))
            })
        })
        .collect();
    let above: usize = parts.iter().map(|&(a, _)| a).sum();
    let ties_before: Vec<usize> = parts
        .iter()
        .scan(0, |before, &(_, n)| {
            let at = *before;
            *before += n;
            Some(at)
        })
        .collect();
    let mut mask = vec![false; w.len()];
    mask.par_chunks_mut(chunk)
        .zip(w.par_chunks(chunk))
        .zip(ties_before)
        .for_each(|((m, part), before)| {
            let mut ties = (k - above).saturating_sub(before);
            for (m, &x) in m.iter_mut().zip(part) {
                *m = match rank(x) {
                    r if r > t => true,
                    r if r == t && ties > 0 => {
                        ties -= 1;
                        true
                    }
                    _ => false,
                };
            }
        });
    TopK {
        mask,
        kept: k,
        threshold: magnitude_of_rank(t),
    }
}

/// Weights per parallel part of a selection: one part per thread, or all of them when there are
/// too few to be worth splitting. Every count is exact, so results do not depend on the split.
fn chunk_len(n: usize) -> usize {
    const PARALLEL_MIN: usize = 1 << 16;
    match n < PARALLEL_MIN {
        true => n.max(1),
        false => n.div_ceil(rayon::current_num_threads().max(1)),
    }
}

/// [`top_k`]'s threshold without its mask: the smallest magnitude among the `k` largest of `w`
/// (`k` capped at its length; NaN's is −∞; nothing kept: +∞).
pub fn top_k_threshold(w: &[f32], k: usize) -> f32 {
    match k.min(w.len()) {
        0 => f32::INFINITY,
        k => magnitude_of_rank(kth_largest_rank(w, k)),
    }
}

/// The magnitude a selection rank stands for (rank 0, NaN's: −∞).
fn magnitude_of_rank(r: u32) -> f32 {
    r.checked_sub(1).map_or(f32::NEG_INFINITY, f32::from_bits)
}

/// Magnitude used for ranking: `|x|`, NaN the smallest (−∞).
pub fn magnitude(x: f32) -> f32 {
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
/// the rank itself.
fn kth_largest_rank(w: &[f32], k: usize) -> u32 {
    let hist = histogram(w, |r| Some(r >> 16));
    let (high, above) = from_top(&hist, k);
    let hist = histogram(w, |r| (r >> 16 == high).then_some(r & 0xffff));
    high << 16 | from_top(&hist, k - above).0
}

/// The histogram of `bucket` (below 2¹⁶, `None`: not counted) of the ranks of `w`, its parts
/// counted side by side ([`chunk_len`]).
fn histogram(w: &[f32], bucket: impl Fn(u32) -> Option<u32> + Sync) -> Vec<usize> {
    let count = |part: &[f32]| {
        let mut hist = vec![0usize; 1 << 16];
        part.iter()
            .filter_map(|&x| bucket(rank(x)))
            .for_each(|b| hist[b as usize] += 1);
        hist
    };
    w.par_chunks(chunk_len(w.len()))
        .map(count)
        .reduce_with(|mut a, b| {
            a.iter_mut().zip(&b).for_each(|(s, n)| *s += n);
            a
        })
        .unwrap_or_else(|| vec![0; 1 << 16])
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

/// S2's WG keep-mask: kept weights, and pruned weights not predicted to stay pruned
/// (`magnitude(w) ≥ (1 − margin)·threshold`, `threshold` the smallest kept magnitude).
pub fn s2_keep(w: &[f32], mask: &[bool], threshold: f32, margin: f32) -> Vec<bool> {
    let bound = threshold * (1.0 - margin);
    w.iter()
        .zip(mask)
        .map(|(&x, &kept)| kept || magnitude(x) >= bound)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{sparse_vec, Rng};
    use proptest::prelude::*;

    /// Reference: full sort by (magnitude desc, index asc).
    fn reference(w: &[f32], k: usize) -> Vec<bool> {
        let mut idx: Vec<usize> = (0..w.len()).collect();
        idx.sort_by(|&a, &b| magnitude(w[b]).total_cmp(&magnitude(w[a])).then(a.cmp(&b)));
        let mut m = vec![false; w.len()];
        idx[..k].iter().for_each(|&i| m[i] = true);
        m
    }

    #[test]
    fn k_rounds_half_to_even() {
        assert_eq!(kept_count(10, 0.9), 1);
        assert_eq!(kept_count(5, 0.5), 2); // 2.5 -> 2
        assert_eq!(kept_count(7, 0.5), 4); // 3.5 -> 4
        assert_eq!(kept_count(3, 1.0), 1); // at least one
        assert_eq!(kept_count(8, 0.0), 8);
    }

    #[test]
    fn ties_go_to_lower_index() {
        let w = [0.5, -1.0, 0.5, 1.0, 0.5, 0.2];
        let m = topk_mask(&w, 0.5).unwrap(); // k = 3
        assert_eq!(m.mask, [true, true, false, true, false, false]);
        assert_eq!(m.threshold, 0.5);
        let m = topk_mask(&[0.0; 4], 0.5).unwrap();
        assert_eq!(m.mask, [true, true, false, false]);
        assert!(topk_mask(&w, 1.5).is_err());
        assert!(topk_mask(&[], 0.5).is_err());
    }

    #[test]
    fn top_k_orders_by_magnitude_then_index_nan_last() {
        let w = [1.0, -3.0, f32::NAN, 3.0, 0.5];
        assert_eq!(top_k(&w, 2).mask, [false, true, false, true, false]);
        assert_eq!(top_k(&w, 4).mask, [true, true, false, true, true]);
        let all = top_k(&w, 5);
        assert_eq!((all.mask, all.threshold), (vec![true; 5], f32::NEG_INFINITY));
        assert_eq!(top_k(&w, 0).threshold, f32::INFINITY);
        assert_eq!(top_k(&[2.0, 2.0, 2.0], 1).mask, [true, false, false]);
    }

    #[test]
    fn top_k_matches_a_full_sort_on_special_values() {
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
            for k in [0, 1, len / 2, len] {
                let got = top_k(&w, k);
                let want = reference(&w, k);
                assert_eq!(got.mask, want, "len {len} k {k}");
                let smallest = w
                    .iter()
                    .zip(&want)
                    .filter(|(_, &kept)| kept)
                    .map(|(&x, _)| magnitude(x))
                    .fold(f32::INFINITY, f32::min);
                assert_eq!(got.threshold, smallest, "len {len} k {k}");
                assert_eq!(top_k_threshold(&w, k), smallest, "len {len} k {k}");
            }
        }
    }

    /// Long enough to be selected in parallel parts (one per thread), with many ties across them.
    #[test]
    fn parallel_selection_matches_a_full_sort() {
        let mut rng = Rng::new(5);
        let n = (1 << 18) + 7;
        let w: Vec<f32> = sparse_vec(&mut rng, n, 0.7)
            .iter()
            .map(|v| (v * 8.0).round())
            .collect();
        for k in [1, n / 10, n / 2, n - 1, n] {
            let got = top_k(&w, k);
            assert_eq!(got.mask, reference(&w, k), "k {k}");
            assert_eq!(top_k_threshold(&w, k), got.threshold, "k {k}");
        }
    }

    #[test]
    fn s2_keeps_the_mask_and_weights_near_the_threshold() {
        let w = [1.0, 0.9, 0.5, 0.05, -0.85, f32::NAN];
        let m = topk_mask(&w, 0.6).unwrap(); // k = 2, threshold 0.9
        assert_eq!(m.threshold, 0.9);
        // Bound 0.81: 0.5 and 0.05 are predicted to stay pruned, so is NaN.
        let keep = s2_keep(&w, &m.mask, m.threshold, 0.1);
        assert_eq!(keep, [true, true, false, false, true, false]);
        assert!(s2_keep(&w[..5], &m.mask[..5], m.threshold, 1.0)
            .iter()
            .all(|&k| k));
    }

    proptest! {
        #[test]
        fn topk_matches_full_sort(seed in 0u64..1000, n in 1usize..200, s in 0.0f64..=1.0) {
            let mut rng = Rng::new(seed);
            // Coarse values make ties common.
            let w: Vec<f32> = sparse_vec(&mut rng, n, 0.8).iter().map(|v| (v * 4.0).round()).collect();
            let m = topk_mask(&w, s).unwrap();
            prop_assert_eq!(&m.mask, &reference(&w, kept_count(n, s)));
            prop_assert_eq!(m.mask.iter().filter(|&&k| k).count(), kept_count(n, s));
        }
    }
}
