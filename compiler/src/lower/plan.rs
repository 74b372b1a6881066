//! DRAM planning: the static tensors (tensor table: state, input, labels, logits, loss) and an
//! arena for the temporaries of an entry, reused as values die.
//!
//! Layout constraints the ISA imposes are met here: a BN layer's `γ` and `β` live in rows 2 and 3 of
//! its `[4, C]` block (so `sgd` updates them in place and the block feeds `conv`/`bn.*` directly),
//! and its running mean and variance are adjacent (`bn.finalize` updates `[2, C]` in place).

use super::Precision;
use crate::ir::{ElemType, Module, OpId, Type, ValueId};
use crate::sdt::ops::AttrExt;
use std::collections::HashMap;
use trainer_isa::{DType, Operand, Role, Space};

/// Byte alignment of every DRAM tensor and temporary.
pub const ALIGN: u64 = 64;

/// Where a value lives in DRAM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    /// Byte address.
    pub addr: u32,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
}

impl Loc {
    /// Number of elements.
    pub fn elems(&self) -> usize {
        self.shape.iter().product()
    }

    /// The DRAM operand.
    pub fn op(&self) -> Operand {
        Operand::new(Space::Dram, self.dtype, self.addr)
    }

    /// The same bytes viewed with another shape.
    pub fn reshaped(&self, shape: Vec<usize>) -> Loc {
        Loc {
            shape,
            ..self.clone()
        }
    }

    /// The operand `bytes` bytes further on.
    pub fn op_at(&self, bytes: usize) -> Operand {
        Operand::new(Space::Dram, self.dtype, self.addr + bytes as u32)
    }
}

/// Initial contents of a tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Init {
    /// Zero (DRAM starts zeroed).
    Zeros,
    /// All ones.
    Ones,
    /// The module's weight table entry of this name.
    Weight(String),
}

/// A tensor-table entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tensor {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Where it lives.
    pub loc: Loc,
    /// Initial contents.
    pub init: Init,
}

/// The storage type of masks of this shape: a bitmap when every tile boundary the lowering uses
/// falls on a byte (last dimension a multiple of 8 for activations, a multiple-of-8 row for
/// weights), else one byte per element (`e4m3` 0.0/1.0).
pub fn mask_dtype(shape: &[usize], weight: bool) -> DType {
    let unit = if weight {
        shape[1..].iter().product::<usize>()
    } else {
        shape.last().copied().unwrap_or(1)
    };
    if unit % 8 == 0 {
        DType::B1
    } else {
        DType::E4m3
    }
}

/// Storage element type of floating-point values of a kind at a precision.
pub fn storage(p: Precision, grad: bool) -> DType {
    match (p, grad) {
        (Precision::Fp32, _) => DType::F32,
        (Precision::Fp16, _) => DType::F16,
        (Precision::Fp8, false) => DType::E4m3,
        (Precision::Fp8, true) => DType::E5m2,
    }
}

/// Static shape of a tensor or mask type.
pub fn shape_of(t: &Type) -> Option<Vec<usize>> {
    crate::interp::static_shape(t)
}

/// Whether a mask value holds weight (pruning) masks rather than activation masks.
pub fn is_weight_mask(m: &Module, v: ValueId) -> bool {
    match m.defining_op(v) {
        Some(d) => match m.op(d).name() {
            "sdt.state" | "sdt.prune_mask" | "sdt.spec_s2" => true,
            "sdt.spec_s1" => false,
            _ => false,
        },
        None => false,
    }
}

