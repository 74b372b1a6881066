//! The `trn` dialect: the hardware-level program. `trn.program` holds the tensor table
//! (`trn.tensor`) and one `trn.entry` per entry point; an entry's body is a list of Trainer
//! instructions, one op `trn.<mnemonic>` per instruction, whose attributes are the instruction's
//! fields. The instruction ops are generated from the ISA table (`trainer_isa::TABLE`), the single
//! source of truth for encoder, decoder, assembler and this dialect.

use super::registry::{Arity, AttrKind as K, OpDef};

/// Every `trn` op.
pub fn ops() -> Vec<OpDef> {
    let none = Arity::Exact(0);
    let mut v = vec![
        OpDef::new("trn.program", "A lowered program: DRAM layout size, precision, layer names; holds `trn.tensor` and `trn.entry` ops.", none, none)
            .regions(1)
            .req("sym_name", K::Str)
            .opt("dram_size", K::Int)
            .opt("precision", K::Str)
            .opt("layers", K::Strs),
        OpDef::new("trn.tensor", "A tensor-table entry: DRAM address, shape, dtype, role and initialiser (`zeros`, `ones`, `weight:NAME`).", none, none)
            .req("name", K::Str)
            .req("role", K::Str)
            .req("dtype", K::Str)
            .req("shape", K::Ints)
            .req("addr", K::Int)
            .opt("init", K::Str),
        OpDef::new("trn.entry", "An entry point (`prune`, `train`, `eval`): an instruction list, `trn.loop` … `trn.endloop` bracketing loop bodies.", none, none)
            .regions(1)
            .req("sym_name", K::Str),
    ];
    for def in trainer_isa::TABLE {
        let mut op = OpDef::new(&format!("trn.{}", def.mnemonic), def.summary, none, none);
        for f in def.fields {
            op = op.opt(f.name, K::Any);
        }
        v.push(op);
    }
    v
}
