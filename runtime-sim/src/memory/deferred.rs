//! DMA loads not yet copied: a load from DRAM into consecutive buffer bytes is only written down,
//! and its bytes are read from DRAM until something makes the copy necessary.
//!
//! Most of a training step's loads bring a tensor that the reader takes from a cache (an input
//! loaded again for each output-channel tile) or reads once, so copying them would only move
//! bytes. A deferred load's buffer bytes are, logically, its DRAM source's current bytes;
//! [`crate::memory::Memory`] copies them for real (materialises the load) before its source or
//! its destination is written, and reads them from DRAM until then. Loads never overlap one
//! another in their buffer.

use std::ops::Range;

/// Deferred loads per buffer at most: a new one beyond it materialises the oldest.
const LOADS: usize = 64;

/// One deferred load: buffer bytes `dst` hold rows of `row` bytes from DRAM, the first at `src`
/// and each `stride` bytes after the one before (a contiguous load is one row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    /// The buffer's bytes.
    pub dst: Range<usize>,
    /// Where the first row is in DRAM.
    src: usize,
    /// Bytes per row (more than 0).
    row: usize,
    /// DRAM bytes from one row to the next.
    stride: usize,
}

impl Load {
    /// A load of `rows` rows of `row` bytes (`rows * row` > 0) into buffer bytes from `dst` on,
    /// from DRAM at `src` on, `stride` bytes apart.
    pub fn new(dst: usize, (src, stride): (usize, usize), (row, rows): (usize, usize)) -> Self {
        let len = row * rows;
        let (row, stride) = match rows == 1 || stride == row {
            true => (len, len),
            false => (row, stride),
        };
        Load {
            dst: dst..dst + len,
            src,
            row,
            stride,
        }
    }

    /// The DRAM bytes of `dst`'s part `r` (within `dst`), if they are consecutive (`r` within
    /// one row).
    pub fn source_of(&self, r: &Range<usize>) -> Option<Range<usize>> {
        let off = r.start - self.dst.start;
        let (i, at) = (off / self.row, off % self.row);
        let start = self.src + i * self.stride + at;
        (at + r.len() <= self.row).then_some(start..start + r.len())
    }

    /// The DRAM bytes of `dst`'s part `r` (within `dst`), in order: one range per row it
    /// touches.
    pub fn pieces(&self, r: Range<usize>) -> impl Iterator<Item = Range<usize>> + '_ {
        let mut at = r.start;
        std::iter::from_fn(move || {
            let n = (self.row - (at - self.dst.start) % self.row).min(r.end.checked_sub(at)?);
            let piece = self.source_of(&(at..at + n)).expect("within one row");
            at += n;
            (n > 0).then_some(piece)
        })
    }

    /// Bytes per row and DRAM bytes from one row to the next.
    pub fn rows(&self) -> (usize, usize) {
        (self.row, self.stride)
    }

    /// The DRAM bytes the load reads (and those between its rows).
    pub fn source(&self) -> Range<usize> {
        let rows = self.dst.len() / self.row;
        self.src..self.src + (rows - 1) * self.stride + self.row
    }
}

/// Where the bytes of a buffer range are, as far as the deferred loads tell.
#[derive(Debug, PartialEq, Eq)]
pub enum Found<'a> {
    /// In the buffer: no deferred load overlaps the range.
    Buffer,
    /// In DRAM: these consecutive bytes (the range lies within one row of a load).
    Dram(Range<usize>),
    /// Partly or in pieces in DRAM: these loads overlap the range.
    Pieces(Vec<&'a Load>),
}

/// The deferred loads of the four buffers (indexed as [`super::Buffers`]).
#[derive(Debug, Clone, Default)]
pub struct Deferred {
    loads: [Vec<Load>; 4],
}

/// Whether byte ranges `a` and `b` share a byte.
fn overlap(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end && !a.is_empty() && !b.is_empty()
}

impl Deferred {
    /// Where bytes `r` of buffer `b` are.
    pub fn find(&self, b: usize, r: &Range<usize>) -> Found<'_> {
        let mut hits = self.loads[b].iter().filter(|l| overlap(&l.dst, r));
        let Some(first) = hits.next() else {
            return Found::Buffer;
        };
        let rest: Vec<&Load> = hits.collect();
        let within = rest.is_empty() && first.dst.start <= r.start && r.end <= first.dst.end;
        match within.then(|| first.source_of(r)).flatten() {
            Some(dram) => Found::Dram(dram),
            None => Found::Pieces([vec![first], rest].concat()),
        }
    }

    /// Records `load` into buffer `b`, dropping the loads it covers whole; returns the loads the
    /// caller must materialise first: those it overlaps in part, and the oldest when there are
    /// too many. (Materialised before the new load is used, they leave its bytes to it.)
    pub fn push(&mut self, b: usize, load: Load) -> Vec<Load> {
        let loads = &mut self.loads[b];
        loads.retain(|l| !(load.dst.start <= l.dst.start && l.dst.end <= load.dst.end));
        let mut out = take(loads, |l| overlap(&l.dst, &load.dst));
        if loads.len() == LOADS {
            out.push(loads.remove(0));
        }
        loads.push(load);
        out
    }

    /// Removes and returns the loads into buffer `b` that overlap its bytes `r`.
    pub fn take_into(&mut self, b: usize, r: &Range<usize>) -> Vec<Load> {
        take(&mut self.loads[b], |l| overlap(&l.dst, r))
    }

    /// Removes and returns, with their buffers, the loads whose DRAM source overlaps `r`.
    pub fn take_from(&mut self, r: &Range<usize>) -> Vec<(usize, Load)> {
        let mut out = Vec::new();
        for (b, loads) in self.loads.iter_mut().enumerate() {
            out.extend(
                take(loads, |l| overlap(&l.source(), r))
                    .into_iter()
                    .map(|l| (b, l)),
            );
        }
        out
    }

    /// Forgets every load (the buffers were cleared).
    pub fn clear(&mut self) {
        self.loads.iter_mut().for_each(Vec::clear);
    }
}

