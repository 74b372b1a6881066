//! Strided f32 GEMM (via the `matrixmultiply` crate) and exact effective-MAC counting of a product.
//!
//! ## How effective MACs are counted
//!
//! For `C = A·B` (A: M×K, B: K×N) with an optional output keep-mask `keep` (M×N bits), the number of
//! MACs whose operands are both non-zero among the computed outputs is
//!
//! ```text
//! E = Σ_{(m,n) kept} Σ_k [A(m,k) ≠ 0]·[B(k,n) ≠ 0]
//! ```
//!
//! - Without a keep-mask this factorises: `E = Σ_k nnzcol_A(k) · nnzrow_B(k)`, one pass over each
//!   operand (O(MK + KN), no per-MAC work at all).
//! - With a keep-mask, either rows of B's non-zero indicator and rows of `keep` are packed into
//!   64-bit bitmaps over `n` and `E = Σ_m Σ_{k: A(m,k)≠0} popcount(B_k & keep_m)`
//!   (O(nnz(A)·N/64) word operations, cheaper as A gets sparser), or A's rows and Bᵀ's rows are
//!   packed over `k` and `E = Σ_{(m,n) kept} popcount(A_m & Bᵀ_n)` (O(kept·K/64), cheap when few
//!   outputs are kept, e.g. a sparse WG keep-mask). The cheaper one is chosen from the sizes.
//!
//! Both are exact integer counts; no branch per MAC in the arithmetic kernel.

use super::density::{and_popcount, set_bits, BitMatrix};
use super::{invalid, Result};
use rayon::prelude::*;
use std::ops::Range;

/// A read-only strided view of an f32 matrix: element `(r, c)` is `data[r*rs + c*cs]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    /// A strided view; fails if any element would lie outside `data`.
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Result<Self> {
        if rows > 0 && cols > 0 {
            let last = (rows - 1)
                .checked_mul(rs)
                .and_then(|a| (cols - 1).checked_mul(cs).and_then(|b| a.checked_add(b)));
            match last {
                Some(l) if l < data.len() => {}
                _ => {
                    return Err(invalid(
                        "matrix view",
                        format!("{rows}x{cols} view exceeds buffer"),
                    ))
                }
            }
        }
        Ok(Self {
            data,
            rows,
            cols,
            rs,
            cs,
        })
    }

    /// A row-major view of `data[..rows*cols]`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Element `(r, c)`.
    pub fn at(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.rs + c * self.cs]
    }

    /// The non-zero indicator as a bit matrix.
    pub fn nonzero_bits(&self) -> BitMatrix {
        if self.cs == 1 && self.rows > 0 && self.cols > 0 {
            BitMatrix::from_rows(self.rows, self.cols, |r| &self.data[r * self.rs..][..self.cols])
        } else {
            BitMatrix::from_fn(self.rows, self.cols, |r, c| self.at(r, c) != 0.0)
        }
    }

    /// Non-zero count of every row.
    fn row_nnz(&self) -> Vec<u64> {
        let nz = |x: &f32| u64::from(*x != 0.0);
        if self.rows == 0 || self.cols == 0 {
            vec![0; self.rows]
        } else if self.cs == 1 {
            (0..self.rows)
                .map(|r| self.data[r * self.rs..][..self.cols].iter().map(nz).sum())
                .collect()
        } else if self.rs == 1 {
            // Columns are contiguous: add them up column by column.
            let mut out = vec![0; self.rows];
            for c in 0..self.cols {
                let col = &self.data[c * self.cs..][..self.rows];
                out.iter_mut().zip(col).for_each(|(o, x)| *o += nz(x));
            }
            out
        } else {
            (0..self.rows)
                .map(|r| {
                    (0..self.cols)
                        .map(|c| nz(&self.data[r * self.rs + c * self.cs]))
                        .sum()
                })
                .collect()
        }
    }
}

