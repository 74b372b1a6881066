//! Memory: the program's DRAM image and the on-chip buffers, as separate types.
//!
//! Every access is bounds-checked against its space and returns a [`FaultKind`] instead of
//! panicking. Typed views convert between the stored element type (the operand's dtype) and the
//! f32 values the executors compute on, through [`crate::kernels::numeric::Format`]
//! (round-to-nearest-even, saturating as `spec/isa.md` §1.2 requires).

use crate::error::FaultKind;
use crate::kernels::density::count_by;
use crate::kernels::numeric::Format;
use std::ops::Range;
use trainer_isa::{DType, NamedEnum, Operand, Space};

/// The off-chip DRAM image of one program (its size is the `.tbin` header's `dram_size`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dram {
    bytes: Vec<u8>,
}

impl Dram {
    /// A zeroed image of `size` bytes.
    pub fn new(size: usize) -> Self {
        Dram { bytes: vec![0; size] }
    }

    /// The whole image.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The whole image, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

/// The four on-chip buffers (`ibuf`, `wbuf`, `obuf`, `gbuf`), sized from the machine model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buffers {
    bufs: [Vec<u8>; 4],
}

impl Buffers {
    /// Zeroed buffers of the given sizes in bytes (`ibuf`, `wbuf`, `obuf`, `gbuf`).
    pub fn new(sizes: [usize; 4]) -> Self {
        Buffers {
            bufs: sizes.map(|s| vec![0; s]),
        }
    }

    fn index(space: Space) -> Option<usize> {
        match space {
            Space::Ibuf => Some(0),
            Space::Wbuf => Some(1),
            Space::Obuf => Some(2),
            Space::Gbuf => Some(3),
            Space::None | Space::Dram => None,
        }
    }

    /// Clears every buffer to zero (between independent runs).
    pub fn clear(&mut self) {
        self.bufs.iter_mut().for_each(|b| b.fill(0));
    }
}

/// Storage format of a float dtype, `None` for `b1` and integers.
pub fn float_format(d: DType) -> Option<Format> {
    match d {
        DType::F32 => Some(Format::F32),
        DType::F16 => Some(Format::F16),
        DType::E4m3 => Some(Format::E4M3),
        DType::E5m2 => Some(Format::E5M2),
        DType::B1 | DType::I32 | DType::I64 => None,
    }
}

/// DRAM plus buffers: the address spaces a program can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    /// Off-chip memory.
    pub dram: Dram,
    /// On-chip buffers.
    pub buffers: Buffers,
}

impl Memory {
    /// The bytes of `space` (`None` for the absent space).
    fn space(&self, space: Space) -> Option<&[u8]> {
        match space {
            Space::Dram => Some(&self.dram.bytes),
            s => Buffers::index(s).map(|i| self.buffers.bufs[i].as_slice()),
        }
    }

    fn space_mut(&mut self, space: Space) -> Option<&mut Vec<u8>> {
        match space {
            Space::Dram => Some(&mut self.dram.bytes),
            s => Buffers::index(s).map(|i| &mut self.buffers.bufs[i]),
        }
    }

    /// Size of `space` in bytes (0 for `none`).
    pub fn space_size(&self, space: Space) -> u64 {
        self.space(space).map_or(0, |s| s.len() as u64)
    }

    /// The byte range of `len` bytes at `addr + offset` in `space`, or an out-of-bounds fault.
    pub fn range(
        &self,
        field: &'static str,
        space: Space,
        start: u64,
        len: u64,
    ) -> Result<Range<usize>, FaultKind> {
        let size = self.space_size(space);
        let end = start.saturating_add(len);
        if space == Space::None || end > size {
            return Err(FaultKind::OutOfBounds {
                field,
                space: space.name(),
                start,
                end,
                size,
            });
        }
        Ok(start as usize..end as usize)
    }

    /// Byte range of `n` elements of operand `op`.
    fn op_range(&self, field: &'static str, op: Operand, n: u64) -> Result<Range<usize>, FaultKind> {
        self.range(field, op.space, op.addr.into(), op.dtype.bytes(n))
    }

    /// Raw bytes of `len` bytes at `start` in `space`.
    pub fn bytes(&self, field: &'static str, space: Space, start: u64, len: u64) -> Result<&[u8], FaultKind> {
        let r = self.range(field, space, start, len)?;
        Ok(&self.space(space).expect("range checked the space")[r])
    }

