//! The instruction table: the single source of truth for the encoder, decoder, assembler,
//! disassembler and `spec/isa.md`.
//!
//! One invocation of `instructions!` generates both the [`Opcode`] enum and [`TABLE`].
//! An instruction is encoded as its opcode byte followed by its fields in table order,
//! each at the width its [`FieldKind`] gives (little-endian).

use crate::names::{flags, AddrReg, Counter, DmaFmt, EnumDef, FlagDef, NamedEnum};
use crate::names::{CfgF32, CfgInt, Dataflow, Dir, Mode, Phase, PoolKind, Precision, QueueName};

/// Which hardware queue executes an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    /// DMA-load queue (DRAM → on-chip buffers).
    Load,
    /// DMA-store queue (on-chip buffers → DRAM).
    Store,
    /// Compute queue (PE array, vector, BN, mask and speculation units).
    Compute,
    /// Front-end: executed at dispatch, in program order (loops, registers, sync, configuration).
    Control,
}

impl Queue {
    /// Name used in the spec.
    pub fn name(self) -> &'static str {
        match self {
            Queue::Load => "dma-load",
            Queue::Store => "dma-store",
            Queue::Compute => "compute",
            Queue::Control => "control",
        }
    }
}

/// Kind (type and encoding) of an instruction field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Unsigned 8-bit integer (1 byte).
    U8,
    /// Unsigned 16-bit integer (2 bytes).
    U16,
    /// Unsigned 32-bit integer (4 bytes).
    U32,
    /// IEEE binary32 immediate (4 bytes, the bit pattern).
    F32,
    /// Enumeration (1 byte: the code), printed by name.
    Enum(&'static EnumDef),
    /// Flag set (1 byte: bit per flag), printed as `a+b` or `none`.
    Flags(&'static FlagDef),
    /// Required tensor operand (5 bytes: tag + u32 address).
    Operand,
    /// Optional tensor operand (5 bytes); absent = `none` (all-zero encoding). May be omitted in assembly.
    OptOperand,
}

impl FieldKind {
    /// Encoded size in bytes.
    pub fn size(self) -> usize {
        match self {
            FieldKind::U8 | FieldKind::Enum(_) | FieldKind::Flags(_) => 1,
            FieldKind::U16 => 2,
            FieldKind::U32 | FieldKind::F32 => 4,
            FieldKind::Operand | FieldKind::OptOperand => 5,
        }
    }

    /// Short description used in the spec and error messages.
    pub fn describe(self) -> String {
        match self {
            FieldKind::U8 => "u8".into(),
            FieldKind::U16 => "u16".into(),
            FieldKind::U32 => "u32".into(),
            FieldKind::F32 => "f32".into(),
            FieldKind::Enum(e) => format!("{} ({})", e.name, e.names.join("|")),
            FieldKind::Flags(f) => format!("flags {} ({})", f.name, f.names.join("+")),
            FieldKind::Operand => "operand".into(),
            FieldKind::OptOperand => "operand?".into(),
        }
    }
}

/// One field of an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    /// Field name (assembly key).
    pub name: &'static str,
    /// Field kind.
    pub kind: FieldKind,
}

/// One row of the instruction table.
#[derive(Debug)]
pub struct InstrDef {
    /// The opcode.
    pub op: Opcode,
    /// Assembly mnemonic.
    pub mnemonic: &'static str,
    /// Opcode byte.
    pub byte: u8,
    /// Queue that executes it.
    pub queue: Queue,
    /// One-line, phase-neutral description.
    pub summary: &'static str,
    /// Fields in encoding order.
    pub fields: &'static [FieldDef],
}

impl InstrDef {
    /// Index of the field called `name`.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// Encoded size of the instruction in bytes (opcode byte included).
    pub fn encoded_len(&self) -> usize {
        1 + self.fields.iter().map(|f| f.kind.size()).sum::<usize>()
    }
}

