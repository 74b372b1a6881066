//! Lowering of the `sdt` training program to the `trn` dialect (`spec/lowering.md`).
//!
//! The result is one `trn.program` op holding the tensor table (`trn.tensor`) and three entries
//! (`trn.entry @prune`, `@train`, `@eval`), each a list of `trn.<mnemonic>` instructions whose
//! attributes are the ISA fields — close enough to the ISA that [`crate::codegen`] only resolves
//! names through the instruction table.
//!
//! * [`plan`]: DRAM layout of the tensor table and a reusing arena for temporaries.
//! * [`conv`], [`matmul`]: tiling to the machine's buffers with double-buffered DMA ([`tile`]).
//! * [`stream`]: streaming instructions (BN, elementwise, pooling, loss, update, masks).
//! * [`loops`]: rolls repeated tile bodies into `loop` nests with address registers.

pub mod conv;
pub mod emit;
pub mod loops;
pub mod matmul;
pub mod plan;
pub mod stream;
pub mod tile;
mod walk;

use crate::ir::{Attribute, InsertPoint, Module, OperationState};
use emit::TrnInstr;
use plan::Init;
use rayon::prelude::*;

/// Storage precision of activations, weights used by the PE array and gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Everything f32 (reference mode).
    Fp32,
    /// f16 storage, f32 accumulation, f32 master weights.
    Fp16,
    /// E4M3 forward / E5M2 gradients, f32 accumulation, f32 master weights.
    Fp8,
}

impl Precision {
    /// Name (`fp32`, `fp16`, `fp8`), also the ISA's MAC mode.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Fp8 => "fp8",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Precision> {
        [Precision::Fp32, Precision::Fp16, Precision::Fp8]
            .into_iter()
            .find(|p| p.name() == s)
    }
}

/// Options of the lowering.
#[derive(Clone, Debug, PartialEq)]
pub struct LowerOptions {
    /// Storage precision.
    pub precision: Precision,
    /// On-chip buffer capacities in bytes: ibuf, wbuf, obuf, gbuf (from the machine model).
    pub buffers: [u64; 4],
    /// Roll repeated bodies into `loop` nests ([`loops`]); off: one instruction per executed
    /// instruction.
    pub loops: bool,
}

impl Default for LowerOptions {
    /// fp32 with the buffer sizes of the built-in `trainer-28nm` machine, loops on.
    fn default() -> Self {
        LowerOptions {
            precision: Precision::Fp32,
            buffers: [131072, 131072, 131072, 262144],
            loops: true,
        }
    }
}

/// A lowering error.
#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    /// The module holds no `sdt.step`.
    #[error("no `sdt.step` in the module (run autodiff first)")]
    NoStep,
    /// An op that cannot be lowered (unsupported form, does not fit the machine, ...).
    #[error("`{op}` (layer `{layer}`): {msg}")]
    Op {
        /// Op name.
        op: String,
        /// Its layer.
        layer: String,
        /// What is wrong.
        msg: String,
    },
    /// A malformed program.
    #[error("{0}")]
    Program(String),
}

