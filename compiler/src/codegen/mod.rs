//! Code generation: a `trn` module ([`crate::lower`]) to a Trainer [`Program`] (and `.tbin`
//! bytes): instructions through the ISA's instruction table (field kinds decide how each
//! attribute is encoded), initializers from the weight table, the tensor table and metadata.
//! Deterministic: the same module gives byte-identical output.

use crate::ir::{Attribute, Module, OpId, TensorData};
use crate::lower::emit::{FieldValue, TrnInstr};
use crate::lower::plan::Init;
use crate::lower::Lowered;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use trainer_isa::names::{EnumDef, FlagDef};
use trainer_isa::{
    DType, FieldKind, Instr, NamedEnum, Opcode, Operand, Program, Role, Segment, Space, TensorEntry, Value,
    TABLE,
};

/// A code-generation error.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// The module is not a lowered `trn` program.
    #[error("no `trn.program` in the module (run the lowering first)")]
    NoProgram,
    /// An instruction or tensor that does not fit the ISA.
    #[error("{0}")]
    Invalid(String),
}

fn bad(msg: impl Into<String>) -> CodegenError {
    CodegenError::Invalid(msg.into())
}

fn parse_enum<T: NamedEnum>(s: &str, what: &str) -> Result<T, CodegenError> {
    T::DEF
        .code_of(s)
        .and_then(T::from_code)
        .ok_or_else(|| bad(format!("unknown {what} `{s}`")))
}

/// Parses an operand in assembly form `space:dtype@addr`.
pub fn parse_operand(s: &str) -> Result<Operand, CodegenError> {
    if s == "none" {
        return Ok(Operand::NONE);
    }
    let err = || bad(format!("malformed operand `{s}`"));
    let (space, rest) = s.split_once(':').ok_or_else(err)?;
    let (dtype, addr) = rest.split_once('@').ok_or_else(err)?;
    let addr = match addr.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16),
        None => addr.parse(),
    }
    .map_err(|_| err())?;
    Ok(Operand::new(
        parse_enum::<Space>(space, "space")?,
        parse_enum::<DType>(dtype, "dtype")?,
        addr,
    ))
}

fn enum_code(e: &EnumDef, s: &str) -> Option<u8> {
    e.code_of(s)
}

fn flag_bits(f: &FlagDef, s: &str) -> Option<u8> {
    if s == "none" {
        return Some(0);
    }
    s.split('+').try_fold(0u8, |acc, n| f.bit_of(n).map(|b| acc | b))
}

/// The ISA instruction of a `trn.<mnemonic>` op, fields from its attributes via the table.
pub fn instr_of(m: &Module, op: OpId) -> Result<Instr, CodegenError> {
    let o = m.op(op);
    let mn = o
        .name()
        .strip_prefix("trn.")
        .ok_or_else(|| bad(format!("`{}` is not a trn instruction", o.name())))?;
    let code = Opcode::from_mnemonic(mn).ok_or_else(|| bad(format!("unknown instruction `{mn}`")))?;
    encode(code, |f| o.attr(f).map(FieldRef::Attr))
}

/// The ISA instruction of a lowered instruction (as [`instr_of`] of its `trn` op).
pub fn instr_of_trn(i: &TrnInstr, opcodes: &Opcodes) -> Result<Instr, CodegenError> {
    let code = opcodes.get(i.mnemonic)?;
    // The lowering mostly lists fields in table order: search on from the last one found.
    let mut next = 0;
    let n = i.fields.len();
    encode(code, |f| {
        let k = (0..n).map(|k| (next + k) % n).find(|&k| i.fields[k].0 == f)?;
        next = k + 1;
        Some(FieldRef::Lowered(&i.fields[k].1))
    })
}

