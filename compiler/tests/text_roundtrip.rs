//! Print → parse → print stability of both text forms, on hand-built and random modules, and
//! parse errors with line:column.

use proptest::prelude::*;
use trainer_compiler::ir::{
    Attribute, DenseElements, ElemType, InsertPoint, Location, Module, OperationState, Type,
};
use trainer_compiler::text::{parse_module, print_module, PrintOptions};

fn t(shape: &[i64]) -> Type {
    Type::tensor(shape.to_vec(), ElemType::F32)
}

/// A small conv → bn → relu → pool → gemm network with every attribute kind.
fn sample() -> Module {
    let mut m = Module::new();
    let (_, b) = m.build_graph("main", &[t(&[1, 3, 8, 8])]);
    let x = m.block(b).arg(0);
    let w = m.build_op(
        b,
        "tg.param",
        &[],
        &[t(&[4, 3, 3, 3])],
        [
            ("name", Attribute::str("conv1.weight")),
            ("role", Attribute::str("weight")),
        ],
    );
    let w = m.op(w).result(0);
    let conv = m.insert_op(
        InsertPoint::End(b),
        OperationState::new("tg.conv")
            .operands(&[x, w])
            .results(&[t(&[1, 4, 4, 4])])
            .attr("strides", Attribute::ints(&[2, 2]))
            .attr("pads", Attribute::ints(&[1, 1, 1, 1]))
            .attr("dilations", Attribute::ints(&[1, 1]))
            .attr("group", Attribute::Int(1))
            .loc(Location::Name("conv1".into())),
    );
    let c = m.op(conv).result(0);
    let k = m.build_op(
        b,
        "tg.constant",
        &[],
        &[t(&[4])],
        [(
            "value",
            Attribute::Dense(DenseElements::floats(
                vec![4],
                ElemType::F32,
                vec![0.1, -2.0, 1e-9, 3.5],
            )),
        )],
    );
    let k = m.op(k).result(0);
    let bn = m.insert_op(
        InsertPoint::End(b),
        OperationState::new("tg.batch_norm")
            .operands(&[c, k, k, k, k])
            .results(&[t(&[1, 4, 4, 4]), t(&[4]), t(&[4])])
            .attr("epsilon", Attribute::Float(1e-5))
            .attr("momentum", Attribute::Float(0.9))
            .attr("training", Attribute::Bool(true))
            .loc(Location::FileLineCol {
                file: "net.tg".into(),
                line: 3,
                col: 7,
            }),
    );
    let y = m.op(bn).result(0);
    let r = m.build_op(b, "tg.relu", &[y], &[t(&[1, 4, 4, 4])], []);
    let r = m.op(r).result(0);
    m.build_op(
        b,
        "tg.return",
        &[r],
        &[],
        [
            ("note", Attribute::str("quote \" and \\ and \n")),
            ("f", Attribute::Float(f64::NAN)),
            (
                "d",
                Attribute::Dict([("a".to_string(), Attribute::Unit)].into_iter().collect()),
            ),
            (
                "ty",
                Attribute::Type(Type::Mask {
                    shape: vec![4, 3, 3, 3],
                }),
            ),
            ("sym", Attribute::SymbolRef("main".into())),
        ],
    );
    m
}

fn roundtrip(m: &Module, opts: PrintOptions) {
    let a = print_module(m, opts);
    let parsed = parse_module(&a, "a.mlir").unwrap_or_else(|e| panic!("{e}\n{a}"));
    let b = print_module(&parsed, opts);
    assert_eq!(a, b);
}

#[test]
fn sample_roundtrips_in_all_forms() {
    let m = sample();
    for generic in [true, false] {
        for debug_info in [true, false] {
            roundtrip(&m, PrintOptions { generic, debug_info });
        }
    }
}

#[test]
fn generic_and_custom_parse_to_the_same_module() {
    let m = sample();
    let opts = |generic| PrintOptions {
        generic,
        debug_info: true,
    };
    let from_custom = parse_module(&print_module(&m, opts(false)), "c").unwrap();
    assert_eq!(
        print_module(&from_custom, opts(true)),
        print_module(&m, opts(true))
    );
}

#[test]
fn mlir_style_input_is_accepted() {
    // What mlir-opt prints: no entry block label, typed integers, properties, two functions
    // reusing `%0`.
    let src = r#"
"builtin.module"() ({
  "tg.graph"() <{sym_name = "a"}> ({
  ^bb0(%arg0: tensor<2xf32>):
    %0 = "tg.relu"(%arg0) {k = 3 : i64, f = 1.000000e-01 : f32} : (tensor<2xf32>) -> tensor<2xf32>
    "tg.return"(%0) : (tensor<2xf32>) -> ()
  }) : () -> ()
  "tg.graph"() ({
  ^bb0(%arg0: tensor<2xf32>):
    %0 = "tg.identity"(%arg0) : (tensor<2xf32>) -> tensor<2xf32> loc("x.mlir":4:5)
    "tg.return"(%0) : (tensor<2xf32>) -> ()
  }) {sym_name = "b"} : () -> ()
}) : () -> ()
"#;
    let m = parse_module(src, "x.mlir").unwrap();
    assert!(m.lookup_symbol("a").is_some() && m.lookup_symbol("b").is_some());
    roundtrip(&m, PrintOptions::GENERIC);
}

