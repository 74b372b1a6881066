//! Input gradient (BP) of a convolution, in one of two formulations with the same sums:
//!
//! - col2im (any stride): per image and group, `dcol (J×P) = W_gᵀ · dy[n,g]`, scattered back into
//!   the image's dx (padding taps dropped), a row of `dcol` at a time (sparse weights: the rows with
//!   a non-zero weight, each for all the images of the call at once, in `by_col2im_batch`). Its
//!   cost is ∝ `J·P` per image however few weights are non-zero.
//! - forward convolution of dy (stride 1, sparse finite weights): `dx_g (Cg × N·H·W) = W'_g ·
//!   col_dy` with `W'[c, (r, s, k)] = W[k, c, r, s]` in CSR and `col_dy` (R·S·Kg × N·H·W) the
//!   im2col of dy read from the input positions (`dy[k, ih + pad_top − r·dh, iw + pad_left −
//!   s·dw]`, 0 out of range). Its cost is ∝ `nnz(W)·N·H·W` plus building `col_dy`, and the
//!   images of a call share long rows.
//!
//! The forward convolution adds the products in col2im's order, so both give the same bits (for
//! the sparse weights it takes, which col2im multiplies with [`gemm::spmm`]): every kernel
//! position's products are summed over `k` first (col2im's `dcol` element), then those sums over
//! the kernel positions in order (its scatter). Sums start at +0 and never become -0, so a
//! single product may be added without its `0 +`, and taps outside dy add `w·0 = ±0`: no change
//! for finite weights (a non-finite weight takes col2im, which never multiplies them).

use super::operand::BpWeights;
use super::{
    dy_side_by_side, masked_weights, product_counts, sum_counts, ConvOpts, ConvShape, InBounds, OperandB,
    TapSpan,
};
use crate::kernels::density::{nonzero_bitmap, set_bits, BitMatrix, Counting, WorkCounts};
use crate::kernels::gemm::{self, Csr, MatRef};
use crate::kernels::mask::store;
use crate::kernels::{check_len, Divisor, Result};
use rayon::prelude::*;

/// Floats of `col_dy` built at once (it is read once per non-zero weight, so it should stay in
/// cache): the call's input rows `(n, ih)` are taken in batches this large.
const COL_BUDGET: usize = 1 << 16;

/// Fewest `col_dy` columns per chunk of images worth a parallel task of its own.
const MIN_WIDTH: usize = 64;

/// Multiply-adds per parallel task of the forward-convolution product.
const TASK_MACS: usize = 1 << 16;

/// Input gradient: `dx = conv_bp(dy, w ⊙ mask)` (transposed convolution of `dy`).
///
/// With a keep-mask (speculation S1: keep only `dx` where the forward ReLU mask is non-zero) the
/// products feeding dropped elements are neither computed nor counted as effective.
pub fn conv_bp(
    shape: &ConvShape,
    dy: &[f32],
    w: &OperandB,
    dx: &mut [f32],
    opts: &ConvOpts,
) -> Result<WorkCounts> {
    shape.validate()?;
    check_len("conv output gradient", dy, shape.output_len())?;
    check_len("conv input gradient", dx, shape.input_len())?;
    super::check_keep(opts.keep, shape.input_len())?;
    if opts.weight_mask.is_some() {
        let masked = OperandB::from(masked_weights(shape, w.values(), opts.weight_mask)?.into_owned());
        let opts = ConvOpts {
            weight_mask: None,
            ..*opts
        };
        return conv_bp(shape, dy, &masked, dx, &opts);
    }
    match w.bp(shape)? {
        BpWeights::Forward(csrs) => by_forward_conv(shape, csrs, dy, dx, opts),
        BpWeights::Col2im(csrs) => by_col2im_batch(shape, csrs, dy, dx, opts),
        BpWeights::Dense(groups) => by_col2im(shape, (w.values(), groups), dy, dx, opts)?,
    }
    count(shape, w.values(), dy, opts)
}

