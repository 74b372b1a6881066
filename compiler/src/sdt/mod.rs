//! The `sdt` training program: dialect conventions ([`ops`]) and the SDT passes, each switchable:
//!
//! * [`prune::run`] (`sdt-prune`) — pruning masks on conv/linear weights;
//! * [`speculate::run`] (`sdt-speculate`) — S1 (exact), S2, S3 speculation predicates;
//! * [`bn_decouple::run`] (`sdt-bn-decouple`) — BN statistics, normalization and BP reductions
//!   fused into the neighbouring compute ops;
//! * [`dataflow::run`] (`sdt-dataflow`) — per layer and phase dataflow from a cost model.
//!
//! [`run_pipeline`] runs them in that order as [`SdtOptions`] says. `spec/passes.md` documents
//! every pass and option.

pub mod bn_decouple;
pub mod dataflow;
pub mod ops;
pub mod prune;
pub mod registry;
pub mod speculate;

use crate::ir::{Attribute, BlockId, InsertPoint, Module, OpId, OperationState, Type, ValueId};
use ops::AttrExt;

/// An SDT pass error.
#[derive(Debug, thiserror::Error)]
pub enum SdtError {
    /// The module holds no `sdt.step` (run `autodiff` first).
    #[error("no `sdt.step` in the module (run autodiff first)")]
    NoStep,
    /// A malformed program or option.
    #[error("{0}")]
    Invalid(String),
}

/// Which speculation predicates to insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Speculation {
    /// S1: skip input gradients where the forward ReLU mask is 0 (exact).
    pub s1: bool,
    /// S2: skip weight gradients of weights predicted to stay pruned.
    pub s2: bool,
    /// S3: skip full-precision conv outputs the following BN+ReLU is predicted to zero.
    pub s3: bool,
}

impl Speculation {
    /// All off.
    pub const NONE: Speculation = Speculation {
        s1: false,
        s2: false,
        s3: false,
    };
    /// Only the exact one (S1): the default.
    pub const EXACT: Speculation = Speculation {
        s1: true,
        s2: false,
        s3: false,
    };
    /// All on.
    pub const ALL: Speculation = Speculation {
        s1: true,
        s2: true,
        s3: true,
    };
}

/// How `sdt-dataflow` assigns dataflows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataflowMode {
    /// Compile-time choice from the cost model.
    Static,
    /// Mark every compute op for run-time choice (`adaptive`), keeping the static choice as hint.
    Adaptive,
    /// One dataflow (`ws`, `os` or `is`) everywhere.
    Fixed(String),
}

/// Options of the SDT passes.
#[derive(Clone, Debug, PartialEq)]
pub struct SdtOptions {
    /// Target weight sparsity (0: `sdt-prune` does nothing).
    pub sparsity: f64,
    /// Ramp the sparsity linearly from 0 over this many steps (0: constant).
    pub ramp_steps: u64,
    /// Recompute the masks every this many steps (ΔT).
    pub interval: u64,
    /// Sparse WG: only unpruned weights get gradients (default DPF: all do).
    pub sparse_wg: bool,
    /// Do not prune the first conv/linear layer.
    pub exempt_first: bool,
    /// Do not prune the last conv/linear layer.
    pub exempt_last: bool,
    /// Speculation predicates.
    pub speculation: Speculation,
    /// S2 magnitude margin (fraction of the top-k threshold).
    pub s2_margin: f64,
    /// S3 threshold on the predicted BN output.
    pub s3_threshold: f64,
    /// Decoupled BN (else conventional separate passes).
    pub bn_decoupled: bool,
    /// Dataflow assignment.
    pub dataflow: DataflowMode,
}

impl Default for SdtOptions {
    fn default() -> Self {
        SdtOptions {
            sparsity: 0.0,
            ramp_steps: 0,
            interval: 1,
            sparse_wg: false,
            exempt_first: false,
            exempt_last: false,
            speculation: Speculation::EXACT,
            s2_margin: 0.1,
            s3_threshold: 0.0,
            bn_decoupled: true,
            dataflow: DataflowMode::Static,
        }
    }
}

/// Runs `sdt-prune` (if `sparsity > 0`), `sdt-speculate`, `sdt-bn-decouple` (if decoupled) and
/// `sdt-dataflow` on the training program in `m`.
pub fn run_pipeline(m: &mut Module, o: &SdtOptions) -> Result<(), SdtError> {
    if o.sparsity > 0.0 {
        prune::run(m, o)?;
    }
    speculate::run(m, o)?;
    if o.bn_decoupled {
        bn_decouple::run(m)?;
    }
    dataflow::run(m, o)
}

/// The body block of the `sdt.step` op.
pub fn step_block(m: &Module) -> Result<BlockId, SdtError> {
    let step = m
        .block(m.body())
        .ops()
        .iter()
        .copied()
        .find(|&o| m.op(o).name() == "sdt.step")
        .ok_or(SdtError::NoStep)?;
    Ok(m.region(m.op(step).regions()[0]).blocks()[0])
}

