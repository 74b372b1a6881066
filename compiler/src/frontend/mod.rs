//! Frontends: ONNX models and the `.tg` graph language, both producing `tg` dialect IR.
//!
//! [`load`] picks the frontend from the file extension (`.onnx` or `.tg`) and returns a module
//! holding one shape-inferred `tg.graph`, with the weights in the module's side table.

pub mod builder;
pub mod init;
pub mod onnx;
pub mod tensor;
pub mod tg;

pub use tensor::{ConstTensor, TensorValues};

use crate::ir::Module;
use std::path::{Path, PathBuf};

/// Options shared by the frontends.
#[derive(Clone, Debug, Default)]
pub struct FrontendOptions {
    /// Batch size for symbolic (and, for ONNX, overridden) batch dimensions; default: the
    /// model's, or 1.
    pub batch: Option<usize>,
    /// Seed of the initialization of weights the model does not carry.
    pub seed: u64,
}

/// An error of [`load`].
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    /// The file could not be read.
    #[error("cannot read `{}`: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        error: std::io::Error,
    },
    /// The extension names no frontend.
    #[error("`{}`: unknown model format (expected a .onnx or .tg file)", .0.display())]
    UnknownFormat(PathBuf),
    /// The ONNX frontend failed.
    #[error("`{}`: {error}", path.display())]
    Onnx {
        /// The model file.
        path: PathBuf,
        /// What went wrong.
        error: onnx::OnnxError,
    },
    /// The `.tg` frontend failed.
    #[error("{}:{error}", path.display())]
    Tg {
        /// The `.tg` file.
        path: PathBuf,
        /// What went wrong, with line and column.
        error: tg::TgError,
    },
}

/// Imports the model at `path` (`.onnx` or `.tg`) as a `tg` module.
pub fn load(path: &Path, opts: &FrontendOptions) -> Result<Module, FrontendError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("onnx") => {
            let onnx_err = |error| FrontendError::Onnx {
                path: path.to_path_buf(),
                error,
            };
            let model = onnx::OnnxModel::load(path).map_err(onnx_err)?;
            let opts = onnx::ImportOptions {
                batch: opts.batch,
                seed: opts.seed,
            };
            onnx::import(&model, &opts).map_err(onnx_err)
        }
        Some("tg") => {
            let src = std::fs::read_to_string(path).map_err(|error| FrontendError::Io {
                path: path.to_path_buf(),
                error,
            })?;
            let opts = tg::TgOptions {
                batch: opts.batch,
                seed: opts.seed,
            };
            tg::compile(&src, &path.display().to_string(), &opts).map_err(|error| FrontendError::Tg {
                path: path.to_path_buf(),
                error,
            })
        }
        _ => Err(FrontendError::UnknownFormat(path.to_path_buf())),
    }
}
