//! `canonicalize`: local simplifications of `tg` ops, repeated to a fixpoint.
//!
//! * `tg.identity(x)`, `tg.dropout(x)` → `x`;
//! * `tg.reshape`/`tg.flatten` whose result type equals its operand type → the operand;
//! * a reshape/flatten of a reshape/flatten → one `tg.reshape` of the original operand;
//! * a reshape/flatten of a `tg.constant` → a `tg.constant` of the new shape.
//!
//! Ops made dead by a rewrite are erased when pure.

use super::{Pass, PassContext};
use crate::ir::{Attribute, InsertPoint, Module, OpId, OperationState};

/// The canonicalizer.
pub struct Canonicalize;

const RESHAPES: [&str; 2] = ["tg.reshape", "tg.flatten"];

/// Applies one rewrite to `o`; returns whether anything changed.
fn rewrite(m: &mut Module, o: OpId) -> bool {
    let op = m.op(o);
    let name = op.name();
    if op.operands().len() != 1 || op.results().len() != 1 {
        return false;
    }
    let (x, r) = (op.operand(0), op.result(0));
    let forwards =
        matches!(name, "tg.identity" | "tg.dropout") || (RESHAPES.contains(&name) && m.ty(x) == m.ty(r));
    if forwards {
        m.replace_all_uses(r, x);
        m.erase_op(o);
        return true;
    }
    if !RESHAPES.contains(&name) {
        return false;
    }
    let Some(def) = m.defining_op(x) else {
        return false;
    };
    let Some(shape) = m.ty(r).as_tensor().map(|t| t.shape.clone()) else {
        return false;
    };
    let d = m.op(def);
    if RESHAPES.contains(&d.name()) {
        let src = d.operand(0);
        let st = OperationState::new("tg.reshape")
            .operands(&[src])
            .results(&[m.ty(r).clone()])
            .attr("shape", Attribute::ints(&shape))
            .loc(m.op(o).loc.clone());
        replace(m, o, st);
        return true;
    }
    if d.name() == "tg.constant" {
        if let Some(mut dense) = d.attr("value").and_then(Attribute::as_dense).cloned() {
            dense.shape = shape;
            let st = OperationState::new("tg.constant")
                .results(&[m.ty(r).clone()])
                .attr("value", Attribute::Dense(dense))
                .loc(m.op(o).loc.clone());
            replace(m, o, st);
            return true;
        }
    }
    false
}

/// Replaces single-result `o` by a new op built from `st`, inserted before it.
fn replace(m: &mut Module, o: OpId, st: OperationState) {
    let new = m.insert_op(InsertPoint::Before(o), st);
    let (old_v, new_v) = (m.op(o).result(0), m.op(new).result(0));
    m.replace_all_uses(old_v, new_v);
    m.erase_op(o);
}

impl Pass for Canonicalize {
    fn name(&self) -> &str {
        "canonicalize"
    }

    fn run(&mut self, m: &mut Module, cx: &PassContext<'_>) -> Result<(), String> {
        loop {
            let mut changed = false;
            for o in m.all_ops() {
                if !m.op(o).is_erased() {
                    changed |= rewrite(m, o);
                }
            }
            // Erase pure ops left without users by the rewrites.
            let uses = m.use_counts();
            for o in m.all_ops().into_iter().rev() {
                let op = m.op(o);
                let dead = cx.registry.is_pure(op.name())
                    && !op.results().is_empty()
                    && op.regions().is_empty()
                    && op.results().iter().all(|r| uses[r.index()] == 0)
                    && RESHAPES.iter().chain(&["tg.constant"]).any(|n| *n == op.name());
                if dead {
                    m.erase_op(o);
                    changed = true;
                }
            }
            if !changed {
                return Ok(());
            }
        }
    }
}
