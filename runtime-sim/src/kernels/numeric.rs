//! Storage formats: fp32, fp16 (IEEE binary16), fp8 E4M3 (OCP "E4M3FN") and fp8 E5M2.
//!
//! Every conversion to a narrower format rounds to nearest, ties to even (RNE).
//!
//! - **E4M3** (OCP E4M3FN): 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities; the only NaN
//!   codes are `S.1111.111`; maximum finite magnitude 448. Finite values beyond 448 and ±inf
//!   **saturate** to ±448 (the accelerator's forward-path convention).
//! - **E5M2**: 1 sign, 5 exponent (bias 15), 2 mantissa bits; IEEE-like with ±inf and NaN; maximum
//!   finite magnitude 57344. Overflow follows IEEE RNE: values at or above 61440 (half an ulp above
//!   the maximum) become ±inf, which loss scaling detects.
//!
//! Byte buffers are little-endian (fp32 4 bytes, fp16 2 bytes, fp8 1 byte per element).

use super::{check_len, Result};
use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;
use std::sync::LazyLock;

/// Elements from which a conversion is split across threads, in chunks this long (whole groups
/// of the f16 kernels' eight: each chunk converts as the whole buffer would).
const PAR_CHUNK: usize = 1 << 15;

/// A slice that [`split`] cuts into chunks: shared or mutable.
trait Chunks: Sized + Send {
    /// Its elements.
    fn elements(&self) -> usize;
    /// Its chunks of `size` elements, to go across threads.
    fn chunks_across(self, size: usize) -> impl IndexedParallelIterator<Item = Self>;
}

impl<T: Sync> Chunks for &[T] {
    fn elements(&self) -> usize {
        self.len()
    }
    fn chunks_across(self, size: usize) -> impl IndexedParallelIterator<Item = Self> {
        self.par_chunks(size)
    }
}

impl<T: Send> Chunks for &mut [T] {
    fn elements(&self) -> usize {
        self.len()
    }
    fn chunks_across(self, size: usize) -> impl IndexedParallelIterator<Item = Self> {
        self.par_chunks_mut(size)
    }
}

/// Runs `f` on `values` and their encoding `codes` (`bytes` per value): on matching chunks of
/// [`PAR_CHUNK`] values across threads when there are two chunks or more, else whole, here.
fn split<V: Chunks, C: Chunks>(values: V, codes: C, bytes: usize, f: impl Fn(V, C) + Sync + Send) {
    if values.elements() >= 2 * PAR_CHUNK {
        values
            .chunks_across(PAR_CHUNK)
            .zip(codes.chunks_across(PAR_CHUNK * bytes))
            .for_each(|(v, c)| f(v, c));
    } else {
        f(values, codes);
    }
}

/// A storage format of tensor elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// fp8 E4M3 (OCP E4M3FN, saturating).
    E4M3,
    /// fp8 E5M2 (IEEE-like).
    E5M2,
}

/// Bit layout of an 8-bit minifloat.
struct Fp8Spec {
    mant_bits: u32,
    bias: i32,
    /// Largest finite positive code.
    max_code: u32,
    /// Code used for positive NaN.
    nan_code: u8,
    /// Code produced on overflow (saturation for E4M3, inf for E5M2).
    overflow_code: u8,
    /// Whether the all-ones exponent field is reserved for inf/NaN (IEEE-like).
    ieee_special: bool,
}

const E4M3: Fp8Spec = Fp8Spec {
    mant_bits: 3,
    bias: 7,
    max_code: 0x7E,
    nan_code: 0x7F,
    overflow_code: 0x7E,
    ieee_special: false,
};

const E5M2: Fp8Spec = Fp8Spec {
    mant_bits: 2,
    bias: 15,
    max_code: 0x7B,
    nan_code: 0x7E,
    overflow_code: 0x7C,
    ieee_special: true,
};

