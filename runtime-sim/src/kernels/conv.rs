//! 2-D convolution (NCHW, grouped, strided, padded, dilated): forward (FF), input gradient (BP) and
//! weight gradient (WG), with element masks and exact effective-work counters.
//!
//! Every phase is an im2col GEMM with `J = C/groups · R · S` reduction rows and `P = OH · OW`
//! output positions:
//!
//! - FF: `y[n,g] (Kg×P) = W_g (Kg×J) · col[n,g] (J×P)`; [`conv_ff_cols`] (the simulator's path)
//!   multiplies the images of a call side by side, `W_g · [col[0,g] … col[N-1,g]]` (J×N·P)
//! - BP: `dcol (J×P) = W_gᵀ · dy[n,g] (Kg×P)`, scattered back with col2im (padding taps dropped);
//!   at stride 1 with sparse weights, a forward convolution of dy instead (see `bp`)
//! - WG: `dW_g (Kg×J) = Σ_n dy[n,g] · col[n,g]ᵀ`, as one product over the batch
//!   (`dy_g` Kg×N·P times the side-by-side im2col transposed)
//!
//! Weights at most [`gemm::SPARSE_DENSITY`] dense (after the weight mask) use the sparse kernel
//! [`gemm::spmm`] (work ∝ non-zero weights) instead of the dense GEMM, and a WG keep-mask at most
//! [`gemm::SDDMM_DENSITY`] dense uses [`gemm::sddmm`] (work ∝ kept gradients).
//!
//! FF and BP run in parallel over images or row blocks, WG over one block of output channels per
//! thread; no sum is split by thread, so results never depend on the thread count. Effective MACs are
//! counted with [`gemm::count_effective`] on the same operand views (see [`super::gemm`] for the
//! method). MAC slots are `N·K·J·P` in every phase (the same products); padding taps count as
//! zero-operand MACs.

use super::density::{bits_at, bool_bitmap, strided_bits, BitMatrix, Counting, WorkCounts};
use super::gemm::{self, Csr, MatRef};
use super::mask::{apply_mask, apply_weight_mask, store};
use super::{check_len, invalid, Result};
use rayon::prelude::*;
use std::borrow::Cow;
use std::ops::Range;