/// `C = A·B` (or `C += A·B` when `accumulate`), C row-major with row stride `rsc`.
///
/// Fails if the shapes disagree or C is too small.
pub fn gemm(a: MatRef, b: MatRef, c: &mut [f32], rsc: usize, accumulate: bool) -> Result<()> {
    if a.cols != b.rows {
        return Err(invalid(
            "gemm",
            format!("A is {}x{}, B is {}x{}", a.rows, a.cols, b.rows, b.cols),
        ));
    }
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return Ok(());
    }
    if rsc < n || (m - 1) * rsc + n > c.len() {
        return Err(invalid(
            "gemm",
            format!("C buffer too small for {m}x{n} with row stride {rsc}"),
        ));
    }
    let beta = if accumulate { 1.0 } else { 0.0 };
    if k == 0 {
        for r in 0..m {
            c[r * rsc..r * rsc + n].iter_mut().for_each(|x| *x *= beta);
        }
        return Ok(());
    }
    // SAFETY: the views were bounds-checked at construction (every (r, c) inside its buffer), C was
    // checked above for an m×n matrix with row stride rsc, and the buffers do not alias (C is &mut).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.as_mut_ptr(),
            rsc as isize,
            1,
        );
    }
    Ok(())
}

/// Weight density at or below which [`spmm`] is used instead of the dense GEMM: below it,
/// skipping zero weights beats the dense kernel's higher FLOP rate.
pub const SPARSE_DENSITY: f64 = 0.25;

/// Keep-mask density at or below which [`sddmm`] is used instead of the dense GEMM (its scattered
/// row accesses make it slower per FLOP). With WG reducing over the whole batch (N·P = 4096 on
/// the ResNet-18-sized benchmark layer), at 10% density it measured 1.2× faster than the dense
/// GEMM (`wg_slots_only`, 90% sparsity: 45 ms vs 54 ms median).
pub const SDDMM_DENSITY: f64 = 0.15;

/// Compressed sparse rows of a matrix: the non-zero values and their column indices per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    row_ptr: Vec<usize>,
    cols: Vec<u32>,
    vals: Vec<f32>,
    ncols: usize,
}

impl Csr {
    /// The non-zeros of a matrix view.
    pub fn from_view(a: MatRef) -> Self {
        if a.rs == 1 && a.cs != 1 && a.rows > 0 && a.cols > 0 {
            Self::from_columns(a)
        } else {
            Self::from_bits(a, &a.nonzero_bits())
        }
    }

    /// The non-zeros of `a` whose non-zero indicator is `bits`: the set bits of every row, 64
    /// columns at a time (work ∝ words + non-zeros, no branch per value).
    fn from_bits(a: MatRef, bits: &BitMatrix) -> Self {
        let nnz = bits.count() as usize;
        let (mut cols, mut vals) = (Vec::with_capacity(nnz), Vec::with_capacity(nnz));
        let mut row_ptr = Vec::with_capacity(a.rows + 1);
        row_ptr.push(0);
        for r in 0..a.rows {
            for (w, &word) in bits.row(r).iter().enumerate() {
                let mut word = word;
                while word != 0 {
                    let c = w * 64 + word.trailing_zeros() as usize;
                    cols.push(c as u32);
                    vals.push(a.at(r, c));
                    word &= word - 1;
                }
            }
            row_ptr.push(cols.len());
        }
        Csr {
            row_ptr,
            cols,
            vals,
            ncols: a.cols,
        }
    }

    /// [`Csr::from_view`] of a view whose columns are contiguous (e.g. the transpose of a
    /// row-major matrix): one pass counts every row's non-zeros, a second places them, columns in
    /// increasing order as a row-by-row scan would.
    fn from_columns(a: MatRef) -> Self {
        let col = |c: usize| &a.data[c * a.cs..][..a.rows];
        let mut row_ptr = vec![0; a.rows + 1];
        for c in 0..a.cols {
            for (r, &v) in col(c).iter().enumerate() {
                row_ptr[r + 1] += usize::from(v != 0.0);
            }
        }
        for r in 0..a.rows {
            row_ptr[r + 1] += row_ptr[r];
        }
        let (mut cols, mut vals) = (vec![0; row_ptr[a.rows]], vec![0.0; row_ptr[a.rows]]);
        let mut next = row_ptr[..a.rows].to_vec();
        for c in 0..a.cols {
            for (r, &v) in col(c).iter().enumerate() {
                if v != 0.0 {
                    (cols[next[r]], vals[next[r]]) = (c as u32, v);
                    next[r] += 1;
                }
            }
        }
        Csr {
            row_ptr,
            cols,
            vals,
            ncols: a.cols,
        }
    }

