//! `cse`: within each block, replaces a pure, region-free op by an earlier identical one (same
//! name, operands, attributes and result types) and erases it.

use super::{Pass, PassContext};
use crate::ir::Module;
use std::collections::HashMap;

/// Common-subexpression elimination.
pub struct Cse;

impl Pass for Cse {
    fn name(&self) -> &str {
        "cse"
    }

    fn run(&mut self, m: &mut Module, cx: &PassContext<'_>) -> Result<(), String> {
        for op in m.all_ops() {
            for r in m.op(op).regions().to_vec() {
                for b in m.region(r).blocks().to_vec() {
                    let mut seen: HashMap<String, Vec<_>> = HashMap::new();
                    for o in m.block(b).ops().to_vec() {
                        let d = m.op(o);
                        if !cx.registry.is_pure(d.name()) || !d.regions().is_empty() {
                            continue;
                        }
                        let types: Vec<String> = d.results().iter().map(|&v| m.ty(v).to_string()).collect();
                        let key = format!("{}{:?}{:?}{:?}", d.name(), d.operands(), d.attrs, types);
                        match seen.get(&key) {
                            Some(earlier) => {
                                let (earlier, now) = (earlier.clone(), d.results().to_vec());
                                for (old, new) in now.into_iter().zip(earlier) {
                                    m.replace_all_uses(old, new);
                                }
                                m.erase_op(o);
                            }
                            None => {
                                seen.insert(key, d.results().to_vec());
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
