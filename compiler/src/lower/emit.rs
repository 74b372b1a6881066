//! The instruction stream of one entry while it is built: `trn` instructions (ISA mnemonic plus
//! field attributes), report tags, configuration registers, and DRAM ↔ buffer block copies.

use super::plan::Loc;
use crate::ir::Attribute;
use std::collections::BTreeMap;
use trainer_isa::{DType, Operand, Space};

/// One `trn` instruction: an ISA mnemonic and its fields by name (absent optional operands and
/// empty flag sets are left out).
#[derive(Clone, Debug, PartialEq)]
pub struct TrnInstr {
    /// ISA mnemonic (`conv`, `dma.load`, ...).
    pub mnemonic: &'static str,
    /// Field values.
    pub fields: Vec<Field>,
}

impl TrnInstr {
    /// An instruction with fields.
    pub fn new(mnemonic: &'static str, fields: Vec<Field>) -> Self {
        TrnInstr { mnemonic, fields }
    }
}

/// A named field of a [`TrnInstr`].
pub type Field = (&'static str, FieldValue);

/// The value of an instruction field, typed (no text is formatted or parsed per instruction;
/// [`FieldValue::to_attr`] gives the `trn` attribute).
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    /// An integer.
    Int(i64),
    /// An f32 value, held as the f64 of the f32 (so the bits are exact).
    Float(f64),
    /// An enumeration value or a flag set (`a+b`) by name.
    Name(Name),
    /// An operand.
    Operand(Operand),
}

impl FieldValue {
    /// The `trn` attribute of this value (names and operands in assembly form as strings).
    pub fn to_attr(&self) -> Attribute {
        match self {
            FieldValue::Int(v) => Attribute::Int(*v),
            FieldValue::Float(v) => Attribute::Float(*v),
            FieldValue::Name(n) => Attribute::str(n.as_str()),
            FieldValue::Operand(o) => Attribute::str(o.to_string()),
        }
    }
}

/// Bytes of a [`Name`] stored inline (every ISA enumeration value and flag set is shorter).
const NAME_INLINE: usize = 22;

/// A short string without a heap allocation (longer ones are boxed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Name {
    /// At most `NAME_INLINE` bytes.
    Inline {
        /// Length in bytes.
        len: u8,
        /// UTF-8 bytes, zero padded.
        bytes: [u8; NAME_INLINE],
    },
    /// A longer string.
    Boxed(Box<str>),
}

impl Name {
    /// The name `s`.
    pub fn new(s: &str) -> Name {
        if s.len() <= NAME_INLINE {
            let mut bytes = [0u8; NAME_INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Name::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Name::Boxed(s.into())
        }
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        match self {
            Name::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).expect("copied from a str")
            }
            Name::Boxed(s) => s,
        }
    }
}

/// An integer field.
pub fn int(name: &'static str, v: usize) -> Field {
    (name, FieldValue::Int(v as i64))
}

/// An enumeration or flag-set field (by name, flags as `a+b`).
pub fn name(name: &'static str, v: &str) -> Field {
    (name, FieldValue::Name(Name::new(v)))
}

/// An f32 field (stored as the f64 of the f32 value, so the bits are exact).
pub fn float(name: &'static str, v: f64) -> Field {
    (name, FieldValue::Float(f64::from(v as f32)))
}

/// An operand field.
pub fn operand(name: &'static str, o: Operand) -> Field {
    (name, FieldValue::Operand(o))
}

/// The entry being emitted: instructions plus the tag and register state already set.
#[derive(Debug, Default)]
pub struct Emitter {
    /// Instructions so far.
    pub code: Vec<TrnInstr>,
    tag: Option<(u16, &'static str)>,
    cfg: BTreeMap<&'static str, f64>,
}

/// Report phase of an `sdt` phase attribute.
pub fn phase(p: &str) -> &'static str {
    match p {
        "ff" => "ff",
        "bp" => "bp",
        "wg" => "wg",
        "bn" => "bn",
        "update" => "update",
        _ => "other",
    }
}

impl Emitter {
    /// Appends one instruction.
    pub fn push(&mut self, mnemonic: &'static str, fields: Vec<Field>) {
        self.code.push(TrnInstr::new(mnemonic, fields));
    }

    /// Appends instructions.
    pub fn extend(&mut self, v: impl IntoIterator<Item = TrnInstr>) {
        self.code.extend(v);
    }