/// Live ops of the step named `name`, in order.
pub(crate) fn ops_named(m: &Module, block: BlockId, name: &str) -> Vec<OpId> {
    m.block(block)
        .ops()
        .iter()
        .copied()
        .filter(|&o| m.op(o).name() == name)
        .collect()
}

/// The op defining `v` if it is named `name`.
pub(crate) fn def_named(m: &Module, v: ValueId, name: &str) -> Option<OpId> {
    m.defining_op(v).filter(|&d| m.op(d).name() == name)
}

/// The `sdt.state` value named `name`.
pub(crate) fn state_value(m: &Module, block: BlockId, name: &str) -> Option<ValueId> {
    ops_named(m, block, "sdt.state")
        .into_iter()
        .find(|&o| m.op(o).str_attr("name").ok() == Some(name))
        .map(|o| m.op(o).result(0))
}

/// Inserts `op` at `at` with `layer`/`phase` and `attrs`; returns its results.
pub(crate) fn insert(
    m: &mut Module,
    at: InsertPoint,
    name: &str,
    (layer, phase): (&str, &str),
    operands: &[ValueId],
    types: &[Type],
    attrs: Vec<(&str, Attribute)>,
) -> Vec<ValueId> {
    let mut st = OperationState::new(name).operands(operands).results(types);
    st.attrs.insert("layer".into(), Attribute::str(layer));
    st.attrs.insert("phase".into(), Attribute::str(phase));
    st.attrs
        .extend(attrs.into_iter().map(|(k, v)| (k.to_string(), v)));
    let op = m.insert_op(at, st);
    m.op(op).results().to_vec()
}

/// Inserts `sdt.state {name, role, init}` before the first non-state op of the step.
pub(crate) fn new_state(
    m: &mut Module,
    block: BlockId,
    name: &str,
    role: &str,
    init: &str,
    ty: Type,
) -> Result<ValueId, SdtError> {
    let at = first_compute(m, block)?;
    let attrs = vec![
        ("name", Attribute::str(name)),
        ("role", Attribute::str(role)),
        ("init", Attribute::str(init)),
    ];
    Ok(insert(
        m,
        InsertPoint::Before(at),
        "sdt.state",
        ("state", "state"),
        &[],
        &[ty],
        attrs,
    )[0])
}

/// The first op of the step that is not an `sdt.state`.
pub(crate) fn first_compute(m: &Module, block: BlockId) -> Result<OpId, SdtError> {
    m.block(block)
        .ops()
        .iter()
        .copied()
        .find(|&o| m.op(o).name() != "sdt.state")
        .ok_or_else(|| SdtError::Invalid("empty step".into()))
}

/// Inserts `sdt.assign {name}(v)` before the step's `sdt.return`.
pub(crate) fn new_assign(m: &mut Module, block: BlockId, name: &str, v: ValueId) -> Result<(), SdtError> {
    let ret = *ops_named(m, block, "sdt.return")
        .first()
        .ok_or_else(|| SdtError::Invalid("no `sdt.return`".into()))?;
    let st = OperationState::new("sdt.assign")
        .operands(&[v])
        .attr("name", Attribute::str(name));
    m.insert_op(InsertPoint::Before(ret), st);
    Ok(())
}

/// Replaces `op` by a copy with an extra fused `feature`, `operands` and `types` (the full new
/// lists) and extra `attrs`. Old result `i` is replaced by new result `i`; returns the new op.
pub(crate) fn refuse(
    m: &mut Module,
    op: OpId,
    feature: &str,
    operands: Vec<ValueId>,
    types: Vec<Type>,
    attrs: Vec<(&str, Attribute)>,
) -> OpId {
    let old = m.op(op).clone();
    let mut feats = ops::features(&old);
    feats.push(feature);
    let mut st = OperationState::new(old.name())
        .operands(&operands)
        .results(&types)
        .loc(old.loc.clone());
    st.attrs = old.attrs.clone();
    st.attrs.insert("fused".into(), ops::fused_attr(&feats));
    st.attrs
        .extend(attrs.into_iter().map(|(k, v)| (k.to_string(), v)));
    let new = m.insert_op(InsertPoint::Before(op), st);
    for (i, &r) in old.results().iter().enumerate() {
        let nr = m.op(new).result(i);
        m.replace_all_uses(r, nr);
    }
    m.erase_op(op);
    new
}

/// The operands of `op` with `extra` inserted where feature `feature`'s operands go (after
/// `fixed` ones and those of the features before it).
pub(crate) fn with_operands(
    m: &Module,
    op: OpId,
    fixed: usize,
    feature: &str,
    extra: &[ValueId],
) -> Vec<ValueId> {
    let o = m.op(op);
    let at = fixed
        + ops::FEATURES
            .iter()
            .take_while(|&&f| f != feature)
            .filter(|f| o.has_feature(f))
            .map(|f| ops::operand_count(o.name(), f))
            .sum::<usize>();
    let mut v = o.operands().to_vec();
    v.splice(at..at, extra.iter().copied());
    v
}

/// The layer name of an op.
pub(crate) fn layer_of(m: &Module, op: OpId) -> String {
    m.op(op).str_attr("layer").unwrap_or("").to_string()
}
