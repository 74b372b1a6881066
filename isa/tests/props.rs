//! Property tests: codec and container round trips, and robustness against arbitrary bytes.

use proptest::prelude::*;
use trainer_isa::program::{Role, Segment, TensorEntry};
use trainer_isa::{
    assemble, decode_all, decode_at, disassemble, encode, tbin, DType, FieldKind, Instr, Opcode, Operand,
    Program, Space, Value, TABLE,
};

fn operand(optional: bool) -> BoxedStrategy<Operand> {
    let present = (1..Space::ALL.len(), 0..DType::ALL.len(), any::<u32>())
        .prop_map(|(s, d, a)| Operand::new(Space::ALL[s], DType::ALL[d], a));
    if optional {
        prop_oneof![Just(Operand::NONE), present].boxed()
    } else {
        present.boxed()
    }
}

fn value(kind: FieldKind) -> BoxedStrategy<Value> {
    match kind {
        FieldKind::U8 => any::<u8>().prop_map(Value::from).boxed(),
        FieldKind::U16 => any::<u16>().prop_map(Value::from).boxed(),
        FieldKind::U32 => any::<u32>().prop_map(Value::from).boxed(),
        FieldKind::F32 => any::<u32>().prop_map(Value::F32).boxed(),
        FieldKind::Enum(e) => (0..e.names.len() as u8).prop_map(Value::Enum).boxed(),
        FieldKind::Flags(f) => (0..=f.valid_mask()).prop_map(Value::Flags).boxed(),
        FieldKind::Operand => operand(false).prop_map(Value::Operand).boxed(),
        FieldKind::OptOperand => operand(true).prop_map(Value::Operand).boxed(),
    }
}

/// Any instruction with random valid fields.
fn instr() -> impl Strategy<Value = Instr> {
    (0..TABLE.len()).prop_flat_map(|i| {
        let def = &TABLE[i];
        let vals: Vec<_> = def.fields.iter().map(|f| value(f.kind)).collect();
        vals.prop_map(move |args| Instr::new(def.op, args).expect("generated values fit"))
    })
}

/// Instructions without loop structure, wrapped in balanced loops.
fn code() -> impl Strategy<Value = Vec<Instr>> {
    let flat = instr().prop_filter("no loop markers", |i| {
        !matches!(i.op(), Opcode::Loop | Opcode::EndLoop)
    });
    (prop::collection::vec(flat, 0..24), any::<u32>(), any::<bool>()).prop_map(|(mut body, count, wrap)| {
        if wrap {
            body.insert(
                0,
                Instr::build(Opcode::Loop)
                    .with("count", count)
                    .finish()
                    .expect("valid loop"),
            );
            body.push(Instr::build(Opcode::EndLoop).finish().expect("valid endloop"));
        }
        body
    })
}

fn text() -> impl Strategy<Value = String> {
    "[ -~\\n\\t\"\\\\é\\u{7f}]{0,12}"
}

fn program() -> impl Strategy<Value = Program> {
    let tensor = (
        text(),
        0..Role::ALL.len(),
        0..DType::ALL.len(),
        prop::collection::vec(0u32..8, 0..4),
        0u32..4096,
    )
        .prop_map(|(name, r, d, shape, addr)| TensorEntry {
            name,
            role: Role::ALL[r],
            dtype: DType::ALL[d],
            shape,
            addr,
        });
    (
        code(),
        prop::collection::vec(tensor, 0..4),
        prop::collection::vec((text(), text()), 0..4),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..3),
    )
        .prop_map(|(code, tensors, meta, data)| {
            let mut seen = std::collections::HashSet::new();
            let tensors = tensors
                .into_iter()
                .filter(|t| seen.insert(t.name.clone()))
                .collect();
            let mut keys = std::collections::HashSet::new();
            let meta = meta.into_iter().filter(|(k, _)| keys.insert(k.clone())).collect();
            let data = data
                .into_iter()
                .enumerate()
                .map(|(i, bytes)| Segment {
                    addr: i as u32 * 100,
                    bytes,
                })
                .collect();
            Program {
                dram_size: 1 << 16,
                code,
                data,
                tensors,
                meta,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_inverts_encode(i in instr()) {
        let bytes = encode(&i);
        prop_assert_eq!(bytes.len(), i.def().encoded_len());
        prop_assert_eq!(decode_at(&bytes, 0).unwrap(), (i, bytes.len()));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(code) = decode_all(&bytes) {
            let again: Vec<u8> = code.iter().flat_map(encode).collect();
            prop_assert_eq!(again, bytes);
        }
    }

    #[test]
    fn tbin_roundtrip(p in program()) {
        let bytes = tbin::write(&p).unwrap();
        prop_assert_eq!(tbin::read(&bytes).unwrap(), p);
    }

    #[test]
    fn assemble_inverts_disassemble(p in program()) {
        let bytes = tbin::write(&p).unwrap();
        let text = disassemble(&tbin::read(&bytes).unwrap());
        let back = assemble(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(tbin::write(&back).unwrap(), bytes);
    }

    #[test]
    fn tbin_reader_survives_mutation(p in program(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
        let mut bytes = tbin::write(&p).unwrap();
        for (at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x;
        }
        if let Ok(q) = tbin::read(&bytes) {
            prop_assert_eq!(tbin::write(&q).unwrap(), bytes.clone());
        }
        let _ = tbin::read(&bytes[..cut % (bytes.len() + 1)]);
    }

    #[test]
    fn tbin_reader_survives_arbitrary_bytes(mut bytes in prop::collection::vec(any::<u8>(), 0..512), head in any::<bool>()) {
        if head {
            bytes.splice(0..0, b"TRNB\x01\x00\x00\x00".iter().copied());
        }
        let _ = tbin::read(&bytes);
    }
}
