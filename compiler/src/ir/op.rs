//! The IR arena: a [`Module`] owns every operation, block, region and SSA value; the handles
//! [`OpId`], [`BlockId`], [`RegionId`] and [`ValueId`] index into it.
//!
//! Structure follows MLIR: an operation has operands (values), results (values), an attribute
//! dictionary, successor blocks and regions; a region holds blocks; a block holds block arguments
//! (values) and an ordered list of operations. The module itself is a `builtin.module` operation
//! ([`Module::top`]) whose single region has one block ([`Module::body`]).

use super::attr::{Attribute, Attrs};
use super::location::Location;
use super::types::Type;
use std::collections::BTreeMap;

macro_rules! handle {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);

        impl $name {
            /// Position in the module's arena.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

handle!(
    /// Handle of an operation.
    OpId
);
handle!(
    /// Handle of a block.
    BlockId
);
handle!(
    /// Handle of a region.
    RegionId
);
handle!(
    /// Handle of an SSA value (operation result or block argument).
    ValueId
);

/// Where a value is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueDef {
    /// Result number `1` of operation `0`.
    OpResult(OpId, usize),
    /// Argument number `1` of block `0`.
    BlockArg(BlockId, usize),
}

/// An SSA value.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    ty: Type,
    def: ValueDef,
}

impl Value {
    /// The value's type.
    pub fn ty(&self) -> &Type {
        &self.ty
    }

    /// Where the value is defined.
    pub fn def(&self) -> ValueDef {
        self.def
    }
}

/// An operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    name: String,
    operands: Vec<ValueId>,
    results: Vec<ValueId>,
    /// Attribute dictionary (sorted by name).
    pub attrs: Attrs,
    successors: Vec<BlockId>,
    regions: Vec<RegionId>,
    /// Source location.
    pub loc: Location,
    parent: Option<BlockId>,
    erased: bool,
}

impl Operation {
    /// Full name, `dialect.op`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Dialect prefix of the name (text before the first `.`).
    pub fn dialect(&self) -> &str {
        self.name.split_once('.').map_or("", |(d, _)| d)
    }

    /// Operand values.
    pub fn operands(&self) -> &[ValueId] {
        &self.operands
    }

    /// Operand `i`. Panics if out of range (the caller checked the arity, e.g. via the verifier).
    pub fn operand(&self, i: usize) -> ValueId {
        self.operands[i]
    }

    /// Result values.
    pub fn results(&self) -> &[ValueId] {
        &self.results
    }

    /// Result `i`. Panics if out of range (the caller built the op and knows its arity).
    pub fn result(&self, i: usize) -> ValueId {
        self.results[i]
    }

    /// Attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        self.attrs.get(name)
    }

    /// Successor blocks (branch targets).
    pub fn successors(&self) -> &[BlockId] {
        &self.successors
    }

    /// Nested regions.
    pub fn regions(&self) -> &[RegionId] {
        &self.regions
    }

    /// The block containing this operation (`None` for the top module op or a detached op).
    pub fn parent_block(&self) -> Option<BlockId> {
        self.parent
    }

    /// True once [`Module::erase_op`] removed the operation.
    pub fn is_erased(&self) -> bool {
        self.erased
    }
}

/// A basic block.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Block {
    args: Vec<ValueId>,
    ops: Vec<OpId>,
    parent: Option<RegionId>,
}

impl Block {
    /// Block arguments.
    pub fn args(&self) -> &[ValueId] {
        &self.args
    }

    /// Argument `i`. Panics if out of range.
    pub fn arg(&self, i: usize) -> ValueId {
        self.args[i]
    }

    /// Operations in order.
    pub fn ops(&self) -> &[OpId] {
        &self.ops
    }

    /// The region containing this block.
    pub fn parent_region(&self) -> Option<RegionId> {
        self.parent
    }
}

/// A region: an ordered list of blocks, the first being the entry block.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Region {
    blocks: Vec<BlockId>,
    parent: Option<OpId>,
}

impl Region {
    /// Blocks in order.
    pub fn blocks(&self) -> &[BlockId] {
        &self.blocks
    }

    /// The operation owning this region.
    pub fn parent_op(&self) -> Option<OpId> {
        self.parent
    }
}

