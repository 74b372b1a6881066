//! The MAC census of a conv instruction, from the operands as used (after masks and BN on read).
//!
//! Input-side data (tap counts, im2col bits of the input or of a BP keep-mask) comes from
//! [`ConvViews`], so the tile instructions of one layer compute it once; the per-instruction work
//! is proportional to the tile's non-zero weights.

use super::census::{Census, RowCounts, UnitWork};
use super::views::{ConvViews, InputViews, KeepViews, KeptTaps};
use crate::kernels::conv::ConvShape;
use crate::kernels::density::{and_popcount, set_bits, BitMatrix, Indicator};
use crate::kernels::Divisor;
use std::sync::{Arc, OnceLock};
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
    /// has them; fresh ones otherwise).
    pub fn lookup(
        views: &mut ConvViews,
        s: &ConvShape,
        mode: Mode,
        keep: Option<&[bool]>,
        input: Option<Arc<InputViews>>,
    ) -> Self {
        match mode {
            Mode::Bp => CensusViews::Keep(views.keep(s, keep)),
            _ => CensusViews::Input(input.unwrap_or_default()),
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

/// What a census derives from a conv's `b` operand, per group: the weights' bits (FF, BP) or
/// the output gradient's rows (WG). Built on first use and kept with the operand's shared entry
/// ([`ConvViews::weights`]), so the tile instructions that share the operand build it once.
#[derive(Debug, Default)]
pub struct WeightViews {
    bits: OnceLock<Vec<BitMatrix>>,
    dy: OnceLock<Vec<DyRows>>,
}

impl WeightViews {
    /// Every group's weight bits (Kg×J) of weights `b`.
    fn bits(&self, s: &ConvShape, b: &[f32]) -> &[BitMatrix] {
        let (kg, j) = (s.kg(), s.j());
        self.bits
            .get_or_init(|| b.chunks_exact(kg * j).map(|wg| bits(wg, kg, j)).collect())
    }

    /// Every group's rows of output gradient `b`.
    fn dy(&self, s: &ConvShape, b: &[f32]) -> &[DyRows] {
        self.dy
            .get_or_init(|| (0..s.groups).map(|g| DyRows::new(s, b, g)).collect())
    }
}

/// Census of a conv phase: `a`, `b` as the instruction uses them (`b_views` derived from `b`),
/// `keep` the output keep-mask in effect for skipping (FF: S3's, BP: the input gradient's, WG:
/// the weight gradient's), `views` from [`CensusViews::lookup`] of the same operands.
///
/// Every count is linear in the images (with the row length `P` summed too), so each group is
/// counted once over the batch, the images' output positions side by side (`N·P` columns).
pub fn conv_census(
    s: &ConvShape,
    mode: Mode,
    a: &[f32],
    (b, b_views): (&[f32], &WeightViews),
    keep: Option<&[bool]>,
    views: &CensusViews,
) -> Census {
    let (g_n, kg, j) = (s.groups, s.kg(), s.j());
    let weights = |g: usize| &b_views.bits(s, b)[g];
    let mut census = Census::new(if mode == Mode::Bp { s.c } else { s.k });
    match mode {
        Mode::Ff => {
            let input = views.input();
            // A mask keeping every output counts as none.
            match keep.filter(|m| !m.iter().all(|&k| k)) {
                None => {
                    let total_p = (s.n * s.p()) as u64;
                    for (g, counts) in input.row_counts(s, a).iter().enumerate() {
                        census.add_unmasked(weights(g), counts, total_p, false, |m| g * kg + m);
                    }
                }
                Some(m) => {
                    let (cols, per_q) = (input.cols(s, a), input.tap_counts(s, a));
                    for g in 0..g_n {
                        let kb = batched(s, m, g);
                        ff_masked(&mut census, weights(g), &cols[g], &per_q[g], &kb, g * kg);
                    }
                }
            }
        }
        Mode::Bp => {
            let kept = views.keep().groups(s, keep);
            for (g, kept) in kept.iter().enumerate() {
                bp_group(&mut census, s, weights(g), a, keep, kept, g);
            }
        }
        Mode::Wg => {
            let input = views.input();
            for (g, dy) in b_views.dy(s, b).iter().enumerate() {
                match keep {
                    // Every weight gradient counts: a row's MACs pair its non-zeros with the
                    // taps of their output positions.
                    None => {
                        let per_q = &input.tap_counts(s, a)[g];
                        census.add_unmasked(&dy.bits, per_q, j as u64, false, |m| g * kg + m);
                    }
                    Some(m) => {
                        let kb = BitMatrix::from_bools(&m[g * kg * j..(g + 1) * kg * j], kg, j);
                        wg_masked(&mut census, s, a, input, dy, &kb, g);
                    }
                }
            }
        }
    }
    census
}

/// The effective MACs of an FF conv of input `x` and weights `w` with every output computed
/// (S3's exact product): each non-zero weight meets the non-zero taps of its im2col row. The
/// total of [`conv_census`] without a keep-mask, without building its bitmaps.
pub fn ff_effective(s: &ConvShape, x: &[f32], w: &[f32], input: &InputViews) -> u64 {
    let j = s.j();
    let groups = input.row_counts(s, x).iter().zip(w.chunks_exact(s.kg() * j));
    groups
        .flat_map(|(counts, wg)| wg.chunks_exact(j).map(move |row| (counts, row)))
        .map(|(counts, row)| {
            row.iter()
                .zip(counts)
                .map(|(&v, &c)| u64::from(v != 0.0) * c)
                .sum::<u64>()
        })
        .sum()
}

/// The bits of group `g`'s channels of an N×K×P tensor (outputs, output gradients or an output
/// keep-mask) as their indicators, the images side by side: row `m` (channel `g·Kg + m`) holds image `n`
/// at columns `n·P..(n + 1)·P` (Kg×(N·P)).
fn batched<T: Indicator>(s: &ConvShape, data: &[T], g: usize) -> BitMatrix {
    let (kg, p) = (s.kg(), s.p());
    BitMatrix::from_parts(kg, s.n, p, |m, n| &data[(n * s.k + g * kg + m) * p..])
}

/// Group `g`'s rows of an output gradient (N×K×P), the images side by side (Kg×(N·P)): the
/// non-zeros of every row, and the rows' bits ([`batched`]).
#[derive(Debug)]
struct DyRows {
    /// Non-zeros of every row.
    counts: Vec<u64>,
    /// Row length (`N·P`).
    len: u64,
    /// The rows' bits.
    bits: BitMatrix,
}

impl DyRows {
    fn new(s: &ConvShape, dy: &[f32], g: usize) -> Self {
        let bits = batched(s, dy, g);
        Self {
            counts: (0..bits.rows()).map(|m| bits.row_count(m)).collect(),
            len: (s.n * s.p()) as u64,
            bits,
        }
    }

    /// `|row m ∧ other|`, `other` (a bit row as long) having `other_count` bits set: no word
    /// loop when row `m` is empty or full.
    fn meet(&self, m: usize, other: &[u64], other_count: u64) -> u64 {
        match self.counts[m] {
            0 => 0,
            c if c == self.len => other_count,
            _ => and_popcount(other, self.bits.row(m)),
        }
    }
}

/// WG census rows of group `g` (`dy · colᵀ`, units are output channels) with the weight-gradient
/// keep-mask `kb` (Kg×J): `dy` is the group's output gradient. Each row counts only
/// its kept weight gradients: `Σ_{j kept} |dy_m ∧ col_j|`.
fn wg_masked(
    census: &mut Census,
    s: &ConvShape,
    x: &[f32],
    input: &InputViews,
    dy: &DyRows,
    kb: &BitMatrix,
    g: usize,
) {
    let kg = s.kg();
    let per_j = &input.row_counts(s, x)[g];
    for m in 0..kg {
        let l_nonzero = dy.counts[m];
        let r_nonzero = set_bits(kb.row(m)).map(|jj| per_j[jj]).sum();
        // An empty row meets no tap and a full one every tap: no im2col bits needed.
        let effective = match l_nonzero {
            0 => 0,
            c if c == dy.len => r_nonzero,
            _ => {
                let (col, dm) = (&input.cols(s, x)[g], dy.bits.row(m));
                set_bits(kb.row(m)).map(|jj| and_popcount(col.row(jj), dm)).sum()
            }
        };
        let row = RowCounts {
            l_nonzero,
            j_len: dy.len,
            kept: kb.row_count(m),
            p: s.j() as u64,
            effective,
            r_nonzero,
        };
        census.add_row(g * kg + m, &row, false);
    }
}

/// FF census rows of one group with a keep-mask `kb` (Kg×(N·P), [`batched`]): `w` is the group's
/// weight bitmap (Kg×J), `col` its input in im2col form and `per_q` the non-zero taps of every
/// output position (both with the images side by side); rows go to units `unit0 + m`.
fn ff_masked(
    census: &mut Census,
    w: &BitMatrix,
    col: &BitMatrix,
    per_q: &[u64],
    kb: &BitMatrix,
    unit0: usize,
) {
    for m in 0..w.rows() {
        let km = kb.row(m);
        let row = RowCounts {
            l_nonzero: w.row_count(m),
            j_len: w.cols() as u64,
            kept: kb.row_count(m),
            p: kb.cols() as u64,
            effective: set_bits(w.row(m)).map(|j| and_popcount(col.row(j), km)).sum(),
            r_nonzero: set_bits(km).map(|q| per_q[q]).sum(),
        };
        census.add_row(unit0 + m, &row, false);
    }
}

/// BP census of group `g` over the batch, per input channel (unit `g·Cg + ci`): `w` is the
/// group's weight bitmap (Kg×J), `dy` the output gradient (N×K×P), `keep` the kept input
/// gradients (N×C×H×W) and `kept` the group's taps onto them. Products onto padding or dropped
/// inputs are masked. Only non-zero weights are counted tap by tap: weight `(k, j)` pairs row `k`
/// of dy with the kept taps of im2col row `j` (input channel `j / (R·S)`).
fn bp_group(
    census: &mut Census,
    s: &ConvShape,
    w: &BitMatrix,
    dy: &[f32],
    keep: Option<&[bool]>,
    kept: &KeptTaps,
    g: usize,
) {
    let (kg, rs, cg) = (s.kg(), s.r * s.s, s.cg());
    let a_nonzero = bp_a_nonzero(s, dy, keep, g);
    let dy = DyRows::new(s, dy, g);
    // Kept taps of im2col row `jj` meeting non-zeros of row `k` of dy.
    let meet = |jj: usize, k: usize| dy.meet(k, kept.bits.row(jj), kept.rows[jj]);
    // Without a keep-mask a row's taps depend only on its kernel position (`jj % rs`): count
    // each (kernel position, dy row) pair once.
    let per_tap: Vec<u64> = match keep {
        None => (0..rs * kg).map(|i| meet(i / kg, i % kg)).collect(),
        Some(_) => Vec::new(),
    };
    let (mut effective, mut b_nonzero) = (vec![0; cg], vec![0; cg]);
    let by_rs = Divisor::new(rs, w.cols());
    for k in 0..kg {
        for jj in set_bits(w.row(k)) {
            // Row `jj`'s input channel and kernel position.
            let (ci, tap) = by_rs.div_rem(jj);
            b_nonzero[ci] += kept.rows[jj];
            effective[ci] += match keep {
                None => per_tap[tap * kg + k],
                Some(_) => meet(jj, k),
            };
        }
    }
    for ci in 0..cg {
        let kept_ci = kept.per_channel[ci];
        census.units[g * cg + ci] += UnitWork {
            slots: kg as u64 * kept_ci,
            effective: effective[ci],
            a_nonzero: a_nonzero[ci],
            b_nonzero: b_nonzero[ci],
            masked: kg as u64 * (rs as u64 * dy.len - kept_ci),
        };
    }
}

/// BP slots of group `g` whose output gradient is non-zero, per input channel, over the batch:
/// the non-zeros of every image's `dy` (N×K×P) at each output position, summed onto the kept
/// inputs (`keep`, N×C×H×W; `None`: all) their taps read. Without a keep-mask every channel
/// counts the same, so the images' counts are added before the taps are.
fn bp_a_nonzero(s: &ConvShape, dy: &[f32], keep: Option<&[bool]>, g: usize) -> Vec<u64> {
    let (kg, p, plane) = (s.kg(), s.p(), s.h * s.w);
    let mut per_q = vec![0u64; p];
    let count = |per_q: &mut [u64], n: usize| {
        for row in dy[(n * s.k + g * kg) * p..][..kg * p].chunks_exact(p) {
            per_q
                .iter_mut()
                .zip(row)
                .for_each(|(c, &v)| *c += u64::from(v != 0.0));
        }
    };
    match keep {
        None => {
            (0..s.n).for_each(|n| count(&mut per_q, n));
            vec![s.tap_sums(Some(&per_q)).iter().sum(); s.cg()]
        }
        Some(m) => {
            let mut out = vec![0; s.cg()];
            for n in 0..s.n {
                per_q.fill(0);
                count(&mut per_q, n);
                let dy_taps = s.tap_sums(Some(&per_q));
                let keep_n = m[(n * s.groups + g) * s.cg() * plane..].chunks_exact(plane);
                for (total, mc) in out.iter_mut().zip(keep_n) {
                    *total += mc
                        .iter()
                        .zip(&dy_taps)
                        .map(|(&k, &v)| v & u64::from(k).wrapping_neg())
                        .sum::<u64>();
                }
            }
            out
        }
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
                        let col = s.tap_bits(&[nonzero_bitmap(x)]);
                        let kb = keep
                            .map(|m| BitMatrix::from_bools(&m[(n * s.k + g * kg) * p..][..kg * p], kg, p));
                        census.add_product(&bits(w(), kg, j), &col, kb.as_ref(), false, |m| g * kg + m);
                    }
                    Mode::Bp => {
                        let w = w();
                        let wt = BitMatrix::from_fn(j, kg, |jj, k| w[k * j + jj] != 0.0);
                        let dy = bits(&a[(n * s.k + g * kg) * p..][..kg * p], kg, p);
                        let kb = s.kept_taps([keep.map(|m| &m[(n * s.groups + g) * in_plane..][..in_plane])]);
                        census.add_product(&wt, &dy, Some(&kb), false, |jj| g * cg + jj / (s.r * s.s));
                    }
                    Mode::Wg => {
                        let x = &a[(n * s.groups + g) * in_plane..][..in_plane];
                        let dy = bits(&b[(n * s.k + g * kg) * p..][..kg * p], kg, p);
                        let colt = s.tap_bits(&[nonzero_bitmap(x)]).transpose();
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
            // Batches whose rows span words unevenly (N·P = 297, 80, 63).
            ConvShape {
                n: 3,
                c: 6,
                h: 11,
                w: 9,
                groups: 3,
                ..base
            },
            ConvShape::simple(5, 3, 4, 5, 1, 1, 0),
            ConvShape {
                n: 3,
                h: 13,
                w: 5,
                k: 9,
                stride: (2, 2),
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
            // Rounds: random operands; output-gradient channels empty, random or full in every
            // image; dense output gradients and an FF mask keeping everything.
            for round in 0..3 {
                let mut vals = |n: usize, pct: u32| -> Vec<f32> {
                    (0..n)
                        .map(|_| if next() % 100 < pct { 1.0 } else { 0.0 })
                        .collect()
                };
                let (x, w) = (vals(s.input_len(), 60), vals(s.weight_len(), 20));
                let dy_pct = |k: usize| [50, [0, 50, 100][k % 3], 100][round];
                let dy: Vec<f32> = (0..s.n * s.k)
                    .flat_map(|nk| vals(s.p(), dy_pct(nk % s.k)))
                    .collect();
                let keep_y: Vec<bool> = vals(s.output_len(), [70, 70, 100][round])
                    .iter()
                    .map(|&v| v != 0.0)
                    .collect();
                let keep_x: Vec<bool> = vals(s.input_len(), 70).iter().map(|&v| v != 0.0).collect();
                let keep_w: Vec<bool> = vals(s.weight_len(), 30).iter().map(|&v| v != 0.0).collect();
                // The `b` views serve every case of their operand, as the weights entry does.
                let (w_views, dy_views) = (WeightViews::default(), WeightViews::default());
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
                    if mode == Mode::Ff && keep.is_none() {
                        assert_eq!(
                            ff_effective(&s, a, b, &InputViews::default()),
                            reference(&s, mode, a, b, None).total().effective,
                            "{s:?}"
                        );
                    }
                    assert_eq!(
                        conv_census(
                            &s,
                            mode,
                            a,
                            (b, if mode == Mode::Wg { &dy_views } else { &w_views }),
                            keep,
                            &CensusViews::lookup(&mut views, &s, mode, keep, None)
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
