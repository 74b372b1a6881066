//! Training batches of `trainer run`: epochs over the training rows, shuffled by a seeded
//! deterministic permutation (or in order), cut into full batches of the compiled batch size.
//!
//! A compiled binary has a fixed batch, so every step needs exactly `batch` rows: each epoch yields
//! `rows / batch` full batches and skips the `rows % batch` rows left at its end (PyTorch's
//! `drop_last=True`); with shuffling, different rows are left out in each epoch.

/// SplitMix64: a small, well-mixed, seedable generator (deterministic across platforms).
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by rejection so that no value is favoured.
    fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next();
            if v < zone {
                return v % n;
            }
        }
    }
}

/// Row indices of successive training batches.
#[derive(Debug, Clone)]
pub struct Batches {
    rows: usize,
    batch: usize,
    rng: Option<SplitMix64>,
    order: Vec<usize>,
    next: usize,
}

impl Batches {
    /// Batches of `batch` rows out of rows `0..rows` (`rows ≥ batch ≥ 1`), shuffled per epoch with
    /// `seed`, or in order when `seed` is `None`.
    pub fn new(rows: usize, batch: usize, seed: Option<u64>) -> Batches {
        assert!(batch >= 1 && rows >= batch, "checked by the caller");
        Batches {
            rows,
            batch,
            rng: seed.map(SplitMix64),
            order: Vec::new(),
            next: usize::MAX,
        }
    }

    /// Starts an epoch: the rows in order, or a Fisher–Yates shuffle of them.
    fn new_epoch(&mut self) {
        self.order = (0..self.rows).collect();
        if let Some(rng) = &mut self.rng {
            for i in (1..self.rows).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                self.order.swap(i, j);
            }
        }
        self.next = 0;
    }
}

impl Iterator for Batches {
    type Item = Vec<usize>;

    fn next(&mut self) -> Option<Vec<usize>> {
        if self.next.saturating_add(self.batch) > self.rows {
            self.new_epoch();
        }
        let b = self.order[self.next..self.next + self.batch].to_vec();
        self.next += self.batch;
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_drops_the_partial_batch() {
        let b: Vec<Vec<usize>> = Batches::new(7, 3, None).take(3).collect();
        assert_eq!(b, vec![vec![0, 1, 2], vec![3, 4, 5], vec![0, 1, 2]]);
    }

    #[test]
    fn shuffled_epochs_are_permutations_and_deterministic() {
        let a: Vec<Vec<usize>> = Batches::new(10, 5, Some(3)).take(4).collect();
        let again: Vec<Vec<usize>> = Batches::new(10, 5, Some(3)).take(4).collect();
        assert_eq!(a, again);
        for epoch in a.chunks(2) {
            let mut rows: Vec<usize> = epoch.concat();
            rows.sort();
            assert_eq!(rows, (0..10).collect::<Vec<_>>());
        }
        assert_ne!(a[0..2], a[2..4], "each epoch is shuffled anew");
        let other: Vec<Vec<usize>> = Batches::new(10, 5, Some(4)).take(2).collect();
        assert_ne!(a[0..2], other[..]);
    }
}