    /// A CSR from its parts: row `r`'s non-zeros are `cols[row_ptr[r]..row_ptr[r + 1]]` (in
    /// increasing order, each below `ncols`) with values `vals[…]`.
    pub(crate) fn from_parts(row_ptr: Vec<usize>, cols: Vec<u32>, vals: Vec<f32>, ncols: usize) -> Self {
        debug_assert!(row_ptr.last() == Some(&cols.len()) && cols.len() == vals.len());
        debug_assert!(cols.iter().all(|&c| (c as usize) < ncols));
        Csr {
            row_ptr,
            cols,
            vals,
            ncols,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.row_ptr.len() - 1
    }

    /// The (column, value) pairs of row `r`, in column order.
    pub(crate) fn row(&self, r: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let at = self.row_ptr[r]..self.row_ptr[r + 1];
        self.cols[at.clone()]
            .iter()
            .map(|&c| c as usize)
            .zip(self.vals[at].iter().copied())
    }

    /// The columns and values of row `r`, in column order.
    pub(crate) fn row_slices(&self, r: usize) -> (&[u32], &[f32]) {
        let at = self.row_ptr[r]..self.row_ptr[r + 1];
        (&self.cols[at.clone()], &self.vals[at])
    }

    /// Number of columns.
    pub(crate) fn ncols(&self) -> usize {
        self.ncols
    }

    /// Number of non-zeros.
    pub(crate) fn nnz(&self) -> usize {
        self.vals.len()
    }

    /// Whether every stored value is finite.
    pub fn all_finite(&self) -> bool {
        // Without an early exit, so that it vectorises (most CSRs are all finite).
        self.vals.iter().fold(true, |all, v| all & v.is_finite())
    }

    /// Whether row `r` has no non-zeros.
    pub(crate) fn row_is_empty(&self, r: usize) -> bool {
        self.row_ptr[r] == self.row_ptr[r + 1]
    }

    /// Fraction of non-zero elements.
    pub fn density(&self) -> f64 {
        let total = self.rows() * self.ncols;
        if total == 0 {
            1.0
        } else {
            self.vals.len() as f64 / total as f64
        }
    }
}

/// Sparse × dense: `C = A·B` (or `C += A·B`) with A in CSR (m×k) and B row-major k×n; C row-major
/// with row stride `rsc`. Each output row is a sum of scaled B rows (vectorisable axpys), so the
/// work is `nnz(A)·n` instead of `m·k·n`.
pub fn spmm(a: &Csr, b: &[f32], n: usize, c: &mut [f32], rsc: usize, accumulate: bool) -> Result<()> {
    let m = a.rows();
    if b.len() != a.ncols * n {
        return Err(invalid(
            "spmm",
            format!("B has {} elements, expected {}x{n}", b.len(), a.ncols),
        ));
    }
    if m > 0 && n > 0 && (rsc < n || (m - 1) * rsc + n > c.len()) {
        return Err(invalid(
            "spmm",
            format!("C buffer too small for {m}x{n} with row stride {rsc}"),
        ));
    }
    spmm_rows(a, 0..m, b, n, c, rsc, accumulate);
    Ok(())
}

/// [`spmm`] into a dense m×n C (`C = A·B`), over row blocks in parallel when there is enough
/// work; each row is computed as [`spmm`] computes it, so the result is the same.
pub fn spmm_par(a: &Csr, b: &[f32], n: usize, c: &mut [f32]) -> Result<()> {
    /// Multiply-adds below which one thread does the whole product.
    const PARALLEL_WORK: usize = 1 << 16;
    let m = a.rows();
    if a.vals.len() * n < PARALLEL_WORK || m < 2 {
        return spmm(a, b, n, c, n, false);
    }
    if b.len() != a.ncols * n || c.len() != m * n {
        return Err(invalid("spmm", "operand lengths disagree"));
    }
    let rows = m.div_ceil(rayon::current_num_threads().max(1) * 4);
    c.par_chunks_mut(rows * n).enumerate().for_each(|(i, block)| {
        let first = i * rows;
        spmm_rows(a, first..first + block.len() / n, b, n, block, n, false);
    });
    Ok(())
}

/// Row `r` of [`spmm`]'s `C = A·B` into `out` (`n` floats), computed as [`spmm`] computes it.
pub(crate) fn spmm_row(a: &Csr, r: usize, b: &[f32], n: usize, out: &mut [f32]) {
    spmm_rows(a, r..r + 1, b, n, out, n, false);
}

/// Rows `rows` of [`spmm`], into `c` whose first row is row `rows.start`.
fn spmm_rows(
    a: &Csr,
    rows: std::ops::Range<usize>,
    b: &[f32],
    n: usize,
    c: &mut [f32],
    rsc: usize,
    accumulate: bool,
) {
    let brow = |j: u32| &b[j as usize * n..][..n];
    let first = rows.start;
    for r in rows {
        let row = &mut c[(r - first) * rsc..(r - first) * rsc + n];
        if !accumulate {
            row.fill(0.0);
        }
        let span = a.row_ptr[r]..a.row_ptr[r + 1];
        let (cols, vals) = (&a.cols[span.clone()], &a.vals[span]);
        // Four non-zeros per pass over the row: each element still adds its products one at a
        // time in CSR order (bit-identical to one axpy per non-zero), with a quarter of the
        // loads and stores of C.
        let (quads, vquads) = (cols.chunks_exact(4), vals.chunks_exact(4));
        let (rest, vrest) = (quads.remainder(), vquads.remainder());
        for (j, v) in quads.zip(vquads) {
            axpy4(row, v, [brow(j[0]), brow(j[1]), brow(j[2]), brow(j[3])]);
        }
        for (&j, &v) in rest.iter().zip(vrest) {
            row.iter_mut().zip(brow(j)).for_each(|(o, &x)| *o += v * x);
        }
    }
}

/// `o ← o + v₀·x₀ + v₁·x₁ + v₂·x₂ + v₃·x₃` for every element `o` of `row` and its elements of `x`
/// (each as long as `row`), added left to right, each product rounded (no fused multiply-add).
fn axpy4(row: &mut [f32], v: &[f32], x: [&[f32]; 4]) {
    let row = axpy4_wide(row, v, x);
    let start = x[0].len() - row.len();
    let [x0, x1, x2, x3] = x.map(|x| &x[start..]);
    for ((((o, x0), x1), x2), x3) in row.iter_mut().zip(x0).zip(x1).zip(x2).zip(x3) {
        *o = *o + v[0] * x0 + v[1] * x1 + v[2] * x2 + v[3] * x3;
    }
}

/// [`axpy4`] sixteen elements at a time, in AVX-512 registers (the compiler's own vectorisation
/// stops at eight on CPUs that prefer 256-bit vectors): the same operations in the same order.
/// Returns the elements left (fewer than sixteen).
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
fn axpy4_wide<'r>(row: &'r mut [f32], v: &[f32], x: [&[f32]; 4]) -> &'r mut [f32] {
    use std::arch::x86_64::{
        _mm512_add_ps, _mm512_loadu_ps, _mm512_mul_ps, _mm512_set1_ps, _mm512_storeu_ps,
    };
    let (mut outs, mut ins) = (row.chunks_exact_mut(16), x.map(|x| x.chunks_exact(16)));
    // SAFETY: the build targets AVX-512F (the `cfg` of this function); every load and store is
    // of one exact sixteen-element chunk, and they need no alignment.
    unsafe {
        let [v0, v1, v2, v3] = [v[0], v[1], v[2], v[3]].map(|c| _mm512_set1_ps(c));
        for o in outs.by_ref() {
            let [x0, x1, x2, x3] = ins
                .each_mut()
                .map(|i| _mm512_loadu_ps(i.next().expect("as long").as_ptr()));
            let mut acc = _mm512_loadu_ps(o.as_ptr());
            acc = _mm512_add_ps(acc, _mm512_mul_ps(v0, x0));
            acc = _mm512_add_ps(acc, _mm512_mul_ps(v1, x1));
            acc = _mm512_add_ps(acc, _mm512_mul_ps(v2, x2));
            acc = _mm512_add_ps(acc, _mm512_mul_ps(v3, x3));
            _mm512_storeu_ps(o.as_mut_ptr(), acc);
        }
    }
    outs.into_remainder()
}

