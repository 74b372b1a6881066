//! The `b` operand of the conv kernels with the forms they derive from it, kept for reuse.

use super::bp::{forward_weights, transposed_weights, ForwardCsr};
use super::{check_len, invalid, sparse_rows, ConvShape, Result};
use crate::kernels::gemm::{Csr, MatRef};
use std::sync::OnceLock;

/// The `b` operand of a conv kernel — the weights in FF and BP (after any weight mask), the
/// output gradient in WG — with the forms the kernels derive from it (the sparse weights' CSRs,
/// the output gradient with its images side by side), each built on first use and kept: calls
/// that share the operand (the image tiles of a layer reuse an output-channel tile's weights)
/// build them once. The forms depend on the conv shape; an operand serves one shape (another
/// shape is an error).
#[derive(Debug, Default)]
pub struct OperandB {
    values: Vec<f32>,
    ff: OnceLock<Shaped<Vec<Option<Csr>>>>,
    bp: OnceLock<Shaped<BpWeights>>,
    side_by_side: OnceLock<Shaped<Vec<Vec<f32>>>>,
}

/// A derived form and the shape it was derived for.
#[derive(Debug)]
struct Shaped<T> {
    shape: ConvShape,
    form: T,
}

/// How BP multiplies the weights (see [`super::bp`]).
#[derive(Debug)]
pub(super) enum BpWeights {
    /// Every group's `W'_g` in CSR: the forward-convolution formulation.
    Forward(Vec<ForwardCsr>),
    /// Every group's `W_gᵀ` in CSR: col2im with the images side by side.
    Col2im(Vec<Csr>),
    /// Some group too dense for the sparse kernel: col2im image by image, with every group's
    /// `W_gᵀ` in CSR where it is sparse enough.
    Dense(Vec<Option<Csr>>),
}

impl From<Vec<f32>> for OperandB {
    fn from(values: Vec<f32>) -> Self {
        OperandB {
            values,
            ..Default::default()
        }
    }
}

impl From<&[f32]> for OperandB {
    fn from(values: &[f32]) -> Self {
        Self::from(values.to_vec())
    }
}

impl OperandB {
    /// The values.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The form `init` derives for `shape`, from `cell` or built now.
    fn form<'a, T>(
        &'a self,
        cell: &'a OnceLock<Shaped<T>>,
        shape: &ConvShape,
        init: impl FnOnce(&[f32]) -> T,
    ) -> Result<&'a T> {
        let s = cell.get_or_init(|| Shaped {
            shape: *shape,
            form: init(&self.values),
        });
        if s.shape != *shape {
            return Err(invalid(
                "conv operand b",
                "its forms were derived for another conv shape",
            ));
        }
        Ok(&s.form)
    }

    /// As FF weights: every group's `W_g` (Kg × J) in CSR if it is sparse enough for
    /// [`crate::kernels::gemm::spmm`], else `None`.
    pub(super) fn ff(&self, shape: &ConvShape) -> Result<&[Option<Csr>]> {
        check_len("conv weights", &self.values, shape.weight_len())?;
        let (kg, j) = (shape.kg(), shape.j());
        self.form(&self.ff, shape, |w| {
            w.chunks_exact(kg * j)
                .map(|wg| sparse_rows(MatRef::row_major(wg, kg, j).expect("length checked")))
                .collect()
        })
        .map(Vec::as_slice)
    }

    /// As BP weights: the formulation BP takes and its CSRs.
    pub(super) fn bp(&self, shape: &ConvShape) -> Result<&BpWeights> {
        check_len("conv weights", &self.values, shape.weight_len())?;
        self.form(&self.bp, shape, |w| {
            if let Some(csrs) = forward_weights(shape, w) {
                return BpWeights::Forward(csrs);
            }
            let groups = transposed_weights(shape, w);
            match groups.iter().all(Option::is_some) {
                true => BpWeights::Col2im(groups.into_iter().flatten().collect()),
                false => BpWeights::Dense(groups),
            }
        })
    }

    /// As WG's output gradient: group `g` with the images side by side (Kg × N·P).
    pub(super) fn side_by_side(&self, shape: &ConvShape, g: usize) -> Result<&[f32]> {
        check_len("conv output gradient", &self.values, shape.output_len())?;
        let (kg, p) = (shape.kg(), shape.p());
        if shape.n == 1 {
            return Ok(&self.values[g * kg * p..][..kg * p]);
        }
        let groups = self.form(&self.side_by_side, shape, |dy| {
            (0..shape.groups)
                .map(|g| super::dy_side_by_side(shape, dy, g).into_owned())
                .collect()
        })?;
        Ok(&groups[g])
    }
}
