//! Unit tests of the bridge on hand-written modules (the example models are covered by the
//! crate's integration tests).

use super::*;
use crate::ir::{Attribute, DenseValues, ElemType, Location, TensorData};
use crate::text::{parse_module, print_module, PrintOptions};

const WITH_LOCS: PrintOptions = PrintOptions {
    generic: true,
    debug_info: true,
};

/// A module exercising every attribute kind, multi-result ops, successors and dialect types.
const SAMPLE: &str = r#"
"tg.graph"() ({
^bb0(%arg0: tensor<1x4xf32>, %arg1: !sdt.mask<4x8>, %arg2: !trn.buffer<gbuf, 64x64xf16>):
  %0 = "tg.relu"(%arg0) {a = 3, b = [1, 2], c = 0.1, d = 0.123456789, e = dense<[[0.1, 2.0], [-3.5, 1.0e-9]]> : tensor<2x2xf32>, f = true, g, h = "x\"y\n", r = 0x7FF0000000000000 : f64, s = @foo, t = tensor<2xf16>, u = {x = 1, y = [0.5]}, v = dense<[true, false]> : tensor<2xi1>, w = dense<3> : tensor<4xi64>} : (tensor<1x4xf32>) -> tensor<1x4xf32> loc("conv1")
  %1:2 = "tg.split"(%0) : (tensor<1x4xf32>) -> (tensor<1x2xf32>, tensor<1x2xf32>) loc("net.tg":3:7)
  "tg.br"()[^bb1] : () -> ()
^bb1:
  "tg.return"(%1#0, %arg1) : (tensor<1x2xf32>, !sdt.mask<4x8>) -> ()
}) {sym_name = "main"} : () -> ()
"#;

fn sample() -> crate::ir::Module {
    parse_module(SAMPLE, "sample.mlir").expect("sample parses")
}

#[test]
fn round_trip_is_identical_with_locations() {
    let m = sample();
    let back = round_trip(&m).unwrap();
    assert_eq!(print_module(&back, WITH_LOCS), print_module(&m, WITH_LOCS));
    let relu = back
        .all_ops()
        .into_iter()
        .find(|&o| back.op(o).name() == "tg.relu")
        .unwrap();
    assert_eq!(back.op(relu).loc, Location::Name("conv1".into()));
}

#[test]
fn round_trip_carries_weights() {
    let mut m = sample();
    m.weights.insert(
        "w".into(),
        TensorData {
            shape: vec![2],
            data: vec![1.0, 2.0],
        },
    );
    assert_eq!(round_trip(&m).unwrap().weights, m.weights);
}

#[test]
fn verify_accepts_our_generic_text() {
    verify(&sample()).unwrap();
    verify_text(&print_module(&sample(), PrintOptions::GENERIC)).unwrap();
}

#[test]
fn parse_errors_carry_mlir_diagnostics() {
    let err = verify_text(r#""tg.relu"(%0) : (tensor<4xf32>) -> tensor<4xf32>"#).unwrap_err();
    let MlirError::Parse { diagnostics } = &err else {
        panic!("expected a parse error, got {err}");
    };
    assert!(
        diagnostics.starts_with("1:11: use of undeclared SSA value"),
        "{diagnostics}"
    );
}

#[test]
fn verifier_errors_carry_mlir_diagnostics() {
    // `func.return` is registered: its verifier wants a `func.func` parent.
    let err = verify_text(r#""tg.graph"() ({ "func.return"() : () -> () }) : () -> ()"#).unwrap_err();
    assert!(err.to_string().contains("func.func"), "{err}");
}

#[test]
fn nul_bytes_are_rejected() {
    assert!(matches!(verify_text("\0"), Err(MlirError::NulByte(0))));
}

#[test]
fn bad_pipelines_are_typed_errors() {
    let err = optimize(&sample(), "no-such-pass").unwrap_err();
    assert!(matches!(err, MlirError::Pipeline { .. }), "{err}");
}

#[test]
fn canonicalize_and_cse_keep_unregistered_ops() {
    let m = sample();
    let out = optimize(&m, "canonicalize,cse").unwrap();
    // Unregistered ops have unknown side effects: MLIR keeps them all.
    let names = |m: &crate::ir::Module| -> Vec<String> {
        m.all_ops().iter().map(|&o| m.op(o).name().to_string()).collect()
    };
    assert_eq!(names(&out), names(&m));
}

#[test]
fn cse_and_constant_folding_on_registered_ops() {
    let src = r#"
"tg.graph"() ({
^bb0(%arg0: tensor<4xf32>):
  %0 = "arith.constant"() {value = dense<2.0> : tensor<4xf32>} : () -> tensor<4xf32>
  %1 = "arith.constant"() {value = dense<2.0> : tensor<4xf32>} : () -> tensor<4xf32>
  %2 = "arith.addf"(%0, %1) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %3 = "tg.mul"(%arg0, %2) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  "tg.return"(%3) : (tensor<4xf32>) -> ()
}) {sym_name = "main"} : () -> ()
"#;
    let m = parse_module(src, "fold.mlir").unwrap();
    let out = optimize(&m, "canonicalize,cse").unwrap();
    let ops: Vec<_> = out
        .all_ops()
        .into_iter()
        .filter(|&o| out.op(o).dialect() == "arith")
        .collect();
    assert_eq!(ops.len(), 1, "{}", print_module(&out, PrintOptions::GENERIC));
    let value = out
        .op(ops[0])
        .attr("value")
        .and_then(Attribute::as_dense)
        .unwrap();
    assert_eq!(value.values, DenseValues::Floats(vec![4.0; 4]));
    assert_eq!(value.elem, ElemType::F32);
}

#[test]
fn large_constants_come_back_from_mlir_hex_form() {
    use crate::ir::DenseElements;
    let n = 150;
    let floats: Vec<f64> = (0..n).map(|i| f64::from(i) * 0.37 - 20.0).collect();
    let small: Vec<f64> = (0..n).map(|i| f64::from(i % 8) * 0.25 - 1.0).collect();
    let ints: Vec<i64> = (0..n).map(|i| i64::from(i) * 7919 - 500).collect();
    let bits: Vec<i64> = (0..n).map(|i| i64::from(i % 3 == 0)).collect();
    let shape = vec![i64::from(n)];
    let attrs = [
        DenseElements::floats(shape.clone(), ElemType::F32, floats.clone()),
        DenseElements::floats(shape.clone(), ElemType::F16, floats),
        DenseElements::floats(shape.clone(), ElemType::F8E4M3FN, small.clone()),
        DenseElements::floats(shape.clone(), ElemType::F8E5M2, small),
        DenseElements::ints(shape.clone(), ElemType::I64, ints.clone()),
        DenseElements::ints(shape.clone(), ElemType::I32, ints),
        DenseElements::ints(shape, ElemType::I1, bits),
    ];
    let dict: Vec<String> = attrs
        .into_iter()
        .enumerate()
        .map(|(i, d)| format!("a{i} = {}", Attribute::Dense(d)))
        .collect();
    let src = format!("\"tg.c\"() {{{}}} : () -> ()", dict.join(", "));
    let m = parse_module(&src, "big.mlir").unwrap();
    let mlir = Mlir::new();
    let printed = mlir.print_generic(&mlir.export(&m).unwrap()).unwrap();
    assert_eq!(printed.matches("dense<\"0x").count(), 7, "{printed}");
    let back = round_trip(&m).unwrap();
    assert_eq!(print_module(&back, WITH_LOCS), print_module(&m, WITH_LOCS));
}
