//! The Trainer instruction set: instruction table, encoder/decoder, assembler/disassembler, `.tbin` container.
//!
//! - [`table`]: the one instruction table ([`TABLE`], [`Opcode`]) everything else derives from.
//! - [`instr`]: [`Instr`] (opcode + field values), typed accessors and a validated builder.
//! - [`codec`]: [`encode`] / [`decode_at`] / [`decode_all`].
//! - [`program`] and [`tbin`]: the whole program and its `.tbin` container.
//! - [`asm`] and [`disasm`]: the `.tasm` text format.

pub mod asm;
pub mod codec;
pub mod disasm;
pub mod instr;
pub mod names;
pub mod operand;
pub mod program;
pub mod table;
pub mod tbin;

pub use asm::{assemble, AsmError};
pub use codec::{decode_all, decode_at, encode, encode_all, DecodeError};
pub use disasm::disassemble;
pub use instr::{Instr, InstrBuilder, InstrError, Value};
pub use names::{flags, NamedEnum};
pub use operand::{DType, Operand, Space};
pub use program::{Program, ProgramError, Role, Segment, TensorEntry};
pub use table::{FieldDef, FieldKind, InstrDef, Opcode, Queue, TABLE};
pub use tbin::TbinError;
