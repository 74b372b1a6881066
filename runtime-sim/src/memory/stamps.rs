//! Write versions of memory, so that the simulator's caches can recognise bytes unchanged since
//! they last read them without comparing them.
//!
//! Every write takes the next tick of a clock and marks the pages it touches with it; a range's
//! [`Stamp`] is its place and the latest tick of its pages, so two equal stamps mean the same
//! bytes. A DMA copy from DRAM into a buffer is remembered while neither side is written again:
//! the buffer's bytes then take the stamp of their DRAM source, so the same tensor loaded again
//! (an output-channel tile's weights for each image tile, an input for each weight tile) is
//! recognised.

use super::deferred::Load;
use std::ops::Range;
use trainer_isa::Space;

/// Bytes per page: the grain of the write versions (a write marks every page it touches, so a
/// range's stamp changes when bytes beside it on a shared page are written: a cache miss, never
/// a wrong hit).
const PAGE: usize = 1 << 10;

/// Remembered DMA copies per buffer at most (the oldest is forgotten first).
const COPIES: usize = 64;

/// What a range of memory holds, as far as the write versions tell: equal stamps, equal bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    space: Space,
    start: u64,
    len: u64,
    /// Bytes per row and from one row to the next (a range is one row).
    rows: (u64, u64),
    /// The latest write to the range's pages.
    version: u64,
}

/// A DMA copy of DRAM bytes into a buffer, still in place.
#[derive(Debug, Clone)]
struct Copied {
    /// The buffer's bytes and where they came from.
    load: Load,
    /// The clock when they were copied.
    at: u64,
}

/// The write versions of every space.
#[derive(Debug, Clone, Default)]
pub struct Stamps {
    clock: u64,
    /// Per space ([`slot`]): the tick of the latest write to every page.
    pages: [Vec<u64>; 5],
    /// Per buffer ([`slot`] − 1): the DMA copies from DRAM still in place.
    copies: [Vec<Copied>; 4],
}

/// Index of a space in [`Stamps::pages`]: DRAM, then the buffers; `None` for the absent space.
fn slot(space: Space) -> Option<usize> {
    match space {
        Space::Dram => Some(0),
        Space::Ibuf => Some(1),
        Space::Wbuf => Some(2),
        Space::Obuf => Some(3),
        Space::Gbuf => Some(4),
        Space::None => None,
    }
}

impl Stamps {
    /// Versions for spaces of `sizes` bytes (DRAM, `ibuf`, `wbuf`, `obuf`, `gbuf`), all unwritten.
    pub fn new(sizes: [usize; 5]) -> Self {
        Stamps {
            clock: 0,
            pages: sizes.map(|s| vec![0; s.div_ceil(PAGE)]),
            copies: Default::default(),
        }
    }

    /// Marks bytes `r` of `space` written (a bounds-checked range), forgetting the copies there.
    pub fn wrote(&mut self, space: Space, r: Range<usize>) {
        let Some(i) = slot(space) else { return };
        self.clock += 1;
        let clock = self.clock;
        if let Some(pages) = self.pages[i].get_mut(pages_of(&r)) {
            pages.fill(clock);
        }
        if let Some(copies) = i.checked_sub(1).map(|b| &mut self.copies[b]) {
            copies.retain(|c| c.load.dst.end <= r.start || r.end <= c.load.dst.start);
        }
    }

    /// Marks every buffer written (cleared).
    pub fn cleared_buffers(&mut self) {
        self.clock += 1;
        let clock = self.clock;
        self.pages[1..].iter_mut().for_each(|p| p.fill(clock));
        self.copies.iter_mut().for_each(Vec::clear);
    }

    /// Marks the bytes `load` writes in `to` written by a copy from DRAM, remembered if `to` is
    /// a buffer.
    pub fn copied(&mut self, to: Space, load: &Load) {
        self.wrote(to, load.dst.clone());
        let Some(b) = slot(to).and_then(|i| i.checked_sub(1)) else {
            return;
        };
        let copies = &mut self.copies[b];
        if copies.len() == COPIES {
            copies.remove(0);
        }
        copies.push(Copied {
            load: load.clone(),
            at: self.clock,
        });
    }

    /// The stamp of bytes `r` of `space` (a bounds-checked range): of their DRAM source if they
    /// are a copy still in place whose source has not changed since (consecutive DRAM bytes, or
    /// the rows of a whole strided copy).
    pub fn stamp(&self, space: Space, r: Range<usize>) -> Option<Stamp> {
        let i = slot(space)?;
        let len = r.len() as u64;
        let source = i.checked_sub(1).and_then(|b| {
            let c = self.copies[b]
                .iter()
                .rev()
                .find(|c| c.load.dst.start <= r.start && r.end <= c.load.dst.end)?;
            let (src, rows) = match c.load.source_of(&r) {
                Some(src) => (src, (len, len)),
                None if r == c.load.dst => {
                    let (row, stride) = c.load.rows();
                    (c.load.source(), (row as u64, stride as u64))
                }
                None => return None,
            };
            let version = self.version(0, src.clone());
            (version <= c.at).then_some(Stamp {
                space: Space::Dram,
                start: src.start as u64,
                len,
                rows,
                version,
            })
        });
        source.or(Some(Stamp {
            space,
            start: r.start as u64,
            len,
            rows: (len, len),
            version: self.version(i, r),
        }))
    }

