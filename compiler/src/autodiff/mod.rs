//! Autodiff: from the imported `tg` graph to the `sdt` training program.
//!
//! [`autodiff`] builds one `sdt.step @name(%x, %labels)` op: reads of the persistent state
//! (`sdt.state`), the forward pass (FF), the mean softmax cross-entropy loss on the graph's logits
//! output (the first `tg.return` operand; a trailing `tg.softmax` is looked through), the backward
//! pass in reverse order — input gradients (BP) and weight gradients (WG) — then SGD with
//! momentum and weight decay per trainable parameter, writes of the new state (`sdt.assign`) and
//! `sdt.return %loss, %logits`. Every op carries `layer` and `phase` attributes.
//!
//! Per-op gradient rules live in the submodules; each forward rule emits the FF ops and pushes a
//! backward closure on the tape.

mod activation;
mod bn;
mod linear;
mod pool;
mod shape;

use crate::ir::{
    Attribute, BlockId, ElemType, InsertPoint, Location, Module, OpId, OperationState, Type, ValueId,
};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Options of the training program.
#[derive(Clone, Debug, PartialEq)]
pub struct AutodiffOptions {
    /// Expected batch size (the frontend sets the batch; this only checks it).
    pub batch: Option<usize>,
    /// SGD learning rate.
    pub lr: f64,
    /// SGD momentum (0: no momentum buffers).
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Loss scale: the loss gradient is multiplied by it, gradients are divided by it in SGD.
    pub loss_scale: f64,
}

impl Default for AutodiffOptions {
    fn default() -> Self {
        AutodiffOptions {
            batch: None,
            lr: 0.1,
            momentum: 0.0,
            weight_decay: 0.0,
            loss_scale: 1.0,
        }
    }
}

/// An autodiff error.
#[derive(Debug, thiserror::Error)]
pub enum AutodiffError {
    /// The module holds no `tg.graph`.
    #[error("no `tg.graph` in the module")]
    NoGraph,
    /// The graph's interface does not fit training.
    #[error("graph: {0}")]
    Graph(String),
    /// An op (or op form) without a gradient rule.
    #[error("`{op}` at {loc}: {msg}")]
    Op {
        /// Op name.
        op: String,
        /// Its location.
        loc: Location,
        /// What is unsupported.
        msg: String,
    },
}

/// A backward rule recorded on the tape.
type Backward = Box<dyn FnOnce(&mut Ctx) -> Result<(), String>>;

/// A tape entry: the layer and location of the forward op, and its backward rule.
type TapeEntry = (String, Location, Backward);

/// Role of a `tg.param` in training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Param,
    RunningMean,
    RunningVar,
    Const,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Param => "param",
            Role::RunningMean => "running_mean",
            Role::RunningVar => "running_var",
            Role::Const => "const",
        }
    }
}

/// Builder state shared by the gradient rules.
pub(crate) struct Ctx {
    m: Module,
    block: BlockId,
    /// `sdt` value of each `tg` value.
    map: HashMap<ValueId, ValueId>,
    /// Gradient of each `sdt` forward value.
    grads: HashMap<ValueId, ValueId>,
    /// `sdt` values that depend on a trainable parameter.
    needs: HashSet<ValueId>,
    /// State name of each `sdt.state` value.
    names: HashMap<ValueId, String>,
    /// Pending `sdt.assign`s (name, value), emitted at the end.
    assigns: Vec<(String, ValueId)>,
    tape: Vec<TapeEntry>,
    /// Layer name and location of the op being translated.
    layer: String,
    loc: Location,
}

impl Ctx {
    /// Appends `name(operands) -> types` with `layer`, `phase` and `attrs`; returns the results.
    pub(crate) fn emit(
        &mut self,
        name: &str,
        phase: &str,
        operands: &[ValueId],
        types: &[Type],
        attrs: Vec<(&str, Attribute)>,
    ) -> Vec<ValueId> {
        let mut st = OperationState::new(name)
            .operands(operands)
            .results(types)
            .loc(self.loc.clone());
        st.attrs.insert("layer".into(), Attribute::str(&self.layer));
        st.attrs.insert("phase".into(), Attribute::str(phase));
        st.attrs
            .extend(attrs.into_iter().map(|(k, v)| (k.to_string(), v)));
        let op = self.m.insert_op(InsertPoint::End(self.block), st);
        self.m.op(op).results().to_vec()
    }

