//! Compile-time evaluation of constant sub-graphs: the shape computations exporters emit in front
//! of `Reshape` (Constant, ConstantOfShape, Shape, Gather, Unsqueeze, Squeeze, Concat, Cast,
//! Slice, elementwise arithmetic, ...). Values are [`ConstTensor`]s; nothing here reaches the IR.

use super::attrs::NodeAttrs;
use super::error::Result;
use super::proto::{DataType, NodeProto};
use super::tensor::{decode_tensor, ExternalFiles};
use crate::frontend::{ConstTensor, TensorValues};

/// What the folder knows about one node input.
#[derive(Clone, Copy, Debug)]
pub enum Known<'a> {
    /// Absent optional input.
    Absent,
    /// A compile-time constant.
    Const(&'a ConstTensor),
    /// A run-time value whose static shape is known.
    Shape(&'a [usize]),
}

/// Ops the folder can evaluate.
pub fn is_foldable(op_type: &str) -> bool {
    matches!(
        op_type,
        "Constant"
            | "ConstantOfShape"
            | "Shape"
            | "Size"
            | "Gather"
            | "Unsqueeze"
            | "Squeeze"
            | "Concat"
            | "Cast"
            | "Slice"
            | "Add"
            | "Sub"
            | "Mul"
            | "Div"
            | "Identity"
            | "Reshape"
    )
}

/// Evaluates `node` when its result is a compile-time constant: every input is a constant, or the
/// op only needs shapes (`Shape`, `Size`). Returns `None` when the node is not foldable here.
pub fn fold(node: &NodeProto, opset: i64, inputs: &[Known<'_>]) -> Result<Option<Vec<ConstTensor>>> {
    let a = NodeAttrs::new(node);
    let consts: Vec<Option<&ConstTensor>> = inputs
        .iter()
        .map(|k| match k {
            Known::Const(c) => Some(*c),
            _ => None,
        })
        .collect();
    let shape_of = |i: usize| match inputs.get(i) {
        Some(Known::Const(c)) => Some(c.dims.clone()),
        Some(Known::Shape(s)) => Some(s.to_vec()),
        _ => None,
    };
    let op = node.op_type.as_str();
    let all_const = inputs.iter().all(|k| !matches!(k, Known::Shape(_)));
    if !is_foldable(op) || (!all_const && !matches!(op, "Shape" | "Size")) {
        return Ok(None);
    }
    let input = |i: usize| {
        consts
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| a.error(format!("input {i} is required")))
    };
    // Axes given as attribute (older opsets) or as the optional second input (newer opsets).
    let axes_arg = |since: i64| -> Result<Option<Vec<i64>>> {
        if opset >= since {
            Ok(consts.get(1).copied().flatten().map(ConstTensor::to_i64))
        } else {
            a.ints("axes")
        }
    };
    let out = match op {
        "Constant" => constant(&a)?,
        "Identity" => input(0)?.clone(),
        "ConstantOfShape" => {
            let dims = to_dims(&a, &input(0)?.to_i64())?;
            let n = dims.iter().product();
            let fill = match a.tensor("value")? {
                Some(t) => decode_tensor(t, &mut ExternalFiles::new(None))?,
                None => ConstTensor::f32(vec![1], vec![0.0]),
            };
            match fill.values {
                TensorValues::F32(v) if v.len() == 1 => ConstTensor::f32(dims, vec![v[0]; n]),
                TensorValues::I64(v) if v.len() == 1 => ConstTensor::i64(dims, vec![v[0]; n]),
                _ => return Err(a.error("`value` must hold exactly one element")),
            }
        }
        "Shape" | "Size" => {
            let dims = shape_of(0).ok_or_else(|| a.error("input shape is unknown"))?;
            if op == "Size" {
                ConstTensor::i64(vec![], vec![dims.iter().product::<usize>() as i64])
            } else {
                let r = dims.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let start = clamp(a.int("start", 0)?);
                let end = clamp(a.int("end", r)?).max(start);
                let v: Vec<i64> = dims[start..end].iter().map(|&d| d as i64).collect();
                ConstTensor::i64(vec![v.len()], v)
            }
        }
        "Gather" => gather(&a, input(0)?, input(1)?)?,
        "Unsqueeze" => {
            let data = input(0)?;
            let axes = axes_arg(13)?.ok_or_else(|| a.error("`axes` is required"))?;
            let rank = data.dims.len() + axes.len();
            let mut axes = axes
                .iter()
                .map(|&x| norm_axis(&a, x, rank))
                .collect::<Result<Vec<_>>>()?;
            axes.sort_unstable();
            let mut dims = data.dims.clone();
            for &ax in &axes {
                dims.insert(ax, 1);
            }
            with_dims(data, dims)
        }
        "Squeeze" => {
            let data = input(0)?;
            let rank = data.dims.len();
            let axes: Vec<usize> = match axes_arg(13)? {
                Some(axes) => axes
                    .iter()
                    .map(|&x| norm_axis(&a, x, rank))
                    .collect::<Result<_>>()?,
                None => (0..rank).filter(|&i| data.dims[i] == 1).collect(),
            };
            if axes.iter().any(|&ax| data.dims[ax] != 1) {
                return Err(a.error("cannot squeeze a dimension that is not 1"));
            }
            let dims = data
                .dims
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, &d)| d)
                .collect();
            with_dims(data, dims)
        }
        "Reshape" => {
            let data = input(0)?;
            let dims = reshape_dims(&a, &data.dims, &input(1)?.to_i64(), a.int("allowzero", 0)? != 0)?;
            with_dims(data, dims)
        }
        "Concat" => concat(&a, &consts)?,
        "Cast" => {
            let data = input(0)?;
            let to = DataType::try_from(a.int("to", 0)? as i32).map_err(|_| a.error("bad `to` type"))?;
            match to {
                DataType::Float | DataType::Float16 | DataType::Double | DataType::Bfloat16 => {
                    ConstTensor::f32(data.dims.clone(), data.to_f32())
                }
                DataType::Bool => ConstTensor::i64(
                    data.dims.clone(),
                    data.to_f32().iter().map(|&x| (x != 0.0) as i64).collect(),
                ),
                _ => ConstTensor::i64(data.dims.clone(), data.to_i64()),
            }
        }
        "Slice" => slice(&a, opset, &consts)?,
        "Add" | "Sub" | "Mul" | "Div" => arith(&a, op, input(0)?, input(1)?)?,
        _ => return Ok(None),
    };
    Ok(Some(vec![out]))
}

