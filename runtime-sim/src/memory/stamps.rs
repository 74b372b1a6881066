//! Write versions of memory, so that the simulator's caches can recognise bytes unchanged since
//! they last read them without comparing them.
//!
//! Every write takes the next tick of a clock and marks the pages it touches with it; a range's
//! [`Stamp`] is its place and the latest tick of its pages, so two equal stamps mean the same
//! bytes. Buffer bytes a DMA load brought take the stamp of their DRAM source while it has not
//! changed since (see [`super::loads`]).

use std::ops::Range;
use trainer_isa::Space;

/// Bytes per page: the grain of the write versions (a write marks every page it touches, so a
/// range's stamp changes when bytes beside it on a shared page are written: a cache miss, never
/// a wrong hit).
const PAGE: usize = 1 << 10;

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

/// The write versions of every space.
#[derive(Debug, Clone, Default)]
pub struct Stamps {
    clock: u64,
    /// Per space ([`slot`]): the tick of the latest write to every page.
    pages: [Vec<u64>; 5],
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
        }
    }

    /// Marks bytes `r` of `space` written (a bounds-checked range).
    pub fn wrote(&mut self, space: Space, r: Range<usize>) {
        let Some(i) = slot(space) else { return };
        self.clock += 1;
        let clock = self.clock;
        if let Some(pages) = self.pages[i].get_mut(pages_of(&r)) {
            pages.fill(clock);
        }
    }

    /// The tick of the latest write.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Marks every buffer written (cleared).
    pub fn cleared_buffers(&mut self) {
        self.clock += 1;
        let clock = self.clock;
        self.pages[1..].iter_mut().for_each(|p| p.fill(clock));
    }

    /// The stamp of bytes `r` of `space` (a bounds-checked range).
    pub fn stamp(&self, space: Space, r: Range<usize>) -> Option<Stamp> {
        let len = r.len() as u64;
        Some(Stamp {
            space,
            start: r.start as u64,
            len,
            rows: (len, len),
            version: self.version(slot(space)?, r),
        })
    }

    /// The stamp of `len` buffer bytes a DMA load brought at write clock `at` from DRAM bytes
    /// `src` (all of them, or rows of `rows.0` bytes every `rows.1`), if those have not changed
    /// since: the same as another such load's of the same unchanged bytes, or theirs.
    pub fn loaded(&self, src: Range<usize>, len: usize, rows: (usize, usize), at: u64) -> Option<Stamp> {
        let version = self.version(0, src.clone());
        (version <= at).then_some(Stamp {
            space: Space::Dram,
            start: src.start as u64,
            len: len as u64,
            rows: (rows.0 as u64, rows.1 as u64),
            version,
        })
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
    fn loaded_bytes_take_their_unchanged_sources_stamp() {
        let mut s = stamps();
        let src = 2 * PAGE..2 * PAGE + 512;
        s.wrote(Space::Dram, src.clone());
        let at = s.clock();
        assert_eq!(
            s.loaded(src.clone(), 512, (512, 512), at),
            s.stamp(Space::Dram, src.clone())
        );
        // Rows of a strided load: not the stamp of the span they lie in.
        assert_ne!(
            s.loaded(src.clone(), 256, (128, 256), at),
            s.stamp(Space::Dram, src.clone())
        );
        s.wrote(Space::Ibuf, 0..512);
        assert!(
            s.loaded(src.clone(), 512, (512, 512), at).is_some(),
            "another space"
        );
        s.wrote(Space::Dram, src.end - 1..src.end);
        assert_eq!(s.loaded(src, 512, (512, 512), at), None);
    }
}