/// `2^k` as f32 for `k` in the normal range.
fn pow2(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

impl Fp8Spec {
    /// Encodes `x` with round-to-nearest-even.
    #[inline]
    fn encode(&self, x: f32) -> u8 {
        let sign = ((x.to_bits() >> 31) as u8) << 7;
        if x.is_nan() {
            return sign | self.nan_code;
        }
        let a = x.abs();
        if a.is_infinite() {
            return sign | self.overflow_code;
        }
        let emin = 1 - self.bias;
        // f32 subnormals are far below half the smallest fp8 subnormal and round to zero.
        if a < f32::MIN_POSITIVE {
            return sign;
        }
        let exp = (((a.to_bits() >> 23) & 0xFF) as i32 - 127).max(emin);
        // Exact power-of-two scaling: the integer part of `scaled` is the significand in units of
        // the target ulp at exponent `exp`.
        let scaled = a * pow2(self.mant_bits as i32 - exp);
        let mut sig = scaled.round_ties_even() as u32;
        let mut exp = exp;
        if sig >= 2 << self.mant_bits {
            sig >>= 1;
            exp += 1;
        }
        let code = if sig < 1 << self.mant_bits {
            sig // subnormal (or zero): exponent field 0
        } else {
            (((exp + self.bias) as u32) << self.mant_bits) | (sig - (1 << self.mant_bits))
        };
        if code > self.max_code {
            sign | self.overflow_code
        } else {
            sign | code as u8
        }
    }

    /// Rounds every element of `data` to this format, giving what [`Fp8Spec::encode`] then
    /// decoding would give, on the f32 bits without branches (so the loop vectorises): a normal
    /// result keeps the top `mant_bits` of the mantissa, rounded to nearest even by an integer add
    /// that carries into the exponent; below the smallest normal the quantum is fixed, and adding
    /// then subtracting a power of two whose f32 ulp is that quantum rounds to it (RNE, exact).
    fn round_slice(&self, data: &mut [f32]) {
        const SIGN: u32 = 0x8000_0000;
        let drop = 23 - self.mant_bits;
        let emin = 1 - self.bias;
        let magic = pow2(emin - self.mant_bits as i32 + 23);
        let min_normal = pow2(emin).to_bits();
        let max = self.decode(self.max_code as u8).to_bits();
        let overflow = self.decode(self.overflow_code).to_bits();
        data.iter_mut().for_each(|x| {
            let (sign, abs) = (x.to_bits() & SIGN, x.to_bits() & !SIGN);
            let normal = (abs + (1 << (drop - 1)) - 1 + ((abs >> drop) & 1)) & !((1 << drop) - 1);
            let sub = (f32::from_bits(abs) + magic - magic).to_bits();
            let mag = if abs < min_normal {
                sub
            } else if normal > max {
                overflow
            } else {
                normal
            };
            *x = if abs > f32::INFINITY.to_bits() {
                f32::NAN
            } else {
                f32::from_bits(sign | mag)
            };
        });
    }

    /// Decodes one code (reference implementation used to build the lookup table).
    fn decode(&self, code: u8) -> f32 {
        let sign = if code & 0x80 != 0 { -1.0 } else { 1.0 };
        let mag = u32::from(code & 0x7F);
        let exp_field = mag >> self.mant_bits;
        let mant = mag & ((1 << self.mant_bits) - 1);
        let exp_max = 0x7F >> self.mant_bits;
        if self.ieee_special && exp_field == exp_max {
            return if mant == 0 { sign * f32::INFINITY } else { f32::NAN };
        }
        if !self.ieee_special && mag == 0x7F {
            return f32::NAN;
        }
        let value = if exp_field == 0 {
            mant as f32 * pow2(1 - self.bias - self.mant_bits as i32)
        } else {
            ((1 << self.mant_bits) | mant) as f32 * pow2(exp_field as i32 - self.bias - self.mant_bits as i32)
        };
        sign * value
    }

    fn table(&self) -> [f32; 256] {
        std::array::from_fn(|c| self.decode(c as u8))
    }
}

static E4M3_TABLE: LazyLock<[f32; 256]> = LazyLock::new(|| E4M3.table());
static E5M2_TABLE: LazyLock<[f32; 256]> = LazyLock::new(|| E5M2.table());

/// Encodes `x` as fp8 E4M3 (RNE, saturating to ±448).
pub fn f32_to_e4m3(x: f32) -> u8 {
    E4M3.encode(x)
}

/// Decodes an fp8 E4M3 code.
pub fn e4m3_to_f32(code: u8) -> f32 {
    E4M3_TABLE[usize::from(code)]
}

/// Encodes `x` as fp8 E5M2 (RNE, IEEE overflow to ±inf).
pub fn f32_to_e5m2(x: f32) -> u8 {
    E5M2.encode(x)
}

/// Decodes an fp8 E5M2 code.
pub fn e5m2_to_f32(code: u8) -> f32 {
    E5M2_TABLE[usize::from(code)]
}

/// The f16 conversions behind [`Format::F16`]'s slice operations, between f32 values and
/// little-endian f16 codes (`[u8; 2]`). Two implementations with the same two functions
/// (`decode_with`, `encode`): [`f16c`] (x86-64 with F16C enabled at compile time, eight values per
/// instruction straight between the byte buffers and the f32 slices) and [`portable`] (the `half`
/// crate); `f16_kernels` names the one in use. Both give bit for bit what `half`'s per-element
/// conversions give (`f16::to_f32`, `f16::from_f32`: round to nearest even, overflow to ±inf,
/// subnormals kept, NaN stays NaN with its sign and the top of its payload, quietened), which the
/// tests check for both where the CPU has F16C. Every function takes slices of equal length (its
/// callers check them).
#[cfg(all(target_arch = "x86_64", target_feature = "f16c"))]
use f16c as f16_kernels;
#[cfg(not(all(target_arch = "x86_64", target_feature = "f16c")))]
use portable as f16_kernels;

/// f16 conversions with the F16C instructions, eight values at a time (`vcvtph2ps` and
/// `vcvtps2ph` with round to nearest even: the instructions `half` itself uses on such CPUs, so
/// the bits are those of `half`).
#[cfg(all(target_arch = "x86_64", target_feature = "f16c"))]
mod f16c {
    use std::arch::x86_64::{
        __m256, _mm256_cvtph_ps, _mm256_cvtps_ph, _mm256_loadu_ps, _mm_loadu_si128, _mm_storeu_si128,
        _MM_FROUND_TO_NEAREST_INT,
    };

    /// Decodes eight little-endian f16 codes.
    #[inline(always)]
    fn to_f32x8(h: &[[u8; 2]; 8]) -> [f32; 8] {
        // SAFETY: F16C (and the AVX it implies) is enabled at compile time (the module's cfg);
        // the unaligned load reads exactly the 16 bytes of `h` (x86-64 is little-endian, so they
        // are the eight u16 codes in order); `[f32; 8]` has the size of `__m256` and every bit
        // pattern is a valid value of both.
        unsafe {
            std::mem::transmute::<__m256, [f32; 8]>(_mm256_cvtph_ps(_mm_loadu_si128(h.as_ptr().cast())))
        }
    }

    /// Encodes eight values as little-endian f16 codes (round to nearest even).
    #[inline(always)]
    fn to_f16x8(x: &[f32; 8]) -> [[u8; 2]; 8] {
        let mut out = [[0u8; 2]; 8];
        // SAFETY: F16C is enabled at compile time (the module's cfg); the unaligned load reads
        // exactly the 32 bytes of `x`, and the unaligned store writes exactly the 16 bytes of
        // `out` (the eight u16 codes, little-endian).
        unsafe {
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(x.as_ptr()));
            _mm_storeu_si128(out.as_mut_ptr().cast(), h);
        }
        out
    }

    /// Calls `f` with each group of eight elements of `src` and the matching elements of `dst`
    /// (equal lengths); a last group of fewer than eight is padded with `fill`, and `f` then gets
    /// only the destination elements there are.
    #[inline(always)]
    fn by_eights<S: Copy, D>(src: &[S], dst: &mut [D], fill: S, mut f: impl FnMut(&[S; 8], &mut [D])) {
        let (s8, s_rest) = src.as_chunks::<8>();
        let (d8, d_rest) = dst.as_chunks_mut::<8>();
        s8.iter().zip(d8).for_each(|(s, d)| f(s, d));
        let mut pad = [fill; 8];
        pad.iter_mut().zip(s_rest).for_each(|(p, &s)| *p = s);
        f(&pad, d_rest);
    }

    /// Decodes `src` into `dst`, handing each value to `put` with its destination element.
    #[inline(always)]
    pub(super) fn decode_with<T>(src: &[[u8; 2]], dst: &mut [T], mut put: impl FnMut(&mut T, f32)) {
        by_eights(src, dst, [0; 2], |s, d| {
            d.iter_mut().zip(to_f32x8(s)).for_each(|(d, v)| put(d, v))
        });
    }

    /// Encodes `src` into `dst`.
    pub(super) fn encode(src: &[f32], dst: &mut [[u8; 2]]) {
        by_eights(src, dst, 0.0, |s, d| {
            d.iter_mut().zip(to_f16x8(s)).for_each(|(d, c)| *d = c)
        });
    }
}

