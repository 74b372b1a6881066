//! The MAC census of a conv instruction, from the operands as used (after masks and BN on read).
//!
//! Input-side data (tap counts, im2col bits of the input or of a BP keep-mask) comes from
//! [`ConvViews`], so the tile instructions of one layer compute it once; the per-instruction work
//! is proportional to the tile's non-zero weights.

use super::census::{set_bits, Census, RowCounts, UnitWork};
use super::views::{ColBits, ConvViews, InputViews, KeepViews, KeptTaps};
use crate::kernels::conv::ConvShape;
use crate::kernels::density::{and_popcount, BitMatrix};
use std::sync::Arc;
use trainer_isa::names::Mode;

/// The non-zero bit matrix of `rows` contiguous rows of `cols` values.
fn bits(data: &[f32], rows: usize, cols: usize) -> BitMatrix {
    BitMatrix::from_rows(rows, cols, |r| &data[r * cols..][..cols])
}

/// The cached views a conv census reads: those of the input `a` (FF, WG) or of the BP
/// input-gradient keep-mask. Looked up before the census, which then needs no access to the
/// cache and can run on its own.
#[derive(Debug, Clone)]
pub enum CensusViews {
    /// The views of the FF/WG input.
    Input(Arc<InputViews>),
    /// The views of the BP keep-mask (`None`: all kept).
    Keep(Arc<KeepViews>),
}

impl CensusViews {
    /// Looks up the views a census of `mode` needs (`input`: the FF/WG input's, if the caller
    /// already has them).
    pub fn lookup(
        views: &mut ConvViews,
        s: &ConvShape,
        mode: Mode,
        a: &[f32],
        keep: Option<&[bool]>,
        input: Option<Arc<InputViews>>,
    ) -> Self {
        match mode {
            Mode::Bp => CensusViews::Keep(views.keep(s, keep)),
            _ => CensusViews::Input(input.unwrap_or_else(|| views.input(s, a))),
        }
    }

    fn input(&self) -> &InputViews {
        match self {
            CensusViews::Input(v) => v,
            CensusViews::Keep(_) => unreachable!("FF and WG censuses look up input views"),
        }
    }

    fn keep(&self) -> &KeepViews {
        match self {
            CensusViews::Keep(v) => v,
            CensusViews::Input(_) => unreachable!("BP censuses look up keep-mask views"),
        }
    }
}

/// Census of a conv phase: `a`, `b` as the instruction uses them, `keep` the output keep-mask in
/// effect for skipping (FF: S3's, BP: the input gradient's, WG: the weight gradient's), `views`
/// from [`CensusViews::lookup`] of the same operands.
pub fn conv_census(
    s: &ConvShape,
    mode: Mode,
    a: &[f32],
    b: &[f32],
    keep: Option<&[bool]>,
    views: &CensusViews,
) -> Census {
    let (g_n, kg, j) = (s.groups, s.kg(), s.j());
    let weights = |g: usize| &b[g * kg * j..(g + 1) * kg * j];
    let mut census = Census::new(if mode == Mode::Bp { s.c } else { s.k });
    match mode {
        Mode::Ff => {
            let wbits: Vec<BitMatrix> = (0..g_n).map(|g| bits(weights(g), kg, j)).collect();
            let input = views.input();
            match keep {
                // Without a keep-mask the counts add up over the images: one row pass per group.
                None => {
                    let total_p = (s.n * s.p()) as u64;
                    for (g, counts) in input.row_counts(s, a).iter().enumerate() {
                        census.add_unmasked(&wbits[g], counts, total_p, false, |m| g * kg + m);
                    }
                }
                Some(m) => {
                    for (i, col) in input.cols(s, a).iter().enumerate() {
                        let (n, g) = (i / g_n, i % g_n);
                        let kb =
                            BitMatrix::from_bools(&m[(n * s.k + g * kg) * s.p()..][..kg * s.p()], kg, s.p());
                        ff_masked(&mut census, &wbits[g], col, &kb, g * kg);
                    }
                }
            }
        }
        Mode::Bp => {
            let wts: Vec<Transposed> = (0..g_n)
                .map(|g| Transposed::new(&bits(weights(g), kg, j)))
                .collect();
            let taps = s.tap_sums(None);
            let kept = views.keep().groups(s, keep, &taps);
            let in_plane = s.cg() * s.h * s.w;
            for (i, kept) in kept.iter().enumerate() {
                let (n, g) = (i / g_n, i % g_n);
                let dy = &a[(n * s.k + g * kg) * s.p()..][..kg * s.p()];
                let keep_in = keep.map(|m| &m[i * in_plane..][..in_plane]);
                bp_group(&mut census, s, &wts[g], dy, keep_in, kept, g * s.cg());
            }
        }
        Mode::Wg => wg_census(&mut census, s, a, b, keep, views.input()),
    }
    census
}

