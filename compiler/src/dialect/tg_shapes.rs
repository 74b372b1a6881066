//! Shape rules of the `tg` dialect: result types of every `tg` op from its operand types and
//! attributes. The frontends use them to type the ops they build; the verifier and the
//! shape-inference pass use them to check and recompute result types. Shapes must be static.
//!
//! Attribute conventions (ONNX semantics, names in snake_case):
//! - `tg.conv(x, w[, b])`: `strides`, `pads` = `[top, left, bottom, right]`, `dilations`, `group`.
//! - `tg.gemm(a, b[, c])`: `trans_a`, `trans_b` (bool), `alpha`, `beta`; `c` broadcasts to `M×N`.
//! - `tg.matmul(a, b)`: batched matrix product with broadcasting of leading dimensions.
//! - `tg.batch_norm(x, scale, bias, mean, var)`: `epsilon`, `momentum` (ONNX convention: weight
//!   of the old running value), `training` (bool). Training form has 3 results (`y`, new running
//!   mean, new running variance), eval form 1.
//! - `tg.max_pool(x)` / `tg.average_pool(x)`: `kernel_shape`, `strides`, `pads`, `ceil_mode`, and
//!   `dilations` (max) / `count_include_pad` (average).
//! - `tg.global_average_pool(x)`, `tg.relu`, `tg.identity`, `tg.add(a, b)` (broadcasting).
//! - `tg.reduce_mean(x)`: `axes` (non-negative), `keepdims` (bool).
//! - `tg.flatten(x)`: `axis`; `tg.reshape(x)`: `shape` (fully resolved, no `0`/`-1`).
//! - `tg.softmax(x)`: `axis`; `tg.concat(xs...)`: `axis`; `tg.clip(x)`: `min`, `max` (floats);
//!   `tg.dropout(x)`: `ratio` (identity in this toolchain).

use crate::ir::{Attribute, Attrs, TensorType, Type};

/// Every `tg` op that [`infer`] types (`tg.graph`, `tg.param` and `tg.return` are structural).
pub const OPS: &[&str] = &[
    "tg.conv",
    "tg.gemm",
    "tg.matmul",
    "tg.batch_norm",
    "tg.relu",
    "tg.identity",
    "tg.dropout",
    "tg.clip",
    "tg.softmax",
    "tg.add",
    "tg.max_pool",
    "tg.average_pool",
    "tg.global_average_pool",
    "tg.reduce_mean",
    "tg.flatten",
    "tg.reshape",
    "tg.concat",
];

