//! Decoding a program once into typed operations, with static validation.
//!
//! [`decode`] turns every [`Instr`] of a [`Program`] into an [`Op`] whose fields are plain Rust
//! values, resolves loop bodies, and rejects what can be rejected without running: operands in a
//! space or dtype the instruction does not allow, inconsistent shapes, and (for the DRAM, whose size
//! is known) accesses that can never fit. Executors then never look fields up by name.

use crate::error::{FaultKind, SimError};
use crate::kernels::conv::{ConvShape, Padding};
use trainer_isa::flags::{
    OPT_ACC, OPT_BNRELU, OPT_RELU, OPT_TB, SKIP_IN, SKIP_OUT, SKIP_W, VEC_ACC, VEC_RELU,
};
use trainer_isa::names::{
    AddrReg, CfgF32, CfgInt, Counter, Dataflow, Dir, DmaFmt, Mode, Phase, PoolKind, Precision, QueueName,
};
use trainer_isa::{DType, Instr, NamedEnum, Opcode, Operand, Program, Space};

/// Zero-skipping flags of a conv/matmul.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Skip {
    /// Skip MACs whose `a` operand is zero.
    pub a: bool,
    /// Skip MACs whose `b` (weight) operand is zero.
    pub b: bool,
    /// Skip MACs of outputs masked off by `omask` / S3.
    pub out: bool,
}

/// Operands and options shared by `conv` and `matmul`.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorOp {
    /// Phase.
    pub mode: Mode,
    /// Dataflow.
    pub df: Dataflow,
    /// Zero skipping.
    pub skip: Skip,
    /// Accumulate into `out`.
    pub acc: bool,
    /// ReLU on the written output.
    pub relu: bool,
    /// ReLU after the on-read BN (conv).
    pub bnrelu: bool,
    /// `b` stored transposed (matmul).
    pub tb: bool,
    /// Density counters for `adaptive`.
    pub dci: Counter,
    /// Density counter of `b`.
    pub dcw: Counter,
    /// Input / output gradient operand.
    pub a: Operand,
    /// Weights / output gradient operand.
    pub b: Operand,
    /// Output.
    pub out: Operand,
    /// Weight mask.
    pub wmask: Operand,
    /// Output mask (S1 / S2).
    pub omask: Operand,
}

/// A conv instruction.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvOp {
    /// Common fields.
    pub t: TensorOp,
    /// Forward shape.
    pub shape: ConvShape,
    /// BN block applied on read.
    pub bna: Operand,
    /// Decoupled BN statistics.
    pub bns: Operand,
    /// Pre-BN activation (bp) or ReLU-mask output (ff).
    pub aux: Operand,
    /// S3 BN block.
    pub s3: Operand,
}

impl ConvOp {
    /// Elements of `(a, b, out)` in the instruction's mode (FF: input, weights, output; BP:
    /// output gradient, weights, input gradient; WG: input, output gradient, weight gradient).
    pub fn operand_lens(&self) -> (usize, usize, usize) {
        let s = &self.shape;
        let (input, weights, output) = (s.input_len(), s.weight_len(), s.output_len());
        match self.t.mode {
            Mode::Ff => (input, weights, output),
            Mode::Bp => (output, weights, input),
            Mode::Wg => (input, output, weights),
        }
    }
}

/// A matmul instruction.
#[derive(Debug, Clone, PartialEq)]
pub struct MatmulOp {
    /// Common fields.
    pub t: TensorOp,
    /// Rows of A.
    pub m: usize,
    /// Columns of A.
    pub k: usize,
    /// Columns of B.
    pub n: usize,
}

