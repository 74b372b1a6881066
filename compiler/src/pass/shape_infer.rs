//! `shape-infer`: recomputes the result types of every `tg` compute op from its operand types
//! and attributes with the shape rules of [`crate::dialect::tg_shapes`], in program order, so
//! changed input shapes propagate through the graph.

use super::{Pass, PassContext};
use crate::dialect::tg_shapes;
use crate::ir::{Module, Type};

/// Shape inference.
pub struct ShapeInfer;

impl Pass for ShapeInfer {
    fn name(&self) -> &str {
        "shape-infer"
    }

    fn run(&mut self, m: &mut Module, _: &PassContext<'_>) -> Result<(), String> {
        for o in m.all_ops() {
            let op = m.op(o);
            if !tg_shapes::OPS.contains(&op.name()) {
                continue;
            }
            let ins: Vec<Type> = op.operands().iter().map(|&v| m.ty(v).clone()).collect();
            let want = tg_shapes::infer(op.name(), &ins, &op.attrs)
                .map_err(|e| format!("'{}' at {}: {e}", op.name(), op.loc))?;
            let results = op.results().to_vec();
            if want.len() != results.len() {
                return Err(format!(
                    "'{}' at {}: has {} results, the shape rule gives {}",
                    op.name(),
                    op.loc,
                    results.len(),
                    want.len()
                ));
            }
            for (v, t) in results.into_iter().zip(want) {
                m.set_type(v, t);
            }
        }
        Ok(())
    }
}