    /// Copies `len` bytes from `from` to `to` (each a field name for faults, a space and a byte
    /// address) and returns the copied bytes at their destination.
    pub fn copy(
        &mut self,
        from: (&'static str, Space, u64),
        to: (&'static str, Space, u64),
        len: u64,
    ) -> Result<&[u8], FaultKind> {
        let src = self.range(from.0, from.1, from.2, len)?;
        let dst = self.range(to.0, to.1, to.2, len)?;
        if from.1 == to.1 {
            self.space_mut(to.1)
                .expect("range checked the space")
                .copy_within(src, dst.start);
        } else {
            let (a, b) = self.two_spaces(from.1, to.1);
            b[dst.clone()].copy_from_slice(&a[src]);
        }
        Ok(&self.space(to.1).expect("range checked the space")[dst])
    }

    /// Two different spaces, the first to read and the second to write (both checked present).
    fn two_spaces(&mut self, a: Space, b: Space) -> (&[u8], &mut [u8]) {
        let Memory { dram, buffers } = self;
        let (ia, ib) = (Buffers::index(a), Buffers::index(b));
        match (ia, ib) {
            (None, Some(j)) => (&dram.bytes, &mut buffers.bufs[j]),
            (Some(i), None) => (&buffers.bufs[i], &mut dram.bytes),
            (Some(i), Some(j)) if i < j => {
                let (lo, hi) = buffers.bufs.split_at_mut(j);
                (&lo[i], &mut hi[0])
            }
            (Some(i), Some(j)) => {
                let (lo, hi) = buffers.bufs.split_at_mut(i);
                (&hi[0], &mut lo[j])
            }
            (None, None) => unreachable!("two different spaces, at most one of them DRAM"),
        }
    }

    /// Raw writable bytes of `len` bytes at `start` in `space`.
    pub fn bytes_mut(
        &mut self,
        field: &'static str,
        space: Space,
        start: u64,
        len: u64,
    ) -> Result<&mut [u8], FaultKind> {
        let r = self.range(field, space, start, len)?;
        Ok(&mut self.space_mut(space).expect("range checked the space")[r])
    }

    /// Reads `n` elements of `op` as f32 (floats converted exactly, `b1` as 0/1, integers by value).
    pub fn read_f32(&self, field: &'static str, op: Operand, n: usize) -> Result<Vec<f32>, FaultKind> {
        Ok(decode_f32(op.dtype, self.operand_bytes(field, op, n)?, n))
    }

    /// The bytes of `n` elements of `op`.
    pub fn operand_bytes(&self, field: &'static str, op: Operand, n: usize) -> Result<&[u8], FaultKind> {
        let r = self.op_range(field, op, n as u64)?;
        Ok(&self.space(op.space).expect("range checked the space")[r])
    }

    /// Writes `data` to `op`, converting to its dtype (RNE for floats, `x != 0` for `b1`).
    pub fn write_f32(&mut self, field: &'static str, op: Operand, data: &[f32]) -> Result<(), FaultKind> {
        let r = self.op_range(field, op, data.len() as u64)?;
        let raw = &mut self.space_mut(op.space).expect("checked")[r];
        match op.dtype {
            DType::B1 => pack_bits(raw, data.len(), |i| data[i] != 0.0),
            DType::I32 => {
                for (c, &x) in raw.chunks_exact_mut(4).zip(data) {
                    c.copy_from_slice(&(x as i32).to_le_bytes());
                }
            }
            DType::I64 => {
                for (c, &x) in raw.chunks_exact_mut(8).zip(data) {
                    c.copy_from_slice(&(x as i64).to_le_bytes());
                }
            }
            d => float_format(d)
                .expect("float dtype")
                .encode_slice(data, raw)
                .expect("range sized from data"),
        }
        Ok(())
    }

    /// Writes `data` to `op` as [`Memory::write_f32`] does and leaves in `data` the values as
    /// stored (rounded to a float dtype).
    pub fn store_f32(&mut self, field: &'static str, op: Operand, data: &mut [f32]) -> Result<(), FaultKind> {
        let Some(f) = float_format(op.dtype) else {
            return self.write_f32(field, op, data);
        };
        let r = self.op_range(field, op, data.len() as u64)?;
        let raw = &mut self.space_mut(op.space).expect("checked")[r];
        f.store_slice(data, raw).expect("range sized from data");
        Ok(())
    }

    /// Adds the `y.len()` elements of `op` to `y`.
    pub fn add_to(&self, field: &'static str, op: Operand, y: &mut [f32]) -> Result<(), FaultKind> {
        let raw = self.operand_bytes(field, op, y.len())?;
        match float_format(op.dtype) {
            Some(f) => f.add_decoded(raw, y).expect("bytes sized from y"),
            None => {
                let old = decode_f32(op.dtype, raw, y.len());
                y.iter_mut().zip(old).for_each(|(v, o)| *v += o);
            }
        }
        Ok(())
    }

    /// Reads `n` elements of `op` as a boolean mask (`b1` bits, or `x != 0` for other dtypes).
    pub fn read_mask(&self, field: &'static str, op: Operand, n: usize) -> Result<Vec<bool>, FaultKind> {
        if op.dtype == DType::B1 {
            let r = self.op_range(field, op, n as u64)?;
            let raw = &self.space(op.space).expect("checked")[r];
            let mut out = vec![false; n];
            unpack_bits(raw, &mut out, |b| b);
            Ok(out)
        } else {
            Ok(self.read_f32(field, op, n)?.iter().map(|&x| x != 0.0).collect())
        }
    }

    /// Writes a boolean mask to `op` (bits for `b1`, 0.0/1.0 otherwise; float elements are the
    /// encodings of 0.0 and 1.0 copied, not converted one by one).
    pub fn write_mask(&mut self, field: &'static str, op: Operand, mask: &[bool]) -> Result<(), FaultKind> {
        if op.dtype == DType::B1 {
            let r = self.op_range(field, op, mask.len() as u64)?;
            pack_bits(
                &mut self.space_mut(op.space).expect("checked")[r],
                mask.len(),
                |i| mask[i],
            );
            return Ok(());
        }
        let Some(f) = float_format(op.dtype) else {
            let v: Vec<f32> = mask.iter().map(|&b| f32::from(u8::from(b))).collect();
            return self.write_f32(field, op, &v);
        };
        let (zero, one) = (f.to_bytes(&[0.0]), f.to_bytes(&[1.0]));
        let r = self.op_range(field, op, mask.len() as u64)?;
        let raw = &mut self.space_mut(op.space).expect("checked")[r];
        match f.bytes() {
            1 => fill_mask::<1>(raw, mask, &zero, &one),
            2 => fill_mask::<2>(raw, mask, &zero, &one),
            _ => fill_mask::<4>(raw, mask, &zero, &one),
        }
        Ok(())
    }

    /// Reads `n` integer elements of `op` (`i32` or `i64`).
    pub fn read_ints(&self, field: &'static str, op: Operand, n: usize) -> Result<Vec<i64>, FaultKind> {
        let r = self.op_range(field, op, n as u64)?;
        let raw = &self.space(op.space).expect("checked")[r];
        Ok(match op.dtype {
            DType::I32 => raw
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]).into())
                .collect(),
            DType::I64 => raw
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
            d => {
                return Err(FaultKind::BadDtype {
                    field,
                    dtype: d.name(),
                    why: "expected i32 or i64",
                });
            }
        })
    }
}

