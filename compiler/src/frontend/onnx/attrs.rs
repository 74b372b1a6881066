//! Typed access to a node's attributes, with ONNX defaults supplied by the caller.

use super::error::{OnnxError, Result};
use super::proto::{AttributeProto, AttributeType, NodeProto};

/// The attributes of one node, with errors that name the node.
pub struct NodeAttrs<'a> {
    node: &'a NodeProto,
}

impl<'a> NodeAttrs<'a> {
    /// Attribute view of `node`.
    pub fn new(node: &'a NodeProto) -> Self {
        NodeAttrs { node }
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    /// An error about this node.
    pub fn error(&self, msg: impl Into<String>) -> OnnxError {
        OnnxError::Node {
            op_type: self.node.op_type.clone(),
            node: self.node.name.clone(),
            msg: msg.into(),
        }
    }

    fn typed(&self, name: &str, want: AttributeType) -> Result<Option<&'a AttributeProto>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if a.r#type == want as i32 => Ok(Some(a)),
            // Files from IR version 1 have no type field; trust the field the caller reads.
            Some(a) if a.r#type == AttributeType::Undefined as i32 => Ok(Some(a)),
            Some(a) => {
                let found = AttributeType::try_from(a.r#type)
                    .map_or(format!("type {}", a.r#type), |t| format!("{t:?}"));
                Err(self.error(format!("attribute `{name}` should be {want:?}, found {found}")))
            }
        }
    }

    /// Whether the attribute is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// An integer attribute, or `default`.
    pub fn int(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.typed(name, AttributeType::Int)?.map_or(default, |a| a.i))
    }

    /// A float attribute, or `default`.
    pub fn float(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self.typed(name, AttributeType::Float)?.map_or(default, |a| a.f))
    }

    /// An integer-list attribute, if present.
    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(self.typed(name, AttributeType::Ints)?.map(|a| a.ints.clone()))
    }

    /// A float-list attribute, if present.
    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        Ok(self.typed(name, AttributeType::Floats)?.map(|a| a.floats.clone()))
    }

    /// A string attribute, or `default`.
    pub fn string(&self, name: &str, default: &str) -> Result<String> {
        match self.typed(name, AttributeType::String)? {
            None => Ok(default.to_string()),
            Some(a) => String::from_utf8(a.s.clone())
                .map_err(|_| self.error(format!("attribute `{name}` is not UTF-8"))),
        }
    }

    /// A tensor attribute, if present.
    pub fn tensor(&self, name: &str) -> Result<Option<&'a super::proto::TensorProto>> {
        Ok(self
            .typed(name, AttributeType::Tensor)?
            .and_then(|a| a.t.as_ref()))
    }
}