#[test]
fn errors_have_line_and_column() {
    let cases = [
        (
            "\"tg.relu\"(%x) : (tensor<2xf32>) -> ()",
            "1:11: use of undefined value '%x'",
        ),
        (
            "%0 = \"tg.c\"() : () -> tensor<2xq32>",
            "1:23: malformed tensor type",
        ),
        (
            "\n  %0 = \"tg.c\"() : () -> (f32, f32)",
            "2:3: 'tg.c' defines 1 results but has 2",
        ),
        (
            "\"tg.c\"() {a = dense<[1.0]> : tensor<2xf32>} : () -> ()",
            "1:15: dense literal",
        ),
        ("\"tg.c\"() : () -> ()\n`", "2:1: unrecognised character"),
        ("\"tg.c\"( : () -> ()", "1:9: unexpected"),
        ("\"tg.c\"()", "unexpected end of input"),
    ];
    for (src, want) in cases {
        let err = parse_module(src, "bad.mlir").unwrap_err().to_string();
        assert!(err.contains(want), "{src:?}: got {err:?}, want {want:?}");
        assert!(err.starts_with("bad.mlir:"), "{err}");
    }
}

fn attr_strategy() -> impl Strategy<Value = Attribute> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Attribute::Int),
        any::<f64>().prop_map(Attribute::Float),
        any::<bool>().prop_map(Attribute::Bool),
        "[ -~\n\u{e9}]{0,8}".prop_map(Attribute::Str),
        Just(Attribute::Unit),
        "[a-z][a-z0-9_]{0,5}".prop_map(Attribute::SymbolRef),
        proptest::collection::vec(any::<f32>(), 6).prop_map(|v| {
            let v = v.into_iter().map(f64::from).collect();
            Attribute::Dense(DenseElements::floats(vec![2, 3], ElemType::F32, v))
        }),
        proptest::collection::vec(-5i64..5, 4).prop_map(|v| Attribute::Dense(DenseElements::ints(
            vec![4],
            ElemType::I64,
            v
        ))),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Attribute::Array),
            proptest::collection::btree_map("[a-z_][a-z0-9_.]{0,4}", inner, 0..3).prop_map(Attribute::Dict),
        ]
    })
}

fn type_strategy() -> impl Strategy<Value = Type> {
    let elem = proptest::sample::select(ElemType::ALL.to_vec());
    prop_oneof![
        (proptest::collection::vec(0i64..9, 0..4), elem.clone()).prop_map(|(s, e)| Type::tensor(s, e)),
        elem.prop_map(Type::Scalar),
        proptest::collection::vec(1i64..9, 1..3).prop_map(|shape| Type::Mask { shape }),
        Just(Type::Token),
    ]
}

/// One random op: operands picked from earlier values, random results and attributes.
#[derive(Debug, Clone)]
struct RandOp {
    name: usize,
    operands: Vec<prop::sample::Index>,
    results: Vec<Type>,
    attrs: Vec<(String, Attribute)>,
    nested: bool,
}

fn op_strategy() -> impl Strategy<Value = RandOp> {
    (
        0usize..4,
        proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
        proptest::collection::vec(type_strategy(), 0..3),
        proptest::collection::vec(("[a-z][a-z_]{0,4}", attr_strategy()), 0..3),
        proptest::bool::weighted(0.15),
    )
        .prop_map(|(name, operands, results, attrs, nested)| RandOp {
            name,
            operands,
            results,
            attrs,
            nested,
        })
}

fn build(args: Vec<Type>, ops: Vec<RandOp>) -> Module {
    const NAMES: [&str; 4] = ["tg.x", "sdt.y", "trn.z", "foo.bar_baz"];
    let mut m = Module::new();
    let (_, entry) = m.build_graph("g", &args);
    let mut values: Vec<_> = m.block(entry).args().to_vec();
    let mut block = entry;
    for op in ops {
        let operands: Vec<_> = if values.is_empty() {
            Vec::new()
        } else {
            op.operands
                .iter()
                .map(|i| values[i.index(values.len())])
                .collect()
        };
        let mut st = OperationState::new(NAMES[op.name])
            .operands(&operands)
            .results(&op.results)
            .regions(usize::from(op.nested))
            .loc(Location::Name(format!("n{}", values.len())));
        st.attrs = op.attrs.into_iter().collect();
        let id = m.insert_op(InsertPoint::End(block), st);
        values.extend(m.op(id).results().iter().copied());
        if op.nested {
            let r = m.op(id).regions()[0];
            block = m.add_block(r, &[t(&[2])]);
            values.push(m.block(block).arg(0));
        }
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn random_modules_roundtrip(
        args in proptest::collection::vec(type_strategy(), 0..3),
        ops in proptest::collection::vec(op_strategy(), 0..8),
        generic in any::<bool>(),
        debug_info in any::<bool>(),
    ) {
        let m = build(args, ops);
        let opts = PrintOptions { generic, debug_info };
        let a = print_module(&m, opts);
        let parsed = parse_module(&a, "p.mlir").map_err(|e| TestCaseError::fail(format!("{e}\n{a}")))?;
        prop_assert_eq!(a, print_module(&parsed, opts));
    }
}
