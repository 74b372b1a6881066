//! Lowering of the ops of one entry in program order: value locations (aliases, pinned outputs,
//! temporaries with liveness-based reuse) and the instructions of every `sdt` op.

use super::conv::{self, ConvArgs};
use super::emit::{name, phase, Emitter, TrnInstr};
use super::matmul::{self, MatmulArgs};
use super::plan::{shape_of, storage, value_dtype, Arena, Loc, StaticPlan};
use super::stream::{convert, instr, nchw, per_channel, with_opt};
use super::tile::schedule;
use super::{LowerError, LowerOptions};
use crate::interp::geom;
use crate::interp::kernels::train::keep_count;
use crate::ir::{Module, OpId, Operation, ValueId};
use crate::sdt::ops::AttrExt;
use std::collections::HashMap;
use trainer_isa::DType;

/// The step's outputs.
#[derive(Clone, Copy, Debug)]
pub struct Outputs {
    /// Loss value.
    pub loss: ValueId,
    /// Logits value.
    pub logits: ValueId,
}

/// Layer names by report id (the `layer` field of `tag`), in order of first appearance.
#[derive(Debug, Default)]
pub struct Layers {
    names: Vec<String>,
    ids: HashMap<String, u16>,
}

impl Layers {
    /// The id of layer `l`, assigning the next one on first appearance.
    fn id(&mut self, l: &str) -> u16 {
        if let Some(&i) = self.ids.get(l) {
            return i;
        }
        let i = self.names.len() as u16;
        self.names.push(l.to_string());
        self.ids.insert(l.to_string(), i);
        i
    }

    /// The names, by id.
    pub fn into_names(self) -> Vec<String> {
        self.names
    }
}

/// `entry.prune`: `prune.topk` with `k = 0` (sparsity register) for every pruning mask.
pub fn prune_entry(
    m: &Module,
    sp: &StaticPlan,
    ops: &[OpId],
    layers: &mut Layers,
) -> Result<Vec<TrnInstr>, LowerError> {
    let mut e = Emitter::default();
    for &op in ops.iter().filter(|&&o| m.op(o).name() == "sdt.prune_mask") {
        let o = m.op(op);
        let (w, mask) = (&sp.locs[&o.operand(0)], &sp.locs[&o.operand(1)]);
        let l = layers.id(o.str_attr("layer").unwrap_or(""));
        e.tag(l, "other");
        e.code.push(instr(
            "prune.topk",
            &[("n", w.elems()), ("k", 0)],
            &[("src", Some(w)), ("mask", Some(mask))],
        ));
    }
    e.push("halt", vec![]);
    Ok(e.code)
}

/// Ops that produce a view of their first operand (no code).
fn is_alias(name: &str) -> bool {
    matches!(name, "sdt.reshape" | "sdt.spec_s1" | "sdt.spec_s3")
}

struct Walk<'a> {
    m: &'a Module,
    o: &'a LowerOptions,
    sp: &'a StaticPlan,
    eval: bool,
    locs: HashMap<ValueId, Loc>,
    root: HashMap<ValueId, ValueId>,
    last_use: HashMap<ValueId, usize>,
    temps: HashMap<ValueId, (u64, u64)>,
    arena: Arena,
    e: Emitter,
    /// Temporaries to release after the current op.
    scratch: Vec<(u64, u64)>,
    /// Assignments done as soon as their value is produced (value → state name): the value's
    /// storage is overwritten in place later in the step (a BN block's γ/β rows by `sgd`) and
    /// the state is not read after it is produced, so an early copy keeps the end-of-step
    /// semantics of `sdt.assign`.
    early: HashMap<ValueId, String>,
    /// The plan's tensors by name (the first of each name, as [`StaticPlan::tensor`]).
    tensors: HashMap<&'a str, &'a Loc>,
}

