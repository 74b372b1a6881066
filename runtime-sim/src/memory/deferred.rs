//! DMA loads not yet copied: a contiguous load from DRAM into a buffer is only written down, and
//! its bytes are read from DRAM until something makes the copy necessary.
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

/// One deferred load: buffer bytes `dst` hold DRAM bytes from `src` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    /// The buffer's bytes.
    pub dst: Range<usize>,
    /// Where they are in DRAM.
    pub src: usize,
}

impl Load {
    /// The DRAM bytes of `dst`'s part `r` (within `dst`).
    pub fn source_of(&self, r: &Range<usize>) -> Range<usize> {
        let at = self.src + (r.start - self.dst.start);
        at..at + r.len()
    }

    /// The DRAM bytes the load reads.
    fn source(&self) -> Range<usize> {
        self.source_of(&self.dst)
    }
}

/// Where the bytes of a buffer range are, as far as the deferred loads tell.
#[derive(Debug, PartialEq, Eq)]
pub enum Found<'a> {
    /// In the buffer: no deferred load overlaps the range.
    Buffer,
    /// In DRAM: the range lies within this load.
    Within(&'a Load),
    /// Partly in DRAM: these loads overlap the range (none holds all of it).
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
        match rest.is_empty() && first.dst.start <= r.start && r.end <= first.dst.end {
            true => Found::Within(first),
            false => Found::Pieces([vec![first], rest].concat()),
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
        Load { dst, src }
    }

    #[test]
    fn finds_ranges_in_the_buffer_within_a_load_or_in_pieces() {
        let mut d = Deferred::default();
        assert!(d.push(0, load(100..200, 1000)).is_empty());
        assert!(d.push(0, load(200..300, 5000)).is_empty());
        assert_eq!(d.find(0, &(0..100)), Found::Buffer);
        assert_eq!(d.find(1, &(100..200)), Found::Buffer);
        assert_eq!(d.find(0, &(120..130)), Found::Within(&load(100..200, 1000)));
        assert_eq!(load(100..200, 1000).source_of(&(120..130)), 1020..1030);
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
        assert_eq!(d.find(0, &(100..200)), Found::Within(&load(50..250, 7000)));
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
