//! Training kernels: softmax cross-entropy, SGD, top-k pruning masks, the sparsity schedule,
//! the S2 prediction and the E5M2 rounding used by the S3 prediction.

use super::{tensor, zeros};
use crate::ir::TensorData;

/// Mean softmax cross-entropy over the batch and its gradient w.r.t. the logits (times
/// `loss_scale`). Labels are class indices.
pub fn softmax_ce(logits: &TensorData, labels: &[i64], loss_scale: f32) -> (f32, TensorData) {
    let (n, c) = (logits.shape[0], logits.shape[1]);
    let mut d = zeros(&[n, c]);
    let mut loss = 0f64;
    for (b, &label) in labels.iter().enumerate().take(n) {
        let row = &logits.data[b * c..(b + 1) * c];
        let mx = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = row.iter().map(|&v| (v as f64 - mx).exp()).sum();
        loss += sum.ln() + mx - row[label as usize] as f64;
        for (j, (&v, out)) in row.iter().zip(&mut d.data[b * c..(b + 1) * c]).enumerate() {
            let p = (v as f64 - mx).exp() / sum - f64::from(j as i64 == label);
            *out = (p / n as f64) as f32 * loss_scale;
        }
    }
    ((loss / n as f64) as f32, d)
}

/// SGD hyper-parameters (PyTorch semantics: dampening 0, no Nesterov).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdParams {
    /// Learning rate.
    pub lr: f32,
    /// Momentum (0: no buffer).
    pub momentum: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
    /// The gradient is divided by this first.
    pub loss_scale: f32,
}

/// One SGD step: returns the new weights and, with a momentum buffer `v`, the new buffer.
pub fn sgd(
    p: &SgdParams,
    w: &TensorData,
    g: &TensorData,
    v: Option<&TensorData>,
) -> (TensorData, Option<TensorData>) {
    let mut nw = w.clone();
    let mut nv = v.cloned();
    for i in 0..w.data.len() {
        let gi = g.data[i] / p.loss_scale + p.weight_decay * w.data[i];
        let d = match &mut nv {
            Some(v) => {
                v.data[i] = p.momentum * v.data[i] + gi;
                v.data[i]
            }
            None => gi,
        };
        nw.data[i] = w.data[i] - p.lr * d;
    }
    (nw, nv)
}

/// Number of weights kept at sparsity `s` out of `n`: `max(1, round_half_even((1 − s)·n))`.
pub fn keep_count(n: usize, s: f64) -> usize {
    (((1.0 - s) * n as f64).round_ties_even() as usize).clamp(1, n.max(1))
}

/// Target sparsity at `step`: `s`, ramped linearly from 0 over the first `ramp_steps` steps.
pub fn scheduled_sparsity(s: f64, ramp_steps: u64, step: u64) -> f64 {
    if ramp_steps == 0 || step >= ramp_steps {
        s
    } else {
        s * step as f64 / ramp_steps as f64
    }
}

/// Indices of `w` sorted by descending magnitude, then ascending index (NaN smallest).
fn by_magnitude(w: &[f32]) -> Vec<usize> {
    let mag = |i: usize| if w[i].is_nan() { -1.0 } else { w[i].abs() };
    let mut order: Vec<usize> = (0..w.len()).collect();
    order.sort_by(|&a, &b| mag(b).total_cmp(&mag(a)).then(a.cmp(&b)));
    order
}

/// Top-k magnitude mask (1 = kept) of `w` at sparsity `s`.
pub fn topk_mask(w: &TensorData, s: f64) -> TensorData {
    let mut m = zeros(&w.shape);
    for &i in by_magnitude(&w.data).iter().take(keep_count(w.data.len(), s)) {
        m.data[i] = 1.0;
    }
    m
}

/// S2 prediction: 1 where the weight gradient must be computed (the weight is kept, or its
/// magnitude is within `margin` of the top-k threshold at sparsity `s`).
pub fn s2_predict(w: &TensorData, mask: &TensorData, s: f64, margin: f32) -> TensorData {
    let order = by_magnitude(&w.data);
    let tau = w.data[order[keep_count(w.data.len(), s) - 1]].abs();
    let data = w
        .data
        .iter()
        .zip(&mask.data)
        .map(|(&v, &m)| f32::from(m != 0.0 || v.abs() >= tau * (1.0 - margin)))
        .collect();
    tensor(&w.shape, data)
}

/// Rounds to the nearest E5M2 value (ties to even), saturating at ±57344.
pub fn round_e5m2(v: f32) -> f32 {
    if v.is_nan() {
        return v;
    }
    let h = half::f16::from_f32(v).to_bits();
    if h & 0x7c00 == 0x7c00 {
        return 57344f32.copysign(v);
    }
    let lsb = (h >> 8) & 1;
    let r = (h as u32 + 0x7f + lsb as u32) as u16 & 0xff00;
    let out = half::f16::from_bits(r).to_f32();
    if out.is_infinite() {
        57344f32.copysign(v)
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_count_rounds_half_even_and_keeps_one() {
        assert_eq!(keep_count(10, 0.9), 1);
        assert_eq!(keep_count(5, 0.9), 1);
        assert_eq!(keep_count(5, 0.5), 2); // 2.5 -> 2
        assert_eq!(keep_count(7, 0.5), 4); // 3.5 -> 4
                                           // (1 - 0.9)·35 is 3.4999999999999996 in binary floating point, as in PyTorch's script.
        assert_eq!(keep_count(35, 0.9), 3);
        assert_eq!(keep_count(144, 0.0), 144);
    }

    #[test]
    fn topk_ties_prefer_lower_index() {
        let w = tensor(&[5], vec![1.0, -2.0, 2.0, 0.5, -2.0]);
        assert_eq!(topk_mask(&w, 0.6).data, vec![0.0, 1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn e5m2_rounding() {
        assert_eq!(round_e5m2(1.0), 1.0);
        assert_eq!(round_e5m2(1.1), 1.0);
        assert_eq!(round_e5m2(1.2), 1.25);
        assert_eq!(round_e5m2(1.125), 1.0); // tie to even
        assert_eq!(round_e5m2(1.375), 1.5); // tie to even
        assert_eq!(round_e5m2(1e6), 57344.0);
    }

    #[test]
    fn ramp_schedule() {
        assert_eq!(scheduled_sparsity(0.9, 0, 0), 0.9);
        assert!((scheduled_sparsity(0.9, 100, 50) - 0.45).abs() < 1e-12);
        assert_eq!(scheduled_sparsity(0.9, 100, 200), 0.9);
    }
}