/// Every group's `W'_g` (columns `(r, s, k)`) in CSR, with its rows' runs ([`ForwardCsr`]), when
/// the forward-convolution formulation applies and is expected to be faster: stride 1, every
/// group sparse enough for [`gemm::spmm`] with finite weights, and building `col_dy`
/// (`Kg·R·S·H·W` floats per image) and copying out the result (`Cg·H·W`), counted twice (about
/// their relative cost per float on the benchmark tiles), cheaper than clearing and scattering
/// `dcol` (`2·Cg·R·S·P`); both multiply-add `nnz(W)·P`. In practice: when `k` is well below `c`,
/// as in the simulator's output-channel tiles.
pub(super) fn forward_weights(shape: &ConvShape, w: &[f32]) -> Option<Vec<ForwardCsr>> {
    let (cg, kg, rs) = (shape.cg(), shape.kg(), shape.r * shape.s);
    let hw = shape.h * shape.w;
    if shape.stride != (1, 1) || (kg * rs + cg) * hw >= cg * rs * shape.p() {
        return None;
    }
    let csrs: Vec<Csr> = w
        .chunks_exact(kg * cg * rs)
        .map(|wg| transposed_csr(wg, cg * rs, rs))
        .collect::<Option<_>>()?;
    csrs.iter()
        .all(Csr::all_finite)
        .then(|| csrs.into_iter().map(|csr| ForwardCsr::new(csr, kg)).collect())
}

/// One group's `W'_g` in CSR with every row's non-zeros in runs, one per kernel position
/// (columns `t·Kg..(t + 1)·Kg`): the groups [`forward_row`] sums separately, found once for
/// every call that shares the weights.
#[derive(Debug)]
pub(super) struct ForwardCsr {
    csr: Csr,
    /// Where each run ends, relative to its row's first non-zero, the rows one after another.
    run_ends: Vec<u32>,
    /// Row `c`'s runs end at `run_ends[row_runs[c]..row_runs[c + 1]]`.
    row_runs: Vec<usize>,
}

impl ForwardCsr {
    fn new(csr: Csr, kg: usize) -> Self {
        let (mut run_ends, mut row_runs) = (Vec::new(), vec![0]);
        let by_kg = Divisor::new(kg, csr.ncols());
        for c in 0..csr.rows() {
            let cols = csr.row_slices(c).0;
            // The end of the current run's columns (columns only grow).
            let mut end = 0;
            for (i, &j) in cols.iter().enumerate() {
                if j as usize >= end {
                    if i > 0 {
                        run_ends.push(i as u32);
                    }
                    end = (by_kg.div_rem(j as usize).0 + 1) * kg;
                }
            }
            if !cols.is_empty() {
                run_ends.push(cols.len() as u32);
            }
            row_runs.push(run_ends.len());
        }
        ForwardCsr {
            csr,
            run_ends,
            row_runs,
        }
    }

    /// Row `c`'s non-zeros in their runs.
    fn runs(&self, c: usize) -> Runs<'_> {
        let (cols, vals) = self.csr.row_slices(c);
        Runs {
            cols,
            vals,
            ends: &self.run_ends[self.row_runs[c]..self.row_runs[c + 1]],
        }
    }
}

/// One row of a [`ForwardCsr`]: its columns and values, and where each run ends.
#[derive(Clone, Copy)]
struct Runs<'a> {
    cols: &'a [u32],
    vals: &'a [f32],
    ends: &'a [u32],
}

impl Runs<'_> {
    /// Hands `f` every run's columns and values, in order.
    fn each(self, mut f: impl FnMut(&[u32], &[f32])) {
        let mut start = 0;
        for &e in self.ends {
            let e = e as usize;
            f(&self.cols[start..e], &self.vals[start..e]);
            start = e;
        }
    }
}