/// Without AVX-512 every element is left to [`axpy4`]'s loop.
#[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
fn axpy4_wide<'r>(row: &'r mut [f32], _: &[f32], _: [&[f32]; 4]) -> &'r mut [f32] {
    row
}

/// Sampled dense × denseᵀ: `C[i, j] += Σ_p A[i, p]·B[j, p]` only where `keep` (i×j, row-major) is
/// set; A (m×p) and B (n×p) row-major, C row-major m×n. Work is `kept·p` instead of `m·n·p`.
/// Every kept sum has one fixed order, whatever the shapes and whichever entries are kept: the
/// products of elements `p' < p − p % 8` go to eight lanes by `p' % 8`, each lane adding them in
/// order from +0; then the lanes are added in order, plus the sum of the remaining products.
pub fn sddmm(a: &[f32], b: &[f32], p: usize, keep: &[bool], c: &mut [f32]) -> Result<()> {
    let Some(n) = b.len().checked_div(p) else {
        return Err(invalid("sddmm", "empty reduction"));
    };
    if !a.len().is_multiple_of(p) || b.len() != n * p || c.len() != (a.len() / p) * n || keep.len() != c.len()
    {
        return Err(invalid("sddmm", "operand lengths disagree"));
    }
    let m = a.len() / p;
    let keep = BitMatrix::from_bools(keep, m, n);
    sddmm_with(a, p, &keep, 0..m, c, |j, row| {
        row.copy_from_slice(&b[j * p..(j + 1) * p])
    });
    Ok(())
}

