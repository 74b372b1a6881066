//! Loss and optimizer instructions: softmax cross-entropy and SGD.

use super::{kernel_fault, stream, Ctx, Work};
use crate::decode::Op;
use crate::error::FaultKind;
use crate::kernels::loss::{softmax_xent, softmax_xent_backward};
use crate::kernels::optim::Sgd;
use crate::ledger::Event;
use std::sync::atomic::{AtomicUsize, Ordering};
use trainer_isa::names::CfgF32;

/// Executes `softmax_ce` or `sgd`.
pub fn run(op: &Op, ctx: &mut Ctx) -> Result<(), FaultKind> {
    ctx.act.work = Work::Stream;
    match *op {
        Op::SoftmaxCe {
            n,
            c,
            logits,
            labels,
            loss,
            dlogits,
        } => {
            let z = ctx.read("logits", logits, n * c)?;
            let raw = ctx.mem.read_ints("labels", labels, n)?;
            ctx.charge_read(labels, n);
            let lab = raw
                .iter()
                .map(|&l| u32::try_from(l).ok().filter(|&l| (l as usize) < c))
                .collect::<Option<Vec<u32>>>()
                .ok_or_else(|| FaultKind::BadData(format!("a label is outside 0..{c}")))?;
            let r = softmax_xent(&z, &lab, c).map_err(kernel_fault)?;
            ctx.write("loss", loss, &[r.loss])?;
            if !dlogits.is_none() {
                let d = softmax_xent_backward(&r.probs, &lab, c, ctx.state.f(CfgF32::LossScale))
                    .map_err(kernel_fault)?;
                ctx.write("dlogits", dlogits, &d)?;
            }
            ctx.ev(Event::VecOp, 3 * (n * c) as u64);
        }
        Op::Sgd { n, w, g, v, mask } => {
            let scale = ctx.state.f(CfgF32::LossScale);
            let momentum = if v.is_none() {
                0.0
            } else {
                ctx.state.f(CfgF32::Momentum)
            };
            let sgd = Sgd {
                lr: ctx.state.f(CfgF32::Lr),
                momentum,
                weight_decay: ctx.state.f(CfgF32::WeightDecay),
            };
            // Without a momentum operand the momentum reads as zeros and is not kept; a weight
            // the mask drops keeps its value and its momentum. Every element is updated and the
            // mask then picks (a loop without branches, which vectorises).
            let (masked, updated) = (!mask.is_none(), AtomicUsize::new(0));
            let ins = [("w", w), ("g", g), ("mask", mask), ("v", v)];
            stream::map(ctx, n, ins, [("w", w), ("v", v)], |[wi, gi, mi, vi], [wo, vo]| {
                let outs = wo.iter_mut().zip(vo.iter_mut());
                let ins = wi.iter().zip(gi).zip(vi.iter().zip(mi));
                for ((w_out, v_out), ((&w, &g), (&v, &m))) in outs.zip(ins) {
                    let g = if scale != 1.0 { g / scale } else { g };
                    let (w_new, v_new) = sgd.update(w, g, v);
                    let keep = !masked || m != 0.0;
                    *w_out = if keep { w_new } else { w };
                    *v_out = if keep { v_new } else { v };
                }
                let chunk_updated = match masked {
                    true => mi.iter().filter(|&&m| m != 0.0).count(),
                    false => wi.len(),
                };
                updated.fetch_add(chunk_updated, Ordering::Relaxed);
            })?;
            ctx.ev(Event::VecOp, 4 * updated.into_inner() as u64);
        }
        _ => unreachable!("not a loss/optimizer operation: {op:?}"),
    }
    Ok(())
}
