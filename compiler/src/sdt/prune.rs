//! `sdt-prune`: dynamic magnitude pruning masks for conv and linear weights.
//!
//! For each prunable weight `w` (operand 1 of a `conv_ff`/`matmul_ff`, read from an `sdt.state`
//! parameter; first/last layer optionally exempt), inserts a mask state `<w>.mask` (all ones
//! initially), `%m = sdt.prune_mask(%w, %old_mask, %step)` (recomputed when
//! `step % interval == 0`, keeping the top-k magnitudes at the scheduled sparsity) and
//! `%wm = sdt.apply_mask(%w, %m)`, which replaces `w` in FF and BP (DPF: the gradient w.r.t. the
//! masked weight is applied to the dense `w`). With sparse WG the gradient is masked too.

use super::{
    def_named, first_compute, insert, new_assign, new_state, ops_named, state_value, step_block, SdtError,
    SdtOptions,
};
use crate::ir::{Attribute, InsertPoint, Module, Type, ValueId};
use crate::sdt::ops::AttrExt;

/// Runs the pass.
pub fn run(m: &mut Module, o: &SdtOptions) -> Result<(), SdtError> {
    if !(0.0..1.0).contains(&o.sparsity) {
        return Err(SdtError::Invalid(format!(
            "sparsity {} must be in [0, 1)",
            o.sparsity
        )));
    }
    let block = step_block(m)?;
    let step = state_value(m, block, "step").ok_or_else(|| SdtError::Invalid("no `step` state".into()))?;
    // Prunable weights in order of first forward use.
    let mut weights: Vec<(ValueId, String)> = Vec::new();
    for op in m.block(block).ops().to_vec() {
        let op_ = m.op(op);
        if !matches!(op_.name(), "sdt.conv_ff" | "sdt.matmul_ff") {
            continue;
        }
        let w = op_.operand(1);
        if let Some(d) = def_named(m, w, "sdt.state") {
            if m.op(d).str_attr("role").ok() == Some("param") && !weights.iter().any(|(v, _)| *v == w) {
                weights.push((w, m.op(d).str_attr("name").unwrap_or("").to_string()));
            }
        }
    }
    let n = weights.len();
    // Mask computations go before the first op of the forward pass, in weight order.
    let anchor = InsertPoint::Before(first_compute(m, block)?);
    let keep = |i: usize| !(o.exempt_first && i == 0 || o.exempt_last && i + 1 == n);
    for (_, (w, name)) in weights.into_iter().enumerate().filter(|(i, _)| keep(*i)) {
        let shape = m.ty(w).as_tensor().map(|t| t.shape.clone()).unwrap_or_default();
        let mty = Type::Mask { shape };
        let layer = name.strip_suffix(".weight").unwrap_or(&name).to_string();
        let uses = m.uses(w);
        let mask_name = format!("{name}.mask");
        let old = new_state(m, block, &mask_name, "mask", "ones", mty.clone())?;
        let attrs = vec![
            ("sparsity", Attribute::Float(o.sparsity)),
            ("ramp_steps", Attribute::Int(o.ramp_steps as i64)),
            ("interval", Attribute::Int(o.interval.max(1) as i64)),
        ];
        let mask = insert(
            m,
            anchor,
            "sdt.prune_mask",
            (&layer, "prune"),
            &[w, old, step],
            &[mty],
            attrs,
        )[0];
        let wm = insert(
            m,
            anchor,
            "sdt.apply_mask",
            (&layer, "prune"),
            &[w, mask],
            &[m.ty(w).clone()],
            vec![],
        )[0];
        for (user, i) in uses {
            let name = m.op(user).name();
            if matches!(
                name,
                "sdt.conv_ff" | "sdt.conv_bp" | "sdt.matmul_ff" | "sdt.matmul_bp"
            ) && i == 1
            {
                m.set_operand(user, i, wm);
            }
        }
        new_assign(m, block, &mask_name, mask)?;
        if o.sparse_wg {
            for sgd in ops_named(m, block, "sdt.sgd") {
                if m.op(sgd).str_attr("param").ok() == Some(name.as_str()) {
                    let g = m.op(sgd).operand(1);
                    let gm = insert(
                        m,
                        InsertPoint::Before(sgd),
                        "sdt.apply_mask",
                        (&layer, "wg"),
                        &[g, mask],
                        &[m.ty(g).clone()],
                        vec![],
                    )[0];
                    m.set_operand(sgd, 1, gm);
                }
            }
        }
    }
    Ok(())
}