/// A DMA instruction (either direction).
#[derive(Debug, Clone, PartialEq)]
pub struct DmaOp {
    /// Load (DRAM → buffer) or store.
    pub load: bool,
    /// Bitmap-compressed accounting.
    pub bitmap: bool,
    /// Address register added to the DRAM address.
    pub ar: AddrReg,
    /// Density counter.
    pub ctr: Counter,
    /// Rows.
    pub rows: u32,
    /// Bytes per row.
    pub row_bytes: u32,
    /// DRAM row stride.
    pub dstride: u32,
    /// Buffer row stride.
    pub bstride: u32,
    /// DRAM operand.
    pub dram: Operand,
    /// Buffer operand.
    pub buf: Operand,
}

impl DmaOp {
    /// Whether the transfer may wait until it retires: a store without a density counter changes
    /// no register, so it can copy once the convs before it have written what it reads.
    pub fn deferrable(&self) -> bool {
        !self.load && self.ctr == Counter::None
    }
}

/// `[N, C, HW]` layout of BN and bias instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nchw {
    /// Batch.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Elements per plane.
    pub hw: usize,
}

impl Nchw {
    /// Total elements.
    pub fn len(&self) -> usize {
        self.n * self.c * self.hw
    }

    /// Whether the tensor is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A pooling instruction.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolOp {
    /// Kind.
    pub kind: PoolKind,
    /// Direction.
    pub dir: Dir,
    /// Shape (`kernel`/`stride`/`pad` are unused for `gavg`).
    pub shape: crate::kernels::pool::PoolShape,
    /// Source.
    pub src: Operand,
    /// Destination.
    pub out: Operand,
    /// Argmax indices.
    pub idx: Operand,
}

/// A decoded instruction.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Op {
    Nop,
    Halt,
    Barrier,
    TokSignal {
        q: QueueName,
        tok: u8,
    },
    TokWait {
        q: QueueName,
        tok: u8,
    },
    /// `end` is the pc of the matching `endloop`.
    Loop {
        count: u32,
        end: usize,
    },
    /// `start` is the pc of the matching `loop`.
    EndLoop {
        start: usize,
    },
    ArSet {
        reg: AddrReg,
        value: u32,
    },
    ArAdd {
        reg: AddrReg,
        value: u32,
    },
    CfgSet {
        reg: CfgF32,
        value: f32,
    },
    CfgSeti {
        reg: CfgInt,
        value: u32,
    },
    CfgPrec(Precision),
    Tag {
        layer: u16,
        phase: Phase,
    },
    DcClear(Counter),
    Dma(Box<DmaOp>),
    Conv(Box<ConvOp>),
    Matmul(Box<MatmulOp>),
    PruneTopk {
        n: usize,
        k: usize,
        src: Operand,
        mask: Operand,
    },
    MaskApply {
        n: usize,
        src: Operand,
        mask: Operand,
        out: Operand,
    },
    SpecS2 {
        n: usize,
        k: usize,
        w: Operand,
        mask: Operand,
        out: Operand,
    },
    Density {
        n: usize,
        ctr: Counter,
        src: Operand,
    },
    BnStats {
        acc: bool,
        s: Nchw,
        src: Operand,
        stats: Operand,
    },
    BnFinalize {
        c: usize,
        count: u32,
        stats: Operand,
        block: Operand,
        running: Operand,
    },
    BnApply {
        relu: bool,
        s: Nchw,
        src: Operand,
        block: Operand,
        out: Operand,
        mask: Operand,
    },
    BnBwdReduce {
        acc: bool,
        s: Nchw,
        dy: Operand,
        x: Operand,
        block: Operand,
        mask: Operand,
        sums: Operand,
    },
    BnBwd {
        s: Nchw,
        dy: Operand,
        x: Operand,
        block: Operand,
        sums: Operand,
        mask: Operand,
        dx: Operand,
    },
    Relu {
        n: usize,
        src: Operand,
        out: Operand,
        mask: Operand,
    },
    ReluBwd {
        n: usize,
        dy: Operand,
        mask: Operand,
        out: Operand,
    },
    Clip {
        n: usize,
        lo: f32,
        hi: f32,
        src: Operand,
        out: Operand,
        mask: Operand,
    },
    Add {
        n: usize,
        a: Operand,
        b: Operand,
        out: Operand,
    },
    Axpy {
        n: usize,
        alpha: f32,
        x: Operand,
        y: Operand,
        out: Operand,
    },
    BiasAdd {
        s: Nchw,
        src: Operand,
        bias: Operand,
        out: Operand,
    },
    BiasGrad {
        acc: bool,
        s: Nchw,
        dy: Operand,
        out: Operand,
    },
    Pool(Box<PoolOp>),
    SoftmaxCe {
        n: usize,
        c: usize,
        logits: Operand,
        labels: Operand,
        loss: Operand,
        dlogits: Operand,
    },
    Sgd {
        n: usize,
        w: Operand,
        g: Operand,
        v: Operand,
        mask: Operand,
    },
    Convert {
        n: usize,
        src: Operand,
        out: Operand,
    },
    Fill {
        n: usize,
        value: f32,
        out: Operand,
    },
}

