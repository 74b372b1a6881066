//! Loop rolling (`spec/lowering.md` "Loops"): rewrites an entry's straight instruction list into
//! `loop` … `endloop` nests whose DMAs walk DRAM through address registers.
//!
//! A *run* is `k ≥ 2` consecutive bodies (blocks of at most [`MAX_BODY`] items, an item being an
//! instruction or an already rolled loop) that are identical except for the DRAM addresses of
//! `dma.load`/`dma.store` with `ar=ar0`, each of which advances by a constant non-negative stride
//! from one body to the next. Every other field — streaming units' DRAM operands included — must be
//! identical. A run becomes one loop holding the first body; it is rolled only when that makes the
//! entry shorter. Runs are found greedily left to right over interned items (DMA addresses
//! masked), trying only the periods at which the first item recurs (a run of fewer than four
//! bodies gives way to a better one starting inside its first body); passes repeat so that runs of
//! bodies holding loops nest (at most [`MAX_LOOP_DEPTH`] deep), and the body of each new loop is
//! rolled in turn.
//!
//! Registers: every DMA of a loop nest whose address changes gets a register shared by the DMAs
//! with the same strides whose deepest advancing loop is the same. Before the nest, `ar.set r 0`;
//! at the end of the body of each loop `L` on the group's path, `ar.add r d` with `d = s_L` at
//! the group's deepest advancing loop and `d = s_L − k_C·s_C` above it (`C` the child loop on the
//! path, run `k_C` times, which advanced `r` by `k_C·s_C`), so the register holds
//! `Σ iₗ·sₗ` whenever a DMA reads it. A nest needing more registers than are free is unrolled
//! one level (its inner loops become nests of their own).

use super::emit::{int, name, FieldValue, Name, TrnInstr};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use trainer_isa::program::MAX_LOOP_DEPTH;

/// Longest loop body tried, in items.
pub const MAX_BODY: usize = 512;

/// Passes over one item list (each can nest loops one level deeper).
const PASSES: usize = MAX_LOOP_DEPTH + 1;

/// Address register names by number.
const REGS: [&str; 8] = ["ar0", "ar1", "ar2", "ar3", "ar4", "ar5", "ar6", "ar7"];

/// Rolls the instructions of one entry into loops. An entry that already holds loops is
/// returned unchanged; address registers it already uses are left alone.
pub fn roll(code: Vec<TrnInstr>) -> Vec<TrnInstr> {
    if code.iter().any(|i| i.mnemonic == "loop") {
        return code;
    }
    let used: Vec<&str> = code
        .iter()
        .flat_map(|i| &i.fields)
        .filter(|(f, _)| *f == "ar" || *f == "reg")
        .filter_map(|(_, v)| match v {
            FieldValue::Name(n) if n.as_str() != "ar0" => Some(n.as_str()),
            _ => None,
        })
        .collect();
    let regs: Vec<&'static str> = REGS[1..].iter().copied().filter(|r| !used.contains(r)).collect();
    let items = code
        .into_iter()
        .map(|instr| {
            let addr = dram_addr(&instr);
            Item::Leaf(Leaf {
                strides: addr.map(|_| Vec::new()),
                addr: addr.unwrap_or(0),
                instr,
                id: None,
            })
        })
        .collect();
    let items = roll_seq(items, 0, &mut Interner::default());
    let mut out = Vec::new();
    emit(items, &regs, &mut out);
    out
}

/// An instruction or a rolled loop.
#[derive(Clone, Debug)]
enum Item {
    Leaf(Leaf),
    Loop(Loop),
}

/// An instruction (of the first iteration of its loops).
#[derive(Clone, Debug)]
struct Leaf {
    instr: TrnInstr,
    /// For a DMA whose address may be rolled: its stride per enclosing loop of the nest,
    /// outermost first (`None`: any other instruction).
    strides: Option<Vec<u32>>,
    /// Its DRAM address (if `strides` is `Some`).
    addr: u32,
    /// Its interned shape, once known.
    id: Option<u32>,
}

