//! ReLU and clip (ReLU6): forward with the mask of passed elements, backward `relu_bwd` by mask.

use super::Ctx;
use crate::ir::{Attribute, Module, Operation, Type, ValueId};
use crate::sdt::ops::AttrExt;

/// Emits the forward op and records the backward rule.
pub(crate) fn forward(
    cx: &mut Ctx,
    tg: &Module,
    op: &Operation,
    xs: &[ValueId],
) -> Result<Vec<ValueId>, String> {
    let x = xs[0];
    let ty = tg.ty(op.result(0)).clone();
    let mask_ty = Type::Mask {
        shape: ty.as_tensor().map(|t| t.shape.clone()).unwrap_or_default(),
    };
    let (name, attrs) = if op.name() == "tg.clip" {
        let bounds = vec![
            ("min", Attribute::Float(op.float_attr("min")?)),
            ("max", Attribute::Float(op.float_attr("max")?)),
        ];
        ("sdt.clip", bounds)
    } else {
        ("sdt.relu", vec![])
    };
    let r = cx.emit(name, "ff", &[x], &[ty, mask_ty], attrs);
    let (y, mask) = (r[0], r[1]);
    cx.on_backward(move |cx| {
        if let Some(dy) = cx.grad(y).filter(|_| cx.needs(x)) {
            let dx = cx.emit1("sdt.relu_bwd", "bp", &[dy, mask], cx.ty(x), vec![]);
            cx.accumulate(x, dx);
        }
        Ok(())
    });
    Ok(vec![y])
}