/// One decoded instruction with what reports and faults need.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The operation.
    pub op: Op,
    /// Mnemonic (for faults and reports).
    pub mnemonic: &'static str,
}

/// A program decoded once: typed operations plus the original container.
#[derive(Debug, Clone)]
pub struct DecodedProgram {
    /// Operations, indexed by pc.
    pub ops: Vec<Decoded>,
    /// The program (tensor table, data segments, metadata).
    pub program: Program,
}

fn is_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F16 | DType::E4m3 | DType::E5m2)
}

/// Static checks of one operand.
struct Check<'a> {
    pc: usize,
    instr: &'a Instr,
}

impl Check<'_> {
    fn err(&self, kind: FaultKind) -> SimError {
        SimError::invalid(self.pc, self.instr, kind)
    }

    /// The operand `field` (possibly none).
    fn op(&self, field: &str) -> Operand {
        self.instr.operand(field)
    }

    fn field_name(&self, field: &str) -> &'static str {
        let def = self.instr.def();
        def.fields
            .iter()
            .find(|f| f.name == field)
            .map_or("?", |f| f.name)
    }

    /// A float operand (any space unless `onchip`).
    fn float(&self, field: &str, onchip: bool) -> Result<Operand, SimError> {
        let o = self.op(field);
        if o.is_none() {
            return Ok(o);
        }
        if !is_float(o.dtype) {
            return Err(self.err(FaultKind::BadDtype {
                field: self.field_name(field),
                dtype: o.dtype.name(),
                why: "expected a float dtype (f32, f16, e4m3, e5m2)",
            }));
        }
        self.space(field, o, onchip)
    }

    /// An f32 operand.
    fn f32(&self, field: &str, onchip: bool) -> Result<Operand, SimError> {
        let o = self.float(field, onchip)?;
        if !o.is_none() && o.dtype != DType::F32 {
            return Err(self.err(FaultKind::BadDtype {
                field: self.field_name(field),
                dtype: o.dtype.name(),
                why: "expected f32",
            }));
        }
        Ok(o)
    }

    /// A mask operand: `b1` or a float (non-zero = 1).
    fn mask(&self, field: &str, onchip: bool) -> Result<Operand, SimError> {
        let o = self.op(field);
        if !(o.is_none() || o.dtype == DType::B1 || is_float(o.dtype)) {
            return Err(self.err(FaultKind::BadDtype {
                field: self.field_name(field),
                dtype: o.dtype.name(),
                why: "expected b1 or a float",
            }));
        }
        self.space(field, o, onchip)
    }

    /// Any dtype.
    fn any(&self, field: &str) -> Result<Operand, SimError> {
        let o = self.op(field);
        self.space(field, o, false)
    }

    /// An integer operand.
    fn int(&self, field: &str) -> Result<Operand, SimError> {
        let o = self.op(field);
        if !o.is_none() && !matches!(o.dtype, DType::I32 | DType::I64) {
            return Err(self.err(FaultKind::BadDtype {
                field: self.field_name(field),
                dtype: o.dtype.name(),
                why: "expected i32 or i64",
            }));
        }
        Ok(o)
    }

    fn space(&self, field: &str, o: Operand, onchip: bool) -> Result<Operand, SimError> {
        if onchip && o.space == Space::Dram {
            return Err(self.err(FaultKind::BadSpace {
                field: self.field_name(field),
                space: "dram",
                why: "conv and matmul operands must be in on-chip buffers",
            }));
        }
        Ok(o)
    }

    fn shape(&self, ok: bool, why: impl FnOnce() -> String) -> Result<(), SimError> {
        if ok {
            Ok(())
        } else {
            Err(self.err(FaultKind::BadShape(why())))
        }
    }
}

