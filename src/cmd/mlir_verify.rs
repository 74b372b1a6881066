//! `--mlir-verify`, shared by `trainer compile` and `trainer opt`: checks the module a command
//! outputs with real MLIR 22 (parser and verifier, unregistered dialects allowed).
//!
//! The flag exists in every build; a `trainer` built without the `mlir` cargo feature rejects it
//! with an error saying so, instead of silently skipping the check.

use trainer_compiler::ir::Module;

/// Verifies `m` with MLIR when `enabled`.
#[cfg(feature = "mlir")]
pub fn check(m: &Module, enabled: bool) -> anyhow::Result<()> {
    if enabled {
        trainer_compiler::mlir::verify(m)?;
    }
    Ok(())
}

/// Verifies `m` with MLIR when `enabled`: always an error in a build without MLIR.
#[cfg(not(feature = "mlir"))]
pub fn check(_m: &Module, enabled: bool) -> anyhow::Result<()> {
    if enabled {
        anyhow::bail!(
            "--mlir-verify needs MLIR, but this `trainer` was built without it \
             (rebuild with `cargo build --features mlir`)"
        );
    }
    Ok(())
}