/// Lowers `ops` as one entry (`eval`: inference form of the forward ops). Returns the
/// instructions and the highest DRAM address used.
pub fn entry(
    m: &Module,
    o: &LowerOptions,
    sp: &StaticPlan,
    ops: &[OpId],
    eval: bool,
    outs: Outputs,
    layers: &mut Layers,
) -> Result<(Vec<TrnInstr>, u64), LowerError> {
    let mut w = Walk {
        m,
        o,
        sp,
        eval,
        locs: sp.locs.clone(),
        root: HashMap::new(),
        last_use: HashMap::new(),
        temps: HashMap::new(),
        arena: Arena::new(sp.end),
        e: Emitter::default(),
        scratch: Vec::new(),
        tensors: HashMap::new(),
        early: HashMap::new(),
    };
    for t in &sp.tensors {
        w.tensors.entry(t.name.as_str()).or_insert(&t.loc);
    }
    w.locs.insert(
        outs.logits,
        sp.tensor("logits")
            .expect("planned")
            .clone()
            .reshaped(shape_of(m.ty(outs.logits)).unwrap_or_default()),
    );
    w.locs
        .insert(outs.loss, sp.tensor("loss").expect("planned").clone());
    w.liveness(ops);
    w.e.push("cfg.prec", vec![name("prec", o.precision.name())]);
    for (i, &op) in ops.iter().enumerate() {
        let oper = m.op(op);
        let err = |msg: String| LowerError::Op {
            op: oper.name().to_string(),
            layer: oper.str_attr("layer").unwrap_or("").to_string(),
            msg,
        };
        if !matches!(
            oper.name(),
            "sdt.state" | "sdt.assign" | "sdt.return" | "sdt.increment"
        ) {
            let l = layers.id(oper.str_attr("layer").unwrap_or(""));
            w.e.tag(l, phase(oper.str_attr("phase").unwrap_or("")));
        }
        w.place_results(op, i).map_err(err)?;
        w.lower_op(op).map_err(err)?;
        for &r in oper.results() {
            if let Some(name) = w.early.get(&r).cloned() {
                w.assign(r, &name).map_err(err)?;
            }
        }
        w.release(op, i);
    }
    {
        let v = outs.logits;
        let want = sp.tensor("logits").expect("planned");
        let have = w
            .locs
            .get(&v)
            .cloned()
            .ok_or_else(|| LowerError::Program("logits were not computed".into()))?;
        if have.addr != want.addr {
            w.e.code.push(convert(have.elems(), have.op(), want.op()));
        }
    }
    w.e.push("halt", vec![]);
    Ok((w.e.code, w.arena.high))
}