/// Result types of `op` applied to operands of `operands` types with `attrs`; the error says what
/// is inconsistent.
pub fn infer(op: &str, operands: &[Type], attrs: &Attrs) -> Result<Vec<Type>, String> {
    let c = Ctx { attrs };
    let ts = operands
        .iter()
        .enumerate()
        .map(|(i, t)| match t.as_tensor() {
            Some(t) if t.shape.iter().all(|&d| d >= 0) => Ok(t),
            _ => Err(format!("operand {i} must be a tensor of static shape, found {t}")),
        })
        .collect::<Result<Vec<&TensorType>, String>>()?;
    let arity = |lo: usize, hi: usize| {
        if (lo..=hi).contains(&ts.len()) {
            Ok(())
        } else if lo == hi {
            Err(format!("expected {lo} operand(s), found {}", ts.len()))
        } else {
            Err(format!("expected {lo} to {hi} operands, found {}", ts.len()))
        }
    };
    let same = |t: &TensorType, shape: Vec<i64>| Type::tensor(shape, t.elem);
    match op {
        "tg.relu" | "tg.identity" | "tg.dropout" | "tg.clip" => {
            arity(1, 1)?;
            if op == "tg.clip" && c.float("min")? > c.float("max")? {
                return Err("`min` is greater than `max`".into());
            }
            Ok(vec![ts[0].clone().into()])
        }
        "tg.softmax" => {
            arity(1, 1)?;
            c.axis("axis", ts[0].rank())?;
            Ok(vec![ts[0].clone().into()])
        }
        "tg.add" => {
            arity(2, 2)?;
            Ok(vec![same(ts[0], broadcast(&ts[0].shape, &ts[1].shape)?)])
        }
        "tg.conv" => {
            arity(2, 3)?;
            let (x, w) = (rank(ts[0], 4, "input")?, rank(ts[1], 4, "weight")?);
            let group = c.int("group")?;
            if group < 1 || x[1] % group != 0 || w[0] % group != 0 || w[1] * group != x[1] {
                return Err(format!(
                    "input channels {} and weight {:?} do not match group {group}",
                    x[1], w
                ));
            }
            if let Some(b) = ts.get(2) {
                if b.shape != [w[0]] {
                    return Err(format!("bias must be [{}], found {:?}", w[0], b.shape));
                }
            }
            let hw = window(&c, &x[2..], &w[2..], c.ints_n("dilations", 2)?, false)?;
            Ok(vec![same(ts[0], vec![x[0], w[0], hw[0], hw[1]])])
        }
        "tg.gemm" => {
            arity(2, 3)?;
            let (a, b) = (rank(ts[0], 2, "A")?, rank(ts[1], 2, "B")?);
            let (m, k) = if c.bool("trans_a")? {
                (a[1], a[0])
            } else {
                (a[0], a[1])
            };
            let (k2, n) = if c.bool("trans_b")? {
                (b[1], b[0])
            } else {
                (b[0], b[1])
            };
            if k != k2 {
                return Err(format!("inner dimensions differ: A {a:?}, B {b:?}"));
            }
            if let Some(cc) = ts.get(2) {
                if broadcast(&cc.shape, &[m, n])? != [m, n] {
                    return Err(format!("C {:?} does not broadcast to [{m}, {n}]", cc.shape));
                }
            }
            c.float("alpha")?;
            c.float("beta")?;
            Ok(vec![same(ts[0], vec![m, n])])
        }
        "tg.matmul" => {
            arity(2, 2)?;
            let (a, b) = (&ts[0].shape, &ts[1].shape);
            if a.len() < 2 || b.len() < 2 {
                return Err(format!("operands must have rank >= 2, found {a:?} and {b:?}"));
            }
            let (ra, rb) = (a.len(), b.len());
            if a[ra - 1] != b[rb - 2] {
                return Err(format!("inner dimensions differ: {a:?} x {b:?}"));
            }
            let mut shape = broadcast(&a[..ra - 2], &b[..rb - 2])?;
            shape.extend([a[ra - 2], b[rb - 1]]);
            Ok(vec![same(ts[0], shape)])
        }
        "tg.batch_norm" => {
            arity(5, 5)?;
            let x = &ts[0].shape;
            if x.len() < 2 {
                return Err(format!("input must have rank >= 2, found {x:?}"));
            }
            for (i, t) in ts.iter().enumerate().skip(1) {
                if t.shape != [x[1]] {
                    return Err(format!(
                        "operand {i} must be [{}] (channels), found {:?}",
                        x[1], t.shape
                    ));
                }
            }
            c.float("epsilon")?;
            c.float("momentum")?;
            let y: Type = ts[0].clone().into();
            Ok(if c.bool("training")? {
                vec![y, ts[3].clone().into(), ts[4].clone().into()]
            } else {
                vec![y]
            })
        }
        "tg.max_pool" | "tg.average_pool" => {
            arity(1, 1)?;
            let x = rank(ts[0], 4, "input")?;
            let kernel = c.ints_n("kernel_shape", 2)?;
            let dilations = if op == "tg.max_pool" {
                c.ints_n("dilations", 2)?
            } else {
                vec![1, 1]
            };
            let hw = window(&c, &x[2..], &kernel, dilations, c.bool("ceil_mode")?)?;
            Ok(vec![same(ts[0], vec![x[0], x[1], hw[0], hw[1]])])
        }
        "tg.global_average_pool" => {
            arity(1, 1)?;
            let x = rank(ts[0], 4, "input")?;
            Ok(vec![same(ts[0], vec![x[0], x[1], 1, 1])])
        }
        "tg.reduce_mean" => {
            arity(1, 1)?;
            let x = &ts[0].shape;
            let axes = c.ints("axes")?;
            for &a in &axes {
                if a < 0 || a as usize >= x.len() {
                    return Err(format!("axis {a} out of range for rank {}", x.len()));
                }
            }
            let keep = c.bool("keepdims")?;
            let shape = (0..x.len())
                .filter_map(|i| match (axes.contains(&(i as i64)), keep) {
                    (false, _) => Some(x[i]),
                    (true, true) => Some(1),
                    (true, false) => None,
                })
                .collect();
            Ok(vec![same(ts[0], shape)])
        }
        "tg.flatten" => {
            arity(1, 1)?;
            let x = &ts[0].shape;
            let axis = c.int("axis")?;
            if axis < 0 || axis as usize > x.len() {
                return Err(format!("axis {axis} out of range for rank {}", x.len()));
            }
            let (outer, inner) = x.split_at(axis as usize);
            Ok(vec![same(
                ts[0],
                vec![outer.iter().product(), inner.iter().product()],
            )])
        }
        "tg.reshape" => {
            arity(1, 1)?;
            let shape = c.ints("shape")?;
            if shape.iter().any(|&d| d < 0)
                || shape.iter().product::<i64>() != ts[0].shape.iter().product::<i64>()
            {
                return Err(format!("cannot reshape {:?} to {shape:?}", ts[0].shape));
            }
            Ok(vec![same(ts[0], shape)])
        }
        "tg.concat" => {
            if ts.is_empty() {
                return Err("expected at least one operand".into());
            }
            let first = &ts[0].shape;
            let axis = c.axis("axis", first.len())?;
            let mut shape = first.clone();
            shape[axis] = 0;
            for t in &ts {
                let ok = t.elem == ts[0].elem
                    && t.rank() == first.len()
                    && (0..first.len()).all(|i| i == axis || t.shape[i] == first[i]);
                if !ok {
                    return Err(format!(
                        "cannot concatenate {} and {} along axis {axis}",
                        ts[0], t
                    ));
                }
                shape[axis] += t.shape[axis];
            }
            Ok(vec![same(ts[0], shape)])
        }
        _ => Err(format!("`{op}` has no shape rule")),
    }
}

