//! Batch normalisation (training and eval), split into the pieces the hardware executes separately
//! so that the decoupled BN unit can fuse them into the producing/consuming layers:
//!
//! 1. [`BnStats::accumulate`]: per-channel Σx and Σx² (as the producing conv writes its outputs);
//! 2. [`BnStats::finalize`]: mean, inverse std (biased variance) and the running-statistics update
//!    (PyTorch convention: `running = (1 - momentum)·running + momentum·batch`, with the unbiased
//!    variance `var·M/(M-1)` for `running_var`);
//! 3. [`bn_apply`]: `y = γ·(x - mean)·invstd + β`, optionally fused with ReLU (as the consumer reads);
//! 4. [`BnGradStats::accumulate`]: per-channel Σdy and Σdy·x̂ (as the later layer's BP writes dy);
//! 5. [`bn_input_grad`] and [`BnGradStats::param_grads`] (dγ = Σdy·x̂, dβ = Σdy).
//!
//! Tensors are NCHW with `hw = H·W` elements per channel plane. Per-channel sums are accumulated in
//! f64 (wide accumulators), so `E[x²] - mean²` does not lose the variance to cancellation; every
//! element-wise operation is f32.

use super::{check_len, invalid, Result};
use rayon::prelude::*;
use std::ops::Range;

/// Layout of a BN input: `n` images of `c` channels of `hw` elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BnShape {
    /// Batch size.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Elements per channel plane (H·W; 1 for a BatchNorm1d over features).
    pub hw: usize,
}

impl BnShape {
    fn len(&self) -> usize {
        self.n * self.c * self.hw
    }

    /// Calls `f(channel, plane_range, plane of y)` for every (image, channel) plane of `y` (a
    /// tensor of this shape), planes in parallel when the tensor is large.
    fn planes_mut(&self, y: &mut [f32], f: impl Fn(usize, Range<usize>, &mut [f32]) + Sync) {
        let hw = self.hw.max(1);
        y.par_chunks_mut(hw)
            .enumerate()
            .with_min_len(PAR_ELEMS.div_ceil(hw))
            .for_each(|(i, plane)| f(i % self.c, i * hw..(i + 1) * hw, plane));
    }

    /// Per channel `c`, `f(c, acc, plane_range)` folded over the channel's plane ranges in image
    /// order, starting from `init[c]`: the reductions a loop over the planes would give, channels
    /// in parallel when the tensor is large.
    pub(crate) fn channel_folds<T: Copy + Send + Sync>(
        &self,
        init: &[T],
        f: impl Fn(usize, T, Range<usize>) -> T + Sync,
    ) -> Vec<T> {
        let per_channel = self.n * self.hw;
        init.par_iter()
            .enumerate()
            .with_min_len(PAR_ELEMS.div_ceil(per_channel.max(1)))
            .map(|(c, &acc)| {
                (0..self.n).fold(acc, |acc, n| {
                    let start = (n * self.c + c) * self.hw;
                    f(c, acc, start..start + self.hw)
                })
            })
            .collect()
    }
}

/// Elements of a BN tensor from which its planes or channels are split across threads.
const PAR_ELEMS: usize = 1 << 15;

/// Per-channel forward statistics Σx, Σx² over `count` elements per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct BnStats {
    /// Elements accumulated per channel.
    pub count: u64,
    /// Σx per channel.
    pub sum: Vec<f64>,
    /// Σx² per channel.
    pub sumsq: Vec<f64>,
}

/// Normalisation parameters of a BN layer for one step.
#[derive(Debug, Clone, PartialEq)]
pub struct BnNorm {
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel `1/sqrt(var + eps)`.
    pub invstd: Vec<f32>,
}

impl BnStats {
    /// Empty statistics for `c` channels.
    pub fn new(c: usize) -> Self {
        Self {
            count: 0,
            sum: vec![0.0; c],
            sumsq: vec![0.0; c],
        }
    }

