//! Snapshots of the `sdt` training program after autodiff and after each SDT pass, for
//! `digits_cnn` (90% sparse, all speculation on) and the ResNet-18 example.

use std::path::Path;
use trainer_compiler::autodiff::{autodiff, AutodiffOptions};
use trainer_compiler::frontend::{self, FrontendOptions};
use trainer_compiler::ir::Module;
use trainer_compiler::sdt::{self, SdtOptions, Speculation};
use trainer_compiler::text::print_custom;

fn load(rel: &str, batch: usize) -> Module {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    let tg = frontend::load(
        &path,
        &FrontendOptions {
            batch: Some(batch),
            seed: 0,
        },
    )
    .unwrap();
    autodiff(
        &tg,
        &AutodiffOptions {
            momentum: 0.9,
            weight_decay: 5e-4,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Snapshots `name@<stage>` after autodiff and after each pass.
fn stages(name: &str, mut m: Module) {
    let o = SdtOptions {
        sparsity: 0.9,
        speculation: Speculation::ALL,
        ..SdtOptions::default()
    };
    insta::assert_snapshot!(format!("{name}@0-autodiff"), print_custom(&m));
    sdt::prune::run(&mut m, &o).unwrap();
    insta::assert_snapshot!(format!("{name}@1-prune"), print_custom(&m));
    sdt::speculate::run(&mut m, &o).unwrap();
    insta::assert_snapshot!(format!("{name}@2-speculate"), print_custom(&m));
    sdt::bn_decouple::run(&mut m).unwrap();
    insta::assert_snapshot!(format!("{name}@3-bn-decouple"), print_custom(&m));
    sdt::dataflow::run(&mut m, &o).unwrap();
    insta::assert_snapshot!(format!("{name}@4-dataflow"), print_custom(&m));
}

#[test]
fn digits_cnn_sdt_stages() {
    stages("digits_cnn", load("tests/data/digits_cnn.onnx", 16));
}

#[test]
fn resnet18_sdt_stages() {
    stages("resnet18", load("examples/resnet18.tg", 2));
}
