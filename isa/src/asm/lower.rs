//! Checks parsed items against the instruction table and builds the [`Program`].

use super::ast::{ArgValue, Head, Item, Span};
use super::{error_at, AsmError};
use crate::instr::{Instr, Value};
use crate::names::{EnumDef, FlagDef, NamedEnum};
use crate::operand::{DType, Operand, Space};
use crate::program::{Program, ProgramError, Role, Segment, TensorEntry};
use crate::table::{FieldKind, Opcode};

struct Lowerer<'s> {
    src: &'s str,
    program: Program,
    instr_spans: Vec<Span>,
    dram_span: Option<Span>,
}

/// Lowers parsed items of `src` to a validated program.
pub(super) fn lower(src: &str, items: Vec<Item>) -> Result<Program, AsmError> {
    let mut l = Lowerer {
        src,
        program: Program::default(),
        instr_spans: Vec::new(),
        dram_span: None,
    };
    for item in items {
        match &item.head {
            Head::Mnemonic(m) => {
                let instr = l.instr(m, &item)?;
                l.program.code.push(instr);
                l.instr_spans.push(item.span);
            }
            Head::Directive(d) => l.directive(d, &item)?,
        }
    }
    l.program.validate().map_err(|e| {
        let at = match e {
            ProgramError::UnmatchedEndloop(i)
            | ProgramError::UnclosedLoop(i)
            | ProgramError::LoopTooDeep(i) => l.instr_spans[i].0,
            _ => l.dram_span.map_or(0, |s| s.0),
        };
        error_at(src, at, e.to_string())
    })?;
    Ok(l.program)
}

