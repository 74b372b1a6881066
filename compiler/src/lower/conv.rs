//! Tiled convolution: FF (tiles over batch, output-channel groups and output rows, input halos
//! and per-tile padding), BP (tiles over batch and input-channel groups, accumulating over
//! output-channel tiles with `acc`) and WG (tiles over output and input channels, accumulating
//! partial sums over batch and row tiles with `acc`). Decoupled-BN statistics are accumulated in a
//! per-channel-tile scratch and stored once the tile's outputs are final.

use super::emit::{buf, copy_block, int, name, operand, TrnInstr};
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

fn bytes(d: DType, elems: usize) -> u64 {
    d.bytes(elems as u64)
}

/// Geometry fields of a tile: `[n, c, h, k, groups]` and the tile's (`pad_t`, `pad_b`).
fn geometry_fields(
    g: &ConvGeom,
    [n, c, h, k, groups]: [usize; 5],
    (pt, pb): (usize, usize),
) -> Vec<(&'static str, crate::ir::Attribute)> {
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
    geo: Vec<(&'static str, crate::ir::Attribute)>,
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

fn clear(c: &'static str) -> TrnInstr {
    TrnInstr::new("dc.clear", vec![name("ctr", c)])
}

/// Lowers one conv to tiles.
pub fn lower(a: &ConvArgs, caps: &[u64; 4]) -> Result<Vec<Tile>, String> {
    match a.mode {
        "ff" => ff(a, caps),
        "bp" => bp(a, caps),
        _ => wg(a, caps),
    }
}

fn ff(a: &ConvArgs, caps: &[u64; 4]) -> Result<Vec<Tile>, String> {
    let g = &a.g;
    let (gc, gk) = (g.c / g.group, g.k / g.group);
    let (oh, ow) = (g.oh(), g.ow());
    let adaptive = a.df == "adaptive";
    // Tile dims: [n, k, rows]; k in whole groups when grouped.
    let kq = if g.group > 1 { gk } else { 1 };
    let chans = |kt: usize| if g.group > 1 { kt / gk * gc } else { g.c };
    let slots = |t: &[usize]| {
        let (nt, kt, ot) = (t[0], t[1], t[2]);
        let ct = chans(kt);
        let h = rows_needed(g, ot);
        let mut s = Slots::default();
        s.add(IBUF, bytes(a.a.dtype, nt * ct * h * g.w));
        s.add(WBUF, bytes(a.b.dtype, kt * gc * g.r * g.s));
        s.add(OBUF, bytes(a.out.dtype, nt * kt * ot * ow));
        s.add(
            WBUF,
            a.wmask
                .as_ref()
                .map_or(0, |m| bytes(m.dtype, kt * gc * g.r * g.s)),
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
        s.add(
            GBUF,
            a.aux.as_ref().map_or(0, |m| bytes(m.dtype, nt * ct * h * g.w)),
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
    let mut t = vec![g.n, g.k, oh];
    let kquant = if g.group > 1 { gk } else { 8 };
    fit(&mut t, &[0, 2, 1], &[1, kquant.max(kq), 1], caps, slots)?;
    let (nt, kt, ot) = (t[0], t[1], t[2]);
    let p = Placed {
        slots: slots(&t).layout(),
    };
    let mut tiles = Vec::new();
    let ktiles = ranges(g.k, kt);
    for (gi, &(k0, kl)) in ktiles.iter().enumerate() {
        let ws = gi % 2;
        let (c0, cl) = if g.group > 1 {
            (k0 / gk * gc, kl / gk * gc)
        } else {
            (0, g.c)
        };
        let inner: Vec<((usize, usize), (usize, usize))> = ranges(g.n, nt)
            .into_iter()
            .flat_map(|n| ranges(oh, ot).into_iter().map(move |r| (n, r)))
            .collect();
        for (ii, &((n0, nl), (o0, ol))) in inner.iter().enumerate() {
            let s = tiles.len() % 2;
            let mut tile = Tile {
                opens: true,
                closes: true,
                out_slot: s,
                ..Tile::default()
            };
            let (lo, h, pt, pb) = rows(g, o0, ol);
            let (dci, dcw) = counters(adaptive, s);
            if adaptive {
                tile.loads.extend([clear(dci)]);
            }
            tile.loads.extend(copy_block(
                true,
                &a.a,
                &[n0, c0, lo, 0],
                &[nl, cl, h, g.w],
                p.at(0, s, IBUF, a.a.dtype),
                dci,
            )?);
            if ii == 0 {
                if adaptive {
                    tile.loads.push(clear(dcw));
                }
                let wdc = if adaptive { dcw } else { "none" };
                tile.loads.extend(copy_block(
                    true,
                    &a.b,
                    &[k0, 0, 0, 0],
                    &[kl, gc, g.r, g.s],
                    p.at(1, ws, WBUF, a.b.dtype),
                    wdc,
                )?);
                if let Some(m) = &a.wmask {
                    tile.loads.extend(copy_block(
                        true,
                        m,
                        &[k0, 0, 0, 0],
                        &[kl, gc, g.r, g.s],
                        p.at(3, ws, WBUF, m.dtype),
                        "none",
                    )?);
                }
                if let Some(bl) = &a.bna {
                    tile.loads.extend(copy_block(
                        true,
                        bl,
                        &[0, c0],
                        &[4, cl],
                        p.at(4, ws, GBUF, DType::F32),
                        "none",
                    )?);
                }
                if let Some(bl) = &a.s3 {
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
                ("b", p.at(1, ws, WBUF, a.b.dtype)),
                ("out", p.at(2, s, OBUF, a.out.dtype)),
                (
                    "wmask",
                    a.wmask
                        .as_ref()
                        .map_or(Operand::NONE, |m| p.at(3, ws, WBUF, m.dtype)),
                ),
                (
                    "bna",
                    if a.bna.is_some() {
                        p.at(4, ws, GBUF, DType::F32)
                    } else {
                        Operand::NONE
                    },
                ),
                (
                    "bns",
                    if a.bns.is_some() {
                        p.at(5, ws, GBUF, DType::F32)
                    } else {
                        Operand::NONE
                    },
                ),
                (
                    "aux",
                    a.aux
                        .as_ref()
                        .map_or(Operand::NONE, |m| p.at(6, s, GBUF, m.dtype)),
                ),
                (
                    "s3",
                    if a.s3.is_some() {
                        p.at(7, ws, GBUF, DType::F32)
                    } else {
                        Operand::NONE
                    },
                ),
            ];
            let groups = if g.group > 1 { kl / gk } else { 1 };
            tile.compute.push(compute(
                a,
                "ff",
                &opt(false, a.bnrelu),
                geometry_fields(g, [nl, cl, h, kl, groups], (pt, pb)),
                ops,
                (dci, dcw),
            ));
            let osh = [g.n, g.k, oh, ow];
            tile.stores.extend(copy_block(
                false,
                &a.out.reshaped(osh.to_vec()),
                &[n0, k0, o0, 0],
                &[nl, kl, ol, ow],
                p.at(2, s, OBUF, a.out.dtype),
                "none",
            )?);
            if let Some(m) = &a.aux {
                if g.group > 1 || gi == 0 {
                    tile.stores.extend(copy_block(
                        false,
                        m,
                        &[n0, c0, lo, 0],
                        &[nl, cl, h, g.w],
                        p.at(6, s, GBUF, m.dtype),
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
            tiles.push(tile);
        }
    }
    Ok(tiles)
}

fn bp(a: &ConvArgs, caps: &[u64; 4]) -> Result<Vec<Tile>, String> {
    let g = &a.g;
    let (gc, gk) = (g.c / g.group, g.k / g.group);
    let (oh, ow) = (g.oh(), g.ow());
    let adaptive = a.df == "adaptive";
    let grouped = g.group > 1;
    // Tile dims: [n, c, k]; grouped: c in whole groups, k follows c.
    let kof = |ct: usize, kt: usize| if grouped { ct / gc * gk } else { kt };
    let slots = |t: &[usize]| {
        let (nt, ct, kt) = (t[0], t[1], kof(t[1], t[2]));
        let wc = if grouped { gc } else { ct };
        let mut s = Slots::default();
        s.add(IBUF, bytes(a.a.dtype, nt * kt * oh * ow));
        s.add(WBUF, bytes(a.b.dtype, kt * wc * g.r * g.s));
        s.add(OBUF, bytes(a.out.dtype, nt * ct * g.h * g.w));
        s.add(
            WBUF,
            a.wmask
                .as_ref()
                .map_or(0, |m| bytes(m.dtype, kt * wc * g.r * g.s)),
        );
        s.add(
            GBUF,
            a.omask
                .as_ref()
                .map_or(0, |m| bytes(m.dtype, nt * ct * g.h * g.w)),
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
            a.aux.as_ref().map_or(0, |x| bytes(x.dtype, nt * ct * g.h * g.w)),
        );
        s
    };
    let mut t = vec![g.n, g.c, if grouped { 0 } else { g.k }];
    let cq = if grouped { gc } else { 8 };
    fit(&mut t, &[0, 2, 1], &[1, cq, 8], caps, slots)?;
    let (nt, ct) = (t[0], t[1]);
    let p = Placed {
        slots: slots(&t).layout(),
    };
    let mut tiles = Vec::new();
    let mut group = 0;
    for (ci, &(c0, cl)) in ranges(g.c, ct).iter().enumerate() {
        let cs = ci % 2;
        let ntiles = ranges(g.n, nt);
        for (ni, &(n0, nl)) in ntiles.iter().enumerate() {
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
                    &[n0, k0, 0, 0],
                    &[nl, kl, oh, ow],
                    p.at(0, s, IBUF, a.a.dtype),
                    dci,
                )?);
                let (wc0, wcl) = if grouped { (0, gc) } else { (c0, cl) };
                tile.loads.extend(copy_block(
                    true,
                    &a.b,
                    &[k0, wc0, 0, 0],
                    &[kl, wcl, g.r, g.s],
                    p.at(1, s, WBUF, a.b.dtype),
                    dcw,
                )?);
                if let Some(m) = &a.wmask {
                    tile.loads.extend(copy_block(
                        true,
                        m,
                        &[k0, wc0, 0, 0],
                        &[kl, wcl, g.r, g.s],
                        p.at(3, s, WBUF, m.dtype),
                        "none",
                    )?);
                }
                if first {
                    if let Some(m) = &a.omask {
                        tile.loads.extend(copy_block(
                            true,
                            m,
                            &[n0, c0, 0, 0],
                            &[nl, cl, g.h, g.w],
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
                            &[n0, c0, 0, 0],
                            &[nl, cl, g.h, g.w],
                            p.at(7, s, IBUF, x.dtype),
                            "none",
                        )?);
                    }
                    if let (Some(bl), 0) = (&a.bna, ni) {
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
                if a.bns.is_some() && ni == 0 && first {
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
                let geo = geometry_fields(g, [nl, cl, g.h, kl, groups], (g.pads[0], g.pads[2]));
                tile.compute
                    .push(compute(a, "bp", &opt(!first, false), geo, ops, (dci, dcw)));
                if last {
                    tile.stores.extend(copy_block(
                        false,
                        &a.out,
                        &[n0, c0, 0, 0],
                        &[nl, cl, g.h, g.w],
                        p.at(2, ms, OBUF, a.out.dtype),
                        "none",
                    )?);
                    if let (Some(st), true) = (&a.bns, ni + 1 == ntiles.len()) {
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
    fit(&mut t, &[2, 3, 1, 0], &[kq, 8, 1, 1], caps, slots)?;
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
            let inner: Vec<((usize, usize), (usize, usize))> = ranges(g.n, nt)
                .into_iter()
                .flat_map(|n| ranges(oh, ot).into_iter().map(move |r| (n, r)))
                .collect();
            for (ii, &((n0, nl), (o0, ol))) in inner.iter().enumerate() {
                let s = tiles.len() % 2;
                let (lo, h, pt, pb) = rows(g, o0, ol);
                let (dci, dcw) = counters(adaptive, s);
                let mut tile = Tile {
                    opens: ii == 0,
                    closes: ii + 1 == inner.len(),
                    out_slot: os,
                    ..Tile::default()
                };
                if adaptive {
                    tile.loads.extend([clear(dci), clear(dcw)]);
                }
                tile.loads.extend(copy_block(
                    true,
                    &a.a,
                    &[n0, c0, lo, 0],
                    &[nl, cl, h, g.w],
                    p.at(0, s, IBUF, a.a.dtype),
                    dci,
                )?);
                let osh = [g.n, g.k, oh, ow];
                tile.loads.extend(copy_block(
                    true,
                    &a.b.reshaped(osh.to_vec()),
                    &[n0, k0, o0, 0],
                    &[nl, kl, ol, ow],
                    p.at(1, s, WBUF, a.b.dtype),
                    dcw,
                )?);
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
                tile.compute
                    .push(compute(a, "wg", &opt(ii > 0, a.bnrelu), geo, ops, (dci, dcw)));
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
