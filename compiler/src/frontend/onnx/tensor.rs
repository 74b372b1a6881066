//! Decoding `TensorProto` payloads (raw bytes, typed fields, external files) into [`ConstTensor`].

use super::error::{OnnxError, Result};
use super::proto::{DataLocation, DataType, TensorProto};
use crate::frontend::ConstTensor;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// Reads external-data files relative to the model's directory, caching each file once.
#[derive(Debug, Default)]
pub struct ExternalFiles {
    base_dir: Option<PathBuf>,
    cache: HashMap<String, Vec<u8>>,
}

impl ExternalFiles {
    /// External data is resolved relative to `base_dir` (the model file's directory); without a
    /// base directory, tensors with external data are rejected.
    pub fn new(base_dir: Option<PathBuf>) -> Self {
        ExternalFiles {
            base_dir,
            cache: HashMap::new(),
        }
    }

    /// The bytes `[offset, offset + length)` of file `location` (to its end without `length`).
    fn slice(&mut self, tensor: &str, location: &str, offset: u64, length: Option<u64>) -> Result<&[u8]> {
        let err = |msg: String| OnnxError::Tensor {
            name: tensor.to_string(),
            msg,
        };
        let base = self
            .base_dir
            .as_ref()
            .ok_or_else(|| err("external data needs the model's file path".into()))?;
        let rel = Path::new(location);
        let escapes = rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
        if location.is_empty() || escapes {
            return Err(err(format!(
                "external data location `{location}` must be a relative path inside the model's directory"
            )));
        }
        if !self.cache.contains_key(location) {
            let path = base.join(rel);
            let bytes = std::fs::read(&path).map_err(|error| OnnxError::Io { path, error })?;
            self.cache.insert(location.to_string(), bytes);
        }
        let file = &self.cache[location];
        let size = file.len() as u64;
        let end = match length {
            Some(len) => offset.checked_add(len),
            None => Some(size),
        };
        match end {
            Some(end) if offset <= end && end <= size => Ok(&file[offset as usize..end as usize]),
            _ => Err(err(format!(
                "external data range offset {offset} length {} exceeds `{location}` ({size} bytes)",
                length.map_or("<rest>".to_string(), |l| l.to_string())
            ))),
        }
    }
}

/// Element count of `dims`, rejecting negative dimensions and overflow.
fn element_count(name: &str, dims: &[i64]) -> Result<usize> {
    dims.iter().try_fold(1usize, |acc, &d| {
        usize::try_from(d)
            .ok()
            .and_then(|d| acc.checked_mul(d))
            .ok_or_else(|| OnnxError::Tensor {
                name: name.to_string(),
                msg: format!("invalid dimensions {dims:?}"),
            })
    })
}

/// Decodes a tensor into f32 (float types) or i64 (integer and bool types) values.
pub fn decode_tensor(t: &TensorProto, files: &mut ExternalFiles) -> Result<ConstTensor> {
    let name = t.name.as_str();
    let err = |msg: String| OnnxError::Tensor {
        name: name.to_string(),
        msg,
    };
    let n = element_count(name, &t.dims)?;
    let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let dtype =
        DataType::try_from(t.data_type).map_err(|_| err(format!("unknown data type {}", t.data_type)))?;
    let external = t.data_location == DataLocation::External as i32;
    let raw: Option<&[u8]> = if external {
        let mut location = None;
        let (mut offset, mut length) = (0u64, None);
        for e in &t.external_data {
            let number = || {
                e.value
                    .parse::<u64>()
                    .map_err(|_| err(format!("bad external `{}` = `{}`", e.key, e.value)))
            };
            match e.key.as_str() {
                "location" => location = Some(e.value.as_str()),
                "offset" => offset = number()?,
                "length" => length = Some(number()?),
                _ => {}
            }
        }
        let location = location.ok_or_else(|| err("external data without a location".into()))?;
        Some(files.slice(name, location, offset, length)?)
    } else if !t.raw_data.is_empty() || n == 0 {
        Some(&t.raw_data)
    } else {
        None
    };
    let typed_len = |len: usize| {
        if len == n {
            Ok(())
        } else {
            Err(err(format!(
                "{dtype:?} tensor of shape {dims:?} needs {n} elements, found {len}"
            )))
        }
    };
    // Little-endian raw bytes, `width` bytes per element, converted element-wise by `f`.
    let from_raw = |width: usize| -> Result<Option<std::slice::ChunksExact<'_, u8>>> {
        let Some(raw) = raw else { return Ok(None) };
        if raw.len() != n * width {
            return Err(err(format!(
                "{dtype:?} tensor of shape {dims:?} needs {} bytes, found {}",
                n * width,
                raw.len()
            )));
        }
        Ok(Some(raw.chunks_exact(width)))
    };
    let data = match dtype {
        DataType::Float => match from_raw(4)? {
            Some(c) => c.map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            None => {
                typed_len(t.float_data.len())?;
                t.float_data.clone()
            }
        },
        DataType::Float16 => match from_raw(2)? {
            Some(c) => c
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            None => {
                typed_len(t.int32_data.len())?;
                t.int32_data
                    .iter()
                    .map(|&v| half::f16::from_bits(v as u16).to_f32())
                    .collect()
            }
        },
        DataType::Double => match from_raw(8)? {
            Some(c) => c
                .map(|b| f64::from_le_bytes(b.try_into().expect("8-byte chunk")) as f32)
                .collect(),
            None => {
                typed_len(t.double_data.len())?;
                t.double_data.iter().map(|&v| v as f32).collect()
            }
        },
        DataType::Int64 => {
            let values = match from_raw(8)? {
                Some(c) => c
                    .map(|b| i64::from_le_bytes(b.try_into().expect("8-byte chunk")))
                    .collect(),
                None => {
                    typed_len(t.int64_data.len())?;
                    t.int64_data.clone()
                }
            };
            return Ok(ConstTensor::i64(dims, values));
        }
        DataType::Int32
        | DataType::Int16
        | DataType::Int8
        | DataType::Uint16
        | DataType::Uint8
        | DataType::Bool => {
            let width = match dtype {
                DataType::Int32 => 4,
                DataType::Int16 | DataType::Uint16 => 2,
                _ => 1,
            };
            let values = match from_raw(width)? {
                Some(c) => c
                    .map(|b| match dtype {
                        DataType::Int32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
                        DataType::Int16 => i16::from_le_bytes([b[0], b[1]]) as i64,
                        DataType::Uint16 => u16::from_le_bytes([b[0], b[1]]) as i64,
                        DataType::Int8 => b[0] as i8 as i64,
                        _ => b[0] as i64,
                    })
                    .collect(),
                None => {
                    typed_len(t.int32_data.len())?;
                    t.int32_data.iter().map(|&v| v as i64).collect()
                }
            };
            return Ok(ConstTensor::i64(dims, values));
        }
        other => return Err(err(format!("unsupported element type {other:?}"))),
    };
    Ok(ConstTensor::f32(dims, data))
}