/// One group's weights `wg` (Kg × J) transposed into CSR if they are sparse enough for
/// [`gemm::spmm`], `taps` rows of `W_gᵀ` (J × Kg) joined into one (row `j` at columns
/// `(j % taps)·Kg + k`): `W_gᵀ` itself with `taps` = 1 (col2im), `W'_g` with `taps` = R·S.
/// Built from the non-zeros (found 64 at a time), through the indicator of `W_gᵀ`; work ∝ J·⌈Kg/64⌉
/// + non-zeros besides finding them.
pub(super) fn transposed_csr(wg: &[f32], j: usize, taps: usize) -> Option<Csr> {
    let kg = wg.len() / j;
    let words = kg.div_ceil(64);
    // Bit `k % 64` of word `k / 64` of row `jj`: whether `W[k, jj]` is non-zero.
    let (mut bits, mut nnz) = (vec![0u64; j * words], 0);
    for (k, wk) in wg.chunks_exact(j).enumerate() {
        for (i, &word) in nonzero_bitmap(wk).iter().enumerate() {
            nnz += word.count_ones() as usize;
            set_bits(&[word]).for_each(|b| bits[(i * 64 + b) * words + k / 64] |= 1 << (k % 64));
        }
    }
    if nnz as f64 > gemm::SPARSE_DENSITY * wg.len() as f64 {
        return None;
    }
    let mut row_ptr = Vec::with_capacity(j / taps + 1);
    row_ptr.push(0);
    let (mut cols, mut vals) = (Vec::with_capacity(nnz), Vec::with_capacity(nnz));
    for (row, (rb, t)) in bits.chunks_exact(words).zip((0..taps).cycle()).enumerate() {
        for (i, &word) in rb.iter().enumerate() {
            set_bits(&[word]).for_each(|b| {
                let k = i * 64 + b;
                cols.push((t * kg + k) as u32);
                vals.push(wg[k * j + row]);
            });
        }
        if t + 1 == taps {
            row_ptr.push(cols.len());
        }
    }
    Some(Csr::from_parts(row_ptr, cols, vals, kg * taps))
}

/// dx by the forward-convolution formulation (see the module documentation), on batches of input
/// rows `(n, ih)` (line `n·H + ih`) of at most [`COL_BUDGET`] `col_dy` floats: whole images in
/// parallel, or the lines of one image in turn, output channels in parallel.
fn by_forward_conv(shape: &ConvShape, csrs: &[ForwardCsr], dy: &[f32], dx: &mut [f32], opts: &ConvOpts) {
    let (cg, kg, w) = (shape.cg(), shape.kg(), shape.w);
    let rows = kg * shape.r * shape.s;
    let lines = (COL_BUDGET / (rows * w)).clamp(1, shape.n * shape.h);
    let image = shape.c * shape.h * w;
    // Two chunks of images or more for the two cores, unless that leaves rows too short.
    let half = match shape.n * shape.h * w >= 2 * MIN_WIDTH {
        true => shape.n.div_ceil(2),
        false => shape.n,
    };
    let images = (lines / shape.h).clamp(1, half);
    dx.par_chunks_mut(images * image)
        .enumerate()
        .for_each(|(i, dxb)| {
            // The chunk's lines, and its offset in dx.
            let chunk = i * images * shape.h..(i * images * shape.h + dxb.len() / (shape.c * w));
            let offset = i * images * image;
            let (mut col, mut out) = (Vec::new(), Vec::new());
            for start in chunk.clone().step_by(lines) {
                let batch = start..(start + lines).min(chunk.end);
                let width = batch.len() * w;
                col.resize(rows * width, 0.0);
                out.resize(cg * width, 0.0);
                for (g, csr) in csrs.iter().enumerate() {
                    shape.dy_im2col(dy, g, batch.clone(), &mut col);
                    let per_task = (TASK_MACS / (csr.csr.nnz() * width / cg).max(1)).max(1);
                    out.par_chunks_mut(width)
                        .enumerate()
                        .with_min_len(per_task)
                        .for_each(|(c, o)| forward_row(csr.runs(c), &col, o));
                    // Each image's run of lines is contiguous in every channel of dx.
                    for n in batch.start / shape.h..batch.end.div_ceil(shape.h) {
                        let run = batch.start.max(n * shape.h)..batch.end.min((n + 1) * shape.h);
                        for (c, src) in out.chunks_exact(width).enumerate() {
                            let at = ((n * shape.c + g * cg + c) * shape.h + run.start - n * shape.h) * w;
                            let dst = &mut dxb[at - offset..][..run.len() * w];
                            let keep = opts.keep.map(|m| &m[at..][..run.len() * w]);
                            let src = &src[(run.start - batch.start) * w..][..run.len() * w];
                            store(dst, src, keep, opts.accumulate);
                        }
                    }
                }
            }
        });
}