/// Decodes and validates a whole program.
pub fn decode(program: Program) -> Result<DecodedProgram, SimError> {
    program.validate().map_err(trainer_isa::TbinError::from)?;
    let pairs = trainer_isa::program::loop_ends(&program.code).map_err(trainer_isa::TbinError::from)?;
    let mut ops = Vec::with_capacity(program.code.len());
    for (pc, instr) in program.code.iter().enumerate() {
        let c = Check { pc, instr };
        let op = decode_one(&c, &pairs)?;
        ops.push(Decoded {
            op,
            mnemonic: instr.def().mnemonic,
        });
    }
    Ok(DecodedProgram { ops, program })
}

fn u(i: &Instr, f: &str) -> usize {
    i.u32(f) as usize
}

fn nchw(i: &Instr) -> Nchw {
    Nchw {
        n: u(i, "n"),
        c: u(i, "c"),
        hw: u(i, "hw"),
    }
}

fn decode_one(c: &Check, pairs: &[(usize, usize)]) -> Result<Op, SimError> {
    let i = c.instr;
    Ok(match i.op() {
        Opcode::Nop => Op::Nop,
        Opcode::Halt => Op::Halt,
        Opcode::Barrier => Op::Barrier,
        Opcode::TokSignal => Op::TokSignal {
            q: i.enum_("q"),
            tok: i.u32("tok") as u8,
        },
        Opcode::TokWait => Op::TokWait {
            q: i.enum_("q"),
            tok: i.u32("tok") as u8,
        },
        Opcode::Loop => Op::Loop {
            count: i.u32("count"),
            end: pairs
                .iter()
                .find(|p| p.0 == c.pc)
                .map(|p| p.1)
                .expect("validated loops"),
        },
        Opcode::EndLoop => Op::EndLoop {
            start: pairs
                .iter()
                .find(|p| p.1 == c.pc)
                .map(|p| p.0)
                .expect("validated loops"),
        },
        Opcode::ArSet => Op::ArSet {
            reg: i.enum_("reg"),
            value: i.u32("value"),
        },
        Opcode::ArAdd => Op::ArAdd {
            reg: i.enum_("reg"),
            value: i.u32("value"),
        },
        Opcode::CfgSet => Op::CfgSet {
            reg: i.enum_("reg"),
            value: i.f32("value"),
        },
        Opcode::CfgSeti => Op::CfgSeti {
            reg: i.enum_("reg"),
            value: i.u32("value"),
        },
        Opcode::CfgPrec => Op::CfgPrec(i.enum_("prec")),
        Opcode::Tag => Op::Tag {
            layer: i.u32("layer") as u16,
            phase: i.enum_("phase"),
        },
        Opcode::DcClear => Op::DcClear(i.enum_("ctr")),
        Opcode::DmaLoad | Opcode::DmaStore => Op::Dma(Box::new(decode_dma(c)?)),
        Opcode::Conv => Op::Conv(Box::new(decode_conv(c)?)),
        Opcode::Matmul => Op::Matmul(Box::new(decode_matmul(c)?)),
        Opcode::PruneTopk => {
            let (n, k) = (u(i, "n"), u(i, "k"));
            c.shape(k <= n, || format!("k = {k} exceeds n = {n}"))?;
            Op::PruneTopk {
                n,
                k,
                src: c.float("src", false)?,
                mask: c.mask("mask", false)?,
            }
        }
        Opcode::MaskApply => Op::MaskApply {
            n: u(i, "n"),
            src: c.float("src", false)?,
            mask: c.mask("mask", false)?,
            out: c.float("out", false)?,
        },
        Opcode::SpecS2 => {
            let (n, k) = (u(i, "n"), u(i, "k"));
            c.shape(k <= n && k > 0, || format!("k = {k} must be in 1..=n (n = {n})"))?;
            Op::SpecS2 {
                n,
                k,
                w: c.float("w", false)?,
                mask: c.mask("mask", false)?,
                out: c.mask("out", false)?,
            }
        }
        Opcode::Density => Op::Density {
            n: u(i, "n"),
            ctr: i.enum_("ctr"),
            src: c.any("src")?,
        },
        Opcode::BnStats => Op::BnStats {
            acc: i.has_flag("opt", VEC_ACC),
            s: nchw(i),
            src: c.float("src", false)?,
            stats: c.f32("stats", false)?,
        },
        Opcode::BnFinalize => Op::BnFinalize {
            c: u(i, "c"),
            count: i.u32("count"),
            stats: c.f32("stats", false)?,
            block: c.f32("block", false)?,
            running: c.f32("running", false)?,
        },
        Opcode::BnApply => Op::BnApply {
            relu: i.has_flag("opt", VEC_RELU),
            s: nchw(i),
            src: c.float("src", false)?,
            block: c.f32("block", false)?,
            out: c.float("out", false)?,
            mask: c.mask("mask", false)?,
        },
        Opcode::BnBwdReduce => Op::BnBwdReduce {
            acc: i.has_flag("opt", VEC_ACC),
            s: nchw(i),
            dy: c.float("dy", false)?,
            x: c.float("x", false)?,
            block: c.f32("block", false)?,
            mask: c.mask("mask", false)?,
            sums: c.f32("sums", false)?,
        },
        Opcode::BnBwd => Op::BnBwd {
            s: nchw(i),
            dy: c.float("dy", false)?,
            x: c.float("x", false)?,
            block: c.f32("block", false)?,
            sums: c.f32("sums", false)?,
            mask: c.mask("mask", false)?,
            dx: c.float("dx", false)?,
        },
        Opcode::Relu => Op::Relu {
            n: u(i, "n"),
            src: c.float("src", false)?,
            out: c.float("out", false)?,
            mask: c.mask("mask", false)?,
        },
        Opcode::ReluBwd => Op::ReluBwd {
            n: u(i, "n"),
            dy: c.float("dy", false)?,
            mask: c.mask("mask", false)?,
            out: c.float("out", false)?,
        },
        Opcode::Clip => Op::Clip {
            n: u(i, "n"),
            lo: i.f32("lo"),
            hi: i.f32("hi"),
            src: c.float("src", false)?,
            out: c.float("out", false)?,
            mask: c.mask("mask", false)?,
        },
        Opcode::Add => Op::Add {
            n: u(i, "n"),
            a: c.float("a", false)?,
            b: c.float("b", false)?,
            out: c.float("out", false)?,
        },
        Opcode::Axpy => Op::Axpy {
            n: u(i, "n"),
            alpha: i.f32("alpha"),
            x: c.float("x", false)?,
            y: c.float("y", false)?,
            out: c.float("out", false)?,
        },
        Opcode::BiasAdd => Op::BiasAdd {
            s: nchw(i),
            src: c.float("src", false)?,
            bias: c.float("bias", false)?,
            out: c.float("out", false)?,
        },
        Opcode::BiasGrad => Op::BiasGrad {
            acc: i.has_flag("opt", VEC_ACC),
            s: nchw(i),
            dy: c.float("dy", false)?,
            out: c.float("out", false)?,
        },
        Opcode::Pool => Op::Pool(Box::new(decode_pool(c)?)),
        Opcode::SoftmaxCe => Op::SoftmaxCe {
            n: u(i, "n"),
            c: u(i, "c"),
            logits: c.float("logits", false)?,
            labels: c.int("labels")?,
            loss: c.float("loss", false)?,
            dlogits: c.float("dlogits", false)?,
        },
        Opcode::Sgd => Op::Sgd {
            n: u(i, "n"),
            w: c.float("w", false)?,
            g: c.float("g", false)?,
            v: c.float("v", false)?,
            mask: c.mask("mask", false)?,
        },
        Opcode::Convert => {
            let (src, out) = (c.any("src")?, c.any("out")?);
            let ints = |d: DType| matches!(d, DType::I32 | DType::I64);
            if (ints(src.dtype) || ints(out.dtype)) && src.dtype != out.dtype {
                return Err(c.err(FaultKind::BadDtype {
                    field: "out",
                    dtype: out.dtype.name(),
                    why: "integer dtypes may only be converted to themselves",
                }));
            }
            Op::Convert {
                n: u(i, "n"),
                src,
                out,
            }
        }
        Opcode::Fill => Op::Fill {
            n: u(i, "n"),
            value: i.f32("value"),
            out: c.any("out")?,
        },
    })
}