    /// Single-result [`Ctx::emit`].
    pub(crate) fn emit1(
        &mut self,
        name: &str,
        phase: &str,
        operands: &[ValueId],
        ty: Type,
        attrs: Vec<(&str, Attribute)>,
    ) -> ValueId {
        self.emit(name, phase, operands, &[ty], attrs)[0]
    }

    /// Type of an `sdt` value.
    pub(crate) fn ty(&self, v: ValueId) -> Type {
        self.m.ty(v).clone()
    }

    /// Gradient of `v`, if any flowed into it.
    pub(crate) fn grad(&self, v: ValueId) -> Option<ValueId> {
        self.grads.get(&v).copied()
    }

    /// Whether `v` depends on a trainable parameter (so its gradient is wanted).
    pub(crate) fn needs(&self, v: ValueId) -> bool {
        self.needs.contains(&v)
    }

    /// Adds `g` to the gradient of `v` (an `sdt.add` on fan-out).
    pub(crate) fn accumulate(&mut self, v: ValueId, g: ValueId) {
        let g = match self.grads.get(&v) {
            Some(&old) => {
                let ty = self.ty(old);
                self.emit1("sdt.add", "bp", &[old, g], ty, vec![])
            }
            None => g,
        };
        self.grads.insert(v, g);
    }

    /// Records a backward rule.
    pub(crate) fn on_backward(&mut self, f: impl FnOnce(&mut Ctx) -> Result<(), String> + 'static) {
        self.tape
            .push((self.layer.clone(), self.loc.clone(), Box::new(f)));
    }

    /// State name of an `sdt.state` value (parameters).
    pub(crate) fn state_name(&self, v: ValueId) -> Option<&str> {
        self.names.get(&v).map(String::as_str)
    }

    /// Schedules `sdt.assign {name}(v)` at the end of the step.
    pub(crate) fn assign(&mut self, name: &str, v: ValueId) {
        self.assigns.push((name.to_string(), v));
    }

    /// Emits `sdt.state {name, role, init}`.
    fn state(&mut self, name: &str, role: &str, init: &str, ty: Type) -> ValueId {
        let attrs = vec![
            ("name", Attribute::str(name)),
            ("role", Attribute::str(role)),
            ("init", Attribute::str(init)),
        ];
        let v = self.emit1("sdt.state", "state", &[], ty, attrs);
        self.names.insert(v, name.to_string());
        v
    }
}

/// Roles of the graph's `tg.param`s by their uses.
fn param_roles(tg: &Module, ops: &[OpId]) -> HashMap<ValueId, Role> {
    let mut roles = HashMap::new();
    for &op in ops {
        let o = tg.op(op);
        for (i, &v) in o.operands().iter().enumerate() {
            let role = match (o.name(), i) {
                ("tg.conv" | "tg.gemm", 1 | 2) | ("tg.matmul", 1) | ("tg.batch_norm", 1 | 2) => Role::Param,
                ("tg.batch_norm", 3) => Role::RunningMean,
                ("tg.batch_norm", 4) => Role::RunningVar,
                _ => Role::Const,
            };
            let slot = roles.entry(v).or_insert(role);
            if *slot == Role::Const {
                *slot = role;
            }
        }
    }
    roles
}

/// The layer name of a `tg` op: its weight's name without `.weight`, else its location name,
/// else `<op><index>`.
fn layer_name(tg: &Module, op: OpId, index: usize) -> String {
    let o = tg.op(op);
    let param = o
        .operands()
        .get(1)
        .and_then(|&w| tg.defining_op(w))
        .filter(|&d| tg.op(d).name() == "tg.param");
    if matches!(o.name(), "tg.conv" | "tg.gemm" | "tg.matmul" | "tg.batch_norm") {
        if let Some(name) = param
            .and_then(|d| tg.op(d).attr("name"))
            .and_then(Attribute::as_str)
        {
            return name.strip_suffix(".weight").unwrap_or(name).to_string();
        }
    }
    match &o.loc {
        Location::Name(n) if !n.is_empty() => n.clone(),
        _ => format!("{}{index}", o.name().trim_start_matches("tg.")),
    }
}