macro_rules! instructions {
    ($( $(#[$m:meta])* $var:ident = $byte:literal, $mn:literal, $q:ident, $sum:literal,
        [ $( $f:literal : $k:expr ),* $(,)? ]; )+) => {
        /// Instruction opcodes; the discriminant is the opcode byte.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Opcode { $( $(#[$m])* $var = $byte ),+ }

        #[allow(non_upper_case_globals)]
        mod rows {
            use super::*;
            $( pub(super) const $var: InstrDef = InstrDef {
                op: Opcode::$var, mnemonic: $mn, byte: $byte, queue: Queue::$q,
                summary: $sum, fields: &[ $( FieldDef { name: $f, kind: $k } ),* ] }; )+
        }

        /// The instruction table, in opcode order.
        pub static TABLE: &[InstrDef] = &[ $( rows::$var ),+ ];

        impl Opcode {
            /// The table row of this opcode.
            pub fn def(self) -> &'static InstrDef {
                match self { $( Opcode::$var => &rows::$var ),+ }
            }
        }
    };
}

const fn e<T: NamedEnum>() -> FieldKind {
    FieldKind::Enum(&T::DEF)
}

use FieldKind::{Operand as OP, OptOperand as OPT, F32, U16, U32, U8};
const SKIP: FieldKind = FieldKind::Flags(&flags::SKIP);
const COPT: FieldKind = FieldKind::Flags(&flags::COMPUTE_OPT);
const VOPT: FieldKind = FieldKind::Flags(&flags::VEC_OPT);

