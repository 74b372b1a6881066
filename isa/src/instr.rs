//! Instructions: an opcode plus field values in table order, validated against the table.

use crate::names::{FlagDef, NamedEnum};
use crate::operand::Operand;
use crate::table::{FieldKind, InstrDef, Opcode};
use thiserror::Error;

/// The value of one instruction field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Value {
    /// Unsigned integer (for `u8`/`u16`/`u32` fields).
    Int(u32),
    /// f32 immediate, stored as its bit pattern (so equality is bit-exact).
    F32(u32),
    /// Enumeration code.
    Enum(u8),
    /// Flag bits.
    Flags(u8),
    /// Tensor operand.
    Operand(Operand),
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(v)
    }
}
impl From<u16> for Value {
    fn from(v: u16) -> Self {
        Value::Int(v.into())
    }
}
impl From<u8> for Value {
    fn from(v: u8) -> Self {
        Value::Int(v.into())
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::F32(v.to_bits())
    }
}
impl From<Operand> for Value {
    fn from(v: Operand) -> Self {
        Value::Operand(v)
    }
}

/// A field value that does not fit the table.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InstrError {
    /// The instruction has no field of this name.
    #[error("`{op}` has no field `{field}`")]
    UnknownField { op: &'static str, field: String },
    /// A required field was not given.
    #[error("`{op}` needs field `{field}`")]
    Missing { op: &'static str, field: &'static str },
    /// A value of the wrong kind or out of range.
    #[error("`{op}` field `{field}`: expected {expected}")]
    BadValue {
        op: &'static str,
        field: &'static str,
        expected: String,
    },
    /// Wrong number of field values.
    #[error("`{op}` has {expected} fields, got {got}")]
    Arity {
        op: &'static str,
        expected: usize,
        got: usize,
    },
}

/// Whether `v` is a valid value for a field of kind `kind`.
pub(crate) fn value_fits(kind: FieldKind, v: Value) -> bool {
    match (kind, v) {
        (FieldKind::U8, Value::Int(x)) => x <= u8::MAX.into(),
        (FieldKind::U16, Value::Int(x)) => x <= u16::MAX.into(),
        (FieldKind::U32, Value::Int(_)) | (FieldKind::F32, Value::F32(_)) => true,
        (FieldKind::Enum(e), Value::Enum(c)) => (c as usize) < e.names.len(),
        (FieldKind::Flags(f), Value::Flags(b)) => b & !f.valid_mask() == 0,
        (FieldKind::Operand, Value::Operand(o)) => !o.is_none(),
        (FieldKind::OptOperand, Value::Operand(_)) => true,
        _ => false,
    }
}

/// One instruction. Invariant: `args` matches the opcode's field list (count, kinds, ranges).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Instr {
    op: Opcode,
    args: Vec<Value>,
}

impl Instr {
    /// Builds an instruction from values in table order, validating each.
    pub fn new(op: Opcode, args: Vec<Value>) -> Result<Instr, InstrError> {
        let def = op.def();
        if args.len() != def.fields.len() {
            return Err(InstrError::Arity {
                op: def.mnemonic,
                expected: def.fields.len(),
                got: args.len(),
            });
        }
        for (f, v) in def.fields.iter().zip(&args) {
            if !value_fits(f.kind, *v) {
                return Err(InstrError::BadValue {
                    op: def.mnemonic,
                    field: f.name,
                    expected: f.kind.describe(),
                });
            }
        }
        Ok(Instr { op, args })
    }

    /// Wraps values already checked with [`value_fits`] field by field.
    pub(crate) fn from_valid(op: Opcode, args: Vec<Value>) -> Instr {
        Instr { op, args }
    }

    /// Starts a builder; optional operands default to `none` and flag sets to empty.
    pub fn build(op: Opcode) -> InstrBuilder {
        let args = op
            .def()
            .fields
            .iter()
            .map(|f| match f.kind {
                FieldKind::OptOperand => Some(Value::Operand(Operand::NONE)),
                FieldKind::Flags(_) => Some(Value::Flags(0)),
                _ => None,
            })
            .collect();
        InstrBuilder { op, args, err: None }
    }

    /// The opcode.
    pub fn op(&self) -> Opcode {
        self.op
    }

