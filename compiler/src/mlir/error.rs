//! Errors of the MLIR bridge.

use crate::text::TextError;

/// Why a conversion between our IR and MLIR, or an MLIR pass pipeline, failed.
///
/// `diagnostics` fields hold MLIR's own diagnostics (`location: message`, one per line).
#[derive(Debug, thiserror::Error)]
pub enum MlirError {
    /// The text contains a NUL byte, which MLIR's C API cannot take.
    #[error("module text contains a NUL byte at offset {0}")]
    NulByte(usize),
    /// MLIR's parser rejected the text (this includes MLIR's verification after parsing).
    #[error("MLIR could not parse the module:\n{diagnostics}")]
    Parse {
        /// MLIR's diagnostics.
        diagnostics: String,
    },
    /// MLIR's verifier rejected the module.
    #[error("MLIR's verifier rejected the module:\n{diagnostics}")]
    Verify {
        /// MLIR's diagnostics.
        diagnostics: String,
    },
    /// MLIR's printer failed (its output was not UTF-8).
    #[error("MLIR's printer failed: {0}")]
    Print(String),
    /// Our parser could not read the generic text MLIR printed.
    #[error("cannot import MLIR's output into our IR: {0}")]
    Import(#[from] TextError),
    /// The textual pass pipeline is malformed or names an unknown pass.
    #[error("bad MLIR pass pipeline '{pipeline}': {message}")]
    Pipeline {
        /// The pipeline as given.
        pipeline: String,
        /// MLIR's explanation.
        message: String,
    },
    /// A pass of the pipeline failed.
    #[error("MLIR pass pipeline '{pipeline}' failed:\n{diagnostics}")]
    PassFailed {
        /// The pipeline as given.
        pipeline: String,
        /// MLIR's diagnostics.
        diagnostics: String,
    },
}