fn decode_dma(c: &Check) -> Result<DmaOp, SimError> {
    let i = c.instr;
    let (dram, buf) = (c.op("dram"), c.op("buf"));
    if dram.space != Space::Dram {
        return Err(c.err(FaultKind::BadSpace {
            field: "dram",
            space: dram.space.name(),
            why: "must be in dram",
        }));
    }
    if buf.space == Space::Dram {
        return Err(c.err(FaultKind::BadSpace {
            field: "buf",
            space: "dram",
            why: "must be an on-chip buffer",
        }));
    }
    if dram.dtype != buf.dtype {
        return Err(c.err(FaultKind::BadDtype {
            field: "buf",
            dtype: buf.dtype.name(),
            why: "must match the dram operand's dtype",
        }));
    }
    let row_bytes = i.u32("row_bytes");
    let elem = buf.dtype.bytes(1) as u32;
    if buf.dtype != DType::B1 && !row_bytes.is_multiple_of(elem) {
        return Err(c.err(FaultKind::BadShape(format!(
            "row_bytes {row_bytes} is not a multiple of the {elem}-byte element"
        ))));
    }
    Ok(DmaOp {
        load: i.op() == Opcode::DmaLoad,
        bitmap: i.enum_::<DmaFmt>("fmt") == DmaFmt::Bitmap,
        ar: i.enum_("ar"),
        ctr: i.enum_("ctr"),
        rows: i.u32("rows"),
        row_bytes,
        dstride: i.u32("dstride"),
        bstride: i.u32("bstride"),
        dram,
        buf,
    })
}