/// A loop: `count` iterations of `body`.
#[derive(Clone, Debug)]
struct Loop {
    count: u32,
    body: Vec<Item>,
    /// Interned shape, size and depth, once known.
    memo: Option<(u32, usize, usize)>,
}

/// The DRAM address of a DMA with `ar=ar0` (the instructions whose address can be rolled).
fn dram_addr(i: &TrnInstr) -> Option<u32> {
    if !matches!(i.mnemonic, "dma.load" | "dma.store") {
        return None;
    }
    let ar0 = i
        .fields
        .iter()
        .any(|(f, v)| *f == "ar" && matches!(v, FieldValue::Name(n) if n.as_str() == "ar0"));
    let dram = i.fields.iter().find_map(|(f, v)| match (f, v) {
        (&"dram", FieldValue::Operand(o)) => Some(o.addr),
        _ => None,
    });
    dram.filter(|_| ar0)
}

/// Sets field `f` of `i` to `v`.
fn set_field(i: &mut TrnInstr, f: &str, v: FieldValue) {
    if let Some(slot) = i.fields.iter_mut().find(|(k, _)| *k == f) {
        slot.1 = v;
    }
}

/// Adds `by` to the DRAM address of DMA `i`.
fn shift_addr(i: &mut TrnInstr, by: u32) {
    for (f, v) in &mut i.fields {
        if let (&mut "dram", FieldValue::Operand(o)) = (f, v) {
            o.addr = o.addr.wrapping_add(by);
        }
    }
}

/// A fast non-cryptographic hasher for interning (FxHash's multiply-rotate; equal hashes are
/// always confirmed by comparison).
#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A hash map with [`FastHasher`].
type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// What an item is up to its rollable DMA addresses, interned to a number.
#[derive(Debug)]
enum Shape {
    Leaf(TrnInstr, Option<Vec<u32>>),
    Loop(u32, Vec<u32>),
}

/// Interned item shapes: equal numbers mean equal items up to rollable DMA addresses.
#[derive(Default)]
struct Interner {
    by_hash: FastMap<u64, Vec<u32>>,
    shapes: Vec<Shape>,
}

/// Hashes a field value (floats by bits); `mask` leaves an operand's address out.
fn hash_value(v: &FieldValue, mask: bool, h: &mut FastHasher) {
    match v {
        FieldValue::Int(x) => (0u8, x).hash(h),
        FieldValue::Float(x) => (1u8, x.to_bits()).hash(h),
        FieldValue::Name(n) => (2u8, n.as_str()).hash(h),
        FieldValue::Operand(o) if mask => (3u8, o.space, o.dtype).hash(h),
        FieldValue::Operand(o) => (4u8, o).hash(h),
    }
}

/// Whether two leaves are equal up to their rollable DRAM address.
fn leaf_eq(a: &TrnInstr, sa: &Option<Vec<u32>>, b: &TrnInstr, sb: &Option<Vec<u32>>) -> bool {
    let masked = sa.is_some();
    a.mnemonic == b.mnemonic
        && sa == sb
        && a.fields.len() == b.fields.len()
        && a.fields.iter().zip(&b.fields).all(|((fa, va), (fb, vb))| {
            fa == fb
                && match (va, vb) {
                    (FieldValue::Operand(x), FieldValue::Operand(y)) if masked && *fa == "dram" => {
                        x.space == y.space && x.dtype == y.dtype
                    }
                    (FieldValue::Float(x), FieldValue::Float(y)) => x.to_bits() == y.to_bits(),
                    _ => va == vb,
                }
        })
}

impl Interner {
    fn leaf(&mut self, l: &Leaf) -> u32 {
        let mut h = FastHasher::default();
        (0u8, l.instr.mnemonic, &l.strides).hash(&mut h);
        let masked = l.strides.is_some();
        for (f, v) in &l.instr.fields {
            f.hash(&mut h);
            hash_value(v, masked && *f == "dram", &mut h);
        }
        let same = |s: &Shape| matches!(s, Shape::Leaf(i, st) if leaf_eq(&l.instr, &l.strides, i, st));
        self.intern(h.finish(), same, || {
            Shape::Leaf(l.instr.clone(), l.strides.clone())
        })
    }

