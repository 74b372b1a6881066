//! Tiling support: choosing tile sizes that fit the machine's buffers, carving the buffers into
//! double-buffered slots, and scheduling a tiled op's loads, computes and stores on the three
//! queues with dependency tokens.
//!
//! Token discipline (tile `t`, slot `s = t mod 2`, program order `L(0), L(1) C(0) S(0), L(2) C(1)
//! S(1), ...` so the loads of tile `t+1` overlap the compute of tile `t`):
//!
//! | token | signalled by | waited by | orders |
//! |---|---|---|---|
//! | `0+s` in-free | compute after `C(t)` (if `t+2` exists) | load before `L(t+2)` | WAR on input slots |
//! | `2+s` in-ready | load after `L(t)` | compute before `C(t)` | RAW on input slots |
//! | `4+o` out-ready | compute after the last tile of an output group | store before its stores | RAW on output slots |
//! | `6+o` out-free | store after a group's stores (if group `g+2` exists) | compute before group `g+2` | WAR on output slots |
//!
//! An *output group* is a run of tiles accumulating into one output slot `o = g mod 2` (the
//! batch/row tiles of a WG output, the channel tiles of a BP input gradient; one tile in FF).
//!
//! Every tiled op is bracketed by `barrier`s, so DRAM written by one op is complete before the
//! next one reads it, and each op may reuse the buffers from address 0.

use super::emit::{int, name, Emitter, TrnInstr};

/// Buffer indices.
pub const IBUF: usize = 0;
/// Weight buffer.
pub const WBUF: usize = 1;
/// Output buffer.
pub const OBUF: usize = 2;
/// Auxiliary buffer.
pub const GBUF: usize = 3;

/// ISA spaces of the buffers, by index.
pub const SPACES: [trainer_isa::Space; 4] = [
    trainer_isa::Space::Ibuf,
    trainer_isa::Space::Wbuf,
    trainer_isa::Space::Obuf,
    trainer_isa::Space::Gbuf,
];

/// Alignment of slots inside a buffer.
const SLOT_ALIGN: u64 = 64;

/// One tile of a tiled op.
#[derive(Debug, Default)]
pub struct Tile {
    /// DMA loads into this tile's slots.
    pub loads: Vec<TrnInstr>,
    /// Compute-queue instructions.
    pub compute: Vec<TrnInstr>,
    /// DMA stores out of this tile's slots.
    pub stores: Vec<TrnInstr>,
    /// First tile of an output group (tiles accumulating into one output slot).
    pub opens: bool,
    /// Last tile of its output group: its stores write the group's results.
    pub closes: bool,
    /// Output slot (0 or 1) of the group.
    pub out_slot: usize,
}

/// Per-buffer byte needs of one slot of each operand.
#[derive(Debug, Default, Clone)]
pub struct Slots {
    /// `(buffer, bytes)` per operand, in allocation order.
    pub needs: Vec<(usize, u64)>,
}

impl Slots {
    /// Adds an operand of `bytes` bytes in `buffer`; returns its index.
    pub fn add(&mut self, buffer: usize, bytes: u64) -> usize {
        self.needs.push((buffer, bytes));
        self.needs.len() - 1
    }

    /// `bytes` rounded up to the slot alignment.
    pub fn aligned(bytes: u64) -> u64 {
        bytes.div_ceil(SLOT_ALIGN) * SLOT_ALIGN
    }

    /// Total bytes per buffer with two slots per operand.
    pub fn totals(&self) -> [u64; 4] {
        let mut t = [0u64; 4];
        for &(b, bytes) in &self.needs {
            t[b] += 2 * Self::aligned(bytes);
        }
        t
    }

    /// Whether everything fits `caps`.
    pub fn fits(&self, caps: &[u64; 4]) -> bool {
        self.totals().iter().zip(caps).all(|(t, c)| t <= c)
    }

    /// Base addresses of slot 0 and slot 1 of every operand.
    pub fn layout(&self) -> Vec<[u64; 2]> {
        let mut next = [0u64; 4];
        self.needs
            .iter()
            .map(|&(b, bytes)| {
                let s = Self::aligned(bytes);
                let base = next[b];
                next[b] += 2 * s;
                [base, base + s]
            })
            .collect()
    }
}

