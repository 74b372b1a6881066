//! Batch normalization in training mode, split the way the hardware splits it: statistics,
//! finalize (mean, inverse deviation, running statistics), apply, backward reduction, backward.
//!
//! A BN block is `[4, C]`: mean `μ`, inverse deviation `σ⁻¹ = 1/√(var + eps)`, `γ`, `β`.

use super::{nc_rest, tensor, zeros};
use crate::ir::TensorData;

/// Per-channel `[Σx, Σx²]` as a `[2, C]` tensor (accumulated in f64).
pub fn stats(x: &TensorData) -> TensorData {
    let (n, c, hw) = nc_rest(&x.shape);
    let mut s = vec![0f64; 2 * c];
    for b in 0..n {
        for ch in 0..c {
            for &v in &x.data[(b * c + ch) * hw..(b * c + ch + 1) * hw] {
                s[ch] += v as f64;
                s[c + ch] += (v as f64) * (v as f64);
            }
        }
    }
    tensor(&[2, c], s.into_iter().map(|v| v as f32).collect())
}

/// Hyper-parameters of [`finalize`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BnParams {
    /// Elements per channel that `stats` summed (`N·H·W`).
    pub count: usize,
    /// Added to the variance.
    pub eps: f64,
    /// PyTorch convention: weight of the *new* statistic in the running average.
    pub momentum: f64,
}

/// From `[Σx, Σx²]`, `γ`, `β` and the running statistics: the BN block `[4, C]` and the new
/// running mean and variance (the variance takes the unbiased batch variance, as PyTorch).
pub fn finalize(
    p: &BnParams,
    stats: &TensorData,
    gamma: &TensorData,
    beta: &TensorData,
    rm: &TensorData,
    rv: &TensorData,
) -> (TensorData, TensorData, TensorData) {
    let c = gamma.data.len();
    let m = p.count as f64;
    let mut block = zeros(&[4, c]);
    let (mut nrm, mut nrv) = (rm.clone(), rv.clone());
    for ch in 0..c {
        let mean = stats.data[ch] as f64 / m;
        let var = (stats.data[c + ch] as f64 / m - mean * mean).max(0.0);
        block.data[ch] = mean as f32;
        block.data[c + ch] = (1.0 / (var + p.eps).sqrt()) as f32;
        block.data[2 * c + ch] = gamma.data[ch];
        block.data[3 * c + ch] = beta.data[ch];
        let unbiased = if p.count > 1 { var * m / (m - 1.0) } else { var };
        nrm.data[ch] = ((1.0 - p.momentum) * rm.data[ch] as f64 + p.momentum * mean) as f32;
        nrv.data[ch] = ((1.0 - p.momentum) * rv.data[ch] as f64 + p.momentum * unbiased) as f32;
    }
    (block, nrm, nrv)
}

/// `x̂ = (x − μ)·σ⁻¹` of element `v` in channel `ch` of a block for `c` channels.
fn xhat(block: &TensorData, c: usize, ch: usize, v: f32) -> f32 {
    (v - block.data[ch]) * block.data[c + ch]
}

/// Calls `f(flat index, channel)` over an `[N, C, ...]` tensor.
fn each_nc(shape: &[usize], mut f: impl FnMut(usize, usize)) {
    let (n, c, hw) = nc_rest(shape);
    for b in 0..n {
        for ch in 0..c {
            for i in 0..hw {
                f((b * c + ch) * hw + i, ch);
            }
        }
    }
}

/// `y = γ·x̂ + β`.
pub fn apply(x: &TensorData, block: &TensorData) -> TensorData {
    let c = block.shape[1];
    let mut y = zeros(&x.shape);
    each_nc(&x.shape, |i, ch| {
        y.data[i] = block.data[2 * c + ch] * xhat(block, c, ch, x.data[i]) + block.data[3 * c + ch]
    });
    y
}

/// Backward reduction: `(dγ, dβ) = (Σ dy·x̂, Σ dy)` per channel.
pub fn bwd_reduce(dy: &TensorData, x: &TensorData, block: &TensorData) -> (TensorData, TensorData) {
    let c = block.shape[1];
    let (mut dg, mut db) = (vec![0f64; c], vec![0f64; c]);
    each_nc(&x.shape, |i, ch| {
        dg[ch] += (dy.data[i] * xhat(block, c, ch, x.data[i])) as f64;
        db[ch] += dy.data[i] as f64;
    });
    let t = |v: Vec<f64>| tensor(&[c], v.into_iter().map(|v| v as f32).collect());
    (t(dg), t(db))
}

/// Input gradient `dx = γσ⁻¹/M·(M·dy − dβ − x̂·dγ)` with `M = N·H·W`.
pub fn bwd(
    dy: &TensorData,
    x: &TensorData,
    block: &TensorData,
    dgamma: &TensorData,
    dbeta: &TensorData,
) -> TensorData {
    let c = block.shape[1];
    let (n, _, hw) = nc_rest(&x.shape);
    let m = (n * hw) as f32;
    let mut dx = zeros(&x.shape);
    each_nc(&x.shape, |i, ch| {
        let k = block.data[2 * c + ch] * block.data[c + ch] / m;
        dx.data[i] = k * (m * dy.data[i] - dbeta.data[ch] - xhat(block, c, ch, x.data[i]) * dgamma.data[ch]);
    });
    dx
}