/// Opcodes by mnemonic (the instruction table as a hash map).
#[derive(Debug)]
pub struct Opcodes(HashMap<&'static str, Opcode>);

impl Default for Opcodes {
    fn default() -> Self {
        Opcodes(TABLE.iter().map(|d| (d.mnemonic, d.op)).collect())
    }
}

impl Opcodes {
    fn get(&self, mn: &str) -> Result<Opcode, CodegenError> {
        self.0
            .get(mn)
            .copied()
            .ok_or_else(|| bad(format!("unknown instruction `{mn}`")))
    }
}

/// A field of an instruction: an attribute of a `trn` op or a value of a lowered instruction.
#[derive(Clone, Copy)]
enum FieldRef<'a> {
    Attr(&'a Attribute),
    Lowered(&'a FieldValue),
}

impl<'a> FieldRef<'a> {
    fn int(self) -> Option<i64> {
        match self {
            FieldRef::Attr(a) => a.as_int(),
            FieldRef::Lowered(FieldValue::Int(v)) => Some(*v),
            FieldRef::Lowered(_) => None,
        }
    }

    /// A number (integers convert).
    fn float(self) -> Option<f64> {
        match self {
            FieldRef::Attr(a) => a.as_f64(),
            FieldRef::Lowered(FieldValue::Float(v)) => Some(*v),
            FieldRef::Lowered(FieldValue::Int(v)) => Some(*v as f64),
            FieldRef::Lowered(_) => None,
        }
    }

    fn name(self) -> Option<&'a str> {
        match self {
            FieldRef::Attr(a) => a.as_str(),
            FieldRef::Lowered(FieldValue::Name(n)) => Some(n.as_str()),
            FieldRef::Lowered(_) => None,
        }
    }

    /// The operand (`Ok(None)`: not an operand; an error: a malformed operand string).
    fn operand(self) -> Result<Option<Operand>, CodegenError> {
        match self {
            FieldRef::Attr(a) => a.as_str().map(parse_operand).transpose(),
            FieldRef::Lowered(FieldValue::Operand(o)) => Ok(Some(*o)),
            FieldRef::Lowered(_) => Ok(None),
        }
    }
}

/// Instruction `code` with its fields looked up by name through the instruction table.
fn encode<'a>(
    code: Opcode,
    mut field: impl FnMut(&str) -> Option<FieldRef<'a>>,
) -> Result<Instr, CodegenError> {
    let def = code.def();
    let mn = def.mnemonic;
    let mut args = Vec::with_capacity(def.fields.len());
    for f in def.fields {
        let a = field(f.name);
        let wrong = || {
            bad(format!(
                "`{mn}` field `{}`: expected {}",
                f.name,
                f.kind.describe()
            ))
        };
        let v = match (f.kind, a) {
            (FieldKind::OptOperand, None) => Value::Operand(Operand::NONE),
            (FieldKind::Flags(_), None) => Value::Flags(0),
            (_, None) => return Err(bad(format!("`{mn}` lacks field `{}`", f.name))),
            (FieldKind::U8 | FieldKind::U16 | FieldKind::U32, Some(a)) => {
                Value::Int(a.int().and_then(|v| u32::try_from(v).ok()).ok_or_else(wrong)?)
            }
            (FieldKind::F32, Some(a)) => Value::from(a.float().ok_or_else(wrong)? as f32),
            (FieldKind::Enum(e), Some(a)) => {
                Value::Enum(a.name().and_then(|s| enum_code(e, s)).ok_or_else(wrong)?)
            }
            (FieldKind::Flags(fl), Some(a)) => {
                Value::Flags(a.name().and_then(|s| flag_bits(fl, s)).ok_or_else(wrong)?)
            }
            (FieldKind::Operand | FieldKind::OptOperand, Some(a)) => {
                Value::Operand(a.operand()?.ok_or_else(wrong)?)
            }
        };
        args.push(v);
    }
    Instr::new(code, args).map_err(|e| bad(e.to_string()))
}

