//! Differential tests: the simulator running the compiled binary's `entry.prune` + `entry.train`
//! agrees with the IR interpreter's training step (fp32) — loss, logits and every updated
//! parameter — on the example models; and on random small graphs (property test).

use std::path::{Path, PathBuf};
use trainer_compiler::autodiff::{autodiff, AutodiffOptions};
use trainer_compiler::codegen;
use trainer_compiler::frontend::{self, FrontendOptions};
use trainer_compiler::interp::{self, State};
use trainer_compiler::ir::{Module, TensorData};
use trainer_compiler::lower::{self, LowerOptions};
use trainer_compiler::sdt::{self, SdtOptions};
use trainer_isa::names::CfgF32;
use trainer_sim::cost::CostModel;
use trainer_sim::machine::Machine;
use trainer_sim::Simulator;

fn data(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file)
}

fn sim(program: trainer_isa::Program) -> Simulator {
    let machine = Machine::resolve("trainer-28nm").unwrap();
    Simulator::new(program, CostModel::from_machine(&machine)).unwrap()
}

/// Deterministic pseudo-random values in [0, 1).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

fn rel(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let den: f64 = b.iter().map(|&y| (y as f64).powi(2)).sum::<f64>().sqrt();
    if den == 0.0 {
        num
    } else {
        num / den
    }
}

/// Compiles `tg` to `sdt` and to a program; runs one step in both; compares.
pub fn check_step(tg: &Module, opts: &SdtOptions, ad: &AutodiffOptions, tol: f64) {
    let mut m = autodiff(tg, ad).unwrap();
    sdt::run_pipeline(&mut m, opts).unwrap();
    let trn = lower::lower(&m, &LowerOptions::default()).unwrap();
    let program = codegen::generate(&trn, &[]).unwrap();
    let mut s = sim(program);
    let mut state = State::init(&m).unwrap();
    let xshape = s
        .program()
        .tensor("input")
        .unwrap()
        .shape
        .iter()
        .map(|&d| d as usize)
        .collect::<Vec<_>>();
    let n: usize = xshape.iter().product();
    let x = TensorData {
        shape: xshape.clone(),
        data: noise(n, 7),
    };
    let classes = s.program().tensor("logits").unwrap().shape[1] as i64;
    let y: Vec<i64> = (0..xshape[0] as i64).map(|i| (i * 7 + 3) % classes).collect();
    let out = interp::run_step(&m, &mut state, &x, &y).unwrap();
    s.write_tensor("input", &x.data).unwrap();
    s.write_tensor_ints("labels", &y).unwrap();
    if opts.sparsity > 0.0 {
        s.run_entry("prune", &[(CfgF32::Sparsity, opts.sparsity as f32)])
            .unwrap();
    }
    s.run_entry("train", &[]).unwrap();
    let loss = s.read_tensor("loss").unwrap()[0];
    assert!(
        ((loss - out.loss) / out.loss).abs() < 1e-4,
        "loss {loss} vs {}",
        out.loss
    );
    let r = rel(&s.read_tensor("logits").unwrap(), &out.logits.data);
    assert!(r < tol, "logits: {r:e}");
    for t in s.program().tensors.clone() {
        if let Some(want) = state.tensors.get(&t.name) {
            let got = s.read_tensor(&t.name).unwrap();
            let r = rel(&got, &want.data);
            assert!(r < tol, "{}: relative error {r:e}", t.name);
        }
    }
}

fn onnx(file: &str, batch: usize) -> Module {
    frontend::load(
        &data(&format!("tests/data/{file}")),
        &FrontendOptions {
            batch: Some(batch),
            seed: 0,
        },
    )
    .unwrap()
}

#[test]
fn digits_mlp_dense_step_matches_interpreter() {
    check_step(
        &onnx("digits_mlp.onnx", 16),
        &SdtOptions::default(),
        &AutodiffOptions::default(),
        1e-4,
    );
}

#[test]
fn digits_cnn_dense_step_matches_interpreter() {
    check_step(
        &onnx("digits_cnn.onnx", 16),
        &SdtOptions::default(),
        &AutodiffOptions::default(),
        1e-4,
    );
}

#[test]
fn digits_cnn_sparse_momentum_step_matches_interpreter() {
    let opts = SdtOptions {
        sparsity: 0.9,
        ..SdtOptions::default()
    };
    let ad = AutodiffOptions {
        momentum: 0.9,
        weight_decay: 1e-4,
        ..AutodiffOptions::default()
    };
    check_step(&onnx("digits_cnn.onnx", 16), &opts, &ad, 1e-4);
}

fn tg_example(file: &str, batch: usize) -> Module {
    frontend::load(
        &data(&format!("examples/{file}")),
        &FrontendOptions {
            batch: Some(batch),
            seed: 1,
        },
    )
    .unwrap()
}

#[test]
fn example_mlp_tg_step_matches_interpreter() {
    check_step(
        &tg_example("mlp.tg", 2),
        &SdtOptions {
            sparsity: 0.5,
            ..SdtOptions::default()
        },
        &AutodiffOptions::default(),
        1e-4,
    );
}

#[test]
fn example_lenet_tg_step_matches_interpreter() {
    check_step(
        &tg_example("lenet.tg", 2),
        &SdtOptions {
            sparsity: 0.5,
            ..SdtOptions::default()
        },
        &AutodiffOptions::default(),
        1e-4,
    );
}
