//! The Trainer compiler: MLIR-style IR, frontends, training-program passes, lowering and codegen.

pub mod ir;
pub mod text;
pub mod frontend;
pub mod dialect;
pub mod autodiff;
pub mod interp;
pub mod sdt;
pub mod lower;
pub mod codegen;
