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

/// Division by a fixed `d` of numbers below a bound, by a multiplication and a shift.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Divisor {
    d: usize,
    /// `⌈2³²/d⌉`, exact for dividends below `2³²/d`; `None` when the dividends may not be.
    m: Option<u64>,
}

impl Divisor {
    /// Divides by `d > 0` numbers below `below`.
    pub(crate) fn new(d: usize, below: usize) -> Self {
        let exact = (below as u64) <= (1u64 << 32) / d as u64;
        Self {
            d,
            m: exact.then(|| (1u64 << 32).div_ceil(d as u64)),
        }
    }

    /// `(n / d, n % d)`.
    pub(crate) fn div_rem(self, n: usize) -> (usize, usize) {
        let q = match self.m {
            Some(m) => ((n as u64 * m) >> 32) as usize,
            None => n / self.d,
        };
        (q, n - q * self.d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divisor_matches_division() {
        for d in 1..=49 {
            let below = 1 << 16;
            let by = Divisor::new(d, below);
            assert!(by.m.is_some());
            for n in 0..below {
                assert_eq!(by.div_rem(n), (n / d, n % d), "{n} / {d}");
            }
        }
        // The largest exact range, at its end, and a range too large for the multiplication.
        for d in [3, 9, 25, 49] {
            let below = ((1u64 << 32) / d as u64) as usize;
            let by = Divisor::new(d, below);
            for n in below - 2 * d..below {
                assert_eq!(by.div_rem(n), (n / d, n % d), "{n} / {d}");
            }
            let wide = Divisor::new(d, below + 1);
            assert!(wide.m.is_none());
            assert_eq!(wide.div_rem(below), (below / d, below % d));
        }
    }
}
