//! Forward evaluation of a `tg.graph`.

use super::kernels::{self, bn, conv, elementwise as ew, matmul, pool};
use super::{geom, static_shape, InterpError};
use crate::ir::{Module, OpId, TensorData, ValueId};
use crate::sdt::ops::AttrExt;
use std::collections::HashMap;

/// Evaluates the first `tg.graph` of `m` on `inputs` (one per graph argument) and returns the
/// values of its `tg.return` operands. Batch normalization in training form normalizes with the
/// batch statistics and yields updated running statistics (PyTorch semantics, ONNX momentum).
pub fn run_graph(m: &Module, inputs: &[TensorData]) -> Result<Vec<TensorData>, InterpError> {
    let g = m
        .block(m.body())
        .ops()
        .iter()
        .copied()
        .find(|&o| m.op(o).name() == "tg.graph")
        .ok_or(InterpError::NoEntry("tg.graph"))?;
    let body = m.block(m.region(m.op(g).regions()[0]).blocks()[0]);
    if body.args().len() != inputs.len() {
        return Err(InterpError::Input {
            index: inputs.len(),
            msg: format!("the graph takes {} inputs", body.args().len()),
        });
    }
    let mut env: HashMap<ValueId, TensorData> = HashMap::new();
    for (i, (&a, t)) in body.args().iter().zip(inputs).enumerate() {
        if static_shape(m.ty(a)).as_deref() != Some(&t.shape[..]) {
            return Err(InterpError::Input {
                index: i,
                msg: format!("expected {}, found shape {:?}", m.ty(a), t.shape),
            });
        }
        env.insert(a, t.clone());
    }
    for &op in body.ops() {
        if m.op(op).name() == "tg.return" {
            return Ok(m.op(op).operands().iter().map(|v| env[v].clone()).collect());
        }
        let outs = eval(m, op, &env).map_err(|msg| InterpError::op(m, op, msg))?;
        for (&r, t) in m.op(op).results().iter().zip(outs) {
            env.insert(r, t);
        }
    }
    Err(InterpError::NoEntry("tg.return"))
}

/// Evaluates one op.
fn eval(m: &Module, id: OpId, env: &HashMap<ValueId, TensorData>) -> Result<Vec<TensorData>, String> {
    let op = m.op(id);
    let arg = |i: usize| {
        op.operands()
            .get(i)
            .map(|v| &env[v])
            .ok_or_else(|| format!("missing operand {i}"))
    };
    let out_shape =
        |i: usize| static_shape(m.ty(op.result(i))).ok_or_else(|| "result shape must be static".to_string());
    Ok(match op.name() {
        "tg.param" => {
            let name = op.str_attr("name")?;
            vec![m
                .weights
                .get(name)
                .cloned()
                .ok_or_else(|| format!("no weight data for `{name}`"))?]
        }
        "tg.conv" => {
            let (x, w) = (arg(0)?, arg(1)?);
            let g = geom::conv(op, &x.shape, &w.shape)?;
            let y = conv::ff(&g, x, w);
            vec![match op.operands().get(2) {
                Some(b) => ew::bias_add(&y, &env[b]),
                None => y,
            }]
        }
        "tg.gemm" => {
            let (mut a, b) = (arg(0)?.clone(), arg(1)?);
            if op.flag("trans_a") {
                a = transpose(&a);
            }
            let y = matmul::ff(&a, b, op.flag("trans_b"));
            let alpha = op.float_attr("alpha").unwrap_or(1.0) as f32;
            let y = ew::map(&y, |v| alpha * v);
            vec![match op.operands().get(2) {
                Some(c) => {
                    let beta = op.float_attr("beta").unwrap_or(1.0) as f32;
                    ew::add(&y, &ew::map(&env[c], |v| beta * v), &y.shape)
                }
                None => y,
            }]
        }
        "tg.matmul" => {
            let (a, b) = (arg(0)?, arg(1)?);
            if a.shape.len() != 2 || b.shape.len() != 2 {
                return Err("only 2-D matmul is supported".into());
            }
            vec![matmul::ff(a, b, false)]
        }
        "tg.batch_norm" => {
            let x = arg(0)?;
            let (gamma, beta, rm, rv) = (arg(1)?, arg(2)?, arg(3)?, arg(4)?);
            let eps = op.float_attr("epsilon")?;
            if !op.flag("training") {
                let block = eval_block(rm, rv, gamma, beta, eps);
                return Ok(vec![bn::apply(x, &block)]);
            }
            let (n, _, hw) = kernels::nc_rest(&x.shape);
            let p = bn::BnParams {
                count: n * hw,
                eps,
                momentum: 1.0 - op.float_attr("momentum")?,
            };
            let (block, nrm, nrv) = bn::finalize(&p, &bn::stats(x), gamma, beta, rm, rv);
            vec![bn::apply(x, &block), nrm, nrv]
        }
        "tg.relu" => vec![ew::clip(arg(0)?, 0.0, f32::INFINITY).0],
        "tg.clip" => vec![
            ew::clip(
                arg(0)?,
                op.float_attr("min")? as f32,
                op.float_attr("max")? as f32,
            )
            .0,
        ],
        "tg.identity" | "tg.dropout" => vec![arg(0)?.clone()],
        "tg.flatten" | "tg.reshape" => vec![TensorData {
            shape: out_shape(0)?,
            data: arg(0)?.data.clone(),
        }],
        "tg.add" => vec![ew::add(arg(0)?, arg(1)?, &out_shape(0)?)],
        "tg.softmax" => vec![ew::softmax(arg(0)?, op.int_attr("axis")? as usize)],
        "tg.max_pool" => {
            vec![pool::max_ff(&geom::pool(op, true, &arg(0)?.shape, &out_shape(0)?)?, arg(0)?).0]
        }
        "tg.average_pool" => vec![pool::avg_ff(
            &geom::pool(op, false, &arg(0)?.shape, &out_shape(0)?)?,
            arg(0)?,
        )],
        "tg.global_average_pool" => vec![pool::gavg_ff(arg(0)?)],
        "tg.reduce_mean" => vec![ew::reduce_mean(arg(0)?, &op.usizes_attr("axes")?, &out_shape(0)?)],
        "tg.concat" => {
            let xs: Vec<&TensorData> = op.operands().iter().map(|v| &env[v]).collect();
            vec![ew::concat(&xs, op.int_attr("axis")? as usize)]
        }
        other => return Err(format!("`{other}` is not supported by the interpreter")),
    })
}

/// BN block `[4, C]` from running statistics (eval form).
fn eval_block(
    rm: &TensorData,
    rv: &TensorData,
    gamma: &TensorData,
    beta: &TensorData,
    eps: f64,
) -> TensorData {
    let inv: Vec<f32> = rv
        .data
        .iter()
        .map(|&v| (1.0 / (v as f64 + eps).sqrt()) as f32)
        .collect();
    let data = [&rm.data[..], &inv, &gamma.data, &beta.data].concat();
    kernels::tensor(&[4, rm.data.len()], data)
}

/// Transpose of a matrix.
fn transpose(a: &TensorData) -> TensorData {
    let (r, c) = (a.shape[0], a.shape[1]);
    kernels::tensor(&[c, r], (0..r * c).map(|i| a.data[(i % r) * c + i / r]).collect())
}
