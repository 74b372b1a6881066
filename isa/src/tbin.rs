//! The `.tbin` container: reader and writer (layout in `spec/tbin.md`).
//!
//! The reader checks every length, offset and count against the bytes that remain before using
//! it, never allocates more than the input's size implies, and accepts only the canonical
//! encoding (what [`write()`] produces), so `write(read(b)?) == b` for every accepted `b`.

use crate::codec::{decode_all, encode_all, DecodeError};
use crate::names::NamedEnum;
use crate::operand::DType;
use crate::program::{Program, ProgramError, Role, Segment, TensorEntry, MAX_RANK};
use thiserror::Error;

/// File magic.
pub const MAGIC: &[u8; 4] = b"TRNB";
/// Container version written and accepted.
pub const VERSION: u16 = 1;
/// Section kinds, in file order.
pub const SECTION_KINDS: [(u32, &str); 4] = [(1, "code"), (2, "data"), (3, "tensors"), (4, "meta")];
/// Size of the fixed header (before the section table).
pub const HEADER_LEN: usize = 24;
/// Size of one section-table entry.
pub const SECTION_ENTRY_LEN: usize = 20;

/// Why bytes are not a valid `.tbin` (or a program cannot be written).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TbinError {
    /// Wrong magic.
    #[error("not a .tbin file (bad magic)")]
    BadMagic,
    /// Unsupported version.
    #[error("unsupported .tbin version {0} (this tool reads version {VERSION})")]
    Version(u16),
    /// Input ends early.
    #[error("truncated: {what} at byte {offset} needs {need} bytes, {have} left")]
    Truncated {
        what: String,
        offset: u64,
        need: u64,
        have: u64,
    },
    /// A malformed header, section or entry.
    #[error("malformed {what} at byte {offset}: {why}")]
    Malformed { what: String, offset: u64, why: String },
    /// An instruction fails to decode.
    #[error("code section: {0}")]
    Code(#[from] DecodeError),
    /// The decoded program is structurally invalid.
    #[error("invalid program: {0}")]
    Program(#[from] ProgramError),
    /// A value does not fit the container's field width (writer).
    #[error("cannot write: {0}")]
    TooLarge(String),
}

/// A bounds-checked reader over one region of the file.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], base: u64) -> Self {
        Cursor { bytes, pos: 0, base }
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], TbinError> {
        if n > self.remaining() as u64 {
            return Err(TbinError::Truncated {
                what: what.to_string(),
                offset: self.offset(),
                need: n,
                have: self.remaining() as u64,
            });
        }
        let s = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn uint(&mut self, n: u64, what: &str) -> Result<u64, TbinError> {
        Ok(self
            .take(n, what)?
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn u8(&mut self, what: &str) -> Result<u8, TbinError> {
        Ok(self.uint(1, what)? as u8)
    }

    fn u16(&mut self, what: &str) -> Result<u16, TbinError> {
        Ok(self.uint(2, what)? as u16)
    }

    fn u32(&mut self, what: &str) -> Result<u32, TbinError> {
        Ok(self.uint(4, what)? as u32)
    }

    fn u64(&mut self, what: &str) -> Result<u64, TbinError> {
        self.uint(8, what)
    }

    fn malformed(&self, what: &str, why: impl Into<String>) -> TbinError {
        TbinError::Malformed {
            what: what.to_string(),
            offset: self.offset(),
            why: why.into(),
        }
    }

    fn string(&mut self, len: u64, what: &str) -> Result<String, TbinError> {
        let at = self.offset();
        let raw = self.take(len, what)?;
        String::from_utf8(raw.to_vec()).map_err(|_| TbinError::Malformed {
            what: what.to_string(),
            offset: at,
            why: "not valid UTF-8".into(),
        })
    }

    /// Reads an entry count and checks that `count` entries of at least `min_len` bytes fit.
    fn count(&mut self, min_len: u64, what: &str) -> Result<u32, TbinError> {
        let n = self.u32(what)?;
        if u64::from(n) * min_len > self.remaining() as u64 {
            return Err(self.malformed(
                what,
                format!("{n} entries cannot fit in {} bytes", self.remaining()),
            ));
        }
        Ok(n)
    }

    fn finish(&self, what: &str) -> Result<(), TbinError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.malformed(what, format!("{n} trailing bytes"))),
        }
    }
}

fn enum_code<T: NamedEnum>(c: &mut Cursor, what: &str) -> Result<T, TbinError> {
    let code = c.u8(what)?;
    T::from_code(code).ok_or_else(|| c.malformed(what, format!("invalid {} code {code}", T::DEF.name)))
}

