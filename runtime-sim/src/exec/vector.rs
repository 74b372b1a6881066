//! Vector-unit instructions: elementwise ops, bias, pooling, conversion and fill.

use super::{kernel_fault, stream, Ctx, Work};
use crate::decode::{Nchw, Op, PoolOp};
use crate::error::FaultKind;
use crate::kernels::{eltwise, pool};
use crate::ledger::Event;
use trainer_isa::names::{Dir, PoolKind};
use trainer_isa::DType;

/// The invariant of a pass's chunks ([`stream::map`]): every operand's is as long.
const SAME_LENGTH: &str = "a pass's chunks are equally long";

/// Executes a vector-unit operation.
pub fn run(op: &Op, ctx: &mut Ctx) -> Result<(), FaultKind> {
    ctx.act.work = Work::Stream;
    match *op {
        Op::Relu { n, src, out, mask } => {
            stream::map(
                ctx,
                n,
                [("src", src)],
                [("out", out), ("mask", mask)],
                |[x], [y, m]| {
                    eltwise::relu(x, y).expect(SAME_LENGTH);
                    eltwise::relu_mask(x, m).expect(SAME_LENGTH);
                },
            )?;
            ctx.ev(Event::VecOp, n as u64);
        }
        Op::ReluBwd { n, dy, mask, out } => {
            stream::map(
                ctx,
                n,
                [("dy", dy), ("mask", mask)],
                [("out", out)],
                |[g, m], [d]| eltwise::relu_backward(g, m, d).expect(SAME_LENGTH),
            )?;
            ctx.ev(Event::VecOp, n as u64);
        }
        Op::Clip {
            n,
            lo,
            hi,
            src,
            out,
            mask,
        } => {
            eltwise::clip_bounds(lo, hi).map_err(kernel_fault)?;
            stream::map(
                ctx,
                n,
                [("src", src)],
                [("out", out), ("mask", mask)],
                |[x], [y, m]| {
                    eltwise::clip(x, lo, hi, y).expect("bounds checked, chunks as long");
                    m.iter_mut()
                        .zip(x)
                        .for_each(|(m, &v)| *m = f32::from(u8::from(lo < v && v < hi)));
                },
            )?;
            ctx.ev(Event::VecOp, n as u64);
        }
        Op::Add { n, a, b, out } => {
            stream::map(ctx, n, [("a", a), ("b", b)], [("out", out)], |[x, y], [o]| {
                eltwise::add(x, y, o).expect(SAME_LENGTH)
            })?;
            ctx.ev(Event::VecOp, n as u64);
        }
        Op::Axpy { n, alpha, x, y, out } => {
            let no_y = y.is_none();
            stream::map(ctx, n, [("x", x), ("y", y)], [("out", out)], |[xv, yv], [o]| {
                if no_y {
                    o.iter_mut().zip(xv).for_each(|(o, &v)| *o = alpha * v);
                } else {
                    o.copy_from_slice(yv);
                    eltwise::axpy(alpha, xv, o).expect(SAME_LENGTH);
                }
            })?;
            ctx.ev(Event::VecOp, n as u64);
        }
        Op::BiasAdd { s, src, bias, out } => {
            let mut x = ctx.read("src", src, s.len())?;
            let b = ctx.read("bias", bias, s.c)?;
            for plane in x.chunks_mut(s.c * s.hw) {
                eltwise::bias_add(plane, &b, s.hw).map_err(kernel_fault)?;
            }
            ctx.write("out", out, &x)?;
            ctx.ev(Event::VecOp, s.len() as u64);
        }
        Op::BiasGrad { acc, s, dy, out } => bias_grad(ctx, acc, s, dy, out)?,
        Op::Pool(ref p) => pool_op(ctx, p)?,
        Op::Convert { n, src, out } => {
            if matches!(src.dtype, DType::I32 | DType::I64) {
                // Integer to the same integer type: a raw copy.
                let len = src.dtype.bytes(n as u64);
                let bytes = ctx.mem.bytes("src", src.space, src.addr.into(), len)?.to_vec();
                ctx.mem
                    .bytes_mut("out", out.space, out.addr.into(), len)?
                    .copy_from_slice(&bytes);
                ctx.charge_read(src, n);
                ctx.charge_write(out, n);
            } else {
                stream::map(ctx, n, [("src", src)], [("out", out)], |[x], [y]| {
                    y.copy_from_slice(x)
                })?;
            }
            ctx.ev(Event::VecOp, n as u64);
        }
        Op::Fill { n, value, out } => {
            stream::map(ctx, n, [], [("out", out)], |[], [y]| y.fill(value))?;
            ctx.ev(Event::VecOp, n as u64);
        }
        _ => unreachable!("not a vector operation: {op:?}"),
    }
    Ok(())
}