fn tensor_op(c: &Check) -> Result<TensorOp, SimError> {
    let i = c.instr;
    let skip = i.flags("skip");
    let opt = i.flags("opt");
    let mode: Mode = i.enum_("mode");
    let wmask = c.mask("wmask", true)?;
    if mode == Mode::Wg && !wmask.is_none() {
        return Err(c.err(FaultKind::BadShape("wmask must be none in mode wg".into())));
    }
    Ok(TensorOp {
        mode,
        df: i.enum_("df"),
        skip: Skip {
            a: skip & SKIP_IN != 0,
            b: skip & SKIP_W != 0,
            out: skip & SKIP_OUT != 0,
        },
        acc: opt & OPT_ACC != 0,
        relu: opt & OPT_RELU != 0,
        bnrelu: opt & OPT_BNRELU != 0,
        tb: opt & OPT_TB != 0,
        dci: i.enum_("dci"),
        dcw: i.enum_("dcw"),
        a: c.float("a", true)?,
        b: c.float("b", true)?,
        out: c.float("out", true)?,
        wmask,
        omask: c.mask("omask", true)?,
    })
}

fn decode_conv(c: &Check) -> Result<ConvOp, SimError> {
    let i = c.instr;
    let shape = ConvShape {
        n: u(i, "n"),
        c: u(i, "c"),
        h: u(i, "h"),
        w: u(i, "w"),
        k: u(i, "k"),
        r: u(i, "r"),
        s: u(i, "s"),
        groups: u(i, "groups"),
        stride: (u(i, "stride_h"), u(i, "stride_w")),
        pad: Padding {
            top: u(i, "pad_t"),
            left: u(i, "pad_l"),
            bottom: u(i, "pad_b"),
            right: u(i, "pad_r"),
        },
        dilation: (u(i, "dil_h"), u(i, "dil_w")),
    };
    shape
        .validate()
        .map_err(|e| c.err(FaultKind::BadShape(e.to_string())))?;
    let t = tensor_op(c)?;
    let op = ConvOp {
        bna: c.f32("bna", true)?,
        bns: c.f32("bns", true)?,
        aux: c.any("aux")?,
        s3: c.f32("s3", true)?,
        t,
        shape,
    };
    if !op.s3.is_none() && op.t.mode != Mode::Ff {
        return Err(c.err(FaultKind::BadShape("s3 is only allowed in mode ff".into())));
    }
    if !op.bns.is_none() && op.t.mode == Mode::Bp && (op.aux.is_none() || op.bna.is_none()) {
        return Err(c.err(FaultKind::BadShape("bns in mode bp needs aux and bna".into())));
    }
    Ok(op)
}

