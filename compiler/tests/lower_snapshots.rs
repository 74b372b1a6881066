//! Snapshots of the `trn` IR and the assembly of the compiled digits models (batch 4), and
//! determinism of the code generator (same input, byte-identical `.tbin`).

use std::path::Path;
use trainer_compiler::autodiff::{autodiff, AutodiffOptions};
use trainer_compiler::frontend::{self, FrontendOptions};
use trainer_compiler::ir::Module;
use trainer_compiler::lower::{self, LowerOptions};
use trainer_compiler::sdt::{self, SdtOptions};
use trainer_compiler::{codegen, text};

/// The assembly without its `.data` initializer lines (weights are checked by the numeric tests).
fn asm(t: &Module) -> String {
    let text = trainer_isa::disassemble(&codegen::generate(t, &[]).unwrap());
    text.lines()
        .filter(|l| !l.starts_with(".data") && !l.trim_start().starts_with("x\""))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn trn(model: &str, sparsity: f64, lo: &LowerOptions) -> Module {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(model);
    let tg = frontend::load(
        &path,
        &FrontendOptions {
            batch: Some(4),
            seed: 0,
        },
    )
    .unwrap();
    let mut m = autodiff(&tg, &AutodiffOptions::default()).unwrap();
    sdt::run_pipeline(
        &mut m,
        &SdtOptions {
            sparsity,
            ..Default::default()
        },
    )
    .unwrap();
    lower::lower(&m, lo).unwrap()
}

#[test]
fn digits_mlp_trn_and_asm() {
    let t = trn("digits_mlp.onnx", 0.9, &LowerOptions::default());
    insta::assert_snapshot!("digits_mlp_trn", text::print_custom(&t));
    insta::assert_snapshot!("digits_mlp_asm", asm(&t));
}

#[test]
fn digits_cnn_trn_and_asm() {
    let t = trn("digits_cnn.onnx", 0.9, &LowerOptions::default());
    insta::assert_snapshot!("digits_cnn_trn", text::print_custom(&t));
    insta::assert_snapshot!("digits_cnn_asm", asm(&t));
}

/// Tiny buffers tile the MLP into repeated bodies, which the lowering rolls into loop nests.
#[test]
fn digits_mlp_tiny_buffers_asm_has_loops() {
    let lo = LowerOptions {
        buffers: [4096, 2048, 2048, 4096],
        ..LowerOptions::default()
    };
    insta::assert_snapshot!("digits_mlp_tiny_asm", asm(&trn("digits_mlp.onnx", 0.9, &lo)));
}

#[test]
fn codegen_is_deterministic() {
    let bytes = || {
        trainer_isa::tbin::write(
            &codegen::generate(&trn("digits_cnn.onnx", 0.5, &LowerOptions::default()), &[]).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(bytes(), bytes());
}
