//! Syntax tree of `.tasm` text, before it is checked against the instruction table.

/// Byte range in the source.
pub type Span = (usize, usize);

/// What starts an item.
#[derive(Debug, Clone, PartialEq)]
pub enum Head {
    /// An instruction mnemonic.
    Mnemonic(String),
    /// A directive name (without the dot).
    Directive(String),
}

/// One instruction or directive with its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Mnemonic or directive.
    pub head: Head,
    /// Where the head is.
    pub span: Span,
    /// Arguments in source order.
    pub args: Vec<Arg>,
}

/// One argument, `key=value` or positional.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    /// Key, for `key=value`.
    pub key: Option<String>,
    /// The value.
    pub value: ArgValue,
    /// Where the argument is.
    pub span: Span,
}

/// An argument value.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgValue {
    /// Bare word (enum value, flag set, `none`).
    Word(String),
    /// Number text.
    Num(String),
    /// Operand text `space:dtype@addr`.
    Operand(String),
    /// String.
    Str(String),
    /// Hex bytes.
    Hex(Vec<u8>),
    /// `[n, …]` list of numbers.
    List(Vec<(String, Span)>),
}
