//! Source locations attached to operations, printed as MLIR `loc(...)`.

use super::attr::write_string;
use std::fmt;

/// Where an operation came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum Location {
    /// No location (`loc(unknown)`).
    #[default]
    Unknown,
    /// A position in a source file (`loc("net.tg":3:7)`).
    FileLineCol {
        /// File name.
        file: String,
        /// 1-based line.
        line: u32,
        /// 1-based column.
        col: u32,
    },
    /// A name, e.g. the ONNX node name (`loc("conv1")`).
    Name(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Unknown => f.write_str("loc(unknown)"),
            Location::FileLineCol { file, line, col } => {
                f.write_str("loc(")?;
                write_string(f, file)?;
                write!(f, ":{line}:{col})")
            }
            Location::Name(n) => {
                f.write_str("loc(")?;
                write_string(f, n)?;
                f.write_str(")")
            }
        }
    }
}
