//! `sdt-bn-decouple`: batch normalization without extra passes over feature maps.
//!
//! * FF statistics: `bn_stats(y)` of a `conv_ff`/`matmul_ff` output is fused into the producer
//!   (`fused = ["bns"]`, extra result `[2, K]`).
//! * Normalization: `relu(bn_apply(x, block))` whose every user is a `conv_ff`/`conv_wg` reading
//!   it as input is fused into those consumers (`fused = ["bna"]`, `bnrelu`): they read the
//!   pre-BN `x` and normalize on read; `conv_ff` also yields the ReLU mask for the backward pass.
//! * BP reductions: `bn_bwd_reduce(dy, x, block)` where `dy` is written by a `conv_bp`/`matmul_bp`
//!   (the later layer's BP, with the ReLU folded in by S1) is fused into that op (`fused =
//!   ["bns"]`, operands `x, block`, results `dγ, dβ`).
//!
//! Patterns that do not match stay in the conventional form (separate `bn_stats`, `bn_apply`,
//! `bn_bwd_reduce`).

use super::{ops_named, refuse, step_block, with_operands, SdtError};
use crate::ir::{Attribute, BlockId, Module, OpId, Type};
use crate::sdt::ops::AttrExt;

/// Runs the pass.
pub fn run(m: &mut Module) -> Result<(), SdtError> {
    let block = step_block(m)?;
    stats(m, block);
    apply(m, block);
    bwd_reduce(m, block);
    Ok(())
}

fn result_types(m: &Module, op: OpId) -> Vec<Type> {
    m.op(op).results().iter().map(|&r| m.ty(r).clone()).collect()
}

fn stats(m: &mut Module, block: BlockId) {
    for st in ops_named(m, block, "sdt.bn_stats") {
        let y = m.op(st).operand(0);
        let Some(p) = m.defining_op(y).filter(|&d| {
            matches!(m.op(d).name(), "sdt.conv_ff" | "sdt.matmul_ff") && !m.op(d).has_feature("bns")
        }) else {
            continue;
        };
        let mut types = result_types(m, p);
        types.push(m.ty(m.op(st).result(0)).clone());
        let operands = m.op(p).operands().to_vec();
        let new = refuse(m, p, "bns", operands, types, vec![]);
        let r = *m.op(new).results().last().expect("bns result");
        m.replace_all_uses(m.op(st).result(0), r);
        m.erase_op(st);
    }
}

fn apply(m: &mut Module, block: BlockId) {
    for ap in ops_named(m, block, "sdt.bn_apply") {
        let (x, blk) = (m.op(ap).operand(0), m.op(ap).operand(1));
        let z = m.op(ap).result(0);
        let [(relu, 0)] = m.uses(z)[..] else { continue };
        if m.op(relu).name() != "sdt.relu" {
            continue;
        }
        let (r, mask) = (m.op(relu).result(0), m.op(relu).result(1));
        let users = m.uses(r);
        let fusable = |m: &Module, (u, i): (OpId, usize)| {
            i == 0 && matches!(m.op(u).name(), "sdt.conv_ff" | "sdt.conv_wg") && !m.op(u).has_feature("bna")
        };
        if users.is_empty()
            || !users.iter().all(|&u| fusable(m, u))
            || !users.iter().any(|&(u, _)| m.op(u).name() == "sdt.conv_ff")
        {
            continue;
        }
        let mut mask_done = false;
        for (u, _) in users {
            let mut operands = with_operands(m, u, 2, "bna", &[blk]);
            operands[0] = x;
            let mut types = result_types(m, u);
            let ff = m.op(u).name() == "sdt.conv_ff";
            if ff {
                types.insert(1, m.ty(mask).clone());
            }
            let feats_before = m.op(u).results().len();
            let new = refuse(
                m,
                u,
                "bna",
                operands,
                types,
                vec![("bnrelu", Attribute::Bool(true))],
            );
            if ff {
                // Results after the ReLU mask shift by one: rewire the ones `refuse` mapped 1:1.
                let old_extra: Vec<_> = (1..feats_before).map(|i| m.op(new).result(i)).collect();
                for (i, v) in old_extra.into_iter().enumerate() {
                    m.replace_all_uses(v, m.op(new).result(i + 2));
                }
                if !mask_done {
                    m.replace_all_uses(mask, m.op(new).result(1));
                    mask_done = true;
                }
            }
        }
        m.erase_op(relu);
        m.erase_op(ap);
    }
}

fn bwd_reduce(m: &mut Module, block: BlockId) {
    for red in ops_named(m, block, "sdt.bn_bwd_reduce") {
        let (dy, x, blk) = (m.op(red).operand(0), m.op(red).operand(1), m.op(red).operand(2));
        let Some(bp) = m.defining_op(dy).filter(|&d| {
            matches!(m.op(d).name(), "sdt.conv_bp" | "sdt.matmul_bp") && !m.op(d).has_feature("bns")
        }) else {
            continue;
        };
        let operands = with_operands(m, bp, 2, "bns", &[x, blk]);
        let mut types = result_types(m, bp);
        let c = m.ty(m.op(red).result(0)).clone();
        types.extend([c.clone(), c]);
        let new = refuse(m, bp, "bns", operands, types, vec![]);
        let n = m.op(new).results().len();
        m.replace_all_uses(m.op(red).result(0), m.op(new).result(n - 2));
        m.replace_all_uses(m.op(red).result(1), m.op(new).result(n - 1));
        m.erase_op(red);
    }
}
