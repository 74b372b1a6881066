//! Reading a model file: protobuf decoding, opset selection, initializer decoding.

use super::error::{OnnxError, Result};
use super::proto::{GraphProto, ModelProto};
use super::tensor::{decode_tensor, ExternalFiles};
use crate::frontend::ConstTensor;
use prost::Message;
use std::collections::HashMap;
use std::path::Path;

/// Oldest default-domain opset the importer accepts.
pub const MIN_OPSET: i64 = 9;
/// Newest default-domain opset the importer knows (what current PyTorch exporters emit, and a
/// little more).
pub const MAX_OPSET: i64 = 23;

/// A decoded ONNX model: its graph, default-domain opset and decoded initializers.
#[derive(Debug)]
pub struct OnnxModel {
    /// The model's graph.
    pub graph: GraphProto,
    /// Version of the default (`ai.onnx`) operator set.
    pub opset: i64,
    /// Producer (`producer_name producer_version`), for diagnostics.
    pub producer: String,
    /// Initializers by name, in graph order of `initializer_order`.
    pub initializers: HashMap<String, ConstTensor>,
    /// Initializer names in file order.
    pub initializer_order: Vec<String>,
}

impl OnnxModel {
    /// Reads and decodes `path`; external data is resolved relative to its directory.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|error| OnnxError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let dir = path.parent().map(|d| {
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            }
        });
        Self::decode(&bytes, dir)
    }

    /// Decodes a model from bytes; `base_dir` is where external-data files live (none: external
    /// data is an error).
    pub fn decode(bytes: &[u8], base_dir: Option<&Path>) -> Result<Self> {
        let model = ModelProto::decode(bytes).map_err(OnnxError::Decode)?;
        let opset = default_opset(&model)?;
        let graph = model.graph.ok_or(OnnxError::NoGraph)?;
        let mut files = ExternalFiles::new(base_dir.map(Path::to_path_buf));
        let mut initializers = HashMap::new();
        let mut initializer_order = Vec::new();
        for t in &graph.initializer {
            let data = decode_tensor(t, &mut files)?;
            if initializers.insert(t.name.clone(), data).is_some() {
                return Err(OnnxError::Tensor {
                    name: t.name.clone(),
                    msg: "duplicate initializer".into(),
                });
            }
            initializer_order.push(t.name.clone());
        }
        Ok(OnnxModel {
            graph,
            opset,
            producer: format!("{} {}", model.producer_name, model.producer_version)
                .trim()
                .to_string(),
            initializers,
            initializer_order,
        })
    }
}

/// The version of the default-domain opset, checked against the supported range.
fn default_opset(model: &ModelProto) -> Result<i64> {
    let version = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| OnnxError::Opset("the model imports no default-domain (ai.onnx) opset".into()))?;
    if !(MIN_OPSET..=MAX_OPSET).contains(&version) {
        return Err(OnnxError::Opset(format!(
            "default-domain opset {version} is outside the supported range {MIN_OPSET}..={MAX_OPSET}"
        )));
    }
    Ok(version)
}