/// Rows `rows` of [`sddmm`] (`p > 0`) with the keep-mask as bits and B's rows made on demand:
/// `a` holds A's rows `rows` and `c` C's, `b_row(j, row)` writes row `j` of B into `row` (p
/// values). Each column of C with kept entries asks for its B row once and takes the dot
/// products with the kept A rows four at a time (independent sums side by side hide the addition
/// latency); every sum is [`dots`]', in [`sddmm`]'s order.
pub(crate) fn sddmm_with(
    a: &[f32],
    p: usize,
    keep: &BitMatrix,
    rows: Range<usize>,
    c: &mut [f32],
    mut b_row: impl FnMut(usize, &mut [f32]),
) {
    let n = keep.cols();
    let a_row = |i: usize| &a[i * p..(i + 1) * p];
    // The kept rows of every column (relative to `rows.start`): the keep-mask's rows transposed.
    let mut columns = BitMatrix::zeros(n, rows.len());
    for i in rows.clone() {
        set_bits(keep.row(i)).for_each(|j| columns.set(j, i - rows.start));
    }
    let (mut column, mut bj) = (Vec::with_capacity(rows.len()), vec![0.0; p]);
    for j in 0..n {
        column.clear();
        column.extend(set_bits(columns.row(j)));
        if column.is_empty() {
            continue;
        }
        b_row(j, &mut bj);
        for group in column.chunks(4) {
            // A short group repeats its last row; the extra sums cost no time (they run beside
            // the others) and are dropped.
            let ids: [usize; 4] = std::array::from_fn(|q| group[q.min(group.len() - 1)]);
            for (&i, s) in group.iter().zip(dots(ids.map(a_row), &bj)) {
                c[i * n + j] += s;
            }
        }
    }
}

