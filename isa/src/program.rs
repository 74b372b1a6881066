//! A whole Trainer program: code, DRAM image initializers, tensor table and metadata.

use crate::instr::Instr;
use crate::names::named_enum;
use crate::operand::DType;
use crate::table::Opcode;
use thiserror::Error;

/// Maximum nesting depth of `loop` … `endloop`.
pub const MAX_LOOP_DEPTH: usize = 4;
/// Largest DRAM image a program may declare (the address space of a u32 operand address).
pub const MAX_DRAM_SIZE: u64 = 1 << 32;
/// Largest tensor rank in the tensor table.
pub const MAX_RANK: usize = 8;

named_enum!(
    /// What a tensor-table entry is, for the runtime that feeds and reads the program.
    Role, "role" {
        /// Network input (fed per step).
        Input = "input",
        /// Labels (fed per step).
        Label = "label",
        /// Trainable parameter.
        Param = "param",
        /// Gradient.
        Grad = "grad",
        /// Optimizer or BN running state.
        State = "state",
        /// Pruning mask.
        Mask = "mask",
        /// Intermediate activation.
        Activation = "activation",
        /// Network output.
        Output = "output",
        /// Logits.
        Logits = "logits",
        /// Loss value.
        Loss = "loss",
        /// BN statistics / parameter block.
        Bnstat = "bnstat",
        /// Anything else.
        Other = "other",
    }
);

/// Bytes placed in DRAM at `addr` before the program runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// DRAM byte address.
    pub addr: u32,
    /// Contents.
    pub bytes: Vec<u8>,
}

/// A named tensor in DRAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// Name (UTF-8, unique in the program).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Element type.
    pub dtype: DType,
    /// Shape (outermost first).
    pub shape: Vec<u32>,
    /// DRAM byte address.
    pub addr: u32,
}

impl TensorEntry {
    /// Number of elements, or `None` on overflow.
    pub fn elements(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d.into()))
    }

    /// Size in bytes, or `None` on overflow.
    pub fn byte_len(&self) -> Option<u64> {
        self.elements()
            .filter(|&n| n <= u64::MAX / 64)
            .map(|n| self.dtype.bytes(n))
    }
}

/// A complete program (the decoded contents of a `.tbin`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Program {
    /// Size of the DRAM image in bytes.
    pub dram_size: u64,
    /// Instructions.
    pub code: Vec<Instr>,
    /// DRAM initializers (non-overlapping).
    pub data: Vec<Segment>,
    /// Tensor table.
    pub tensors: Vec<TensorEntry>,
    /// Metadata key/value pairs (unique keys), e.g. `machine`, compile options.
    pub meta: Vec<(String, String)>,
}

/// A structurally invalid program.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProgramError {
    /// DRAM size above [`MAX_DRAM_SIZE`].
    #[error("DRAM size {0} exceeds the maximum {MAX_DRAM_SIZE}")]
    DramTooLarge(u64),
    /// A data segment outside the DRAM image.
    #[error("data segment at {addr:#x} ({len} bytes) lies outside the {dram} byte DRAM image")]
    SegmentOutside { addr: u32, len: usize, dram: u64 },
    /// Two data segments overlap.
    #[error("data segments at {0:#x} and {1:#x} overlap")]
    SegmentOverlap(u32, u32),
    /// A tensor outside the DRAM image.
    #[error("tensor `{0}` lies outside the DRAM image")]
    TensorOutside(String),
    /// A tensor with too many dimensions.
    #[error("tensor `{0}` has rank above {MAX_RANK}")]
    RankTooLarge(String),
    /// Two tensors with one name.
    #[error("tensor name `{0}` appears twice")]
    DuplicateTensor(String),
    /// Two metadata entries with one key.
    #[error("metadata key `{0}` appears twice")]
    DuplicateMeta(String),
    /// `endloop` without `loop`.
    #[error("instruction {0}: `endloop` without a matching `loop`")]
    UnmatchedEndloop(usize),
    /// `loop` without `endloop`.
    #[error("instruction {0}: `loop` has no matching `endloop`")]
    UnclosedLoop(usize),
    /// Loops nested too deeply.
    #[error("instruction {0}: loops nested deeper than {MAX_LOOP_DEPTH}")]
    LoopTooDeep(usize),
}

impl Program {
    /// Checks the program's structure: sizes, segment and tensor bounds, unique names and keys,
    /// and balanced loops no deeper than [`MAX_LOOP_DEPTH`].
    pub fn validate(&self) -> Result<(), ProgramError> {
        if self.dram_size > MAX_DRAM_SIZE {
            return Err(ProgramError::DramTooLarge(self.dram_size));
        }
        let mut spans: Vec<(u64, u64, u32)> = Vec::with_capacity(self.data.len());
        for s in &self.data {
            let end = u64::from(s.addr) + s.bytes.len() as u64;
            if end > self.dram_size {
                return Err(ProgramError::SegmentOutside {
                    addr: s.addr,
                    len: s.bytes.len(),
                    dram: self.dram_size,
                });
            }
            spans.push((s.addr.into(), end, s.addr));
        }
        spans.sort_unstable();
        if let Some(w) = spans.windows(2).find(|w| w[0].1 > w[1].0) {
            return Err(ProgramError::SegmentOverlap(w[0].2, w[1].2));
        }
        let mut names = std::collections::HashSet::new();
        for t in &self.tensors {
            if t.shape.len() > MAX_RANK {
                return Err(ProgramError::RankTooLarge(t.name.clone()));
            }
            let fits = t
                .byte_len()
                .is_some_and(|len| u64::from(t.addr) + len <= self.dram_size);
            if !fits {
                return Err(ProgramError::TensorOutside(t.name.clone()));
            }
            if !names.insert(t.name.as_str()) {
                return Err(ProgramError::DuplicateTensor(t.name.clone()));
            }
        }
        let mut keys = std::collections::HashSet::new();
        for (k, _) in &self.meta {
            if !keys.insert(k.as_str()) {
                return Err(ProgramError::DuplicateMeta(k.clone()));
            }
        }
        loop_ends(&self.code).map(|_| ())
    }

    /// Value of metadata key `key`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Tensor-table entry called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// For each `loop` at index `i`, the index of its `endloop`; errors on unbalanced or too-deep loops.
pub fn loop_ends(code: &[Instr]) -> Result<Vec<(usize, usize)>, ProgramError> {
    let mut stack = Vec::new();
    let mut pairs = Vec::new();
    for (i, ins) in code.iter().enumerate() {
        match ins.op() {
            Opcode::Loop => {
                if stack.len() == MAX_LOOP_DEPTH {
                    return Err(ProgramError::LoopTooDeep(i));
                }
                stack.push(i);
            }
            Opcode::EndLoop => pairs.push((stack.pop().ok_or(ProgramError::UnmatchedEndloop(i))?, i)),
            _ => {}
        }
    }
    match stack.pop() {
        Some(i) => Err(ProgramError::UnclosedLoop(i)),
        None => Ok(pairs),
    }
}