    /// Attributes following work to `layer` (an id) and `phase`, emitting `tag` on change.
    pub fn tag(&mut self, layer: u16, phase: &'static str) {
        if self.tag != Some((layer, phase)) {
            self.tag = Some((layer, phase));
            self.push("tag", vec![int("layer", layer.into()), name("phase", phase)]);
        }
    }

    /// Sets f32 configuration register `reg` (emits `cfg.set` only on change).
    pub fn cfg(&mut self, reg: &'static str, v: f64) {
        let v = f64::from(v as f32);
        let reset = match reg {
            "loss_scale" => 1.0,
            "bn_momentum" => f64::from(0.1f32),
            "bn_eps" => f64::from(1e-5f32),
            _ => 0.0,
        };
        if self.cfg.get(reg).copied().unwrap_or(reset) != v {
            self.cfg.insert(reg, v);
            self.push("cfg.set", vec![name("reg", reg), float("value", v)]);
        }
    }
}

/// An on-chip operand.
pub fn buf(space: Space, dtype: DType, addr: u64) -> Operand {
    Operand::new(space, dtype, addr as u32)
}

/// Copies the sub-block `start .. start + ext` of DRAM tensor `t` to (`load`) or from a packed
/// row-major buffer block at `b`, as few 2-D `dma` instructions as the layout allows.
/// `ctr` names a density counter fed by the transfer (`none` for none).
pub fn copy_block(
    load: bool,
    t: &Loc,
    start: &[usize],
    ext: &[usize],
    b: Operand,
    ctr: &str,
) -> Result<Vec<TrnInstr>, String> {
    let dims = &t.shape;
    debug_assert_eq!(dims.len(), start.len());
    let rank = dims.len();
    // Innermost dimension from which the block is contiguous in DRAM.
    let mut k = rank.saturating_sub(1);
    while k > 0 && ext[k] == dims[k] {
        k -= 1;
    }
    let suffix = |from: usize| dims[from..].iter().product::<usize>();
    let run = if rank == 0 { 1 } else { ext[k] * suffix(k + 1) };
    // One dimension outside the run becomes the DMA's rows; the others are unrolled.
    let (rows, dstride) = if k > 0 { (ext[k - 1], suffix(k)) } else { (1, 0) };
    let outer: Vec<usize> = if k > 1 { (0..k - 1).collect() } else { vec![] };
    let bits = |elems: usize| t.dtype.bits(elems as u64);
    let byte = |elems: usize| -> Result<u32, String> {
        let b = bits(elems);
        if b % 8 != 0 {
            return Err(format!(
                "bitmap block of {elems} elements at an offset that is not byte aligned"
            ));
        }
        u32::try_from(b / 8).map_err(|_| "block too large".to_string())
    };
    let mut out = Vec::new();
    let count: usize = outer.iter().map(|&d| ext[d]).product();
    for flat in 0..count.max(1) {
        // Index of this unrolled copy in the outer dimensions.
        let mut rem = flat;
        let mut idx = vec![0usize; rank];
        for &d in outer.iter().rev() {
            idx[d] = rem % ext[d];
            rem /= ext[d];
        }
        let src_elem: usize = (0..rank).map(|d| (start[d] + idx[d]) * suffix(d + 1)).sum();
        let buf_elem: usize = outer
            .iter()
            .map(|&d| idx[d] * ext[d + 1..].iter().product::<usize>())
            .sum();
        let dram = Operand::new(Space::Dram, t.dtype, t.addr + byte(src_elem)?);
        let on = Operand::new(b.space, b.dtype, b.addr + byte(buf_elem)?);
        let fields = vec![
            name("fmt", "dense"),
            name("ar", "ar0"),
            name("ctr", ctr),
            int("rows", rows),
            int("row_bytes", byte(run)? as usize),
            int("dstride", byte(dstride)? as usize),
            int("bstride", byte(run)? as usize),
            operand("dram", dram),
            operand("buf", on),
        ];
        out.push(TrnInstr::new(if load { "dma.load" } else { "dma.store" }, fields));
    }
    Ok(out)
}

/// `dc.clear` of density counter `c`.
pub fn clear(c: &str) -> TrnInstr {
    TrnInstr::new("dc.clear", vec![name("ctr", c)])
}
