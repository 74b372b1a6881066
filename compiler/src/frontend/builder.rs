//! Building a `tg.graph` from a frontend: inputs, parameters (with weights in the module's side
//! table), operations whose result types come from the `tg` shape rules, and the return.

use crate::dialect::tg_shapes;
use crate::ir::{
    Attribute, Attrs, BlockId, ElemType, InsertPoint, Location, Module, OperationState, TensorData, Type,
    ValueId,
};

/// Incrementally builds one `tg.graph` in a fresh [`Module`].
pub struct GraphBuilder {
    module: Module,
    block: BlockId,
}

impl GraphBuilder {
    /// A module holding an empty graph `name` whose entry block takes `inputs`; also returns the
    /// input values.
    pub fn new(name: &str, inputs: &[Type]) -> (Self, Vec<ValueId>) {
        let mut module = Module::new();
        let (_, block) = module.build_graph(name, inputs);
        let args = module.block(block).args().to_vec();
        (GraphBuilder { module, block }, args)
    }

    /// The type of a value.
    pub fn ty(&self, v: ValueId) -> &Type {
        self.module.ty(v)
    }

    /// Whether a weight of this name exists.
    pub fn has_weight(&self, name: &str) -> bool {
        self.module.weights.contains_key(name)
    }

    /// A `tg.param` of f32 data named `name` (unique per module), its data stored in the weight
    /// table.
    pub fn param(&mut self, name: &str, data: TensorData, loc: Location) -> ValueId {
        let shape: Vec<i64> = data.shape.iter().map(|&d| d as i64).collect();
        let st = OperationState::new("tg.param")
            .attr("name", Attribute::str(name))
            .results(&[Type::tensor(shape, ElemType::F32)])
            .loc(loc);
        self.module.weights.insert(name.to_string(), data);
        let op = self.module.insert_op(InsertPoint::End(self.block), st);
        self.module.op(op).result(0)
    }

    /// Appends `tg.<op>`; result types are inferred by the `tg` shape rules. Errors are the shape
    /// rule's message.
    pub fn op(
        &mut self,
        op: &str,
        operands: &[ValueId],
        attrs: Attrs,
        loc: Location,
    ) -> Result<Vec<ValueId>, String> {
        let name = format!("tg.{op}");
        let types: Vec<Type> = operands.iter().map(|&v| self.module.ty(v).clone()).collect();
        let results = tg_shapes::infer(&name, &types, &attrs)?;
        let mut st = OperationState::new(name)
            .operands(operands)
            .results(&results)
            .loc(loc);
        st.attrs = attrs;
        let id = self.module.insert_op(InsertPoint::End(self.block), st);
        Ok(self.module.op(id).results().to_vec())
    }

    /// Terminates the graph with `tg.return outputs` and returns the module.
    pub fn finish(mut self, outputs: &[ValueId]) -> Module {
        let st = OperationState::new("tg.return").operands(outputs);
        self.module.insert_op(InsertPoint::End(self.block), st);
        self.module
    }
}