/// Attribute access with errors naming the attribute.
struct Ctx<'a> {
    attrs: &'a Attrs,
}

impl Ctx<'_> {
    fn get(&self, name: &str) -> Result<&Attribute, String> {
        self.attrs
            .get(name)
            .ok_or_else(|| format!("missing attribute `{name}`"))
    }

    fn int(&self, name: &str) -> Result<i64, String> {
        self.get(name)?
            .as_int()
            .ok_or_else(|| format!("attribute `{name}` must be an integer"))
    }

    fn float(&self, name: &str) -> Result<f64, String> {
        self.get(name)?
            .as_f64()
            .ok_or_else(|| format!("attribute `{name}` must be a number"))
    }

    fn bool(&self, name: &str) -> Result<bool, String> {
        self.get(name)?
            .as_bool()
            .ok_or_else(|| format!("attribute `{name}` must be a boolean"))
    }

    fn ints(&self, name: &str) -> Result<Vec<i64>, String> {
        self.get(name)?
            .as_ints()
            .ok_or_else(|| format!("attribute `{name}` must be an integer array"))
    }

    /// An integer array of exactly `n` entries.
    fn ints_n(&self, name: &str, n: usize) -> Result<Vec<i64>, String> {
        let v = self.ints(name)?;
        if v.len() == n {
            Ok(v)
        } else {
            Err(format!("attribute `{name}` must have {n} entries, found {v:?}"))
        }
    }

    /// A non-negative axis below `rank`.
    fn axis(&self, name: &str, rank: usize) -> Result<usize, String> {
        let a = self.int(name)?;
        usize::try_from(a)
            .ok()
            .filter(|&a| a < rank)
            .ok_or_else(|| format!("`{name}` = {a} out of range for rank {rank}"))
    }
}

/// The shape of `t`, checked to have rank `r`.
fn rank<'t>(t: &'t TensorType, r: usize, what: &str) -> Result<&'t [i64], String> {
    if t.rank() == r {
        Ok(&t.shape)
    } else {
        Err(format!("{what} must have rank {r}, found {t}"))
    }
}

/// Spatial output sizes of a sliding window (conv or pool) over `input` with `kernel`, using the
/// `strides` and `pads` attributes.
fn window(
    c: &Ctx<'_>,
    input: &[i64],
    kernel: &[i64],
    dilations: Vec<i64>,
    ceil: bool,
) -> Result<Vec<i64>, String> {
    let n = input.len();
    let strides = c.ints_n("strides", n)?;
    let pads = c.ints_n("pads", 2 * n)?;
    if strides.iter().chain(&dilations).chain(kernel).any(|&v| v < 1) || pads.iter().any(|&p| p < 0) {
        return Err(format!(
            "kernel {kernel:?}, strides {strides:?}, dilations {dilations:?} must be positive and pads {pads:?} non-negative"
        ));
    }
    (0..n)
        .map(|i| {
            let span = input[i] + pads[i] + pads[i + n] - ((kernel[i] - 1) * dilations[i] + 1);
            if span < 0 {
                return Err(format!(
                    "window {kernel:?} is larger than the padded input {input:?}"
                ));
            }
            let mut out = if ceil {
                (span + strides[i] - 1) / strides[i] + 1
            } else {
                span / strides[i] + 1
            };
            // With ceil_mode, the last window must start inside the input or the leading padding.
            if ceil && (out - 1) * strides[i] >= input[i] + pads[i] {
                out -= 1;
            }
            Ok(out)
        })
        .collect()
}