/// The value of a `Constant` node (any of its value attributes).
fn constant(a: &NodeAttrs<'_>) -> Result<ConstTensor> {
    if let Some(t) = a.tensor("value")? {
        return decode_tensor(t, &mut ExternalFiles::new(None));
    }
    if a.has("value_float") {
        return Ok(ConstTensor::f32(vec![], vec![a.float("value_float", 0.0)?]));
    }
    if a.has("value_int") {
        return Ok(ConstTensor::i64(vec![], vec![a.int("value_int", 0)?]));
    }
    if let Some(v) = a.floats("value_floats")? {
        return Ok(ConstTensor::f32(vec![v.len()], v));
    }
    if let Some(v) = a.ints("value_ints")? {
        return Ok(ConstTensor::i64(vec![v.len()], v));
    }
    Err(a.error("Constant without a supported value attribute"))
}

/// Normalizes a possibly negative axis against `rank`.
pub fn norm_axis(a: &NodeAttrs<'_>, axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let ax = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&ax) {
        Ok(ax as usize)
    } else {
        Err(a.error(format!("axis {axis} is out of range for rank {rank}")))
    }
}

/// Non-negative dimensions from integer values.
fn to_dims(a: &NodeAttrs<'_>, v: &[i64]) -> Result<Vec<usize>> {
    v.iter()
        .map(|&d| usize::try_from(d).map_err(|_| a.error(format!("negative dimension {d}"))))
        .collect()
}

