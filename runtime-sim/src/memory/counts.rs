//! Non-zero counts of DRAM rows already counted: a load that brings the same unchanged rows
//! again (an input for each output-channel tile) takes their counts instead of counting again.

use super::Stamp;
use std::collections::HashMap;
use trainer_isa::DType;

/// Rows counted at most before the memo starts afresh.
const ENTRIES: usize = 4096;

/// Which rows were counted, and as what: the first row's address, the distance between rows,
/// the bytes per row, the rows and the dtype.
pub type Rows = (u64, u64, u64, u64, DType);

/// Per-row non-zero counts of DRAM rows, each with the stamp of the bytes it counted.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    memo: HashMap<Rows, (Stamp, Vec<u64>)>,
}

impl Counts {
    /// Takes out the counts of `rows`, if they were counted while their bytes had stamp `stamp`
    /// (the caller puts them back).
    pub fn take(&mut self, rows: &Rows, stamp: Stamp) -> Option<Vec<u64>> {
        match self.memo.get(rows) {
            Some((s, _)) if *s == stamp => self.memo.remove(rows).map(|(_, c)| c),
            _ => None,
        }
    }

    /// Remembers the counts of `rows`, whose bytes have stamp `stamp`.
    pub fn put(&mut self, rows: Rows, stamp: Stamp, counts: Vec<u64>) {
        if self.memo.len() >= ENTRIES && !self.memo.contains_key(&rows) {
            self.memo.clear();
        }
        self.memo.insert(rows, (stamp, counts));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Buffers, Dram, Memory};
    use trainer_isa::Space;

    #[test]
    fn counts_hold_while_their_stamp_does() {
        let mut m = Memory::new(Dram::new(4096), Buffers::new([16, 16, 16, 16]));
        let stamp = |m: &Memory| m.stamp(Space::Dram, 0, 64).unwrap();
        let (before, rows) = (stamp(&m), (0, 16, 8, 4, DType::F16));
        let mut c = Counts::default();
        c.put(rows, before, vec![1, 2, 3, 4]);
        assert_eq!(c.take(&(0, 16, 8, 4, DType::E5m2), before), None);
        assert_eq!(c.take(&rows, before), Some(vec![1, 2, 3, 4]));
        assert_eq!(c.take(&rows, before), None, "taken out");
        c.put(rows, before, vec![1, 2, 3, 4]);
        m.bytes_mut("x", Space::Dram, 63, 1).unwrap()[0] = 1;
        assert_eq!(c.take(&rows, stamp(&m)), None);
        // Too many rows: the memo starts afresh.
        (0..ENTRIES as u64).for_each(|i| c.put((i + 1, 0, 0, 0, DType::F16), before, vec![]));
        assert_eq!(c.take(&rows, before), None);
    }
}
