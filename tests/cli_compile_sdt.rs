//! `trainer compile --emit sdt` end to end through the binary: the training program with the
//! SDT pass options.

mod common;

use common::run as trainer;

#[test]
fn sparse_training_program_with_all_speculation_and_adaptive_dataflow() {
    let (ok, out, err) = trainer(&[
        "compile",
        "tests/data/digits_cnn.onnx",
        "--emit",
        "sdt",
        "--batch",
        "16",
        "--sparsity",
        "0.9",
        "--schedule",
        "ramp:0.5",
        "--steps",
        "300",
        "--prune-interval",
        "10",
        "--momentum",
        "0.9",
        "--speculation",
        "s1,s2,s3",
        "--dataflow",
        "adaptive",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("sdt.step @"), "{out}");
    assert_eq!(out.matches("sdt.prune_mask").count(), 3);
    assert!(
        out.contains("interval = 10") && out.contains("ramp_steps = 150"),
        "{out}"
    );
    for op in [
        "sdt.spec_s1",
        "sdt.spec_s2",
        "sdt.spec_s3",
        "dataflow = \"adaptive\"",
        "fused = [\"bna\"",
    ] {
        assert!(out.contains(op), "missing {op}");
    }
    assert!(!out.contains("sdt.bn_stats"), "decoupled BN fuses the statistics");
}

#[test]
fn conventional_bn_without_speculation_and_generic_form() {
    let (ok, out, err) = trainer(&[
        "compile",
        "examples/mlp.tg",
        "--emit",
        "sdt",
        "--batch",
        "4",
        "--no-speculation",
        "--bn",
        "conventional",
        "--dataflow",
        "fixed:os",
        "--generic",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("\"sdt.relu_bwd\"") && out.contains("\"sdt.sgd\""),
        "{out}"
    );
    assert!(!out.contains("spec_s1") && !out.contains("prune_mask"));
    assert!(out.contains("dataflow = \"os\""));
}

#[test]
fn bad_options_are_errors() {
    let (ok, _, err) = trainer(&[
        "compile",
        "examples/mlp.tg",
        "--emit",
        "sdt",
        "--schedule",
        "ramp:0.5",
    ]);
    assert!(!ok && err.contains("--steps"), "{err}");
    let (ok, _, err) = trainer(&[
        "compile",
        "examples/mlp.tg",
        "--emit",
        "sdt",
        "--dataflow",
        "fixed:zz",
    ]);
    assert!(!ok && err.contains("unknown dataflow"), "{err}");
    let (ok, _, err) = trainer(&["compile", "examples/mlp.tg", "--emit", "sdt", "--sparsity", "1.5"]);
    assert!(!ok && err.contains("sparsity"), "{err}");
}
