//! `trainer compile --emit tg` end to end through the binary.

mod common;

use common::run as trainer;

#[test]
fn graph_only_resnet18_prints_twenty_convolutions() {
    let (ok, out, err) = trainer(&[
        "compile",
        "tests/data/resnet18_imagenet_graph.onnx",
        "--emit",
        "tg",
    ]);
    assert!(ok, "{err}");
    let convs: Vec<&str> = out.lines().filter(|l| l.contains("tg.conv")).collect();
    assert_eq!(convs.len(), 20);
    assert!(convs[0].ends_with("-> tensor<1x64x112x112xf32>"), "{}", convs[0]);
}

#[test]
fn tg_example_with_batch_and_generic_output() {
    let (ok, out, err) = trainer(&["compile", "examples/mlp.tg", "--emit", "tg", "--batch", "4"]);
    assert!(ok, "{err}");
    assert!(out.contains("-> tensor<4x10xf32>"), "{out}");
    let (ok, out, _) = trainer(&["compile", "examples/mlp.tg", "--emit", "tg", "--generic"]);
    assert!(ok);
    assert!(out.contains("\"tg.gemm\""), "{out}");
}

#[test]
fn errors_are_rendered_without_panics() {
    let (ok, _, err) = trainer(&["compile", "tests/data/absent.onnx", "--emit", "tg"]);
    assert!(!ok);
    assert!(
        err.starts_with("error: `tests/data/absent.onnx`: cannot read"),
        "{err}"
    );
    let (ok, _, err) = trainer(&["compile", "Cargo.toml", "--emit", "tg"]);
    assert!(!ok);
    assert!(err.contains("unknown model format"), "{err}");
    let (ok, _, err) = trainer(&["compile", "examples/mlp.tg", "--emit", "tg", "--batch", "0"]);
    assert!(!ok);
    assert!(err.contains("--batch must be at least 1"), "{err}");
}

#[test]
fn no_loops_emits_the_unrolled_stream() {
    let args = ["compile", "examples/lenet.tg", "--batch", "16", "--emit", "asm"];
    let (ok, rolled, err) = trainer(&args);
    assert!(ok, "{err}");
    let (ok, unrolled, err) = trainer(&[&args[..], &["--no-loops"]].concat());
    assert!(ok, "{err}");
    let code = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with('.') && !l.starts_with("    x\""))
            .count()
    };
    assert!(
        rolled.lines().any(|l| l.starts_with("loop count=")),
        "no loop in the default stream"
    );
    assert!(!unrolled.contains("loop count="));
    assert!(code(&rolled) < code(&unrolled));
}
