//! Tiled matrix products: FF tiles rows of `A` and output features, BP rows and input features,
//! both accumulating over tiles of their reduction dimension with `acc`; WG tiles the
//! weight-gradient block and accumulates over row tiles with `acc`.

use super::emit::{buf, clear, copy_block, int, name, operand, TrnInstr};
use super::plan::Loc;
use super::tile::{fit, ranges, Slots, Tile, GBUF, IBUF, OBUF, SPACES, WBUF};
use trainer_isa::{DType, Operand};

/// The DRAM operands and options of one matmul (whole-tensor view).
#[derive(Debug, Clone)]
pub struct MatmulArgs {
    /// `ff`, `bp` or `wg`.
    pub mode: &'static str,
    /// `M`, `K`, `N` of the forward product `[M,K]·[K,N]`.
    pub mkn: [usize; 3],
    /// `B` stored `[N, K]`.
    pub tb: bool,
    /// Operand `a`.
    pub a: Loc,
    /// Operand `b`.
    pub b: Loc,
    /// Result.
    pub out: Loc,
    /// Weight mask (FF/BP).
    pub wmask: Option<Loc>,
    /// Output mask (S1 in BP, S2 in WG).
    pub omask: Option<Loc>,
    /// Dataflow name.
    pub df: String,
    /// Skip flags.
    pub skip: String,
}

fn bytes(d: DType, n: usize) -> u64 {
    d.bytes(n as u64)
}

/// `B`-layout block of rows `k0..k0+kl` (K) and columns `n0..n0+nl` (N): `(start, ext)`.
fn b_block(tb: bool, (k0, kl): (usize, usize), (n0, nl): (usize, usize)) -> ([usize; 2], [usize; 2]) {
    if tb {
        ([n0, k0], [nl, kl])
    } else {
        ([k0, n0], [kl, nl])
    }
}

