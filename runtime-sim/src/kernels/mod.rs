//! Numeric kernels: the functional semantics of the accelerator's compute on real data.
//!
//! All arithmetic accumulates in f32. Storage precision is applied separately with
//! [`numeric::Format::quantize_slice`] (round-to-nearest-even), so every kernel here works on f32
//! tensors. Compute kernels ([`conv`], [`matmul`]) also return exact effective-work counters
//! ([`density::WorkCounts`]) that the simulator's energy ledger consumes.

pub mod bn;
pub mod conv;
pub mod density;
pub mod eltwise;
pub mod gemm;
pub mod loss;
pub(crate) mod mask;
pub mod matmul;
pub mod numeric;
pub mod optim;
pub mod pool;
pub mod prune;

#[cfg(test)]
mod testutil;

/// Errors raised by kernels on inconsistent arguments (never a panic).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// A buffer does not have the length its shape requires.
    #[error("{what}: expected {expected} elements, got {got}")]
    Length {
        /// Which argument.
        what: &'static str,
        /// Length implied by the shape.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// A shape or parameter is invalid (zero size, indivisible groups, empty output, ...).
    #[error("invalid {what}: {why}")]
    Invalid {
        /// Which parameter.
        what: &'static str,
        /// Why it is rejected.
        why: String,
    },
}

/// Result type of the kernels.
pub type Result<T> = std::result::Result<T, KernelError>;

/// Checks that `buf` has exactly `expected` elements.
pub(crate) fn check_len<T>(what: &'static str, buf: &[T], expected: usize) -> Result<()> {
    if buf.len() == expected {
        Ok(())
    } else {
        Err(KernelError::Length {
            what,
            expected,
            got: buf.len(),
        })
    }
}

/// Builds a [`KernelError::Invalid`].
pub(crate) fn invalid(what: &'static str, why: impl Into<String>) -> KernelError {
    KernelError::Invalid {
        what,
        why: why.into(),
    }
}
