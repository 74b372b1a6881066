//! The DMA loads from DRAM into consecutive buffer bytes that the buffers still hold, some not
//! copied yet.
//!
//! A load is held from the DMA until its buffer bytes are written again (its source may change
//! meanwhile: the write versions tell, see [`super::stamps`]). While its source has not changed,
//! the buffer's bytes take its source's stamp, so the same tensor loaded again (an output-channel
//! tile's weights for each image tile, an input for each weight tile) is recognised.
//!
//! A new load is also deferred: only written down. Most of a training step's loads bring a tensor
//! that the reader takes from a cache or reads once, so copying them would only move bytes. A
//! deferred load's buffer bytes are, logically, its DRAM source's current bytes;
//! [`crate::memory::Memory`] reads them from DRAM, and copies them for real (materialises the
//! load) before its source or its destination is written, or the buffer is copied from. Loads
//! never overlap one another in their buffer.

use std::ops::Range;

/// Loads held per buffer at most: a new one beyond it drops the oldest (materialised first if it
/// is deferred).
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
    /// In DRAM: these consecutive bytes (the range lies within one row of a deferred load).
    Dram(Range<usize>),
    /// Partly or in pieces in DRAM: these deferred loads overlap the range.
    Pieces(Vec<&'a Load>),
}

/// A load a buffer holds.
#[derive(Debug, Clone)]
struct Held {
    load: Load,
    /// The write clock when it was loaded.
    at: u64,
    /// Not copied yet.
    deferred: bool,
}

/// The loads the four buffers hold (indexed as [`super::Buffers`]).
#[derive(Debug, Clone, Default)]
pub struct Loads {
    held: [Vec<Held>; 4],
}

/// Whether byte ranges `a` and `b` share a byte.
fn overlap(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end && !a.is_empty() && !b.is_empty()
}

impl Loads {
    /// Where bytes `r` of buffer `b` are.
    pub fn find(&self, b: usize, r: &Range<usize>) -> Found<'_> {
        let mut hits = (self.held[b].iter())
            .filter(|h| h.deferred && overlap(&h.load.dst, r))
            .map(|h| &h.load);
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

    /// Where bytes `r` of buffer `b` came from, if a held load holds them all: the DRAM bytes
    /// (consecutive when `r` lies within one row, else the whole load's span), the bytes per row
    /// and from one row to the next, and the write clock of the load.
    pub fn source(&self, b: usize, r: &Range<usize>) -> Option<(Range<usize>, (usize, usize), u64)> {
        let h = (self.held[b].iter()).find(|h| h.load.dst.start <= r.start && r.end <= h.load.dst.end)?;
        let (src, rows) = match h.load.source_of(r) {
            Some(src) => (src, (r.len(), r.len())),
            None if *r == h.load.dst => (h.load.source(), h.load.rows()),
            None => return None,
        };
        Some((src, rows, h.at))
    }

    /// Holds `load` into buffer `b`, deferred, loaded at write clock `at`, dropping the loads
    /// it overlaps; returns the deferred loads the caller must materialise first: those it
    /// overlaps in part, and the oldest when there are too many. (Materialised before the new
    /// load is used, they leave its bytes to it.)
    pub fn push(&mut self, b: usize, load: Load, at: u64) -> Vec<Load> {
        let held = &mut self.held[b];
        held.retain(|h| !(load.dst.start <= h.load.dst.start && h.load.dst.end <= load.dst.end));
        let mut out = deferred(take(held, |h| overlap(&h.load.dst, &load.dst)));
        if held.len() == LOADS {
            out.extend(deferred(vec![held.remove(0)]));
        }
        held.push(Held {
            load,
            at,
            deferred: true,
        });
        out
    }

    /// Drops the loads into buffer `b` that overlap its bytes `r` (about to be written); returns
    /// the deferred ones, to materialise first.
    pub fn wrote(&mut self, b: usize, r: &Range<usize>) -> Vec<Load> {
        deferred(take(&mut self.held[b], |h| overlap(&h.load.dst, r)))
    }

    /// Marks the deferred loads into buffer `b` that overlap its bytes `r` (about to be copied
    /// from) copied, and returns them, to materialise; they stay held.
    pub fn copied_from(&mut self, b: usize, r: &Range<usize>) -> Vec<Load> {
        (self.held[b].iter_mut())
            .filter(|h| h.deferred && overlap(&h.load.dst, r))
            .map(|h| {
                h.deferred = false;
                h.load.clone()
            })
            .collect()
    }

    /// Drops the loads whose DRAM source overlaps DRAM bytes `r` (about to be written); returns
    /// the deferred ones, with their buffers, to materialise first.
    pub fn wrote_dram(&mut self, r: &Range<usize>) -> Vec<(usize, Load)> {
        let mut out = Vec::new();
        for (b, held) in self.held.iter_mut().enumerate() {
            let gone = deferred(take(held, |h| overlap(&h.load.source(), r)));
            out.extend(gone.into_iter().map(|l| (b, l)));
        }
        out
    }

