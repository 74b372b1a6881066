//! IR types: ranked tensors, scalars, and the dialect types of `sdt` and `trn`.
//!
//! `Display` prints every type in MLIR syntax (identical in the generic and the custom text form),
//! e.g. `tensor<1x3x8x8xf32>`, `f16`, `!sdt.mask<4x8>`, `!trn.buffer<gbuf, 64x64xf16>`.

use std::fmt;

/// Marker for a dynamic dimension (`?` in text).
pub const DYN: i64 = -1;

/// Element types of tensors and scalars.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ElemType {
    /// IEEE binary64 (scalars and float attributes).
    F64,
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// 8-bit float, 4 exponent bits, 3 mantissa bits, finite-only (OCP E4M3; MLIR `f8E4M3FN`).
    F8E4M3FN,
    /// 8-bit float, 5 exponent bits, 2 mantissa bits (MLIR `f8E5M2`).
    F8E5M2,
    /// 64-bit signless integer.
    I64,
    /// 32-bit signless integer.
    I32,
    /// Boolean.
    I1,
    /// MLIR `index`.
    Index,
}

impl ElemType {
    /// All element types, in declaration order.
    pub const ALL: [ElemType; 9] = [
        ElemType::F64,
        ElemType::F32,
        ElemType::F16,
        ElemType::F8E4M3FN,
        ElemType::F8E5M2,
        ElemType::I64,
        ElemType::I32,
        ElemType::I1,
        ElemType::Index,
    ];

    /// MLIR spelling (`f32`, `f8E4M3FN`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ElemType::F64 => "f64",
            ElemType::F32 => "f32",
            ElemType::F16 => "f16",
            ElemType::F8E4M3FN => "f8E4M3FN",
            ElemType::F8E5M2 => "f8E5M2",
            ElemType::I64 => "i64",
            ElemType::I32 => "i32",
            ElemType::I1 => "i1",
            ElemType::Index => "index",
        }
    }

    /// Inverse of [`ElemType::name`].
    pub fn from_name(s: &str) -> Option<ElemType> {
        ElemType::ALL.into_iter().find(|e| e.name() == s)
    }

    /// True for the floating-point element types.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            ElemType::F64 | ElemType::F32 | ElemType::F16 | ElemType::F8E4M3FN | ElemType::F8E5M2
        )
    }

    /// Storage width in bits (`index` counts as 64).
    pub fn bits(self) -> u32 {
        match self {
            ElemType::F32 | ElemType::I32 => 32,
            ElemType::F16 => 16,
            ElemType::F8E4M3FN | ElemType::F8E5M2 => 8,
            ElemType::F64 | ElemType::I64 | ElemType::Index => 64,
            ElemType::I1 => 1,
        }
    }
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A ranked tensor type `tensor<d0 x d1 x ... x elem>`; dimensions equal to [`DYN`] are dynamic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    /// Dimension sizes, outermost first.
    pub shape: Vec<i64>,
    /// Element type.
    pub elem: ElemType,
}

impl TensorType {
    /// A tensor type with the given shape and element type.
    pub fn new(shape: impl Into<Vec<i64>>, elem: ElemType) -> Self {
        TensorType {
            shape: shape.into(),
            elem,
        }
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements, or `None` if any dimension is dynamic.
    pub fn num_elements(&self) -> Option<i64> {
        self.shape
            .iter()
            .try_fold(1i64, |acc, &d| (d >= 0).then(|| acc.saturating_mul(d)))
    }
}

/// An IR type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// Ranked tensor.
    Tensor(TensorType),
    /// Scalar of an element type (`f32`, `i64`, `index`, ...).
    Scalar(ElemType),
    /// MLIR `none`.
    None,
    /// Pruning mask of a weight tensor, `!sdt.mask<4x8>` (one bit per weight).
    Mask {
        /// Shape of the masked tensor.
        shape: Vec<i64>,
    },
    /// On-chip buffer, `!trn.buffer<space, 64x64xf16>`.
    Buffer {
        /// Memory space name (e.g. `gbuf`, `wbuf`, `rf`).
        space: String,
        /// Buffer shape.
        shape: Vec<i64>,
        /// Element type.
        elem: ElemType,
    },
    /// Synchronisation token, `!trn.token`.
    Token,
    /// Any other dialect type, kept verbatim: `!dialect.name<body>` stored as `dialect.name<body>`.
    Opaque(String),
}

impl Type {
    /// Shorthand for a tensor type.
    pub fn tensor(shape: impl Into<Vec<i64>>, elem: ElemType) -> Type {
        Type::Tensor(TensorType::new(shape, elem))
    }

    /// The tensor type, if this is one.
    pub fn as_tensor(&self) -> Option<&TensorType> {
        match self {
            Type::Tensor(t) => Some(t),
            _ => None,
        }
    }
}