instructions! {
    /// No operation.
    Nop = 0x00, "nop", Control, "no operation", [];
    /// Stop the program.
    Halt = 0x01, "halt", Control, "stop after all queues drain", [];
    /// Wait until all queues are empty.
    Barrier = 0x02, "barrier", Control, "wait until every queue has drained", [];
    /// Increment a dependency token from a queue.
    TokSignal = 0x03, "tok.signal", Control, "queue `q` increments token counter `tok` when it reaches this point",
        ["q": e::<QueueName>(), "tok": U8];
    /// Wait for and consume a dependency token.
    TokWait = 0x04, "tok.wait", Control, "queue `q` stalls until token counter `tok` is positive, then decrements it",
        ["q": e::<QueueName>(), "tok": U8];
    /// Begin a counted loop.
    Loop = 0x05, "loop", Control, "repeat the body up to the matching `endloop` `count` times",
        ["count": U32];
    /// End of a loop body.
    EndLoop = 0x06, "endloop", Control, "end of the innermost loop body", [];
    /// Set an address register.
    ArSet = 0x07, "ar.set", Control, "address register `reg` = `value`",
        ["reg": e::<AddrReg>(), "value": U32];
    /// Add to an address register.
    ArAdd = 0x08, "ar.add", Control, "address register `reg` += `value` (wrapping)",
        ["reg": e::<AddrReg>(), "value": U32];
    /// Set an f32 configuration register.
    CfgSet = 0x09, "cfg.set", Control, "f32 configuration register `reg` = `value`",
        ["reg": e::<CfgF32>(), "value": F32];
    /// Set an integer configuration register.
    CfgSeti = 0x0a, "cfg.seti", Control, "integer configuration register `reg` = `value`",
        ["reg": e::<CfgInt>(), "value": U32];
    /// Set the MAC precision class.
    CfgPrec = 0x0b, "cfg.prec", Control, "MAC precision class for following compute",
        ["prec": e::<Precision>()];
    /// Attribute following work to a layer and phase.
    Tag = 0x0c, "tag", Control, "attribute following events to layer `layer`, phase `phase` in reports",
        ["layer": U16, "phase": e::<Phase>()];
    /// Zero a density counter.
    DcClear = 0x0d, "dc.clear", Control, "density counter `ctr` = 0",
        ["ctr": e::<Counter>()];

    /// Strided DMA load.
    DmaLoad = 0x10, "dma.load", Load, "2-D strided copy DRAM → on-chip buffer, dense or bitmap-compressed",
        ["fmt": e::<DmaFmt>(), "ar": e::<AddrReg>(), "ctr": e::<Counter>(),
         "rows": U32, "row_bytes": U32, "dstride": U32, "bstride": U32, "dram": OP, "buf": OP];
    /// Strided DMA store.
    DmaStore = 0x11, "dma.store", Store, "2-D strided copy on-chip buffer → DRAM, dense or bitmap-compressed",
        ["fmt": e::<DmaFmt>(), "ar": e::<AddrReg>(), "ctr": e::<Counter>(),
         "rows": U32, "row_bytes": U32, "dstride": U32, "bstride": U32, "dram": OP, "buf": OP];

    /// Convolution (FF / BP / WG).
    Conv = 0x20, "conv", Compute, "2-D convolution in FF, BP (input gradient) or WG (weight gradient) mode",
        ["mode": e::<Mode>(), "df": e::<Dataflow>(), "skip": SKIP, "opt": COPT,
         "dci": e::<Counter>(), "dcw": e::<Counter>(),
         "n": U16, "c": U16, "h": U16, "w": U16, "k": U16, "r": U8, "s": U8,
         "stride_h": U8, "stride_w": U8, "pad_t": U8, "pad_l": U8, "pad_b": U8, "pad_r": U8,
         "dil_h": U8, "dil_w": U8, "groups": U16,
         "a": OP, "b": OP, "out": OP, "wmask": OPT, "omask": OPT, "bna": OPT, "bns": OPT, "aux": OPT, "s3": OPT];
    /// Matrix multiplication (FF / BP / WG).
    Matmul = 0x21, "matmul", Compute, "matrix product in FF, BP (input gradient) or WG (weight gradient) mode",
        ["mode": e::<Mode>(), "df": e::<Dataflow>(), "skip": SKIP, "opt": COPT,
         "dci": e::<Counter>(), "dcw": e::<Counter>(),
         "m": U32, "k": U32, "n": U32, "a": OP, "b": OP, "out": OP, "wmask": OPT, "omask": OPT];

    /// Top-k magnitude pruning mask.
    PruneTopk = 0x30, "prune.topk", Compute, "mask of the `k` largest-magnitude elements (ties: lower index wins)",
        ["n": U32, "k": U32, "src": OP, "mask": OP];
    /// Apply a mask.
    MaskApply = 0x31, "mask.apply", Compute, "out = src ⊙ mask",
        ["n": U32, "src": OP, "mask": OP, "out": OP];
    /// S2 speculation: weights whose gradient must be computed.
    SpecS2 = 0x32, "spec.s2", Compute, "S2: mask of weights whose gradient can affect the next mask update",
        ["n": U32, "k": U32, "w": OP, "mask": OP, "out": OP];
    /// Count non-zeros into a density counter.
    Density = 0x33, "density", Compute, "density counter `ctr` += number of non-zero elements of `src`",
        ["n": U32, "ctr": e::<Counter>(), "src": OP];

    /// BN statistics.
    BnStats = 0x40, "bn.stats", Compute, "per-channel Σx and Σx² of an [N,C,HW] tensor",
        ["opt": VOPT, "n": U16, "c": U16, "hw": U32, "src": OP, "stats": OP];
    /// BN finalize.
    BnFinalize = 0x41, "bn.finalize", Compute, "mean and 1/σ from the sums; running statistics update",
        ["c": U16, "count": U32, "stats": OP, "block": OP, "running": OPT];
    /// BN apply.
    BnApply = 0x42, "bn.apply", Compute, "normalise and affine-transform (optionally ReLU) an [N,C,HW] tensor",
        ["opt": VOPT, "n": U16, "c": U16, "hw": U32, "src": OP, "block": OP, "out": OP, "mask": OPT];
    /// BN backward reductions.
    BnBwdReduce = 0x43, "bn.bwd_reduce", Compute, "per-channel Σdy·x̂ and Σdy (= dγ, dβ)",
        ["opt": VOPT, "n": U16, "c": U16, "hw": U32, "dy": OP, "x": OP, "block": OP, "mask": OPT, "sums": OP];
    /// BN input gradient.
    BnBwd = 0x44, "bn.bwd", Compute, "BN input gradient from dy, x, the statistics and the backward sums",
        ["n": U16, "c": U16, "hw": U32, "dy": OP, "x": OP, "block": OP, "sums": OP, "mask": OPT, "dx": OP];

    /// ReLU.
    Relu = 0x50, "relu", Compute, "out = max(src, 0); optional mask of src > 0",
        ["n": U32, "src": OP, "out": OP, "mask": OPT];
    /// ReLU backward.
    ReluBwd = 0x51, "relu.bwd", Compute, "out = dy where mask else 0",
        ["n": U32, "dy": OP, "mask": OP, "out": OP];
    /// Clip (ReLU6).
    Clip = 0x52, "clip", Compute, "out = min(max(src, lo), hi); optional mask of lo < src < hi",
        ["n": U32, "lo": F32, "hi": F32, "src": OP, "out": OP, "mask": OPT];
    /// Elementwise add.
    Add = 0x53, "add", Compute, "out = a + b",
        ["n": U32, "a": OP, "b": OP, "out": OP];
    /// Scale and add.
    Axpy = 0x54, "axpy", Compute, "out = alpha·x + y (y optional: scale)",
        ["n": U32, "alpha": F32, "x": OP, "y": OPT, "out": OP];
    /// Per-channel bias add.
    BiasAdd = 0x55, "bias.add", Compute, "out[n,c,i] = src[n,c,i] + bias[c]",
        ["n": U16, "c": U16, "hw": U32, "src": OP, "bias": OP, "out": OP];
    /// Per-channel bias gradient.
    BiasGrad = 0x56, "bias.grad", Compute, "out[c] = Σ_{n,i} dy[n,c,i]",
        ["opt": VOPT, "n": U16, "c": U16, "hw": U32, "dy": OP, "out": OP];
    /// Pooling forward/backward.
    Pool = 0x57, "pool", Compute, "max / average / global-average pooling, forward or backward",
        ["kind": e::<PoolKind>(), "dir": e::<Dir>(), "n": U16, "c": U16, "h": U16, "w": U16, "r": U8, "s": U8,
         "stride_h": U8, "stride_w": U8, "pad_t": U8, "pad_l": U8, "pad_b": U8, "pad_r": U8,
         "src": OP, "out": OP, "idx": OPT];
    /// Softmax cross-entropy.
    SoftmaxCe = 0x58, "softmax_ce", Compute, "mean softmax cross-entropy loss and its gradient w.r.t. the logits",
        ["n": U32, "c": U32, "logits": OP, "labels": OP, "loss": OP, "dlogits": OPT];
    /// SGD update.
    Sgd = 0x59, "sgd", Compute, "SGD with momentum and weight decay, optionally masked",
        ["n": U32, "w": OP, "g": OP, "v": OPT, "mask": OPT];
    /// Precision conversion.
    Convert = 0x5a, "convert", Compute, "out = src converted to out's dtype (round to nearest even)",
        ["n": U32, "src": OP, "out": OP];
    /// Fill with a constant.
    Fill = 0x5b, "fill", Compute, "out[i] = value",
        ["n": U32, "value": F32, "out": OP];
}

