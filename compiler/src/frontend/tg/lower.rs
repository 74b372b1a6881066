//! Lowering a parsed `.tg` graph to a `tg.graph`: names resolved, params initialized, attribute
//! defaults filled in, result types inferred by the `tg` shape rules.

use super::ast::{AttrValue, Dim, Graph, Name, Span, Stmt, TypeSpec};
use super::{LineIndex, TgError};
use crate::dialect::tg_shapes;
use crate::frontend::builder::GraphBuilder;
use crate::frontend::init::Init;
use crate::ir::{Attribute, Attrs, ElemType, Location, Module, Type, ValueId};
use std::collections::HashMap;

/// Options of the `.tg` frontend.
#[derive(Clone, Debug, Default)]
pub struct TgOptions {
    /// Value of every symbolic dimension (the batch size); default 1.
    pub batch: Option<usize>,
    /// Seed of parameter initialization.
    pub seed: u64,
}

/// Short attribute spellings accepted in `.tg` text, and the `tg` attribute they stand for.
const ALIASES: &[(&str, &str)] = &[
    ("stride", "strides"),
    ("pad", "pads"),
    ("dilation", "dilations"),
    ("kernel", "kernel_shape"),
    ("groups", "group"),
];

/// Attribute defaults (ONNX's) of `op`, for attributes a hand-written graph may omit.
fn defaults(op: &str) -> Vec<(&'static str, Attribute)> {
    let pair = || Attribute::ints(&[1, 1]);
    let pads = || Attribute::ints(&[0, 0, 0, 0]);
    match op {
        "conv" => vec![
            ("strides", pair()),
            ("pads", pads()),
            ("dilations", pair()),
            ("group", Attribute::Int(1)),
        ],
        "gemm" => vec![
            ("trans_a", Attribute::Bool(false)),
            ("trans_b", Attribute::Bool(false)),
            ("alpha", Attribute::Float(1.0)),
            ("beta", Attribute::Float(1.0)),
        ],
        "batch_norm" => vec![
            ("epsilon", Attribute::Float(1e-5)),
            ("momentum", Attribute::Float(0.9)),
            ("training", Attribute::Bool(true)),
        ],
        "max_pool" => vec![
            ("strides", pair()),
            ("pads", pads()),
            ("dilations", pair()),
            ("ceil_mode", Attribute::Bool(false)),
        ],
        "average_pool" => vec![
            ("strides", pair()),
            ("pads", pads()),
            ("ceil_mode", Attribute::Bool(false)),
            ("count_include_pad", Attribute::Bool(false)),
        ],
        "reduce_mean" => vec![("keepdims", Attribute::Bool(true))],
        "flatten" => vec![("axis", Attribute::Int(1))],
        "softmax" => vec![("axis", Attribute::Int(-1))],
        "clip" => vec![
            ("min", Attribute::Float(f32::MIN as f64)),
            ("max", Attribute::Float(f32::MAX as f64)),
        ],
        "dropout" => vec![("ratio", Attribute::Float(0.5))],
        _ => vec![],
    }
}