/// f16 conversions with the `half` crate (F16C or Arm FP16 instructions when `half` detects them,
/// software otherwise): decoding element by element straight into the destination, encoding a
/// block at a time through a small stack buffer (`half`'s slice conversion).
#[cfg_attr(all(target_arch = "x86_64", target_feature = "f16c"), allow(dead_code))]
mod portable {
    use half::f16;
    use half::slice::HalfFloatSliceExt;

    /// Decodes `src` into `dst`, handing each value to `put` with its destination element.
    #[inline(always)]
    pub(super) fn decode_with<T>(src: &[[u8; 2]], dst: &mut [T], mut put: impl FnMut(&mut T, f32)) {
        dst.iter_mut()
            .zip(src)
            .for_each(|(d, &s)| put(d, f16::from_le_bytes(s).to_f32()));
    }

    /// Encodes `src` into `dst`.
    pub(super) fn encode(src: &[f32], dst: &mut [[u8; 2]]) {
        let mut halves = [f16::ZERO; 256];
        for (s, d) in src.chunks(256).zip(dst.chunks_mut(256)) {
            let h = &mut halves[..s.len()];
            h.convert_from_f32_slice(s);
            d.iter_mut().zip(h.iter()).for_each(|(d, h)| *d = h.to_le_bytes());
        }
    }
}

/// Elements per block of the f16 operations that encode and decode back (a few KiB, in L1).
const F16_BLOCK: usize = 512;

