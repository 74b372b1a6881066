//! Attributes: compile-time constants attached to operations.
//!
//! `Display` prints MLIR attribute syntax, the same in both text forms. Integers are 64-bit and
//! print bare (`3`, which MLIR reads as `3 : i64`); floats are `f64` and print as the shortest
//! decimal that reads back bit-exactly (`0.1`, `1.0e-5`), or as a typed hex literal
//! (`0x7FF8000000000000 : f64`) when not finite.

use super::types::{ElemType, Type};
use std::collections::BTreeMap;
use std::fmt;

/// Attribute dictionary of an operation, sorted by name like MLIR's `DictionaryAttr`.
pub type Attrs = BTreeMap<String, Attribute>;

/// Element data of a dense constant.
#[derive(Clone, Debug, PartialEq)]
pub enum DenseValues {
    /// Float elements (already rounded to the element type).
    Floats(Vec<f64>),
    /// Integer elements (`i1` elements are 0/1 and print as `false`/`true`).
    Ints(Vec<i64>),
}

impl DenseValues {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            DenseValues::Floats(v) => v.len(),
            DenseValues::Ints(v) => v.len(),
        }
    }

    /// True if there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A dense elements attribute: `dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>`.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseElements {
    /// Shape of the constant (static dimensions).
    pub shape: Vec<i64>,
    /// Element type.
    pub elem: ElemType,
    /// Row-major elements; the count equals the product of `shape`.
    pub values: DenseValues,
}

impl DenseElements {
    /// Float constant; values are rounded to `elem` (f32/f16 rounding; f8 types round via f16).
    pub fn floats(shape: Vec<i64>, elem: ElemType, values: Vec<f64>) -> Self {
        let values = values.into_iter().map(|v| round_to(elem, v)).collect();
        DenseElements {
            shape,
            elem,
            values: DenseValues::Floats(values),
        }
    }

    /// Integer constant.
    pub fn ints(shape: Vec<i64>, elem: ElemType, values: Vec<i64>) -> Self {
        DenseElements {
            shape,
            elem,
            values: DenseValues::Ints(values),
        }
    }

    /// The tensor type of this constant.
    pub fn ty(&self) -> Type {
        Type::tensor(self.shape.clone(), self.elem)
    }
}

/// Rounds `v` to the precision of a float element type (identity for other types).
pub fn round_to(elem: ElemType, v: f64) -> f64 {
    match elem {
        ElemType::F32 => v as f32 as f64,
        ElemType::F16 | ElemType::F8E4M3FN | ElemType::F8E5M2 => half::f16::from_f64(v).to_f64(),
        _ => v,
    }
}

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Attribute {
    /// MLIR unit attribute (presence only); prints as its name alone in a dictionary.
    Unit,
    /// Boolean (`true` / `false`).
    Bool(bool),
    /// 64-bit integer.
    Int(i64),
    /// 64-bit float, printed bit-exactly.
    Float(f64),
    /// String with MLIR escapes.
    Str(String),
    /// Array `[a, b, ...]`.
    Array(Vec<Attribute>),
    /// Dictionary `{a = 1, b = 2}`.
    Dict(Attrs),
    /// A type used as an attribute.
    Type(Type),
    /// Dense elements constant.
    Dense(DenseElements),
    /// Symbol reference `@name`.
    SymbolRef(String),
}

impl Attribute {
    /// Array of integers.
    pub fn ints(v: &[i64]) -> Attribute {
        Attribute::Array(v.iter().map(|&i| Attribute::Int(i)).collect())
    }

    /// Array of floats.
    pub fn floats(v: &[f64]) -> Attribute {
        Attribute::Array(v.iter().map(|&x| Attribute::Float(x)).collect())
    }

