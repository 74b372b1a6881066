//! Layout and combination ops: flatten/reshape (`sdt.reshape` both ways), identity/dropout (no
//! op; gradients pass through), add (`sdt.add`; the gradient goes to both operands), concat
//! (`sdt.concat`; backward `sdt.slice` per operand).

use super::Ctx;
use crate::ir::{Attribute, Module, Operation, ValueId};
use crate::sdt::ops::AttrExt;

/// Emits the forward op and records the backward rule.
pub(crate) fn forward(
    cx: &mut Ctx,
    tg: &Module,
    op: &Operation,
    xs: &[ValueId],
) -> Result<Vec<ValueId>, String> {
    let ty = tg.ty(op.result(0)).clone();
    match op.name() {
        "tg.identity" | "tg.dropout" => Ok(vec![xs[0]]),
        "tg.flatten" | "tg.reshape" => {
            let x = xs[0];
            let y = cx.emit1("sdt.reshape", "ff", &[x], ty, vec![]);
            cx.on_backward(move |cx| {
                if let Some(dy) = cx.grad(y).filter(|_| cx.needs(x)) {
                    let dx = cx.emit1("sdt.reshape", "bp", &[dy], cx.ty(x), vec![]);
                    cx.accumulate(x, dx);
                }
                Ok(())
            });
            Ok(vec![y])
        }
        "tg.add" => {
            let (a, b) = (xs[0], xs[1]);
            for v in [a, b] {
                if cx.needs(v) && cx.ty(v) != ty {
                    return Err("broadcasting add of a trained value is not supported".into());
                }
            }
            let y = cx.emit1("sdt.add", "ff", &[a, b], ty, vec![]);
            cx.on_backward(move |cx| {
                if let Some(dy) = cx.grad(y) {
                    for v in [a, b] {
                        if cx.needs(v) {
                            cx.accumulate(v, dy);
                        }
                    }
                }
                Ok(())
            });
            Ok(vec![y])
        }
        _ => {
            let axis = op.int_attr("axis")?;
            let y = cx.emit1("sdt.concat", "ff", xs, ty, vec![("axis", Attribute::Int(axis))]);
            let inputs = xs.to_vec();
            cx.on_backward(move |cx| {
                let Some(dy) = cx.grad(y) else { return Ok(()) };
                let mut start = 0;
                for x in inputs {
                    let xty = cx.ty(x);
                    let len = xty.as_tensor().map_or(0, |t| t.shape[axis as usize]);
                    if cx.needs(x) {
                        let attrs = vec![("axis", Attribute::Int(axis)), ("start", Attribute::Int(start))];
                        let dx = cx.emit1("sdt.slice", "bp", &[dy], xty, attrs);
                        cx.accumulate(x, dx);
                    }
                    start += len;
                }
                Ok(())
            });
            Ok(vec![y])
        }
    }
}
