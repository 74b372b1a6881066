//! Syntax tree produced by the grammar; names are still unresolved text with byte offsets.

use crate::ir::{Attribute, Location, Type};

/// A name with the byte offset where it appears.
#[derive(Clone, Debug, PartialEq)]
pub struct Name {
    /// The text (`%0`, `%3#1`, `^bb2`).
    pub text: String,
    /// Byte offset in the source.
    pub pos: usize,
}

/// One parsed operation.
#[derive(Clone, Debug, PartialEq)]
pub struct AstOp {
    /// Byte offset of the operation's first token.
    pub pos: usize,
    /// Result group name and count (`%3:2 =` gives `("%3", 2)`).
    pub results: Option<(Name, usize)>,
    /// Op name.
    pub name: String,
    /// Operand uses.
    pub operands: Vec<Name>,
    /// Successor labels.
    pub successors: Vec<Name>,
    /// Attributes (properties and discardable attributes merged).
    pub attrs: Vec<(String, Attribute)>,
    /// Regions.
    pub regions: Vec<AstRegion>,
    /// Operand and result types, when written.
    pub sig: Option<(Vec<Type>, Vec<Type>)>,
    /// Trailing location.
    pub loc: Option<Location>,
}

/// A region.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AstRegion {
    /// Blocks in order.
    pub blocks: Vec<AstBlock>,
}

/// A block.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AstBlock {
    /// Label (absent for an implicit entry block).
    pub label: Option<Name>,
    /// Arguments with types.
    pub args: Vec<(Name, Type)>,
    /// Operations.
    pub ops: Vec<AstOp>,
}

/// Nested literal list inside `dense<...>`.
#[derive(Clone, Debug, PartialEq)]
pub enum DenseLit {
    /// A scalar literal with its byte offset.
    Scalar(Scalar, usize),
    /// A bracketed list.
    List(Vec<DenseLit>),
}

/// A scalar literal inside `dense<...>`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    /// Decimal integer.
    Int(i64),
    /// Hex literal (integer or float bits).
    Hex(u64),
    /// Decimal float.
    Float(f64),
    /// Boolean.
    Bool(bool),
}

/// A parse error raised inside a grammar action.
#[derive(Clone, Debug, PartialEq)]
pub struct UserError {
    /// Byte offset.
    pub pos: usize,
    /// Message.
    pub msg: String,
}

impl UserError {
    /// An error at `pos`.
    pub fn new(pos: usize, msg: impl Into<String>) -> Self {
        UserError { pos, msg: msg.into() }
    }
}