/// Dense tensor data kept beside the IR (weights), so the text form never holds megabytes.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TensorData {
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major f32 data.
    pub data: Vec<f32>,
}

/// Everything needed to create an operation; see [`Module::insert_op`].
#[derive(Clone, Debug, Default)]
pub struct OperationState {
    /// Full op name, `dialect.op`.
    pub name: String,
    /// Operand values.
    pub operands: Vec<ValueId>,
    /// Result types (one result value is created per type).
    pub result_types: Vec<Type>,
    /// Attributes.
    pub attrs: Attrs,
    /// Successor blocks.
    pub successors: Vec<BlockId>,
    /// Number of (initially empty) regions to create.
    pub num_regions: usize,
    /// Location.
    pub loc: Location,
}

impl OperationState {
    /// State for an op named `name` with nothing else.
    pub fn new(name: impl Into<String>) -> Self {
        OperationState {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Sets the operands.
    pub fn operands(mut self, v: &[ValueId]) -> Self {
        self.operands = v.to_vec();
        self
    }

    /// Sets the result types.
    pub fn results(mut self, t: &[Type]) -> Self {
        self.result_types = t.to_vec();
        self
    }

    /// Adds one attribute.
    pub fn attr(mut self, name: impl Into<String>, a: Attribute) -> Self {
        self.attrs.insert(name.into(), a);
        self
    }

    /// Sets the successors.
    pub fn successors(mut self, b: &[BlockId]) -> Self {
        self.successors = b.to_vec();
        self
    }

    /// Sets the number of regions.
    pub fn regions(mut self, n: usize) -> Self {
        self.num_regions = n;
        self
    }

    /// Sets the location.
    pub fn loc(mut self, loc: Location) -> Self {
        self.loc = loc;
        self
    }
}

/// Where [`Module::insert_op`] puts a new operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertPoint {
    /// Append at the end of the block.
    End(BlockId),
    /// Insert before an existing operation.
    Before(OpId),
    /// Insert after an existing operation.
    After(OpId),
}

/// Name of the top-level operation.
pub const MODULE_OP: &str = "builtin.module";

/// A module: arenas of IR objects plus the weight side table.
#[derive(Clone, Debug, PartialEq)]
pub struct Module {
    ops: Vec<Operation>,
    blocks: Vec<Block>,
    regions: Vec<Region>,
    values: Vec<Value>,
    top: OpId,
    users: Users,
    /// Weight/initializer data referenced by name from `tg.param` ops (`name` attribute).
    pub weights: BTreeMap<String, TensorData>,
}

/// Candidate users of every value (by [`ValueId::index`]): every operation that has had the value
/// as an operand, so a superset of its users (entries go stale when operands change or ops are
/// erased; readers check). Lets [`Module::replace_all_uses`] visit only those operations.
/// Derived data, ignored by `==`.
#[derive(Clone, Debug, Default)]
struct Users(Vec<Vec<OpId>>);

impl PartialEq for Users {
    fn eq(&self, _: &Users) -> bool {
        true
    }
}

impl Users {
    fn add(&mut self, v: ValueId, op: OpId) {
        let i = v.index();
        if self.0.len() <= i {
            self.0.resize_with(i + 1, Vec::new);
        }
        self.0[i].push(op);
    }

    fn take(&mut self, v: ValueId) -> Vec<OpId> {
        self.0.get_mut(v.index()).map(std::mem::take).unwrap_or_default()
    }
}

impl Default for Module {
    fn default() -> Self {
        Module::new()
    }
}

impl Module {
    /// An empty module: a `builtin.module` op with one region holding one empty block.
    pub fn new() -> Module {
        let mut m = Module {
            ops: Vec::new(),
            blocks: Vec::new(),
            regions: Vec::new(),
            values: Vec::new(),
            top: OpId(0),
            users: Users::default(),
            weights: BTreeMap::new(),
        };
        let top = m.create_op(OperationState::new(MODULE_OP).regions(1));
        m.top = top;
        let r = m.ops[top.index()].regions[0];
        m.add_block(r, &[]);
        m
    }

    /// The `builtin.module` operation.
    pub fn top(&self) -> OpId {
        self.top
    }

