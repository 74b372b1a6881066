//! Non-zero bitmaps, popcounts and effective-work counters.
//!
//! Used by the compute kernels to count effective MACs exactly, by DMA compression accounting
//! (bitmap + non-zero values) and by the machine's density counters.

use std::ops::AddAssign;

/// A dense row-major bit matrix (`rows × cols` bits, each row padded to whole 64-bit words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitMatrix {
    rows: usize,
    cols: usize,
    words_per_row: usize,
    words: Vec<u64>,
}

impl BitMatrix {
    /// An all-zero bit matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        let words_per_row = cols.div_ceil(64);
        Self {
            rows,
            cols,
            words_per_row,
            words: vec![0; rows * words_per_row],
        }
    }

    /// Builds the bit matrix with `bit(r, c) = f(r, c)`.
    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> bool) -> Self {
        let mut m = Self::zeros(rows, cols);
        for r in 0..rows {
            let row = &mut m.words[r * m.words_per_row..(r + 1) * m.words_per_row];
            for c in 0..cols {
                row[c / 64] |= u64::from(f(r, c)) << (c % 64);
            }
        }
        m
    }

    /// The non-zero indicator of `rows` contiguous rows of `cols` values each (`row(r)` returns
    /// row `r`), packed 64 values at a time.
    pub fn from_rows<'a>(rows: usize, cols: usize, row: impl Fn(usize) -> &'a [f32]) -> Self {
        let mut m = Self::zeros(rows, cols);
        for r in 0..rows {
            let words = &mut m.words[r * m.words_per_row..(r + 1) * m.words_per_row];
            pack_into(words, &row(r)[..cols]);
        }
        m
    }

    /// The indicators of `rows` rows made of `parts` runs of `len` values each (`part(r, i)` is
    /// run `i` of row `r`, at columns `i·len..(i + 1)·len`), packed up to 64 values at a time.
    pub fn from_parts<'a, T: Indicator + 'a>(
        rows: usize,
        parts: usize,
        len: usize,
        part: impl Fn(usize, usize) -> &'a [T],
    ) -> Self {
        let mut m = Self::zeros(rows, parts * len);
        for r in 0..rows {
            for i in 0..parts {
                for (c, chunk) in part(r, i)[..len].chunks(64).enumerate() {
                    m.or_bits(r, i * len + c * 64, T::pack(chunk), chunk.len());
                }
            }
        }
        m
    }

    /// The non-zero indicator of a strided f32 matrix: `bit(r, c) = data[r*rs + c*cs] != 0`.
    pub fn nonzero(data: &[f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        Self::from_fn(rows, cols, |r, c| data[r * rs + c * cs] != 0.0)
    }

    /// The bit matrix of a boolean mask (`rows·cols`, row-major).
    pub fn from_bools(mask: &[bool], rows: usize, cols: usize) -> Self {
        let mut m = Self::zeros(rows, cols);
        for r in 0..rows {
            let words = &mut m.words[r * m.words_per_row..(r + 1) * m.words_per_row];
            pack_into(words, &mask[r * cols..(r + 1) * cols]);
        }
        m
    }

    /// Sets bit `(r, c)`.
    pub fn set(&mut self, r: usize, c: usize) {
        self.words[r * self.words_per_row + c / 64] |= 1 << (c % 64);
    }

    /// ORs the `n <= 64` low bits of `bits` into row `r` at columns `c..c + n`.
    #[inline]
    pub fn or_bits(&mut self, r: usize, c: usize, bits: u64, n: usize) {
        debug_assert!(n <= 64 && c + n <= self.cols && (n == 64 || bits >> n == 0));
        let row = &mut self.words[r * self.words_per_row..(r + 1) * self.words_per_row];
        let (w, b) = (c / 64, c % 64);
        row[w] |= bits << b;
        if b > 0 && b + n > 64 {
            row[w + 1] |= bits >> (64 - b);
        }
    }

    /// The transposed bit matrix (the tests' reference censuses count with it).
    #[cfg(test)]
    pub fn transpose(&self) -> Self {
        let mut t = Self::zeros(self.cols, self.rows);
        for r in 0..self.rows {
            for (w, &word) in self.row(r).iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    t.set(w * 64 + bits.trailing_zeros() as usize, r);
                    bits &= bits - 1;
                }
            }
        }
        t
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (bits per row).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The words of row `r`.
    pub fn row(&self, r: usize) -> &[u64] {
        &self.words[r * self.words_per_row..(r + 1) * self.words_per_row]
    }

    /// Bit `(r, c)`.
    pub fn get(&self, r: usize, c: usize) -> bool {
        self.row(r)[c / 64] >> (c % 64) & 1 == 1
    }

    /// Number of set bits in row `r`.
    pub fn row_count(&self, r: usize) -> u64 {
        popcount(self.row(r))
    }

    /// Number of set bits.
    pub fn count(&self) -> u64 {
        popcount(&self.words)
    }
}

