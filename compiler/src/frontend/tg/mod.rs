//! The `.tg` graph language: a small ONNX-like text format for hand-written networks.
//!
//! ```text
//! # comment
//! graph mlp(%x: f32[N, 64]) -> (%logits) {
//!   param %w1: f32[32, 64] init = he
//!   param %b1: f32[32]
//!   %h = gemm(%x, %w1, %b1) {trans_b = true}
//!   %a = relu(%h)
//!   ...
//! }
//! ```
//!
//! Statements are `param` declarations (weights created at compile time, `init = he | zeros |
//! ones`, default by rank) and operations `%r, ... = op(%a, ...) {attr = value, ...}`, where `op`
//! is a `tg` dialect op without its prefix and the attributes are that op's attributes. Symbolic
//! dimensions (`N`) are the batch size. Errors carry `line:column`.

pub mod ast;
pub mod lexer;
pub mod lower;

pub use lower::TgOptions;

lalrpop_util::lalrpop_mod!(
    #[allow(clippy::all, missing_docs, unused_qualifications)]
    grammar,
    "/frontend/tg/grammar.rs"
);

use lalrpop_util::ParseError;

/// An error in `.tg` text, located by 1-based line and column.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{line}:{col}: {msg}")]
pub struct TgError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    /// What is wrong.
    pub msg: String,
}

impl TgError {
    /// An error at byte `offset` of `src`.
    pub fn at(src: &str, offset: usize, msg: impl Into<String>) -> Self {
        let (line, col) = LineIndex::new(src).line_col(offset);
        TgError {
            line,
            col,
            msg: msg.into(),
        }
    }
}

/// Line starts of a source text, for 1-based line:column positions of byte offsets in
/// logarithmic time.
pub struct LineIndex<'a> {
    src: &'a str,
    /// Byte offset of the start of every line.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// The index of `src`.
    pub fn new(src: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(src.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { src, starts }
    }

    /// Line and column (in characters) of byte `offset`, both from 1.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        // Lexer and parser offsets are character boundaries; anything else counts as the end.
        let offset = if self.src.is_char_boundary(offset) {
            offset
        } else {
            self.src.len()
        };
        let line = self.starts.partition_point(|&s| s <= offset);
        let col = self.src[self.starts[line - 1]..offset].chars().count() + 1;
        (line, col)
    }
}

/// Parses and lowers the `.tg` text `src` (from a file named `file`) to a module holding one
/// `tg.graph`.
pub fn compile(src: &str, file: &str, opts: &TgOptions) -> Result<crate::ir::Module, TgError> {
    lower::lower(&parse(src)?, src, file, opts)
}

/// Parses the text of one `.tg` graph into its syntax tree.
pub fn parse(src: &str) -> Result<ast::Graph, TgError> {
    grammar::GraphParser::new()
        .parse(lexer::tokens(src))
        .map_err(|e| match e {
            ParseError::InvalidToken { location } => TgError::at(src, location, "invalid token"),
            ParseError::UnrecognizedEof { location, expected } => TgError::at(
                src,
                location,
                format!("unexpected end of input, expected {}", one_of(&expected)),
            ),
            ParseError::UnrecognizedToken {
                token: (lo, _, hi),
                expected,
            } if expected.is_empty() => {
                TgError::at(src, lo, format!("unexpected `{}` after the graph", &src[lo..hi]))
            }
            ParseError::UnrecognizedToken {
                token: (lo, _, hi),
                expected,
            } => TgError::at(
                src,
                lo,
                format!("unexpected `{}`, expected {}", &src[lo..hi], one_of(&expected)),
            ),
            ParseError::ExtraToken { token: (lo, _, hi) } => {
                TgError::at(src, lo, format!("unexpected `{}` after the graph", &src[lo..hi]))
            }
            ParseError::User { error } => TgError::at(src, error.offset, error.msg),
        })
}

/// `a, b or c` from lalrpop's expected-token list (`"value"` → `value`).
fn one_of(expected: &[String]) -> String {
    let names: Vec<String> = expected
        .iter()
        .map(|e| e.trim_matches('"').replace("\\\"", "\""))
        .collect();
    match names.as_slice() {
        [] => "nothing".into(),
        [one] => format!("`{one}`"),
        [init @ .., last] => format!(
            "{} or `{last}`",
            init.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_small_graph() {
        let g = parse(
            "# a net\ngraph g(%x: f32[N, 4]) -> (%y) {\n  param %w: f32[2, 4] init = he\n  \
             %y = gemm(%x, %w) {trans_b = true, alpha = 1.0, pads = [1, -1]}\n}\n",
        )
        .unwrap();
        assert_eq!(g.name, "g");
        assert_eq!(
            g.inputs[0].ty.dims,
            vec![ast::Dim::Sym("N".into()), ast::Dim::Fixed(4)]
        );
        assert_eq!(g.body.len(), 2);
        let ast::Stmt::Op { attrs, .. } = &g.body[1] else {
            panic!("not an op")
        };
        assert_eq!(
            attrs[2].1,
            ast::AttrValue::List(vec![ast::AttrValue::Int(1), ast::AttrValue::Int(-1)])
        );
    }

    #[test]
    fn errors_have_line_and_column() {
        let e = parse("graph g(%x: f32[1]) -> (%x) {\n  %y = relu(%x\n}").unwrap_err();
        assert_eq!((e.line, e.col), (3, 1), "{e}");
        assert!(e.msg.contains("unexpected `}`"), "{e}");
        let e = parse("graph g() -> () {\n  %y = relu(%x) $\n}").unwrap_err();
        assert_eq!((e.line, e.col), (2, 17), "{e}");
        let e = parse("graph g() -> () {\n  %y = f() {a = 99999999999999999999}\n}").unwrap_err();
        assert!(e.msg.contains("out of range"), "{e}");
        let e = parse("graph g() -> () {").unwrap_err();
        assert!(e.msg.contains("end of input"), "{e}");
    }
}