fn decode_matmul(c: &Check) -> Result<MatmulOp, SimError> {
    let i = c.instr;
    let (m, k, n) = (u(i, "m"), u(i, "k"), u(i, "n"));
    c.shape(m > 0 && k > 0 && n > 0, || {
        format!("m, k, n must be positive (got {m}, {k}, {n})")
    })?;
    Ok(MatmulOp {
        t: tensor_op(c)?,
        m,
        k,
        n,
    })
}

fn decode_pool(c: &Check) -> Result<PoolOp, SimError> {
    let i = c.instr;
    let kind: PoolKind = i.enum_("kind");
    let shape = crate::kernels::pool::PoolShape {
        n: u(i, "n"),
        c: u(i, "c"),
        h: u(i, "h"),
        w: u(i, "w"),
        kernel: (u(i, "r"), u(i, "s")),
        stride: (u(i, "stride_h"), u(i, "stride_w")),
        pad: Padding {
            top: u(i, "pad_t"),
            left: u(i, "pad_l"),
            bottom: u(i, "pad_b"),
            right: u(i, "pad_r"),
        },
    };
    let geometry = [
        shape.kernel.0,
        shape.kernel.1,
        shape.stride.0,
        shape.stride.1,
        shape.pad.top,
        shape.pad.left,
        shape.pad.bottom,
        shape.pad.right,
    ];
    let ok = match kind {
        PoolKind::Gavg => geometry.iter().all(|&g| g == 0),
        _ => {
            shape.kernel.0 * shape.kernel.1 * shape.stride.0 * shape.stride.1 > 0
                && shape.h + shape.pad.top + shape.pad.bottom >= shape.kernel.0
                && shape.w + shape.pad.left + shape.pad.right >= shape.kernel.1
        }
    };
    c.shape(ok && shape.n * shape.c * shape.h * shape.w > 0, || {
        "pool: gavg needs r, s, strides and pads 0; max/avg need a window, strides >= 1 and a non-empty output".into()
    })?;
    let idx = c.int("idx")?;
    if kind == PoolKind::Max && i.enum_::<Dir>("dir") == Dir::Bwd && idx.is_none() {
        return Err(c.err(FaultKind::BadShape("max pool backward needs idx".into())));
    }
    Ok(PoolOp {
        kind,
        dir: i.enum_("dir"),
        shape,
        src: c.float("src", false)?,
        out: c.float("out", false)?,
        idx,
    })
}