/// Lowers `graph` (parsed from `src`, a file named `file`) to a module.
pub fn lower(graph: &Graph, src: &str, file: &str, opts: &TgOptions) -> Result<Module, TgError> {
    let err = |span: Span, msg: String| TgError::at(src, span.lo, msg);
    let lines = LineIndex::new(src);
    let loc = |span: Span| {
        let (line, col) = lines.line_col(span.lo);
        Location::FileLineCol {
            file: file.to_string(),
            line: line as u32,
            col: col as u32,
        }
    };
    let batch = opts.batch.unwrap_or(1);
    let mut types = Vec::new();
    for input in &graph.inputs {
        types.push(tensor_type(&input.ty, Some(batch)).map_err(|m| err(input.ty.span, m))?);
    }
    let (mut b, args) = GraphBuilder::new(&graph.name, &types);
    let mut env: HashMap<String, ValueId> = HashMap::new();
    let define = |env: &mut HashMap<String, ValueId>, name: &Name, v: ValueId| {
        if env.insert(name.name.clone(), v).is_some() {
            Err(err(name.span, format!("`%{}` is defined twice", name.name)))
        } else {
            Ok(())
        }
    };
    for (input, v) in graph.inputs.iter().zip(args) {
        define(&mut env, &input.name, v)?;
    }
    let lookup = |env: &HashMap<String, ValueId>, n: &Name| {
        env.get(&n.name)
            .copied()
            .ok_or_else(|| err(n.span, format!("`%{}` is not defined", n.name)))
    };
    for stmt in &graph.body {
        match stmt {
            Stmt::Param { value, init } => {
                let ty = tensor_type(&value.ty, None).map_err(|m| err(value.ty.span, m))?;
                let dims: Vec<usize> = ty
                    .as_tensor()
                    .map_or(vec![], |t| t.shape.iter().map(|&d| d as usize).collect());
                let how = match init {
                    None => Init::default_for(&dims),
                    Some(n) => Init::from_name(&n.name, dims.iter().skip(1).product()).ok_or_else(|| {
                        err(
                            n.span,
                            format!("unknown init `{}` (expected he, zeros or ones)", n.name),
                        )
                    })?,
                };
                let data = how.fill(&value.name.name, &dims, opts.seed);
                let v = b.param(&value.name.name, data, loc(value.name.span));
                define(&mut env, &value.name, v)?;
            }
            Stmt::Op {
                results,
                op,
                operands,
                attrs,
            } => {
                if !tg_shapes::OPS.contains(&format!("tg.{}", op.name).as_str()) {
                    return Err(err(op.span, format!("unknown op `{}`", op.name)));
                }
                let vals = operands
                    .iter()
                    .map(|n| lookup(&env, n))
                    .collect::<Result<Vec<_>, _>>()?;
                let rank = vals
                    .first()
                    .and_then(|&v| b.ty(v).as_tensor())
                    .map_or(0, |t| t.rank());
                let mut dict: Attrs = defaults(&op.name)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                for (k, v) in attrs {
                    let key = ALIASES
                        .iter()
                        .find(|(short, _)| *short == k.name)
                        .map_or(k.name.as_str(), |(_, long)| long);
                    dict.insert(key.to_string(), attribute(v));
                }
                normalize_axes(&mut dict, rank);
                let outs = b
                    .op(&op.name, &vals, dict, loc(op.span))
                    .map_err(|m| err(op.span, format!("{}: {m}", op.name)))?;
                if results.len() > outs.len() {
                    return Err(err(
                        results[outs.len()].span,
                        format!(
                            "`{}` has {} result(s), {} named",
                            op.name,
                            outs.len(),
                            results.len()
                        ),
                    ));
                }
                for (n, v) in results.iter().zip(outs) {
                    define(&mut env, n, v)?;
                }
            }
        }
    }
    let outputs = graph
        .outputs
        .iter()
        .map(|n| lookup(&env, n))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(b.finish(&outputs))
}

/// The IR type of a `.tg` type; symbolic dimensions take `batch` (an error where `None`).
fn tensor_type(t: &TypeSpec, batch: Option<usize>) -> Result<Type, String> {
    let elem = ElemType::from_name(&t.elem)
        .filter(|e| e.is_float())
        .ok_or_else(|| format!("unsupported element type `{}`", t.elem))?;
    let dims = t
        .dims
        .iter()
        .map(|d| match (d, batch) {
            (Dim::Fixed(n), _) if *n > 0 => Ok(*n),
            (Dim::Fixed(n), _) => Err(format!("dimension {n} must be positive")),
            (Dim::Sym(_), Some(b)) => Ok(b as i64),
            (Dim::Sym(s), None) => Err(format!("parameter dimensions must be numbers, found `{s}`")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Type::tensor(dims, elem))
}

/// The IR attribute of a `.tg` attribute value (`true`/`false` are booleans, other words strings).
fn attribute(v: &AttrValue) -> Attribute {
    match v {
        AttrValue::Int(i) => Attribute::Int(*i),
        AttrValue::Float(f) => Attribute::Float(*f),
        AttrValue::Str(s) => Attribute::str(s.clone()),
        AttrValue::Word(w) if w == "true" => Attribute::Bool(true),
        AttrValue::Word(w) if w == "false" => Attribute::Bool(false),
        AttrValue::Word(w) => Attribute::str(w.clone()),
        AttrValue::List(l) => Attribute::Array(l.iter().map(attribute).collect()),
    }
}

/// Negative `axis` / `axes` count from the end, as in ONNX; the `tg` dialect stores them
/// non-negative.
fn normalize_axes(dict: &mut Attrs, rank: usize) {
    let fix = |a: i64| if a < 0 { a + rank as i64 } else { a };
    if let Some(Attribute::Int(a)) = dict.get_mut("axis") {
        *a = fix(*a);
    }
    if let Some(Attribute::Array(axes)) = dict.get_mut("axes") {
        for a in axes.iter_mut() {
            if let Attribute::Int(x) = a {
                *x = fix(*x);
            }
        }
    }
}
