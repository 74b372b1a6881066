//! `sdt-speculate`: speculation predicates as ops feeding the compute ops' optional operands.
//!
//! * **S1** (BP, exact): `relu_bwd(bp(dy, w), mask)` becomes `bp(dy, w, spec_s1(mask))` with
//!   `fused = ["omask"]` — input gradients where the forward ReLU mask is 0 are not computed.
//! * **S2** (WG): for a pruned weight whose gradient comes straight from a `*_wg` op, the WG op gets
//!   an output mask: in sparse-WG mode the pruning mask itself (exact; the `apply_mask` on the
//!   gradient goes away), else `spec_s2(w, mask, step)` (kept weights, plus pruned ones within
//!   `margin` of the next top-k threshold; approximate).
//! * **S3** (FF): a `conv_ff` whose output feeds a BN followed by ReLU gets
//!   `spec_s3(last step's BN block)` (state `<bn layer>.s3_block`, zero at first: no skipping)
//!   and `s3_threshold`; outputs predicted (E5M2 operands) to be zeroed are written from the
//!   prediction (approximate).

use super::{
    def_named, insert, layer_of, new_assign, new_state, ops_named, refuse, state_value, step_block,
    with_operands, SdtError, SdtOptions,
};
use crate::ir::{Attribute, BlockId, InsertPoint, Module, OpId, Type};
use crate::sdt::ops::AttrExt;

/// Runs the pass.
pub fn run(m: &mut Module, o: &SdtOptions) -> Result<(), SdtError> {
    let block = step_block(m)?;
    if o.speculation.s1 {
        s1(m, block);
    }
    if o.speculation.s2 {
        s2(m, block, o)?;
    }
    if o.speculation.s3 {
        s3(m, block, o)?;
    }
    Ok(())
}

/// Whether `v` has exactly one use.
fn single_use(m: &Module, v: crate::ir::ValueId) -> bool {
    m.uses(v).len() == 1
}

fn s1(m: &mut Module, block: BlockId) {
    for rb in ops_named(m, block, "sdt.relu_bwd") {
        let (dx, mask) = (m.op(rb).operand(0), m.op(rb).operand(1));
        let Some(bp) = m
            .defining_op(dx)
            .filter(|&d| matches!(m.op(d).name(), "sdt.conv_bp" | "sdt.matmul_bp"))
        else {
            continue;
        };
        if !single_use(m, dx) || m.op(bp).has_feature("omask") {
            continue;
        }
        let layer = layer_of(m, bp);
        let mty = m.ty(mask).clone();
        let p = insert(
            m,
            InsertPoint::Before(bp),
            "sdt.spec_s1",
            (&layer, "bp"),
            &[mask],
            &[mty],
            vec![],
        )[0];
        let operands = with_operands(m, bp, 2, "omask", &[p]);
        let types: Vec<Type> = m.op(bp).results().iter().map(|&r| m.ty(r).clone()).collect();
        let new = refuse(
            m,
            bp,
            "omask",
            operands,
            types,
            vec![("spec", Attribute::str("s1"))],
        );
        m.replace_all_uses(m.op(rb).result(0), m.op(new).result(0));
        m.erase_op(rb);
    }
}

/// The `*_wg` op producing `g` directly, if any.
fn wg_producer(m: &Module, g: crate::ir::ValueId) -> Option<OpId> {
    m.defining_op(g).filter(|&d| {
        matches!(m.op(d).name(), "sdt.conv_wg" | "sdt.matmul_wg") && !m.op(d).has_feature("omask")
    })
}

fn s2(m: &mut Module, block: BlockId, o: &SdtOptions) -> Result<(), SdtError> {
    let step = state_value(m, block, "step").ok_or_else(|| SdtError::Invalid("no `step` state".into()))?;
    for pm in ops_named(m, block, "sdt.prune_mask") {
        let (w, mask) = (m.op(pm).operand(0), m.op(pm).result(0));
        let name = m
            .op(m.defining_op(w).expect("prune_mask reads a state"))
            .str_attr("name")
            .unwrap_or("")
            .to_string();
        let Some(sgd) = ops_named(m, block, "sdt.sgd")
            .into_iter()
            .find(|&s| m.op(s).str_attr("param").ok() == Some(name.as_str()))
        else {
            continue;
        };
        let g = m.op(sgd).operand(1);
        if let Some(am) = def_named(m, g, "sdt.apply_mask") {
            // Sparse WG: the pruning mask is the exact output mask of the WG op.
            let g0 = m.op(am).operand(0);
            let Some(wg) = wg_producer(m, g0).filter(|_| single_use(m, g0)) else {
                continue;
            };
            let operands = with_operands(m, wg, 2, "omask", &[mask]);
            let types = vec![m.ty(g0).clone()];
            let new = refuse(
                m,
                wg,
                "omask",
                operands,
                types,
                vec![("spec", Attribute::str("s2"))],
            );
            m.replace_all_uses(m.op(am).result(0), m.op(new).result(0));
            m.erase_op(am);
        } else if let Some(wg) = wg_producer(m, g) {
            let layer = layer_of(m, wg);
            let attrs = ["sparsity", "ramp_steps", "interval"]
                .iter()
                .map(|&k| (k, m.op(pm).attrs[k].clone()))
                .chain([("margin", Attribute::Float(o.s2_margin))])
                .collect();
            let mty = m.ty(mask).clone();
            let p = insert(
                m,
                InsertPoint::Before(wg),
                "sdt.spec_s2",
                (&layer, "wg"),
                &[w, mask, step],
                &[mty],
                attrs,
            )[0];
            let operands = with_operands(m, wg, 2, "omask", &[p]);
            let types = vec![m.ty(g).clone()];
            refuse(
                m,
                wg,
                "omask",
                operands,
                types,
                vec![("spec", Attribute::str("s2"))],
            );
        }
    }
    Ok(())
}

fn s3(m: &mut Module, block: BlockId, o: &SdtOptions) -> Result<(), SdtError> {
    for conv in ops_named(m, block, "sdt.conv_ff") {
        let y = m.op(conv).result(0);
        let users: Vec<OpId> = m.uses(y).into_iter().map(|(u, _)| u).collect();
        let Some(apply) = users.iter().copied().find(|&u| m.op(u).name() == "sdt.bn_apply") else {
            continue;
        };
        let z = m.op(apply).result(0);
        if !m.uses(z).iter().all(|&(u, _)| m.op(u).name() == "sdt.relu") || m.op(conv).has_feature("s3") {
            continue;
        }
        let fin = m
            .defining_op(m.op(apply).operand(1))
            .expect("bn_apply reads a finalized block");
        let block_v = m.op(fin).result(0);
        let bn_layer = layer_of(m, fin);
        let name = format!("{bn_layer}.s3_block");
        let prev = match state_value(m, block, &name) {
            Some(v) => v,
            None => new_state(m, block, &name, "s3_block", "zeros", m.ty(block_v).clone())?,
        };
        let layer = layer_of(m, conv);
        let bty = m.ty(block_v).clone();
        let p = insert(
            m,
            InsertPoint::Before(conv),
            "sdt.spec_s3",
            (&layer, "ff"),
            &[prev],
            &[bty],
            vec![],
        )[0];
        let operands = with_operands(m, conv, 2, "s3", &[p]);
        let types: Vec<Type> = m.op(conv).results().iter().map(|&r| m.ty(r).clone()).collect();
        refuse(
            m,
            conv,
            "s3",
            operands,
            types,
            vec![("s3_threshold", Attribute::Float(o.s3_threshold))],
        );
        new_assign(m, block, &name, block_v)?;
    }
    Ok(())
}
