//! Conversions from literal tokens to IR values, called by grammar actions.

use super::ast::{DenseLit, Name, Scalar, UserError};
use crate::ir::attr::{float_from_bits, unescape_string};
use crate::ir::types::{parse_bang_type, parse_shape_elem};
use crate::ir::{Attribute, DenseElements, ElemType, Type};

type R<T> = Result<T, UserError>;

/// `"..."` → unescaped contents.
pub fn string(pos: usize, tok: &str) -> R<String> {
    unescape_string(&tok[1..tok.len() - 1]).ok_or_else(|| UserError::new(pos, "bad string escape"))
}

/// `@name` or `@"name"` → the symbol name.
pub fn symbol(pos: usize, tok: &str) -> R<String> {
    let s = &tok[1..];
    if s.starts_with('"') {
        string(pos + 1, s)
    } else {
        Ok(s.to_string())
    }
}

/// `%3:2 =` → (`%3`, 2); `%0 =` → (`%0`, 1).
pub fn result_def(pos: usize, tok: &str) -> R<(Name, usize)> {
    let t = tok.trim_end_matches('=').trim_end();
    let (name, n) = match t.split_once(':') {
        Some((name, n)) => {
            let n = n
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| UserError::new(pos, "bad result count"))?;
            (name, n)
        }
        None => (t, 1),
    };
    Ok((
        Name {
            text: name.trim().to_string(),
            pos,
        },
        n,
    ))
}

/// `tensor<...>` token → tensor type.
pub fn tensor_type(pos: usize, tok: &str) -> R<Type> {
    let body = &tok["tensor<".len()..tok.len() - 1];
    parse_shape_elem(body)
        .map(|(shape, elem)| Type::tensor(shape, elem))
        .ok_or_else(|| UserError::new(pos, format!("malformed tensor type '{tok}'")))
}

/// `!dialect.type<...>` token → type.
pub fn bang_type(pos: usize, tok: &str) -> R<Type> {
    parse_bang_type(&tok[1..]).ok_or_else(|| UserError::new(pos, format!("malformed type '{tok}'")))
}

/// Bare type keyword (`f32`, `index`, `none`) → type.
pub fn bare_type(pos: usize, tok: &str) -> R<Type> {
    if tok == "none" {
        return Ok(Type::None);
    }
    ElemType::from_name(tok)
        .map(Type::Scalar)
        .ok_or_else(|| UserError::new(pos, format!("unknown type '{tok}'")))
}

fn int(pos: usize, tok: &str) -> R<i64> {
    tok.parse()
        .map_err(|_| UserError::new(pos, format!("integer '{tok}' out of range")))
}

fn hex(pos: usize, tok: &str) -> R<u64> {
    u64::from_str_radix(&tok[2..], 16)
        .map_err(|_| UserError::new(pos, format!("hex literal '{tok}' out of range")))
}

fn float(pos: usize, tok: &str) -> R<f64> {
    tok.parse()
        .map_err(|_| UserError::new(pos, format!("bad float literal '{tok}'")))
}

fn scalar_elem(pos: usize, ty: &Type) -> R<ElemType> {
    match ty {
        Type::Scalar(e) => Ok(*e),
        t => Err(UserError::new(
            pos,
            format!("expected a scalar type after ':', found '{t}'"),
        )),
    }
}

/// `3`, `3 : i64`, `3 : f32` → attribute.
pub fn int_attr(pos: usize, tok: &str, ty: Option<Type>) -> R<Attribute> {
    let v = int(pos, tok)?;
    match ty.map(|t| scalar_elem(pos, &t)).transpose()? {
        Some(e) if e.is_float() => Ok(Attribute::Float(v as f64)),
        _ => Ok(Attribute::Int(v)),
    }
}

/// `0.5`, `0.5 : f32` → attribute.
pub fn float_attr(pos: usize, tok: &str, ty: Option<Type>) -> R<Attribute> {
    let v = float(pos, tok)?;
    match ty.map(|t| scalar_elem(pos, &t)).transpose()? {
        Some(e) if !e.is_float() => Err(UserError::new(pos, "float literal with integer type")),
        _ => Ok(Attribute::Float(v)),
    }
}

/// `0x7F`, `0x7FF0000000000000 : f64` → integer, or float from its bit pattern.
pub fn hex_attr(pos: usize, tok: &str, ty: Option<Type>) -> R<Attribute> {
    let bits = hex(pos, tok)?;
    match ty.map(|t| scalar_elem(pos, &t)).transpose()? {
        Some(e) if e.is_float() => Ok(Attribute::Float(float_from_bits(e, bits))),
        _ => Ok(Attribute::Int(bits as i64)),
    }
}

/// Scalar literal inside `dense<...>`.
pub fn scalar(pos: usize, tok: &str, kind: char) -> R<Scalar> {
    Ok(match kind {
        'i' => Scalar::Int(int(pos, tok)?),
        'h' => Scalar::Hex(hex(pos, tok)?),
        _ => Scalar::Float(float(pos, tok)?),
    })
}