impl Walk<'_> {
    fn root_of(&self, v: ValueId) -> ValueId {
        let mut v = v;
        while let Some(&r) = self.root.get(&v) {
            v = r;
        }
        v
    }

    /// Operands whose values the op reads in this entry.
    fn reads(&self, op: &Operation) -> Vec<ValueId> {
        match op.name() {
            "sdt.bn_finalize" if self.eval => op.operands()[1..].to_vec(),
            "sdt.bn_stats" if self.eval => vec![],
            "sdt.spec_s3" if self.eval => vec![],
            _ => op.operands().to_vec(),
        }
    }

    fn liveness(&mut self, ops: &[OpId]) {
        for (i, &op) in ops.iter().enumerate() {
            let o = self.m.op(op);
            if is_alias(o.name()) {
                self.root.insert(o.result(0), o.operand(0));
            }
            for v in self.reads(o) {
                let r = self.root_of(v);
                self.last_use.insert(r, i);
            }
        }
        let m = self.m;
        let index: HashMap<OpId, usize> = ops.iter().enumerate().map(|(i, &o)| (o, i)).collect();
        // The first `sdt.state` of each name.
        let mut states: HashMap<&str, ValueId> = HashMap::new();
        for &s in ops.iter().filter(|&&s| m.op(s).name() == "sdt.state") {
            if let Ok(name) = m.op(s).str_attr("name") {
                states.entry(name).or_insert(m.op(s).result(0));
            }
        }
        let state = |name: &str| states.get(name).copied();
        for &op in ops.iter().filter(|&&o| m.op(o).name() == "sdt.assign") {
            let o = m.op(op);
            let (v, Ok(name)) = (o.operand(0), o.str_attr("name")) else {
                continue;
            };
            let Some(&def) = m.defining_op(v).and_then(|d| index.get(&d)) else {
                continue;
            };
            let last_read = state(name).and_then(|s| self.last_use.get(&s).copied());
            if !self.root.contains_key(&v) && last_read.is_none_or(|l| l <= def) {
                self.early.insert(v, name.to_string());
            }
        }
    }

    /// Copies `v` to the state tensor `name` (nothing if it is already there).
    fn assign(&mut self, v: ValueId, name: &str) -> Result<(), String> {
        let v = self.loc(v)?;
        if let Some(&t) = self.tensors.get(name) {
            if t.addr != v.addr {
                self.e.code.push(convert(v.elems(), v.op(), t.op()));
            }
        }
        Ok(())
    }

    fn used(&self, v: ValueId) -> bool {
        self.last_use.contains_key(&v) || self.locs.contains_key(&v)
    }

    fn temp(&mut self, v: ValueId, dtype: DType, shape: Vec<usize>) -> Loc {
        let bytes = dtype.bytes(shape.iter().product::<usize>() as u64);
        let addr = self.arena.alloc(bytes);
        self.temps.insert(v, (addr, bytes));
        let loc = Loc {
            addr: addr as u32,
            dtype,
            shape,
        };
        self.locs.insert(v, loc.clone());
        loc
    }

    fn scratch(&mut self, dtype: DType, shape: Vec<usize>) -> Loc {
        let bytes = dtype.bytes(shape.iter().product::<usize>() as u64);
        let addr = self.arena.alloc(bytes);
        self.scratch.push((addr, bytes));
        Loc {
            addr: addr as u32,
            dtype,
            shape,
        }
    }

    fn loc(&self, v: ValueId) -> Result<Loc, String> {
        self.locs
            .get(&v)
            .cloned()
            .ok_or_else(|| "an operand has no storage (not computed in this entry)".to_string())
    }

    fn place_results(&mut self, op: OpId, i: usize) -> Result<(), String> {
        let m = self.m;
        let o = m.op(op);
        let res = o.results().to_vec();
        let shape = |v: ValueId| shape_of(m.ty(v)).ok_or_else(|| "results need static shapes".to_string());
        match o.name() {
            n if is_alias(n) => {
                if let Some(l) = self.locs.get(&o.operand(0)).cloned() {
                    self.locs.insert(res[0], l.reshaped(shape(res[0])?));
                }
                return Ok(());
            }
            "sdt.sgd" => {
                for (r, from) in res.iter().zip([0usize, 2]) {
                    let l = self.loc(o.operand(from))?;
                    self.locs.insert(*r, l);
                }
                return Ok(());
            }
            "sdt.prune_mask" => {
                let l = self.loc(o.operand(1))?;
                self.locs.insert(res[0], l);
                return Ok(());
            }
            "sdt.bn_finalize" if !self.eval => {
                self.locs.insert(res[0], self.sp.blocks[&op].clone());
                for (r, from) in [(res[1], 3), (res[2], 4)] {
                    let l = self.loc(o.operand(from))?;
                    self.locs.insert(r, l);
                }
                return Ok(());
            }
            _ => {}
        }
        // Pairs written by one instruction as [2, C].
        let pair = match o.name() {
            "sdt.bn_bwd_reduce" => Some(0),
            "sdt.conv_bp" | "sdt.matmul_bp" if o.has_feature("bns") => Some(res.len() - 2),
            _ => None,
        };
        for (j, &r) in res.iter().enumerate() {
            if self.locs.contains_key(&r) || !self.used(r) && pair != Some(j) {
                continue;
            }
            if pair == Some(j) {
                let c = shape(r)?.iter().product::<usize>();
                let l = self.temp(r, DType::F32, vec![2, c]);
                self.locs.insert(r, l.reshaped(vec![c]));
                self.locs.insert(
                    res[j + 1],
                    Loc {
                        addr: l.addr + (c * 4) as u32,
                        dtype: DType::F32,
                        shape: vec![c],
                    },
                );
                self.root.insert(res[j + 1], r);
                let lu = self
                    .last_use
                    .get(&res[j + 1])
                    .copied()
                    .unwrap_or(i)
                    .max(self.last_use.get(&r).copied().unwrap_or(i));
                self.last_use.insert(r, lu);
                continue;
            }
            if pair.is_some_and(|p| j == p + 1) {
                continue;
            }
            let dtype = value_dtype(m, self.o.precision, op, j);
            self.temp(r, dtype, shape(r)?);
            self.last_use.entry(r).or_insert(i);
        }
        Ok(())
    }

    fn release(&mut self, op: OpId, i: usize) {
        for (a, b) in std::mem::take(&mut self.scratch) {
            self.arena.release(a, b);
        }
        let o = self.m.op(op);
        let mut vals: Vec<ValueId> = self.reads(o).into_iter().map(|v| self.root_of(v)).collect();
        vals.extend(o.results().iter().copied());
        for v in vals {
            if self.last_use.get(&v).is_some_and(|&l| l <= i) {
                if let Some((a, b)) = self.temps.remove(&v) {
                    self.arena.release(a, b);
                }
            }
        }
    }

    /// `v`'s location, converted into a scratch copy of `dtype` if stored otherwise.
    fn as_dtype(&mut self, v: ValueId, dtype: DType) -> Result<Loc, String> {
        let l = self.loc(v)?;
        if l.dtype == dtype {
            return Ok(l);
        }
        let s = self.scratch(dtype, l.shape.clone());
        self.e.code.push(convert(l.elems(), l.op(), s.op()));
        Ok(s)
    }

    fn opt_loc(&self, v: Option<ValueId>) -> Result<Option<Loc>, String> {
        v.map(|v| self.loc(v)).transpose()
    }

    fn result_loc(&self, op: &Operation, i: usize) -> Option<Loc> {
        op.results().get(i).and_then(|r| self.locs.get(r).cloned())
    }

    fn skip(&self, op: &Operation, omask: bool) -> String {
        let mut v = vec![];
        if op.float_attr("density_a").is_ok_and(|d| d < 1.0) {
            v.push("in");
        }
        if op.float_attr("density_b").is_ok_and(|d| d < 1.0) {
            v.push("w");
        }
        if omask {
            v.push("out");
        }
        if v.is_empty() {
            "none".into()
        } else {
            v.join("+")
        }
    }

    fn tiles(&mut self, tiles: Result<Vec<super::tile::Tile>, String>) -> Result<(), String> {
        schedule(&mut self.e, tiles?);
        Ok(())
    }

    fn lower_op(&mut self, id: OpId) -> Result<(), String> {
        let m = self.m;
        let op = m.op(id);
        let arg = |i: usize| self.loc(op.operand(i));
        let out = |i: usize| self.result_loc(op, i);
        match op.name() {
            "sdt.state" | "sdt.return" | "sdt.increment" | "sdt.prune_mask" => {}
            n if is_alias(n) => {}
            "sdt.assign" if self.early.contains_key(&op.operand(0)) => {}
            "sdt.assign" => self.assign(op.operand(0), op.str_attr("name")?)?,
            "sdt.conv_ff" | "sdt.conv_bp" | "sdt.conv_wg" => self.conv(id)?,
            "sdt.matmul_ff" | "sdt.matmul_bp" | "sdt.matmul_wg" => self.matmul(id)?,
            "sdt.bias_add" => {
                let (x, b, y) = (arg(0)?, arg(1)?, out(0));
                self.e.code.push(instr(
                    "bias.add",
                    &per_channel(&x),
                    &[("src", Some(&x)), ("bias", Some(&b)), ("out", y.as_ref())],
                ));
            }
            "sdt.bias_grad" => {
                let dy = arg(0)?;
                self.e.code.push(with_opt(
                    "bias.grad",
                    "none",
                    &dy,
                    &[("dy", Some(&dy)), ("out", out(0).as_ref())],
                ));
            }
            "sdt.bn_stats" if self.eval => {}
            "sdt.bn_stats" => {
                let x = arg(0)?;
                self.e.code.push(with_opt(
                    "bn.stats",
                    "none",
                    &x,
                    &[("src", Some(&x)), ("stats", out(0).as_ref())],
                ));
            }
            "sdt.bn_finalize" => self.bn_finalize(op)?,
            "sdt.bn_apply" => {
                let (x, b) = (arg(0)?, arg(1)?);
                self.e.code.push(with_opt(
                    "bn.apply",
                    "none",
                    &x,
                    &[("src", Some(&x)), ("block", Some(&b)), ("out", out(0).as_ref())],
                ));
            }
            "sdt.bn_bwd_reduce" => {
                let (dy, x, b) = (arg(0)?, arg(1)?, arg(2)?);
                let sums = out(0).ok_or("no storage for the sums")?;
                self.e.code.push(with_opt(
                    "bn.bwd_reduce",
                    "none",
                    &dy,
                    &[
                        ("dy", Some(&dy)),
                        ("x", Some(&x)),
                        ("block", Some(&b)),
                        ("sums", Some(&sums)),
                    ],
                ));
            }
            "sdt.bn_bwd" => {
                let (dy, x, b, s0, s1) = (arg(0)?, arg(1)?, arg(2)?, arg(3)?, arg(4)?);
                if s1.addr != s0.addr + (s0.elems() * 4) as u32 {
                    return Err("dγ and dβ must be adjacent ([2, C] sums)".into());
                }
                self.e.code.push(instr(
                    "bn.bwd",
                    &per_channel(&dy),
                    &[
                        ("dy", Some(&dy)),
                        ("x", Some(&x)),
                        ("block", Some(&b)),
                        ("sums", Some(&s0)),
                        ("dx", out(0).as_ref()),
                    ],
                ));
            }
            "sdt.relu" => {
                let x = arg(0)?;
                self.e.code.push(instr(
                    "relu",
                    &[("n", x.elems())],
                    &[
                        ("src", Some(&x)),
                        ("out", out(0).as_ref()),
                        ("mask", out(1).as_ref()),
                    ],
                ));
            }
            "sdt.clip" => {
                let x = arg(0)?;
                let mut i = instr(
                    "clip",
                    &[("n", x.elems())],
                    &[
                        ("src", Some(&x)),
                        ("out", out(0).as_ref()),
                        ("mask", out(1).as_ref()),
                    ],
                );
                i.fields
                    .insert(1, super::emit::float("lo", op.float_attr("min")?));
                i.fields
                    .insert(2, super::emit::float("hi", op.float_attr("max")?));
                self.e.code.push(i);
            }
            "sdt.relu_bwd" => {
                let (dy, mk) = (arg(0)?, arg(1)?);
                self.e.code.push(instr(
                    "relu.bwd",
                    &[("n", dy.elems())],
                    &[("dy", Some(&dy)), ("mask", Some(&mk)), ("out", out(0).as_ref())],
                ));
            }
            "sdt.apply_mask" => {
                let (x, mk) = (arg(0)?, arg(1)?);
                self.e.code.push(instr(
                    "mask.apply",
                    &[("n", x.elems())],
                    &[("src", Some(&x)), ("mask", Some(&mk)), ("out", out(0).as_ref())],
                ));
            }
            "sdt.add" => {
                let (a, b) = (arg(0)?, arg(1)?);
                let y = out(0).ok_or("no storage")?;
                if a.elems() != y.elems() || b.elems() != y.elems() {
                    return Err("broadcasting add is not supported by the lowering".into());
                }
                self.e.code.push(instr(
                    "add",
                    &[("n", y.elems())],
                    &[("a", Some(&a)), ("b", Some(&b)), ("out", Some(&y))],
                ));
            }
            "sdt.pool_ff" | "sdt.pool_bwd" => self.pool(op)?,
            "sdt.reduce_mean" | "sdt.reduce_mean_bwd" => {
                let axes = op.usizes_attr("axes")?;
                let x = arg(0)?;
                let y = out(0).ok_or("no storage")?;
                let fwd = op.name() == "sdt.reduce_mean";
                let full = if fwd { &x } else { &y };
                if full.shape.len() != 4 || axes != [2, 3] {
                    return Err("only the spatial mean of a rank-4 tensor (axes [2, 3]) is supported".into());
                }
                self.e.code.push(pool_instr(
                    "gavg",
                    fwd,
                    &full.shape,
                    [0; 2],
                    [0; 2],
                    [0; 4],
                    &x,
                    &y,
                    None,
                ));
            }
            "sdt.softmax_ce" => {
                let (lg, lb, loss, dl) = (arg(0)?, arg(1)?, out(0), out(1));
                self.e.cfg("loss_scale", op.float_attr("loss_scale")?);
                let (n, c, _) = nchw(&lg.shape);
                self.e.code.push(instr(
                    "softmax_ce",
                    &[("n", n), ("c", c)],
                    &[
                        ("logits", Some(&lg)),
                        ("labels", Some(&lb)),
                        ("loss", loss.as_ref()),
                        ("dlogits", dl.as_ref()),
                    ],
                ));
            }
            "sdt.sgd" => {
                let (w, g) = (arg(0)?, arg(1)?);
                let v = op.operands().get(2).map(|&v| self.loc(v)).transpose()?;
                for reg in ["lr", "momentum", "weight_decay", "loss_scale"] {
                    self.e.cfg(reg, op.float_attr(reg)?);
                }
                self.e.code.push(instr(
                    "sgd",
                    &[("n", w.elems())],
                    &[("w", Some(&w)), ("g", Some(&g)), ("v", v.as_ref())],
                ));
            }
            "sdt.spec_s2" => {
                let (w, mk, o) = (arg(0)?, arg(1)?, out(0));
                self.e.cfg("s2_margin", op.float_attr("margin")?);
                let k = keep_count(w.elems(), op.float_attr("sparsity")?);
                self.e.code.push(instr(
                    "spec.s2",
                    &[("n", w.elems()), ("k", k)],
                    &[("w", Some(&w)), ("mask", Some(&mk)), ("out", o.as_ref())],
                ));
            }
            other => return Err(format!("`{other}` cannot be lowered to Trainer instructions")),
        }
        Ok(())
    }

    fn bn_finalize(&mut self, op: &Operation) -> Result<(), String> {
        let c = shape_of(self.m.ty(op.operand(1)))
            .map(|s| s.iter().product::<usize>())
            .ok_or("static shape")?;
        self.e.cfg("bn_eps", op.float_attr("epsilon")?);
        let block = self.result_loc(op, 0).ok_or("no block storage")?;
        let (rm, rv) = (self.loc(op.operand(3))?, self.loc(op.operand(4))?);
        if self.eval {
            // Inference form: statistics (Σx, Σx²) = (rm, rm² + rv) with count 1 give μ = rm,
            // var = rv; γ and β are copied from the trained block.
            let st = self.scratch(DType::F32, vec![2, c]);
            let sq = Loc {
                addr: st.addr + (4 * c) as u32,
                dtype: DType::F32,
                shape: vec![c],
            };
            let rm1 = rm.reshaped(vec![1, c]);
            self.e.code.push(with_opt(
                "bn.stats",
                "none",
                &rm1,
                &[("src", Some(&rm1)), ("stats", Some(&st))],
            ));
            self.e.code.push(instr(
                "add",
                &[("n", c)],
                &[("a", Some(&sq)), ("b", Some(&rv)), ("out", Some(&sq))],
            ));
            self.e.code.push(instr(
                "bn.finalize",
                &[("c", c), ("count", 1)],
                &[("stats", Some(&st)), ("block", Some(&block))],
            ));
            let trained = self.loc(op.operand(1))?;
            self.e.code.push(convert(2 * c, trained.op(), block.op_at(8 * c)));
        } else {
            self.e.cfg("bn_momentum", op.float_attr("momentum")?);
            let stats = self.loc(op.operand(0))?;
            let running = rm.reshaped(vec![2, c]);
            if rv.addr != rm.addr + (4 * c) as u32 {
                return Err("running mean and variance must be adjacent".into());
            }
            let count = op.int_attr("count")? as usize;
            self.e.code.push(instr(
                "bn.finalize",
                &[("c", c), ("count", count)],
                &[
                    ("stats", Some(&stats)),
                    ("block", Some(&block)),
                    ("running", Some(&running)),
                ],
            ));
        }
        Ok(())
    }

    fn pool(&mut self, op: &Operation) -> Result<(), String> {
        let fwd = op.name() == "sdt.pool_ff";
        let x = self.loc(op.operand(0))?;
        let y = self.result_loc(op, 0).ok_or("no storage")?;
        let kind = op.str_attr("kind")?;
        let full = if fwd { &x } else { &y };
        if kind == "gavg" {
            self.e.code.push(pool_instr(
                "gavg",
                fwd,
                &full.shape,
                [0; 2],
                [0; 2],
                [0; 4],
                &x,
                &y,
                None,
            ));
            return Ok(());
        }
        let part = if fwd { &y } else { &x };
        let g = geom::pool(op, kind == "max", &full.shape, &part.shape)?;
        if g.dil != [1, 1] {
            return Err("dilated pooling is not supported".into());
        }
        if kind == "avg" && !g.count_include_pad && g.pads.iter().any(|&p| p > 0) {
            return Err("padded average pooling must count the padding (count_include_pad)".into());
        }
        let idx = match (kind, fwd) {
            ("max", true) => self.result_loc(op, 1),
            ("max", false) => Some(self.loc(op.operand(1))?),
            _ => None,
        };
        self.e.code.push(pool_instr(
            kind,
            fwd,
            &full.shape,
            g.kernel,
            g.stride,
            g.pads,
            &x,
            &y,
            idx.as_ref(),
        ));
        Ok(())
    }

    /// Where a conv/matmul writes its main result: its storage, or a scratch area when nobody
    /// reads it (the op still runs for its fused results, e.g. BP sums of a BN on the input).
    fn compute_out(&mut self, id: OpId) -> Result<Loc, String> {
        let op = self.m.op(id);
        if let Some(l) = self.result_loc(op, 0) {
            return Ok(l);
        }
        let shape = shape_of(self.m.ty(op.result(0))).ok_or("results need static shapes")?;
        Ok(self.scratch(value_dtype(self.m, self.o.precision, id, 0), shape))
    }

    fn conv(&mut self, id: OpId) -> Result<(), String> {
        let m = self.m;
        let op = m.op(id);
        let p = self.o.precision;
        let mode = &op.name()["sdt.conv_".len()..];
        let (fwd_t, grad_t) = (storage(p, false), storage(p, true));
        let (a, b) = match mode {
            "ff" => (
                self.as_dtype(op.operand(0), fwd_t)?,
                self.as_dtype(op.operand(1), fwd_t)?,
            ),
            "bp" => (
                self.as_dtype(op.operand(0), grad_t)?,
                self.as_dtype(op.operand(1), fwd_t)?,
            ),
            _ => (
                self.as_dtype(op.operand(0), fwd_t)?,
                self.as_dtype(op.operand(1), grad_t)?,
            ),
        };
        let out = self.compute_out(id)?;
        let (xs, ws) = match mode {
            "ff" => (a.shape.clone(), b.shape.clone()),
            "bp" => (out.shape.clone(), b.shape.clone()),
            _ => (a.shape.clone(), out.shape.clone()),
        };
        let g = geom::conv(op, &xs, &ws)?;
        let bna = if mode != "bp" {
            self.opt_loc(op.feature_operand(2, "bna").map(|i| op.operand(i)))?
        } else {
            None
        };
        let omask = self.opt_loc(op.feature_operand(2, "omask").map(|i| op.operand(i)))?;
        let s3 = if mode == "ff" && !self.eval {
            self.opt_loc(op.feature_operand(2, "s3").map(|i| op.operand(i)))?
        } else {
            None
        };
        let (bns, aux, bp_block) = match mode {
            "ff" => {
                let mask = if op.has_feature("bna") {
                    self.result_loc(op, 1)
                } else {
                    None
                };
                let stats = if op.has_feature("bns") && !self.eval {
                    self.result_loc(op, op.results().len() - 1)
                } else {
                    None
                };
                (stats, mask, None)
            }
            "bp" => match op.feature_operand(2, "bns") {
                Some(i) => {
                    let sums = self
                        .result_loc(op, op.results().len() - 2)
                        .map(|l| l.reshaped(vec![2, g.c]));
                    (
                        sums,
                        Some(self.as_dtype(op.operand(i), fwd_t)?),
                        Some(self.loc(op.operand(i + 1))?),
                    )
                }
                None => (None, None, None),
            },
            _ => (None, None, None),
        };
        if s3.is_some() {
            self.e
                .cfg("s3_threshold", op.float_attr("s3_threshold").unwrap_or(0.0));
        }
        let args = ConvArgs {
            mode: match mode {
                "ff" => "ff",
                "bp" => "bp",
                _ => "wg",
            },
            g,
            a,
            b,
            out,
            wmask: None,
            skip: self.skip(op, omask.is_some()),
            omask,
            bna: bna.or(bp_block),
            bns,
            aux,
            s3,
            df: op.str_attr("dataflow").unwrap_or("ws").to_string(),
            bnrelu: op.flag("bnrelu"),
        };
        let tiles = conv::lower(&args, &self.o.buffers);
        self.tiles(tiles)
    }

    fn matmul(&mut self, id: OpId) -> Result<(), String> {
        let m = self.m;
        let op = m.op(id);
        let p = self.o.precision;
        let mode = &op.name()["sdt.matmul_".len()..];
        let (fwd_t, grad_t) = (storage(p, false), storage(p, true));
        let (a, b) = match mode {
            "ff" => (
                self.as_dtype(op.operand(0), fwd_t)?,
                self.as_dtype(op.operand(1), fwd_t)?,
            ),
            "bp" => (
                self.as_dtype(op.operand(0), grad_t)?,
                self.as_dtype(op.operand(1), fwd_t)?,
            ),
            _ => (
                self.as_dtype(op.operand(0), fwd_t)?,
                self.as_dtype(op.operand(1), grad_t)?,
            ),
        };
        let out = self.compute_out(id)?;
        let tb = op.flag("trans_b");
        let (wshape, xrows, xcols) = match mode {
            "ff" => (b.shape.clone(), a.shape[0], a.shape[1]),
            "bp" => (b.shape.clone(), out.shape[0], out.shape[1]),
            _ => (out.shape.clone(), a.shape[0], a.shape[1]),
        };
        let n = if tb { wshape[0] } else { wshape[1] };
        let omask = self.opt_loc(op.feature_operand(2, "omask").map(|i| op.operand(i)))?;
        let args = MatmulArgs {
            mode: match mode {
                "ff" => "ff",
                "bp" => "bp",
                _ => "wg",
            },
            mkn: [xrows, xcols, n],
            tb,
            a,
            b,
            out: out.clone(),
            wmask: None,
            skip: self.skip(op, omask.is_some()),
            omask,
            df: op.str_attr("dataflow").unwrap_or("ws").to_string(),
        };
        let tiles = matmul::lower(&args, &self.o.buffers);
        self.tiles(tiles)?;
        // The PE array's matmul has no BN ports: fused statistics / sums run on the BN unit.
        if op.has_feature("bns") && !self.eval {
            match mode {
                "ff" => {
                    let st = self
                        .result_loc(op, op.results().len() - 1)
                        .ok_or("no stats storage")?;
                    self.e.code.push(with_opt(
                        "bn.stats",
                        "none",
                        &out,
                        &[("src", Some(&out)), ("stats", Some(&st))],
                    ));
                }
                _ => {
                    let i = op.feature_operand(2, "bns").ok_or("bns operands")?;
                    let (x, blk) = (self.loc(op.operand(i))?, self.loc(op.operand(i + 1))?);
                    let sums = self
                        .result_loc(op, op.results().len() - 2)
                        .ok_or("no sums storage")?;
                    self.e.code.push(with_opt(
                        "bn.bwd_reduce",
                        "none",
                        &out,
                        &[
                            ("dy", Some(&out)),
                            ("x", Some(&x)),
                            ("block", Some(&blk)),
                            ("sums", Some(&sums)),
                        ],
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A `pool` instruction over `[N, C, H, W]` input shape `full`.
#[allow(clippy::too_many_arguments)]
fn pool_instr(
    kind: &str,
    fwd: bool,
    full: &[usize],
    kernel: [usize; 2],
    stride: [usize; 2],
    pads: [usize; 4],
    src: &Loc,
    out: &Loc,
    idx: Option<&Loc>,
) -> TrnInstr {
    let ints = [
        ("n", full[0]),
        ("c", full[1]),
        ("h", full[2]),
        ("w", full[3]),
        ("r", kernel[0]),
        ("s", kernel[1]),
        ("stride_h", stride[0]),
        ("stride_w", stride[1]),
        ("pad_t", pads[0]),
        ("pad_l", pads[1]),
        ("pad_b", pads[2]),
        ("pad_r", pads[3]),
    ];
    let mut i = instr(
        "pool",
        &ints,
        &[("src", Some(src)), ("out", Some(out)), ("idx", idx)],
    );
    i.fields.insert(0, name("kind", kind));
    i.fields.insert(1, name("dir", if fwd { "fwd" } else { "bwd" }));
    i
}
