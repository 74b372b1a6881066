//! Printers for the two text forms.
//!
//! * Generic form ([`PrintOptions::generic`]): exactly MLIR's generic operation syntax, so
//!   `mlir-opt --allow-unregistered-dialect` parses it:
//!   `%0 = "tg.relu"(%arg0) : (tensor<1x4xf32>) -> tensor<1x4xf32>`.
//! * Custom form: a readable variant for snapshots:
//!   `%0 = tg.relu %arg0 : tensor<1x4xf32> -> tensor<1x4xf32>`, with `sym_name` shown as `@name`
//!   after the op name and regions written as `{ ... }` without parentheses.
//!
//! Values are numbered in print order (`%0`, `%1`, ... for results, `%arg0`, ... for block
//! arguments; multi-result ops print `%3:2` and uses `%3#1`); blocks are `^bb0`, `^bb1`, ... per
//! region. Every block prints its label. Locations print as trailing `loc(...)` when
//! [`PrintOptions::debug_info`] is set.

use crate::ir::attr::{write_attr_name, write_dict_body};
use crate::ir::{Attrs, BlockId, Module, OpId, RegionId, Type, ValueId};
use std::collections::HashMap;
use std::fmt::{self, Write};

/// What to print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrintOptions {
    /// MLIR generic form (else the custom form).
    pub generic: bool,
    /// Print operation locations as `loc(...)`.
    pub debug_info: bool,
}

impl PrintOptions {
    /// Generic form without locations.
    pub const GENERIC: PrintOptions = PrintOptions {
        generic: true,
        debug_info: false,
    };
    /// Custom form without locations.
    pub const CUSTOM: PrintOptions = PrintOptions {
        generic: false,
        debug_info: false,
    };
}

/// Prints the whole module.
pub fn print_module(m: &Module, opts: PrintOptions) -> String {
    let mut p = Printer::new(m, opts);
    p.op(m.top(), 0).expect("writing to a String cannot fail");
    p.out
}

/// Prints the generic form (shorthand for [`print_module`] with [`PrintOptions::GENERIC`]).
pub fn print_generic(m: &Module) -> String {
    print_module(m, PrintOptions::GENERIC)
}

/// Prints the custom form (shorthand for [`print_module`] with [`PrintOptions::CUSTOM`]).
pub fn print_custom(m: &Module) -> String {
    print_module(m, PrintOptions::CUSTOM)
}

struct Printer<'m> {
    m: &'m Module,
    opts: PrintOptions,
    out: String,
    /// Printed name of a value (`%0`, `%3#1`, `%arg2`).
    names: HashMap<ValueId, String>,
    /// Label of a block (`^bb1`).
    labels: HashMap<BlockId, String>,
    next_result: usize,
    next_arg: usize,
}

impl<'m> Printer<'m> {
    fn new(m: &'m Module, opts: PrintOptions) -> Self {
        Printer {
            m,
            opts,
            out: String::new(),
            names: HashMap::new(),
            labels: HashMap::new(),
            next_result: 0,
            next_arg: 0,
        }
    }

    fn name(&self, v: ValueId) -> &str {
        self.names.get(&v).map_or("%<<UNKNOWN>>", String::as_str)
    }