/// Number of set bits in `words`.
pub fn popcount(words: &[u64]) -> u64 {
    words.iter().map(|w| u64::from(w.count_ones())).sum()
}

/// Number of bits set in both `a` and `b`.
#[inline]
pub fn and_popcount(a: &[u64], b: &[u64]) -> u64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| u64::from((x & y).count_ones()))
        .sum()
}

/// Packs the indicators of every element of `src` into `words` (bit `i % 64` of word `i / 64`).
fn pack_into<T: Indicator>(words: &mut [u64], src: &[T]) {
    for (w, chunk) in words.iter_mut().zip(src.chunks(64)) {
        *w = T::pack(chunk);
    }
}

/// A value with a one-bit indicator that bit matrices and bitmaps pack: a flag is its own, a
/// number's is whether it is non-zero (NaN counts as non-zero, ±0 as zero).
pub trait Indicator: Sized {
    /// The indicators of the `<= 64` values of `chunk` as the low bits of a word (value `i` on
    /// bit `i`).
    fn pack(chunk: &[Self]) -> u64;
}

impl Indicator for bool {
    #[inline]
    fn pack(chunk: &[bool]) -> u64 {
        debug_assert!(chunk.len() <= 64);
        #[cfg(all(target_arch = "x86_64", target_feature = "avx512bw"))]
        {
            use std::arch::x86_64::{_mm512_maskz_loadu_epi8, _mm512_test_epi8_mask};
            // SAFETY: AVX-512BW is enabled at compile time (the cfg); the masked load reads only
            // the `chunk.len()` bytes of `chunk` (masked-off bytes are neither read nor faulted
            // on), and a bool is one byte, 0 or 1.
            unsafe {
                let v = _mm512_maskz_loadu_epi8(low_bits(chunk.len()), chunk.as_ptr().cast());
                _mm512_test_epi8_mask(v, v)
            }
        }
        #[cfg(not(all(target_arch = "x86_64", target_feature = "avx512bw")))]
        pack_word(chunk, |&k| k)
    }
}

impl Indicator for f32 {
    #[inline]
    fn pack(chunk: &[f32]) -> u64 {
        debug_assert!(chunk.len() <= 64);
        #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
        {
            use std::arch::x86_64::{
                _mm512_mask_cmp_ps_mask, _mm512_maskz_loadu_ps, _mm512_setzero_ps, _CMP_NEQ_UQ,
            };
            let all = low_bits(chunk.len());
            (0..chunk.len().div_ceil(16)).fold(0, |acc, i| {
                let k = (all >> (16 * i)) as u16;
                // SAFETY: AVX-512F is enabled at compile time (the cfg); the masked load reads
                // only the values of `chunk` from `16·i` on that `k` selects (masked-off lanes
                // are neither read nor faulted on), and `16·i < chunk.len()`. The unordered
                // not-equal compare is Rust's `x != 0.0`: true for NaN, false for ±0.
                let bits = unsafe {
                    let x = _mm512_maskz_loadu_ps(k, chunk.as_ptr().add(16 * i));
                    _mm512_mask_cmp_ps_mask::<_CMP_NEQ_UQ>(k, x, _mm512_setzero_ps())
                };
                acc | u64::from(bits) << (16 * i)
            })
        }
        #[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
        pack_word(chunk, |&x| x != 0.0)
    }
}

/// The low `n <= 64` bits set.
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
#[inline]
fn low_bits(n: usize) -> u64 {
    match n {
        0 => 0,
        _ => u64::MAX >> (64 - n),
    }
}

/// `pred` of the `<= 64` elements of `chunk` as the low bits of a word (element `i` on bit `i`):
/// [`Indicator::pack`] without SIMD masks, and its tests' reference.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "avx512bw"), allow(dead_code))]
#[inline]
fn pack_word<T>(chunk: &[T], pred: impl Fn(&T) -> bool) -> u64 {
    // A byte per value first (this vectorises), then eight 0/1 bytes to eight bits by one
    // multiply: byte `i` lands on bit `56 + i`, no other product reaches the top byte.
    let mut bytes = [[0u8; 8]; 8];
    bytes
        .as_flattened_mut()
        .iter_mut()
        .zip(chunk)
        .for_each(|(b, x)| *b = u8::from(pred(x)));
    bytes.iter().rev().fold(0, |acc, &b| {
        acc << 8 | u64::from_le_bytes(b).wrapping_mul(0x0102_0408_1020_4080) >> 56
    })
}

