//! `dce`: erases pure ops (per the registry) whose results are all unused, to a fixpoint.

use super::{Pass, PassContext};
use crate::ir::Module;

/// Dead-code elimination.
pub struct Dce;

impl Pass for Dce {
    fn name(&self) -> &str {
        "dce"
    }

    fn run(&mut self, m: &mut Module, cx: &PassContext<'_>) -> Result<(), String> {
        loop {
            let uses = m.use_counts();
            // Reverse pre-order: users are visited before their definitions.
            let dead: Vec<_> = m
                .all_ops()
                .into_iter()
                .rev()
                .filter(|&o| {
                    let op = m.op(o);
                    cx.registry.is_pure(op.name())
                        && op.regions().is_empty()
                        && op.results().iter().all(|r| uses[r.index()] == 0)
                })
                .collect();
            if dead.is_empty() {
                return Ok(());
            }
            for o in dead {
                m.erase_op(o);
            }
        }
    }
}
