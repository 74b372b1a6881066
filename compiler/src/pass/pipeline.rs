//! Parsing of textual pass pipelines (lalrpop grammar `pipeline.lalrpop`).
//!
//! Syntax: passes separated by commas, each with optional options in braces separated by
//! spaces (MLIR style): `canonicalize,cse,sdt-prune{sparsity=0.9 interval=100}`; the list may be
//! wrapped in `builtin.module(...)`.

use lalrpop_util::{lalrpop_mod, ParseError};

lalrpop_mod!(
    #[allow(clippy::all, clippy::pedantic, unused)]
    grammar,
    "/pass/pipeline.rs"
);

/// One pass of a pipeline with its options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassSpec {
    /// Pass name.
    pub name: String,
    /// `key=value` options in order.
    pub options: Vec<(String, String)>,
    /// Byte offset of the name in the pipeline text.
    pub pos: usize,
}

/// A malformed pipeline: column (1-based) and message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pass pipeline:{col}: {msg}")]
pub struct PipelineError {
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub msg: String,
}

/// Parses a pipeline string.
pub fn parse_pipeline(text: &str) -> Result<Vec<PassSpec>, PipelineError> {
    let col = |p: usize| text[..p.min(text.len())].chars().count() + 1;
    grammar::PipelineParser::new().parse(text).map_err(|e| match e {
        ParseError::InvalidToken { location } => PipelineError {
            col: col(location),
            msg: "invalid character".into(),
        },
        ParseError::UnrecognizedEof { location, expected } => PipelineError {
            col: col(location),
            msg: format!("unexpected end, expected {}", expected.join(" or ")),
        },
        ParseError::UnrecognizedToken {
            token: (p, t, _),
            expected,
        } => PipelineError {
            col: col(p),
            msg: format!("unexpected '{}', expected {}", t.1, expected.join(" or ")),
        },
        ParseError::ExtraToken { token: (p, t, _) } => PipelineError {
            col: col(p),
            msg: format!("unexpected '{}'", t.1),
        },
        ParseError::User { error } => PipelineError {
            col: 1,
            msg: error.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_options_and_wrapper() {
        let p = parse_pipeline("builtin.module(canonicalize, sdt-prune{sparsity=0.9 mode=dpf},cse)").unwrap();
        let names: Vec<_> = p.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["canonicalize", "sdt-prune", "cse"]);
        assert_eq!(
            p[1].options,
            vec![("sparsity".into(), "0.9".into()), ("mode".into(), "dpf".into())]
        );
        assert!(parse_pipeline("").unwrap().is_empty());
        let e = parse_pipeline("cse,{").unwrap_err();
        assert_eq!(e.col, 5, "{e}");
        assert!(parse_pipeline("cse{a=}").is_err());
    }
}
