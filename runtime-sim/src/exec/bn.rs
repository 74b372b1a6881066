//! BN-unit instructions: statistics, finalize, apply, backward reductions and input gradient.

use super::{kernel_fault, Ctx, Work};
use crate::decode::{Nchw, Op};
use crate::error::FaultKind;
use crate::kernels::bn::{bn_apply, bn_input_grad, BnGradStats, BnNorm, BnShape, BnStats};
use crate::kernels::mask::apply_mask;
use crate::ledger::Event;
use trainer_isa::names::CfgF32;
use trainer_isa::Operand;

/// A BN block `[4, C]` read from memory: normalisation and affine parameters.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    /// μ and σ⁻¹.
    pub norm: BnNorm,
    /// γ.
    pub gamma: Vec<f32>,
    /// β.
    pub beta: Vec<f32>,
}

/// Reads a BN block for `c` channels (charged as a streaming read).
pub(crate) fn read_block(
    ctx: &mut Ctx,
    field: &'static str,
    op: Operand,
    c: usize,
) -> Result<Block, FaultKind> {
    let v = ctx.read(field, op, 4 * c)?;
    Ok(Block {
        norm: BnNorm {
            mean: v[..c].to_vec(),
            invstd: v[c..2 * c].to_vec(),
        },
        gamma: v[2 * c..3 * c].to_vec(),
        beta: v[3 * c..].to_vec(),
    })
}

fn shape(s: Nchw) -> BnShape {
    BnShape {
        n: s.n,
        c: s.c,
        hw: s.hw,
    }
}

/// Adds f64 sums to the f32 values at `op` when `acc`, rounding once, and writes them.
fn write_sums(
    ctx: &mut Ctx,
    field: &'static str,
    op: Operand,
    mut sums: Vec<f64>,
    acc: bool,
) -> Result<(), FaultKind> {
    if acc {
        let old = ctx.read(field, op, sums.len())?;
        sums.iter_mut().zip(&old).for_each(|(s, &o)| *s += f64::from(o));
    }
    let v: Vec<f32> = sums.iter().map(|&x| x as f32).collect();
    ctx.write(field, op, &v)
}

/// Per-channel Σdy'·x̂ and Σdy' with `dy' = dy ⊙ mask`, as `[Σdy·x̂ ; Σdy]`.
pub(crate) fn grad_sums(s: Nchw, x: &[f32], dy: &[f32], norm: &BnNorm) -> Result<Vec<f64>, FaultKind> {
    let mut g = BnGradStats::new(s.c);
    g.accumulate(&shape(s), x, dy, norm).map_err(kernel_fault)?;
    Ok(g.sum_dy_xhat.iter().chain(&g.sum_dy).copied().collect())
}

/// Per-channel sums of an N×C×HW tensor: `[Σx per channel.., Σx² per channel..]`, in f64.
pub(crate) fn channel_sums(x: &[f32], c: usize, hw: usize) -> Result<Vec<f64>, FaultKind> {
    let shape = BnShape {
        n: x.len() / (c * hw).max(1),
        c,
        hw,
    };
    let mut stats = BnStats::new(c);
    stats.accumulate(&shape, x).map_err(kernel_fault)?;
    Ok([stats.sum, stats.sumsq].concat())
}

fn masked(mut dy: Vec<f32>, mask: Option<Vec<bool>>) -> Vec<f32> {
    apply_mask(&mut dy, mask.as_deref());
    dy
}

