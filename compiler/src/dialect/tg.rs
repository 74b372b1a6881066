//! The `tg` dialect: an ONNX-like tensor graph. Attribute conventions are those of
//! [`super::tg_shapes`]; every computing op's result types are checked against its shape rule.

use super::registry::{Arity, AttrKind as K, OpDef};
use super::tg_shapes;
use crate::ir::{Attribute, Module, OpId, Type};

/// Verifies result types against the shape rule of the op.
fn verify_shape(m: &Module, op: OpId) -> Vec<String> {
    let o = m.op(op);
    let ins: Vec<Type> = o.operands().iter().map(|&v| m.ty(v).clone()).collect();
    let outs: Vec<Type> = o.results().iter().map(|&v| m.ty(v).clone()).collect();
    match tg_shapes::infer(o.name(), &ins, &o.attrs) {
        Err(e) => vec![e],
        Ok(want) if want != outs => vec![format!(
            "result types ({}) differ from the shape rule's ({})",
            list(&outs),
            list(&want)
        )],
        Ok(_) => Vec::new(),
    }
}

fn list(t: &[Type]) -> String {
    t.iter().map(Type::to_string).collect::<Vec<_>>().join(", ")
}

/// `tg.constant`: the result type is the type of `value`.
fn verify_constant(m: &Module, op: OpId) -> Vec<String> {
    let o = m.op(op);
    match (o.attr("value").and_then(Attribute::as_dense), o.results()) {
        (Some(d), [r]) if d.ty() != *m.ty(*r) => {
            vec![format!(
                "value type {} differs from result type {}",
                d.ty(),
                m.ty(*r)
            )]
        }
        _ => Vec::new(),
    }
}

/// `tg.param`: the result must be a static tensor.
fn verify_param(m: &Module, op: OpId) -> Vec<String> {
    let o = m.op(op);
    o.results()
        .iter()
        .filter(|&&r| !matches!(m.ty(r).as_tensor(), Some(t) if t.num_elements().is_some()))
        .map(|&r| format!("result must be a static tensor, found {}", m.ty(r)))
        .collect()
}

fn unary(name: &str, summary: &str) -> OpDef {
    OpDef::new(name, summary, Arity::Exact(1), Arity::Exact(1))
        .pure()
        .verify_with(verify_shape)
}

fn pool(name: &str, summary: &str) -> OpDef {
    unary(name, summary)
        .req("kernel_shape", K::Ints)
        .req("strides", K::Ints)
        .req("pads", K::Ints)
        .req("ceil_mode", K::Bool)
}

/// Every `tg` op.
pub fn ops() -> Vec<OpDef> {
    vec![
        OpDef::new(
            "tg.graph",
            "A tensor graph (function): entry-block arguments are the inputs, `tg.return` gives the outputs.",
            Arity::Exact(0),
            Arity::Exact(0),
        )
        .regions(1)
        .req("sym_name", K::Str),
        OpDef::new("tg.return", "Graph outputs.", Arity::AtLeast(0), Arity::Exact(0)).terminator(),
        OpDef::new(
            "tg.param",
            "A trainable parameter or buffer; data lives in the module's weight table under `name`. `role`: weight, bias, bn_scale, bn_bias, bn_mean, bn_var, ...",
            Arity::Exact(0),
            Arity::Exact(1),
        )
        .req("name", K::Str)
        .opt("role", K::Str)
        .pure()
        .verify_with(verify_param),
        OpDef::new("tg.constant", "A small constant tensor given inline by `value`.", Arity::Exact(0), Arity::Exact(1))
            .req("value", K::Dense)
            .pure()
            .verify_with(verify_constant),
        OpDef::new(
            "tg.conv",
            "2-D convolution (ONNX Conv, NCHW, weight OIHW/group): `conv(x, w[, b])`; `pads` = [top, left, bottom, right].",
            Arity::Range(2, 3),
            Arity::Exact(1),
        )
        .req("strides", K::Ints)
        .req("pads", K::Ints)
        .req("dilations", K::Ints)
        .req("group", K::Int)
        .pure()
        .verify_with(verify_shape),
        OpDef::new(
            "tg.gemm",
            "ONNX Gemm: `alpha·op(A)·op(B) + beta·C`, `op` transposes when `trans_a`/`trans_b`.",
            Arity::Range(2, 3),
            Arity::Exact(1),
        )
        .req("trans_a", K::Bool)
        .req("trans_b", K::Bool)
        .req("alpha", K::Number)
        .req("beta", K::Number)
        .pure()
        .verify_with(verify_shape),
        OpDef::new("tg.matmul", "Batched matrix product with broadcast leading dimensions (ONNX MatMul).", Arity::Exact(2), Arity::Exact(1))
            .pure()
            .verify_with(verify_shape),
        OpDef::new(
            "tg.batch_norm",
            "BatchNormalization `(x, scale, bias, mean, var)`; training form (`training = true`) uses batch statistics and has 3 results (y, new running mean, new running var), eval form 1.",
            Arity::Exact(5),
            Arity::Range(1, 3),
        )
        .req("epsilon", K::Number)
        .req("momentum", K::Number)
        .req("training", K::Bool)
        .pure()
        .verify_with(verify_shape),
        unary("tg.relu", "max(x, 0)."),
        unary("tg.identity", "x (folded by `canonicalize`)."),
        unary("tg.dropout", "Identity in this toolchain (`ratio` kept for reference; folded by `canonicalize`).")
            .opt("ratio", K::Number),
        unary("tg.clip", "min(max(x, `min`), `max`) (ReLU6 is clip 0..6).")
            .req("min", K::Number)
            .req("max", K::Number),
        unary("tg.softmax", "Softmax along `axis`.").req("axis", K::Int),
        OpDef::new("tg.add", "Elementwise sum with NumPy broadcasting.", Arity::Exact(2), Arity::Exact(1))
            .pure()
            .verify_with(verify_shape),
        pool("tg.max_pool", "Max pooling (NCHW).").req("dilations", K::Ints),
        pool("tg.average_pool", "Average pooling (NCHW).").opt("count_include_pad", K::Bool),
        unary("tg.global_average_pool", "Mean over H and W, keeping them as 1×1."),
        unary("tg.reduce_mean", "Mean over `axes`; `keepdims` keeps them as size 1.")
            .req("axes", K::Ints)
            .req("keepdims", K::Bool),
        unary("tg.flatten", "Reshape to 2-D `[prod(dims < axis), prod(dims ≥ axis)]`.").req("axis", K::Int),
        unary("tg.reshape", "Reshape to `shape` (fully resolved).").req("shape", K::Ints),
        OpDef::new("tg.concat", "Concatenation along `axis`.", Arity::AtLeast(1), Arity::Exact(1))
            .req("axis", K::Int)
            .pure()
            .verify_with(verify_shape),
    ]
}