/// The dot products of every `a[r]` with `b` (over `b`'s length), side by side, each with eight
/// f32 accumulators (vectorisable): element `e < len − len % 8` is added into lane `e % 8` in
/// order, then the lanes in order, plus the sum of the remaining products.
fn dots<const M: usize>(a: [&[f32]; M], b: &[f32]) -> [f32; M] {
    let (chunks, tail) = b.as_chunks::<8>();
    let whole = chunks.len() * 8;
    let heads = a.map(|r| r[..whole].as_chunks::<8>().0);
    let mut acc = [Lanes::zero(); M];
    for (q, y) in chunks.iter().enumerate() {
        for (acc, head) in acc.iter_mut().zip(&heads) {
            *acc = acc.add_product(&head[q], y);
        }
    }
    std::array::from_fn(|r| {
        let rest: f32 = a[r][whole..].iter().zip(tail).map(|(x, y)| x * y).sum();
        acc[r].to_array().iter().sum::<f32>() + rest
    })
}

/// Eight f32 lanes, each a separate sum: one AVX register where the target has AVX (written out,
/// as the compiler's own vectorisation of several arrays of eight side by side mixes the lanes of
/// different sums into slow shuffles).
#[cfg(all(target_arch = "x86_64", target_feature = "avx"))]
#[derive(Clone, Copy)]
struct Lanes(std::arch::x86_64::__m256);

#[cfg(all(target_arch = "x86_64", target_feature = "avx"))]
impl Lanes {
    fn zero() -> Self {
        // SAFETY: the build targets AVX (the `cfg` of this impl).
        Self(unsafe { std::arch::x86_64::_mm256_setzero_ps() })
    }

    /// `self + x·y` lane by lane: the product rounded, then the sum (no fused multiply-add).
    fn add_product(self, x: &[f32; 8], y: &[f32; 8]) -> Self {
        use std::arch::x86_64::{_mm256_add_ps, _mm256_loadu_ps, _mm256_mul_ps};
        // SAFETY: the build targets AVX; `x` and `y` are eight f32 each, and the loads need no
        // alignment.
        unsafe {
            let (x, y) = (_mm256_loadu_ps(x.as_ptr()), _mm256_loadu_ps(y.as_ptr()));
            Self(_mm256_add_ps(self.0, _mm256_mul_ps(x, y)))
        }
    }

    fn to_array(self) -> [f32; 8] {
        let mut out = [0.0; 8];
        // SAFETY: the build targets AVX; `out` has room for eight f32, and the store needs no
        // alignment.
        unsafe { std::arch::x86_64::_mm256_storeu_ps(out.as_mut_ptr(), self.0) };
        out
    }
}

/// Eight f32 lanes, each a separate sum.
#[cfg(not(all(target_arch = "x86_64", target_feature = "avx")))]
#[derive(Clone, Copy)]
struct Lanes([f32; 8]);

#[cfg(not(all(target_arch = "x86_64", target_feature = "avx")))]
impl Lanes {
    fn zero() -> Self {
        Self([0.0; 8])
    }

    /// `self + x·y` lane by lane: the product rounded, then the sum.
    fn add_product(self, x: &[f32; 8], y: &[f32; 8]) -> Self {
        Self(std::array::from_fn(|i| self.0[i] + x[i] * y[i]))
    }

    fn to_array(self) -> [f32; 8] {
        self.0
    }
}

