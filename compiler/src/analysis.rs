//! Graph analyses on petgraph: def-use order of the ops of a block, liveness (last use), and
//! block dominance within a region.

use crate::ir::{BlockId, Module, OpId, RegionId, ValueDef, ValueId};
use petgraph::algo::{dominators, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::HashMap;

/// The op of `block` that contains `op` (itself, or the ancestor nested in `block`).
pub fn ancestor_in_block(m: &Module, op: OpId, block: BlockId) -> Option<OpId> {
    let mut cur = op;
    loop {
        if m.op(cur).parent_block() == Some(block) {
            return Some(cur);
        }
        cur = m.parent_op(cur)?;
    }
}

/// Def-use graph of the ops of `block`: an edge `a → b` when `b` (or an op nested in it) uses a
/// result of `a`.
pub fn def_use_graph(m: &Module, block: BlockId) -> (DiGraph<OpId, ()>, HashMap<OpId, NodeIndex>) {
    let mut g = DiGraph::new();
    let idx: HashMap<OpId, NodeIndex> = m.block(block).ops().iter().map(|&o| (o, g.add_node(o))).collect();
    for &user in m.block(block).ops() {
        for nested in m.walk(user) {
            for &v in m.op(nested).operands() {
                if let ValueDef::OpResult(def, _) = m.value(v).def() {
                    if let Some(&d) = idx.get(&def) {
                        if def != user {
                            g.update_edge(d, idx[&user], ());
                        }
                    }
                }
            }
        }
    }
    (g, idx)
}

/// The ops of `block` in a topological order of their def-use graph (uses after definitions);
/// `Err(op)` names an op on a cycle.
pub fn topo_order(m: &Module, block: BlockId) -> Result<Vec<OpId>, OpId> {
    let (g, _) = def_use_graph(m, block);
    toposort(&g, None)
        .map(|order| order.into_iter().map(|n| g[n]).collect())
        .map_err(|c| g[c.node_id()])
}

/// For every value used in `block`, the position (index in the block) of its last use; uses in
/// nested regions count at the position of their ancestor op in `block`.
pub fn last_uses(m: &Module, block: BlockId) -> HashMap<ValueId, usize> {
    let mut last = HashMap::new();
    for (pos, &op) in m.block(block).ops().iter().enumerate() {
        for nested in m.walk(op) {
            for &v in m.op(nested).operands() {
                last.insert(v, pos);
            }
        }
    }
    last
}

/// Block dominance of one region (control flow along successor edges from the entry block).
pub struct BlockDominance {
    doms: Option<dominators::Dominators<NodeIndex>>,
    idx: HashMap<BlockId, NodeIndex>,
}

impl BlockDominance {
    /// Computes dominance for `region`.
    pub fn new(m: &Module, region: RegionId) -> Self {
        let blocks = m.region(region).blocks();
        let mut g: DiGraph<BlockId, ()> = DiGraph::new();
        let idx: HashMap<BlockId, NodeIndex> = blocks.iter().map(|&b| (b, g.add_node(b))).collect();
        for &b in blocks {
            for &op in m.block(b).ops() {
                for s in m.op(op).successors() {
                    if let Some(&t) = idx.get(s) {
                        g.update_edge(idx[&b], t, ());
                    }
                }
            }
        }
        let doms = blocks.first().map(|b| dominators::simple_fast(&g, idx[b]));
        BlockDominance { doms, idx }
    }

    /// Whether `a` dominates `b` (both in the region; a block dominates itself; unreachable
    /// blocks are dominated by nothing but themselves).
    pub fn dominates(&self, a: BlockId, b: BlockId) -> bool {
        if a == b {
            return true;
        }
        let (Some(doms), Some(&na), Some(&nb)) = (&self.doms, self.idx.get(&a), self.idx.get(&b)) else {
            return false;
        };
        doms.dominators(nb).is_some_and(|mut it| it.any(|d| d == na))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{ElemType, InsertPoint, OperationState, Type};

    #[test]
    fn order_liveness_dominance() {
        let mut m = Module::new();
        let t = Type::tensor([2], ElemType::F32);
        let (g, b0) = m.build_graph("g", std::slice::from_ref(&t));
        let x = m.block(b0).arg(0);
        let a = m.build_op(b0, "tg.relu", &[x], std::slice::from_ref(&t), []);
        let av = m.op(a).result(0);
        let c = m.build_op(b0, "tg.relu", &[av], std::slice::from_ref(&t), []);
        assert_eq!(topo_order(&m, b0).unwrap(), vec![a, c]);
        let r = m.op(g).regions()[0];
        let b1 = m.add_block(r, &[]);
        let b2 = m.add_block(r, &[]);
        m.insert_op(
            InsertPoint::End(b0),
            OperationState::new("x.br").successors(&[b1, b2]),
        );
        m.insert_op(
            InsertPoint::End(b1),
            OperationState::new("x.br").successors(&[b2]),
        );
        let last = last_uses(&m, b0);
        assert_eq!(last[&av], 1);
        assert_eq!(last[&x], 0);
        let d = BlockDominance::new(&m, r);
        assert!(d.dominates(b0, b2) && d.dominates(b0, b1));
        assert!(!d.dominates(b1, b2));
    }
}
