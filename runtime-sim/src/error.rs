//! Errors of the simulator: load-time rejections and run-time faults.

use thiserror::Error;
use trainer_isa::{Instr, TbinError};

/// Why an instruction cannot execute. Carried inside a [`Fault`] with the pc and mnemonic.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FaultKind {
    /// An operand access outside its memory space.
    #[error("operand `{field}` ({space} bytes {start:#x}..{end:#x}) lies outside the {size}-byte {space}")]
    OutOfBounds {
        /// Field name of the operand.
        field: &'static str,
        /// Memory space name.
        space: &'static str,
        /// First byte accessed.
        start: u64,
        /// One past the last byte accessed.
        end: u64,
        /// Size of the space.
        size: u64,
    },
    /// An operand in a space the instruction does not allow.
    #[error("operand `{field}` may not be in space `{space}`: {why}")]
    BadSpace {
        /// Field name of the operand.
        field: &'static str,
        /// Memory space name.
        space: &'static str,
        /// Which spaces are allowed.
        why: &'static str,
    },
    /// An operand with a dtype the instruction does not allow.
    #[error("operand `{field}` may not have dtype `{dtype}`: {why}")]
    BadDtype {
        /// Field name of the operand.
        field: &'static str,
        /// Element type name.
        dtype: &'static str,
        /// Which dtypes are allowed.
        why: &'static str,
    },
    /// Shape or parameter fields that make no sense.
    #[error("invalid shape: {0}")]
    BadShape(String),
    /// `tok.wait` found its counter at zero: the timing model would deadlock.
    #[error("deadlock: token {0} is waited for but was never signalled")]
    Deadlock(u8),
    /// A label outside `0..C` or another bad data value.
    #[error("bad data: {0}")]
    BadData(String),
    /// The instruction budget (`--max-instructions`) is exhausted.
    #[error("instruction limit of {0} reached")]
    InstructionLimit(u64),
}

/// A run-time fault: the program stops at `pc` with a reason. Never a panic.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("fault at pc {pc} (`{mnemonic}`): {kind}")]
pub struct Fault {
    /// Index of the faulting instruction in the code.
    pub pc: usize,
    /// Its mnemonic.
    pub mnemonic: &'static str,
    /// Why.
    pub kind: FaultKind,
}

/// Errors loading a program or configuring a simulator.
#[derive(Debug, Error)]
pub enum SimError {
    /// The `.tbin` bytes are malformed.
    #[error("cannot read program: {0}")]
    Tbin(#[from] TbinError),
    /// An instruction that is statically invalid (wrong operand space, bad shape, ...).
    #[error("instruction {pc} (`{text}`) is invalid: {kind}")]
    Invalid {
        /// Index of the instruction.
        pc: usize,
        /// Its disassembly.
        text: String,
        /// Why.
        kind: FaultKind,
    },
    /// No tensor of this name in the program's tensor table.
    #[error("no tensor named `{0}` in the program")]
    UnknownTensor(String),
    /// A tensor access that does not fit.
    #[error("tensor `{name}`: {why}")]
    Tensor {
        /// Tensor name.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// No metadata `entry.<name>` (or not a valid instruction index).
    #[error("the program has no valid entry `{0}` (metadata `entry.{0}`)")]
    UnknownEntry(String),
    /// A run-time fault.
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl SimError {
    /// A static-validation error for instruction `pc`.
    pub(crate) fn invalid(pc: usize, instr: &Instr, kind: FaultKind) -> Self {
        SimError::Invalid {
            pc,
            text: instr.def().mnemonic.to_string(),
            kind,
        }
    }
}
