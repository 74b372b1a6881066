//! Tokens of the IR text (both forms), produced by a logos lexer and fed to the lalrpop parser.

use logos::Logos;

/// A lexer error: an unrecognised character sequence.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LexError;

/// A token of the IR text.
#[derive(Logos, Clone, Debug, PartialEq)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip r"//[^\n]*")]
#[logos(error = LexError)]
pub enum Tok<'a> {
    /// A result definition including its `=`: `%0 =`, `%3:2 =`; produced by [`tokens`] from a
    /// value name followed by `=` (or by `:N =`), so the LR(1) grammar can tell results from
    /// operands.
    ResultDef(&'a str),
    /// A value use or block-argument name: `%0`, `%3#1`, `%arg0`.
    #[regex(r"%[A-Za-z0-9_$.\-]+(#[0-9]+)?")]
    ValueId(&'a str),
    /// A block label: `^bb0`.
    #[regex(r"\^[A-Za-z0-9_$.\-]+")]
    CaretId(&'a str),
    /// A symbol reference: `@main` or `@"quoted name"`.
    #[regex(r"@[A-Za-z_][A-Za-z0-9_$.]*")]
    #[regex(r#"@"([^"\\\n]|\\.)*""#)]
    Symbol(&'a str),
    /// A bare identifier: op names (`tg.conv`), keys, scalar types (`f32`).
    #[regex(r"[A-Za-z_][A-Za-z0-9_$.]*")]
    BareId(&'a str),
    /// A string literal, with its quotes.
    #[regex(r#""([^"\\\n]|\\.)*""#)]
    Str(&'a str),
    /// A decimal integer.
    #[regex(r"-?[0-9]+")]
    Int(&'a str),
    /// A hexadecimal integer (also a float bit pattern).
    #[regex(r"0x[0-9a-fA-F]+")]
    Hex(&'a str),
    /// A decimal float literal (always with a `.`).
    #[regex(r"[-+]?[0-9]+\.[0-9]*([eE][-+]?[0-9]+)?")]
    Float(&'a str),
    /// A whole tensor type: `tensor<1x3x8x8xf32>`.
    #[regex(r"tensor<[0-9?x]*[A-Za-z][A-Za-z0-9]*>")]
    TensorType(&'a str),
    /// A dialect type: `!sdt.mask<4x8>`, `!trn.token`.
    #[regex(r"![A-Za-z_][A-Za-z0-9_$.]*(<[^<>\n]*>)?")]
    BangType(&'a str),
    /// `dense`
    #[token("dense")]
    Dense,
    /// `loc`
    #[token("loc")]
    Loc,
    /// `unknown`
    #[token("unknown")]
    Unknown,
    /// `true`
    #[token("true")]
    True,
    /// `false`
    #[token("false")]
    False,
    /// `unit`
    #[token("unit")]
    Unit,
    /// `(`
    #[token("(")]
    LParen,
    /// `)`
    #[token(")")]
    RParen,
    /// `{`
    #[token("{")]
    LBrace,
    /// `}`
    #[token("}")]
    RBrace,
    /// `[`
    #[token("[")]
    LBracket,
    /// `]`
    #[token("]")]
    RBracket,
    /// `<`
    #[token("<")]
    Lt,
    /// `>`
    #[token(">")]
    Gt,
    /// `,`
    #[token(",")]
    Comma,
    /// `:`
    #[token(":")]
    Colon,
    /// `=`
    #[token("=")]
    Eq,
    /// `->`
    #[token("->")]
    Arrow,
}

/// A token with its byte span, or a lexer error with its offset.
pub type Spanned<'a> = Result<(usize, Tok<'a>, usize), (usize, LexError)>;

/// Spanned token stream in the shape lalrpop expects: `(start, token, end)` byte offsets.
pub fn tokens(src: &str) -> Vec<Spanned<'_>> {
    let raw: Vec<Spanned<'_>> = Tok::lexer(src)
        .spanned()
        .map(|(t, span)| match t {
            Ok(t) => Ok((span.start, t, span.end)),
            Err(e) => Err((span.start, e)),
        })
        .collect();
    let kind = |j: usize| match raw.get(j) {
        Some(Ok((s, t, e))) => Some((*s, t, *e)),
        _ => None,
    };
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if let Some((start, Tok::ValueId(v), _)) = kind(i) {
            let def = match (kind(i + 1), kind(i + 2), kind(i + 3)) {
                _ if v.contains('#') => None,
                (Some((_, Tok::Eq, e)), ..) => Some((e, 2)),
                (Some((_, Tok::Colon, _)), Some((_, Tok::Int(_), _)), Some((_, Tok::Eq, e))) => Some((e, 4)),
                _ => None,
            };
            if let Some((end, n)) = def {
                out.push(Ok((start, Tok::ResultDef(&src[start..end]), end)));
                i += n;
                continue;
            }
        }
        out.push(raw[i].clone());
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Tok<'_>> {
        tokens(s).into_iter().map(|t| t.unwrap().1).collect()
    }

    #[test]
    fn lexes_tricky_tokens() {
        assert_eq!(
            kinds("%0:2 = \"tg.x\"(%a#1) : (tensor<1x3xf32>) -> !sdt.mask<4x8>"),
            vec![
                Tok::ResultDef("%0:2 ="),
                Tok::Str("\"tg.x\""),
                Tok::LParen,
                Tok::ValueId("%a#1"),
                Tok::RParen,
                Tok::Colon,
                Tok::LParen,
                Tok::TensorType("tensor<1x3xf32>"),
                Tok::RParen,
                Tok::Arrow,
                Tok::BangType("!sdt.mask<4x8>"),
            ]
        );
        assert_eq!(
            kinds("0x7F 1.0e-5 -3 dense f8E4M3FN"),
            vec![
                Tok::Hex("0x7F"),
                Tok::Float("1.0e-5"),
                Tok::Int("-3"),
                Tok::Dense,
                Tok::BareId("f8E4M3FN"),
            ]
        );
        assert!(tokens("`")[0].is_err());
        assert_eq!(kinds("%a, %b")[0], Tok::ValueId("%a"));
    }
}
