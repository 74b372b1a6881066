//! fp32 reference kernels shared by the `tg` and `sdt` interpreters: plain loops, row-major
//! tensors ([`TensorData`]), no tiling. They define the numbers every later stage must reproduce.

pub mod bn;
pub mod conv;
pub mod elementwise;
pub mod matmul;
pub mod pool;
pub mod train;

use crate::ir::TensorData;

/// A zero tensor of `shape`.
pub fn zeros(shape: &[usize]) -> TensorData {
    TensorData {
        shape: shape.to_vec(),
        data: vec![0.0; shape.iter().product()],
    }
}

/// A tensor of `shape` with `data` (the caller guarantees the element count).
pub fn tensor(shape: &[usize], data: Vec<f32>) -> TensorData {
    debug_assert_eq!(shape.iter().product::<usize>(), data.len());
    TensorData {
        shape: shape.to_vec(),
        data,
    }
}

/// Splits a shape of rank >= 2 into `(N, C, product of the rest)`.
pub fn nc_rest(shape: &[usize]) -> (usize, usize, usize) {
    (
        shape[0],
        shape.get(1).copied().unwrap_or(1),
        shape.iter().skip(2).product(),
    )
}