/// Columns of `out` summed at once in [`forward_row`] (a block of partial sums stays in
/// registers or cache).
const BLOCK: usize = 64;

/// Row `c` of `W'_g · col_dy` into `out` from the row's runs, in col2im's order: starting from
/// +0, the products of every kernel position (a run) summed from +0 and added to the row; a
/// single product is added directly (`0 + p` and `p` differ only in the sign of a zero). Block by
/// block of [`BLOCK`] columns, each block's sums kept across the row's non-zeros.
fn forward_row(runs: Runs, col: &[f32], out: &mut [f32]) {
    let n = out.len();
    let x = |j: u32| &col[j as usize * n..][..n];
    for (b, o) in out.chunks_mut(BLOCK).enumerate() {
        if o.len() == BLOCK && block_wide(o, runs, |j| &x(j)[b * BLOCK..][..BLOCK]) {
            continue;
        }
        o.fill(0.0);
        let len = o.len();
        runs.each(|cols, vals| {
            let x = |j: u32| &x(j)[b * BLOCK..][..len];
            match (cols, vals) {
                ([j], [v]) => o.iter_mut().zip(x(*j)).for_each(|(o, &x)| *o += v * x),
                _ => {
                    let mut sum = [0.0f32; BLOCK];
                    let sum = &mut sum[..len];
                    for (&j, &v) in cols.iter().zip(vals) {
                        sum.iter_mut().zip(x(j)).for_each(|(t, &x)| *t += v * x);
                    }
                    o.iter_mut().zip(sum).for_each(|(o, t)| *o += *t);
                }
            }
        });
    }
}

/// [`forward_row`]'s block of [`BLOCK`] outputs `o` in AVX-512 registers, where the build targets
/// AVX-512: the row's sums and each kernel position's stay in registers across its non-zeros
/// (`x(j)`: column `j`'s block), the same operations in the same order. Returns whether it did
/// the block.
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
fn block_wide<'c>(o: &mut [f32], runs: Runs, x: impl Fn(u32) -> &'c [f32]) -> bool {
    use std::arch::x86_64::{
        __m512, _mm512_add_ps, _mm512_loadu_ps, _mm512_mul_ps, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_storeu_ps,
    };
    const LANES: usize = 16;
    type Block = [__m512; BLOCK / LANES];
    let o: &mut [f32; BLOCK] = o.try_into().expect("a whole block");
    // SAFETY: the build targets AVX-512F (the `cfg` of this function); every load and store is
    // of sixteen elements of a `BLOCK`-element array, and they need no alignment.
    unsafe {
        // `acc + v·x(j)`, lane by lane (the product rounded, then the sum).
        let add = |acc: &mut Block, j: u32, v: f32| {
            let (v, xj): (__m512, &[f32; BLOCK]) =
                (_mm512_set1_ps(v), x(j).try_into().expect("a whole block"));
            for (i, s) in acc.iter_mut().enumerate() {
                *s = _mm512_add_ps(*s, _mm512_mul_ps(v, _mm512_loadu_ps(xj[i * LANES..].as_ptr())));
            }
        };
        let mut row: Block = [_mm512_setzero_ps(); BLOCK / LANES];
        runs.each(|cols, vals| match (cols, vals) {
            ([j], [v]) => add(&mut row, *j, *v),
            _ => {
                let mut sum: Block = [_mm512_setzero_ps(); BLOCK / LANES];
                cols.iter().zip(vals).for_each(|(&j, &v)| add(&mut sum, j, v));
                for (r, s) in row.iter_mut().zip(sum) {
                    *r = _mm512_add_ps(*r, s);
                }
            }
        });
        for (i, r) in row.iter().enumerate() {
            _mm512_storeu_ps(o[i * LANES..].as_mut_ptr(), *r);
        }
    }
    true
}

/// Without AVX-512 every block is left to [`forward_row`]'s loop.
#[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
fn block_wide<'c>(_: &mut [f32], _: Runs, _: impl Fn(u32) -> &'c [f32]) -> bool {
    false
}

