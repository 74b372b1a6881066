//! Interop with real MLIR 22 through `melior` (cargo feature `mlir`).
//!
//! The bridge is textual, because our generic printer emits exactly MLIR's generic operation
//! syntax:
//!
//! * **export** — our module printed in generic form with locations, parsed by MLIR with
//!   unregistered dialects allowed (`tg`, `sdt`, `trn` ops stay unregistered operations; tensors
//!   are builtin `tensor<...>` types, `!sdt.mask<...>`/`!trn.buffer<...>` opaque dialect types)
//!   and checked by MLIR's verifier;
//! * **import** — MLIR's printer in generic form with inline locations, read by our parser;
//! * **passes** — any textual MLIR pipeline (`canonicalize,cse`, `symbol-dce`, ...) on an exported
//!   module, imported back.
//!
//! Our IR → MLIR → our IR gives an identical module (same printed text, same locations).

mod error;
mod session;
#[cfg(test)]
mod tests;

pub use error::MlirError;
pub use session::{Mlir, MlirModule};

use crate::ir::Module;

/// Checks a module with MLIR's parser and verifier.
pub fn verify(m: &Module) -> Result<(), MlirError> {
    Mlir::new().export(m).map(drop)
}

/// Checks MLIR text (generic form, or any form MLIR's own tools print) with MLIR's parser and
/// verifier.
pub fn verify_text(text: &str) -> Result<(), MlirError> {
    Mlir::new().parse(text).map(drop)
}

/// Our IR → MLIR → our IR; the weights are carried over.
pub fn round_trip(m: &Module) -> Result<Module, MlirError> {
    optimize(m, "")
}

/// Exports `m`, runs the MLIR pass pipeline `pipeline` (e.g. `"canonicalize,cse"`; empty for
/// none) and imports the result; the weights of `m` are carried over.
pub fn optimize(m: &Module, pipeline: &str) -> Result<Module, MlirError> {
    let mlir = Mlir::new();
    let mut module = mlir.export(m)?;
    if !pipeline.is_empty() {
        mlir.run_pipeline(&mut module, pipeline)?;
    }
    let mut out = mlir.import(&module)?;
    out.weights = m.weights.clone();
    Ok(out)
}