mod bp;
mod operand;
pub use bp::conv_bp;
pub use operand::OperandB;

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

    /// Calls `f` for every run of in-bounds taps of one group's im2col matrix, in (input channel,
    /// kernel row, kernel column, output row) order; padding taps belong to no span.
    pub(crate) fn for_each_span(&self, mut f: impl FnMut(TapSpan)) {
        (0..self.j()).for_each(|j| self.row_spans(j, &mut f));
    }

    /// Calls `f` for the runs of in-bounds taps of im2col row `j` (one per output row that has
    /// any), in output-row order.
    pub(crate) fn row_spans(&self, j: usize, f: impl FnMut(TapSpan)) {
        let rs = self.r * self.s;
        if let Some(b) = self.kernel_in(j % rs) {
            self.spans_in(j, j / rs, self.out_w(), b, f);
        }
    }

    /// The output rows and columns whose kernel position `k = r·S + s` lands inside the input.
    fn kernel_in(&self, k: usize) -> Option<(InBounds, InBounds)> {
        self.rows_in(k / self.s).zip(self.cols_in(k % self.s))
    }

    /// The spans of im2col row `j` (input channel `ci`, output width `ow`) within `(ys, xs)`.
    fn spans_in(
        &self,
        j: usize,
        ci: usize,
        ow: usize,
        (ys, xs): (InBounds, InBounds),
        mut f: impl FnMut(TapSpan),
    ) {
        let base = ci * self.h * self.w + xs.first;
        for y in ys.lo..ys.hi {
            let ih = ys.first + (y - ys.lo) * self.stride.0;
            f(TapSpan {
                j,
                q: y * ow + xs.lo,
                len: xs.hi - xs.lo,
                src: base + ih * self.w,
            });
        }
    }

    /// The tap geometry of every kernel position, for counting many im2col rows.
    pub(crate) fn tap_table(&self) -> TapTable {
        TapTable {
            shape: *self,
            ow: self.out_w(),
            kernel: (0..self.r * self.s).map(|k| self.kernel_in(k)).collect(),
        }
    }

    /// Output rows whose kernel row `r` lands inside the input.
    fn rows_in(&self, r: usize) -> Option<InBounds> {
        InBounds::new(
            r * self.dilation.0,
            self.pad.top,
            self.stride.0,
            self.h,
            self.out_h(),
        )
    }

    /// Output columns whose kernel column `s` lands inside the input.
    fn cols_in(&self, s: usize) -> Option<InBounds> {
        InBounds::new(
            s * self.dilation.1,
            self.pad.left,
            self.stride.1,
            self.w,
            self.out_w(),
        )
    }

    /// Number of in-bounds non-zero taps of every im2col row (J counts) of one group, summed over
    /// images, given `nz`, the number of images non-zero at every input position of the group
    /// (`ci·H·W + ih·W + iw`): at stride 1 from each plane's row and column totals
    /// ([`ConvShape::window_counts`]), otherwise from prefix sums of `nz` taken along the stride
    /// lattice.
    pub(crate) fn tap_row_counts(&self, nz: &[u32]) -> Vec<u64> {
        if self.stride == (1, 1) {
            return self.window_counts(nz);
        }
        let (h, w) = (self.h, self.w);
        let (sh, sw) = self.stride;
        // sums[i][k] = Σ nz(i', k') over i' ≤ i, i' ≡ i (mod sh), k' ≤ k, k' ≡ k (mod sw): the
        // prefix of row i along its lattice plus sums[i − sh][k].
        let mut sums = vec![0u32; self.cg() * h * w];
        for (plane, xp) in sums.chunks_exact_mut(h * w).zip(nz.chunks_exact(h * w)) {
            for (i, xr) in xp.chunks_exact(w).enumerate() {
                let (above, row) = plane.split_at_mut(i * w);
                let row = &mut row[..w];
                if sw == 1 {
                    let mut run = 0;
                    for (r, &x) in row.iter_mut().zip(xr) {
                        run += x;
                        *r = run;
                    }
                } else {
                    for k in 0..w {
                        row[k] = xr[k] + if k >= sw { row[k - sw] } else { 0 };
                    }
                }
                if i >= sh {
                    row.iter_mut()
                        .zip(&above[(i - sh) * w..][..w])
                        .for_each(|(v, &a)| *v += a);
                }
            }
        }
        // Per kernel position, the corners of its window in a plane's sums: the count is
        // `sums[last] + sums[before] − sums[above] − sums[left]` (a corner outside the plane adds 0).
        let corners: Vec<Option<[Option<usize>; 4]>> = (0..self.r * self.s)
            .map(|k| {
                let (ys, xs) = self.kernel_in(k)?;
                let at = |i: Option<usize>, k: Option<usize>| i.zip(k).map(|(i, k)| i * w + k);
                let (il, kl) = (Some(ys.last(sh)), Some(xs.last(sw)));
                let (i0, k0) = (ys.first.checked_sub(sh), xs.first.checked_sub(sw));
                Some([at(il, kl), at(i0, k0), at(i0, kl), at(il, k0)])
            })
            .collect();
        sums.chunks_exact(h * w)
            .flat_map(|plane| {
                corners.iter().map(move |c| {
                    c.map_or(0, |c| {
                        let [last, before, above, left] = c.map(|at| at.map_or(0, |at| u64::from(plane[at])));
                        last + before - above - left
                    })
                })
            })
            .collect()
    }

    /// [`ConvShape::tap_row_counts`] at stride 1, where the in-bounds taps of a kernel position
    /// read a rectangle of input rows and columns: its count is the plane's total, less the totals
    /// of the rows and of the columns outside it, plus the positions outside both (subtracted
    /// twice). One pass over each plane for its row and column totals, then a few terms per
    /// kernel position (a rectangle leaves out about the padding's rows and columns).
    fn window_counts(&self, nz: &[u32]) -> Vec<u64> {
        let (h, w) = (self.h, self.w);
        // Per kernel position, its rectangle's rows and columns.
        let windows: Vec<Option<[Range<usize>; 2]>> = (0..self.r * self.s)
            .map(|k| {
                let (ys, xs) = self.kernel_in(k)?;
                Some([ys.first..ys.last(1) + 1, xs.first..xs.last(1) + 1])
            })
            .collect();
        let (mut rows, mut cols) = (vec![0u64; h], vec![0u32; w]);
        let mut counts = Vec::with_capacity(self.j());
        for plane in nz.chunks_exact(h * w) {
            // A column's total is at most H·N (N images), far below u32's range.
            cols.fill(0);
            for (total, row) in rows.iter_mut().zip(plane.chunks_exact(w)) {
                *total = row.iter().map(|&v| u64::from(v)).sum();
                cols.iter_mut().zip(row).for_each(|(c, &v)| *c += v);
            }
            let total: u64 = rows.iter().sum();
            for window in &windows {
                let Some([ys, xs]) = window else {
                    counts.push(0);
                    continue;
                };
                // The indices below `n` outside `inside`.
                let outside = |inside: &Range<usize>, n: usize| (0..inside.start).chain(inside.end..n);
                let mut count = total;
                for i in outside(ys, h) {
                    count -= rows[i];
                    for k in outside(xs, w) {
                        count += u64::from(plane[i * w + k]);
                    }
                }
                for k in outside(xs, w) {
                    count -= u64::from(cols[k]);
                }
                counts.push(count);
            }
        }
        counts
    }

    /// The im2col bit matrix of one group of images side by side (J×(N·P), image `n` at columns
    /// `n·P..(n + 1)·P`) from every image's per-input bit vector `inputs[n]` (bit
    /// `ci·H·W + ih·W + iw`); padding taps are 0.
    pub(crate) fn tap_bits(&self, inputs: &[Vec<u64>]) -> BitMatrix {
        let p = self.p();
        let mut m = BitMatrix::zeros(self.j(), inputs.len() * p);
        let (sw, rs, plane) = (self.stride.1, self.r * self.s, self.h * self.w);
        let table = self.tap_table();
        // A span's bits, 64 at a time.
        let copy = |m: &mut BitMatrix, input: &[u64], j: usize, at: usize, t: TapSpan| {
            for done in (0..t.len).step_by(64) {
                let n = (t.len - done).min(64);
                m.or_bits(
                    j,
                    at + t.q + done,
                    strided_bits(input, t.src + done * sw, sw, n),
                    n,
                );
            }
        };
        // Per kernel position with a run: the run and its output positions other than padding.
        let runs: Vec<_> = (0..rs)
            .map(|k| table.run(k).map(|r| (r.unpadded(p), r)))
            .collect();
        for j in 0..self.j() {
            for (at, input) in (0..).step_by(p).zip(inputs) {
                match &runs[j % rs] {
                    // Word by word of the output positions: the run's bits there, but padding.
                    Some((unpadded, run)) => {
                        let src = j / rs * plane + run.src;
                        for (i, &keep) in unpadded.iter().enumerate() {
                            let (first, n) = (64 * i, (p - 64 * i).min(64));
                            let (lo, hi) = (first.max(run.q.start), (first + n).min(run.q.end));
                            if lo < hi {
                                let from = src + (lo - run.q.start);
                                let bits = bits_at(input, from, hi - lo) << (lo - first);
                                m.or_bits(j, at + first, bits & keep, n);
                            }
                        }
                    }
                    None => table.spans(j, |t| copy(&mut m, input, j, at, t)),
                }
            }
        }
        m
    }

    /// [`ConvShape::tap_bits`] of the keep-masks over one group's input of every image
    /// (`keeps[n]`; `None`: all kept), i.e. the in-bounds taps whose input is kept.
    pub(crate) fn kept_taps<'k>(&self, keeps: impl IntoIterator<Item = Option<&'k [bool]>>) -> BitMatrix {
        let all = || vec![u64::MAX; (self.cg() * self.h * self.w).div_ceil(64)];
        let inputs: Vec<Vec<u64>> = keeps
            .into_iter()
            .map(|k| k.map_or_else(all, bool_bitmap))
            .collect();
        self.tap_bits(&inputs)
    }

    /// For every input position of one channel (`ih·W + iw`), the sum of `per_q[q]` over the
    /// in-bounds taps (any kernel position, output position `q`) that read it; `None` counts the
    /// taps.
    pub(crate) fn tap_sums(&self, per_q: Option<&[u64]>) -> Vec<u64> {
        let mut sums = vec![0; self.h * self.w];
        let sw = self.stride.1;
        for j in 0..self.r * self.s {
            self.row_spans(j, |t| {
                for k in 0..t.len {
                    sums[t.src + k * sw] += per_q.map_or(1, |c| c[t.q + k]);
                }
            });
        }
        sums
    }

    /// Number of non-zero in-bounds taps of every output position (columns of one group's
    /// im2col matrix of input `xg`): the non-zeros across channels of every input position,
    /// summed over the taps reading it.
    pub(crate) fn tap_counts(&self, xg: &[f32]) -> Vec<u64> {
        let plane = self.h * self.w;
        let mut across = vec![0u64; plane];
        for ch in xg.chunks_exact(plane) {
            across
                .iter_mut()
                .zip(ch)
                .for_each(|(c, &x)| *c += u64::from(x != 0.0));
        }
        let mut counts = vec![0; self.p()];
        let sw = self.stride.1;
        for j in 0..self.r * self.s {
            self.row_spans(j, |t| {
                let dst = &mut counts[t.q..t.q + t.len];
                dst.iter_mut()
                    .enumerate()
                    .for_each(|(k, c)| *c += across[t.src + k * sw]);
            });
        }
        counts
    }

    /// `y (Kg×P) = W·col` of one group with `W` in CSR, straight from the input (no im2col):
    /// every non-zero weight adds its scaled input spans in CSR order, the order [`gemm::spmm`]
    /// adds them in (padding taps would add ±0 to sums that start at +0: no change).
    fn sparse_ff(&self, taps: &TapTable, w: &Csr, xg: &[f32], y: &mut [f32]) {
        let (p, sw) = (self.p(), self.stride.1);
        y.fill(0.0);
        for (m, row) in y.chunks_exact_mut(p).enumerate() {
            for (jj, v) in w.row(m) {
                taps.spans(jj, |t| {
                    let dst = &mut row[t.q..t.q + t.len];
                    if sw == 1 {
                        let src = &xg[t.src..t.src + t.len];
                        dst.iter_mut().zip(src).for_each(|(o, &x)| *o += v * x);
                    } else {
                        dst.iter_mut()
                            .enumerate()
                            .for_each(|(k, o)| *o += v * xg[t.src + k * sw]);
                    }
                });
            }
        }
    }

    /// im2col of group `g` of every image, side by side: a J×(N·P) matrix whose columns
    /// `n·P..(n + 1)·P` are image `n`'s J×P im2col (one long row per tap for the GEMMs).
    /// Built row by row as [`ConvShape::im2col_batch_row`] does, each row zeroed while it is in
    /// cache and then written (one long copy per image instead of one per output row, and no
    /// zeroing pass over the whole matrix).
    pub(crate) fn im2col_batch(&self, x: &[f32], g: usize) -> Vec<f32> {
        let (p, in_plane) = (self.p(), self.cg() * self.h * self.w);
        let taps = self.tap_table();
        let mut col = Vec::with_capacity(self.j() * self.n * p);
        for j in 0..self.j() {
            let start = col.len();
            col.resize(start + self.n * p, 0.0);
            for (n, part) in col[start..].chunks_exact_mut(p).enumerate() {
                self.im2col_part(&taps, &x[(n * self.groups + g) * in_plane..][..in_plane], j, part);
            }
        }
        col
    }

    /// im2col of one group of one image: `col` is J×P.
    fn im2col(&self, xg: &[f32], col: &mut [f32]) {
        col.fill(0.0);
        self.im2col_taps(xg, col, self.p());
    }

    /// Writes the in-bounds taps of one group of one image into `col` (J rows of stride `rs`,
    /// from column 0); padding taps are left as they are.
    fn im2col_taps(&self, xg: &[f32], col: &mut [f32], rs: usize) {
        self.for_each_span(|t| self.copy_span(xg, t, &mut col[t.j * rs + t.q..][..t.len]));
    }

    /// Row `j` of [`ConvShape::im2col_batch`] of group `g` (N·P values) into `row`. When the input
    /// rows of consecutive output rows are as far apart as the output rows (stride 1 along a row,
    /// `OW = stride_h·W`), an image's taps are one run of the input with the padding taps in it:
    /// copied in one go, then the padding columns zeroed (one long copy instead of a short one
    /// per output row).
    fn im2col_batch_row(&self, taps: &TapTable, x: &[f32], g: usize, j: usize, row: &mut [f32]) {
        let in_plane = self.cg() * self.h * self.w;
        row.fill(0.0);
        for (n, part) in row.chunks_exact_mut(self.p()).enumerate() {
            self.im2col_part(taps, &x[(n * self.groups + g) * in_plane..][..in_plane], j, part);
        }
    }

    /// Row `j` of the im2col matrix of one group of one image `xg` written into `part` (P values),
    /// whose padding taps are +0 already (the one-run copy zeroes the padding columns it copied
    /// over).
    fn im2col_part(&self, taps: &TapTable, xg: &[f32], j: usize, part: &mut [f32]) {
        let rs = taps.kernel.len();
        match taps.run(j % rs) {
            Some(run) => {
                let src = j / rs * self.h * self.w + run.src;
                part[run.q.clone()].copy_from_slice(&xg[src..][..run.q.len()]);
                run.padding().for_each(|q| part[q] = 0.0);
            }
            None => taps.spans(j, |t| self.copy_span(xg, t, &mut part[t.q..][..t.len])),
        }
    }

    /// Copies the inputs of the taps of span `t` from one group of one image `xg` into `dst`.
    fn copy_span(&self, xg: &[f32], t: TapSpan, dst: &mut [f32]) {
        let sw = self.stride.1;
        if sw == 1 {
            dst.copy_from_slice(&xg[t.src..t.src + t.len]);
        } else {
            dst.iter_mut()
                .enumerate()
                .for_each(|(k, d)| *d = xg[t.src + k * sw]);
        }
    }
}