/// Builds the `sdt` training program of the first `tg.graph` in `tg`.
pub fn autodiff(tg: &Module, opts: &AutodiffOptions) -> Result<Module, AutodiffError> {
    let graph = tg
        .block(tg.body())
        .ops()
        .iter()
        .copied()
        .find(|&o| tg.op(o).name() == "tg.graph")
        .ok_or(AutodiffError::NoGraph)?;
    let gblock = tg.region(tg.op(graph).regions()[0]).blocks()[0];
    let ops = tg.block(gblock).ops().to_vec();
    let [x] = tg.block(gblock).args() else {
        return Err(AutodiffError::Graph(
            "a trainable graph takes exactly one input".into(),
        ));
    };
    let xty = tg
        .ty(*x)
        .as_tensor()
        .cloned()
        .ok_or_else(|| AutodiffError::Graph("the input must be a tensor".into()))?;
    let batch = *xty
        .shape
        .first()
        .filter(|&&b| b > 0)
        .ok_or_else(|| AutodiffError::Graph("the input needs a static batch dimension".into()))?;
    if let Some(b) = opts.batch.filter(|&b| b as i64 != batch) {
        return Err(AutodiffError::Graph(format!(
            "the graph has batch {batch}, the options ask for {b} (set the batch in the frontend)"
        )));
    }
    let name = tg
        .op(graph)
        .attr("sym_name")
        .and_then(Attribute::as_str)
        .unwrap_or("main")
        .to_string();

    let mut m = Module::new();
    m.weights = tg.weights.clone();
    let st = OperationState::new("sdt.step")
        .attr("sym_name", Attribute::str(&name))
        .regions(1);
    let step_op = m.insert_op(InsertPoint::End(m.body()), st);
    let region = m.op(step_op).regions()[0];
    let block = m.add_block(region, &[Type::Tensor(xty), Type::tensor([batch], ElemType::I64)]);
    let (sx, labels) = (m.block(block).arg(0), m.block(block).arg(1));
    let mut cx = Ctx {
        m,
        block,
        map: HashMap::from([(*x, sx)]),
        grads: HashMap::new(),
        needs: HashSet::new(),
        names: HashMap::new(),
        assigns: Vec::new(),
        tape: Vec::new(),
        layer: "state".into(),
        loc: Location::Unknown,
    };

    // Persistent state: parameters, running statistics, momentum buffers, the step counter.
    let roles = param_roles(tg, &ops);
    let mut trainable = Vec::new();
    for &op in &ops {
        let o = tg.op(op);
        if o.name() != "tg.param" {
            continue;
        }
        let pname = o
            .attr("name")
            .and_then(Attribute::as_str)
            .unwrap_or_default()
            .to_string();
        let role = roles.get(&o.result(0)).copied().unwrap_or(Role::Const);
        cx.loc = o.loc.clone();
        let v = cx.state(&pname, role.name(), "weight", tg.ty(o.result(0)).clone());
        cx.map.insert(o.result(0), v);
        if role == Role::Param {
            cx.needs.insert(v);
            trainable.push((pname, v));
        }
    }
    cx.loc = Location::Unknown;
    let momenta: BTreeMap<String, ValueId> = if opts.momentum != 0.0 {
        trainable
            .iter()
            .map(|(n, v)| {
                (
                    n.clone(),
                    cx.state(&format!("{n}.momentum"), "momentum", "zeros", cx.ty(*v)),
                )
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    let step = cx.state("step", "step", "zeros", Type::tensor([], ElemType::I64));

    // Forward.
    let ret = ops
        .iter()
        .copied()
        .find(|&o| tg.op(o).name() == "tg.return")
        .ok_or_else(|| AutodiffError::Graph("no `tg.return`".into()))?;
    for (index, &op) in ops.iter().enumerate() {
        let o = tg.op(op);
        if matches!(o.name(), "tg.param" | "tg.return") {
            continue;
        }
        cx.layer = layer_name(tg, op, index);
        cx.loc = o.loc.clone();
        let err = |msg: String| AutodiffError::Op {
            op: o.name().to_string(),
            loc: o.loc.clone(),
            msg,
        };
        let operands: Vec<ValueId> = o.operands().iter().map(|v| cx.map[v]).collect();
        let results = match o.name() {
            "tg.conv" | "tg.gemm" | "tg.matmul" => linear::forward(&mut cx, tg, o, &operands),
            "tg.batch_norm" => bn::forward(&mut cx, tg, o, &operands),
            "tg.relu" | "tg.clip" => activation::forward(&mut cx, tg, o, &operands),
            "tg.max_pool" | "tg.average_pool" | "tg.global_average_pool" | "tg.reduce_mean" => {
                pool::forward(&mut cx, tg, o, &operands)
            }
            "tg.flatten" | "tg.reshape" | "tg.identity" | "tg.dropout" | "tg.add" | "tg.concat" => {
                shape::forward(&mut cx, tg, o, &operands)
            }
            "tg.softmax" if tg.uses(o.result(0)).iter().all(|&(u, _)| u == ret) => Ok(operands.clone()),
            other => Err(format!("`{other}` has no gradient rule")),
        }
        .map_err(err)?;
        let depends = operands.iter().any(|v| cx.needs(*v));
        for (&r, &s) in o.results().iter().zip(&results) {
            cx.map.insert(r, s);
            if depends {
                cx.needs.insert(s);
            }
        }
    }

    // Loss on the logits.
    let out = *tg
        .op(ret)
        .operands()
        .first()
        .ok_or_else(|| AutodiffError::Graph("the graph returns nothing".into()))?;
    let logits = cx.map[&out];
    let lty = cx.ty(logits);
    if !matches!(lty.as_tensor().map(|t| t.shape.as_slice()), Some(&[n, _]) if n == batch) {
        return Err(AutodiffError::Graph(format!(
            "the logits output must be [batch, classes], found {lty}"
        )));
    }
    cx.layer = "loss".into();
    cx.loc = Location::Unknown;
    let loss_out = cx.emit(
        "sdt.softmax_ce",
        "loss",
        &[logits, labels],
        &[Type::tensor([], ElemType::F32), lty],
        vec![("loss_scale", Attribute::Float(opts.loss_scale))],
    );
    cx.grads.insert(logits, loss_out[1]);

    // Backward, in reverse.
    while let Some((layer, loc, rule)) = cx.tape.pop() {
        cx.layer = layer;
        cx.loc = loc;
        rule(&mut cx).map_err(AutodiffError::Graph)?;
    }

    // Update.
    cx.loc = Location::Unknown;
    for (pname, w) in &trainable {
        let Some(g) = cx.grad(*w) else { continue };
        cx.layer = pname
            .strip_suffix(".weight")
            .or_else(|| pname.strip_suffix(".bias"))
            .unwrap_or(pname)
            .to_string();
        let mut operands = vec![*w, g];
        let mut types = vec![cx.ty(*w)];
        if let Some(&v) = momenta.get(pname) {
            operands.push(v);
            types.push(cx.ty(v));
        }
        let attrs = vec![
            ("param", Attribute::str(pname)),
            ("lr", Attribute::Float(opts.lr)),
            ("momentum", Attribute::Float(opts.momentum)),
            ("weight_decay", Attribute::Float(opts.weight_decay)),
            ("loss_scale", Attribute::Float(opts.loss_scale)),
        ];
        let r = cx.emit("sdt.sgd", "update", &operands, &types, attrs);
        cx.assign(pname, r[0]);
        if let Some(&v) = r.get(1) {
            cx.assign(&format!("{pname}.momentum"), v);
        }
    }
    cx.layer = "step".into();
    let next = cx.emit1(
        "sdt.increment",
        "update",
        &[step],
        Type::tensor([], ElemType::I64),
        vec![],
    );
    cx.assign("step", next);
    for (name, v) in std::mem::take(&mut cx.assigns) {
        let st = OperationState::new("sdt.assign")
            .operands(&[v])
            .attr("name", Attribute::str(name));
        cx.m.insert_op(InsertPoint::End(cx.block), st);
    }
    let st = OperationState::new("sdt.return").operands(&[loss_out[0], logits]);
    cx.m.insert_op(InsertPoint::End(cx.block), st);
    Ok(cx.m)
}