impl ConvShape {
    /// `col_dy` of group `g` for input rows `lines` (stride 1): row `(r, s, k)`, column
    /// `(n·H + ih, iw)` holds `dy[n, g·Kg + k, ih + pad_top − r·dh, iw + pad_left − s·dw]`, 0
    /// outside dy.
    fn dy_im2col(&self, dy: &[f32], g: usize, lines: std::ops::Range<usize>, col: &mut [f32]) {
        let (ow, p) = (self.out_w(), self.p());
        for (row, dst) in col.chunks_exact_mut(lines.len() * self.w).enumerate() {
            let (t, k) = (row / self.kg(), row % self.kg());
            let (r, s) = (t / self.s, t % self.s);
            let ys = InBounds::new(self.pad.top, r * self.dilation.0, 1, self.out_h(), self.h);
            let xs = InBounds::new(self.pad.left, s * self.dilation.1, 1, ow, self.w);
            dst.fill(0.0);
            let (Some(ys), Some(xs)) = (ys, xs) else {
                continue;
            };
            // The lines image by image; each image's lines inside dy (`lo..hi`) are copied.
            let mut at = 0;
            for n in lines.start / self.h..lines.end.div_ceil(self.h) {
                let plane = &dy[(n * self.k + g * self.kg() + k) * p..][..p];
                let run =
                    lines.start.max(n * self.h) - n * self.h..lines.end.min((n + 1) * self.h) - n * self.h;
                let (lo, hi) = (run.start.max(ys.lo), run.end.min(ys.hi));
                let first = at + (lo - run.start) * self.w;
                at += run.len() * self.w;
                if lo >= hi {
                    continue;
                }
                let out = &mut dst[first..];
                let src = (ys.first + lo - ys.lo) * ow + xs.first;
                if ow == self.w {
                    // Rows of dy and of col_dy have the same pitch: one copy, which also copies
                    // the columns outside `xs` between the lines' runs (cleared below).
                    let len = (hi - lo - 1) * ow + xs.hi - xs.lo;
                    out[xs.lo..][..len].copy_from_slice(&plane[src..][..len]);
                }
                let lines = out.chunks_exact_mut(self.w).take(hi - lo);
                if ow == self.w {
                    for line in lines {
                        clear(&mut line[..xs.lo]);
                        clear(&mut line[xs.hi..]);
                    }
                } else {
                    // `dst` is clear: only the runs are copied.
                    for (i, line) in lines.enumerate() {
                        line[xs.lo..xs.hi].copy_from_slice(&plane[src + i * ow..][..xs.hi - xs.lo]);
                    }
                }
            }
        }
    }
}

/// Sets `s` to +0: the one or no element of a line's border column (3×3 kernels) set directly,
/// longer runs through `fill`.
fn clear(s: &mut [f32]) {
    match s {
        [] => {}
        [v] => *v = 0.0,
        _ => s.fill(0.0),
    }
}

/// Every group's `W_gᵀ` (J × Kg) in CSR, or `None` for a group too dense for [`gemm::spmm`].
pub(super) fn transposed_weights(shape: &ConvShape, w: &[f32]) -> Vec<Option<Csr>> {
    let j = shape.j();
    w.chunks_exact(shape.kg() * j)
        .map(|wg| transposed_csr(wg, j, 1))
        .collect()
}