/// Element type in DRAM of result `i` of `op` at precision `p`.
pub fn value_dtype(m: &Module, p: Precision, op: OpId, i: usize) -> DType {
    let o = m.op(op);
    let v = o.result(i);
    match m.ty(v) {
        Type::Mask { shape } => {
            let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
            return mask_dtype(&shape, is_weight_mask(m, v));
        }
        Type::Tensor(t) if t.elem == ElemType::I32 => return DType::I32,
        Type::Tensor(t) if t.elem == ElemType::I64 => return DType::I64,
        _ => {}
    }
    let phase = o.str_attr("phase").unwrap_or("");
    let activation = matches!(
        o.name(),
        "sdt.conv_ff"
            | "sdt.conv_bp"
            | "sdt.matmul_ff"
            | "sdt.matmul_bp"
            | "sdt.bias_add"
            | "sdt.bn_apply"
            | "sdt.bn_bwd"
            | "sdt.relu"
            | "sdt.clip"
            | "sdt.relu_bwd"
            | "sdt.pool_ff"
            | "sdt.pool_bwd"
            | "sdt.add"
            | "sdt.reduce_mean"
            | "sdt.reduce_mean_bwd"
    ) && i == 0;
    let masked_weight = o.name() == "sdt.apply_mask" && phase == "prune";
    let dlogits = o.name() == "sdt.softmax_ce" && i == 1;
    match phase {
        "ff" | "prune" if activation || masked_weight => storage(p, false),
        "bp" | "loss" if activation || dlogits => storage(p, true),
        _ => DType::F32,
    }
}

/// First-fit allocator of DRAM temporaries above the static tensors.
#[derive(Debug, Clone)]
pub struct Arena {
    base: u64,
    /// Free extents `(start, len)`, sorted, coalesced.
    free: Vec<(u64, u64)>,
    top: u64,
    /// Highest address ever used.
    pub high: u64,
}

fn align(v: u64) -> u64 {
    v.div_ceil(ALIGN) * ALIGN
}

impl Arena {
    /// An empty arena starting at `base`.
    pub fn new(base: u64) -> Self {
        let base = align(base);
        Arena {
            base,
            free: Vec::new(),
            top: base,
            high: base,
        }
    }

    /// Allocates `bytes` bytes.
    pub fn alloc(&mut self, bytes: u64) -> u64 {
        let bytes = align(bytes.max(1));
        if let Some(i) = self.free.iter().position(|&(_, len)| len >= bytes) {
            let (start, len) = self.free[i];
            if len == bytes {
                self.free.remove(i);
            } else {
                self.free[i] = (start + bytes, len - bytes);
            }
            return start;
        }
        let start = self.top;
        self.top += bytes;
        self.high = self.high.max(self.top);
        start
    }

    /// Returns an extent to the arena.
    pub fn release(&mut self, start: u64, bytes: u64) {
        let bytes = align(bytes.max(1));
        let i = self.free.partition_point(|&(s, _)| s < start);
        self.free.insert(i, (start, bytes));
        // Coalesce neighbours.
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.free.len());
        for &(s, l) in &self.free {
            match merged.last_mut() {
                Some((ps, pl)) if *ps + *pl == s => *pl += l,
                _ => merged.push((s, l)),
            }
        }
        if let Some(&(s, l)) = merged.last() {
            if s + l == self.top {
                self.top = s;
                merged.pop();
            }
        }
        self.free = merged;
    }

    /// Start of the arena.
    pub fn base(&self) -> u64 {
        self.base
    }
}

/// The static DRAM layout: tensor table and the location of every state value.
#[derive(Debug, Default)]
pub struct StaticPlan {
    /// Tensor table.
    pub tensors: Vec<Tensor>,
    /// DRAM location of `sdt.state` values and step arguments.
    pub locs: HashMap<ValueId, Loc>,
    /// BN block location by the `bn_finalize` op.
    pub blocks: HashMap<OpId, Loc>,
    /// End of the static area.
    pub end: u64,
}

impl StaticPlan {
    fn place(&mut self, name: &str, role: Role, dtype: DType, shape: Vec<usize>, init: Init) -> Loc {
        let loc = Loc {
            addr: self.end as u32,
            dtype,
            shape,
        };
        self.end = align(self.end + dtype.bytes(loc.elems() as u64));
        self.tensors.push(Tensor {
            name: name.to_string(),
            role,
            loc: loc.clone(),
            init,
        });
        loc
    }

    fn entry(&mut self, name: &str, role: Role, loc: Loc, init: Init) {
        self.tensors.push(Tensor {
            name: name.to_string(),
            role,
            loc,
            init,
        });
    }

    /// Location of tensor `name`.
    pub fn tensor(&self, name: &str) -> Option<&Loc> {
        self.tensors.iter().find(|t| t.name == name).map(|t| &t.loc)
    }
}

