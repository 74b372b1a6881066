//! The Trainer compiler: MLIR-style IR, frontends, training-program passes, lowering and codegen.

pub mod analysis;
pub mod autodiff;
pub mod codegen;
pub mod dialect;
pub mod frontend;
pub mod interp;
pub mod ir;
pub mod lower;
#[cfg(feature = "mlir")]
pub mod mlir;
pub mod pass;
pub mod sdt;
pub mod text;
pub mod verify;