    /// Adds a tensor (or a batch slice of one) with layout `shape` to the statistics.
    pub fn accumulate(&mut self, shape: &BnShape, x: &[f32]) -> Result<()> {
        check_len("BN input", x, shape.len())?;
        check_len("BN statistics", &self.sum, shape.c)?;
        let init: Vec<(f64, f64)> = self.sum.iter().copied().zip(self.sumsq.iter().copied()).collect();
        // Per plane, then into the channel's sums (the order of `BnGradStats` too).
        let sums = shape.channel_folds(&init, |_, (sum, sumsq), r| {
            let (s, q) = x[r].iter().fold((0.0f64, 0.0f64), |(s, q), &v| {
                (s + f64::from(v), q + f64::from(v) * f64::from(v))
            });
            (sum + s, sumsq + q)
        });
        (self.sum, self.sumsq) = sums.into_iter().unzip();
        self.count += (shape.n * shape.hw) as u64;
        Ok(())
    }

    /// Batch mean and inverse std (biased variance); updates the running statistics in place.
    pub fn finalize(
        &self,
        eps: f32,
        momentum: f32,
        running_mean: &mut [f32],
        running_var: &mut [f32],
    ) -> Result<BnNorm> {
        let c = self.sum.len();
        check_len("BN running mean", running_mean, c)?;
        check_len("BN running var", running_var, c)?;
        if self.count < 2 {
            return Err(invalid("BN statistics", "need at least 2 elements per channel"));
        }
        let m = self.count as f64;
        let mut norm = BnNorm {
            mean: vec![0.0; c],
            invstd: vec![0.0; c],
        };
        for ch in 0..c {
            let mean = self.sum[ch] / m;
            let var = (self.sumsq[ch] / m - mean * mean).max(0.0);
            norm.mean[ch] = mean as f32;
            norm.invstd[ch] = (1.0 / (var + f64::from(eps)).sqrt()) as f32;
            let mo = f64::from(momentum);
            running_mean[ch] = ((1.0 - mo) * f64::from(running_mean[ch]) + mo * mean) as f32;
            running_var[ch] = ((1.0 - mo) * f64::from(running_var[ch]) + mo * var * m / (m - 1.0)) as f32;
        }
        Ok(norm)
    }
}

impl BnNorm {
    /// Eval-mode normalisation from running statistics.
    pub fn from_running(running_mean: &[f32], running_var: &[f32], eps: f32) -> Result<Self> {
        check_len("BN running var", running_var, running_mean.len())?;
        Ok(Self {
            mean: running_mean.to_vec(),
            invstd: running_var.iter().map(|&v| 1.0 / (v + eps).sqrt()).collect(),
        })
    }
}

/// `y = γ·(x - mean)·invstd + β` per channel, then `max(y, 0)` when `relu`.
pub fn bn_apply(
    shape: &BnShape,
    x: &[f32],
    norm: &BnNorm,
    gamma: &[f32],
    beta: &[f32],
    relu: bool,
    y: &mut [f32],
) -> Result<()> {
    check_len("BN input", x, shape.len())?;
    check_len("BN output", y, shape.len())?;
    check_channel_params(shape, norm, &[gamma, beta])?;
    shape.planes_mut(y, |c, r, y| {
        let scale = gamma[c] * norm.invstd[c];
        let shift = beta[c] - norm.mean[c] * scale;
        for (o, &v) in y.iter_mut().zip(&x[r]) {
            let t = v * scale + shift;
            *o = if relu { t.max(0.0) } else { t };
        }
    });
    Ok(())
}

/// Per-channel backward reductions Σdy and Σdy·x̂ (x̂ recomputed from x and the step's norm).
#[derive(Debug, Clone, PartialEq)]
pub struct BnGradStats {
    /// Σdy per channel (= dβ).
    pub sum_dy: Vec<f64>,
    /// Σdy·x̂ per channel (= dγ).
    pub sum_dy_xhat: Vec<f64>,
}

impl BnGradStats {
    /// Empty reductions for `c` channels.
    pub fn new(c: usize) -> Self {
        Self {
            sum_dy: vec![0.0; c],
            sum_dy_xhat: vec![0.0; c],
        }
    }