fn parse_int(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn enum_value(def: &EnumDef, v: &ArgValue) -> Option<u8> {
    match v {
        ArgValue::Word(w) => def.code_of(w),
        _ => None,
    }
}

fn flag_value(def: &FlagDef, v: &ArgValue) -> Option<u8> {
    let ArgValue::Word(w) = v else { return None };
    if w == "none" {
        return Some(0);
    }
    w.split('+').try_fold(0u8, |acc, name| {
        def.bit_of(name).filter(|b| acc & b == 0).map(|b| acc | b)
    })
}

fn operand_value(v: &ArgValue) -> Option<Operand> {
    match v {
        ArgValue::Word(w) if w == "none" => Some(Operand::NONE),
        ArgValue::Operand(text) => {
            let (space, rest) = text.split_once(':')?;
            let (dtype, addr) = rest.split_once('@')?;
            let space = Space::ALL
                .iter()
                .copied()
                .find(|s| s.name() == space && *s != Space::None)?;
            let dtype = DType::ALL.iter().copied().find(|d| d.name() == dtype)?;
            Some(Operand::new(space, dtype, u32::try_from(parse_int(addr)?).ok()?))
        }
        _ => None,
    }
}

fn f32_value(v: &ArgValue) -> Option<u32> {
    let ArgValue::Num(text) = v else { return None };
    if text.starts_with("0x") || text.starts_with("0X") {
        return parse_int(text).and_then(|b| u32::try_from(b).ok());
    }
    text.parse::<f32>().ok().map(f32::to_bits)
}

/// Converts an argument to a field value of `kind`, or `None` if it does not fit.
fn field_value(kind: FieldKind, v: &ArgValue) -> Option<Value> {
    let int = |max: u64| match v {
        ArgValue::Num(t) => parse_int(t).filter(|&x| x <= max).map(|x| Value::Int(x as u32)),
        _ => None,
    };
    match kind {
        FieldKind::U8 => int(u8::MAX.into()),
        FieldKind::U16 => int(u16::MAX.into()),
        FieldKind::U32 => int(u32::MAX.into()),
        FieldKind::F32 => f32_value(v).map(Value::F32),
        FieldKind::Enum(e) => enum_value(e, v).map(Value::Enum),
        FieldKind::Flags(f) => flag_value(f, v).map(Value::Flags),
        FieldKind::Operand => operand_value(v).filter(|o| !o.is_none()).map(Value::Operand),
        FieldKind::OptOperand => operand_value(v).map(Value::Operand),
    }
}

fn expected(kind: FieldKind) -> String {
    match kind {
        FieldKind::U8 | FieldKind::U16 | FieldKind::U32 => format!("a {} integer", kind.describe()),
        FieldKind::F32 => "an f32 (decimal, or 0x bit pattern)".into(),
        FieldKind::Enum(e) => format!("one of {}", e.names.join(", ")),
        FieldKind::Flags(f) => format!("`none` or flags joined by `+` from {}", f.names.join(", ")),
        FieldKind::Operand => "an operand `space:dtype@address`".into(),
        FieldKind::OptOperand => "`none` or an operand `space:dtype@address`".into(),
    }
}

impl Lowerer<'_> {
    fn err(&self, span: Span, msg: impl Into<String>) -> AsmError {
        error_at(self.src, span.0, msg)
    }

    fn instr(&self, mnemonic: &str, item: &Item) -> Result<Instr, AsmError> {
        let op = Opcode::from_mnemonic(mnemonic)
            .ok_or_else(|| self.err(item.span, format!("unknown instruction `{mnemonic}`")))?;
        let def = op.def();
        let mut args: Vec<Option<Value>> = vec![None; def.fields.len()];
        for arg in &item.args {
            let Some(key) = &arg.key else {
                return Err(self.err(
                    arg.span,
                    format!("`{mnemonic}` arguments are written `field=value`"),
                ));
            };
            let i = def.field_index(key).ok_or_else(|| {
                let names: Vec<&str> = def.fields.iter().map(|f| f.name).collect();
                self.err(
                    arg.span,
                    format!("`{mnemonic}` has no field `{key}` (fields: {})", names.join(", ")),
                )
            })?;
            if args[i].is_some() {
                return Err(self.err(arg.span, format!("field `{key}` given twice")));
            }
            let kind = def.fields[i].kind;
            let v = field_value(kind, &arg.value)
                .ok_or_else(|| self.err(arg.span, format!("field `{key}`: expected {}", expected(kind))))?;
            args[i] = Some(v);
        }
        let args = def
            .fields
            .iter()
            .zip(args)
            .map(|(f, v)| match (v, f.kind) {
                (Some(v), _) => Ok(v),
                (None, FieldKind::OptOperand) => Ok(Value::Operand(Operand::NONE)),
                (None, FieldKind::Flags(_)) => Ok(Value::Flags(0)),
                (None, _) => Err(self.err(item.span, format!("`{mnemonic}` needs field `{}`", f.name))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Instr::new(op, args).map_err(|e| self.err(item.span, e.to_string()))
    }

    fn directive(&mut self, name: &str, item: &Item) -> Result<(), AsmError> {
        match name {
            "dram" => self.dram(item),
            "meta" => self.meta(item),
            "tensor" => self.tensor(item),
            "data" => self.data(item),
            _ => Err(self.err(
                item.span,
                format!("unknown directive `.{name}` (known: .dram .meta .tensor .data)"),
            )),
        }
    }

    fn positional<'a>(&self, item: &'a Item, usage: &str) -> Result<Vec<&'a ArgValue>, AsmError> {
        match item.args.iter().find(|a| a.key.is_some()) {
            Some(a) => Err(self.err(a.span, format!("usage: {usage}"))),
            None => Ok(item.args.iter().map(|a| &a.value).collect()),
        }
    }

    fn dram(&mut self, item: &Item) -> Result<(), AsmError> {
        const USAGE: &str = ".dram SIZE";
        let size = match self.positional(item, USAGE)?.as_slice() {
            [ArgValue::Num(t)] => {
                parse_int(t).ok_or_else(|| self.err(item.span, "DRAM size out of range"))?
            }
            _ => return Err(self.err(item.span, format!("usage: {USAGE}"))),
        };
        if self.dram_span.is_some() {
            return Err(self.err(item.span, "`.dram` given twice"));
        }
        self.dram_span = Some(item.span);
        self.program.dram_size = size;
        Ok(())
    }

    fn meta(&mut self, item: &Item) -> Result<(), AsmError> {
        const USAGE: &str = ".meta \"key\" \"value\"";
        match self.positional(item, USAGE)?.as_slice() {
            [ArgValue::Str(k), ArgValue::Str(v)] => {
                self.program.meta.push((k.clone(), v.clone()));
                Ok(())
            }
            _ => Err(self.err(item.span, format!("usage: {USAGE}"))),
        }
    }

    fn data(&mut self, item: &Item) -> Result<(), AsmError> {
        const USAGE: &str = ".data ADDRESS x\"hex bytes\" …";
        let args = self.positional(item, USAGE)?;
        let Some((ArgValue::Num(t), chunks)) = args.split_first().map(|(a, r)| (*a, r)) else {
            return Err(self.err(item.span, format!("usage: {USAGE}")));
        };
        let addr = parse_int(t)
            .and_then(|a| u32::try_from(a).ok())
            .ok_or_else(|| self.err(item.span, "data address must fit in u32"))?;
        let mut bytes = Vec::new();
        for c in chunks {
            match c {
                ArgValue::Hex(b) => bytes.extend_from_slice(b),
                _ => return Err(self.err(item.span, format!("usage: {USAGE}"))),
            }
        }
        self.program.data.push(Segment { addr, bytes });
        Ok(())
    }

    fn tensor(&mut self, item: &Item) -> Result<(), AsmError> {
        const USAGE: &str = ".tensor \"name\" role=ROLE dtype=DTYPE shape=[d, …] addr=ADDRESS";
        let usage = || self.err(item.span, format!("usage: {USAGE}"));
        let (first, rest) = item.args.split_first().ok_or_else(usage)?;
        let (None, ArgValue::Str(name)) = (&first.key, &first.value) else {
            return Err(usage());
        };
        let (mut role, mut dtype, mut shape, mut addr) = (None, None, None, None);
        for a in rest {
            let bad = |what: &str| self.err(a.span, format!("expected {what}"));
            match (a.key.as_deref(), &a.value) {
                (Some("role"), ArgValue::Word(w)) => {
                    role = Some(
                        Role::ALL
                            .iter()
                            .copied()
                            .find(|r| r.name() == w)
                            .ok_or_else(|| bad(&format!("a role: {}", Role::DEF.names.join(", "))))?,
                    )
                }
                (Some("dtype"), ArgValue::Word(w)) => {
                    dtype = Some(
                        DType::ALL
                            .iter()
                            .copied()
                            .find(|d| d.name() == w)
                            .ok_or_else(|| bad(&format!("a dtype: {}", DType::DEF.names.join(", "))))?,
                    )
                }
                (Some("shape"), ArgValue::List(dims)) => {
                    let parsed = dims
                        .iter()
                        .map(|(t, s)| {
                            parse_int(t)
                                .and_then(|d| u32::try_from(d).ok())
                                .ok_or_else(|| self.err(*s, "dimension must fit in u32"))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    shape = Some(parsed)
                }
                (Some("addr"), ArgValue::Num(t)) => {
                    addr = Some(
                        parse_int(t)
                            .and_then(|a| u32::try_from(a).ok())
                            .ok_or_else(|| bad("a u32 address"))?,
                    )
                }
                _ => return Err(self.err(a.span, format!("usage: {USAGE}"))),
            }
        }
        let (Some(role), Some(dtype), Some(shape), Some(addr)) = (role, dtype, shape, addr) else {
            return Err(usage());
        };
        self.program.tensors.push(TensorEntry {
            name: name.clone(),
            role,
            dtype,
            shape,
            addr,
        });
        Ok(())
    }
}
