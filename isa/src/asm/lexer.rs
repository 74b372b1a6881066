//! Tokens of the `.tasm` assembly format (logos).

use logos::Logos;
use std::fmt;

/// Why a piece of text is not a token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LexError {
    /// Text that starts no token.
    #[default]
    BadToken,
    /// A bad escape sequence in a string literal.
    BadEscape,
    /// A hex byte string with an odd number of digits.
    OddHex,
}

impl fmt::Display for LexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LexError::BadToken => "unrecognised text",
            LexError::BadEscape => "bad escape in string (use \\\\, \\\", \\n, \\t, \\r or \\u{HEX})",
            LexError::OddHex => "hex byte string has an odd number of digits",
        })
    }
}

/// A token. Whitespace (newlines included) and comments (`;` or `#` to end of line) are skipped.
#[derive(Logos, Debug, Clone, PartialEq, Eq)]
#[logos(error = LexError)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip r"[;#][^\n]*")]
pub enum Tok {
    /// Mnemonic, enum value, flag set (`in+w`) or `none`.
    #[regex(r"[A-Za-z_][A-Za-z0-9_.+]*", |l| l.slice().to_string())]
    Word(String),
    /// Field key `name=` (the name, without `=`).
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*=", |l| l.slice()[..l.slice().len() - 1].to_string())]
    Key(String),
    /// Directive `.name`.
    #[regex(r"\.[A-Za-z_]+", |l| l.slice()[1..].to_string())]
    Directive(String),
    /// Number: decimal or `0x` hex integer, or a decimal float (the text).
    #[regex(r"-?(0[xX][0-9a-fA-F]+|[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?)", |l| l.slice().to_string())]
    Num(String),
    /// Operand `space:dtype@address` (the text).
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*:[A-Za-z0-9_]+@(0[xX][0-9a-fA-F]+|[0-9]+)", |l| l.slice().to_string())]
    Operand(String),
    /// String literal (unescaped contents).
    #[regex(r#""([^"\\\n]|\\[^\n])*""#, |l| unescape(&l.slice()[1..l.slice().len() - 1]))]
    Str(String),
    /// Hex byte string `x"0a1b…"`.
    #[regex(r#"x"[0-9a-fA-F]*""#, |l| unhex(&l.slice()[2..l.slice().len() - 1]))]
    Hex(Vec<u8>),
    /// `[`
    #[token("[")]
    LBracket,
    /// `]`
    #[token("]")]
    RBracket,
    /// `,`
    #[token(",")]
    Comma,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Word(s) | Tok::Num(s) | Tok::Operand(s) => write!(f, "`{s}`"),
            Tok::Key(s) => write!(f, "`{s}=`"),
            Tok::Directive(s) => write!(f, "`.{s}`"),
            Tok::Str(_) => f.write_str("string"),
            Tok::Hex(_) => f.write_str("hex bytes"),
            Tok::LBracket => f.write_str("`[`"),
            Tok::RBracket => f.write_str("`]`"),
            Tok::Comma => f.write_str("`,`"),
        }
    }
}

fn unescape(s: &str) -> Result<String, LexError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('u') => {
                if chars.next() != Some('{') {
                    return Err(LexError::BadEscape);
                }
                let hex: String = chars.by_ref().take_while(|&c| c != '}').collect();
                let code = u32::from_str_radix(&hex, 16).map_err(|_| LexError::BadEscape)?;
                out.push(char::from_u32(code).ok_or(LexError::BadEscape)?);
            }
            _ => return Err(LexError::BadEscape),
        }
    }
    Ok(out)
}

fn unhex(s: &str) -> Result<Vec<u8>, LexError> {
    if s.len() & 1 == 1 {
        return Err(LexError::OddHex);
    }
    // The regex admits only ASCII hex digits, so every pair parses.
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| LexError::OddHex))
        .collect()
}

/// Escapes `s` as a `.tasm` string literal (with quotes) that [`Tok::Str`] reads back exactly.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
