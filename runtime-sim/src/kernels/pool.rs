//! Pooling (NCHW): max pool, average pool and global average pool, forward and backward.
//!
//! Max pool ignores padding (PyTorch pads with -inf) and routes the gradient to the first index of
//! the maximum in row-major window order. Average pool divides by the full window
//! (`count_include_pad`, PyTorch's default) or by the in-bounds taps only.

use super::conv::Padding;
use super::{check_len, invalid, Result};

/// Shape of a 2-D pooling layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolShape {
    /// Batch size.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Window (height, width).
    pub kernel: (usize, usize),
    /// Stride (vertical, horizontal).
    pub stride: (usize, usize),
    /// Zero padding.
    pub pad: Padding,
}

impl PoolShape {
    /// Output height.
    pub fn out_h(&self) -> usize {
        (self.h + self.pad.top + self.pad.bottom - self.kernel.0) / self.stride.0 + 1
    }

    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.w + self.pad.left + self.pad.right - self.kernel.1) / self.stride.1 + 1
    }

    /// Elements of the input.
    pub fn input_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    /// Elements of the output.
    pub fn output_len(&self) -> usize {
        self.n * self.c * self.out_h() * self.out_w()
    }

    fn validate(&self) -> Result<()> {
        let sizes = [
            self.n,
            self.c,
            self.h,
            self.w,
            self.kernel.0,
            self.kernel.1,
            self.stride.0,
            self.stride.1,
        ];
        if sizes.contains(&0) {
            return Err(invalid("pool shape", "sizes, window and stride must be positive"));
        }
        if self.h + self.pad.top + self.pad.bottom < self.kernel.0
            || self.w + self.pad.left + self.pad.right < self.kernel.1
        {
            return Err(invalid("pool shape", "window larger than the padded input"));
        }
        if self.pad.top.max(self.pad.bottom) >= self.kernel.0
            || self.pad.left.max(self.pad.right) >= self.kernel.1
        {
            return Err(invalid("pool shape", "padding must be smaller than the window"));
        }
        Ok(())
    }

    /// Calls `f(plane, output index in plane, in-bounds input indices in plane)` for every window.
    fn windows(&self, mut f: impl FnMut(usize, usize, &[usize])) {
        let (oh, ow) = (self.out_h(), self.out_w());
        let mut taps = Vec::with_capacity(self.kernel.0 * self.kernel.1);
        for plane in 0..self.n * self.c {
            for y in 0..oh {
                for x in 0..ow {
                    taps.clear();
                    for r in 0..self.kernel.0 {
                        let Some(ih) = (y * self.stride.0 + r)
                            .checked_sub(self.pad.top)
                            .filter(|&i| i < self.h)
                        else {
                            continue;
                        };
                        for s in 0..self.kernel.1 {
                            if let Some(iw) = (x * self.stride.1 + s)
                                .checked_sub(self.pad.left)
                                .filter(|&i| i < self.w)
                            {
                                taps.push(ih * self.w + iw);
                            }
                        }
                    }
                    f(plane, y * ow + x, &taps);
                }
            }
        }
    }
}

/// Max pool forward; returns, for every output, the flat input index of its (first) maximum.
pub fn max_pool(shape: &PoolShape, x: &[f32], y: &mut [f32]) -> Result<Vec<u32>> {
    shape.validate()?;
    check_len("pool input", x, shape.input_len())?;
    check_len("pool output", y, shape.output_len())?;
    let (ip, op) = (shape.h * shape.w, shape.out_h() * shape.out_w());
    let mut argmax = vec![0u32; y.len()];
    shape.windows(|plane, o, taps| {
        let base = plane * ip;
        let best = taps
            .iter()
            .copied()
            .fold(taps[0], |b, t| if x[base + t] > x[base + b] { t } else { b });
        y[plane * op + o] = x[base + best];
        argmax[plane * op + o] = (base + best) as u32;
    });
    Ok(argmax)
}