/// ONNX `Reshape` target resolution: `0` copies the input dimension (unless `allowzero`), one `-1`
/// is inferred; the element counts must agree.
pub fn reshape_dims(
    a: &NodeAttrs<'_>,
    input: &[usize],
    shape: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>> {
    let total: usize = input.iter().product();
    let mut dims = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &s) in shape.iter().enumerate() {
        match s {
            0 if !allowzero => dims.push(
                *input
                    .get(i)
                    .ok_or_else(|| a.error(format!("shape {shape:?}: no input dimension {i} to copy")))?,
            ),
            -1 if infer.is_none() => {
                infer = Some(i);
                dims.push(1);
            }
            s if s >= 0 => dims.push(s as usize),
            _ => return Err(a.error(format!("invalid reshape target {shape:?}"))),
        }
    }
    let known: usize = dims.iter().product();
    if let Some(i) = infer {
        if total.checked_rem(known) != Some(0) {
            return Err(a.error(format!("cannot reshape {input:?} to {shape:?}")));
        }
        dims[i] = total / known;
    } else if known != total {
        return Err(a.error(format!(
            "cannot reshape {input:?} ({total} elements) to {shape:?}"
        )));
    }
    Ok(dims)
}

fn with_dims(t: &ConstTensor, dims: Vec<usize>) -> ConstTensor {
    ConstTensor {
        dims,
        values: t.values.clone(),
    }
}

/// Picks flat elements `idx` of `t` into a tensor of shape `dims`.
fn select(t: &ConstTensor, dims: Vec<usize>, idx: &[usize]) -> ConstTensor {
    match &t.values {
        TensorValues::F32(v) => ConstTensor::f32(dims, idx.iter().map(|&i| v[i]).collect()),
        TensorValues::I64(v) => ConstTensor::i64(dims, idx.iter().map(|&i| v[i]).collect()),
    }
}

