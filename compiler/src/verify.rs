//! The verifier: checks a whole module against a [`Registry`] and reports every violation, each
//! with the op name and location.
//!
//! Checks: registered dialects know the op (ops of unknown dialects are errors unless allowed);
//! operand/result/region counts; attribute presence and kinds; terminators last in their block;
//! successors in the same region; SSA validity (operands defined, not erased, and dominating the
//! use: earlier in the same block, in an enclosing block before the ancestor op, or in a
//! dominating block); then the op's own rule (e.g. the `tg` shape rules).

use crate::analysis::BlockDominance;
use crate::dialect::Registry;
use crate::ir::{Location, Module, OpId, RegionId, ValueDef, ValueId};
use std::collections::HashMap;
use std::fmt;

/// One violation.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// The offending op.
    pub op: OpId,
    /// Its name.
    pub op_name: String,
    /// Its location.
    pub loc: Location,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: '{}': {}", self.loc, self.op_name, self.msg)
    }
}

/// All violations found in a module.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct VerifyError {
    /// The violations in op pre-order.
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "verification failed with {} error(s)", self.diagnostics.len())?;
        for d in &self.diagnostics {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}

/// Verifier settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Accept ops of dialects the registry does not know (like `--allow-unregistered-dialect`).
    pub allow_unregistered: bool,
}

/// Verifies `m`; `Err` lists every violation.
pub fn verify(m: &Module, reg: &Registry, opts: VerifyOptions) -> Result<(), VerifyError> {
    let mut v = Verifier {
        m,
        doms: HashMap::new(),
        out: Vec::new(),
    };
    for op in m.all_ops() {
        v.op(op, reg, opts);
    }
    if v.out.is_empty() {
        Ok(())
    } else {
        Err(VerifyError { diagnostics: v.out })
    }
}

struct Verifier<'m> {
    m: &'m Module,
    doms: HashMap<RegionId, BlockDominance>,
    out: Vec<Diagnostic>,
}

impl Verifier<'_> {
    fn report(&mut self, op: OpId, msg: String) {
        let o = self.m.op(op);
        self.out.push(Diagnostic {
            op,
            op_name: o.name().to_string(),
            loc: o.loc.clone(),
            msg,
        });
    }

    fn op(&mut self, id: OpId, reg: &Registry, opts: VerifyOptions) {
        let m = self.m;
        let o = m.op(id);
        self.structure(id);
        for (i, &v) in o.operands().iter().enumerate() {
            if let Err(msg) = self.check_use(id, v) {
                self.report(id, format!("operand {i}: {msg}"));
            }
        }
        let Some(def) = reg.lookup(o.name()) else {
            if reg.has_dialect(o.dialect()) {
                self.report(id, format!("unknown op in registered dialect '{}'", o.dialect()));
            } else if !opts.allow_unregistered {
                self.report(id, format!("op of unregistered dialect '{}'", o.dialect()));
            }
            return;
        };
        let counts = [
            ("operands", def.operands, o.operands().len()),
            ("results", def.results, o.results().len()),
        ];
        for (what, want, n) in counts {
            if !want.allows(n) {
                self.report(id, format!("expected {want} {what}, found {n}"));
            }
        }
        if o.regions().len() != def.regions {
            self.report(
                id,
                format!("expected {} regions, found {}", def.regions, o.regions().len()),
            );
        }
        for rule in &def.attrs {
            match o.attr(&rule.name) {
                None if rule.required => {
                    self.report(id, format!("missing attribute '{}'", rule.name));
                }
                Some(a) if !rule.kind.matches(a) => self.report(
                    id,
                    format!(
                        "attribute '{}' must be {}, found {a}",
                        rule.name,
                        rule.kind.name()
                    ),
                ),
                _ => {}
            }
        }
        if def.terminator {
            if let Some(b) = o.parent_block() {
                if m.block(b).ops().last() != Some(&id) {
                    self.report(id, "terminator is not the last op of its block".into());
                }
            }
        }
        let counts_ok = def.operands.allows(o.operands().len()) && def.results.allows(o.results().len());
        if let (Some(f), true) = (def.verify, counts_ok) {
            for msg in f(m, id) {
                self.report(id, msg);
            }
        }
    }

    /// Successors and region parents.
    fn structure(&mut self, id: OpId) {
        let m = self.m;
        let o = m.op(id);
        let region = o.parent_block().and_then(|b| m.block(b).parent_region());
        for (i, &s) in o.successors().iter().enumerate() {
            if s.index() >= m.num_blocks() || m.block(s).parent_region() != region {
                self.report(id, format!("successor {i} is not a block of the same region"));
            }
        }
    }

    /// Whether `v` is a valid operand of `user`: defined, live, and dominating the use.
    fn check_use(&mut self, user: OpId, v: ValueId) -> Result<(), String> {
        let m = self.m;
        if v.index() >= m.num_values() {
            return Err(format!("value #{} does not exist", v.0));
        }
        let (def_block, def_pos) = match m.value(v).def() {
            ValueDef::OpResult(d, _) => {
                let o = m.op(d);
                let Some(b) = o.parent_block().filter(|_| !o.is_erased()) else {
                    return Err(format!("uses a result of erased op '{}'", o.name()));
                };
                (b, Some(m.position_in_block(d)))
            }
            ValueDef::BlockArg(b, _) => (b, None),
        };
        // Walk up from the user: at each level, the op in that block and its position.
        let mut cur = user;
        while let Some(b) = m.op(cur).parent_block() {
            let pos = m.position_in_block(cur);
            if b == def_block {
                return match def_pos {
                    Some(dp) if dp >= pos => Err("use before definition".into()),
                    _ => Ok(()),
                };
            }
            if let Some(r) = m.block(b).parent_region() {
                if m.block(def_block).parent_region() == Some(r) {
                    return if self.dominance(r).dominates(def_block, b) {
                        Ok(())
                    } else {
                        Err("definition does not dominate the use".into())
                    };
                }
            }
            match m.parent_op(cur) {
                Some(p) => cur = p,
                None => break,
            }
        }
        Err("value is not visible here (defined in another region)".into())
    }

    fn dominance(&mut self, r: RegionId) -> &BlockDominance {
        let m = self.m;
        self.doms.entry(r).or_insert_with(|| BlockDominance::new(m, r))
    }
}
