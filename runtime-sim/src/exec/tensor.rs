//! PE-array instructions: `conv` and `matmul` in FF, BP and WG modes, with weight masks, output
//! masks (S1 / S2 / sparse WG), S3 speculation, decoupled BN on read (`bna`) and on write (`bns`).
//!
//! Numbers come from [`crate::kernels`]; which MACs were random, gated or skipped comes from the
//! [`census`](super::census) of the real operands, so skipping flags change accounting only.

use super::bn::{channel_sums, grad_sums, read_block, Block};
use super::census::{split, Census};
use super::conv_census::{conv_census, ff_effective, CensusViews};
use super::views::{Decoded, DecodedValues, InputViews, OnRead, OutBuf, Outputs, WeightValues, Weights};
use super::{
    kernel_fault, Activity, Background, Ctx, Deferred, Left, OperandUse, PeOperands, Retire, Settle, Work,
};
use crate::cost::skip_in_effect;
use crate::decode::{ConvOp, MatmulOp, Nchw, TensorOp};
use crate::error::FaultKind;
use crate::hazard;
use crate::kernels::conv::{conv_bp, conv_ff_cols, conv_wg, ConvOpts, ConvShape};
use crate::kernels::density::{count_nonzero, BitMatrix, Counting};
use crate::kernels::mask::apply_mask;
use crate::kernels::matmul::{matmul as mm, MatmulOpts, MatmulShape};
use crate::kernels::KernelError;
use crate::ledger::Event;
use crate::memory::{decode_f32, decode_mask, Memory, Stamp};
use std::borrow::Cow;
use std::sync::Arc;
use trainer_isa::names::{CfgF32, Dataflow, Mode, Precision};
use trainer_isa::{DType, NamedEnum, Operand};

/// Checks the operand dtypes against the MAC mode (`cfg.prec`).
fn check_precision(prec: Precision, t: &TensorOp) -> Result<(), FaultKind> {
    for (field, op) in [("a", t.a), ("b", t.b)] {
        let ok = match prec {
            Precision::Fp32 => true,
            Precision::Fp16 => op.dtype != DType::F32,
            Precision::Fp8 => matches!(op.dtype, DType::E4m3 | DType::E5m2),
        };
        if !ok {
            return Err(FaultKind::BadDtype {
                field,
                dtype: op.dtype.name(),
                why: "not allowed in the current MAC mode (cfg.prec)",
            });
        }
    }
    Ok(())
}

/// Per-channel BN on read: `γ·(x − μ)·σ⁻¹ + β`, then ReLU if `relu`; also returns the ReLU mask.
fn bn_on_read(x: &mut [f32], b: &Block, c: usize, hw: usize, relu: bool) -> Vec<bool> {
    let mut mask = vec![false; x.len()];
    for (i, (xs, ms)) in x.chunks_mut(hw).zip(mask.chunks_mut(hw)).enumerate() {
        let ch = i % c;
        let (g, mean, invstd, beta) = (b.gamma[ch], b.norm.mean[ch], b.norm.invstd[ch], b.beta[ch]);
        for (v, m) in xs.iter_mut().zip(ms) {
            let t = g * (*v - mean) * invstd + beta;
            *m = t > 0.0;
            *v = if relu { t.max(0.0) } else { t };
        }
    }
    mask
}

/// Reads `n` elements of conv operand `op` as the PE array uses them: decoded and, with `bn`,
/// normalised by BN on read (then ReLU if its flag is set). Tile instructions that read the same
/// bytes the same way share one entry, so a layer's input is decoded once, not once per tile; the
/// entry decodes on first use (see [`Decoded`]).
fn read_operand(
    ctx: &mut Ctx,
    s: &ConvShape,
    field: &'static str,
    op: Operand,
    n: usize,
    bn: Option<(&Block, bool)>,
) -> Result<Arc<Decoded>, FaultKind> {
    ctx.check(field, op, n)?;
    let raw = memo_key(ctx.mem, op, n);
    let how = bn.map_or(OnRead::AsIs, |(blk, relu)| OnRead::Bn(block_bits(blk), relu));
    let (dtype, shape) = (op.dtype, *s);
    Ok(ctx.views.operand(s, (dtype, how), raw, |raw| {
        // Only a new entry needs its own copy of the BN block.
        let bn = bn.map(|(blk, relu)| (blk.clone(), relu));
        Box::new(move || {
            let mut x = decode_f32(dtype, &raw, n);
            let relu_mask = bn.map(|(blk, relu)| bn_on_read(&mut x, &blk, shape.c, shape.h * shape.w, relu));
            DecodedValues::new(x, relu_mask)
        })
    }))
}

