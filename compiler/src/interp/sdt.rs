//! Execution of an `sdt.step` training program.

use super::kernels::{self, bn, conv, elementwise as ew, matmul, pool, train};
use super::{geom, static_shape, InterpError, State};
use crate::ir::{Module, OpId, Operation, TensorData, ValueId};
use crate::sdt::ops::AttrExt;
use std::collections::{BTreeMap, HashMap};

/// What one training step produced besides the new state.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutputs {
    /// Mean softmax cross-entropy of the batch (before the update).
    pub loss: f32,
    /// Logits of the forward pass.
    pub logits: TensorData,
    /// Gradient applied to each parameter by its `sdt.sgd` (divided by the loss scale), by name.
    pub grads: BTreeMap<String, TensorData>,
}

/// Runs the first `sdt.step` of `m` once on input batch `x` with labels `y`, updating `state`
/// (all `sdt.assign`s take effect together at the end of the step).
pub fn run_step(
    m: &Module,
    state: &mut State,
    x: &TensorData,
    y: &[i64],
) -> Result<StepOutputs, InterpError> {
    let step = m
        .block(m.body())
        .ops()
        .iter()
        .copied()
        .find(|&o| m.op(o).name() == "sdt.step")
        .ok_or(InterpError::NoEntry("sdt.step"))?;
    let body = m.block(m.region(m.op(step).regions()[0]).blocks()[0]);
    let [xa, ya] = body.args() else {
        return Err(InterpError::Input {
            index: 0,
            msg: "the step must take (x, labels)".into(),
        });
    };
    if static_shape(m.ty(*xa)).as_deref() != Some(&x.shape[..]) {
        return Err(InterpError::Input {
            index: 0,
            msg: format!("expected {}, found shape {:?}", m.ty(*xa), x.shape),
        });
    }
    if static_shape(m.ty(*ya)) != Some(vec![y.len()]) {
        return Err(InterpError::Input {
            index: 1,
            msg: format!("expected {}, found {} labels", m.ty(*ya), y.len()),
        });
    }
    let mut ex = Exec {
        m,
        state,
        env: HashMap::new(),
        writes: Vec::new(),
        grads: BTreeMap::new(),
    };
    ex.env.insert(*xa, x.clone());
    ex.env.insert(
        *ya,
        kernels::tensor(&[y.len()], y.iter().map(|&l| l as f32).collect()),
    );
    for &op in body.ops() {
        if m.op(op).name() == "sdt.return" {
            let [loss, logits] = m.op(op).operands() else {
                return Err(InterpError::op(m, op, "must return (loss, logits)"));
            };
            let out = StepOutputs {
                loss: ex.env[loss].data[0],
                logits: ex.env[logits].clone(),
                grads: std::mem::take(&mut ex.grads),
            };
            for (name, t) in std::mem::take(&mut ex.writes) {
                ex.state.tensors.insert(name, t);
            }
            return Ok(out);
        }
        let outs = ex.eval(op)?;
        for (&r, t) in m.op(op).results().iter().zip(outs) {
            ex.env.insert(r, t);
        }
    }
    Err(InterpError::NoEntry("sdt.return"))
}

/// Interpreter state of one step.
struct Exec<'a> {
    m: &'a Module,
    state: &'a mut State,
    env: HashMap<ValueId, TensorData>,
    writes: Vec<(String, TensorData)>,
    grads: BTreeMap<String, TensorData>,
}