impl Opcode {
    /// Opcode with this byte, if any.
    pub fn from_byte(byte: u8) -> Option<Opcode> {
        TABLE.iter().find(|d| d.byte == byte).map(|d| d.op)
    }

    /// Opcode with this mnemonic, if any.
    pub fn from_mnemonic(mnemonic: &str) -> Option<Opcode> {
        TABLE.iter().find(|d| d.mnemonic == mnemonic).map(|d| d.op)
    }

    /// Assembly mnemonic.
    pub fn mnemonic(self) -> &'static str {
        self.def().mnemonic
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn table_is_consistent() {
        assert!(
            TABLE.windows(2).all(|w| w[0].byte < w[1].byte),
            "table not in opcode order"
        );
        let mut bytes = HashSet::new();
        let mut names = HashSet::new();
        for d in TABLE {
            assert_eq!(d.op as u8, d.byte);
            assert!(bytes.insert(d.byte), "duplicate opcode byte {:#x}", d.byte);
            assert!(names.insert(d.mnemonic), "duplicate mnemonic {}", d.mnemonic);
            let mut fields = HashSet::new();
            for f in d.fields {
                assert!(
                    fields.insert(f.name),
                    "{}: duplicate field {}",
                    d.mnemonic,
                    f.name
                );
            }
            assert_eq!(Opcode::from_byte(d.byte), Some(d.op));
            assert_eq!(Opcode::from_mnemonic(d.mnemonic), Some(d.op));
            assert_eq!(d.op.def().byte, d.byte);
        }
    }
}