/// WG census: `dy (Kg×P) · colᵀ (P×J)` per (image, group), units are output channels. With a
/// keep-mask each row counts only its kept weight gradients: `Σ_{j kept} |dy_m ∧ col_j|`.
fn wg_census(
    census: &mut Census,
    s: &ConvShape,
    x: &[f32],
    dy: &[f32],
    keep: Option<&[bool]>,
    input: &InputViews,
) {
    let (kg, j, p) = (s.kg(), s.j(), s.p());
    let dy_bits = |i: usize| {
        let (n, g) = (i / s.groups, i % s.groups);
        bits(&dy[(n * s.k + g * kg) * p..][..kg * p], kg, p)
    };
    let Some(keep) = keep else {
        // Every weight gradient counts: a row's MACs pair its non-zeros with the taps of their
        // output positions.
        for (i, per_q) in input.tap_counts(s, x).iter().enumerate() {
            let g = i % s.groups;
            census.add_unmasked(&dy_bits(i), per_q, j as u64, false, |m| g * kg + m);
        }
        return;
    };
    let keeps: Vec<BitMatrix> = (0..s.groups)
        .map(|g| BitMatrix::from_bools(&keep[g * kg * j..(g + 1) * kg * j], kg, j))
        .collect();
    for (i, col) in input.cols(s, x).iter().enumerate() {
        let (dy, g) = (dy_bits(i), i % s.groups);
        let kb = &keeps[g];
        for m in 0..kg {
            let (dm, l_nonzero) = (dy.row(m), dy.row_count(m));
            let (mut effective, mut r_nonzero) = (0, 0);
            for jj in set_bits(kb.row(m)) {
                r_nonzero += col.per_j[jj];
                if l_nonzero > 0 {
                    effective += and_popcount(col.bits.row(jj), dm);
                }
            }
            let row = RowCounts {
                l_nonzero,
                j_len: p as u64,
                kept: kb.row_count(m),
                p: j as u64,
                effective,
                r_nonzero,
            };
            census.add_row(g * kg + m, &row, false);
        }
    }
}

/// FF census rows of one (image, group) with a keep-mask `kb` (Kg×P): `w` is the group's weight
/// bitmap (Kg×J), `col` its input in im2col form; rows go to units `unit0 + m`.
fn ff_masked(census: &mut Census, w: &BitMatrix, col: &ColBits, kb: &BitMatrix, unit0: usize) {
    for m in 0..w.rows() {
        let km = kb.row(m);
        let row = RowCounts {
            l_nonzero: w.row_count(m),
            j_len: w.cols() as u64,
            kept: kb.row_count(m),
            p: kb.cols() as u64,
            effective: set_bits(w.row(m))
                .map(|j| and_popcount(col.bits.row(j), km))
                .sum(),
            r_nonzero: set_bits(km).map(|q| col.per_q[q]).sum(),
        };
        census.add_row(unit0 + m, &row, false);
    }
}