    fn looped(&mut self, count: u32, body: Vec<u32>) -> u32 {
        let mut h = FastHasher::default();
        (1u8, count, &body).hash(&mut h);
        let same = |s: &Shape| matches!(s, Shape::Loop(c, b) if *c == count && *b == body);
        self.intern(h.finish(), same, || Shape::Loop(count, body.clone()))
    }

    /// The number of the shape `same` recognizes, `shape()` added if it is new.
    fn intern(&mut self, hash: u64, same: impl Fn(&Shape) -> bool, shape: impl FnOnce() -> Shape) -> u32 {
        let shapes = &self.shapes;
        let found = self
            .by_hash
            .get(&hash)
            .and_then(|ids| ids.iter().copied().find(|&id| same(&shapes[id as usize])));
        match found {
            Some(id) => id,
            None => self.insert(hash, shape()),
        }
    }

    fn insert(&mut self, hash: u64, shape: Shape) -> u32 {
        let id = self.shapes.len() as u32;
        self.shapes.push(shape);
        self.by_hash.entry(hash).or_default().push(id);
        id
    }
}

/// The items of one list as the run search sees them.
#[derive(Default)]
struct Described {
    /// Interned shape per item.
    ids: Vec<u32>,
    /// Instructions each item emits (loop control included, register setup left out).
    sizes: Vec<usize>,
    /// Loop nesting depth of each item (0 for an instruction).
    depths: Vec<usize>,
    /// Rollable DMA addresses of all items, in order; item `i` owns `addrs[at[i]..at[i + 1]]`.
    addrs: Vec<u32>,
    at: Vec<usize>,
}

impl Described {
    fn new(items: &mut [Item], int: &mut Interner) -> Described {
        let mut d = Described::default();
        d.at.push(0);
        for it in items {
            let (id, size, depth) = d.describe(it, int);
            d.ids.push(id);
            d.sizes.push(size);
            d.depths.push(depth);
            d.at.push(d.addrs.len());
        }
        d
    }

    /// Shape, size and depth of `it` (remembered in it); appends its addresses.
    fn describe(&mut self, it: &mut Item, int: &mut Interner) -> (u32, usize, usize) {
        match it {
            Item::Leaf(l) => {
                if l.strides.is_some() {
                    self.addrs.push(l.addr);
                }
                let id = match l.id {
                    Some(id) => id,
                    None => int.leaf(l),
                };
                l.id = Some(id);
                (id, 1, 0)
            }
            Item::Loop(lp) => {
                if let Some(m) = lp.memo {
                    push_addrs(&lp.body, &mut self.addrs);
                    return m;
                }
                let (mut ids, mut size, mut depth) = (Vec::with_capacity(lp.body.len()), 2, 0);
                for b in &mut lp.body {
                    let (i, s, dp) = self.describe(b, int);
                    ids.push(i);
                    size += s;
                    depth = depth.max(dp);
                }
                let m = (int.looped(lp.count, ids), size, depth + 1);
                lp.memo = Some(m);
                m
            }
        }
    }

    fn addrs(&self, i: usize) -> &[u32] {
        &self.addrs[self.at[i]..self.at[i + 1]]
    }