    /// Adds `dy` (gradient w.r.t. the BN output) with the matching BN input `x`.
    pub fn accumulate(&mut self, shape: &BnShape, x: &[f32], dy: &[f32], norm: &BnNorm) -> Result<()> {
        check_len("BN input", x, shape.len())?;
        check_len("BN output gradient", dy, shape.len())?;
        check_len("BN gradient statistics", &self.sum_dy, shape.c)?;
        check_channel_params(shape, norm, &[])?;
        let init: Vec<(f64, f64)> = self
            .sum_dy
            .iter()
            .copied()
            .zip(self.sum_dy_xhat.iter().copied())
            .collect();
        let sums = shape.channel_folds(&init, |c, (sum_dy, sum_dy_xhat), r| {
            let (mean, inv) = (norm.mean[c], norm.invstd[c]);
            let (s, sx) = x[r.clone()]
                .iter()
                .zip(&dy[r])
                .fold((0.0f64, 0.0f64), |(s, sx), (&v, &g)| {
                    (s + f64::from(g), sx + f64::from(g) * f64::from((v - mean) * inv))
                });
            (sum_dy + s, sum_dy_xhat + sx)
        });
        (self.sum_dy, self.sum_dy_xhat) = sums.into_iter().unzip();
        Ok(())
    }

    /// `(dγ, dβ)` as f32.
    pub fn param_grads(&self) -> (Vec<f32>, Vec<f32>) {
        (
            self.sum_dy_xhat.iter().map(|&v| v as f32).collect(),
            self.sum_dy.iter().map(|&v| v as f32).collect(),
        )
    }
}

/// Training-mode input gradient: `dx = γ·invstd/M · (M·dy - Σdy - x̂·Σdy·x̂)` with M elements per
/// channel (`accumulate` adds into `dx`).
#[allow(clippy::too_many_arguments)]
pub fn bn_input_grad(
    shape: &BnShape,
    x: &[f32],
    dy: &[f32],
    norm: &BnNorm,
    gamma: &[f32],
    grads: &BnGradStats,
    accumulate: bool,
    dx: &mut [f32],
) -> Result<()> {
    check_len("BN input", x, shape.len())?;
    check_len("BN output gradient", dy, shape.len())?;
    check_len("BN input gradient", dx, shape.len())?;
    check_channel_params(shape, norm, &[gamma])?;
    check_len("BN gradient statistics", &grads.sum_dy, shape.c)?;
    let m = (shape.n * shape.hw) as f32;
    shape.planes_mut(dx, |c, r, dx| {
        let (mean, inv) = (norm.mean[c], norm.invstd[c]);
        let k = gamma[c] * inv / m;
        let (sdy, sdyx) = (grads.sum_dy[c] as f32, grads.sum_dy_xhat[c] as f32);
        for ((d, &v), &g) in dx.iter_mut().zip(&x[r.clone()]).zip(&dy[r]) {
            let t = k * (m * g - sdy - (v - mean) * inv * sdyx);
            *d = if accumulate { *d + t } else { t };
        }
    });
    Ok(())
}

