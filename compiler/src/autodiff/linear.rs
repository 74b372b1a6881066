//! Convolution, Gemm and MatMul: `conv_ff`/`matmul_ff` (+ `bias_add`), BP `conv_bp`/`matmul_bp`,
//! WG `conv_wg`/`matmul_wg` (+ `bias_grad`).

use super::Ctx;
use crate::ir::{Attribute, Module, Operation, ValueId};
use crate::sdt::ops::AttrExt;

/// Emits the forward ops and records the backward rule.
pub(crate) fn forward(
    cx: &mut Ctx,
    tg: &Module,
    op: &Operation,
    xs: &[ValueId],
) -> Result<Vec<ValueId>, String> {
    let (x, w, b) = (xs[0], xs[1], xs.get(2).copied());
    if cx.state_name(w).is_none() {
        return Err("the second operand must be a parameter (weights)".into());
    }
    let (kind, attrs) = match op.name() {
        "tg.conv" => {
            let attrs = ["strides", "pads", "dilations", "group"]
                .iter()
                .map(|&k| Ok((k, op.req(k)?.clone())))
                .collect::<Result<Vec<_>, String>>()?;
            ("conv", attrs)
        }
        "tg.gemm" => {
            if op.flag("trans_a")
                || op.float_attr("alpha")? != 1.0
                || (b.is_some() && op.float_attr("beta")? != 1.0)
            {
                return Err("only Gemm with trans_a = false, alpha = 1, beta = 1 is supported".into());
            }
            ("matmul", vec![("trans_b", Attribute::Bool(op.flag("trans_b")))])
        }
        _ => ("matmul", vec![("trans_b", Attribute::Bool(false))]),
    };
    let out_ty = tg.ty(op.result(0)).clone();
    if kind == "matmul"
        && (cx.ty(x).as_tensor().map(|t| t.rank()) != Some(2)
            || cx.ty(w).as_tensor().map(|t| t.rank()) != Some(2))
    {
        return Err("only 2-D matrix products are supported".into());
    }
    let y = cx.emit1(
        &format!("sdt.{kind}_ff"),
        "ff",
        &[x, w],
        out_ty.clone(),
        attrs.clone(),
    );
    let out = match b {
        Some(b) => {
            let n = out_ty
                .as_tensor()
                .map_or(0, |t| t.shape.get(1).copied().unwrap_or(1));
            if cx.ty(b).as_tensor().and_then(|t| t.num_elements()) != Some(n) {
                return Err("the bias must have one element per output channel".into());
            }
            cx.emit1("sdt.bias_add", "ff", &[y, b], out_ty, vec![])
        }
        None => y,
    };
    cx.on_backward(move |cx| {
        let Some(dy) = cx.grad(out) else { return Ok(()) };
        if let Some(b) = b.filter(|&b| cx.needs(b)) {
            let db = cx.emit1("sdt.bias_grad", "wg", &[dy], cx.ty(b), vec![]);
            cx.accumulate(b, db);
        }
        if cx.needs(w) {
            let dw = cx.emit1(&format!("sdt.{kind}_wg"), "wg", &[x, dy], cx.ty(w), attrs.clone());
            cx.accumulate(w, dw);
        }
        if cx.needs(x) {
            let dx = cx.emit1(&format!("sdt.{kind}_bp"), "bp", &[dy, w], cx.ty(x), attrs);
            cx.accumulate(x, dx);
        }
        Ok(())
    });
    Ok(vec![out])
}