    /// Forgets every load (the buffers were cleared).
    pub fn clear(&mut self) {
        self.held.iter_mut().for_each(Vec::clear);
    }
}

/// Removes the loads of `held` that `pred` picks, and returns them in their order.
fn take(held: &mut Vec<Held>, pred: impl Fn(&Held) -> bool) -> Vec<Held> {
    if !held.iter().any(&pred) {
        return Vec::new();
    }
    let (out, keep) = held.drain(..).partition(pred);
    *held = keep;
    out
}

/// The deferred ones of `held`'s loads.
fn deferred(held: Vec<Held>) -> Vec<Load> {
    held.into_iter().filter(|h| h.deferred).map(|h| h.load).collect()
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
        let mut d = Loads::default();
        d.push(0, l.clone(), 1);
        assert_eq!(d.find(0, &(16..20)), Found::Dram(22..26));
        assert_eq!(d.find(0, &(15..17)), Found::Pieces(vec![&l]));
        // Consecutive rows are one row.
        assert_eq!(Load::new(0, (5, 4), (4, 3)), load(0..12, 5));
    }

    #[test]
    fn finds_ranges_in_the_buffer_within_a_load_or_in_pieces() {
        let mut d = Loads::default();
        assert!(d.push(0, load(100..200, 1000), 1).is_empty());
        assert!(d.push(0, load(200..300, 5000), 2).is_empty());
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
        // Copied for a read out of the buffer: in the buffer, but still held.
        assert_eq!(d.copied_from(0, &(199..200)), vec![load(100..200, 1000)]);
        assert_eq!(d.find(0, &(120..130)), Found::Buffer);
        assert_eq!(d.source(0, &(120..130)), Some((1020..1030, (10, 10), 1)));
        assert_eq!(d.copied_from(0, &(199..200)), vec![], "copied once");
    }

    #[test]
    fn a_new_load_drops_what_it_covers_and_hands_back_partial_overlaps() {
        let mut d = Loads::default();
        d.push(0, load(0..100, 0), 1);
        d.push(0, load(100..200, 1000), 2);
        d.push(0, load(300..400, 3000), 3);
        // Covers the second whole, overlaps the first in part.
        assert_eq!(d.push(0, load(50..250, 7000), 4), vec![load(0..100, 0)]);
        assert_eq!(d.find(0, &(100..200)), Found::Dram(7050..7150));
        assert_eq!(d.find(0, &(0..50)), Found::Buffer);
        assert_eq!(d.source(0, &(0..50)), None, "dropped");
        // Too many: the oldest comes back; a copied one is dropped without.
        let mut d = Loads::default();
        (0..LOADS).for_each(|i| assert!(d.push(1, load(i * 10..i * 10 + 10, 0), 1).is_empty()));
        assert_eq!(d.push(1, load(10_000..10_010, 0), 2), vec![load(0..10, 0)]);
        d.copied_from(1, &(10..20));
        assert_eq!(d.push(1, load(20_000..20_010, 0), 3), vec![]);
        assert_eq!(d.source(1, &(10..20)), None);
    }

    #[test]
    fn writes_drop_loads_by_destination_or_by_source() {
        let mut d = Loads::default();
        d.push(0, load(0..100, 1000), 1);
        d.push(2, load(0..100, 1050), 2);
        d.push(3, load(500..600, 9000), 3);
        assert_eq!(d.wrote(0, &(100..200)), vec![]);
        assert_eq!(d.wrote(0, &(99..200)), vec![load(0..100, 1000)]);
        assert_eq!(
            (d.find(0, &(0..100)), d.source(0, &(0..100))),
            (Found::Buffer, None)
        );
        assert_eq!(d.wrote_dram(&(1149..1150)), vec![(2, load(0..100, 1050))]);
        assert_eq!(d.source(2, &(0..100)), None);
        assert_eq!(d.wrote_dram(&(1150..9000)), vec![]);
        // A copied load is dropped, but not handed back.
        d.copied_from(3, &(500..501));
        assert_eq!(d.wrote_dram(&(9000..9001)), vec![]);
        assert_eq!(d.source(3, &(500..600)), None);
        d.push(3, load(500..600, 9000), 4);
        d.clear();
        assert_eq!(d.wrote_dram(&(0..usize::MAX)), vec![]);
    }

    #[test]
    fn sources_are_consecutive_bytes_or_whole_strided_loads() {
        let mut d = Loads::default();
        d.push(1, Load::new(0, (4096, 1024), (256, 4)), 7);
        assert_eq!(
            d.source(1, &(0..1024)),
            Some((4096..4096 + 3 * 1024 + 256, (256, 1024), 7))
        );
        assert_eq!(d.source(1, &(260..300)), Some((5124..5164, (40, 40), 7)));
        assert_eq!(d.source(1, &(200..300)), None, "across rows, not the whole load");
        assert_eq!(d.source(1, &(0..1025)), None, "beyond the load");
    }
}
