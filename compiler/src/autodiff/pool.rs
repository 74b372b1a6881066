//! Pooling and mean reduction: `pool_ff` / `pool_bwd` (max with argmax indices, average, global
//! average), `reduce_mean` / `reduce_mean_bwd`.

use super::Ctx;
use crate::ir::{Attribute, ElemType, Module, Operation, Type, ValueId};

/// Emits the forward op and records the backward rule.
pub(crate) fn forward(
    cx: &mut Ctx,
    tg: &Module,
    op: &Operation,
    xs: &[ValueId],
) -> Result<Vec<ValueId>, String> {
    let x = xs[0];
    let ty = tg.ty(op.result(0)).clone();
    let copy = |keys: &[&'static str]| -> Vec<(&'static str, Attribute)> {
        keys.iter()
            .filter_map(|&k| op.attr(k).map(|a| (k, a.clone())))
            .collect()
    };
    if op.name() == "tg.reduce_mean" {
        let attrs = copy(&["axes", "keepdims"]);
        let y = cx.emit1("sdt.reduce_mean", "ff", &[x], ty, attrs.clone());
        cx.on_backward(move |cx| {
            if let Some(dy) = cx.grad(y).filter(|_| cx.needs(x)) {
                let dx = cx.emit1("sdt.reduce_mean_bwd", "bp", &[dy], cx.ty(x), attrs);
                cx.accumulate(x, dx);
            }
            Ok(())
        });
        return Ok(vec![y]);
    }
    let (kind, mut attrs) = match op.name() {
        "tg.max_pool" => ("max", copy(&["kernel_shape", "strides", "pads", "dilations"])),
        "tg.average_pool" => (
            "avg",
            copy(&["kernel_shape", "strides", "pads", "count_include_pad"]),
        ),
        _ => ("gavg", vec![]),
    };
    attrs.push(("kind", Attribute::str(kind)));
    let mut types = vec![ty.clone()];
    if kind == "max" {
        types.push(Type::tensor(
            ty.as_tensor().map(|t| t.shape.clone()).unwrap_or_default(),
            ElemType::I32,
        ));
    }
    let r = cx.emit("sdt.pool_ff", "ff", &[x], &types, attrs.clone());
    let (y, idx) = (r[0], r.get(1).copied());
    cx.on_backward(move |cx| {
        if let Some(dy) = cx.grad(y).filter(|_| cx.needs(x)) {
            let operands: Vec<ValueId> = std::iter::once(dy).chain(idx).collect();
            let dx = cx.emit1("sdt.pool_bwd", "bp", &operands, cx.ty(x), attrs);
            cx.accumulate(x, dx);
        }
        Ok(())
    });
    Ok(vec![y])
}