/// [`ConvShape::row_spans`] geometry precomputed per kernel position (see
/// [`ConvShape::tap_table`]).
pub(crate) struct TapTable {
    shape: ConvShape,
    ow: usize,
    kernel: Vec<Option<(InBounds, InBounds)>>,
}

impl TapTable {
    /// [`ConvShape::row_spans`] from the table.
    pub(crate) fn spans(&self, j: usize, f: impl FnMut(TapSpan)) {
        let rs = self.kernel.len();
        if let Some(b) = self.kernel[j % rs] {
            self.shape.spans_in(j, j / rs, self.ow, b, f);
        }
    }

    /// The taps of kernel position `k` as one run, when the input rows of consecutive output
    /// rows are as far apart as the output rows (stride 1 along a row, `OW = stride_h·W`); `None`
    /// otherwise, or if it has no in-bounds tap.
    pub(crate) fn run(&self, k: usize) -> Option<Run> {
        let s = &self.shape;
        let (ys, xs) = self.kernel[k]?;
        (s.stride.1 == 1 && self.ow == s.stride.0 * s.w).then(|| Run {
            q: ys.lo * self.ow + xs.lo..(ys.hi - 1) * self.ow + xs.hi,
            src: ys.first * s.w + xs.first,
            rows: ys.lo..ys.hi,
            cols: xs.lo..xs.hi,
            ow: self.ow,
        })
    }
}

