//! Magnitude pruning masks and the S2 speculation predictor.
//!
//! ## Top-k mask
//! Per tensor of `n` weights with target sparsity `s`, keep `k = max(1, round_half_even((1-s)·n))`
//! weights with the largest `|w|`; ties at the threshold go to the lower flat index. Selection is
//! O(n) with `select_nth_unstable_by` on the total order (|w| descending, index ascending), which
//! makes the result unique and deterministic.
//!
//! ## S2 predictor (DPF mode)
//! A pruned weight is **predicted to stay pruned** at the next mask update when
//! `|w| < (1 - margin)·threshold`, where `threshold` is the smallest kept magnitude of the current
//! mask and `margin ∈ [0, 1]`. Between two updates a weight moves by at most ΔT·lr·|g| (plus
//! momentum), so weights far below the threshold cannot re-enter; their weight gradients are skipped
//! (WG keep-mask = not predicted). `margin = 0` skips every pruned weight below the threshold
//! (aggressive), `margin = 1` never predicts (exact, no saving). The simulator compares the
//! prediction against the next real mask with [`misspeculation`].

use super::{invalid, Result};
use std::cmp::Ordering;

/// A top-k magnitude mask.
#[derive(Debug, Clone, PartialEq)]
pub struct TopK {
    /// `true` for kept weights.
    pub mask: Vec<bool>,
    /// Number of kept weights.
    pub kept: usize,
    /// Smallest kept magnitude.
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
    let k = kept_count(w.len(), sparsity);
    let order = |a: &u32, b: &u32| -> Ordering {
        let (ma, mb) = (w[*a as usize].abs(), w[*b as usize].abs());
        mb.total_cmp(&ma).then(a.cmp(b))
    };
    let mut idx: Vec<u32> = (0..w.len() as u32).collect();
    if k < w.len() {
        idx.select_nth_unstable_by(k - 1, order);
    }
    let mut mask = vec![false; w.len()];
    idx[..k].iter().for_each(|&i| mask[i as usize] = true);
    let threshold = idx[..k]
        .iter()
        .map(|&i| w[i as usize].abs())
        .fold(f32::INFINITY, f32::min);
    Ok(TopK {
        mask,
        kept: k,
        threshold,
    })
}

/// S2 prediction: `true` for pruned weights predicted to stay pruned (`|w| < (1-margin)·threshold`).
pub fn predict_stay_pruned(w: &[f32], mask: &TopK, margin: f32) -> Result<Vec<bool>> {
    if w.len() != mask.mask.len() {
        return Err(invalid("S2 prediction", "weights and mask differ in length"));
    }
    if !(0.0..=1.0).contains(&margin) {
        return Err(invalid("S2 margin", format!("{margin} is not in [0, 1]")));
    }
    let bound = (1.0 - margin) * mask.threshold;
    Ok(w.iter()
        .zip(&mask.mask)
        .map(|(&v, &kept)| !kept && v.abs() < bound)
        .collect())
}

/// Outcome of an S2 prediction checked against the next real mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Misspeculation {
    /// Weights predicted to stay pruned.
    pub predicted: usize,
    /// Of those, weights that are kept by the next mask (mis-speculated).
    pub wrong: usize,
}

/// Compares an S2 prediction with the next mask.
pub fn misspeculation(predicted: &[bool], next_mask: &[bool]) -> Result<Misspeculation> {
    if predicted.len() != next_mask.len() {
        return Err(invalid(
            "mis-speculation check",
            "prediction and mask differ in length",
        ));
    }
    let (p, wr) = predicted
        .iter()
        .zip(next_mask)
        .fold((0, 0), |(p, wr), (&pr, &next)| {
            (p + usize::from(pr), wr + usize::from(pr && next))
        });
    Ok(Misspeculation {
        predicted: p,
        wrong: wr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{sparse_vec, Rng};
    use proptest::prelude::*;

    /// Reference: full sort by (|w| desc, index asc).
    fn reference(w: &[f32], s: f64) -> Vec<bool> {
        let k = kept_count(w.len(), s);
        let mut idx: Vec<usize> = (0..w.len()).collect();
        idx.sort_by(|&a, &b| w[b].abs().total_cmp(&w[a].abs()).then(a.cmp(&b)));
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
    fn s2_prediction() {
        let w = [1.0, 0.9, 0.5, 0.05, -0.85];
        let m = topk_mask(&w, 0.6).unwrap(); // k = 2, threshold 0.9
        let p = predict_stay_pruned(&w, &m, 0.1).unwrap(); // bound 0.81
        assert_eq!(p, [false, false, true, true, false]);
        let next = [true, false, true, false, false];
        assert_eq!(
            misspeculation(&p, &next).unwrap(),
            Misspeculation {
                predicted: 2,
                wrong: 1
            }
        );
        assert!(predict_stay_pruned(&w, &m, 1.0).unwrap().iter().all(|&x| !x));
    }

    proptest! {
        #[test]
        fn topk_matches_full_sort(seed in 0u64..1000, n in 1usize..200, s in 0.0f64..=1.0) {
            let mut rng = Rng::new(seed);
            // Coarse values make ties common.
            let w: Vec<f32> = sparse_vec(&mut rng, n, 0.8).iter().map(|v| (v * 4.0).round()).collect();
            let m = topk_mask(&w, s).unwrap();
            prop_assert_eq!(&m.mask, &reference(&w, s));
            prop_assert_eq!(m.mask.iter().filter(|&&k| k).count(), kept_count(n, s));
        }
    }
}
