//! The compiled training step, run by the reference interpreter in fp32, reproduces PyTorch's
//! numbers (`tests/data/<model>_step.npz`): loss, logits, every gradient, every updated weight,
//! the BN running statistics, and (sparse) the pruning masks, to 1e-4 relative (norm).

mod common;

use common::{data, npz_array, Npz};
use npyz::npz::NpzArchive;
use std::collections::BTreeMap;
use trainer_compiler::autodiff::{autodiff, AutodiffOptions};
use trainer_compiler::frontend::{self, FrontendOptions};
use trainer_compiler::interp::{self, State};
use trainer_compiler::ir::{Module, TensorData};
use trainer_compiler::sdt::{self, SdtOptions};

/// Every array of the archive under `prefix/`, by the rest of its name, as f64.
fn arrays(npz: &mut Npz, prefix: &str) -> BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    let names: Vec<String> = npz.array_names().map(str::to_string).collect();
    let mut out = BTreeMap::new();
    for name in names.into_iter().filter(|n| n.starts_with(prefix)) {
        let array = npz_array(npz, &name);
        out.insert(name[prefix.len()..].to_string(), array);
    }
    out
}

/// ‖a − b‖ / ‖b‖.
fn rel(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    if den == 0.0 {
        num
    } else {
        num / den
    }
}

fn check(what: &str, got: &TensorData, want: &(Vec<usize>, Vec<f64>)) {
    assert_eq!(got.data.len(), want.1.len(), "{what}: element count");
    let r = rel(&got.data, &want.1);
    assert!(r <= 1e-4, "{what}: relative error {r:e}");
}

/// Compiles `model` with `opts`, runs one step on the reference batch, compares everything.
fn reference_step(model: &str, case: &str, opts: &SdtOptions) {
    let mut npz = NpzArchive::open(data(&format!("tests/data/{model}_step.npz"))).unwrap();
    let all = arrays(&mut npz, &format!("{case}/"));
    let (xs, xv) = &all["x"];
    let x = TensorData {
        shape: xs.clone(),
        data: xv.iter().map(|&v| v as f32).collect(),
    };
    let y: Vec<i64> = all["y"].1.iter().map(|&v| v as i64).collect();

    let tg = frontend::load(
        &data(&format!("tests/data/{model}.onnx")),
        &FrontendOptions {
            batch: Some(x.shape[0]),
            seed: 0,
        },
    )
    .unwrap();
    if case == "dense" {
        // The tg interpreter's forward pass alone gives the same logits.
        let logits_tg = interp::run_graph(&tg, std::slice::from_ref(&x)).unwrap();
        check("tg logits", &logits_tg[0], &all["logits"]);
    }

    let mut m: Module = autodiff(
        &tg,
        &AutodiffOptions {
            lr: 0.1,
            ..Default::default()
        },
    )
    .unwrap();
    sdt::run_pipeline(&mut m, opts).unwrap();
    let mut state = State::init(&m).unwrap();
    let out = interp::run_step(&m, &mut state, &x, &y).unwrap();

    let loss = all["loss"].1[0];
    assert!(
        ((out.loss as f64 - loss) / loss).abs() <= 1e-4,
        "loss {} vs {loss}",
        out.loss
    );
    check("logits", &out.logits, &all["logits"]);
    let mut counts = BTreeMap::new();
    for (key, want) in &all {
        let (kind, name) = match key.split_once('/') {
            Some(kv) => kv,
            None => continue,
        };
        let got = match kind {
            "grad" => out.grads.get(name),
            "new" | "running" => state.tensors.get(name),
            "mask" => state.tensors.get(&format!("{name}.mask")),
            _ => panic!("unexpected entry {key}"),
        };
        check(key, got.unwrap_or_else(|| panic!("{key}: not produced")), want);
        *counts.entry(kind).or_insert(0) += 1;
    }
    assert!(
        counts["grad"] >= 4 && counts["new"] == counts["grad"],
        "{counts:?}"
    );
}

fn dense() -> SdtOptions {
    SdtOptions {
        sparsity: 0.0,
        ..SdtOptions::default()
    }
}

fn sparse90() -> SdtOptions {
    SdtOptions {
        sparsity: 0.9,
        ..SdtOptions::default()
    }
}

#[test]
fn digits_mlp_dense() {
    reference_step("digits_mlp", "dense", &dense());
}

#[test]
fn digits_mlp_sparse90() {
    reference_step("digits_mlp", "sparse90", &sparse90());
}

#[test]
fn digits_cnn_dense() {
    reference_step("digits_cnn", "dense", &dense());
}

#[test]
fn digits_cnn_sparse90() {
    reference_step("digits_cnn", "sparse90", &sparse90());
}

/// Speculation off, conventional BN and every other combination give the same step (S1 is exact;
/// S2/S3 are approximate and off here).
#[test]
fn pass_variants_agree_on_digits_cnn() {
    for opts in [
        SdtOptions {
            sparsity: 0.9,
            speculation: sdt::Speculation::NONE,
            ..SdtOptions::default()
        },
        SdtOptions {
            sparsity: 0.9,
            bn_decoupled: false,
            ..SdtOptions::default()
        },
        SdtOptions {
            sparsity: 0.9,
            speculation: sdt::Speculation::NONE,
            bn_decoupled: false,
            ..SdtOptions::default()
        },
    ] {
        reference_step("digits_cnn", "sparse90", &opts);
    }
}
