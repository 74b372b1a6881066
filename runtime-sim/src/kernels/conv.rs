//! 2-D convolution (NCHW, grouped, strided, padded, dilated): forward (FF), input gradient (BP) and
//! weight gradient (WG), with element masks and exact effective-work counters.
//!
//! Every phase is an im2col GEMM per (image, group) with `J = C/groups · R · S` reduction rows and
//! `P = OH · OW` output positions:
//!
//! - FF: `y[n,g] (Kg×P) = W_g (Kg×J) · col[n,g] (J×P)`
//! - BP: `dcol (J×P) = W_gᵀ · dy[n,g] (Kg×P)`, scattered back with col2im (padding taps dropped)
//! - WG: `dW_g (Kg×J) = Σ_n dy[n,g] · col[n,g]ᵀ`
//!
//! Weights at most [`gemm::SPARSE_DENSITY`] dense (after the weight mask) use the sparse kernel
//! [`gemm::spmm`] (work ∝ non-zero weights) instead of the dense GEMM, and a WG keep-mask at most
//! [`gemm::SDDMM_DENSITY`] dense uses [`gemm::sddmm`] (work ∝ kept gradients).
//!
//! FF and BP run in parallel over images; WG over fixed batch chunks whose partial sums are added in
//! chunk order, so results never depend on the thread count. Effective MACs are counted with
//! [`gemm::count_effective`] on the same operand views (see [`super::gemm`] for the method). MAC
//! slots are `N·K·J·P` in every phase (the same products); padding taps count as zero-operand MACs.

use super::density::{BitMatrix, Counting, WorkCounts};
use super::gemm::{self, Csr, MatRef};
use super::mask::{apply_weight_mask, bits_of, store};
use super::{check_len, invalid, Result};
use rayon::prelude::*;
use std::borrow::Cow;

/// Zero padding on each side of the input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Padding {
    /// Rows above.
    pub top: usize,
    /// Columns to the left.
    pub left: usize,
    /// Rows below.
    pub bottom: usize,
    /// Columns to the right.
    pub right: usize,
}

impl Padding {
    /// The same padding on all four sides.
    pub fn uniform(p: usize) -> Self {
        Self {
            top: p,
            left: p,
            bottom: p,
            right: p,
        }
    }
}

/// Shape and hyper-parameters of a convolution layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub k: usize,
    /// Kernel height.
    pub r: usize,
    /// Kernel width.
    pub s: usize,
    /// Groups (`c` and `k` must be multiples).
    pub groups: usize,
    /// Stride (vertical, horizontal).
    pub stride: (usize, usize),
    /// Zero padding.
    pub pad: Padding,
    /// Dilation (vertical, horizontal).
    pub dilation: (usize, usize),
}

impl ConvShape {
    /// A dense (groups = 1, dilation 1) convolution with uniform stride and padding.
    pub fn simple(n: usize, c: usize, hw: usize, k: usize, rs: usize, stride: usize, pad: usize) -> Self {
        Self {
            n,
            c,
            h: hw,
            w: hw,
            k,
            r: rs,
            s: rs,
            groups: 1,
            stride: (stride, stride),
            pad: Padding::uniform(pad),
            dilation: (1, 1),
        }
    }

    /// Checks that every size is positive, groups divide the channels and the output is non-empty.
    pub fn validate(&self) -> Result<()> {
        let dims = [
            ("n", self.n),
            ("c", self.c),
            ("h", self.h),
            ("w", self.w),
            ("k", self.k),
            ("r", self.r),
            ("s", self.s),
            ("groups", self.groups),
            ("stride", self.stride.0.min(self.stride.1)),
            ("dilation", self.dilation.0.min(self.dilation.1)),
        ];
        if let Some((name, _)) = dims.iter().find(|(_, v)| *v == 0) {
            return Err(invalid("conv shape", format!("{name} must be positive")));
        }
        if !self.c.is_multiple_of(self.groups) || !self.k.is_multiple_of(self.groups) {
            return Err(invalid("conv shape", "groups must divide both c and k"));
        }
        let span_h = self.dilation.0 * (self.r - 1) + 1;
        let span_w = self.dilation.1 * (self.s - 1) + 1;
        if self.h + self.pad.top + self.pad.bottom < span_h
            || self.w + self.pad.left + self.pad.right < span_w
        {
            return Err(invalid("conv shape", "kernel larger than the padded input"));
        }
        Ok(())
    }

