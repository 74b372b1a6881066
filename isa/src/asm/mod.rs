//! The `.tasm` assembler: logos lexer → lalrpop parser → checks against the instruction table.
//!
//! Text format (see `spec/isa.md`, "Assembly"): one item per line by convention,
//! `mnemonic key=value …` for instructions and `.dram`, `.meta`, `.tensor`, `.data` directives
//! for the container; comments start with `;` or `#`.

mod ast;
pub mod lexer;
mod lower;

use lalrpop_util::{lalrpop_mod, ParseError};
use lexer::Tok;
use logos::Logos;
use std::fmt;

lalrpop_mod!(
    #[allow(clippy::all, clippy::pedantic, unused_qualifications, missing_docs)]
    grammar,
    "/asm/grammar.rs"
);

pub use lexer::quote;

/// An assembly error at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsmError {
    /// Line (1-based).
    pub line: usize,
    /// Column in characters (1-based).
    pub col: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for AsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.msg)
    }
}

impl std::error::Error for AsmError {}

/// Line and column (1-based, columns in characters) of byte offset `at` in `src`.
pub(crate) fn line_col(src: &str, at: usize) -> (usize, usize) {
    let at = at.min(src.len());
    let before = src.get(..at).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Builds an error at byte offset `at` of `src`.
pub(crate) fn error_at(src: &str, at: usize, msg: impl Into<String>) -> AsmError {
    let (line, col) = line_col(src, at);
    AsmError {
        line,
        col,
        msg: msg.into(),
    }
}

fn parse(src: &str) -> Result<Vec<ast::Item>, AsmError> {
    let tokens = Tok::lexer(src)
        .spanned()
        .map(|(t, r)| t.map(|t| (r.start, t, r.end)).map_err(|e| (r.start, e)));
    let result = grammar::ItemsParser::new().parse(tokens);
    result.map_err(|e| match e {
        ParseError::InvalidToken { location } => error_at(src, location, "invalid token"),
        ParseError::UnrecognizedEof { location, expected } => error_at(
            src,
            location,
            format!("unexpected end of input; expected {}", expected.join(" or ")),
        ),
        ParseError::UnrecognizedToken {
            token: (l, t, _),
            expected,
        } => error_at(
            src,
            l,
            format!("unexpected {t}; expected {}", expected.join(" or ")),
        ),
        ParseError::ExtraToken { token: (l, t, _) } => error_at(src, l, format!("unexpected {t}")),
        ParseError::User { error: (at, e) } => error_at(src, at, e.to_string()),
    })
}

/// Assembles `.tasm` text into a validated [`crate::Program`].
pub fn assemble(src: &str) -> Result<crate::Program, AsmError> {
    lower::lower(src, parse(src)?)
}