/// Executes a BN-unit operation.
pub fn run(op: &Op, ctx: &mut Ctx) -> Result<(), FaultKind> {
    ctx.act.work = Work::Stream;
    match *op {
        Op::BnStats { acc, s, src, stats } => {
            let x = ctx.read("src", src, s.len())?;
            let sums = channel_sums(&x, s.c, s.hw)?;
            write_sums(ctx, "stats", stats, sums, acc)?;
            ctx.ev(Event::BnOp, s.len() as u64);
        }
        Op::BnFinalize {
            c,
            count,
            stats,
            block,
            running,
        } => {
            let st = ctx.read("stats", stats, 2 * c)?;
            if count == 0 {
                return Err(FaultKind::BadShape("bn.finalize count must be positive".into()));
            }
            let m = f64::from(count);
            let eps = f64::from(ctx.state.f(CfgF32::BnEps));
            let mo = f64::from(ctx.state.f(CfgF32::BnMomentum));
            let mut blk = ctx.read("block", block, 4 * c)?;
            let mut var = vec![0.0f64; c];
            for ch in 0..c {
                let mean = f64::from(st[ch]) / m;
                var[ch] = (f64::from(st[c + ch]) / m - mean * mean).max(0.0);
                blk[ch] = mean as f32;
                blk[c + ch] = (1.0 / (var[ch] + eps).sqrt()) as f32;
            }
            ctx.write("block", block, &blk)?;
            if !running.is_none() {
                let mut r = ctx.read("running", running, 2 * c)?;
                let unbias = if count > 1 { m / (m - 1.0) } else { 1.0 };
                for ch in 0..c {
                    r[ch] = ((1.0 - mo) * f64::from(r[ch]) + mo * f64::from(blk[ch])) as f32;
                    r[c + ch] = ((1.0 - mo) * f64::from(r[c + ch]) + mo * var[ch] * unbias) as f32;
                }
                ctx.write("running", running, &r)?;
            }
            ctx.ev(Event::BnOp, 4 * c as u64);
        }
        Op::BnApply {
            relu,
            s,
            src,
            block,
            out,
            mask,
        } => {
            let x = ctx.read("src", src, s.len())?;
            let b = read_block(ctx, "block", block, s.c)?;
            let mut pre = vec![0.0; s.len()];
            bn_apply(&shape(s), &x, &b.norm, &b.gamma, &b.beta, false, &mut pre).map_err(kernel_fault)?;
            ctx.write_mask("mask", mask, &pre.iter().map(|&v| v > 0.0).collect::<Vec<_>>())?;
            if relu {
                pre.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            ctx.write("out", out, &pre)?;
            ctx.ev(Event::BnOp, s.len() as u64);
        }
        Op::BnBwdReduce {
            acc,
            s,
            dy,
            x,
            block,
            mask,
            sums,
        } => {
            let g = ctx.read("dy", dy, s.len())?;
            let xv = ctx.read("x", x, s.len())?;
            let b = read_block(ctx, "block", block, s.c)?;
            let m = ctx.read_mask("mask", mask, s.len())?;
            let g = masked(g, m);
            let r = grad_sums(s, &xv, &g, &b.norm)?;
            write_sums(ctx, "sums", sums, r, acc)?;
            ctx.ev(Event::BnOp, s.len() as u64);
        }
        Op::BnBwd {
            s,
            dy,
            x,
            block,
            sums,
            mask,
            dx,
        } => {
            let g = ctx.read("dy", dy, s.len())?;
            let xv = ctx.read("x", x, s.len())?;
            let b = read_block(ctx, "block", block, s.c)?;
            let sm = ctx.read("sums", sums, 2 * s.c)?;
            let m = ctx.read_mask("mask", mask, s.len())?;
            let g = masked(g, m);
            let grads = BnGradStats {
                sum_dy_xhat: sm[..s.c].iter().map(|&v| f64::from(v)).collect(),
                sum_dy: sm[s.c..].iter().map(|&v| f64::from(v)).collect(),
            };
            let mut d = vec![0.0; s.len()];
            bn_input_grad(&shape(s), &xv, &g, &b.norm, &b.gamma, &grads, false, &mut d)
                .map_err(kernel_fault)?;
            ctx.write("dx", dx, &d)?;
            ctx.ev(Event::BnOp, s.len() as u64);
        }
        _ => unreachable!("not a BN operation: {op:?}"),
    }
    Ok(())
}