/// One kernel position's taps of an image channel as a single run: output positions `q` read
/// the input from `src` (within the channel) on, one for one, except the positions of padding
/// columns inside the run ([`Run::padding`]), which read inputs of neighbouring rows instead.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// Output positions of the run.
    pub q: Range<usize>,
    /// Input offset (within the channel) of the run's first position.
    pub src: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    ow: usize,
}

impl Run {
    /// The output positions of padding columns in the rows of the run.
    pub(crate) fn padding(&self) -> impl Iterator<Item = usize> + '_ {
        let cols = (0..self.cols.start).chain(self.cols.end..self.ow);
        cols.flat_map(move |c| self.rows.clone().map(move |y| y * self.ow + c))
    }

    /// The `p` output positions as bits (bit `q % 64` of word `q / 64`; none past `p`), 0 at
    /// [`Run::padding`].
    fn unpadded(&self, p: usize) -> Vec<u64> {
        let mut words = vec![u64::MAX; p.div_ceil(64)];
        if !p.is_multiple_of(64) {
            words[p / 64] = (1 << (p % 64)) - 1;
        }
        self.padding().for_each(|q| words[q / 64] &= !(1 << (q % 64)));
        words
    }
}

/// The output positions `lo..hi` along one axis whose tap lands inside the input, and the input
/// index `first` of position `lo` (later ones follow at the stride).
#[derive(Debug, Clone, Copy)]
struct InBounds {
    lo: usize,
    hi: usize,
    first: usize,
}