    /// Address advances from item `a` to item `b` of the same shape (`None`: one goes down).
    fn deltas(&self, a: usize, b: usize) -> impl Iterator<Item = Option<u32>> + '_ {
        self.addrs(a)
            .iter()
            .zip(self.addrs(b))
            .map(|(&x, &y)| y.checked_sub(x))
    }

    /// Bodies in the run of period `p` starting at `s`.
    fn run(&self, s: usize, p: usize) -> u32 {
        let n = self.ids.len();
        let mut k = 1usize;
        while s + (k + 1) * p <= n && k < u32::MAX as usize {
            let (b0, b1) = (s + (k - 1) * p, s + k * p);
            if self.ids[b0..b0 + p] != self.ids[b1..b1 + p] {
                break;
            }
            let ok = (0..p).all(|i| {
                if k == 1 {
                    self.deltas(b0 + i, b1 + i).all(|d| d.is_some())
                } else {
                    self.deltas(b0 + i, b1 + i).eq(self.deltas(s + i, s + p + i))
                }
            });
            if !ok {
                break;
            }
            k += 1;
        }
        k as u32
    }

    /// Instructions saved by rolling `k` bodies of period `p` at `s` into a loop (estimated:
    /// one `ar.add`, and at the top level one `ar.set`, per distinct non-zero stride).
    fn saving(&self, s: usize, p: usize, k: u32, top: bool) -> i64 {
        let body: usize = self.sizes[s..s + p].iter().sum();
        let mut strides: Vec<u32> = (s..s + p)
            .flat_map(|i| self.deltas(i, i + p).flatten())
            .filter(|&d| d != 0)
            .collect();
        strides.sort_unstable();
        strides.dedup();
        let regs = strides.len() * if top { 2 } else { 1 };
        (u64::from(k) * body as u64) as i64 - (body + 2 + regs) as i64
    }
}

/// Appends the addresses of the rollable DMAs of `items` to `out`.
fn push_addrs(items: &[Item], out: &mut Vec<u32>) {
    for it in items {
        match it {
            Item::Leaf(l) if l.strides.is_some() => out.push(l.addr),
            Item::Leaf(_) => {}
            Item::Loop(lp) => push_addrs(&lp.body, out),
        }
    }
}

/// Rolls the list `items` whose enclosing loops are `ctx` deep.
fn roll_seq(mut items: Vec<Item>, ctx: usize, int: &mut Interner) -> Vec<Item> {
    for _ in 0..PASSES {
        let (out, changed) = pass(items, ctx, int);
        items = out;
        if !changed {
            break;
        }
    }
    items
}

/// A run: (instructions saved, period, bodies).
type Run = (i64, usize, u32);

/// The best run at each position of one list, computed on demand.
struct Search<'a> {
    d: &'a Described,
    /// Next position of the same shape.
    next: Vec<usize>,
    /// Nesting depth around the list.
    ctx: usize,
    /// Per position once computed: the best `(saving, period, bodies)`, and how many items to
    /// pass over when there is none (a run too deep to roll is passed over whole).
    memo: Vec<Option<(Option<Run>, usize)>>,
}

impl<'a> Search<'a> {
    fn new(d: &'a Described, ctx: usize) -> Self {
        let n = d.ids.len();
        let mut next = vec![usize::MAX; n];
        let mut last: FastMap<u32, usize> = FastMap::with_capacity_and_hasher(n, Default::default());
        for i in (0..n).rev() {
            if let Some(j) = last.insert(d.ids[i], i) {
                next[i] = j;
            }
        }
        Search {
            d,
            next,
            ctx,
            memo: vec![None; n],
        }
    }

    /// The run saving the most instructions at `s` (trying the periods at which item `s`
    /// recurs), and the span to pass over without one.
    fn best(&mut self, s: usize) -> (Option<Run>, usize) {
        if let Some(b) = self.memo[s] {
            return b;
        }
        let (d, n) = (self.d, self.d.ids.len());
        let mut best: Option<Run> = None;
        let mut skip = 1;
        let mut j = self.next[s];
        while j != usize::MAX && j - s <= MAX_BODY && s + 2 * (j - s) <= n {
            let p = j - s;
            let k = d.run(s, p);
            if k >= 2 {
                let depth = 1 + d.depths[s..s + p].iter().max().copied().unwrap_or(0);
                if self.ctx + depth > MAX_LOOP_DEPTH {
                    skip = skip.max(k as usize * p);
                } else {
                    let gain = d.saving(s, p, k, self.ctx == 0);
                    if gain > 0 && best.is_none_or(|(g, ..)| gain > g) {
                        best = Some((gain, p, k));
                    }
                }
            }
            j = self.next[j];
        }
        self.memo[s] = Some((best, skip));
        (best, skip)
    }

