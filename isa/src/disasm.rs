//! The disassembler: prints a [`Program`] as `.tasm` text that assembles back to the same program.

use crate::asm::quote;
use crate::instr::{flags_text, Instr, Value};
use crate::names::NamedEnum;
use crate::program::Program;
use crate::table::FieldKind;
use std::fmt::Write;

/// Bytes per hex chunk in `.data` listings.
const DATA_CHUNK: usize = 32;

/// Prints an f32 so that the assembler reads back the same bits: shortest round-trip decimal for
/// finite values, the `0x` bit pattern otherwise.
pub fn f32_text(bits: u32) -> String {
    let f = f32::from_bits(bits);
    if f.is_finite() {
        format!("{f:?}")
    } else {
        format!("{bits:#010x}")
    }
}

/// One instruction in assembly form (fields in table order; absent optional operands omitted).
pub fn instr_text(instr: &Instr) -> String {
    let def = instr.def();
    let mut s = def.mnemonic.to_string();
    for (f, v) in def.fields.iter().zip(instr.args()) {
        let text = match (f.kind, *v) {
            (FieldKind::OptOperand, Value::Operand(o)) if o.is_none() => continue,
            (_, Value::Int(x)) => x.to_string(),
            (_, Value::F32(b)) => f32_text(b),
            (FieldKind::Enum(e), Value::Enum(c)) => {
                e.names.get(c as usize).copied().unwrap_or("?").to_string()
            }
            (FieldKind::Flags(d), Value::Flags(b)) => flags_text(d, b),
            (_, Value::Operand(o)) => o.to_string(),
            (_, v) => format!("{v:?}"),
        };
        let _ = write!(s, " {}={text}", f.name);
    }
    s
}

/// The whole program as `.tasm` text: container directives, then the code (loop bodies indented).
pub fn disassemble(p: &Program) -> String {
    let mut s = String::new();
    let _ = writeln!(s, ".dram {:#x}", p.dram_size);
    for (k, v) in &p.meta {
        let _ = writeln!(s, ".meta {} {}", quote(k), quote(v));
    }
    for t in &p.tensors {
        let dims: Vec<String> = t.shape.iter().map(u32::to_string).collect();
        let _ = writeln!(
            s,
            ".tensor {} role={} dtype={} shape=[{}] addr={:#x}",
            quote(&t.name),
            t.role.name(),
            t.dtype.name(),
            dims.join(", "),
            t.addr
        );
    }
    for seg in &p.data {
        let _ = write!(s, ".data {:#x}", seg.addr);
        for chunk in seg.bytes.chunks(DATA_CHUNK) {
            s.push_str("\n    x\"");
            for b in chunk {
                let _ = write!(s, "{b:02x}");
            }
            s.push('"');
        }
        s.push('\n');
    }
    let mut depth = 0usize;
    for i in &p.code {
        if i.op() == crate::Opcode::EndLoop {
            depth = depth.saturating_sub(1);
        }
        let _ = writeln!(s, "{}{}", "    ".repeat(depth), instr_text(i));
        if i.op() == crate::Opcode::Loop {
            depth += 1;
        }
    }
    s
}