/// A transposed weight bitmap (`Wᵀ`, J×Kg) with its non-empty rows.
struct Transposed {
    bits: BitMatrix,
    /// `(j, non-zeros)` of every row of `bits` with any, in order.
    rows: Vec<(usize, u64)>,
}

impl Transposed {
    fn new(w: &BitMatrix) -> Self {
        let bits = w.transpose();
        let rows = (0..bits.rows())
            .map(|jj| (jj, bits.row_count(jj)))
            .filter(|&(_, c)| c > 0)
            .collect();
        Self { bits, rows }
    }
}

/// BP census of one image and group, per input channel (unit `unit0 + ci`): `w` is Wᵀ's bitmap,
/// `dy` the output gradient (Kg×P), `keep_in` the kept input gradients and `kept` the taps onto
/// them. Products onto padding or dropped inputs are masked. Only rows of non-zero weights are
/// counted tap by tap.
fn bp_group(
    census: &mut Census,
    s: &ConvShape,
    w: &Transposed,
    dy: &[f32],
    keep_in: Option<&[bool]>,
    kept: &KeptTaps,
    unit0: usize,
) {
    let (kg, p, rs, plane, cg) = (s.kg(), s.p(), s.r * s.s, s.h * s.w, s.cg());
    // Non-zero output gradients per output position, summed onto the inputs their taps read.
    let mut per_q = vec![0u64; p];
    for row in (0..kg).map(|k| &dy[k * p..][..p]) {
        per_q
            .iter_mut()
            .zip(row)
            .for_each(|(c, &v)| *c += u64::from(v != 0.0));
    }
    let dy_taps = s.tap_sums(Some(&per_q));
    let dy = bits(dy, kg, p);
    // Without a keep-mask a row's taps depend only on its kernel position (`jj % rs`): count
    // each (kernel position, dy row) pair once.
    let per_tap: Vec<u64> = match keep_in {
        None => (0..rs * kg)
            .map(|i| and_popcount(kept.bits.row(i / kg), dy.row(i % kg)))
            .collect(),
        Some(_) => Vec::new(),
    };
    let (mut effective, mut b_nonzero) = (vec![0; cg], vec![0; cg]);
    for &(jj, l_nz) in &w.rows {
        let ci = jj / rs;
        b_nonzero[ci] += l_nz * kept.rows[jj];
        let ks = set_bits(w.bits.row(jj));
        effective[ci] += match keep_in {
            None => ks.map(|k| per_tap[jj % rs * kg + k]).sum::<u64>(),
            Some(_) => ks.map(|k| and_popcount(kept.bits.row(jj), dy.row(k))).sum(),
        };
    }
    let all_taps: u64 = dy_taps.iter().sum();
    for ci in 0..cg {
        let a_nonzero = match keep_in {
            None => all_taps,
            Some(m) => m[ci * plane..][..plane]
                .iter()
                .zip(&dy_taps)
                .map(|(&k, &v)| if k { v } else { 0 })
                .sum(),
        };
        let kept_ci = kept.per_channel[ci];
        census.units[unit0 + ci] += UnitWork {
            slots: kg as u64 * kept_ci,
            effective: effective[ci],
            a_nonzero,
            b_nonzero: b_nonzero[ci],
            masked: kg as u64 * (rs as u64 * p as u64 - kept_ci),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::Padding;
    use crate::kernels::density::nonzero_bitmap;

    /// The census straight from the im2col bitmaps (`L·R` with every row counted).
    fn reference(s: &ConvShape, mode: Mode, a: &[f32], b: &[f32], keep: Option<&[bool]>) -> Census {
        let (kg, cg, j, p) = (s.kg(), s.cg(), s.j(), s.p());
        let in_plane = cg * s.h * s.w;
        let mut census = Census::new(if mode == Mode::Bp { s.c } else { s.k });
        for n in 0..s.n {
            for g in 0..s.groups {
                let w = || &b[g * kg * j..][..kg * j];
                match mode {
                    Mode::Ff => {
                        let x = &a[(n * s.groups + g) * in_plane..][..in_plane];
                        let col = s.tap_bits(&nonzero_bitmap(x));
                        let kb = keep
                            .map(|m| BitMatrix::from_bools(&m[(n * s.k + g * kg) * p..][..kg * p], kg, p));
                        census.add_product(&bits(w(), kg, j), &col, kb.as_ref(), false, |m| g * kg + m);
                    }
                    Mode::Bp => {
                        let w = w();
                        let wt = BitMatrix::from_fn(j, kg, |jj, k| w[k * j + jj] != 0.0);
                        let dy = bits(&a[(n * s.k + g * kg) * p..][..kg * p], kg, p);
                        let kb = s.kept_taps(keep.map(|m| &m[(n * s.groups + g) * in_plane..][..in_plane]));
                        census.add_product(&wt, &dy, Some(&kb), false, |jj| g * cg + jj / (s.r * s.s));
                    }
                    Mode::Wg => {
                        let x = &a[(n * s.groups + g) * in_plane..][..in_plane];
                        let dy = bits(&b[(n * s.k + g * kg) * p..][..kg * p], kg, p);
                        let colt = s.tap_bits(&nonzero_bitmap(x)).transpose();
                        let kb = keep.map(|m| BitMatrix::from_bools(&m[g * kg * j..(g + 1) * kg * j], kg, j));
                        census.add_product(&dy, &colt, kb.as_ref(), false, |m| g * kg + m);
                    }
                }
            }
        }
        census
    }

    #[test]
    fn conv_census_matches_im2col_bitmaps() {
        let base = ConvShape::simple(2, 4, 7, 6, 3, 1, 1);
        let shapes = [
            base,
            ConvShape {
                stride: (2, 2),
                pad: Padding {
                    top: 1,
                    left: 0,
                    bottom: 2,
                    right: 1,
                },
                ..base
            },
            ConvShape {
                groups: 2,
                dilation: (2, 1),
                h: 9,
                w: 5,
                s: 2,
                stride: (3, 2),
                ..base
            },
        ];
        let mut state = 7u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        // One cache over every case: entries of other shapes and contents must never be reused.
        let mut views = ConvViews::default();
        for s in shapes {
            for _ in 0..2 {
                let mut vals = |n: usize, pct: u32| -> Vec<f32> {
                    (0..n)
                        .map(|_| if next() % 100 < pct { 1.0 } else { 0.0 })
                        .collect()
                };
                let (x, w, dy) = (
                    vals(s.input_len(), 60),
                    vals(s.weight_len(), 20),
                    vals(s.output_len(), 50),
                );
                let keep_y: Vec<bool> = vals(s.output_len(), 70).iter().map(|&v| v != 0.0).collect();
                let keep_x: Vec<bool> = vals(s.input_len(), 70).iter().map(|&v| v != 0.0).collect();
                let keep_w: Vec<bool> = vals(s.weight_len(), 30).iter().map(|&v| v != 0.0).collect();
                for (mode, a, b, keep) in [
                    (Mode::Ff, &x, &w, None),
                    (Mode::Ff, &x, &w, Some(&keep_y)),
                    (Mode::Bp, &dy, &w, None),
                    (Mode::Bp, &dy, &w, Some(&keep_x)),
                    (Mode::Wg, &x, &dy, None),
                    (Mode::Wg, &x, &dy, Some(&keep_w)),
                    (Mode::Ff, &x, &w, None),
                    (Mode::Bp, &dy, &w, Some(&keep_x)),
                ] {
                    let keep = keep.map(|k| k.as_slice());
                    assert_eq!(
                        conv_census(
                            &s,
                            mode,
                            a,
                            b,
                            keep,
                            &CensusViews::lookup(&mut views, &s, mode, a, keep, None)
                        ),
                        reference(&s, mode, a, b, keep),
                        "{s:?} {mode:?} keep {}",
                        keep.is_some()
                    );
                }
            }
        }
    }
}
