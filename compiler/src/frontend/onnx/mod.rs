//! ONNX frontend: protobuf decoding, initializers and external data, import into the `tg` dialect.

pub mod attrs;
pub mod error;
pub mod fold;
pub mod import;
pub mod load;
pub mod proto;
pub mod tensor;

pub use error::OnnxError;
pub use import::{import, ImportOptions};
pub use load::OnnxModel;
