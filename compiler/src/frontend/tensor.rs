//! Constant tensor values produced by the frontends (weights, folded shape constants).

use crate::ir::TensorData;

/// Element values of a [`ConstTensor`].
#[derive(Clone, Debug, PartialEq)]
pub enum TensorValues {
    /// Floating-point data (f16/f64 sources are widened/narrowed to f32).
    F32(Vec<f32>),
    /// Integer and boolean data.
    I64(Vec<i64>),
}

/// A dense, row-major constant tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstTensor {
    /// Shape, outermost first; empty for a scalar.
    pub dims: Vec<usize>,
    /// Elements; their count is the product of `dims`.
    pub values: TensorValues,
}

impl ConstTensor {
    /// A float tensor.
    pub fn f32(dims: Vec<usize>, values: Vec<f32>) -> Self {
        ConstTensor {
            dims,
            values: TensorValues::F32(values),
        }
    }

    /// An integer tensor.
    pub fn i64(dims: Vec<usize>, values: Vec<i64>) -> Self {
        ConstTensor {
            dims,
            values: TensorValues::I64(values),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.values {
            TensorValues::F32(v) => v.len(),
            TensorValues::I64(v) => v.len(),
        }
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as integers (floats are truncated toward zero), as shape computations need.
    pub fn to_i64(&self) -> Vec<i64> {
        match &self.values {
            TensorValues::F32(v) => v.iter().map(|&x| x as i64).collect(),
            TensorValues::I64(v) => v.clone(),
        }
    }

    /// The elements as floats.
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.values {
            TensorValues::F32(v) => v.clone(),
            TensorValues::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The weight-table form of this constant (f32 data).
    pub fn to_weight(&self) -> TensorData {
        TensorData {
            shape: self.dims.clone(),
            data: self.to_f32(),
        }
    }
}