fn instr(
    a: &MatmulArgs,
    acc: bool,
    (m, k, n): (usize, usize, usize),
    ops: Vec<(&'static str, Operand)>,
    dc: (&str, &str),
) -> TrnInstr {
    let mut flags = vec![];
    if acc {
        flags.push("acc");
    }
    if a.tb {
        flags.push("tb");
    }
    let opt = if flags.is_empty() {
        "none".to_string()
    } else {
        flags.join("+")
    };
    let mut f = vec![
        name("mode", a.mode),
        name("df", &a.df),
        name("skip", &a.skip),
        name("opt", &opt),
        name("dci", dc.0),
        name("dcw", dc.1),
        int("m", m),
        int("k", k),
        int("n", n),
    ];
    f.extend(
        ops.into_iter()
            .filter(|(_, o)| !o.is_none())
            .map(|(n, o)| operand(n, o)),
    );
    TrnInstr::new("matmul", f)
}

/// Lowers one matmul to tiles.
pub fn lower(a: &MatmulArgs, caps: &[u64; 4]) -> Result<Vec<Tile>, String> {
    let [m, k, n] = a.mkn;
    let adaptive = a.df == "adaptive";
    let dc = |s: usize| match (adaptive, s) {
        (false, _) => ("none", "none"),
        (true, 0) => ("dc0", "dc1"),
        (true, _) => ("dc2", "dc3"),
    };
    let wm = a.wmask.as_ref();
    let om = a.omask.as_ref();
    // Tile dims per mode: ff [m, n, k], bp [m, k, n], wg [k, n, m]; the last is the reduction,
    // accumulated in the output slot with `acc`.
    let slots = |t: &[usize]| {
        let mut s = Slots::default();
        let (ae, be, oe) = match a.mode {
            "ff" => (t[0] * t[2], t[2] * t[1], t[0] * t[1]),
            "bp" => (t[0] * t[2], t[1] * t[2], t[0] * t[1]),
            _ => (t[2] * t[0], t[2] * t[1], t[0] * t[1]),
        };
        s.add(IBUF, bytes(a.a.dtype, ae));
        s.add(WBUF, bytes(a.b.dtype, be));
        s.add(OBUF, bytes(a.out.dtype, oe));
        s.add(WBUF, wm.map_or(0, |w| bytes(w.dtype, be)));
        s.add(GBUF, om.map_or(0, |o| bytes(o.dtype, oe)));
        s
    };
    let mut t = match a.mode {
        "ff" => vec![m, n, k],
        "bp" => vec![m, k, n],
        _ => vec![k, n, m],
    };
    let order: &[usize] = if a.mode == "wg" { &[2, 1, 0] } else { &[0, 1, 2] };
    // A bitmap operand needs its row-internal tile boundaries on a byte: the output mask's last
    // dimension (bp: K; wg: B's layout) and the weight mask's.
    let bitmap = |l: Option<&Loc>| l.is_some_and(|l| l.dtype == DType::B1);
    let mut floor = [1usize; 3];
    match a.mode {
        "ff" if bitmap(wm) => floor[if a.tb { 2 } else { 1 }] = 8,
        "bp" => {
            if bitmap(om) {
                floor[1] = 8;
            }
            if bitmap(wm) {
                floor[if a.tb { 1 } else { 2 }] = 8;
            }
        }
        "wg" if bitmap(om) => floor[if a.tb { 0 } else { 1 }] = 8,
        _ => {}
    }
    fit(&mut t, order, &[8, 8, 8], &floor, caps, slots)?;
    let p = slots(&t).layout();
    let at = |i: usize, s: usize, space: usize, d: DType| buf(SPACES[space], d, p[i][s]);
    let mut tiles = Vec::new();
    let ops = |s: usize, os: usize, acc_out: Operand| {
        vec![
            ("a", at(0, s, IBUF, a.a.dtype)),
            ("b", at(1, s, WBUF, a.b.dtype)),
            ("out", acc_out),
            ("wmask", wm.map_or(Operand::NONE, |w| at(3, s, WBUF, w.dtype))),
            ("omask", om.map_or(Operand::NONE, |o| at(4, os, GBUF, o.dtype))),
        ]
    };
    match a.mode {
        "ff" | "bp" => {
            let ff = a.mode == "ff";
            let mut group = 0;
            for &(m0, ml) in &ranges(m, t[0]) {
                let (inner, red) = if ff { (n, k) } else { (k, n) };
                for &(j0, jl) in &ranges(inner, t[1]) {
                    let os = group % 2;
                    group += 1;
                    let rt = ranges(red, t[2]);
                    for (ri, &(r0, rl)) in rt.iter().enumerate() {
                        let s = tiles.len() % 2;
                        let (first, last) = (ri == 0, ri + 1 == rt.len());
                        let mut tile = Tile {
                            opens: first,
                            closes: last,
                            out_slot: os,
                            ..Tile::default()
                        };
                        let (dci, dcw) = dc(s);
                        if adaptive {
                            tile.loads.extend([clear(dci), clear(dcw)]);
                        }
                        let bs = if ff {
                            b_block(a.tb, (r0, rl), (j0, jl))
                        } else {
                            b_block(a.tb, (j0, jl), (r0, rl))
                        };
                        tile.loads.extend(copy_block(
                            true,
                            &a.a,
                            &[m0, r0],
                            &[ml, rl],
                            at(0, s, IBUF, a.a.dtype),
                            dci,
                        )?);
                        // The weight counter sees the weights as the array does: the mask's
                        // kept bits when there is a mask (pruned weights keep their values).
                        let (wctr, mctr) = if wm.is_some() {
                            ("none", dcw)
                        } else {
                            (dcw, "none")
                        };
                        tile.loads.extend(copy_block(
                            true,
                            &a.b,
                            &bs.0,
                            &bs.1,
                            at(1, s, WBUF, a.b.dtype),
                            wctr,
                        )?);
                        if let Some(w) = wm {
                            tile.loads.extend(copy_block(
                                true,
                                w,
                                &bs.0,
                                &bs.1,
                                at(3, s, WBUF, w.dtype),
                                mctr,
                            )?);
                        }
                        if let (Some(o), true) = (om, first) {
                            tile.loads.extend(copy_block(
                                true,
                                o,
                                &[m0, j0],
                                &[ml, jl],
                                at(4, os, GBUF, o.dtype),
                                "none",
                            )?);
                        }
                        let dims = if ff { (ml, rl, jl) } else { (ml, jl, rl) };
                        let out = at(2, os, OBUF, a.out.dtype);
                        tile.compute
                            .push(instr(a, !first, dims, ops(s, os, out), (dci, dcw)));
                        if last {
                            tile.stores
                                .extend(copy_block(false, &a.out, &[m0, j0], &[ml, jl], out, "none")?);
                        }
                        tiles.push(tile);
                    }
                }
            }
        }
        _ => {
            let mut group = 0;
            for &(k0, kl) in &ranges(k, t[0]) {
                for &(n0, nl) in &ranges(n, t[1]) {
                    let os = group % 2;
                    group += 1;
                    let (ws, we) = b_block(a.tb, (k0, kl), (n0, nl));
                    let mt = ranges(m, t[2]);
                    for (mi, &(m0, ml)) in mt.iter().enumerate() {
                        let s = tiles.len() % 2;
                        let mut tile = Tile {
                            opens: mi == 0,
                            closes: mi + 1 == mt.len(),
                            out_slot: os,
                            ..Tile::default()
                        };
                        let (dci, dcw) = dc(s);
                        if adaptive {
                            tile.loads.extend([clear(dci), clear(dcw)]);
                        }
                        tile.loads.extend(copy_block(
                            true,
                            &a.a,
                            &[m0, k0],
                            &[ml, kl],
                            at(0, s, IBUF, a.a.dtype),
                            dci,
                        )?);
                        tile.loads.extend(copy_block(
                            true,
                            &a.b,
                            &[m0, n0],
                            &[ml, nl],
                            at(1, s, WBUF, a.b.dtype),
                            dcw,
                        )?);
                        if let (Some(o), 0) = (om, mi) {
                            tile.loads.extend(copy_block(
                                true,
                                o,
                                &ws,
                                &we,
                                at(4, os, GBUF, o.dtype),
                                "none",
                            )?);
                        }
                        let out = at(2, os, OBUF, a.out.dtype);
                        tile.compute
                            .push(instr(a, mi > 0, (ml, kl, nl), ops(s, os, out), (dci, dcw)));
                        if tile.closes {
                            tile.stores
                                .extend(copy_block(false, &a.out, &ws, &we, out, "none")?);
                        }
                        tiles.push(tile);
                    }
                }
            }
        }
    }
    Ok(tiles)
}
