//! Translation of an ONNX graph into a `tg.graph`.
//!
//! Initializers and folded constants stay compile-time values until an operation uses them as a
//! tensor operand; then they become `tg.param`s (named by their ONNX value name, data in the
//! module's weight table). Graph inputs that are not initializers are real inputs, unless every
//! use is a weight slot (conv/gemm weight and bias, BN parameters): then they are the weights of a
//! graph-only model and are initialized here (see `weight_init`).

use super::attrs::NodeAttrs;
use super::error::{OnnxError, Result};
use super::fold::{self, norm_axis, reshape_dims, Known};
use super::load::OnnxModel;
use super::proto::{DataType, DimensionValue, NodeProto, ValueInfoProto};
use crate::frontend::builder::GraphBuilder;
use crate::frontend::init::Init;
use crate::frontend::{ConstTensor, TensorValues};
use crate::ir::{Attribute, Attrs, ElemType, Location, Module, Type, ValueId};
use std::collections::{HashMap, HashSet};

/// Options of the ONNX import.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Batch size: replaces symbolic batch dimensions and overrides the model's own batch
    /// dimension (dimension 0 of every real input). `None`: the model's batch, or 1 if symbolic.
    pub batch: Option<usize>,
    /// Seed of the initialization of graph-only models' weights.
    pub seed: u64,
}

/// What an ONNX value name stands for during import.
#[derive(Clone, Debug)]
enum Val {
    /// An IR value.
    Ir(ValueId),
    /// A compile-time constant (initializer or folded); becomes a `tg.param` when used as a tensor.
    Const(ConstTensor),
    /// A weight of a graph-only model, initialized on first use.
    Weight(Vec<usize>),
}

/// Imports `model` as a module with one `tg.graph` (named after the ONNX graph, `main` if unnamed).
pub fn import(model: &OnnxModel, opts: &ImportOptions) -> Result<Module> {
    let g = &model.graph;
    let weight_inputs = weight_inputs(model);
    let mut env: HashMap<String, Val> = model
        .initializers
        .iter()
        .map(|(k, v)| (k.clone(), Val::Const(v.clone())))
        .collect();
    let mut real = Vec::new();
    let mut types = Vec::new();
    let mut model_batch = None;
    for input in g
        .input
        .iter()
        .filter(|i| !model.initializers.contains_key(&i.name))
    {
        if weight_inputs.contains(&input.name) {
            let (dims, _) = input_dims(input, None)?;
            env.insert(input.name.clone(), Val::Weight(dims));
        } else {
            let (dims, batch) = input_dims(input, opts.batch)?;
            model_batch = model_batch.or(batch);
            types.push(Type::tensor(
                dims.iter().map(|&d| d as i64).collect::<Vec<_>>(),
                ElemType::F32,
            ));
            real.push(input.name.clone());
        }
    }
    let name = if g.name.is_empty() {
        "main"
    } else {
        g.name.as_str()
    };
    let (builder, args) = GraphBuilder::new(name, &types);
    for (n, v) in real.iter().zip(args) {
        env.insert(n.clone(), Val::Ir(v));
    }
    let batch_change = match (model_batch, opts.batch) {
        (Some(from), Some(to)) if from != to => Some((from, to)),
        _ => None,
    };
    let mut imp = Importer {
        opset: model.opset,
        seed: opts.seed,
        b: builder,
        env,
        batch_change,
    };
    for node in &g.node {
        imp.node(node)?;
    }
    let mut outputs = Vec::new();
    for out in &g.output {
        let user = format!("graph output `{}`", out.name);
        let v = imp.lookup(&out.name, &user)?;
        outputs.push(imp.tensor(&out.name, v, None, &Location::Name(out.name.clone()))?);
    }
    Ok(imp.b.finish(&outputs))
}

/// Graph inputs (not initializers) all of whose uses are weight slots.
fn weight_inputs(model: &OnnxModel) -> HashSet<String> {
    let mut all_weight: HashMap<&str, bool> = HashMap::new();
    for node in &model.graph.node {
        for (slot, name) in node.input.iter().enumerate() {
            let is_weight = weight_slot(&node.op_type, slot);
            all_weight
                .entry(name)
                .and_modify(|w| *w &= is_weight)
                .or_insert(is_weight);
        }
    }
    let outputs: HashSet<&str> = model.graph.output.iter().map(|o| o.name.as_str()).collect();
    model
        .graph
        .input
        .iter()
        .filter(|i| !model.initializers.contains_key(&i.name) && !outputs.contains(i.name.as_str()))
        .filter(|i| all_weight.get(i.name.as_str()) == Some(&true))
        .map(|i| i.name.clone())
        .collect()
}