impl InBounds {
    /// Positions `o < out` with `0 <= o·stride + offset - pad < size`; `None` if there are none.
    fn new(offset: usize, pad: usize, stride: usize, size: usize, out: usize) -> Option<Self> {
        let lo = pad.saturating_sub(offset).div_ceil(stride).min(out);
        let hi = (size + pad)
            .saturating_sub(offset)
            .div_ceil(stride)
            .clamp(lo, out);
        (lo < hi).then(|| Self {
            lo,
            hi,
            first: lo * stride + offset - pad,
        })
    }

    /// Input index of the last position.
    fn last(&self, stride: usize) -> usize {
        self.first + (self.hi - 1 - self.lo) * stride
    }
}

/// A run of in-bounds taps of one im2col row: columns `q..q + len` of row `j` read the group's
/// input at offsets `src, src + stride_w, …` (`ci·H·W + ih·W + iw`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TapSpan {
    /// im2col row (`(ci·R + r)·S + s`).
    pub j: usize,
    /// First output position (`y·OW + x`).
    pub q: usize,
    /// Number of taps.
    pub len: usize,
    /// Input offset of the first tap.
    pub src: usize,
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
    let exact = opts.counting == Counting::Exact;
    let taps = shape.tap_table();
    let per_image = |(n, yn): (usize, &mut [f32])| -> Result<WorkCounts> {
        let mut col = Vec::new();
        let mut tmp = vec![0.0; kg * p];
        let mut counts = WorkCounts {
            exact: true,
            ..Default::default()
        };
        for g in 0..shape.groups {
            let xg = &x[(n * shape.groups + g) * in_plane..][..in_plane];
            let wv = MatRef::row_major(&w[g * kg * j..(g + 1) * kg * j], kg, j)?;
            let keep_g = opts.keep.map(|m| &m[(n * shape.k + g * kg) * p..][..kg * p]);
            let keep = keep_g.map(|m| BitMatrix::from_bools(m, kg, p));
            if sparse[g].is_none() || exact {
                col.resize(j * p, 0.0);
                shape.im2col(xg, &mut col);
            }
            match &sparse[g] {
                Some(csr) => shape.sparse_ff(&taps, csr, xg, &mut tmp),
                None => gemm::gemm(wv, MatRef::row_major(&col, j, p)?, &mut tmp, p, false)?,
            }
            store(
                &mut yn[g * kg * p..(g + 1) * kg * p],
                &tmp,
                keep_g,
                opts.accumulate,
            );
            let effective = match exact {
                true => Some(gemm::count_effective(
                    wv,
                    MatRef::row_major(&col, j, p)?,
                    keep.as_ref(),
                )),
                false => None,
            };
            counts += product_counts([kg, j, p], keep.as_ref(), None, effective);
        }
        Ok(counts)
    };
    sum_counts(y.par_chunks_mut(shape.k * p).enumerate().map(per_image).collect())
}

