//! Tokens of the `.tg` graph language (a logos lexer).

use logos::Logos;

/// A lexical error: the byte offset of a character sequence that forms no token.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LexError {
    /// Byte offset of the offending text.
    pub offset: usize,
    /// Why it is not a token (empty: no token starts here).
    pub msg: String,
}

/// A token of the `.tg` language. `#` starts a comment that runs to the end of the line.
#[derive(Logos, Clone, Debug, PartialEq)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip r"#[^\n]*")]
#[logos(error = LexError)]
pub enum Tok<'a> {
    /// `graph`.
    #[token("graph")]
    Graph,
    /// `param`.
    #[token("param")]
    Param,
    /// `init`.
    #[token("init")]
    Init,
    /// A value name `%x` (without the `%`).
    #[regex(r"%[A-Za-z0-9_.]+", |lex| &lex.slice()[1..])]
    Value(&'a str),
    /// An identifier: op, attribute, element type or symbolic dimension name.
    #[regex(r"[A-Za-z_][A-Za-z0-9_.]*")]
    Ident(&'a str),
    /// An integer literal.
    #[regex(r"-?[0-9]+", |lex| lex.slice().parse::<i64>().map_err(|_| out_of_range(lex)))]
    Int(i64),
    /// A float literal (with a fraction or an exponent).
    #[regex(r"-?[0-9]+\.[0-9]+([eE][+-]?[0-9]+)?|-?[0-9]+[eE][+-]?[0-9]+", |lex| lex.slice().parse::<f64>().ok())]
    Float(f64),
    /// A double-quoted string without escapes (the quotes removed).
    #[regex(r#""[^"\\\n]*""#, |lex| { let s = lex.slice(); &s[1..s.len() - 1] })]
    Str(&'a str),
    /// `(`.
    #[token("(")]
    LParen,
    /// `)`.
    #[token(")")]
    RParen,
    /// `{`.
    #[token("{")]
    LBrace,
    /// `}`.
    #[token("}")]
    RBrace,
    /// `[`.
    #[token("[")]
    LBracket,
    /// `]`.
    #[token("]")]
    RBracket,
    /// `,`.
    #[token(",")]
    Comma,
    /// `:`.
    #[token(":")]
    Colon,
    /// `=`.
    #[token("=")]
    Eq,
    /// `->`.
    #[token("->")]
    Arrow,
}

fn out_of_range<'a>(lex: &logos::Lexer<'a, Tok<'a>>) -> LexError {
    LexError {
        offset: lex.span().start,
        msg: format!("integer `{}` out of range", lex.slice()),
    }
}

/// The token stream in the `(start, token, end)` form lalrpop expects.
pub fn tokens(src: &str) -> impl Iterator<Item = Result<(usize, Tok<'_>, usize), LexError>> {
    Tok::lexer(src).spanned().map(|(tok, span)| match tok {
        Ok(t) => Ok((span.start, t, span.end)),
        Err(e) if !e.msg.is_empty() => Err(e),
        Err(_) => Err(LexError {
            offset: span.start,
            msg: format!("unexpected character(s) `{}`", &src[span]),
        }),
    })
}
