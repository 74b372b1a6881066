//! MAC census: which MACs of a conv/matmul had both operands non-zero, which had a zero on the
//! `a` side or the `b` side, and which belong to outputs that were never computed — per output
//! unit (the output channel the PE array assigns to a PE group).
//!
//! Every phase is viewed as products `L (M×J) · R (J×P)` restricted to kept outputs (`M×P` bits);
//! `M` rows map to output units. For a row `m` with kept outputs `keep_m`:
//!
//! - effective `= Σ_{j: L(m,j)≠0} |R_j ∧ keep_m|`
//! - slots with `L ≠ 0` `= nnz(L_m) · |keep_m|`, slots with `R ≠ 0` `= Σ_j |R_j ∧ keep_m|`
//!
//! (without a keep-mask the popcounts are row counts of `R`, computed once). Counts are exact
//! integers from the real operands; the arithmetic itself is done by [`crate::kernels`].

use crate::kernels::density::{and_popcount, set_bits, BitMatrix};

/// MAC counts of one output unit (or a total).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnitWork {
    /// MAC slots of computed outputs.
    pub slots: u64,
    /// Both operands non-zero.
    pub effective: u64,
    /// Slots whose `a` operand is non-zero.
    pub a_nonzero: u64,
    /// Slots whose `b` operand is non-zero.
    pub b_nonzero: u64,
    /// Slots of outputs not computed (masked off, or structurally absent such as BP taps onto padding).
    pub masked: u64,
}

impl std::ops::AddAssign for UnitWork {
    fn add_assign(&mut self, o: Self) {
        self.slots += o.slots;
        self.effective += o.effective;
        self.a_nonzero += o.a_nonzero;
        self.b_nonzero += o.b_nonzero;
        self.masked += o.masked;
    }
}

/// MAC events of a census under skip flags: `(random, gated, skipped)`.
pub fn split(w: &UnitWork, skip_a: bool, skip_b: bool) -> (u64, u64, u64) {
    let zero = w.slots - w.effective;
    let skipped_zero = match (skip_a, skip_b) {
        (true, true) => zero,
        (true, false) => w.slots - w.a_nonzero,
        (false, true) => w.slots - w.b_nonzero,
        (false, false) => 0,
    };
    (w.effective, zero - skipped_zero, skipped_zero + w.masked)
}

/// A census in progress: per-unit counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Census {
    /// Counts per output unit.
    pub units: Vec<UnitWork>,
}

impl Census {
    /// An empty census over `units` output units.
    pub fn new(units: usize) -> Self {
        Census {
            units: vec![UnitWork::default(); units],
        }
    }

    /// Sum over units.
    pub fn total(&self) -> UnitWork {
        let mut t = UnitWork::default();
        self.units.iter().for_each(|u| t += *u);
        t
    }

    /// Adds the product `L·R` (`l`: M×J, `r`: J×P, `keep`: M×P), row `m` belonging to unit
    /// `unit(m)`. `l_is_a` says whether `L` is the instruction's `a` operand (else `R` is).
    pub fn add_product(
        &mut self,
        l: &BitMatrix,
        r: &BitMatrix,
        keep: Option<&BitMatrix>,
        l_is_a: bool,
        unit: impl Fn(usize) -> usize,
    ) {
        let Some(k) = keep else {
            let r_counts: Vec<u64> = (0..l.cols()).map(|j| r.row_count(j)).collect();
            return self.add_unmasked(l, &r_counts, r.cols() as u64, l_is_a, unit);
        };
        let (j_len, p) = (l.cols(), r.cols() as u64);
        let mut per_j = vec![0u64; j_len];
        for m in 0..l.rows() {
            let km = k.row(m);
            per_j
                .iter_mut()
                .enumerate()
                .for_each(|(j, c)| *c = and_popcount(r.row(j), km));
            let row = RowCounts {
                l_nonzero: l.row_count(m),
                j_len: j_len as u64,
                kept: k.row_count(m),
                p,
                effective: set_bits(l.row(m)).map(|j| per_j[j]).sum(),
                r_nonzero: per_j.iter().sum(),
            };
            self.add_row(unit(m), &row, l_is_a);
        }
    }