/// Removes the loads of `loads` that `pred` picks, and returns them in their order.
fn take(loads: &mut Vec<Load>, pred: impl Fn(&Load) -> bool) -> Vec<Load> {
    if !loads.iter().any(&pred) {
        return Vec::new();
    }
    let (out, keep) = loads.drain(..).partition(pred);
    *loads = keep;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(dst: Range<usize>, src: usize) -> Load {
        Load::new(dst.start, (src, 0), (dst.len(), 1))
    }

    #[test]
    fn strided_loads_read_row_by_row() {
        let dram: Vec<u8> = (0..64).collect();
        // Three rows of 4 bytes, 10 apart, into bytes 8..20.
        let l = Load::new(8, (2, 10), (4, 3));
        assert_eq!(l.dst, 8..20);
        assert_eq!(l.source(), 2..26);
        assert_eq!(l.source_of(&(12..16)), Some(12..16));
        assert_eq!(l.source_of(&(13..15)), Some(13..15));
        assert_eq!(l.source_of(&(14..17)), None, "across rows");
        let out: Vec<u8> = l.pieces(10..17).flat_map(|p| dram[p].to_vec()).collect();
        assert_eq!(out, [4, 5, 12, 13, 14, 15, 22]);
        assert_eq!(l.pieces(12..12).count(), 0);
        let mut d = Deferred::default();
        d.push(0, l.clone());
        assert_eq!(d.find(0, &(16..20)), Found::Dram(22..26));
        assert_eq!(d.find(0, &(15..17)), Found::Pieces(vec![&l]));
        // Consecutive rows are one row.
        assert_eq!(Load::new(0, (5, 4), (4, 3)), load(0..12, 5));
    }

    #[test]
    fn finds_ranges_in_the_buffer_within_a_load_or_in_pieces() {
        let mut d = Deferred::default();
        assert!(d.push(0, load(100..200, 1000)).is_empty());
        assert!(d.push(0, load(200..300, 5000)).is_empty());
        assert_eq!(d.find(0, &(0..100)), Found::Buffer);
        assert_eq!(d.find(1, &(100..200)), Found::Buffer);
        assert_eq!(d.find(0, &(120..130)), Found::Dram(1020..1030));
        let pieces = |r: Range<usize>| match d.find(0, &r) {
            Found::Pieces(p) => p.len(),
            _ => 0,
        };
        assert_eq!(pieces(150..250), 2);
        assert_eq!(pieces(50..150), 1);
        assert_eq!(pieces(90..310), 2);
        // An empty range is in the buffer.
        assert_eq!(d.find(0, &(150..150)), Found::Buffer);
    }

    #[test]
    fn a_new_load_drops_what_it_covers_and_hands_back_partial_overlaps() {
        let mut d = Deferred::default();
        d.push(0, load(0..100, 0));
        d.push(0, load(100..200, 1000));
        d.push(0, load(300..400, 3000));
        // Covers the second whole, overlaps the first in part.
        assert_eq!(d.push(0, load(50..250, 7000)), vec![load(0..100, 0)]);
        assert_eq!(d.find(0, &(100..200)), Found::Dram(7050..7150));
        assert_eq!(d.find(0, &(0..50)), Found::Buffer);
        // Too many: the oldest comes back.
        let mut d = Deferred::default();
        (0..LOADS).for_each(|i| assert!(d.push(1, load(i * 10..i * 10 + 10, 0)).is_empty()));
        assert_eq!(d.push(1, load(10_000..10_010, 0)), vec![load(0..10, 0)]);
    }

    #[test]
    fn takes_loads_by_destination_or_by_source() {
        let mut d = Deferred::default();
        d.push(0, load(0..100, 1000));
        d.push(2, load(0..100, 1050));
        d.push(3, load(500..600, 9000));
        assert_eq!(d.take_into(0, &(100..200)), vec![]);
        assert_eq!(d.take_into(0, &(99..200)), vec![load(0..100, 1000)]);
        assert_eq!(d.find(0, &(0..100)), Found::Buffer);
        assert_eq!(d.take_from(&(1149..1150)), vec![(2, load(0..100, 1050))]);
        assert_eq!(d.take_from(&(1150..9000)), vec![]);
        d.clear();
        assert_eq!(d.take_from(&(0..usize::MAX)), vec![]);
    }
}