    /// Whether a short run (fewer than [`LOOKAHEAD_BODIES`] bodies) at `s` with `gain` should
    /// give way to a better one starting inside its first body.
    fn yields(&mut self, s: usize, gain: i64, p: usize, k: u32) -> bool {
        k < LOOKAHEAD_BODIES
            && (s + 1..(s + p).min(self.d.ids.len())).any(|t| self.best(t).0.is_some_and(|(g, ..)| g > gain))
    }
}

/// Runs with fewer bodies than this give way to a better run that overlaps their first body.
const LOOKAHEAD_BODIES: u32 = 4;

/// One greedy left-to-right pass: at each position, the run saving the most instructions
/// (unless a short one overlaps a better one).
fn pass(mut items: Vec<Item>, ctx: usize, int: &mut Interner) -> (Vec<Item>, bool) {
    let d = Described::new(&mut items, int);
    let n = items.len();
    let mut search = Search::new(&d, ctx);
    let mut items: Vec<Option<Item>> = items.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(n);
    let mut changed = false;
    let mut s = 0;
    while s < n {
        let (best, skip) = search.best(s);
        let take = best.filter(|&(g, p, k)| !search.yields(s, g, p, k));
        let Some((_, p, k)) = take else {
            let skip = if best.is_some() { 1 } else { skip };
            for it in &mut items[s..(s + skip).min(n)] {
                out.push(it.take().expect("each item is taken once"));
            }
            s += skip;
            continue;
        };
        let mut body: Vec<Item> = items[s..s + p]
            .iter_mut()
            .map(|it| it.take().expect("each item is taken once"))
            .collect();
        let mut strides = (s..s + p).flat_map(|i| d.deltas(i, i + p).map(|x| x.expect("checked")));
        for it in &mut body {
            insert_stride(it, ctx, &mut strides);
        }
        for it in &mut items[s + p..s + k as usize * p] {
            it.take();
        }
        let body = roll_seq(body, ctx + 1, int);
        out.push(Item::Loop(Loop {
            count: k,
            body,
            memo: None,
        }));
        changed = true;
        s += k as usize * p;
    }
    (out, changed)
}

/// Inserts the next strides of `strides` at nest level `level` into the rollable DMAs of `it`.
fn insert_stride(it: &mut Item, level: usize, strides: &mut impl Iterator<Item = u32>) {
    match it {
        Item::Leaf(Leaf {
            strides: Some(v), id, ..
        }) => {
            v.insert(level, strides.next().expect("one stride per rollable DMA"));
            *id = None;
        }
        Item::Leaf(_) => {}
        Item::Loop(lp) => {
            lp.memo = None;
            for b in &mut lp.body {
                insert_stride(b, level, strides);
            }
        }
    }
}

