//! The MLIR-style IR: types, attributes, locations, and the operation/block/region arena.
//!
//! Build IR through [`Module`]: [`Module::build_graph`] creates a `tg.graph`, [`Module::build_op`]
//! appends operations, [`Module::insert_op`] with an [`OperationState`] gives full control
//! (successors, regions, locations, insertion point).

pub mod attr;
pub mod location;
pub mod op;
pub mod types;

pub use attr::{Attribute, Attrs, DenseElements, DenseValues};
pub use location::Location;
pub use op::{
    Block, BlockId, InsertPoint, Module, OpId, Operation, OperationState, Region, RegionId, TensorData,
    Value, ValueDef, ValueId, MODULE_OP,
};
pub use types::{ElemType, TensorType, Type, DYN};
