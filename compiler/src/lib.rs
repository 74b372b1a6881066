//! The Trainer compiler: MLIR-style IR, frontends, training-program passes, lowering and codegen.

pub mod analysis;
pub mod ir;
pub mod pass;
pub mod text;
pub mod verify;
pub mod frontend;
pub mod dialect;
pub mod autodiff;
pub mod interp;
pub mod sdt;
pub mod lower;
pub mod codegen;
#[cfg(feature = "mlir")]
pub mod mlir;