/// Number of MACs of `A·B` with both operands non-zero, restricted to outputs kept by `keep`
/// (an `M×N` bit matrix; `None` = all outputs). See the module documentation for the method.
pub fn count_effective(a: MatRef, b: MatRef, keep: Option<&BitMatrix>) -> u64 {
    match keep {
        None => {
            let col_a = a.t().row_nnz();
            let row_b = b.row_nnz();
            col_a.iter().zip(&row_b).map(|(x, y)| x * y).sum()
        }
        Some(keep) => {
            // Word operations (plus bit-matrix building) of the two exact methods.
            let words = |n: usize| n.div_ceil(64) as u64;
            let by_rows = count_nonzero_view(a) * words(b.cols) + (b.rows * b.cols) as u64;
            let by_pairs = keep.count() * words(a.cols) + ((a.rows + b.cols) * a.cols) as u64;
            if by_pairs < by_rows {
                count_by_pairs(a, b, keep)
            } else {
                count_by_rows(a, b, keep)
            }
        }
    }
}

fn count_nonzero_view(a: MatRef) -> u64 {
    a.row_nnz().iter().sum()
}

/// `Σ_m Σ_{k: A(m,k)≠0} popcount(B_k & keep_m)` (bits over n).
fn count_by_rows(a: MatRef, b: MatRef, keep: &BitMatrix) -> u64 {
    let b_bits = b.nonzero_bits();
    let mut total = 0;
    for m in 0..a.rows {
        let keep_row = keep.row(m);
        for k in 0..a.cols {
            if a.at(m, k) != 0.0 {
                total += and_popcount(b_bits.row(k), keep_row);
            }
        }
    }
    total
}