    /// String attribute.
    pub fn str(s: impl Into<String>) -> Attribute {
        Attribute::Str(s.into())
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Attribute::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The float (integers convert), if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Attribute::Float(f) => Some(*f),
            Attribute::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Attribute::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Attribute::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integers of an array of integers.
    pub fn as_ints(&self) -> Option<Vec<i64>> {
        match self {
            Attribute::Array(a) => a.iter().map(Attribute::as_int).collect(),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Attribute]> {
        match self {
            Attribute::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The type, if this is a type attribute.
    pub fn as_type(&self) -> Option<&Type> {
        match self {
            Attribute::Type(t) => Some(t),
            _ => None,
        }
    }

    /// The dense constant, if this is one.
    pub fn as_dense(&self) -> Option<&DenseElements> {
        match self {
            Attribute::Dense(d) => Some(d),
            _ => None,
        }
    }
}

/// Formats a finite float as the shortest decimal that MLIR's float-literal grammar accepts and
/// that reads back to the same `f64` (`0.1`, `1.0e-7`, `-0.0`); `None` for NaN / infinity.
pub fn format_float(v: f64) -> Option<String> {
    if !v.is_finite() {
        return None;
    }
    Some(fix_exponent(format!("{v:?}")))
}

/// Like [`format_float`] for a value of a float element type narrower than f64: the shortest
/// decimal that reads back to the same f32 (and hence the same f16 / f8 value).
fn format_narrow_float(v: f64) -> Option<String> {
    v.is_finite().then(|| fix_exponent(format!("{:?}", v as f32)))
}

/// Rust prints `1e-7`; MLIR float literals need a fraction: `1.0e-7`.
fn fix_exponent(s: String) -> String {
    match s.find('e') {
        Some(e) if !s[..e].contains('.') => format!("{}.0{}", &s[..e], &s[e..]),
        _ => s,
    }
}

/// Bit pattern of `v` in the given float element type (used for non-finite values).
pub fn float_bits(elem: ElemType, v: f64) -> u64 {
    match elem {
        ElemType::F32 => (v as f32).to_bits() as u64,
        ElemType::F16 => half::f16::from_f64(v).to_bits() as u64,
        ElemType::F8E4M3FN => 0x7F,
        ElemType::F8E5M2 if v.is_nan() => 0x7E,
        ElemType::F8E5M2 if v > 0.0 => 0x7C,
        ElemType::F8E5M2 => 0xFC,
        _ => v.to_bits(),
    }
}

/// Inverse of [`float_bits`] for hex literals in float position.
pub fn float_from_bits(elem: ElemType, bits: u64) -> f64 {
    match elem {
        ElemType::F32 => f32::from_bits(bits as u32) as f64,
        ElemType::F16 => half::f16::from_bits(bits as u16).to_f64(),
        ElemType::F8E4M3FN => f8e4m3fn_from_bits(bits as u8),
        ElemType::F8E5M2 => half::f16::from_bits(u16::from(bits as u8) << 8).to_f64(),
        _ => f64::from_bits(bits),
    }
}

/// Decodes an `f8E4M3FN` byte: bias 7, no infinities, `S.1111.111` is NaN.
fn f8e4m3fn_from_bits(b: u8) -> f64 {
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let (exp, man) = (i32::from((b >> 3) & 0xF), f64::from(b & 7));
    sign * match (exp, man) {
        (15, 7.0) => f64::NAN,
        (0, m) => m / 8.0 * 2f64.powi(-6),
        (e, m) => (1.0 + m / 8.0) * 2f64.powi(e - 7),
    }
}

/// Writes a string literal with MLIR escapes.
pub fn write_string(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for b in s.bytes() {
        match b {
            b'"' => f.write_str("\\\"")?,
            b'\\' => f.write_str("\\\\")?,
            b'\n' => f.write_str("\\n")?,
            b'\t' => f.write_str("\\t")?,
            0x20..=0x7E => f.write_char(b as char)?,
            _ => write!(f, "\\{b:02X}")?,
        }
    }
    f.write_char('"')
}

/// Decodes the inside of an MLIR string literal (without quotes); `None` on a bad escape.
pub fn unescape_string(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = *b.get(i + 1)?;
        match c {
            b'"' | b'\\' => out.push(c),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            _ => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 1;
            }
        }
        i += 2;
    }
    String::from_utf8(out).ok()
}

fn write_list<T>(
    f: &mut fmt::Formatter<'_>,
    items: &[T],
    mut each: impl FnMut(&mut fmt::Formatter<'_>, &T) -> fmt::Result,
) -> fmt::Result {
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        each(f, x)?;
    }
    Ok(())
}

/// Writes an attribute dictionary body `a = 1, b, c = "x"` (unit attributes print as the name).
pub fn write_dict_body(f: &mut fmt::Formatter<'_>, attrs: &Attrs) -> fmt::Result {
    let items: Vec<_> = attrs.iter().collect();
    write_list(f, &items, |f, (k, v)| {
        write_attr_name(f, k)?;
        match v {
            Attribute::Unit => Ok(()),
            v => write!(f, " = {v}"),
        }
    })
}

/// Writes a dictionary key or symbol name: bare if it is a valid MLIR bare identifier (and not a
/// reserved word), else a string literal.
pub fn write_attr_name(f: &mut impl fmt::Write, k: &str) -> fmt::Result {
    let mut chars = k.chars();
    let bare = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || "_$.".contains(c));
    if bare && !is_keyword(k) {
        f.write_str(k)
    } else {
        write_string(f, k)
    }
}

/// Words that the lexer reserves and that therefore cannot be bare dictionary keys.
pub fn is_keyword(k: &str) -> bool {
    matches!(k, "true" | "false" | "dense" | "loc" | "unknown" | "unit")
}

fn write_dense_elem(f: &mut fmt::Formatter<'_>, d: &DenseElements, i: usize) -> fmt::Result {
    match &d.values {
        DenseValues::Ints(v) if d.elem == ElemType::I1 => write!(f, "{}", v[i] != 0),
        DenseValues::Ints(v) => write!(f, "{}", v[i]),
        DenseValues::Floats(v) => match format_narrow_float(v[i]) {
            Some(s) => f.write_str(&s),
            None => write!(f, "0x{:X}", float_bits(d.elem, v[i])),
        },
    }
}

fn write_dense_dims(
    f: &mut fmt::Formatter<'_>,
    d: &DenseElements,
    dims: &[i64],
    offset: &mut usize,
) -> fmt::Result {
    let Some((&n, rest)) = dims.split_first() else {
        write_dense_elem(f, d, *offset)?;
        *offset += 1;
        return Ok(());
    };
    f.write_str("[")?;
    for i in 0..n.max(0) {
        if i > 0 {
            f.write_str(", ")?;
        }
        write_dense_dims(f, d, rest, offset)?;
    }
    f.write_str("]")
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attribute::Unit => f.write_str("unit"),
            Attribute::Bool(b) => write!(f, "{b}"),
            Attribute::Int(i) => write!(f, "{i}"),
            Attribute::Float(x) => match format_float(*x) {
                Some(s) => f.write_str(&s),
                None => write!(f, "0x{:016X} : f64", x.to_bits()),
            },
            Attribute::Str(s) => write_string(f, s),
            Attribute::Array(a) => {
                f.write_str("[")?;
                write_list(f, a, |f, x| write!(f, "{x}"))?;
                f.write_str("]")
            }
            Attribute::Dict(d) => {
                f.write_str("{")?;
                write_dict_body(f, d)?;
                f.write_str("}")
            }
            Attribute::Type(t) => write!(f, "{t}"),
            Attribute::Dense(d) => {
                f.write_str("dense<")?;
                let empty = d.values.is_empty() && !d.shape.is_empty();
                if !empty {
                    write_dense_dims(f, d, &d.shape, &mut 0)?;
                }
                write!(f, "> : {}", d.ty())
            }
            Attribute::SymbolRef(s) => {
                f.write_str("@")?;
                write_attr_name(f, s)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_mlir_literals() {
        assert_eq!(format_float(0.1).unwrap(), "0.1");
        assert_eq!(format_float(1e-7).unwrap(), "1.0e-7");
        assert_eq!(format_float(1.5e300).unwrap(), "1.5e300");
        assert_eq!(format_float(-0.0).unwrap(), "-0.0");
        assert_eq!(format_float(3.0).unwrap(), "3.0");
        assert!(format_float(f64::NAN).is_none());
        assert_eq!(
            Attribute::Float(f64::INFINITY).to_string(),
            "0x7FF0000000000000 : f64"
        );
    }

    #[test]
    fn strings_escape_and_unescape() {
        let s = "a\"b\\c\nd\u{1}é";
        let mut out = String::new();
        write_string(&mut out, s).unwrap();
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\01\\C3\\A9\"");
        assert_eq!(unescape_string(&out[1..out.len() - 1]).unwrap(), s);
        assert!(unescape_string("\\q").is_none());
    }

    #[test]
    fn dense_prints_nested() {
        let d = DenseElements::floats(vec![2, 2], ElemType::F32, vec![0.1, 2.0, -3.5, 1e-9]);
        assert_eq!(
            Attribute::Dense(d).to_string(),
            "dense<[[0.1, 2.0], [-3.5, 1.0e-9]]> : tensor<2x2xf32>"
        );
        let b = DenseElements::ints(vec![2], ElemType::I1, vec![1, 0]);
        assert_eq!(
            Attribute::Dense(b).to_string(),
            "dense<[true, false]> : tensor<2xi1>"
        );
        let s = DenseElements::ints(vec![], ElemType::I64, vec![7]);
        assert_eq!(Attribute::Dense(s).to_string(), "dense<7> : tensor<i64>");
    }
}