/// Max pool backward: `dx[argmax[o]] += dy[o]` (dx is overwritten unless `accumulate`).
pub fn max_pool_backward(dy: &[f32], argmax: &[u32], dx: &mut [f32], accumulate: bool) -> Result<()> {
    check_len("max pool argmax", argmax, dy.len())?;
    if let Some(&bad) = argmax.iter().find(|&&a| a as usize >= dx.len()) {
        return Err(invalid(
            "max pool argmax",
            format!("index {bad} outside the input"),
        ));
    }
    if !accumulate {
        dx.fill(0.0);
    }
    for (&g, &a) in dy.iter().zip(argmax) {
        dx[a as usize] += g;
    }
    Ok(())
}

/// Average pool forward.
pub fn avg_pool(shape: &PoolShape, x: &[f32], count_include_pad: bool, y: &mut [f32]) -> Result<()> {
    shape.validate()?;
    check_len("pool input", x, shape.input_len())?;
    check_len("pool output", y, shape.output_len())?;
    let (ip, op) = (shape.h * shape.w, shape.out_h() * shape.out_w());
    let full = (shape.kernel.0 * shape.kernel.1) as f32;
    shape.windows(|plane, o, taps| {
        let div = if count_include_pad {
            full
        } else {
            taps.len() as f32
        };
        y[plane * op + o] = taps.iter().map(|&t| x[plane * ip + t]).sum::<f32>() / div;
    });
    Ok(())
}

/// Average pool backward (dx is overwritten unless `accumulate`).
pub fn avg_pool_backward(
    shape: &PoolShape,
    dy: &[f32],
    count_include_pad: bool,
    dx: &mut [f32],
    accumulate: bool,
) -> Result<()> {
    shape.validate()?;
    check_len("pool output gradient", dy, shape.output_len())?;
    check_len("pool input gradient", dx, shape.input_len())?;
    if !accumulate {
        dx.fill(0.0);
    }
    let (ip, op) = (shape.h * shape.w, shape.out_h() * shape.out_w());
    let full = (shape.kernel.0 * shape.kernel.1) as f32;
    shape.windows(|plane, o, taps| {
        let div = if count_include_pad {
            full
        } else {
            taps.len() as f32
        };
        let g = dy[plane * op + o] / div;
        taps.iter().for_each(|&t| dx[plane * ip + t] += g);
    });
    Ok(())
}

/// Global average pool: `y[n, c] = mean over the hw elements of plane (n, c)`.
pub fn global_avg_pool(x: &[f32], hw: usize, y: &mut [f32]) -> Result<()> {
    check_len("global pool input", x, y.len() * hw)?;
    if hw == 0 {
        return Err(invalid("global pool", "empty planes"));
    }
    y.iter_mut()
        .zip(x.chunks_exact(hw))
        .for_each(|(o, p)| *o = p.iter().sum::<f32>() / hw as f32);
    Ok(())
}