/// Packs a boolean mask into 64-bit words (bit `i % 64` of word `i / 64`).
pub fn bool_bitmap(mask: &[bool]) -> Vec<u64> {
    let mut words = vec![0; mask.len().div_ceil(64)];
    pack_into(&mut words, mask);
    words
}

/// Bits `start..start + n` (`n <= 64`) of a packed bit vector, in the low bits of the result.
#[inline]
pub fn bits_at(words: &[u64], start: usize, n: usize) -> u64 {
    debug_assert!(n <= 64);
    if n == 0 {
        return 0;
    }
    let (w, b) = (start / 64, start % 64);
    let mut v = words[w] >> b;
    if b > 0 && b + n > 64 {
        v |= words[w + 1] << (64 - b);
    }
    if n == 64 {
        v
    } else {
        v & ((1 << n) - 1)
    }
}

/// Bits 0, 2, 4, … of `x` packed into the low 32 bits.
#[inline]
fn even_bits(x: u64) -> u64 {
    let mut x = x & 0x5555_5555_5555_5555;
    x = (x | x >> 1) & 0x3333_3333_3333_3333;
    x = (x | x >> 2) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | x >> 4) & 0x00FF_00FF_00FF_00FF;
    x = (x | x >> 8) & 0x0000_FFFF_0000_FFFF;
    (x | x >> 16) & 0x0000_0000_FFFF_FFFF
}

/// Bits `start, start + step, …` (`n <= 64` of them) of a packed bit vector, in the low bits of
/// the result.
#[inline]
pub fn strided_bits(words: &[u64], start: usize, step: usize, n: usize) -> u64 {
    match step {
        1 => bits_at(words, start, n),
        2 if n > 32 => strided_bits(words, start, 2, 32) | strided_bits(words, start + 64, 2, n - 32) << 32,
        2 => even_bits(bits_at(words, start, (2 * n).saturating_sub(1))),
        _ => (0..n).fold(0, |acc, i| acc | bits_at(words, start + i * step, 1) << i),
    }
}

/// Number of non-zero elements of `data` (NaN counts as non-zero; ±0 as zero).
pub fn count_nonzero(data: &[f32]) -> u64 {
    count_by(data, |&x| x != 0.0)
}

/// Number of elements of `data` for which `f` holds, counted in blocks with 32-bit lanes (which
/// vectorise twice as wide as a 64-bit running count).
pub fn count_by<T>(data: &[T], f: impl Fn(&T) -> bool) -> u64 {
    data.chunks(1 << 16)
        .map(|block| u64::from(block.iter().map(|x| u32::from(f(x))).sum::<u32>()))
        .sum()
}

/// Fraction of non-zero elements (1.0 for an empty slice).
pub fn density(data: &[f32]) -> f64 {
    if data.is_empty() {
        1.0
    } else {
        count_nonzero(data) as f64 / data.len() as f64
    }
}

/// Packs the non-zero indicator of `data` into 64-bit words (bit `i % 64` of word `i / 64`), the
/// bitmap a compressed DMA transfer sends alongside the non-zero values.
pub fn nonzero_bitmap(data: &[f32]) -> Vec<u64> {
    let mut words = vec![0; data.len().div_ceil(64)];
    pack_into(&mut words, data);
    words
}

/// Exact work counters of one compute kernel call, measured on the real operands.
///
/// Invariant: `mac_slots == effective + zero_operand + masked_out`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkCounts {
    /// Dense MAC slots: every (output, reduction index) pair, including padding taps.
    pub mac_slots: u64,
    /// MACs of computed outputs whose two operands are both non-zero.
    pub effective: u64,
    /// MACs of computed outputs with at least one zero operand (zero-skippable or clock-gated);
    /// padding taps count here.
    pub zero_operand: u64,
    /// MAC slots of outputs skipped by a keep-mask (never computed).
    pub masked_out: u64,
    /// Output elements.
    pub outputs: u64,
    /// Output elements skipped by a keep-mask (written as zero).
    pub outputs_skipped: u64,
    /// Whether `effective`/`zero_operand` were counted exactly (false: counting was switched off
    /// and both are zero).
    pub exact: bool,
}

impl WorkCounts {
    /// Fraction of MAC slots that were effective (0 for an empty kernel).
    pub fn effective_fraction(&self) -> f64 {
        if self.mac_slots == 0 {
            0.0
        } else {
            self.effective as f64 / self.mac_slots as f64
        }
    }
}