/// dx by col2im with sparse weights (`csrs`, every group's `W_gᵀ`) and the images side by side,
/// in one thread: per group, every row of `dcol` of all the images at once
/// (`W_gᵀ · [dy[0,g] … dy[N-1,g]]`, each column as [`by_col2im`] computes it), scattered into
/// each image along a list of its kernel position's taps (output position, input offset), or as
/// one run where the geometry allows ([`crate::kernels::conv::Run`]: one add over the run, whose
/// padding columns are made +0 first). The sums build up in dx itself when there is one group, no
/// keep-mask and nothing to add to, else in zeroed planes stored per group. Every element of dx
/// adds the same `dcol` elements in the same (row) order as [`by_col2im`], plus +0s, which change
/// no sum (sums start at +0, so none is -0): same bits.
fn by_col2im_batch(shape: &ConvShape, csrs: &[Csr], dy: &[f32], dx: &mut [f32], opts: &ConvOpts) {
    let (p, rs) = (shape.p(), shape.r * shape.s);
    let (plane, np) = (shape.h * shape.w, shape.n * p);
    let in_plane = shape.cg() * plane;
    let table = shape.tap_table();
    // Per kernel position, its in-bounds taps: (output position, input offset within the
    // channel) pairs in order.
    let taps: Vec<Vec<(u32, u32)>> = (0..rs)
        .map(|t| {
            let mut pairs = Vec::new();
            table.spans(t, |span| {
                pairs.extend(
                    (0..span.len).map(|k| ((span.q + k) as u32, (span.src + k * shape.stride.1) as u32)),
                )
            });
            pairs
        })
        .collect();
    let runs: Vec<_> = (0..rs).map(|t| table.run(t)).collect();
    let mut drow = vec![0.0; np];
    // Group `g`'s sums added into `sums` (the images' input planes of the group one after another).
    let mut add_group = |g: usize, csr: &Csr, sums: &mut [f32]| {
        let dyg = dy_side_by_side(shape, dy, g);
        for (jj, (c, t)) in (0..shape.cg())
            .flat_map(|c| (0..rs).map(move |t| (c, t)))
            .enumerate()
        {
            if csr.row_is_empty(jj) {
                continue;
            }
            gemm::spmm_row(csr, jj, &dyg, np, &mut drow);
            for (tn, dn) in sums.chunks_exact_mut(in_plane).zip(drow.chunks_exact_mut(p)) {
                let tc = &mut tn[c * plane..][..plane];
                match &runs[t] {
                    // One add of the run, its padding columns made +0 first: adding +0 leaves
                    // every sum as it is (sums start at +0, so none is -0).
                    Some(run) => {
                        run.padding().for_each(|q| dn[q] = 0.0);
                        let dst = &mut tc[run.src..][..run.q.len()];
                        dst.iter_mut().zip(&dn[run.q.clone()]).for_each(|(d, v)| *d += v);
                    }
                    None => taps[t]
                        .iter()
                        .for_each(|&(q, src)| tc[src as usize] += dn[q as usize]),
                }
            }
        }
    };
    // One group, every gradient kept and none added to: the sums are dx itself.
    if shape.groups == 1 && opts.keep.is_none() && !opts.accumulate {
        dx.fill(0.0);
        add_group(0, &csrs[0], dx);
        return;
    }
    let mut sums = vec![0.0; shape.n * in_plane];
    for (g, csr) in csrs.iter().enumerate() {
        // Fresh zeros for the first group.
        if g > 0 {
            sums.fill(0.0);
        }
        add_group(g, csr, &mut sums);
        for (n, src) in sums.chunks_exact(in_plane).enumerate() {
            let at = (n * shape.groups + g) * in_plane;
            let keep = opts.keep.map(|m| &m[at..][..in_plane]);
            store(&mut dx[at..][..in_plane], src, keep, opts.accumulate);
        }
    }
}

/// dx by col2im (see the module documentation), images in parallel: `sparse` holds every
/// group's `W_gᵀ` in CSR ([`transposed_weights`]), the other groups multiply `w` densely.
pub(super) fn by_col2im(
    shape: &ConvShape,
    (w, sparse): (&[f32], &[Option<Csr>]),
    dy: &[f32],
    dx: &mut [f32],
    opts: &ConvOpts,
) -> Result<()> {
    let (kg, j, p) = (shape.kg(), shape.j(), shape.p());
    let in_plane = shape.cg() * shape.h * shape.w;
    let weights =
        |g: usize| -> Result<MatRef> { Ok(MatRef::row_major(&w[g * kg * j..][..kg * j], kg, j)?.t()) };
    let table = shape.tap_table();
    let sw = shape.stride.1;
    dx.par_chunks_mut(shape.c * shape.h * shape.w)
        .enumerate()
        .try_for_each(|(n, dxn)| {
            let (mut dcol, mut drow) = (Vec::new(), vec![0.0; p]);
            let mut tmp = vec![0.0; in_plane];
            for g in 0..shape.groups {
                let dyg = &dy[(n * shape.k + g * kg) * p..][..kg * p];
                tmp.fill(0.0);
                // Adds row `jj` of dcol into `tmp` along its taps.
                let mut scatter =
                    |jj: usize, row: &[f32]| table.spans(jj, |t| add_span(&mut tmp, t, row, sw));
                match &sparse[g] {
                    // One row of dcol at a time; rows of structurally zero weights are +0 and
                    // leave `tmp` unchanged.
                    Some(csr) => {
                        for jj in (0..j).filter(|&jj| !csr.row_is_empty(jj)) {
                            gemm::spmm_row(csr, jj, dyg, p, &mut drow);
                            scatter(jj, &drow);
                        }
                    }
                    None => {
                        dcol.resize(j * p, 0.0);
                        gemm::gemm(weights(g)?, MatRef::row_major(dyg, kg, p)?, &mut dcol, p, false)?;
                        dcol.chunks_exact(p)
                            .enumerate()
                            .for_each(|(jj, row)| scatter(jj, row));
                    }
                }
                let keep_in = opts
                    .keep
                    .map(|m| &m[(n * shape.groups + g) * in_plane..][..in_plane]);
                store(
                    &mut dxn[g * in_plane..(g + 1) * in_plane],
                    &tmp,
                    keep_in,
                    opts.accumulate,
                );
            }
            Ok(())
        })
}

