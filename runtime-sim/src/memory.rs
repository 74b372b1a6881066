//! Memory: the program's DRAM image and the on-chip buffers, as separate types.
//!
//! Every access is bounds-checked against its space and returns a [`FaultKind`] instead of
//! panicking. Typed views convert between the stored element type (the operand's dtype) and the
//! f32 values the executors compute on, through [`crate::kernels::numeric::Format`]
//! (round-to-nearest-even, saturating as `spec/isa.md` §1.2 requires).

mod counts;
mod loads;
mod stamps;

use counts::Counts;
use loads::{Found, Load, Loads};
pub use stamps::Stamp;
use stamps::Stamps;

use crate::error::FaultKind;
use crate::kernels::density::{count_by, Indicator};
use crate::kernels::numeric::Format;
use std::borrow::Cow;
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

    /// The buffer spaces, in index order.
    const SPACES: [Space; 4] = [Space::Ibuf, Space::Wbuf, Space::Obuf, Space::Gbuf];

    fn index(space: Space) -> Option<usize> {
        match space {
            Space::Ibuf => Some(0),
            Space::Wbuf => Some(1),
            Space::Obuf => Some(2),
            Space::Gbuf => Some(3),
            Space::None | Space::Dram => None,
        }
    }

    fn clear(&mut self) {
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

/// One side of a strided copy ([`Memory::copy_rows`]): the field named in faults, the space,
/// the first row's byte address and the distance between rows.
#[derive(Debug, Clone, Copy)]
pub struct Strided {
    /// Field named in faults.
    pub field: &'static str,
    /// Address space.
    pub space: Space,
    /// Byte address of the first row.
    pub start: u64,
    /// Bytes from one row to the next.
    pub stride: u64,
}

/// DRAM plus buffers: the address spaces a program can name, with the write versions of their
/// bytes ([`Memory::stamp`]). A DMA load from DRAM into consecutive buffer bytes is deferred
/// (see the `loads` module): its bytes are read from DRAM until a write makes the copy
/// necessary.
#[derive(Debug, Clone)]
pub struct Memory {
    dram: Dram,
    buffers: Buffers,
    stamps: Stamps,
    loads: Loads,
    counts: Counts,
}

/// Memories are equal when they hold the same bytes (whatever their write versions, and
/// whichever loads are deferred).
impl PartialEq for Memory {
    fn eq(&self, other: &Self) -> bool {
        fn whole(m: &Memory, s: Space) -> Cow<'_, [u8]> {
            m.read(s, 0..m.space_size(s) as usize)
        }
        self.dram == other.dram
            && Buffers::SPACES
                .iter()
                .all(|&s| self.space_size(s) == other.space_size(s) && whole(self, s) == whole(other, s))
    }
}

impl Eq for Memory {}

impl Memory {
    /// Memory of DRAM image `dram` and buffers `buffers`.
    pub fn new(dram: Dram, buffers: Buffers) -> Self {
        let [i, w, o, g] = buffers.bufs.each_ref().map(Vec::len);
        let sizes = [dram.bytes.len(), i, w, o, g];
        Memory {
            dram,
            buffers,
            stamps: Stamps::new(sizes),
            loads: Loads::default(),
            counts: Counts::default(),
        }
    }

    /// The DRAM image.
    pub fn dram(&self) -> &Dram {
        &self.dram
    }

    /// Clears every buffer to zero (between independent runs).
    pub fn clear_buffers(&mut self) {
        self.buffers.clear();
        self.stamps.cleared_buffers();
        self.loads.clear();
    }

    /// The stamp of `len` bytes at `start` in `space` (a range the caller has checked, else
    /// `None`): two reads with equal stamps read the same bytes, whatever happened between them.
    pub fn stamp(&self, space: Space, start: u64, len: u64) -> Option<Stamp> {
        let r = self.range("stamp", space, start, len).ok()?;
        let loaded = Buffers::index(space)
            .and_then(|b| self.loads.source(b, &r))
            .and_then(|(src, rows, at)| self.stamps.loaded(src, r.len(), rows, at));
        loaded.or_else(|| self.stamps.stamp(space, r))
    }

    /// The bytes `r` (checked) of `space`, marked written (and with their current values: the
    /// deferred loads a write there would change are materialised first).
    fn written(&mut self, space: Space, r: Range<usize>) -> &mut [u8] {
        self.settle(space, &r);
        self.stamps.wrote(space, r.clone());
        &mut self.space_mut(space).expect("range checked the space")[r]
    }

