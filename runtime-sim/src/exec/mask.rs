//! Mask-unit and speculation-unit instructions: top-k pruning, mask application, S2 prediction and
//! density counting.

use super::{stream, Ctx, Work};
use crate::decode::Op;
use crate::error::FaultKind;
use crate::kernels::prune;
use crate::ledger::Event;
use crate::memory::count_nonzero_raw;
use trainer_isa::names::CfgF32;

/// The sparsity register as the decimal it was set from: the shortest decimal that rounds to the
/// f32 value (so `0.9` means 0.9, not 0.899999976, and half-way cases of `k` round as intended).
fn register_sparsity(s: f32) -> f64 {
    s.to_string().parse().unwrap_or(f64::from(s))
}

/// Executes a mask/speculation/density operation.
pub fn run(op: &Op, ctx: &mut Ctx) -> Result<(), FaultKind> {
    ctx.act.work = Work::Stream;
    match *op {
        Op::PruneTopk { n, k, src, mask } => {
            let w = ctx.read("src", src, n)?;
            let k = if k == 0 {
                prune::kept_count(n, register_sparsity(ctx.state.f(CfgF32::Sparsity)))
            } else {
                k
            };
            ctx.write_mask("mask", mask, &prune::top_k(&w, k).mask)?;
            ctx.ev(Event::MaskOp, 2 * n as u64);
        }
        Op::MaskApply { n, src, mask, out } => {
            stream::map(
                ctx,
                n,
                [("src", src), ("mask", mask)],
                [("out", out)],
                |[x, m], [y]| {
                    y.iter_mut()
                        .zip(x)
                        .zip(m)
                        .for_each(|((y, &v), &k)| *y = if k != 0.0 { v } else { 0.0 })
                },
            )?;
            ctx.ev(Event::MaskOp, n as u64);
        }
        Op::SpecS2 { n, k, w, mask, out } => {
            let wv = ctx.read("w", w, n)?;
            let m = ctx.read_mask("mask", mask, n)?.expect("required operand");
            // Keep the weights the top-k keeps, and those not predicted to stay pruned.
            let threshold = prune::top_k_threshold(&wv, k);
            let keep = prune::s2_keep(&wv, &m, threshold, ctx.state.f(CfgF32::S2Margin));
            ctx.write_mask("out", out, &keep)?;
            ctx.ev(Event::SpecS2, n as u64);
        }
        Op::Density { n, ctr, src } => {
            let raw = ctx
                .mem
                .bytes("src", src.space, src.addr.into(), src.dtype.bytes(n as u64))?;
            let nz = count_nonzero_raw(src.dtype, &raw, n);
            ctx.charge_read(src, n);
            ctx.state.add_dc(ctr, nz);
            ctx.ev(Event::VecOp, n as u64);
        }
        _ => unreachable!("not a mask operation: {op:?}"),
    }
    Ok(())
}