/// `n` elements of dtype `d` decoded from their bytes `raw` as f32 (floats converted exactly,
/// `b1` as 0/1, integers by value).
pub fn decode_f32(d: DType, raw: &[u8], n: usize) -> Vec<f32> {
    match d {
        DType::B1 => {
            let mut out = vec![0.0f32; n];
            unpack_bits(raw, &mut out, |b| f32::from(u8::from(b)));
            out
        }
        DType::I32 => raw
            .as_chunks::<4>()
            .0
            .iter()
            .map(|&c| i32::from_le_bytes(c) as f32)
            .collect(),
        DType::I64 => raw
            .as_chunks::<8>()
            .0
            .iter()
            .map(|&c| i64::from_le_bytes(c) as f32)
            .collect(),
        d => float_format(d)
            .expect("float dtype")
            .from_bytes(raw)
            .expect("bytes sized from n"),
    }
}

/// Writes the `W`-byte encoding `one` or `zero` per mask element (a fixed width, so each copy
/// is a register move).
fn fill_mask<const W: usize>(raw: &mut [u8], mask: &[bool], zero: &[u8], one: &[u8]) {
    let pick = |e: &[u8]| <[u8; W]>::try_from(e).expect("encoding width");
    let (zero, one) = (pick(zero), pick(one));
    for (d, &m) in raw.chunks_exact_mut(W).zip(mask) {
        d.copy_from_slice(if m { &one } else { &zero });
    }
}