/// Bytes of `values` stored as `dtype` (floats: f32 bits, f16 round-to-nearest-even).
fn encode_values(dtype: DType, values: &[f32]) -> Result<Vec<u8>, CodegenError> {
    Ok(match dtype {
        DType::F32 => {
            let mut b = Vec::with_capacity(values.len() * 4);
            for v in values {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b
        }
        DType::F16 => {
            let mut b = Vec::with_capacity(values.len() * 2);
            for &v in values {
                b.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
            }
            b
        }
        d => {
            return Err(bad(format!(
                "initializers of dtype {} are not supported",
                d.name()
            )))
        }
    })
}

/// Bytes of a tensor of `n` ones.
fn ones(dtype: DType, n: usize) -> Result<Vec<u8>, CodegenError> {
    Ok(match dtype {
        DType::B1 => {
            let mut b = vec![0xffu8; n.div_ceil(8)];
            let tail = n % 8;
            if let (Some(last), 1..) = (b.last_mut(), tail) {
                *last = (1u8 << tail) - 1;
            }
            b
        }
        DType::E4m3 => vec![0x38; n],
        DType::E5m2 => vec![0x3c; n],
        d => encode_values(d, &vec![1.0; n])?,
    })
}

/// Initial contents of a tensor-table entry.
enum TensorInit<'a> {
    /// Zero (no data segment).
    Zeros,
    /// All ones.
    Ones,
    /// The weight table entry of this name.
    Weight(&'a str),
}

/// The data segment of a tensor-table entry with initial contents `init` (`None`: zeros).
fn tensor_bytes(
    weights: &BTreeMap<String, TensorData>,
    entry: &TensorEntry,
    init: &TensorInit,
) -> Result<Option<Vec<u8>>, CodegenError> {
    let n: usize = entry.shape.iter().map(|&d| d as usize).product();
    Ok(match *init {
        TensorInit::Zeros => None,
        TensorInit::Ones => Some(ones(entry.dtype, n)?),
        TensorInit::Weight(w) => {
            let t = weights
                .get(w)
                .ok_or_else(|| bad(format!("no initializer for `{w}`")))?;
            if t.data.len() != n {
                return Err(bad(format!(
                    "initializer `{w}` has {} values, the tensor {n}",
                    t.data.len()
                )));
            }
            Some(encode_values(entry.dtype, &t.data)?)
        }
    })
}

/// Appends a tensor-table entry to `program`, with its data segment if it has one.
fn push_tensor(program: &mut Program, entry: TensorEntry, bytes: Option<Vec<u8>>) {
    if let Some(bytes) = bytes {
        program.data.push(Segment {
            addr: entry.addr,
            bytes,
        });
    }
    program.tensors.push(entry);
}

/// Completes `program`: data segments in address order, metadata (entry points, layer names,
/// precision, then `meta`), validation.
fn finish<'a>(
    mut program: Program,
    entries: Vec<(&str, usize)>,
    layers: impl Iterator<Item = &'a str>,
    precision: &str,
    meta: &[(String, String)],
) -> Result<Program, CodegenError> {
    program.data.sort_by_key(|s| s.addr);
    let mut keys = BTreeMap::new();
    for (name, start) in entries {
        keys.insert(format!("entry.{name}"), start.to_string());
    }
    for (i, l) in layers.enumerate() {
        keys.insert(format!("layer.{i}"), l.to_string());
    }
    keys.insert("precision".into(), precision.to_string());
    for (k, v) in meta {
        keys.insert(k.clone(), v.clone());
    }
    program.meta = keys.into_iter().collect();
    program.validate().map_err(|e| bad(e.to_string()))?;
    Ok(program)
}