impl Exec<'_> {
    fn eval(&mut self, id: OpId) -> Result<Vec<TensorData>, InterpError> {
        let op = self.m.op(id);
        match op.name() {
            "sdt.state" => {
                let name = op.str_attr("name").map_err(|e| InterpError::op(self.m, id, e))?;
                Ok(vec![self
                    .state
                    .tensors
                    .get(name)
                    .cloned()
                    .ok_or_else(|| InterpError::MissingState(name.into()))?])
            }
            "sdt.assign" => {
                let name = op.str_attr("name").map_err(|e| InterpError::op(self.m, id, e))?;
                self.writes
                    .push((name.to_string(), self.env[&op.operand(0)].clone()));
                Ok(vec![])
            }
            _ => {
                let outs = self.compute(op).map_err(|e| InterpError::op(self.m, id, e))?;
                if op.name() == "sdt.sgd" {
                    let g = &self.env[&op.operand(1)];
                    let scale = op.float_attr("loss_scale").unwrap_or(1.0) as f32;
                    let name = op.str_attr("param").map_err(|e| InterpError::op(self.m, id, e))?;
                    self.grads.insert(name.to_string(), ew::map(g, |v| v / scale));
                }
                Ok(outs)
            }
        }
    }

    /// Evaluates a pure compute op.
    fn compute(&self, op: &Operation) -> Result<Vec<TensorData>, String> {
        let env = &self.env;
        let arg = |i: usize| {
            op.operands()
                .get(i)
                .map(|v| &env[v])
                .ok_or_else(|| format!("missing operand {i}"))
        };
        let feat = |fixed: usize, f: &str| op.feature_operand(fixed, f).map(arg).transpose();
        let bns = || -> Result<Option<(&TensorData, &TensorData)>, String> {
            op.feature_operand(2, "bns")
                .map(|i| Ok((arg(i)?, arg(i + 1)?)))
                .transpose()
        };
        let out_shape = |i: usize| {
            static_shape(self.m.ty(op.result(i))).ok_or_else(|| "result shape must be static".to_string())
        };
        let masked = |t: TensorData, fixed: usize| -> Result<TensorData, String> {
            Ok(match feat(fixed, "omask")? {
                Some(mask) => ew::apply_mask(&t, mask),
                None => t,
            })
        };
        Ok(match op.name() {
            "sdt.increment" => vec![ew::map(arg(0)?, |v| v + 1.0)],
            "sdt.conv_ff" => {
                let w = arg(1)?;
                let (x, relu_mask) = read_normalized(op, arg(0)?, feat(2, "bna")?);
                let g = geom::conv(op, &x.shape, &w.shape)?;
                let mut y = conv::ff(&g, &x, w);
                if let Some(block) = feat(2, "s3")? {
                    s3_predict(op, &g, &x, w, block, &mut y)?;
                }
                let mut outs = vec![y];
                outs.extend(relu_mask);
                if op.has_feature("bns") {
                    outs.push(bn::stats(&outs[0]));
                }
                outs
            }
            "sdt.conv_bp" => {
                let (dy, w) = (arg(0)?, arg(1)?);
                let g = geom::conv(op, &out_shape(0)?, &w.shape)?;
                with_bn_sums(masked(conv::bp(&g, dy, w), 2)?, bns()?)
            }
            "sdt.conv_wg" => {
                let dy = arg(1)?;
                let (x, _) = read_normalized(op, arg(0)?, feat(2, "bna")?);
                let g = geom::conv(op, &x.shape, &out_shape(0)?)?;
                vec![masked(conv::wg(&g, &x, dy), 2)?]
            }
            "sdt.matmul_ff" => {
                let y = matmul::ff(arg(0)?, arg(1)?, op.flag("trans_b"));
                let stats = op.has_feature("bns").then(|| bn::stats(&y));
                std::iter::once(y).chain(stats).collect()
            }
            "sdt.matmul_bp" => {
                let dx = masked(matmul::bp(arg(0)?, arg(1)?, op.flag("trans_b")), 2)?;
                with_bn_sums(dx, bns()?)
            }
            "sdt.matmul_wg" => vec![masked(matmul::wg(arg(0)?, arg(1)?, op.flag("trans_b")), 2)?],
            "sdt.bias_add" => vec![ew::bias_add(arg(0)?, arg(1)?)],
            "sdt.bias_grad" => vec![reshaped(ew::bias_grad(arg(0)?), out_shape(0)?)],
            "sdt.bn_stats" => vec![bn::stats(arg(0)?)],
            "sdt.bn_finalize" => {
                let p = bn::BnParams {
                    count: op.int_attr("count")? as usize,
                    eps: op.float_attr("epsilon")?,
                    momentum: op.float_attr("momentum")?,
                };
                let (block, rm, rv) = bn::finalize(&p, arg(0)?, arg(1)?, arg(2)?, arg(3)?, arg(4)?);
                vec![block, rm, rv]
            }
            "sdt.bn_apply" => vec![bn::apply(arg(0)?, arg(1)?)],
            "sdt.bn_bwd_reduce" => {
                let (dg, db) = bn::bwd_reduce(arg(0)?, arg(1)?, arg(2)?);
                vec![dg, db]
            }
            "sdt.bn_bwd" => vec![bn::bwd(arg(0)?, arg(1)?, arg(2)?, arg(3)?, arg(4)?)],
            "sdt.relu" => {
                let (y, mask) = ew::clip(arg(0)?, 0.0, f32::INFINITY);
                vec![y, mask]
            }
            "sdt.clip" => {
                let (y, mask) = ew::clip(
                    arg(0)?,
                    op.float_attr("min")? as f32,
                    op.float_attr("max")? as f32,
                );
                vec![y, mask]
            }
            "sdt.relu_bwd" | "sdt.apply_mask" => vec![ew::apply_mask(arg(0)?, arg(1)?)],
            "sdt.pool_ff" => {
                let x = arg(0)?;
                match op.str_attr("kind")? {
                    "max" => {
                        let (y, idx) = pool::max_ff(&geom::pool(op, true, &x.shape, &out_shape(0)?)?, x);
                        vec![y, idx]
                    }
                    "avg" => vec![pool::avg_ff(&geom::pool(op, false, &x.shape, &out_shape(0)?)?, x)],
                    "gavg" => vec![pool::gavg_ff(x)],
                    k => return Err(format!("unknown pool kind `{k}`")),
                }
            }
            "sdt.pool_bwd" => {
                let (dy, xs) = (arg(0)?, out_shape(0)?);
                match op.str_attr("kind")? {
                    "max" => vec![pool::max_bwd(&geom::pool(op, true, &xs, &dy.shape)?, dy, arg(1)?)],
                    "avg" => vec![pool::avg_bwd(&geom::pool(op, false, &xs, &dy.shape)?, dy)],
                    "gavg" => vec![pool::gavg_bwd(dy, &xs)],
                    k => return Err(format!("unknown pool kind `{k}`")),
                }
            }
            "sdt.add" => vec![ew::add(arg(0)?, arg(1)?, &out_shape(0)?)],
            "sdt.reshape" => vec![reshaped(arg(0)?.clone(), out_shape(0)?)],
            "sdt.reduce_mean" => vec![ew::reduce_mean(arg(0)?, &op.usizes_attr("axes")?, &out_shape(0)?)],
            "sdt.reduce_mean_bwd" => vec![ew::reduce_mean_bwd(
                arg(0)?,
                &op.usizes_attr("axes")?,
                &out_shape(0)?,
            )],
            "sdt.concat" => {
                let xs: Vec<&TensorData> = op.operands().iter().map(|v| &env[v]).collect();
                vec![ew::concat(&xs, op.int_attr("axis")? as usize)]
            }
            "sdt.slice" => {
                let axis = op.int_attr("axis")? as usize;
                vec![ew::slice(
                    arg(0)?,
                    axis,
                    op.int_attr("start")? as usize,
                    out_shape(0)?[axis],
                )]
            }
            "sdt.softmax_ce" => {
                let labels: Vec<i64> = arg(1)?.data.iter().map(|&l| l as i64).collect();
                let logits = arg(0)?;
                if let Some(bad) = labels.iter().find(|&&l| l < 0 || l as usize >= logits.shape[1]) {
                    return Err(format!(
                        "label {bad} out of range for {} classes",
                        logits.shape[1]
                    ));
                }
                let (loss, d) = train::softmax_ce(logits, &labels, op.float_attr("loss_scale")? as f32);
                vec![kernels::tensor(&[], vec![loss]), d]
            }
            "sdt.sgd" => {
                let p = train::SgdParams {
                    lr: op.float_attr("lr")? as f32,
                    momentum: op.float_attr("momentum")? as f32,
                    weight_decay: op.float_attr("weight_decay")? as f32,
                    loss_scale: op.float_attr("loss_scale")? as f32,
                };
                let v = op.operands().get(2).map(|v| &env[v]);
                let (w, v) = train::sgd(&p, arg(0)?, arg(1)?, v);
                std::iter::once(w).chain(v).collect()
            }
            "sdt.prune_mask" => {
                let (w, old, step) = (arg(0)?, arg(1)?, arg(2)?.data[0] as u64);
                let interval = op.int_attr("interval")?.max(1) as u64;
                if step % interval == 0 {
                    vec![train::topk_mask(w, schedule(op, step)?)]
                } else {
                    vec![old.clone()]
                }
            }
            "sdt.spec_s1" | "sdt.spec_s3" => vec![arg(0)?.clone()],
            "sdt.spec_s2" => {
                let step = arg(2)?.data[0] as u64;
                let interval = op.int_attr("interval")?.max(1) as u64;
                let next = (step / interval + 1) * interval;
                vec![train::s2_predict(
                    arg(0)?,
                    arg(1)?,
                    schedule(op, next)?,
                    op.float_attr("margin")? as f32,
                )]
            }
            other => return Err(format!("`{other}` is not supported by the interpreter")),
        })
    }
}