    /// Output height.
    pub fn out_h(&self) -> usize {
        (self.h + self.pad.top + self.pad.bottom - self.dilation.0 * (self.r - 1) - 1) / self.stride.0 + 1
    }

    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.w + self.pad.left + self.pad.right - self.dilation.1 * (self.s - 1) - 1) / self.stride.1 + 1
    }

    /// Elements of the input tensor (N, C, H, W).
    pub fn input_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    /// Elements of the weight tensor (K, C/groups, R, S).
    pub fn weight_len(&self) -> usize {
        self.k * self.j()
    }

    /// Elements of the output tensor (N, K, OH, OW).
    pub fn output_len(&self) -> usize {
        self.n * self.k * self.p()
    }

    /// Dense MAC count of one pass (`N·K·J·P`).
    pub fn macs(&self) -> u64 {
        (self.n * self.k * self.j() * self.p()) as u64
    }

    pub(crate) fn cg(&self) -> usize {
        self.c / self.groups
    }

    pub(crate) fn kg(&self) -> usize {
        self.k / self.groups
    }

    pub(crate) fn j(&self) -> usize {
        self.cg() * self.r * self.s
    }

    pub(crate) fn p(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// Calls `f(j, p, input)` for every im2col element of one group, where `input` is the offset
    /// into the group's input channels (`ci·H·W + ih·W + iw`) or `None` for a padding tap.
    pub(crate) fn walk_taps(&self, mut f: impl FnMut(usize, usize, Option<usize>)) {
        let (oh, ow) = (self.out_h(), self.out_w());
        let (sh, sw) = self.stride;
        let (dh, dw) = self.dilation;
        for ci in 0..self.cg() {
            for r in 0..self.r {
                for s in 0..self.s {
                    let j = (ci * self.r + r) * self.s + s;
                    for y in 0..oh {
                        let ih = (y * sh + r * dh)
                            .checked_sub(self.pad.top)
                            .filter(|&i| i < self.h);
                        for x in 0..ow {
                            let iw = (x * sw + s * dw)
                                .checked_sub(self.pad.left)
                                .filter(|&i| i < self.w);
                            let input = ih.zip(iw).map(|(ih, iw)| (ci * self.h + ih) * self.w + iw);
                            f(j, y * ow + x, input);
                        }
                    }
                }
            }
        }
    }

    /// im2col of one group of one image: `col` is J×P.
    ///
    /// Works row segment by row segment (the in-bounds output columns of each (j, output row) are
    /// computed once), so the inner loop is a strided gather, or a plain copy at stride 1.
    fn im2col(&self, xg: &[f32], col: &mut [f32]) {
        let (oh, ow) = (self.out_h(), self.out_w());
        let (sh, sw) = self.stride;
        let (dh, dw) = self.dilation;
        for ci in 0..self.cg() {
            for r in 0..self.r {
                for s in 0..self.s {
                    let j = (ci * self.r + r) * self.s + s;
                    // Output columns x with 0 <= x*sw + s*dw - left < w.
                    let shift = s * dw;
                    let x_lo = self.pad.left.saturating_sub(shift).div_ceil(sw).min(ow);
                    let x_hi = (self.w + self.pad.left)
                        .saturating_sub(shift)
                        .div_ceil(sw)
                        .clamp(x_lo, ow);
                    for y in 0..oh {
                        let dst = &mut col[j * oh * ow + y * ow..][..ow];
                        let ih = (y * sh + r * dh)
                            .checked_sub(self.pad.top)
                            .filter(|&i| i < self.h);
                        let Some(ih) = ih else {
                            dst.fill(0.0);
                            continue;
                        };
                        let src = &xg[(ci * self.h + ih) * self.w..][..self.w];
                        dst[..x_lo].fill(0.0);
                        dst[x_hi..].fill(0.0);
                        if x_lo == x_hi {
                            continue;
                        }
                        let first = x_lo * sw + shift - self.pad.left;
                        if sw == 1 {
                            dst[x_lo..x_hi].copy_from_slice(&src[first..first + (x_hi - x_lo)]);
                        } else {
                            for (k, d) in dst[x_lo..x_hi].iter_mut().enumerate() {
                                *d = src[first + k * sw];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Options of a convolution kernel call.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConvOpts<'a> {
    /// Add into the output instead of overwriting it.
    pub accumulate: bool,
    /// FF/BP only: use `w ⊙ mask` (same length as the weights). WG rejects it.
    pub weight_mask: Option<&'a [bool]>,
    /// Output keep-mask (same length as the phase's output: y for FF, dx for BP, dW for WG).
    /// Outputs not kept are not computed and contribute zero (written as 0 unless `accumulate`).
    pub keep: Option<&'a [bool]>,
    /// Whether to count effective MACs exactly.
    pub counting: Counting,
}

/// Forward: `y = conv(x, w ⊙ mask)` with shapes from `shape`.
pub fn conv_ff(
    shape: &ConvShape,
    x: &[f32],
    w: &[f32],
    y: &mut [f32],
    opts: &ConvOpts,
) -> Result<WorkCounts> {
    shape.validate()?;
    check_len("conv input", x, shape.input_len())?;
    check_len("conv output", y, shape.output_len())?;
    check_keep(opts.keep, shape.output_len())?;
    let w = masked_weights(shape, w, opts.weight_mask)?;
    let (kg, j, p) = (shape.kg(), shape.j(), shape.p());
    let in_plane = shape.cg() * shape.h * shape.w;
    let sparse: Vec<Option<Csr>> = (0..shape.groups)
        .map(|g| {
            Ok(sparse_rows(MatRef::row_major(
                &w[g * kg * j..(g + 1) * kg * j],
                kg,
                j,
            )?))
        })
        .collect::<Result<_>>()?;
    let per_image = |(n, yn): (usize, &mut [f32])| -> Result<WorkCounts> {
        let mut col = vec![0.0; j * p];
        let mut tmp = vec![0.0; kg * p];
        let mut counts = WorkCounts {
            exact: true,
            ..Default::default()
        };
        for g in 0..shape.groups {
            let xg = &x[(n * shape.groups + g) * in_plane..][..in_plane];
            shape.im2col(xg, &mut col);
            let wv = MatRef::row_major(&w[g * kg * j..(g + 1) * kg * j], kg, j)?;
            let colv = MatRef::row_major(&col, j, p)?;
            let keep_g = opts.keep.map(|m| &m[(n * shape.k + g * kg) * p..][..kg * p]);
            let keep = keep_g.map(|m| bits_of(m, kg, p));
            match &sparse[g] {
                Some(csr) => gemm::spmm(csr, &col, p, &mut tmp, p, false)?,
                None => gemm::gemm(wv, colv, &mut tmp, p, false)?,
            }
            store(
                &mut yn[g * kg * p..(g + 1) * kg * p],
                &tmp,
                keep_g,
                opts.accumulate,
            );
            counts += product_counts(wv, colv, keep.as_ref(), None, opts.counting);
        }
        Ok(counts)
    };
    sum_counts(y.par_chunks_mut(shape.k * p).enumerate().map(per_image).collect())
}

/// Input gradient: `dx = conv_bp(dy, w ⊙ mask)` (transposed convolution of `dy`).
///
/// With a keep-mask (speculation S1: keep only `dx` where the forward ReLU mask is non-zero) the
/// products feeding dropped elements are neither computed nor counted as effective.
pub fn conv_bp(
    shape: &ConvShape,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    opts: &ConvOpts,
) -> Result<WorkCounts> {
    shape.validate()?;
    check_len("conv output gradient", dy, shape.output_len())?;
    check_len("conv input gradient", dx, shape.input_len())?;
    check_keep(opts.keep, shape.input_len())?;
    let w = masked_weights(shape, w, opts.weight_mask)?;
    let (kg, j, p) = (shape.kg(), shape.j(), shape.p());
    let in_plane = shape.cg() * shape.h * shape.w;
    let sparse: Vec<Option<Csr>> = (0..shape.groups)
        .map(|g| {
            Ok(sparse_rows(
                MatRef::row_major(&w[g * kg * j..(g + 1) * kg * j], kg, j)?.t(),
            ))
        })
        .collect::<Result<_>>()?;
    let per_image = |(n, dxn): (usize, &mut [f32])| -> Result<WorkCounts> {
        let mut dcol = vec![0.0; j * p];
        let mut tmp = vec![0.0; in_plane];
        let mut counts = WorkCounts {
            exact: true,
            ..Default::default()
        };
        for g in 0..shape.groups {
            let wv = MatRef::row_major(&w[g * kg * j..(g + 1) * kg * j], kg, j)?.t();
            let dyv = MatRef::row_major(&dy[(n * shape.k + g * kg) * p..][..kg * p], kg, p)?;
            let dyg = &dy[(n * shape.k + g * kg) * p..][..kg * p];
            match &sparse[g] {
                Some(csr) => gemm::spmm(csr, dyg, p, &mut dcol, p, false)?,
                None => gemm::gemm(wv, dyv, &mut dcol, p, false)?,
            }
            tmp.fill(0.0);
            shape.walk_taps(|jj, q, i| {
                if let Some(i) = i {
                    tmp[i] += dcol[jj * p + q];
                }
            });
            let keep_in = opts
                .keep
                .map(|m| &m[(n * shape.groups + g) * in_plane..][..in_plane]);
            store(
                &mut dxn[g * in_plane..(g + 1) * in_plane],
                &tmp,
                keep_in,
                opts.accumulate,
            );
            // Products whose target is padding or a dropped element are not computed.
            let mut keep_col = BitMatrix::zeros(j, p);
            let mut valid = 0usize;
            shape.walk_taps(|jj, q, i| {
                if let Some(i) = i {
                    valid += 1;
                    if keep_in.is_none_or(|m| m[i]) {
                        keep_col.set(jj, q);
                    }
                }
            });
            let dropped = (valid as u64 - keep_col.count()) * kg as u64;
            let mut c = product_counts(wv, dyv, Some(&keep_col), Some(dropped), opts.counting);
            c.outputs = in_plane as u64;
            c.outputs_skipped = keep_in.map_or(0, |m| m.iter().filter(|&&k| !k).count() as u64);
            counts += c;
        }
        Ok(counts)
    };
    sum_counts(
        dx.par_chunks_mut(shape.c * shape.h * shape.w)
            .enumerate()
            .map(per_image)
            .collect(),
    )
}

/// Number of batch chunks WG works on in parallel; their partial sums are added in chunk order.
const WG_CHUNKS: usize = 4;

/// Weight gradient: `dW = Σ_n dy[n] ⋆ x[n]`.
///
/// With a keep-mask (speculation S2 / sparse WG) only the selected weight gradients are computed.
pub fn conv_wg(
    shape: &ConvShape,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    opts: &ConvOpts,
) -> Result<WorkCounts> {
    shape.validate()?;
    check_len("conv input", x, shape.input_len())?;
    check_len("conv output gradient", dy, shape.output_len())?;
    check_len("conv weight gradient", dw, shape.weight_len())?;
    check_keep(opts.keep, shape.weight_len())?;
    if opts.weight_mask.is_some() {
        return Err(invalid(
            "conv WG options",
            "a weight mask does not apply to WG; use the keep-mask",
        ));
    }
    let (kg, j, p) = (shape.kg(), shape.j(), shape.p());
    let in_plane = shape.cg() * shape.h * shape.w;
    let keeps: Vec<Option<BitMatrix>> = (0..shape.groups)
        .map(|g| {
            opts.keep
                .map(|m| bits_of(&m[g * kg * j..(g + 1) * kg * j], kg, j))
        })
        .collect();
    let keep_slices: Vec<Option<&[bool]>> = (0..shape.groups)
        .map(|g| opts.keep.map(|m| &m[g * kg * j..(g + 1) * kg * j]))
        .collect();
    let sparse_keep = opts
        .keep
        .is_some_and(|m| m.iter().filter(|&&k| k).count() as f64 <= gemm::SDDMM_DENSITY * m.len() as f64);
    let chunk = shape.n.div_ceil(WG_CHUNKS);
    let partials: Vec<Result<(Vec<f32>, WorkCounts)>> = (0..shape.n.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let mut acc = vec![0.0; shape.weight_len()];
            let mut col = vec![0.0; j * p];
            let mut counts = WorkCounts {
                exact: true,
                ..Default::default()
            };
            for n in c * chunk..((c + 1) * chunk).min(shape.n) {
                for (g, keep) in keeps.iter().enumerate() {
                    shape.im2col(&x[(n * shape.groups + g) * in_plane..][..in_plane], &mut col);
                    let dyg = &dy[(n * shape.k + g * kg) * p..][..kg * p];
                    let dyv = MatRef::row_major(dyg, kg, p)?;
                    let colv = MatRef::row_major(&col, j, p)?.t();
                    let acc_g = &mut acc[g * kg * j..(g + 1) * kg * j];
                    match keep_slices[g] {
                        Some(keep) if sparse_keep => gemm::sddmm(dyg, &col, p, keep, acc_g)?,
                        _ => gemm::gemm(dyv, colv, acc_g, j, true)?,
                    }
                    counts += product_counts(dyv, colv, keep.as_ref(), None, opts.counting);
                }
            }
            Ok((acc, counts))
        })
        .collect();
    let mut total = vec![0.0f32; shape.weight_len()];
    let mut counts = WorkCounts {
        exact: true,
        ..Default::default()
    };
    for part in partials {
        let (acc, c) = part?;
        total.iter_mut().zip(&acc).for_each(|(t, a)| *t += a);
        counts += c;
    }
    store(dw, &total, opts.keep, opts.accumulate);
    // The products above counted outputs per image; the outputs are the weight gradients.
    counts.outputs = shape.weight_len() as u64;
    counts.outputs_skipped = opts.keep.map_or(0, |m| m.iter().filter(|&&k| !k).count() as u64);
    Ok(counts)
}

/// Counters of one `A·B` product with an optional keep-mask; `dropped` overrides the number of MAC
/// slots excluded by the keep-mask (BP, where the mask lives on scattered outputs).
fn product_counts(
    a: MatRef,
    b: MatRef,
    keep: Option<&BitMatrix>,
    dropped: Option<u64>,
    counting: Counting,
) -> WorkCounts {
    let (m, k, n) = (a.rows() as u64, a.cols() as u64, b.cols() as u64);
    let slots = m * k * n;
    let kept_outputs = keep.map_or(m * n, |kb| kb.count());
    let masked_out = dropped.unwrap_or((m * n - kept_outputs) * k);
    let (exact, effective) = match counting {
        Counting::Exact => (true, gemm::count_effective(a, b, keep)),
        Counting::SlotsOnly => (false, 0),
    };
    WorkCounts {
        mac_slots: slots,
        effective,
        zero_operand: if exact { slots - effective - masked_out } else { 0 },
        masked_out,
        outputs: m * n,
        outputs_skipped: m * n - kept_outputs,
        exact,
    }
}

fn check_keep(keep: Option<&[bool]>, len: usize) -> Result<()> {
    keep.map_or(Ok(()), |m| check_len("keep-mask", m, len))
}

/// Checks the weight length and returns `w ⊙ mask`.
fn masked_weights<'w>(shape: &ConvShape, w: &'w [f32], mask: Option<&[bool]>) -> Result<Cow<'w, [f32]>> {
    check_len("conv weights", w, shape.weight_len())?;
    apply_weight_mask(w, mask)
}

/// CSR of a weight view when it is sparse enough for [`gemm::spmm`].
fn sparse_rows(w: MatRef) -> Option<Csr> {
    let csr = Csr::from_view(w);
    (csr.density() <= gemm::SPARSE_DENSITY).then_some(csr)
}

fn sum_counts(parts: Vec<Result<WorkCounts>>) -> Result<WorkCounts> {
    let mut total = WorkCounts {
        exact: true,
        ..Default::default()
    };
    for p in parts {
        total += p?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