/// Global average pool backward: `dx = dy[n, c] / hw` over every plane element.
pub fn global_avg_pool_backward(dy: &[f32], hw: usize, dx: &mut [f32]) -> Result<()> {
    check_len("global pool input gradient", dx, dy.len() * hw)?;
    if hw == 0 {
        return Err(invalid("global pool", "empty planes"));
    }
    dx.chunks_exact_mut(hw)
        .zip(dy)
        .for_each(|(p, &g)| p.fill(g / hw as f32));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, sparse_vec, Rng};

    fn shapes() -> Vec<PoolShape> {
        let base = PoolShape {
            n: 2,
            c: 3,
            h: 7,
            w: 6,
            kernel: (3, 3),
            stride: (2, 2),
            pad: Padding::uniform(1),
        };
        vec![
            base,
            PoolShape {
                kernel: (2, 2),
                pad: Padding::default(),
                ..base
            },
            PoolShape {
                kernel: (3, 2),
                stride: (1, 2),
                pad: Padding {
                    top: 2,
                    left: 0,
                    bottom: 1,
                    right: 1,
                },
                ..base
            },
        ]
    }

    /// Naive reference straight from the definition (explicit window loops, -inf padding).
    fn reference(sh: &PoolShape, x: &[f32], dy: &[f32], include_pad: bool) -> [Vec<f64>; 4] {
        let (oh, ow) = (sh.out_h(), sh.out_w());
        let mut r = [
            vec![0.0; sh.output_len()],
            vec![0.0; sh.input_len()],
            vec![0.0; sh.output_len()],
            vec![0.0; sh.input_len()],
        ];
        for pl in 0..sh.n * sh.c {
            for y in 0..oh {
                for xo in 0..ow {
                    let (mut best, mut bi, mut sum, mut cnt) = (f64::NEG_INFINITY, 0, 0.0, 0.0);
                    let mut idx = vec![];
                    for a in 0..sh.kernel.0 as isize {
                        for b in 0..sh.kernel.1 as isize {
                            let ih = (y * sh.stride.0) as isize + a - sh.pad.top as isize;
                            let iw = (xo * sh.stride.1) as isize + b - sh.pad.left as isize;
                            if ih >= 0 && iw >= 0 && (ih as usize) < sh.h && (iw as usize) < sh.w {
                                let i = pl * sh.h * sh.w + ih as usize * sh.w + iw as usize;
                                if f64::from(x[i]) > best {
                                    (best, bi) = (f64::from(x[i]), i);
                                }
                                sum += f64::from(x[i]);
                                cnt += 1.0;
                                idx.push(i);
                            }
                        }
                    }
                    let o = (pl * oh + y) * ow + xo;
                    let div = if include_pad {
                        (sh.kernel.0 * sh.kernel.1) as f64
                    } else {
                        cnt
                    };
                    r[0][o] = best;
                    r[1][bi] += f64::from(dy[o]);
                    r[2][o] = sum / div;
                    idx.iter().for_each(|&i| r[3][i] += f64::from(dy[o]) / div);
                }
            }
        }
        r
    }

    #[test]
    fn pooling_matches_naive() {
        let mut rng = Rng::new(9);
        for sh in shapes() {
            // Quantised values produce ties, exercising first-index routing.
            let x: Vec<f32> = sparse_vec(&mut rng, sh.input_len(), 0.7)
                .iter()
                .map(|v| (v * 3.0).round())
                .collect();
            let dy = sparse_vec(&mut rng, sh.output_len(), 1.0);
            for include_pad in [true, false] {
                let r = reference(&sh, &x, &dy, include_pad);
                let mut y = vec![0.0; sh.output_len()];
                let arg = max_pool(&sh, &x, &mut y).unwrap();
                assert_close(&y, &r[0], 0.0);
                let mut dx = vec![0.0; sh.input_len()];
                max_pool_backward(&dy, &arg, &mut dx, false).unwrap();
                assert_close(&dx, &r[1], 1e-6);
                avg_pool(&sh, &x, include_pad, &mut y).unwrap();
                assert_close(&y, &r[2], 1e-6);
                avg_pool_backward(&sh, &dy, include_pad, &mut dx, false).unwrap();
                assert_close(&dx, &r[3], 1e-6);
            }
        }
    }

    #[test]
    fn global_pool_and_errors() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut y = [0.0; 2];
        global_avg_pool(&x, 3, &mut y).unwrap();
        assert_eq!(y, [2.0, 5.0]);
        let mut dx = [0.0; 6];
        global_avg_pool_backward(&[3.0, 6.0], 3, &mut dx).unwrap();
        assert_eq!(dx, [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
        assert!(global_avg_pool(&x, 4, &mut y).is_err());
        assert!(max_pool_backward(&[1.0], &[99], &mut dx, false).is_err());
        let bad = PoolShape {
            kernel: (9, 9),
            ..shapes()[0]
        };
        assert!(max_pool(&bad, &[0.0; 252], &mut []).is_err());
    }
}
