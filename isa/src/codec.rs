//! Binary encoding of instructions: opcode byte, then each field at its table width, little-endian.

use crate::instr::{value_fits, Instr, Value};
use crate::operand::Operand;
use crate::table::{FieldKind, Opcode};
use thiserror::Error;

/// Why bytes do not decode to an instruction.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The opcode byte is not in the table.
    #[error("unknown opcode {byte:#04x} at code offset {offset}")]
    UnknownOpcode { byte: u8, offset: usize },
    /// The instruction runs past the end of the code.
    #[error("`{mnemonic}` at code offset {offset} is truncated ({need} bytes needed, {have} left)")]
    Truncated {
        mnemonic: &'static str,
        offset: usize,
        need: usize,
        have: usize,
    },
    /// A field holds an invalid value.
    #[error("`{mnemonic}` at code offset {offset}: invalid value in field `{field}`")]
    BadField {
        mnemonic: &'static str,
        offset: usize,
        field: &'static str,
    },
}

/// Appends the encoding of `instr` to `out`.
pub fn encode_into(instr: &Instr, out: &mut Vec<u8>) {
    out.push(instr.op() as u8);
    for (f, v) in instr.def().fields.iter().zip(instr.args()) {
        match *v {
            Value::Int(x) => out.extend_from_slice(&x.to_le_bytes()[..f.kind.size()]),
            Value::F32(b) => out.extend_from_slice(&b.to_le_bytes()),
            Value::Enum(c) | Value::Flags(c) => out.push(c),
            Value::Operand(o) => {
                out.push(o.tag());
                out.extend_from_slice(&o.addr.to_le_bytes());
            }
        }
    }
}

/// The encoding of `instr`.
pub fn encode(instr: &Instr) -> Vec<u8> {
    let mut out = Vec::with_capacity(instr.def().encoded_len());
    encode_into(instr, &mut out);
    out
}

/// Encodes a sequence of instructions back to back.
pub fn encode_all(code: &[Instr]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in code {
        encode_into(i, &mut out);
    }
    out
}

fn le(bytes: &[u8]) -> u32 {
    bytes.iter().rev().fold(0, |acc, &b| (acc << 8) | u32::from(b))
}

/// Decodes one instruction at `offset` of `code`; returns it and its encoded length.
/// Never panics; every byte pattern either decodes canonically or gives an error.
pub fn decode_at(code: &[u8], offset: usize) -> Result<(Instr, usize), DecodeError> {
    let rest = code.get(offset..).unwrap_or(&[]);
    let &byte = rest
        .first()
        .ok_or(DecodeError::UnknownOpcode { byte: 0, offset })?;
    let op = Opcode::from_byte(byte).ok_or(DecodeError::UnknownOpcode { byte, offset })?;
    let def = op.def();
    let need = def.encoded_len();
    if rest.len() < need {
        return Err(DecodeError::Truncated {
            mnemonic: def.mnemonic,
            offset,
            need,
            have: rest.len(),
        });
    }
    let mut pos = 1;
    let mut args = Vec::with_capacity(def.fields.len());
    for f in def.fields {
        let raw = &rest[pos..pos + f.kind.size()];
        pos += f.kind.size();
        let v = match f.kind {
            FieldKind::U8 | FieldKind::U16 | FieldKind::U32 => Some(Value::Int(le(raw))),
            FieldKind::F32 => Some(Value::F32(le(raw))),
            FieldKind::Enum(_) => Some(Value::Enum(raw[0])),
            FieldKind::Flags(_) => Some(Value::Flags(raw[0])),
            FieldKind::Operand | FieldKind::OptOperand => {
                Operand::from_parts(raw[0], le(&raw[1..])).map(Value::Operand)
            }
        };
        match v {
            Some(v) if value_fits(f.kind, v) => args.push(v),
            _ => {
                return Err(DecodeError::BadField {
                    mnemonic: def.mnemonic,
                    offset,
                    field: f.name,
                })
            }
        }
    }
    Ok((Instr::from_valid(op, args), need))
}

/// Decodes a whole code section.
pub fn decode_all(code: &[u8]) -> Result<Vec<Instr>, DecodeError> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < code.len() {
        let (i, len) = decode_at(code, offset)?;
        out.push(i);
        offset += len;
    }
    Ok(out)
}