fn gather(a: &NodeAttrs<'_>, data: &ConstTensor, indices: &ConstTensor) -> Result<ConstTensor> {
    let rank = data.dims.len();
    if rank == 0 {
        return Err(a.error("Gather of a scalar"));
    }
    let axis = norm_axis(a, a.int("axis", 0)?, rank)?;
    let n = data.dims[axis];
    let outer: usize = data.dims[..axis].iter().product();
    let inner: usize = data.dims[axis + 1..].iter().product();
    let picks = indices
        .to_i64()
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + n as i64 } else { i };
            usize::try_from(j)
                .ok()
                .filter(|&j| j < n)
                .ok_or_else(|| a.error(format!("index {i} out of range 0..{n}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut idx = Vec::with_capacity(outer * picks.len() * inner);
    for o in 0..outer {
        for &p in &picks {
            idx.extend((0..inner).map(|i| (o * n + p) * inner + i));
        }
    }
    let dims = [&data.dims[..axis], &indices.dims[..], &data.dims[axis + 1..]].concat();
    Ok(select(data, dims, &idx))
}

fn concat(a: &NodeAttrs<'_>, inputs: &[Option<&ConstTensor>]) -> Result<ConstTensor> {
    let parts: Vec<&ConstTensor> = inputs.iter().flatten().copied().collect();
    let first = parts.first().ok_or_else(|| a.error("Concat without inputs"))?;
    let rank = first.dims.len();
    let axis = norm_axis(a, a.int("axis", 0)?, rank)?;
    let mut dims = first.dims.clone();
    dims[axis] = 0;
    for p in &parts {
        let same = p.dims.len() == rank && (0..rank).all(|i| i == axis || p.dims[i] == first.dims[i]);
        if !same {
            return Err(a.error(format!(
                "Concat of incompatible shapes {:?} and {:?}",
                first.dims, p.dims
            )));
        }
        dims[axis] += p.dims[axis];
    }
    let outer: usize = first.dims[..axis].iter().product();
    let floats = parts.iter().any(|p| matches!(p.values, TensorValues::F32(_)));
    let (mut f, mut i) = (Vec::new(), Vec::new());
    for o in 0..outer {
        for p in &parts {
            let chunk: usize = p.dims[axis..].iter().product();
            let range = o * chunk..(o + 1) * chunk;
            if floats {
                f.extend_from_slice(&p.to_f32()[range]);
            } else {
                i.extend_from_slice(&p.to_i64()[range]);
            }
        }
    }
    Ok(if floats {
        ConstTensor::f32(dims, f)
    } else {
        ConstTensor::i64(dims, i)
    })
}

fn slice(a: &NodeAttrs<'_>, opset: i64, inputs: &[Option<&ConstTensor>]) -> Result<ConstTensor> {
    let data = inputs
        .first()
        .copied()
        .flatten()
        .ok_or_else(|| a.error("input 0 is required"))?;
    let arg = |i: usize| inputs.get(i).copied().flatten().map(ConstTensor::to_i64);
    let (starts, ends, axes, steps) = if opset >= 10 {
        let starts = arg(1).ok_or_else(|| a.error("`starts` is required"))?;
        let ends = arg(2).ok_or_else(|| a.error("`ends` is required"))?;
        (starts, ends, arg(3), arg(4))
    } else {
        let starts = a.ints("starts")?.ok_or_else(|| a.error("`starts` is required"))?;
        let ends = a.ints("ends")?.ok_or_else(|| a.error("`ends` is required"))?;
        (starts, ends, a.ints("axes")?, None)
    };
    let rank = data.dims.len();
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(a.error("starts, ends, axes and steps differ in length"));
    }
    // Per dimension: the list of selected indices.
    let mut picks: Vec<Vec<usize>> = data.dims.iter().map(|&d| (0..d).collect()).collect();
    for k in 0..starts.len() {
        let ax = norm_axis(a, axes[k], rank)?;
        let d = data.dims[ax] as i64;
        let step = steps[k];
        if step == 0 {
            return Err(a.error("slice step 0"));
        }
        let fix = |v: i64, lo: i64, hi: i64| (if v < 0 { v + d } else { v }).clamp(lo, hi);
        let (start, end) = if step > 0 {
            (fix(starts[k], 0, d), fix(ends[k], 0, d))
        } else {
            (fix(starts[k], -1, d - 1), fix(ends[k], -1, d - 1))
        };
        let mut sel = Vec::new();
        let mut i = start;
        while (step > 0 && i < end) || (step < 0 && i > end) {
            sel.push(i as usize);
            i += step;
        }
        picks[ax] = sel;
    }
    let strides: Vec<usize> = (0..rank).map(|i| data.dims[i + 1..].iter().product()).collect();
    let mut idx = vec![0usize];
    for (sel, &stride) in picks.iter().zip(&strides) {
        idx = idx
            .iter()
            .flat_map(|&base| sel.iter().map(move |&s| base + s * stride))
            .collect();
    }
    Ok(select(data, picks.iter().map(Vec::len).collect(), &idx))
}

/// Numpy-style broadcast of two shapes.
fn broadcast(a: &NodeAttrs<'_>, x: &[usize], y: &[usize]) -> Result<Vec<usize>> {
    let r = x.len().max(y.len());
    (0..r)
        .map(|i| {
            let dx = if i + x.len() >= r { x[i + x.len() - r] } else { 1 };
            let dy = if i + y.len() >= r { y[i + y.len() - r] } else { 1 };
            match (dx, dy) {
                (p, q) if p == q => Ok(p),
                (1, q) => Ok(q),
                (p, 1) => Ok(p),
                _ => Err(a.error(format!("shapes {x:?} and {y:?} do not broadcast"))),
            }
        })
        .collect()
}

/// Flat index into `dims` (right-aligned, broadcast) of output position `flat` in `out`.
fn broadcast_index(out: &[usize], dims: &[usize], mut flat: usize) -> usize {
    let (mut idx, mut stride) = (0, 1);
    for k in (0..out.len()).rev() {
        let coord = flat % out[k];
        flat /= out[k];
        if let Some(j) = (k + dims.len()).checked_sub(out.len()) {
            if dims[j] != 1 {
                idx += coord * stride;
            }
            stride *= dims[j];
        }
    }
    idx
}

fn arith(a: &NodeAttrs<'_>, op: &str, x: &ConstTensor, y: &ConstTensor) -> Result<ConstTensor> {
    let dims = broadcast(a, &x.dims, &y.dims)?;
    let n: usize = dims.iter().product();
    let pairs = (0..n).map(|i| {
        (
            broadcast_index(&dims, &x.dims, i),
            broadcast_index(&dims, &y.dims, i),
        )
    });
    Ok(match (&x.values, &y.values) {
        (TensorValues::I64(u), TensorValues::I64(v)) => {
            let vals = pairs
                .map(|(i, j)| match op {
                    "Add" => u[i].checked_add(v[j]),
                    "Sub" => u[i].checked_sub(v[j]),
                    "Mul" => u[i].checked_mul(v[j]),
                    _ => u[i].checked_div(v[j]),
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| a.error("integer overflow or division by zero"))?;
            ConstTensor::i64(dims, vals)
        }
        _ => {
            let (u, v) = (x.to_f32(), y.to_f32());
            let vals = pairs
                .map(|(i, j)| match op {
                    "Add" => u[i] + v[j],
                    "Sub" => u[i] - v[j],
                    "Mul" => u[i] * v[j],
                    _ => u[i] / v[j],
                })
                .collect();
            ConstTensor::f32(dims, vals)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            name: "n".into(),
            ..Default::default()
        }
    }

    #[test]
    fn shape_gather_unsqueeze_concat_chain() {
        let x = [8usize, 32, 4, 4];
        let shape = fold(&node("Shape"), 17, &[Known::Shape(&x)])
            .unwrap()
            .unwrap()
            .remove(0);
        assert_eq!(shape.to_i64(), vec![8, 32, 4, 4]);
        let zero = ConstTensor::i64(vec![], vec![0]);
        let b = fold(&node("Gather"), 17, &[Known::Const(&shape), Known::Const(&zero)])
            .unwrap()
            .unwrap()
            .remove(0);
        assert_eq!((b.dims.clone(), b.to_i64()), (vec![], vec![8]));
        let axes = ConstTensor::i64(vec![1], vec![0]);
        let b1 = fold(&node("Unsqueeze"), 17, &[Known::Const(&b), Known::Const(&axes)])
            .unwrap()
            .unwrap()
            .remove(0);
        let m1 = ConstTensor::i64(vec![1], vec![-1]);
        let cat = fold(&node("Concat"), 17, &[Known::Const(&b1), Known::Const(&m1)])
            .unwrap()
            .unwrap()
            .remove(0);
        assert_eq!(cat.to_i64(), vec![8, -1]);
        let reshape = node("Reshape");
        let a = NodeAttrs::new(&reshape);
        assert_eq!(reshape_dims(&a, &x, &cat.to_i64(), false).unwrap(), vec![8, 512]);
    }

    #[test]
    fn slice_and_broadcast_arith() {
        let t = ConstTensor::i64(vec![2, 3], vec![0, 1, 2, 3, 4, 5]);
        let starts = ConstTensor::i64(vec![1], vec![-1]);
        let ends = ConstTensor::i64(vec![1], vec![i64::MIN]);
        let axes = ConstTensor::i64(vec![1], vec![1]);
        let steps = ConstTensor::i64(vec![1], vec![-1]);
        let inputs = [
            Known::Const(&t),
            Known::Const(&starts),
            Known::Const(&ends),
            Known::Const(&axes),
            Known::Const(&steps),
        ];
        let s = fold(&node("Slice"), 13, &inputs).unwrap().unwrap().remove(0);
        assert_eq!((s.dims.clone(), s.to_i64()), (vec![2, 3], vec![2, 1, 0, 5, 4, 3]));
        let row = ConstTensor::i64(vec![3], vec![10, 20, 30]);
        let sum = fold(&node("Add"), 13, &[Known::Const(&t), Known::Const(&row)])
            .unwrap()
            .unwrap()
            .remove(0);
        assert_eq!(sum.to_i64(), vec![10, 21, 32, 13, 24, 35]);
        let zero = ConstTensor::i64(vec![], vec![0]);
        assert!(fold(&node("Div"), 13, &[Known::Const(&t), Known::Const(&zero)]).is_err());
    }
}