/// Forward `y = conv(x, w)` without options from the im2col matrices of `x` (`cols`, one
/// J×(N·P) matrix per group, as `ConvShape::im2col_batch` builds them), e.g. shared by the
/// output-channel tiles of a layer. The sums are [`conv_ff`]'s, term by term in the same order:
/// sparse weights go through [`gemm::spmm`], whose padding taps add `w·0 = ±0` to sums that start
/// at +0 (no change, for finite weights; other weights take [`conv_ff`] itself), dense weights
/// through the same GEMM.
pub fn conv_ff_cols(
    shape: &ConvShape,
    x: &[f32],
    cols: &[Vec<f32>],
    w: &OperandB,
    y: &mut [f32],
) -> Result<()> {
    shape.validate()?;
    check_len("conv input", x, shape.input_len())?;
    check_len("conv output", y, shape.output_len())?;
    let sparse = w.ff(shape)?;
    let (kg, j, p) = (shape.kg(), shape.j(), shape.p());
    let np = shape.n * p;
    if cols.len() != shape.groups || cols.iter().any(|c| c.len() != j * np) {
        return Err(invalid("conv columns", "one J×(N·P) matrix per group expected"));
    }
    let weights = |g: usize| MatRef::row_major(&w.values()[g * kg * j..(g + 1) * kg * j], kg, j);
    if sparse.iter().flatten().any(|csr| !csr.all_finite()) {
        let opts = ConvOpts {
            counting: Counting::SlotsOnly,
            ..Default::default()
        };
        return conv_ff(shape, x, w.values(), y, &opts).map(|_| ());
    }
    let product = |g: usize, col: &[f32], out: &mut [f32]| match &sparse[g] {
        Some(csr) => gemm::spmm_par(csr, col, np, out),
        None => gemm::gemm(weights(g)?, MatRef::row_major(col, j, np)?, out, np, false),
    };
    if shape.n == 1 {
        // One image: a group's product (Kg×P) is its channels' run of `y` as it is.
        for (g, (col, yg)) in cols.iter().zip(y.chunks_exact_mut(kg * p)).enumerate() {
            product(g, col, yg)?;
        }
        return Ok(());
    }
    let mut out = vec![0.0; kg * np];
    for (g, col) in cols.iter().enumerate() {
        product(g, col, &mut out)?;
        // Row r of `out` holds output channel g·Kg + r of every image, side by side.
        for (r, row) in out.chunks_exact(np).enumerate() {
            for (n, part) in row.chunks_exact(p).enumerate() {
                y[(n * shape.k + g * kg + r) * p..][..p].copy_from_slice(part);
            }
        }
    }
    Ok(())
}

