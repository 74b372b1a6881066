//! Text forms of the IR: MLIR generic syntax and a readable custom form, printer and parser.

pub mod ast;
pub mod lexer;
pub mod literal;
pub mod parse;
pub mod print;

pub use parse::{parse_module, TextError};
pub use print::{print_custom, print_generic, print_module, PrintOptions};
