//! Per-op definitions and the dialect registry the verifier checks against.

use crate::ir::{Attribute, Module, OpId};
use std::collections::{BTreeMap, BTreeSet};

/// How many operands, results or regions an op takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    /// Exactly n.
    Exact(usize),
    /// Between lo and hi inclusive.
    Range(usize, usize),
    /// n or more.
    AtLeast(usize),
}

impl Arity {
    /// Whether `n` is allowed.
    pub fn allows(self, n: usize) -> bool {
        match self {
            Arity::Exact(k) => n == k,
            Arity::Range(lo, hi) => (lo..=hi).contains(&n),
            Arity::AtLeast(k) => n >= k,
        }
    }
}

impl std::fmt::Display for Arity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arity::Exact(k) => write!(f, "{k}"),
            Arity::Range(lo, hi) => write!(f, "{lo}–{hi}"),
            Arity::AtLeast(0) => write!(f, "any"),
            Arity::AtLeast(k) => write!(f, "≥{k}"),
        }
    }
}

/// The kind an attribute must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrKind {
    /// Anything.
    Any,
    /// Integer.
    Int,
    /// Number (integer or float).
    Number,
    /// Boolean.
    Bool,
    /// String.
    Str,
    /// Array of integers.
    Ints,
    /// Array of strings.
    Strs,
    /// Any array.
    Array,
    /// Dense elements.
    Dense,
    /// Type.
    Type,
}

impl AttrKind {
    /// Whether `a` has this kind.
    pub fn matches(self, a: &Attribute) -> bool {
        match self {
            AttrKind::Any => true,
            AttrKind::Int => matches!(a, Attribute::Int(_)),
            AttrKind::Number => a.as_f64().is_some(),
            AttrKind::Bool => matches!(a, Attribute::Bool(_)),
            AttrKind::Str => matches!(a, Attribute::Str(_)),
            AttrKind::Ints => a.as_ints().is_some(),
            AttrKind::Strs => a
                .as_array()
                .is_some_and(|v| v.iter().all(|x| x.as_str().is_some())),
            AttrKind::Array => matches!(a, Attribute::Array(_)),
            AttrKind::Dense => matches!(a, Attribute::Dense(_)),
            AttrKind::Type => matches!(a, Attribute::Type(_)),
        }
    }

    /// Name used in messages and the spec.
    pub fn name(self) -> &'static str {
        match self {
            AttrKind::Any => "any",
            AttrKind::Int => "int",
            AttrKind::Number => "number",
            AttrKind::Bool => "bool",
            AttrKind::Str => "string",
            AttrKind::Ints => "int array",
            AttrKind::Strs => "string array",
            AttrKind::Array => "array",
            AttrKind::Dense => "dense",
            AttrKind::Type => "type",
        }
    }
}

/// One attribute rule of an op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrRule {
    /// Attribute name.
    pub name: String,
    /// Required kind.
    pub kind: AttrKind,
    /// Whether the attribute must be present.
    pub required: bool,
}

/// Extra verification of one op; returns one message per violation.
pub type VerifyFn = fn(&Module, OpId) -> Vec<String>;

/// Definition of one op.
#[derive(Clone, Debug)]
pub struct OpDef {
    /// Full name, `dialect.op`.
    pub name: String,
    /// One-line semantics (also rendered into `spec/ir.md`).
    pub summary: String,
    /// Operand count.
    pub operands: Arity,
    /// Result count.
    pub results: Arity,
    /// Region count.
    pub regions: usize,
    /// Attribute rules.
    pub attrs: Vec<AttrRule>,
    /// No side effects: unused results make it dead, equal instances may be merged.
    pub pure: bool,
    /// Must be the last op of its block.
    pub terminator: bool,
    /// Op-specific checks (shape rules, ...).
    pub verify: Option<VerifyFn>,
}

impl OpDef {
    /// A definition with the given name, summary and arities; no attributes, not pure.
    pub fn new(name: &str, summary: &str, operands: Arity, results: Arity) -> Self {
        OpDef {
            name: name.to_string(),
            summary: summary.to_string(),
            operands,
            results,
            regions: 0,
            attrs: Vec::new(),
            pure: false,
            terminator: false,
            verify: None,
        }
    }

    /// Adds a required attribute.
    pub fn req(mut self, name: &str, kind: AttrKind) -> Self {
        self.attrs.push(AttrRule {
            name: name.to_string(),
            kind,
            required: true,
        });
        self
    }

    /// Adds an optional attribute.
    pub fn opt(mut self, name: &str, kind: AttrKind) -> Self {
        self.attrs.push(AttrRule {
            name: name.to_string(),
            kind,
            required: false,
        });
        self
    }

    /// Marks the op side-effect free.
    pub fn pure(mut self) -> Self {
        self.pure = true;
        self
    }

    /// Marks the op a block terminator.
    pub fn terminator(mut self) -> Self {
        self.terminator = true;
        self
    }

    /// Sets the region count.
    pub fn regions(mut self, n: usize) -> Self {
        self.regions = n;
        self
    }

    /// Sets the op-specific verifier.
    pub fn verify_with(mut self, f: VerifyFn) -> Self {
        self.verify = Some(f);
        self
    }
}

/// Registered dialects and their ops.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    dialects: BTreeSet<String>,
    ops: BTreeMap<String, OpDef>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers a dialect with its ops.
    pub fn register(&mut self, dialect: &str, ops: Vec<OpDef>) {
        self.dialects.insert(dialect.to_string());
        for op in ops {
            self.ops.insert(op.name.clone(), op);
        }
    }

    /// Whether `dialect` is registered.
    pub fn has_dialect(&self, dialect: &str) -> bool {
        self.dialects.contains(dialect)
    }

    /// The definition of op `name`.
    pub fn lookup(&self, name: &str) -> Option<&OpDef> {
        self.ops.get(name)
    }

    /// Whether op `name` is registered and pure.
    pub fn is_pure(&self, name: &str) -> bool {
        self.lookup(name).is_some_and(|d| d.pure)
    }

    /// The ops of one dialect, sorted by name.
    pub fn ops_of<'a>(&'a self, dialect: &'a str) -> impl Iterator<Item = &'a OpDef> + 'a {
        self.ops
            .values()
            .filter(move |d| d.name.split_once('.').map(|(p, _)| p) == Some(dialect))
    }
}
