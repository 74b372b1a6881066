//! The compiled digits_cnn binary (fp32, batch 16, lr 0.1, no momentum), run on the simulator —
//! `entry.prune` (sparse) then `entry.train` on the reference batch — reproduces PyTorch's
//! updated parameters (`tests/data/digits_cnn_step.npz`, `dense/new/*`, `sparse90/new/*`) to 1e-4
//! relative norm.

mod common;

use common::{data, npz_array};
use npyz::npz::NpzArchive;
use trainer_compiler::autodiff::{autodiff, AutodiffOptions};
use trainer_compiler::codegen;
use trainer_compiler::frontend::{self, FrontendOptions};
use trainer_compiler::lower::{self, LowerOptions};
use trainer_compiler::sdt::{self, SdtOptions};
use trainer_isa::names::CfgF32;
use trainer_sim::cost::CostModel;
use trainer_sim::machine::Machine;
use trainer_sim::Simulator;

fn rel(a: &[f32], b: &[f64]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    num / den.max(f64::MIN_POSITIVE)
}

fn reference(case: &str, sparsity: f64) {
    let mut npz = NpzArchive::open(data("tests/data/digits_cnn_step.npz")).unwrap();
    let x: Vec<f32> = npz_array(&mut npz, &format!("{case}/x"))
        .1
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let y: Vec<i64> = npz_array(&mut npz, &format!("{case}/y"))
        .1
        .into_iter()
        .map(|v| v as i64)
        .collect();
    let tg = frontend::load(
        &data("tests/data/digits_cnn.onnx"),
        &FrontendOptions {
            batch: Some(y.len()),
            seed: 0,
        },
    )
    .unwrap();
    let mut m = autodiff(
        &tg,
        &AutodiffOptions {
            lr: 0.1,
            ..Default::default()
        },
    )
    .unwrap();
    sdt::run_pipeline(
        &mut m,
        &SdtOptions {
            sparsity,
            ..Default::default()
        },
    )
    .unwrap();
    let program = codegen::generate(&lower::lower(&m, &LowerOptions::default()).unwrap(), &[]).unwrap();
    let cost = CostModel::from_machine(&Machine::resolve("trainer-28nm").unwrap());
    let mut s = Simulator::new(program, cost).unwrap();
    s.write_tensor("input", &x).unwrap();
    s.write_tensor_ints("labels", &y).unwrap();
    if sparsity > 0.0 {
        s.run_entry("prune", &[(CfgF32::Sparsity, sparsity as f32)])
            .unwrap();
    }
    s.run_entry("train", &[]).unwrap();
    let names: Vec<String> = npz
        .array_names()
        .filter_map(|n| n.strip_prefix(&format!("{case}/new/")).map(str::to_string))
        .collect();
    assert!(!names.is_empty());
    for name in names {
        let (_, want) = npz_array(&mut npz, &format!("{case}/new/{name}"));
        let got = s.read_tensor(&name).unwrap();
        let r = rel(&got, &want);
        assert!(r <= 1e-4, "{case}/new/{name}: relative error {r:e}");
    }
}

#[test]
fn dense_step_reproduces_pytorch() {
    reference("dense", 0.0);
}

#[test]
fn sparse90_step_reproduces_pytorch() {
    reference("sparse90", 0.9);
}
