//! The verifier on real and broken modules, the passes, the pass manager, and snapshots of both
//! text forms.

use std::cell::RefCell;
use std::path::Path;
use trainer_compiler::autodiff::{autodiff, AutodiffOptions};
use trainer_compiler::dialect;
use trainer_compiler::frontend::{self, FrontendOptions};
use trainer_compiler::ir::{Attribute, DenseElements, ElemType, Location, Module, Type};
use trainer_compiler::lower::{self, LowerOptions};
use trainer_compiler::pass::{timing_report, PassError, PassManager, PassRegistry};
use trainer_compiler::sdt::{self, SdtOptions, Speculation};
use trainer_compiler::text::{parse_module, print_custom, print_generic, print_module, PrintOptions};
use trainer_compiler::verify::{verify, VerifyOptions};

fn strict(m: &Module) -> Result<(), String> {
    verify(m, &dialect::standard(), VerifyOptions::default()).map_err(|e| e.to_string())
}

fn load(rel: &str, batch: usize) -> Module {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    frontend::load(
        &path,
        &FrontendOptions {
            batch: Some(batch),
            seed: 0,
        },
    )
    .unwrap()
}

#[test]
fn every_stage_of_real_models_verifies() {
    for (model, batch) in [("examples/lenet.tg", 4), ("tests/data/digits_cnn.onnx", 8)] {
        let tg = load(model, batch);
        strict(&tg).unwrap_or_else(|e| panic!("{model} tg: {e}"));
        let mut m = autodiff(&tg, &AutodiffOptions::default()).unwrap();
        strict(&m).unwrap_or_else(|e| panic!("{model} autodiff: {e}"));
        let o = SdtOptions {
            sparsity: 0.9,
            speculation: Speculation::ALL,
            ..SdtOptions::default()
        };
        sdt::run_pipeline(&mut m, &o).unwrap();
        strict(&m).unwrap_or_else(|e| panic!("{model} sdt: {e}"));
        let t = lower::lower(&m, &LowerOptions::default()).unwrap();
        strict(&t).unwrap_or_else(|e| panic!("{model} trn: {e}"));
        // The text forms of every stage parse back to the same text.
        for stage in [&tg, &m, &t] {
            let text = print_generic(stage);
            assert_eq!(print_generic(&parse_module(&text, model).unwrap()), text);
        }
    }
}

const BAD: &str = r#"
builtin.module {
^bb0:
  tg.graph @main {
  ^bb0(%arg0: tensor<1x3x8x8xf32>):
    %0 = tg.param : () -> tensor<4x3x3x3xf32> loc("w")
    %1 = tg.conv %arg0, %0 {dilations = [1, 1], group = 2, pads = [0, 0, 0, 0], strides = [1, 1]} : tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32> -> tensor<1x4x6x6xf32> loc("conv1")
    %2 = tg.relu %3 : tensor<1x4x6x6xf32> -> tensor<1x4x6x6xf32> loc("relu")
    %3 = tg.relu %1 : tensor<1x4x6x6xf32> -> tensor<1x4x6x6xf32> loc("x.tg":9:5)
    %4 = tg.softmax %3 {axis = "one"} : tensor<1x4x6x6xf32> -> tensor<1x4x6x6xf32>
    tg.return %4 : tensor<1x4x6x6xf32>
    tg.bogus : () -> () loc("bogus")
    foo.bar : () -> () loc("foreign")
  }
}
"#;

#[test]
fn verifier_reports_every_violation_with_op_and_location() {
    let m = parse_module(BAD, "bad.mlir").unwrap();
    let err = verify(&m, &dialect::standard(), VerifyOptions::default()).unwrap_err();
    let lines: Vec<String> = err.diagnostics.iter().map(|d| d.to_string()).collect();
    let want = [
        "loc(\"w\"): 'tg.param': missing attribute 'name'",
        "loc(\"conv1\"): 'tg.conv': input channels 3 and weight [4, 3, 3, 3] do not match group 2",
        "loc(\"relu\"): 'tg.relu': operand 0: use before definition",
        "loc(unknown): 'tg.softmax': attribute 'axis' must be int, found \"one\"",
        "loc(unknown): 'tg.return': terminator is not the last op of its block",
        "loc(\"bogus\"): 'tg.bogus': unknown op in registered dialect 'tg'",
        "loc(\"foreign\"): 'foo.bar': op of unregistered dialect 'foo'",
    ];
    for w in want {
        assert!(
            lines.iter().any(|l| l.starts_with(w)),
            "missing {w:?} in\n{}",
            lines.join("\n")
        );
    }
    let allowed = verify(
        &m,
        &dialect::standard(),
        VerifyOptions {
            allow_unregistered: true,
        },
    )
    .unwrap_err();
    assert!(!allowed.to_string().contains("foo.bar"));
    assert_eq!(allowed.diagnostics.len(), err.diagnostics.len() - 1);
}

fn t(shape: &[i64]) -> Type {
    Type::tensor(shape.to_vec(), ElemType::F32)
}

