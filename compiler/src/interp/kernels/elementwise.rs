//! Elementwise and layout kernels: ReLU/clip with their masks, masking, additions, bias,
//! reductions over axes, concatenation and slicing, softmax.

use super::{nc_rest, tensor, zeros};
use crate::ir::TensorData;

/// Applies `f` to every element.
pub fn map(x: &TensorData, f: impl Fn(f32) -> f32) -> TensorData {
    tensor(&x.shape, x.data.iter().map(|&v| f(v)).collect())
}

/// `(clamp(x, lo, hi), mask)` with mask 1 where `lo < x < hi` (ReLU: `lo = 0, hi = ∞`).
pub fn clip(x: &TensorData, lo: f32, hi: f32) -> (TensorData, TensorData) {
    (
        map(x, |v| v.max(lo).min(hi)),
        map(x, |v| f32::from(v > lo && v < hi)),
    )
}

/// `x` where `mask` is non-zero, else 0.
pub fn apply_mask(x: &TensorData, mask: &TensorData) -> TensorData {
    tensor(
        &x.shape,
        x.data
            .iter()
            .zip(&mask.data)
            .map(|(&v, &m)| if m != 0.0 { v } else { 0.0 })
            .collect(),
    )
}

/// Numpy-broadcasting `a + b`.
pub fn add(a: &TensorData, b: &TensorData, shape: &[usize]) -> TensorData {
    let mut out = zeros(shape);
    let (ia, ib) = (broadcast_index(&a.shape, shape), broadcast_index(&b.shape, shape));
    for (i, o) in out.data.iter_mut().enumerate() {
        *o = a.data[ia(i)] + b.data[ib(i)];
    }
    out
}

/// Maps a flat index of `shape` to the flat index of a tensor of `from` broadcast to it.
pub fn broadcast_index(from: &[usize], shape: &[usize]) -> impl Fn(usize) -> usize {
    let r = shape.len();
    let padded: Vec<usize> = std::iter::repeat_n(1, r - from.len())
        .chain(from.iter().copied())
        .collect();
    let shape = shape.to_vec();
    move |mut i| {
        let (mut out, mut stride) = (0, 1);
        for d in (0..r).rev() {
            let idx = i % shape[d];
            i /= shape[d];
            if padded[d] != 1 {
                out += idx * stride;
            }
            stride *= padded[d];
        }
        out
    }
}

/// `y[n, c, ...] = x[n, c, ...] + b[c]`.
pub fn bias_add(x: &TensorData, b: &TensorData) -> TensorData {
    let (n, c, hw) = nc_rest(&x.shape);
    let mut y = x.clone();
    for i in 0..n * c * hw {
        y.data[i] += b.data[(i / hw) % c];
    }
    y
}

/// `db[c] = Σ_{n, ...} dy[n, c, ...]`.
pub fn bias_grad(dy: &TensorData) -> TensorData {
    let (n, c, hw) = nc_rest(&dy.shape);
    let mut acc = vec![0f64; c];
    for i in 0..n * c * hw {
        acc[(i / hw) % c] += dy.data[i] as f64;
    }
    tensor(&[c], acc.into_iter().map(|v| v as f32).collect())
}

/// The shape with the reduced `axes` set to 1 (keepdims form).
fn kept(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect()
}

/// Mean over `axes`, result of shape `out_shape` (with or without the kept dimensions).
pub fn reduce_mean(x: &TensorData, axes: &[usize], out_shape: &[usize]) -> TensorData {
    let k = kept(&x.shape, axes);
    let count: usize = axes.iter().map(|&a| x.shape[a]).product();
    let idx = broadcast_index(&k, &x.shape);
    let mut acc = vec![0f64; k.iter().product()];
    for (i, &v) in x.data.iter().enumerate() {
        acc[idx(i)] += v as f64;
    }
    tensor(
        out_shape,
        acc.into_iter().map(|v| (v / count as f64) as f32).collect(),
    )
}

/// Gradient of [`reduce_mean`]: `dx = dy / count` broadcast back to `x_shape`.
pub fn reduce_mean_bwd(dy: &TensorData, axes: &[usize], x_shape: &[usize]) -> TensorData {
    let count: usize = axes.iter().map(|&a| x_shape[a]).product();
    let idx = broadcast_index(&kept(x_shape, axes), x_shape);
    tensor(
        x_shape,
        (0..x_shape.iter().product())
            .map(|i| dy.data[idx(i)] / count as f32)
            .collect(),
    )
}

/// `(outer, axis length, inner)` sizes of `shape` around `axis`.
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

/// Concatenation along `axis`.
pub fn concat(xs: &[&TensorData], axis: usize) -> TensorData {
    let mut shape = xs[0].shape.clone();
    shape[axis] = xs.iter().map(|x| x.shape[axis]).sum();
    let (outer, total, inner) = around(&shape, axis);
    let mut out = zeros(&shape);
    let mut off = 0;
    for x in xs {
        let len = x.shape[axis];
        for o in 0..outer {
            let src = &x.data[o * len * inner..(o + 1) * len * inner];
            out.data[(o * total + off) * inner..(o * total + off + len) * inner].copy_from_slice(src);
        }
        off += len;
    }
    out
}

/// Elements `start..start + len` along `axis`.
pub fn slice(x: &TensorData, axis: usize, start: usize, len: usize) -> TensorData {
    let (outer, total, inner) = around(&x.shape, axis);
    let mut shape = x.shape.clone();
    shape[axis] = len;
    let mut data = Vec::with_capacity(outer * len * inner);
    for o in 0..outer {
        data.extend_from_slice(&x.data[(o * total + start) * inner..(o * total + start + len) * inner]);
    }
    tensor(&shape, data)
}

/// Softmax along `axis` (max-subtracted).
pub fn softmax(x: &TensorData, axis: usize) -> TensorData {
    let (outer, len, inner) = around(&x.shape, axis);
    let mut y = x.clone();
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * len + j) * inner + i;
            let mx = (0..len).map(|j| x.data[at(j)]).fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = (0..len).map(|j| ((x.data[at(j)] - mx) as f64).exp()).sum();
            for j in 0..len {
                y.data[at(j)] = (((x.data[at(j)] - mx) as f64).exp() / sum) as f32;
            }
        }
    }
    y
}