/// Fills `out` with `f` of the first `out.len()` bits of the LSB-first bitmap `raw`, a byte at
/// a time (eight elements per whole byte, so the loop unrolls).
fn unpack_bits<T>(raw: &[u8], out: &mut [T], f: impl Fn(bool) -> T) {
    let whole = out.len() / 8;
    let mut chunks = out.chunks_exact_mut(8);
    for (chunk, &byte) in chunks.by_ref().zip(raw) {
        for (i, x) in chunk.iter_mut().enumerate() {
            *x = f(byte >> i & 1 == 1);
        }
    }
    if let (tail @ [_, ..], Some(&byte)) = (chunks.into_remainder(), raw.get(whole)) {
        for (i, x) in tail.iter_mut().enumerate() {
            *x = f(byte >> i & 1 == 1);
        }
    }
}

/// Stores `bit(i)` for `i < n` as the first bits of an LSB-first bitmap, a byte at a time; the
/// bits of a last partial byte beyond them keep their values.
fn pack_bits(raw: &mut [u8], n: usize, bit: impl Fn(usize) -> bool) {
    let byte_of = |start: usize, len: usize| (0..len).fold(0u8, |v, i| v | u8::from(bit(start + i)) << i);
    for (b, byte) in raw.iter_mut().take(n / 8).enumerate() {
        *byte = byte_of(8 * b, 8);
    }
    if let Some(byte) = raw.get_mut(n / 8).filter(|_| !n.is_multiple_of(8)) {
        let len = n % 8;
        *byte = (*byte & !0u8 << len) | byte_of(n - len, len);
    }
}