/// Input slots that hold trainable parameters.
fn weight_slot(op_type: &str, slot: usize) -> bool {
    match op_type {
        "Conv" | "Gemm" => slot == 1 || slot == 2,
        "MatMul" => slot == 1,
        "BatchNormalization" => (1..=4).contains(&slot),
        _ => false,
    }
}

/// How a graph-only model's weight is initialized, from the slot that uses it: conv and linear
/// weights He-normal with PyTorch's fan-in, biases zero (PyTorch draws biases uniformly; zeros keep
/// the initial network free of arbitrary offsets), BN scale 1, shift 0, running mean 0, variance 1.
fn weight_init(op_type: &str, slot: usize, dims: &[usize], trans_b: bool) -> Init {
    match (op_type, slot) {
        ("Conv", 1) => Init::He {
            fan_in: dims.iter().skip(1).product(),
        },
        ("Gemm", 1) if trans_b => Init::He {
            fan_in: dims.get(1).copied().unwrap_or(1),
        },
        ("Gemm", 1) | ("MatMul", 1) => Init::He {
            fan_in: dims.first().copied().unwrap_or(1),
        },
        ("BatchNormalization", 1 | 4) => Init::Ones,
        _ => Init::Zeros,
    }
}

/// Static dimensions of a real graph input; symbolic dimension 0 is the batch. Also returns the
/// model's own static batch, if any.
fn input_dims(info: &ValueInfoProto, batch: Option<usize>) -> Result<(Vec<usize>, Option<usize>)> {
    let err = |msg: String| OnnxError::Graph {
        name: info.name.clone(),
        msg,
    };
    let tensor = info
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| err("not a tensor".into()))?;
    let float = [
        DataType::Float as i32,
        DataType::Float16 as i32,
        DataType::Double as i32,
    ];
    if !float.contains(&tensor.elem_type) {
        return Err(err(format!(
            "element type {} is not a float type",
            tensor.elem_type
        )));
    }
    let shape = tensor.shape.as_ref().ok_or_else(|| err("unknown rank".into()))?;
    let mut model_batch = None;
    let dims = shape
        .dim
        .iter()
        .enumerate()
        .map(|(i, d)| match (&d.value, i) {
            (Some(DimensionValue::DimValue(v)), 0) if *v > 0 => {
                model_batch = Some(*v as usize);
                Ok(batch.unwrap_or(*v as usize))
            }
            (Some(DimensionValue::DimValue(v)), _) if *v > 0 => Ok(*v as usize),
            (_, 0) => Ok(batch.unwrap_or(1)),
            _ => Err(err(format!(
                "dimension {i} is not a positive constant (only dimension 0, the batch, may be symbolic)"
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((dims, model_batch))
}

struct Importer {
    opset: i64,
    seed: u64,
    b: GraphBuilder,
    env: HashMap<String, Val>,
    /// `(model batch, requested batch)` when `--batch` changed the batch size.
    batch_change: Option<(usize, usize)>,
}

fn ints(v: &[i64]) -> Attribute {
    Attribute::ints(v)
}

/// A float attribute holding the shortest decimal of an ONNX f32 (`1e-5`, not
/// `9.999999747378752e-6`).
fn f32_attr(v: f32) -> Attribute {
    Attribute::Float(v.to_string().parse().unwrap_or(v as f64))
}

impl Importer {
    fn lookup(&self, name: &str, user: &str) -> Result<Val> {
        self.env.get(name).cloned().ok_or_else(|| OnnxError::Dangling {
            value: name.to_string(),
            user: user.to_string(),
        })
    }

    /// The IR value for `name`, creating a `tg.param` for a constant or a graph-only weight.
    /// `use_site` is `(node, slot)` for weight initialization.
    fn tensor(
        &mut self,
        name: &str,
        v: Val,
        use_site: Option<(&NodeProto, usize)>,
        loc: &Location,
    ) -> Result<ValueId> {
        let data = match v {
            Val::Ir(id) => return Ok(id),
            Val::Const(c) => {
                if let TensorValues::I64(_) = c.values {
                    let msg = format!("integer constant `{name}` used as a tensor operand");
                    return Err(match use_site {
                        Some((n, _)) => node_error(n, msg),
                        None => OnnxError::Graph {
                            name: name.to_string(),
                            msg,
                        },
                    });
                }
                c.to_weight()
            }
            Val::Weight(dims) => {
                let (op, slot, trans_b) = match use_site {
                    Some((n, slot)) => (n.op_type.as_str(), slot, NodeAttrs::new(n).int("transB", 0)? != 0),
                    None => ("", 0, false),
                };
                weight_init(op, slot, &dims, trans_b).fill(name, &dims, self.seed)
            }
        };
        let id = self.b.param(name, data, loc.clone());
        self.env.insert(name.to_string(), Val::Ir(id));
        Ok(id)
    }

    fn node(&mut self, node: &NodeProto) -> Result<()> {
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(OnnxError::UnsupportedOp {
                op_type: format!("{}.{}", node.domain, node.op_type),
                node: node.name.clone(),
                opset: self.opset,
            });
        }
        let user = format!("node `{}` ({})", node.name, node.op_type);
        let vals = node
            .input
            .iter()
            .map(|n| {
                if n.is_empty() {
                    Ok(None)
                } else {
                    self.lookup(n, &user).map(Some)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        if fold::is_foldable(&node.op_type) {
            let shapes: Vec<Option<Vec<usize>>> = vals
                .iter()
                .map(|v| match v {
                    Some(Val::Ir(id)) => static_dims(self.b.ty(*id)),
                    Some(Val::Weight(d)) => Some(d.clone()),
                    _ => None,
                })
                .collect();
            let known: Vec<Known<'_>> = vals
                .iter()
                .zip(&shapes)
                .map(|(v, s)| match (v, s) {
                    (None, _) => Known::Absent,
                    (Some(Val::Const(c)), _) => Known::Const(c),
                    (_, Some(s)) => Known::Shape(s),
                    (_, None) => Known::Shape(&[]),
                })
                .collect();
            let all_const = known.iter().all(|k| !matches!(k, Known::Shape(_)));
            if all_const || matches!(node.op_type.as_str(), "Shape" | "Size") {
                if let Some(outs) = fold::fold(node, self.opset, &known)? {
                    for (name, c) in node.output.iter().zip(outs) {
                        self.env.insert(name.clone(), Val::Const(c));
                    }
                    return Ok(());
                }
            }
        }
        let loc = Location::Name(node.name.clone());
        let results = self.translate(node, vals, &loc)?;
        for (i, name) in node.output.iter().enumerate() {
            if name.is_empty() {
                continue;
            }
            match results.get(i) {
                Some(&v) => {
                    self.env.insert(name.clone(), Val::Ir(v));
                }
                None => {
                    // Outputs this toolchain does not produce (MaxPool indices, Dropout mask, ...)
                    // stay undefined; a later use reports them as dangling.
                }
            }
        }
        Ok(())
    }

    /// Emits the `tg` op(s) for a non-constant node; returns its output values in ONNX order.
    fn translate(
        &mut self,
        node: &NodeProto,
        vals: Vec<Option<Val>>,
        loc: &Location,
    ) -> Result<Vec<ValueId>> {
        let a = NodeAttrs::new(node);
        let opset = self.opset;
        // The i-th input as an IR tensor (required).
        let operand = |imp: &mut Importer, i: usize| -> Result<ValueId> {
            let v = vals
                .get(i)
                .cloned()
                .flatten()
                .ok_or_else(|| a.error(format!("input {i} is required")))?;
            imp.tensor(&node.input[i], v, Some((node, i)), loc)
        };
        let const_input = |i: usize| -> Option<ConstTensor> {
            match vals.get(i) {
                Some(Some(Val::Const(c))) => Some(c.clone()),
                _ => None,
            }
        };
        let mut attrs = Attrs::new();
        let (op, operands): (&str, Vec<ValueId>) = match node.op_type.as_str() {
            "Conv" => {
                let x = operand(self, 0)?;
                let w = operand(self, 1)?;
                let mut ops = vec![x, w];
                if vals.get(2).is_some_and(Option::is_some) {
                    ops.push(operand(self, 2)?);
                }
                let x_dims = self.dims(&a, x, 4)?;
                let w_dims = self.dims(&a, w, 4)?;
                let kernel = a
                    .ints("kernel_shape")?
                    .unwrap_or_else(|| w_dims[2..].iter().map(|&d| d as i64).collect());
                let strides = a.ints("strides")?.unwrap_or_else(|| vec![1, 1]);
                let dilations = a.ints("dilations")?.unwrap_or_else(|| vec![1, 1]);
                let pads = self.pads(&a, &x_dims[2..], &kernel, &strides, &dilations)?;
                attrs.insert("strides".into(), ints(&strides));
                attrs.insert("pads".into(), ints(&pads));
                attrs.insert("dilations".into(), ints(&dilations));
                attrs.insert("group".into(), Attribute::Int(a.int("group", 1)?));
                ("conv", ops)
            }
            "Gemm" => {
                let mut ops = vec![operand(self, 0)?, operand(self, 1)?];
                if vals.get(2).is_some_and(Option::is_some) {
                    ops.push(operand(self, 2)?);
                }
                attrs.insert("trans_a".into(), Attribute::Bool(a.int("transA", 0)? != 0));
                attrs.insert("trans_b".into(), Attribute::Bool(a.int("transB", 0)? != 0));
                attrs.insert("alpha".into(), f32_attr(a.float("alpha", 1.0)?));
                attrs.insert("beta".into(), f32_attr(a.float("beta", 1.0)?));
                ("gemm", ops)
            }
            "MatMul" => ("matmul", vec![operand(self, 0)?, operand(self, 1)?]),
            "BatchNormalization" => {
                let ops = (0..5).map(|i| operand(self, i)).collect::<Result<Vec<_>>>()?;
                let outputs = node.output.iter().filter(|o| !o.is_empty()).count();
                let training = if opset >= 14 {
                    a.int("training_mode", 0)? != 0
                } else {
                    outputs > 1
                };
                if node.output.iter().skip(3).any(|o| !o.is_empty()) && opset >= 14 {
                    return Err(a.error("too many outputs"));
                }
                attrs.insert("epsilon".into(), f32_attr(a.float("epsilon", 1e-5)?));
                attrs.insert("momentum".into(), f32_attr(a.float("momentum", 0.9)?));
                attrs.insert("training".into(), Attribute::Bool(training));
                ("batch_norm", ops)
            }
            "Relu" => ("relu", vec![operand(self, 0)?]),
            "Add" => ("add", vec![operand(self, 0)?, operand(self, 1)?]),
            "Identity" => ("identity", vec![operand(self, 0)?]),
            "GlobalAveragePool" => {
                let x = operand(self, 0)?;
                self.dims(&a, x, 4)?;
                ("global_average_pool", vec![x])
            }
            "MaxPool" | "AveragePool" => {
                let x = operand(self, 0)?;
                let x_dims = self.dims(&a, x, 4)?;
                let kernel = a
                    .ints("kernel_shape")?
                    .ok_or_else(|| a.error("`kernel_shape` is required"))?;
                let strides = a.ints("strides")?.unwrap_or_else(|| vec![1; kernel.len()]);
                let dilations = a.ints("dilations")?.unwrap_or_else(|| vec![1; kernel.len()]);
                if node.op_type == "AveragePool" && dilations.iter().any(|&d| d != 1) {
                    return Err(a.error("dilated AveragePool is not supported"));
                }
                let pads = self.pads(&a, &x_dims[2..], &kernel, &strides, &dilations)?;
                attrs.insert("kernel_shape".into(), ints(&kernel));
                attrs.insert("strides".into(), ints(&strides));
                attrs.insert("pads".into(), ints(&pads));
                attrs.insert("ceil_mode".into(), Attribute::Bool(a.int("ceil_mode", 0)? != 0));
                if node.op_type == "MaxPool" {
                    attrs.insert("dilations".into(), ints(&dilations));
                    ("max_pool", vec![x])
                } else {
                    attrs.insert(
                        "count_include_pad".into(),
                        Attribute::Bool(a.int("count_include_pad", 0)? != 0),
                    );
                    ("average_pool", vec![x])
                }
            }
            "ReduceMean" => {
                let x = operand(self, 0)?;
                let rank = self.b.ty(x).as_tensor().map_or(0, |t| t.rank());
                let axes = if opset >= 18 {
                    match vals.get(1) {
                        Some(Some(_)) => Some(
                            const_input(1)
                                .ok_or_else(|| a.error("`axes` must be a constant"))?
                                .to_i64(),
                        ),
                        _ => None,
                    }
                } else {
                    a.ints("axes")?
                };
                let axes: Vec<i64> = match axes {
                    Some(ax) if !ax.is_empty() => ax
                        .iter()
                        .map(|&x| norm_axis(&a, x, rank).map(|x| x as i64))
                        .collect::<Result<_>>()?,
                    _ if a.int("noop_with_empty_axes", 0)? != 0 => {
                        return self.single(node, "identity", vec![x], Attrs::new(), loc)
                    }
                    _ => (0..rank as i64).collect(),
                };
                attrs.insert("axes".into(), ints(&axes));
                attrs.insert("keepdims".into(), Attribute::Bool(a.int("keepdims", 1)? != 0));
                ("reduce_mean", vec![x])
            }
            "Flatten" => {
                let x = operand(self, 0)?;
                let rank = self.b.ty(x).as_tensor().map_or(0, |t| t.rank());
                let axis = a.int("axis", 1)?;
                let axis = if axis == rank as i64 {
                    axis
                } else {
                    norm_axis(&a, axis, rank)? as i64
                };
                attrs.insert("axis".into(), Attribute::Int(axis));
                ("flatten", vec![x])
            }
            "Reshape" => {
                let x = operand(self, 0)?;
                let target = if opset >= 5 {
                    const_input(1)
                        .ok_or_else(|| a.error("the target shape must be a compile-time constant"))?
                        .to_i64()
                } else {
                    a.ints("shape")?.ok_or_else(|| a.error("`shape` is required"))?
                };
                let x_dims = self.dims(&a, x, 0)?;
                let target = self.rebatch(&x_dims, target);
                let dims = reshape_dims(&a, &x_dims, &target, a.int("allowzero", 0)? != 0)?;
                attrs.insert(
                    "shape".into(),
                    ints(&dims.iter().map(|&d| d as i64).collect::<Vec<_>>()),
                );
                ("reshape", vec![x])
            }
            "Softmax" => {
                let x = operand(self, 0)?;
                let rank = self.b.ty(x).as_tensor().map_or(0, |t| t.rank());
                let axis = norm_axis(&a, a.int("axis", if opset >= 13 { -1 } else { 1 })?, rank)?;
                if opset < 13 && axis + 1 != rank {
                    return Err(a.error("Softmax before opset 13 is only supported on the last axis"));
                }
                attrs.insert("axis".into(), Attribute::Int(axis as i64));
                ("softmax", vec![x])
            }
            "Concat" => {
                let ops = (0..node.input.len())
                    .map(|i| operand(self, i))
                    .collect::<Result<Vec<_>>>()?;
                let rank = ops
                    .first()
                    .and_then(|&v| self.b.ty(v).as_tensor())
                    .map_or(0, |t| t.rank());
                let axis = a.int("axis", i64::MIN)?;
                if axis == i64::MIN {
                    return Err(a.error("`axis` is required"));
                }
                attrs.insert("axis".into(), Attribute::Int(norm_axis(&a, axis, rank)? as i64));
                ("concat", ops)
            }
            "Clip" => {
                let x = operand(self, 0)?;
                let (min, max) = if opset >= 11 {
                    let bound = |i: usize| -> Result<Option<f32>> {
                        match vals.get(i) {
                            Some(Some(_)) => {
                                let c = const_input(i).ok_or_else(|| {
                                    a.error(format!("input {i} (bound) must be a constant"))
                                })?;
                                match c.to_f32().as_slice() {
                                    [v] => Ok(Some(*v)),
                                    _ => Err(a.error(format!("input {i} (bound) must be a scalar"))),
                                }
                            }
                            _ => Ok(None),
                        }
                    };
                    (bound(1)?, bound(2)?)
                } else {
                    (
                        a.has("min").then(|| a.float("min", 0.0)).transpose()?,
                        a.has("max").then(|| a.float("max", 0.0)).transpose()?,
                    )
                };
                attrs.insert("min".into(), f32_attr(min.unwrap_or(f32::MIN)));
                attrs.insert("max".into(), f32_attr(max.unwrap_or(f32::MAX)));
                ("clip", vec![x])
            }
            "Dropout" => {
                let x = operand(self, 0)?;
                let ratio = if opset >= 12 {
                    match vals.get(1) {
                        Some(Some(_)) => const_input(1)
                            .and_then(|c| c.to_f32().first().copied())
                            .ok_or_else(|| a.error("`ratio` must be a constant"))?,
                        _ => 0.5,
                    }
                } else {
                    a.float("ratio", 0.5)?
                };
                attrs.insert("ratio".into(), f32_attr(ratio));
                ("dropout", vec![x])
            }
            _ => {
                return Err(OnnxError::UnsupportedOp {
                    op_type: node.op_type.clone(),
                    node: node.name.clone(),
                    opset,
                })
            }
        };
        self.single(node, op, operands, attrs, loc)
    }

    /// Emits one `tg` op for `node`, turning shape-rule errors into node errors.
    fn single(
        &mut self,
        node: &NodeProto,
        op: &str,
        operands: Vec<ValueId>,
        attrs: Attrs,
        loc: &Location,
    ) -> Result<Vec<ValueId>> {
        self.b
            .op(op, &operands, attrs, loc.clone())
            .map_err(|msg| node_error(node, msg))
    }

    /// Static dimensions of `v`, checking the rank when `rank > 0`.
    fn dims(&self, a: &NodeAttrs<'_>, v: ValueId, rank: usize) -> Result<Vec<usize>> {
        let ty = self.b.ty(v);
        let dims =
            static_dims(ty).ok_or_else(|| a.error(format!("operand of type {ty} has no static shape")))?;
        if rank > 0 && dims.len() != rank {
            return Err(a.error(format!("expected a rank-{rank} operand, found {ty}")));
        }
        Ok(dims)
    }

    /// Explicit `[top, left, bottom, right]` pads from `pads` / `auto_pad`.
    fn pads(
        &self,
        a: &NodeAttrs<'_>,
        spatial: &[usize],
        kernel: &[i64],
        strides: &[i64],
        dilations: &[i64],
    ) -> Result<Vec<i64>> {
        let n = spatial.len();
        if kernel.len() != n || strides.len() != n || dilations.len() != n {
            return Err(a.error(format!("kernel/strides/dilations must have {n} entries")));
        }
        if strides.iter().chain(dilations).chain(kernel).any(|&v| v < 1) {
            return Err(a.error("kernel, strides and dilations must be positive"));
        }
        let auto_pad = a.string("auto_pad", "NOTSET")?;
        match auto_pad.as_str() {
            "NOTSET" => {
                let pads = a.ints("pads")?.unwrap_or_else(|| vec![0; 2 * n]);
                if pads.len() != 2 * n || pads.iter().any(|&p| p < 0) {
                    return Err(a.error(format!(
                        "`pads` must be {} non-negative values, found {pads:?}",
                        2 * n
                    )));
                }
                Ok(pads)
            }
            "VALID" => Ok(vec![0; 2 * n]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut pads = vec![0; 2 * n];
                for i in 0..n {
                    let input = spatial[i] as i64;
                    let out = (input + strides[i] - 1) / strides[i];
                    let eff_k = (kernel[i] - 1) * dilations[i] + 1;
                    let total = ((out - 1) * strides[i] + eff_k - input).max(0);
                    let small = total / 2;
                    let (begin, end) = if auto_pad == "SAME_UPPER" {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                    pads[i] = begin;
                    pads[i + n] = end;
                }
                Ok(pads)
            }
            other => Err(a.error(format!("unknown auto_pad `{other}`"))),
        }
    }

    /// A constant reshape target baked with the model's batch size keeps the batch dimension when
    /// `--batch` changed it: `[B0, rest...]` becomes `[B, rest...]` if the input's leading
    /// dimension is the new batch `B`.
    fn rebatch(&self, input: &[usize], mut target: Vec<i64>) -> Vec<i64> {
        if let Some((from, to)) = self.batch_change {
            if target.first() == Some(&(from as i64)) && input.first() == Some(&to) {
                target[0] = to as i64;
            }
        }
        target
    }
}

/// Static dimensions of a tensor type.
fn static_dims(ty: &Type) -> Option<Vec<usize>> {
    ty.as_tensor()?
        .shape
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect()
}

fn node_error(node: &NodeProto, msg: String) -> OnnxError {
    OnnxError::Node {
        op_type: node.op_type.clone(),
        node: node.name.clone(),
        msg,
    }
}