/// Output-channel rows per parallel block of WG: one block per thread, as every block of the
/// dense GEMM packs the whole im2col matrix again. Every output is summed within one block, in an
/// order that does not depend on the block's rows (the GEMM splits only the reduction, in fixed
/// blocks), so results do not depend on the thread count.
fn wg_rows(kg: usize) -> usize {
    kg.div_ceil(rayon::current_num_threads().max(1))
}

/// dy of group `g` with the images side by side (Kg×N·P, as WG and BP's batched col2im multiply
/// it), borrowed when there is one image.
fn dy_side_by_side<'a>(shape: &ConvShape, dy: &'a [f32], g: usize) -> Cow<'a, [f32]> {
    let (kg, p) = (shape.kg(), shape.p());
    if shape.n == 1 {
        return Cow::Borrowed(&dy[g * kg * p..][..kg * p]);
    }
    let mut dyg = Vec::with_capacity(kg * shape.n * p);
    for r in 0..kg {
        for n in 0..shape.n {
            dyg.extend_from_slice(&dy[(n * shape.k + g * kg + r) * p..][..p]);
        }
    }
    Cow::Owned(dyg)
}

/// Multiply-adds of sparse WG below which one block (one thread) computes a whole group: the
/// simulator already runs several tiles side by side, and splitting a small tile's work costs
/// more than it saves.
const SDDMM_PARALLEL_WORK: usize = 1 << 21;

/// Output-channel rows per parallel block of sparse WG (`kept` outputs of the group, reduction
/// length `np`): the whole group when the kept products are few, else as many as [`wg_rows`]. Every
/// output is one dot product of one block, so results do not depend on the split.
fn sddmm_rows(kg: usize, kept: u64, np: usize) -> usize {
    if kept as usize * np < SDDMM_PARALLEL_WORK {
        kg
    } else {
        wg_rows(kg)
    }
}