/// Reads the `n` elements of conv operand `b` as the PE array uses them: decoded and, in FF and
/// BP, multiplied by the weight mask `wmask` if there is one (its read is charged now). Shared
/// like [`read_operand`]: the image tiles that reuse an output-channel tile's weights decode and
/// mask them once, on first use.
fn read_weights(ctx: &mut Ctx, s: &ConvShape, t: &TensorOp, n: usize) -> Result<Arc<Weights>, FaultKind> {
    let mask = (t.mode != Mode::Wg && !t.wmask.is_none()).then_some(t.wmask);
    let mask = match mask {
        Some(m) => {
            let bytes = ctx.mem.operand_bytes("wmask", m, n)?.to_vec();
            ctx.charge_read(m, n);
            Some((m.dtype, bytes))
        }
        None => None,
    };
    let how = mask
        .clone()
        .map_or(OnRead::AsIs, |(dtype, bytes)| OnRead::Mask(dtype, bytes));
    ctx.check("b", t.b, n)?;
    let raw = memo_key(ctx.mem, t.b, n);
    let dtype = t.b.dtype;
    Ok(ctx.views.weights(s, (dtype, how), raw, |raw| {
        Box::new(move || {
            let mut x = decode_f32(dtype, &raw, n);
            if let Some((mdtype, bytes)) = mask {
                apply_mask(&mut x, Some(&decode_mask(mdtype, &bytes, n)));
            }
            WeightValues::new(x)
        })
    }))
}

/// The `n` elements of conv operand `op` (whose bounds the caller checked) as a memo key
/// ([`super::views::ConvViews::operand`]): a reader of their bytes, and their stamp.
fn memo_key<'m>(mem: &'m Memory, op: Operand, n: usize) -> (impl FnOnce() -> Cow<'m, [u8]>, Option<Stamp>) {
    let bytes = move || mem.operand_bytes("memo key", op, n).expect("checked");
    (
        bytes,
        mem.stamp(op.space, op.addr.into(), op.dtype.bytes(n as u64)),
    )
}

/// The values of a BN block as f32 bits.
fn block_bits(b: &Block) -> Vec<u32> {
    [&b.norm.mean, &b.norm.invstd, &b.gamma, &b.beta]
        .iter()
        .flat_map(|v| v.iter().map(|x| x.to_bits()))
        .collect()
}

/// What an output epilogue needs.
struct Epilogue<'a> {
    out: Operand,
    acc: bool,
    relu: bool,
    keep: Option<&'a [bool]>,
}

/// Writes `y` to `out` with `omask`/`acc`/`relu` semantics; leaves in `y` the values as stored.
fn write_output(ctx: &mut Ctx, e: &Epilogue, y: &mut [f32]) -> Result<(), FaultKind> {
    apply_mask(y, e.keep);
    let relu = |v: f32| if e.relu { v.max(0.0) } else { v };
    if e.acc {
        return ctx.mem.add_store_f32("out", e.out, y, relu);
    }
    if e.relu {
        y.iter_mut().for_each(|v| *v = relu(*v));
    }
    ctx.mem.store_f32("out", e.out, y)
}

/// Adds f64 sums to `[2, C]` f32 statistics at `op`.
fn add_stats(ctx: &mut Ctx, op: Operand, sums: &[f64]) -> Result<(), FaultKind> {
    let old = ctx.read("bns", op, sums.len())?;
    let v: Vec<f32> = sums
        .iter()
        .zip(&old)
        .map(|(&s, &o)| (s + f64::from(o)) as f32)
        .collect();
    ctx.write("bns", op, &v)
}