    fn op(&mut self, id: OpId, indent: usize) -> fmt::Result {
        let m = self.m;
        let op = m.op(id);
        self.out.push_str(&"  ".repeat(indent));
        if !op.results().is_empty() {
            let base = self.next_result;
            self.next_result += 1;
            let n = op.results().len();
            for (i, &r) in op.results().iter().enumerate() {
                let name = if n == 1 {
                    format!("%{base}")
                } else {
                    format!("%{base}#{i}")
                };
                self.names.insert(r, name);
            }
            write!(self.out, "%{base}")?;
            if n > 1 {
                write!(self.out, ":{n}")?;
            }
            self.out.push_str(" = ");
        }
        let operands: Vec<String> = op.operands().iter().map(|&v| self.name(v).to_string()).collect();
        let mut attrs = op.attrs.clone();
        if self.opts.generic {
            write!(self.out, "\"{}\"({})", op.name(), operands.join(", "))?;
        } else {
            self.out.push_str(op.name());
            if let Some(sym) = attrs.remove("sym_name").filter(|a| a.as_str().is_some()) {
                self.out.push_str(" @");
                write_attr_name(&mut self.out, sym.as_str().unwrap_or_default())?;
            }
            if !operands.is_empty() {
                write!(self.out, " {}", operands.join(", "))?;
            }
        }
        self.successors(op.successors())?;
        if !self.opts.generic {
            self.attr_dict(&attrs)?;
        }
        self.regions(op.regions(), indent)?;
        if self.opts.generic {
            self.attr_dict(&attrs)?;
        }
        let ins: Vec<&Type> = op.operands().iter().map(|&v| m.ty(v)).collect();
        let outs: Vec<&Type> = op.results().iter().map(|&v| m.ty(v)).collect();
        if self.opts.generic {
            write!(self.out, " : ({}) -> {}", join(&ins), results(&outs))?;
        } else if !ins.is_empty() || !outs.is_empty() {
            let ins = if ins.is_empty() {
                "()".to_string()
            } else {
                join(&ins)
            };
            write!(self.out, " : {ins}")?;
            if !outs.is_empty() {
                write!(self.out, " -> {}", results(&outs))?;
            }
        }
        if self.opts.debug_info {
            write!(self.out, " {}", op.loc)?;
        }
        self.out.push('\n');
        Ok(())
    }

    fn successors(&mut self, succ: &[BlockId]) -> fmt::Result {
        if succ.is_empty() {
            return Ok(());
        }
        let labels: Vec<&str> = succ
            .iter()
            .map(|b| self.labels.get(b).map_or("^<<UNKNOWN>>", String::as_str))
            .collect();
        let text = format!("[{}]", labels.join(", "));
        self.out.push_str(if self.opts.generic { "" } else { " " });
        self.out.push_str(&text);
        Ok(())
    }

    fn attr_dict(&mut self, attrs: &Attrs) -> fmt::Result {
        if attrs.is_empty() {
            return Ok(());
        }
        write!(self.out, " {}", DictBody(attrs))
    }

    fn regions(&mut self, regions: &[RegionId], indent: usize) -> fmt::Result {
        if regions.is_empty() {
            return Ok(());
        }
        self.out.push_str(if self.opts.generic { " (" } else { " " });
        for (i, &r) in regions.iter().enumerate() {
            if i > 0 {
                self.out.push_str(if self.opts.generic { ", " } else { " " });
            }
            self.region(r, indent)?;
        }
        if self.opts.generic {
            self.out.push(')');
        }
        Ok(())
    }

    fn region(&mut self, r: RegionId, indent: usize) -> fmt::Result {
        let m = self.m;
        let blocks = m.region(r).blocks();
        for (i, &b) in blocks.iter().enumerate() {
            self.labels.insert(b, format!("^bb{i}"));
        }
        self.out.push_str("{\n");
        for &b in blocks {
            self.block(b, indent)?;
        }
        self.out.push_str(&"  ".repeat(indent));
        self.out.push('}');
        Ok(())
    }

    fn block(&mut self, b: BlockId, indent: usize) -> fmt::Result {
        let m = self.m;
        let block = m.block(b);
        self.out.push_str(&"  ".repeat(indent));
        let label = self.labels[&b].clone();
        self.out.push_str(&label);
        if !block.args().is_empty() {
            let mut args = Vec::new();
            for &a in block.args() {
                let name = format!("%arg{}", self.next_arg);
                self.next_arg += 1;
                args.push(format!("{name}: {}", m.ty(a)));
                self.names.insert(a, name);
            }
            write!(self.out, "({})", args.join(", "))?;
        }
        self.out.push_str(":\n");
        for &o in block.ops() {
            self.op(o, indent + 1)?;
        }
        Ok(())
    }
}

struct DictBody<'a>(&'a Attrs);

impl fmt::Display for DictBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        write_dict_body(f, self.0)?;
        f.write_str("}")
    }
}

fn join(types: &[&Type]) -> String {
    types.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
}

fn results(types: &[&Type]) -> String {
    match types {
        [t] => t.to_string(),
        _ => format!("({})", join(types)),
    }
}