/// Rounds `data` to f16 in place and encodes the values into `codes` (equal lengths), a block at
/// a time: encoded, then decoded back while the block is in cache (faster than converting each
/// group of eight twice, as LLVM compiles that).
fn f16_store(data: &mut [f32], codes: &mut [[u8; 2]]) {
    for (s, d) in data.chunks_mut(F16_BLOCK).zip(codes.chunks_mut(F16_BLOCK)) {
        f16_kernels::encode(s, d);
        f16_kernels::decode_with(d, s, |s, v| *s = v);
    }
}

impl Format {
    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            Format::F32 => 4,
            Format::F16 => 2,
            Format::E4M3 | Format::E5M2 => 1,
        }
    }

    /// Bits per element.
    pub fn bits(self) -> usize {
        8 * self.bytes()
    }

    /// Rounds `x` to the nearest value representable in this format (RNE) and returns it as f32.
    pub fn quantize(self, x: f32) -> f32 {
        match self {
            Format::F32 => x,
            Format::F16 => f16::from_f32(x).to_f32(),
            Format::E4M3 => e4m3_to_f32(f32_to_e4m3(x)),
            Format::E5M2 => e5m2_to_f32(f32_to_e5m2(x)),
        }
    }

    /// Rounds every element of `data` to this format in place (the same values as
    /// [`Format::quantize`], converted a block at a time).
    pub fn quantize_slice(self, data: &mut [f32]) {
        match self {
            Format::F32 => {}
            Format::F16 => {
                // `half`'s slice conversions through a stack buffer: faster here than the F16C
                // kernels' encoding and decoding back (1.5 vs 2.0 µs for 2^14 values).
                let mut halves = [f16::ZERO; 256];
                for chunk in data.chunks_mut(256) {
                    let h = &mut halves[..chunk.len()];
                    h.convert_from_f32_slice(chunk);
                    h.convert_to_f32_slice(chunk);
                }
            }
            Format::E4M3 => E4M3.round_slice(data),
            Format::E5M2 => E5M2.round_slice(data),
        }
    }

    /// Encodes `src` into little-endian bytes; `dst` must hold `src.len() * self.bytes()` bytes.
    pub fn encode_slice(self, src: &[f32], dst: &mut [u8]) -> Result<()> {
        check_len("encoded buffer", dst, src.len() * self.bytes())?;
        split(src, dst, self.bytes(), |s, d| self.encode_chunk(s, d));
        Ok(())
    }

    /// [`Format::encode_slice`] in this thread (lengths checked).
    fn encode_chunk(self, src: &[f32], dst: &mut [u8]) {
        match self {
            Format::F32 => {
                for (d, x) in dst.chunks_exact_mut(4).zip(src) {
                    d.copy_from_slice(&x.to_le_bytes());
                }
            }
            Format::F16 => f16_kernels::encode(src, dst.as_chunks_mut::<2>().0),
            Format::E4M3 => dst.iter_mut().zip(src).for_each(|(d, &x)| *d = f32_to_e4m3(x)),
            Format::E5M2 => dst.iter_mut().zip(src).for_each(|(d, &x)| *d = f32_to_e5m2(x)),
        }
    }

    /// Rounds `data` to this format in place (as [`Format::quantize_slice`]) and encodes the
    /// rounded values into `dst` (as [`Format::encode_slice`]); f16 converts each value once.
    pub fn store_slice(self, data: &mut [f32], dst: &mut [u8]) -> Result<()> {
        check_len("encoded buffer", dst, data.len() * self.bytes())?;
        split(data, dst, self.bytes(), |data, dst| self.store_chunk(data, dst));
        Ok(())
    }

    /// [`Format::store_slice`] in this thread (lengths checked).
    fn store_chunk(self, data: &mut [f32], dst: &mut [u8]) {
        match self {
            Format::F16 => f16_store(data, dst.as_chunks_mut::<2>().0),
            _ => {
                self.quantize_slice(data);
                self.encode_chunk(data, dst);
            }
        }
    }

    /// Adds the values encoded in `codes` to `data`, maps each sum by `post`, and stores the
    /// results as [`Format::store_slice`] does (rounded in `data`, encoded in `codes`): the same
    /// values as [`Format::add_decoded`], `post` and then `store_slice`, in one pass over blocks
    /// that stay in cache instead of three over the whole slice.
    pub fn add_store(
        self,
        data: &mut [f32],
        codes: &mut [u8],
        post: impl Fn(f32) -> f32 + Sync,
    ) -> Result<()> {
        check_len("encoded buffer", codes, data.len() * self.bytes())?;
        let block = |data: &mut [f32], codes: &mut [u8]| {
            self.decode_chunk(codes, data, |d, v| *d = post(*d + v));
            self.store_chunk(data, codes);
        };
        split(data, codes, self.bytes(), |data, codes| {
            let blocks = data
                .chunks_mut(F16_BLOCK)
                .zip(codes.chunks_mut(F16_BLOCK * self.bytes()));
            blocks.for_each(|(d, c)| block(d, c));
        });
        Ok(())
    }

    /// Adds the values encoded in `src` to `dst` element by element (decoded as they are added,
    /// without a decoded copy); `src` must hold `dst.len() * self.bytes()` bytes.
    pub fn add_decoded(self, src: &[u8], dst: &mut [f32]) -> Result<()> {
        self.decode_each(src, dst, |d, v| *d += v)
    }

    /// Decodes `src` into `dst` (overwriting it); `src` must hold `dst.len() * self.bytes()` bytes.
    pub fn decode_into(self, src: &[u8], dst: &mut [f32]) -> Result<()> {
        self.decode_each(src, dst, |d, v| *d = v)
    }

    /// Hands every value encoded in `src` to `put` with its element of `dst` (each element
    /// exactly once).
    fn decode_each<T: Send>(self, src: &[u8], dst: &mut [T], put: impl Fn(&mut T, f32) + Sync) -> Result<()> {
        check_len("encoded buffer", src, dst.len() * self.bytes())?;
        split(dst, src, self.bytes(), |d, s| self.decode_chunk(s, d, &put));
        Ok(())
    }

    /// [`Format::decode_each`] in this thread (lengths checked).
    fn decode_chunk<T>(self, src: &[u8], dst: &mut [T], put: impl Fn(&mut T, f32)) {
        let by_table = |table: &[f32; 256], dst: &mut [T]| {
            dst.iter_mut()
                .zip(src)
                .for_each(|(d, &c)| put(d, table[usize::from(c)]))
        };
        match self {
            Format::F32 => dst
                .iter_mut()
                .zip(src.as_chunks::<4>().0)
                .for_each(|(d, &c)| put(d, f32::from_le_bytes(c))),
            Format::F16 => f16_kernels::decode_with(src.as_chunks::<2>().0, dst, &put),
            Format::E4M3 => by_table(&E4M3_TABLE, dst),
            Format::E5M2 => by_table(&E5M2_TABLE, dst),
        }
    }

    /// Encodes `src` into a new byte vector.
    pub fn to_bytes(self, src: &[f32]) -> Vec<u8> {
        let mut out = vec![0; src.len() * self.bytes()];
        self.encode_slice(src, &mut out).expect("buffer sized from src");
        out
    }

    /// Decodes a byte buffer into a new f32 vector; its length must be a multiple of the element
    /// size. The vector is filled as it is built, without being zeroed first (long buffers across
    /// threads): zeroing it and then converting took about 1.7× as long for f16 (2^20 values and
    /// 2^14 values).
    pub fn from_bytes(self, src: &[u8]) -> Result<Vec<f32>> {
        let n = src.len() / self.bytes();
        let mut out = Vec::with_capacity(n);
        self.decode_each(src, &mut out.spare_capacity_mut()[..n], |d, v| {
            d.write(v);
        })?;
        // SAFETY: the capacity is at least `n`, and `decode_each` (its lengths checked) hands
        // every element of its destination to the closure, which initialises it: every
        // `decode_chunk` visits all of its `dst`, and the chunks across threads cover it.
        unsafe { out.set_len(n) };
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Straightforward reference: nearest finite code by value, ties to the even code (even mantissa).
    fn reference_encode(table: &[f32; 256], x: f32) -> Option<u8> {
        let mut best: Option<(f64, u8)> = None;
        for code in 0u8..=0x7F {
            let v = table[usize::from(code)];
            if !v.is_finite() {
                continue;
            }
            let d = (f64::from(x.abs()) - f64::from(v)).abs();
            best = match best {
                Some((bd, bc)) if bd < d || (bd == d && bc & 1 == 0) => Some((bd, bc)),
                _ => Some((d, code)),
            };
        }
        best.map(|(_, c)| c | if x.is_sign_negative() { 0x80 } else { 0 })
    }

    #[test]
    fn fp8_all_codes_round_trip() {
        for code in 0..=255u8 {
            for (enc, dec) in [
                (f32_to_e4m3 as fn(f32) -> u8, e4m3_to_f32 as fn(u8) -> f32),
                (f32_to_e5m2, e5m2_to_f32),
            ] {
                let v = dec(code);
                if v.is_nan() {
                    assert!(dec(enc(v)).is_nan());
                } else {
                    assert_eq!(enc(v), code, "code {code:#04x} value {v}");
                }
            }
        }
    }

    #[test]
    fn fp8_known_values() {
        assert_eq!(e4m3_to_f32(0x7E), 448.0);
        assert!(e4m3_to_f32(0x7F).is_nan());
        assert_eq!(e4m3_to_f32(0x01), 2f32.powi(-9));
        assert_eq!(e4m3_to_f32(0x08), 2f32.powi(-6));
        assert_eq!(e5m2_to_f32(0x7B), 57344.0);
        assert_eq!(e5m2_to_f32(0x7C), f32::INFINITY);
        assert_eq!(e5m2_to_f32(0x01), 2f32.powi(-16));
        assert_eq!(f32_to_e4m3(1e6), 0x7E);
        assert_eq!(f32_to_e4m3(f32::NEG_INFINITY), 0xFE);
        assert_eq!(f32_to_e4m3(464.0), 0x7E); // tie 448|480 -> even (448)
        assert_eq!(f32_to_e5m2(61440.0), 0x7C); // tie 57344|61440(inf) -> inf
        assert_eq!(f32_to_e5m2(61439.0), 0x7B);
        assert_eq!(f32_to_e5m2(-1e9), 0xFC);
        assert_eq!(f32_to_e4m3(-0.0), 0x80);
        assert_eq!(f32_to_e4m3(2f32.powi(-10)), 0x00); // tie 0|min subnormal -> even (0)
        assert_eq!(f32_to_e4m3(1.5 * 2f32.powi(-9)), 0x02); // tie 1|2 subnormal units -> even
    }

    /// Buffers long enough to be split across threads convert exactly as in short pieces.
    #[test]
    fn long_buffers_convert_as_in_pieces() {
        let mut state = 3u32;
        let values: Vec<f32> = (0..2 * PAR_CHUNK + 13)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                // Any value but NaN, whose payload an addition may take from either operand.
                Some(f32::from_bits(state) % 1e6)
                    .filter(|v| !v.is_nan())
                    .unwrap_or(1.5)
            })
            .collect();
        const PIECE: usize = 1000;
        for f in [Format::F32, Format::F16, Format::E4M3, Format::E5M2] {
            let b = f.bytes();
            let whole = f.to_bytes(&values);
            let pieces: Vec<u8> = values.chunks(PIECE).flat_map(|c| f.to_bytes(c)).collect();
            assert_eq!(whole, pieces, "{f:?} encode");
            let (mut stored, mut raw) = (values.clone(), vec![0; values.len() * b]);
            f.store_slice(&mut stored, &mut raw).unwrap();
            assert_eq!(raw, whole, "{f:?} store");
            let decoded = f.from_bytes(&whole).unwrap();
            let in_pieces: Vec<f32> = whole
                .chunks(PIECE * b)
                .flat_map(|c| f.from_bytes(c).unwrap())
                .collect();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&decoded), bits(&in_pieces), "{f:?} decode");
            assert_eq!(bits(&stored), bits(&decoded), "{f:?} stored values");
            let mut sums = values.clone();
            f.add_decoded(&whole, &mut sums).unwrap();
            let want: Vec<f32> = values.iter().zip(&decoded).map(|(v, d)| v + d).collect();
            assert_eq!(bits(&sums), bits(&want), "{f:?} add");
        }
    }

    #[test]
    fn fp8_ties_match_reference() {
        // Every midpoint between adjacent finite codes, plus points just either side of it.
        for (table, enc) in [
            (&*E4M3_TABLE, f32_to_e4m3 as fn(f32) -> u8),
            (&*E5M2_TABLE, f32_to_e5m2 as fn(f32) -> u8),
        ] {
            let mut vals: Vec<f32> = table[..0x80].iter().copied().filter(|v| v.is_finite()).collect();
            vals.sort_by(f32::total_cmp);
            for w in vals.windows(2) {
                let mid = (w[0] + w[1]) / 2.0;
                for x in [mid, mid.next_down(), mid.next_up(), -mid, w[0], w[1]] {
                    assert_eq!(Some(enc(x)), reference_encode(table, x), "x = {x}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn fp8_encode_matches_reference_in_range(x in -440.0f32..440.0) {
            prop_assert_eq!(Some(f32_to_e4m3(x)), reference_encode(&E4M3_TABLE, x));
            prop_assert_eq!(Some(f32_to_e5m2(x)), reference_encode(&E5M2_TABLE, x));
        }

        #[test]
        fn byte_round_trip(v in proptest::collection::vec(-1000.0f32..1000.0, 0..600)) {
            for fmt in [Format::F32, Format::F16, Format::E4M3, Format::E5M2] {
                let q: Vec<f32> = v.iter().map(|&x| fmt.quantize(x)).collect();
                let bytes = fmt.to_bytes(&v);
                prop_assert_eq!(bytes.len(), v.len() * fmt.bytes());
                prop_assert_eq!(fmt.from_bytes(&bytes).unwrap(), q.clone());
                let mut s = v.clone();
                fmt.quantize_slice(&mut s);
                prop_assert_eq!(s, q);
            }
        }
    }

    #[test]
    fn f16_is_rne() {
        // 1 + 2^-11 is the midpoint between 1 and 1 + 2^-10: ties to even (1.0).
        assert_eq!(Format::F16.quantize(1.0 + 2f32.powi(-11)), 1.0);
        assert_eq!(
            Format::F16.quantize(1.0 + 3.0 * 2f32.powi(-11)),
            1.0 + 2.0 * 2f32.powi(-10)
        );
    }

    #[test]
    fn quantize_slice_matches_quantize() {
        let mut values: Vec<f32> = (0..=u32::MAX).step_by(65_521).map(f32::from_bits).collect();
        values.extend([
            0.0,
            -0.0,
            1.0 + 2f32.powi(-11),
            65520.0,
            61440.0,
            f32::INFINITY,
            f32::NAN,
        ]);
        for f in [Format::F32, Format::F16, Format::E4M3, Format::E5M2] {
            let mut q = values.clone();
            f.quantize_slice(&mut q);
            for (&x, &y) in values.iter().zip(&q) {
                let want = f.quantize(x);
                assert!(
                    want.to_bits() == y.to_bits() || (want.is_nan() && y.is_nan()),
                    "{f:?} {x:e}: {want:e} vs {y:e}"
                );
            }
        }
    }

    /// `store_slice` leaves what `quantize_slice` does and writes what `encode_slice` does;
    /// `add_decoded` adds what `from_bytes` decodes (every format, NaN and infinities, a length
    /// past the block size).
    #[test]
    fn fused_store_add_and_decode_match_the_separate_steps() {
        let values: Vec<f32> = (0..=u32::MAX)
            .step_by(4_000_037)
            .map(f32::from_bits)
            .chain([0.0, -0.0, 65520.0, f32::INFINITY, f32::NAN])
            .collect();
        let same = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
        };
        for f in [Format::F32, Format::F16, Format::E4M3, Format::E5M2] {
            let (mut stored, mut want) = (values.clone(), values.clone());
            let mut bytes = vec![0u8; values.len() * f.bytes()];
            f.store_slice(&mut stored, &mut bytes).unwrap();
            f.quantize_slice(&mut want);
            assert!(same(&stored, &want), "{f:?}");
            assert_eq!(bytes, f.to_bytes(&want), "{f:?}");
            let mut sum: Vec<f32> = (0..values.len()).map(|i| i as f32 - 300.0).collect();
            let want: Vec<f32> = sum
                .iter()
                .zip(f.from_bytes(&bytes).unwrap())
                .map(|(a, b)| a + b)
                .collect();
            f.add_decoded(&bytes, &mut sum).unwrap();
            assert!(same(&sum, &want), "{f:?}");
            assert!(f.add_decoded(&bytes[1..], &mut sum).is_err());
            f.decode_into(&bytes, &mut sum).unwrap();
            assert!(same(&sum, &f.from_bytes(&bytes).unwrap()), "{f:?}");
            assert!(f.decode_into(&bytes[1..], &mut sum).is_err());
        }
    }

    /// `add_store` does what `add_decoded`, the map and `store_slice` do one after another (every
    /// format, NaN and infinities, ReLU's map, lengths within a block, past it and past the
    /// parallel split).
    #[test]
    fn add_store_matches_adding_mapping_and_storing() {
        let pool: Vec<f32> = (0..=u32::MAX)
            .step_by(4_000_037)
            .map(f32::from_bits)
            .chain([0.0, -0.0, 65520.0, -1e-6, f32::INFINITY, f32::NAN])
            .collect();
        let relu = |v: f32| v.max(0.0);
        for f in [Format::F32, Format::F16, Format::E4M3, Format::E5M2] {
            for len in [7, F16_BLOCK + 9, 2 * PAR_CHUNK + 3] {
                let y: Vec<f32> = (0..len).map(|i| pool[i % pool.len()]).collect();
                let old: Vec<f32> = (0..len).map(|i| i as f32 * 0.25 - 90.0).collect();
                let codes = f.to_bytes(&old);
                let (mut want, mut want_codes) = (y.clone(), codes.clone());
                f.add_decoded(&codes, &mut want).unwrap();
                want.iter_mut().for_each(|v| *v = relu(*v));
                f.store_slice(&mut want, &mut want_codes).unwrap();
                let (mut got, mut got_codes) = (y, codes);
                f.add_store(&mut got, &mut got_codes, relu).unwrap();
                assert_eq!(got_codes, want_codes, "{f:?} {len}");
                let mut same = got.iter().zip(&want);
                assert!(same.all(|(a, b)| a.to_bits() == b.to_bits()), "{f:?} {len}");
                assert!(f.add_store(&mut got[1..], &mut got_codes, relu).is_err());
            }
        }
    }

    /// The reference f16 conversions: `half`, one element at a time.
    fn ref_decode(code: u16) -> f32 {
        f16::from_bits(code).to_f32()
    }

    fn ref_encode(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    type DecodeFn = fn(&[[u8; 2]], &mut [f32]);
    type EncodeFn = fn(&[f32], &mut [[u8; 2]]);

    /// Both f16 kernel implementations where this CPU runs both (decode, encode).
    fn f16_impls() -> Vec<(&'static str, DecodeFn, EncodeFn)> {
        let mut v: Vec<(&'static str, DecodeFn, EncodeFn)> = vec![(
            "portable",
            |s, d| portable::decode_with(s, d, |d, v| *d = v),
            portable::encode,
        )];
        #[cfg(all(target_arch = "x86_64", target_feature = "f16c"))]
        v.push((
            "f16c",
            |s, d| f16c::decode_with(s, d, |d, v| *d = v),
            f16c::encode,
        ));
        v
    }

    /// Every f16 code decodes, and a spread of f32 bit patterns (NaN payloads of both signs,
    /// subnormals, infinities, overflow, ties) encodes, as `half` does element by element, in both
    /// implementations.
    #[test]
    fn f16_kernels_match_half_on_all_codes() {
        let codes: Vec<[u8; 2]> = (0..=u16::MAX).map(u16::to_le_bytes).collect();
        let want: Vec<u32> = (0..=u16::MAX).map(|c| ref_decode(c).to_bits()).collect();
        let values: Vec<f32> = (0..=u32::MAX)
            .step_by(65_519)
            .chain([
                0x7F80_0001,
                0xFFC0_0001,
                0x7FFF_FFFF,
                0x477F_F000,
                0x477F_EFFF,
                0x3380_0000,
            ])
            .map(f32::from_bits)
            .chain(want.iter().map(|&b| f32::from_bits(b)))
            .collect();
        let want_codes: Vec<[u8; 2]> = values.iter().map(|&x| ref_encode(x)).collect();
        for (name, decode, encode) in f16_impls() {
            let mut out = vec![0.0; codes.len()];
            decode(&codes, &mut out);
            assert!(bits(&out) == want, "{name} decode");
            let mut enc = vec![[0u8; 2]; values.len()];
            encode(&values, &mut enc);
            assert!(enc == want_codes, "{name} encode");
        }
    }

    proptest! {
        /// The F16 slice operations (and both kernel implementations) give bit for bit what `half`
        /// gives element by element, on arbitrary codes and f32 bit patterns and lengths (not
        /// multiples of the vector width, across the store block size).
        #[test]
        fn f16_slices_match_half_per_element(
            codes in proptest::collection::vec(any::<u16>(), 0..1100),
            xs in proptest::collection::vec(any::<u32>(), 0..1100),
            acc in any::<u32>(),
        ) {
            let bytes: Vec<u8> = codes.iter().flat_map(|c| c.to_le_bytes()).collect();
            let decoded: Vec<u32> = codes.iter().map(|&c| ref_decode(c).to_bits()).collect();
            prop_assert_eq!(bits(&Format::F16.from_bytes(&bytes).unwrap()), decoded.clone());
            let mut sum: Vec<f32> = (0..codes.len())
                .map(|i| f32::from_bits(acc.rotate_left(i as u32)))
                .collect();
            let want: Vec<u32> = sum
                .iter()
                .zip(&codes)
                .map(|(&a, &c)| (a + ref_decode(c)).to_bits())
                .collect();
            Format::F16.add_decoded(&bytes, &mut sum).unwrap();
            prop_assert_eq!(bits(&sum), want);

            let xs: Vec<f32> = xs.into_iter().map(f32::from_bits).collect();
            let want_bytes: Vec<u8> = xs.iter().flat_map(|&x| ref_encode(x)).collect();
            let want_rounded: Vec<u32> = xs.iter().map(|&x| f16::from_f32(x).to_f32().to_bits()).collect();
            let mut enc = vec![0u8; 2 * xs.len()];
            Format::F16.encode_slice(&xs, &mut enc).unwrap();
            prop_assert_eq!(&enc, &want_bytes);
            let (mut stored, mut enc) = (xs.clone(), vec![0u8; 2 * xs.len()]);
            Format::F16.store_slice(&mut stored, &mut enc).unwrap();
            prop_assert_eq!(&enc, &want_bytes);
            prop_assert_eq!(bits(&stored), want_rounded.clone());
            let mut rounded = xs.clone();
            Format::F16.quantize_slice(&mut rounded);
            prop_assert_eq!(bits(&rounded), want_rounded);

            let pairs: &[[u8; 2]] = bytes.as_chunks::<2>().0;
            for (name, decode, encode) in f16_impls() {
                let mut out = vec![0.0; pairs.len()];
                decode(pairs, &mut out);
                prop_assert_eq!(bits(&out), decoded.clone(), "{} decode", name);
                let mut enc = vec![[0u8; 2]; xs.len()];
                encode(&xs, &mut enc);
                prop_assert_eq!(enc.as_flattened(), &want_bytes[..], "{} encode", name);
            }
        }
    }

    #[test]
    fn bad_byte_length_is_an_error() {
        assert!(Format::F16.from_bytes(&[1, 2, 3]).is_err());
        assert!(Format::F32.from_bytes(&[0; 7]).is_err());
    }
}
