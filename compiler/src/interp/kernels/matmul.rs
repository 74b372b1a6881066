//! Matrix products for fully connected layers: `Y = A·B` with `B` as `[K, N]`, or `[N, K]` when
//! transposed (PyTorch `Linear` layout), with the input- and weight-gradient forms.

use super::zeros;
use crate::ir::TensorData;

/// `B[k, j]` of a weight stored as `[K, N]`, or as `[N, K]` when `tb`.
fn b_index(tb: bool, kdim: usize, ndim: usize, k: usize, j: usize) -> usize {
    if tb {
        j * kdim + k
    } else {
        k * ndim + j
    }
}

/// `(K, N)` of the weight `b`.
fn kn(b: &TensorData, tb: bool) -> (usize, usize) {
    if tb {
        (b.shape[1], b.shape[0])
    } else {
        (b.shape[0], b.shape[1])
    }
}

/// Forward: `Y[M, N] = A[M, K]·B`.
pub fn ff(a: &TensorData, b: &TensorData, tb: bool) -> TensorData {
    let (m, (kd, nd)) = (a.shape[0], kn(b, tb));
    let mut y = zeros(&[m, nd]);
    for i in 0..m {
        for j in 0..nd {
            let mut acc = 0f32;
            for k in 0..kd {
                acc += a.data[i * kd + k] * b.data[b_index(tb, kd, nd, k, j)];
            }
            y.data[i * nd + j] = acc;
        }
    }
    y
}

/// Input gradient: `dA[M, K] = dY[M, N]·Bᵀ`.
pub fn bp(dy: &TensorData, b: &TensorData, tb: bool) -> TensorData {
    let (m, (kd, nd)) = (dy.shape[0], kn(b, tb));
    let mut da = zeros(&[m, kd]);
    for i in 0..m {
        for k in 0..kd {
            let mut acc = 0f32;
            for j in 0..nd {
                acc += dy.data[i * nd + j] * b.data[b_index(tb, kd, nd, k, j)];
            }
            da.data[i * kd + k] = acc;
        }
    }
    da
}

/// Weight gradient `Aᵀ·dY`, in the layout of `B` (`[K, N]`, or `[N, K]` when `tb`).
pub fn wg(a: &TensorData, dy: &TensorData, tb: bool) -> TensorData {
    let (m, kd, nd) = (a.shape[0], a.shape[1], dy.shape[1]);
    let mut db = zeros(&if tb { [nd, kd] } else { [kd, nd] });
    for k in 0..kd {
        for j in 0..nd {
            let mut acc = 0f32;
            for i in 0..m {
                acc += a.data[i * kd + k] * dy.data[i * nd + j];
            }
            db.data[b_index(tb, kd, nd, k, j)] = acc;
        }
    }
    db
}