    /// The table row.
    pub fn def(&self) -> &'static InstrDef {
        self.op.def()
    }

    /// Field values in table order.
    pub fn args(&self) -> &[Value] {
        &self.args
    }

    /// Value of the field called `name`, if the instruction has it.
    pub fn get(&self, name: &str) -> Option<Value> {
        self.def().field_index(name).map(|i| self.args[i])
    }

    fn expect(&self, name: &str) -> Value {
        match self.get(name) {
            Some(v) => v,
            None => panic!("`{}` has no field `{name}`", self.def().mnemonic),
        }
    }

    /// Integer field `name`.
    ///
    /// # Panics
    /// If the instruction has no integer field `name` (a programming error, not bad input).
    pub fn u32(&self, name: &str) -> u32 {
        match self.expect(name) {
            Value::Int(x) => x,
            v => panic!("field `{name}` is not an integer: {v:?}"),
        }
    }

    /// f32 field `name`.
    ///
    /// # Panics
    /// If the instruction has no f32 field `name`.
    pub fn f32(&self, name: &str) -> f32 {
        match self.expect(name) {
            Value::F32(b) => f32::from_bits(b),
            v => panic!("field `{name}` is not an f32: {v:?}"),
        }
    }

    /// Operand field `name` (possibly [`Operand::NONE`]).
    ///
    /// # Panics
    /// If the instruction has no operand field `name`.
    pub fn operand(&self, name: &str) -> Operand {
        match self.expect(name) {
            Value::Operand(o) => o,
            v => panic!("field `{name}` is not an operand: {v:?}"),
        }
    }

    /// Flag bits of field `name` (see [`crate::names::flags`]).
    ///
    /// # Panics
    /// If the instruction has no flag field `name`.
    pub fn flags(&self, name: &str) -> u8 {
        match self.expect(name) {
            Value::Flags(b) => b,
            v => panic!("field `{name}` is not a flag set: {v:?}"),
        }
    }

    /// Whether flag field `name` has all bits of `bit` set.
    pub fn has_flag(&self, name: &str, bit: u8) -> bool {
        self.flags(name) & bit == bit
    }

    /// Enumeration field `name` as its Rust type.
    ///
    /// # Panics
    /// If the instruction has no field `name` of enumeration `T`.
    pub fn enum_<T: NamedEnum>(&self, name: &str) -> T {
        let i = self.def().field_index(name);
        let code = match (i.map(|i| (self.def().fields[i].kind, self.args[i])), T::DEF.name) {
            (Some((FieldKind::Enum(e), Value::Enum(c))), n) if e.name == n => c,
            _ => panic!(
                "`{}` has no `{}` field `{name}`",
                self.def().mnemonic,
                T::DEF.name
            ),
        };
        match T::from_code(code) {
            Some(v) => v,
            None => panic!("invalid code {code} in field `{name}`"),
        }
    }
}

/// Builder for [`Instr`]; errors are reported by [`InstrBuilder::finish`].
#[derive(Debug, Clone)]
pub struct InstrBuilder {
    op: Opcode,
    args: Vec<Option<Value>>,
    err: Option<InstrError>,
}

impl InstrBuilder {
    /// Sets field `name`.
    pub fn with(mut self, name: &str, v: impl Into<Value>) -> Self {
        match self.op.def().field_index(name) {
            Some(i) => self.args[i] = Some(v.into()),
            None => {
                self.err.get_or_insert(InstrError::UnknownField {
                    op: self.op.def().mnemonic,
                    field: name.to_string(),
                });
            }
        }
        self
    }

    /// Sets flag field `name` to the bits `bits`.
    pub fn flags(self, name: &str, bits: u8) -> Self {
        self.with(name, Value::Flags(bits))
    }

    /// Validates and returns the instruction.
    pub fn finish(self) -> Result<Instr, InstrError> {
        if let Some(e) = self.err {
            return Err(e);
        }
        let def = self.op.def();
        let args = def
            .fields
            .iter()
            .zip(self.args)
            .map(|(f, v)| {
                v.ok_or(InstrError::Missing {
                    op: def.mnemonic,
                    field: f.name,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Instr::new(self.op, args)
    }
}

/// Renders flag bits as `a+b`, or `none` when empty.
pub(crate) fn flags_text(def: &FlagDef, bits: u8) -> String {
    let names: Vec<&str> = def
        .names
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join("+")
    }
}