    /// The module body block (holds graphs / functions).
    pub fn body(&self) -> BlockId {
        let r = self.ops[self.top.index()].regions[0];
        self.regions[r.index()].blocks[0]
    }

    /// Operation data.
    pub fn op(&self, id: OpId) -> &Operation {
        &self.ops[id.index()]
    }

    /// Mutable operation data (attributes, location).
    pub fn op_mut(&mut self, id: OpId) -> &mut Operation {
        &mut self.ops[id.index()]
    }

    /// Block data.
    pub fn block(&self, id: BlockId) -> &Block {
        &self.blocks[id.index()]
    }

    /// Region data.
    pub fn region(&self, id: RegionId) -> &Region {
        &self.regions[id.index()]
    }

    /// Value data.
    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id.index()]
    }

    /// Type of a value.
    pub fn ty(&self, id: ValueId) -> &Type {
        &self.values[id.index()].ty
    }

    /// Number of values ever created (valid [`ValueId`]s are below this).
    pub fn num_values(&self) -> usize {
        self.values.len()
    }

    /// Number of blocks ever created (valid [`BlockId`]s are below this).
    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Number of operations ever created, including erased ones.
    pub fn num_ops(&self) -> usize {
        self.ops.len()
    }

    /// The operation defining `v`, if it is an op result.
    pub fn defining_op(&self, v: ValueId) -> Option<OpId> {
        match self.values[v.index()].def {
            ValueDef::OpResult(op, _) => Some(op),
            ValueDef::BlockArg(..) => None,
        }
    }

    /// The operation whose region contains `op` (`None` for the top module op).
    pub fn parent_op(&self, op: OpId) -> Option<OpId> {
        let b = self.ops[op.index()].parent?;
        let r = self.blocks[b.index()].parent?;
        self.regions[r.index()].parent
    }

    fn new_value(&mut self, ty: Type, def: ValueDef) -> ValueId {
        let id = ValueId(self.values.len() as u32);
        self.values.push(Value { ty, def });
        id
    }

    fn create_op(&mut self, st: OperationState) -> OpId {
        let id = OpId(self.ops.len() as u32);
        let results = st
            .result_types
            .into_iter()
            .enumerate()
            .map(|(i, t)| self.new_value(t, ValueDef::OpResult(id, i)))
            .collect();
        for &v in &st.operands {
            self.users.add(v, id);
        }
        self.ops.push(Operation {
            name: st.name,
            operands: st.operands,
            results,
            attrs: st.attrs,
            successors: st.successors,
            regions: Vec::new(),
            loc: st.loc,
            parent: None,
            erased: false,
        });
        for _ in 0..st.num_regions {
            self.add_region(id);
        }
        id
    }

    /// Creates an operation and inserts it at `at`. Returns its handle.
    pub fn insert_op(&mut self, at: InsertPoint, st: OperationState) -> OpId {
        let id = self.create_op(st);
        let (block, pos) = match at {
            InsertPoint::End(b) => (b, self.blocks[b.index()].ops.len()),
            InsertPoint::Before(o) | InsertPoint::After(o) => {
                let b = self.ops[o.index()]
                    .parent
                    .expect("insertion anchor must be inside a block");
                let p = self.position_in_block(o);
                (
                    b,
                    if matches!(at, InsertPoint::After(_)) {
                        p + 1
                    } else {
                        p
                    },
                )
            }
        };
        self.blocks[block.index()].ops.insert(pos, id);
        self.ops[id.index()].parent = Some(block);
        id
    }

    /// Convenience: appends `name(operands) {attrs} -> result_types` to `block`.
    ///
    /// ```
    /// use trainer_compiler::ir::{Module, Type, ElemType, Attribute};
    /// let mut m = Module::new();
    /// let (_g, body) = m.build_graph("main", &[Type::tensor([1, 4], ElemType::F32)]);
    /// let x = m.block(body).arg(0);
    /// let relu = m.build_op(body, "tg.relu", &[x], &[m.ty(x).clone()], []);
    /// let r = m.op(relu).result(0);
    /// m.build_op(body, "tg.return", &[r], &[], []);
    /// assert_eq!(m.ty(r).to_string(), "tensor<1x4xf32>");
    /// ```
    pub fn build_op<'a>(
        &mut self,
        block: BlockId,
        name: &str,
        operands: &[ValueId],
        result_types: &[Type],
        attrs: impl IntoIterator<Item = (&'a str, Attribute)>,
    ) -> OpId {
        let mut st = OperationState::new(name).operands(operands).results(result_types);
        st.attrs = attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        self.insert_op(InsertPoint::End(block), st)
    }

    /// Appends a `tg.graph` op named `name` to the module body, with one entry block whose
    /// arguments have `input_types`. Returns the graph op and its entry block.
    pub fn build_graph(&mut self, name: &str, input_types: &[Type]) -> (OpId, BlockId) {
        let st = OperationState::new("tg.graph")
            .attr("sym_name", Attribute::str(name))
            .regions(1);
        let g = self.insert_op(InsertPoint::End(self.body()), st);
        let r = self.ops[g.index()].regions[0];
        let b = self.add_block(r, input_types);
        (g, b)
    }

    /// Adds an empty region to `op`.
    pub fn add_region(&mut self, op: OpId) -> RegionId {
        let id = RegionId(self.regions.len() as u32);
        self.regions.push(Region {
            blocks: Vec::new(),
            parent: Some(op),
        });
        self.ops[op.index()].regions.push(id);
        id
    }

    /// Appends a block with arguments of `arg_types` to `region`.
    pub fn add_block(&mut self, region: RegionId, arg_types: &[Type]) -> BlockId {
        let id = BlockId(self.blocks.len() as u32);
        let args = arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| self.new_value(t.clone(), ValueDef::BlockArg(id, i)))
            .collect();
        self.blocks.push(Block {
            args,
            ops: Vec::new(),
            parent: Some(region),
        });
        self.regions[region.index()].blocks.push(id);
        id
    }

    /// Index of `op` in its block. Panics if detached.
    pub fn position_in_block(&self, op: OpId) -> usize {
        let b = self.ops[op.index()].parent.expect("op is not in a block");
        self.blocks[b.index()]
            .ops
            .iter()
            .position(|&o| o == op)
            .expect("parent block lists its ops")
    }

    /// Sets or replaces an attribute.
    pub fn set_attr(&mut self, op: OpId, name: &str, a: Attribute) {
        self.ops[op.index()].attrs.insert(name.to_string(), a);
    }

    /// Replaces operand `i` of `op`.
    pub fn set_operand(&mut self, op: OpId, i: usize, v: ValueId) {
        self.ops[op.index()].operands[i] = v;
        self.users.add(v, op);
    }

    /// Replaces all operands of `op`.
    pub fn set_operands(&mut self, op: OpId, v: Vec<ValueId>) {
        for &x in &v {
            self.users.add(x, op);
        }
        self.ops[op.index()].operands = v;
    }

    /// Replaces all successors of `op`.
    pub fn set_successors(&mut self, op: OpId, b: Vec<BlockId>) {
        self.ops[op.index()].successors = b;
    }

    /// Changes the type of a value (used by shape inference).
    pub fn set_type(&mut self, v: ValueId, ty: Type) {
        self.values[v.index()].ty = ty;
    }

    /// Every live (non-erased) operation nested anywhere under `op`, in pre-order, `op` first.
    pub fn walk(&self, op: OpId) -> Vec<OpId> {
        let mut out = Vec::new();
        let mut stack = vec![op];
        while let Some(o) = stack.pop() {
            out.push(o);
            for &r in self.ops[o.index()].regions.iter().rev() {
                for &b in self.regions[r.index()].blocks.iter().rev() {
                    stack.extend(self.blocks[b.index()].ops.iter().rev());
                }
            }
        }
        out
    }

    /// All live operations of the module in pre-order (the module op first).
    pub fn all_ops(&self) -> Vec<OpId> {
        self.walk(self.top)
    }

    /// Every use of `v` as `(op, operand index)`, over all live operations, in pre-order.
    pub fn uses(&self, v: ValueId) -> Vec<(OpId, usize)> {
        let mut users: Vec<OpId> = self
            .users
            .0
            .get(v.index())
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .copied()
            .filter(|&o| !self.ops[o.index()].erased && self.ops[o.index()].operands.contains(&v))
            .collect();
        users.sort_unstable();
        users.dedup();
        if users.len() > 1 {
            users.sort_by_cached_key(|&o| self.preorder_key(o));
        }
        users
            .into_iter()
            .flat_map(|o| {
                self.ops[o.index()]
                    .operands
                    .iter()
                    .enumerate()
                    .filter(move |(_, &x)| x == v)
                    .map(move |(i, _)| (o, i))
            })
            .collect()
    }

    /// Sort key of a live operation in the pre-order of [`Module::walk`]: (region, block, position)
    /// at every nesting level from the top.
    fn preorder_key(&self, op: OpId) -> Vec<(usize, usize, usize)> {
        let mut key = Vec::new();
        let mut o = op;
        while let Some(b) = self.ops[o.index()].parent {
            let pos = self.position_in_block(o);
            let Some(r) = self.blocks[b.index()].parent else {
                break;
            };
            let region = &self.regions[r.index()];
            let bi = region.blocks.iter().position(|&x| x == b).unwrap_or(0);
            let Some(p) = region.parent else { break };
            let ri = self.ops[p.index()]
                .regions
                .iter()
                .position(|&x| x == r)
                .unwrap_or(0);
            key.push((ri, bi, pos));
            o = p;
        }
        key.reverse();
        key
    }

    /// Use counts of every value over all live operations (indexed by [`ValueId::index`]).
    pub fn use_counts(&self) -> Vec<usize> {
        let mut n = vec![0; self.values.len()];
        for o in self.all_ops() {
            for v in &self.ops[o.index()].operands {
                n[v.index()] += 1;
            }
        }
        n
    }

    /// Replaces every use of `old` by `new` (visiting only the candidate users of `old`).
    pub fn replace_all_uses(&mut self, old: ValueId, new: ValueId) {
        if old == new {
            return;
        }
        let mut candidates = self.users.take(old);
        candidates.sort_unstable();
        candidates.dedup();
        for o in candidates {
            let op = &mut self.ops[o.index()];
            if op.erased {
                continue;
            }
            let mut used = false;
            for v in &mut op.operands {
                if *v == old {
                    *v = new;
                    used = true;
                }
            }
            if used {
                self.users.add(new, o);
            }
        }
    }

    /// Removes `op` (and everything nested in it) from its block. Its results must be unused.
    pub fn erase_op(&mut self, op: OpId) {
        if let Some(b) = self.ops[op.index()].parent.take() {
            // A block lists each of its ops once.
            let ops = &mut self.blocks[b.index()].ops;
            if let Some(p) = ops.iter().position(|&o| o == op) {
                ops.remove(p);
            }
        }
        for o in self.walk(op) {
            self.ops[o.index()].erased = true;
        }
    }

    /// Graph ops (`tg.graph` and others) directly in the module body, by `sym_name`.
    pub fn lookup_symbol(&self, name: &str) -> Option<OpId> {
        self.blocks[self.body().index()]
            .ops
            .iter()
            .copied()
            .find(|&o| self.ops[o.index()].attr("sym_name").and_then(Attribute::as_str) == Some(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ElemType;

    #[test]
    fn build_insert_replace_erase() {
        let mut m = Module::new();
        let t = Type::tensor([2], ElemType::F32);
        let (g, b) = m.build_graph("main", std::slice::from_ref(&t));
        assert_eq!(m.lookup_symbol("main"), Some(g));
        let x = m.block(b).arg(0);
        let id = m.build_op(b, "tg.identity", &[x], std::slice::from_ref(&t), []);
        let y = m.op(id).result(0);
        let ret = m.build_op(b, "tg.return", &[y], &[], []);
        let relu = m.insert_op(
            InsertPoint::Before(ret),
            OperationState::new("tg.relu").operands(&[x]).results(&[t]),
        );
        assert_eq!(m.block(b).ops(), &[id, relu, ret]);
        assert_eq!(m.uses(y), vec![(ret, 0)]);
        m.replace_all_uses(y, m.op(relu).result(0));
        m.erase_op(id);
        assert!(m.op(id).is_erased());
        assert_eq!(m.block(b).ops(), &[relu, ret]);
        assert_eq!(m.use_counts()[x.index()], 1);
        assert_eq!(m.parent_op(relu), Some(g));
        assert_eq!(m.defining_op(m.op(ret).operand(0)), Some(relu));
    }
}
