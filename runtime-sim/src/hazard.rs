//! Memory footprints of instructions, so that a conv's kernel can run in the background while the
//! instructions after it execute.
//!
//! A background conv reads all its operands when it issues and writes its results (output and BN
//! statistics) when it retires; a deferrable store ([`DmaOp::deferrable`]) reads and writes when
//! it retires. Pending instructions retire in program order, so they never conflict with each
//! other; an instruction that executes at issue may not touch what a pending one touches later:
//! the run loop retires that one (and those before it) first. Instructions whose footprint is
//! not known here retire every pending one.

use crate::decode::{ConvOp, DmaOp, Op};
use crate::state::State;
use trainer_isa::names::Mode;
use trainer_isa::{Operand, Space};

/// A byte range `[start, end)` of one memory space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    space: Space,
    start: u64,
    end: u64,
}

impl Region {
    /// The bytes of `n` elements of `op` (`None` for an absent operand or no elements).
    fn of(op: Operand, n: usize) -> Option<Self> {
        let bytes = op.dtype.bytes(n as u64);
        (!op.is_none() && bytes > 0).then(|| Self::span(op.space, op.addr.into(), bytes))
    }

    fn span(space: Space, start: u64, len: u64) -> Self {
        Region {
            space,
            start,
            end: start.saturating_add(len),
        }
    }

    /// Whether the two regions share a byte.
    pub fn overlaps(&self, other: &Region) -> bool {
        self.space == other.space && self.start < other.end && other.start < self.end
    }
}

/// Whether any region of `a` overlaps any of `b`.
pub fn overlap(a: &[Region], b: &[Region]) -> bool {
    a.iter().any(|r| b.iter().any(|o| r.overlaps(o)))
}

/// What `op` reads or writes when it issues (nothing for a deferrable store), or `None` when that
/// is not known here. Element-wise and BN instructions touch their operands' elements (a
/// statistics or sums operand `[2, C]`, a BN block `[4, C]`).
pub fn issue_footprint(op: &Op, state: &State) -> Option<Vec<Region>> {
    let operands: Vec<(Operand, usize)> = match *op {
        Op::Dma(ref d) if d.deferrable() => Vec::new(),
        Op::Dma(ref d) => return Some(dma(d, dram_base(d, state))),
        Op::Conv(ref c) => return Some(conv_issue(c)),
        Op::Fill { n, out, .. } => vec![(out, n)],
        Op::Density { n, src, .. } => vec![(src, n)],
        Op::Convert { n, src, out } => vec![(src, n), (out, n)],
        Op::Add { n, a, b, out } => vec![(a, n), (b, n), (out, n)],
        Op::Axpy { n, x, y, out, .. } => vec![(x, n), (y, n), (out, n)],
        Op::MaskApply { n, src, mask, out } => vec![(src, n), (mask, n), (out, n)],
        Op::Relu { n, src, out, mask }
        | Op::Clip {
            n, src, out, mask, ..
        } => {
            vec![(src, n), (out, n), (mask, n)]
        }
        Op::ReluBwd { n, dy, mask, out } => vec![(dy, n), (mask, n), (out, n)],
        Op::BnStats { s, src, stats, .. } => vec![(src, s.len()), (stats, 2 * s.c)],
        Op::BnFinalize {
            c,
            stats,
            block,
            running,
            ..
        } => vec![(stats, 2 * c), (block, 4 * c), (running, 2 * c)],
        Op::BnApply {
            s,
            src,
            block,
            out,
            mask,
            ..
        } => vec![(src, s.len()), (block, 4 * s.c), (out, s.len()), (mask, s.len())],
        Op::BnBwdReduce {
            s,
            dy,
            x,
            block,
            mask,
            sums,
            ..
        } => vec![
            (dy, s.len()),
            (x, s.len()),
            (block, 4 * s.c),
            (mask, s.len()),
            (sums, 2 * s.c),
        ],
        Op::BnBwd {
            s,
            dy,
            x,
            block,
            sums,
            mask,
            dx,
        } => vec![
            (dy, s.len()),
            (x, s.len()),
            (block, 4 * s.c),
            (sums, 2 * s.c),
            (mask, s.len()),
            (dx, s.len()),
        ],
        _ => return None,
    };
    Some(
        operands
            .into_iter()
            .filter_map(|(op, n)| Region::of(op, n))
            .collect(),
    )
}

/// What a background conv writes (and reads back) when it retires: its output and statistics.
pub fn conv_retire(c: &ConvOp) -> Vec<Region> {
    let (_, _, out) = c.operand_lens();
    let stat_channels = if c.t.mode == Mode::Bp {
        c.shape.c
    } else {
        c.shape.k
    };
    [Region::of(c.t.out, out), Region::of(c.bns, 2 * stat_channels)]
        .into_iter()
        .flatten()
        .collect()
}

/// The DRAM address of a DMA's first row: its operand's plus its address register.
pub fn dram_base(d: &DmaOp, state: &State) -> u64 {
    u64::from(d.dram.addr) + u64::from(state.ar(d.ar))
}

/// The rows a DMA from DRAM address `dram` moves, on both sides (as one span per side: rows and
/// the gaps between them).
pub fn dma(d: &DmaOp, dram: u64) -> Vec<Region> {
    let span = |stride: u32| u64::from(d.rows.saturating_sub(1)) * u64::from(stride) + u64::from(d.row_bytes);
    vec![
        Region::span(Space::Dram, dram, span(d.dstride)),
        Region::span(d.buf.space, d.buf.addr.into(), span(d.bstride)),
    ]
}

/// What a conv reads (and, for the FF ReLU mask, writes) when it issues.
fn conv_issue(c: &ConvOp) -> Vec<Region> {
    let (s, t) = (&c.shape, &c.t);
    let (a, b, out) = c.operand_lens();
    [
        Region::of(t.a, a),
        Region::of(t.b, b),
        Region::of(t.wmask, s.weight_len()),
        Region::of(t.omask, out),
        Region::of(c.bna, 4 * s.c),
        Region::of(c.s3, 4 * s.k),
        Region::of(c.aux, s.input_len()),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_overlap_only_in_the_same_space_and_bytes() {
        let a = Region::span(Space::Obuf, 0, 16);
        assert!(a.overlaps(&Region::span(Space::Obuf, 15, 1)));
        assert!(!a.overlaps(&Region::span(Space::Obuf, 16, 4)));
        assert!(!a.overlaps(&Region::span(Space::Ibuf, 0, 16)));
        assert!(overlap(
            &[a],
            &[Region::span(Space::Ibuf, 0, 4), Region::span(Space::Obuf, 8, 1)]
        ));
        assert!(Region::of(Operand::NONE, 8).is_none());
    }
}