fn check_channel_params(shape: &BnShape, norm: &BnNorm, params: &[&[f32]]) -> Result<()> {
    check_len("BN mean", &norm.mean, shape.c)?;
    check_len("BN invstd", &norm.invstd, shape.c)?;
    params
        .iter()
        .try_for_each(|p| check_len("BN affine parameter", p, shape.c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, sparse_vec, Rng};

    /// Tensors large enough to be split across threads give the bits of one loop over the
    /// planes in order (per-channel sums in image order, element-wise results).
    #[test]
    fn large_tensors_split_across_threads_as_one_loop() {
        let mut rng = Rng::new(9);
        let shape = BnShape {
            n: 3,
            c: 5,
            hw: PAR_ELEMS / 4 + 3,
        };
        let x = sparse_vec(&mut rng, shape.len(), 0.9);
        let dy = sparse_vec(&mut rng, shape.len(), 0.6);
        let gamma = sparse_vec(&mut rng, shape.c, 1.0);
        let beta = sparse_vec(&mut rng, shape.c, 1.0);
        let norm = BnNorm {
            mean: sparse_vec(&mut rng, shape.c, 1.0),
            invstd: (0..shape.c).map(|c| 1.0 + c as f32 / 8.0).collect(),
        };
        let planes = || (0..shape.n * shape.c).map(|i| (i % shape.c, i * shape.hw..(i + 1) * shape.hw));
        let mut stats = BnStats::new(shape.c);
        stats.accumulate(&shape, &x).unwrap();
        let mut grads = BnGradStats::new(shape.c);
        grads.accumulate(&shape, &x, &dy, &norm).unwrap();
        let (mut sum, mut sumsq) = (vec![0.0f64; shape.c], vec![0.0f64; shape.c]);
        let (mut sdy, mut sdyx) = (vec![0.0f64; shape.c], vec![0.0f64; shape.c]);
        for (c, r) in planes() {
            let (mut s, mut q, mut g, mut gx) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
            for i in r {
                let (v, d) = (f64::from(x[i]), f64::from(dy[i]));
                (s, q) = (s + v, q + v * v);
                (g, gx) = (g + d, gx + d * f64::from((x[i] - norm.mean[c]) * norm.invstd[c]));
            }
            (sum[c], sumsq[c], sdy[c], sdyx[c]) = (sum[c] + s, sumsq[c] + q, sdy[c] + g, sdyx[c] + gx);
        }
        assert_eq!((stats.sum, stats.sumsq), (sum, sumsq));
        assert_eq!((&grads.sum_dy, &grads.sum_dy_xhat), (&sdy, &sdyx));
        let (mut y, mut dx) = (vec![0.0; shape.len()], vec![0.0; shape.len()]);
        bn_apply(&shape, &x, &norm, &gamma, &beta, true, &mut y).unwrap();
        bn_input_grad(&shape, &x, &dy, &norm, &gamma, &grads, false, &mut dx).unwrap();
        let m = (shape.n * shape.hw) as f32;
        for (c, r) in planes() {
            let scale = gamma[c] * norm.invstd[c];
            let shift = beta[c] - norm.mean[c] * scale;
            let k = gamma[c] * norm.invstd[c] / m;
            for i in r {
                assert_eq!(y[i].to_bits(), (x[i] * scale + shift).max(0.0).to_bits());
                let xh = (x[i] - norm.mean[c]) * norm.invstd[c];
                let t = k * (m * dy[i] - sdy[c] as f32 - xh * sdyx[c] as f32);
                assert_eq!(dx[i].to_bits(), t.to_bits());
            }
        }
    }

    #[test]
    fn bn_forward_backward_match_naive() {
        let mut rng = Rng::new(5);
        let shape = BnShape { n: 3, c: 4, hw: 10 };
        let x: Vec<f32> = sparse_vec(&mut rng, shape.len(), 1.0)
            .iter()
            .map(|v| 3.0 * v + 0.5)
            .collect();
        let dy = sparse_vec(&mut rng, shape.len(), 0.8);
        let gamma = sparse_vec(&mut rng, 4, 1.0);
        let beta = sparse_vec(&mut rng, 4, 1.0);
        let (eps, mom) = (1e-5f32, 0.1f32);
        let mut stats = BnStats::new(4);
        // Accumulate in two batch slices to exercise incremental accumulation.
        let half = BnShape { n: 1, ..shape };
        stats.accumulate(&half, &x[..40]).unwrap();
        stats.accumulate(&BnShape { n: 2, ..shape }, &x[40..]).unwrap();
        let (mut rm, mut rv) = (vec![0.0f32; 4], vec![1.0f32; 4]);
        let norm = stats.finalize(eps, mom, &mut rm, &mut rv).unwrap();
        let mut y = vec![0.0; shape.len()];
        bn_apply(&shape, &x, &norm, &gamma, &beta, true, &mut y).unwrap();
        let mut gs = BnGradStats::new(4);
        gs.accumulate(&shape, &x, &dy, &norm).unwrap();
        let mut dx = vec![0.0; shape.len()];
        bn_input_grad(&shape, &x, &dy, &norm, &gamma, &gs, false, &mut dx).unwrap();
        let (dg, db) = gs.param_grads();

        let m = 30.0f64;
        let (mut ry, mut rdx) = (vec![0.0f64; shape.len()], vec![0.0f64; shape.len()]);
        for c in 0..4 {
            let idx: Vec<usize> = (0..3)
                .flat_map(|n| (0..10).map(move |i| (n * 4 + c) * 10 + i))
                .collect();
            let mean = idx.iter().map(|&i| f64::from(x[i])).sum::<f64>() / m;
            let var = idx.iter().map(|&i| (f64::from(x[i]) - mean).powi(2)).sum::<f64>() / m;
            assert!((f64::from(rm[c]) - 0.1 * mean).abs() < 1e-5);
            assert!((f64::from(rv[c]) - (0.9 + 0.1 * var * m / (m - 1.0))).abs() < 1e-5);
            let inv = 1.0 / (var + 1e-5).sqrt();
            let xh: Vec<f64> = idx.iter().map(|&i| (f64::from(x[i]) - mean) * inv).collect();
            let sdy: f64 = idx.iter().map(|&i| f64::from(dy[i])).sum();
            let sdyx: f64 = idx.iter().zip(&xh).map(|(&i, h)| f64::from(dy[i]) * h).sum();
            assert!((f64::from(db[c]) - sdy).abs() < 1e-5 && (f64::from(dg[c]) - sdyx).abs() < 1e-4);
            for (&i, h) in idx.iter().zip(&xh) {
                ry[i] = (f64::from(gamma[c]) * h + f64::from(beta[c])).max(0.0);
                rdx[i] = f64::from(gamma[c]) * inv / m * (m * f64::from(dy[i]) - sdy - h * sdyx);
            }
        }
        assert_close(&y, &ry, 1e-5);
        assert_close(&dx, &rdx, 1e-4);

        // Eval form from running statistics.
        let ev = BnNorm::from_running(&rm, &rv, eps).unwrap();
        bn_apply(&shape, &x, &ev, &gamma, &beta, false, &mut y).unwrap();
        let want: Vec<f64> = (0..shape.len())
            .map(|i| {
                let c = (i / 10) % 4;
                f64::from(gamma[c]) * (f64::from(x[i]) - f64::from(rm[c])) / (f64::from(rv[c]) + 1e-5).sqrt()
                    + f64::from(beta[c])
            })
            .collect();
        assert_close(&y, &want, 1e-5);
        assert!(bn_apply(&shape, &x[1..], &ev, &gamma, &beta, false, &mut y).is_err());
    }

    /// The input gradient is the derivative of Σ G ⊙ BN(x) (training mode), by finite differences.
    #[test]
    fn bn_input_grad_matches_finite_differences() {
        let mut rng = Rng::new(6);
        let shape = BnShape { n: 2, c: 2, hw: 6 };
        let x = sparse_vec(&mut rng, shape.len(), 1.0);
        let g = sparse_vec(&mut rng, shape.len(), 1.0);
        let (gamma, beta) = (vec![1.3, -0.7], vec![0.2, 0.1]);
        let forward = |x: &[f32]| -> (f64, BnNorm) {
            let mut st = BnStats::new(2);
            st.accumulate(&shape, x).unwrap();
            let norm = st.finalize(1e-5, 0.1, &mut [0.0; 2], &mut [1.0; 2]).unwrap();
            let mut y = vec![0.0; shape.len()];
            bn_apply(&shape, x, &norm, &gamma, &beta, false, &mut y).unwrap();
            (
                y.iter().zip(&g).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum(),
                norm,
            )
        };
        let (base, norm) = forward(&x);
        let mut gs = BnGradStats::new(2);
        gs.accumulate(&shape, &x, &g, &norm).unwrap();
        let mut dx = vec![0.0; shape.len()];
        bn_input_grad(&shape, &x, &g, &norm, &gamma, &gs, false, &mut dx).unwrap();
        for i in 0..shape.len() {
            let mut xp = x.clone();
            xp[i] += 1e-3;
            let fd = (forward(&xp).0 - base) / 1e-3;
            assert!(
                (fd - f64::from(dx[i])).abs() < 2e-2,
                "dx[{i}] fd {fd} vs {}",
                dx[i]
            );
        }
    }
}
