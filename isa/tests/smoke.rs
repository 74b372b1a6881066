//! Hand-checked examples of the assembler, codec and container.

use trainer_isa::names::{flags, Mode};
use trainer_isa::{assemble, disassemble, encode, tbin, DType, Instr, Opcode, Operand, Space};

#[test]
fn builder_and_accessors() {
    let i = Instr::build(Opcode::Matmul)
        .with("mode", Mode::Wg)
        .with("df", trainer_isa::names::Dataflow::Os)
        .flags("skip", flags::SKIP_IN | flags::SKIP_OUT)
        .with("dci", trainer_isa::names::Counter::None)
        .with("dcw", trainer_isa::names::Counter::Dc1)
        .with("m", 4u32)
        .with("k", 8u32)
        .with("n", 2u32)
        .with("a", Operand::new(Space::Ibuf, DType::F16, 0x40))
        .with("b", Operand::new(Space::Obuf, DType::F16, 0))
        .with("out", Operand::new(Space::Gbuf, DType::F32, 0x100))
        .finish()
        .unwrap();
    assert_eq!(i.enum_::<Mode>("mode"), Mode::Wg);
    assert_eq!(i.u32("k"), 8);
    assert!(i.has_flag("skip", flags::SKIP_OUT));
    assert!(i.operand("wmask").is_none());
    let bytes = encode(&i);
    assert_eq!(bytes.len(), Opcode::Matmul.def().encoded_len());
    assert_eq!(trainer_isa::decode_at(&bytes, 0).unwrap(), (i, bytes.len()));
}

#[test]
fn builder_reports_missing_and_unknown_fields() {
    assert!(Instr::build(Opcode::Fill).with("n", 1u32).finish().is_err());
    assert!(Instr::build(Opcode::Nop).with("x", 1u32).finish().is_err());
    assert!(Instr::build(Opcode::Tag)
        .with("layer", 70000u32)
        .with("phase", trainer_isa::names::Phase::Ff)
        .finish()
        .is_err());
}

#[test]
fn assemble_disassemble_roundtrip() {
    let src = r#"
        .dram 0x1000
        .meta "machine" "trainer-28nm"
        .tensor "w" role=param dtype=f32 shape=[2, 2] addr=0x10
        .data 0x10 x"0000803f" x"00000040"
        cfg.set reg=lr value=0.1   ; learning rate
        loop count=3
          fill n=4 value=-0.0 out=gbuf:f32@0
        endloop
        halt
    "#;
    let p = assemble(src).unwrap();
    assert_eq!(p.code.len(), 5);
    assert_eq!(p.code[0].f32("value"), 0.1);
    let text = disassemble(&p);
    assert_eq!(assemble(&text).unwrap(), p);
    let bytes = tbin::write(&p).unwrap();
    assert_eq!(tbin::read(&bytes).unwrap(), p);
}

#[test]
fn errors_carry_line_and_column() {
    let e = assemble("nop\n  conv mode=xx").unwrap_err();
    assert_eq!((e.line, e.col), (2, 8), "{e}");
    let e = assemble("nop\nfrob").unwrap_err();
    assert_eq!((e.line, e.col), (2, 1), "{e}");
    let e = assemble("loop count=2\nnop").unwrap_err();
    assert_eq!(e.line, 1, "{e}");
    let e = assemble("nop ?").unwrap_err();
    assert_eq!((e.line, e.col), (1, 5), "{e}");
}