/// Reads and validates a `.tbin` image.
pub fn read(bytes: &[u8]) -> Result<Program, TbinError> {
    let mut c = Cursor::new(bytes, 0);
    if c.take(4, "magic").map_err(|_| TbinError::BadMagic)? != MAGIC {
        return Err(TbinError::BadMagic);
    }
    let version = c.u16("version")?;
    if version != VERSION {
        return Err(TbinError::Version(version));
    }
    if c.u16("flags")? != 0 {
        return Err(c.malformed("header", "reserved flags are not zero"));
    }
    let dram_size = c.u64("dram size")?;
    let nsec = c.u32("section count")?;
    if nsec as usize != SECTION_KINDS.len() || c.u32("reserved")? != 0 {
        return Err(c.malformed("header", format!("expected {} sections", SECTION_KINDS.len())));
    }
    let mut next = (HEADER_LEN + SECTION_KINDS.len() * SECTION_ENTRY_LEN) as u64;
    let mut spans = [(0u64, 0u64); SECTION_KINDS.len()];
    for (span, (kind, name)) in spans.iter_mut().zip(SECTION_KINDS) {
        let k = c.u32("section kind")?;
        let off = c.u64("section offset")?;
        let len = c.u64("section length")?;
        if k != kind || off != next {
            return Err(c.malformed(
                "section table",
                format!("expected {name} section (kind {kind}) at byte {next}, found kind {k} at {off}"),
            ));
        }
        next = off
            .checked_add(len)
            .filter(|&e| e <= bytes.len() as u64)
            .ok_or_else(|| TbinError::Truncated {
                what: format!("{name} section"),
                offset: off,
                need: len,
                have: (bytes.len() as u64).saturating_sub(off),
            })?;
        *span = (off, next);
    }
    if next != bytes.len() as u64 {
        return Err(TbinError::Malformed {
            what: "file".into(),
            offset: next,
            why: format!("{} bytes after the last section", bytes.len() as u64 - next),
        });
    }
    // Every span was checked to lie within `bytes` above.
    let region = |i: usize| Cursor::new(&bytes[spans[i].0 as usize..spans[i].1 as usize], spans[i].0);
    let program = Program {
        dram_size,
        code: decode_all(region(0).bytes)?,
        data: read_data(region(1))?,
        tensors: read_tensors(region(2))?,
        meta: read_meta(region(3))?,
    };
    program.validate()?;
    Ok(program)
}

fn read_data(mut c: Cursor) -> Result<Vec<Segment>, TbinError> {
    let n = c.count(8, "data segment count")?;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let addr = c.u32("segment address")?;
        let len = c.u32("segment length")?;
        out.push(Segment {
            addr,
            bytes: c.take(len.into(), "segment bytes")?.to_vec(),
        });
    }
    c.finish("data section")?;
    Ok(out)
}

fn read_tensors(mut c: Cursor) -> Result<Vec<TensorEntry>, TbinError> {
    let n = c.count(9, "tensor count")?;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let len = c.u16("tensor name length")?;
        let name = c.string(len.into(), "tensor name")?;
        let role = enum_code::<Role>(&mut c, "tensor role")?;
        let dtype = enum_code::<DType>(&mut c, "tensor dtype")?;
        let rank = c.u8("tensor rank")?;
        if rank as usize > MAX_RANK {
            return Err(c.malformed("tensor rank", format!("rank {rank} above {MAX_RANK}")));
        }
        let shape = (0..rank)
            .map(|_| c.u32("tensor dimension"))
            .collect::<Result<Vec<_>, _>>()?;
        let addr = c.u32("tensor address")?;
        out.push(TensorEntry {
            name,
            role,
            dtype,
            shape,
            addr,
        });
    }
    c.finish("tensor section")?;
    Ok(out)
}

fn read_meta(mut c: Cursor) -> Result<Vec<(String, String)>, TbinError> {
    let n = c.count(6, "metadata count")?;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let klen = c.u16("metadata key length")?;
        let key = c.string(klen.into(), "metadata key")?;
        let vlen = c.u32("metadata value length")?;
        let value = c.string(vlen.into(), "metadata value")?;
        out.push((key, value));
    }
    c.finish("metadata section")?;
    Ok(out)
}

fn len_u16(s: &str, what: &str) -> Result<u16, TbinError> {
    u16::try_from(s.len()).map_err(|_| TbinError::TooLarge(format!("{what} longer than 65535 bytes")))
}

fn len_u32(n: usize, what: &str) -> Result<u32, TbinError> {
    u32::try_from(n).map_err(|_| TbinError::TooLarge(format!("{what} above 2^32-1")))
}

/// Encodes a program as a `.tbin` image; validates it first.
pub fn write(p: &Program) -> Result<Vec<u8>, TbinError> {
    p.validate()?;
    let code = encode_all(&p.code);

    let mut data = len_u32(p.data.len(), "segment count")?.to_le_bytes().to_vec();
    for s in &p.data {
        data.extend_from_slice(&s.addr.to_le_bytes());
        data.extend_from_slice(&len_u32(s.bytes.len(), "segment length")?.to_le_bytes());
        data.extend_from_slice(&s.bytes);
    }

    let mut tensors = len_u32(p.tensors.len(), "tensor count")?.to_le_bytes().to_vec();
    for t in &p.tensors {
        tensors.extend_from_slice(&len_u16(&t.name, "tensor name")?.to_le_bytes());
        tensors.extend_from_slice(t.name.as_bytes());
        tensors.extend_from_slice(&[t.role.code(), t.dtype.code(), t.shape.len() as u8]);
        for d in &t.shape {
            tensors.extend_from_slice(&d.to_le_bytes());
        }
        tensors.extend_from_slice(&t.addr.to_le_bytes());
    }

    let mut meta = len_u32(p.meta.len(), "metadata count")?.to_le_bytes().to_vec();
    for (k, v) in &p.meta {
        meta.extend_from_slice(&len_u16(k, "metadata key")?.to_le_bytes());
        meta.extend_from_slice(k.as_bytes());
        meta.extend_from_slice(&len_u32(v.len(), "metadata value")?.to_le_bytes());
        meta.extend_from_slice(v.as_bytes());
    }

    let sections = [code, data, tensors, meta];
    let mut out = Vec::with_capacity(
        HEADER_LEN + sections.len() * SECTION_ENTRY_LEN + sections.iter().map(Vec::len).sum::<usize>(),
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&p.dram_size.to_le_bytes());
    out.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut off = (HEADER_LEN + sections.len() * SECTION_ENTRY_LEN) as u64;
    for ((kind, _), s) in SECTION_KINDS.iter().zip(&sections) {
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        off += s.len() as u64;
    }
    for s in &sections {
        out.extend_from_slice(s);
    }
    Ok(out)
}
