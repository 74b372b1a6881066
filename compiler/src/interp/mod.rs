//! IR-level reference interpreter (fp32, plain loops): the ground truth that later stages and the
//! simulator are compared against.
//!
//! * [`run_graph`] evaluates a `tg.graph` forward (batch normalization in training form uses the
//!   batch statistics and returns the updated running statistics).
//! * [`run_step`] executes an `sdt.step` training program: `step(state, x, y) → (state', loss,
//!   logits)`. [`State`] holds every persistent tensor by name (parameters, momentum buffers,
//!   masks, BN running statistics, the step counter); [`State::init`] creates it from the
//!   program's `sdt.state` ops and the module's weight table.

pub(crate) mod geom;
pub mod kernels;
mod sdt;
mod tg;

pub use sdt::{run_step, StepOutputs};
pub use tg::run_graph;

use crate::ir::{Module, OpId, TensorData, Type};
use std::collections::BTreeMap;

/// An interpreter error.
#[derive(Debug, thiserror::Error)]
pub enum InterpError {
    /// The module has no graph / step op of the expected kind.
    #[error("no `{0}` op in the module")]
    NoEntry(&'static str),
    /// An input does not match the program.
    #[error("input {index}: {msg}")]
    Input {
        /// Input position.
        index: usize,
        /// What is wrong.
        msg: String,
    },
    /// An op the interpreter cannot execute, or malformed attributes.
    #[error("`{op}`: {msg}")]
    Op {
        /// Op name.
        op: String,
        /// What is wrong.
        msg: String,
    },
    /// A state tensor is missing.
    #[error("state tensor `{0}` is missing")]
    MissingState(String),
}

impl InterpError {
    /// An error about op `op` of module `m`.
    pub(crate) fn op(m: &Module, op: OpId, msg: impl Into<String>) -> Self {
        InterpError::Op {
            op: m.op(op).name().to_string(),
            msg: msg.into(),
        }
    }
}

/// Persistent training state: tensors by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    /// Every state tensor (step counter: a rank-0 tensor holding the step index).
    pub tensors: BTreeMap<String, TensorData>,
}

impl State {
    /// Initial state of the `sdt.step` program in `m`: `init = "weight"` tensors from the weight
    /// table, `"zeros"` / `"ones"` filled.
    pub fn init(m: &Module) -> Result<State, InterpError> {
        use crate::sdt::ops::AttrExt;
        let mut tensors = BTreeMap::new();
        for op in m.all_ops().into_iter().filter(|&o| m.op(o).name() == "sdt.state") {
            let o = m.op(op);
            let err = |msg: String| InterpError::op(m, op, msg);
            let name = o.str_attr("name").map_err(err)?;
            let shape =
                static_shape(m.ty(o.result(0))).ok_or_else(|| err("state type must be static".into()))?;
            let n = shape.iter().product();
            let t = match o.str_attr("init").map_err(err)? {
                "weight" => m
                    .weights
                    .get(name)
                    .cloned()
                    .ok_or_else(|| InterpError::MissingState(name.into()))?,
                "zeros" => TensorData {
                    shape,
                    data: vec![0.0; n],
                },
                "ones" => TensorData {
                    shape,
                    data: vec![1.0; n],
                },
                other => return Err(err(format!("unknown init `{other}`"))),
            };
            tensors.insert(name.to_string(), t);
        }
        Ok(State { tensors })
    }
}

/// Static shape of a tensor or mask type.
pub(crate) fn static_shape(t: &Type) -> Option<Vec<usize>> {
    let dims = match t {
        Type::Tensor(t) => &t.shape,
        Type::Mask { shape } => shape,
        _ => return None,
    };
    dims.iter().map(|&d| usize::try_from(d).ok()).collect()
}
