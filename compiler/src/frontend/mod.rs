//! Frontends: ONNX models and the `.tg` graph language, both producing `tg` dialect IR.

pub mod init;
pub mod onnx;
pub mod tensor;
pub mod tg;

pub use tensor::{ConstTensor, TensorValues};