/// Weight gradient: `dW = Σ_n dy[n] ⋆ x[n]`, per group one product over the whole batch:
/// `dW_g (Kg×J) = dy_g (Kg×N·P) · col_gᵀ (N·P×J)` with the images side by side
/// (`ConvShape::im2col_batch`), in parallel over blocks of output channels.
///
/// With a keep-mask (speculation S2 / sparse WG) only the selected weight gradients are computed;
/// at most [`gemm::SDDMM_DENSITY`] dense, each is [`gemm::sddmm`]'s sum of the dy row and the
/// im2col row, the im2col rows made one at a time as needed (no whole im2col matrix), in one block
/// when the work is small (`sddmm_rows`).
pub fn conv_wg(
    shape: &ConvShape,
    x: &[f32],
    dy: &OperandB,
    dw: &mut [f32],
    opts: &ConvOpts,
) -> Result<WorkCounts> {
    shape.validate()?;
    check_len("conv input", x, shape.input_len())?;
    check_len("conv output gradient", dy.values(), shape.output_len())?;
    check_len("conv weight gradient", dw, shape.weight_len())?;
    check_keep(opts.keep, shape.weight_len())?;
    if opts.weight_mask.is_some() {
        return Err(invalid(
            "conv WG options",
            "a weight mask does not apply to WG; use the keep-mask",
        ));
    }
    let (kg, j, p) = (shape.kg(), shape.j(), shape.p());
    let np = shape.n * p;
    // Every group's keep-mask as bits (Kg×J), and how many gradients it keeps.
    let keep_bits: Option<Vec<BitMatrix>> = opts.keep.map(|m| {
        m.chunks_exact(kg * j)
            .map(|g| BitMatrix::from_bools(g, kg, j))
            .collect()
    });
    let kept = keep_bits
        .as_ref()
        .map(|b| b.iter().map(BitMatrix::count).sum::<u64>());
    let sparse_keep = kept.is_some_and(|k| k as f64 <= gemm::SDDMM_DENSITY * shape.weight_len() as f64);
    // The sums go straight into `dw` (the sparse product adds into it from +0) unless they are
    // added to what it holds.
    let mut staged = opts.accumulate.then(|| vec![0.0f32; shape.weight_len()]);
    let total = match &mut staged {
        Some(t) => t,
        None => {
            dw.fill(0.0);
            &mut *dw
        }
    };
    let mut counts = WorkCounts {
        exact: true,
        ..Default::default()
    };
    let taps = shape.tap_table();
    for (g, acc_g) in total.chunks_exact_mut(kg * j).enumerate() {
        let dyg = dy.side_by_side(shape, g)?;
        let exact = opts.counting == Counting::Exact;
        let col = (!sparse_keep || exact).then(|| shape.im2col_batch(x, g));
        let group_keep = keep_bits.as_ref().map(|b| &b[g]);
        match group_keep.filter(|_| sparse_keep) {
            Some(keep) => {
                let rows = sddmm_rows(kg, keep.count(), np);
                acc_g
                    .par_chunks_mut(rows * j)
                    .zip(dyg.par_chunks(rows * np))
                    .enumerate()
                    .for_each(|(b, (acc, dyb))| {
                        let first = b * rows;
                        let block = first..first + dyb.len() / np;
                        gemm::sddmm_with(dyb, np, keep, block, acc, |jj, row| {
                            shape.im2col_batch_row(&taps, x, g, jj, row)
                        })
                    });
            }
            None => {
                let col = col
                    .as_deref()
                    .expect("the dense product builds the im2col matrix");
                let rows = wg_rows(kg);
                acc_g
                    .par_chunks_mut(rows * j)
                    .zip(dyg.par_chunks(rows * np))
                    .try_for_each(|(acc, dyb)| {
                        gemm::gemm(
                            MatRef::row_major(dyb, dyb.len() / np, np)?,
                            MatRef::row_major(col, j, np)?.t(),
                            acc,
                            j,
                            false,
                        )
                    })?;
            }
        }
        let effective = match (&col, exact) {
            (Some(col), true) => Some(gemm::count_effective(
                MatRef::row_major(dyg, kg, np)?,
                MatRef::row_major(col, j, np)?.t(),
                group_keep,
            )),
            _ => None,
        };
        counts += product_counts([kg, np, j], group_keep, None, effective);
    }
    match staged {
        Some(t) => store(dw, &t, opts.keep, true),
        // The dense product computed every gradient: those not kept are zero.
        None if !sparse_keep => apply_mask(dw, opts.keep),
        None => {}
    }
    // The outputs are the weight gradients.
    counts.outputs = shape.weight_len() as u64;
    counts.outputs_skipped = kept.map_or(0, |k| shape.weight_len() as u64 - k);
    Ok(counts)
}

/// Counters of one `A·B` product of `[m, k, n]` (A: m×k, B: k×n) with an optional keep-mask;
/// `dropped` overrides the number of MAC slots excluded by the keep-mask (BP, where the mask lives
/// on scattered outputs); `effective` is the exact count when counting is on.
fn product_counts(
    [m, k, n]: [usize; 3],
    keep: Option<&BitMatrix>,
    dropped: Option<u64>,
    effective: Option<u64>,
) -> WorkCounts {
    let (m, k, n) = (m as u64, k as u64, n as u64);
    let slots = m * k * n;
    let kept_outputs = keep.map_or(m * n, |kb| kb.count());
    let masked_out = dropped.unwrap_or((m * n - kept_outputs) * k);
    let exact = effective.is_some();
    let effective = effective.unwrap_or(0);
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