/// `Σ_{(m,n) kept} popcount(A_m & Bᵀ_n)` (bits over k): cheap when few outputs are kept.
fn count_by_pairs(a: MatRef, b: MatRef, keep: &BitMatrix) -> u64 {
    let a_bits = a.nonzero_bits();
    let bt_bits = b.t().nonzero_bits();
    let mut total = 0;
    for m in 0..a.rows {
        let a_row = a_bits.row(m);
        for (w, &word) in keep.row(m).iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let n = w * 64 + bits.trailing_zeros() as usize;
                total += and_popcount(a_row, bt_bits.row(n));
                bits &= bits - 1;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{lane_dot, sparse_vec, Rng};

    #[test]
    fn gemm_and_counts_match_naive() {
        let mut rng = Rng::new(7);
        for &(m, k, n) in &[(1, 1, 1), (3, 5, 7), (17, 33, 9), (8, 70, 130)] {
            let a = sparse_vec(&mut rng, m * k, 0.5);
            let b = sparse_vec(&mut rng, k * n, 0.3);
            let keep = BitMatrix::from_fn(m, n, |_, _| rng.uniform() < 0.6);
            // A stored transposed to exercise strides.
            let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
            let av = MatRef::row_major(&at, k, m).unwrap().t();
            let bv = MatRef::row_major(&b, k, n).unwrap();
            let mut c = vec![1.0; m * n];
            gemm(av, bv, &mut c, n, true).unwrap();
            let (mut e_all, mut e_keep) = (0, 0);
            for i in 0..m {
                for j in 0..n {
                    let mut s = 1.0f64;
                    for p in 0..k {
                        s += f64::from(a[i * k + p]) * f64::from(b[p * n + j]);
                        let nz = u64::from(a[i * k + p] != 0.0 && b[p * n + j] != 0.0);
                        e_all += nz;
                        e_keep += nz * u64::from(keep.get(i, j));
                    }
                    assert!((f64::from(c[i * n + j]) - s).abs() < 1e-4 * (1.0 + s.abs()));
                }
            }
            assert_eq!(count_effective(av, bv, None), e_all);
            assert_eq!(count_effective(av, bv, Some(&keep)), e_keep);
            assert_eq!(count_by_rows(av, bv, &keep), e_keep);
            assert_eq!(count_by_pairs(av, bv, &keep), e_keep);
        }
    }

    #[test]
    fn csr_of_a_transposed_view_matches_the_transposed_copy() {
        let mut rng = Rng::new(5);
        for &(k, j) in &[(1, 1), (4, 9), (7, 130)] {
            let w = sparse_vec(&mut rng, k * j, 0.2);
            let wt: Vec<f32> = (0..j * k).map(|i| w[(i % k) * j + i / k]).collect();
            let view = MatRef::row_major(&w, k, j).unwrap().t();
            let copy = MatRef::row_major(&wt, j, k).unwrap();
            assert_eq!(Csr::from_view(view), Csr::from_view(copy));
        }
    }

    #[test]
    fn sddmm_sums_in_the_documented_order() {
        let mut rng = Rng::new(11);
        for &(m, n, p) in &[(1, 1, 1), (3, 5, 7), (6, 4, 8), (9, 13, 37), (17, 70, 128)] {
            for density in [0.0, 0.14, 0.5, 1.0] {
                let a = sparse_vec(&mut rng, m * p, 0.7);
                let b = sparse_vec(&mut rng, n * p, 0.5);
                let keep: Vec<bool> = (0..m * n).map(|_| rng.uniform() < density).collect();
                let c0: Vec<f32> = (0..m * n).map(|_| rng.signed()).collect();
                let mut c = c0.clone();
                sddmm(&a, &b, p, &keep, &mut c).unwrap();
                for (e, (&got, &k)) in c.iter().zip(&keep).enumerate() {
                    let (i, j) = (e / n, e % n);
                    let want = match k {
                        true => c0[e] + lane_dot(&a[i * p..(i + 1) * p], &b[j * p..(j + 1) * p]),
                        false => c0[e],
                    };
                    assert_eq!(got.to_bits(), want.to_bits(), "{m}x{n}x{p} at ({i}, {j})");
                }
            }
        }
    }

    #[test]
    fn spmm_sums_in_csr_order() {
        let mut rng = Rng::new(13);
        // Rows of non-zeros in fours and a rest; B rows spanning whole sixteens and a tail.
        for &(m, k, n) in &[(1, 1, 1), (3, 9, 16), (5, 23, 37), (4, 40, 130)] {
            let a = sparse_vec(&mut rng, m * k, 0.6);
            let b: Vec<f32> = (0..k * n).map(|_| rng.signed()).collect();
            let csr = Csr::from_view(MatRef::row_major(&a, m, k).unwrap());
            for accumulate in [false, true] {
                let c0: Vec<f32> = (0..m * n).map(|_| rng.signed()).collect();
                let mut c = c0.clone();
                spmm(&csr, &b, n, &mut c, n, accumulate).unwrap();
                for (e, &got) in c.iter().enumerate() {
                    let (i, q) = (e / n, e % n);
                    // Each non-zero's product added in turn, four per pass (as documented).
                    let mut want = if accumulate { c0[e] } else { 0.0 };
                    let terms: Vec<f32> = (0..k)
                        .filter(|&p| a[i * k + p] != 0.0)
                        .map(|p| a[i * k + p] * b[p * n + q])
                        .collect();
                    for quad in terms.chunks(4) {
                        want = match quad.len() {
                            4 => want + quad[0] + quad[1] + quad[2] + quad[3],
                            _ => quad.iter().fold(want, |w, &t| w + t),
                        };
                    }
                    assert_eq!(got.to_bits(), want.to_bits(), "{m}x{k}x{n} at ({i}, {q})");
                }
            }
        }
    }

    #[test]
    fn bad_views_are_errors() {
        let d = [0.0; 6];
        assert!(MatRef::row_major(&d, 2, 4).is_err());
        let a = MatRef::row_major(&d, 2, 3).unwrap();
        assert!(gemm(a, a, &mut [0.0; 4], 2, false).is_err());
        assert!(gemm(a, a.t(), &mut [0.0; 3], 2, false).is_err());
        let csr = Csr::from_view(a);
        assert!(spmm(&csr, &d[..5], 2, &mut [0.0; 4], 2, false).is_err());
        assert!(spmm(&csr, &d, 2, &mut [0.0; 3], 2, false).is_err());
        assert!(sddmm(&d, &d[..4], 2, &[true; 5], &mut [0.0; 5]).is_err());
        assert!(sddmm(&d, &d, 0, &[], &mut []).is_err());
    }
}
