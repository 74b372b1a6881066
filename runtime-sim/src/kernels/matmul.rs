//! Matrix multiply `C = op(A)·op(B)` with element masks and work counters, and the FF/BP/WG forms
//! of a linear (Gemm) layer `y = x·Wᵀ` (x: batch×in, W: out×in, y: batch×out).

use super::density::{BitMatrix, Counting, WorkCounts};
use super::gemm::{self, count_effective, MatRef};
use super::mask::{apply_weight_mask, store};
use super::{check_len, Result};

/// Dimensions of `C (m×n) = op(A) (m×k) · op(B) (k×n)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulShape {
    /// Rows of C.
    pub m: usize,
    /// Reduction length.
    pub k: usize,
    /// Columns of C.
    pub n: usize,
    /// A is stored k×m (row-major) and used transposed.
    pub trans_a: bool,
    /// B is stored n×k (row-major) and used transposed.
    pub trans_b: bool,
}

/// Options of a matmul call.
#[derive(Debug, Clone, Copy, Default)]
pub struct MatmulOpts<'a> {
    /// Add into C instead of overwriting it.
    pub accumulate: bool,
    /// Use `A ⊙ mask` (mask in A's storage layout).
    pub a_mask: Option<&'a [bool]>,
    /// Use `B ⊙ mask` (mask in B's storage layout).
    pub b_mask: Option<&'a [bool]>,
    /// Output keep-mask over C (m×n); outputs not kept contribute zero.
    pub keep: Option<&'a [bool]>,
    /// Whether to count effective MACs exactly.
    pub counting: Counting,
}

/// `C = op(A ⊙ a_mask) · op(B ⊙ b_mask)`, restricted to kept outputs.
pub fn matmul(
    shape: &MatmulShape,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    opts: &MatmulOpts,
) -> Result<WorkCounts> {
    let MatmulShape {
        m,
        k,
        n,
        trans_a,
        trans_b,
    } = *shape;
    check_len("matmul A", a, m * k)?;
    check_len("matmul B", b, k * n)?;
    check_len("matmul C", c, m * n)?;
    if let Some(keep) = opts.keep {
        check_len("keep-mask", keep, m * n)?;
    }
    let a = apply_weight_mask(a, opts.a_mask)?;
    let b = apply_weight_mask(b, opts.b_mask)?;
    let av = view(&a, m, k, trans_a)?;
    let bv = view(&b, k, n, trans_b)?;
    let mut tmp = vec![0.0; m * n];
    gemm::gemm(av, bv, &mut tmp, n, false)?;
    store(c, &tmp, opts.keep, opts.accumulate);
    let keep_bits = opts.keep.map(|kp| BitMatrix::from_bools(kp, m, n));
    let outputs = (m * n) as u64;
    let kept = keep_bits.as_ref().map_or(outputs, |kb| kb.count());
    let slots = outputs * k as u64;
    let masked_out = (outputs - kept) * k as u64;
    let exact = opts.counting == Counting::Exact;
    let effective = if exact {
        count_effective(av, bv, keep_bits.as_ref())
    } else {
        0
    };
    Ok(WorkCounts {
        mac_slots: slots,
        effective,
        zero_operand: if exact { slots - effective - masked_out } else { 0 },
        masked_out,
        outputs,
        outputs_skipped: outputs - kept,
        exact,
    })
}

/// A rows×cols view of row-major `d`, or of `d` stored cols×rows and transposed.
fn view(d: &[f32], rows: usize, cols: usize, transposed: bool) -> Result<MatRef<'_>> {
    if transposed {
        Ok(MatRef::row_major(d, cols, rows)?.t())
    } else {
        MatRef::row_major(d, rows, cols)
    }
}

/// Shape of a linear layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearShape {
    /// Batch size.
    pub batch: usize,
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
}

/// Options of a linear-layer kernel: `weight_mask` applies to FF/BP, `keep` to the phase's output.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinearOpts<'a> {
    /// Add into the output instead of overwriting it.
    pub accumulate: bool,
    /// FF/BP: use `W ⊙ mask` (out×in). Ignored by WG, whose output is the gradient itself.
    pub weight_mask: Option<&'a [bool]>,
    /// Output keep-mask (y for FF, dx for BP, dW for WG).
    pub keep: Option<&'a [bool]>,
    /// Whether to count effective MACs exactly.
    pub counting: Counting,
}

impl LinearOpts<'_> {
    fn matmul(&self, weight_masked: bool) -> MatmulOpts<'_> {
        MatmulOpts {
            accumulate: self.accumulate,
            a_mask: None,
            b_mask: if weight_masked { self.weight_mask } else { None },
            keep: self.keep,
            counting: self.counting,
        }
    }
}