    /// [`Census::add_product`] without a keep-mask, with `R` given by its row counts `r_counts`
    /// (`J` of them) and its column count `p`.
    pub fn add_unmasked(
        &mut self,
        l: &BitMatrix,
        r_counts: &[u64],
        p: u64,
        l_is_a: bool,
        unit: impl Fn(usize) -> usize,
    ) {
        let r_total = r_counts.iter().sum();
        for m in 0..l.rows() {
            let l_nonzero = l.row_count(m);
            // A full row of `L` meets every non-zero of `R`.
            let effective = if l_nonzero == l.cols() as u64 {
                r_total
            } else {
                set_bits(l.row(m)).map(|j| r_counts[j]).sum()
            };
            let row = RowCounts {
                l_nonzero,
                j_len: l.cols() as u64,
                kept: p,
                p,
                effective,
                r_nonzero: r_total,
            };
            self.add_row(unit(m), &row, l_is_a);
        }
    }

    /// Adds one row's counts, measured by the caller, to `unit`.
    pub fn add_row(&mut self, unit: usize, row: &RowCounts, l_is_a: bool) {
        self.units[unit] += row.work(l_is_a);
    }
}

/// Counts of one row of `L` in a product `L·R` restricted to kept outputs.
#[derive(Debug, Clone, Copy)]
pub struct RowCounts {
    /// Non-zeros of the row of `L`.
    pub l_nonzero: u64,
    /// Length of the row of `L` (`J`).
    pub j_len: u64,
    /// Outputs of the row kept.
    pub kept: u64,
    /// Outputs of the row (`P`).
    pub p: u64,
    /// Effective MACs of the kept outputs.
    pub effective: u64,
    /// Slots of the kept outputs whose `R` operand is non-zero.
    pub r_nonzero: u64,
}

impl RowCounts {
    fn work(&self, l_is_a: bool) -> UnitWork {
        let l_nz = self.l_nonzero * self.kept;
        let (a_nz, b_nz) = if l_is_a {
            (l_nz, self.r_nonzero)
        } else {
            (self.r_nonzero, l_nz)
        };
        UnitWork {
            slots: self.j_len * self.kept,
            effective: self.effective,
            a_nonzero: a_nz,
            b_nonzero: b_nz,
            masked: self.j_len * (self.p - self.kept),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn census_matches_brute_force() {
        let (m, j, p) = (5, 70, 9);
        let bit = |i: usize, s: usize| (i * 2654435761 + s) % 7 < 3;
        let l = BitMatrix::from_fn(m, j, |a, b| bit(a * j + b, 1));
        let r = BitMatrix::from_fn(j, p, |a, b| bit(a * p + b, 5));
        let keep = BitMatrix::from_fn(m, p, |a, b| bit(a * p + b, 2));
        for with_keep in [false, true] {
            let mut c = Census::new(2);
            c.add_product(&l, &r, with_keep.then_some(&keep), true, |row| row % 2);
            let mut want = [UnitWork::default(); 2];
            for a in 0..m {
                for q in 0..p {
                    let kept = !with_keep || keep.get(a, q);
                    for b in 0..j {
                        let w = &mut want[a % 2];
                        if !kept {
                            w.masked += 1;
                            continue;
                        }
                        w.slots += 1;
                        w.a_nonzero += u64::from(l.get(a, b));
                        w.b_nonzero += u64::from(r.get(b, q));
                        w.effective += u64::from(l.get(a, b) && r.get(b, q));
                    }
                }
            }
            assert_eq!(c.units, want.to_vec());
            let t = c.total();
            let (rnd, gated, skipped) = split(&t, true, false);
            assert_eq!(rnd + gated + skipped, t.slots + t.masked);
            assert_eq!(skipped, t.slots - t.a_nonzero + t.masked);
        }
    }
}