/// Resolves `adaptive` from the density counters (the machine's rule: stream — compress and
/// skip — the sparser operand: `ws` streams `a`, `is` streams `b`; ties go to `ws`). The counters
/// hold the operands as the PE array sees them: `dcw` is fed by the weight *mask* load (kept
/// weights), `dci` by the BN-on-read unit when `bna` normalises `a` (after its ReLU).
fn resolve_dataflow(ctx: &Ctx, t: &TensorOp, a_len: usize, b_len: usize) -> Dataflow {
    match t.df {
        Dataflow::Adaptive if ctx.features.adaptive_dataflow => {
            let da = ctx.state.dc(t.dci) as f64 / a_len.max(1) as f64;
            let db = ctx.state.dc(t.dcw) as f64 / b_len.max(1) as f64;
            if da <= db {
                Dataflow::Ws
            } else {
                Dataflow::Is
            }
        }
        Dataflow::Adaptive => Dataflow::Ws,
        df => df,
    }
}

/// How the dataflow model sees operand `op`: `elems` elements of which `nonzero` are non-zero.
fn operand_use(op: Operand, elems: usize, nonzero: u64) -> OperandUse {
    OperandUse {
        space: op.space,
        elems: elems as u64,
        nonzero,
        elem_bits: op.dtype.bits(1),
    }
}

/// The operands of `t` as the dataflow model sees them, from their values as used, each with its
/// non-zeros counted.
fn pe_operands(
    t: &TensorOp,
    df: Dataflow,
    a: (&[f32], u64),
    b: (&[f32], u64),
    out: (&[f32], u64),
) -> PeOperands {
    PeOperands {
        df,
        a: operand_use(t.a, a.0.len(), a.1),
        b: operand_use(t.b, b.0.len(), b.1),
        out: operand_use(t.out, out.0.len(), out.1),
        acc: t.acc,
        skip: t.skip,
    }
}

/// Records MAC events, speculation checks and PE work from a census: only the zeros of the
/// operand the dataflow compresses are skipped ([`skip_in_effect`]), and each PE group's cycles
/// come from the MACs it really issues (random + gated).
fn account(act: &mut Activity, census: &Census, mut operands: PeOperands, mode: PeMode) {
    let skip = skip_in_effect(operands.df, operands.skip);
    operands.skip = skip;
    let total = census.total();
    let [rnd, gated, skipped] = Event::macs(mode.prec);
    let (r, g, s) = split(&total, skip.a, skip.b);
    act.events.add(rnd, r);
    act.events.add(gated, g);
    act.events.add(skipped, s);
    act.effective_macs = r;
    act.dense_macs = total.slots + total.masked;
    let per_unit = census
        .units
        .iter()
        .map(|u| {
            let (r, g, _) = split(u, skip.a, skip.b);
            r + g
        })
        .collect();
    act.work = Work::Pe {
        per_unit,
        regroup: mode.regroup,
        prec: mode.prec,
        operands,
    };
}

/// The PE array's configuration when an instruction issued (its accounting may come later).
#[derive(Debug, Clone, Copy)]
struct PeMode {
    prec: Precision,
    /// PE regrouping in effect.
    regroup: bool,
}

impl PeMode {
    fn of(ctx: &Ctx) -> Self {
        PeMode {
            prec: ctx.state.prec,
            regroup: ctx.features.regrouping && ctx.state.i(trainer_isa::names::CfgInt::Regroup) != 0,
        }
    }
}

/// Whether the output mask is in effect (speculation S1 in BP, S2 in WG must be enabled).
fn omask_active(ctx: &Ctx, t: &TensorOp) -> bool {
    if t.omask.is_none() {
        return false;
    }
    match t.mode {
        Mode::Bp => ctx.features.speculation && ctx.state.spec_enabled(1),
        Mode::Wg => ctx.features.speculation && ctx.state.spec_enabled(2),
        Mode::Ff => true,
    }
}