    /// The latest write to bytes `r` of space `i`.
    fn version(&self, i: usize, r: Range<usize>) -> u64 {
        self.pages[i]
            .get(pages_of(&r))
            .map_or(0, |p| p.iter().copied().max().unwrap_or(0))
    }
}

/// The pages bytes `r` touch.
fn pages_of(r: &Range<usize>) -> Range<usize> {
    match r.is_empty() {
        true => 0..0,
        false => r.start / PAGE..(r.end - 1) / PAGE + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A contiguous load of `len` bytes into `dst` on from DRAM at `src`.
    fn load(dst: usize, src: usize, len: usize) -> Load {
        Load::new(dst, (src, len), (len, 1))
    }

    fn stamps() -> Stamps {
        Stamps::new([1 << 16, 1 << 12, 1 << 12, 1 << 12, 1 << 12])
    }

    #[test]
    fn writes_change_the_stamps_of_their_pages_only() {
        let mut s = stamps();
        let (a, b) = (0..100, 3 * PAGE..3 * PAGE + 8);
        let (sa, sb) = (s.stamp(Space::Dram, a.clone()), s.stamp(Space::Dram, b.clone()));
        assert_eq!(sa, s.stamp(Space::Dram, a.clone()));
        s.wrote(Space::Dram, 50..60);
        assert_ne!(sa, s.stamp(Space::Dram, a.clone()));
        assert_eq!(sb, s.stamp(Space::Dram, b.clone()));
        // Same bytes in another space, or another range: another stamp.
        assert_ne!(s.stamp(Space::Ibuf, a.clone()), s.stamp(Space::Dram, a.clone()));
        assert_ne!(s.stamp(Space::Dram, 0..99), s.stamp(Space::Dram, a));
        assert_eq!(s.stamp(Space::None, 0..1), None);
    }

    #[test]
    fn copies_take_their_sources_stamp_while_both_stay() {
        let mut s = stamps();
        let src = 2 * PAGE..2 * PAGE + 512;
        s.wrote(Space::Dram, src.clone());
        let dram = s.stamp(Space::Dram, src.clone());
        // Loaded twice, into two places: both read as the DRAM bytes, and so does a part.
        s.copied(Space::Ibuf, &load(0, src.start, 512));
        s.copied(Space::Wbuf, &load(1024, src.start, 512));
        assert_eq!(s.stamp(Space::Ibuf, 0..512), dram);
        assert_eq!(s.stamp(Space::Wbuf, 1024..1536), dram);
        assert_eq!(
            s.stamp(Space::Ibuf, 8..16),
            s.stamp(Space::Dram, src.start + 8..src.start + 16)
        );
        // A write into the copy ends it; a range beyond it has its own stamp.
        s.wrote(Space::Ibuf, 100..101);
        assert_ne!(s.stamp(Space::Ibuf, 0..512), dram);
        assert_ne!(s.stamp(Space::Wbuf, 1024..1540), dram);
        // A write to the source: the other copy no longer holds its bytes.
        s.wrote(Space::Dram, src.start..src.start + 1);
        let held = s.stamp(Space::Wbuf, 1024..1536);
        assert_ne!(held, dram);
        assert_ne!(held, s.stamp(Space::Dram, src.clone()));
        // Clearing the buffers ends every copy.
        s.copied(Space::Ibuf, &load(0, src.start, 512));
        assert_eq!(s.stamp(Space::Ibuf, 0..512), s.stamp(Space::Dram, src.clone()));
        s.cleared_buffers();
        assert_ne!(s.stamp(Space::Ibuf, 0..512), s.stamp(Space::Dram, src.clone()));
        // A copy within DRAM writes its destination and is not remembered.
        let before = s.stamp(Space::Dram, 0..512);
        s.copied(Space::Dram, &load(0, src.start, 512));
        assert_ne!(s.stamp(Space::Dram, 0..512), before);
        assert_ne!(s.stamp(Space::Dram, 0..512), s.stamp(Space::Dram, src));
    }

    #[test]
    fn strided_copies_take_their_sources_stamp_whole_or_row_by_row() {
        let mut s = stamps();
        // Four rows of 256 bytes, 1 KiB apart, loaded twice: the same stamp, not a range's.
        let rows = Load::new(0, (4 * PAGE, PAGE), (256, 4));
        s.copied(Space::Ibuf, &rows);
        let whole = s.stamp(Space::Ibuf, 0..1024);
        s.copied(Space::Wbuf, &Load::new(1024, (4 * PAGE, PAGE), (256, 4)));
        assert_eq!(s.stamp(Space::Wbuf, 1024..2048), whole);
        assert_ne!(whole, s.stamp(Space::Dram, 4 * PAGE..4 * PAGE + 1024));
        // Another stride, or part of a row: other bytes.
        s.copied(Space::Obuf, &Load::new(0, (4 * PAGE, 512), (256, 4)));
        assert_ne!(s.stamp(Space::Obuf, 0..1024), whole);
        assert_eq!(
            s.stamp(Space::Ibuf, 260..300),
            s.stamp(Space::Dram, 5 * PAGE + 4..5 * PAGE + 44)
        );
        // A write between the rows, within the span the copy read, ends it.
        s.wrote(Space::Dram, 5 * PAGE + 600..5 * PAGE + 601);
        assert_ne!(s.stamp(Space::Ibuf, 0..1024), whole);
    }
}
