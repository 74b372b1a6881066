//! Magnitude pruning masks and the S2 speculation predictor: the mask and speculation units'
//! arithmetic (`prune.topk`, `spec.s2` in `spec/isa.md`).
//!
//! ## Top-k mask
//! Per tensor of `n` weights with target sparsity `s`, keep `k = max(1, round_half_even((1-s)·n))`
//! weights with the largest `|w|`; ties at the threshold go to the lower flat index, and NaN ranks
//! below every number, which makes the result unique: it does not depend on the number of threads.
//!
//! Selection is O(n) in about one pass over the weights. A window of magnitudes is guessed from a
//! sample of 2¹⁴ evenly spaced weights (tensors of 2¹⁷ weights or more): around where the `k`-th
//! largest lies in the sample, give or take four standard deviations (open-ended past an end of
//! the sample). One pass, in parallel parts, then marks the weights above the window as kept,
//! counts them, and collects those in it (the candidates, about 2% of the weights at 90% sparsity)
//! in index order. If the window holds the `k`-th largest magnitude, it is selected among the
//! candidates alone (`select_nth_unstable`), and the candidates above it are marked, then as many
//! of those equal to it as remain, in index order. If it does not (an unrepresentative sample), or
//! there is no guess (shorter tensors), the window is instead the bucket of the magnitudes' high
//! 12 bits that holds the `k`-th largest, found by a histogram pass (an L1-sized count per part),
//! and the marking pass is made with it. Every count is exact: the guess decides only how much
//! work is done. In the worst case (all weights equal) every weight is a candidate, still O(n)
//! time and memory.
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
    let chunk = chunk_len(w.len());
    let mut mask = vec![false; w.len()];
    let (parts, t, above) = select(w, k, |window| {
        mask.par_chunks_mut(chunk)
            .zip(w.par_chunks(chunk))
            .map(|(m, part)| {
                Candidates::split(part, window, |at, kept| {
                    if let Some(m) = m.get_mut(at..at + kept.len()) {
                        m.copy_from_slice(kept);
                    }
                })
            })
            .collect()
    });
    // Ranks above `t` are kept: those above the window already are, so are the candidates above
    // `t`, and the first `k - above` candidates of rank `t`.
    let mut ties = k - above;
    for (m, candidates) in mask.chunks_mut(chunk).zip(&parts) {
        for (j, r) in candidates.ranked() {
            let keep = r > t || (r == t && ties > 0);
            ties -= usize::from(keep && r == t);
            if let Some(m) = m.get_mut(j) {
                *m = keep;
            }
        }
    }
    TopK {
        mask,
        kept: k,
        threshold: magnitude_of_rank(t),
    }
}

/// [`top_k`]'s threshold without its mask: the smallest magnitude among the `k` largest of `w`
/// (`k` capped at its length; NaN's is −∞; nothing kept: +∞).
pub fn top_k_threshold(w: &[f32], k: usize) -> f32 {
    let k = k.min(w.len());
    if k == 0 {
        return f32::INFINITY;
    }
    let chunk = chunk_len(w.len());
    let (_, t, _) = select(w, k, |window| {
        w.par_chunks(chunk)
            .map(|part| Candidates::split(part, window, |_, _| {}))
            .collect()
    });
    magnitude_of_rank(t)
}