fn spec_event(mode: Mode) -> Option<Event> {
    match mode {
        Mode::Bp => Some(Event::SpecS1),
        Mode::Wg => Some(Event::SpecS2),
        Mode::Ff => None,
    }
}

/// Executes `conv` up to its kernel: reads the operands and does everything that depends on
/// registers or memory now (masks, BN on read, the dataflow, the speculation settings), then
/// leaves the kernel to run in the background ([`Background`]). Its [`Retire`] writes the output
/// and the BN statistics, and defers the census.
pub fn conv(c: &ConvOp, ctx: &mut Ctx) -> Result<(), FaultKind> {
    let (s, t) = (&c.shape, &c.t);
    check_precision(ctx.state.prec, t)?;
    let in_len = s.input_len();
    let (a_len, b_len, o_len) = c.operand_lens();
    // `a` is read below, after its BN block; its bounds are checked first (faults in operand order).
    ctx.check("a", t.a, a_len)?;
    ctx.check("b", t.b, b_len)?;
    ctx.check("out", t.out, o_len)?;
    let b = read_weights(ctx, s, t, b_len)?;
    // Decoupled BN on read.
    let bna = match !c.bna.is_none() && t.mode != Mode::Bp {
        true => Some(read_block(ctx, "bna", c.bna, s.c)?),
        false => None,
    };
    let a = read_operand(ctx, s, "a", t.a, a_len, bna.as_ref().map(|blk| (blk, t.bnrelu)))?;
    // The input decodes now: with BN on read it decides a density counter and the ReLU mask,
    // state later instructions read, and the tiles that share it find it ready instead of
    // waiting on the first tile's job (which measured slower). The weights decode in the first
    // kernel job that uses them.
    if let Some(relu_mask) = &a.values().relu_mask {
        ctx.ev(Event::BnOp, in_len as u64);
        // The BN-on-read unit's zero detector counts the operand as the array will see it.
        ctx.state.add_dc(t.dci, a.values().nonzero);
        if t.mode == Mode::Ff && t.bnrelu && !c.aux.is_none() {
            ctx.write_mask("aux", c.aux, relu_mask)?;
        }
    }
    let df = resolve_dataflow(ctx, t, a_len, b_len);
    let keep = if omask_active(ctx, t) {
        ctx.read_mask("omask", t.omask, o_len)?
    } else {
        None
    };
    // The decoder allows `s3` only in FF mode.
    let s3_on = !c.s3.is_none() && ctx.features.speculation && ctx.state.spec_enabled(3);
    let s3 = match s3_on {
        true => Some(S3 {
            blk: read_block(ctx, "s3", c.s3, s.k)?,
            thr: ctx.state.f(CfgF32::S3Threshold),
        }),
        false => None,
    };
    let bp_stats = match t.mode {
        Mode::Bp if !c.bns.is_none() => {
            let blk = read_block(ctx, "bna", c.bna, s.c)?;
            let x = read_operand(ctx, s, "aux", c.aux, in_len, None)?;
            ctx.charge_read(c.aux, in_len);
            Some((blk, x))
        }
        _ => None,
    };
    let skip_keep = keep.as_deref().filter(|_| t.skip.out);
    if let (Some(e), Some(_)) = (spec_event(t.mode), skip_keep) {
        ctx.ev(e, o_len as u64);
    }
    // FF tiles of a layer share the input: its im2col matrices come from the views (and so do
    // the input's bits the FF and WG census read).
    let input = (t.mode != Mode::Bp).then(|| Arc::clone(&a.views));
    let census_views = CensusViews::lookup(ctx.views, s, t.mode, skip_keep, input.clone());
    let job = ConvJob {
        c: c.clone(),
        a,
        b,
        keep,
        input,
        census_views,
        s3,
        bp_stats,
        df,
        pe: PeMode::of(ctx),
        outputs: Arc::clone(&ctx.views.outputs),
    };
    ctx.background = Some(Background {
        touches: hazard::conv_retire(c),
        left: Left::Kernel(Box::new(move || {
            let computed = job.compute();
            Retire(Box::new(move |ctx| {
                let (y, spec) = computed.map_err(kernel_fault)?;
                job.retire(ctx, y, spec)
            }))
        })),
    });
    Ok(())
}

