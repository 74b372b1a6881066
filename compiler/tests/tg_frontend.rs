//! The `.tg` language: the examples compile to the expected IR; bad text gets `line:column` errors.

use std::path::Path;
use trainer_compiler::frontend::tg::{compile, TgOptions};
use trainer_compiler::text::print_custom;

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    let src = std::fs::read_to_string(&path).unwrap();
    let m = compile(
        &src,
        name,
        &TgOptions {
            batch: Some(8),
            seed: 0,
        },
    )
    .unwrap_or_else(|e| panic!("{name}:{e}"));
    print_custom(&m)
}

#[test]
fn mlp_example() {
    insta::assert_snapshot!(example("mlp.tg"));
}

#[test]
fn lenet_example() {
    let text = example("lenet.tg");
    assert_eq!(text.matches("tg.conv").count(), 2);
    assert!(text.contains("-> tensor<8x16x5x5xf32>"));
    insta::assert_snapshot!(text);
}

#[test]
fn resnet18_example() {
    let text = example("resnet18.tg");
    assert_eq!(text.matches("tg.conv").count(), 20);
    assert_eq!(text.matches("tg.batch_norm").count(), 20);
    assert_eq!(text.matches("tg.add").count(), 8);
    insta::assert_snapshot!(text);
}

fn error(src: &str) -> String {
    compile(src, "t.tg", &TgOptions::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn syntax_errors_have_line_and_column() {
    assert_eq!(
        error("graph g(%x: f32[1, 4]) -> (%y) {\n  %y = relu(%x\n}\n"),
        "3:1: unexpected `}`, expected `)` or `,`"
    );
    assert_eq!(
        error("graph g() -> () {\n  %y = relu(%x) @\n}"),
        "2:17: unexpected character(s) `@`"
    );
    assert!(error("graph g(%x: f32[1]) -> (%x) {").starts_with("1:30: unexpected end of input"));
    assert!(error("graph g(%x: f32[1]) -> (%x) {}\ngraph h() -> () {}")
        .starts_with("2:1: unexpected `graph` after the graph"));
}

#[test]
fn semantic_errors_have_line_and_column() {
    let head = "graph g(%x: f32[N, 4]) -> (%y) {\n";
    let e = |body: &str| error(&format!("{head}{body}\n}}"));
    assert_eq!(e("  %y = relu(%nope)"), "2:13: `%nope` is not defined");
    assert_eq!(e("  %y = frobnicate(%x)"), "2:8: unknown op `frobnicate`");
    assert_eq!(
        e("  %x = relu(%x)\n  %y = relu(%x)"),
        "2:3: `%x` is defined twice"
    );
    assert_eq!(
        e("  param %w: f32[2, 4, 1, 1]\n  %y = conv(%x, %w)"),
        "3:8: conv: input must have rank 4, found tensor<1x4xf32>"
    );
    assert_eq!(
        e("  param %w: f32[3, 5]\n  %y = gemm(%x, %w) {trans_b = true}"),
        "3:8: gemm: inner dimensions differ: A [1, 4], B [3, 5]"
    );
    assert_eq!(
        e("  param %w: f32[N, 4]\n  %y = relu(%x)"),
        "2:13: parameter dimensions must be numbers, found `N`"
    );
    assert_eq!(
        e("  param %w: f32[4] init = random\n  %y = relu(%x)"),
        "2:27: unknown init `random` (expected he, zeros or ones)"
    );
    assert_eq!(e("  %y, %z = relu(%x)"), "2:7: `relu` has 1 result(s), 2 named");
    assert_eq!(
        e("  %y = flatten(%x) {axis = \"one\"}"),
        "2:8: flatten: attribute `axis` must be an integer"
    );
    assert_eq!(
        error("graph g(%x: i64[2]) -> (%x) {}"),
        "1:13: unsupported element type `i64`"
    );
    assert_eq!(
        error("graph g(%x: f32[2]) -> (%q) {}"),
        "1:25: `%q` is not defined"
    );
}

#[test]
fn params_are_seeded_and_batch_is_symbolic() {
    let src =
        "graph g(%x: f32[N, 4]) -> (%y) {\n  param %w: f32[3, 4]\n  %y = gemm(%x, %w) {trans_b = true}\n}";
    let a = compile(
        src,
        "g.tg",
        &TgOptions {
            batch: Some(5),
            seed: 3,
        },
    )
    .unwrap();
    let b = compile(
        src,
        "g.tg",
        &TgOptions {
            batch: Some(5),
            seed: 3,
        },
    )
    .unwrap();
    let c = compile(
        src,
        "g.tg",
        &TgOptions {
            batch: Some(5),
            seed: 4,
        },
    )
    .unwrap();
    assert_eq!(a.weights, b.weights);
    assert_ne!(a.weights, c.weights);
    assert!(print_custom(&a).contains("-> tensor<5x3xf32>"));
}
