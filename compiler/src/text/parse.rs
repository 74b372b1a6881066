//! Parser for both text forms: logos tokens → lalrpop syntax tree → [`Module`] with resolved
//! names. Errors carry `file:line:col`.
//!
//! Value names are scoped per region (like MLIR, so sibling graphs may both use `%0`); uses may
//! refer forward within their region. Successor labels refer to blocks of the same region.

use super::ast::{AstBlock, AstOp, AstRegion, Name, UserError};
use super::lexer::{tokens, Tok};
use crate::ir::{
    BlockId, InsertPoint, Location, Module, OpId, OperationState, RegionId, Type, ValueId, MODULE_OP,
};
use lalrpop_util::{lalrpop_mod, ParseError as LrError};
use std::collections::HashMap;

lalrpop_mod!(
    #[allow(clippy::all, clippy::pedantic, unused)]
    grammar,
    "/text/ir.rs"
);

/// A text error at a position.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{file}:{line}:{col}: {msg}")]
pub struct TextError {
    /// File name as given to the parser.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    /// What is wrong.
    pub msg: String,
}

/// 1-based line and column of byte offset `pos` in `src`.
pub fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let before = &src[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Parses a module in either text form. `file` is only used in error messages.
///
/// A file holding exactly one `builtin.module` op is that module; otherwise the top-level ops
/// become the body of a new module (as `mlir-opt` does).
pub fn parse_module(src: &str, file: &str) -> Result<Module, TextError> {
    let err = |pos: usize, msg: String| {
        let (line, col) = line_col(src, pos);
        TextError {
            file: file.to_string(),
            line,
            col,
            msg,
        }
    };
    let toks = tokens(src)
        .into_iter()
        .map(|r| r.map_err(|(p, _)| UserError::new(p, "unrecognised character")));
    let ops = grammar::FileParser::new().parse(toks).map_err(|e| match e {
        LrError::User { error } => err(error.pos, error.msg),
        LrError::InvalidToken { location } => err(location, "invalid token".into()),
        LrError::UnrecognizedEof { location, expected } => err(
            location,
            format!("unexpected end of input, expected {}", expected.join(" or ")),
        ),
        LrError::UnrecognizedToken {
            token: (p, t, _),
            expected,
        } => err(
            p,
            format!("unexpected {}, expected {}", describe(&t), expected.join(" or ")),
        ),
        LrError::ExtraToken { token: (p, t, _) } => err(p, format!("unexpected {}", describe(&t))),
    })?;
    let mut b = Builder {
        m: Module::new(),
        scopes: Vec::new(),
    };
    let single_module = matches!(ops.as_slice(), [op] if op.name == MODULE_OP);
    let result = if single_module {
        b.fill_module(&ops[0])
    } else {
        let region = AstRegion {
            blocks: vec![AstBlock {
                label: None,
                args: Vec::new(),
                ops,
            }],
        };
        let r = b.m.op(b.m.top()).regions()[0];
        b.fill_region_existing(r, &region)
    };
    result.map_err(|e| err(e.pos, e.msg))?;
    Ok(b.m)
}

fn describe(t: &Tok<'_>) -> String {
    match t {
        Tok::ResultDef(s)
        | Tok::ValueId(s)
        | Tok::CaretId(s)
        | Tok::Symbol(s)
        | Tok::BareId(s)
        | Tok::Str(s)
        | Tok::Int(s)
        | Tok::Hex(s)
        | Tok::Float(s)
        | Tok::TensorType(s)
        | Tok::BangType(s) => format!("'{s}'"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Names visible in one region, plus uses waiting for the region to close.
#[derive(Default)]
struct Scope {
    values: HashMap<String, ValueId>,
    blocks: HashMap<String, BlockId>,
    pending_operands: Vec<(OpId, Vec<Name>, Vec<Type>)>,
    pending_successors: Vec<(OpId, Vec<Name>)>,
}

struct Builder {
    m: Module,
    scopes: Vec<Scope>,
}

impl Builder {
    fn fill_module(&mut self, op: &AstOp) -> Result<(), UserError> {
        if !op.operands.is_empty() || op.results.is_some() || op.regions.len() != 1 {
            return Err(UserError::new(
                op.pos,
                "builtin.module takes one region and no values",
            ));
        }
        let top = self.m.top();
        self.m.op_mut(top).attrs = op.attrs.iter().cloned().collect();
        self.m.op_mut(top).loc = op.loc.clone().unwrap_or_default();
        let r = self.m.op(top).regions()[0];
        let region = &op.regions[0];
        match region.blocks.as_slice() {
            [blk] if blk.args.is_empty() => self.fill_region_existing(r, region),
            _ => Err(UserError::new(
                op.pos,
                "builtin.module needs exactly one block without arguments",
            )),
        }
    }

    /// Fills the module region, whose single block already exists.
    fn fill_region_existing(&mut self, r: RegionId, region: &AstRegion) -> Result<(), UserError> {
        let b = self.m.region(r).blocks()[0];
        self.scopes.push(Scope::default());
        self.fill_block(b, &region.blocks[0])?;
        self.close_scope()
    }

    fn region(&mut self, r: RegionId, region: &AstRegion) -> Result<(), UserError> {
        self.scopes.push(Scope::default());
        let mut blocks = Vec::new();
        for blk in &region.blocks {
            let types: Vec<_> = blk.args.iter().map(|(_, t)| t.clone()).collect();
            let b = self.m.add_block(r, &types);
            if let Some(l) = &blk.label {
                let scope = self.scopes.last_mut().expect("scope pushed above");
                if scope.blocks.insert(l.text.clone(), b).is_some() {
                    return Err(UserError::new(
                        l.pos,
                        format!("redefinition of block '{}'", l.text),
                    ));
                }
            }
            blocks.push(b);
        }
        for (b, blk) in blocks.into_iter().zip(&region.blocks) {
            self.fill_block(b, blk)?;
        }
        self.close_scope()
    }

    fn define(&mut self, name: &Name, v: ValueId) -> Result<(), UserError> {
        let scope = self.scopes.last_mut().expect("a scope is open");
        if scope.values.insert(name.text.clone(), v).is_some() {
            return Err(UserError::new(
                name.pos,
                format!("redefinition of value '{}'", name.text),
            ));
        }
        Ok(())
    }

    fn fill_block(&mut self, b: BlockId, blk: &AstBlock) -> Result<(), UserError> {
        let args = self.m.block(b).args().to_vec();
        for ((name, _), v) in blk.args.iter().zip(args) {
            self.define(name, v)?;
        }
        for op in &blk.ops {
            self.op(b, op)?;
        }
        Ok(())
    }

    fn op(&mut self, b: BlockId, op: &AstOp) -> Result<(), UserError> {
        let (ins, outs) = op.sig.clone().unwrap_or_default();
        if ins.len() != op.operands.len() {
            return Err(UserError::new(
                op.pos,
                format!(
                    "'{}' has {} operands but {} operand types",
                    op.name,
                    op.operands.len(),
                    ins.len()
                ),
            ));
        }
        let n_results = op.results.as_ref().map_or(0, |(_, n)| *n);
        if outs.len() != n_results {
            return Err(UserError::new(
                op.pos,
                format!(
                    "'{}' defines {n_results} results but has {} result types",
                    op.name,
                    outs.len()
                ),
            ));
        }
        let st = OperationState {
            name: op.name.clone(),
            operands: Vec::new(),
            result_types: outs,
            attrs: op.attrs.iter().cloned().collect(),
            successors: Vec::new(),
            num_regions: op.regions.len(),
            loc: op.loc.clone().unwrap_or(Location::Unknown),
        };
        let id = self.m.insert_op(InsertPoint::End(b), st);
        if let Some((name, n)) = &op.results {
            let results = self.m.op(id).results().to_vec();
            if *n == 1 {
                self.define(name, results[0])?;
            } else {
                for (i, v) in results.into_iter().enumerate() {
                    let n = Name {
                        text: format!("{}#{i}", name.text),
                        pos: name.pos,
                    };
                    self.define(&n, v)?;
                }
            }
        }
        let scope = self.scopes.last_mut().expect("a scope is open");
        scope.pending_operands.push((id, op.operands.clone(), ins));
        scope.pending_successors.push((id, op.successors.clone()));
        let regions = self.m.op(id).regions().to_vec();
        for (r, ast) in regions.into_iter().zip(&op.regions) {
            self.region(r, ast)?;
        }
        Ok(())
    }

    fn lookup(&self, name: &Name) -> Result<ValueId, UserError> {
        self.scopes
            .iter()
            .rev()
            .find_map(|s| s.values.get(&name.text).copied())
            .ok_or_else(|| UserError::new(name.pos, format!("use of undefined value '{}'", name.text)))
    }

    fn close_scope(&mut self) -> Result<(), UserError> {
        let scope = self.scopes.last().expect("a scope is open");
        let operands = scope.pending_operands.clone();
        let successors = scope.pending_successors.clone();
        for (op, names, types) in operands {
            let mut vals = Vec::new();
            for (n, t) in names.iter().zip(types) {
                let v = self.lookup(n)?;
                if *self.m.ty(v) != t {
                    return Err(UserError::new(
                        n.pos,
                        format!("'{}' has type {} but is used as {t}", n.text, self.m.ty(v)),
                    ));
                }
                vals.push(v);
            }
            self.m.set_operands(op, vals);
        }
        let scope = self.scopes.last().expect("a scope is open");
        for (op, names) in successors {
            let blocks = names
                .iter()
                .map(|n| {
                    scope.blocks.get(&n.text).copied().ok_or_else(|| {
                        UserError::new(n.pos, format!("reference to undefined block '{}'", n.text))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.m.set_successors(op, blocks);
        }
        self.scopes.pop();
        Ok(())
    }
}