/// A conv between issue and retirement: the operands as it uses them and what retiring needs.
struct ConvJob {
    c: ConvOp,
    a: Arc<Decoded>,
    b: Arc<Weights>,
    /// The output keep-mask in effect (S1, S2).
    keep: Option<Vec<bool>>,
    /// The views of the FF/WG input.
    input: Option<Arc<InputViews>>,
    census_views: CensusViews,
    s3: Option<S3>,
    /// BP with BN statistics: the BN block and the pre-BN activation.
    bp_stats: Option<(Block, Arc<Decoded>)>,
    df: Dataflow,
    pe: PeMode,
    /// Where the output buffer comes from, and goes back to once the census has read it.
    outputs: Arc<Outputs>,
}

/// S3's settings, read when the conv issued.
struct S3 {
    /// The following BN's block.
    blk: Block,
    /// `cfg.s3_threshold`.
    thr: f32,
}

/// What S3 speculated in one conv.
struct Speculated {
    /// Outputs computed exactly (the others took the prediction).
    keep: Vec<bool>,
    /// Effective MACs of the exact product (the work speculation could save).
    full: u64,
    /// Outputs predicted zero after BN+ReLU.
    predicted: u64,
    /// Of those, mis-speculated.
    wrong: u64,
}

impl ConvJob {
    /// The kernel, with S3's prediction beside it (both only read the operands): the output
    /// with the keep-mask applied, before the rest of the epilogue.
    fn compute(&self) -> Result<(OutBuf, Option<Speculated>), KernelError> {
        let (s, t, a, b) = (&self.c.shape, &self.c.t, &self.a.values().x, self.b.values());
        // The pre-BN activation BP's BN statistics read when the conv retires: decoded here.
        if let Some((_, x)) = &self.bp_stats {
            x.values();
        }
        let opts = ConvOpts {
            counting: Counting::SlotsOnly,
            ..Default::default()
        };
        // WG computes only the weight gradients its keep-mask keeps (sparse WG, S2); the other
        // kernels compute every output and the epilogue masks them.
        let wg_opts = ConvOpts {
            keep: self.keep.as_deref(),
            ..opts
        };
        let kernel = |y: &mut [f32]| match t.mode {
            Mode::Ff => {
                let cols = self.input.as_ref().map_or(&[][..], |i| i.im2col(s, a));
                conv_ff_cols(s, a, cols, &b.op, y)
            }
            Mode::Bp => conv_bp(s, a, &b.op, y, &opts).map(|_| ()),
            Mode::Wg => conv_wg(s, a, &b.op, y, &wg_opts).map(|_| ()),
        };
        // Every kernel overwrites all of `y`.
        let mut y = self.outputs.take(self.c.operand_lens().2);
        let spec = match (&self.input, &self.s3) {
            (Some(input), Some(s3)) => {
                let (done, pred) = rayon::join(|| kernel(&mut y), || s3_predict(s, a, b, input));
                done?;
                let (pred, full) = pred?;
                Some(s3.speculate(s, &pred, full, &mut y))
            }
            _ => {
                kernel(&mut y)?;
                None
            }
        };
        // The output keep-mask is known since issue: applied here, off the run loop (WG's kernel
        // stored only the kept gradients already).
        if t.mode != Mode::Wg {
            apply_mask(&mut y, self.keep.as_deref());
        }
        Ok((y, spec))
    }