/// Appends the instructions of `items` (top level of an entry) to `out`.
fn emit(items: Vec<Item>, regs: &[&'static str], out: &mut Vec<TrnInstr>) {
    for it in items {
        match it {
            Item::Leaf(l) => out.push(l.instr),
            Item::Loop(lp) => emit_nest(lp, regs, out),
        }
    }
}

/// The DMAs sharing one address register in a nest.
struct Group {
    /// Preorder numbers of the loops from the nest's root to the deepest advancing one.
    path: Vec<usize>,
    /// Their iteration counts.
    counts: Vec<u32>,
    /// Their strides.
    strides: Vec<u32>,
}

/// Register groups of one nest, found in preorder.
#[derive(Default)]
struct Groups {
    list: Vec<Group>,
    index: HashMap<(usize, Vec<u32>), usize>,
}

impl Groups {
    /// The group of a DMA with `strides` under the loops `path` (`None`: its address never
    /// changes); new groups are added when `add`.
    fn of(&mut self, path: &[(usize, u32)], strides: &[u32], add: bool) -> Option<usize> {
        let deepest = strides.iter().rposition(|&s| s != 0)?;
        let key = (path[deepest].0, strides[..=deepest].to_vec());
        if let Some(&g) = self.index.get(&key) {
            return Some(g);
        }
        debug_assert!(add, "groups are collected before emission");
        self.list.push(Group {
            path: path[..=deepest].iter().map(|p| p.0).collect(),
            counts: path[..=deepest].iter().map(|p| p.1).collect(),
            strides: key.1.clone(),
        });
        self.index.insert(key, self.list.len() - 1);
        Some(self.list.len() - 1)
    }

    /// Collects the groups of loop `lp` (preorder number `*next`) under `path`.
    fn collect(&mut self, lp: &Loop, path: &mut Vec<(usize, u32)>, next: &mut usize) {
        path.push((*next, lp.count));
        *next += 1;
        for it in &lp.body {
            match it {
                Item::Leaf(Leaf { strides: Some(s), .. }) => {
                    self.of(path, s, true);
                }
                Item::Leaf(_) => {}
                Item::Loop(inner) => self.collect(inner, path, next),
            }
        }
        path.pop();
    }
}

/// Emits one top-level loop nest with its register setup, or unrolls its outer loop when the
/// nest needs more registers than `regs`.
fn emit_nest(lp: Loop, regs: &[&'static str], out: &mut Vec<TrnInstr>) {
    let mut groups = Groups::default();
    groups.collect(&lp, &mut Vec::new(), &mut 0);
    if groups.list.len() > regs.len() {
        for j in 0..lp.count {
            let mut body = lp.body.clone();
            for it in &mut body {
                peel(it, j);
            }
            emit(body, regs, out);
        }
        return;
    }
    for &r in &regs[..groups.list.len()] {
        out.push(TrnInstr::new("ar.set", vec![name("reg", r), int("value", 0)]));
    }
    emit_loop(lp, &mut groups, regs, &mut Vec::new(), &mut 0, out);
}

/// Makes `it`, from the body of a nest's root loop, the copy of iteration `j` outside it.
fn peel(it: &mut Item, j: u32) {
    match it {
        Item::Leaf(l) => {
            if let Some(s) = &mut l.strides {
                let by = j.wrapping_mul(s.remove(0));
                shift_addr(&mut l.instr, by);
                l.addr = l.addr.wrapping_add(by);
            }
        }
        Item::Loop(lp) => {
            for b in &mut lp.body {
                peel(b, j);
            }
        }
    }
}

/// Emits loop `lp` (preorder number `*next`) under `path`, DMAs reading their group's register.
fn emit_loop(
    lp: Loop,
    groups: &mut Groups,
    regs: &[&'static str],
    path: &mut Vec<(usize, u32)>,
    next: &mut usize,
    out: &mut Vec<TrnInstr>,
) {
    let me = *next;
    *next += 1;
    let level = path.len();
    path.push((me, lp.count));
    out.push(TrnInstr::new("loop", vec![int("count", lp.count as usize)]));
    for it in lp.body {
        match it {
            Item::Leaf(mut l) => {
                if let Some(g) = l.strides.as_ref().and_then(|s| groups.of(path, s, false)) {
                    set_field(&mut l.instr, "ar", FieldValue::Name(Name::new(regs[g])));
                }
                out.push(l.instr);
            }
            Item::Loop(inner) => emit_loop(inner, groups, regs, path, next, out),
        }
    }
    for (g, grp) in groups.list.iter().enumerate() {
        if grp.path.get(level) != Some(&me) {
            continue;
        }
        let mut add = grp.strides[level];
        if let (Some(&k), Some(&s)) = (grp.counts.get(level + 1), grp.strides.get(level + 1)) {
            add = add.wrapping_sub(k.wrapping_mul(s));
        }
        if add != 0 {
            out.push(TrnInstr::new(
                "ar.add",
                vec![name("reg", regs[g]), int("value", add as usize)],
            ));
        }
    }
    out.push(TrnInstr::new("endloop", vec![]));
    path.pop();
}

#[cfg(test)]
mod tests;