fn init_of(s: &str, name: &str) -> Init {
    match s {
        "weight" => Init::Weight(name.to_string()),
        "ones" => Init::Ones,
        _ => Init::Zeros,
    }
}

/// Lays out the static tensors of the step in `block` (its ops in order).
pub fn plan_static(
    m: &Module,
    ops: &[OpId],
    args: &[ValueId],
    logits_shape: Vec<usize>,
    p: Precision,
) -> Result<StaticPlan, String> {
    let mut plan = StaticPlan {
        end: ALIGN,
        ..Default::default()
    };
    let state_of = |v: ValueId| m.defining_op(v).filter(|&d| m.op(d).name() == "sdt.state");
    let mut done: HashMap<ValueId, ()> = HashMap::new();
    // BN layers first: block with γ, β inside; adjacent running statistics.
    for &op in ops.iter().filter(|&&o| m.op(o).name() == "sdt.bn_finalize") {
        let o = m.op(op);
        let [_, gamma, beta, rm, rv] = o.operands() else {
            return Err("bn_finalize needs 5 operands".into());
        };
        let c = shape_of(m.ty(*gamma))
            .map(|s| s.iter().product::<usize>())
            .ok_or("BN parameters need static shapes")?;
        let layer = o.str_attr("layer").unwrap_or("bn").to_string();
        let block = plan.place(
            &format!("{layer}.bn_block"),
            Role::Bnstat,
            DType::F32,
            vec![4, c],
            Init::Zeros,
        );
        for (row, v) in [(2usize, *gamma), (3, *beta)] {
            let loc = Loc {
                addr: block.addr + (row * c * 4) as u32,
                dtype: DType::F32,
                shape: vec![c],
            };
            if let Some(d) = state_of(v) {
                let name = m.op(d).str_attr("name")?.to_string();
                plan.entry(&name, Role::Param, loc.clone(), Init::Weight(name.clone()));
                done.insert(v, ());
            }
            plan.locs.insert(v, loc);
        }
        let running = plan.place(
            &format!("{layer}.running"),
            Role::Other,
            DType::F32,
            vec![2, c],
            Init::Zeros,
        );
        plan.tensors.pop();
        for (row, v) in [(0usize, *rm), (1, *rv)] {
            let loc = Loc {
                addr: running.addr + (row * c * 4) as u32,
                dtype: DType::F32,
                shape: vec![c],
            };
            if let Some(d) = state_of(v) {
                let name = m.op(d).str_attr("name")?.to_string();
                plan.entry(&name, Role::State, loc.clone(), Init::Weight(name.clone()));
                done.insert(v, ());
            }
            plan.locs.insert(v, loc);
        }
        plan.blocks.insert(op, block);
    }
    for &op in ops.iter().filter(|&&o| m.op(o).name() == "sdt.state") {
        let o = m.op(op);
        let v = o.result(0);
        let name = o.str_attr("name")?.to_string();
        if done.contains_key(&v) || name == "step" {
            continue;
        }
        let shape = shape_of(m.ty(v)).ok_or_else(|| format!("state `{name}` needs a static shape"))?;
        let (role, dtype) = match o.str_attr("role")? {
            "param" => (Role::Param, DType::F32),
            "mask" => (Role::Mask, mask_dtype(&shape, true)),
            "const" => (Role::Other, DType::F32),
            _ => (Role::State, DType::F32),
        };
        let loc = plan.place(&name, role, dtype, shape, init_of(o.str_attr("init")?, &name));
        plan.locs.insert(v, loc);
    }
    let [x, y] = args else {
        return Err("the step must take (input, labels)".into());
    };
    let xs = shape_of(m.ty(*x)).ok_or("the input needs a static shape")?;
    let ys = shape_of(m.ty(*y)).ok_or("the labels need a static shape")?;
    let xl = plan.place("input", Role::Input, storage(p, false), xs, Init::Zeros);
    let yl = plan.place("labels", Role::Label, DType::I64, ys, Init::Zeros);
    plan.locs.insert(*x, xl);
    plan.locs.insert(*y, yl);
    plan.place("logits", Role::Logits, DType::F32, logits_shape, Init::Zeros);
    plan.place("loss", Role::Loss, DType::F32, vec![1], Init::Zeros);
    Ok(plan)
}