/// Shrinks tile sizes `t` (one per tiled dimension, starting at the extents) until `slots(t)`
/// fits `caps`. Each round halves the one dimension that frees the largest share of the
/// over-full buffers (the earliest in `order` on ties, also when none frees anything yet), in multiples of `quantum[d]` unless the
/// tile is already at most that, and always a multiple of `floor[d]` (the alignment a bitmap
/// operand needs so that every tile boundary falls on a byte); an error names the op when even
/// the smallest tiles do not fit.
pub fn fit(
    t: &mut [usize],
    order: &[usize],
    quantum: &[usize],
    floor: &[usize],
    caps: &[u64; 4],
    slots: impl Fn(&[usize]) -> Slots,
) -> Result<(), String> {
    loop {
        let s = slots(t);
        if s.fits(caps) {
            return Ok(());
        }
        let tot = s.totals();
        let over: Vec<usize> = (0..4).filter(|&b| tot[b] > caps[b]).collect();
        // The halving that frees the largest share of the over-full buffers (earlier in
        // `order` on ties).
        let mut best: Option<(f64, usize, usize)> = None;
        for &d in order {
            if t[d] <= floor[d].max(1) {
                continue;
            }
            let mut trial = t.to_vec();
            let half = t[d].div_ceil(2);
            let q = quantum[d].max(1);
            trial[d] = if half >= q {
                half / q * q
            } else if t[d] > q {
                q
            } else {
                half
            };
            let f = floor[d].max(1);
            trial[d] = (trial[d] / f * f).max(f);
            if trial[d] == 0 || trial[d] == t[d] {
                continue;
            }
            let ts = slots(&trial).totals();
            let gain: f64 = over
                .iter()
                .map(|&b| (tot[b] - ts[b].min(tot[b])) as f64 / tot[b] as f64)
                .sum();
            // A halving that frees nothing now (an input halo) may still enable later ones.
            if best.is_none_or(|(g, _, _)| gain > g) {
                best = Some((gain, d, trial[d]));
            }
        }
        let shrunk = best.is_some();
        if let Some((_, d, v)) = best {
            t[d] = v;
        }
        if !shrunk {
            let need = s.totals();
            return Err(format!(
                "does not fit the on-chip buffers even with the smallest tiles (needs ibuf {} wbuf {} obuf {} gbuf {} bytes, has {caps:?})",
                need[0], need[1], need[2], need[3]
            ));
        }
    }
}

/// `(start, len)` of the tiles of `0..extent` in steps of `tile`.
pub fn ranges(extent: usize, tile: usize) -> Vec<(usize, usize)> {
    (0..extent)
        .step_by(tile.max(1))
        .map(|s| (s, tile.min(extent - s)))
        .collect()
}

fn tok(q: &str, which: &'static str, t: usize) -> TrnInstr {
    TrnInstr::new(which, vec![name("q", q), int("tok", t)])
}

/// Emits a tiled op: barrier, loads of tile 0, then per tile the next tile's loads, this tile's
/// computes and stores, with the token discipline of the module docs; then a barrier.
pub fn schedule(e: &mut Emitter, tiles: Vec<Tile>) {
    let n = tiles.len();
    e.push("barrier", vec![]);
    let mut tiles: Vec<Option<Tile>> = tiles.into_iter().map(Some).collect();
    let loads = |e: &mut Emitter, tiles: &mut Vec<Option<Tile>>, t: usize| {
        let tile = tiles[t].as_mut().expect("tile scheduled once");
        if t >= 2 {
            e.code.push(tok("load", "tok.wait", t % 2));
        }
        e.extend(std::mem::take(&mut tile.loads));
        e.code.push(tok("load", "tok.signal", 2 + t % 2));
    };
    if n > 0 {
        loads(e, &mut tiles, 0);
    }
    let groups = tiles
        .iter()
        .filter(|t| t.as_ref().is_some_and(|t| t.opens))
        .count();
    let mut g = 0usize;
    for t in 0..n {
        if t + 1 < n {
            loads(e, &mut tiles, t + 1);
        }
        let tile = tiles[t].take().expect("tile scheduled once");
        let (s, o) = (t % 2, tile.out_slot);
        e.code.push(tok("compute", "tok.wait", 2 + s));
        if tile.opens && g >= 2 {
            e.code.push(tok("compute", "tok.wait", 6 + o));
        }
        e.extend(tile.compute);
        if t + 2 < n {
            e.code.push(tok("compute", "tok.signal", s));
        }
        if tile.closes {
            e.code.push(tok("compute", "tok.signal", 4 + o));
            e.code.push(tok("store", "tok.wait", 4 + o));
            e.extend(tile.stores);
            if g + 2 < groups {
                e.code.push(tok("store", "tok.signal", 6 + o));
            }
            g += 1;
        }
    }
    e.push("barrier", vec![]);
}