/// A lowered program before it is materialized as a `trn` module: what [`lower`] puts into the
/// `trn.program` op. [`crate::codegen::generate_lowered`] turns it into a program directly,
/// byte-identical to [`crate::codegen::generate`] of [`Lowered::to_module`].
#[derive(Clone, Debug)]
pub struct Lowered {
    /// Symbol name of the program (the `sdt.step`'s).
    pub name: String,
    /// Bytes of DRAM the program uses.
    pub dram_size: u64,
    /// Storage precision.
    pub precision: Precision,
    /// Layer names by report id (the `layer` field of `tag`).
    pub layers: Vec<String>,
    /// The tensor table.
    pub tensors: Vec<plan::Tensor>,
    /// The entries `prune`, `train` and `eval` with their instructions.
    pub entries: [(&'static str, Vec<TrnInstr>); 3],
}

/// Lowers the `sdt.step` of `m` to a `trn` module.
pub fn lower(m: &Module, o: &LowerOptions) -> Result<Module, LowerError> {
    let mut t = lower_program(m, o)?.to_module();
    t.weights = m.weights.clone();
    Ok(t)
}

/// Lowers the `sdt.step` of `m` to its instructions and tensor table (see [`Lowered`]).
pub fn lower_program(m: &Module, o: &LowerOptions) -> Result<Lowered, LowerError> {
    let step = m
        .block(m.body())
        .ops()
        .iter()
        .copied()
        .find(|&x| m.op(x).name() == "sdt.step")
        .ok_or(LowerError::NoStep)?;
    let block = m.region(m.op(step).regions()[0]).blocks()[0];
    let ops = m.block(block).ops().to_vec();
    let args = m.block(block).args().to_vec();
    let ret = *ops
        .iter()
        .find(|&&x| m.op(x).name() == "sdt.return")
        .ok_or_else(|| LowerError::Program("no `sdt.return`".into()))?;
    let [loss, logits] = m.op(ret).operands() else {
        return Err(LowerError::Program("the step must return (loss, logits)".into()));
    };
    let logits_shape = plan::shape_of(m.ty(*logits))
        .ok_or_else(|| LowerError::Program("logits need a static shape".into()))?;
    let sp = plan::plan_static(m, &ops, &args, logits_shape, o.precision).map_err(LowerError::Program)?;
    let mut layers = walk::Layers::default();
    let ce = ops
        .iter()
        .position(|&x| m.op(x).name() == "sdt.softmax_ce")
        .ok_or_else(|| LowerError::Program("no loss".into()))?;
    let outs = walk::Outputs {
        loss: *loss,
        logits: *logits,
    };
    let prune = walk::prune_entry(m, &sp, &ops, &mut layers)?;
    let (train, train_high) = walk::entry(m, o, &sp, &ops, false, outs, &mut layers)?;
    let (eval, eval_high) = walk::entry(m, o, &sp, &ops[..ce], true, outs, &mut layers)?;
    let name = m
        .op(step)
        .attr("sym_name")
        .and_then(Attribute::as_str)
        .unwrap_or("main")
        .to_string();
    let mut entries = [("prune", prune), ("train", train), ("eval", eval)];
    if o.loops {
        entries
            .par_iter_mut()
            .for_each(|(_, code)| *code = loops::roll(std::mem::take(code)));
    }
    Ok(Lowered {
        name,
        dram_size: train_high.max(eval_high).max(sp.end),
        precision: o.precision,
        layers: layers.into_names(),
        tensors: sp.tensors,
        entries,
    })
}

impl Lowered {
    /// The `trn` module of this program (without weights: the caller copies the weight table).
    pub fn to_module(self) -> Module {
        let mut t = Module::new();
        let st = OperationState::new("trn.program")
            .attr("sym_name", Attribute::str(&self.name))
            .attr("dram_size", Attribute::Int(self.dram_size as i64))
            .attr("precision", Attribute::str(self.precision.name()))
            .attr(
                "layers",
                Attribute::Array(self.layers.iter().map(Attribute::str).collect()),
            )
            .regions(1);
        let prog = t.insert_op(InsertPoint::End(t.body()), st);
        let region = t.op(prog).regions()[0];
        let body = t.add_block(region, &[]);
        for ten in &self.tensors {
            let init = match &ten.init {
                Init::Zeros => "zeros".to_string(),
                Init::Ones => "ones".to_string(),
                Init::Weight(w) => format!("weight:{w}"),
            };
            let st = OperationState::new("trn.tensor")
                .attr("name", Attribute::str(&ten.name))
                .attr("role", Attribute::str(trainer_isa::NamedEnum::name(ten.role)))
                .attr(
                    "dtype",
                    Attribute::str(trainer_isa::NamedEnum::name(ten.loc.dtype)),
                )
                .attr(
                    "shape",
                    Attribute::ints(&ten.loc.shape.iter().map(|&d| d as i64).collect::<Vec<_>>()),
                )
                .attr("addr", Attribute::Int(ten.loc.addr.into()))
                .attr("init", Attribute::str(init));
            t.insert_op(InsertPoint::End(body), st);
        }
        for (entry, code) in self.entries {
            let st = OperationState::new("trn.entry")
                .attr("sym_name", Attribute::str(entry))
                .regions(1);
            let e = t.insert_op(InsertPoint::End(body), st);
            let r = t.op(e).regions()[0];
            let b = t.add_block(r, &[]);
            for i in code {
                let mut st = OperationState::new(format!("trn.{}", i.mnemonic));
                st.attrs = i
                    .fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_attr()))
                    .collect();
                t.insert_op(InsertPoint::End(b), st);
            }
        }
        t
    }
}