/// x → identity → dropout → reshape(const) chain, duplicated relus, a dead relu.
fn foldable() -> Module {
    let mut m = Module::new();
    let (_, b) = m.build_graph("main", &[t(&[2, 6])]);
    let x = m.block(b).arg(0);
    let op = |m: &mut Module, name: &str, ins: &[_], ty: Type, attrs: Vec<(&str, Attribute)>| {
        let o = m.build_op(b, name, ins, &[ty], attrs);
        m.op(o).result(0)
    };
    let i = op(&mut m, "tg.identity", &[x], t(&[2, 6]), vec![]);
    let d = op(
        &mut m,
        "tg.dropout",
        &[i],
        t(&[2, 6]),
        vec![("ratio", Attribute::Float(0.5))],
    );
    let r1 = op(
        &mut m,
        "tg.reshape",
        &[d],
        t(&[3, 4]),
        vec![("shape", Attribute::ints(&[3, 4]))],
    );
    let r2 = op(
        &mut m,
        "tg.reshape",
        &[r1],
        t(&[12]),
        vec![("shape", Attribute::ints(&[12]))],
    );
    let same = op(
        &mut m,
        "tg.reshape",
        &[r2],
        t(&[12]),
        vec![("shape", Attribute::ints(&[12]))],
    );
    let c = DenseElements::floats(vec![2, 2], ElemType::F32, vec![1.0, 2.0, 3.0, 4.0]);
    let k = op(
        &mut m,
        "tg.constant",
        &[],
        t(&[2, 2]),
        vec![("value", Attribute::Dense(c))],
    );
    let kf = op(
        &mut m,
        "tg.flatten",
        &[k],
        t(&[1, 4]),
        vec![("axis", Attribute::Int(0))],
    );
    let a = op(&mut m, "tg.relu", &[same], t(&[12]), vec![]);
    let b2 = op(&mut m, "tg.relu", &[same], t(&[12]), vec![]);
    let _dead = op(&mut m, "tg.relu", &[a], t(&[12]), vec![]);
    let s = op(&mut m, "tg.add", &[a, b2], t(&[12]), vec![]);
    m.build_op(b, "tg.return", &[s, kf], &[], []);
    m
}

#[test]
fn passes_fold_merge_and_erase() {
    let mut m = foldable();
    strict(&m).unwrap();
    let printed = RefCell::new(Vec::new());
    let mut pm = PassManager::from_pipeline(&PassRegistry::standard(), "canonicalize,cse,dce").unwrap();
    pm.after_each(Box::new(|name, m| {
        printed
            .borrow_mut()
            .push(format!("// after {name}\n{}", print_custom(m)))
    }));
    pm.run(&mut m).unwrap();
    assert_eq!(pm.timings().len(), 3);
    assert!(timing_report(pm.timings()).contains("canonicalize"));
    drop(pm);
    insta::assert_snapshot!("passes_after_all", printed.into_inner().join("\n"));
}

#[test]
fn shape_infer_propagates_new_input_shapes() {
    let src = r#"
builtin.module {
^bb0:
  tg.graph @main {
  ^bb0(%arg0: tensor<4x8xf32>):
    %0 = tg.relu %arg0 : tensor<1x8xf32> -> tensor<1x8xf32>
    %1 = tg.flatten %0 {axis = 0} : tensor<1x8xf32> -> tensor<1x8xf32>
    tg.return %1 : tensor<1x8xf32>
  }
}
"#;
    // The written operand types disagree with %arg0: the parser rejects that.
    let err = parse_module(src, "s.mlir").unwrap_err().to_string();
    assert!(
        err.starts_with("s.mlir:6:18: '%arg0' has type tensor<4x8xf32>"),
        "{err}"
    );
    let mut m = parse_module(&src.replace("tensor<4x8xf32>", "tensor<1x8xf32>"), "s.mlir").unwrap();
    let g = m.lookup_symbol("main").unwrap();
    let body = m.region(m.op(g).regions()[0]).blocks()[0];
    m.set_type(m.block(body).arg(0), t(&[4, 8]));
    assert!(strict(&m).is_err());
    let mut pm = PassManager::from_pipeline(&PassRegistry::standard(), "shape-infer").unwrap();
    pm.run(&mut m).unwrap_err(); // The input does not verify...
    pm.verify_each = false;
    pm.run(&mut m).unwrap(); // ...but shape-infer repairs it.
    strict(&m).unwrap();
    assert!(print_custom(&m).contains("tg.flatten %0 {axis = 0} : tensor<4x8xf32> -> tensor<1x32xf32>"));
}

#[test]
fn pipeline_errors_are_reported() {
    let reg = PassRegistry::standard();
    let e = PassManager::from_pipeline(&reg, "cse,nope").err().unwrap();
    assert!(e.to_string().starts_with("unknown pass 'nope'"), "{e}");
    let e = PassManager::from_pipeline(&reg, "cse{x=1}").err().unwrap();
    assert_eq!(e.to_string(), "pass 'cse' has no option 'x'");
    let e = PassManager::from_pipeline(&reg, "cse,,dce").err().unwrap();
    assert!(matches!(e, PassError::Pipeline(ref p) if p.col == 5), "{e}");
}

#[test]
fn snapshots_of_both_forms() {
    let mut m = foldable();
    let g = m.lookup_symbol("main").unwrap();
    m.op_mut(g).loc = Location::FileLineCol {
        file: "net.tg".into(),
        line: 1,
        col: 1,
    };
    insta::assert_snapshot!("foldable_generic", print_generic(&m));
    let with_locs = PrintOptions {
        generic: false,
        debug_info: true,
    };
    insta::assert_snapshot!("foldable_custom_locs", print_module(&m, with_locs));
}
