//! Errors of the ONNX frontend.

use std::path::PathBuf;

/// Everything that can go wrong while loading or importing an ONNX model.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The model file (or an external-data file) could not be read.
    #[error("cannot read `{}`: {error}", path.display())]
    Io {
        /// File that failed.
        path: PathBuf,
        /// Underlying error.
        error: std::io::Error,
    },
    /// The bytes are not a valid `ModelProto` (truncated or malformed protobuf).
    #[error("malformed ONNX protobuf: {0}")]
    Decode(prost::DecodeError),
    /// The model has no graph.
    #[error("the ONNX model has no graph")]
    NoGraph,
    /// The model imports no default-domain opset, or one outside the supported range.
    #[error("{0}")]
    Opset(String),
    /// A tensor (initializer or constant) is malformed or of an unsupported element type.
    #[error("tensor `{name}`: {msg}")]
    Tensor {
        /// Tensor name.
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// An operator this toolchain does not support.
    #[error("unsupported ONNX operator `{op_type}` (node `{node}`, opset {opset})")]
    UnsupportedOp {
        /// Operator type (with its domain when not the default one).
        op_type: String,
        /// Node name.
        node: String,
        /// Default-domain opset version of the model.
        opset: i64,
    },
    /// A node is malformed: bad attribute, wrong input count or rank, non-constant shape input, ...
    #[error("node `{node}` ({op_type}): {msg}")]
    Node {
        /// Operator type.
        op_type: String,
        /// Node name.
        node: String,
        /// What is wrong.
        msg: String,
    },
    /// A node or graph output refers to a value no one defines.
    #[error("value `{value}` used by {user} is not defined")]
    Dangling {
        /// The undefined name.
        value: String,
        /// Who uses it (node or graph output).
        user: String,
    },
    /// A graph input or output is malformed (missing type, bad shape, ...).
    #[error("graph value `{name}`: {msg}")]
    Graph {
        /// Value name.
        name: String,
        /// What is wrong.
        msg: String,
    },
}

/// Result alias of the ONNX frontend.
pub type Result<T> = std::result::Result<T, OnnxError>;