/// Generates the program of a lowered program `l` whose weights are in `weights`, with metadata
/// `meta` appended: the same program as [`generate`] of its `trn` module, without building it.
pub fn generate_lowered(
    l: &Lowered,
    weights: &BTreeMap<String, TensorData>,
    meta: &[(String, String)],
) -> Result<Program, CodegenError> {
    let mut program = Program {
        dram_size: l.dram_size,
        ..Program::default()
    };
    let tensors: Vec<(TensorEntry, TensorInit)> = l
        .tensors
        .iter()
        .map(|t| {
            let entry = TensorEntry {
                name: t.name.clone(),
                role: t.role,
                dtype: t.loc.dtype,
                shape: t.loc.shape.iter().map(|&d| d as u32).collect(),
                addr: t.loc.addr,
            };
            let init = match &t.init {
                Init::Zeros => TensorInit::Zeros,
                Init::Ones => TensorInit::Ones,
                Init::Weight(w) => TensorInit::Weight(w),
            };
            (entry, init)
        })
        .collect();
    // Segments and instructions are encoded in parallel, collected in order (the first error in
    // program order is reported).
    let bytes: Vec<_> = tensors
        .par_iter()
        .map(|(entry, init)| tensor_bytes(weights, entry, init))
        .collect();
    for ((entry, _), b) in tensors.into_iter().zip(bytes) {
        push_tensor(&mut program, entry, b?);
    }
    let opcodes = Opcodes::default();
    let mut entries = Vec::new();
    program.code.reserve(l.entries.iter().map(|(_, c)| c.len()).sum());
    for (name, code) in &l.entries {
        entries.push((*name, program.code.len()));
        let instrs: Vec<_> = code.par_iter().map(|i| instr_of_trn(i, &opcodes)).collect();
        for i in instrs {
            program.code.push(i?);
        }
    }
    finish(
        program,
        entries,
        l.layers.iter().map(String::as_str),
        l.precision.name(),
        meta,
    )
}

/// Generates the program of the `trn` module `m`, with metadata `meta` appended.
pub fn generate(m: &Module, meta: &[(String, String)]) -> Result<Program, CodegenError> {
    let prog = m
        .block(m.body())
        .ops()
        .iter()
        .copied()
        .find(|&o| m.op(o).name() == "trn.program")
        .ok_or(CodegenError::NoProgram)?;
    let p = m.op(prog);
    let body = m.region(p.regions()[0]).blocks()[0];
    let mut program = Program {
        dram_size: p.attr("dram_size").and_then(Attribute::as_int).unwrap_or(0) as u64,
        ..Program::default()
    };
    let mut entries = Vec::new();
    for &op in m.block(body).ops() {
        let o = m.op(op);
        match o.name() {
            "trn.tensor" => {
                let s = |k: &str| {
                    o.attr(k)
                        .and_then(Attribute::as_str)
                        .ok_or_else(|| bad(format!("trn.tensor lacks `{k}`")))
                };
                let entry = TensorEntry {
                    name: s("name")?.to_string(),
                    role: parse_enum::<Role>(s("role")?, "role")?,
                    dtype: parse_enum::<DType>(s("dtype")?, "dtype")?,
                    shape: o
                        .attr("shape")
                        .and_then(Attribute::as_ints)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|d| d as u32)
                        .collect(),
                    addr: o.attr("addr").and_then(Attribute::as_int).unwrap_or(0) as u32,
                };
                let init = match s("init")? {
                    "ones" => TensorInit::Ones,
                    init => init
                        .strip_prefix("weight:")
                        .map_or(TensorInit::Zeros, TensorInit::Weight),
                };
                let bytes = tensor_bytes(&m.weights, &entry, &init)?;
                push_tensor(&mut program, entry, bytes);
            }
            "trn.entry" => {
                let name = o.attr("sym_name").and_then(Attribute::as_str).unwrap_or("main");
                entries.push((name, program.code.len()));
                let b = m.region(o.regions()[0]).blocks()[0];
                for &i in m.block(b).ops() {
                    program.code.push(instr_of(m, i)?);
                }
            }
            other => return Err(bad(format!("unexpected `{other}` in trn.program"))),
        }
    }
    let layers = match p.attr("layers") {
        Some(Attribute::Array(layers)) => layers.as_slice(),
        _ => &[],
    };
    finish(
        program,
        entries,
        layers.iter().map(|l| l.as_str().unwrap_or("")),
        p.attr("precision").and_then(Attribute::as_str).unwrap_or("fp32"),
        meta,
    )
}