    /// The bytes `r` (checked) of `space`: borrowed from the buffer, or from DRAM when a deferred
    /// load holds them all, else assembled.
    fn read(&self, space: Space, r: Range<usize>) -> Cow<'_, [u8]> {
        let Some(b) = Buffers::index(space) else {
            return Cow::Borrowed(&self.dram.bytes[r]);
        };
        match self.loads.find(b, &r) {
            Found::Buffer => Cow::Borrowed(&self.buffers.bufs[b][r]),
            Found::Dram(dram) => Cow::Borrowed(&self.dram.bytes[dram]),
            Found::Pieces(mut loads) => {
                // The buffer's bytes between the loads' (which never overlap), in order.
                loads.sort_by_key(|l| l.dst.start);
                let (buf, dram) = (&self.buffers.bufs[b], &self.dram.bytes);
                let mut out = Vec::with_capacity(r.len());
                let mut at = r.start;
                for load in loads {
                    let part = load.dst.start.max(r.start)..load.dst.end.min(r.end);
                    out.extend_from_slice(&buf[at..part.start]);
                    at = part.end;
                    load.pieces(part).for_each(|p| out.extend_from_slice(&dram[p]));
                }
                out.extend_from_slice(&buf[at..r.end]);
                Cow::Owned(out)
            }
        }
    }

    /// Materialises the deferred loads a write to bytes `r` of `space` would change: the loads
    /// into them (a buffer) or from them (DRAM).
    fn settle(&mut self, space: Space, r: &Range<usize>) {
        match Buffers::index(space) {
            Some(b) => {
                let loads = self.loads.wrote(b, r);
                self.materialise(b, loads);
            }
            None => {
                for (b, load) in self.loads.wrote_dram(r) {
                    self.materialise(b, vec![load]);
                }
            }
        }
    }

    /// Copies `loads` into buffer `b` for real (their bytes are unchanged: no new stamp).
    fn materialise(&mut self, b: usize, loads: Vec<Load>) {
        for load in loads {
            let mut at = load.dst.start;
            for p in load.pieces(load.dst.clone()) {
                self.buffers.bufs[b][at..at + p.len()].copy_from_slice(&self.dram.bytes[p.clone()]);
                at += p.len();
            }
        }
    }

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
        let end = start.saturating_add(len);
        if space == Space::None || end > self.space_size(space) {
            return Err(self.out_of_bounds(field, space, start, len));
        }
        Ok(start as usize..end as usize)
    }

    /// Byte range of `n` elements of operand `op`.
    fn op_range(&self, field: &'static str, op: Operand, n: u64) -> Result<Range<usize>, FaultKind> {
        self.range(field, op.space, op.addr.into(), op.dtype.bytes(n))
    }

    /// Raw bytes of `len` bytes at `start` in `space`.
    pub fn bytes(
        &self,
        field: &'static str,
        space: Space,
        start: u64,
        len: u64,
    ) -> Result<Cow<'_, [u8]>, FaultKind> {
        let r = self.range(field, space, start, len)?;
        Ok(self.read(space, r))
    }

    /// Copies `rows` rows of `len` bytes from `from` to `to`, in row order, and hands every row's
    /// bytes to `each` right after copying it, with its non-zero count when `count` names the
    /// dtype to count it as (every whole element of the row, [`count_nonzero_raw`]; 0 without).
    /// A load from DRAM into consecutive buffer bytes (rows packed at the destination) is
    /// deferred (see the `loads` module): its rows are handed over from DRAM. Rows of DRAM
    /// counted before and unchanged since take their counts (see the `counts` module).
    /// Every row is checked first: when one is out of bounds, nothing is copied and the fault is
    /// that of the first such row (its source checked before its destination), so a faulting
    /// transfer leaves memory as it was.
    pub fn copy_rows(
        &mut self,
        from: Strided,
        to: Strided,
        (len, rows): (u64, u64),
        count: Option<DType>,
        mut each: impl FnMut(&[u8], u64),
    ) -> Result<(), FaultKind> {
        let bad = |s: &Strided| self.first_bad_row(s, len, rows);
        match (bad(&from), bad(&to)) {
            (Some(r), Some(d)) if d < r => return Err(self.row_fault(&to, d, len)),
            (Some(r), _) => return Err(self.row_fault(&from, r, len)),
            (None, Some(d)) => return Err(self.row_fault(&to, d, len)),
            (None, None) => {}
        }
        if rows == 0 {
            return Ok(());
        }
        // Rows of an unchanged DRAM source counted before take their counts.
        let source = match (count, from.space) {
            (Some(d), Space::Dram) => {
                let rows_of = (from.start, from.stride, len, rows, d);
                let span = (rows - 1) * from.stride + len;
                self.stamp(Space::Dram, from.start, span).map(|s| (rows_of, s))
            }
            _ => None,
        };
        let known = source.and_then(|(k, s)| self.counts.take(&k, s));
        let count = count.filter(|_| known.is_none());
        let mut counts = Vec::with_capacity(source.map_or(0, |_| rows as usize));
        let mut known = known.into_iter().flatten();
        self.move_rows(from, to, (len, rows), count, |bytes, z| {
            let z = known.next().unwrap_or(z);
            if source.is_some() {
                counts.push(z);
            }
            each(bytes, z)
        });
        if let Some((k, s)) = source {
            self.counts.put(k, s, counts);
        }
        Ok(())
    }

    /// [`Memory::copy_rows`] of rows in bounds (at least one), counting them as `count` says.
    fn move_rows(
        &mut self,
        from: Strided,
        to: Strided,
        (len, rows): (u64, u64),
        count: Option<DType>,
        mut each: impl FnMut(&[u8], u64),
    ) {
        // In bounds: addresses fit in usize.
        let at = |s: &Strided, r: u64| (s.start + r * s.stride) as usize;
        let len = len as usize;
        let counted = |row: &[u8]| {
            count.map_or(0, |d| {
                count_nonzero_raw(d, row, 8 * row.len() / d.bits(1) as usize)
            })
        };
        // Every row written (and whatever lies between strided rows, as far as the versions
        // tell); a load from DRAM into consecutive buffer bytes is remembered as one, and
        // deferred.
        let span = |s: &Strided| at(s, 0).min(at(s, rows - 1))..at(s, 0).max(at(s, rows - 1)) + len;
        let packed = rows == 1 || to.stride == len as u64;
        let deferred = Buffers::index(to.space).filter(|_| from.space == Space::Dram && packed && len > 0);
        if let Some(b) = deferred {
            let load = Load::new(
                at(&to, 0),
                (at(&from, 0), from.stride as usize),
                (len, rows as usize),
            );
            self.stamps.wrote(to.space, load.dst.clone());
            let stale = self.loads.push(b, load, self.stamps.clock());
            self.materialise(b, stale);
            for r in 0..rows {
                let row = &self.dram.bytes[at(&from, r)..][..len];
                each(row, counted(row));
            }
            return;
        }
        // The source as it is, then the destination's deferred loads out of the way.
        if let Some(b) = Buffers::index(from.space) {
            let loads = self.loads.copied_from(b, &span(&from));
            self.materialise(b, loads);
        }
        self.settle(to.space, &span(&to));
        self.stamps.wrote(to.space, span(&to));
        if from.space == to.space {
            let space = self.space_mut(to.space).expect("checked");
            for r in 0..rows {
                let (src, dst) = (at(&from, r), at(&to, r));
                space.copy_within(src..src + len, dst);
                let row = &space[dst..dst + len];
                each(row, counted(row));
            }
            return;
        }
        let (a, b) = self.two_spaces(from.space, to.space);
        // Rows back to back on both sides, not counted: one copy.
        if from.stride == len as u64 && to.stride == len as u64 && count.is_none() {
            let (src, dst, n) = (at(&from, 0), at(&to, 0), len * rows as usize);
            b[dst..dst + n].copy_from_slice(&a[src..src + n]);
            b[dst..dst + n]
                .chunks_exact(len.max(1))
                .for_each(|row| each(row, 0));
            return;
        }
        for r in 0..rows {
            let (src, dst) = (at(&from, r), at(&to, r));
            let row = &mut b[dst..dst + len];
            let nonzero = match count {
                Some(DType::F16) => copy_counting_f16(row, &a[src..src + len]),
                _ => {
                    row.copy_from_slice(&a[src..src + len]);
                    counted(row)
                }
            };
            each(row, nonzero);
        }
    }

    /// The first of `rows` rows of `len` bytes of `s` that is out of bounds, if any (rows only
    /// move up, so the rows from it on all are).
    fn first_bad_row(&self, s: &Strided, len: u64, rows: u64) -> Option<u64> {
        let size = self.space_size(s.space);
        let room = size.checked_sub(s.start.saturating_add(len));
        let first = match (s.space, room) {
            (Space::None, _) | (_, None) => 0,
            (_, Some(_)) if s.stride == 0 => return None,
            (_, Some(room)) => room / s.stride + 1,
        };
        (first < rows).then_some(first)
    }

    /// The out-of-bounds fault of row `r` of `s`.
    fn row_fault(&self, s: &Strided, r: u64, len: u64) -> FaultKind {
        let start = s.start.saturating_add(r.saturating_mul(s.stride));
        self.out_of_bounds(s.field, s.space, start, len)
    }

    /// The fault of an access of `len` bytes at `start` in `space` that does not fit.
    fn out_of_bounds(&self, field: &'static str, space: Space, start: u64, len: u64) -> FaultKind {
        FaultKind::OutOfBounds {
            field,
            space: space.name(),
            start,
            end: start.saturating_add(len),
            size: self.space_size(space),
        }
    }

    /// Two different spaces, the first to read and the second to write (both checked present).
    fn two_spaces(&mut self, a: Space, b: Space) -> (&[u8], &mut [u8]) {
        let Memory { dram, buffers, .. } = self;
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
        Ok(self.written(space, r))
    }

    /// Reads `n` elements of `op` as f32 (floats converted exactly, `b1` as 0/1, integers by value).
    pub fn read_f32(&self, field: &'static str, op: Operand, n: usize) -> Result<Vec<f32>, FaultKind> {
        Ok(decode_f32(op.dtype, &self.operand_bytes(field, op, n)?, n))
    }

    /// The bytes of `n` elements of `op`.
    pub fn operand_bytes(
        &self,
        field: &'static str,
        op: Operand,
        n: usize,
    ) -> Result<Cow<'_, [u8]>, FaultKind> {
        let r = self.op_range(field, op, n as u64)?;
        Ok(self.read(op.space, r))
    }

    /// Writes `data` to `op`, converting to its dtype ([`encode_f32`]).
    pub fn write_f32(&mut self, field: &'static str, op: Operand, data: &[f32]) -> Result<(), FaultKind> {
        let r = self.op_range(field, op, data.len() as u64)?;
        encode_f32(op.dtype, data, self.written(op.space, r));
        Ok(())
    }

    /// Writes `data` to `op` as [`Memory::write_f32`] does and leaves in `data` the values as
    /// stored (rounded to a float dtype).
    pub fn store_f32(&mut self, field: &'static str, op: Operand, data: &mut [f32]) -> Result<(), FaultKind> {
        let Some(f) = float_format(op.dtype) else {
            return self.write_f32(field, op, data);
        };
        let r = self.op_range(field, op, data.len() as u64)?;
        let raw = self.written(op.space, r);
        f.store_slice(data, raw).expect("range sized from data");
        Ok(())
    }

    /// Adds the `y.len()` elements of `op` to `y`, maps each sum by `post`, and stores the
    /// results to `op` as [`Memory::store_f32`] does (leaving in `y` the values as stored): an
    /// accumulating output in one pass ([`Format::add_store`]).
    pub fn add_store_f32(
        &mut self,
        field: &'static str,
        op: Operand,
        y: &mut [f32],
        post: impl Fn(f32) -> f32 + Sync,
    ) -> Result<(), FaultKind> {
        let Some(f) = float_format(op.dtype) else {
            self.add_to(field, op, y)?;
            y.iter_mut().for_each(|v| *v = post(*v));
            return self.store_f32(field, op, y);
        };
        let r = self.op_range(field, op, y.len() as u64)?;
        f.add_store(y, self.written(op.space, r), post)
            .expect("range sized from y");
        Ok(())
    }

    /// Adds the `y.len()` elements of `op` to `y`.
    pub fn add_to(&self, field: &'static str, op: Operand, y: &mut [f32]) -> Result<(), FaultKind> {
        let raw = self.operand_bytes(field, op, y.len())?;
        match float_format(op.dtype) {
            Some(f) => f.add_decoded(&raw, y).expect("bytes sized from y"),
            None => {
                let old = decode_f32(op.dtype, &raw, y.len());
                y.iter_mut().zip(old).for_each(|(v, o)| *v += o);
            }
        }
        Ok(())
    }

    /// Reads `n` elements of `op` as a boolean mask (`b1` bits, or `x != 0` for other dtypes).
    pub fn read_mask(&self, field: &'static str, op: Operand, n: usize) -> Result<Vec<bool>, FaultKind> {
        Ok(decode_mask(op.dtype, &self.operand_bytes(field, op, n)?, n))
    }

    /// Writes a boolean mask to `op` (bits for `b1`, 0.0/1.0 otherwise; float elements are the
    /// encodings of 0.0 and 1.0 copied, not converted one by one).
    pub fn write_mask(&mut self, field: &'static str, op: Operand, mask: &[bool]) -> Result<(), FaultKind> {
        if op.dtype == DType::B1 {
            let r = self.op_range(field, op, mask.len() as u64)?;
            pack_flags(self.written(op.space, r), mask);
            return Ok(());
        }
        let Some(f) = float_format(op.dtype) else {
            let v: Vec<f32> = mask.iter().map(|&b| f32::from(u8::from(b))).collect();
            return self.write_f32(field, op, &v);
        };
        let (zero, one) = (f.to_bytes(&[0.0]), f.to_bytes(&[1.0]));
        let r = self.op_range(field, op, mask.len() as u64)?;
        let raw = self.written(op.space, r);
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
        let raw = self.read(op.space, r);
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
    match float_format(d) {
        // Floats decode into a vector built as it is filled (no zeroing pass first).
        Some(f) => f.from_bytes(raw).expect("bytes sized from n"),
        None => {
            let mut out = vec![0.0f32; n];
            decode_f32_into(d, raw, &mut out);
            out
        }
    }
}