/// Numpy-style broadcast of two shapes.
pub fn broadcast(a: &[i64], b: &[i64]) -> Result<Vec<i64>, String> {
    let r = a.len().max(b.len());
    let at = |s: &[i64], i: usize| if i + s.len() >= r { s[i + s.len() - r] } else { 1 };
    (0..r)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ElemType;

    fn t(shape: &[i64]) -> Type {
        Type::tensor(shape.to_vec(), ElemType::F32)
    }

    fn attrs(items: &[(&str, Attribute)]) -> Attrs {
        items.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn conv_pool_and_gemm_shapes() {
        let conv = attrs(&[
            ("strides", Attribute::ints(&[2, 2])),
            ("pads", Attribute::ints(&[3, 3, 3, 3])),
            ("dilations", Attribute::ints(&[1, 1])),
            ("group", Attribute::Int(1)),
        ]);
        let out = infer("tg.conv", &[t(&[1, 3, 224, 224]), t(&[64, 3, 7, 7])], &conv).unwrap();
        assert_eq!(out, vec![t(&[1, 64, 112, 112])]);
        let dw = attrs(&[
            ("strides", Attribute::ints(&[1, 1])),
            ("pads", Attribute::ints(&[1, 1, 1, 1])),
            ("dilations", Attribute::ints(&[1, 1])),
            ("group", Attribute::Int(32)),
        ]);
        assert_eq!(
            infer("tg.conv", &[t(&[4, 32, 8, 8]), t(&[32, 1, 3, 3])], &dw).unwrap(),
            vec![t(&[4, 32, 8, 8])]
        );
        assert!(infer("tg.conv", &[t(&[4, 32, 8, 8]), t(&[32, 2, 3, 3])], &dw).is_err());
        let pool = attrs(&[
            ("kernel_shape", Attribute::ints(&[3, 3])),
            ("strides", Attribute::ints(&[2, 2])),
            ("pads", Attribute::ints(&[1, 1, 1, 1])),
            ("dilations", Attribute::ints(&[1, 1])),
            ("ceil_mode", Attribute::Bool(false)),
        ]);
        assert_eq!(
            infer("tg.max_pool", &[t(&[1, 64, 112, 112])], &pool).unwrap(),
            vec![t(&[1, 64, 56, 56])]
        );
        let gemm = attrs(&[
            ("trans_a", Attribute::Bool(false)),
            ("trans_b", Attribute::Bool(true)),
            ("alpha", Attribute::Float(1.0)),
            ("beta", Attribute::Float(1.0)),
        ]);
        assert_eq!(
            infer("tg.gemm", &[t(&[8, 512]), t(&[10, 512]), t(&[10])], &gemm).unwrap(),
            vec![t(&[8, 10])]
        );
        let e = infer("tg.gemm", &[t(&[8, 512]), t(&[512, 10])], &gemm).unwrap_err();
        assert!(e.contains("inner dimensions"), "{e}");
    }

    #[test]
    fn ceil_mode_drops_windows_starting_in_padding() {
        let pool = attrs(&[
            ("kernel_shape", Attribute::ints(&[2, 2])),
            ("strides", Attribute::ints(&[2, 2])),
            ("pads", Attribute::ints(&[0, 0, 0, 0])),
            ("ceil_mode", Attribute::Bool(true)),
        ]);
        assert_eq!(
            infer("tg.average_pool", &[t(&[1, 1, 5, 5])], &pool).unwrap(),
            vec![t(&[1, 1, 3, 3])]
        );
    }

    #[test]
    fn batch_norm_forms_and_errors() {
        let mut bn = attrs(&[
            ("epsilon", Attribute::Float(1e-5)),
            ("momentum", Attribute::Float(0.9)),
            ("training", Attribute::Bool(true)),
        ]);
        let ops = [t(&[2, 3, 4, 4]), t(&[3]), t(&[3]), t(&[3]), t(&[3])];
        assert_eq!(infer("tg.batch_norm", &ops, &bn).unwrap().len(), 3);
        bn.insert("training".into(), Attribute::Bool(false));
        assert_eq!(infer("tg.batch_norm", &ops, &bn).unwrap().len(), 1);
        assert!(infer("tg.batch_norm", &ops[..4], &bn)
            .unwrap_err()
            .contains("expected 5"));
        assert!(infer("tg.relu", &[Type::tensor([-1, 3], ElemType::F32)], &Attrs::new()).is_err());
        assert!(infer("tg.bogus", &[], &Attrs::new())
            .unwrap_err()
            .contains("no shape rule"));
    }
}