/// Weights per parallel part of a selection: one part per thread, or all of them when there are
/// too few to be worth splitting, and never more than `u32::MAX` (a part's counts and offsets are
/// `u32`). Every count is exact, so results do not depend on the split.
fn chunk_len(n: usize) -> usize {
    const PARALLEL_MIN: usize = 1 << 16;
    let len = match n < PARALLEL_MIN {
        true => n.max(1),
        false => n.div_ceil(rayon::current_num_threads().max(1)),
    };
    len.min(u32::MAX as usize)
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
/// below every number. Ranks are below 2³¹ (+∞'s is `0x7f80_0001`).
fn rank(x: f32) -> u32 {
    // Branch-free (so that loops over weights vectorize): NaNs are the magnitudes above +∞.
    let bits = x.to_bits() & 0x7fff_ffff;
    match bits > f32::INFINITY.to_bits() {
        true => 0,
        false => bits + 1,
    }
}

/// Finds the `k`-th largest rank of `w` (`1 ≤ k ≤ w.len()`) with `split`, which splits `w` at a
/// [`Window`] into its parts' [`Candidates`]: first at a window guessed from a sample, and when
/// that misses the `k`-th rank, at the histogram's window, which holds it. Returns the parts'
/// candidates of the window that held it, the rank, and how many ranks are larger.
fn select(
    w: &[f32],
    k: usize,
    mut split: impl FnMut(Window) -> Vec<Candidates>,
) -> (Vec<Candidates>, u32, usize) {
    if let Some(window) = Window::sampled(w, k) {
        let parts = split(window);
        if let Some((t, above)) = kth_of_candidates(&parts, k) {
            return (parts, t, above);
        }
    }
    let parts = split(Window::histogram(w, k));
    // The fallback is not reached: the histogram's window holds the `k`-th rank.
    let (t, above) = kth_of_candidates(&parts, k).unwrap_or((0, k));
    (parts, t, above)
}

/// The `k`-th largest rank of the split weights and how many ranks are larger, if it is one of
/// the candidates (`parts`).
fn kth_of_candidates(parts: &[Candidates], k: usize) -> Option<(u32, usize)> {
    let above: usize = parts.iter().map(|c| c.above).sum();
    let count: usize = parts.iter().map(|c| c.rank.len()).sum();
    let at = k.checked_sub(above + 1).filter(|&at| at < count)?;
    let candidates = || parts.iter().flat_map(|c| &c.rank).copied();
    // Candidates all tied (all weights equal, say): no selection.
    let (min, max) = candidates().fold((u32::MAX, 0), |(min, max), r| (min.min(r), max.max(r)));
    if min == max {
        return Some((min, above));
    }
    let mut ranks: Vec<u32> = Vec::with_capacity(count);
    ranks.extend(candidates());
    let (larger, &mut t, _) = ranks.select_nth_unstable_by(at, |a, b| b.cmp(a));
    Some((t, above + larger.iter().filter(|&&r| r > t).count()))
}

/// A range of ranks, `lo..=hi`, meant to hold the `k`-th largest: weights ranked above it are
/// kept without more ado, those in it are the candidates.
#[derive(Debug, Clone, Copy)]
struct Window {
    lo: u32,
    hi: u32,
    /// The expected share of the weights in it (to reserve room for the candidates).
    share: f64,
}

impl Window {
    /// A window guessed from an evenly spaced sample of `w`, about 2% of it wide at 90% sparsity:
    /// the sample's ranks around the `k`-th largest's place in it, give or take four standard
    /// deviations (the `k`-th rank lies outside it about once in 10⁴ random inputs), open-ended
    /// where that passes an end of the sample (`k` near 1 or `w.len()`). `None` for short `w`.
    fn sampled(w: &[f32], k: usize) -> Option<Self> {
        const SAMPLE: usize = 1 << 14;
        if w.len() < 8 * SAMPLE {
            return None;
        }
        let mut ranks: Vec<u32> = w
            .iter()
            .step_by(w.len() / SAMPLE)
            .take(SAMPLE)
            .map(|&x| rank(x))
            .collect();
        let p = k as f64 / w.len() as f64;
        let at = p * SAMPLE as f64;
        let spread = 4.0 * (SAMPLE as f64 * p * (1.0 - p)).sqrt() + 8.0;
        let (first, last) = ((at - spread).floor(), (at + spread).ceil());
        let (below, above) = (first < 0.0, last >= SAMPLE as f64);
        if below && above {
            return None;
        }
        // Past either end of the sample, the window is open-ended.
        let larger_first = |a: &u32, b: &u32| b.cmp(a);
        let (larger, lo) = match above {
            true => (&mut ranks[..], 0),
            false => {
                let (larger, &mut lo, _) = ranks.select_nth_unstable_by(last as usize, larger_first);
                (larger, lo)
            }
        };
        let hi = match below {
            true => u32::MAX,
            false => *larger.select_nth_unstable_by(first as usize, larger_first).1,
        };
        let inside = ranks.iter().filter(|&&r| (lo..=hi).contains(&r)).count();
        Some(Self {
            lo,
            hi,
            share: inside as f64 / SAMPLE as f64,
        })
    }

    /// The bucket of ranks (their bits from [`Self::SHIFT`] up) that holds the `k`-th largest rank
    /// of `w` (`1 ≤ k ≤ w.len()`), by histogram: exact counts of the parts ([`chunk_len`]) side by
    /// side, each part's small enough for L1.
    fn histogram(w: &[f32], k: usize) -> Self {
        const BUCKETS: usize = 1 << (31 - Window::SHIFT);
        let parts: Vec<[u32; BUCKETS]> = w
            .par_chunks(chunk_len(w.len()))
            .map(|part| {
                let mut hist = [0u32; BUCKETS];
                for &x in part {
                    hist[(rank(x) >> Self::SHIFT) as usize % BUCKETS] += 1;
                }
                hist
            })
            .collect();
        let mut total = vec![0usize; BUCKETS];
        for hist in &parts {
            total.iter_mut().zip(hist).for_each(|(s, &n)| *s += n as usize);
        }
        let bucket = from_top(&total, k).0;
        let lo = bucket << Self::SHIFT;
        Self {
            lo,
            hi: lo | ((1 << Self::SHIFT) - 1),
            share: total.get(bucket as usize).map_or(1, |&n| n) as f64 / w.len() as f64,
        }
    }

    /// A rank's histogram bucket is its bits from this one up (12 bits, ranks being below 2³¹).
    const SHIFT: u32 = 19;
}

/// A part's weights ranked in a [`Window`], in index order, and the count of those above it.
struct Candidates {
    /// Their offsets in the part.
    offset: Vec<u32>,
    /// Their ranks.
    rank: Vec<u32>,
    /// Weights of the part ranked above the window.
    above: usize,
}

impl Candidates {
    /// Weights per block of [`Self::split`].
    const BLOCK: usize = 64;

    /// The candidates of `part` in `window`; `mark(offset, kept)` is called on consecutive blocks
    /// of the part with whether each weight ranks above the window (candidates: `false`).
    fn split(part: &[f32], window: Window, mut mark: impl FnMut(usize, &[bool])) -> Self {
        // Room for the expected candidates and a margin.
        let room = (part.len() as f64 * window.share * 1.1) as usize + Self::BLOCK;
        let mut found = Self {
            offset: Vec::with_capacity(room.min(part.len())),
            rank: Vec::with_capacity(room.min(part.len())),
            above: 0,
        };
        let (blocks, rest) = part.as_chunks::<{ Self::BLOCK }>();
        // The rest padded to a block with NaNs, which are never above a window (and are left out
        // of its candidates).
        let mut last = [f32::NAN; Self::BLOCK];
        last.iter_mut().zip(rest).for_each(|(l, &x)| *l = x);
        let mut kept = [false; Self::BLOCK];
        for (b, block) in blocks.iter().chain([&last]).enumerate() {
            let len = match b < blocks.len() {
                true => Self::BLOCK,
                false => rest.len(),
            };
            // Candidates, one bit each (vectorized with the marks, then visited bit by bit).
            let mut bits = 0u64;
            for (j, (kept, &x)) in kept.iter_mut().zip(block).enumerate() {
                let r = rank(x);
                *kept = r > window.hi;
                bits |= u64::from(r.wrapping_sub(window.lo) <= window.hi - window.lo) << j;
            }
            let kept = &kept[..len];
            bits &= u64::MAX.checked_shr((Self::BLOCK - len) as u32).unwrap_or(0);
            found.above += kept.iter().filter(|&&k| k).count();
            mark(b * Self::BLOCK, kept);
            while bits != 0 {
                let j = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                found.offset.push((b * Self::BLOCK + j) as u32);
                found.rank.push(rank(block[j]));
            }
        }
        found
    }

    /// The candidates' offsets and ranks.
    fn ranked(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.offset.iter().zip(&self.rank).map(|(&j, &r)| (j as usize, r))
    }
}

/// The bucket of a histogram that holds its `k`-th largest element (`k ≥ 1`), and how many
/// elements lie in the buckets above it.
fn from_top(hist: &[usize], k: usize) -> (u32, usize) {
    let mut above = 0;
    for (bucket, &n) in hist.iter().enumerate().rev() {
        if above + n >= k {
            return (bucket as u32, above);
        }
        above += n;
    }
    // Not reached: `k` is at most the number of elements.
    (0, above)
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

    /// Checks `top_k` and `top_k_threshold` against [`reference`] (`k` capped at `w.len()`).
    fn check(w: &[f32], k: usize, what: &str) {
        let got = top_k(w, k);
        let want = reference(w, k.min(w.len()));
        assert!(got.mask == want, "{what}: n {} k {k}: masks differ", w.len());
        assert_eq!(got.kept, k.min(w.len()), "{what}: k {k}");
        let smallest = w
            .iter()
            .zip(&want)
            .filter(|(_, &kept)| kept)
            .map(|(&x, _)| magnitude(x))
            .fold(f32::INFINITY, f32::min);
        assert_eq!(got.threshold.to_bits(), smallest.to_bits(), "{what}: k {k}");
        assert_eq!(
            top_k_threshold(w, k).to_bits(),
            smallest.to_bits(),
            "{what}: k {k}"
        );
    }

    /// Lengths on each path: one part, parallel parts (histogram window), sampled window.
    const LENGTHS: [usize; 5] = [1, 2, 1000, 70_001, 300_007];

    #[test]
    fn all_equal_zero_nan_and_infinite_weights() {
        for n in LENGTHS {
            let inputs: [(&str, Vec<f32>); 6] = [
                ("ones", vec![1.0; n]),
                ("signed zeros", (0..n).map(|i| [0.0, -0.0][i % 2]).collect()),
                ("NaNs", vec![f32::NAN; n]),
                (
                    "infinities",
                    (0..n).map(|i| [f32::INFINITY, -f32::INFINITY][i % 2]).collect(),
                ),
                (
                    "NaN, inf and one",
                    (0..n).map(|i| [f32::NAN, f32::INFINITY, 1.0][i % 3]).collect(),
                ),
                (
                    "NaNs, -NaNs and zeros",
                    (0..n).map(|i| [f32::NAN, -f32::NAN, 0.0][i % 3]).collect(),
                ),
            ];
            for (what, w) in &inputs {
                for k in [1, 2, n / 2, n - 1, n] {
                    check(w, k, what);
                }
            }
        }
    }

    /// Distributions for the randomized comparisons, with many ties or none.
    fn distributions(rng: &mut Rng, n: usize) -> Vec<(&'static str, Vec<f32>)> {
        let uniform: Vec<f32> = (0..n).map(|_| rng.signed()).collect();
        let mut ascending = uniform.clone();
        ascending.sort_by(|a, b| magnitude(*a).total_cmp(&magnitude(*b)));
        let descending = ascending.iter().rev().copied().collect();
        let coarse = sparse_vec(rng, n, 0.6)
            .iter()
            .map(|v| (v * 16.0).round())
            .collect();
        // Gaussian-like (a sum of uniforms) at a small scale, as trained weights are.
        let bell = (0..n)
            .map(|_| 0.01 * (rng.signed() + rng.signed() + rng.signed()))
            .collect();
        let bits = (0..n).map(|_| f32::from_bits(rng.next_u64() as u32)).collect();
        vec![
            ("uniform", uniform),
            ("ascending", ascending),
            ("descending", descending),
            ("coarse", coarse),
            ("bell", bell),
            ("random bits", bits),
        ]
    }

    #[test]
    fn random_weights_match_a_full_sort_on_every_path() {
        let mut rng = Rng::new(11);
        for n in LENGTHS {
            for (what, w) in distributions(&mut rng, n) {
                for k in [1, n / 100, n / 10, n / 2, n - n / 7, n] {
                    check(&w, k.max(1), what);
                }
            }
        }
    }

    /// The results are the same whatever the number of threads (parts), with ties at the
    /// threshold spread over every part.
    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let mut rng = Rng::new(3);
        for n in [70_001, 300_007] {
            let w: Vec<f32> = sparse_vec(&mut rng, n, 0.5)
                .iter()
                .map(|v| (v * 4.0).round())
                .collect();
            for k in [1, n / 10, n / 3, n - 1] {
                let want = reference(&w, k);
                for threads in [1, 2, 3, 7] {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .expect("a thread pool");
                    let (got, threshold) = pool.install(|| (top_k(&w, k), top_k_threshold(&w, k)));
                    assert!(got.mask == want, "n {n} k {k} threads {threads}");
                    assert_eq!(threshold, got.threshold, "n {n} k {k} threads {threads}");
                }
            }
        }
    }

    /// A sample that misrepresents the weights (every sampled weight large) guesses a window
    /// without the threshold; the selection then takes the histogram's. Uniform weights' sample
    /// guesses right.
    #[test]
    fn a_missed_sampled_window_falls_back_to_the_histogram() {
        let n = 1 << 18;
        let mut rng = Rng::new(9);
        let split = |w: &[f32], window| vec![Candidates::split(w, window, |_, _| {})];
        let uniform: Vec<f32> = (0..n).map(|_| rng.signed()).collect();
        let window = Window::sampled(&uniform, n / 10).expect("a window");
        assert!(kth_of_candidates(&split(&uniform, window), n / 10).is_some());
        let step = n / (1 << 14);
        let w: Vec<f32> = (0..n)
            .map(|i| match i % step {
                0 => 10.0 + rng.uniform(),
                _ => rng.signed(),
            })
            .collect();
        let window = Window::sampled(&w, n / 10).expect("a window");
        assert!(kth_of_candidates(&split(&w, window), n / 10).is_none());
        for k in [1, n / 100, n / 10, n / 2] {
            check(&w, k, "misleading sample");
        }
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
                check(&w, k, "special values");
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
        /// Any bits (NaNs, infinities, subnormals), ties likely, any `k`.
        #[test]
        fn top_k_matches_full_sort_on_any_bits(
            pool in proptest::collection::vec(any::<u32>(), 1..12),
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..3000),
            k in any::<prop::sample::Index>(),
        ) {
            let w: Vec<f32> = picks.iter().map(|i| f32::from_bits(*i.get(&pool))).collect();
            let k = k.index(w.len() + 1);
            let got = top_k(&w, k);
            prop_assert!(got.mask == reference(&w, k));
            prop_assert_eq!(top_k_threshold(&w, k).to_bits(), got.threshold.to_bits());
        }

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