/// Decodes the `out.len()` elements of dtype `d` in `raw` into `out`, as [`decode_f32`] does.
pub fn decode_f32_into(d: DType, raw: &[u8], out: &mut [f32]) {
    match d {
        DType::B1 => unpack_bits(raw, out, |b| f32::from(u8::from(b))),
        DType::I32 => out
            .iter_mut()
            .zip(raw.as_chunks::<4>().0)
            .for_each(|(o, &c)| *o = i32::from_le_bytes(c) as f32),
        DType::I64 => out
            .iter_mut()
            .zip(raw.as_chunks::<8>().0)
            .for_each(|(o, &c)| *o = i64::from_le_bytes(c) as f32),
        d => float_format(d)
            .expect("float dtype")
            .decode_into(raw, out)
            .expect("bytes sized from out"),
    }
}

/// Encodes `data` as dtype `d` into `raw`, which holds `data.len()` elements: RNE for floats,
/// `x != 0` for `b1` (the bits of a last partial byte beyond them keep their values), integers
/// truncated toward zero.
pub fn encode_f32(d: DType, data: &[f32], raw: &mut [u8]) {
    match d {
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
}

/// `n` elements encoded as `d` in `raw` as a boolean mask (`b1` bits, or `x != 0` for other
/// dtypes); `raw` holds `n` elements.
pub fn decode_mask(d: DType, raw: &[u8], n: usize) -> Vec<bool> {
    if d == DType::B1 {
        let mut out = vec![false; n];
        unpack_bits(raw, &mut out, |b| b);
        out
    } else {
        decode_f32(d, raw, n).iter().map(|&x| x != 0.0).collect()
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

/// [`pack_bits`] of the flags `mask`, 64 at a time ([`Indicator::pack`]: a bitmap word is its
/// eight bytes little-endian).
fn pack_flags(raw: &mut [u8], mask: &[bool]) {
    let (words, rest) = mask.as_chunks::<64>();
    for (bytes, flags) in raw.chunks_exact_mut(8).zip(words) {
        bytes.copy_from_slice(&bool::pack(flags).to_le_bytes());
    }
    pack_bits(&mut raw[8 * words.len()..], rest.len(), |i| rest[i]);
}

/// Copies `src` into `dst` (as long) and returns the non-zeros of its f16 elements, as
/// [`count_nonzero_raw`] counts them (every whole element; an odd last byte is copied only).
fn copy_counting_f16(dst: &mut [u8], src: &[u8]) -> u64 {
    let (done, wide) = f16_blocks(src, Some(dst));
    dst[done..].copy_from_slice(&src[done..]);
    wide + count_nonzero_f16(&src[done..])
}

/// The non-zeros of the f16 elements of `raw` (every whole element).
fn count_nonzero_f16(raw: &[u8]) -> u64 {
    let (done, wide) = f16_blocks(raw, None);
    wide + count_by(raw[done..].as_chunks::<2>().0, |c| {
        u16::from_le_bytes(*c) << 1 != 0
    })
}

/// The whole 64-byte blocks of `src`, 32 f16 elements at a time in AVX-512 registers, counted
/// (a value is non-zero when a bit besides its sign is set) and copied into `dst` if given (as
/// long as `src`). Returns the bytes done and their non-zeros. (With `dst`, LLVM turns the
/// stores into one `memcpy` beside a loop of loads, tests and popcounts: 17-20% faster than
/// copying and then counting the copy, for rows of 1 to 64 KiB from a large source.)
#[cfg(all(target_arch = "x86_64", target_feature = "avx512bw"))]
fn f16_blocks(src: &[u8], dst: Option<&mut [u8]>) -> (usize, u64) {
    use std::arch::x86_64::{
        _mm512_loadu_si512, _mm512_set1_epi16, _mm512_storeu_si512, _mm512_test_epi16_mask,
    };
    let (blocks, _) = src.as_chunks::<64>();
    let mut nonzero = 0;
    // SAFETY: the build targets AVX-512BW (the `cfg` of this function); every load and store is
    // of one 64-byte array, and they need no alignment.
    unsafe {
        let magnitude = _mm512_set1_epi16(0x7FFF);
        match dst {
            Some(dst) => {
                for (d, s) in dst.as_chunks_mut::<64>().0.iter_mut().zip(blocks) {
                    let v = _mm512_loadu_si512(s.as_ptr().cast());
                    _mm512_storeu_si512(d.as_mut_ptr().cast(), v);
                    nonzero += u64::from(_mm512_test_epi16_mask(v, magnitude).count_ones());
                }
            }
            None => {
                for s in blocks {
                    let v = _mm512_loadu_si512(s.as_ptr().cast());
                    nonzero += u64::from(_mm512_test_epi16_mask(v, magnitude).count_ones());
                }
            }
        }
    }
    (64 * blocks.len(), nonzero)
}

/// Without AVX-512BW: no blocks (the callers copy and count bytewise).
#[cfg(not(all(target_arch = "x86_64", target_feature = "avx512bw")))]
fn f16_blocks(_: &[u8], _: Option<&mut [u8]>) -> (usize, u64) {
    (0, 0)
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
        DType::F16 => count_nonzero_f16(raw),
        DType::E4m3 | DType::E5m2 => count_by(raw, |&b| b << 1 != 0),
        DType::I32 => count_by(raw.as_chunks::<4>().0, |c| u32::from_le_bytes(*c) != 0),
        DType::I64 => count_by(raw.as_chunks::<8>().0, |c| u64::from_le_bytes(*c) != 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mem() -> Memory {
        Memory::new(Dram::new(64), Buffers::new([16, 16, 16, 16]))
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
    fn flags_pack_as_bit_by_bit() {
        let mut state = 1u32;
        for n in [0, 1, 7, 8, 9, 63, 64, 100, 128, 200] {
            let mask: Vec<bool> = (0..n)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    state >> 16 & 1 == 1
                })
                .collect();
            let (mut fast, mut slow) = (vec![0xA5u8; n / 8 + 2], vec![0xA5u8; n / 8 + 2]);
            pack_flags(&mut fast, &mask);
            pack_bits(&mut slow, n, |i| mask[i]);
            assert_eq!(fast, slow, "{n} flags");
        }
        let mut all = [0u8; 2];
        pack_flags(&mut all, &[true; 16]);
        assert_eq!(all, [0xFF; 2]);
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
        assert_eq!(*raw, [0b0000_1101, 0b1]);
        assert_eq!(count_nonzero_raw(DType::B1, &raw, 9), 4);
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
            m.bytes_mut("x", Space::Dram, 0, 64).unwrap().fill(0xA5);
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

    /// One side of a copy: field `f`, `space`, first row at `start`, rows `stride` apart.
    fn side(f: &'static str, space: Space, start: u64, stride: u64) -> Strided {
        Strided {
            field: f,
            space,
            start,
            stride,
        }
    }

    /// `copy_rows` of one row, returning the row at its destination.
    fn copy_one(
        m: &mut Memory,
        from: (Space, u64),
        to: (Space, u64),
        len: u64,
    ) -> Result<Vec<u8>, FaultKind> {
        let mut rows = Vec::new();
        let (s, d) = (side("s", from.0, from.1, 0), side("d", to.0, to.1, 0));
        m.copy_rows(s, d, (len, 1), None, |r, _| rows.push(r.to_vec()))?;
        Ok(rows.concat())
    }

    #[test]
    fn every_write_changes_the_stamp_and_loads_take_their_sources() {
        let mut m = mem();
        let f = |space, addr| Operand::new(space, DType::F32, addr);
        let stamp = |m: &Memory, space, start| m.stamp(space, start, 8);
        let dram = stamp(&m, Space::Dram, 0);
        assert_eq!(dram, stamp(&m, Space::Dram, 0));
        m.write_f32("x", f(Space::Dram, 0), &[1.0, 2.0]).unwrap();
        let dram_now = stamp(&m, Space::Dram, 0);
        assert_ne!(dram, dram_now);
        // A load of the bytes reads as them; a strided one does not.
        copy_one(&mut m, (Space::Dram, 0), (Space::Ibuf, 4), 8).unwrap();
        assert_eq!(stamp(&m, Space::Ibuf, 4), dram_now);
        let (s, d) = (side("s", Space::Dram, 0, 4), side("d", Space::Wbuf, 0, 8));
        m.copy_rows(s, d, (4, 2), None, |_, _| {}).unwrap();
        assert_ne!(stamp(&m, Space::Wbuf, 0), dram_now);
        // Each kind of write ends the load's stamp.
        type Write = fn(&mut Memory);
        let writes: [Write; 4] = [
            |m| {
                m.write_f32("y", Operand::new(Space::Ibuf, DType::F32, 8), &[3.0])
                    .unwrap()
            },
            |m| {
                m.store_f32("y", Operand::new(Space::Ibuf, DType::F16, 6), &mut [3.0])
                    .unwrap()
            },
            |m| {
                m.write_mask("y", Operand::new(Space::Ibuf, DType::B1, 11), &[true])
                    .unwrap()
            },
            |m| m.bytes_mut("y", Space::Ibuf, 4, 1).unwrap()[0] = 7,
        ];
        for write in writes {
            copy_one(&mut m, (Space::Dram, 0), (Space::Ibuf, 4), 8).unwrap();
            assert_eq!(stamp(&m, Space::Ibuf, 4), dram_now);
            let before = stamp(&m, Space::Ibuf, 0);
            write(&mut m);
            assert_ne!(stamp(&m, Space::Ibuf, 4), dram_now);
            assert_ne!(stamp(&m, Space::Ibuf, 0), before);
        }
        copy_one(&mut m, (Space::Dram, 0), (Space::Ibuf, 4), 8).unwrap();
        m.clear_buffers();
        assert_ne!(stamp(&m, Space::Ibuf, 4), dram_now);
        assert_eq!(m.stamp(Space::Ibuf, 12, 8), None, "out of bounds");
    }

    /// A memory of 64 KiB of DRAM and 4 KiB buffers.
    fn big() -> Memory {
        Memory::new(Dram::new(1 << 16), Buffers::new([1 << 12; 4]))
    }

    /// A load of `rows` rows of `row` bytes from DRAM at `src`, `stride` apart, packed into
    /// `space` at `dst`.
    fn load(m: &mut Memory, (space, dst): (Space, u64), (src, stride): (u64, u64), (row, rows): (u64, u64)) {
        let (s, d) = (side("s", Space::Dram, src, stride), side("d", space, dst, row));
        m.copy_rows(s, d, (row, rows), None, |_, _| {}).unwrap();
    }

    #[test]
    fn loads_take_their_sources_stamp_while_both_stay() {
        let mut m = big();
        let stamp = |m: &Memory, space, r: Range<u64>| m.stamp(space, r.start, r.end - r.start);
        let src = 2048..2048 + 512;
        m.bytes_mut("x", Space::Dram, src.start, 512).unwrap().fill(3);
        let dram = stamp(&m, Space::Dram, src.clone());
        // Loaded twice, into two places: both read as the DRAM bytes, and so does a part.
        load(&mut m, (Space::Ibuf, 0), (src.start, 512), (512, 1));
        load(&mut m, (Space::Wbuf, 1024), (src.start, 512), (512, 1));
        assert_eq!(stamp(&m, Space::Ibuf, 0..512), dram);
        assert_eq!(stamp(&m, Space::Wbuf, 1024..1536), dram);
        assert_eq!(
            stamp(&m, Space::Ibuf, 8..16),
            stamp(&m, Space::Dram, src.start + 8..src.start + 16)
        );
        // A copy out of the buffer keeps the stamp.
        copy_one(&mut m, (Space::Wbuf, 1024), (Space::Obuf, 0), 512).unwrap();
        assert_eq!(stamp(&m, Space::Wbuf, 1024..1536), dram);
        // A write into the load ends it; a range beyond it has its own stamp.
        m.bytes_mut("x", Space::Ibuf, 100, 1).unwrap()[0] = 3;
        assert_ne!(stamp(&m, Space::Ibuf, 0..512), dram);
        assert_ne!(stamp(&m, Space::Wbuf, 1024..1540), dram);
        // A write to the source: the other load no longer holds its bytes.
        m.bytes_mut("x", Space::Dram, src.start, 1).unwrap()[0] = 3;
        let held = stamp(&m, Space::Wbuf, 1024..1536);
        assert_ne!(held, dram);
        assert_ne!(held, stamp(&m, Space::Dram, src.clone()));
        // Clearing the buffers ends every load.
        load(&mut m, (Space::Ibuf, 0), (src.start, 512), (512, 1));
        assert_eq!(
            stamp(&m, Space::Ibuf, 0..512),
            stamp(&m, Space::Dram, src.clone())
        );
        m.clear_buffers();
        assert_ne!(
            stamp(&m, Space::Ibuf, 0..512),
            stamp(&m, Space::Dram, src.clone())
        );
        // A copy within DRAM writes its destination and is not remembered.
        let before = stamp(&m, Space::Dram, 0..512);
        copy_one(&mut m, (Space::Dram, src.start), (Space::Dram, 0), 512).unwrap();
        assert_ne!(stamp(&m, Space::Dram, 0..512), before);
        assert_ne!(stamp(&m, Space::Dram, 0..512), stamp(&m, Space::Dram, src));
    }

    #[test]
    fn strided_loads_take_their_sources_stamp_whole_or_row_by_row() {
        let mut m = big();
        let stamp = |m: &Memory, space, r: Range<u64>| m.stamp(space, r.start, r.end - r.start);
        // Four rows of 256 bytes, 1 KiB apart, loaded twice: the same stamp, not a range's.
        load(&mut m, (Space::Ibuf, 0), (4096, 1024), (256, 4));
        let whole = stamp(&m, Space::Ibuf, 0..1024);
        load(&mut m, (Space::Wbuf, 1024), (4096, 1024), (256, 4));
        assert_eq!(stamp(&m, Space::Wbuf, 1024..2048), whole);
        assert_ne!(whole, stamp(&m, Space::Dram, 4096..4096 + 1024));
        // Another stride, or part of a row: other bytes.
        load(&mut m, (Space::Obuf, 0), (4096, 512), (256, 4));
        assert_ne!(stamp(&m, Space::Obuf, 0..1024), whole);
        assert_eq!(
            stamp(&m, Space::Ibuf, 260..300),
            stamp(&m, Space::Dram, 5124..5164)
        );
        // A write between the rows, within the span the load read, ends it.
        m.bytes_mut("x", Space::Dram, 5120 + 600, 1).unwrap()[0] = 0;
        assert_ne!(stamp(&m, Space::Ibuf, 0..1024), whole);
    }

    #[test]
    fn deferred_loads_read_as_copies_until_a_write_needs_them() {
        let mut m = mem();
        let ramp: Vec<u8> = (0..64).collect();
        m.bytes_mut("x", Space::Dram, 0, 64)
            .unwrap()
            .copy_from_slice(&ramp);
        let read = |m: &Memory, space, start, len| m.bytes("r", space, start, len).unwrap().to_vec();
        // Two loads side by side: one read within each, one across both and the buffer.
        copy_one(&mut m, (Space::Dram, 8), (Space::Ibuf, 0), 8).unwrap();
        copy_one(&mut m, (Space::Dram, 40), (Space::Ibuf, 8), 4).unwrap();
        assert!(matches!(
            m.bytes("r", Space::Ibuf, 2, 4).unwrap(),
            Cow::Borrowed(_)
        ));
        assert_eq!(read(&m, Space::Ibuf, 2, 4), [10, 11, 12, 13]);
        assert_eq!(read(&m, Space::Ibuf, 6, 8), [14, 15, 40, 41, 42, 43, 0, 0]);
        // A DRAM write keeps the buffer's bytes as they were loaded.
        m.bytes_mut("x", Space::Dram, 10, 1).unwrap()[0] = 99;
        assert_eq!(read(&m, Space::Ibuf, 0, 4), [8, 9, 10, 11]);
        // A buffer write within a load keeps the rest of it.
        m.bytes_mut("x", Space::Ibuf, 9, 1).unwrap()[0] = 77;
        assert_eq!(read(&m, Space::Ibuf, 8, 4), [40, 77, 42, 43]);
        // A store reads the loaded bytes; a load over part of another keeps the other's rest.
        copy_one(&mut m, (Space::Dram, 20), (Space::Wbuf, 0), 8).unwrap();
        copy_one(&mut m, (Space::Wbuf, 0), (Space::Dram, 50), 8).unwrap();
        assert_eq!(read(&m, Space::Dram, 50, 8), [20, 21, 22, 23, 24, 25, 26, 27]);
        copy_one(&mut m, (Space::Dram, 0), (Space::Wbuf, 4), 8).unwrap();
        assert_eq!(
            read(&m, Space::Wbuf, 0, 12),
            [20, 21, 22, 23, 0, 1, 2, 3, 4, 5, 6, 7]
        );
        // Equal to a memory that holds the same bytes for real; cleared buffers read as zeros.
        let mut same = mem();
        for space in [Space::Dram, Space::Ibuf, Space::Wbuf, Space::Obuf, Space::Gbuf] {
            let n = m.space_size(space);
            let bytes = read(&m, space, 0, n);
            same.bytes_mut("x", space, 0, n).unwrap().copy_from_slice(&bytes);
        }
        assert_eq!(m, same);
        m.clear_buffers();
        assert_eq!(read(&m, Space::Wbuf, 0, 16), [0; 16]);
        assert_ne!(m, same);
    }

    /// A copy or write in the model memory test: copies are (from, to, len, rows, counted as
    /// f16) with each side (space, start, stride); writes are (space, start, byte).
    #[derive(Debug, Clone)]
    enum Step {
        Copy((usize, u64, u64), (usize, u64, u64), u64, u64, bool),
        Write(usize, u64, u8),
        Clear,
    }

    const SPACES: [Space; 5] = [Space::Dram, Space::Ibuf, Space::Wbuf, Space::Obuf, Space::Gbuf];

    fn step() -> impl Strategy<Value = Step> {
        let side = || (0..5usize, 0..40u64, 0..12u64);
        prop_oneof![
            6 => (side(), side(), 1..10u64, 1..4u64, any::<bool>()).prop_map(|(f, t, len, rows, c)| {
                // Rows packed at the destination two times in three (the loads that are
                // deferred), consecutive at the source too one time in three.
                let (f, t) = match (f.2 + t.2) % 3 {
                    0 => ((f.0, f.1, len), (t.0, t.1, len)),
                    1 => (f, (t.0, t.1, len)),
                    _ => (f, t),
                };
                Step::Copy(f, t, len, rows, c)
            }),
            3 => (0..5usize, 0..48u64, any::<u8>()).prop_map(|(s, at, v)| Step::Write(s, at, v)),
            1 => Just(Step::Clear),
            // The same load again, as the steps of a training program repeat it.
            2 => (1..10u64, 1..4u64).prop_map(|(len, rows)| Step::Copy((0, 2, 2 * len), (1, 0, len), len, rows, true)),
        ]
    }

    proptest! {
        /// Any sequence of copies, writes and clears reads back as a plain byte-array model
        /// would (copies row by row, in order), whatever loads were deferred, and counts every
        /// row's non-zeros as they are, whatever counts were remembered.
        #[test]
        fn memory_reads_as_a_plain_model(steps in proptest::collection::vec(step(), 1..40)) {
            let sizes = [64usize, 48, 48, 32, 16];
            let mut m = Memory::new(Dram::new(sizes[0]), Buffers::new([48, 48, 32, 16]));
            let mut model: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0; n]).collect();
            for (i, byte) in model[0].iter_mut().enumerate() {
                *byte = i as u8 + 1;
            }
            m.bytes_mut("x", Space::Dram, 0, 64).unwrap().copy_from_slice(&model[0]);
            for st in steps {
                match st {
                    Step::Copy(f, t, len, rows, counted) => {
                        let (from, to) = (side("s", SPACES[f.0], f.1, f.2), side("d", SPACES[t.0], t.1, t.2));
                        let fits = |(sp, start, stride): (usize, u64, u64)| {
                            start + (rows - 1) * stride + len <= sizes[sp] as u64
                        };
                        let mut counts = Vec::new();
                        let dtype = counted.then_some(DType::F16);
                        let ok = m.copy_rows(from, to, (len, rows), dtype, |_, z| counts.push(z)).is_ok();
                        prop_assert_eq!(ok, fits(f) && fits(t));
                        let mut want = Vec::new();
                        for r in (0..rows).filter(|_| ok) {
                            let (a, b) = ((f.1 + r * f.2) as usize, (t.1 + r * t.2) as usize);
                            let row = model[f.0][a..a + len as usize].to_vec();
                            let nonzero = row.chunks_exact(2).filter(|c| c[0] != 0 || c[1] & 0x7F != 0);
                            want.push(if counted { nonzero.count() as u64 } else { 0 });
                            model[t.0][b..b + len as usize].copy_from_slice(&row);
                        }
                        prop_assert_eq!(counts, want);
                    }
                    Step::Write(sp, at, v) => {
                        if let Ok(bytes) = m.bytes_mut("x", SPACES[sp], at, 1) {
                            bytes[0] = v;
                            model[sp][at as usize] = v;
                        }
                    }
                    Step::Clear => {
                        m.clear_buffers();
                        model[1..].iter_mut().for_each(|b| b.fill(0));
                    }
                }
                for (sp, want) in model.iter().enumerate() {
                    let got = m.bytes("r", SPACES[sp], 0, want.len() as u64).unwrap();
                    prop_assert_eq!(&*got, &want[..], "{:?}", SPACES[sp]);
                }
            }
        }
    }

    #[test]
    fn f16_copies_count_as_they_copy() {
        let mut state = 3u32;
        // Codes of ±0, NaN, subnormals and ordinary values, in runs that cross 64-byte blocks,
        // and rows with an odd last byte.
        let codes = [0x0000u16, 0x8000, 0x7E00, 0x0001, 0x8001, 0x3C00, 0xBC00];
        for len in [0usize, 1, 2, 63, 64, 65, 130, 640, 1001] {
            let src: Vec<u8> = (0..len.div_ceil(2))
                .flat_map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    codes[(state >> 16) as usize % codes.len()].to_le_bytes()
                })
                .take(len)
                .collect();
            let mut dst = vec![0xEEu8; len];
            let nonzero = copy_counting_f16(&mut dst, &src);
            assert_eq!(dst, src, "{len} bytes");
            let want = src
                .chunks_exact(2)
                .filter(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7FFF != 0)
                .count() as u64;
            assert_eq!(nonzero, want, "{len} bytes");
            assert_eq!(count_nonzero_raw(DType::F16, &src, len / 2), want, "{len} bytes");
        }
        // Through a strided transfer: every row's count.
        let mut m = mem();
        let halves = [0x3C00u16, 0, 0x8000, 0x7E00, 1, 0, 0, 0x4000];
        let bytes: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
        m.bytes_mut("x", Space::Dram, 0, 16)
            .unwrap()
            .copy_from_slice(&bytes);
        let (s, d) = (side("s", Space::Dram, 0, 4), side("d", Space::Ibuf, 2, 3));
        let mut counts = Vec::new();
        m.copy_rows(s, d, (4, 4), Some(DType::F16), |_, z| counts.push(z))
            .unwrap();
        assert_eq!(counts, [1, 1, 1, 1]);
        // Rows overlap at the destination (stride 3 < 4 bytes): each row as copied, in order.
        assert_eq!(
            *m.bytes("b", Space::Ibuf, 2, 13).unwrap(),
            [0x00, 0x3C, 0x00, 0x00, 0x80, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40]
        );
    }

    #[test]
    fn copies_between_and_within_spaces() {
        let mut m = mem();
        m.bytes_mut("x", Space::Dram, 0, 4)
            .unwrap()
            .copy_from_slice(&[1, 2, 3, 4]);
        let cases = [
            ((Space::Dram, 0), (Space::Obuf, 8), 4, &[1, 2, 3, 4][..]),
            ((Space::Obuf, 8), (Space::Ibuf, 0), 4, &[1, 2, 3, 4]),
            ((Space::Ibuf, 0), (Space::Gbuf, 12), 4, &[1, 2, 3, 4]),
            ((Space::Gbuf, 12), (Space::Dram, 62), 2, &[1, 2]),
            ((Space::Dram, 1), (Space::Dram, 0), 3, &[2, 3, 4]),
        ];
        for (from, to, len, want) in cases {
            assert_eq!(
                copy_one(&mut m, from, to, len).unwrap(),
                want,
                "{from:?} -> {to:?}"
            );
        }
        assert!(matches!(
            copy_one(&mut m, (Space::Dram, 0), (Space::Wbuf, 14), 4),
            Err(FaultKind::OutOfBounds { field: "d", .. })
        ));
        assert_eq!(count_nonzero_raw(DType::B1, &[0xFF, 0b1011_0110], 13), 8 + 3);
    }

    #[test]
    fn copies_strided_rows_and_faults_before_copying() {
        let mut m = mem();
        m.bytes_mut("x", Space::Dram, 0, 12)
            .unwrap()
            .copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let mut seen = Vec::new();
        // Two bytes of every fourth DRAM byte, packed in obuf; then back to back both ways.
        let (s, d) = (side("s", Space::Dram, 0, 4), side("d", Space::Obuf, 0, 2));
        m.copy_rows(s, d, (2, 3), None, |r, _| seen.push(r.to_vec()))
            .unwrap();
        assert_eq!(seen, [[1, 2], [5, 6], [9, 10]]);
        assert_eq!(*m.bytes("o", Space::Obuf, 0, 6).unwrap(), [1, 2, 5, 6, 9, 10]);
        seen.clear();
        let (s, d) = (side("s", Space::Obuf, 0, 3), side("d", Space::Ibuf, 1, 3));
        m.copy_rows(s, d, (3, 2), None, |r, _| seen.push(r.to_vec()))
            .unwrap();
        assert_eq!(seen, [[1, 2, 5], [6, 9, 10]]);
        assert_eq!(*m.bytes("i", Space::Ibuf, 0, 7).unwrap(), [0, 1, 2, 5, 6, 9, 10]);
        // Rows 2 on fall off the end of wbuf (16 bytes): nothing is copied, row 2 is reported.
        let before = m.clone();
        let (s, d) = (side("s", Space::Dram, 0, 1), side("d", Space::Wbuf, 4, 5));
        let fault = m.copy_rows(s, d, (4, 4), None, |_, _| {}).unwrap_err();
        assert!(matches!(
            fault,
            FaultKind::OutOfBounds {
                field: "d",
                start: 14,
                end: 18,
                size: 16,
                ..
            }
        ));
        assert_eq!(m, before);
        // The source is checked first when both sides fail at the same row; addresses that
        // overflow fault at row 0.
        let (s, d) = (side("s", Space::Wbuf, 8, 4), side("d", Space::Obuf, 0, 8));
        let fault = m.copy_rows(s, d, (4, 3), None, |_, _| {}).unwrap_err();
        assert!(matches!(
            fault,
            FaultKind::OutOfBounds {
                field: "s",
                start: 16,
                ..
            }
        ));
        let (s, d) = (
            side("s", Space::Dram, u64::MAX - 1, 1),
            side("d", Space::Obuf, 0, 1),
        );
        let fault = m.copy_rows(s, d, (4, 3), None, |_, _| {}).unwrap_err();
        assert!(matches!(fault, FaultKind::OutOfBounds { field: "s", .. }));
        assert_eq!(m, before);
    }

    #[test]
    fn negative_zero_counts_as_zero() {
        assert_eq!(count_nonzero_raw(DType::F32, &(-0.0f32).to_le_bytes(), 1), 0);
        assert_eq!(count_nonzero_raw(DType::F32, &f32::NAN.to_le_bytes(), 1), 1);
    }
}