/// Number of non-zero elements in raw bytes of dtype `d` (`n` elements; set bits for `b1`).
pub fn count_nonzero_raw(d: DType, raw: &[u8], n: usize) -> u64 {
    match d {
        DType::B1 => {
            let (full, rest) = (n / 8, n % 8);
            let ones: u64 = raw[..full].iter().map(|b| u64::from(b.count_ones())).sum();
            let tail = raw
                .get(full)
                .map_or(0, |&b| (b & ((1u16 << rest) - 1) as u8).count_ones());
            ones + u64::from(tail)
        }
        // Floats: any bit but the sign makes a non-zero (NaN included, ±0 excluded).
        DType::F32 => count_by(raw.as_chunks::<4>().0, |c| u32::from_le_bytes(*c) << 1 != 0),
        DType::F16 => count_by(raw.as_chunks::<2>().0, |c| u16::from_le_bytes(*c) << 1 != 0),
        DType::E4m3 | DType::E5m2 => count_by(raw, |&b| b << 1 != 0),
        DType::I32 => count_by(raw.as_chunks::<4>().0, |c| u32::from_le_bytes(*c) != 0),
        DType::I64 => count_by(raw.as_chunks::<8>().0, |c| u64::from_le_bytes(*c) != 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> Memory {
        Memory {
            dram: Dram::new(64),
            buffers: Buffers::new([16, 16, 16, 16]),
        }
    }

    #[test]
    fn typed_round_trip_and_bounds() {
        let mut m = mem();
        let op = Operand::new(Space::Dram, DType::F16, 8);
        m.write_f32("x", op, &[1.0, -2.5, 1.0 + 2f32.powi(-11)]).unwrap();
        assert_eq!(m.read_f32("x", op, 3).unwrap(), vec![1.0, -2.5, 1.0]);
        let bad = Operand::new(Space::Ibuf, DType::F32, 12);
        assert!(matches!(
            m.read_f32("a", bad, 2),
            Err(FaultKind::OutOfBounds { .. })
        ));
        let huge = Operand::new(Space::Dram, DType::F32, u32::MAX);
        assert!(m.write_f32("a", huge, &[1.0]).is_err());
    }

    #[test]
    fn bitmaps_are_lsb_first() {
        let mut m = mem();
        let op = Operand::new(Space::Gbuf, DType::B1, 1);
        m.write_mask(
            "m",
            op,
            &[true, false, true, true, false, false, false, false, true],
        )
        .unwrap();
        let raw = m.bytes("m", Space::Gbuf, 1, 2).unwrap();
        assert_eq!(raw, &[0b0000_1101, 0b1]);
        assert_eq!(count_nonzero_raw(DType::B1, raw, 9), 4);
        assert_eq!(m.read_mask("m", op, 4).unwrap(), vec![true, false, true, true]);
    }

    #[test]
    fn float_masks_are_the_encoded_values() {
        let mask = [true, false, false, true, true];
        let vals: Vec<f32> = mask.iter().map(|&b| f32::from(u8::from(b))).collect();
        for d in [DType::F32, DType::F16, DType::E4m3, DType::E5m2, DType::I32] {
            let (mut a, mut b) = (mem(), mem());
            let op = Operand::new(Space::Dram, d, 3);
            a.write_mask("m", op, &mask).unwrap();
            b.write_f32("m", op, &vals).unwrap();
            assert_eq!(a.dram.bytes(), b.dram.bytes(), "{d:?}");
            assert_eq!(a.read_mask("m", op, 5).unwrap(), mask);
        }
        let op = Operand::new(Space::Dram, DType::F16, 60);
        assert!(mem().write_mask("m", op, &mask).is_err());
    }

    #[test]
    fn bitmap_writes_keep_the_bits_after_them() {
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 23] {
            let mut m = mem();
            m.dram.bytes_mut().fill(0xA5);
            let mask: Vec<bool> = (0..len).map(|i| i % 3 == 0).collect();
            let op = Operand::new(Space::Dram, DType::B1, 2);
            m.write_mask("m", op, &mask).unwrap();
            let mut want = vec![0xA5u8; 64];
            for (i, &b) in mask.iter().enumerate() {
                let bit = 1u8 << (i % 8);
                want[2 + i / 8] = if b {
                    want[2 + i / 8] | bit
                } else {
                    want[2 + i / 8] & !bit
                };
            }
            assert_eq!(m.dram.bytes(), want, "{len}");
            assert_eq!(m.read_mask("m", op, len).unwrap(), mask);
            let vals: Vec<f32> = mask.iter().map(|&b| f32::from(u8::from(b))).collect();
            assert_eq!(m.read_f32("m", op, len).unwrap(), vals);
            m.write_f32("m", op, &vals).unwrap();
            assert_eq!(m.dram.bytes(), want, "{len}");
        }
    }

    #[test]
    fn copies_between_and_within_spaces() {
        let mut m = mem();
        m.dram.bytes_mut()[..4].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(
            m.copy(("s", Space::Dram, 0), ("d", Space::Obuf, 8), 4).unwrap(),
            [1, 2, 3, 4]
        );
        assert_eq!(
            m.copy(("s", Space::Obuf, 8), ("d", Space::Ibuf, 0), 4).unwrap(),
            [1, 2, 3, 4]
        );
        assert_eq!(
            m.copy(("s", Space::Ibuf, 0), ("d", Space::Gbuf, 12), 4).unwrap(),
            [1, 2, 3, 4]
        );
        assert_eq!(
            m.copy(("s", Space::Gbuf, 12), ("d", Space::Dram, 62), 2).unwrap(),
            [1, 2]
        );
        assert_eq!(
            m.copy(("s", Space::Dram, 1), ("d", Space::Dram, 0), 3).unwrap(),
            [2, 3, 4]
        );
        assert!(matches!(
            m.copy(("s", Space::Dram, 0), ("d", Space::Wbuf, 14), 4),
            Err(FaultKind::OutOfBounds { field: "d", .. })
        ));
        assert_eq!(count_nonzero_raw(DType::B1, &[0xFF, 0b1011_0110], 13), 8 + 3);
    }

    #[test]
    fn negative_zero_counts_as_zero() {
        assert_eq!(count_nonzero_raw(DType::F32, &(-0.0f32).to_le_bytes(), 1), 0);
        assert_eq!(count_nonzero_raw(DType::F32, &f32::NAN.to_le_bytes(), 1), 1);
    }
}