impl From<TensorType> for Type {
    fn from(t: TensorType) -> Type {
        Type::Tensor(t)
    }
}

/// Writes `d0xd1x...` (with a trailing `x` when `trailing_x` and the shape is non-empty).
fn write_dims(f: &mut fmt::Formatter<'_>, shape: &[i64], trailing_x: bool) -> fmt::Result {
    for (i, d) in shape.iter().enumerate() {
        if i > 0 {
            f.write_str("x")?;
        }
        if *d < 0 {
            f.write_str("?")?;
        } else {
            write!(f, "{d}")?;
        }
    }
    if trailing_x && !shape.is_empty() {
        f.write_str("x")?;
    }
    Ok(())
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tensor<")?;
        write_dims(f, &self.shape, true)?;
        write!(f, "{}>", self.elem)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Tensor(t) => t.fmt(f),
            Type::Scalar(e) => e.fmt(f),
            Type::None => f.write_str("none"),
            Type::Mask { shape } => {
                f.write_str("!sdt.mask<")?;
                write_dims(f, shape, false)?;
                f.write_str(">")
            }
            Type::Buffer { space, shape, elem } => {
                write!(f, "!trn.buffer<{space}, ")?;
                write_dims(f, shape, true)?;
                write!(f, "{elem}>")
            }
            Type::Token => f.write_str("!trn.token"),
            Type::Opaque(s) => write!(f, "!{s}"),
        }
    }
}

/// Parses `d0xd1x...xelem` (the inside of `tensor<...>`); `None` if malformed.
pub fn parse_shape_elem(body: &str) -> Option<(Vec<i64>, ElemType)> {
    let mut shape = Vec::new();
    let mut rest = body;
    loop {
        if let Some(elem) = ElemType::from_name(rest) {
            return Some((shape, elem));
        }
        let (dim, tail) = rest.split_once('x')?;
        shape.push(parse_dim(dim)?);
        rest = tail;
    }
}

/// Parses `d0xd1x...` (no element type); the empty string is rank 0.
pub fn parse_dims(body: &str) -> Option<Vec<i64>> {
    if body.is_empty() {
        return Some(Vec::new());
    }
    body.split('x').map(parse_dim).collect()
}

fn parse_dim(s: &str) -> Option<i64> {
    if s == "?" {
        Some(DYN)
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Parses the text of a `!`-type (without the `!`); unknown dialect types become [`Type::Opaque`].
/// Returns `None` for a malformed `sdt`/`trn` type.
pub fn parse_bang_type(text: &str) -> Option<Type> {
    let (head, body) = match text.split_once('<') {
        Some((h, b)) => (h, Some(b.strip_suffix('>')?)),
        None => (text, None),
    };
    match (head, body) {
        ("sdt.mask", Some(b)) => Some(Type::Mask {
            shape: parse_dims(b)?,
        }),
        ("trn.buffer", Some(b)) => {
            let (space, rest) = b.split_once(',')?;
            let space = space.trim();
            let ident = !space.is_empty() && space.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
            let (shape, elem) = parse_shape_elem(rest.trim())?;
            ident.then(|| Type::Buffer {
                space: space.to_string(),
                shape,
                elem,
            })
        }
        ("trn.token", None) => Some(Type::Token),
        ("sdt.mask" | "trn.buffer" | "trn.token", _) => None,
        _ => Some(Type::Opaque(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse() {
        let t = Type::tensor([1, 3, DYN, 8], ElemType::F8E4M3FN);
        assert_eq!(t.to_string(), "tensor<1x3x?x8xf8E4M3FN>");
        assert_eq!(
            parse_shape_elem("1x3x?x8xf8E4M3FN"),
            Some((vec![1, 3, DYN, 8], ElemType::F8E4M3FN))
        );
        assert_eq!(Type::tensor([], ElemType::F32).to_string(), "tensor<f32>");
        assert_eq!(parse_shape_elem("4xindex"), Some((vec![4], ElemType::Index)));
        assert_eq!(parse_shape_elem("4x"), None);
        let b = Type::Buffer {
            space: "gbuf".into(),
            shape: vec![64, 64],
            elem: ElemType::F16,
        };
        assert_eq!(b.to_string(), "!trn.buffer<gbuf, 64x64xf16>");
        assert_eq!(parse_bang_type("trn.buffer<gbuf, 64x64xf16>"), Some(b));
        let m = Type::Mask { shape: vec![4, 8] };
        assert_eq!(m.to_string(), "!sdt.mask<4x8>");
        assert_eq!(parse_bang_type("sdt.mask<4x8>"), Some(m));
        assert_eq!(parse_bang_type("sdt.mask<4xq>"), None);
        assert_eq!(
            parse_bang_type("foo.bar<1>"),
            Some(Type::Opaque("foo.bar<1>".into()))
        );
    }
}