/// Adds the taps of `span` of a `dcol` row (`row`, output positions) into `tmp` (input positions
/// `span.src`, `span.src + sw`, …).
fn add_span(tmp: &mut [f32], span: TapSpan, row: &[f32], sw: usize) {
    let src = &row[span.q..][..span.len];
    if sw == 1 {
        let dst = &mut tmp[span.src..span.src + span.len];
        dst.iter_mut().zip(src).for_each(|(d, v)| *d += v);
    } else {
        src.iter()
            .enumerate()
            .for_each(|(k, v)| tmp[span.src + k * sw] += v);
    }
}

/// The work counters of BP: slots, outputs, and (exact counting) effective MACs, per image and
/// group, images in parallel.
fn count(shape: &ConvShape, w: &[f32], dy: &[f32], opts: &ConvOpts) -> Result<WorkCounts> {
    let (kg, j, p) = (shape.kg(), shape.j(), shape.p());
    let in_plane = shape.cg() * shape.h * shape.w;
    let exact = opts.counting == Counting::Exact;
    // In-bounds taps reading each input position of a channel, and over a group.
    let (plane, taps) = (shape.h * shape.w, shape.tap_sums(None));
    let valid = shape.cg() as u64 * taps.iter().sum::<u64>();
    let per_group = |(n, g): (usize, usize)| -> Result<WorkCounts> {
        let keep_in = opts
            .keep
            .map(|m| &m[(n * shape.groups + g) * in_plane..][..in_plane]);
        // Products whose target is padding or a dropped element are not computed.
        let kept = keep_in.map_or(valid, |m| {
            m.chunks_exact(plane)
                .flat_map(|ch| ch.iter().zip(&taps).filter(|(&k, _)| k).map(|(_, &t)| t))
                .sum()
        });
        let dropped = (valid - kept) * kg as u64;
        let keep_col: Option<BitMatrix> = exact.then(|| shape.kept_taps([keep_in]));
        let effective = match &keep_col {
            Some(kc) => {
                let wv = MatRef::row_major(&w[g * kg * j..(g + 1) * kg * j], kg, j)?.t();
                let dyv = MatRef::row_major(&dy[(n * shape.k + g * kg) * p..][..kg * p], kg, p)?;
                Some(gemm::count_effective(wv, dyv, Some(kc)))
            }
            None => None,
        };
        let mut c = product_counts([j, kg, p], keep_col.as_ref(), Some(dropped), effective);
        c.outputs = in_plane as u64;
        c.outputs_skipped = keep_in.map_or(0, |m| m.iter().filter(|&&k| !k).count() as u64);
        Ok(c)
    };
    let groups = shape.groups;
    // Without exact counting the counters are cheap: not worth a parallel task.
    let min_len = if exact { 1 } else { usize::MAX };
    sum_counts(
        (0..shape.n * groups)
            .into_par_iter()
            .with_min_len(min_len)
            .map(|i| per_group((i / groups, i % groups)))
            .collect(),
    )
}