    /// Retires the conv (program order): writes the output `y` and the BN statistics, records
    /// the speculation, and defers the census and the operands' non-zero counts — which only
    /// feed the accounting — to a job beside the instructions after this one.
    fn retire(self, ctx: &mut Ctx, mut y: OutBuf, spec: Option<Speculated>) -> Result<(), FaultKind> {
        let ConvJob {
            c,
            a,
            b,
            keep,
            census_views,
            bp_stats,
            df,
            pe,
            outputs,
            ..
        } = self;
        let (s, t) = (c.shape, c.t);
        let s3_keep = spec.map(|sp| {
            ctx.ev(Event::SpecS3, sp.full);
            ctx.act.speculation = Some((sp.predicted, sp.wrong));
            sp.keep
        });
        // The job applied the keep-mask.
        let epilogue = Epilogue {
            out: t.out,
            acc: t.acc,
            relu: t.relu,
            keep: None,
        };
        write_output(ctx, &epilogue, &mut y)?;
        // Decoupled BN statistics on write.
        if !c.bns.is_none() {
            match (t.mode, bp_stats) {
                (Mode::Ff, _) => {
                    let sums = channel_sums(&y, s.k, s.p())?;
                    add_stats(ctx, c.bns, &sums)?;
                    ctx.ev(Event::BnOp, y.len() as u64);
                }
                (Mode::Bp, Some((blk, x))) => {
                    let nchw = Nchw {
                        n: s.n,
                        c: s.c,
                        hw: s.h * s.w,
                    };
                    let x = &x.values().x;
                    let sums = grad_sums(nchw, x, &y, &blk.norm)?;
                    add_stats(ctx, c.bns, &sums)?;
                    ctx.ev(Event::BnOp, x.len() as u64);
                }
                _ => {}
            }
        }
        let census_keep = s3_keep.or_else(|| keep.filter(|_| t.skip.out));
        // Counted while the output is in cache from its write (the census runs later).
        let out_nonzero = count_nonzero(&y);
        ctx.deferred = Some(Deferred(Box::new(move || {
            let (a, b) = (a.values(), b.values());
            let census = conv_census(
                &s,
                t.mode,
                &a.x,
                (b.op.values(), &b.census),
                census_keep.as_deref(),
                &census_views,
            );
            let out = (&y[..], out_nonzero);
            let operands = pe_operands(&t, df, (&a.x, a.nonzero), (b.op.values(), b.nonzero), out);
            outputs.give(y);
            Settle(Box::new(move |act| account(act, &census, operands, pe)))
        })));
        Ok(())
    }
}

/// S3's prediction: the FF product of the e5m2-rounded operands, and the effective MACs of the
/// exact product (the work speculation could save).
fn s3_predict(
    s: &ConvShape,
    a: &[f32],
    b: &WeightValues,
    input: &Arc<InputViews>,
) -> Result<(Vec<f32>, u64), KernelError> {
    let mut pred = vec![0.0f32; s.output_len()];
    let q = input.e5m2(a);
    conv_ff_cols(s, &q.x, q.views.im2col(s, &q.x), b.e5m2(), &mut pred)?;
    Ok((pred, ff_effective(s, a, b.op.values(), input)))
}

impl S3 {
    /// Outputs whose prediction `pred` the following BN+ReLU zeroes take the prediction;
    /// mis-speculations are counted against the exact `y`.
    fn speculate(&self, s: &ConvShape, pred: &[f32], full: u64, y: &mut [f32]) -> Speculated {
        let (blk, thr, p) = (&self.blk, self.thr, s.p());
        let (mut predicted, mut wrong) = (0u64, 0u64);
        let mut keep = vec![true; y.len()];
        let planes = y
            .chunks_exact_mut(p)
            .zip(pred.chunks_exact(p))
            .zip(keep.chunks_exact_mut(p));
        for (i, ((ys, ps), ks)) in planes.enumerate() {
            let k = i % s.k;
            let norm = |v: f32| blk.gamma[k] * (v - blk.norm.mean[k]) * blk.norm.invstd[k] + blk.beta[k];
            for ((yv, &pv), kv) in ys.iter_mut().zip(ps).zip(ks) {
                if norm(pv) < -thr {
                    predicted += 1;
                    wrong += u64::from(norm(*yv) > 0.0);
                    *kv = false;
                    *yv = pv;
                }
            }
        }
        Speculated {
            keep,
            full,
            predicted,
            wrong,
        }
    }
}

