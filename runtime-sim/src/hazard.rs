//! Memory footprints of instructions, so that a conv's kernel can run in the background while the
//! instructions after it execute.
//!
//! A background conv reads all its operands when it issues and writes its results (output and BN
//! statistics) when it retires; a deferrable store ([`DmaOp::deferrable`]) reads and writes when
//! it retires. Pending instructions retire in program order, so they never conflict with each
//! other; an instruction that executes at issue may not touch what a pending one touches later:
//! the run loop retires that one (and those before it) first. Instructions whose footprint is
//! not known here retire every pending one.

use crate::decode::{ConvOp, DmaOp, Nchw, Op};
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
    pub fn of(op: Operand, n: usize) -> Option<Self> {
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
    Some(match *op {
        Op::Dma(ref d) if d.deferrable() => Vec::new(),
        Op::Dma(ref d) => return Some(dma(d, dram_base(d, state))),
        Op::Conv(ref c) => return Some(conv_issue(c)),
        Op::Fill { n, out, .. } => each(n, &[out]),
        Op::Density { n, src, .. } => each(n, &[src]),
        Op::Convert { n, src, out } => each(n, &[src, out]),
        Op::Add { n, a, b, out } => each(n, &[a, b, out]),
        Op::Axpy { n, x, y, out, .. } => each(n, &[x, y, out]),
        Op::MaskApply { n, src, mask, out }
        | Op::ReluBwd {
            n,
            dy: src,
            mask,
            out,
        } => each(n, &[src, mask, out]),
        Op::Relu { n, src, out, mask }
        | Op::Clip {
            n, src, out, mask, ..
        } => each(n, &[src, out, mask]),
        Op::BnStats { s, src, stats, .. } => bn(s, &[src], Operand::NONE, &[stats]),
        Op::BnFinalize {
            c,
            stats,
            block,
            running,
            ..
        } => [each(2 * c, &[stats, running]), each(4 * c, &[block])].concat(),
        Op::BnApply {
            s,
            src,
            block,
            out,
            mask,
            ..
        } => bn(s, &[src, out, mask], block, &[]),
        Op::BnBwdReduce {
            s,
            dy,
            x,
            block,
            mask,
            sums,
            ..
        } => bn(s, &[dy, x, mask], block, &[sums]),
        Op::BnBwd {
            s,
            dy,
            x,
            block,
            sums,
            mask,
            dx,
        } => bn(s, &[dy, x, mask, dx], block, &[sums]),
        _ => return None,
    })
}

/// The regions of `n` elements of each operand in `ops`.
fn each(n: usize, ops: &[Operand]) -> Vec<Region> {
    ops.iter().filter_map(|&op| Region::of(op, n)).collect()
}

/// The regions of a BN instruction over `s`: its element-wise operands, its BN block and its
/// statistics or sums operands.
fn bn(s: Nchw, elements: &[Operand], block: Operand, stats: &[Operand]) -> Vec<Region> {
    [
        each(s.len(), elements),
        each(4 * s.c, &[block]),
        each(2 * s.c, stats),
    ]
    .concat()
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
