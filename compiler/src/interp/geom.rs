//! Window geometry of convolution and pooling ops read from their attributes (same attribute
//! names in `tg` and `sdt`).

use super::kernels::conv::ConvGeom;
use super::kernels::pool::PoolGeom;
use crate::ir::Operation;
use crate::sdt::ops::AttrExt;

/// Exactly `N` non-negative entries of an integer array attribute.
fn arr<const N: usize>(
    op: &Operation,
    name: &str,
    default: Option<[usize; N]>,
) -> Result<[usize; N], String> {
    if op.attr(name).is_none() {
        if let Some(d) = default {
            return Ok(d);
        }
    }
    let v = op.usizes_attr(name)?;
    v.try_into()
        .map_err(|v: Vec<usize>| format!("attribute `{name}` must have {N} entries, found {}", v.len()))
}

/// Convolution geometry from input shape `x` `[N, C, H, W]` and weight shape `w` `[K, C/G, R, S]`.
pub fn conv(op: &Operation, x: &[usize], w: &[usize]) -> Result<ConvGeom, String> {
    if x.len() != 4 || w.len() != 4 {
        return Err(format!(
            "convolution needs rank-4 input and weight, found {x:?} and {w:?}"
        ));
    }
    let group = op.int_attr("group").unwrap_or(1).max(1) as usize;
    let g = ConvGeom {
        n: x[0],
        c: x[1],
        h: x[2],
        w: x[3],
        k: w[0],
        r: w[2],
        s: w[3],
        stride: arr(op, "strides", Some([1, 1]))?,
        pads: arr(op, "pads", Some([0; 4]))?,
        dil: arr(op, "dilations", Some([1, 1]))?,
        group,
    };
    let padded = [g.h + g.pads[0] + g.pads[2], g.w + g.pads[1] + g.pads[3]];
    // `w[1]·group == C` makes C a multiple of the group count.
    let ok = (g.k / group) * group == g.k
        && w[1] * group == g.c
        && g.stride.iter().chain(&g.dil).all(|&v| v >= 1)
        && padded[0] > g.dil[0] * (g.r.max(1) - 1)
        && padded[1] > g.dil[1] * (g.s.max(1) - 1)
        && g.r >= 1
        && g.s >= 1;
    if ok {
        Ok(g)
    } else {
        Err(format!(
            "inconsistent convolution: input {x:?}, weight {w:?}, group {group}"
        ))
    }
}

/// Pooling geometry (`kind` is `max` or `avg`) from input shape `x` and output shape `y`.
pub fn pool(op: &Operation, max: bool, x: &[usize], y: &[usize]) -> Result<PoolGeom, String> {
    if x.len() != 4 || y.len() != 4 {
        return Err(format!("pooling needs rank-4 tensors, found {x:?} -> {y:?}"));
    }
    let g = PoolGeom {
        input: [x[0], x[1], x[2], x[3]],
        out: [y[2], y[3]],
        kernel: arr(op, "kernel_shape", None)?,
        stride: arr(op, "strides", Some([1, 1]))?,
        pads: arr(op, "pads", Some([0; 4]))?,
        dil: if max {
            arr(op, "dilations", Some([1, 1]))?
        } else {
            [1, 1]
        },
        count_include_pad: op.flag("count_include_pad"),
    };
    if g.kernel.iter().chain(&g.stride).chain(&g.dil).any(|&v| v == 0) {
        return Err("kernel, strides and dilations must be positive".into());
    }
    Ok(g)
}