/// Executes `matmul`.
pub fn matmul(mo: &MatmulOp, ctx: &mut Ctx) -> Result<(), FaultKind> {
    let t = &mo.t;
    check_precision(ctx.state.prec, t)?;
    let (m, k, n) = (mo.m, mo.k, mo.n);
    let (a_len, b_len, o_len) = match t.mode {
        Mode::Ff => (m * k, k * n, m * n),
        Mode::Bp => (m * n, k * n, m * k),
        Mode::Wg => (m * k, m * n, k * n),
    };
    let a = ctx.mem.read_f32("a", t.a, a_len)?;
    let mut b = ctx.mem.read_f32("b", t.b, b_len)?;
    ctx.check("out", t.out, o_len)?;
    if t.mode != Mode::Wg {
        let wm = ctx.read_mask("wmask", t.wmask, b_len)?;
        apply_mask(&mut b, wm.as_deref());
    }
    let df = resolve_dataflow(ctx, t, a_len, b_len);
    let keep = if omask_active(ctx, t) {
        ctx.read_mask("omask", t.omask, o_len)?
    } else {
        None
    };
    // Each phase as C = op(X)·op(Y) in the kernel's terms.
    let (shape, x, yv) = match t.mode {
        Mode::Ff => (
            MatmulShape {
                m,
                k,
                n,
                trans_a: false,
                trans_b: t.tb,
            },
            &a,
            &b,
        ),
        Mode::Bp => (
            MatmulShape {
                m,
                k: n,
                n: k,
                trans_a: false,
                trans_b: !t.tb,
            },
            &a,
            &b,
        ),
        Mode::Wg if t.tb => (
            MatmulShape {
                m: n,
                k: m,
                n: k,
                trans_a: true,
                trans_b: false,
            },
            &b,
            &a,
        ),
        Mode::Wg => (
            MatmulShape {
                m: k,
                k: m,
                n,
                trans_a: true,
                trans_b: false,
            },
            &a,
            &b,
        ),
    };
    let mut out = vec![0.0f32; o_len];
    let opts = MatmulOpts {
        counting: Counting::SlotsOnly,
        ..Default::default()
    };
    mm(&shape, x, yv, &mut out, &opts).map_err(kernel_fault)?;
    let skip_keep = keep.as_deref().filter(|_| t.skip.out);
    if let (Some(e), Some(_)) = (spec_event(t.mode), skip_keep) {
        ctx.ev(e, o_len as u64);
    }
    let census = matmul_census(&shape, x, yv, skip_keep, t.mode == Mode::Wg && t.tb);
    write_output(
        ctx,
        &Epilogue {
            out: t.out,
            acc: t.acc,
            relu: t.relu,
            keep: keep.as_deref(),
        },
        &mut out,
    )?;
    let out = (&out[..], count_nonzero(&out));
    let operands = pe_operands(t, df, (&a, count_nonzero(&a)), (&b, count_nonzero(&b)), out);
    let pe = PeMode::of(ctx);
    account(&mut ctx.act, &census, operands, pe);
    Ok(())
}

/// Census of `C (M×N) = op(X)·op(Y)`, units = columns of C (output features), `x_is_b` when the
/// kernel's X is the instruction's `b` operand.
fn matmul_census(s: &MatmulShape, x: &[f32], y: &[f32], keep: Option<&[bool]>, x_is_b: bool) -> Census {
    let (m, k, n) = (s.m, s.k, s.n);
    // Transposed form: Cᵀ (N×M) = op(Y)ᵀ (N×K) · op(X)ᵀ (K×M), rows = units.
    let ybits = BitMatrix::from_fn(n, k, |nn, kk| {
        let v = if s.trans_b { y[nn * k + kk] } else { y[kk * n + nn] };
        v != 0.0
    });
    let xbits = BitMatrix::from_fn(k, m, |kk, mm| {
        let v = if s.trans_a { x[kk * m + mm] } else { x[mm * k + kk] };
        v != 0.0
    });
    let kb = keep.map(|kp| BitMatrix::from_fn(n, m, |nn, mm| kp[mm * n + nn]));
    let mut census = Census::new(n);
    census.add_product(&ybits, &xbits, kb.as_ref(), x_is_b, |r| r);
    census
}