/// Linear forward: `y = x · (W ⊙ mask)ᵀ`.
pub fn linear_ff(
    s: &LinearShape,
    x: &[f32],
    w: &[f32],
    y: &mut [f32],
    opts: &LinearOpts,
) -> Result<WorkCounts> {
    let shape = MatmulShape {
        m: s.batch,
        k: s.in_features,
        n: s.out_features,
        trans_a: false,
        trans_b: true,
    };
    matmul(&shape, x, w, y, &opts.matmul(true))
}

/// Linear input gradient: `dx = dy · (W ⊙ mask)`.
pub fn linear_bp(
    s: &LinearShape,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    opts: &LinearOpts,
) -> Result<WorkCounts> {
    let shape = MatmulShape {
        m: s.batch,
        k: s.out_features,
        n: s.in_features,
        trans_a: false,
        trans_b: false,
    };
    matmul(&shape, dy, w, dx, &opts.matmul(true))
}

/// Linear weight gradient: `dW = dyᵀ · x`.
pub fn linear_wg(
    s: &LinearShape,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    opts: &LinearOpts,
) -> Result<WorkCounts> {
    let shape = MatmulShape {
        m: s.out_features,
        k: s.batch,
        n: s.in_features,
        trans_a: true,
        trans_b: false,
    };
    matmul(&shape, dy, x, dw, &opts.matmul(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, sparse_vec, Rng};

    #[test]
    fn linear_phases_match_naive_with_masks_and_counts() {
        let mut rng = Rng::new(11);
        let s = LinearShape {
            batch: 5,
            in_features: 13,
            out_features: 7,
        };
        let x = sparse_vec(&mut rng, 5 * 13, 0.6);
        let w = sparse_vec(&mut rng, 7 * 13, 0.5);
        let dy = sparse_vec(&mut rng, 5 * 7, 0.7);
        let wmask: Vec<bool> = (0..7 * 13).map(|_| rng.uniform() < 0.7).collect();
        let keep_y: Vec<bool> = (0..5 * 7).map(|_| rng.uniform() < 0.7).collect();
        let keep_x: Vec<bool> = (0..5 * 13).map(|_| rng.uniform() < 0.7).collect();
        let keep_w: Vec<bool> = (0..7 * 13).map(|_| rng.uniform() < 0.7).collect();
        let wm: Vec<f32> = w
            .iter()
            .zip(&wmask)
            .map(|(&v, &m)| if m { v } else { 0.0 })
            .collect();
        let (mut ry, mut rdx, mut rdw) = (vec![0.0f64; 35], vec![0.0f64; 65], vec![0.0f64; 91]);
        let mut eff = [0u64; 3];
        for b in 0..5 {
            for o in 0..7 {
                for i in 0..13 {
                    let (xv, wv, gv) = (x[b * 13 + i], wm[o * 13 + i], dy[b * 7 + o]);
                    ry[b * 7 + o] += f64::from(xv * wv) * f64::from(u8::from(keep_y[b * 7 + o]));
                    rdx[b * 13 + i] += f64::from(gv * wv) * f64::from(u8::from(keep_x[b * 13 + i]));
                    rdw[o * 13 + i] += f64::from(gv * xv) * f64::from(u8::from(keep_w[o * 13 + i]));
                    eff[0] += u64::from(keep_y[b * 7 + o] && xv != 0.0 && wv != 0.0);
                    eff[1] += u64::from(keep_x[b * 13 + i] && gv != 0.0 && wv != 0.0);
                    eff[2] += u64::from(keep_w[o * 13 + i] && gv != 0.0 && xv != 0.0);
                }
            }
        }
        let opts = |keep| LinearOpts {
            weight_mask: Some(&wmask),
            keep: Some(keep),
            ..Default::default()
        };
        let mut y = vec![0.0; 35];
        let c = linear_ff(&s, &x, &w, &mut y, &opts(&keep_y)).unwrap();
        assert_close(&y, &ry, 1e-6);
        assert_eq!(c.effective, eff[0]);
        assert_eq!(c.mac_slots, c.effective + c.zero_operand + c.masked_out);
        let mut dx = vec![0.0; 65];
        let c = linear_bp(&s, &dy, &w, &mut dx, &opts(&keep_x)).unwrap();
        assert_close(&dx, &rdx, 1e-6);
        assert_eq!(c.effective, eff[1]);
        let mut dw = vec![0.0; 91];
        let c = linear_wg(&s, &x, &dy, &mut dw, &opts(&keep_w)).unwrap();
        assert_close(&dw, &rdw, 1e-6);
        assert_eq!(c.effective, eff[2]);
        assert_eq!(c.outputs_skipped, keep_w.iter().filter(|&&k| !k).count() as u64);
        assert!(linear_ff(&s, &x[1..], &w, &mut y, &LinearOpts::default()).is_err());
    }
}