fn bias_grad(
    ctx: &mut Ctx,
    acc: bool,
    s: Nchw,
    dy: trainer_isa::Operand,
    out: trainer_isa::Operand,
) -> Result<(), FaultKind> {
    let g = ctx.read("dy", dy, s.len())?;
    let mut total = vec![0.0f64; s.c];
    for img in g.chunks(s.c * s.hw) {
        let part = eltwise::bias_grad(img, s.c, s.hw).map_err(kernel_fault)?;
        total.iter_mut().zip(&part).for_each(|(t, &p)| *t += f64::from(p));
    }
    if acc {
        let old = ctx.read("out", out, s.c)?;
        total.iter_mut().zip(&old).for_each(|(t, &o)| *t += f64::from(o));
    }
    let o: Vec<f32> = total.iter().map(|&v| v as f32).collect();
    ctx.write("out", out, &o)?;
    ctx.ev(Event::VecOp, s.len() as u64);
    Ok(())
}

fn pool_op(ctx: &mut Ctx, p: &PoolOp) -> Result<(), FaultKind> {
    let s = &p.shape;
    let planes = s.n * s.c;
    let (in_len, hw) = (s.input_len(), s.h * s.w);
    let out_len = match p.kind {
        PoolKind::Gavg => planes,
        _ => s.output_len(),
    };
    match (p.kind, p.dir) {
        (PoolKind::Gavg, Dir::Fwd) => {
            let x = ctx.read("src", p.src, in_len)?;
            let mut y = vec![0.0; planes];
            pool::global_avg_pool(&x, hw, &mut y).map_err(kernel_fault)?;
            ctx.write("out", p.out, &y)?;
            ctx.ev(Event::VecOp, in_len as u64);
        }
        (PoolKind::Gavg, Dir::Bwd) => {
            let dy = ctx.read("src", p.src, planes)?;
            let mut dx = vec![0.0; in_len];
            pool::global_avg_pool_backward(&dy, hw, &mut dx).map_err(kernel_fault)?;
            ctx.write("out", p.out, &dx)?;
            ctx.ev(Event::VecOp, in_len as u64);
        }
        (PoolKind::Max, Dir::Fwd) => {
            let x = ctx.read("src", p.src, in_len)?;
            let mut y = vec![0.0; out_len];
            let arg = pool::max_pool(s, &x, &mut y).map_err(kernel_fault)?;
            ctx.write("out", p.out, &y)?;
            if !p.idx.is_none() {
                // Stored as ih·W + iw within the plane.
                let idx: Vec<f32> = arg.iter().map(|&a| (a as usize % hw) as f32).collect();
                ctx.write("idx", p.idx, &idx)?;
            }
            ctx.ev(Event::VecOp, (out_len * s.kernel.0 * s.kernel.1) as u64);
        }
        (PoolKind::Max, Dir::Bwd) => {
            let dy = ctx.read("src", p.src, out_len)?;
            let idx = ctx.mem.read_ints("idx", p.idx, out_len)?;
            ctx.charge_read(p.idx, out_len);
            let op = out_len / planes;
            let mut arg = Vec::with_capacity(out_len);
            for (o, &i) in idx.iter().enumerate() {
                if i < 0 || i as usize >= hw {
                    return Err(FaultKind::BadData(format!(
                        "max-pool index {i} outside the {hw}-element plane"
                    )));
                }
                arg.push(((o / op) * hw + i as usize) as u32);
            }
            let mut dx = vec![0.0; in_len];
            pool::max_pool_backward(&dy, &arg, &mut dx, false).map_err(kernel_fault)?;
            ctx.write("out", p.out, &dx)?;
            ctx.ev(Event::VecOp, in_len as u64);
        }
        (PoolKind::Avg, Dir::Fwd) => {
            let x = ctx.read("src", p.src, in_len)?;
            let mut y = vec![0.0; out_len];
            pool::avg_pool(s, &x, true, &mut y).map_err(kernel_fault)?;
            ctx.write("out", p.out, &y)?;
            ctx.ev(Event::VecOp, (out_len * s.kernel.0 * s.kernel.1) as u64);
        }
        (PoolKind::Avg, Dir::Bwd) => {
            let dy = ctx.read("src", p.src, out_len)?;
            let mut dx = vec![0.0; in_len];
            pool::avg_pool_backward(s, &dy, true, &mut dx, false).map_err(kernel_fault)?;
            ctx.write("out", p.out, &dx)?;
            ctx.ev(Event::VecOp, in_len as u64);
        }
    }
    Ok(())
}
