//! Syntax tree of a `.tg` file (one graph), with byte spans for diagnostics.

/// A byte range in the source text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub lo: usize,
    /// One past the last byte.
    pub hi: usize,
}

/// `graph NAME(%in: TYPE, ...) -> (%out, ...) { STMT* }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    /// Graph name.
    pub name: String,
    /// Real inputs (data), with their types.
    pub inputs: Vec<Typed>,
    /// Output value names.
    pub outputs: Vec<Name>,
    /// Parameters and operations, in order.
    pub body: Vec<Stmt>,
}

/// A value name with its source span.
#[derive(Clone, Debug, PartialEq)]
pub struct Name {
    /// The name without `%`.
    pub name: String,
    /// Where it is written.
    pub span: Span,
}

/// A value name with a type: `%x: f32[N,1,28,28]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Typed {
    /// The value.
    pub name: Name,
    /// Its type.
    pub ty: TypeSpec,
}

/// A tensor type `ELEM[d0, d1, ...]`; `f32[]` is a scalar.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeSpec {
    /// Element type name (`f32`, `f16`, `i64`, ...).
    pub elem: String,
    /// Dimensions.
    pub dims: Vec<Dim>,
    /// Where the type is written.
    pub span: Span,
}

/// One dimension: a number or a symbol (a symbol is the batch size, set at compile time).
#[derive(Clone, Debug, PartialEq)]
pub enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A symbolic size such as `N`.
    Sym(String),
}

/// A statement of the graph body.
#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `param %w: f32[6,1,5,5] init = he`.
    Param {
        /// The parameter.
        value: Typed,
        /// Initializer name (`he`, `zeros`, `ones`); default by rank.
        init: Option<Name>,
    },
    /// `%y = conv(%x, %w) {stride = [1, 1]}`, or several results `%a, %b = op(...)`.
    Op {
        /// Result names.
        results: Vec<Name>,
        /// Op name (a `tg` dialect op without the `tg.` prefix).
        op: Name,
        /// Operand names.
        operands: Vec<Name>,
        /// Attributes in source order.
        attrs: Vec<(Name, AttrValue)>,
    },
}

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// Quoted string.
    Str(String),
    /// Bare word (`true`/`false` are booleans, any other word a string).
    Word(String),
    /// `[v, ...]`.
    List(Vec<AttrValue>),
}