fn flatten(lit: &DenseLit, shape: &[i64], out: &mut Vec<(Scalar, usize)>, pos: usize) -> R<()> {
    match (lit, shape.split_first()) {
        (DenseLit::Scalar(s, p), None) => {
            out.push((*s, *p));
            Ok(())
        }
        (DenseLit::List(items), Some((&n, rest))) if items.len() as i64 == n => {
            items.iter().try_for_each(|it| flatten(it, rest, out, pos))
        }
        _ => Err(UserError::new(
            pos,
            "dense literal does not match the shape of its type",
        )),
    }
}

/// `dense<lit> : type` → dense attribute (a single scalar is splatted).
pub fn dense(pos: usize, lit: Option<DenseLit>, ty: Type) -> R<Attribute> {
    let Some(t) = ty.as_tensor() else {
        return Err(UserError::new(pos, "dense attribute needs a tensor type"));
    };
    let n = t
        .num_elements()
        .ok_or_else(|| UserError::new(pos, "dense attribute needs a static shape"))?;
    let mut flat = Vec::new();
    match &lit {
        None if n == 0 => {}
        None => return Err(UserError::new(pos, "empty dense literal for a non-empty type")),
        Some(DenseLit::Scalar(s, p)) => flat = vec![(*s, *p); n as usize],
        Some(l) => flatten(l, &t.shape, &mut flat, pos)?,
    }
    dense_from_scalars(t.shape.clone(), t.elem, flat)
}

/// `dense<"0x...">` → dense attribute. This is MLIR's form for constants of more than 100
/// elements: the raw little-endian bytes of the elements (`i1` packed eight to a byte, least
/// significant bit first); the bytes of a single element mean a splat.
pub fn dense_hex(pos: usize, tok: &str, ty: Type) -> R<Attribute> {
    let err = |msg: &str| UserError::new(pos, msg.to_string());
    let Some(t) = ty.as_tensor() else {
        return Err(err("dense attribute needs a tensor type"));
    };
    let n = t
        .num_elements()
        .ok_or_else(|| err("dense attribute needs a static shape"))? as usize;
    let text = string(pos, tok)?;
    let digits = text
        .strip_prefix("0x")
        .filter(|d| d.len() % 2 == 0 && d.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| err("a dense string must be hex bytes \"0x...\""))?;
    let bytes: Vec<u8> = digits
        .as_bytes()
        .chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap_or("00"), 16).unwrap_or(0))
        .collect();
    let size_err = || err("dense hex data does not match the size of its type");
    let scalars: Vec<Scalar> = if t.elem == ElemType::I1 {
        match bytes.as_slice() {
            [b @ (0 | 0xFF)] => vec![Scalar::Bool(*b != 0); n],
            _ if bytes.len() == n.div_ceil(8) => (0..n)
                .map(|i| Scalar::Bool((bytes[i / 8] >> (i % 8)) & 1 == 1))
                .collect(),
            _ => return Err(size_err()),
        }
    } else {
        let width = (t.elem.bits() / 8) as usize;
        let words: Vec<u64> = bytes
            .chunks(width)
            .map(|c| c.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
            .collect();
        let one = |w: u64| match t.elem {
            e if e.is_float() => Scalar::Hex(w),
            ElemType::I32 => Scalar::Int(i64::from(w as u32 as i32)),
            _ => Scalar::Int(w as i64),
        };
        if bytes.len() == width {
            vec![one(words[0]); n]
        } else if bytes.len() == width * n {
            words.into_iter().map(one).collect()
        } else {
            return Err(size_err());
        }
    };
    let flat = scalars.into_iter().map(|s| (s, pos)).collect();
    dense_from_scalars(t.shape.clone(), t.elem, flat)
}

/// Builds a dense attribute from row-major scalars (each with its byte offset for errors).
fn dense_from_scalars(shape: Vec<i64>, elem: ElemType, flat: Vec<(Scalar, usize)>) -> R<Attribute> {
    if elem.is_float() {
        let vals = flat
            .into_iter()
            .map(|(s, p)| match s {
                Scalar::Int(i) => Ok(i as f64),
                Scalar::Float(f) => Ok(f),
                Scalar::Hex(h) => Ok(float_from_bits(elem, h)),
                Scalar::Bool(_) => Err(UserError::new(p, "boolean in a float constant")),
            })
            .collect::<R<Vec<_>>>()?;
        Ok(Attribute::Dense(DenseElements::floats(shape, elem, vals)))
    } else {
        let vals = flat
            .into_iter()
            .map(|(s, p)| match s {
                Scalar::Int(i) => Ok(i),
                Scalar::Hex(h) => Ok(h as i64),
                Scalar::Bool(b) => Ok(b as i64),
                Scalar::Float(_) => Err(UserError::new(p, "float in an integer constant")),
            })
            .collect::<R<Vec<_>>>()?;
        Ok(Attribute::Dense(DenseElements::ints(shape, elem, vals)))
    }
}

/// Wraps an action error for lalrpop.
pub fn user<'a>(e: UserError) -> lalrpop_util::ParseError<usize, super::lexer::Tok<'a>, UserError> {
    lalrpop_util::ParseError::User { error: e }
}