/// Target sparsity of a `prune_mask` / `spec_s2` op at `step`.
fn schedule(op: &Operation, step: u64) -> Result<f64, String> {
    Ok(train::scheduled_sparsity(
        op.float_attr("sparsity")?,
        op.int_attr("ramp_steps")?.max(0) as u64,
        step,
    ))
}

/// Same data with the shape of the result type.
fn reshaped(t: TensorData, shape: Vec<usize>) -> TensorData {
    TensorData { shape, data: t.data }
}

/// The input of a conv as read: normalized by a fused BN block (`bna`), then ReLU if `bnrelu`,
/// with the ReLU mask; or unchanged.
fn read_normalized(
    op: &Operation,
    x: &TensorData,
    block: Option<&TensorData>,
) -> (TensorData, Option<TensorData>) {
    match block {
        Some(block) => {
            let y = bn::apply(x, block);
            if op.flag("bnrelu") {
                let (y, mask) = ew::clip(&y, 0.0, f32::INFINITY);
                (y, Some(mask))
            } else {
                (y, None)
            }
        }
        None => (x.clone(), None),
    }
}

/// Results of a BP op: `dx`, plus `(dγ, dβ)` of the BN whose output gradient `dx` is when `bns`
/// is fused (operands: pre-BN activation and BN block).
fn with_bn_sums(dx: TensorData, bns: Option<(&TensorData, &TensorData)>) -> Vec<TensorData> {
    match bns {
        Some((x, block)) => {
            let (dg, db) = bn::bwd_reduce(&dx, x, block);
            vec![dx, dg, db]
        }
        None => vec![dx],
    }
}

/// S3: where the cheap E5M2 prediction says the following BN+ReLU zeroes an output, write the
/// prediction instead of the exact value.
fn s3_predict(
    op: &Operation,
    g: &conv::ConvGeom,
    x: &TensorData,
    w: &TensorData,
    block: &TensorData,
    y: &mut TensorData,
) -> Result<(), String> {
    let threshold = op.float_attr("s3_threshold")? as f32;
    let p = conv::ff(g, &ew::map(x, train::round_e5m2), &ew::map(w, train::round_e5m2));
    let (k, plane) = (g.k, g.oh() * g.ow());
    for (i, v) in y.data.iter_mut().enumerate() {
        let ch = (i / plane) % k;
        let z = block.data[2 * k + ch] * (p.data[i] - block.data[ch]) * block.data[k + ch]
            + block.data[3 * k + ch];
        if z < -threshold {
            *v = p.data[i];
        }
    }
    Ok(())
}
