//! Tiled convolution: FF (tiles over batch, output-channel groups and output rows, input halos
//! and per-tile padding), BP (tiles over batch and input-channel groups, accumulating over
//! output-channel tiles with `acc`) and WG (tiles over output and input channels, accumulating
//! partial sums over batch and row tiles with `acc`). Decoupled-BN statistics are accumulated in a
//! per-channel-tile scratch and stored once the tile's outputs are final.

use super::emit::{buf, clear, copy_block, int, name, operand, Field, TrnInstr};
use super::plan::Loc;
use super::tile::{fit, ranges, Slots, Tile, GBUF, IBUF, OBUF, SPACES, WBUF};
use crate::interp::kernels::conv::ConvGeom;
use trainer_isa::{DType, Operand};

/// The DRAM operands and options of one conv instruction (whole-tensor view).
#[derive(Debug, Clone)]
pub struct ConvArgs {
    /// `ff`, `bp` or `wg`.
    pub mode: &'static str,
    /// Forward geometry.
    pub g: ConvGeom,
    /// Operand `a` (FF/WG: input `[N,C,H,W]`; BP: output gradient `[N,K,OH,OW]`).
    pub a: Loc,
    /// Operand `b` (FF/BP: weights; WG: output gradient).
    pub b: Loc,
    /// Result.
    pub out: Loc,
    /// Weight mask (FF/BP).
    pub wmask: Option<Loc>,
    /// Output mask (S1 in BP, S2 in WG).
    pub omask: Option<Loc>,
    /// BN block `[4, C]` of the input (FF/WG normalise on read; BP with `bns`).
    pub bna: Option<Loc>,
    /// BN statistics / sums result `[2, K]` (FF) or `[2, C]` (BP).
    pub bns: Option<Loc>,
    /// FF: ReLU mask of the normalised input (result); BP: pre-BN activation for `bns`.
    pub aux: Option<Loc>,
    /// S3 predictor block `[4, K]`.
    pub s3: Option<Loc>,
    /// Dataflow name.
    pub df: String,
    /// Skip flags (`in+w+out` subset or `none`).
    pub skip: String,
    /// ReLU after the on-read BN.
    pub bnrelu: bool,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn bytes(d: DType, elems: usize) -> u64 {
    d.bytes(elems as u64)
}

/// Geometry fields of a tile: `[n, c, h, k, groups]` and the tile's (`pad_t`, `pad_b`).
fn geometry_fields(g: &ConvGeom, [n, c, h, k, groups]: [usize; 5], (pt, pb): (usize, usize)) -> Vec<Field> {
    vec![
        int("n", n),
        int("c", c),
        int("h", h),
        int("w", g.w),
        int("k", k),
        int("r", g.r),
        int("s", g.s),
        int("stride_h", g.stride[0]),
        int("stride_w", g.stride[1]),
        int("pad_t", pt),
        int("pad_l", g.pads[1]),
        int("pad_b", pb),
        int("pad_r", g.pads[3]),
        int("dil_h", g.dil[0]),
        int("dil_w", g.dil[1]),
        int("groups", groups),
    ]
}

/// Input rows `[lo, lo + h)` and the pads of the output row range `o0 .. o0 + len`.
fn rows(g: &ConvGeom, o0: usize, len: usize) -> (usize, usize, usize, usize) {
    let pt = g.pads[0] as isize;
    let start = (o0 * g.stride[0]) as isize - pt;
    let end = ((o0 + len - 1) * g.stride[0] + g.dil[0] * (g.r - 1)) as isize - pt + 1;
    let lo = start.max(0);
    let hi = end.min(g.h as isize);
    (
        lo as usize,
        (hi - lo) as usize,
        (lo - start) as usize,
        (end - hi) as usize,
    )
}

/// Rows of input needed by at most `len` output rows.
fn rows_needed(g: &ConvGeom, len: usize) -> usize {
    ((len - 1) * g.stride[0] + g.dil[0] * (g.r - 1) + 1).min(g.h)
}

struct Placed {
    slots: Vec<[u64; 2]>,
}

impl Placed {
    fn at(&self, i: usize, slot: usize, space: usize, dtype: DType) -> Operand {
        buf(SPACES[space], dtype, self.slots[i][slot])
    }
}

fn compute(
    a: &ConvArgs,
    mode: &str,
    opt: &str,
    geo: Vec<Field>,
    ops: Vec<(&'static str, Operand)>,
    dc: (&str, &str),
) -> TrnInstr {
    let mut f = vec![
        name("mode", mode),
        name("df", &a.df),
        name("skip", &a.skip),
        name("opt", opt),
        name("dci", dc.0),
        name("dcw", dc.1),
    ];
    f.extend(geo);
    f.extend(
        ops.into_iter()
            .filter(|(_, o)| !o.is_none())
            .map(|(n, o)| operand(n, o)),
    );
    TrnInstr::new("conv", f)
}

fn opt(acc: bool, bnrelu: bool) -> String {
    let mut v = vec![];
    if acc {
        v.push("acc");
    }
    if bnrelu {
        v.push("bnrelu");
    }
    if v.is_empty() {
        "none".into()
    } else {
        v.join("+")
    }
}

/// Density counters of slot `s`: (a, b).
fn counters(adaptive: bool, s: usize) -> (&'static str, &'static str) {
    match (adaptive, s) {
        (false, _) => ("none", "none"),
        (true, 0) => ("dc0", "dc1"),
        (true, _) => ("dc2", "dc3"),
    }
}

/// The density counter the DMA of operand `a` feeds: none when `bna` normalises `a` on read (the
/// conv's BN-on-read unit then counts the normalised values into `dci`).
fn a_counter(a: &ConvArgs, dci: &'static str) -> &'static str {
    if a.bna.is_some() {
        "none"
    } else {
        dci
    }
}

/// Loads the weights of output channels `k0..k0+kl` × (per-group) input channels `c0..c0+cl`, all
/// taps, into slot 1 of `wslot` in the weight buffer, and their mask, if any, into slot 3. Density
/// counter `ctr` counts the weights as the PE array sees them: the mask's kept bits when there is
/// a mask (the dense weights keep their pruned values), else the weights' non-zeros.
fn load_weights(
    a: &ConvArgs,
    [k0, c0]: [usize; 2],
    [kl, cl]: [usize; 2],
    p: &Placed,
    wslot: usize,
    ctr: &str,
) -> Result<Vec<TrnInstr>, String> {
    let (start, ext) = ([k0, c0, 0, 0], [kl, cl, a.g.r, a.g.s]);
    let (wctr, mctr) = if a.wmask.is_some() {
        ("none", ctr)
    } else {
        (ctr, "none")
    };
    let mut out = copy_block(true, &a.b, &start, &ext, p.at(1, wslot, WBUF, a.b.dtype), wctr)?;
    if let Some(m) = &a.wmask {
        out.extend(copy_block(
            true,
            m,
            &start,
            &ext,
            p.at(3, wslot, WBUF, m.dtype),
            mctr,
        )?);
    }
    Ok(out)
}

/// Lowers one conv to tiles.
pub fn lower(a: &ConvArgs, caps: &[u64; 4]) -> Result<Vec<Tile>, String> {
    match a.mode {
        "ff" => ff(a, caps),
        "bp" => bp(a, caps),
        _ => wg(a, caps),
    }
}

/// `ff`: tiles over output-channel groups, batch and output rows (input halo rows, per-tile
/// pads) and, when the input channels do not fit, input-channel tiles accumulated in the output
/// slot with `acc` (weights and BN blocks are then loaded per tile, and S3 is not used: its
/// prediction needs the whole sum).
fn ff(a: &ConvArgs, caps: &[u64; 4]) -> Result<Vec<Tile>, String> {
    let g = &a.g;
    let (gc, gk) = (g.c / g.group, g.k / g.group);
    let (oh, ow) = (g.oh(), g.ow());
    let adaptive = a.df == "adaptive";
    let grouped = g.group > 1;
    // Tile dims: [n, k, rows, c]; grouped: k in whole groups, c follows k.
    let cof = |kt: usize, ct: usize| if grouped { kt / gk * gc } else { ct };
    let chunks = |ct: usize| if grouped { 1 } else { g.c.div_ceil(ct) };
    let slots = |t: &[usize]| {
        let (nt, kt, ot) = (t[0], t[1], t[2]);
        let ct = cof(kt, t[3]);
        let wc = if grouped { gc } else { ct };
        let h = rows_needed(g, ot);
        let mut s = Slots::default();
        s.add(IBUF, bytes(a.a.dtype, nt * ct * h * g.w));
        s.add(WBUF, bytes(a.b.dtype, kt * wc * g.r * g.s));
        s.add(OBUF, bytes(a.out.dtype, nt * kt * ot * ow));
        s.add(
            WBUF,
            a.wmask
                .as_ref()
                .map_or(0, |m| bytes(m.dtype, kt * wc * g.r * g.s)),
        );
        s.add(
            GBUF,
            if a.bna.is_some() {
                bytes(DType::F32, 4 * ct)
            } else {
                0
            },
        );
        s.add(
            GBUF,
            if a.bns.is_some() {
                bytes(DType::F32, 2 * kt)
            } else {
                0
            },
        );
        // The ReLU mask of every input-channel tile of an output group, one chunk each.
        s.add(
            GBUF,
            a.aux.as_ref().map_or(0, |m| {
                chunks(ct) as u64 * Slots::aligned(bytes(m.dtype, nt * ct * h * g.w))
            }),
        );
        s.add(
            GBUF,
            if a.s3.is_some() {
                bytes(DType::F32, 4 * kt)
            } else {
                0
            },
        );
        s
    };
    let mut t = vec![g.n, g.k, oh, if grouped { 0 } else { g.c }];
    let kquant = if grouped { gk } else { 8 };
    fit(
        &mut t,
        &[0, 2, 1, 3],
        &[1, kquant, 1, 8],
        &[1, 1, 1, 1],
        caps,
        slots,
    )?;
    let (nt, kt, ot) = (t[0], t[1], t[2]);
    let ct = cof(kt, t[3]);
    let nct = chunks(ct);
    let aux_chunk = a.aux.as_ref().map_or(0, |m| {
        Slots::aligned(bytes(m.dtype, nt * ct * rows_needed(g, ot) * g.w))
    });
    let p = Placed {
        slots: slots(&t).layout(),
    };
    let s3 = a.s3.as_ref().filter(|_| nct == 1);
    // Chunk `ci` of the ReLU-mask slot `o`.
    let aux_at = |d: DType, o: usize, ci: usize| {
        let b = p.at(6, o, GBUF, d);
        Operand::new(b.space, d, b.addr + (ci as u64 * aux_chunk) as u32)
    };
    let mut tiles = Vec::new();
    let mut group = 0usize;
    for (gi, &(k0, kl)) in ranges(g.k, kt).iter().enumerate() {
        let ctiles = if grouped {
            vec![(k0 / gk * gc, kl / gk * gc)]
        } else {
            ranges(g.c, ct)
        };
        let ws = gi % 2;
        let inner: Vec<((usize, usize), (usize, usize))> = ranges(g.n, nt)
            .into_iter()
            .flat_map(|n| ranges(oh, ot).into_iter().map(move |r| (n, r)))
            .collect();
        for (ii, &((n0, nl), (o0, ol))) in inner.iter().enumerate() {
            let o = group % 2;
            group += 1;
            let (lo, h, pt, pb) = rows(g, o0, ol);
            // Output rows that only see padding (h = 0) are zero: one tile fills them.
            let here = if h == 0 { &ctiles[..1] } else { &ctiles[..] };
            for (ci, &(c0, cl)) in here.iter().enumerate() {
                let s = tiles.len() % 2;
                let (first, last) = (ci == 0, ci + 1 == here.len());
                // Weights and BN blocks: once per output-channel tile when the input channels
                // fit one tile, else per tile.
                let (wslot, wload) = if nct == 1 { (ws, ii == 0) } else { (s, true) };
                let mut tile = Tile {
                    opens: first,
                    closes: last,
                    out_slot: o,
                    ..Tile::default()
                };
                // The weight counter follows the weight slot (weights may stay for several tiles).
                let (dci, dcw) = (counters(adaptive, s).0, counters(adaptive, wslot).1);
                if adaptive && h > 0 {
                    tile.loads.push(clear(dci));
                }
                if h > 0 {
                    tile.loads.extend(copy_block(
                        true,
                        &a.a,
                        &[n0, c0, lo, 0],
                        &[nl, cl, h, g.w],
                        p.at(0, s, IBUF, a.a.dtype),
                        a_counter(a, dci),
                    )?);
                }
                let (wc0, wcl) = if grouped { (0, gc) } else { (c0, cl) };
                if wload {
                    if adaptive {
                        tile.loads.push(clear(dcw));
                    }
                    tile.loads
                        .extend(load_weights(a, [k0, wc0], [kl, wcl], &p, wslot, dcw)?);
                    if let Some(bl) = &a.bna {
                        tile.loads.extend(copy_block(
                            true,
                            bl,
                            &[0, c0],
                            &[4, cl],
                            p.at(4, wslot, GBUF, DType::F32),
                            "none",
                        )?);
                    }
                }
                if ii == 0 && first {
                    if let Some(bl) = s3 {
                        tile.loads.extend(copy_block(
                            true,
                            bl,
                            &[0, k0],
                            &[4, kl],
                            p.at(7, ws, GBUF, DType::F32),
                            "none",
                        )?);
                    }
                    if a.bns.is_some() {
                        tile.compute
                            .push(super::stream::fill(2 * kl, 0.0, p.at(5, ws, GBUF, DType::F32)));
                    }
                }
                let ops = vec![
                    ("a", p.at(0, s, IBUF, a.a.dtype)),
                    ("b", p.at(1, wslot, WBUF, a.b.dtype)),
                    ("out", p.at(2, o, OBUF, a.out.dtype)),
                    (
                        "wmask",
                        a.wmask
                            .as_ref()
                            .map_or(Operand::NONE, |m| p.at(3, wslot, WBUF, m.dtype)),
                    ),
                    (
                        "bna",
                        if a.bna.is_some() {
                            p.at(4, wslot, GBUF, DType::F32)
                        } else {
                            Operand::NONE
                        },
                    ),
                    (
                        "bns",
                        if a.bns.is_some() && last {
                            p.at(5, ws, GBUF, DType::F32)
                        } else {
                            Operand::NONE
                        },
                    ),
                    (
                        "aux",
                        a.aux.as_ref().map_or(Operand::NONE, |m| aux_at(m.dtype, o, ci)),
                    ),
                    (
                        "s3",
                        if s3.is_some() {
                            p.at(7, ws, GBUF, DType::F32)
                        } else {
                            Operand::NONE
                        },
                    ),
                ];
                let groups = if grouped { kl / gk } else { 1 };
                tile.compute.push(if h == 0 {
                    super::stream::fill(nl * kl * ol * ow, 0.0, p.at(2, o, OBUF, a.out.dtype))
                } else {
                    compute(
                        a,
                        "ff",
                        &opt(!first, a.bnrelu),
                        geometry_fields(g, [nl, cl, h, kl, groups], (pt, pb)),
                        ops,
                        (dci, dcw),
                    )
                });
                if last {
                    tile.stores.extend(copy_block(
                        false,
                        &a.out.reshaped(vec![g.n, g.k, oh, ow]),
                        &[n0, k0, o0, 0],
                        &[nl, kl, ol, ow],
                        p.at(2, o, OBUF, a.out.dtype),
                        "none",
                    )?);
                    if let Some(m) = a.aux.as_ref().filter(|_| (grouped || gi == 0) && h > 0) {
                        for (cj, &(c0, cl)) in ctiles.iter().enumerate() {
                            tile.stores.extend(copy_block(
                                false,
                                m,
                                &[n0, c0, lo, 0],
                                &[nl, cl, h, g.w],
                                aux_at(m.dtype, o, cj),
                                "none",
                            )?);
                        }
                    }
                    if let (Some(st), true) = (&a.bns, ii + 1 == inner.len()) {
                        tile.stores.extend(copy_block(
                            false,
                            st,
                            &[0, k0],
                            &[2, kl],
                            p.at(5, ws, GBUF, DType::F32),
                            "none",
                        )?);
                    }
                }
                tiles.push(tile);
            }
        }
    }
    Ok(tiles)
}

/// Output-gradient rows `[oh0, oh0 + ohl)` whose taps reach the input rows `ih0 .. ih0 + hl`
/// in `bp`, and the pads (`pad_t`, `pad_b`) that make them the forward rows of that input tile:
/// `(oh0, ohl, pad_t, pad_b)`. Taps of these rows outside the tile land on its padding (skipped).
fn bp_rows(g: &ConvGeom, ih0: usize, hl: usize) -> (usize, usize, usize, usize) {
    let (st, pt) = (g.stride[0], g.pads[0]);
    let reach = g.dil[0] * (g.r - 1);
    let oh0 = (ih0 + pt).saturating_sub(reach) / st;
    let oh1 = ((ih0 + hl - 1 + pt) / st + 1).min(g.oh());
    let ohl = oh1 - oh0;
    let tpad = pt + ih0 - oh0 * st;
    let bpad = ((ohl - 1) * st + reach + 1).saturating_sub(hl + tpad);
    (oh0, ohl, tpad, bpad)
}

/// `bp`: tiles over input-channel groups, batch and input-gradient rows (with the output-gradient
/// rows that reach them), accumulating over output-channel tiles with `acc`.
fn bp(a: &ConvArgs, caps: &[u64; 4]) -> Result<Vec<Tile>, String> {
    let g = &a.g;
    let (gc, gk) = (g.c / g.group, g.k / g.group);
    let ow = g.ow();
    let adaptive = a.df == "adaptive";
    let grouped = g.group > 1;
    let dy_rows = |rt: usize| {
        ranges(g.h, rt)
            .into_iter()
            .map(|(i0, l)| bp_rows(g, i0, l).1)
            .max()
            .unwrap_or(0)
    };
    // Tile dims: [n, c, k, rows]; grouped: c in whole groups, k follows c.
    let kof = |ct: usize, kt: usize| if grouped { ct / gc * gk } else { kt };
    let slots = |t: &[usize]| {
        let (nt, ct, kt, rt) = (t[0], t[1], kof(t[1], t[2]), t[3]);
        let wc = if grouped { gc } else { ct };
        let mut s = Slots::default();
        s.add(IBUF, bytes(a.a.dtype, nt * kt * dy_rows(rt) * ow));
        s.add(WBUF, bytes(a.b.dtype, kt * wc * g.r * g.s));
        s.add(OBUF, bytes(a.out.dtype, nt * ct * rt * g.w));
        s.add(
            WBUF,
            a.wmask
                .as_ref()
                .map_or(0, |m| bytes(m.dtype, kt * wc * g.r * g.s)),
        );
        s.add(
            GBUF,
            a.omask.as_ref().map_or(0, |m| bytes(m.dtype, nt * ct * rt * g.w)),
        );
        s.add(
            GBUF,
            if a.bna.is_some() {
                bytes(DType::F32, 4 * ct)
            } else {
                0
            },
        );
        s.add(
            GBUF,
            if a.bns.is_some() {
                bytes(DType::F32, 2 * ct)
            } else {
                0
            },
        );
        s.add(
            IBUF,
            a.aux.as_ref().map_or(0, |x| bytes(x.dtype, nt * ct * rt * g.w)),
        );
        s
    };
    let mut t = vec![g.n, g.c, if grouped { 0 } else { g.k }, g.h];
    let cq = if grouped { gc } else { 8 };
    fit(&mut t, &[0, 2, 1, 3], &[1, cq, 8, 1], &[1, 1, 1, 1], caps, slots)?;
    let (nt, ct, rt) = (t[0], t[1], t[3]);
    let p = Placed {
        slots: slots(&t).layout(),
    };
    let mut tiles = Vec::new();
    let mut group = 0;
    for (ci, &(c0, cl)) in ranges(g.c, ct).iter().enumerate() {
        let cs = ci % 2;
        let inner: Vec<((usize, usize), (usize, usize))> = ranges(g.n, nt)
            .into_iter()
            .flat_map(|n| ranges(g.h, rt).into_iter().map(move |r| (n, r)))
            .collect();
        for (ii, &((n0, nl), (ih0, hl))) in inner.iter().enumerate() {
            let (oh0, ohl, pt, pb) = bp_rows(g, ih0, hl);
            let ktiles = if grouped {
                vec![(c0 / gc * gk, cl / gc * gk)]
            } else {
                ranges(g.k, t[2])
            };
            let ms = group % 2;
            group += 1;
            for (ki, &(k0, kl)) in ktiles.iter().enumerate() {
                let s = tiles.len() % 2;
                let (first, last) = (ki == 0, ki + 1 == ktiles.len());
                let (dci, dcw) = counters(adaptive, s);
                let mut tile = Tile {
                    opens: first,
                    closes: last,
                    out_slot: ms,
                    ..Tile::default()
                };
                if adaptive {
                    tile.loads.extend([clear(dci), clear(dcw)]);
                }
                tile.loads.extend(copy_block(
                    true,
                    &a.a,
                    &[n0, k0, oh0, 0],
                    &[nl, kl, ohl, ow],
                    p.at(0, s, IBUF, a.a.dtype),
                    dci,
                )?);
                let (wc0, wcl) = if grouped { (0, gc) } else { (c0, cl) };
                tile.loads
                    .extend(load_weights(a, [k0, wc0], [kl, wcl], &p, s, dcw)?);
                let here = [n0, c0, ih0, 0];
                let ext = [nl, cl, hl, g.w];
                if first {
                    if let Some(m) = &a.omask {
                        tile.loads.extend(copy_block(
                            true,
                            m,
                            &here,
                            &ext,
                            p.at(4, ms, GBUF, m.dtype),
                            "none",
                        )?);
                    }
                }
                if last {
                    if let Some(x) = &a.aux {
                        tile.loads.extend(copy_block(
                            true,
                            x,
                            &here,
                            &ext,
                            p.at(7, s, IBUF, x.dtype),
                            "none",
                        )?);
                    }
                    if let (Some(bl), 0) = (&a.bna, ii) {
                        tile.loads.extend(copy_block(
                            true,
                            bl,
                            &[0, c0],
                            &[4, cl],
                            p.at(5, cs, GBUF, DType::F32),
                            "none",
                        )?);
                    }
                }
                if a.bns.is_some() && ii == 0 && first {
                    tile.compute
                        .push(super::stream::fill(2 * cl, 0.0, p.at(6, cs, GBUF, DType::F32)));
                }
                let with_bns = last && a.bns.is_some();
                let ops = vec![
                    ("a", p.at(0, s, IBUF, a.a.dtype)),
                    ("b", p.at(1, s, WBUF, a.b.dtype)),
                    ("out", p.at(2, ms, OBUF, a.out.dtype)),
                    (
                        "wmask",
                        a.wmask
                            .as_ref()
                            .map_or(Operand::NONE, |m| p.at(3, s, WBUF, m.dtype)),
                    ),
                    (
                        "omask",
                        a.omask
                            .as_ref()
                            .map_or(Operand::NONE, |m| p.at(4, ms, GBUF, m.dtype)),
                    ),
                    (
                        "bna",
                        if with_bns {
                            p.at(5, cs, GBUF, DType::F32)
                        } else {
                            Operand::NONE
                        },
                    ),
                    (
                        "bns",
                        if with_bns {
                            p.at(6, cs, GBUF, DType::F32)
                        } else {
                            Operand::NONE
                        },
                    ),
                    (
                        "aux",
                        if with_bns {
                            a.aux
                                .as_ref()
                                .map_or(Operand::NONE, |x| p.at(7, s, IBUF, x.dtype))
                        } else {
                            Operand::NONE
                        },
                    ),
                ];
                let groups = if grouped { cl / gc } else { 1 };
                let geo = geometry_fields(g, [nl, cl, hl, kl, groups], (pt, pb));
                tile.compute
                    .push(compute(a, "bp", &opt(!first, false), geo, ops, (dci, dcw)));
                if last {
                    tile.stores.extend(copy_block(
                        false,
                        &a.out,
                        &here,
                        &ext,
                        p.at(2, ms, OBUF, a.out.dtype),
                        "none",
                    )?);
                    if let (Some(st), true) = (&a.bns, ii + 1 == inner.len()) {
                        tile.stores.extend(copy_block(
                            false,
                            st,
                            &[0, c0],
                            &[2, cl],
                            p.at(6, cs, GBUF, DType::F32),
                            "none",
                        )?);
                    }
                }
                tiles.push(tile);
            }
        }
    }
    Ok(tiles)
}

fn wg(a: &ConvArgs, caps: &[u64; 4]) -> Result<Vec<Tile>, String> {
    let g = &a.g;
    let (gc, gk) = (g.c / g.group, g.k / g.group);
    let (oh, ow) = (g.oh(), g.ow());
    let adaptive = a.df == "adaptive";
    let grouped = g.group > 1;
    // Tile dims: [k, c, n, rows]; grouped: k in whole groups, c follows.
    let cof = |kt: usize, ct: usize| if grouped { kt / gk * gc } else { ct };
    let slots = |t: &[usize]| {
        let (kt, nt, ot) = (t[0], t[2], t[3]);
        let ct = cof(kt, t[1]);
        let wc = if grouped { gc } else { ct };
        let h = rows_needed(g, ot);
        let mut s = Slots::default();
        s.add(IBUF, bytes(a.a.dtype, nt * ct * h * g.w));
        s.add(WBUF, bytes(a.b.dtype, nt * kt * ot * ow));
        s.add(OBUF, bytes(a.out.dtype, kt * wc * g.r * g.s));
        s.add(
            GBUF,
            a.omask
                .as_ref()
                .map_or(0, |m| bytes(m.dtype, kt * wc * g.r * g.s)),
        );
        s.add(
            GBUF,
            if a.bna.is_some() {
                bytes(DType::F32, 4 * ct)
            } else {
                0
            },
        );
        s
    };
    let mut t = vec![g.k, if grouped { 0 } else { g.c }, g.n, oh];
    let kq = if grouped { gk } else { 8 };
    // A bitmap output mask needs every channel-tile boundary on a byte.
    let cfloor = match &a.omask {
        Some(m) if m.dtype == DType::B1 && !grouped => 8 / gcd(8, g.r * g.s),
        _ => 1,
    };
    fit(
        &mut t,
        &[2, 3, 1, 0],
        &[kq, 8, 1, 1],
        &[1, cfloor, 1, 1],
        caps,
        slots,
    )?;
    let (kt, nt, ot) = (t[0], t[2], t[3]);
    let p = Placed {
        slots: slots(&t).layout(),
    };
    let mut tiles = Vec::new();
    let mut group = 0;
    for &(k0, kl) in &ranges(g.k, kt) {
        let ctiles = if grouped {
            vec![(k0 / gk * gc, kl / gk * gc)]
        } else {
            ranges(g.c, t[1])
        };
        for &(c0, cl) in &ctiles {
            let os = group % 2;
            group += 1;
            // Row tiles whose outputs only see padding contribute nothing; when every one does,
            // the gradient is zero and one tile fills it.
            let mut inner: Vec<((usize, usize), (usize, usize))> = ranges(g.n, nt)
                .into_iter()
                .flat_map(|n| ranges(oh, ot).into_iter().map(move |r| (n, r)))
                .filter(|&(_, (o0, ol))| rows(g, o0, ol).1 > 0)
                .collect();
            let zero = inner.is_empty();
            if zero {
                inner.push(((0, 0), (0, 0)));
            }
            for (ii, &((n0, nl), (o0, ol))) in inner.iter().enumerate() {
                let s = tiles.len() % 2;
                let (lo, h, pt, pb) = if zero { (0, 0, 0, 0) } else { rows(g, o0, ol) };
                let (dci, dcw) = counters(adaptive, s);
                let mut tile = Tile {
                    opens: ii == 0,
                    closes: ii + 1 == inner.len(),
                    out_slot: os,
                    ..Tile::default()
                };
                if adaptive && !zero {
                    tile.loads.extend([clear(dci), clear(dcw)]);
                }
                if !zero {
                    tile.loads.extend(copy_block(
                        true,
                        &a.a,
                        &[n0, c0, lo, 0],
                        &[nl, cl, h, g.w],
                        p.at(0, s, IBUF, a.a.dtype),
                        a_counter(a, dci),
                    )?);
                    tile.loads.extend(copy_block(
                        true,
                        &a.b.reshaped(vec![g.n, g.k, oh, ow]),
                        &[n0, k0, o0, 0],
                        &[nl, kl, ol, ow],
                        p.at(1, s, WBUF, a.b.dtype),
                        dcw,
                    )?);
                }
                let (wc0, wcl) = if grouped { (0, gc) } else { (c0, cl) };
                if ii == 0 {
                    if let Some(m) = &a.omask {
                        tile.loads.extend(copy_block(
                            true,
                            m,
                            &[k0, wc0, 0, 0],
                            &[kl, wcl, g.r, g.s],
                            p.at(3, os, GBUF, m.dtype),
                            "none",
                        )?);
                    }
                    if let Some(bl) = &a.bna {
                        tile.loads.extend(copy_block(
                            true,
                            bl,
                            &[0, c0],
                            &[4, cl],
                            p.at(4, os, GBUF, DType::F32),
                            "none",
                        )?);
                    }
                }
                let ops = vec![
                    ("a", p.at(0, s, IBUF, a.a.dtype)),
                    ("b", p.at(1, s, WBUF, a.b.dtype)),
                    ("out", p.at(2, os, OBUF, a.out.dtype)),
                    (
                        "omask",
                        a.omask
                            .as_ref()
                            .map_or(Operand::NONE, |m| p.at(3, os, GBUF, m.dtype)),
                    ),
                    (
                        "bna",
                        if a.bna.is_some() {
                            p.at(4, os, GBUF, DType::F32)
                        } else {
                            Operand::NONE
                        },
                    ),
                ];
                let groups = if grouped { kl / gk } else { 1 };
                let geo = geometry_fields(g, [nl, cl, h, kl, groups], (pt, pb));
                tile.compute.push(if zero {
                    super::stream::fill(kl * wcl * g.r * g.s, 0.0, p.at(2, os, OBUF, a.out.dtype))
                } else {
                    compute(a, "wg", &opt(ii > 0, a.bnrelu), geo, ops, (dci, dcw))
                });
                if ii + 1 == inner.len() {
                    tile.stores.extend(copy_block(
                        false,
                        &a.out,
                        &[k0, wc0, 0, 0],
                        &[kl, wcl, g.r, g.s],
                        p.at(2, os, OBUF, a.out.dtype),
                        "none",
                    )?);
                }
                tiles.push(tile);
            }
        }
    }
    Ok(tiles)
}

#[cfg(test)]
mod tests {
    use super::super::emit::FieldValue;
    use super::*;
    use std::collections::HashMap;

    fn field<'a>(i: &'a TrnInstr, n: &str) -> Option<&'a FieldValue> {
        i.fields.iter().find(|(k, _)| *k == n).map(|(_, v)| v)
    }

    fn name_of<'a>(i: &'a TrnInstr, n: &str) -> &'a str {
        match field(i, n) {
            Some(FieldValue::Name(v)) => v.as_str(),
            f => panic!("{n}: {f:?}"),
        }
    }

    fn operand_of(i: &TrnInstr, n: &str) -> Option<Operand> {
        match field(i, n) {
            Some(FieldValue::Operand(o)) => Some(*o),
            _ => None,
        }
    }

    /// Walks the tiles in program order and checks, at every conv, which loads fed its density
    /// counters since they were last cleared: `dci` the loads of `a` (none with `bna`), `dcw` the
    /// loads of the weight mask (of the weights without one).
    fn check_counters(args: &ConvArgs, caps: &[u64; 4]) {
        let tiles = lower(args, caps).unwrap();
        let mut fed: HashMap<String, Vec<Operand>> = HashMap::new();
        let mut convs = 0;
        for i in tiles.iter().flat_map(|t| t.loads.iter().chain(&t.compute)) {
            match i.mnemonic {
                "dc.clear" => {
                    fed.insert(name_of(i, "ctr").to_string(), Vec::new());
                }
                "dma.load" => {
                    let buf = operand_of(i, "buf").unwrap();
                    fed.entry(name_of(i, "ctr").to_string()).or_default().push(buf);
                }
                "conv" => {
                    convs += 1;
                    let (a, b) = (operand_of(i, "a").unwrap(), operand_of(i, "b").unwrap());
                    let w = operand_of(i, "wmask").unwrap_or(b);
                    let dci = fed.get(name_of(i, "dci")).cloned().unwrap_or_default();
                    let dcw = fed.get(name_of(i, "dcw")).cloned().unwrap_or_default();
                    if args.bna.is_some() {
                        assert!(dci.is_empty(), "bna: the load of `a` must not count: {dci:?}");
                    } else {
                        assert!(
                            dci.contains(&a) && dci.iter().all(|o| o.space == a.space),
                            "{dci:?}"
                        );
                    }
                    assert!(dcw.contains(&w) && dcw.iter().all(|o| o.space == w.space && o.dtype == w.dtype));
                }
                _ => {}
            }
        }
        assert!(convs > 2, "several tiles reuse the weights: {convs}");
    }

    #[test]
    fn density_counters_count_what_the_array_sees() {
        let g = ConvGeom {
            n: 2,
            c: 16,
            h: 16,
            w: 16,
            k: 16,
            r: 3,
            s: 3,
            stride: [1, 1],
            pads: [1, 1, 1, 1],
            dil: [1, 1],
            group: 1,
        };
        let loc = |addr: u32, dtype: DType, shape: Vec<usize>| Loc { addr, dtype, shape };
        let with_bn = ConvArgs {
            mode: "ff",
            g,
            a: loc(0, DType::F32, vec![2, 16, 16, 16]),
            b: loc(0x10000, DType::F32, vec![16, 16, 3, 3]),
            out: loc(0x20000, DType::F32, vec![2, 16, 16, 16]),
            wmask: Some(loc(0x30000, DType::B1, vec![16, 16, 3, 3])),
            omask: None,
            bna: Some(loc(0x31000, DType::F32, vec![4, 16])),
            bns: None,
            aux: None,
            s3: None,
            df: "adaptive".into(),
            skip: "in+w".into(),
            bnrelu: true,
        };
        // Row tiles of the input; the weights fit once and stay for every tile.
        let caps = [65536, 65536, 16384, 65536];
        check_counters(&with_bn, &caps);
        let plain = ConvArgs {
            wmask: None,
            bna: None,
            bnrelu: false,
            ..with_bn
        };
        check_counters(&plain, &caps);
    }
}
