//! Batch normalization in training mode: `bn_stats`, `bn_finalize` (batch mean and inverse
//! deviation, running statistics updated with PyTorch momentum `1 − ONNX momentum` and the
//! unbiased batch variance), `bn_apply`; backward `bn_bwd_reduce` (dγ, dβ) and `bn_bwd` (dx).

use super::Ctx;
use crate::ir::{Attribute, ElemType, Module, Operation, Type, ValueId};
use crate::sdt::ops::AttrExt;

/// Emits the forward ops and records the backward rule.
pub(crate) fn forward(
    cx: &mut Ctx,
    tg: &Module,
    op: &Operation,
    xs: &[ValueId],
) -> Result<Vec<ValueId>, String> {
    let [x, gamma, beta, rm, rv] = xs else {
        return Err("expected 5 operands".into());
    };
    let (x, gamma, beta) = (*x, *gamma, *beta);
    let names = (
        cx.state_name(*rm).map(str::to_string),
        cx.state_name(*rv).map(str::to_string),
    );
    let (Some(rm_name), Some(rv_name)) = names else {
        return Err("the running statistics must be parameters".into());
    };
    let xty = tg.ty(op.result(0)).clone();
    let shape = xty.as_tensor().map(|t| t.shape.clone()).unwrap_or_default();
    if shape.len() < 2 {
        return Err("the input must have rank >= 2".into());
    }
    let c = shape[1];
    let count: i64 = shape[0] * shape[2..].iter().product::<i64>();
    let f32t = |s: &[i64]| Type::tensor(s.to_vec(), ElemType::F32);
    let stats = cx.emit1("sdt.bn_stats", "ff", &[x], f32t(&[2, c]), vec![]);
    let attrs = vec![
        ("count", Attribute::Int(count)),
        ("epsilon", Attribute::Float(op.float_attr("epsilon")?)),
        (
            "momentum",
            Attribute::Float(pytorch_momentum(op.float_attr("momentum")?)),
        ),
    ];
    let fin = cx.emit(
        "sdt.bn_finalize",
        "bn",
        &[stats, gamma, beta, *rm, *rv],
        &[f32t(&[4, c]), cx.ty(*rm), cx.ty(*rv)],
        attrs,
    );
    let block = fin[0];
    cx.assign(&rm_name, fin[1]);
    cx.assign(&rv_name, fin[2]);
    let y = cx.emit1("sdt.bn_apply", "ff", &[x, block], xty, vec![]);
    cx.on_backward(move |cx| {
        let Some(dy) = cx.grad(y) else { return Ok(()) };
        let (gty, bty) = (cx.ty(gamma), cx.ty(beta));
        let sums = cx.emit("sdt.bn_bwd_reduce", "bp", &[dy, x, block], &[gty, bty], vec![]);
        if cx.needs(x) {
            let dx = cx.emit1(
                "sdt.bn_bwd",
                "bp",
                &[dy, x, block, sums[0], sums[1]],
                cx.ty(x),
                vec![],
            );
            cx.accumulate(x, dx);
        }
        cx.accumulate(gamma, sums[0]);
        cx.accumulate(beta, sums[1]);
        Ok(())
    });
    Ok(vec![y, fin[1], fin[2]][..op.results().len()].to_vec())
}

/// PyTorch's momentum (weight of the new statistic) from ONNX's (weight of the old running value),
/// rounded to 9 decimals so that `1 − 0.9` reads `0.1` (far below f32 resolution).
fn pytorch_momentum(onnx: f64) -> f64 {
    ((1.0 - onnx) * 1e9).round() / 1e9
}