impl AddAssign for WorkCounts {
    fn add_assign(&mut self, o: Self) {
        self.mac_slots += o.mac_slots;
        self.effective += o.effective;
        self.zero_operand += o.zero_operand;
        self.masked_out += o.masked_out;
        self.outputs += o.outputs;
        self.outputs_skipped += o.outputs_skipped;
        self.exact = self.exact && o.exact;
    }
}

/// Whether kernels count effective MACs exactly (default) or only the cheap shape-derived counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Counting {
    /// Count effective and zero-operand MACs exactly from the operands (bitmap popcounts).
    #[default]
    Exact,
    /// Only `mac_slots`, `outputs`, `outputs_skipped` and `masked_out`; `effective` stays 0.
    SlotsOnly,
}

/// Indices of the set bits of a bitmap row, in increasing order.
pub fn set_bits(words: &[u64]) -> impl Iterator<Item = usize> + '_ {
    words.iter().enumerate().flat_map(|(w, &word)| {
        let mut bits = word;
        std::iter::from_fn(move || {
            (bits != 0).then(|| {
                let i = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                i
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_and_counts() {
        let data = [0.0, 1.0, -0.0, 2.0, f32::NAN];
        assert_eq!(count_nonzero(&data), 3);
        assert_eq!(nonzero_bitmap(&data), vec![0b11010]);
        let m = BitMatrix::nonzero(&data, 1, 5, 5, 1);
        assert_eq!(m.count(), 3);
        assert!(m.get(0, 1) && !m.get(0, 2));
        let big: Vec<f32> = (0..130).map(|i| (i % 3) as f32).collect();
        let bm = BitMatrix::nonzero(&big, 2, 65, 65, 1);
        assert_eq!(bm.count(), count_nonzero(&big));
        assert_eq!(popcount(&nonzero_bitmap(&big)), count_nonzero(&big));
        assert_eq!(
            and_popcount(bm.row(0), bm.row(1)),
            (0..65).filter(|&c| big[c] != 0.0 && big[65 + c] != 0.0).count() as u64
        );
    }

    #[test]
    fn indicators_pack_as_bit_by_bit() {
        let values = [
            0.0,
            -0.0,
            1.0,
            f32::NAN,
            -2.5,
            f32::MIN_POSITIVE / 4.0,
            f32::INFINITY,
        ];
        let data: Vec<f32> = (0..200)
            .map(|i| values[(i * 2654435761usize) % 13 % values.len()])
            .collect();
        let flags: Vec<bool> = (0..200).map(|i| (i * 2654435761usize) % 5 < 2).collect();
        for start in [0, 1, 7, 64, 100] {
            for len in 0..=64 {
                let (x, k) = (&data[start..start + len], &flags[start..start + len]);
                assert_eq!(f32::pack(x), pack_word(x, |&v| v != 0.0), "{start} {len}");
                assert_eq!(bool::pack(k), pack_word(k, |&v| v), "{start} {len}");
            }
        }
    }

    #[test]
    fn bit_spans() {
        let bools: Vec<bool> = (0..200).map(|i| (i * 2654435761usize) % 5 < 2).collect();
        let words = bool_bitmap(&bools);
        for step in 1..4 {
            for start in [0, 1, 37, 63, 64, 70] {
                for n in [0, 1, 5, 31, 32, 33, 40, 64] {
                    if start + step * n.max(1) > 200 {
                        continue;
                    }
                    let want = (0..n).fold(0u64, |a, i| a | u64::from(bools[start + i * step]) << i);
                    assert_eq!(strided_bits(&words, start, step, n), want, "{start} {step} {n}");
                }
            }
        }
        let m = BitMatrix::from_bools(&bools[..130], 2, 65);
        assert_eq!(m, BitMatrix::from_fn(2, 65, |r, c| bools[r * 65 + c]));
        assert_eq!(m.transpose(), BitMatrix::from_fn(65, 2, |r, c| bools[c * 65 + r]));
        // Three runs of 30 values a row (not word-aligned).
        let parts = BitMatrix::from_parts(2, 3, 30, |r, i| &bools[(i * 2 + r) * 30..]);
        let want = BitMatrix::from_fn(2, 90, |r, c| bools[(c / 30 * 2 + r) * 30 + c % 30]);
        assert_eq!(parts, want);
        let mut o = BitMatrix::zeros(1, 130);
        o.or_bits(0, 60, 0b1011, 4);
        o.or_bits(0, 66, u64::MAX, 64);
        assert_eq!(
            o,
            BitMatrix::from_fn(1, 130, |_, c| [60, 61, 63].contains(&c) || (66..130).contains(&c))
        );
    }
}
